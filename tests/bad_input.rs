//! Bad and unusual input from the command line: each gets a clear message (or the right bytes),
//! exit status 1 where something failed, and the other files are still processed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ringread(args: &[&OsStr]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ringread"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "a panic reached the user: {err}");
    out
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn dev_zero_with_max_bytes() {
    for backend in ["uring", "sync"] {
        let out = ringread(&[
            os("--backend"),
            os(backend),
            os("count"),
            os("--max-bytes"),
            os("3M"),
            os("/dev/zero"),
        ]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "      0 3145728 /dev/zero\n"
        );
    }
    // The same limit on a regular file gives the prefix, with and without O_DIRECT.
    let dir = tmp();
    let p = dir.path().join("f");
    let data: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i * 13 + i / 999) as u8)
        .collect();
    std::fs::write(&p, &data).unwrap();
    std::fs::write(dir.path().join("prefix"), &data[..300_001]).unwrap();
    let want = sha256sum(&dir.path().join("prefix"));
    for extra in [
        &[][..],
        &[os("--direct")][..],
        &[os("--threads"), os("1")][..],
    ] {
        let mut args = vec![
            os("sum"),
            os("-a"),
            os("sha256"),
            os("--max-bytes"),
            os("300001"),
        ];
        args.extend_from_slice(extra);
        args.push(p.as_os_str());
        let out = ringread(&args);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&want));
    }
}

#[test]
fn a_fifo_is_read_as_a_stream() {
    let dir = tmp();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(&fifo, &data).unwrap();
            data
        })
    };
    let out = ringread(&[os("cat"), fifo.as_os_str()]);
    let data = writer.join().unwrap();
    assert!(out.status.success());
    assert!(out.stdout == data, "the FIFO's bytes, in order");
}

#[test]
fn a_3_gib_sparse_file() {
    let dir = tmp();
    let p = dir.path().join("sparse");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(3 << 30).unwrap();
    // A few bytes in the middle, so the count is not all zeros.
    std::os::unix::fs::FileExt::write_at(&f, b"\n\n\n", (3 << 30) / 2).unwrap();
    drop(f);
    let wc = Command::new("wc").arg("-lc").arg(&p).output().unwrap();
    let out = ringread(&[os("count"), p.as_os_str()]);
    assert!(out.status.success());
    assert_eq!(out.stdout, wc.stdout);
}

#[test]
fn a_name_that_is_not_utf8() {
    let dir = tmp();
    let name = OsStr::from_bytes(b"caf\xe9-\xff.bin");
    let p: PathBuf = dir.path().join(name);
    std::fs::write(&p, b"bytes\n").unwrap();
    let mine = ringread(&[os("sum"), os("-a"), os("sha256"), p.as_os_str()]);
    let theirs = Command::new("sha256sum").arg(&p).output().unwrap();
    assert!(mine.status.success());
    assert_eq!(
        mine.stdout, theirs.stdout,
        "the raw name bytes, as sha256sum prints them"
    );
    // A missing one is named in the error, and the next file is still read.
    let missing = dir.path().join(OsStr::from_bytes(b"no-\xfe"));
    let out = ringread(&[os("count"), missing.as_os_str(), p.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 6"));
}

#[test]
fn invalid_reading_options_fail_before_any_io() {
    // A file that must not be touched: if it were read, its atime would not matter, but a FIFO
    // with no writer would block forever, so reaching I/O shows as a hang, not a pass.
    let dir = tmp();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (args, says) in [
        (&["--depth", "100000"][..], "depth"),
        (&["--chunk-size", "2G"], "1 GiB"),
        (&["--chunk-size", "1G", "--depth", "16000"], "memory"),
        (&["--threads", "0"], "threads"),
        (&["--direct", "--chunk-size", "5000"], "multiple of 4096"),
        (&["--max-bytes", "lots"], "not a size"),
    ] {
        let mut a: Vec<&OsStr> = args.iter().map(|s| os(s)).collect();
        a.push(os("count"));
        a.push(fifo.as_os_str());
        let out = ringread(&a);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
