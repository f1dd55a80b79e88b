//! The `ringread` command, checked against the tools it imitates: `sha256sum`, `b3sum`, `xxhsum`,
//! `wc -lc` and `cat`.
//!
//! Every comparison runs ringread and the peer tool in the same directory, on the same relative names,
//! and compares standard output byte for byte. A peer tool that is not installed fails the test with
//! the Debian package to install: these tests never skip.
//!
//! Test files live in a directory on the real disk (`CARGO_TARGET_TMPDIR`), so that `--direct` and
//! io_uring see an ordinary filesystem. Every invocation of ringread goes through [`sane`], which
//! fails the test if standard error mentions a panic or the process died of a signal.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

const MIB: usize = 1024 * 1024;

/// The longest any one process may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The sizes every comparison covers: empty, one byte, around a page, around the default chunk
/// (256 KiB), and a few MiB that are a multiple of nothing.
const SIZES: &[usize] = &[0, 1, 4095, 4096, 4097, 262_143, 262_145, 5 * MIB + 12_345];

/// Ways of reading that must not change a single output byte.
const OPTION_SETS: &[&[&str]] = &[
    &[],
    &["--chunk-size", "4K", "--depth", "1"],
    &["--direct", "--chunk-size", "64K", "--depth", "64"],
    &["--no-register", "--backend", "uring"],
    &["--backend", "sync"],
    &["--threads", "1"],
    &["--chunk-size", "1000", "--depth", "3"],
    &["--dontcache"],
    &[
        "--dontcache",
        "--backend",
        "pread",
        "--chunk-size",
        "4K",
        "--depth",
        "3",
    ],
    &["--dontcache", "--backend", "sync"],
    // The default processes cached files of 1 MiB or more in place (sum, count): copied here.
    &["--no-mmap"],
];

/// The unprivileged user the permission and memlock tests run as, through setpriv.
const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The binary under test.
fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringread"))
}

/// A fresh directory on the real disk, traversable by every user (for the setpriv tests).
fn fixture() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cli-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("cannot make a temporary directory in CARGO_TARGET_TMPDIR");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod 0755 tempdir");
    dir
}

fn write_file(dir: &Path, name: &str, data: &[u8]) {
    let path = dir.join(name);
    fs::write(&path, data).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod 0644");
}

/// Deterministic pseudo-random bytes (xorshift64), different for each seed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Text-like bytes: letters, with a newline about every 40 bytes.
fn text_bytes(len: usize, seed: u64) -> Vec<u8> {
    random_bytes(len, seed)
        .into_iter()
        .map(|b| if b % 40 == 0 { b'\n' } else { b'a' + b % 26 })
        .collect()
}

/// Writes one random file per entry of [`SIZES`]; returns the names and contents, in order.
fn sized_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    SIZES
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let name = format!("size-{size}");
            let data = random_bytes(size, i as u64 + 1);
            write_file(dir, &name, &data);
            (name, data)
        })
        .collect()
}

fn names_of(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|(n, _)| n.as_str()).collect()
}

/// At most 1500 characters of `bytes`, for messages.
fn head_of(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(1500)]).into_owned();
    if bytes.len() > 1500 {
        format!("{s}[... {} more bytes]", bytes.len() - 1500)
    } else {
        s
    }
}

fn show(out: &Output) -> String {
    format!(
        "status: {}\nstdout ({} bytes):\n{}\nstderr:\n{}",
        out.status,
        out.stdout.len(),
        head_of(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails if `out` shows a panic or a death by signal; every ringread invocation goes through here.
fn sane(what: &str, out: Output) -> Output {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked"),
        "{what}: panicked\n{}",
        show(&out)
    );
    assert!(
        out.status.code().is_some(),
        "{what}: killed by a signal\n{}",
        show(&out)
    );
    out
}

fn package_of(tool: &str) -> &'static str {
    match tool {
        "sha256sum" | "wc" | "cat" => "coreutils",
        "b3sum" => "b3sum",
        "xxhsum" => "xxhash",
        "setpriv" => "util-linux",
        "fincore" => "util-linux-extra",
        "sh" => "dash",
        _ => "(unknown)",
    }
}

/// Runs `cmd` (with `input` on standard input, if any); a missing program fails the test clearly.
fn run(mut cmd: Command, input: Option<&[u8]>, what: &str) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.timeout(TIMEOUT);
    if let Some(i) = input {
        cmd.write_stdin(i.to_vec());
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not installed (Debian package `{}`): these tests compare ringread with it \
             and never skip",
            package_of(&program)
        ),
        Err(e) => panic!("{what}: cannot run {program}: {e}"),
    };
    sane(what, out)
}

fn describe(program: &str, args: &[&str]) -> String {
    format!("`{program} {}`", args.join(" ").escape_debug())
}

/// `ringread ARGS` in `dir`.
fn ringread(dir: &Path, args: &[&str]) -> Output {
    ringread_stdin(dir, args, None)
}

/// `ringread ARGS` in `dir`, with `input` piped to standard input.
fn ringread_stdin(dir: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut cmd = Command::cargo_bin("ringread").expect("the ringread binary is built");
    cmd.current_dir(dir).args(args);
    run(cmd, input, &describe("ringread", args))
}

/// A peer tool, `tool ARGS` in `dir`.
fn peer(dir: &Path, tool: &str, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(tool);
    cmd.current_dir(dir).args(args);
    run(cmd, input, &describe(tool, args))
}

/// A peer run that must succeed; its output.
fn peer_ok(dir: &Path, tool: &str, args: &[&str], input: Option<&[u8]>) -> Output {
    let out = peer(dir, tool, args, input);
    assert!(
        out.status.success(),
        "{} failed\n{}",
        describe(tool, args),
        show(&out)
    );
    out
}

/// Whether this process runs as root (owner of /proc/self is the effective user).
fn is_root() -> bool {
    fs::metadata("/proc/self").expect("/proc/self").uid() == 0
}

/// `PROGRAM ARGS` in `dir` as user 65534 (through setpriv when root; directly otherwise).
fn as_nobody(dir: &Path, program: &Path, args: &[&str]) -> Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(NOBODY).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.current_dir(dir).args(args);
    let what = format!(
        "{} as uid 65534",
        describe(&program.to_string_lossy(), args)
    );
    run(cmd, None, &what)
}

/// `ringread ARGS` in `dir` as user 65534.
fn ringread_as_nobody(dir: &Path, args: &[&str]) -> Output {
    as_nobody(dir, &bin(), args)
}

/// Fails unless every user can reach `path` (each directory above it has the x bit for others).
fn assert_reachable_by_others(path: &Path) {
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let m = fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if m.is_dir() {
            assert!(
                m.mode() & 0o001 != 0,
                "{} (mode {:o}) cannot be traversed by other users, so user 65534 cannot reach {}",
                p.display(),
                m.mode() & 0o7777,
                path.display()
            );
        }
    }
}

fn assert_success(what: &str, out: &Output) {
    assert!(out.status.success(), "{what} failed\n{}", show(out));
}

fn assert_code(what: &str, out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: wrong exit status\n{}",
        show(out)
    );
}

/// Byte-for-byte equality, with the first differing offset in the message.
fn assert_same(what: &str, ours: &[u8], expected: &[u8]) {
    if ours != expected {
        let at = ours
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(expected.len()));
        panic!(
            "{what}: output differs at byte {at}\n--- ringread ({} bytes):\n{}\n--- expected ({} bytes):\n{}",
            ours.len(),
            head_of(ours),
            expected.len(),
            head_of(expected)
        );
    }
}

fn assert_stderr_empty(what: &str, out: &Output) {
    assert!(
        out.stderr.is_empty(),
        "{what}: unexpected stderr\n{}",
        show(out)
    );
}

/// Standard error must be empty, except that `--direct` may say once why it was not used (some
/// filesystems refuse O_DIRECT); that is not an error.
fn assert_stderr_quiet(what: &str, opts: &[&str], out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines() {
        let allowed = opts.contains(&"--direct") && line.starts_with("ringread: O_DIRECT not used");
        assert!(
            allowed,
            "{what}: unexpected stderr line {line:?}\n{}",
            show(out)
        );
    }
}

/// A peer tool's standard error as ringread should print it: `tool:` at line starts becomes `ringread:`.
fn as_ours(peer_stderr: &[u8], tool: &str) -> String {
    let prefix = format!("{tool}:");
    String::from_utf8_lossy(peer_stderr)
        .lines()
        .map(|l| match l.strip_prefix(&prefix) {
            Some(rest) => format!("ringread:{rest}\n"),
            None => format!("{l}\n"),
        })
        .collect()
}

fn join_args<'a>(parts: &[&[&'a str]]) -> Vec<&'a str> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------------
// 1. sum vs sha256sum, b3sum, xxhsum
// ---------------------------------------------------------------------------------------------

/// `ringread OPTS sum OURS FILES` for every option set vs `tool THEIRS FILES`.
fn sum_like_peer(ours: &[&str], tool: &str, theirs: &[&str]) {
    let dir = fixture();
    let files = sized_files(dir.path());
    let names = names_of(&files);
    let expected = peer_ok(dir.path(), tool, &join_args(&[theirs, &names]), None);
    assert_eq!(
        expected.stdout.iter().filter(|&&b| b == b'\n').count(),
        names.len(),
        "{tool} printed an unexpected number of lines:\n{}",
        show(&expected)
    );
    for opts in OPTION_SETS {
        let args = join_args(&[opts, &["sum"], ours, &names]);
        let what = describe("ringread", &args);
        let out = ringread(dir.path(), &args);
        assert_success(&what, &out);
        assert_same(&what, &out.stdout, &expected.stdout);
        assert_stderr_quiet(&what, opts, &out);
    }
}

#[test]
fn sum_sha256_matches_sha256sum() {
    sum_like_peer(&["--algo", "sha256"], "sha256sum", &[]);
}

#[test]
fn sum_sha256_tag_matches_sha256sum_tag() {
    sum_like_peer(&["--algo", "sha256", "--tag"], "sha256sum", &["--tag"]);
}

#[test]
fn sum_default_blake3_matches_b3sum() {
    sum_like_peer(&[], "b3sum", &[]);
}

#[test]
fn sum_xxh128_matches_xxhsum_h2() {
    sum_like_peer(&["--algo", "xxh128"], "xxhsum", &["-H2"]);
}

#[test]
fn sum_xxh3_tag_matches_xxhsum_h3() {
    // xxhsum -H3 prints the BSD form, `XXH3 (name) = hex`.
    sum_like_peer(&["--algo", "xxh3", "--tag"], "xxhsum", &["-H3"]);
}

#[test]
fn sum_of_many_files_in_one_invocation_matches_sha256sum() {
    // Rings and buffers are set up once and reused: many files, small and not so small, in one go.
    let dir = fixture();
    let names: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
    for (i, n) in names.iter().enumerate() {
        write_file(
            dir.path(),
            n,
            &random_bytes((i * 1237) % 70_000, 1000 + i as u64),
        );
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let expected = peer_ok(dir.path(), "sha256sum", &names, None);
    for opts in [
        &[][..],
        &["--chunk-size", "4K", "--depth", "2"],
        &["--backend", "sync"],
        &["--sqpoll"],
    ] {
        let args = join_args(&[opts, &["sum", "-a", "sha256"], &names]);
        let what = describe("ringread", &args[..args.len().min(8)]);
        let out = ringread(dir.path(), &args);
        assert_success(&what, &out);
        assert_same(&what, &out.stdout, &expected.stdout);
        assert_stderr_quiet(&what, opts, &out);
    }
}

#[test]
fn sum_escapes_names_like_sha256sum() {
    let dir = fixture();
    let names = [
        "plain",
        "back\\slash",
        "new\nline",
        "both\\and\nnewline",
        "a (b) = c",
        " leading space",
    ];
    for (i, n) in names.iter().enumerate() {
        write_file(dir.path(), n, &random_bytes(1000 * i + 7, 50 + i as u64));
    }
    for (ours, tool, theirs) in [
        (&["-a", "sha256"][..], "sha256sum", &[][..]),
        (&["-a", "sha256", "--tag"], "sha256sum", &["--tag"]),
        (&[], "b3sum", &[]),
    ] {
        let expected = peer_ok(dir.path(), tool, &join_args(&[theirs, &names]), None);
        let args = join_args(&[&["sum"], ours, &names]);
        let what = describe("ringread", &args);
        let out = ringread(dir.path(), &args);
        assert_success(&what, &out);
        assert_same(&what, &out.stdout, &expected.stdout);
        assert_stderr_empty(&what, &out);
    }
    // The escaped lists read back: ringread -c says what sha256sum -c says.
    for (list, theirs) in [("gnu.sha256", &[][..]), ("bsd.sha256", &["--tag"])] {
        let made = peer_ok(dir.path(), "sha256sum", &join_args(&[theirs, &names]), None);
        write_file(dir.path(), list, &made.stdout);
        let expected = peer_ok(dir.path(), "sha256sum", &["-c", list], None);
        let args = ["sum", "-a", "sha256", "-c", list];
        let out = ringread(dir.path(), &args);
        let what = describe("ringread", &args);
        assert_success(&what, &out);
        assert_same(&what, &out.stdout, &expected.stdout);
        assert_stderr_empty(&what, &out);
    }
}

#[test]
fn sum_reads_standard_input() {
    let dir = fixture();
    let data = random_bytes(300_005, 77);
    write_file(dir.path(), "a", b"first file\n");
    write_file(dir.path(), "b", &random_bytes(70_000, 78));
    for (ours, tool, theirs) in [
        (&["-a", "sha256"][..], "sha256sum", &[][..]),
        (&["-a", "sha256", "--tag"], "sha256sum", &["--tag"]),
        (&[], "b3sum", &[]),
    ] {
        for files in [&["-"][..], &[], &["a", "-", "b"]] {
            let expected = peer_ok(dir.path(), tool, &join_args(&[theirs, files]), Some(&data));
            for opts in [
                &[][..],
                &["--backend", "sync"],
                &["--chunk-size", "4K", "--depth", "2"],
            ] {
                let args = join_args(&[opts, &["sum"], ours, files]);
                let what = format!("{} < pipe", describe("ringread", &args));
                let out = ringread_stdin(dir.path(), &args, Some(&data));
                assert_success(&what, &out);
                assert_same(&what, &out.stdout, &expected.stdout);
                assert_stderr_empty(&what, &out);
            }
        }
    }
    // Standard input that is a regular file, read from its start.
    write_file(dir.path(), "stdin-file", &data);
    let with_file_stdin = |program: &Path, args: &[&str]| {
        let out = std::process::Command::new(program)
            .current_dir(dir.path())
            .args(args)
            .stdin(fs::File::open(dir.path().join("stdin-file")).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        sane(&describe(&program.to_string_lossy(), args), out)
    };
    let expected = with_file_stdin(Path::new("sha256sum"), &[]);
    assert_success("sha256sum < file", &expected);
    for args in [
        &["sum", "-a", "sha256"][..],
        &["--backend", "sync", "sum", "-a", "sha256", "-"],
    ] {
        let out = with_file_stdin(&bin(), args);
        let what = format!("{} < file", describe("ringread", args));
        assert_success(&what, &out);
        assert_same(&what, &out.stdout, &expected.stdout);
        assert_stderr_empty(&what, &out);
    }
}

/// Standard input that is a regular file already partly read: like sha256sum, wc and cat, ringread
/// must start at the current offset (and, like cat, leave the offset at the end).
#[test]
fn standard_input_file_is_read_from_its_current_offset() {
    let dir = fixture();
    let data = text_bytes(300_000, 5);
    write_file(dir.path(), "input", &data);
    // `run` would pipe standard input; here it must be the file itself, so the shell opens it,
    // skips 1000 bytes, runs the command, then `cat` shows what the command left of the file.
    let skip_then_file = |cmd: &[&str]| {
        let mut c = Command::new("sh");
        c.current_dir(dir.path())
            .arg("-c")
            .arg(r#"exec < input; dd bs=1000 count=1 of=/dev/null 2>/dev/null; "$@"; cat"#)
            .arg("sh")
            .args(cmd);
        run(
            c,
            None,
            &describe("sh -c '<input; skip 1000 bytes; CMD; cat'", cmd),
        )
    };
    let rr = bin();
    let rr = rr.to_str().expect("a UTF-8 binary path");
    for (ours, theirs) in [
        (&[rr, "sum", "-a", "sha256"][..], &["sha256sum"][..]),
        (
            &[rr, "--backend", "sync", "sum", "-a", "sha256"],
            &["sha256sum"],
        ),
        (&[rr, "count"], &["wc", "-lc"]),
        (&[rr, "cat"], &["cat"]),
        (&[rr, "--backend", "sync", "cat"], &["cat"]),
    ] {
        let expected = skip_then_file(theirs);
        assert_success("peer", &expected);
        let out = skip_then_file(ours);
        let what = format!(
            "{} with stdin a file at offset 1000, then cat",
            describe("", ours)
        );
        assert_success(&what, &out);
        assert_same(&what, &out.stdout, &expected.stdout);
    }
}

#[test]
fn sum_crc32c_check_value() {
    let dir = fixture();
    write_file(dir.path(), "nine", b"123456789");
    for opts in [
        &[][..],
        &["--chunk-size", "1", "--depth", "3"],
        &["--backend", "sync", "--chunk-size", "2"],
    ] {
        for (args, input, expected) in [
            (
                &["sum", "--algo", "crc32c", "nine"][..],
                None,
                "e3069283  nine\n",
            ),
            (
                &["sum", "-a", "crc32c", "--tag", "nine"],
                None,
                "CRC32C (nine) = e3069283\n",
            ),
            (
                &["sum", "-a", "crc32c"],
                Some(&b"123456789"[..]),
                "e3069283  -\n",
            ),
        ] {
            let args = join_args(&[opts, args]);
            let what = describe("ringread", &args);
            let out = ringread_stdin(dir.path(), &args, input);
            assert_success(&what, &out);
            assert_same(&what, &out.stdout, expected.as_bytes());
            assert_stderr_empty(&what, &out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. sum --check
// ---------------------------------------------------------------------------------------------

const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Files a, b, e (empty) and the checksum lists the check tests use.
fn check_fixture() -> TempDir {
    let dir = fixture();
    let d = dir.path();
    write_file(d, "a", &random_bytes(100_000, 11));
    write_file(d, "b", &text_bytes(300_001, 12));
    write_file(d, "e", b"");
    let good = peer_ok(d, "sha256sum", &["a", "b", "e"], None).stdout;
    write_file(d, "good.sha256", &good);
    let mut mixed = good.clone();
    mixed.extend_from_slice(format!("{ZEROS}  b\n").as_bytes());
    mixed.extend_from_slice(format!("{ZEROS}  missing\n").as_bytes());
    mixed.extend_from_slice(b"this is not a checksum line\n");
    write_file(d, "mixed.sha256", &mixed);
    let mut garbage = good.clone();
    garbage.extend_from_slice(b"garbage\n");
    write_file(d, "garbage.sha256", &garbage);
    write_file(
        d,
        "missing.sha256",
        format!("{ZEROS}  missing\n").as_bytes(),
    );
    write_file(d, "nothing.sha256", b"garbage\nmore garbage\n");
    fs::create_dir(d.join("dir")).unwrap();
    write_file(d, "dir.sha256", format!("{ZEROS}  dir\n").as_bytes());
    let binary = peer_ok(d, "sha256sum", &["-b", "a", "b"], None).stdout;
    write_file(d, "binary.sha256", &binary);
    let mut comments = b"# a comment\n".to_vec();
    comments.extend_from_slice(&good);
    write_file(d, "comments.sha256", &comments);
    let tagged = peer_ok(d, "sha256sum", &["--tag", "a", "b", "e"], None).stdout;
    write_file(d, "tagged.sha256", &tagged);
    dir
}

/// `ringread sum -a sha256 -c FLAGS LISTS` vs `sha256sum -c FLAGS LISTS`: the same standard output,
/// exit status and standard error (but for the program name).
fn check_like_sha256sum(dir: &Path, flags: &[&str], lists: &[&str], input: Option<&[u8]>) {
    let theirs = peer(
        dir,
        "sha256sum",
        &join_args(&[&["-c"], flags, lists]),
        input,
    );
    let args = join_args(&[&["sum", "-a", "sha256", "-c"], flags, lists]);
    let what = format!(
        "{}{}",
        describe("ringread", &args),
        if input.is_some() { " < list" } else { "" }
    );
    let ours = ringread_stdin(dir, &args, input);
    assert_same(&what, &ours.stdout, &theirs.stdout);
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{what}: exit status differs from sha256sum's\n{}",
        show(&ours)
    );
    let expected = as_ours(&theirs.stderr, "sha256sum");
    assert_eq!(
        String::from_utf8_lossy(&ours.stderr),
        expected,
        "{what}: stderr differs from sha256sum's (prefix aside)\n{}",
        show(&ours)
    );
}

#[test]
fn check_accepts_a_sha256sum_list() {
    let dir = check_fixture();
    let d = dir.path();
    for list in [
        "good.sha256",
        "binary.sha256",
        "comments.sha256",
        "tagged.sha256",
    ] {
        for opts in [
            &[][..],
            &["--backend", "sync"],
            &["--chunk-size", "4K", "--depth", "1"],
        ] {
            let args = join_args(&[opts, &["sum", "-a", "sha256", "-c", list]]);
            let what = describe("ringread", &args);
            let out = ringread(d, &args);
            assert_success(&what, &out);
            assert_stderr_empty(&what, &out);
            let expected = peer_ok(d, "sha256sum", &["-c", list], None);
            assert_same(&what, &out.stdout, &expected.stdout);
        }
    }
    // A BSD list names its algorithm: no --algo needed.
    let expected = peer_ok(d, "sha256sum", &["-c", "tagged.sha256"], None);
    let out = ringread(d, &["sum", "-c", "tagged.sha256"]);
    assert_success("ringread sum -c tagged.sha256", &out);
    assert_same(
        "ringread sum -c tagged.sha256",
        &out.stdout,
        &expected.stdout,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a: OK\nb: OK\ne: OK\n",
        "the BSD list"
    );
}

#[test]
fn check_reports_failures_like_sha256sum() {
    let dir = check_fixture();
    let lists: &[&[&str]] = &[
        &["good.sha256"],
        &["mixed.sha256"],
        &["garbage.sha256"],
        &["missing.sha256"],
        &["nothing.sha256"],
        &["dir.sha256"],
        &["good.sha256", "mixed.sha256"],
        &["no-such-list.sha256", "good.sha256"],
    ];
    let flag_sets: &[&[&str]] = &[
        &[],
        &["--quiet"],
        &["--status"],
        &["--ignore-missing"],
        &["--strict"],
        &["-w"],
        &["--warn", "--strict"],
        &["--quiet", "--ignore-missing"],
        &["--status", "--ignore-missing"],
    ];
    for lists in lists {
        for flags in flag_sets {
            check_like_sha256sum(dir.path(), flags, lists, None);
        }
    }
    // The mixed list, spelled out: one wrong hash, one missing file, one garbage line.
    let out = ringread(dir.path(), &["sum", "-a", "sha256", "-c", "mixed.sha256"]);
    assert_code("ringread sum -a sha256 -c mixed.sha256", &out, 1);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a: OK\nb: OK\ne: OK\nb: FAILED\nmissing: FAILED open or read\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ringread: missing: No such file or directory\n\
         ringread: WARNING: 1 line is improperly formatted\n\
         ringread: WARNING: 1 listed file could not be read\n\
         ringread: WARNING: 1 computed checksum did NOT match\n"
    );
}

#[test]
fn check_reads_the_list_from_standard_input() {
    let dir = check_fixture();
    for list in [
        "good.sha256",
        "mixed.sha256",
        "tagged.sha256",
        "missing.sha256",
    ] {
        let input = fs::read(dir.path().join(list)).unwrap();
        for files in [&["-"][..], &[]] {
            for flags in [&[][..], &["--quiet"], &["--strict"], &["--status"]] {
                check_like_sha256sum(dir.path(), &join_args(&[flags, files]), &[], Some(&input));
            }
        }
    }
}

/// Blank lines in a list are skipped silently by sha256sum: not counted as improperly formatted, not
/// warned about with -w, not fatal with --strict.
#[test]
fn check_ignores_blank_lines_like_sha256sum() {
    let dir = check_fixture();
    let good = fs::read(dir.path().join("good.sha256")).unwrap();
    let mut blank = b"\n".to_vec();
    blank.extend_from_slice(&good);
    blank.extend_from_slice(b"\n\n");
    write_file(dir.path(), "blank.sha256", &blank);
    for flags in [&[][..], &["--strict"], &["-w"]] {
        check_like_sha256sum(dir.path(), flags, &["blank.sha256"], None);
    }
}

/// coreutils quotes the list's name in these messages (`'standard input'`); ringread must too.
#[test]
fn check_names_standard_input_like_sha256sum() {
    let dir = check_fixture();
    for (list, flags) in [
        ("mixed.sha256", &["-w"][..]),
        ("nothing.sha256", &[]),
        ("missing.sha256", &["--ignore-missing"]),
    ] {
        let input = fs::read(dir.path().join(list)).unwrap();
        check_like_sha256sum(dir.path(), flags, &[], Some(&input));
    }
}

/// A list that cannot be read (a directory) is one error, as with sha256sum (`dir: read error`), not
/// two: ringread must not add "no properly formatted checksum lines found" after the read error.
#[test]
fn check_of_an_unreadable_list_reports_one_error() {
    let dir = check_fixture();
    let args = ["sum", "-a", "sha256", "-c", "dir"];
    let out = ringread(dir.path(), &args);
    let what = describe("ringread", &args);
    assert_code(&what, &out, 1);
    assert!(out.stdout.is_empty(), "{what}: stdout\n{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().count() == 1 && err.starts_with("ringread: dir: "),
        "{what}: expected one line `ringread: dir: <reason>`\n{}",
        show(&out)
    );
}

#[test]
fn check_xxhsum_h3_list_without_algo() {
    let dir = fixture();
    let d = dir.path();
    let files = sized_files(d);
    let names = names_of(&files);
    let list = peer_ok(d, "xxhsum", &join_args(&[&["-H3"], &names]), None).stdout;
    write_file(d, "list.xxh3", &list);
    let expected: String = names.iter().map(|n| format!("{n}: OK\n")).collect();
    for opts in [
        &[][..],
        &["--backend", "sync"],
        &["--chunk-size", "4K", "--depth", "1"],
    ] {
        let args = join_args(&[opts, &["sum", "-c", "list.xxh3"]]);
        let what = describe("ringread", &args);
        let out = ringread(d, &args);
        assert_success(&what, &out);
        assert_same(&what, &out.stdout, expected.as_bytes());
        assert_stderr_empty(&what, &out);
    }
    // One changed digit: FAILED, exit 1.
    let text = String::from_utf8(list).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let last = lines.last_mut().unwrap();
    let flipped = if last.ends_with('0') { '1' } else { '0' };
    last.pop();
    last.push(flipped);
    write_file(d, "bad.xxh3", format!("{}\n", lines.join("\n")).as_bytes());
    let out = ringread(d, &["sum", "-c", "bad.xxh3"]);
    assert_code("ringread sum -c bad.xxh3", &out, 1);
    // As xxhsum says it: the summary on standard output, without a prefix.
    let theirs = peer(d, "xxhsum", &["-c", "bad.xxh3"], None);
    assert_same("ringread sum -c bad.xxh3", &out.stdout, &theirs.stdout);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .ends_with(": FAILED\n1 computed checksum did NOT match\n"),
        "{}",
        show(&out)
    );
    assert_stderr_empty("ringread sum -c bad.xxh3", &out);
}

#[test]
fn check_b3sum_list_with_the_default_algo() {
    let dir = fixture();
    let d = dir.path();
    let files = sized_files(d);
    let names = names_of(&files);
    let list = peer_ok(d, "b3sum", &names, None).stdout;
    write_file(d, "list.b3", &list);
    let expected = peer_ok(d, "b3sum", &["-c", "list.b3"], None);
    let out = ringread(d, &["sum", "-c", "list.b3"]);
    assert_success("ringread sum -c list.b3", &out);
    assert_same("ringread sum -c list.b3", &out.stdout, &expected.stdout);
    assert_stderr_empty("ringread sum -c list.b3", &out);
}

// ---------------------------------------------------------------------------------------------
// 4. count vs wc -lc
// ---------------------------------------------------------------------------------------------

fn count_fixture() -> TempDir {
    let dir = fixture();
    let d = dir.path();
    write_file(d, "lines", &text_bytes(100_000, 21));
    write_file(d, "nonl", b"a\nb\nc");
    write_file(d, "empty", b"");
    write_file(d, "big", &text_bytes(3 * MIB + 17, 22));
    write_file(d, "binary", &random_bytes(262_145, 23));
    fs::create_dir(d.join("dir")).unwrap();
    dir
}

/// `ringread OPTS count FILES` vs `wc -lc FILES`: same stdout, exit status and (prefix aside) stderr.
fn count_like_wc(dir: &Path, opts: &[&str], files: &[&str], input: Option<&[u8]>) -> Output {
    let theirs = peer(dir, "wc", &join_args(&[&["-lc"], files]), input);
    let args = join_args(&[opts, &["count"], files]);
    let what = format!(
        "{}{}",
        describe("ringread", &args),
        if input.is_some() { " < pipe" } else { "" }
    );
    let ours = ringread_stdin(dir, &args, input);
    assert_same(&what, &ours.stdout, &theirs.stdout);
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{what}: exit status differs from wc's\n{}",
        show(&ours)
    );
    // Some filesystems refuse O_DIRECT; ringread then says so, which is not an error.
    let ours_err: String = String::from_utf8_lossy(&ours.stderr)
        .lines()
        .filter(|l| !(opts.contains(&"--direct") && l.starts_with("ringread: O_DIRECT not used")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        ours_err,
        as_ours(&theirs.stderr, "wc"),
        "{what}: stderr differs from wc's (prefix aside)\n{}",
        show(&ours)
    );
    ours
}

#[test]
fn count_matches_wc() {
    let dir = count_fixture();
    let d = dir.path();
    for files in [
        &["lines"][..],
        &["lines", "nonl", "empty", "big", "binary"],
        &["empty"],
        &["nonl"],
        &["big"],
        &["/proc/version"],
        &["lines", "/proc/version"],
    ] {
        count_like_wc(d, &[], files, None);
    }
    for opts in OPTION_SETS {
        count_like_wc(d, opts, &["big", "binary", "nonl"], None);
    }
}

#[test]
fn count_reads_a_pipe() {
    let dir = count_fixture();
    let data = text_bytes(1_000_003, 31);
    for files in [&[][..], &["-"], &["-", "lines"], &["nonl", "-"]] {
        for opts in [
            &[][..],
            &["--backend", "sync"],
            &["--chunk-size", "4K", "--depth", "4"],
        ] {
            count_like_wc(dir.path(), opts, files, Some(&data));
        }
    }
    // A pipe's size is unknown: the columns are 7 wide.
    let out = ringread_stdin(dir.path(), &["count"], Some(b"x\ny\n"));
    assert_same("ringread count < pipe", &out.stdout, b"      2       4\n");
}

#[test]
fn count_missing_file_and_directory_among_others() {
    let dir = count_fixture();
    let d = dir.path();
    let out = count_like_wc(d, &[], &["lines", "missing", "nonl"], None);
    assert_code("ringread count lines missing nonl", &out, 1);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ringread: missing: No such file or directory\n"
    );
    let out = count_like_wc(d, &[], &["lines", "dir", "nonl"], None);
    assert_code("ringread count lines dir nonl", &out, 1);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ringread: dir: Is a directory\n"
    );
    for files in [&["dir", "lines"][..], &["missing"], &["dir"]] {
        count_like_wc(d, &[], files, None);
    }
    count_like_wc(
        d,
        &["--backend", "sync"],
        &["lines", "missing", "dir", "nonl"],
        None,
    );
}

/// wc (coreutils 9.1) sizes its columns from the files it could stat, even when the first one is
/// missing: `wc -lc missing lines` prints `  2799 100000 lines`, not `2799 100000 lines`.
#[test]
fn count_width_ignores_a_missing_first_file() {
    let dir = count_fixture();
    count_like_wc(dir.path(), &[], &["missing", "lines"], None);
    count_like_wc(dir.path(), &[], &["missing", "nonl", "big"], None);
}

// ---------------------------------------------------------------------------------------------
// 5. cat
// ---------------------------------------------------------------------------------------------

#[test]
fn cat_copies_every_size() {
    let dir = fixture();
    let d = dir.path();
    let files = sized_files(d);
    for (name, data) in &files {
        let out = ringread(d, &["cat", name]);
        let what = format!("ringread cat {name}");
        assert_success(&what, &out);
        assert_same(&what, &out.stdout, data);
        assert_stderr_empty(&what, &out);
    }
    let names = names_of(&files);
    let all: Vec<u8> = files.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    for opts in OPTION_SETS {
        let args = join_args(&[opts, &["cat"], &names]);
        let what = describe("ringread", &args);
        let out = ringread(d, &args);
        assert_success(&what, &out);
        assert_same(&what, &out.stdout, &all);
        assert_stderr_quiet(&what, opts, &out);
    }
}

#[test]
fn cat_reads_standard_input() {
    let dir = fixture();
    let d = dir.path();
    write_file(d, "a", b"first\n");
    write_file(d, "b", &random_bytes(100_000, 41));
    let input = random_bytes(700_001, 42);
    let mut expected = b"first\n".to_vec();
    expected.extend_from_slice(&input);
    expected.extend_from_slice(&random_bytes(100_000, 41));
    for opts in [
        &[][..],
        &["--backend", "sync"],
        &["--chunk-size", "4K", "--depth", "2"],
    ] {
        for (files, want) in [
            (&["-"][..], &input),
            (&[], &input),
            (&["a", "-", "b"], &expected),
        ] {
            let args = join_args(&[opts, &["cat"], files]);
            let what = format!("{} < pipe", describe("ringread", &args));
            let out = ringread_stdin(d, &args, Some(&input));
            assert_success(&what, &out);
            assert_same(&what, &out.stdout, want);
            assert_stderr_empty(&what, &out);
        }
    }
}

#[test]
fn cat_into_a_closed_pipe_is_quiet() {
    let dir = fixture();
    let d = dir.path();
    let data = random_bytes(20 * MIB, 51);
    write_file(d, "big", &data);
    for opts in [
        &[][..],
        &["--backend", "sync"],
        &["--chunk-size", "4K", "--depth", "1"],
    ] {
        let mut cmd = Command::new("sh");
        cmd.current_dir(d)
            .arg("-c")
            .arg(r#""$0" "$@" | head -c 10"#)
            .arg(bin())
            .args(opts)
            .args(["cat", "big"]);
        let what = format!(
            "sh -c '{} | head -c 10'",
            describe("ringread", &join_args(&[opts, &["cat", "big"]]))
        );
        let out = run(cmd, None, &what);
        assert_code(&what, &out, 0);
        assert_same(&what, &out.stdout, &data[..10]);
        assert_stderr_empty(&what, &out);
    }
}

#[test]
fn cat_missing_file_and_directory_among_others() {
    let dir = fixture();
    let d = dir.path();
    write_file(d, "a", b"aaa\n");
    write_file(d, "b", b"bbb\n");
    fs::create_dir(d.join("dir")).unwrap();
    let files = ["a", "missing", "dir", "b"];
    let theirs = peer(d, "cat", &files, None);
    let out = ringread(d, &join_args(&[&["cat"], &files]));
    let what = "ringread cat a missing dir b";
    assert_code(what, &out, 1);
    assert_same(what, &out.stdout, b"aaa\nbbb\n");
    assert_same(what, &out.stdout, &theirs.stdout);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ringread: missing: No such file or directory\nringread: dir: Is a directory\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        as_ours(&theirs.stderr, "cat")
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn sum_missing_file_and_directory_among_others() {
    let dir = fixture();
    let d = dir.path();
    write_file(d, "a", &random_bytes(5000, 61));
    write_file(d, "b", &random_bytes(300_000, 62));
    fs::create_dir(d.join("dir")).unwrap();
    for (files, complaint) in [
        (
            &["a", "missing", "b"][..],
            "ringread: missing: No such file or directory\n",
        ),
        (&["a", "dir", "b"], "ringread: dir: Is a directory\n"),
        (
            &["missing", "a"],
            "ringread: missing: No such file or directory\n",
        ),
    ] {
        for (ours, tool, theirs) in [
            (&["-a", "sha256"][..], "sha256sum", &[][..]),
            (&["-a", "sha256", "--tag"], "sha256sum", &["--tag"]),
        ] {
            for opts in [&[][..], &["--backend", "sync"]] {
                let expected = peer(d, tool, &join_args(&[theirs, files]), None);
                let args = join_args(&[opts, &["sum"], ours, files]);
                let what = describe("ringread", &args);
                let out = ringread(d, &args);
                assert_code(&what, &out, 1);
                assert_same(&what, &out.stdout, &expected.stdout);
                assert_eq!(String::from_utf8_lossy(&out.stderr), complaint, "{what}");
                assert_eq!(
                    String::from_utf8_lossy(&out.stderr),
                    as_ours(&expected.stderr, tool)
                );
            }
        }
    }
}

#[test]
fn unreadable_file_is_permission_denied() {
    let dir = fixture();
    let d = dir.path();
    assert_reachable_by_others(d);
    assert_reachable_by_others(&bin());
    let bin_mode = fs::metadata(bin()).unwrap().mode();
    assert!(
        bin_mode & 0o001 != 0,
        "{} is not executable by others",
        bin().display()
    );
    write_file(d, "a", b"readable\n");
    write_file(d, "secret", b"secret\n");
    fs::set_permissions(d.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    for (args, tool, theirs) in [
        (
            &["sum", "-a", "sha256", "a", "secret"][..],
            "sha256sum",
            &["a", "secret"][..],
        ),
        (
            &["--backend", "sync", "sum", "-a", "sha256", "a", "secret"],
            "sha256sum",
            &["a", "secret"],
        ),
        (
            &["sum", "-a", "sha256", "secret", "a"],
            "sha256sum",
            &["secret", "a"],
        ),
        (&["cat", "a", "secret"], "cat", &["a", "secret"]),
        (&["count", "a", "secret"], "wc", &["-lc", "a", "secret"]),
    ] {
        let what = format!("{} as uid 65534", describe("ringread", args));
        let out = ringread_as_nobody(d, args);
        let expected = as_nobody(d, Path::new(tool), theirs);
        assert_code(&what, &out, 1);
        assert_same(&what, &out.stdout, &expected.stdout);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "ringread: secret: Permission denied\n",
            "{what}\n{}",
            show(&out)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            as_ours(&expected.stderr, tool),
            "{what}: stderr differs from {tool}'s"
        );
    }
}

#[test]
fn invalid_options_fail_before_any_io() {
    let dir = fixture();
    let d = dir.path();
    write_file(d, "f", b"some bytes\n");
    for (args, message) in [
        (
            &["--chunk-size", "0", "cat", "f"][..],
            "chunk size must be at least 1 byte",
        ),
        (
            &["--chunk-size", "0", "sum", "f"],
            "chunk size must be at least 1 byte",
        ),
        (&["--depth", "0", "cat", "f"], "depth must be at least 1"),
        (
            &["--chunk-size", "1000", "--direct", "cat", "f"],
            "multiple of 4096",
        ),
        (
            &["--chunk-size", "banana", "cat", "f"],
            "'banana' is not a size",
        ),
        (&["--backend", "nope", "cat", "f"], "invalid value 'nope'"),
        (&["sum", "--algo", "md5", "f"], "unknown algorithm 'md5'"),
        (
            &["--threads", "0", "count", "f"],
            "threads must be at least 1",
        ),
        (&["--depth", "100000", "cat", "f"], "above the limit"),
        (&["sum", "--quiet", "f"], "--check"),
        (&["cat", "--no-such-flag", "f"], "--no-such-flag"),
    ] {
        let what = describe("ringread", args);
        let out = ringread_stdin(d, args, Some(b"stdin bytes\n"));
        assert_code(&what, &out, 1);
        assert!(
            out.stdout.is_empty(),
            "{what}: printed to stdout\n{}",
            show(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            predicate::str::contains(message).eval(&err),
            "{what}: stderr should say {message:?}\n{}",
            show(&out)
        );
    }
    // The same with standard input as the file: nothing read, nothing written.
    let out = ringread_stdin(d, &["--depth", "0", "cat"], Some(b"stdin bytes\n"));
    assert_code("ringread --depth 0 cat < pipe", &out, 1);
    assert!(out.stdout.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 7. A user whose RLIMIT_MEMLOCK is small (8 MiB) cannot register 64 MiB of buffers
// ---------------------------------------------------------------------------------------------

/// Makes a ~20 MiB file readable by user 65534 and checks that user's memlock limit is 8 MiB.
fn memlock_fixture() -> (TempDir, Vec<u8>) {
    let dir = fixture();
    let d = dir.path();
    assert_reachable_by_others(d);
    assert_reachable_by_others(&bin());
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(NOBODY).arg("sh");
        c
    } else {
        Command::new("sh")
    };
    cmd.args(["-c", "ulimit -l"]);
    let limit = run(cmd, None, "setpriv ... sh -c 'ulimit -l'");
    assert_success("setpriv ... sh -c 'ulimit -l'", &limit);
    assert_eq!(
        String::from_utf8_lossy(&limit.stdout).trim(),
        "8192",
        "user 65534's RLIMIT_MEMLOCK must be 8 MiB for this test to mean anything"
    );
    write_file(d, "big", &random_bytes(20 * MIB + 3, 71));
    let expected = peer_ok(d, "sha256sum", &["big"], None).stdout;
    (dir, expected)
}

// Copied (--no-mmap): registration is what these tests are about, not reading in place.
const MEMLOCK_ARGS: [&str; 9] = [
    "-v",
    "--no-mmap",
    "sum",
    "-a",
    "sha256",
    "--chunk-size",
    "1M",
    "--depth",
    "64",
];

/// Every stderr line of a memlock-limited run is a registration notice or the -v summary.
fn assert_memlock_run(what: &str, out: &Output, expected: &[u8]) {
    assert_success(what, out);
    assert_same(what, &out.stdout, expected);
    let err = String::from_utf8_lossy(&out.stderr);
    let notice =
        predicate::str::is_match(r"^ringread: registered \d+ of \d+ buffers with the kernel")
            .unwrap();
    let summary =
        predicate::str::is_match(r"^ringread: big: 20971523 bytes by io_uring, ").unwrap();
    for line in err.lines() {
        assert!(
            notice.eval(line) || summary.eval(line),
            "{what}: unexpected stderr line {line:?}\n{}",
            show(out)
        );
    }
    assert!(
        err.lines().any(|l| summary.eval(l)),
        "{what}: no -v summary\n{}",
        show(out)
    );
}

#[test]
fn memlock_limited_user_registers_fewer_buffers() {
    let (dir, expected) = memlock_fixture();
    let args = join_args(&[&MEMLOCK_ARGS, &["big"]]);
    let what = format!("{} as uid 65534", describe("ringread", &args));
    let out = ringread_as_nobody(dir.path(), &args);
    assert_memlock_run(&what, &out, &expected);
    let err = String::from_utf8_lossy(&out.stderr);
    let re = registered_counts(&err);
    assert!(
        !re.is_empty(),
        "{what}: stderr should say that fewer buffers were registered\n{}",
        show(&out)
    );
    for (n, m) in re {
        assert!(n < m, "{what}: registered {n} of {m}?\n{}", show(&out));
    }
}

/// The (N, M) of every "registered N of M buffers" in `text`.
fn registered_counts(text: &str) -> Vec<(usize, usize)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("ringread: registered "))
        .filter_map(|rest| {
            let mut words = rest.split(' ');
            let n = words.next()?.parse().ok()?;
            (words.next()? == "of").then_some(())?;
            let m = words.next()?.parse().ok()?;
            (words.next()? == "buffers").then_some((n, m))
        })
        .collect()
}

#[test]
fn memlock_limited_user_in_parallel_and_back_to_back() {
    let (dir, expected) = memlock_fixture();
    let d = dir.path().to_path_buf();
    let args: Vec<&'static str> = join_args(&[&MEMLOCK_ARGS, &["big"]]);
    let what = format!("{} as uid 65534", describe("ringread", &args));
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| ringread_as_nobody(&d, &args)))
            .collect();
        for (i, r) in runs.into_iter().enumerate() {
            let out = r.join().expect("a parallel run's thread");
            assert_memlock_run(&format!("{what} (parallel run {i})"), &out, &expected);
        }
    });
    for i in 0..10 {
        let out = ringread_as_nobody(&d, &args);
        assert_memlock_run(
            &format!("{what} (run {i} of 10 back to back)"),
            &out,
            &expected,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. -v
// ---------------------------------------------------------------------------------------------

#[test]
fn verbose_says_how_files_were_read() {
    let dir = fixture();
    let d = dir.path();
    write_file(d, "f", &random_bytes(MIB, 81));
    for (args, says) in [
        (
            &["-v", "sum", "f"][..],
            "ringread: f: 1048576 bytes by io_uring, ",
        ),
        (
            &["-v", "cat", "f"],
            "ringread: f: 1048576 bytes by io_uring, ",
        ),
        (
            &["-v", "count", "f"],
            "ringread: f: 1048576 bytes by io_uring, ",
        ),
        (
            &["-v", "--backend", "sync", "sum", "f"],
            "ringread: f: 1048576 bytes by read(2), ",
        ),
        (
            &["--backend", "sync", "count", "-v", "f"],
            "ringread: f: 1048576 bytes by read(2), ",
        ),
        (
            &["-v", "--backend", "uring", "sum", "f"],
            "bytes by io_uring, ",
        ),
        (&["-v", "--no-register", "sum", "f"], "(0 registered)"),
        (
            &["-v", "--threads", "1", "sum", "f"],
            "by io_uring, 1 thread, ",
        ),
        (
            &["-v", "--backend", "sync", "--chunk-size", "1M", "sum", "f"],
            "1 buffer of 1048576 bytes",
        ),
        (
            &[
                "-v",
                "--backend",
                "sync",
                "--chunk-size",
                "1MiB",
                "sum",
                "f",
            ],
            "1 buffer of 1048576 bytes",
        ),
        (
            &["-v", "--backend", "sync", "--chunk-size", "4K", "sum", "f"],
            "1 buffer of 4096 bytes",
        ),
        (
            &[
                "-v",
                "--backend",
                "sync",
                "--chunk-size",
                "64KiB",
                "sum",
                "f",
            ],
            "1 buffer of 65536 bytes",
        ),
        (
            &["-v", "--chunk-size", "4K", "sum", "f"],
            "buffers of 4096 bytes",
        ),
    ] {
        // The copying routes (in place has its own test).
        let args = &join_args(&[&["--no-mmap"], args]);
        let what = describe("ringread", args);
        let out = ringread(d, args);
        assert_success(&what, &out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            predicate::str::contains(says).eval(&err),
            "{what}: stderr should contain {says:?}\n{}",
            show(&out)
        );
    }
    // Standard input through a pipe is a stream.
    let out = ringread_stdin(d, &["-v", "sum"], Some(b"piped\n"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        predicate::str::is_match(r"ringread: -: 6 bytes by io_uring, .*stream")
            .unwrap()
            .eval(&err),
        "ringread -v sum < pipe\n{}",
        show(&out)
    );
    // Without -v, nothing on stderr.
    let out = ringread(d, &["sum", "f"]);
    assert_success("ringread sum f", &out);
    assert_stderr_empty("ringread sum f", &out);
}

// ---------------------------------------------------------------------------------------------
// -v says how much of each file was in the page cache, as fincore measures it
// ---------------------------------------------------------------------------------------------

#[test]
fn verbose_says_the_cached_share_as_fincore_does() {
    use std::os::fd::AsRawFd;
    let dir = fixture();
    let d = dir.path();
    write_file(d, "f", &random_bytes(8 * MIB, 21));
    write_file(d, "g", &random_bytes(3 * MIB, 22));
    // A quarter of f in the cache, none of g; what fincore says of that.
    let prepare = || -> Vec<String> {
        for name in ["f", "g"] {
            let f = fs::File::open(d.join(name)).unwrap();
            f.sync_all().unwrap();
            // SAFETY: plain advice on descriptors we hold: drop the pages, no read-ahead after.
            unsafe {
                libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
                libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
            }
            if name == "f" {
                let mut buf = vec![0; 2 * MIB];
                std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 0).unwrap();
            }
        }
        let fincore = peer_ok(
            d,
            "fincore",
            &[
                "--bytes",
                "--noheadings",
                "--raw",
                "-o",
                "RES,SIZE",
                "f",
                "g",
            ],
            None,
        );
        let expected: Vec<String> = String::from_utf8_lossy(&fincore.stdout)
            .lines()
            .map(|l| {
                let v: Vec<f64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
                format!("{:.1}% cached", 100.0 * v[0] / v[1])
            })
            .collect();
        assert_eq!(expected.len(), 2, "{}", show(&fincore));
        assert_eq!(
            expected[1], "0.0% cached",
            "fincore: g should not be cached"
        );
        assert_ne!(
            expected[0], "0.0% cached",
            "fincore: f should be partly cached"
        );
        expected
    };
    // One at a time, and many at once.
    for args in [&["-v", "sum", "f"][..], &["-v", "sum", "f", "g"]] {
        let expected = prepare();
        let out = ringread(d, args);
        assert_success("ringread -v sum", &out);
        let err = String::from_utf8_lossy(&out.stderr);
        for (name, want) in ["f", "g"].iter().zip(&expected).take(args.len() - 2) {
            let line = err
                .lines()
                .find(|l| l.starts_with(&format!("ringread: {name}: ")))
                .unwrap_or_else(|| panic!("no -v line for {name}:\n{err}"));
            assert!(line.ends_with(want.as_str()), "{line} vs fincore's {want}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// --dontcache: the page cache as it was, the bytes as they are
// ---------------------------------------------------------------------------------------------

/// Drops `path` from the page cache (after writing it back).
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: plain advice on a descriptor we hold.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
}

/// The share of `path` in the page cache, as fincore says.
fn fincore_share(dir: &Path, name: &str) -> f64 {
    let out = peer_ok(
        dir,
        "fincore",
        &["--bytes", "--noheadings", "--raw", "-o", "RES,SIZE", name],
        None,
    );
    let v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    v[0] / v[1]
}

#[test]
fn dontcache_leaves_the_page_cache_as_it_was() {
    let dir = fixture();
    let d = dir.path();
    write_file(d, "f", &random_bytes(64 * MIB, 31));
    let want = peer_ok(d, "sha256sum", &["f"], None).stdout;
    for opts in [
        &["--dontcache"][..],
        &["--dontcache", "--backend", "pread"],
        &["--dontcache", "--chunk-size", "1M", "--depth", "16"],
    ] {
        // Not cached before: (almost) nothing cached after.
        evict(&d.join("f"));
        assert_eq!(fincore_share(d, "f"), 0.0, "evicted");
        let args = join_args(&[opts, &["sum", "-a", "sha256", "f"]]);
        let out = ringread(d, &args);
        assert_success(&describe("ringread", &args), &out);
        assert_same(&describe("ringread", &args), &out.stdout, &want);
        let after = fincore_share(d, "f");
        assert!(
            after <= 0.02,
            "{args:?}: {:.1}% cached after",
            100.0 * after
        );
        // All cached before: all cached after.
        fs::read(d.join("f")).unwrap();
        let before = fincore_share(d, "f");
        assert!(before >= 0.99, "read whole: {before}");
        let out = ringread(d, &args);
        assert_same(&describe("ringread", &args), &out.stdout, &want);
        let after = fincore_share(d, "f");
        assert!(
            after >= 0.95,
            "{args:?}: {:.1}% cached after",
            100.0 * after
        );
    }
}

/// Where the file system refuses RWF_DONTCACHE (/proc, tmpfs): the same bytes, another way that
/// spares the cache, said once.
#[test]
fn dontcache_falls_back_where_refused_and_says_so() {
    let out = ringread(Path::new("/"), &["--dontcache", "cat", "/proc/version"]);
    assert_success("ringread --dontcache cat /proc/version", &out);
    assert_same(
        "ringread --dontcache cat /proc/version",
        &out.stdout,
        &fs::read("/proc/version").unwrap(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ringread: uncached reads: this file system does not take uncached reads"),
        "{err}"
    );
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let dir = tempfile::tempdir_in(shm).unwrap();
        let d = dir.path();
        for (i, &size) in SIZES.iter().enumerate() {
            write_file(d, &format!("f{i}"), &random_bytes(size, 40 + i as u64));
        }
        let names: Vec<String> = (0..SIZES.len()).map(|i| format!("f{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let want = peer_ok(d, "sha256sum", &names, None).stdout;
        for opts in [&["--dontcache"][..], &["--dontcache", "--backend", "pread"]] {
            let args = join_args(&[opts, &["sum", "-a", "sha256"], &names]);
            let out = ringread(d, &args);
            assert_success(&describe("ringread", &args), &out);
            assert_same(&describe("ringread", &args), &out.stdout, &want);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.lines().count(), 1, "said once: {err}");
            assert!(err.contains("uncached reads:"), "{err}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Self-tuning: a large cold file gets bigger reads, more in flight; explicit options win
// ---------------------------------------------------------------------------------------------

#[test]
fn a_cold_large_file_is_read_with_the_cold_profile_unless_options_are_given() {
    let dir = fixture();
    let d = dir.path();
    write_file(d, "f", &random_bytes(40 * MIB, 51));
    let want = peer_ok(d, "sha256sum", &["f"], None).stdout;
    let run = |args: &[&str]| {
        let out = ringread(d, args);
        assert_success(&describe("ringread", args), &out);
        assert_same(&describe("ringread", args), &out.stdout, &want);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Cold, no options: the cold profile, said under -v.
    evict(&d.join("f"));
    let err = run(&["-v", "sum", "-a", "sha256", "f"]);
    assert!(err.contains("read as a cold file (0.0% of its 41943040 bytes cached): chunks of 1048576 bytes, 16 in flight"), "{err}");
    assert!(err.contains("of 1048576 bytes"), "{err}");
    // Warm (it was just read): as given (copied with --no-mmap; else in place).
    let err = run(&["-v", "--no-mmap", "sum", "-a", "sha256", "f"]);
    assert!(!err.contains("cold file"), "{err}");
    assert!(err.contains("of 262144 bytes"), "{err}");
    let err = run(&["-v", "sum", "-a", "sha256", "f"]);
    assert!(!err.contains("cold file"), "{err}");
    assert!(err.contains("by in place"), "{err}");
    // Cold with a chunk size or a depth given: as given.
    for opts in [
        &["--chunk-size", "256K"][..],
        &["--depth", "4"],
        &["--threads", "2"],
    ] {
        evict(&d.join("f"));
        let err = run(&join_args(&[&["-v"], opts, &["sum", "-a", "sha256", "f"]]));
        assert!(!err.contains("cold file"), "{opts:?}: {err}");
    }
    // Without -v nothing is said.
    evict(&d.join("f"));
    assert_eq!(run(&["sum", "-a", "sha256", "f"]), "");
}

/// `sum` and `count` process a cached file in place where that was measured to win (XXH3 and
/// SHA-256, counting lines; not BLAKE3 or CRC-32C, copied faster: `Algorithm::in_place_pays`) and
/// say so under `-v`; `--no-mmap` (b3sum's option, for every command) copies it; `cat` always
/// copies; the results are the same.
#[test]
fn cached_files_are_hashed_in_place_unless_no_mmap() {
    let dir = fixture();
    let data = random_bytes(3 * MIB + 1, 77);
    write_file(dir.path(), "big", &data);
    let b3 = peer(dir.path(), "b3sum", &["big"], None);
    let xxh3 = peer(dir.path(), "xxhsum", &["-H3", "big"], None);
    for (args, in_place) in [
        (&["sum", "-v", "big"][..], false),
        (&["sum", "-v", "-a", "xxh3", "big"][..], true),
        (&["count", "-v", "big"][..], true),
        (&["sum", "-v", "-a", "xxh3", "--no-mmap", "big"][..], false),
        (&["--no-mmap", "count", "-v", "big"][..], false),
        (
            &["sum", "-v", "-a", "xxh3", "--chunk-size", "64K", "big"][..],
            true,
        ),
        (
            &["sum", "-v", "-a", "xxh3", "--backend", "sync", "big"][..],
            false,
        ),
        (&["cat", "-v", "big"][..], false),
    ] {
        let expected = if args.contains(&"xxh3") { &xxh3 } else { &b3 };
        // Cached right before: the VM evicts idle pages.
        fs::read(dir.path().join("big")).unwrap();
        let out = ringread(dir.path(), args);
        let what = describe("ringread", args);
        assert_success(&what, &out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.contains("by in place"), in_place, "{what}: {stderr}");
        match args[0] {
            "sum" => assert_same(&what, &out.stdout, &expected.stdout),
            "cat" => assert!(out.stdout == data, "{what}: bytes differ"),
            _ => {
                let wc = peer(dir.path(), "wc", &["-lc", "big"], None);
                assert_same(&what, &out.stdout, &wc.stdout);
            }
        }
    }
}
