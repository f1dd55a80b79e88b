//! Many files read whole from tokio code: 64 tasks over a tree of 2,000 files, through the driver's
//! whole-file reads (`Driver::files`, of one path or of many) beside `spawn_blocking(std::fs::read)`.
//!
//! ```text
//! cargo run --release --example read_many_async -- [FILES] [ROUNDS] [SEED] [DIR]
//! ```
//!
//! It writes FILES files (2,000 by default) with lognormal sizes (bytes = exp(N(8, 1.5)), capped
//! at 2,000,000; SEED 42 by default) under DIR (a new temporary directory by default), reads
//! everything once (warm), then times each way ROUNDS times (7 by default), alternating, on a
//! multi-threaded runtime with 2 workers, and prints the median of each and its ratio to
//! `spawn_blocking(std::fs::read)`. Every way's bytes are checked against the files' contents (exit
//! status 1 on a mismatch).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringread::stream::Driver;
use ringread::Source;

const TASKS: usize = 64;

/// splitmix64: a fixed, portable sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The files' paths and their contents.
type Tree = (Vec<PathBuf>, Vec<Arc<Vec<u8>>>);

/// Writes the tree: `n` files in 20 directories.
fn make_tree(dir: &Path, n: usize, seed: u64) -> std::io::Result<Tree> {
    let mut rng = Rng(seed);
    let mut paths = Vec::with_capacity(n);
    let mut contents = Vec::with_capacity(n);
    for i in 0..n {
        let size = (8.0 + 1.5 * rng.normal()).exp().min(2_000_000.0) as usize;
        let mut data = vec![0u8; size];
        for w in data.chunks_mut(8) {
            let r = rng.next().to_le_bytes();
            w.copy_from_slice(&r[..w.len()]);
        }
        let sub = dir.join(format!("d{:02}", i % 20));
        std::fs::create_dir_all(&sub)?;
        let p = sub.join(format!("f{i:05}"));
        std::fs::write(&p, &data)?;
        paths.push(p);
        contents.push(Arc::new(data));
    }
    Ok((paths, contents))
}

/// The paths of task `t`: every TASKS-th file from `t`, with their indexes.
fn share(paths: &[PathBuf], t: usize) -> (Vec<usize>, Vec<PathBuf>) {
    (t..paths.len())
        .step_by(TASKS)
        .map(|i| (i, paths[i].clone()))
        .unzip()
}

/// The ways compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// 64 tasks, each `spawn_blocking(std::fs::read)` per file of its share.
    SpawnBlocking,
    /// 64 tasks, each `Driver::files(path)` per file of its share (one file each).
    Read,
    /// 64 tasks, each one `Driver::files` over its share.
    ReadMany64,
    /// One task, one `Driver::files` over all the files.
    ReadManyAll,
    /// 64 tasks, each `Driver::chunks` per file, its chunks copied into one buffer.
    OpenPerFile,
    /// For reference: `std::fs::read` of every file in a loop on one thread, outside the runtime.
    PlainLoop,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::SpawnBlocking => "64 tasks x spawn_blocking(std::fs::read)",
            Way::Read => "64 tasks x Driver::files (one path each)",
            Way::ReadMany64 => "64 tasks x Driver::files (its share)",
            Way::ReadManyAll => "1 task x Driver::files (all)",
            Way::OpenPerFile => "64 tasks x Driver::chunks, copied",
            Way::PlainLoop => "std::fs::read loop, 1 thread (reference)",
        }
    }
}

/// `std::fs::read` of every file on this thread; returns how many differ from `want`.
fn plain_loop(paths: &[PathBuf], want: &[Arc<Vec<u8>>]) -> usize {
    let mut bad = 0;
    for (p, w) in paths.iter().zip(want) {
        bad += usize::from(std::fs::read(p).map_or(true, |b| b[..] != w[..]));
    }
    bad
}

/// Reads every file the `way` way; returns how many differ from `want`.
async fn run(way: Way, driver: &Driver, paths: &[PathBuf], want: &[Arc<Vec<u8>>]) -> usize {
    if way == Way::ReadManyAll {
        let mut bad = 0;
        let mut files = driver.files(Source::paths(paths)).unwrap();
        while let Some((i, r)) = files.next_file().await {
            bad += usize::from(r.map_or(true, |b| b[..] != want[i][..]));
        }
        return bad;
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (idx, mine) = share(paths, t);
            let want: Vec<_> = idx.iter().map(|&i| Arc::clone(&want[i])).collect();
            let driver = driver.clone();
            tokio::spawn(async move {
                let mut bad = 0;
                let mut check = |k: usize, got: Option<&[u8]>| {
                    bad += usize::from(got != Some(&want[k][..]));
                };
                match way {
                    Way::SpawnBlocking => {
                        for (k, p) in mine.into_iter().enumerate() {
                            let got = tokio::task::spawn_blocking(move || std::fs::read(p))
                                .await
                                .unwrap();
                            check(k, got.as_deref().ok());
                        }
                    }
                    Way::Read => {
                        for (k, p) in mine.iter().enumerate() {
                            let (_, got) = driver.files(p).unwrap().next_file().await.unwrap();
                            check(k, got.as_deref().ok());
                        }
                    }
                    Way::ReadMany64 => {
                        let mut files = driver.files(Source::paths(&mine)).unwrap();
                        while let Some((k, got)) = files.next_file().await {
                            check(k, got.as_deref().ok());
                        }
                    }
                    Way::OpenPerFile => {
                        for (k, p) in mine.iter().enumerate() {
                            let mut got = Vec::new();
                            let mut s = driver.chunks(p).unwrap();
                            while let Some(c) = s.next_chunk().await {
                                got.extend_from_slice(&c.unwrap());
                            }
                            check(k, Some(&got));
                        }
                    }
                    Way::ReadManyAll | Way::PlainLoop => unreachable!(),
                }
                bad
            })
        })
        .collect();
    let mut bad = 0;
    for t in tasks {
        bad += t.await.unwrap();
    }
    bad
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(7), |a| a.parse())?;
    let seed: u64 = args.next().map_or(Ok(42), |a| a.parse())?;
    let tmp;
    let dir = match args.next() {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("read_many_async")
                .tempdir_in(std::env::temp_dir())?;
            tmp.path().to_path_buf()
        }
    };
    let (paths, contents) = make_tree(&dir, n, seed)?;
    let total: usize = contents.iter().map(|c| c.len()).sum();
    println!(
        "{n} files, {:.1} MiB, in {}; {TASKS} tasks, a multi-thread runtime with 2 workers; warm; \
         median of {rounds} rounds, the ways alternating",
        total as f64 / (1 << 20) as f64,
        dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let driver = Driver::new()?;
    if let Some(n) = driver.notice() {
        println!("note: {n}");
    }
    let ways = [
        Way::SpawnBlocking,
        Way::Read,
        Way::ReadMany64,
        Way::ReadManyAll,
        Way::OpenPerFile,
        Way::PlainLoop,
    ];
    // Warm: everything read once, every way run once.
    for p in &paths {
        std::fs::read(p)?;
    }
    let mut bad = 0;
    for &w in &ways[..ways.len() - 1] {
        bad += rt.block_on(run(w, &driver, &paths, &contents));
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); ways.len()];
    for _ in 0..rounds {
        for (k, &w) in ways.iter().enumerate() {
            let t = Instant::now();
            bad += if w == Way::PlainLoop {
                plain_loop(&paths, &contents)
            } else {
                rt.block_on(run(w, &driver, &paths, &contents))
            };
            times[k].push(t.elapsed());
        }
    }
    let base = median(times[0].clone());
    for (k, &w) in ways.iter().enumerate() {
        let m = median(times[k].clone());
        println!(
            "{:<44} {:>8.1} ms  {:>5.2}x",
            w.name(),
            m.as_secs_f64() * 1e3,
            m.as_secs_f64() / base.as_secs_f64()
        );
    }
    let st = driver.stats();
    println!(
        "driver: {} threads, buffers {:.1} MiB now, {:.1} MiB at the peak, budget {:.0} MiB",
        driver.threads(),
        st.buffer_bytes as f64 / (1 << 20) as f64,
        st.peak_buffer_bytes as f64 / (1 << 20) as f64,
        st.budget as f64 / (1 << 20) as f64
    );
    if bad > 0 {
        eprintln!("read_many_async: {bad} files read wrong");
        std::process::exit(1);
    }
    Ok(())
}
