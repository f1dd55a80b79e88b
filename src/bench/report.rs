//! The benchmark's results as data (serialised to JSON as is), and the human table (a `--tree`
//! benchmark's: `tree`).

mod store;
mod tree;

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::metrics::Cost;
use super::{CacheMode, ProcessorKind};

const GIB: f64 = (1u64 << 30) as f64;

const HEADER: [&str; 10] = [
    "backend",
    "GiB/s",
    "min-max",
    "CPU s/GiB",
    "calls/GiB",
    "all sys/GiB",
    "faults/GiB",
    "peak RSS",
    "vs sync",
    "xxh3 of data",
];

/// Everything one `ringread bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was read: `file` (files, the default), `pipe` or `tcp` (a generated stream from a
    /// child process).
    pub source: super::BenchSource,
    /// The machine it ran on.
    pub machine: Machine,
    /// What was read.
    pub file: FileInfo,
    /// The processor of the timed runs.
    pub processor: ProcessorKind,
    /// Bytes per read (of the first cache state; `direct` may use its own default).
    pub chunk_size: usize,
    /// Reads in flight, all threads together (likewise).
    pub depth: usize,
    /// Timed runs per way and cache state.
    pub runs: usize,
    /// One table per cache state.
    pub results: Vec<CacheReport>,
    /// What the figures do not show, in words (which ways do not apply, what is not counted).
    pub notes: Vec<String>,
    /// `--tree`: the tree read, and how the ways read it (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree: Option<super::TreeInfo>,
    /// `--store`: the data read, and how the stores were compared (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<super::StoreInfo>,
}

/// The machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs this process may use.
    pub cpus: usize,
    /// The CPU model (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// `uname -r`.
    pub kernel: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        Machine {
            cpus: crate::ring::usable_cpus(),
            cpu_model,
            memory_bytes,
            kernel,
        }
    }
}

/// The data read.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// The files, in the order each run reads them.
    pub paths: Vec<String>,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Whether `bench` generated the (random) file itself.
    pub generated: bool,
}

/// The results of one cache state.
#[derive(Debug, Clone, Serialize)]
pub struct CacheReport {
    /// The cache state (for `--source pipe` or `tcp`, always `warm`, which means nothing there: see
    /// [`Report::source`]).
    pub cache: CacheMode,
    /// Bytes per read in this cache state.
    pub chunk_size: usize,
    /// Reads in flight (all threads together) in this cache state.
    pub depth: usize,
    /// For `cold`: the largest fraction of the file found resident (`mincore`) right before a run
    /// (`--tree`: of up to 16 files spread over the tree, so as not to warm the rest's metadata).
    pub residency_before: Option<f64>,
    /// `--tree`: what was done before each run to make this cache state, in words; says so when
    /// it could be done only in part (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preparation: Option<String>,
    /// One entry per way, in the order asked.
    pub methods: Vec<MethodResult>,
}

/// One way's results in one cache state.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    /// The way (`sync`, `uring-fixed`, ...).
    pub name: String,
    /// Why it was not run, if it was not.
    pub skipped: Option<String>,
    /// Median throughput, GiB/s (2^30 bytes per second).
    pub median_gib_per_s: Option<f64>,
    /// Slowest run, GiB/s.
    pub min_gib_per_s: Option<f64>,
    /// Fastest run, GiB/s.
    pub max_gib_per_s: Option<f64>,
    /// Median CPU seconds (user + system, all threads of the process) per GiB read.
    pub cpu_s_per_gib: Option<f64>,
    /// Median system calls per GiB: `read(2)`-family calls (`syscr` of `/proc/self/io`) plus
    /// ringread's own `io_uring_enter` calls. `None` for tokio-uring, whose enters cannot be counted
    /// from inside the process.
    pub syscalls_per_gib: Option<f64>,
    /// Files: median of every system call of the process per GiB (a perf counter, so it counts
    /// the runtimes' `io_uring_enter` calls too, which `syscalls_per_gib` cannot); absent where
    /// the counter could not be opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_syscalls_per_gib: Option<f64>,
    /// Median page faults per GiB (what mmap pays instead of system calls).
    pub faults_per_gib: Option<f64>,
    /// Files: the largest share of the files in the page cache right after a run, 0.0 to 1.0
    /// (`dontcache`: what the way's reading left cached; cold: what it brought in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residency_after: Option<f64>,
    /// Largest peak resident memory of a run (`VmHWM`, reset before each run), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Median throughput relative to `sync`'s median in the same cache state.
    pub ratio_to_sync: Option<f64>,
    /// Median CPU seconds per GiB relative to `epoll`'s in the same table (streams only).
    pub cpu_ratio_to_epoll: Option<f64>,
    /// XXH3 of the bytes this way read (per file, comma-separated): equal for every way.
    /// `--tree`: XXH3 of the processor's result for each file (one line each, in walk order) in
    /// this way's last run; every run of every way is compared file by file, and the benchmark
    /// fails with [`Error::Mismatch`](crate::Error::Mismatch) on any difference.
    pub checksum: Option<String>,
    /// `--tree`: median files per second (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_per_s: Option<f64>,
    /// `--tree`: slowest run, files per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_files_per_s: Option<f64>,
    /// `--tree`: fastest run, files per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_files_per_s: Option<f64>,
    /// `--tree`: median CPU seconds of a run (user + system, all threads of the process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// `--tree`: median system calls per file (how they are counted: [`TreeInfo::syscalls`](super::TreeInfo::syscalls)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscalls_per_file: Option<f64>,
    /// What this way does differently from its name, or cannot do, in words (the other runtimes:
    /// `!Send`, one core, no registered buffers); absent where there is nothing to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// `--peers`: the command line this row ran as a process (absent for the ways in the process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `--peers`, on ringread's command: its median GiB/s relative to the peer's beside it (above 1:
    /// ringread is faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_peer: Option<f64>,
    /// `--tree`: median files per second relative to `one-by-one`'s in the same cache state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_one_by_one: Option<f64>,
    /// `--pattern random`: median reads per second (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_iops: Option<f64>,
    /// `--pattern random`: median latency of one read, microseconds, over every timed read
    /// (absent where a way's reads cannot be timed one by one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    /// `--pattern random`: 99th percentile latency of one read, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// `--pattern random`: median CPU milliseconds (user + system, whole process) per 10,000 reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_10k_reads: Option<f64>,
    /// `--store`: median wall-clock milliseconds of a run (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ms: Option<f64>,
    /// `--store`, on RingStore's rows: LocalFileSystem's median time for the same work divided by
    /// this row's (above 1: RingStore is faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_local: Option<f64>,
    /// Every timed run.
    pub samples: Vec<Sample>,
}

/// One timed run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Bytes read.
    pub bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Throughput, GiB/s.
    pub gib_per_s: f64,
    /// CPU seconds of the process (user + system, all threads).
    pub cpu_seconds: f64,
    /// `read(2)`-family calls plus ringread's `io_uring_enter` and `epoll_wait` calls (`None`: not
    /// countable).
    pub syscalls: Option<u64>,
    /// Minor and major page faults.
    pub faults: u64,
    /// Voluntary context switches of all the process's threads (each a thread put to sleep and
    /// woken again: the wake-ups a way costs).
    pub switches: u64,
    /// Peak resident memory during the run, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// `--tree`: files read (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// `--tree`: files per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_per_s: Option<f64>,
    /// Files: every system call of the process during the run, from a perf counter (absent where
    /// the counter could not be opened); `--peers`: absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_syscalls: Option<u64>,
    /// Files: the share of the files' bytes in the page cache right after the run
    /// ([`crate::residency`]), 0.0 to 1.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_after: Option<f64>,
}

impl Sample {
    pub(crate) fn from_cost(bytes: u64, c: &Cost, uncountable: bool) -> Sample {
        Sample {
            bytes,
            seconds: c.seconds,
            gib_per_s: bytes as f64 / GIB / c.seconds.max(1e-9),
            cpu_seconds: c.cpu_seconds,
            syscalls: (!uncountable).then_some(c.read_calls + c.enters + c.polls),
            faults: c.faults,
            switches: c.switches,
            peak_rss_bytes: c.peak_rss,
            files: None,
            files_per_s: None,
            all_syscalls: None,
            cached_after: None,
        }
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl MethodResult {
    pub(crate) fn new(name: &str, skipped: Option<&str>) -> Self {
        MethodResult {
            name: name.to_string(),
            skipped: skipped.map(str::to_string),
            median_gib_per_s: None,
            min_gib_per_s: None,
            max_gib_per_s: None,
            cpu_s_per_gib: None,
            syscalls_per_gib: None,
            all_syscalls_per_gib: None,
            faults_per_gib: None,
            residency_after: None,
            peak_rss_bytes: None,
            ratio_to_sync: None,
            cpu_ratio_to_epoll: None,
            checksum: None,
            files_per_s: None,
            min_files_per_s: None,
            max_files_per_s: None,
            cpu_seconds: None,
            syscalls_per_file: None,
            ratio_to_one_by_one: None,
            notice: None,
            command: None,
            ratio_to_peer: None,
            median_iops: None,
            p50_us: None,
            p99_us: None,
            cpu_ms_per_10k_reads: None,
            median_ms: None,
            ratio_to_local: None,
            samples: Vec::new(),
        }
    }
}

impl CacheReport {
    pub(crate) fn summarize(&mut self) {
        for m in &mut self.methods {
            let s = &m.samples;
            if s.is_empty() {
                continue;
            }
            let per_gib = |x: f64, b: u64| x / (b as f64 / GIB).max(1e-12);
            m.median_gib_per_s = median(s.iter().map(|x| x.gib_per_s).collect());
            m.min_gib_per_s = s.iter().map(|x| x.gib_per_s).reduce(f64::min);
            m.max_gib_per_s = s.iter().map(|x| x.gib_per_s).reduce(f64::max);
            m.cpu_s_per_gib = median(s.iter().map(|x| per_gib(x.cpu_seconds, x.bytes)).collect());
            m.residency_after = s.iter().filter_map(|x| x.cached_after).reduce(f64::max);
            m.syscalls_per_gib = if s.iter().all(|x| x.syscalls.is_some()) {
                median(
                    s.iter()
                        .map(|x| per_gib(x.syscalls.unwrap_or(0) as f64, x.bytes))
                        .collect(),
                )
            } else {
                None
            };
            m.all_syscalls_per_gib = if s.iter().all(|x| x.all_syscalls.is_some()) {
                median(
                    s.iter()
                        .map(|x| per_gib(x.all_syscalls.unwrap_or(0) as f64, x.bytes))
                        .collect(),
                )
            } else {
                None
            };
            m.faults_per_gib = median(
                s.iter()
                    .map(|x| per_gib(x.faults as f64, x.bytes))
                    .collect(),
            );
            m.peak_rss_bytes = s.iter().filter_map(|x| x.peak_rss_bytes).max();
        }
        let sync = self
            .methods
            .iter()
            .find(|m| m.name == "sync")
            .and_then(|m| m.median_gib_per_s);
        let epoll = self
            .methods
            .iter()
            .find(|m| m.name == "epoll")
            .and_then(|m| m.cpu_s_per_gib);
        for m in &mut self.methods {
            m.ratio_to_sync = match (m.median_gib_per_s, sync) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            m.cpu_ratio_to_epoll = match (m.cpu_s_per_gib, epoll) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
        }
        // `--peers`: ringread's command and its peer come as neighbours, ours first.
        for i in 0..self.methods.len().saturating_sub(1) {
            let (ours, peer) = (&self.methods[i], &self.methods[i + 1]);
            if ours.command.is_none()
                || peer.command.is_none()
                || !ours.name.starts_with("$ ringread")
            {
                continue;
            }
            let ratio = match (ours.median_gib_per_s, peer.median_gib_per_s) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            self.methods[i].ratio_to_peer = ratio;
        }
    }
}

/// The ways that ran, fastest first, and whether they did equal work.
fn ranking(processor: ProcessorKind, methods: &[MethodResult]) -> String {
    let mut ran: Vec<(&str, f64)> = methods
        .iter()
        .filter(|m| m.command.is_none())
        .filter_map(|m| Some((m.name.as_str(), m.median_gib_per_s?)))
        .collect();
    ran.sort_by(|a, b| b.1.total_cmp(&a.1));
    let order: Vec<String> = ran.iter().map(|(n, g)| format!("{n} {g:.2}")).collect();
    let work = if processor == ProcessorKind::Null {
        "processor null: raw reads, not equal work (mmap touches one byte a page)"
    } else {
        "equal work: every way's processor reads every byte"
    };
    format!("ranked by median GiB/s ({work}): {}", order.join(" > "))
}

pub(crate) fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.prec$}"))
}

pub(crate) fn mib(b: Option<u64>) -> String {
    b.map_or("-".into(), |x| {
        format!("{:.0} MiB", x as f64 / (1 << 20) as f64)
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source == super::BenchSource::Tree {
            return tree::write_table(self, f);
        }
        if self.source == super::BenchSource::Store {
            return store::write_table(self, f);
        }
        self.write_head(f)?;
        for r in &self.results {
            writeln!(f)?;
            self.write_cache(r, f)?;
        }
        writeln!(f)?;
        for (i, note) in self.notes.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{note}")?;
        }
        Ok(())
    }
}

impl Report {
    /// Whether the data was a stream (`--source pipe` or `tcp`), not files.
    fn is_stream(&self) -> bool {
        self.source != super::BenchSource::File
    }

    /// The table's first lines: the machine, and the data the runs read.
    fn write_head(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_machine(&self.machine, f)?;
        if self.is_stream() {
            writeln!(
                f,
                "data: {:.2} GiB per run, written at full speed by a child process to {}; \
                 processor: {:?}; {} timed runs per backend, alternating",
                self.file.bytes as f64 / GIB,
                self.file.paths.join(", "),
                self.processor,
                self.runs
            )
        } else {
            writeln!(
            f,
            "data: {:.2} GiB in {} file{}{}; processor: {:?}; {} timed runs per backend, alternating",
            self.file.bytes as f64 / GIB,
            self.file.paths.len(),
            if self.file.paths.len() == 1 { "" } else { "s" },
            if self.file.generated { " (generated random data)" } else { "" },
            self.processor,
            self.runs
        )
        }
    }

    /// One cache state's part of the table: the state, the ways' rows, and the comparisons.
    fn write_cache(&self, r: &CacheReport, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = self.is_stream();
        if stream {
            writeln!(
                f,
                "{}: chunk {} KiB, {} pool buffers (io_uring ways)",
                self.source.name(),
                r.chunk_size / 1024,
                r.depth
            )?;
        } else {
            writeln!(
                f,
                "cache {}; chunk {} KiB, depth {}",
                cache_state(r),
                r.chunk_size / 1024,
                r.depth
            )?;
        }
        f.write_str(&method_rows(&r.methods)?)?;
        let left: Vec<String> = r
            .methods
            .iter()
            .filter_map(|m| Some(format!("{} {:.1}%", m.name, 100.0 * m.residency_after?)))
            .collect();
        if !left.is_empty() && r.cache != CacheMode::Warm {
            writeln!(f, "left in the page cache after a run: {}", left.join(", "))?;
        }
        if !stream {
            writeln!(f, "{}", ranking(self.processor, &r.methods))?;
            write_peers(&r.methods, f)?;
        }
        let vs: Vec<String> = r
            .methods
            .iter()
            .filter_map(|m| Some(format!("{} {:.2}x", m.name, m.cpu_ratio_to_epoll?)))
            .collect();
        if stream && !vs.is_empty() {
            writeln!(f, "CPU per GiB against epoll: {}", vs.join(", "))?;
        }
        Ok(())
    }
}

/// What the cache state of `r`'s runs was, in words.
fn cache_state(r: &CacheReport) -> String {
    match r.cache {
        CacheMode::Warm => "warm: the file was read once right before each run".to_string(),
        CacheMode::Cold => format!(
            "cold: page cache dropped before each run (at most {} of the file resident)",
            r.residency_before
                .map_or("?".into(), |x| format!("{:.1}%", x * 100.0))
        ),
        CacheMode::Direct => "direct: O_DIRECT, the page cache bypassed".to_string(),
        CacheMode::Dontcache => format!(
            "dontcache: page cache dropped before each run (at most {} of the file \
             resident), ringread's ways read with RWF_DONTCACHE",
            r.residency_before
                .map_or("?".into(), |x| format!("{:.1}%", x * 100.0))
        ),
    }
}

/// The header and a row for each way (a skipped one said so), its first column as wide as the
/// longest name.
fn method_rows(methods: &[MethodResult]) -> Result<String, fmt::Error> {
    let mut t = String::new();
    let h = HEADER;
    let w = methods.iter().map(|m| m.name.len()).fold(13, usize::max);
    writeln!(
        t,
        "{:<w$} {:>8} {:>15} {:>9} {:>10} {:>11} {:>9} {:>8} {:>7}  {}",
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]
    )?;
    for m in methods {
        if let Some(why) = &m.skipped {
            writeln!(t, "{:<w$} skipped: {why}", m.name)?;
            continue;
        }
        writeln!(
            t,
            "{:<w$} {:>8} {:>15} {:>9} {:>10} {:>11} {:>9} {:>8} {:>7}  {}",
            m.name,
            opt(m.median_gib_per_s, 2),
            format!("{}-{}", opt(m.min_gib_per_s, 2), opt(m.max_gib_per_s, 2)),
            opt(m.cpu_s_per_gib, 3),
            opt(m.syscalls_per_gib, 0),
            opt(m.all_syscalls_per_gib, 0),
            opt(m.faults_per_gib, 0),
            mib(m.peak_rss_bytes),
            m.ratio_to_sync.map_or("-".into(), |x| format!("{x:.2}x")),
            m.checksum.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(t)
}

/// `--peers`: each of ringread's commands against the tool after it, if there were any.
fn write_peers(methods: &[MethodResult], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let vs: Vec<String> = methods
        .windows(2)
        .filter_map(|w| {
            let x = w[0].ratio_to_peer?;
            Some(format!("{} {x:.2}x {}", w[0].name, w[1].name))
        })
        .collect();
    if !vs.is_empty() {
        writeln!(
            f,
            "peers (GiB/s, above 1x ringread is faster): {}",
            vs.join("; ")
        )?;
    }
    Ok(())
}

/// The report's first line: the machine the runs measured.
pub(crate) fn write_machine(m: &Machine, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "machine: {} CPUs ({}), {:.1} GiB memory, Linux {}",
        m.cpus,
        m.cpu_model,
        m.memory_bytes as f64 / GIB,
        m.kernel
    )
}
