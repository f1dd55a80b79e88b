//! Many files at once from the command line: `-r`, `--files-from`, `--files0-from`, against
//! `xargs -0 sha256sum` / `wc -lc` on the same list in the same order, byte for byte.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

fn ringread(dir: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_ringread")).args(args),
        dir,
        input,
    )
}

fn sh(dir: &Path, script: &str) -> Output {
    run(Command::new("sh").args(["-c", script]), dir, None)
}

fn run(cmd: &mut Command, dir: &Path, input: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or_default()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    out
}

/// A tree with sizes on every edge, odd names, and things a walk must skip.
fn tree(root: &Path) {
    let chunk = 256 * 1024;
    let sizes = [0, 1, 4095, 4096, 4097, chunk - 1, chunk, chunk + 1, 5 << 20];
    for d in 0..6 {
        let dir = root.join(format!("d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for (i, size) in sizes.iter().enumerate() {
            let data = common::random_bytes(*size, (d * 100 + i) as u64);
            fs::write(dir.join(format!("f {i}")), data).unwrap();
        }
    }
    fs::write(root.join("new\nline"), b"a\nb\n").unwrap();
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"bad \xff name")),
        b"x",
    )
    .unwrap();
    fs::write(root.join("back\\slash"), b"y\n").unwrap();
    std::os::unix::fs::symlink("d0/f 1", root.join("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink(".", root.join("d1/loop")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
}

#[test]
fn sum_r_and_files0_from_are_xargs_sha256sum_byte_for_byte() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    tree(dir.path());
    let d = dir.path();
    let want = sh(
        d,
        "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum",
    );
    assert!(want.status.success());
    for opts in [&[][..], &["--backend", "sync"], &["--chunk-size", "4K"]] {
        let mut args = vec!["sum", "-a", "sha256", "-r", "."];
        args.extend_from_slice(opts);
        let got = ringread(d, &args, None);
        assert_eq!(
            got.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert!(
            got.stdout == want.stdout,
            "-r {opts:?}: differs from xargs sha256sum"
        );
        let list = sh(d, "find . -type f -print0 | LC_ALL=C sort -z").stdout;
        let mut args = vec!["sum", "-a", "sha256", "--files0-from", "-"];
        args.extend_from_slice(opts);
        let got = ringread(d, &args, Some(&list));
        assert!(got.stdout == want.stdout, "--files0-from {opts:?}");
    }
    // BLAKE3 against b3sum (which prints a name that is not UTF-8 lossily: that line left out).
    let keep = |o: Output| -> Vec<Vec<u8>> {
        o.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.ends_with(b" name"))
            .map(<[u8]>::to_vec)
            .collect()
    };
    let want = keep(sh(
        d,
        "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 b3sum",
    ));
    assert_eq!(keep(ringread(d, &["sum", "-r", "."], None)), want);
    // count against wc, names one a line (the names with a newline left out).
    let want = sh(
        d,
        "find . -type f ! -name '*\n*' | LC_ALL=C sort > list; tr '\\n' '\\0' < list | xargs -0 wc -lc",
    );
    let got = ringread(d, &["count", "--files-from", "list"], None);
    assert!(
        got.stdout == want.stdout,
        "count:\n{}\nwc:\n{}",
        String::from_utf8_lossy(&got.stdout),
        String::from_utf8_lossy(&want.stdout)
    );
}

#[test]
fn a_walk_skips_fifos_and_links_and_reports_loops_with_l() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    tree(dir.path());
    let d = dir.path();
    let out = ringread(d, &["sum", "-r", "-v", "."], None);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("./fifo: not a regular file"), "{err}");
    assert!(err.contains("./link: a symbolic link, skipped"), "{err}");
    // -L follows the link to a file, reports the loop and the dangling link, and goes on.
    let out = ringread(d, &["sum", "-r", "-L", "-a", "sha256", "."], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loop"), "{err}");
    assert!(err.contains("dangling"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  ./link\n"), "{text}");
    assert!(
        text.contains("  ./d5/f 8\n"),
        "the walk stopped early: {text}"
    );
}

#[test]
fn an_unreadable_directory_is_reported_and_the_walk_goes_on() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let d = dir.path();
    fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    for sub in ["a", "b", "c"] {
        fs::create_dir(d.join(sub)).unwrap();
        fs::write(d.join(sub).join("f"), sub).unwrap();
        fs::set_permissions(d.join(sub).join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    }
    fs::set_permissions(d.join("b"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_ringread"))
            .args(["sum", "-a", "sha256", "-r", "."]),
        d,
        None,
    );
    fs::set_permissions(d.join("b"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("./b: Permission denied"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("./a/f") && text.contains("./c/f"), "{text}");
}

#[test]
fn ulimit_n_64_with_thousands_of_files_gives_the_same_output() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let d = dir.path();
    for i in 0..3000 {
        let sub = d.join(format!("{}", i % 10));
        fs::create_dir_all(&sub).unwrap();
        fs::write(
            sub.join(format!("{i}")),
            common::random_bytes(i % 5000, i as u64),
        )
        .unwrap();
    }
    let want = ringread(d, &["sum", "-a", "xxh3", "-r", "."], None);
    assert_eq!(want.status.code(), Some(0));
    let got = sh(
        d,
        &format!(
            "ulimit -n 64 && {} sum -a xxh3 -r .",
            env!("CARGO_BIN_EXE_ringread")
        ),
    );
    assert_eq!(
        got.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(got.stdout == want.stdout);
    let peer = sh(
        d,
        "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 xxhsum -H3",
    );
    let peer = String::from_utf8_lossy(&peer.stdout);
    let ours = String::from_utf8_lossy(&got.stdout);
    // xxhsum 0.8.1 writes XXH3 as `XXH3 (name) = hex`; compare the digests in order.
    let digests =
        |s: &str, f: fn(&str) -> Option<String>| s.lines().filter_map(f).collect::<Vec<_>>();
    let a = digests(&ours, |l| l.split_whitespace().next().map(str::to_string));
    let b = digests(&peer, |l| l.rsplit(' ').next().map(str::to_string));
    assert_eq!(a, b);
}
