//! `ringread bench --store`: the same object-store work through ringread's store
//! ([`RingStore`](crate::store::RingStore)) and through object_store's `LocalFileSystem`, side by
//! side in one run, warm and cold (issue 26, item 6):
//!
//! - `get_ranges`: `count` random block-aligned ranges of `block` bytes (4 KiB, 10,000 unless
//!   told; [`random_offsets`] with [`RANDOM_SEED`]) of one file, in one `get_ranges` call;
//! - `get`: `objects` concurrent whole-object gets (`get` then `bytes()`, joined on one task) of
//!   files of `object_size` bytes (64 of 8 MiB unless told).
//!
//! Runs alternate between the stores (ringread's first in even runs, `LocalFileSystem`'s in odd
//! ones, as `user-crates/datafusion`'s `bench` does), the cache state made before every run (warm:
//! each file of the work read once; cold: their pages dropped with [`drop_caches`]). Each figure
//! is the median of the runs. Every result (the XXH3 of the returned bytes in request order, and
//! each length) must equal `LocalFileSystem`'s first one, or the benchmark fails with
//! [`Error::Mismatch`].
//!
//! The DataFusion queries of the issue are not here: DataFusion cannot be a dependency of the
//! command; `user-crates/datafusion` runs them (`cargo run --release -- bench`).

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::try_join_all;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use super::cache::{cached_share, drop_caches, warm, CacheMode};
use super::metrics::Snapshot;
use super::random::{random_offsets, RANDOM_SEED};
use super::report::{median, CacheReport, FileInfo, Machine, MethodResult, Report, Sample};
use super::ways::open_error;
use super::{BenchConfig, BenchSource, ProcessorKind};
use crate::error::{Error, Result};
use crate::processor::{Algorithm, Checksum};
use crate::store::RingStore;

/// The works `--store` measures, in report order.
pub const STORE_WORKS: [&str; 2] = ["get_ranges", "get"];

/// The stores compared, in each work's order: object_store's, then ringread's.
pub const STORES: [&str; 2] = ["LocalFileSystem", "RingStore"];

/// The size of the file `get_ranges` reads, unless `--size` says.
pub const DEFAULT_STORE_FILE_SIZE: u64 = 2 << 30;

/// Objects of the `get` work, unless `--files` says.
pub const DEFAULT_STORE_OBJECTS: usize = 64;

/// The size of each object, unless `--object-size` says.
pub const DEFAULT_OBJECT_SIZE: u64 = 8 << 20;

/// Ranges of the `get_ranges` call, unless `--count` says.
pub const DEFAULT_STORE_RANGES: usize = 10_000;

/// The seed of the generated files' contents (each file's: this, mixed with its index).
pub const STORE_SEED: u64 = 0x0B1E_C75E_ED00_0001;

/// The name of the file `get_ranges` reads, in the data directory.
pub const STORE_RANGES_FILE: &str = "ranges.bin";

/// What `--store` adds to [`BenchConfig`] (whose `size`, `caches`, `runs` and `cancel` it uses).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where the data is, or is made if absent (kept); `None`: made under `$TMPDIR` and removed
    /// afterwards.
    pub dir: Option<PathBuf>,
    /// Objects of the `get` work.
    pub objects: usize,
    /// Bytes of each object.
    pub object_size: u64,
    /// Ranges of the `get_ranges` call.
    pub ranges: usize,
    /// Bytes of each range.
    pub range_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dir: None,
            objects: DEFAULT_STORE_OBJECTS,
            object_size: DEFAULT_OBJECT_SIZE,
            ranges: DEFAULT_STORE_RANGES,
            range_size: 4096,
        }
    }
}

/// What a `--store` benchmark read, and how (the report's `store`).
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    /// The data directory.
    pub dir: String,
    /// Whether the directory was made under `$TMPDIR` for this run and removed afterwards.
    pub temporary: bool,
    /// Files this run wrote (the others were there with the right length, and were kept).
    pub files_made: usize,
    /// The file `get_ranges` reads.
    pub ranges_file: String,
    /// Its size, bytes.
    pub ranges_file_bytes: u64,
    /// Ranges of the one `get_ranges` call.
    pub ranges: usize,
    /// Bytes of each range.
    pub range_bytes: usize,
    /// The seed of the ranges' offsets ([`random_offsets`]).
    pub ranges_seed: u64,
    /// Objects read concurrently by the `get` work.
    pub objects: usize,
    /// Bytes of each object.
    pub object_bytes: u64,
    /// The ringread store, as it shows itself (with why it reads without io_uring, if it does).
    pub ring_store: String,
    /// Which way `ratio_to_local` goes.
    pub ratio: String,
    /// What each row's `checksum` is.
    pub checksum: String,
}

/// The work of one run: the files it reads (made warm or cold before it) and what it asks.
enum Work<'a> {
    Ranges {
        at: &'a ObjectPath,
        ranges: &'a [Range<u64>],
    },
    Gets {
        objects: &'a [ObjectPath],
    },
}

impl Work<'_> {
    /// Runs the work on `store`: what it returned, in request order.
    async fn run(&self, store: &Arc<dyn ObjectStore>) -> object_store::Result<Vec<Bytes>> {
        match self {
            Work::Ranges { at, ranges } => store.get_ranges(at, ranges).await,
            Work::Gets { objects } => {
                try_join_all(objects.iter().map(|p| {
                    let s = store.clone();
                    async move { s.get(p).await?.bytes().await }
                }))
                .await
            }
        }
    }
}

/// What a run returned, checked: the bytes, the XXH3 of them all in request order, or why not
/// (a part of the wrong length).
fn digest(parts: &[Bytes], lengths: &dyn Fn(usize) -> u64) -> std::result::Result<String, String> {
    let mut sum = Checksum::new(Algorithm::Xxh3);
    for (i, p) in parts.iter().enumerate() {
        if p.len() as u64 != lengths(i) {
            return Err(format!(
                "part {i}: {} bytes, expected {}",
                p.len(),
                lengths(i)
            ));
        }
        sum.update(p);
    }
    Ok(sum.hex())
}

/// The seed of the data of the `i`th file (0: the ranges file, then the objects).
fn file_seed(i: usize) -> u64 {
    STORE_SEED ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The data in `dir`: the ranges file and the objects (`objects/NN.bin`), each made unless it is
/// there with its length; the paths, and how many files were made.
fn make_data(
    config: &BenchConfig,
    store: &StoreConfig,
    dir: &Path,
    progress: &mut dyn Write,
) -> Result<(PathBuf, Vec<PathBuf>, usize)> {
    let objects_dir = dir.join("objects");
    std::fs::create_dir_all(&objects_dir).map_err(open_error(&objects_dir))?;
    let big = dir.join(STORE_RANGES_FILE);
    let objects: Vec<PathBuf> = (0..store.objects)
        .map(|i| objects_dir.join(format!("{i:02}.bin")))
        .collect();
    let mut made = 0;
    let wanted =
        std::iter::once((&big, config.size)).chain(objects.iter().map(|p| (p, store.object_size)));
    for (i, (path, len)) in wanted.enumerate() {
        if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == len) {
            continue;
        }
        let _ = writeln!(progress, "generating {} ({len} bytes) ...", path.display());
        if let Err(e) = super::write_random(config, path, len, file_seed(i)) {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        made += 1;
    }
    Ok((big, objects, made))
}

/// Removes the temporary data directory when dropped.
struct RemoveDir(Option<PathBuf>);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Puts `files` in `cache`'s state before a run; under cold, raises `residency_before` to the
/// share of their bytes still cached after the drop.
fn prepare(cache: CacheMode, files: &[PathBuf], residency_before: &mut Option<f64>) -> Result<()> {
    match cache {
        CacheMode::Warm => {
            for f in files {
                warm(f).map_err(open_error(f))?;
            }
        }
        _ => {
            drop_caches(files).map_err(open_error(&files[0]))?;
            let r = cached_share(files).unwrap_or(f64::NAN);
            *residency_before = Some(residency_before.unwrap_or(0.0).max(r));
        }
    }
    Ok(())
}

fn store_error(path: &Path) -> impl Fn(object_store::Error) -> Error + '_ {
    move |e| Error::Read {
        path: path.to_path_buf(),
        offset: 0,
        source: std::io::Error::other(e),
    }
}

fn object_path(path: &Path) -> Result<ObjectPath> {
    ObjectPath::from_filesystem_path(path).map_err(|e| Error::Open {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

/// The reference result of each work (`LocalFileSystem`'s first), which every run must give.
struct Reference {
    sums: [Option<String>; 2],
}

impl Reference {
    /// Checks run `r`'s result of work `w` by the store of `method` against the reference (the
    /// first result, which becomes it).
    fn check(&mut self, w: usize, method: &str, path: &Path, got: String) -> Result<()> {
        match &self.sums[w] {
            Some(s) if *s != got => Err(Error::Mismatch {
                path: path.to_path_buf(),
                way: method.to_string(),
                got,
                reference: format!("{}/{}", STORE_WORKS[w], STORES[0]),
                expected: s.clone(),
            }),
            Some(_) => Ok(()),
            None => {
                self.sums[w] = Some(got);
                Ok(())
            }
        }
    }
}

/// Refuses what `--store` cannot measure.
fn check_store_options(config: &BenchConfig, store: &StoreConfig) -> Result<()> {
    if config.runs == 0 || store.objects == 0 || store.ranges == 0 || store.range_size == 0 {
        return Err(Error::InvalidOptions(
            "--runs, --files, --count and --block-size must be at least 1".into(),
        ));
    }
    if config.size < store.range_size as u64 || store.object_size == 0 {
        return Err(Error::InvalidOptions(format!(
            "--size must hold one range of {} bytes, and --object-size be at least 1",
            store.range_size
        )));
    }
    if let Some(c) = config
        .caches
        .iter()
        .find(|c| !matches!(c, CacheMode::Warm | CacheMode::Cold))
    {
        return Err(Error::InvalidOptions(format!(
            "--store measures warm or cold reads (--cache warm, cold or all), not {}",
            c.name()
        )));
    }
    Ok(())
}

/// The two stores, the two works and what checks their results, for every run.
struct Bench<'a> {
    rt: tokio::runtime::Runtime,
    stores: [Arc<dyn ObjectStore>; 2],
    works: [Work<'a>; 2],
    /// The files of each work (the first names its errors).
    files: [&'a [PathBuf]; 2],
    /// The length of each part of each work's result.
    lengths: [&'a dyn Fn(usize) -> u64; 2],
    /// Row names: work/store.
    names: Vec<String>,
    reference: Reference,
}

impl Bench<'_> {
    /// Runs work `w` through store `s`: the bytes, and their checksum (checked against the
    /// reference).
    fn turn(&mut self, w: usize, s: usize) -> Result<(u64, String)> {
        let name = &self.names[w * 2 + s];
        let path = &self.files[w][0];
        let got = self
            .rt
            .block_on(self.works[w].run(&self.stores[s]))
            .map_err(store_error(path))?;
        let bytes: u64 = got.iter().map(|b| b.len() as u64).sum();
        let sum = digest(&got, self.lengths[w]).map_err(|why| Error::Mismatch {
            path: path.clone(),
            way: name.clone(),
            got: why,
            reference: "the lengths asked".into(),
            expected: "every part of its length".into(),
        })?;
        drop(got);
        self.reference.check(w, name, path, sum.clone())?;
        Ok((bytes, sum))
    }

    /// The timed runs of every work and store in one cache state.
    fn measure(
        &mut self,
        config: &BenchConfig,
        store: &StoreConfig,
        cache: CacheMode,
        progress: &mut dyn Write,
    ) -> Result<CacheReport> {
        let mut methods: Vec<MethodResult> = self
            .names
            .iter()
            .map(|n| MethodResult::new(n, None))
            .collect();
        let mut residency_before = None;
        for w in 0..self.works.len() {
            for run in 0..config.runs {
                // Ringread's store first in even runs, LocalFileSystem's in odd ones.
                let order = if run % 2 == 0 { [1, 0] } else { [0, 1] };
                for s in order {
                    let method = w * 2 + s;
                    super::check_interrupt(config, &self.files[w][0])?;
                    prepare(cache, self.files[w], &mut residency_before)?;
                    let snap = Snapshot::now();
                    let (bytes, sum) = self.turn(w, s)?;
                    let cost = snap.cost();
                    let sample = Sample::from_cost(bytes, &cost, true);
                    let _ = writeln!(
                        progress,
                        "{} run {}/{}: {:<26} {:9.1} ms",
                        cache.name(),
                        run + 1,
                        config.runs,
                        self.names[method],
                        sample.seconds * 1e3
                    );
                    let m = &mut methods[method];
                    m.samples.push(sample);
                    m.checksum = Some(sum);
                }
            }
        }
        let mut report = CacheReport {
            cache,
            chunk_size: store.range_size,
            depth: store.objects,
            residency_before,
            preparation: Some(match cache {
                CacheMode::Warm => "each file of the work read once right before each run".into(),
                _ => "each file of the work dropped from the page cache before each run \
                      (posix_fadvise DONTNEED; as root, drop_caches first)"
                    .into(),
            }),
            methods,
        };
        report.summarize();
        add_store_figures(&mut report, store.ranges);
        Ok(report)
    }
}

/// The data's files made absolute, and their object paths: both stores over the whole file
/// system.
#[allow(clippy::type_complexity)]
fn object_paths(
    big: PathBuf,
    objects: Vec<PathBuf>,
) -> Result<(PathBuf, Vec<PathBuf>, ObjectPath, Vec<ObjectPath>)> {
    let big = big.canonicalize().map_err(open_error(&big))?;
    let objects: Vec<PathBuf> = objects
        .iter()
        .map(|p| p.canonicalize().map_err(open_error(p)))
        .collect::<Result<_>>()?;
    let at = object_path(&big)?;
    let named = objects
        .iter()
        .map(|p| object_path(p))
        .collect::<Result<_>>()?;
    Ok((big, objects, at, named))
}

/// Where `--store`'s data is.
struct StoreData {
    dir: PathBuf,
    /// Made for this run, removed afterwards.
    temporary: bool,
    /// Files made now.
    made: usize,
    big: PathBuf,
    objects: Vec<PathBuf>,
}

/// The report of a `--store` run.
fn store_report(
    config: &BenchConfig,
    store: &StoreConfig,
    d: StoreData,
    ring_name: String,
    results: Vec<CacheReport>,
) -> Report {
    let total = config.size + store.objects as u64 * store.object_size;
    Report {
        source: BenchSource::Store,
        machine: Machine::this(),
        file: FileInfo {
            paths: std::iter::once(&d.big)
                .chain(d.objects.iter())
                .map(|p| p.display().to_string())
                .collect(),
            bytes: total,
            generated: d.made > 0,
        },
        processor: ProcessorKind::Null,
        chunk_size: store.range_size,
        depth: store.objects,
        runs: config.runs,
        results,
        notes: notes(),
        tree: None,
        store: Some(StoreInfo {
            dir: d.dir.display().to_string(),
            temporary: d.temporary,
            files_made: d.made,
            ranges_file: d.big.display().to_string(),
            ranges_file_bytes: config.size,
            ranges: store.ranges,
            range_bytes: store.range_size,
            ranges_seed: RANDOM_SEED,
            objects: store.objects,
            object_bytes: store.object_size,
            ring_store: ring_name,
            ratio: "ratio_to_local (on RingStore's rows) = LocalFileSystem's median time / \
                    RingStore's: above 1, RingStore is faster"
                .into(),
            checksum: "XXH3 of the bytes returned, in request order (every range, or every \
                       object, one after another); every run of both stores must equal \
                       LocalFileSystem's first"
                .into(),
        }),
    }
}

/// Runs `--store`. Progress goes to `progress`.
pub fn run_store(
    config: &BenchConfig,
    store: &StoreConfig,
    progress: &mut dyn Write,
) -> Result<Report> {
    check_store_options(config, store)?;
    let temporary = store.dir.is_none();
    let dir = match &store.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("ringread-bench-store-{}", std::process::id())),
    };
    let _remove = RemoveDir(temporary.then(|| dir.clone()));
    let (big, objects, made) = make_data(config, store, &dir, progress)?;
    let (big, objects, at, named) = object_paths(big, objects)?;
    let len = store.range_size as u64;
    let ranges: Vec<Range<u64>> =
        random_offsets(config.size, store.range_size, store.ranges, RANDOM_SEED)
            .into_iter()
            .map(|o| o..o + len)
            .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let rt = rt.map_err(|source| Error::Ring {
        path: dir.clone(),
        op: "tokio runtime",
        source,
    })?;
    let ring = RingStore::new()?;
    let ring_name = ring.to_string();
    let mut bench = Bench {
        rt,
        stores: [Arc::new(LocalFileSystem::new()), Arc::new(ring)],
        works: [
            Work::Ranges {
                at: &at,
                ranges: &ranges,
            },
            Work::Gets { objects: &named },
        ],
        files: [std::slice::from_ref(&big), &objects],
        lengths: [&|_| len, &|_| store.object_size],
        names: STORE_WORKS
            .iter()
            .flat_map(|w| STORES.iter().map(move |s| format!("{w}/{s}")))
            .collect(),
        reference: Reference { sums: [None, None] },
    };
    // One untimed turn of each store at each work, from whatever the cache holds: the drivers'
    // threads started, and the stores' results compared before any is timed.
    for w in 0..2 {
        for s in 0..2 {
            let _ = writeln!(progress, "checking {} ...", bench.names[w * 2 + s]);
            bench.turn(w, s)?;
        }
    }
    let mut results = Vec::new();
    for &cache in &config.caches {
        results.push(bench.measure(config, store, cache, progress)?);
    }
    drop(bench);

    let data = StoreData {
        dir,
        temporary,
        made,
        big,
        objects,
    };
    Ok(store_report(config, store, data, ring_name, results))
}

/// Each row's median time and (ranges) reads per second, and on RingStore's rows its ratio to
/// LocalFileSystem's time.
fn add_store_figures(report: &mut CacheReport, ranges: usize) {
    for m in &mut report.methods {
        m.median_ms = median(m.samples.iter().map(|s| s.seconds * 1e3).collect());
        if m.name.starts_with("get_ranges/") {
            m.median_iops = median(
                m.samples
                    .iter()
                    .map(|s| ranges as f64 / s.seconds.max(1e-9))
                    .collect(),
            );
        }
    }
    for pair in report.methods.chunks_mut(2) {
        if let [local, ring] = pair {
            ring.ratio_to_local = match (local.median_ms, ring.median_ms) {
                (Some(l), Some(r)) if r > 0.0 => Some(l / r),
                _ => None,
            };
        }
    }
}

fn notes() -> Vec<String> {
    vec![
        "ratio = LocalFileSystem's median time / RingStore's (above 1x: RingStore is faster); \
         runs alternate between the stores (RingStore first in even runs), the cache state made \
         before every run"
            .into(),
        "get_ranges: one call with every range (random block-aligned offsets, fixed seed); get: \
         every object's get(...).bytes() at once, joined on one task (futures try_join_all) of a \
         multi-threaded tokio runtime; the time ends when every byte is returned (checking and \
         dropping the bytes are not timed)"
            .into(),
        "LocalFileSystem reads in spawn_blocking (get_ranges: one blocking task reading every \
         range in turn); RingStore through ringread's async driver (many reads in flight)"
            .into(),
        "The DataFusion queries of issue 26 are not here (DataFusion cannot be a dependency of \
         the command): run them with `cargo run --release -- bench` in user-crates/datafusion"
            .into(),
    ]
}
