//! `ringread bench --tree`: every way runs on the same tree and they agree, and the checksum each
//! way reports is that of the files' contents, computed here independently (so a way that read
//! something else could not hide behind an equal column).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ringread::bench::{tree_sizes, TREE_METHODS, TREE_SEED};
use ringread::processor::{Algorithm, Checksum};

mod common;

fn bench(args: &[&str]) -> (serde_json::Value, String) {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
        .arg("bench")
        .args(args)
        .args(["--json", "-"])
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {table}");
    (serde_json::from_slice(&out.stdout).unwrap(), table)
}

fn methods(report: &serde_json::Value, cache: usize) -> &Vec<serde_json::Value> {
    report["results"][cache]["methods"].as_array().unwrap()
}

/// XXH3 of each file's result, one line each, in order: what the report's `checksum` is.
fn combined<'a>(results: impl IntoIterator<Item = &'a str>) -> String {
    let mut sum = Checksum::new(Algorithm::Xxh3);
    for r in results {
        sum.update(r.as_bytes());
        sum.update(b"\n");
    }
    sum.hex()
}

fn xxh3(path: &Path) -> String {
    let mut sum = Checksum::new(Algorithm::Xxh3);
    sum.update(&std::fs::read(path).unwrap());
    sum.hex()
}

#[test]
fn every_way_reads_a_generated_tree_and_they_agree() {
    let _g = common::shared();
    let (report, table) = bench(&["--tree", "--files", "300", "--runs", "2"]);
    assert_eq!(report["source"], "tree");
    let tree = &report["tree"];
    assert_eq!(tree["files"], 300);
    let bytes: u64 = tree_sizes(300, TREE_SEED).iter().sum();
    assert_eq!(tree["bytes"], bytes);
    assert!(tree["generated"].is_string());
    assert!(
        !Path::new(tree["dir"].as_str().unwrap()).exists(),
        "the generated tree is removed afterwards"
    );
    assert_eq!(report["results"].as_array().unwrap().len(), 1);
    assert_eq!(report["results"][0]["cache"], "warm");
    let methods = methods(&report, 0);
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, TREE_METHODS, "every way, in order");
    for m in methods {
        let name = m["name"].as_str().unwrap();
        assert!(
            m["skipped"].is_null(),
            "{name} did not run: {}",
            m["skipped"]
        );
        let samples = m["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 2, "{name}");
        for s in samples {
            assert_eq!(s["files"], 300, "{name}");
            assert_eq!(s["bytes"], bytes, "{name}");
        }
        for field in ["files_per_s", "cpu_seconds", "median_gib_per_s"] {
            assert!(m[field].as_f64().is_some(), "{name}: no {field}");
        }
        assert!(
            table.lines().any(|l| l.starts_with(name)),
            "{name} missing from the table:\n{table}"
        );
    }
    let sums: Vec<&str> = methods
        .iter()
        .map(|m| m["checksum"].as_str().unwrap())
        .collect();
    assert!(sums.iter().all(|s| *s == sums[0]), "{sums:?}");
    assert_eq!(methods[1]["ratio_to_one_by_one"], 1.0);
}

/// A tree with what a real one has: nested directories, an empty file, a symbolic link (not
/// followed), names whose byte order is not their alphabetical order.
fn odd_tree(root: &Path) -> Vec<PathBuf> {
    let files: [(&str, usize); 6] = [
        ("a", 5000),
        ("B", 1),
        ("_x", 300_000),
        ("empty", 0),
        ("sub/z", 70_000),
        ("sub/y", 4096),
    ];
    std::fs::create_dir(root.join("sub")).unwrap();
    for (i, (name, len)) in files.iter().enumerate() {
        std::fs::write(root.join(name), common::random_bytes(*len, i as u64)).unwrap();
    }
    std::os::unix::fs::symlink(root.join("a"), root.join("link")).unwrap();
    // Sorted by name, byte by byte, directory by directory.
    ["B", "_x", "a", "empty", "sub/y", "sub/z"]
        .iter()
        .map(|n| root.join(n))
        .collect()
}

#[test]
fn each_way_reports_the_checksum_of_the_files_contents() {
    let _g = common::shared();
    let tmp = tempfile::tempdir().unwrap();
    let order = odd_tree(tmp.path());
    let dir = tmp.path().to_str().unwrap();

    let expected = combined(
        order
            .iter()
            .map(|p| xxh3(p))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    let (report, _) = bench(&["--tree", dir, "--runs", "1"]);
    assert_eq!(report["tree"]["files"], 6, "the symbolic link is not read");
    assert!(report["tree"]["generated"].is_null());
    for m in methods(&report, 0) {
        assert_eq!(m["checksum"], expected.as_str(), "{}", m["name"]);
    }

    // With the null processor the result of a file is its size.
    let sizes: Vec<String> = order
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len().to_string())
        .collect();
    let expected = combined(sizes.iter().map(String::as_str));
    let (report, _) = bench(&[
        "--tree",
        dir,
        "--runs",
        "1",
        "--processor",
        "null",
        "--backends",
        "many,threads,tokio-uring",
    ]);
    let ms = methods(&report, 0);
    assert_eq!(ms.len(), 3);
    for m in ms {
        assert_eq!(m["checksum"], expected.as_str(), "{}", m["name"]);
    }
    assert!(tmp.path().join("a").exists(), "a given tree is left alone");
}

#[test]
fn make_tree_keeps_the_tree_bench_generates_and_cold_runs_say_how_cold() {
    let _g = common::shared();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
        .args(["bench", "--make-tree"])
        .arg(&dir)
        .args(["--files", "250"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bytes: u64 = tree_sizes(250, TREE_SEED).iter().sum();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("250 files, {bytes} bytes")));
    let again = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
        .args(["bench", "--make-tree"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success(), "an existing directory is refused");

    let (report, table) = bench(&[
        "--tree",
        dir.to_str().unwrap(),
        "--cache",
        "cold",
        "--runs",
        "1",
        "--backends",
        "many,one-by-one",
    ]);
    assert_eq!(report["tree"]["bytes"], bytes);
    let cold = &report["results"][0];
    assert_eq!(cold["cache"], "cold");
    let how = cold["preparation"].as_str().unwrap();
    assert!(
        how.contains("drop_caches") || how.contains("cold in part only"),
        "{how}"
    );
    assert!(table.contains(how), "the table says how cold: {table}");
    let ms = methods(&report, 0);
    assert_eq!(ms[0]["checksum"], ms[1]["checksum"]);
    assert!(dir.join("d000").exists(), "a given tree is kept");
}
