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
    let part = if ours.status.code() != theirs.status.code() {
        "exit status"
    } else if ours.stdout != theirs.stdout {
        "standard output"
    } else if ours.stderr != without_progress(&theirs.stderr) {
        "standard error"
    } else {
        return None;
    };
    Some(format!(
        "{what}: {part}\nours: {}\ntheirs: {}\n",
        show(&ours),
        show(&theirs)
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
