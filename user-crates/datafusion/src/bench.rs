//! `-- bench`: ringread's store against `LocalFileSystem`, the same work side by side in one run,
//! cold and warm, each figure the median of five runs taken in alternating order.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use ringread::store::RingStore;

use crate::{data, query, session, Result, QUERIES};

/// Runs of each measurement (the median is reported).
const RUNS: usize = 5;

/// Where the cache stands before a run.
#[derive(Clone, Copy, PartialEq)]
enum Cache {
    /// Each file's pages dropped first (`POSIX_FADV_DONTNEED`).
    Cold,
    /// Each file read whole just before.
    Warm,
}

impl Cache {
    fn name(self) -> &'static str {
        match self {
            Cache::Cold => "cold",
            Cache::Warm => "warm",
        }
    }

    fn prepare(self, files: &[PathBuf]) -> Result<()> {
        for f in files {
            let file = std::fs::File::open(f)?;
            match self {
                // SAFETY: posix_fadvise on a descriptor `file` owns; no memory is passed.
                Cache::Cold => unsafe {
                    libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
                },
                Cache::Warm => {
                    std::io::copy(&mut &file, &mut std::io::sink())?;
                }
            }
        }
        Ok(())
    }
}

/// The two stores compared.
struct Stores {
    ring: Arc<RingStore>,
    local: Arc<LocalFileSystem>,
}

/// One row of the table: the median time of each store.
fn row(work: &str, cache: Cache, local: Duration, ring: Duration, unit: Option<(f64, &str)>) {
    let rate = |d: Duration| match unit {
        Some((n, u)) => format!("{:>9.0} {u}", n / d.as_secs_f64()),
        None => String::new(),
    };
    println!(
        "{work:<34} {:<5} {:>10.1} ms {} {:>10.1} ms {}   {:>5.2}x",
        cache.name(),
        local.as_secs_f64() * 1e3,
        rate(local),
        ring.as_secs_f64() * 1e3,
        rate(ring),
        local.as_secs_f64() / ring.as_secs_f64(),
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `work` (given whether it is ringread's turn) `RUNS` times each way, alternating which
/// goes first, the cache prepared before every run; the medians (LocalFileSystem, RingStore).
async fn alternate<F, Fut>(cache: Cache, files: &[PathBuf], work: F) -> Result<(Duration, Duration)>
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (mut local, mut ring) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        for ours in [run % 2 == 0, run % 2 == 1] {
            cache.prepare(files)?;
            let t = Instant::now();
            work(ours).await?;
            if ours { &mut ring } else { &mut local }.push(t.elapsed());
        }
    }
    Ok((median(local), median(ring)))
}

/// [`alternate`] of `work` on each store.
async fn measure<F, Fut>(
    cache: Cache,
    files: &[PathBuf],
    stores: &Stores,
    work: F,
) -> Result<(Duration, Duration)>
where
    F: Fn(Arc<dyn ObjectStore>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    alternate(cache, files, |ours| {
        let store: Arc<dyn ObjectStore> = if ours {
            stores.ring.clone()
        } else {
            stores.local.clone()
        };
        work(store)
    })
    .await
}

/// Writes `len` bytes of a pattern to `path` unless it is there with that length.
fn make_file(path: &Path, len: usize, seed: u64) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == len as u64) {
        return Ok(());
    }
    let mut x = seed | 1;
    let block: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            (x >> 33) as u8
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..len.div_ceil(block.len()) {
        let n = block.len().min(len - i * block.len());
        std::io::Write::write_all(&mut out, &block[..n])?;
    }
    std::io::Write::flush(&mut out)?;
    Ok(())
}

fn object(path: &Path) -> Result<ObjectPath> {
    Ok(ObjectPath::from_filesystem_path(path)?)
}

pub async fn run(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("objects"))?;
    let big = dir.join("big.bin");
    make_file(&big, 1 << 30, 1)?;
    let objects: Vec<PathBuf> = (0..64)
        .map(|i| dir.join(format!("objects/{i:02}.bin")))
        .collect();
    for (i, p) in objects.iter().enumerate() {
        make_file(p, 8 << 20, i as u64 + 2)?;
    }
    let tables = data::make(&dir.join("parquet"), 8, 1_000_000)?;
    let stores = Stores {
        ring: Arc::new(RingStore::new()?),
        local: Arc::new(LocalFileSystem::new()),
    };
    println!(
        "ringread's RingStore against object_store's LocalFileSystem, {RUNS} runs each (median), \
         alternating order; x = LocalFileSystem's time / RingStore's ({})",
        stores.ring
    );
    println!(
        "{:<34} {:<5} {:>32} {:>32}",
        "work", "cache", "LocalFileSystem", "RingStore"
    );

    let at = object(&big)?;
    let mut x = 7u64;
    let ranges: Vec<std::ops::Range<u64>> = (0..10_000)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let page = (x >> 24) % ((1 << 30) / 4096);
            page * 4096..page * 4096 + 4096
        })
        .collect();
    let named: Vec<ObjectPath> = objects.iter().map(|p| object(p)).collect::<Result<_>>()?;
    // ONLY=ranges,gets,queries and CACHE=cold or warm choose what runs (default: everything).
    let only = std::env::var("ONLY").unwrap_or_else(|_| "ranges,gets,queries".into());
    let caches: Vec<Cache> = match std::env::var("CACHE").as_deref() {
        Ok("cold") => vec![Cache::Cold],
        Ok("warm") => vec![Cache::Warm],
        _ => vec![Cache::Cold, Cache::Warm],
    };
    for &cache in &caches {
        if !only.contains("ranges") {
            continue;
        }
        let (l, r) = measure(cache, std::slice::from_ref(&big), &stores, |s| {
            let (at, ranges) = (at.clone(), ranges.clone());
            async move {
                let got = s.get_ranges(&at, &ranges).await?;
                assert_eq!(got.len(), ranges.len());
                Ok(())
            }
        })
        .await?;
        row(
            "get_ranges, 10,000 x 4 KiB random",
            cache,
            l,
            r,
            Some((10_000.0, "IOPS")),
        );
    }
    for &cache in &caches {
        if !only.contains("gets") {
            continue;
        }
        let (l, r) = measure(cache, &objects, &stores, |s| {
            let named = named.clone();
            async move {
                let all = try_join_all(named.iter().map(|p| {
                    let s = s.clone();
                    async move { s.get(p).await?.bytes().await }
                }))
                .await?;
                assert!(all.iter().all(|b| b.len() == 8 << 20));
                Ok(())
            }
        })
        .await?;
        row(
            "64 concurrent gets of 8 MiB",
            cache,
            l,
            r,
            Some((512.0, "MiB/s")),
        );
    }
    if !only.contains("queries") {
        return Ok(());
    }
    queries(&dir.join("parquet"), &tables, &stores, &caches).await
}

/// The DataFusion queries through each store, cold and warm.
async fn queries(dir: &Path, tables: &[PathBuf], stores: &Stores, caches: &[Cache]) -> Result<()> {
    let ours = session(dir, Some(stores.ring.clone())).await?;
    let theirs = session(dir, None).await?;
    for (name, sql) in QUERIES {
        if query(&ours, sql).await? != query(&theirs, sql).await? {
            return Err(format!("{name}: the stores' results differ").into());
        }
        for &cache in caches {
            let (l, r) = alternate(cache, tables, |ring| {
                let ctx = if ring { &ours } else { &theirs };
                async move { query(ctx, sql).await.map(drop) }
            })
            .await?;
            row(&format!("DataFusion: {name}"), cache, l, r, None);
        }
    }
    Ok(())
}
