//! `ringread bench`: every way of reading, side by side, on the same data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ringread::bench::{
    self, BenchConfig, BenchSource, CacheMode, ProcessorKind, TreeConfig, DEFAULT_POOL_THREADS,
    DEFAULT_TREE_FILES, TREE_SEED,
};

use super::progress::{BenchLog, Mode};
use super::{parse_size_arg, ReadArgs};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// What to read: file (files), pipe or tcp (a child process writes --size bytes at full speed
    /// to a pipe, or to a TCP connection on 127.0.0.1)
    #[arg(long, value_name = "SOURCE", default_value = "file", value_parser = parse_source)]
    source: BenchSource,
    /// Files to read [default: a random file of --size bytes under $TMPDIR, removed afterwards]
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Size of the generated file (or of each run's stream; --store: of the file get_ranges
    /// reads) [default: 1GiB; --store: 2GiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    size: Option<u64>,
    /// Read a tree of many files: every regular file below DIR (each directory's entries sorted by
    /// name), or with no DIR a generated tree of --files files (100 directories, lognormal sizes;
    /// removed afterwards); figures per file, warm and cold
    #[arg(long, value_name = "DIR", num_args = 0..=1, conflicts_with = "source")]
    tree: Option<Option<PathBuf>>,
    /// Files of the generated tree (--tree with no DIR, --make-tree) [default: 10000]; --store:
    /// objects of the concurrent gets [default: 64]
    #[arg(long = "files", value_name = "N")]
    tree_files: Option<usize>,
    /// The same object-store work through ringread's store (RingStore) and object_store's
    /// LocalFileSystem, side by side, warm and cold (--cache warm, cold or all): one get_ranges
    /// of --count random ranges of --block-size bytes [default: 10000 of 4 KiB] of one file of
    /// --size bytes [default: 2GiB], and --files concurrent whole-object gets (get, then bytes())
    /// of --object-size bytes each [default: 64 of 8MiB]; median times, and LocalFileSystem's time
    /// / RingStore's. The data is in DIR (made there with a fixed seed where absent, and kept;
    /// no DIR: made under $TMPDIR, removed afterwards). The DataFusion queries are run by
    /// user-crates/datafusion (`cargo run --release -- bench`): DataFusion is not a dependency of
    /// this command
    #[arg(long, value_name = "DIR", num_args = 0..=1, conflicts_with_all = ["tree", "source", "make_tree", "peers", "backends", "processor"])]
    store: Option<Option<PathBuf>>,
    /// --store: bytes of each object of the concurrent gets
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_size_arg, requires = "store")]
    object_size: u64,
    /// Threads of --tree's `threads` way (what `xargs -P` would run)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_POOL_THREADS)]
    pool_threads: usize,
    /// Make the tree --tree would generate (of --files files) in DIR, keep it, and exit
    #[arg(long, value_name = "DIR", conflicts_with_all = ["tree", "source"])]
    make_tree: Option<PathBuf>,
    /// Backends to compare, comma-separated [default: all: sync, pread-pool, tokio-fs, tokio-uring,
    /// mmap, uring, uring-fixed, uring-sqpoll, stream (the async stream interface), stream-driver
    /// (the stream with its cached fast path off: every chunk read by the driver); for --source
    /// pipe or tcp: sync, epoll, tokio, uring-recv, uring-multishot, uring-multishot-batch; for
    /// --tree: many, one-by-one, threads, tokio-fs, tokio-uring]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    backends: Vec<String>,
    /// What the timed runs do with the bytes: null, xxh3, crc32c, sha256, blake3 or count
    /// [default: xxh3, so that every way reads every byte (equal work; mmap with null only
    /// touches one byte a page); null measures the raw read]
    #[arg(long, value_name = "NAME", value_parser = parse_processor)]
    processor: Option<ProcessorKind>,
    /// Cache state: warm, cold, direct, dontcache or all (warm, cold and direct; --tree: warm,
    /// cold or all). dontcache: cold, ringread's ways reading with RWF_DONTCACHE, and what each
    /// way left in the page cache said
    #[arg(long, value_name = "STATE", default_value = "warm", value_parser = ["warm", "cold", "direct", "dontcache", "all"])]
    cache: String,
    /// Timed runs per backend and cache state
    #[arg(long, value_name = "N", default_value_t = 5)]
    runs: usize,
    /// Write the results as JSON to PATH ("-": standard output, the table then goes to standard error)
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a bar chart of the results as SVG to PATH
    #[arg(long, value_name = "PATH.svg")]
    plot: Option<PathBuf>,
    /// Also run the standard tools found on PATH as processes, each beside ringread's own command
    /// doing the same work (xxhsum -H3, b3sum, sha256sum, wc -l, fio), from the same cache state;
    /// a tool not found is said and skipped
    #[arg(long)]
    peers: bool,
    /// How to read the file: seq (whole files, in order) or random (--count reads of --block-size
    /// bytes at random block-aligned offsets of one file, every way side by side: IOPS, latency
    /// p50/p99, CPU per 10k reads; ways: ranges, ranges-pread, ranges-ordered (request order),
    /// read-at, pread, pread-pool, spawn-blocking, tokio-fs, tokio-uring, mmap; --depth defaults
    /// to 128)
    #[arg(long, value_name = "PATTERN", default_value = "seq", value_parser = ["seq", "random"])]
    pattern: String,
    /// --pattern random: bytes per read; --store: bytes per range
    #[arg(long, value_name = "SIZE", default_value = "4K", value_parser = parse_size_arg)]
    block_size: u64,
    /// --pattern random: reads per run [default: 100000]; --store: ranges of the get_ranges call
    /// [default: 10000]
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// --pattern random: a time bound instead of --count: as many reads per run as one pread(2)
    /// thread does in SECS seconds in each cache state (measured just before on other offsets),
    /// the same reads for every way
    #[arg(long, value_name = "SECS", conflicts_with = "count", value_parser = parse_seconds)]
    seconds: Option<f64>,
    /// --pattern random: tasks of read-at, spawn-blocking and tokio-fs, and threads of pread-pool when cold
    /// or direct (warm: one per CPU)
    #[arg(long, value_name = "N", default_value_t = 64)]
    tasks: usize,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds above 0")),
    }
}

fn parse_source(s: &str) -> Result<BenchSource, String> {
    s.parse()
}

fn parse_processor(s: &str) -> Result<ProcessorKind, String> {
    s.parse()
}

pub(crate) fn run(read: &ReadArgs, a: BenchArgs, progress: Mode) -> anyhow::Result<ExitCode> {
    if a.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let files = a.tree_files.unwrap_or(DEFAULT_TREE_FILES);
    if files == 0 {
        anyhow::bail!("--files must be at least 1");
    }
    if let Some(dir) = &a.make_tree {
        return make_tree(dir, files);
    }
    if a.store.is_some() {
        return store(a, progress);
    }
    let random = (a.pattern == "random").then(|| bench::RandomConfig {
        block_size: usize::try_from(a.block_size).unwrap_or(usize::MAX),
        count: a.count.unwrap_or(100_000),
        seconds: a.seconds,
        tasks: a.tasks,
    });
    let (json, plot) = (a.json.clone(), a.plot.clone());
    let config = config(read, a, files, random.is_some())?;
    // The timed runs, for the progress bar (a way that does not apply to a cache state is skipped,
    // so this may be more).
    let timed = (config.caches.len() * config.methods.len() * config.runs) as u64;
    let mut log = BenchLog::new(progress, timed);
    let report = match &random {
        Some(r) => bench::run_random(&config, r, &mut log),
        None => bench::run(&config, &mut log),
    };
    drop(log);
    let report = match report {
        Err(ringread::Error::Interrupted { .. }) => return Ok(ExitCode::from(130)),
        other => other?,
    };
    show(&report, random.is_some(), json.as_deref(), plot.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// `--store [DIR]`: RingStore against LocalFileSystem, the same work side by side.
fn store(a: BenchArgs, progress: Mode) -> anyhow::Result<ExitCode> {
    if a.pattern != "seq" || !a.files.is_empty() {
        anyhow::bail!("--store reads its own data (in DIR); give no FILE and no --pattern");
    }
    let caches = match a.cache.as_str() {
        "all" => vec![CacheMode::Warm, CacheMode::Cold],
        "warm" => vec![CacheMode::Warm],
        "cold" => vec![CacheMode::Cold],
        other => anyhow::bail!(
            "--store measures warm or cold reads (--cache warm, cold or all), not {other}"
        ),
    };
    let store = bench::StoreConfig {
        dir: a.store.clone().flatten(),
        objects: a.tree_files.unwrap_or(bench::DEFAULT_STORE_OBJECTS),
        object_size: a.object_size,
        ranges: a.count.unwrap_or(bench::DEFAULT_STORE_RANGES),
        range_size: usize::try_from(a.block_size).unwrap_or(usize::MAX),
    };
    let config = BenchConfig {
        source: BenchSource::Store,
        files: Vec::new(),
        size: a.size.unwrap_or(bench::DEFAULT_STORE_FILE_SIZE),
        methods: Vec::new(),
        processor: ProcessorKind::Null,
        caches,
        runs: a.runs,
        chunk_size: None,
        depth: None,
        threads: None,
        cancel: super::interrupt_handle(),
        tree: TreeConfig {
            dir: None,
            files: 0,
            seed: TREE_SEED,
            pool_threads: a.pool_threads,
        },
        peers: None,
    };
    let timed = (config.caches.len() * 4 * config.runs) as u64;
    let mut log = BenchLog::new(progress, timed);
    let report = bench::run_store(&config, &store, &mut log);
    drop(log);
    let report = match report {
        Err(ringread::Error::Interrupted { .. }) => return Ok(ExitCode::from(130)),
        other => other?,
    };
    show(&report, false, a.json.as_deref(), a.plot.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// `--make-tree DIR`: makes the tree `--tree` would generate, of `files` files, in the new
/// directory `dir` (removed again if making it fails), and says what it made.
fn make_tree(dir: &Path, files: usize) -> anyhow::Result<ExitCode> {
    if dir.exists() {
        anyhow::bail!(
            "{}: exists already; --make-tree makes a new directory",
            dir.display()
        );
    }
    let made = bench::make_tree(dir, files, TREE_SEED, super::interrupt_handle().as_ref());
    if made.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let made = match made {
        Err(ringread::Error::Interrupted { .. }) => return Ok(ExitCode::from(130)),
        other => other?,
    };
    println!(
        "{}: {} files, {} bytes",
        dir.display(),
        made.files,
        made.bytes
    );
    Ok(ExitCode::SUCCESS)
}

/// The benchmark's configuration from the command line (a tree of `files` files if generated;
/// `random`: `--pattern random`), every option checked against the others and the read options
/// checked, before any I/O.
fn config(
    read: &ReadArgs,
    a: BenchArgs,
    files: usize,
    random: bool,
) -> anyhow::Result<BenchConfig> {
    let source = if a.tree.is_some() {
        BenchSource::Tree
    } else {
        a.source
    };
    let tree_dir = a.tree.flatten();
    if a.tree_files.is_some() && (source != BenchSource::Tree || tree_dir.is_some()) {
        anyhow::bail!(
            "--files sizes a generated tree: give it with --tree and no DIR, or --make-tree"
        );
    }
    if source == BenchSource::Tree && !a.files.is_empty() {
        anyhow::bail!("--tree reads the tree below DIR; give no FILE");
    }
    let caches = caches(&a.cache, source, random)?;
    let processor = a.processor.unwrap_or(ProcessorKind::Xxh3);
    let methods = methods(a.backends, source, random)?;
    if !matches!(source, BenchSource::File | BenchSource::Tree) && !a.files.is_empty() {
        anyhow::bail!(
            "--source {} generates its data; give no FILE",
            source.name()
        );
    }
    // Check the read options before any I/O.
    read.options(false, None)?;
    Ok(BenchConfig {
        source,
        files: a.files,
        size: a.size.unwrap_or(1 << 30),
        methods,
        processor,
        caches,
        runs: a.runs,
        chunk_size: read
            .chunk_size
            .map(|c| usize::try_from(c).unwrap_or(usize::MAX)),
        depth: read.depth,
        threads: read.threads,
        cancel: super::interrupt_handle(),
        tree: TreeConfig {
            dir: tree_dir,
            files,
            seed: TREE_SEED,
            pool_threads: a.pool_threads,
        },
        peers: if a.peers {
            Some(std::env::current_exe().context("--peers: this executable's path")?)
        } else {
            None
        },
    })
}

/// The cache states of `--cache cache` for `source` (`random`: `--pattern random`), or why they
/// cannot be measured.
fn caches(cache: &str, source: BenchSource, random: bool) -> anyhow::Result<Vec<CacheMode>> {
    let caches = match (cache, source) {
        ("all", BenchSource::Tree) => vec![CacheMode::Warm, CacheMode::Cold],
        ("all", _) => vec![CacheMode::Warm, CacheMode::Cold, CacheMode::Direct],
        ("direct" | "dontcache", BenchSource::Tree) => {
            anyhow::bail!("--tree measures warm or cold trees (--cache warm, cold or all)")
        }
        (s, _) => vec![s.parse::<CacheMode>().map_err(anyhow::Error::msg)?],
    };
    if random && source != BenchSource::File {
        anyhow::bail!("--pattern random reads a file; not with --tree or --source");
    }
    if random && caches.contains(&CacheMode::Dontcache) {
        anyhow::bail!(
            "--pattern random measures warm, cold or direct reads (not --cache dontcache)"
        );
    }
    Ok(caches)
}

/// The ways to compare: `--backends` (every one known for `source` and the pattern), or all of
/// them.
fn methods(
    backends: Vec<String>,
    source: BenchSource,
    random: bool,
) -> anyhow::Result<Vec<String>> {
    let known: &[&str] = if random {
        &bench::RANDOM_METHODS
    } else {
        source.methods()
    };
    let methods = if backends.is_empty() {
        known.iter().map(|s| s.to_string()).collect()
    } else {
        backends
    };
    for m in &methods {
        if !known.contains(&m.as_str()) {
            anyhow::bail!("unknown backend '{m}' (expected {})", known.join(", "));
        }
    }
    Ok(methods)
}

/// Shows the report: its table on standard output (standard error when the JSON goes to standard
/// output, `--json -`), its JSON to `json` and its chart to `plot` if asked for.
fn show(
    report: &bench::Report,
    random: bool,
    json: Option<&Path>,
    plot: Option<&Path>,
) -> anyhow::Result<()> {
    let json_to_stdout = json.is_some_and(|p| p.as_os_str() == "-");
    let table = if random {
        bench::random_table(report)
    } else {
        report.to_string()
    };
    if json_to_stdout {
        eprintln!("{table}");
    } else {
        println!("{table}");
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report)? + "\n";
        if json_to_stdout {
            std::io::stdout().write_all(text.as_bytes())?;
        } else {
            std::fs::write(path, text).with_context(|| format!("{}", path.display()))?;
        }
    }
    if let Some(path) = plot {
        bench::write_svg(report, path)?;
    }
    Ok(())
}
