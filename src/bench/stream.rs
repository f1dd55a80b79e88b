//! `bench --source pipe|tcp`: the ways of reading a stream, side by side, on data a child process
//! writes at full speed to a pipe or to a TCP socket on 127.0.0.1.
//!
//! The producer is a forked child process, so the CPU figures (`RUSAGE_SELF`) are the consumer's
//! alone. It writes the same 1 MiB of pseudo-random bytes over and over until `size` bytes, so every
//! way reads the same data (the xxh3 column shows it).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::metrics::Snapshot;
use super::{check_interrupt, BenchConfig, BenchSource, CacheMode};
use super::{CacheReport, FileInfo, Machine, MethodResult, Report, Sample};
use crate::error::{Error, Result};
use crate::net::{
    read_stream, StreamMethod, StreamOptions, DEFAULT_STREAM_BUFFERS, DEFAULT_STREAM_CHUNK,
};
use crate::processor::{Algorithm, Checksum, Processor};

/// Every way `bench --source pipe|tcp` knows, in the order it reports them.
pub const STREAM_METHODS: [&str; 6] = [
    "sync",
    "epoll",
    "tokio",
    "uring-recv",
    "uring-multishot",
    "uring-multishot-batch",
];

/// The pattern the producer repeats: 1 MiB of xorshift output.
fn pattern() -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = vec![0u8; 1 << 20];
    for w in buf.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        w.copy_from_slice(&state.to_le_bytes());
    }
    buf
}

fn os_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Open {
        path: what.into(),
        source,
    }
}

/// A producer process and the end of the stream the consumer reads.
struct Producer {
    pid: libc::pid_t,
    read_end: OwnedFd,
}

impl Producer {
    /// Forks a child that writes `size` bytes of `data` (repeated) into a new pipe or loopback TCP
    /// connection, then exits.
    fn start(source: BenchSource, size: u64, data: &[u8]) -> Result<Producer> {
        let (read_end, write_end) = match source {
            BenchSource::Tcp => {
                let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(os_err("127.0.0.1"))?;
                let addr = l.local_addr().map_err(os_err("127.0.0.1"))?;
                let client = std::net::TcpStream::connect(addr).map_err(os_err("127.0.0.1"))?;
                let (server, _) = l.accept().map_err(os_err("127.0.0.1"))?;
                (OwnedFd::from(server), OwnedFd::from(client))
            }
            _ => {
                let mut fds = [0; 2];
                // SAFETY: pipe2 writes two descriptors into the array.
                if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                    return Err(os_err("pipe")(std::io::Error::last_os_error()));
                }
                // SAFETY: both descriptors were just made and belong to nobody else.
                unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
            }
        };
        let (w, r) = (write_end.as_raw_fd(), read_end.as_raw_fd());
        // SAFETY: the child runs only async-signal-safe calls (close, write, _exit) on memory that
        // was allocated before the fork, so the other threads' locks do not matter to it.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(os_err("fork")(std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: as above; the child never returns from this block.
            unsafe { produce(r, w, size, data) }
        }
        drop(write_end);
        Ok(Producer { pid, read_end })
    }

    /// Waits for the child; an error if it did not write everything.
    fn wait(self) -> Result<()> {
        drop(self.read_end);
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else {
            Err(Error::InvalidOptions(format!(
                "the producer process ended abnormally (wait status {status})"
            )))
        }
    }
}

/// The child's work: write `size` bytes, then exit (0, or 1 if a write failed).
///
/// # Safety
/// Only to be called in a freshly forked child.
unsafe fn produce(r: RawFd, w: RawFd, size: u64, data: &[u8]) -> ! {
    // SAFETY: closing the consumer's end in the child (a copy of the descriptor).
    unsafe { libc::close(r) };
    let mut left = size;
    let mut at = 0usize;
    while left > 0 {
        let n = (data.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
        // SAFETY: `data[at..at + n]` is allocated (inherited from the parent) and readable.
        let wrote = unsafe { libc::write(w, data.as_ptr().add(at).cast(), n) };
        if wrote < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // SAFETY: ends the child without running the parent's destructors or atexit handlers.
            unsafe { libc::_exit(1) };
        }
        left -= wrote as u64;
        at = (at + wrote as usize) % data.len();
    }
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

/// Reads one produced stream with `method` into `proc`: the bytes read.
fn read_one(
    source: BenchSource,
    size: u64,
    data: &[u8],
    opts: &StreamOptions,
    proc: &mut dyn Processor,
) -> Result<u64> {
    let p = Producer::start(source, size, data)?;
    let name = source.name();
    let r = read_stream(p.read_end.as_fd(), name, opts, &mut &mut *proc);
    let waited = p.wait();
    let bytes = r?.bytes;
    waited?;
    Ok(bytes)
}

/// Runs `bench --source pipe|tcp`: every way in turn, `config.runs` times, after an untimed
/// checking pass of each.
pub(super) fn run(config: &BenchConfig, progress: &mut dyn Write) -> Result<Report> {
    let source = config.source;
    check_config(config)?;
    let setup = Setup {
        source,
        size: config.size,
        chunk: config.chunk_size.unwrap_or(DEFAULT_STREAM_CHUNK),
        buffers: config.depth.unwrap_or(DEFAULT_STREAM_BUFFERS),
        data: pattern(),
    };
    let mut results: Vec<MethodResult> = config
        .methods
        .iter()
        .map(|m| MethodResult::new(m, None))
        .collect();
    let here = std::path::Path::new(source.name());
    for r in results.iter_mut() {
        check_interrupt(config, here)?;
        let _ = writeln!(
            progress,
            "{}: checking what {} reads ...",
            source.name(),
            r.name
        );
        r.checksum = Some(setup.checksum(&r.name)?);
    }
    for run in 0..config.runs {
        for r in results.iter_mut() {
            check_interrupt(config, here)?;
            let sample = setup.timed_run(&r.name, config)?;
            let _ = writeln!(
                progress,
                "{} run {}/{}: {:<15} {:6.2} GiB/s",
                source.name(),
                run + 1,
                config.runs,
                r.name,
                sample.gib_per_s
            );
            r.samples.push(sample);
        }
    }
    let mut table = CacheReport {
        cache: CacheMode::Warm,
        chunk_size: setup.chunk,
        depth: setup.buffers,
        residency_before: None,
        preparation: None,
        methods: results,
    };
    table.summarize();
    Ok(Report {
        source,
        machine: Machine::this(),
        file: FileInfo {
            paths: vec![match source {
                BenchSource::Tcp => "a TCP connection on 127.0.0.1".into(),
                _ => "a pipe".into(),
            }],
            bytes: setup.size,
            generated: true,
        },
        processor: config.processor,
        chunk_size: setup.chunk,
        depth: setup.buffers,
        runs: config.runs,
        results: vec![table],
        notes: notes(),
        tree: None,
        store: None,
    })
}

/// Refuses a way `--source` does not know, and files (the stream is generated).
fn check_config(config: &BenchConfig) -> Result<()> {
    let source = config.source;
    for m in &config.methods {
        if !STREAM_METHODS.contains(&m.as_str()) {
            return Err(Error::InvalidOptions(format!(
                "unknown backend '{m}' for --source {} (expected one of {})",
                source.name(),
                STREAM_METHODS.join(", ")
            )));
        }
    }
    if !config.files.is_empty() {
        return Err(Error::InvalidOptions(format!(
            "--source {} generates its data; give no FILE",
            source.name()
        )));
    }
    Ok(())
}

/// What every run reads, and how: `size` bytes of `data` (repeated) from a new stream of
/// `source`, in chunks of `chunk` bytes, with `buffers` pool buffers (the io_uring ways).
struct Setup {
    source: BenchSource,
    size: u64,
    chunk: usize,
    buffers: usize,
    data: Vec<u8>,
}

impl Setup {
    /// The stream options of the way `name` (`-batch`: waiting for 4 completions at a time).
    fn opts(&self, name: &str) -> Result<StreamOptions> {
        let (method, batch) = match name.strip_suffix("-batch") {
            Some(m) => (m, 4),
            None => (name, 1),
        };
        Ok(StreamOptions::new(method.parse::<StreamMethod>()?)
            .chunk_size(self.chunk)
            .buffers(self.buffers)
            .batch(batch))
    }

    /// The way `name`'s untimed pass: the XXH3 of what it read, which must be every byte.
    fn checksum(&self, name: &str) -> Result<String> {
        let mut sum = Checksum::new(Algorithm::Xxh3);
        let bytes = read_one(
            self.source,
            self.size,
            &self.data,
            &self.opts(name)?,
            &mut sum,
        )?;
        self.read_all(name, bytes)?;
        Ok(sum.hex())
    }

    /// One timed run of the way `name` with `config`'s processor.
    fn timed_run(&self, name: &str, config: &BenchConfig) -> Result<Sample> {
        let opts = self.opts(name)?;
        let mut proc = config.processor.make();
        let p = Producer::start(self.source, self.size, &self.data)?;
        let snap = Snapshot::now();
        let got = read_stream(p.read_end.as_fd(), self.source.name(), &opts, &mut proc);
        let cost = snap.cost();
        p.wait()?;
        let bytes = got?.bytes;
        self.read_all(name, bytes)?;
        Ok(Sample::from_cost(bytes, &cost, name == "tokio"))
    }

    /// An error unless the way `name` read all `size` bytes.
    fn read_all(&self, name: &str, bytes: u64) -> Result<()> {
        if bytes != self.size {
            return Err(Error::InvalidOptions(format!(
                "{name} read {bytes} bytes of {}",
                self.size
            )));
        }
        Ok(())
    }
}

/// The notes under the table: what the CPU and call columns count, and what the ways do.
fn notes() -> Vec<String> {
    vec![
        "producer: a forked child process writing at full speed; CPU is getrusage(RUSAGE_SELF) \
         of the reading process only (all its threads, io_uring's workers included), so the \
         producer's CPU is not in the figures. Wall time includes waiting for the producer."
            .into(),
        "calls: read(2)-family calls (syscr of /proc/self/io) plus ringread's io_uring_enter \
         and epoll_wait calls; '-' for tokio, whose epoll_wait and recv calls cannot be \
         counted from inside the process. 'depth' is the io_uring ways' pool of provided \
         buffers; epoll, tokio and sync read into one buffer of the chunk size."
            .into(),
        "uring-recv: single-shot RECV (socket) or READ (pipe), one per arrival; \
         uring-multishot: one multishot RECV or READ_MULTISHOT per stream; -batch: waiting for \
         up to 4 completions per io_uring_enter, 50 us at most (IORING_FEAT_MIN_TIMEOUT). \
         Every way raises \
         the pipe's capacity to the chunk size (F_SETPIPE_SZ) alike."
            .into(),
    ]
}
