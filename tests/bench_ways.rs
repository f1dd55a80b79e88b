//! `bench`'s ways of reading a file, each against the same checksum, and `bench --peers`.
//!
//! Every way of `ringread::bench::METHODS` (ringread's engine, the sync path, the pread pool,
//! tokio-fs, tokio-uring, compio, monoio, glommio, mmap, the async stream) reads files whose sizes
//! straddle the chunk size (0, 1, chunk - 1, chunk, chunk + 1, 64 MiB) through the page cache and
//! with `O_DIRECT`, and must deliver exactly the bytes `std::fs::read` returns: their XXH3 is
//! compared, as the benchmark's checksum column does.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ringread::bench::{way, METHODS};
use ringread::processor::{Algorithm, Checksum};
use ringread::{Chunk, Processor, ReadOptions};

const CHUNK: usize = 64 * 1024;
const DEPTH: usize = 4;
const SIZES: [usize; 6] = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 64 << 20];

/// A directory on a disk (not tmpfs, which refuses `O_DIRECT`), kept for the test binary's life.
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("ringread-bench-ways-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep()
    })
}

/// Bytes that differ at every offset (xorshift), so a chunk out of place changes the hash.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.extend_from_slice(&state.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Writes `data` and syncs it, as the engine's tests do: `O_DIRECT` then reads it from the disk.
fn write_synced(path: &Path, data: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn xxh3(data: &[u8]) -> String {
    let mut sum = Checksum::new(Algorithm::Xxh3);
    sum.begin().unwrap();
    if !data.is_empty() {
        sum.process(&Chunk::new(0, data)).unwrap();
    }
    sum.finish().unwrap();
    sum.hex()
}

#[test]
fn every_way_reads_the_same_bytes_on_size_edges_buffered_and_direct() {
    let files: Vec<(PathBuf, String)> = SIZES
        .iter()
        .map(|&size| {
            let path = dir().join(format!("f-{size}"));
            let data = random_bytes(size, size as u64 + 7);
            write_synced(&path, &data);
            (
                path,
                xxh3(&std::fs::read(dir().join(format!("f-{size}"))).unwrap()),
            )
        })
        .collect();
    for direct in [false, true] {
        let opts = ReadOptions::builder()
            .chunk_size(CHUNK)
            .depth(DEPTH)
            .direct(direct)
            .build()
            .unwrap();
        for name in METHODS {
            let Some(method) = way(name, &opts, direct).unwrap() else {
                assert!(
                    direct && matches!(name, "tokio-fs" | "mmap"),
                    "{name} refused to read (direct: {direct})"
                );
                continue;
            };
            assert_eq!(method.name(), name);
            for (path, want) in &files {
                if direct {
                    // As `bench` does before a direct run.
                    ringread::bench::drop_cache(path).unwrap();
                }
                let mut sum = Checksum::new(Algorithm::Xxh3);
                let bytes = method.read(path, &mut sum).unwrap_or_else(|e| {
                    panic!("{name} (direct: {direct}) {}: {e}", path.display())
                });
                let size = std::fs::metadata(path).unwrap().len();
                assert_eq!(bytes, size, "{name} (direct: {direct}) {}", path.display());
                assert_eq!(
                    &sum.hex(),
                    want,
                    "{name} (direct: {direct}) {}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_runtimes_say_what_they_cannot_do() {
    let opts = ReadOptions::builder()
        .chunk_size(CHUNK)
        .depth(DEPTH)
        .build()
        .unwrap();
    for name in ["compio", "monoio", "glommio"] {
        let notice = way(name, &opts, false).unwrap().unwrap().notice().unwrap();
        assert!(notice.contains("calling thread"), "{name}: {notice}");
    }
    let glommio = way("glommio", &opts, false)
        .unwrap()
        .unwrap()
        .notice()
        .unwrap();
    assert!(glommio.contains("O_DIRECT"), "{glommio}");
    assert!(way("no-such-way", &opts, false).is_err());
}

/// `bench --peers` with PATH holding only `wc` (and this test's own shell tools): the missing
/// peers are said and skipped, `wc -l` and ringread's own commands run, and they agree.
#[test]
fn peers_missing_are_said_and_skipped_and_the_run_goes_on() {
    let bin = dir().join("only-wc");
    std::fs::create_dir_all(&bin).unwrap();
    let wc = ["/usr/bin/wc", "/bin/wc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("wc (coreutils) is installed");
    let _ = std::os::unix::fs::symlink(wc, bin.join("wc"));
    let file = dir().join("peers-input");
    let mut data = random_bytes(3 << 20, 99);
    for (i, b) in data.iter_mut().enumerate() {
        if i % 100 == 0 {
            *b = b'\n';
        }
    }
    std::fs::write(&file, &data).unwrap();
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
        .env("PATH", &bin)
        .args([
            "bench",
            "--backends",
            "sync",
            "--runs",
            "1",
            "--cache",
            "warm",
            "--peers",
        ])
        .arg(&file)
        .args(["--json", "-"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for missing in ["xxhsum", "b3sum", "sha256sum", "fio"] {
        assert!(
            stderr.contains(&format!("peer {missing} not found on PATH; skipped")),
            "{missing}: {stderr}"
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let methods = report["results"][0]["methods"].as_array().unwrap();
    let row = |name: &str| {
        methods
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {methods:?}"))
    };
    for missing in ["$ xxhsum -H3", "$ b3sum", "$ sha256sum"] {
        let skipped = row(missing)["skipped"].as_str().unwrap();
        assert!(
            skipped.contains("not found on PATH"),
            "{missing}: {skipped}"
        );
    }
    // What ran, ran once each, on every byte, and agrees.
    for ran in [
        "sync",
        "$ ringread sum -a xxh3",
        "$ ringread count",
        "$ wc -l",
    ] {
        let samples = row(ran)["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 1, "{ran}");
        assert_eq!(samples[0]["bytes"], data.len() as u64, "{ran}");
        assert!(samples[0]["cpu_seconds"].as_f64().unwrap() >= 0.0, "{ran}");
    }
    let lines = data.iter().filter(|&&b| b == b'\n').count().to_string();
    assert_eq!(row("$ wc -l")["checksum"], lines.as_str());
    assert_eq!(row("$ ringread count")["checksum"], lines.as_str());
    assert_eq!(
        row("$ ringread sum -a xxh3")["checksum"],
        row("sync")["checksum"]
    );
    assert_eq!(
        row("$ ringread sum -a xxh3")["checksum"],
        xxh3(&data).as_str()
    );
    let ratio = row("$ ringread count")["ratio_to_peer"].as_f64();
    assert!(ratio.is_some_and(|r| r > 0.0), "{ratio:?}");
    // The table says the same.
    assert!(stderr.contains("$ wc -l"), "{stderr}");
}

/// A runtime that cannot run here is said and skipped, and the benchmark goes on: as an
/// unprivileged user with 64 KiB of lockable memory (run through `setpriv`, as root), glommio
/// cannot lock its I/O memory.
#[test]
fn a_runtime_that_cannot_run_here_is_said_and_skipped() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "this test drops to an unprivileged user and must run as root (CI does)"
    );
    // Not in the test's private directory (0700): the unprivileged user must read the file.
    let file = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-ways-memlock-{}", std::process::id()));
    write_synced(&file, &random_bytes(1 << 20, 5));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg("ulimit -l 64 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_ringread"))
        .args([
            "bench",
            "--backends",
            "sync,glommio",
            "--runs",
            "1",
            "--json",
            "-",
        ])
        .arg(&file)
        .output()
        .expect("setpriv (util-linux)");
    let _ = std::fs::remove_file(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("glommio could not run here"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let methods = report["results"][0]["methods"].as_array().unwrap();
    let skipped = methods[1]["skipped"].as_str().unwrap();
    assert!(skipped.contains("glommio executor"), "{skipped}");
    assert_eq!(methods[0]["samples"].as_array().unwrap().len(), 1);
}

/// `--cache dontcache`: each run starts cold; ringread's ways read with `RWF_DONTCACHE` and leave
/// (almost) nothing cached, a way without it (tokio::fs) leaves what it read; each way's
/// `residency_after` says so, and the table's last line too.
#[test]
fn the_dontcache_state_reports_what_each_way_left_cached() {
    let file = dir().join("dontcache-input");
    write_synced(&file, &random_bytes(16 << 20, 5));
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
        .args([
            "bench",
            "--backends",
            "sync,uring-fixed,stream,tokio-fs",
            "--runs",
            "1",
            "--cache",
            "dontcache",
        ])
        .arg(&file)
        .args(["--json", "-"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = &report["results"][0];
    assert_eq!(result["cache"], "dontcache");
    let before = result["residency_before"].as_f64().unwrap();
    assert!(before < 0.05, "not cold before a run: {before}");
    let left = |name: &str| {
        let m = result["methods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        m["residency_after"].as_f64().unwrap()
    };
    for ours in ["sync", "uring-fixed", "stream"] {
        assert!(left(ours) <= 0.02, "{ours} left {} cached", left(ours));
    }
    assert!(left("tokio-fs") > 0.9, "tokio-fs left {}", left("tokio-fs"));
    assert!(
        stderr.contains("left in the page cache after a run: sync "),
        "{stderr}"
    );
}

/// `--pattern random`: every way reads the same blocks (equal checksums, or the command fails),
/// warm, cold and with `O_DIRECT` (the async `read-at` way too), and reports IOPS, p50/p99 latency and CPU
/// per 10k reads for each, the engine's `ranges` ways included; `--seconds` sets the reads per run
/// from a time bound, and is refused beside `--count`.
#[test]
fn the_random_pattern_times_every_way_warm_cold_and_direct() {
    let file = dir().join("random-input");
    write_synced(&file, &random_bytes(8 << 20, 11));
    let run = |extra: &[&str]| {
        assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
            .args([
                "bench",
                "--pattern",
                "random",
                "--runs",
                "2",
                "--tasks",
                "8",
            ])
            .args(["--cache", "all", "--depth", "16"])
            .args(extra)
            .arg(&file)
            .args(["--json", "-"])
            .timeout(std::time::Duration::from_secs(300))
            .output()
            .unwrap()
    };
    let out = run(&["--count", "3000"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "warm, cold and direct");
    for result in results {
        let cache = result["cache"].as_str().unwrap();
        let methods = result["methods"].as_array().unwrap();
        let mut sums = std::collections::BTreeSet::new();
        for m in methods {
            let name = m["name"].as_str().unwrap();
            if !m["skipped"].is_null() {
                assert_eq!(cache, "direct", "{name} skipped {cache}: {}", m["skipped"]);
                assert!(
                    matches!(name, "tokio-fs" | "mmap"),
                    "{name} skipped with O_DIRECT: {}",
                    m["skipped"]
                );
                continue;
            }
            assert!(m["median_iops"].as_f64().unwrap() > 0.0, "{cache} {name}");
            assert!(
                m["cpu_ms_per_10k_reads"].as_f64().is_some(),
                "{cache} {name}"
            );
            let (p50, p99) = (m["p50_us"].as_f64(), m["p99_us"].as_f64());
            assert!(
                p50.is_some_and(|p| p > 0.0) && p99 >= p50,
                "{cache} {name}: p50 {p50:?} p99 {p99:?}"
            );
            sums.insert(m["checksum"].as_str().unwrap().to_string());
        }
        assert_eq!(
            sums.len(),
            1,
            "{cache}: the ways read other blocks: {sums:?}"
        );
    }

    let out = run(&["--seconds", "0.05", "--backends", "ranges,read-at,pread"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes = report["notes"].to_string();
    assert!(notes.contains("--seconds 0.05"), "{notes}");

    let out = run(&["--seconds", "1", "--count", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}
