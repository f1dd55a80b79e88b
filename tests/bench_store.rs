//! `ringread bench --store`: ringread's RingStore and object_store's LocalFileSystem run the same
//! work (one get_ranges of random ranges, concurrent whole-object gets) side by side, warm and
//! cold; both are reported, their results are equal, and equal to the files' bytes read here
//! independently.

use std::path::Path;
use std::time::Duration;

use ringread::bench::{random_offsets, RANDOM_SEED, STORE_RANGES_FILE};
use ringread::processor::{Algorithm, Checksum};

mod common;

fn bench(args: &[&str]) -> (std::process::Output, String) {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
        .arg("bench")
        .args(args)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, table)
}

/// XXH3 of the concatenation of `parts`.
fn xxh3<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut sum = Checksum::new(Algorithm::Xxh3);
    for p in parts {
        sum.update(p);
    }
    sum.hex()
}

#[test]
fn store_mode_runs_both_stores_with_equal_results() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let args = [
        "--store",
        d,
        "--size",
        "4M",
        "--files",
        "3",
        "--object-size",
        "1M",
        "--count",
        "300",
        "--runs",
        "2",
        "--cache",
        "all",
        "--json",
        "-",
    ];
    let (out, table) = bench(&args);
    assert!(out.status.success(), "{table}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["source"], "store");
    let store = &report["store"];
    assert_eq!(store["ranges"], 300);
    assert_eq!(store["range_bytes"], 4096);
    assert_eq!(store["objects"], 3);
    assert_eq!(store["object_bytes"], 1 << 20);
    assert_eq!(store["ranges_file_bytes"], 4 << 20);
    assert_eq!(store["files_made"], 4);
    assert_eq!(store["temporary"], false);

    // What the stores must have returned, read here from the files.
    let big = std::fs::read(data.join(STORE_RANGES_FILE)).unwrap();
    assert_eq!(big.len(), 4 << 20);
    let offsets = random_offsets(big.len() as u64, 4096, 300, RANDOM_SEED);
    let ranges = xxh3(offsets.iter().map(|&o| &big[o as usize..o as usize + 4096]));
    let objects: Vec<Vec<u8>> = (0..3)
        .map(|i| std::fs::read(data.join(format!("objects/{i:02}.bin"))).unwrap())
        .collect();
    assert!(objects.iter().all(|o| o.len() == 1 << 20));
    assert!(objects[0] != objects[1], "each object has its own seed");
    let gets = xxh3(objects.iter().map(Vec::as_slice));

    let results = report["results"].as_array().unwrap();
    let caches: Vec<&str> = results
        .iter()
        .map(|c| c["cache"].as_str().unwrap())
        .collect();
    assert_eq!(caches, ["warm", "cold"]);
    for c in results {
        let methods = c["methods"].as_array().unwrap();
        let names: Vec<&str> = methods
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "get_ranges/LocalFileSystem",
                "get_ranges/RingStore",
                "get/LocalFileSystem",
                "get/RingStore"
            ]
        );
        for (m, expected) in methods.iter().zip([&ranges, &ranges, &gets, &gets]) {
            let name = m["name"].as_str().unwrap();
            assert_eq!(m["checksum"].as_str(), Some(expected.as_str()), "{name}");
            assert_eq!(m["samples"].as_array().unwrap().len(), 2, "{name}");
            assert!(m["median_ms"].as_f64().is_some_and(|x| x > 0.0), "{name}");
            let bytes = if name.starts_with("get_ranges") {
                300 * 4096
            } else {
                3 << 20
            };
            for s in m["samples"].as_array().unwrap() {
                assert_eq!(s["bytes"], bytes, "{name}");
            }
        }
        assert!(methods[0]["median_iops"].as_f64().is_some());
        for i in [1, 3] {
            let ratio = methods[i]["ratio_to_local"].as_f64().unwrap();
            let local = methods[i - 1]["median_ms"].as_f64().unwrap();
            let ring = methods[i]["median_ms"].as_f64().unwrap();
            assert!((ratio - local / ring).abs() < 1e-9 * ratio.max(1.0));
            assert!(methods[i - 1]["ratio_to_local"].is_null());
        }
    }
    for needle in [
        "cache warm:",
        "cache cold:",
        "LocalFileSystem ms",
        "RingStore ms",
        "get_ranges: 300 x 4096 B random",
        "get+bytes: 3 x 1.0 MiB at once",
        "(equal)",
        "user-crates/datafusion",
    ] {
        assert!(table.contains(needle), "{needle} missing:\n{table}");
    }

    // A second run finds the data there and makes nothing.
    let (out, table) = bench(&[
        "--store",
        d,
        "--size",
        "4M",
        "--files",
        "3",
        "--object-size",
        "1M",
        "--count",
        "300",
        "--runs",
        "1",
        "--cache",
        "warm",
        "--json",
        "-",
    ]);
    assert!(out.status.success(), "{table}");
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["store"]["files_made"], 0);
    assert_eq!(
        again["results"][0]["methods"][1]["checksum"].as_str(),
        Some(ranges.as_str())
    );
    assert!(Path::new(&data).join("objects/02.bin").exists());
}

#[test]
fn store_mode_refuses_what_it_cannot_measure() {
    for args in [
        &["--store", "--cache", "direct"][..],
        &["--store", "--pattern", "random"],
        &["--store", "--tree"],
        &["--object-size", "1M"],
    ] {
        let (out, table) = bench(args);
        assert!(!out.status.success(), "{args:?} ran:\n{table}");
    }
}
