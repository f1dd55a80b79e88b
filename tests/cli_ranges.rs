//! `ringread cat --range` and `--ranges-from`, checked against slices of the file as
//! `std::fs::read` gives it, with the reading options that must not change a byte.
//!
//! The file lives on the real disk (`CARGO_TARGET_TMPDIR`), so that `--direct` reaches the device.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;

mod common;

/// 2 MiB and a tail that is a multiple of nothing.
const SIZE: usize = (2 << 20) + 4321;

const OPTION_SETS: &[&[&str]] = &[
    &[],
    &["--chunk-size", "4K", "--depth", "64"],
    &["--direct", "--chunk-size", "64K", "--depth", "32"],
    &["--backend", "sync"],
    &["--backend", "pread", "--threads", "2"],
    &[
        "--no-register",
        "--backend",
        "uring",
        "--chunk-size",
        "4K",
        "--depth",
        "8",
    ],
];

fn ringread(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::cargo_bin("ringread")
        .unwrap()
        .current_dir(dir)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(out.status.code().is_some(), "{args:?}: killed by a signal");
    out
}

fn slice(data: &[u8], off: usize, len: usize) -> &[u8] {
    &data[off.min(data.len())..(off + len).min(data.len())]
}

#[test]
fn cat_ranges_writes_each_range_in_the_order_given() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = common::random_bytes(SIZE, 7);
    std::fs::write(dir.path().join("f"), &data).unwrap();
    // Offset 0, the last byte, across chunk and alignment edges, overlapping, duplicate, empty,
    // past the end; sizes as --chunk-size takes them.
    let asked: &[(&str, usize, usize)] = &[
        ("1M:4K", 1 << 20, 4096),
        ("0:1", 0, 1),
        ("2101472:1", SIZE - 1, 1),
        ("4095:2", 4095, 2),
        ("65000:70000", 65_000, 70_000),
        ("100:50", 100, 50),
        ("120:50", 120, 50),
        ("120:50", 120, 50),
        ("9:0", 9, 0),
        ("2101400:1M", 2_101_400, 1 << 20),
        ("3M:10", 3 << 20, 10),
    ];
    assert_eq!(SIZE - 1, 2_101_472);
    let want: Vec<u8> = asked
        .iter()
        .flat_map(|&(_, o, l)| slice(&data, o, l).to_vec())
        .collect();
    let list: String = asked.iter().map(|(s, _, _)| format!("{s}\n")).collect();
    std::fs::write(dir.path().join("list"), format!("{list}\n")).unwrap();
    for opts in OPTION_SETS {
        let mut args: Vec<&str> = opts.to_vec();
        args.push("cat");
        for (s, _, _) in asked {
            args.extend(["--range", s]);
        }
        args.push("f");
        let out = ringread(dir.path(), &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == want, "{args:?}: other bytes than the ranges'");

        let mut args: Vec<&str> = opts.to_vec();
        args.extend([
            "cat",
            "--ranges-from",
            "list",
            "--merge-gap",
            "none",
            "f",
            "f",
        ]);
        let out = ringread(dir.path(), &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == [&want[..], &want[..]].concat(),
            "{args:?}: bytes differ"
        );
    }
}

#[test]
fn bad_ranges_are_refused_with_the_reason() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(dir.path().join("f"), b"hello").unwrap();
    std::fs::write(dir.path().join("list"), "0:1\nbad\n").unwrap();
    let out = ringread(dir.path(), &["cat", "--range", "12", "f"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OFFSET:LENGTH"));
    let out = ringread(dir.path(), &["cat", "--ranges-from", "list", "f"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("list:2"), "{err}");
    let out = ringread(dir.path(), &["cat", "--range", "1:3", "missing", "f"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"ell");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

#[test]
fn cat_ranges_of_several_files_writes_them_in_order_and_names_the_ones_that_fail() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sizes = [0usize, 1, 4095, 4097, 70_000, SIZE];
    for (i, &n) in sizes.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("f{i}")),
            common::random_bytes(n, 40 + i as u64),
        )
        .unwrap();
    }
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let names = ["f0", "f1", "missing", "f2", "sub", "f3", "f4", "f5"];
    let asked = [(0, 10), (4000, 200), (4096, 1), (60_000, 20_000), (9, 0)];
    let mut want = Vec::new();
    for name in names {
        if let Ok(data) = std::fs::read(dir.path().join(name)) {
            for (o, l) in asked {
                want.extend_from_slice(slice(&data, o, l));
            }
        }
    }
    for opts in OPTION_SETS {
        let mut args: Vec<&str> = opts.to_vec();
        args.push("cat");
        let ranges: Vec<String> = asked.iter().map(|(o, l)| format!("{o}:{l}")).collect();
        for r in &ranges {
            args.extend(["--range", r]);
        }
        args.extend(names);
        let out = ringread(dir.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("missing"), "{args:?}: {err}");
        assert!(err.contains("sub"), "{args:?}: {err}");
        assert!(out.stdout == want, "{args:?}: other bytes than the ranges'");
    }
}

#[test]
fn a_write_error_stops_cat_ranges_of_several_files_with_the_reason() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(dir.path().join(name), common::random_bytes(100_000, 9)).unwrap();
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringread"))
        .current_dir(dir.path())
        .args([
            "cat", "--range", "0:10K", "--range", "50K:1K", "a", "b", "c",
        ])
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("write error"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.lines().count(), 1, "one message, not one a file: {err}");
}

/// Runs a peer tool in `dir`, failing with the package to install when it is missing.
fn peer(dir: &Path, tool: &str, package: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(tool)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} ({e}): install Debian's package {package}"))
}

/// `(lines, bytes, name)` of each line of `wc -lc`'s layout, whatever the column width.
fn counts(out: &[u8]) -> Vec<(u64, u64, String)> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let mut n = || w.next().unwrap_or_default().to_string();
            (n().parse().unwrap(), n().parse().unwrap(), n())
        })
        .collect()
}

#[test]
fn sum_and_count_over_ranges_equal_the_tools_on_the_bytes_of_the_ranges() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // The peers read, under the same names, files holding just the bytes of the ranges.
    let cut = dir.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    let sizes = [0usize, 1, 4095, 4097, 70_000, SIZE];
    let asked = [
        (4000, 200),
        (0, 10),
        (4096, 1),
        (60_000, 20_000),
        (9, 0),
        (4000, 200),
    ];
    for (i, &n) in sizes.iter().enumerate() {
        // Some with newlines in them, for the counts.
        let mut data = common::random_bytes(n, 60 + i as u64);
        for b in data.iter_mut().step_by(97) {
            *b = b'\n';
        }
        let name = format!("f{i}");
        std::fs::write(dir.path().join(&name), &data).unwrap();
        let mut bytes = Vec::new();
        for (o, l) in asked {
            bytes.extend_from_slice(slice(&data, o, l));
        }
        std::fs::write(cut.join(&name), bytes).unwrap();
    }
    for d in [dir.path(), &cut] {
        std::fs::create_dir(d.join("sub")).unwrap();
    }
    let ranges: Vec<String> = asked.iter().map(|(o, l)| format!("{o}:{l}")).collect();
    let all = ["f0", "f1", "missing", "f2", "sub", "f3", "f4", "f5"];
    let tools: &[(&str, &str, &str, &[&str])] = &[
        ("sha256", "sha256sum", "coreutils", &[]),
        ("blake3", "b3sum", "b3sum", &[]),
        ("xxh3", "xxhsum", "xxhash", &["-H3"]),
        ("xxh128", "xxhsum", "xxhash", &["-H2"]),
    ];
    for opts in OPTION_SETS {
        // Several files (read in one call) and one file (read alone).
        for names in [&all[..], &["f5"][..]] {
            for (algo, tool, package, tool_args) in tools {
                let mut args: Vec<&str> = opts.to_vec();
                args.extend(["sum", "-a", algo]);
                for r in &ranges {
                    args.extend(["--range", r]);
                }
                args.extend(names);
                let ours = ringread(dir.path(), &args);
                let mut theirs_args = tool_args.to_vec();
                theirs_args.extend(names);
                let theirs = peer(&cut, tool, package, &theirs_args);
                // A line for each file that is read (all but `missing` and `sub`).
                let lines = ours.stdout.split(|&b| b == b'\n').count() - 1;
                assert_eq!(lines, names.len().min(6), "{args:?}");
                assert_eq!(
                    String::from_utf8_lossy(&ours.stdout),
                    String::from_utf8_lossy(&theirs.stdout),
                    "{args:?}: {}",
                    String::from_utf8_lossy(&ours.stderr)
                );
                assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
            }
            let mut args: Vec<&str> = opts.to_vec();
            args.push("count");
            for r in &ranges {
                args.extend(["--range", r]);
            }
            args.extend(names);
            let ours = ringread(dir.path(), &args);
            let mut wc_args = vec!["-lc"];
            wc_args.extend(names);
            let theirs = peer(&cut, "wc", "coreutils", &wc_args);
            assert_eq!(counts(&ours.stdout), counts(&theirs.stdout), "{args:?}");
            assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
        }
    }
    // A check list is read whole: ranges do not apply to it.
    let out = ringread(dir.path(), &["sum", "-c", "--range", "0:1", "f1"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--range"));
}
