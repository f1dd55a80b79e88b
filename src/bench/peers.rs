//! `bench --peers`: the standard tools as processes, each beside ringread's own command doing the
//! same work (`ringread sum -a xxh3` beside `xxhsum -H3`, `ringread count` beside `wc -l`, ...), on
//! the same files from the same cache state, run in turn (ours, its peer, ours, its peer ...).
//!
//! Each process is timed from spawn to exit, and its CPU time, page faults and peak resident
//! memory come from `wait4(2)`'s `rusage`, so a process pays for everything it does, start-up
//! included. A tool that is not on `PATH` is said and skipped; the others run.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::cache::{drop_cache, warm, CacheMode};
use super::report::{MethodResult, Sample};
use crate::error::Result;

/// ringread's own command, and the standard tool that does the same work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPair {
    /// The row of ringread's command (`$ ringread sum -a xxh3`).
    pub ours: String,
    /// ringread's arguments before the files.
    pub ours_args: Vec<String>,
    /// The row of the standard tool (`$ xxhsum -H3`).
    pub peer: String,
    /// The program looked up on `PATH`.
    pub program: String,
    /// The program's arguments before the files (`fio`: its whole command line, files included).
    pub peer_args: Vec<String>,
    /// Whether standard output is discarded (`cat` and `fio`) rather than read for the result.
    pub discard_output: bool,
}

/// The pairs `--peers` runs in a cache state: the hashes and the line count through the page
/// cache, and `ringread cat` beside `fio` (io_uring, the same block size and depth) in every state,
/// with `O_DIRECT` for `direct`.
pub fn peer_pairs(
    cache: CacheMode,
    files: &[PathBuf],
    chunk: usize,
    depth: usize,
) -> Vec<PeerPair> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let pair = |ours: &[&str], program: &str, peer: &[&str], discard: bool| PeerPair {
        ours: format!("$ ringread {}", ours.join(" ")),
        ours_args: s(ours),
        peer: format!("$ {}", [&[program], peer].concat().join(" ")),
        program: program.to_string(),
        peer_args: s(peer),
        discard_output: discard,
    };
    let direct = cache == CacheMode::Direct;
    let mut pairs = Vec::new();
    if !direct {
        pairs.push(pair(&["sum", "-a", "xxh3"], "xxhsum", &["-H3"], false));
        pairs.push(pair(&["sum"], "b3sum", &[], false));
        pairs.push(pair(&["sum", "-a", "sha256"], "sha256sum", &[], false));
        pairs.push(pair(&["count"], "wc", &["-l"], false));
    }
    let (bs, qd) = (chunk.to_string(), depth.to_string());
    let mut cat = vec!["cat", "--chunk-size", &bs, "--depth", &qd];
    if direct {
        cat.push("--direct");
    }
    let mut p = pair(&cat, "fio", &["--ioengine=io_uring"], true);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    p.peer_args = vec![
        "--name=peer".into(),
        format!("--filename={}", names.join(":")),
        "--rw=read".into(),
        format!("--bs={chunk}"),
        format!("--iodepth={depth}"),
        "--ioengine=io_uring".into(),
        format!("--direct={}", u8::from(direct)),
        // The cache state is made before each run; fio must not drop it itself.
        "--invalidate=0".into(),
        "--output=/dev/null".into(),
    ];
    p.peer = format!("$ fio io_uring bs={chunk} qd={depth}");
    pairs.push(p);
    if cache == CacheMode::Dontcache {
        // ringread's side reads uncached; the peers have no such option and read as cold.
        for p in &mut pairs {
            p.ours_args.push("--dontcache".into());
            p.ours.push_str(" --dontcache");
        }
    }
    pairs
}

/// Where `program` is on `PATH`, if it is.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// One command: what to run and how its row reads.
struct Proc {
    row: String,
    program: PathBuf,
    args: Vec<String>,
    discard_output: bool,
}

/// What one process cost, from `wait4`.
struct Ran {
    seconds: f64,
    rusage: libc::rusage,
    output: String,
}

/// Runs every pair `runs` times in turn on `files` from `cache`'s state; returns one row each
/// (ours, then its peer), in pair order. `ringread` is ringread's executable.
pub(crate) fn run_peers(
    ringread: &Path,
    cache: CacheMode,
    files: &[PathBuf],
    total: u64,
    pairs: &[PeerPair],
    runs: usize,
    progress: &mut dyn Write,
) -> Result<Vec<MethodResult>> {
    let mut procs: Vec<Option<Proc>> = Vec::new();
    let mut rows = Vec::new();
    for p in pairs {
        let with_files = |mut args: Vec<String>| {
            args.extend(files.iter().map(|f| f.display().to_string()));
            args
        };
        procs.push(Some(Proc {
            row: p.ours.clone(),
            program: ringread.to_path_buf(),
            args: with_files(p.ours_args.clone()),
            discard_output: p.discard_output,
        }));
        let mut row = MethodResult::new(&p.ours, None);
        row.command = Some(format!("{} {}", ringread.display(), p.ours_args.join(" ")));
        rows.push(row);
        let found = find_on_path(&p.program);
        let skipped = found.is_none().then(|| {
            let why = format!("{} not found on PATH; skipped", p.program);
            let _ = writeln!(progress, "{}: peer {why}", cache.name());
            why
        });
        let mut row = MethodResult::new(&p.peer, skipped.as_deref());
        row.command = Some(format!("{} {}", p.program, p.peer_args.join(" ")));
        rows.push(row);
        procs.push(found.map(|program| Proc {
            row: p.peer.clone(),
            program,
            args: if p.program == "fio" {
                p.peer_args.clone()
            } else {
                with_files(p.peer_args.clone())
            },
            discard_output: p.discard_output,
        }));
    }
    for run in 0..runs {
        for (proc, row) in procs.iter_mut().zip(rows.iter_mut()) {
            let Some(pr) = proc else { continue };
            for f in files {
                match cache {
                    CacheMode::Warm => warm(f),
                    CacheMode::Cold | CacheMode::Direct | CacheMode::Dontcache => drop_cache(f),
                }
                .map_err(super::ways::open_error(f))?;
            }
            match run_one(pr) {
                Ok(ran) => {
                    let _ = writeln!(
                        progress,
                        "{} run {}/{}: {:<24} {:7.3} s",
                        cache.name(),
                        run + 1,
                        runs,
                        pr.row,
                        ran.seconds
                    );
                    row.checksum = result_of(&ran.output);
                    row.samples.push(Sample {
                        cached_after: super::cache::cached_share(files),
                        ..sample(total, &ran)
                    });
                }
                Err(why) => {
                    let _ = writeln!(progress, "{}: {}: {why}; skipped", cache.name(), pr.row);
                    row.skipped = Some(why);
                    row.samples.clear();
                    *proc = None;
                }
            }
        }
    }
    Ok(rows)
}

/// Spawns the command, reads its output to the end and reaps it with `wait4`.
fn run_one(p: &Proc) -> std::result::Result<Ran, String> {
    // Linux counts in a child's ru_maxrss the peak of the memory it was spawned from (this
    // process's, shared until exec): reset that peak to what is resident now (VmHWM, Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = Instant::now();
    let mut child = Command::new(&p.program)
        .args(&p.args)
        .stdin(Stdio::null())
        .stdout(if p.discard_output {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", p.program.display()))?;
    let mut output = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut output);
    }
    let mut errors = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut errors);
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct wait4 fills in.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped (std's `Child` waits only when asked to, and
    // is not asked); wait4 writes the status and the rusage we pass.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
    let seconds = start.elapsed().as_secs_f64();
    if reaped != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!(
            "exited with status {status:#x}: {}",
            errors.lines().next().unwrap_or("")
        ));
    }
    Ok(Ran {
        seconds,
        rusage,
        output,
    })
}

/// The result a tool printed for the first file: the hash or count of its first line
/// (`XXH3 (f) = hex` and `hex  f` alike), `None` when its output was discarded.
fn result_of(output: &str) -> Option<String> {
    let line = output.lines().next()?;
    match line.split_once(" = ") {
        Some((_, hex)) => Some(hex.trim().to_string()),
        None => line.split_whitespace().next().map(str::to_string),
    }
}

fn sample(bytes: u64, r: &Ran) -> Sample {
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let ru = &r.rusage;
    Sample {
        bytes,
        seconds: r.seconds,
        gib_per_s: bytes as f64 / (1u64 << 30) as f64 / r.seconds.max(1e-9),
        cpu_seconds: secs(ru.ru_utime) + secs(ru.ru_stime),
        syscalls: None,
        faults: (ru.ru_minflt + ru.ru_majflt) as u64,
        switches: ru.ru_nvcsw as u64,
        // ru_maxrss is in KiB on Linux.
        peak_rss_bytes: Some(ru.ru_maxrss as u64 * 1024),
        files: None,
        files_per_s: None,
        all_syscalls: None,
        cached_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tools_result_is_its_first_lines_hash_or_count() {
        assert_eq!(
            result_of("XXH3 (big) = 0123abcd\n").as_deref(),
            Some("0123abcd")
        );
        assert_eq!(
            result_of("0123abcd  big\nffff  other\n").as_deref(),
            Some("0123abcd")
        );
        assert_eq!(result_of("  42 big\n").as_deref(), Some("42"));
        assert_eq!(result_of(""), None);
    }

    #[test]
    fn direct_pairs_only_fio_with_o_direct() {
        let files = [PathBuf::from("/f")];
        let pairs = peer_pairs(CacheMode::Direct, &files, 1 << 20, 16);
        assert_eq!(pairs.len(), 1);
        assert!(pairs[0].ours_args.contains(&"--direct".to_string()));
        assert!(pairs[0].peer_args.contains(&"--direct=1".to_string()));
        assert!(pairs[0].peer_args.contains(&"--bs=1048576".to_string()));
        let warm = peer_pairs(CacheMode::Warm, &files, 1 << 20, 16);
        let programs: Vec<&str> = warm.iter().map(|p| p.program.as_str()).collect();
        assert_eq!(programs, ["xxhsum", "b3sum", "sha256sum", "wc", "fio"]);
    }
}
