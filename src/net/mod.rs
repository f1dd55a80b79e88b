//! Streams: standard input, pipes and sockets, read in order into the same processors as files.
//!
//! A stream has no offsets, so the file engine's trick (many reads in flight at chosen offsets) does
//! not apply: the bytes come when the writer sends them. What matters is how cheaply the reader
//! learns that data is there and gets it, and that is where the ways differ:
//!
//! * [`StreamMethod::UringMultishot`]: one request stays armed per stream (a multishot `RECV` on a
//!   socket, Linux 6.0; `READ_MULTISHOT` on a pipe, Linux 6.7) and the kernel copies each arrival
//!   into a buffer it takes from a *provided buffer ring* shared by all streams of the ring, posting
//!   one completion per buffer. No system call per read, no readiness round trip: one
//!   `io_uring_enter` reaps many arrivals. When the ring runs dry the kernel ends the request
//!   (`-ENOBUFS`, no `IORING_CQE_F_MORE`) and the reader arms it again once buffers are back.
//! * [`StreamMethod::UringSingle`]: one single-shot `RECV`/`READ` per arrival, buffer from the
//!   same ring: an enter per read, for kernels without multishot.
//! * [`StreamMethod::Epoll`]: what servers do today: non-blocking `read(2)` driven by epoll
//!   ([`mio`]), one shared buffer, until `EAGAIN`.
//! * [`StreamMethod::Tokio`]: tokio's `TcpStream`/pipe `Receiver` read in a loop, what async users
//!   write (one future and one buffer per stream).
//! * [`StreamMethod::Sync`]: blocking `read(2)` into one buffer (one stream only); with a cancel
//!   handle, each read waits first in `poll(2)` on the stream and the handle's `eventfd`.
//!
//! Every way stops promptly when a [`Cancel`] given with [`StreamOptions::cancel`] is cancelled
//! from another thread, even while it waits for data that never comes.
//!
//! Every way delivers each stream's bytes exactly once, in order, as [`Chunk`]s whose offset is the
//! count of bytes before them. Memory is bounded by the buffers, not by the number of streams:
//! [`read_many`] reads a thousand sockets on one ring sharing one pool of `buffers` buffers.
//!
//! ```no_run
//! use std::net::TcpStream;
//! use std::os::fd::AsFd;
//! use ringread::net::{read_stream, StreamMethod, StreamOptions};
//! use ringread::processor::{Algorithm, Checksum};
//!
//! let sock = TcpStream::connect("127.0.0.1:9000")?;
//! let mut sum = Checksum::new(Algorithm::Xxh3);
//! let opts = StreamOptions::new(StreamMethod::UringMultishot);
//! let summary = read_stream(sock.as_fd(), "127.0.0.1:9000", &opts, &mut sum)?;
//! println!("{} bytes, xxh3 {}", summary.bytes, sum.hex());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod epoll;
#[cfg(feature = "bench")]
mod tokio_rt;
mod uring;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use crate::buf::{Arena, Chunk};
use crate::cancel::{wait_readable, Cancel};
use crate::error::{Error, Result};
use crate::processor::{Combine, Prepare, Processor, Whole};
use crate::ring::StreamKind;

/// `epoll_wait` calls made by the epoll way so far (for the benchmark's system call counts; its
/// `read(2)` calls are counted by the kernel in `/proc/self/io`).
static POLLS: AtomicU64 = AtomicU64::new(0);

/// `epoll_wait` calls made by ringread's epoll way in this process so far.
#[cfg(feature = "bench")]
pub(crate) fn poll_count() -> u64 {
    POLLS.load(std::sync::atomic::Ordering::Relaxed)
}

/// How many io_uring stream rings were dropped while requests of theirs were still in the kernel
/// (which could then write into freed buffers), in this process. Always 0 unless ringread has a
/// bug: for tests.
#[doc(hidden)]
pub fn rings_dropped_busy() -> u64 {
    crate::ring::rings_dropped_busy()
}

/// How to read a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StreamMethod {
    /// io_uring multishot where the kernel has it, else io_uring single-shot, else (io_uring
    /// refused) blocking `read(2)`, or epoll for [`read_many`].
    #[default]
    Auto,
    /// io_uring: one multishot `RECV` (sockets) or `READ_MULTISHOT` (pipes) per stream, buffers from
    /// a provided buffer ring. Falls back to [`StreamMethod::UringSingle`] where the kernel has no
    /// multishot for the descriptor (pipes before Linux 6.7, sockets before 6.0).
    UringMultishot,
    /// io_uring: one single-shot `RECV`/`READ` at a time per stream, buffers from a provided buffer
    /// ring.
    UringSingle,
    /// Non-blocking `read(2)` driven by epoll (through `mio`).
    Epoll,
    /// tokio's `TcpStream` (sockets) or `pipe::Receiver` (pipes) on a current-thread runtime.
    Tokio,
    /// Blocking `read(2)` into one buffer.
    Sync,
}

impl StreamMethod {
    /// The method's name, as the command line and the benchmark spell it.
    pub fn name(self) -> &'static str {
        match self {
            StreamMethod::Auto => "auto",
            StreamMethod::UringMultishot => "uring-multishot",
            StreamMethod::UringSingle => "uring-recv",
            StreamMethod::Epoll => "epoll",
            StreamMethod::Tokio => "tokio",
            StreamMethod::Sync => "sync",
        }
    }
}

impl std::str::FromStr for StreamMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => StreamMethod::Auto,
            "uring-multishot" => StreamMethod::UringMultishot,
            "uring-recv" | "uring-single" => StreamMethod::UringSingle,
            "epoll" => StreamMethod::Epoll,
            "tokio" => StreamMethod::Tokio,
            "sync" => StreamMethod::Sync,
            other => {
                return Err(Error::InvalidOptions(format!(
                    "unknown stream method '{other}' (expected auto, uring-multishot, uring-recv, \
                     epoll, tokio or sync)"
                )))
            }
        })
    }
}

impl std::fmt::Display for StreamMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The default buffer size for streams: 64 KiB (a socket's typical arrival, a pipe's default
/// capacity).
pub const DEFAULT_STREAM_CHUNK: usize = 64 * 1024;
/// The default number of pool buffers: 64 (4 MiB at 64 KiB), shared by every stream of a ring.
pub const DEFAULT_STREAM_BUFFERS: usize = 64;

/// How to read streams: the way, the buffers, and when to stop.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    method: StreamMethod,
    chunk_size: usize,
    buffers: usize,
    max_bytes: Option<u64>,
    grow_pipe: bool,
    batch: usize,
    cancel: Option<Cancel>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions::new(StreamMethod::Auto)
    }
}

impl StreamOptions {
    /// Options for `method`, every other value at its default.
    pub fn new(method: StreamMethod) -> StreamOptions {
        StreamOptions {
            method,
            chunk_size: DEFAULT_STREAM_CHUNK,
            buffers: DEFAULT_STREAM_BUFFERS,
            max_bytes: None,
            grow_pipe: true,
            batch: 1,
            cancel: None,
        }
    }
    /// The largest chunk (the size of every buffer): 1 byte to 1 GiB. A value out of range is
    /// refused, with [`Error::InvalidOptions`], by the read that is given these options.
    #[must_use]
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }
    /// Buffers in the io_uring pool, 1 to 32768 (rounded up to a power of two): the memory bound
    /// of the io_uring ways is `buffers * chunk_size`, however many streams. A value out of range
    /// is refused by the read.
    #[must_use]
    pub fn buffers(mut self, n: usize) -> Self {
        self.buffers = n;
        self
    }
    /// Stop each stream after this many bytes, as at its end.
    #[must_use]
    pub fn max_bytes(mut self, limit: Option<u64>) -> Self {
        self.max_bytes = limit;
        self
    }
    /// Whether to raise a pipe's capacity to the chunk size (`F_SETPIPE_SZ`, up to
    /// `/proc/sys/fs/pipe-max-size`), so that a writer fills one buffer per wake-up instead of 64
    /// KiB. On by default; it changes the pipe for its writer too (a bigger pipe, nothing else).
    #[must_use]
    pub fn grow_pipe(mut self, on: bool) -> Self {
        self.grow_pipe = on;
        self
    }
    /// io_uring ways: wait for up to `n` completions at a time (at most half the pool), returning
    /// with fewer once 50 microseconds have passed (needs `IORING_FEAT_MIN_TIMEOUT`, Linux 6.12;
    /// older kernels wait for one). Default 1. On loopback TCP at 64 KiB, 4 gave 7.6 GiB/s against
    /// 5.9 with 1, for about 8% more CPU per GiB and up to 50 us more latency (docs/BENCHMARKS.md).
    /// 1 to 64; a value out of range is refused by the read.
    #[must_use]
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// Refuses values out of range, as [`ReadOptionsBuilder`](crate::ReadOptionsBuilder) does,
    /// before any I/O.
    fn check(&self) -> Result<()> {
        let bad = |what: &str, v: usize, max: usize| {
            Err(Error::InvalidOptions(format!(
                "stream {what} must be between 1 and {max}, not {v}"
            )))
        };
        if !(1..=crate::options::MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return bad(
                "chunk size",
                self.chunk_size,
                crate::options::MAX_CHUNK_SIZE,
            );
        }
        if !(1..=32768).contains(&self.buffers) {
            return bad("buffers", self.buffers, 32768);
        }
        if !(1..=64).contains(&self.batch) {
            return bad("batch", self.batch, 64);
        }
        Ok(())
    }
    /// Reading stops with [`Error::Interrupted`] once `cancel` is cancelled, from any thread or a
    /// signal handler, even while it waits for data that never comes: every way watches the
    /// handle's `eventfd` beside its streams. Every request in the kernel is cancelled and reaped
    /// before the call returns.
    #[must_use]
    pub fn cancel(mut self, cancel: Option<Cancel>) -> Self {
        self.cancel = cancel;
        self
    }
    /// The way asked for.
    pub fn method(&self) -> StreamMethod {
        self.method
    }

    /// Whether the cancel handle was cancelled.
    fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(Cancel::is_cancelled)
    }
}

/// What reading a stream did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// Bytes delivered to the processor.
    pub bytes: u64,
    /// The way that read it (`Auto` resolved).
    pub method: StreamMethod,
}

/// One stream to read: its descriptor, what it is, and what errors call it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stream<'a> {
    pub fd: RawFd,
    pub kind: StreamKind,
    pub name: &'a Path,
}

/// Receives stream `i`'s next chunk; `Ok(false)` stops that stream.
pub(crate) type Deliver<'d> = dyn FnMut(usize, &Chunk<'_>) -> io::Result<bool> + 'd;

/// What a descriptor is: a socket, or something read at its position (pipe, FIFO, terminal).
/// Regular files and directories are refused: they are the file engine's ([`crate::Reader`]).
fn kind_of(fd: RawFd, name: &Path) -> Result<StreamKind> {
    // SAFETY: fstat writes into the struct we pass; fd is borrowed from the caller and open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(Error::Open {
            path: name.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => Ok(StreamKind::Socket),
        libc::S_IFIFO | libc::S_IFCHR => Ok(StreamKind::Pipe),
        libc::S_IFDIR => Err(Error::Open {
            path: name.to_path_buf(),
            source: io::Error::from_raw_os_error(libc::EISDIR),
        }),
        _ => Err(Error::InvalidOptions(format!(
            "{}: a regular file is not a stream: read it with ringread::Reader (epoll cannot \
             wait on regular files)",
            name.display()
        ))),
    }
}

/// Raises a pipe's capacity towards `want` bytes (best effort, within `pipe-max-size`).
fn grow_pipe(fd: RawFd, want: usize) {
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(1 << 20);
    let want = want.clamp(64 * 1024, max.max(64 * 1024)) as libc::c_int;
    // SAFETY: fcntl on a descriptor the caller keeps open; failure leaves the pipe as it was.
    let now = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    if now >= 0 && now < want {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, want) };
    }
}

/// Reads the stream `fd` (a pipe, standard input, a socket: anything that is not a regular file) to
/// its end, handing its chunks to `proc` in order; `name` is what errors call it.
///
/// A reset or other read error ends with [`Error::Read`] naming `name` and the count of bytes
/// delivered before it; a cancel (see [`StreamOptions::cancel`]) with [`Error::Interrupted`].
///
/// # Panics
///
/// A panic of `proc` reaches the caller, with its payload, once every request the io_uring ways
/// had in the kernel is cancelled and reaped (so that no buffer is freed while the kernel may
/// write into it).
pub fn read_stream<P: Processor>(
    fd: BorrowedFd<'_>,
    name: impl AsRef<Path>,
    opts: &StreamOptions,
    proc: &mut P,
) -> Result<StreamSummary> {
    let name = name.as_ref();
    Processor::begin(proc).map_err(|source| Error::Process {
        path: name.to_path_buf(),
        offset: 0,
        source,
    })?;
    let mut fell_back = None;
    let (bytes, method) =
        read_stream_split(fd.as_raw_fd(), name, opts, &Whole, proc, &mut fell_back)?;
    Processor::finish(proc).map_err(|source| Error::Process {
        path: name.to_path_buf(),
        offset: bytes,
        source,
    })?;
    Ok(StreamSummary { bytes, method })
}

/// [`read_stream`] with a processor in two halves, without `begin`/`finish` (the caller's).
/// `fell_back` gets the kernel's reason when `Auto` could not set up io_uring and read with
/// `read(2)` instead.
pub(crate) fn read_stream_split<Pr, C>(
    fd: RawFd,
    name: &Path,
    opts: &StreamOptions,
    prep: &Pr,
    proc: &mut C,
    fell_back: &mut Option<String>,
) -> Result<(u64, StreamMethod)>
where
    Pr: Prepare,
    C: Combine<Pr::Part> + ?Sized,
{
    opts.check()?;
    let kind = kind_of(fd, name)?;
    if kind == StreamKind::Pipe && opts.grow_pipe {
        grow_pipe(fd, opts.chunk_size);
    }
    let stream = Stream { fd, kind, name };
    let mut deliver = |_: usize, chunk: &Chunk<'_>| {
        let part = prep.prepare(chunk);
        proc.combine(chunk, part)
    };
    let method = match opts.method {
        StreamMethod::Auto => match uring::run(&[stream], opts, true, &mut deliver) {
            Ok(r) => return one(r, StreamMethod::UringMultishot),
            Err(RingSetup(e)) => {
                *fell_back = Some(crate::ring::explain_setup_error(&e));
                StreamMethod::Sync
            }
        },
        m => m,
    };
    let results = match method {
        StreamMethod::UringMultishot | StreamMethod::UringSingle => {
            let multi = method == StreamMethod::UringMultishot;
            uring::run(&[stream], opts, multi, &mut deliver).map_err(|RingSetup(e)| {
                Error::UringUnavailable {
                    reason: crate::ring::explain_setup_error(&e),
                }
            })?
        }
        StreamMethod::Epoll => epoll::run(&[stream], opts, &mut deliver)?,
        StreamMethod::Tokio => tokio_way(&[stream], opts, &mut deliver)?,
        StreamMethod::Sync | StreamMethod::Auto => vec![read_sync(stream, opts, &mut deliver)],
    };
    one(results, method)
}

/// The tokio way: a comparison way, compiled with the `bench` feature.
#[cfg(feature = "bench")]
fn tokio_way(
    streams: &[Stream<'_>],
    opts: &StreamOptions,
    deliver: &mut Deliver<'_>,
) -> Result<Vec<Result<u64>>> {
    tokio_rt::run(streams, opts, deliver)
}

/// Without the `bench` feature there is no tokio way.
#[cfg(not(feature = "bench"))]
fn tokio_way(_: &[Stream<'_>], _: &StreamOptions, _: &mut Deliver<'_>) -> Result<Vec<Result<u64>>> {
    Err(Error::InvalidOptions(
        "the tokio way of reading streams is a comparison way: it needs ringread's `bench` feature"
            .into(),
    ))
}

fn one(mut results: Vec<Result<u64>>, method: StreamMethod) -> Result<(u64, StreamMethod)> {
    results.pop().unwrap_or(Ok(0)).map(|bytes| (bytes, method))
}

/// io_uring could not be set up (the kernel's error).
#[derive(Debug)]
pub(crate) struct RingSetup(pub io::Error);

/// Reads many streams at once on one thread, each into its own processor, in order: what a server
/// reading many connections wants. With the io_uring ways all streams share one ring and one pool of
/// [`StreamOptions::buffers`] buffers, so memory stays bounded however many there are; epoll shares
/// one buffer; tokio gives each stream a future with its own buffer (what a task per connection
/// costs). Returns each stream's result (bytes read, or its error) in the order given; one
/// stream's error does not stop the others. `Sync` reads one stream only and is refused here.
/// A cancel (see [`StreamOptions::cancel`]) ends every stream not yet ended with
/// [`Error::Interrupted`].
///
/// # Panics
///
/// A panic of a processor reaches the caller, with its payload, once every request the io_uring
/// ways had in the kernel is cancelled and reaped.
pub fn read_many<P: Processor>(
    streams: &[BorrowedFd<'_>],
    procs: &mut [P],
    opts: &StreamOptions,
) -> Result<Vec<Result<u64>>> {
    if streams.len() != procs.len() {
        return Err(Error::InvalidOptions(format!(
            "{} streams but {} processors",
            streams.len(),
            procs.len()
        )));
    }
    opts.check()?;
    if streams.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<PathBuf> = (0..streams.len())
        .map(|i| PathBuf::from(format!("stream {i}")))
        .collect();
    let mut list = Vec::with_capacity(streams.len());
    for (fd, name) in streams.iter().zip(&names) {
        let fd = fd.as_raw_fd();
        let kind = kind_of(fd, name)?;
        list.push(Stream { fd, kind, name });
    }
    for (p, name) in procs.iter_mut().zip(&names) {
        Processor::begin(p).map_err(|source| Error::Process {
            path: name.clone(),
            offset: 0,
            source,
        })?;
    }
    let mut deliver = |i: usize, chunk: &Chunk<'_>| procs[i].process(chunk);
    let mut results = match opts.method {
        StreamMethod::Auto | StreamMethod::UringMultishot | StreamMethod::UringSingle => {
            let multi = opts.method != StreamMethod::UringSingle;
            match uring::run(&list, opts, multi, &mut deliver) {
                Ok(r) => r,
                Err(RingSetup(e)) if opts.method != StreamMethod::Auto => {
                    return Err(Error::UringUnavailable {
                        reason: crate::ring::explain_setup_error(&e),
                    })
                }
                Err(_) => epoll::run(&list, opts, &mut deliver)?,
            }
        }
        StreamMethod::Epoll => epoll::run(&list, opts, &mut deliver)?,
        StreamMethod::Tokio => tokio_way(&list, opts, &mut deliver)?,
        m => {
            return Err(Error::InvalidOptions(format!(
                "{m} reads one stream at a time; read_many takes io_uring, epoll or tokio"
            )))
        }
    };
    for ((r, p), name) in results.iter_mut().zip(procs.iter_mut()).zip(&names) {
        if let Ok(bytes) = r {
            if let Err(source) = Processor::finish(p) {
                *r = Err(Error::Process {
                    path: name.clone(),
                    offset: *bytes,
                    source,
                });
            }
        }
    }
    Ok(results)
}

/// A read error of `s` after `offset` bytes.
fn read_error(s: &Stream<'_>, offset: u64, errno: i32) -> Error {
    Error::Read {
        path: s.name.to_path_buf(),
        offset,
        source: io::Error::from_raw_os_error(errno),
    }
}

/// A processor error of `s` at `offset`.
fn process_error(s: &Stream<'_>, offset: u64, source: io::Error) -> Error {
    Error::Process {
        path: s.name.to_path_buf(),
        offset,
        source,
    }
}

/// Hands `data` (the bytes after `offset`) to stream `i`, trimmed to the byte limit. Returns the
/// bytes delivered and whether the stream goes on.
fn hand_over(
    i: usize,
    s: &Stream<'_>,
    offset: u64,
    data: &[u8],
    opts: &StreamOptions,
    deliver: &mut Deliver<'_>,
) -> Result<(u64, bool)> {
    let limit = opts.max_bytes.unwrap_or(u64::MAX);
    let room = limit.saturating_sub(offset);
    let take = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
    if take == 0 {
        return Ok((0, false));
    }
    let go =
        deliver(i, &Chunk::new(offset, &data[..take])).map_err(|e| process_error(s, offset, e))?;
    let n = take as u64;
    Ok((n, go && offset + n < limit))
}

/// Blocking `read(2)` into one buffer.
fn read_sync(s: Stream<'_>, opts: &StreamOptions, deliver: &mut Deliver<'_>) -> Result<u64> {
    let arena = Arena::new(1, opts.chunk_size)?;
    let mut offset = 0u64;
    let interrupted = || Error::Interrupted {
        path: s.name.to_path_buf(),
    };
    loop {
        // With a cancel handle, wait for data or the handle, so that a silent writer cannot hold
        // the read; without one, read at once.
        if opts.cancelled() || (opts.cancel.is_some() && !wait_readable(s.fd, opts.cancel.as_ref()))
        {
            return Err(interrupted());
        }
        // SAFETY: the slot is ours alone (no kernel request uses this arena) and holds chunk_size
        // bytes.
        let n = unsafe { libc::read(s.fd, arena.slot_ptr(0).cast(), opts.chunk_size) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    // A non-blocking descriptor handed to us: wait until it is readable.
                    if !wait_readable(s.fd, opts.cancel.as_ref()) {
                        return Err(interrupted());
                    }
                    continue;
                }
                Some(code) => return Err(read_error(&s, offset, code)),
                None => return Err(read_error(&s, offset, libc::EIO)),
            }
        }
        if n == 0 {
            return Ok(offset);
        }
        // SAFETY: the kernel wrote n bytes into the slot, and no read is in flight.
        let data = unsafe { arena.slot(0, n as usize) };
        let (took, go) = hand_over(0, &s, offset, data, opts, deliver)?;
        offset += took;
        if !go {
            return Ok(offset);
        }
    }
}
