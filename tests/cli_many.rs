//! Many files at once from the command line: `-r`, `--files-from`, `--files0-from`, against
//! `xargs -0 sha256sum` / `wc -lc` / `cat` on the same list in the same order, byte for byte.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
    // Byte for byte: xxhsum 0.8.1 writes XXH3 as `XXH3 (name) = hex`, and so does ringread.
    assert!(got.stdout == peer.stdout);
}

// ---------------------------------------------------------------------------------------------
// Helpers of the tests below: peers run on the same list, compared byte for byte.
// ---------------------------------------------------------------------------------------------

fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    // Readable by the user the non-root tests run as.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringread"))
}

/// `ringread ARGS` in `dir`, arguments of any bytes.
fn ours(dir: &Path, args: &[&OsStr], input: Option<&[u8]>) -> Output {
    run(bin().args(args), dir, input)
}

/// The locale the peers run in: ringread shows names as coreutils does in a UTF-8 locale (UTF-8
/// characters as they are; control characters and bytes that are not UTF-8 escaped).
const LOCALE: &str = "C.UTF-8";

/// `cmd` in [`LOCALE`], which must exist (glibc 2.35 and later build it in).
fn in_locale(cmd: &mut Command) -> &mut Command {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        let out = Command::new("locale")
            .arg("charmap")
            .env("LC_ALL", LOCALE)
            .output()
            .expect("locale(1)");
        assert_eq!(
            lossy(&out.stdout).trim(),
            "UTF-8",
            "the peers are compared in {LOCALE}, which this system lacks"
        );
    });
    cmd.env("LC_ALL", LOCALE)
}

/// A peer tool in `dir`, in [`LOCALE`], with `args`.
fn peer(dir: &Path, tool: &str, args: &[&OsStr], input: Option<&[u8]>) -> Output {
    run(in_locale(&mut Command::new(tool)).args(args), dir, input)
}

/// `flags`, then `--` and `names` if there are any.
fn with_names<'a>(flags: &[&'a str], names: &'a [PathBuf]) -> Vec<&'a OsStr> {
    let mut v: Vec<&OsStr> = flags.iter().map(|f| OsStr::new(*f)).collect();
    if !names.is_empty() {
        v.push(OsStr::new("--"));
        v.extend(names.iter().map(|n| n.as_os_str()));
    }
    v
}

fn os<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|a| OsStr::new(*a)).collect()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A peer's standard error as ringread words it: `tool: ` read as `ringread: `.
fn as_ours(stderr: &[u8], tool: &str) -> String {
    let prefix = format!("{tool}: ");
    lossy(stderr)
        .lines()
        .map(|l| match l.strip_prefix(&prefix) {
            Some(rest) => format!("ringread: {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect()
}

/// Byte-for-byte equality, reported at the first line that differs.
fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let a: Vec<&[u8]> = got.split(|&b| b == b'\n').collect();
    let b: Vec<&[u8]> = want.split(|&b| b == b'\n').collect();
    let i = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let show = |l: Option<&&[u8]>| l.map(|l| lossy(&l[..l.len().min(300)]));
    panic!(
        "{what}: output differs at line {} ({} bytes, {} lines; expected {} bytes, {} lines)\n \
         got:  {:?}\n want: {:?}",
        i + 1,
        got.len(),
        a.len(),
        want.len(),
        b.len(),
        show(a.get(i)),
        show(b.get(i)),
    );
}

/// ringread did what `tool` did: the same standard output byte for byte, the same exit status, and
/// the same standard error once `tool: ` is read as `ringread: `.
fn assert_like(what: &str, got: &Output, theirs: &Output, tool: &str) {
    assert_bytes(what, &got.stdout, &theirs.stdout);
    assert_eq!(
        got.status.code(),
        theirs.status.code(),
        "{what}: exit status differs from {tool}'s\n{}",
        lossy(&got.stderr)
    );
    assert_eq!(
        lossy(&got.stderr),
        as_ours(&theirs.stderr, tool),
        "{what}: standard error differs from {tool}'s (prefix aside)"
    );
}

fn describe(args: &[&OsStr]) -> String {
    let words: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!("ringread {}", words.join(" "))
}

/// The regular files below `root/top` as `-r` must list them, relative to `root`, found here
/// without walkdir: each directory's entries sorted by their names' bytes, depth first; links,
/// FIFOs and the like left out.
fn walk(root: &Path, top: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(root.join(top))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    entries.sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    let mut out = Vec::new();
    for e in entries {
        let rel = top.join(e.file_name());
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk(root, &rel));
        } else if t.is_file() {
            out.push(rel);
        }
    }
    out
}

/// Names each ended by a NUL, as `find -print0` writes them.
fn list0(names: &[PathBuf]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        out.extend_from_slice(n.as_os_str().as_bytes());
        out.push(0);
    }
    out
}

/// Names one a line.
fn list_lines(names: &[PathBuf]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        assert!(!n.as_os_str().as_bytes().contains(&b'\n'), "{n:?}");
        out.extend_from_slice(n.as_os_str().as_bytes());
        out.push(b'\n');
    }
    out
}

fn has_newline(p: &Path) -> bool {
    p.as_os_str().as_bytes().contains(&b'\n')
}

const K: usize = 1024;

/// Sizes on every edge of a page, of a 64 KiB chunk and of the default 256 KiB chunk.
const EDGES: [usize; 11] = [
    0,
    1,
    4095,
    4096,
    4097,
    64 * K - 1,
    64 * K,
    64 * K + 1,
    256 * K - 1,
    256 * K,
    256 * K + 1,
];

/// Names with spaces, a newline, a carriage return, a tab, a backslash, bytes that are not UTF-8,
/// a leading dash, UTF-8, a quote.
const ODD: [&[u8]; 10] = [
    b"plain",
    b"with space",
    b"new\nline",
    b"carriage\rreturn",
    b"tab\there",
    b"back\\slash",
    b"not utf8 \xff\xfe",
    b"-dash",
    b"\xc3\xa9t\xc3\xa9",
    b"it's",
];

/// A tree `root/t`: in every directory a file of each edge size, named with one of `ODD`; in `a`,
/// files of more than 16 chunks at 64 KiB and at 256 KiB (the lanes read those, not the slots);
/// directories whose names sort differently from the paths below them (`a` < `a b` < `a-b`, and in
/// `a`: `c` < `c d` < `c.txt`, where `find | sort` puts `a b/...` and `a/c d` first); a FIFO and
/// links, which a walk skips.
fn edge_tree(root: &Path) {
    let t = root.join("t");
    let dirs: [&[u8]; 6] = [b"a", b"a b", b"a-b", b"a/c", b"nl\ndir", b"\xffdir"];
    let mut seed = 0u64;
    for d in dirs {
        let dir = t.join(OsStr::from_bytes(d));
        fs::create_dir_all(&dir).unwrap();
        for (i, &size) in EDGES.iter().enumerate() {
            let mut name = format!("{i:02} ").into_bytes();
            name.extend_from_slice(ODD[(i + seed as usize) % ODD.len()]);
            let data = common::random_bytes(size, seed);
            fs::write(dir.join(OsStr::from_bytes(&name)), data).unwrap();
            seed += 1;
        }
    }
    fs::write(t.join("a/c d"), b"c d\n").unwrap();
    fs::write(t.join("a/c.txt"), b"c.txt\n").unwrap();
    fs::write(
        t.join("a/lanes 64K"),
        common::random_bytes(16 * 64 * K + 1, 1000),
    )
    .unwrap();
    fs::write(
        t.join("a/lanes 256K"),
        common::random_bytes(16 * 256 * K + 1, 1001),
    )
    .unwrap();
    std::os::unix::fs::symlink("a/c d", t.join("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", t.join("dangling")).unwrap();
    common::mkfifo(&t.join("fifo"));
}

/// The reading options every comparison runs with: the defaults, the edges of a 64 KiB chunk, a
/// page-sized budget, one lane, and no io_uring at all.
const OPTION_SETS: [&[&str]; 5] = [
    &[],
    &["--chunk-size", "64K"],
    &["--chunk-size", "4K", "--depth", "1"],
    &["--threads", "1"],
    &["--backend", "sync"],
];

// ---------------------------------------------------------------------------------------------
// The walk's order, and every way of listing against sha256sum, wc and cat.
// ---------------------------------------------------------------------------------------------

/// `-r` lists each directory's entries sorted by their names' bytes, depth first, the operands in
/// the order given: not `find | sort`'s order of whole paths.
#[test]
fn a_walk_lists_each_directorys_entries_by_name_bytes_operands_in_order() {
    let root = tempdir();
    let r = root.path();
    for (name, data) in [
        ("t/a/c/y", "1"),
        ("t/a/c d", "2"),
        ("t/a/c.txt", "3"),
        ("t/a/x", "4"),
        ("t/a b/x", "5"),
        ("t/a-b/x", "6"),
        ("t/B", "7"),
        ("t/b", "8"),
        ("u/z", "9"),
        ("f", "10"),
    ] {
        fs::create_dir_all(r.join(name).parent().unwrap()).unwrap();
        fs::write(r.join(name), data).unwrap();
    }
    fs::write(r.join(OsStr::from_bytes(b"t/\xff")), "11").unwrap();
    let want: Vec<PathBuf> = [
        &b"u/z"[..],
        b"f",
        b"t/B",
        b"t/a/c/y",
        b"t/a/c d",
        b"t/a/c.txt",
        b"t/a/x",
        b"t/a b/x",
        b"t/a-b/x",
        b"t/b",
        b"t/\xff",
    ]
    .iter()
    .map(|n| PathBuf::from(OsStr::from_bytes(n)))
    .collect();
    let mut walked = walk(r, Path::new("u"));
    walked.push("f".into());
    walked.extend(walk(r, Path::new("t")));
    assert_eq!(walked, want, "the test's own walk");
    let theirs = peer(r, "sha256sum", &with_names(&[], &want), None);
    assert_eq!(theirs.status.code(), Some(0));
    for opts in OPTION_SETS {
        let mut args = os(opts);
        args.extend(os(&["sum", "-a", "sha256", "-r", "u", "f", "t"]));
        assert_like(
            &describe(&args),
            &ours(r, &args, None),
            &theirs,
            "sha256sum",
        );
    }
    let cat = ours(r, &os(&["cat", "-r", "u", "f", "t"]), None);
    let concatenated: Vec<u8> = want
        .iter()
        .flat_map(|n| fs::read(r.join(n)).unwrap())
        .collect();
    assert_bytes("ringread cat -r u f t", &cat.stdout, &concatenated);
    assert_eq!(cat.status.code(), Some(0));
    let mut sorted = want[3..].to_vec();
    sorted.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    assert_ne!(
        sorted,
        want[3..],
        "this tree is meant to tell a walk by directory from a sort of whole paths"
    );
}

/// Every edge size and odd name, listed every way (`-r`, `--files0-from` a file and standard
/// input, `--files-from`), under every set of reading options: `sum` is `sha256sum`, `count` is
/// `wc -lc --files0-from`, `cat` is `cat`, byte for byte, with the same exit status and nothing
/// said about the FIFO and links the walk skips.
#[test]
fn edge_sizes_and_odd_names_every_way_of_listing_like_sha256sum_wc_and_cat() {
    let root = tempdir();
    let r = root.path();
    edge_tree(r);
    let names = walk(r, Path::new("t"));
    assert!(names.len() > 60, "{}", names.len());
    let nul_list = list0(&names);
    fs::write(r.join("list0"), &nul_list).unwrap();
    let plain: Vec<PathBuf> = names.iter().filter(|n| !has_newline(n)).cloned().collect();
    assert!(plain.len() < names.len() && plain.len() > 40);
    fs::write(r.join("list"), list_lines(&plain)).unwrap();

    let sha = peer(r, "sha256sum", &with_names(&[], &names), None);
    let sha_plain = peer(r, "sha256sum", &with_names(&[], &plain), None);
    let wc = peer(r, "wc", &os(&["-lc", "--files0-from=list0"]), None);
    let wc_piped = peer(r, "wc", &os(&["-lc", "--files0-from=-"]), Some(&nul_list));
    let cat = peer(r, "cat", &with_names(&[], &names), None);
    for p in [&sha, &sha_plain, &wc, &wc_piped, &cat] {
        assert_eq!(p.status.code(), Some(0), "{}", lossy(&p.stderr));
    }
    let total: usize = names
        .iter()
        .map(|n| fs::metadata(r.join(n)).unwrap().len() as usize)
        .sum();
    assert_eq!(cat.stdout.len(), total);

    for opts in OPTION_SETS {
        let check = |rest: &[&str], input: Option<&[u8]>, theirs: &Output, tool: &str| {
            let mut args = os(opts);
            args.extend(os(rest));
            let what = format!(
                "{}{}",
                describe(&args),
                if input.is_some() { " < list" } else { "" }
            );
            assert_like(&what, &ours(r, &args, input), theirs, tool);
        };
        check(&["sum", "-a", "sha256", "-r", "t"], None, &sha, "sha256sum");
        check(
            &["sum", "-a", "sha256", "--files0-from", "list0"],
            None,
            &sha,
            "sha256sum",
        );
        check(
            &["sum", "-a", "sha256", "--files0-from", "-"],
            Some(&nul_list),
            &sha,
            "sha256sum",
        );
        check(
            &["sum", "-a", "sha256", "--files-from", "list"],
            None,
            &sha_plain,
            "sha256sum",
        );
        check(&["count", "--files0-from", "list0"], None, &wc, "wc");
        check(
            &["count", "--files0-from", "-"],
            Some(&nul_list),
            &wc_piped,
            "wc",
        );
        check(&["cat", "--files0-from", "list0"], None, &cat, "cat");
        check(&["cat", "-r", "t"], None, &cat, "cat");
    }
}

/// The same tree against b3sum and xxhsum. b3sum prints a name that is not UTF-8 lossily (and
/// before 1.3.1 leaves a carriage return unescaped), xxhsum 0.8.1 escapes no name, where ringread
/// keeps sha256sum's rules: those lines are compared by their digest only; every other line byte
/// for byte.
#[test]
fn edge_sizes_and_odd_names_like_b3sum_and_xxhsum() {
    let root = tempdir();
    let r = root.path();
    edge_tree(r);
    let names = walk(r, Path::new("t"));
    fs::write(r.join("list0"), list0(&names)).unwrap();
    let needs_escape = |n: &Path| {
        n.as_os_str()
            .as_bytes()
            .iter()
            .any(|b| b"\n\r\\".contains(b))
    };
    let utf8 = |n: &Path| std::str::from_utf8(n.as_os_str().as_bytes()).is_ok();

    // BLAKE3 (the default) against b3sum: one line per name (escaped names stay on one line).
    let theirs = peer(r, "b3sum", &with_names(&[], &names), None);
    assert_eq!(theirs.status.code(), Some(0), "{}", lossy(&theirs.stderr));
    for opts in [&[][..], &["--chunk-size", "64K"], &["--threads", "1"]] {
        let mut args = os(opts);
        args.extend(os(&["sum", "--files0-from", "list0"]));
        let got = ours(r, &args, None);
        assert_eq!(got.status.code(), Some(0), "{}", lossy(&got.stderr));
        assert!(got.stderr.is_empty(), "{}", lossy(&got.stderr));
        let a: Vec<&[u8]> = got.stdout.split(|&b| b == b'\n').collect();
        let b: Vec<&[u8]> = theirs.stdout.split(|&b| b == b'\n').collect();
        assert_eq!(a.len(), names.len() + 1, "{opts:?}");
        assert_eq!(b.len(), names.len() + 1);
        for (i, n) in names.iter().enumerate() {
            if utf8(n) && !n.as_os_str().as_bytes().contains(&b'\r') {
                assert_eq!(lossy(a[i]), lossy(b[i]), "{opts:?} {n:?}");
            } else {
                let hex = |l: &[u8]| lossy(l).trim_start_matches('\\')[..64].to_string();
                assert_eq!(hex(a[i]), hex(b[i]), "{opts:?} {n:?}");
            }
        }
    }

    // xxhsum: names it writes as they are, byte for byte; XXH3 as `--tag`, XXH128 as `-H2` lines.
    let plain: Vec<PathBuf> = names.iter().filter(|n| !needs_escape(n)).cloned().collect();
    fs::write(r.join("plain0"), list0(&plain)).unwrap();
    for (algo, flag, tag) in [("xxh3", "-H3", true), ("xxh128", "-H2", false)] {
        // -q: no progress messages on standard error.
        let plain_args: Vec<&OsStr> = [OsStr::new("-q"), OsStr::new(flag)]
            .into_iter()
            .chain(plain.iter().map(|n| n.as_os_str()))
            .collect();
        let theirs = peer(r, "xxhsum", &plain_args, None);
        assert_eq!(theirs.status.code(), Some(0), "{}", lossy(&theirs.stderr));
        let mut args = os(&["sum", "-a", algo, "--files0-from", "plain0"]);
        if tag {
            args.push(OsStr::new("--tag"));
        }
        let got = ours(r, &args, None);
        assert_like(&describe(&args), &got, &theirs, "xxhsum");
        // The names sha256sum would escape: xxhsum writes them as they are, and so does ringread.
        let odd: Vec<&PathBuf> = names.iter().filter(|n| needs_escape(n)).collect();
        assert!(odd.len() > 5);
        let mut args = os(&["sum", "-a", algo]);
        args.extend(odd.iter().map(|n| n.as_os_str()));
        let got = ours(r, &args, None);
        assert_eq!(got.status.code(), Some(0));
        let peer_args: Vec<&OsStr> = [OsStr::new("-q"), OsStr::new(flag)]
            .into_iter()
            .chain(odd.iter().map(|n| n.as_os_str()))
            .collect();
        let theirs = peer(r, "xxhsum", &peer_args, None);
        assert!(
            got.stdout == theirs.stdout,
            "{}\nvs\n{}",
            lossy(&got.stdout),
            lossy(&theirs.stdout)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// io_uring refused by the kernel (seccomp, as in a container): the same output.
// ---------------------------------------------------------------------------------------------

const FALLBACK: &str = "ringread: io_uring is unavailable, reading with pread(2) instead: ";

#[test]
fn with_io_uring_refused_by_seccomp_every_command_gives_the_same_output() {
    let root = tempdir();
    let r = root.path();
    edge_tree(r);
    let names = walk(r, Path::new("t"));
    let mut bad = names.clone();
    bad.insert(0, "missing first".into());
    bad.insert(20, "t".into());
    bad.push("missing\nlast".into());
    fs::write(r.join("list0"), list0(&names)).unwrap();
    fs::write(r.join("bad0"), list0(&bad)).unwrap();
    let commands: [&[&str]; 7] = [
        &["sum", "-a", "sha256", "-r", "t"],
        &["sum", "-r", "t"],
        &["sum", "-a", "xxh3", "--chunk-size", "64K", "-r", "t"],
        &["count", "--files0-from", "list0"],
        &["cat", "--files0-from", "list0"],
        &["sum", "-a", "sha256", "--files0-from", "bad0"],
        &["count", "--files0-from", "bad0"],
    ];
    for args in commands {
        let args = os(args);
        let what = describe(&args);
        let normal = ours(r, &args, None);
        let refused = run(common::deny_io_uring(&mut bin()).args(&args), r, None);
        assert_bytes(&what, &refused.stdout, &normal.stdout);
        assert_eq!(refused.status.code(), normal.status.code(), "{what}");
        // One line says why, once; everything else is said as without seccomp.
        let err = lossy(&refused.stderr);
        let (why, rest): (Vec<&str>, Vec<&str>) =
            err.lines().partition(|l| l.starts_with(FALLBACK));
        assert_eq!(why.len(), 1, "{what}: {err}");
        assert!(why[0].contains("EPERM"), "{what}: {err}");
        let rest: String = rest.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(rest, lossy(&normal.stderr), "{what}");
    }
    // The comparison is between two ways of reading: io_uring here, pread(2) under seccomp.
    let args = os(&["-v", "sum", "-a", "sha256", "--files0-from", "list0"]);
    let normal = lossy(&ours(r, &args, None).stderr);
    assert!(normal.contains("by io_uring"), "{normal}");
    let refused = run(common::deny_io_uring(&mut bin()).args(&args), r, None);
    let refused = lossy(&refused.stderr);
    assert!(
        refused.contains("by pread(2)") && !refused.contains("by io_uring"),
        "{refused}"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors among many files: each said in its place, the rest read, exit 1 at the end.
// ---------------------------------------------------------------------------------------------

/// Good files (hundreds, so that many are in flight) among bad ones: missing (one with a newline,
/// a tab, a byte that is not UTF-8 in its name), a directory, a dangling link, a link loop, a link
/// to a good file. `sum` as `sha256sum`, `count` as `wc -lc`, `cat` as `cat`: standard output,
/// standard error (each error on one line, the name quoted as coreutils quotes it) and exit status.
#[test]
fn errors_among_many_files_are_said_in_place_like_sha256sum_wc_and_cat() {
    let root = tempdir();
    let r = root.path();
    let e = r.join("e");
    fs::create_dir(&e).unwrap();
    let mut names: Vec<PathBuf> = Vec::new();
    for i in 0..300usize {
        let name = match i % 50 {
            7 => format!("g{i} with space"),
            8 => format!("g{i}\nnewline"),
            9 => format!("g{i}\\backslash"),
            _ => format!("g{i}"),
        };
        fs::write(
            e.join(&name),
            common::random_bytes(i * 997 % 70_000, i as u64),
        )
        .unwrap();
        names.push(Path::new("e").join(name));
    }
    fs::create_dir(e.join("dir")).unwrap();
    std::os::unix::fs::symlink("nowhere", e.join("dangling")).unwrap();
    std::os::unix::fs::symlink("self", e.join("self")).unwrap();
    std::os::unix::fs::symlink("g5", e.join("link")).unwrap();
    fs::write(e.join("empty"), b"").unwrap();
    let bad: [&[u8]; 10] = [
        b"e/missing",
        b"e/dir",
        b"e/dangling",
        b"e/self",
        b"e/link",
        b"e/gone\nnewline",
        b"e/gone\ttab",
        b"e/gone \xff byte",
        b"e/empty",
        b"e/missing last",
    ];
    for (k, b) in bad.iter().enumerate() {
        let at = if k == 0 { 0 } else { (k * 37).min(names.len()) };
        names.insert(at, PathBuf::from(OsStr::from_bytes(b)));
    }
    names.push(PathBuf::from("e/missing last"));
    fs::write(r.join("list0"), list0(&names)).unwrap();

    let sha = peer(r, "sha256sum", &with_names(&[], &names), None);
    let wc = peer(r, "wc", &os(&["-lc", "--files0-from=list0"]), None);
    let cat = peer(r, "cat", &with_names(&[], &names), None);
    for p in [&sha, &wc, &cat] {
        assert_eq!(p.status.code(), Some(1));
    }
    for opts in [
        &[][..],
        &["--threads", "1"],
        &["--chunk-size", "4K", "--depth", "2"],
        &["--backend", "sync"],
    ] {
        for (cmd, theirs, tool) in [
            (&["sum", "-a", "sha256"][..], &sha, "sha256sum"),
            (&["count"], &wc, "wc"),
            (&["cat"], &cat, "cat"),
        ] {
            let mut args = os(opts);
            args.extend(os(cmd));
            args.extend(os(&["--files0-from", "list0"]));
            let got = ours(r, &args, None);
            assert_like(&describe(&args), &got, theirs, tool);
        }
    }
    // Spelled out: the names with a newline, a tab, a byte that is not UTF-8, quoted as
    // sha256sum quotes them (b3sum's mode writes them as b3sum does: as they are).
    let got = ours(
        r,
        &os(&["sum", "-a", "sha256", "--files0-from", "list0"]),
        None,
    );
    let err = lossy(&got.stderr);
    for line in [
        "ringread: e/missing: No such file or directory\n",
        "ringread: e/dir: Is a directory\n",
        "ringread: e/dangling: No such file or directory\n",
        "ringread: e/self: Too many levels of symbolic links\n",
        "ringread: 'e/gone'$'\\n''newline': No such file or directory\n",
        "ringread: 'e/gone'$'\\t''tab': No such file or directory\n",
        "ringread: 'e/gone '$'\\377'' byte': No such file or directory\n",
    ] {
        assert!(err.contains(line), "{line:?} not in:\n{err}");
    }
    assert_eq!(
        err.matches("ringread: 'e/missing last'").count(),
        2,
        "{err}"
    );
}

/// As a user who cannot read some files or enter some directories: in a list, each is said where
/// it comes and the others are read, as sha256sum and wc do for the same user.
#[test]
fn unreadable_files_in_a_list_as_a_non_root_user() {
    let root = tempdir();
    let r = root.path();
    let mut names = Vec::new();
    for i in 0..200usize {
        let p = Path::new("f").join(format!("{i}"));
        fs::create_dir_all(r.join("f")).unwrap();
        fs::write(r.join(&p), common::random_bytes(i * 313, i as u64)).unwrap();
        fs::set_permissions(r.join(&p), fs::Permissions::from_mode(0o644)).unwrap();
        names.push(p);
    }
    fs::set_permissions(r.join("f"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(r.join("locked")).unwrap();
    fs::write(r.join("locked/in"), b"x").unwrap();
    fs::set_permissions(r.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(r.join("f/50"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(r.join("f/150"), fs::Permissions::from_mode(0o200)).unwrap();
    names.insert(100, "locked/in".into());
    fs::write(r.join("list0"), list0(&names)).unwrap();
    fs::set_permissions(r.join("list0"), fs::Permissions::from_mode(0o644)).unwrap();
    let nobody = |program: &str, args: &[&OsStr]| {
        run(
            in_locale(&mut Command::new("setpriv"))
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(program)
                .args(args),
            r,
            None,
        )
    };
    let sha = nobody("sha256sum", &with_names(&[], &names));
    let wc = nobody("wc", &os(&["-lc", "--files0-from=list0"]));
    let err = lossy(&sha.stderr);
    assert_eq!(sha.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("Permission denied").count(), 3, "{err}");
    for opts in [&[][..], &["--threads", "1"]] {
        for (cmd, theirs, tool) in [
            (&["sum", "-a", "sha256"][..], &sha, "sha256sum"),
            (&["count"], &wc, "wc"),
        ] {
            let mut args = os(opts);
            args.extend(os(cmd));
            args.extend(os(&["--files0-from", "list0"]));
            let got = nobody(env!("CARGO_BIN_EXE_ringread"), &args);
            assert_like(
                &format!("as nobody: {}", describe(&args)),
                &got,
                theirs,
                tool,
            );
        }
    }
    fs::set_permissions(r.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Files that change after the walk.
// ---------------------------------------------------------------------------------------------

/// A file that vanishes between the walk and its open, others that shrink, grow, are emptied or
/// replaced: each is read as it is when opened (the vanished one said in its place), as sha256sum
/// and wc read them afterwards. The changes are made while ringread reads standard input, named
/// first: by then its walk is done (the walk comes before any read) and no file has been opened
/// (they are read in order after it). So the changes fall between the walk and the open, every
/// time, with no timing.
#[test]
fn files_that_vanish_shrink_or_grow_between_the_walk_and_the_open() {
    let root = tempdir();
    let r = root.path();
    let t = r.join("t");
    fs::create_dir(&t).unwrap();
    for i in 0..100usize {
        fs::write(
            t.join(format!("f{i:03}")),
            common::random_bytes(i * 997 % 50_000, i as u64),
        )
        .unwrap();
    }
    // Sizes that keep the total at 7 digits before and after (wc and count size their columns
    // from the sizes when they start, which the changes come after).
    let originals: [(&str, usize); 7] = [
        ("gone", 10_000),
        ("shrinks", 300_000),
        ("grows", 3_000),
        ("emptied", 200_000),
        ("replaced", 5_000),
        ("lanes grow", 2 << 20),
        ("lanes shrink", 2 << 20),
    ];
    let stdin_data = common::random_bytes(1 << 20, 77);
    for (cmd, tool, tool_flags) in [
        (&["sum", "-a", "sha256"][..], "sha256sum", &[][..]),
        (&["count"], "wc", &["-lc"]),
    ] {
        for (k, (name, len)) in originals.iter().enumerate() {
            fs::write(t.join(name), common::random_bytes(*len, 1000 + k as u64)).unwrap();
        }
        let mut names: Vec<PathBuf> = vec!["-".into()];
        names.extend(walk(r, Path::new("t")));
        let mut args = os(cmd);
        args.extend(os(&["-r", "-", "t"]));
        let mut child = bin()
            .args(&args)
            .current_dir(r)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // More than a pipe holds: this returns once ringread reads standard input.
        stdin.write_all(&stdin_data[..256 << 10]).unwrap();
        fs::remove_file(t.join("gone")).unwrap();
        let open = |n: &str| fs::OpenOptions::new().append(true).open(t.join(n)).unwrap();
        open("shrinks").set_len(1_000).unwrap();
        open("grows")
            .write_all(&common::random_bytes(100_001, 5))
            .unwrap();
        open("emptied").set_len(0).unwrap();
        fs::write(t.join("new"), b"the replacement\n").unwrap();
        fs::rename(t.join("new"), t.join("replaced")).unwrap();
        open("lanes grow")
            .write_all(&common::random_bytes(1 << 20, 6))
            .unwrap();
        open("lanes shrink").set_len(100).unwrap();
        stdin.write_all(&stdin_data[256 << 10..]).unwrap();
        drop(stdin);
        let got = child.wait_with_output().unwrap();
        let theirs = peer(r, tool, &with_names(tool_flags, &names), Some(&stdin_data));
        assert_eq!(theirs.status.code(), Some(1));
        assert_like(&describe(&args), &got, &theirs, tool);
        assert!(
            lossy(&got.stderr).contains("ringread: t/gone: No such file or directory"),
            "{}",
            lossy(&got.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// FIFOs and links.
// ---------------------------------------------------------------------------------------------

/// A FIFO named in a list is read when its turn comes (with a writer, as sha256sum, wc and cat read
/// it); met in a walk, it is skipped, said only under -v.
#[test]
fn a_fifo_named_in_a_list_is_read_in_its_turn_and_skipped_in_a_walk() {
    let root = tempdir();
    let r = root.path();
    fs::create_dir(r.join("t")).unwrap();
    let mut names: Vec<PathBuf> = (0..60usize)
        .map(|i| {
            let p = PathBuf::from(format!("t/{i:02}"));
            fs::write(r.join(&p), common::random_bytes(i * 1500, i as u64)).unwrap();
            p
        })
        .collect();
    let regular = names.clone();
    common::mkfifo(&r.join("t/fifo"));
    names.insert(30, "t/fifo".into());
    fs::write(r.join("list0"), list0(&names)).unwrap();
    let data: Vec<u8> = b"through the fifo\n".repeat(1000);
    for (cmd, tool, tool_flags) in [
        (&["sum", "-a", "sha256"][..], "sha256sum", &[][..]),
        (&["count"], "wc", &["-lc"]),
        (&["cat"], "cat", &[]),
    ] {
        let mut args = os(cmd);
        args.extend(os(&["--files0-from", "list0"]));
        let writer = common::FifoWriter::start(&r.join("t/fifo"), data.clone());
        let got = ours(r, &args, None);
        drop(writer);
        let writer = common::FifoWriter::start(&r.join("t/fifo"), data.clone());
        let theirs = peer(r, tool, &with_names(tool_flags, &names), None);
        drop(writer);
        assert_eq!(theirs.status.code(), Some(0));
        assert_like(&describe(&args), &got, &theirs, tool);
    }
    // In a walk: skipped, silently; said under -v.
    let theirs = peer(r, "sha256sum", &with_names(&[], &regular), None);
    let got = ours(r, &os(&["sum", "-a", "sha256", "-r", "t"]), None);
    assert_like("ringread sum -a sha256 -r t", &got, &theirs, "sha256sum");
    let got = ours(r, &os(&["-v", "sum", "-a", "sha256", "-r", "t"]), None);
    assert_bytes("-v", &got.stdout, &theirs.stdout);
    let err = lossy(&got.stderr);
    assert_eq!(
        err.matches("ringread: t/fifo: not a regular file (a FIFO, socket or device), skipped\n")
            .count(),
        1,
        "{err}"
    );
}

/// Without -L, links met in a walk are skipped (said under -v); with -L they are followed, into
/// linked directories too, and a loop, a dangling link and a link to itself are each said once, in
/// walk order, while the walk goes on; exit 1.
#[test]
fn links_in_a_walk_skipped_without_l_followed_with_it_loops_said() {
    let root = tempdir();
    let r = root.path();
    let t = r.join("t");
    fs::create_dir_all(t.join("d")).unwrap();
    fs::write(t.join("a"), b"a\n").unwrap();
    fs::write(t.join("d/f"), b"f\n").unwrap();
    fs::write(t.join("z"), b"z\n").unwrap();
    let link = |to: &str, at: &str| std::os::unix::fs::symlink(to, t.join(at)).unwrap();
    link("..", "d/up");
    link("a", "la");
    link("d", "ld");
    link("nowhere", "dangling");
    link("self", "self");
    let sha = |names: &[&str]| {
        let names: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
        peer(r, "sha256sum", &with_names(&[], &names), None)
    };

    let got = ours(r, &os(&["sum", "-a", "sha256", "-r", "t"]), None);
    assert_like(
        "sum -r t",
        &got,
        &sha(&["t/a", "t/d/f", "t/z"]),
        "sha256sum",
    );
    let got = ours(r, &os(&["-v", "sum", "-a", "sha256", "-r", "t"]), None);
    let err = lossy(&got.stderr);
    for l in ["t/d/up", "t/dangling", "t/la", "t/ld", "t/self"] {
        assert!(
            err.contains(&format!(
                "ringread: {l}: a symbolic link, skipped (-L follows it)\n"
            )),
            "{l}: {err}"
        );
    }

    let got = ours(r, &os(&["sum", "-a", "sha256", "-r", "-L", "t"]), None);
    let want = sha(&["t/a", "t/d/f", "t/la", "t/ld/f", "t/z"]);
    assert_bytes("sum -r -L t", &got.stdout, &want.stdout);
    assert_eq!(got.status.code(), Some(1));
    let err = lossy(&got.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    for (line, (name, why)) in lines.iter().zip([
        ("t/d/up", "loop"),
        ("t/dangling", "No such file or directory"),
        ("t/ld/up", "loop"),
        ("t/self", "Too many levels of symbolic links"),
    ]) {
        assert!(
            line.starts_with(&format!("ringread: {name}: ")) && line.contains(why),
            "{name}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// sum -c of a long list.
// ---------------------------------------------------------------------------------------------

/// A check list of hundreds of files (odd names, some escaped), some since removed, changed,
/// replaced by a directory or made unreadable, with comments, blank and malformed lines: the same
/// messages in list order, warnings and exit status as `sha256sum -c`, with every flag, as root and
/// as a user who cannot read some of them.
#[test]
fn sum_check_of_hundreds_of_files_like_sha256sum_c() {
    let root = tempdir();
    let r = root.path();
    let mut names = Vec::new();
    for i in 0..320usize {
        let dir: &[u8] = [&b"s 0"[..], b"s\\1", b"s\n2", b"s3"][i % 4];
        let mut name = dir.to_vec();
        name.push(b'/');
        name.extend_from_slice(format!("f{i}").as_bytes());
        name.extend_from_slice([&b""[..], b" sp", b"\rcr", b"\xff"][i / 4 % 4]);
        let p = PathBuf::from(OsStr::from_bytes(&name));
        fs::create_dir_all(r.join(&p).parent().unwrap()).unwrap();
        fs::set_permissions(
            r.join(&p).parent().unwrap(),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        fs::write(
            r.join(&p),
            common::random_bytes(i * 1009 % 80_000, i as u64),
        )
        .unwrap();
        fs::set_permissions(r.join(&p), fs::Permissions::from_mode(0o644)).unwrap();
        names.push(p);
    }
    let gnu = peer(r, "sha256sum", &with_names(&[], &names[..300]), None);
    let bsd = peer(r, "sha256sum", &with_names(&["--tag"], &names[300..]), None);
    assert_eq!(gnu.status.code(), Some(0));
    let mut list = b"# made by sha256sum\n\n".to_vec();
    list.extend_from_slice(&gnu.stdout);
    list.extend_from_slice(b"not a checksum line\n");
    list.extend_from_slice(&bsd.stdout);
    fs::write(r.join("list"), &list).unwrap();
    fs::set_permissions(r.join("list"), fs::Permissions::from_mode(0o644)).unwrap();
    for (i, n) in names.iter().enumerate() {
        let p = r.join(n);
        match i {
            _ if i % 50 == 7 => fs::remove_file(&p).unwrap(),
            _ if i % 60 == 11 => {
                fs::OpenOptions::new()
                    .append(true)
                    .open(&p)
                    .unwrap()
                    .write_all(b"!")
                    .unwrap();
            }
            _ if i % 70 == 13 => {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap()
            }
            123 | 301 => {
                fs::remove_file(&p).unwrap();
                fs::create_dir(&p).unwrap();
            }
            _ => {}
        }
    }
    // Of --quiet, --status and --warn, the last given wins (sha256sum's rule).
    let flag_sets: [&[&str]; 11] = [
        &[],
        &["--quiet"],
        &["--status"],
        &["--ignore-missing"],
        &["--warn"],
        &["--strict"],
        &["--quiet", "--ignore-missing"],
        &["--warn", "--strict", "--quiet"],
        &["--quiet", "--warn"],
        &["--status", "-w"],
        &["--warn", "--status"],
    ];
    for as_nobody in [false, true] {
        let runner = |program: &str, args: &[&OsStr]| {
            let mut cmd = if as_nobody {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
                c
            } else {
                Command::new(program)
            };
            run(in_locale(&mut cmd).args(args), r, None)
        };
        for flags in flag_sets {
            let mut args = os(&["-c"]);
            args.extend(os(flags));
            args.push(OsStr::new("list"));
            let theirs = runner("sha256sum", &args);
            assert_eq!(theirs.status.code(), Some(1));
            let mut ours_args = os(&["sum", "-a", "sha256"]);
            ours_args.extend(&args);
            let got = runner(env!("CARGO_BIN_EXE_ringread"), &ours_args);
            let what = format!(
                "{}{}",
                if as_nobody { "as nobody: " } else { "" },
                describe(&ours_args)
            );
            assert_bytes(&what, &got.stdout, &theirs.stdout);
            assert_eq!(got.status.code(), theirs.status.code(), "{what}");
            let want = as_ours(&theirs.stderr, "sha256sum");
            assert_eq!(lossy(&got.stderr), want, "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// count with lists, as wc --files0-from.
// ---------------------------------------------------------------------------------------------

/// `count --files0-from` as `wc -lc --files0-from`: a list in a file or on standard input
/// (redirected from a file, whose names wc sizes ahead, or a pipe, whose it cannot: its columns are
/// 1 wide), an empty name said with the list's name and its number and counted for the total, a
/// name with a newline quoted, "-" refused in a list read from standard input.
#[test]
fn count_lists_like_wc_files0_from() {
    let root = tempdir();
    let r = root.path();
    fs::write(r.join("a"), common::random_bytes(100_000, 1)).unwrap();
    fs::write(r.join("b"), b"b\n").unwrap();
    fs::write(r.join("n\nl"), b"x\ny\n").unwrap();
    fs::create_dir(r.join("d")).unwrap();
    let lists: [&[u8]; 6] = [
        b"a\0b\0",
        b"a\0\0b\0n\nl\0missing\0d\0",
        b"a\0\0",
        b"a\0",
        b"a\0-\0b\0",
        b"\0",
    ];
    for (k, list) in lists.iter().enumerate() {
        let name = format!("list {k}");
        fs::write(r.join(&name), list).unwrap();
        let what = format!("list {:?}", lossy(list));
        // Named.
        let theirs = peer(
            r,
            "wc",
            &os(&["-lc", &format!("--files0-from={name}")]),
            None,
        );
        let got = ours(r, &os(&["count", "--files0-from", &name]), None);
        assert_like(&format!("{what} named"), &got, &theirs, "wc");
        // Standard input from a pipe.
        let theirs = peer(r, "wc", &os(&["-lc", "--files0-from=-"]), Some(list));
        let got = ours(r, &os(&["count", "--files0-from", "-"]), Some(list));
        assert_like(&format!("{what} piped"), &got, &theirs, "wc");
        // Standard input redirected from the file.
        let from_file = |cmd: &mut Command| {
            let f = fs::File::open(r.join(&name)).unwrap();
            let out = cmd.current_dir(r).stdin(Stdio::from(f)).output().unwrap();
            assert!(!lossy(&out.stderr).contains("panicked"));
            out
        };
        let theirs = from_file(in_locale(&mut Command::new("wc")).args(["-lc", "--files0-from=-"]));
        let got = from_file(bin().args(["count", "--files0-from", "-"]));
        assert_like(&format!("{what} < file"), &got, &theirs, "wc");
    }
}

// ---------------------------------------------------------------------------------------------
// Few descriptors: opens wait for a descriptor another run holds; lanes whose ring finds no
// descriptor read with pread(2).
// ---------------------------------------------------------------------------------------------

fn small_files(r: &Path, n: usize) {
    fs::create_dir(r.join("s")).unwrap();
    for i in 0..n {
        fs::write(
            r.join(format!("s/{i:03}")),
            common::random_bytes(i * 13, i as u64),
        )
        .unwrap();
    }
}

/// EMFILE must never reach the user: with two lanes and a `ulimit -n` that leaves them few
/// descriptors, each lane's opens wait for a descriptor. With 7, ringread --threads 2 has exactly
/// one left for files (0-2, the interrupt eventfd, one ring per lane).
#[test]
fn emfile_never_reaches_the_user_with_several_lanes_and_few_descriptors() {
    let root = tempdir();
    let r = root.path();
    small_files(r, 300);
    let want = ours(
        r,
        &os(&["--threads", "2", "sum", "-a", "xxh3", "-r", "s"]),
        None,
    );
    assert_eq!(want.status.code(), Some(0));
    for n in 7..=12 {
        let got = sh(
            r,
            &format!(
                "ulimit -n {n} && exec {} --threads 2 sum -a xxh3 -r s",
                env!("CARGO_BIN_EXE_ringread")
            ),
        );
        let what = format!("ulimit -n {n}; ringread --threads 2 sum -a xxh3 -r s");
        assert_eq!(lossy(&got.stderr), "", "{what}");
        assert_eq!(got.status.code(), Some(0), "{what}");
        assert_bytes(&what, &got.stdout, &want.stdout);
    }
}

/// Files larger than 16 chunks, among many, go to the lanes; with the many-files ring holding a
/// descriptor, the lanes' ring may find none left: they must then read another way (pread(2), as a
/// single file does), not fail each file with "io_uring is unavailable".
#[test]
fn files_for_the_lanes_are_read_when_the_lanes_ring_finds_no_descriptor() {
    let root = tempdir();
    let r = root.path();
    fs::write(r.join("big1"), common::random_bytes(4 << 20 | 1, 1)).unwrap();
    fs::write(r.join("small"), b"small\n").unwrap();
    fs::write(r.join("big2"), common::random_bytes(4 << 20 | 1, 2)).unwrap();
    let args = "--threads 1 sum -a xxh3 big1 small big2";
    let want = ours(r, &os(&args.split(' ').collect::<Vec<_>>()), None);
    assert_eq!(want.status.code(), Some(0));
    for n in 6..=9 {
        let got = sh(
            r,
            &format!(
                "ulimit -n {n} && exec {} {args}",
                env!("CARGO_BIN_EXE_ringread")
            ),
        );
        let what = format!("ulimit -n {n}; ringread {args}");
        let err = lossy(&got.stderr);
        // Saying that it reads with pread(2) instead is fine; an error is not.
        assert!(
            err.lines().all(|l| l.starts_with(FALLBACK)),
            "{what}: {err}"
        );
        assert_eq!(got.status.code(), Some(0), "{what}: {err}");
        assert_bytes(&what, &got.stdout, &want.stdout);
    }
}
