//! `bench --tree`: the ways of reading a tree of many small files, side by side, warm and cold,
//! with the same processor: ringread's many-files engine ([`Reader::read_each`](crate::Reader::read_each)),
//! ringread one file at a time, a pool of threads doing `std::fs::read` (what `xargs -P` does),
//! `tokio::fs` and tokio-uring with many files at once.
//!
//! Every run of every way hands back each file's result (a digest, or counts); they are compared
//! file by file with the first run's, and the benchmark fails with
//! [`Error::Mismatch`](crate::Error::Mismatch) on any difference: that is its correctness check.
//! The files are read in the walk's order: each directory's entries sorted by name, byte by byte
//! (as `ringread sum -r` reads them), regular files only.

mod cache;
mod check;
mod generate;
mod tokio;
mod ways;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::tokio::TREE_IN_FLIGHT;
pub use generate::{
    make_tree, tree_sizes, TreeStats, SIZE_CAP, SIZE_MU, SIZE_SIGMA, TREE_DIRS, TREE_SEED,
};

use self::tokio::{TokioFsMany, TokioUringMany};
use super::metrics::Snapshot;
use super::report::median;
use super::syscalls::SyscallCounter;
use super::{check_interrupt, BenchConfig, BenchSource, CacheMode};
use super::{CacheReport, FileInfo, Machine, MethodResult, Report, Sample};
use crate::error::{Error, Result};
use crate::options::ReadOptions;
use cache::{drop_all, on_tmpfs, warm_all};
use check::{check, combined, Reference};
use ways::{Many, OneByOne, Threads, TreeWay};

/// Every way `bench --tree` knows, in the order it reports them.
pub const TREE_METHODS: [&str; 5] = ["many", "one-by-one", "threads", "tokio-fs", "tokio-uring"];

/// Threads of the `threads` way unless told otherwise: 8, as `xargs -P8`.
pub const DEFAULT_POOL_THREADS: usize = 8;

/// Files of the generated tree unless told otherwise.
pub const DEFAULT_TREE_FILES: usize = 10_000;

/// Files each way reads once, untimed, before its timed runs: its rings, threads and runtime are
/// then set up, as a long-lived program's would be.
const WARM_UP_FILES: usize = 100;

/// Files whose residency is measured before a cold run (spread over the tree; measuring more
/// would bring their metadata back into the cache).
const RESIDENCY_SAMPLE: usize = 16;

/// What `bench --tree` reads, and how many threads the `threads` way has.
#[derive(Debug, Clone)]
pub struct TreeConfig {
    /// The tree; `None`: a tree of `files` files is generated under `$TMPDIR` ([`make_tree`]) and
    /// removed afterwards (also when the benchmark fails or is interrupted).
    pub dir: Option<PathBuf>,
    /// Files of the generated tree.
    pub files: usize,
    /// The seed of the generated tree.
    pub seed: u64,
    /// Threads of the `threads` way.
    pub pool_threads: usize,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig {
            dir: None,
            files: DEFAULT_TREE_FILES,
            seed: TREE_SEED,
            pool_threads: DEFAULT_POOL_THREADS,
        }
    }
}

/// The tree `bench --tree` read, and how its ways read it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeInfo {
    /// The tree's directory.
    pub dir: String,
    /// Regular files read in each run.
    pub files: u64,
    /// Their total size, bytes.
    pub bytes: u64,
    /// How the tree was generated (`None`: it was given).
    pub generated: Option<String>,
    /// The order the files are read in (and their results compared in).
    pub order: String,
    /// Threads of the `threads` way.
    pub pool_threads: usize,
    /// Files the `tokio-fs` and `tokio-uring` ways keep in flight.
    pub in_flight: usize,
    /// How system calls were counted.
    pub syscalls: String,
    /// What each way's `checksum` is.
    pub checksum: String,
}

/// Removes the generated tree when dropped (the benchmark done, failed or interrupted).
struct RemoveTree(PathBuf);

impl Drop for RemoveTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The regular files below `dir` in walk order (each directory's entries sorted by name, byte by
/// byte; symbolic links not followed), and their total size.
fn walk(dir: &Path) -> Result<(Vec<PathBuf>, u64)> {
    let mut paths = Vec::new();
    let mut total = 0;
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            Error::Open {
                path,
                source: e.into(),
            }
        })?;
        if entry.file_type().is_file() {
            let meta = entry.metadata().map_err(|e| Error::Open {
                path: entry.path().to_path_buf(),
                source: e.into(),
            })?;
            total += meta.len();
            paths.push(entry.into_path());
        }
    }
    Ok((paths, total))
}

/// A way, or why it is not run.
type Way = (String, std::result::Result<Box<dyn TreeWay>, String>);

fn make_ways(config: &BenchConfig, opts: &ReadOptions) -> Vec<Way> {
    let cancel = config.cancel.as_ref();
    config
        .methods
        .iter()
        .map(|name| {
            let way: std::result::Result<Box<dyn TreeWay>, String> = match name.as_str() {
                "many" => Ok(Box::new(Many::new(opts, cancel))),
                "one-by-one" => Ok(Box::new(OneByOne::new(opts, cancel))),
                "threads" => Ok(Box::new(Threads {
                    threads: config.tree.pool_threads.max(1),
                    cancel: cancel.cloned(),
                })),
                "tokio-fs" => TokioFsMany::new(cancel.cloned())
                    .map(|w| Box::new(w) as Box<dyn TreeWay>)
                    .map_err(|e| format!("no tokio runtime: {e}")),
                "tokio-uring" => TokioUringMany::new(cancel.cloned())
                    .map(|w| Box::new(w) as Box<dyn TreeWay>)
                    .map_err(|e| format!("no tokio-uring runtime: {e}")),
                _ => unreachable!("names are checked before"),
            };
            (name.clone(), way)
        })
        .collect()
}

/// Runs `bench --tree`.
pub(crate) fn run(config: &BenchConfig, progress: &mut dyn Write) -> Result<Report> {
    check_config(config)?;
    // First, before the benchmark starts any thread: the counter counts the threads started after.
    let counter = SyscallCounter::open();
    let (dir, generated, _remove) = the_tree(config, progress)?;
    let (paths, total) = walk(&dir)?;
    if paths.is_empty() {
        return Err(Error::InvalidOptions(format!(
            "{}: no regular file below it",
            dir.display()
        )));
    }
    let paths: Arc<[PathBuf]> = paths.into();
    let opts = super::read_options(config, false)?;
    let mut ways = make_ways(config, &opts);
    warm_up(&mut ways, &paths, config)?;
    let t = TreeRun {
        config,
        opts: &opts,
        dir: &dir,
        paths: &paths,
        total,
        counter: counter.as_ref().ok(),
    };
    let mut reference = None;
    let mut results = Vec::new();
    for &cache in &config.caches {
        results.push(run_cache(&t, cache, &mut ways, &mut reference, progress)?);
    }
    let syscalls = match &counter {
        Ok(_) => "every system call of the process (a perf counter on the raw_syscalls:sys_enter \
                  tracepoint, inherited by every thread the benchmark starts)"
            .to_string(),
        Err(why) => format!(
            "read(2)-family calls (syscr of /proc/self/io) plus ringread's io_uring_enter calls \
             only: opens, statx and closes are not counted, and tokio-uring's enters cannot be \
             ('-'). Counting every call needs a perf counter, which could not be opened: {why}"
        ),
    };
    let n = paths.len();
    Ok(Report {
        source: BenchSource::Tree,
        machine: Machine::this(),
        file: FileInfo {
            paths: vec![dir.display().to_string()],
            bytes: total,
            generated: generated.is_some(),
        },
        processor: config.processor,
        chunk_size: opts.chunk_size(),
        depth: opts.depth(),
        runs: config.runs,
        results,
        notes: tree_notes(config, &opts, &syscalls),
        tree: Some(TreeInfo {
            dir: dir.display().to_string(),
            files: n as u64,
            bytes: total,
            generated,
            order: "each directory's entries sorted by name, byte by byte (as `ringread sum -r`); \
                    regular files only, symbolic links not followed"
                .into(),
            pool_threads: config.tree.pool_threads.max(1),
            in_flight: TREE_IN_FLIGHT,
            syscalls,
            checksum: "XXH3 of each file's result (the hex digest; for null the byte count, for \
                       count 'lines bytes'), one line per file in walk order"
                .into(),
        }),
        store: None,
    })
}

/// Refuses a way `--tree` does not know, and the direct cache state.
fn check_config(config: &BenchConfig) -> Result<()> {
    for m in &config.methods {
        if !TREE_METHODS.contains(&m.as_str()) {
            return Err(Error::InvalidOptions(format!(
                "unknown way '{m}' for --tree (expected one of {})",
                TREE_METHODS.join(", ")
            )));
        }
    }
    if config.caches.contains(&CacheMode::Direct) {
        return Err(Error::InvalidOptions(
            "--tree measures warm and cold; direct does not apply to its ways".into(),
        ));
    }
    Ok(())
}

/// The tree to read: the one given, or one generated under `$TMPDIR`, with how it was made and
/// the guard that removes it.
fn the_tree(
    config: &BenchConfig,
    progress: &mut dyn Write,
) -> Result<(PathBuf, Option<String>, Option<RemoveTree>)> {
    let tc = &config.tree;
    if let Some(d) = &tc.dir {
        return Ok((d.clone(), None, None));
    }
    let d = std::env::temp_dir().join(format!("ringread-bench-tree-{}", std::process::id()));
    if d.exists() {
        return Err(Error::Open {
            path: d,
            source: std::io::ErrorKind::AlreadyExists.into(),
        });
    }
    let _ = writeln!(
        progress,
        "generating a tree of {} files in {} ...",
        tc.files,
        d.display()
    );
    let remove = RemoveTree(d.clone());
    make_tree(&d, tc.files, tc.seed, config.cancel.as_ref())?;
    let how = format!(
        "{} files in {} directories, sizes exp(N({SIZE_MU}, {SIZE_SIGMA})) bytes at most \
         {SIZE_CAP}, random bytes (splitmix64, seed {}); removed afterwards",
        tc.files,
        TREE_DIRS.min(tc.files),
        tc.seed
    );
    Ok((d, Some(how), Some(remove)))
}

/// Each way that can run reads the first [`WARM_UP_FILES`] of `paths` once, untimed.
fn warm_up(ways: &mut [Way], paths: &Arc<[PathBuf]>, config: &BenchConfig) -> Result<()> {
    let first: Arc<[PathBuf]> = paths[..WARM_UP_FILES.min(paths.len())].into();
    let mut scratch = vec![String::new(); first.len()];
    for (_, way) in ways.iter_mut() {
        if let Ok(way) = way {
            way.run(&first, config.processor, &mut scratch)?;
        }
    }
    Ok(())
}

fn tree_notes(config: &BenchConfig, opts: &ReadOptions, syscalls: &str) -> Vec<String> {
    let lanes = opts.threads().unwrap_or_else(crate::ring::usable_cpus);
    vec![
        format!(
            "ways: many = Reader::read_each over the whole list, each path given as the walk's \
             regular file (Input::regular: no statx first) (up to {} files in flight through \
             io_uring, {lanes} lanes, buffer budget depth x chunk = {} x {} KiB); one-by-one = \
             Reader::read per file, one Reader; threads = {} std threads, each taking the \
             next file, std::fs::read, then the processor (what `find | xargs -P{}` does, with \
             threads); tokio-fs = tokio::fs::read, up to {TREE_IN_FLIGHT} tasks at once on a \
             multi-thread runtime; tokio-uring = open, statx, read_at, close through one \
             tokio-uring runtime (one thread), up to {TREE_IN_FLIGHT} tasks at once. Each reader \
             and runtime is made once and kept across runs (and has read the first {WARM_UP_FILES} \
             files once, untimed, before them); every file gets a fresh processor.",
            crate::reader::FILES_IN_FLIGHT,
            opts.depth(),
            opts.chunk_size() / 1024,
            config.tree.pool_threads.max(1),
            config.tree.pool_threads.max(1),
        ),
        "CPU: getrusage(RUSAGE_SELF): user + system time of every thread of the process, \
         io_uring's workers included."
            .into(),
        format!("calls: {syscalls}."),
        "checksum: every run of every way is compared with the first run, file by file; any \
         difference fails the benchmark (the column shows that each way's results were the same)."
            .into(),
    ]
}

/// What every cache state's runs share.
struct TreeRun<'a> {
    config: &'a BenchConfig,
    opts: &'a ReadOptions,
    dir: &'a Path,
    paths: &'a Arc<[PathBuf]>,
    total: u64,
    counter: Option<&'a SyscallCounter>,
}

/// The timed runs of one cache state: every way in turn, `runs` times.
fn run_cache(
    t: &TreeRun<'_>,
    cache: CacheMode,
    ways: &mut [Way],
    reference: &mut Option<Reference>,
    progress: &mut dyn Write,
) -> Result<CacheReport> {
    let TreeRun {
        config, dir, paths, ..
    } = *t;
    let mut results: Vec<MethodResult> = ways
        .iter()
        .map(|(name, w)| MethodResult::new(name, w.as_ref().err().map(String::as_str)))
        .collect();
    let n = paths.len();
    let sample: Vec<&PathBuf> = (0..RESIDENCY_SAMPLE.min(n))
        .map(|k| &paths[k * n / RESIDENCY_SAMPLE.min(n)])
        .collect();
    let tmpfs = on_tmpfs(dir);
    let mut partial: Option<String> = None;
    let mut residency = Vec::new();
    let mut out = vec![String::new(); n];
    for run in 0..config.runs {
        for ((name, way), r) in ways.iter_mut().zip(results.iter_mut()) {
            let Ok(way) = way else { continue };
            check_interrupt(config, dir)?;
            match cache {
                CacheMode::Cold => {
                    if let Some(why) = drop_all(paths)? {
                        partial.get_or_insert(why);
                    }
                    for p in &sample {
                        residency.push(super::residency(p).unwrap_or(f64::NAN));
                    }
                }
                _ => warm_all(paths)?,
            }
            let s = t.timed_run(name, &mut **way, &mut out, reference)?;
            r.checksum = Some(combined(&out));
            let _ = writeln!(
                progress,
                "{} run {}/{}: {name:<12} {:9.0} files/s {:6.2} GiB/s",
                cache.name(),
                run + 1,
                config.runs,
                s.files_per_s.unwrap_or(0.0),
                s.gib_per_s
            );
            r.samples.push(s);
        }
    }
    let mut report = CacheReport {
        cache,
        chunk_size: t.opts.chunk_size(),
        depth: t.opts.depth(),
        residency_before: (!residency.is_empty())
            .then(|| residency.iter().cloned().fold(0.0, f64::max)),
        preparation: Some(preparation(cache, partial.as_deref(), tmpfs)),
        methods: results,
    };
    report.summarize();
    summarize_tree(&mut report);
    Ok(report)
}

impl TreeRun<'_> {
    /// One timed run of the way `way` (called `name`) over every file, results in `out`: its
    /// sample, or an error if it did not read every byte or a file's result is not the first
    /// run's (`reference`).
    fn timed_run(
        &self,
        name: &str,
        way: &mut dyn TreeWay,
        out: &mut [String],
        reference: &mut Option<Reference>,
    ) -> Result<Sample> {
        let (paths, total, counter) = (self.paths, self.total, self.counter);
        out.iter_mut().for_each(String::clear);
        let snap = Snapshot::now();
        let calls_before = counter.map(SyscallCounter::count);
        let bytes = way.run(paths, self.config.processor, out)?;
        // Less the read of the counter itself.
        let calls = counter.map(|c| (c.count() - calls_before.unwrap_or(0)).saturating_sub(1));
        let cost = snap.cost();
        if bytes != total {
            return Err(Error::InvalidOptions(format!(
                "{name} read {bytes} bytes of {total} below {}: did the tree change during the \
                 benchmark?",
                self.dir.display()
            )));
        }
        check(reference, name, paths, out)?;
        let n = paths.len();
        let mut s = Sample::from_cost(bytes, &cost, name == "tokio-uring");
        if counter.is_some() {
            s.syscalls = calls;
        }
        s.files = Some(n as u64);
        s.files_per_s = Some(n as f64 / cost.seconds.max(1e-9));
        Ok(s)
    }
}

/// How the files were put in `cache`'s state before each run (`partial`: why a cold drop was
/// only partial; `tmpfs`: the tree is on tmpfs).
fn preparation(cache: CacheMode, partial: Option<&str>, tmpfs: bool) -> String {
    match cache {
        CacheMode::Cold => {
            let mut p = match partial {
                None => "sync; echo 3 > /proc/sys/vm/drop_caches before each run: page cache, \
                         dentries and inodes dropped"
                    .to_string(),
                Some(why) => format!(
                    "cold in part only ({why}): posix_fadvise(DONTNEED) on every file before each \
                     run dropped their pages, but their dentries and inodes stayed cached"
                ),
            };
            if tmpfs {
                p.push_str(
                    "; the tree is on tmpfs, whose pages cannot be dropped: cold is warm here",
                );
            }
            p
        }
        _ => "every file read once right before each run".to_string(),
    }
}

/// The per-file figures of each way, and the ratio to `one-by-one`.
fn summarize_tree(report: &mut CacheReport) {
    for m in &mut report.methods {
        let s = &m.samples;
        if s.is_empty() {
            continue;
        }
        let fps: Vec<f64> = s.iter().filter_map(|x| x.files_per_s).collect();
        m.files_per_s = median(fps.clone());
        m.min_files_per_s = fps.iter().cloned().reduce(f64::min);
        m.max_files_per_s = fps.iter().cloned().reduce(f64::max);
        m.cpu_seconds = median(s.iter().map(|x| x.cpu_seconds).collect());
        m.syscalls_per_file = if s.iter().all(|x| x.syscalls.is_some()) {
            median(
                s.iter()
                    .map(|x| x.syscalls.unwrap_or(0) as f64 / x.files.unwrap_or(1).max(1) as f64)
                    .collect(),
            )
        } else {
            None
        };
    }
    let base = report
        .methods
        .iter()
        .find(|m| m.name == "one-by-one")
        .and_then(|m| m.files_per_s);
    for m in &mut report.methods {
        m.ratio_to_one_by_one = match (m.files_per_s, base) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
    }
}
