//! The side-by-side harness behind `ringread bench`: every way of reading, the same file, the same
//! processor, runs alternating between ways (A B C A B C ...) so that drift hits all alike.
//!
//! Before the timed runs each way reads the file once with an xxh3 processor: that checksum goes in the
//! report, so it shows that every way read the same bytes.
//!
//! `--tree` ([`BenchSource::Tree`], module `tree`) compares the ways of reading a tree of many
//! small files instead: files per second, GiB/s, CPU and system calls per file, warm and cold.

mod cache;
mod metrics;
mod peers;
mod random;
mod report;
mod store;
mod stream;
mod svg;
mod syscalls;
mod tree;
pub mod ways;

use std::io::Write;
use std::path::PathBuf;

pub use cache::{drop_cache, drop_caches, residency, warm, CacheMode};
pub use peers::{find_on_path, peer_pairs, PeerPair};
pub use random::{
    random_offsets, random_table, run_random, RandomConfig, RANDOM_METHODS, RANDOM_SEED,
};
pub use report::{CacheReport, FileInfo, Machine, MethodResult, Report, Sample};
pub use store::{
    run_store, StoreConfig, StoreInfo, DEFAULT_OBJECT_SIZE, DEFAULT_STORE_FILE_SIZE,
    DEFAULT_STORE_OBJECTS, DEFAULT_STORE_RANGES, STORES, STORE_RANGES_FILE, STORE_SEED,
    STORE_WORKS,
};
pub use stream::STREAM_METHODS;
pub use svg::write_svg;
pub use tree::{
    make_tree, tree_sizes, TreeConfig, TreeInfo, TreeStats, DEFAULT_POOL_THREADS,
    DEFAULT_TREE_FILES, SIZE_CAP, SIZE_MU, SIZE_SIGMA, TREE_DIRS, TREE_IN_FLIGHT, TREE_METHODS,
    TREE_SEED,
};

/// What the benchmark reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchSource {
    /// Files (given, or one generated): every way of [`METHODS`].
    #[default]
    File,
    /// A pipe written by a child process: every way of [`STREAM_METHODS`].
    Pipe,
    /// A TCP connection on 127.0.0.1 written by a child process: every way of [`STREAM_METHODS`].
    Tcp,
    /// A tree of many files ([`BenchConfig::tree`], `ringread bench --tree`): every way of
    /// [`TREE_METHODS`]. `--source` does not name it.
    Tree,
    /// The same object-store work through ringread's `RingStore` and object_store's
    /// `LocalFileSystem` ([`run_store`], `ringread bench --store`). `--source` does not name it.
    Store,
}

impl BenchSource {
    /// The name, as `--source` spells it.
    pub fn name(self) -> &'static str {
        match self {
            BenchSource::File => "file",
            BenchSource::Pipe => "pipe",
            BenchSource::Tcp => "tcp",
            BenchSource::Tree => "tree",
            BenchSource::Store => "store",
        }
    }
    /// The ways this source can be read with, in report order.
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            BenchSource::File => &METHODS,
            BenchSource::Tree => &TREE_METHODS,
            BenchSource::Store => &STORE_WORKS,
            _ => &STREAM_METHODS,
        }
    }
}

impl std::str::FromStr for BenchSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "file" => Ok(BenchSource::File),
            "pipe" => Ok(BenchSource::Pipe),
            "tcp" => Ok(BenchSource::Tcp),
            _ => Err(format!("unknown source '{s}' (file, pipe or tcp)")),
        }
    }
}

use crate::error::{Error, Result};
use crate::options::ReadOptions;
use crate::processor::{Algorithm, ByteCount, Checksum, LineCount, Processor};
use ways::{
    AsyncStreamMethod, Compio, Glommio, Mmap, Monoio, PreadPool, ReadMethod, SyncMethod, TokioFs,
    TokioUring, UringMethod,
};

/// Every way `bench` knows, in the order it reports them.
pub const METHODS: [&str; 13] = [
    "sync",
    "pread-pool",
    "tokio-fs",
    "tokio-uring",
    "compio",
    "monoio",
    "glommio",
    "mmap",
    "uring",
    "uring-fixed",
    "uring-sqpoll",
    "stream",
    "stream-driver",
];

/// The ways through another io_uring runtime, whose `io_uring_enter` calls only the perf counter
/// (`all sys/GiB`) can count.
const RUNTIMES: [&str; 4] = ["tokio-uring", "compio", "monoio", "glommio"];

/// What the timed runs feed the bytes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessorKind {
    /// Nothing: the cost of reading alone.
    Null,
    /// XXH3 64-bit.
    Xxh3,
    /// CRC-32C.
    Crc32c,
    /// SHA-256.
    Sha256,
    /// BLAKE3.
    Blake3,
    /// Newline and byte counts.
    Count,
}

impl std::str::FromStr for ProcessorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "null" => ProcessorKind::Null,
            "xxh3" => ProcessorKind::Xxh3,
            "crc32c" => ProcessorKind::Crc32c,
            "sha256" => ProcessorKind::Sha256,
            "blake3" => ProcessorKind::Blake3,
            "count" => ProcessorKind::Count,
            _ => {
                return Err(format!(
                    "unknown processor '{s}' (null, xxh3, crc32c, sha256, blake3 or count)"
                ))
            }
        })
    }
}

impl ProcessorKind {
    fn make(self) -> Box<dyn Processor + Send> {
        match self {
            ProcessorKind::Null => Box::new(ByteCount::default()),
            ProcessorKind::Xxh3 => Box::new(Checksum::new(Algorithm::Xxh3)),
            ProcessorKind::Crc32c => Box::new(Checksum::new(Algorithm::Crc32c)),
            ProcessorKind::Sha256 => Box::new(Checksum::new(Algorithm::Sha256)),
            ProcessorKind::Blake3 => Box::new(Checksum::new(Algorithm::Blake3)),
            ProcessorKind::Count => Box::new(LineCount::default()),
        }
    }
}

/// A benchmark to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// What to read: files (the default), a generated pipe or TCP stream, or a tree.
    pub source: BenchSource,
    /// Files to read; empty: a random file of `size` bytes is made under `$TMPDIR` and removed after.
    pub files: Vec<PathBuf>,
    /// The size of the generated file.
    pub size: u64,
    /// The ways to compare (names from [`METHODS`]).
    pub methods: Vec<String>,
    /// The processor of the timed runs (`--tree`: also the result each way's files are compared by).
    pub processor: ProcessorKind,
    /// The cache states to measure.
    pub caches: Vec<CacheMode>,
    /// Timed runs per way and cache state.
    pub runs: usize,
    /// Bytes per read (`None`: the engine's default for the cache state).
    pub chunk_size: Option<usize>,
    /// Reads in flight (`None`: the engine's default for the cache state).
    pub depth: Option<usize>,
    /// Reading threads of the engine (`None`: one per usable CPU).
    pub threads: Option<usize>,
    /// Once cancelled (from a signal handler, say), the benchmark stops between measurements with
    /// [`Error::Interrupted`], removing the file it generated.
    pub cancel: Option<crate::Cancel>,
    /// For [`BenchSource::Tree`]: the tree, or the one to generate, and the `threads` way's threads.
    pub tree: TreeConfig,
    /// `--peers`: ringread's own executable, to run beside the standard tools as processes
    /// ([`peer_pairs`]) after the ways of each cache state (files only; `None`: no peers).
    pub peers: Option<PathBuf>,
}

fn check_interrupt(config: &BenchConfig, path: &std::path::Path) -> Result<()> {
    match &config.cancel {
        Some(c) if c.is_cancelled() => Err(Error::Interrupted {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Runs the benchmark. Progress goes to `progress` (a human reads it on standard error).
pub fn run(config: &BenchConfig, progress: &mut dyn Write) -> Result<Report> {
    if config.runs == 0 {
        return Err(Error::InvalidOptions("runs must be at least 1".into()));
    }
    if config.source == BenchSource::Tree {
        return tree::run(config, progress);
    }
    if config.source != BenchSource::File {
        if config.peers.is_some() {
            return Err(Error::InvalidOptions(
                "--peers compares whole tools on files; not with --tree or --source".into(),
            ));
        }
        return stream::run(config, progress);
    }
    for m in &config.methods {
        if !METHODS.contains(&m.as_str()) {
            return Err(Error::InvalidOptions(format!(
                "unknown backend '{m}' (expected one of {})",
                METHODS.join(", ")
            )));
        }
    }
    if config.runs == 0 {
        return Err(Error::InvalidOptions("runs must be at least 1".into()));
    }
    let generated = config.files.is_empty();
    let files = if generated {
        let _ = writeln!(
            progress,
            "generating a {} byte random file ...",
            config.size
        );
        vec![generate(config.size, config)?]
    } else {
        config.files.clone()
    };
    let _cleanup = Cleanup(if generated { files.clone() } else { Vec::new() });
    let total = total_bytes(&files)?;

    // Before any way starts a thread: the counter counts the threads started after it too.
    let counter = syscalls::SyscallCounter::open();
    if let Err(why) = &counter {
        let _ = writeln!(progress, "all sys/GiB not counted: {why}");
    }
    let mut results = Vec::new();
    let mut first_opts = None;
    for &cache in &config.caches {
        let opts = read_options(config, cache == CacheMode::Direct)?;
        first_opts.get_or_insert(opts.clone());
        let counter = counter.as_ref().ok();
        let mut report = run_cache(config, cache, &opts, &files, total, counter, progress)?;
        if let Some(exe) = &config.peers {
            let pairs = peer_pairs(cache, &files, opts.chunk_size(), opts.depth());
            let rows = peers::run_peers(exe, cache, &files, total, &pairs, config.runs, progress)?;
            report.methods.extend(rows);
            report.summarize();
        }
        results.push(report);
    }
    let opts = first_opts.unwrap_or_default();
    Ok(Report {
        source: BenchSource::File,
        machine: Machine::this(),
        file: FileInfo {
            paths: files.iter().map(|p| p.display().to_string()).collect(),
            bytes: total,
            generated,
        },
        processor: config.processor,
        chunk_size: opts.chunk_size(),
        depth: opts.depth(),
        runs: config.runs,
        results,
        notes: file_notes(),
        tree: None,
        store: None,
    })
}

/// The byte count of all `files`, each of which must be a regular file.
fn total_bytes(files: &[PathBuf]) -> Result<u64> {
    let mut total = 0u64;
    for f in files {
        let meta = std::fs::metadata(f).map_err(ways::open_error(f))?;
        if !meta.is_file() {
            return Err(Error::InvalidOptions(format!(
                "{}: bench reads regular files only",
                f.display()
            )));
        }
        total += meta.len();
    }
    Ok(total)
}

/// The read options of the runs: the chunk size, depth and threads given (the defaults else),
/// `O_DIRECT` if `direct`.
fn read_options(config: &BenchConfig, direct: bool) -> Result<ReadOptions> {
    let mut b = ReadOptions::builder().direct(direct);
    if let Some(c) = config.chunk_size {
        b = b.chunk_size(c);
    }
    if let Some(d) = config.depth {
        b = b.depth(d);
    }
    if let Some(t) = config.threads {
        b = b.threads(t);
    }
    b.build()
}

/// The notes under a file benchmark's table: what its columns measure, and how the ways read.
fn file_notes() -> Vec<String> {
    vec![
        "CPU: getrusage(RUSAGE_SELF): user + system time of every thread of the process, \
         including io_uring's worker (iou-wrk) and SQPOLL (iou-sqp) threads, which Linux 5.12+ \
         runs inside the process's thread group (uring-sqpoll's CPU shows the polling thread)."
            .into(),
        "calls: read(2)-family calls (syscr of /proc/self/io) plus ringread's io_uring_enter \
         calls; '-' for tokio-uring, compio, monoio and glommio, whose enters only the perf \
         counter sees. all sys: every system call of the process during the run (a perf \
         counter on raw_syscalls:sys_enter; '-' where it could not be opened)."
            .into(),
        "peers (--peers, rows starting with '$'): whole processes, each beside ringread's \
         command doing the same work, timed from spawn to exit; CPU, faults and peak RSS from \
         wait4's rusage (its peak RSS is at least this process's resident memory at the \
         spawn, which Linux counts in the child's); their result (hash or count of the first \
         file) in the last column."
            .into(),
        "compio, monoio, glommio: each as its documentation reads a file (compio and monoio: \
         read_at with owned buffers, depth tasks; glommio: DmaStreamReader with read-ahead = \
         depth under O_DIRECT, BufferedFile::read_at with depth tasks through the page \
         cache). monoio and glommio are !Send (thread-per-core) and compio's runtime is \
         per-thread: each reads on the calling thread, one core, where ringread's engine uses \
         every CPU. None registers buffers (glommio's stream reader reads into its own \
         registered I/O memory)."
            .into(),
        "epoll: not a way to read regular files (epoll_ctl on one says EPERM); it applies to \
         pipes and sockets."
            .into(),
        "stream: ringread's async stream (a tokio runtime and a Driver kept across runs, one task \
         taking the chunks in order); unless --depth is given it reads with its own default \
         depth (ringread::stream::DEFAULT_STREAM_DEPTH = 16), not the engine's."
            .into(),
        "mmap with --processor null only faults pages in (one byte touched per page): it copies \
         nothing, so compare it with a processor that reads every byte (e.g. --processor xxh3)."
            .into(),
    ]
}

fn make_method(
    name: &str,
    opts: &ReadOptions,
    direct: bool,
    stream_depth_default: bool,
) -> Result<Option<Box<dyn ReadMethod>>> {
    let threads = opts.threads().unwrap_or_else(crate::ring::usable_cpus);
    let with = |register: bool, sqpoll: bool| -> Result<ReadOptions> {
        let mut b = ReadOptions::builder()
            .chunk_size(opts.chunk_size())
            .depth(opts.depth())
            .direct(direct)
            .dontcache(opts.dontcache())
            .register_buffers(register)
            .sqpoll(sqpoll);
        if let Some(t) = opts.threads() {
            b = b.threads(t);
        }
        b.build()
    };
    Ok(Some(match name {
        "sync" => Box::new(SyncMethod::new(with(false, false)?)?),
        "pread-pool" => Box::new(PreadPool {
            threads,
            depth: opts.depth(),
            chunk_size: opts.chunk_size(),
            direct,
        }),
        "tokio-fs" if direct => return Ok(None),
        "tokio-fs" => Box::new(TokioFs {
            chunk_size: opts.chunk_size(),
        }),
        "tokio-uring" => Box::new(TokioUring {
            chunk_size: opts.chunk_size(),
            depth: opts.depth(),
            direct,
        }),
        "compio" => Box::new(Compio {
            chunk_size: opts.chunk_size(),
            depth: opts.depth(),
            direct,
        }),
        "monoio" => Box::new(Monoio {
            chunk_size: opts.chunk_size(),
            depth: opts.depth(),
            direct,
        }),
        "glommio" => Box::new(Glommio {
            chunk_size: opts.chunk_size(),
            depth: opts.depth(),
            direct,
        }),
        "mmap" if direct => return Ok(None),
        "mmap" => Box::new(Mmap {
            chunk_size: opts.chunk_size(),
        }),
        "uring" => Box::new(UringMethod::new("uring", with(false, false)?)?),
        "uring-fixed" => Box::new(UringMethod::new("uring-fixed", with(true, false)?)?),
        "uring-sqpoll" => Box::new(UringMethod::new("uring-sqpoll", with(true, true)?)?),
        "stream" | "stream-driver" => {
            // The stream's own default depth unless the user chose one; `stream-driver` is the
            // stream with its cached fast path off (every chunk read by the driver's threads).
            let o = ReadOptions::builder()
                .chunk_size(opts.chunk_size())
                .depth(if stream_depth_default {
                    crate::stream::DEFAULT_STREAM_DEPTH
                } else {
                    opts.depth()
                })
                .direct(direct)
                .dontcache(opts.dontcache())
                .register_buffers(opts.register_buffers())
                .cached_fast_path(name == "stream");
            let o = match opts.threads() {
                Some(t) => o.threads(t),
                None => o,
            };
            Box::new(AsyncStreamMethod::new(o.build()?)?)
        }
        _ => {
            return Err(Error::InvalidOptions(format!(
                "unknown way '{name}' (expected one of {})",
                METHODS.join(", ")
            )))
        }
    }))
}

/// The way of [`METHODS`] called `name`, reading with `opts`' chunk size, depth and threads, with
/// `O_DIRECT` if `direct`; `None` for a way that cannot read so (`tokio-fs` and `mmap` with
/// `O_DIRECT`). The way `bench` runs, for a program (or a test) that wants to run one itself.
pub fn way(name: &str, opts: &ReadOptions, direct: bool) -> Result<Option<Box<dyn ReadMethod>>> {
    make_method(name, opts, direct, false)
}

fn skip_reason(name: &str) -> &'static str {
    match name {
        "tokio-fs" => "tokio::fs reads into unaligned Vec buffers, which O_DIRECT refuses",
        "mmap" => "a mapping always goes through the page cache",
        _ => "not applicable",
    }
}

fn run_cache(
    config: &BenchConfig,
    cache: CacheMode,
    opts: &ReadOptions,
    files: &[PathBuf],
    total: u64,
    counter: Option<&syscalls::SyscallCounter>,
    progress: &mut dyn Write,
) -> Result<CacheReport> {
    let direct = cache == CacheMode::Direct;
    let mut opts = opts.clone();
    opts.dontcache = cache == CacheMode::Dontcache;
    let mut methods: Vec<(String, Option<Box<dyn ReadMethod>>)> = Vec::new();
    for name in &config.methods {
        methods.push((
            name.clone(),
            make_method(name, &opts, direct, config.depth.is_none())?,
        ));
    }
    let mut results: Vec<MethodResult> = methods
        .iter()
        .map(|(name, m)| MethodResult::new(name, m.is_none().then(|| skip_reason(name))))
        .collect();

    // One untimed pass per way with xxh3: the checksum that shows every way read the same bytes.
    check_ways(cache, &mut methods, &mut results, files, progress)?;
    let mut residency_before = Vec::new();
    for run in 0..config.runs {
        for ((name, m), r) in methods.iter().zip(results.iter_mut()) {
            let Some(m) = m else { continue };
            check_interrupt(config, &files[0])?;
            prepare(cache, files, &mut residency_before)?;
            let sample = timed_run(config, name, &**m, files, total, counter)?;
            let gib = sample.bytes as f64 / (1u64 << 30) as f64;
            let _ = writeln!(
                progress,
                "{} run {}/{}: {name:<13} {:6.2} GiB/s {:6.3} CPU s/GiB {:7.0} wake-ups/GiB",
                cache.name(),
                run + 1,
                config.runs,
                sample.gib_per_s,
                sample.cpu_seconds / gib.max(1e-9),
                sample.switches as f64 / gib.max(1e-9),
            );
            r.samples.push(sample);
        }
    }
    let mut report = CacheReport {
        cache,
        chunk_size: opts.chunk_size(),
        depth: opts.depth(),
        residency_before: if residency_before.is_empty() {
            None
        } else {
            Some(residency_before.iter().cloned().fold(0.0, f64::max))
        },
        preparation: None,
        methods: results,
    };
    report.summarize();
    Ok(report)
}

/// One untimed pass of each way over `files` with xxh3: the checksum that shows every way read
/// the same bytes, in `results`, with each way's notice. A way of another runtime that cannot run
/// here is marked skipped, and its slot in `methods` emptied.
fn check_ways(
    cache: CacheMode,
    methods: &mut [(String, Option<Box<dyn ReadMethod>>)],
    results: &mut [MethodResult],
    files: &[PathBuf],
    progress: &mut dyn Write,
) -> Result<()> {
    for ((name, slot), r) in methods.iter_mut().zip(results.iter_mut()) {
        let Some(m) = slot else { continue };
        if let Some(n) = m.notice() {
            let _ = writeln!(progress, "{name}: {n}");
            r.notice = Some(n);
        }
        let _ = writeln!(progress, "{}: checking what {name} reads ...", cache.name());
        let mut parts = Vec::new();
        for f in files {
            let mut sum = Checksum::new(Algorithm::Xxh3);
            match m.read(f, &mut sum) {
                Ok(_) => parts.push(sum.hex()),
                // Another runtime that cannot run here (glommio without the memory it locks, an
                // io_uring it cannot set up) is said and skipped; ringread's own ways fail.
                Err(e @ Error::Ring { .. }) if RUNTIMES.contains(&name.as_str()) => {
                    let why = format!("could not run here: {e}");
                    let _ = writeln!(progress, "{}: {name} {why}; skipped", cache.name());
                    r.skipped = Some(why);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if r.skipped.is_some() {
            *slot = None;
            continue;
        }
        r.checksum = Some(parts.join(","));
    }
    Ok(())
}

/// Puts `files` in `cache`'s state before a run: read once (warm) or dropped from the page cache;
/// when cold, what is still cached of each goes in `residency_before`.
fn prepare(cache: CacheMode, files: &[PathBuf], residency_before: &mut Vec<f64>) -> Result<()> {
    for f in files {
        match cache {
            CacheMode::Warm => warm(f),
            CacheMode::Cold | CacheMode::Direct | CacheMode::Dontcache => drop_cache(f),
        }
        .map_err(ways::open_error(f))?;
        if matches!(cache, CacheMode::Cold | CacheMode::Dontcache) {
            residency_before.push(residency(f).unwrap_or(f64::NAN));
        }
    }
    Ok(())
}

/// One timed run of the way `m` (called `name`) over `files` with the configured processor: its
/// sample, or an error if it did not read all `total` bytes.
fn timed_run(
    config: &BenchConfig,
    name: &str,
    m: &dyn ReadMethod,
    files: &[PathBuf],
    total: u64,
    counter: Option<&syscalls::SyscallCounter>,
) -> Result<Sample> {
    let mut proc = config.processor.make();
    let calls_before = counter.map(syscalls::SyscallCounter::count);
    let snap = metrics::Snapshot::now();
    let mut bytes = 0;
    for f in files {
        bytes += m.read(f, &mut *proc)?;
    }
    let cost = snap.cost();
    // Less the read of the counter itself.
    let all_calls = counter.map(|c| (c.count() - calls_before.unwrap_or(0)).saturating_sub(1));
    if bytes != total {
        return Err(Error::InvalidOptions(format!(
            "{name} read {bytes} bytes of {total}: did the file change during the benchmark?"
        )));
    }
    let mut sample = Sample::from_cost(bytes, &cost, RUNTIMES.contains(&name));
    sample.all_syscalls = all_calls;
    sample.cached_after = cache::cached_share(files);
    Ok(sample)
}

/// Makes a random file of `size` bytes under `$TMPDIR` ([`write_random`]).
fn generate(size: u64, config: &BenchConfig) -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("ringread-bench-{}.bin", std::process::id()));
    let seed = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
    if let Err(e) = write_random(config, &path, size, seed) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Writes `len` bytes of xorshift data from `seed` to `path` (made or truncated), in 1 MiB
/// pieces, and syncs it; stops with the interrupt's error if one comes.
pub(crate) fn write_random(
    config: &BenchConfig,
    path: &std::path::Path,
    len: u64,
    seed: u64,
) -> Result<()> {
    let io_err = |source| Error::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(path).map_err(io_err)?;
    let mut state = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        check_interrupt(config, path)?;
        for w in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            w.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).map_err(io_err)?;
        left -= n as u64;
    }
    f.sync_all().map_err(io_err)
}

struct Cleanup(Vec<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
