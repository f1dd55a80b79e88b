//! The command's progress bar (`--progress`, `--no-progress`), its shell completions
//! (`ringread completions SHELL`) and its man page (`ringread man`), run as a user runs them.
//!
//! Progress goes to standard error only: every test that forces it compares standard output byte
//! for byte with a run without it. Nothing here depends on timing: a forced bar draws at once and
//! draws its last state when the read ends, however short the read.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use tempfile::TempDir;

/// The longest any one process may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh directory on the real disk.
fn fixture() -> TempDir {
    tempfile::Builder::new()
        .prefix("cli-progress-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("cannot make a temporary directory in CARGO_TARGET_TMPDIR")
}

/// Deterministic bytes with newlines, different for each seed.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 61 == 0 {
                b'\n'
            } else {
                b'a' + (x % 26) as u8
            }
        })
        .collect()
}

/// Three files (a 3 MiB one: more than one chunk) and a tree of them under `tree/`.
fn files(dir: &Path) {
    fs::write(dir.join("one"), bytes(3 << 20, 1)).unwrap();
    fs::write(dir.join("two"), bytes(5000, 2)).unwrap();
    fs::write(dir.join("three"), b"").unwrap();
    fs::create_dir(dir.join("tree")).unwrap();
    for i in 0..5 {
        fs::write(dir.join(format!("tree/f{i}")), bytes(70_000 * i, i as u64)).unwrap();
    }
}

fn show(out: &Output) -> String {
    format!(
        "status: {}\nstdout ({} bytes):\n{}\nstderr:\n{}",
        out.status,
        out.stdout.len(),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(2000)]),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ringread ARGS` in `dir`, standard output and error each a pipe; fails on a panic or a signal.
fn ringread(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::cargo_bin("ringread").expect("the ringread binary is built");
    cmd.current_dir(dir).args(args).timeout(TIMEOUT);
    let out = cmd.output().expect("ringread runs");
    assert!(
        out.status.code().is_some() && !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "ringread {args:?}: panicked or killed\n{}",
        show(&out)
    );
    out
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = ringread(dir, args);
    assert!(
        out.status.success(),
        "ringread {args:?} failed\n{}",
        show(&out)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The commands whose output progress must not change: every kind of read (one file, several,
/// many at once with -r, a check list, standard output written by cat).
const COMMANDS: &[&[&str]] = &[
    &["sum", "-a", "sha256", "one"],
    &["sum", "one", "two", "three"],
    &["sum", "-a", "xxh3", "-r", "tree"],
    &["sum", "-a", "sha256", "-c", "list"],
    &["count", "one", "two"],
    &["count", "-r", "tree"],
    &["cat", "one", "two"],
];

fn check_list(dir: &Path) {
    let out = ok(dir, &["sum", "-a", "sha256", "one", "two", "three"]);
    fs::write(dir.join("list"), out.stdout).unwrap();
}

#[test]
fn forced_progress_goes_to_stderr_and_leaves_stdout_unchanged() {
    let dir = fixture();
    files(dir.path());
    check_list(dir.path());
    for cmd in COMMANDS {
        let plain = ok(dir.path(), cmd);
        assert_eq!(
            stderr(&plain),
            "",
            "{cmd:?} without --progress, stderr a pipe: silent"
        );
        let with: Vec<&str> = ["--progress"].iter().chain(cmd.iter()).copied().collect();
        let forced = ok(dir.path(), &with);
        assert!(
            forced.stdout == plain.stdout,
            "{with:?}: standard output differs from a run without --progress\nwith:\n{}\nwithout:\n{}",
            show(&forced),
            show(&plain)
        );
        let err = stderr(&forced);
        // The last line: everything read, of a total known from the files' sizes.
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.contains("B/s") && last.contains('/') && last.contains("[===================="),
            "{with:?}: no finished progress line on stderr:\n{err}"
        );
        assert!(
            !err.contains('\x1b') && !err.contains('\r'),
            "{with:?}: terminal escapes in a pipe:\n{err:?}"
        );
    }
}

#[test]
fn forced_progress_names_the_file_and_counts_bytes_and_files() {
    let dir = fixture();
    files(dir.path());
    let err = stderr(&ok(
        dir.path(),
        &["--progress", "sum", "-a", "sha256", "one"],
    ));
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("one ") && last.contains("3.00 MiB/3.00 MiB"),
        "one file: its name and its bytes of its size:\n{err}"
    );
    // Many files at once (-r): files done of the total, the tree's bytes (70000 * (0+1+2+3+4)).
    let err = stderr(&ok(dir.path(), &["sum", "-r", "tree", "--progress"]));
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("5/5 files tree/f4") && last.contains("683.59 KiB/683.59 KiB"),
        "-r: files done of the total and the bytes of all:\n{err}"
    );
    // One after another (standard input among them): the same, in one bar.
    let mut cmd = Command::cargo_bin("ringread").unwrap();
    let out = cmd
        .current_dir(dir.path())
        .args(["--progress", "count", "two", "-", "three"])
        .write_stdin(bytes(1000, 9))
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .last()
            .unwrap_or_default()
            .starts_with("3/3 files three"),
        "files read one by one share a bar:\n{err}"
    );
    // A pipe has no size: bytes and rate, no total and no bar.
    let out = Command::cargo_bin("ringread")
        .unwrap()
        .args(["sum", "--progress", "-"])
        .write_stdin(bytes(1000, 9))
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        out.status.success()
            && last.starts_with("- ")
            && last.contains(" 1000 B ")
            && !last.contains('['),
        "standard input, a pipe:\n{}",
        show(&out)
    );
    // An endless device under --max-bytes: the limit is its size.
    let err = stderr(&ok(
        dir.path(),
        &["--progress", "--max-bytes", "1M", "count", "/dev/zero"],
    ));
    assert!(
        err.lines()
            .last()
            .unwrap_or_default()
            .contains("1.00 MiB/1.00 MiB"),
        "/dev/zero under --max-bytes 1M:\n{err}"
    );
}

#[test]
fn no_progress_wins_and_check_quiet_or_status_silence_it() {
    let dir = fixture();
    files(dir.path());
    check_list(dir.path());
    for args in [
        &["--progress", "--no-progress", "sum", "one"][..],
        &["--no-progress", "--progress", "sum", "one"],
        &["sum", "one", "--no-progress", "--progress"],
        &["--progress", "sum", "-a", "sha256", "-c", "--quiet", "list"],
        &[
            "--progress",
            "sum",
            "-a",
            "sha256",
            "-c",
            "--status",
            "list",
        ],
        &[
            "--progress",
            "sum",
            "-a",
            "sha256",
            "-c",
            "-w",
            "--status",
            "list",
        ],
    ] {
        let out = ok(dir.path(), args);
        assert_eq!(stderr(&out), "", "{args:?}: progress shown\n{}", show(&out));
    }
    // --quiet leaves the verdicts of files that fail, and nothing else.
    fs::write(dir.path().join("two"), b"changed").unwrap();
    let out = ringread(
        dir.path(),
        &["--progress", "sum", "-a", "sha256", "-c", "--quiet", "list"],
    );
    assert_eq!(out.stdout, b"two: FAILED\n", "{}", show(&out));
    assert!(!stderr(&out).contains("B/s"), "{}", show(&out));
}

/// An error said while the bar is drawn (each algorithm's tool words it its own way) comes out
/// whole, on a line of its own, and the bar goes on.
#[test]
fn errors_while_progress_is_shown() {
    let dir = fixture();
    files(dir.path());
    for algo in ["sha256", "blake3", "xxh3"] {
        let args = ["--progress", "sum", "-a", algo, "one", "missing", "two"];
        let out = ringread(dir.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}\n{}", show(&out));
        let err = stderr(&out);
        let said: Vec<&str> = err.lines().filter(|l| l.contains("No such file")).collect();
        assert!(
            said.len() == 1 && said[0].contains("missing") && !said[0].contains("B/s"),
            "{args:?}: the error, once, whole and on a line of its own:\n{err}"
        );
        assert!(
            err.lines()
                .last()
                .unwrap_or_default()
                .starts_with("3/3 files"),
            "{err}"
        );
    }
}

/// On a terminal (a pseudo-terminal made by script(1)) a forced bar is drawn with the terminal's
/// escapes and cleared at the end, and standard output, the same terminal, still gets its line.
#[test]
fn forced_progress_on_a_terminal_is_cleared_at_the_end() {
    let dir = fixture();
    files(dir.path());
    let bin = env!("CARGO_BIN_EXE_ringread");
    let plain = ok(dir.path(), &["sum", "-a", "sha256", "one"]);
    let line = String::from_utf8(plain.stdout).unwrap();
    let out = std::process::Command::new("script")
        .current_dir(dir.path())
        .args([
            "-qec",
            &format!("{bin} --progress sum -a sha256 one"),
            "/dev/null",
        ])
        .output()
        .expect("script(1) (util-linux) runs");
    assert!(out.status.success(), "{}", show(&out));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("3.00 MiB") && screen.contains("\r\x1b[2K"),
        "no bar drawn and cleared on the terminal:\n{screen:?}"
    );
    // The hash line comes after the bar was cleared, on a line of its own.
    let hash = line.trim_end();
    let tail = screen.rsplit("\x1b[2K").next().unwrap_or_default();
    assert!(
        tail.trim_end().ends_with(hash),
        "the hash line is not whole after the bar:\n{screen:?}"
    );
}

#[test]
fn bench_shows_its_runs() {
    let dir = fixture();
    let args = [
        "bench",
        "--size",
        "256K",
        "--runs",
        "2",
        "--backends",
        "sync,uring",
    ];
    let plain = ok(dir.path(), &args);
    let err = stderr(&plain);
    assert!(err.contains("warm run 2/2"), "bench's own lines:\n{err}");
    assert!(
        !err.contains("timed runs"),
        "a bar into a pipe unasked:\n{err}"
    );
    let with: Vec<&str> = ["--progress"].iter().chain(args.iter()).copied().collect();
    let forced = ok(dir.path(), &with);
    let err = stderr(&forced);
    assert!(
        err.contains("warm run 2/2") && err.contains("bench: 4/4 timed runs"),
        "bench's lines and a bar of its runs:\n{err}"
    );
    assert!(!forced.stdout.is_empty(), "the report is on stdout");
}

#[test]
fn completions_for_every_shell() {
    let dir = fixture();
    let out = ok(dir.path(), &["completions", "bash"]);
    let bash = String::from_utf8(out.stdout).unwrap();
    assert!(
        bash.contains("complete -F _ringread") && bash.contains("ringread,sum)"),
        "not a bash completion script for ringread:\n{bash}"
    );
    for word in [
        "sum",
        "count",
        "cat",
        "bench",
        "completions",
        "man",
        "--progress",
        "--algo",
    ] {
        assert!(bash.contains(word), "bash script lacks {word}");
    }
    // bash itself reads it without error and then completes the subcommands.
    let script = format!(
        "{bash}\nCOMP_WORDS=(ringread s); COMP_CWORD=1; COMP_LINE='ringread s'; COMP_POINT=10; \
         _ringread ringread s ringread; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let run = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash runs");
    assert!(run.status.success(), "{}", show(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "sum\n",
        "{}",
        show(&run)
    );
    for (shell, mark) in [
        ("zsh", "#compdef ringread"),
        ("fish", "complete -c ringread"),
        ("elvish", "edit:completion:arg-completer[ringread]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = ok(dir.path(), &["completions", shell]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(mark) && text.contains("sum"),
            "{shell}:\n{text}"
        );
    }
    let out = ringread(dir.path(), &["completions", "tcsh"]);
    assert!(
        !out.status.success(),
        "an unknown shell is refused\n{}",
        show(&out)
    );
}

#[test]
fn man_page_is_roff_and_lists_the_commands() {
    let dir = fixture();
    let out = ok(dir.path(), &["man"]);
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH ringread 1"), "no .TH header:\n{page}");
    for word in [
        ".SH NAME",
        ".SH SYNOPSIS",
        "ringread\\-sum(1)",
        "ringread\\-man(1)",
        "\\-\\-progress",
    ] {
        assert!(page.contains(word), "the page lacks {word:?}:\n{page}");
    }
    // groff reads it without a warning, and the text says what ringread is.
    let render = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(page.as_bytes())?;
            child.wait_with_output()
        })
        .expect("groff (groff-base) runs");
    assert!(
        render.status.success() && render.stderr.is_empty(),
        "{}",
        show(&render)
    );

    // Every page into a directory.
    let pages = dir.path().join("man1");
    ok(dir.path(), &["man", "--dir", pages.to_str().unwrap()]);
    for name in [
        "ringread.1",
        "ringread-sum.1",
        "ringread-count.1",
        "ringread-cat.1",
    ] {
        let text = fs::read_to_string(pages.join(name)).unwrap_or_default();
        assert!(text.contains(".TH"), "{name} missing or not roff");
    }
    let sum = fs::read_to_string(pages.join("ringread-sum.1")).unwrap();
    assert!(
        sum.contains("\\-\\-check"),
        "ringread-sum.1 lacks --check:\n{sum}"
    );
}
