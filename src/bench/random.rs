//! `ringread bench --pattern random`: random reads of one block each, every way side by side.
//!
//! Each run reads the same `count` block-aligned offsets (a fixed seed, spread over the whole file)
//! with each way in turn (A B C A B C ...), from the same cache state. The figures: reads per second
//! (`median_iops`), the latency of one read (p50, p99, an HDR histogram of every read: for the
//! engine's `ranges` ways, timed by the engine from each read's submission to its completion), and
//! CPU per 10,000 reads. Every way adds up the XXH3 of each block it read (in any order): the sums are
//! equal when every way read the same bytes.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;

use super::metrics::Snapshot;
use super::report::{CacheReport, FileInfo, Machine, MethodResult, Report, Sample};
use super::ways::open_error;
use super::{drop_cache, residency, warm, BenchConfig, CacheMode, ProcessorKind};
use crate::buf::{Arena, Chunk};
use crate::error::{Error, Result};
use crate::processor::from_fn;
use crate::ranges::{ByteRange, Order, RangeOptions};
use crate::{ReadOptions, Reader};

/// The ways `--pattern random` compares, in report order.
pub const RANDOM_METHODS: [&str; 10] = [
    "ranges",
    "ranges-pread",
    "ranges-ordered",
    "read-at",
    "pread",
    "pread-pool",
    "spawn-blocking",
    "tokio-fs",
    "tokio-uring",
    "mmap",
];

/// The seed of the offsets (the same for every way and run).
pub const RANDOM_SEED: u64 = 0x5EED_0FF5;

/// What `--pattern random` adds to [`BenchConfig`].
#[derive(Debug, Clone)]
pub struct RandomConfig {
    /// Bytes per read (`--block-size`, default 4 KiB).
    pub block_size: usize,
    /// Reads per run (`--count`).
    pub count: usize,
    /// A time bound instead (`--seconds`): the reads per run are what one `pread(2)` thread does
    /// in this many seconds in each cache state (measured on other offsets just before), so the
    /// slowest usual way runs about this long and every way still reads the same blocks.
    pub seconds: Option<f64>,
    /// Tasks of the async ways (`spawn-blocking`, `tokio-fs`), and threads of `pread-pool` under
    /// `cold` and `direct` (warm, the pool has a thread per CPU, as fio's psync jobs).
    pub tasks: usize,
}

/// The `count` offsets of one run: block-aligned, uniform over the file's whole blocks.
pub fn random_offsets(file_len: u64, block: usize, count: usize, seed: u64) -> Vec<u64> {
    let blocks = (file_len / block as u64).max(1);
    let mut s = seed | 1;
    (0..count)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % blocks) * block as u64
        })
        .collect()
}

/// One run of one way: bytes read, the XXH3 sum, and the latencies (nanoseconds) it could time.
struct Run {
    bytes: u64,
    sum: u64,
    latency: Option<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Whether the ways hash each block (`--processor` other than `null`); set once per `run_random`,
/// read by every way's threads and tasks.
static HASH: AtomicBool = AtomicBool::new(true);

/// What a way adds up for a block: its XXH3, or under `--processor null` its length (every way
/// then does no work on the bytes, as fio does not).
fn block_sum(b: &[u8]) -> u64 {
    if HASH.load(Ordering::Relaxed) {
        xxhash_rust::xxh3::xxh3_64(b)
    } else {
        b.len() as u64
    }
}

fn read_err(path: &Path, offset: u64) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Read {
        path: path.into(),
        offset,
        source,
    }
}

fn open(path: &Path, direct: bool) -> Result<File> {
    let mut o = File::options();
    o.read(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path).map_err(open_error(path))
}

/// The ways, each a function of (path, offsets, block, depth, tasks, direct).
#[derive(Clone, Copy)]
struct Ctx<'a> {
    path: &'a Path,
    offsets: &'a [u64],
    block: usize,
    depth: usize,
    tasks: usize,
    direct: bool,
    cache: CacheMode,
}

fn pread_all(f: &File, ctx: &Ctx<'_>, offsets: &[u64], h: &mut Histogram<u64>) -> Result<u64> {
    let arena = Arena::new(1, ctx.block)?;
    let mut sum = 0u64;
    for &off in offsets {
        let t = Instant::now();
        // SAFETY: the arena's one slot is ours, `block` bytes long, and no other read uses it.
        let n = unsafe {
            libc::pread(
                f.as_raw_fd(),
                arena.slot_ptr(0).cast(),
                ctx.block,
                off as libc::off_t,
            )
        };
        let _ = h.record(t.elapsed().as_nanos() as u64);
        if n < 0 {
            return Err(read_err(ctx.path, off)(std::io::Error::last_os_error()));
        }
        // SAFETY: the read completed and wrote n bytes.
        sum = sum.wrapping_add(block_sum(unsafe { arena.slot(0, n as usize) }));
    }
    Ok(sum)
}

fn way_pread(ctx: &Ctx<'_>) -> Result<Run> {
    let f = open(ctx.path, ctx.direct)?;
    let mut h = histogram();
    let sum = pread_all(&f, ctx, ctx.offsets, &mut h)?;
    Ok(Run {
        bytes: (ctx.offsets.len() * ctx.block) as u64,
        sum,
        latency: Some(h),
    })
}

fn pool_threads(ctx: &Ctx<'_>) -> usize {
    match ctx.cache {
        CacheMode::Warm => crate::ring::usable_cpus(),
        _ => ctx.tasks,
    }
}

fn way_pread_pool(ctx: &Ctx<'_>) -> Result<Run> {
    let f = open(ctx.path, ctx.direct)?;
    let threads = pool_threads(ctx).max(1);
    let per = ctx.offsets.len().div_ceil(threads);
    let results: Vec<Result<(u64, Histogram<u64>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = ctx
            .offsets
            .chunks(per.max(1))
            .map(|part| {
                let f = &f;
                s.spawn(move || {
                    let mut h = histogram();
                    pread_all(f, ctx, part, &mut h).map(|sum| (sum, h))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a pread thread panicked"))
            .collect()
    });
    add_up(ctx, results)
}

/// The run of threads or tasks that each read a share of the offsets: their sums and latencies
/// added up, or the first error.
fn add_up(ctx: &Ctx<'_>, results: Vec<Result<(u64, Histogram<u64>)>>) -> Result<Run> {
    let mut h = histogram();
    let mut sum = 0u64;
    for r in results {
        let (s, part) = r?;
        sum = sum.wrapping_add(s);
        h.add(part).expect("same bounds");
    }
    Ok(Run {
        bytes: (ctx.offsets.len() * ctx.block) as u64,
        sum,
        latency: Some(h),
    })
}

fn runtime(path: &Path) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Ring {
            path: path.into(),
            op: "tokio runtime",
            source,
        })
}

/// Splits the offsets over `tasks` tasks, runs `task` for each on a tokio runtime, and adds up.
fn on_tasks<F, Fut>(ctx: &Ctx<'_>, task: F) -> Result<Run>
where
    F: Fn(Vec<u64>) -> Fut,
    Fut: std::future::Future<Output = Result<(u64, Histogram<u64>)>> + Send + 'static,
{
    let rt = runtime(ctx.path)?;
    let tasks = ctx.tasks.max(1);
    let per = ctx.offsets.len().div_ceil(tasks).max(1);
    let results = rt.block_on(async {
        let handles: Vec<_> = ctx
            .offsets
            .chunks(per)
            .map(|part| tokio::spawn(task(part.to_vec())))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.expect("a task panicked"));
        }
        out
    });
    add_up(ctx, results)
}

fn way_spawn_blocking(ctx: &Ctx<'_>) -> Result<Run> {
    let f = Arc::new(open(ctx.path, ctx.direct)?);
    let (block, path) = (ctx.block, ctx.path.to_path_buf());
    on_tasks(ctx, |offsets| {
        let (f, path) = (f.clone(), path.clone());
        async move {
            let mut h = histogram();
            let mut sum = 0u64;
            let mut arena = Some(Arena::new(1, block)?);
            for off in offsets {
                let t = Instant::now();
                let f = f.clone();
                let a = arena.take().expect("returned by the last read");
                let (a, n) = tokio::task::spawn_blocking(move || {
                    // SAFETY: the arena's one slot is this task's, `block` bytes long.
                    let n = unsafe {
                        libc::pread(f.as_raw_fd(), a.slot_ptr(0).cast(), block, off as i64)
                    };
                    let n = if n < 0 {
                        Err(std::io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    };
                    (a, n)
                })
                .await
                .expect("pread does not panic");
                let _ = h.record(t.elapsed().as_nanos() as u64);
                let n = n.map_err(read_err(&path, off))?;
                // SAFETY: the read completed and wrote n bytes.
                sum = sum.wrapping_add(block_sum(unsafe { a.slot(0, n) }));
                arena = Some(a);
            }
            Ok((sum, h))
        }
    })
}

fn way_tokio_fs(ctx: &Ctx<'_>) -> Result<Run> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let (block, path) = (ctx.block, ctx.path.to_path_buf());
    on_tasks(ctx, |offsets| {
        let path = path.clone();
        async move {
            let mut f = tokio::fs::File::open(&path)
                .await
                .map_err(open_error(&path))?;
            let mut buf = vec![0u8; block];
            let mut h = histogram();
            let mut sum = 0u64;
            for off in offsets {
                let t = Instant::now();
                f.seek(std::io::SeekFrom::Start(off))
                    .await
                    .map_err(read_err(&path, off))?;
                f.read_exact(&mut buf).await.map_err(read_err(&path, off))?;
                let _ = h.record(t.elapsed().as_nanos() as u64);
                sum = sum.wrapping_add(block_sum(&buf));
            }
            Ok((sum, h))
        }
    })
}

fn way_tokio_uring(ctx: &Ctx<'_>) -> Result<Run> {
    use super::ways::AlignedBuf;
    use std::cell::RefCell;
    use std::rc::Rc;
    let std_file = open(ctx.path, ctx.direct)?;
    let (block, depth, path) = (ctx.block, ctx.depth.max(1), ctx.path.to_path_buf());
    let offsets = ctx.offsets.to_vec();
    let bufs = AlignedBuf::many(depth, block)?;
    let result: Result<(u64, Histogram<u64>)> = tokio_uring::start(async move {
        let file = Rc::new(tokio_uring::fs::File::from_std(std_file));
        let next = Rc::new(RefCell::new(0usize));
        let offsets = Rc::new(offsets);
        let tasks: Vec<_> = bufs
            .into_iter()
            .map(|mut buf| {
                let (file, next, offsets, path) =
                    (file.clone(), next.clone(), offsets.clone(), path.clone());
                tokio_uring::spawn(async move {
                    let mut h = histogram();
                    let mut sum = 0u64;
                    loop {
                        let i = {
                            let mut n = next.borrow_mut();
                            *n += 1;
                            *n - 1
                        };
                        let Some(&off) = offsets.get(i) else { break };
                        buf.init = 0;
                        let t = Instant::now();
                        let (res, b) = file.read_at(buf, off).await;
                        let _ = h.record(t.elapsed().as_nanos() as u64);
                        buf = b;
                        let n = res.map_err(read_err(&path, off))?;
                        sum = sum.wrapping_add(block_sum(&buf[..n.min(buf.len())]));
                    }
                    Ok::<_, Error>((sum, h))
                })
            })
            .collect();
        let mut h = histogram();
        let mut sum = 0u64;
        for t in tasks {
            let (s, part) = t.await.expect("a task panicked")?;
            sum = sum.wrapping_add(s);
            h.add(part).expect("same bounds");
        }
        Ok((sum, h))
    });
    let (sum, h) = result?;
    Ok(Run {
        bytes: (ctx.offsets.len() * ctx.block) as u64,
        sum,
        latency: Some(h),
    })
}

fn way_mmap(ctx: &Ctx<'_>) -> Result<Run> {
    let f = open(ctx.path, false)?;
    // SAFETY: the file is not changed while the benchmark maps it (its own generated file, or one
    // the user named for reading).
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(open_error(ctx.path))?;
    let mut buf = vec![0u8; ctx.block];
    let mut h = histogram();
    let mut sum = 0u64;
    for &off in ctx.offsets {
        let t = Instant::now();
        let from = (off as usize).min(map.len());
        let to = (from + ctx.block).min(map.len());
        buf[..to - from].copy_from_slice(&map[from..to]);
        let _ = h.record(t.elapsed().as_nanos() as u64);
        sum = sum.wrapping_add(block_sum(&buf[..to - from]));
    }
    Ok(Run {
        bytes: (ctx.offsets.len() * ctx.block) as u64,
        sum,
        latency: Some(h),
    })
}

/// The engine's range reads, no merging: `depth` reads in flight over the lanes, handed over as they
/// complete or (`ranges-ordered`) in the order asked.
fn way_ranges(ctx: &Ctx<'_>, reader: &Reader, order: Order) -> Result<Run> {
    let ranges: Vec<ByteRange> = ctx
        .offsets
        .iter()
        .map(|&o| ByteRange::new(o, ctx.block as u64))
        .collect();
    let mut sum = 0u64;
    let opts = RangeOptions::new().order(order).merge_gap(None);
    let source = crate::Source::path(ctx.path)
        .ranges(ranges)
        .range_options(opts);
    let s = reader.read(
        source,
        &mut from_fn(|c: &Chunk<'_>| {
            sum = sum.wrapping_add(block_sum(c));
            Ok(true)
        }),
    )?;
    // The engine's own clock: each read from its submission to its completion.
    let mut h = histogram();
    for t in reader.take_read_times() {
        let _ = h.record(t);
    }
    Ok(Run {
        bytes: s.bytes,
        sum,
        latency: Some(h),
    })
}

/// The async interface: `tasks` tasks of a tokio runtime each `read_at` their share of the
/// offsets, one after another, on one shared [`RangeFile`](crate::stream::RangeFile).
fn way_read_at(ctx: &Ctx<'_>, driver: &crate::stream::Driver) -> Result<Run> {
    let opts = ReadOptions::builder().direct(ctx.direct).build()?;
    let file = driver.open_ranges_with(ctx.path, &opts)?;
    if ctx.direct && !file.direct() {
        return Err(Error::InvalidOptions(format!(
            "{}: read-at could not read with O_DIRECT: {:?}",
            ctx.path.display(),
            file.notices()
        )));
    }
    let block = ctx.block;
    on_tasks(ctx, |offsets| {
        let file = file.clone();
        async move {
            let mut h = histogram();
            let mut sum = 0u64;
            for off in offsets {
                let t = Instant::now();
                let b = file.read_at(off, block).await?;
                let _ = h.record(t.elapsed().as_nanos() as u64);
                sum = sum.wrapping_add(block_sum(&b));
            }
            Ok((sum, h))
        }
    })
}

/// Reads per run for `--seconds secs`: one `pread(2)` thread's rate on 2,000 offsets of another
/// seed, from `cache`'s state, times `secs` (at least 1,000 reads, at most 20 million).
fn calibrate(path: &Path, len: u64, block: usize, cache: CacheMode, secs: f64) -> Result<usize> {
    let probe = random_offsets(len, block, 2_000, RANDOM_SEED ^ 0xCA1B);
    match cache {
        CacheMode::Warm => warm(path).map_err(open_error(path))?,
        CacheMode::Cold | CacheMode::Dontcache => drop_cache(path).map_err(open_error(path))?,
        CacheMode::Direct => {}
    }
    let ctx = Ctx {
        path,
        offsets: &probe,
        block,
        depth: 1,
        tasks: 1,
        direct: cache == CacheMode::Direct,
        cache,
    };
    let t = Instant::now();
    way_pread(&ctx)?;
    let rate = probe.len() as f64 / t.elapsed().as_secs_f64().max(1e-9);
    Ok((rate * secs).clamp(1_000.0, 20e6) as usize)
}

/// Why `way` does not run in `cache`, if it does not.
fn skip_reason(way: &str, cache: CacheMode) -> Option<&'static str> {
    match (way, cache) {
        ("tokio-fs", CacheMode::Direct) => Some("tokio::fs reads into its own unaligned buffer"),
        ("mmap", CacheMode::Direct) => Some("a mapping reads through the page cache"),
        _ => None,
    }
}

/// Runs the random pattern. Progress goes to `progress`.
pub fn run_random(
    config: &BenchConfig,
    random: &RandomConfig,
    progress: &mut dyn Write,
) -> Result<Report> {
    check_config(config, random)?;
    HASH.store(config.processor != ProcessorKind::Null, Ordering::Relaxed);
    let generated = config.files.is_empty();
    let path = the_file(config, progress)?;
    let _cleanup = super::Cleanup(if generated {
        vec![path.clone()]
    } else {
        Vec::new()
    });
    let len = std::fs::metadata(&path).map_err(open_error(&path))?.len();
    if len < random.block_size as u64 {
        return Err(Error::InvalidOptions(format!(
            "{}: smaller than one block of {} bytes",
            path.display(),
            random.block_size
        )));
    }
    let depth = config.depth.unwrap_or(128);
    let mut results = Vec::new();
    let mut counts = Vec::new();
    for &cache in &config.caches {
        let count = match random.seconds {
            Some(secs) => calibrate(&path, len, random.block_size, cache, secs)?,
            None => random.count,
        };
        counts.push(format!("{}: {count}", cache.name()));
        let offsets = random_offsets(len, random.block_size, count, RANDOM_SEED);
        let ctx = Ctx {
            path: &path,
            offsets: &offsets,
            block: random.block_size,
            depth,
            tasks: random.tasks,
            direct: cache == CacheMode::Direct,
            cache,
        };
        results.push(run_cache(config, &ctx, progress)?);
    }
    check_sums_agree(&path, &results)?;
    Ok(Report {
        source: super::BenchSource::File,
        machine: Machine::this(),
        file: FileInfo {
            paths: vec![path.display().to_string()],
            bytes: len,
            generated,
        },
        processor: config.processor,
        chunk_size: random.block_size,
        depth,
        runs: config.runs,
        results,
        notes: notes(random, &counts),
        tree: None,
        store: None,
    })
}

/// Refuses a configuration `--pattern random` cannot run: no runs, reads or bytes per read, or a
/// way it does not know.
fn check_config(config: &BenchConfig, random: &RandomConfig) -> Result<()> {
    if config.runs == 0 || random.count == 0 || random.block_size == 0 {
        return Err(Error::InvalidOptions(
            "--runs, --count and --block-size must be at least 1".into(),
        ));
    }
    for m in &config.methods {
        if !RANDOM_METHODS.contains(&m.as_str()) {
            return Err(Error::InvalidOptions(format!(
                "unknown backend '{m}' for --pattern random (expected one of {})",
                RANDOM_METHODS.join(", ")
            )));
        }
    }
    Ok(())
}

/// The one file the runs read: the one given, or one generated (`config.size` random bytes) if
/// none was.
fn the_file(config: &BenchConfig, progress: &mut dyn Write) -> Result<PathBuf> {
    match config.files.as_slice() {
        [] => {
            let _ = writeln!(
                progress,
                "generating a {} byte random file ...",
                config.size
            );
            super::generate(config.size, config)
        }
        [one] => Ok(one.clone()),
        _ => Err(Error::InvalidOptions(
            "--pattern random reads one file".into(),
        )),
    }
}

/// The readers of one cache state's runs: the engine's (backend auto) and the same on pread(2)
/// lanes, each timing its reads, and the stream driver of `read-at`.
struct Engines {
    reader: Reader,
    pread_reader: Reader,
    driver: crate::stream::Driver,
}

impl Engines {
    fn new(config: &BenchConfig, ctx: &Ctx<'_>) -> Result<Self> {
        let mut b = ReadOptions::builder()
            .direct(ctx.direct)
            .chunk_size(ctx.block)
            .depth(ctx.depth);
        if let Some(t) = config.threads {
            b = b.threads(t);
        }
        let mut reader = Reader::new(b.clone().build()?);
        // The same range reads on the engine's pread(2) lanes (no io_uring).
        let mut pread_reader = Reader::new(b.backend(crate::Backend::Pread).build()?);
        reader.time_reads();
        pread_reader.time_reads();
        let driver = crate::stream::Driver::new()?;
        Ok(Self {
            reader,
            pread_reader,
            driver,
        })
    }

    /// Set-up before the timed runs: the reader's lanes (rings, registered buffers, threads) and
    /// the driver's threads, with a few reads each (of the ways in `methods`).
    fn warm_up(&self, ctx: &Ctx<'_>, methods: &[String]) -> Result<()> {
        let some = &ctx.offsets[..ctx.offsets.len().min(4 * ctx.depth.max(1))];
        let warm_up = Ctx {
            offsets: some,
            ..*ctx
        };
        if methods.iter().any(|m| m == "ranges") {
            way_ranges(&warm_up, &self.reader, Order::Completion)?;
        }
        if methods.iter().any(|m| m == "ranges-pread") {
            way_ranges(&warm_up, &self.pread_reader, Order::Completion)?;
        }
        if methods.iter().any(|m| m == "read-at") {
            way_read_at(&warm_up, &self.driver)?;
        }
        Ok(())
    }

    /// One run of the way `name` (one of [`RANDOM_METHODS`]).
    fn run(&self, name: &str, ctx: &Ctx<'_>) -> Result<Run> {
        match name {
            "ranges" => way_ranges(ctx, &self.reader, Order::Completion),
            "ranges-pread" => way_ranges(ctx, &self.pread_reader, Order::Completion),
            "ranges-ordered" => way_ranges(ctx, &self.reader, Order::Request),
            "read-at" => way_read_at(ctx, &self.driver),
            "pread" => way_pread(ctx),
            "pread-pool" => way_pread_pool(ctx),
            "spawn-blocking" => way_spawn_blocking(ctx),
            "tokio-fs" => way_tokio_fs(ctx),
            "tokio-uring" => way_tokio_uring(ctx),
            "mmap" => way_mmap(ctx),
            other => unreachable!("checked above: {other}"),
        }
    }
}

/// What each way's runs in one cache state add up to, by the way's index: the XXH3 sum of its
/// first run (every other must equal it) and the latencies of all of them.
struct Tally {
    sums: Vec<Option<u64>>,
    hists: Vec<Option<Histogram<u64>>>,
}

impl Tally {
    fn new(ways: usize) -> Self {
        Self {
            sums: vec![None; ways],
            hists: vec![None; ways],
        }
    }

    /// Adds run `r` of way `i` (named `way`), or fails if its sum is not its first run's.
    fn add(&mut self, i: usize, way: &str, path: &Path, r: Run) -> Result<()> {
        if let Some(s) = self.sums[i] {
            if s != r.sum {
                return Err(Error::Mismatch {
                    path: path.to_path_buf(),
                    way: way.to_string(),
                    got: format!("{:016x}", r.sum),
                    reference: "its first run".into(),
                    expected: format!("{s:016x}"),
                });
            }
        }
        self.sums[i] = Some(r.sum);
        if let Some(h) = r.latency {
            self.hists[i]
                .get_or_insert_with(histogram)
                .add(h)
                .expect("same bounds");
        }
        Ok(())
    }
}

/// Puts the file in `ctx.cache`'s state before a run; under cold, raises `residency_before` to
/// the share of the file still cached after the drop.
fn prepare(ctx: &Ctx<'_>, residency_before: &mut Option<f64>) -> Result<()> {
    let path = ctx.path;
    match ctx.cache {
        CacheMode::Warm => warm(path).map_err(open_error(path))?,
        // (The command refuses dontcache with --pattern random: read as cold.)
        CacheMode::Cold | CacheMode::Dontcache => {
            drop_cache(path).map_err(open_error(path))?;
            let r = residency(path).unwrap_or(0.0);
            *residency_before = Some(residency_before.unwrap_or(0.0).max(r));
        }
        CacheMode::Direct => {}
    }
    Ok(())
}

/// Every run of every way in one cache state (`ctx.cache`), A B C A B C ...: its part of the report.
fn run_cache(config: &BenchConfig, ctx: &Ctx<'_>, progress: &mut dyn Write) -> Result<CacheReport> {
    let engines = Engines::new(config, ctx)?;
    engines.warm_up(ctx, &config.methods)?;
    let mut methods: Vec<MethodResult> = config
        .methods
        .iter()
        .map(|m| MethodResult::new(m, skip_reason(m, ctx.cache)))
        .collect();
    let mut tally = Tally::new(methods.len());
    let mut residency_before: Option<f64> = None;
    for run in 0..config.runs {
        for (i, m) in methods.iter_mut().enumerate() {
            if m.skipped.is_some() {
                continue;
            }
            super::check_interrupt(config, ctx.path)?;
            prepare(ctx, &mut residency_before)?;
            let _ = write!(
                progress,
                "\r{} {} run {}/{} ...   ",
                ctx.cache.name(),
                m.name,
                run + 1,
                config.runs
            );
            let before = Snapshot::now();
            let r = engines.run(&m.name, ctx)?;
            let cost = before.cost();
            m.samples.push(Sample::from_cost(r.bytes, &cost, false));
            tally.add(i, &m.name, ctx.path, r)?;
        }
    }
    let _ = writeln!(progress);
    for (i, m) in methods.iter_mut().enumerate() {
        m.checksum = tally.sums[i].map(|s| format!("{s:016x}"));
        m.notice = notice(&m.name, ctx);
        if let Some(h) = &tally.hists[i] {
            m.p50_us = Some(h.value_at_quantile(0.5) as f64 / 1e3);
            m.p99_us = Some(h.value_at_quantile(0.99) as f64 / 1e3);
        }
    }
    let mut report = CacheReport {
        cache: ctx.cache,
        chunk_size: ctx.block,
        depth: ctx.depth,
        residency_before,
        preparation: None,
        methods,
    };
    report.summarize();
    add_rates(&mut report, ctx.offsets.len());
    Ok(report)
}

/// The notice of the way `name` in the table: its threads or tasks, or how the engine read.
fn notice(name: &str, ctx: &Ctx<'_>) -> Option<String> {
    let depth = ctx.depth;
    if name == "pread-pool" {
        Some(format!("{} threads", pool_threads(ctx)))
    } else if matches!(name, "spawn-blocking" | "tokio-fs" | "read-at") {
        Some(format!("{} tasks", ctx.tasks))
    } else if name == "tokio-uring" {
        Some(format!("{depth} tasks on one thread"))
    } else if name.starts_with("ranges") {
        Some(format!(
            "read_ranges ({}), {} order, {depth} in flight; latency from each \
             read queued on its lane to its completion reaped (with the wait behind the \
             reads queued before it)",
            if name == "ranges-pread" {
                "pread lanes"
            } else {
                "backend auto: pread lanes for a cached file, else io_uring"
            },
            if name == "ranges-ordered" {
                "request"
            } else {
                "completion"
            }
        ))
    } else {
        None
    }
}

/// Each way's median reads per second and CPU per 10,000 reads, from its runs of `reads` reads.
fn add_rates(report: &mut CacheReport, reads: usize) {
    for m in &mut report.methods {
        let reads = reads as f64;
        m.median_iops = super::report::median(
            m.samples
                .iter()
                .map(|s| reads / s.seconds.max(1e-9))
                .collect(),
        );
        m.cpu_ms_per_10k_reads = super::report::median(
            m.samples
                .iter()
                .map(|s| s.cpu_seconds * 1e3 * 1e4 / reads)
                .collect(),
        );
    }
}

/// Two ways agree when they read the same bytes: every way's sum must be the first's, in each
/// cache state.
fn check_sums_agree(path: &Path, results: &[CacheReport]) -> Result<()> {
    for c in results {
        let sums: Vec<&String> = c
            .methods
            .iter()
            .filter_map(|m| m.checksum.as_ref())
            .collect();
        if let (Some(first), Some(m)) = (
            sums.first(),
            c.methods.iter().find(|m| {
                m.checksum
                    .as_ref()
                    .is_some_and(|s| s != *sums.first().unwrap())
            }),
        ) {
            return Err(Error::Mismatch {
                path: path.to_path_buf(),
                way: m.name.clone(),
                got: m.checksum.clone().unwrap_or_default(),
                reference: c.methods[0].name.clone(),
                expected: (*first).clone(),
            });
        }
    }
    Ok(())
}

/// The report's notes: what was read, how often, and what the checksum is.
fn notes(random: &RandomConfig, counts: &[String]) -> Vec<String> {
    vec![
        format!(
            "--pattern random: reads of {} bytes per run at block-aligned offsets (seed \
             {RANDOM_SEED:#x}), the same for every way ({}{}); IOPS = reads / wall seconds; \
             latency p50/p99 over every timed read of every run (HDR histogram); CPU per 10k \
             reads = getrusage user + system of the whole process",
            random.block_size,
            counts.join(", "),
            random.seconds.map_or(String::new(), |s| format!(
                "; --seconds {s}: as many as one pread(2) thread did in {s} s on other \
                 offsets just before"
            )),
        ),
        "checksum: the wrapping sum of the XXH3 of every block read (with --processor null: \
         of its length), equal for every way"
            .into(),
    ]
}

/// The human table of a `--pattern random` report.
pub fn random_table(r: &Report) -> String {
    let mut out = String::new();
    for c in &r.results {
        out += &format!(
            "{} random {} B reads, depth {}:\n{:<16} {:>10} {:>10} {:>10} {:>14}  {}\n",
            c.cache.name(),
            c.chunk_size,
            c.depth,
            "way",
            "IOPS",
            "p50 us",
            "p99 us",
            "CPU ms/10k",
            "notes"
        );
        let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
        for m in &c.methods {
            if let Some(why) = &m.skipped {
                out += &format!("{:<16} skipped: {why}\n", m.name);
                continue;
            }
            out += &format!(
                "{:<16} {:>10} {:>10} {:>10} {:>14}  {}\n",
                m.name,
                f(m.median_iops, 0),
                f(m.p50_us, 1),
                f(m.p99_us, 1),
                f(m.cpu_ms_per_10k_reads, 1),
                m.notice.as_deref().unwrap_or("")
            );
        }
    }
    out
}
