//! Load: one invocation over 10,000 small files, and one 8 GiB sparse file. Each finishes with the
//! right numbers, its peak RSS stays within the buffer budget plus a small constant (printed), and no
//! file descriptor leaks.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

mod common;
use common::open_fds;

/// One test at a time: the descriptor count is the whole process's.
static SERIAL: Mutex<()> = Mutex::new(());

/// The most the process may hold beyond its buffers: the binary, its libraries, the heap for 10,000
/// names. Measured at 5-7 MiB here (the test prints it).
const CONSTANT: u64 = 32 << 20;

/// Runs ringread with `args` under GNU time, stdout to a file; returns (stdout, exit code, peak RSS
/// in bytes). GNU time, not wait4 from here: a child of this (large) test process is charged the
/// test's own resident memory at exec, which would hide ringread's.
fn run_measured(args: &[&std::ffi::OsStr], dir: &Path) -> (Vec<u8>, i32, u64) {
    let out_path = dir.join("stdout");
    let rss_path = dir.join("rss");
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_path)
        .arg(env!("CARGO_BIN_EXE_ringread"))
        .args(args)
        .stdout(Stdio::from(File::create(&out_path).unwrap()))
        .stderr(Stdio::inherit())
        .status()
        .expect("GNU time (Debian package `time`; scripts/setup.sh installs it)");
    let kib: u64 = std::fs::read_to_string(&rss_path)
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("GNU time's %M");
    (
        std::fs::read(&out_path).unwrap(),
        status.code().expect("ringread exited (not killed)"),
        kib * 1024,
    )
}

fn wc(args: &[PathBuf]) -> Vec<u8> {
    let out = Command::new("wc")
        .arg("-lc")
        .args(args)
        .output()
        .expect("wc (coreutils)");
    out.stdout
}

#[test]
fn ten_thousand_small_files_in_one_invocation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut files = Vec::with_capacity(10_000);
    for i in 0..10_000usize {
        let p = dir.path().join(format!("f{i:05}"));
        let len = (i * 7919) % 9000;
        let data: Vec<u8> = (0..len)
            .map(|j| if j % 61 == 0 { b'\n' } else { b'x' })
            .collect();
        std::fs::write(&p, data).unwrap();
        files.push(p);
    }
    for (opts, budget) in [
        (&["--chunk-size", "256K", "--depth", "4"][..], 1u64 << 20),
        (&["--chunk-size", "1M", "--depth", "16"][..], 16 << 20),
    ] {
        let mut args: Vec<&std::ffi::OsStr> = opts.iter().map(|s| s.as_ref()).collect();
        args.push("count".as_ref());
        args.extend(files.iter().map(|p| p.as_os_str()));
        let (stdout, code, rss) = run_measured(&args, dir.path());
        println!("10,000 files, {opts:?}: peak RSS {rss} bytes, buffer budget {budget}");
        assert_eq!(code, 0);
        assert!(stdout == wc(&files), "the counts and the total equal wc's");
        assert!(
            rss <= budget + CONSTANT,
            "peak RSS {rss} above budget {budget} + {CONSTANT}"
        );
    }
}

#[test]
fn an_8_gib_sparse_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let p = dir.path().join("sparse");
    let f = File::create(&p).unwrap();
    f.set_len(8 << 30).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"\nend\n", (8 << 30) - 5).unwrap();
    drop(f);
    let (stdout, code, rss) = run_measured(&["count".as_ref(), p.as_os_str()], dir.path());
    println!(
        "8 GiB sparse: peak RSS {rss} bytes, buffer budget {}",
        1 << 20
    );
    assert_eq!(code, 0);
    assert_eq!(stdout, wc(&[p]));
    assert!(rss <= (1 << 20) + CONSTANT, "peak RSS {rss}");
}

#[test]
fn no_descriptor_leaks_over_ten_thousand_reads() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let p = dir.path().join("small");
    std::fs::write(&p, vec![b'a'; 70_000]).unwrap();
    let missing = dir.path().join("missing");
    for direct in [false, true] {
        let reader = ringread::Reader::new(
            ringread::ReadOptions::builder()
                .chunk_size(16 << 10)
                .depth(4)
                .direct(direct)
                .build()
                .unwrap(),
        );
        // Warm up: the reader's rings are made on first use and kept.
        let mut n = ringread::processor::ByteCount::default();
        reader.read(&p, &mut n).unwrap();
        let before = open_fds();
        for i in 0..10_000 {
            let mut n = ringread::processor::ByteCount::default();
            if i % 100 == 0 {
                assert!(reader.read(&missing, &mut n).is_err());
            } else {
                assert_eq!(reader.read(&p, &mut n).unwrap().bytes, 70_000);
            }
        }
        assert_eq!(open_fds(), before, "descriptors leaked (direct: {direct})");
    }
}

/// A cached file hashed in place: its pages are unmapped from the process as they are done with,
/// so the peak resident memory stays far below the file's size (b3sum's is the file's size).
#[test]
fn a_file_hashed_in_place_is_not_resident_in_the_process() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let p = dir.path().join("cached");
    let mut data = vec![0u8; 256 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    std::fs::write(&p, &data).unwrap();
    assert_eq!(std::fs::read(&p).unwrap().len(), data.len());
    // It goes in place (the run measured below, right after, says the same on its stderr).
    let route = Command::new(env!("CARGO_BIN_EXE_ringread"))
        .args(["sum", "-a", "xxh3", "-v"])
        .arg(&p)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&route.stderr);
    assert!(said.contains("by in place"), "{said}");
    let (stdout, code, rss) = run_measured(
        &[
            "sum".as_ref(),
            "-a".as_ref(),
            "xxh3".as_ref(),
            "-v".as_ref(),
            p.as_os_str(),
        ],
        dir.path(),
    );
    println!("256 MiB in place: peak RSS {rss} bytes");
    assert_eq!(code, 0);
    let want = format!(
        "XXH3 ({}) = {:016x}\n",
        p.display(),
        xxhash_rust::xxh3::xxh3_64(&data)
    );
    assert_eq!(String::from_utf8_lossy(&stdout), want);
    // Two lanes, each with at most 5 chunks of 2 MiB mapped in (4 prepared ahead, 1 handed over).
    assert!(rss <= (20 << 20) + CONSTANT, "peak RSS {rss}");
}
