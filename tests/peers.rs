//! The peers' own command-line tests, translated: GNU coreutils `tests/cksum/` (md5sum.pl,
//! sha*sum tests, as sha256sum 9.1), BLAKE3's `b3sum/tests/cli_tests.rs` (b3sum 1.2.0) and
//! xxHash's `test-xxhsum-c` Makefile target (xxhsum 0.8.1).
//!
//! Each case runs twice in the same directory with the same input: once the installed peer tool,
//! once ringread invoked through a link of the peer's name (multi-call). Standard output, standard
//! error and the exit status must be identical. The peer is the oracle: it is never skipped
//! (`scripts/setup.sh` installs the peers; a missing one fails the test, naming its package).
//!
//! Differences that are deliberate are compared as such, each with its reason, in
//! `deliberate_differences`. Every case is also run as `ringread sum -a ALGO ...` where that
//! spelling exists, with `ringread:` for the tool's name on standard error.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

mod common;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringread"))
}

/// Links named after the peers, all to the ringread binary.
fn links() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "sha256sum",
        "b3sum",
        "xxhsum",
        "xxh32sum",
        "xxh64sum",
        "xxh128sum",
    ] {
        std::os::unix::fs::symlink(bin(), dir.path().join(name)).unwrap();
    }
    dir
}

fn package_of(tool: &str) -> &'static str {
    match tool {
        "sha256sum" => "coreutils",
        "b3sum" => "b3sum",
        _ => "xxhash",
    }
}

fn run(program: &Path, dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = match Command::new(program)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tool = program.display().to_string();
            panic!(
                "`{tool}` is not installed (Debian package `{}`): these tests use it as the \
                 oracle and never skip; run scripts/setup.sh",
                package_of(&tool)
            )
        }
        Err(e) => panic!("{}: {e}", program.display()),
    };
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.code().is_some(),
        "{} {args:?}: killed by a signal",
        program.display()
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{} {args:?}: panicked: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// xxhsum clears its progress line on standard error after each file (`\r`, 70 spaces, `\r`)
/// even when standard error is not a terminal; ringread shows no such line there.
fn without_progress(err: &[u8]) -> Vec<u8> {
    let blank = [&b"\r"[..], &[b' '; 70], b"\r"].concat();
    let mut out = Vec::with_capacity(err.len());
    let mut rest = err;
    while !rest.is_empty() {
        if rest.starts_with(&blank) {
            rest = &rest[blank.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `tool ARGS` and ringread linked as `tool` with the same ARGS and input: the same output.
/// Returns what differs.
fn differs(links: &Path, dir: &Path, tool: &str, args: &[&str], input: &[u8]) -> Option<String> {
    let theirs = run(Path::new(tool), dir, args, input);
    let ours = run(&links.join(tool), dir, args, input);
    let what = format!("`{tool} {}`", args.join(" ").escape_debug());
    compare(&what, &ours, &theirs, &without_progress(&theirs.stderr))
}

/// What differs between two runs (`theirs_err`: the standard error ours should have written).
fn compare(what: &str, ours: &Output, theirs: &Output, theirs_err: &[u8]) -> Option<String> {
    let part = if ours.status.code() != theirs.status.code() {
        "exit status"
    } else if ours.stdout != theirs.stdout {
        "standard output"
    } else if ours.stderr != theirs_err {
        "standard error"
    } else {
        return None;
    };
    Some(format!(
        "{what}: {part}\nours: {}\ntheirs: {}\n",
        show(ours),
        show(theirs)
    ))
}

/// Runs every case, then fails listing all that differ.
struct Cases<'a> {
    links: &'a Path,
    dir: &'a Path,
    failures: Vec<String>,
    run: usize,
}

impl<'a> Cases<'a> {
    fn new(links: &'a Path, dir: &'a Path) -> Cases<'a> {
        Cases {
            links,
            dir,
            failures: Vec::new(),
            run: 0,
        }
    }

    fn same(&mut self, tool: &str, args: &[&str], input: &[u8]) {
        self.run += 1;
        if let Some(f) = differs(self.links, self.dir, tool, args, input) {
            self.failures.push(f);
        }
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} cases differ from the peer:\n{}",
            self.failures.len(),
            self.run,
            self.failures.join("\n")
        );
    }
}

/// The files the cases read: sizes across chunk edges, awkward names, an empty file, a directory.
fn fixture() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = |name: &str, data: &[u8]| fs::write(d.join(name), data).unwrap();
    w("a", b"hello\n");
    w("e", b"");
    let big: Vec<u8> = (0..300_001u32).map(|i| (i * 31 + i / 4096) as u8).collect();
    w("big", &big);
    w("k4097", &big[..4097]);
    w("sp ace", b"space\n");
    w("new\nline", b"newline\n");
    w("back\\slash", b"backslash\n");
    w("LICENSE", b"license text\n");
    fs::create_dir(d.join("d")).unwrap();
    // A 32-byte key for b3sum --keyed.
    w("key", &[7u8; 32]);
    dir
}

const FILES: &[&str] = &["a", "e", "big", "k4097", "sp ace"];

fn with_files<'a>(args: &[&'a str], files: &[&'a str]) -> Vec<&'a str> {
    [args, files].concat()
}

/// A list written by the peer itself, stored as `name`.
fn peer_list(dir: &Path, name: &str, tool: &str, args: &[&str]) -> Vec<u8> {
    let out = run(Path::new(tool), dir, args, b"");
    fs::write(dir.join(name), &out.stdout).unwrap();
    out.stdout
}

// ---------------------------------------------------------------------------------------------
// sha256sum (coreutils 9.1 tests/cksum: md5sum.pl, md5sum-bsd.sh, md5sum-newline.pl, sha*sum.pl)
// ---------------------------------------------------------------------------------------------

#[test]
fn sha256sum_suite() {
    let links = links();
    let fx = fixture();
    let (l, d) = (links.path(), fx.path());
    let mut c = Cases::new(l, d);
    let t = "sha256sum";
    let good = peer_list(d, "good", t, FILES);
    peer_list(d, "tagged", t, &with_files(&["--tag"], FILES));
    peer_list(d, "binary", t, &with_files(&["-b"], FILES));
    peer_list(d, "escaped", t, &["new\nline", "back\\slash", "a"]);
    let h = String::from_utf8_lossy(&good[..64]).into_owned();
    let lists: &[(&str, String)] = &[
        // md5sum.pl's check-1 .. check-bsd3, openssl forms, reversed BSD (md5 -r).
        ("openssl", format!("SHA256(a)= {h}\n")),
        ("openssl2", format!("SHA256 (a)={h}\nSHA256(a) = {h}\n")),
        ("openssl-bad", format!("SHA256(a)= {}\n", &h[..10])),
        ("reversed", format!("{h} a\n")),
        ("mixed-reversed", format!("{h}  a\n{h} a\n")),
        ("lead-space", format!("  \\{h}  a\n")),
        ("nul-name", format!("{h}  a\0junk\n")),
        ("crlf", format!("{h}  a\r\n")),
        ("upper", format!("{}  a\n", h.to_uppercase())),
        ("comment", format!("# c\n\n{h}  a\n")),
        ("wrong", format!("{}  a\n", "0".repeat(64))),
        ("missing", format!("{h}  a\n{h}  nonexistent\n")),
        ("only-missing", format!("{h}  nonexistent\n")),
        ("dir", format!("{h}  d\n")),
        ("garbage", format!("{h}  a\nnot a line\n")),
        ("nothing", "garbage\nmore\n".to_string()),
        ("empty", String::new()),
        ("short-name", format!("{h}  \n")),
        ("bad-escape", format!("\\{h}  a\\q\n")),
    ];
    for (name, text) in lists {
        fs::write(d.join(name), text).unwrap();
    }
    let mut cases: Vec<Vec<&str>> = vec![
        vec![],
        FILES.to_vec(),
        with_files(&["-b"], FILES),
        with_files(&["-t"], FILES),
        with_files(&["--tag"], FILES),
        with_files(&["-z"], &["a", "new\nline"]),
        with_files(&["--tag", "-z"], &["a", "new\nline"]),
        vec!["new\nline", "back\\slash", "a"],
        vec!["--tag", "new\nline", "back\\slash"],
        vec!["a", "nonexistent", "d", "e"],
        vec!["-", "a"],
        vec!["--", "-b"],
        // Option errors, in coreutils' order and words.
        vec!["--tag", "-c", "good"],
        vec!["-c", "--tag", "good"],
        vec!["-z", "-c", "good"],
        vec!["-b", "-c", "good"],
        vec!["-t", "-c", "good"],
        vec!["--tag", "-t", "a"],
        vec!["-t", "--tag", "a"],
        vec!["--ignore-missing", "a"],
        vec!["--status", "a"],
        vec!["--warn", "a"],
        vec!["--quiet", "a"],
        vec!["--strict", "a"],
        vec!["--s", "a"],
        vec!["--sta", "-c", "good"],
        vec!["--check=x", "good"],
        vec!["-x"],
        vec!["--nope"],
    ];
    let flag_sets: &[&[&str]] = &[
        &[],
        &["--quiet"],
        &["--status"],
        &["--warn"],
        &["--strict"],
        &["--ignore-missing"],
        &["--status", "--warn"],
        &["--warn", "--status"],
        &["--quiet", "--warn"],
        &["-w", "--strict", "--ignore-missing"],
    ];
    let all_lists = [
        "good",
        "tagged",
        "binary",
        "escaped",
        "openssl",
        "openssl2",
        "openssl-bad",
        "reversed",
        "mixed-reversed",
        "lead-space",
        "nul-name",
        "crlf",
        "upper",
        "comment",
        "wrong",
        "missing",
        "only-missing",
        "dir",
        "garbage",
        "nothing",
        "empty",
        "short-name",
        "bad-escape",
    ];
    for flags in flag_sets {
        for list in all_lists {
            cases.push([&["-c"][..], flags, &[list]].concat());
        }
    }
    cases.push(vec!["-c", "good", "nonexistent-list", "tagged"]);
    for args in &cases {
        c.same(t, args, b"");
    }
    // Lists on standard input.
    c.same(t, &["-c"], &good);
    c.same(t, &["-c", "-"], &good);
    c.same(t, &["-c", "--status"], b"garbage\n");
}

// ---------------------------------------------------------------------------------------------
// b3sum (BLAKE3 b3sum/tests/cli_tests.rs, as b3sum 1.2.0 behaves)
// ---------------------------------------------------------------------------------------------

#[test]
fn b3sum_suite() {
    let links = links();
    let fx = fixture();
    let (l, d) = (links.path(), fx.path());
    let mut c = Cases::new(l, d);
    let t = "b3sum";
    let good = peer_list(d, "good", t, FILES);
    peer_list(d, "escaped", t, &["new\nline", "back\\slash", "a"]);
    let h = String::from_utf8_lossy(&good[..64]).into_owned();
    let lists: &[(&str, String)] = &[
        ("wrong", format!("{}  a\n", "0".repeat(64))),
        ("missing", format!("{h}  a\n{h}  nonexistent\n")),
        ("dir", format!("{h}  d\n")),
        ("garbage", format!("garbage\n{h}  a\n")),
        ("short", "0000  a\n".into()),
        ("upper", format!("{}  a\n", h.to_uppercase())),
        ("star", format!("{h} *a\n")),
        ("one-space", format!("{h} a\n")),
        ("blank", format!("{h}  a\n\n")),
        ("comment", format!("# c\n{h}  a\n")),
        ("null", format!("{h}  a\0b\n")),
        ("bad-escape", format!("\\{h}  a\\r\n")),
        ("empty", String::new()),
    ];
    for (name, text) in lists {
        fs::write(d.join(name), text).unwrap();
    }
    let mut cases: Vec<Vec<&str>> = vec![
        vec![],
        FILES.to_vec(),
        vec!["a", "nonexistent", "d", "e"],
        vec!["new\nline", "back\\slash", "a"],
        with_files(&["--no-names"], FILES),
        with_files(&["--length", "8"], FILES),
        with_files(&["-l", "100"], &["a", "big"]),
        with_files(&["--length=0"], &["a"]),
        vec!["--raw", "big"],
        vec!["--raw", "--length", "40", "a"],
        vec!["--raw", "a", "e"],
        with_files(&["--derive-key", "ringread 2026-12-03 test context"], FILES),
        with_files(&["--num-threads", "1"], FILES),
        with_files(&["--no-mmap"], FILES),
        vec!["--length"],
        vec!["--length", "x", "a"],
        vec!["--foo", "a"],
        vec!["-c", "--length", "8", "good"],
        vec!["-c", "--raw", "good"],
        vec!["--quiet", "a"],
        vec!["-c", "nonexistent-list"],
        vec!["-c", "good", "nonexistent-list", "good"],
        vec!["--", "-c"],
    ];
    for flags in [&[][..], &["--quiet"]] {
        for list in [
            "good",
            "escaped",
            "wrong",
            "missing",
            "dir",
            "garbage",
            "short",
            "upper",
            "star",
            "one-space",
            "blank",
            "comment",
            "null",
            "bad-escape",
            "empty",
        ] {
            cases.push([&["-c"][..], flags, &[list]].concat());
        }
    }
    for args in &cases {
        c.same(t, args, b"");
    }
    c.same(t, &["-c"], &good);
    c.same(t, &[], b"standard input");
    c.same(t, &["--keyed", "a", "big"], &[7u8; 32]);
    c.same(t, &["--keyed", "a"], &[7u8; 31]);
    c.same(t, &["--keyed", "a"], &[7u8; 33]);
    c.finish();
}

// ---------------------------------------------------------------------------------------------
// xxhsum (xxHash Makefile test-xxhsum-c and tests/*.sh, as xxhsum 0.8.1 behaves)
// ---------------------------------------------------------------------------------------------

#[test]
fn xxhsum_suite() {
    let links = links();
    let fx = fixture();
    let (l, d) = (links.path(), fx.path());
    let mut c = Cases::new(l, d);
    let t = "xxhsum";
    let mut lists = Vec::new();
    for (name, args) in [
        ("xxh64", &[][..]),
        ("xxh64_tag", &["--tag"]),
        ("le_xxh64", &["--little-endian"]),
        ("le_xxh64_tag", &["--tag", "--little-endian"]),
        ("xxh32", &["-H0"]),
        ("xxh32_tag", &["-H0", "--tag"]),
        ("le_xxh32_tag", &["-H0", "--tag", "--little-endian"]),
        ("xxh128", &["-H2"]),
        ("xxh128_tag", &["-H2", "--tag"]),
        ("xxh3", &["-H3"]),
        ("le_xxh3", &["-H3", "--little-endian"]),
    ] {
        lists.push(peer_list(d, name, t, &with_files(args, FILES)));
    }
    let all: Vec<u8> = lists.concat();
    fs::write(d.join("all"), &all).unwrap();
    let star = String::from_utf8(lists[4].clone())
        .unwrap()
        .replace("  ", " *");
    fs::write(d.join("star"), star).unwrap();
    let mut improper = lists[4].clone();
    improper.extend_from_slice(b"12345678 \n");
    fs::write(d.join("improper32"), improper).unwrap();
    let mut improper = lists[0].clone();
    improper.extend_from_slice(b"123456789abcdef0 \n");
    fs::write(d.join("improper64"), improper).unwrap();
    let w = |name: &str, text: &str| fs::write(d.join(name), text).unwrap();
    w("wrong64", "0000000000000000  LICENSE\n");
    w("wrong32", "00000000  LICENSE\n");
    w(
        "missing64",
        "0000000000000000  test-expects-file-not-found\n",
    );
    w("missing32", "00000000  test-expects-file-not-found\n");
    w("comment", "# c\n\ne4c191d091bd8853  a\n");
    w("garbage", "garbage\n");
    w("empty", "");
    w("lead-space", " e4c191d091bd8853  a\n");
    w("dir", "e4c191d091bd8853  d\ne4c191d091bd8853  a\n");
    let mut cases: Vec<Vec<&str>> = vec![
        vec![],
        FILES.to_vec(),
        vec!["a", "nonexistent", "e"],
        vec!["new\nline", "back\\slash"],
        vec!["d", "a"],
        with_files(&["--tag"], FILES),
        with_files(&["-H0"], FILES),
        with_files(&["-H1"], FILES),
        with_files(&["-H2"], FILES),
        with_files(&["-H3"], FILES),
        with_files(&["-H32"], FILES),
        with_files(&["-H64"], FILES),
        with_files(&["-H128"], FILES),
        with_files(&["--tag", "-H0", "--little-endian"], FILES),
        with_files(&["--tag", "-H2", "--little-endian"], FILES),
        with_files(&["-H3", "--little-endian"], FILES),
        vec!["--", "-H0"],
        vec!["a", "-H0"],
        vec!["-c", "dir", "xxh64"],
        vec!["-c", "nonexistent-list", "xxh64"],
        vec!["--check", "xxh64", "-q"],
    ];
    let list_names = [
        "xxh64",
        "xxh64_tag",
        "le_xxh64_tag",
        "xxh32",
        "xxh32_tag",
        "le_xxh32_tag",
        "xxh128",
        "xxh128_tag",
        "xxh3",
        "le_xxh3",
        "all",
        "star",
        "improper32",
        "improper64",
        "wrong64",
        "wrong32",
        "missing64",
        "missing32",
        "comment",
        "garbage",
        "empty",
        "lead-space",
    ];
    for flags in [
        &[][..],
        &["-q"],
        &["--status"],
        &["--warn"],
        &["--strict"],
        &["-w", "--strict"],
    ] {
        for list in list_names {
            cases.push([&["-c"][..], flags, &[list]].concat());
        }
    }
    cases.push(vec!["-c", "--little-endian", "le_xxh64"]);
    for args in &cases {
        c.same(t, args, b"");
    }
    // Lists on standard input, as the Makefile pipes them.
    for list in &lists {
        c.same(t, &["-c"], list);
        c.same(t, &["-c", "-"], list);
    }
    c.same(t, &["-c", "-"], &all);
    c.same(t, &["-c", "-"], b"0000000000000000  LICENSE\n");
    c.same(t, &[], b"standard input");
    // The other names: their default algorithm.
    for tool in ["xxh32sum", "xxh64sum", "xxh128sum"] {
        c.same(tool, FILES, b"");
        c.same(tool, &["-c", "xxh128"], b"");
    }
    c.finish();
}

// ---------------------------------------------------------------------------------------------
// ringread sum -a ALGO: the same behaviour, `ringread:` in messages
// ---------------------------------------------------------------------------------------------

/// `ringread sum -a ALGO ARGS` against `tool ARGS`: stdout and status identical, stderr with the
/// tool's name at line starts read as `ringread`.
fn same_as_sum(dir: &Path, algo: &str, tool: &str, args: &[&str]) {
    // The tool's spelling of the algorithm.
    let select: &[&str] = if algo == "xxh3" { &["-H3"] } else { &[] };
    let theirs = run(Path::new(tool), dir, &[select, args].concat(), b"");
    let ours_args = [&["sum", "-a", algo][..], args].concat();
    let ours = run(&bin(), dir, &ours_args, b"");
    let what = format!("`ringread {}`", ours_args.join(" ").escape_debug());
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{what}\n{}",
        show(&ours)
    );
    assert!(
        ours.stdout == theirs.stdout,
        "{what}\n{}\ntheirs: {}",
        show(&ours),
        show(&theirs)
    );
    let theirs_err = String::from_utf8_lossy(&without_progress(&theirs.stderr))
        .replace(&format!("{tool}: "), "ringread: ")
        .replace(&format!("'{tool} --help'"), "'ringread sum --help'");
    assert_eq!(
        String::from_utf8_lossy(&ours.stderr),
        theirs_err,
        "{what}\n{}",
        show(&ours)
    );
}

#[test]
fn sum_with_an_algorithm_behaves_as_its_tool() {
    let fx = fixture();
    let d = fx.path();
    peer_list(d, "good256", "sha256sum", FILES);
    peer_list(d, "goodb3", "b3sum", FILES);
    peer_list(d, "good3", "xxhsum", &with_files(&["-H3"], FILES));
    fs::write(d.join("bad"), "garbage\n").unwrap();
    for args in [
        FILES.to_vec(),
        vec!["a", "nonexistent", "d"],
        vec!["-c", "good256"],
        vec!["-c", "--status", "bad"],
        // Of --quiet, --status and --warn the last wins.
        vec!["-c", "--status", "--warn", "bad"],
        vec!["-c", "--warn", "--status", "bad"],
        vec!["-c", "--warn", "--quiet", "bad", "good256"],
        vec!["-c", "--quiet", "--warn", "bad", "good256"],
        vec!["-b", "-t", "a"],
        vec!["-t", "-b", "a"],
        vec!["--tag", "-c", "good256"],
        vec!["--ignore-missing", "a"],
        with_files(&["-z"], &["new\nline"]),
    ] {
        same_as_sum(d, "sha256", "sha256sum", &args);
    }
    for args in [
        FILES.to_vec(),
        vec!["a", "nonexistent", "d"],
        vec!["-c", "goodb3"],
        vec!["-c", "bad"],
        with_files(&["--no-names", "-l", "12"], FILES),
    ] {
        same_as_sum(d, "blake3", "b3sum", &args);
    }
    for args in [
        FILES.to_vec(),
        vec!["a", "nonexistent"],
        vec!["-c", "good3"],
        vec!["-c", "bad"],
        vec!["--little-endian", "a"],
    ] {
        same_as_sum(d, "xxh3", "xxhsum", &args);
    }
}

// ---------------------------------------------------------------------------------------------
// Checksum lines naming standard input: xxhsum's `stdin`, sha256sum's and b3sum's `-`
// ---------------------------------------------------------------------------------------------

/// Standard input of a run, the same for the peer and for ringread.
#[derive(Clone, Copy)]
enum Stdin<'a> {
    /// A pipe these bytes are written to.
    Pipe(&'a [u8]),
    /// This file of the directory, opened for reading ("." is the directory itself).
    File(&'a str),
    /// `/dev/null`.
    Null,
    /// A terminal on which these bytes are typed, then end of file (Ctrl-D) a few times: xxhsum
    /// reads once more after each end of file where ringread stops, so it takes more.
    Terminal(&'a [u8]),
}

impl std::fmt::Debug for Stdin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            Stdin::Pipe(b) => write!(f, "a pipe of {:?}", text(b)),
            Stdin::File(name) => write!(f, "the file {name:?}"),
            Stdin::Null => write!(f, "/dev/null"),
            Stdin::Terminal(b) => write!(f, "a terminal typed {:?}", text(b)),
        }
    }
}

/// A new pseudo-terminal: its controlling side and the terminal a program reads.
fn pty() -> (fs::File, fs::File) {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    // SAFETY: posix_openpt takes flags only and returns a new descriptor or -1 (checked).
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
    // SAFETY: the descriptor was just opened and is owned by nobody else.
    let master = unsafe { fs::File::from_raw_fd(fd) };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: grantpt and unlockpt take the open descriptor; ptsname_r writes at most `name.len()`
    // bytes, NUL-terminated, into `name`.
    let ok = unsafe {
        libc::grantpt(fd) == 0
            && libc::unlockpt(fd) == 0
            && libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) == 0
    };
    assert!(ok, "pty: {}", std::io::Error::last_os_error());
    // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated string.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    let terminal = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path.to_str().unwrap())
        .unwrap();
    (master, terminal)
}

/// `program ARGS` in `dir` with `stdin` as standard input.
fn run_with(program: &Path, dir: &Path, args: &[&str], stdin: Stdin<'_>) -> Output {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = |cmd: &mut Command| {
        cmd.output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
    };
    let typed = match stdin {
        Stdin::Pipe(bytes) => return run(program, dir, args, bytes),
        Stdin::File(name) => {
            let file = fs::File::open(dir.join(name)).unwrap();
            return output(cmd.stdin(file));
        }
        Stdin::Null => return output(cmd.stdin(Stdio::null())),
        Stdin::Terminal(typed) => typed,
    };
    let (mut master, terminal) = pty();
    let mut child = cmd
        .stdin(terminal)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    // Typed before the program reads: the terminal keeps the line and each end of file apart.
    master.write_all(typed).unwrap();
    master.write_all(&[4; 4]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{} {args:?}: still reading the terminal", program.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    drop(master);
    out
}

/// Runs each case with the peer, with ringread linked as the peer, and as `ringread sum -a ALGO`
/// (`tool: ` on standard error read as `ringread: `); fails at the end listing all that differ.
struct StdinCases<'a> {
    links: &'a Path,
    dir: &'a Path,
    failures: Vec<String>,
    run: usize,
}

impl StdinCases<'_> {
    fn same(&mut self, tool: &str, algo: &str, args: &[&str], stdin: Stdin<'_>) {
        let theirs = run_with(Path::new(tool), self.dir, args, stdin);
        let theirs_err = without_progress(&theirs.stderr);
        let what = format!("`{tool} {}` with {stdin:?}", args.join(" ").escape_debug());
        let ours = run_with(&self.links.join(tool), self.dir, args, stdin);
        self.failures
            .extend(compare(&what, &ours, &theirs, &theirs_err));
        let sum_args = [&["sum", "-a", algo][..], args].concat();
        let ours = run_with(&bin(), self.dir, &sum_args, stdin);
        let sum_err =
            String::from_utf8_lossy(&theirs_err).replace(&format!("{tool}: "), "ringread: ");
        let what = format!(
            "`ringread {}` with {stdin:?}",
            sum_args.join(" ").escape_debug()
        );
        self.failures
            .extend(compare(&what, &ours, &theirs, sum_err.as_bytes()));
        self.run += 2;
    }
}

/// `xxhsum -c` reads a line naming `stdin` from standard input (not a file of that name), and in a
/// list read from standard input that is the rest of the list; `-` is a file. sha256sum and b3sum
/// read standard input for `-` (sha256sum calls the line improperly formatted in a list read
/// from standard input) and a file for `stdin`. Every algorithm, GNU and BSD lines, little-endian,
/// standard input a file, a pipe, empty, /dev/null, a terminal, a directory; against the peer,
/// the link and `ringread sum -a ALGO`.
#[test]
fn check_lines_naming_standard_input_like_each_peer() {
    let links = links();
    let fx = tempfile::tempdir().unwrap();
    let (l, d) = (links.path(), fx.path());
    let hello = b"hello world\n";
    let w = |name: &str, data: &[u8]| fs::write(d.join(name), data).unwrap();
    w("f", hello);
    w("g", b"other\n");
    // A list of what `tool ARGS` prints for standard input `input`.
    let list =
        |tool: &str, args: &[&str], input: &[u8]| run(Path::new(tool), d, args, input).stdout;
    let mut c = StdinCases {
        links: l,
        dir: d,
        failures: Vec::new(),
        run: 0,
    };
    let algos = [
        ("-H0", "xxh32"),
        ("-H1", "xxh64"),
        ("-H2", "xxh128"),
        ("-H3", "xxh3"),
    ];
    let forms: [&[&str]; 4] = [
        &[],
        &["--tag"],
        &["--little-endian"],
        &["--tag", "--little-endian"],
    ];
    let mut xxh_lists = Vec::new();
    for (h, algo) in algos {
        for (k, form) in forms.iter().enumerate() {
            let name = format!("{algo}-{k}");
            w(&name, &list("xxhsum", &[&[h][..], form].concat(), hello));
            xxh_lists.push((name, algo));
        }
    }
    let l3 = list("xxhsum", &["-H3"], hello);
    let empty3 = list("xxhsum", &["-H3"], b"");
    w("twice", &[&l3[..], &l3].concat());
    w("empty-then", &[&empty3[..], &l3].concat());
    w("junk", &[&b"junk\n"[..], &l3].concat());
    let f3 = list("xxhsum", &["-H3", "f"], b"");
    let naming = |name: &str| String::from_utf8_lossy(&f3).replace("(f)", name);
    w("dot", naming("(./stdin)").as_bytes());
    w("dash", naming("(-)").as_bytes());
    // A list whose `stdin` line holds the digest of the lines after it.
    let rest = [&f3[..], b"garbage\n"].concat();
    let rest3 = String::from_utf8(list("xxhsum", &["-H3"], &rest)).unwrap();
    let self_checking = [rest3.as_bytes(), &rest].concat();
    let after_f = [&f3[..], &self_checking].concat();
    let s_dash = list("sha256sum", &[], hello);
    let b_dash = list("b3sum", &[], hello);
    let named = |l: &[u8]| {
        String::from_utf8_lossy(l)
            .replace("  -\n", "  stdin\n")
            .into_bytes()
    };
    let s_f = list("sha256sum", &["f"], b"");
    let b_f = list("b3sum", &["f"], b"");
    w("s-dash", &s_dash);
    w("s-dash2", &[&s_dash[..], &s_dash].concat());
    w("s-stdin", &named(&s_dash));
    w("b-dash", &b_dash);
    w("b-dash2", &[&b_dash[..], &b_dash].concat());
    w("b-stdin", &named(&b_dash));
    let s_mixed = [&s_dash[..], &s_f].concat();
    let b_mixed = [&b_dash[..], &b_f].concat();

    // Without, then with, a file named `stdin` in the directory, holding the bytes of `f`: read
    // in place of standard input, it would pass the lines that fail with `g`.
    for with_file in [false, true] {
        if with_file {
            w("stdin", hello);
        }
        let x = "xxhsum";
        for (name, algo) in &xxh_lists {
            for stdin in [Stdin::File("f"), Stdin::File("g")] {
                c.same(x, algo, &["-c", name], stdin);
                c.same(x, algo, &["--little-endian", "-c", name], stdin);
            }
        }
        for stdin in [
            Stdin::Null,
            Stdin::Pipe(b""),
            Stdin::Pipe(hello),
            Stdin::Terminal(hello),
            Stdin::Terminal(b""),
            Stdin::File("."),
        ] {
            c.same(x, "xxh3", &["-c", "xxh3-0"], stdin);
        }
        for stdin in [
            Stdin::File("f"),
            Stdin::Pipe(hello),
            Stdin::Terminal(hello),
            Stdin::Null,
        ] {
            c.same(x, "xxh3", &["-c", "twice"], stdin);
            c.same(x, "xxh3", &["-c", "empty-then"], stdin);
        }
        for stdin in [Stdin::File("f"), Stdin::File("g")] {
            for flags in [
                &["-q"][..],
                &["--status"],
                &["--warn"],
                &["--strict"],
                &["-w", "--strict"],
            ] {
                c.same(x, "xxh3", &[flags, &["-c", "junk"]].concat(), stdin);
                c.same(x, "xxh3", &[flags, &["-c", "xxh3-0"]].concat(), stdin);
            }
            c.same(x, "xxh3", &["-c", "dot"], stdin);
            c.same(x, "xxh3", &["-c", "dash"], stdin);
        }
        // The list on standard input: a `stdin` line is what follows it there.
        for input in [&l3[..], &self_checking, &after_f, &[&l3[..], &l3].concat()] {
            for args in [
                &["-c"][..],
                &["-c", "-"],
                &["--strict", "-c", "-"],
                &["-q", "-c"],
            ] {
                c.same(x, "xxh3", args, Stdin::Pipe(input));
            }
        }
        // sha256sum and b3sum: `-` is standard input, `stdin` a file.
        for (tool, algo, pre) in [("sha256sum", "sha256", "s"), ("b3sum", "blake3", "b")] {
            for stdin in [
                Stdin::File("f"),
                Stdin::File("g"),
                Stdin::Null,
                Stdin::Terminal(hello),
            ] {
                for list in ["dash", "dash2", "stdin"] {
                    c.same(tool, algo, &["-c", &format!("{pre}-{list}")], stdin);
                }
            }
            // The list on standard input: sha256sum calls a `-` line improperly formatted.
            let (dash, mixed, flags): (_, _, &[&[&str]]) = if tool == "b3sum" {
                (&b_dash, &b_mixed, &[&[], &["--quiet"]])
            } else {
                (
                    &s_dash,
                    &s_mixed,
                    &[&[], &["--warn"], &["--strict"], &["--status"]],
                )
            };
            for input in [dash, mixed] {
                for flags in flags {
                    for list in [&[][..], &["-"]] {
                        let args = [flags, &["-c"][..], list].concat();
                        c.same(tool, algo, &args, Stdin::Pipe(input));
                    }
                }
            }
        }
    }
    assert!(
        c.failures.is_empty(),
        "{} of {} runs differ from the peer:\n{}",
        c.failures.len(),
        c.run,
        c.failures.join("\n")
    );
}

/// Where ringread deliberately differs, checked as such.
#[test]
fn deliberate_differences() {
    let links = links();
    let fx = fixture();
    let (l, d) = (links.path(), fx.path());
    // A list written by `ringread sum -a xxh3` is checked by xxhsum 0.8.1 (BSD lines, as it writes).
    let ours = run(&bin(), d, &with_files(&["sum", "-a", "xxh3"], FILES), b"");
    fs::write(d.join("ours3"), &ours.stdout).unwrap();
    let check = run(Path::new("xxhsum"), d, &["-c", "ours3"], b"");
    assert!(check.status.success(), "{}", show(&check));
    // xxhsum 0.8.2 and later write `XXH3_<hex>  name`: 0.8.1 refuses it, ringread checks it.
    let theirs = run(Path::new("xxhsum"), d, &["-H3", "a"], b"");
    let hex = String::from_utf8_lossy(&theirs.stdout)
        .rsplit(' ')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    fs::write(d.join("new3"), format!("XXH3_{hex}  a\n")).unwrap();
    let ours = run(&l.join("xxhsum"), d, &["-c", "new3"], b"");
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        "a: OK\n",
        "{}",
        show(&ours)
    );
    // A BSD line of another algorithm is checked with that algorithm (sha256sum calls it
    // improperly formatted): `ringread sum -c` reads mixed lists.
    let sha = run(Path::new("sha256sum"), d, &["--tag", "a"], b"");
    let b3 = run(Path::new("b3sum"), d, &["e"], b"");
    fs::write(
        d.join("mixed"),
        [
            sha.stdout,
            b"BLAKE3 (e) = ".to_vec(),
            b3.stdout[..64].to_vec(),
            b"\n".to_vec(),
        ]
        .concat(),
    )
    .unwrap();
    let ours = run(&bin(), d, &["sum", "-a", "sha256", "-c", "mixed"], b"");
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        "a: OK\ne: OK\n",
        "{}",
        show(&ours)
    );
    // xxhsum 0.8.1 says "Wrong parameters" and its usage for an option it does not know; so
    // does ringread, with its own usage text.
    for args in [&["-H4", "a"][..], &["--nope", "a"]] {
        let theirs = run(Path::new("xxhsum"), d, args, b"");
        let ours = run(&l.join("xxhsum"), d, args, b"");
        assert_eq!(ours.status.code(), theirs.status.code(), "{}", show(&ours));
        assert!(
            ours.stdout.is_empty() && ours.stderr.starts_with(b"Wrong parameters\n"),
            "{}",
            show(&ours)
        );
    }
    // `xxhsum - a` hashes only `a` in 0.8.1 (standard input is dropped when named with other
    // files); ringread hashes both, as named, and calls standard input `stdin` as xxhsum does.
    let ours = run(&l.join("xxhsum"), d, &["-", "a"], b"x");
    let stdin_line = run(Path::new("xxhsum"), d, &[], b"x").stdout;
    let a_line = run(Path::new("xxhsum"), d, &["a"], b"").stdout;
    assert_eq!(
        ours.stdout,
        [stdin_line, a_line].concat(),
        "{}",
        show(&ours)
    );
    // --version and --help say what they are: ringread, as the tool.
    let v = run(&l.join("sha256sum"), d, &["--version"], b"");
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("ringread"),
        "{}",
        show(&v)
    );
    assert!(v.status.success());
}

/// With io_uring refused by the kernel (seccomp, as in a container), a stand-in reads with
/// pread(2) and says nothing about it: the tool's output, and nothing else, on both streams.
#[test]
fn a_stand_in_without_io_uring_gives_the_tools_output_alone() {
    let links = links();
    let fx = fixture();
    let (l, d) = (links.path(), fx.path());
    for (tool, args) in [
        ("sha256sum", FILES.to_vec()),
        ("b3sum", FILES.to_vec()),
        ("xxhsum", with_files(&["-H3"], FILES)),
    ] {
        let theirs = run(Path::new(tool), d, &args, b"");
        let mut cmd = Command::new(l.join(tool));
        cmd.current_dir(d).args(&args).stdin(Stdio::null());
        let ours = common::deny_io_uring(&mut cmd).output().unwrap();
        assert_eq!(ours.status.code(), Some(0), "{tool}: {}", show(&ours));
        assert!(ours.stdout == theirs.stdout, "{tool}: {}", show(&ours));
        assert!(ours.stderr.is_empty(), "{tool}: {}", show(&ours));
    }
}
