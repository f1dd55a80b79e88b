//! Files as asynchronous streams of chunks, for tokio (or any executor) programs.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! # async fn f() -> Result<(), ringread::Error> {
//! let mut stream = ringread::stream::open("/var/log/syslog")?;
//! while let Some(chunk) = stream.next().await {
//!     let chunk = chunk?;                 // an OwnedChunk: Send + 'static, derefs to &[u8]
//!     let bytes = chunk.into_bytes();     // bytes::Bytes, no copy; the buffer returns on drop
//!     # drop(bytes);
//! }
//! # Ok(()) }
//! ```
//!
//! # The model
//!
//! A [`Driver`] is one thread with one io_uring. Streams opened from it ([`Driver::open`],
//! [`open`] for the process-wide [`Driver::global`]) own their buffers (`depth` buffers of
//! `chunk_size` bytes) and decide what to read; the driver performs the reads:
//!
//! 1. the task polling a [`FileStream`] fills its free buffers with read requests and puts them on
//!    the driver's queue (waking the driver through an `eventfd` the driver keeps a read on);
//! 2. the driver thread submits them in batches and waits in `io_uring_enter`; a read of cached data
//!    completes inside that call, on the driver's CPU (the copy out of the page cache happens there);
//!    a read from the device completes when the device is done;
//! 3. the driver records each completion in its stream's state and wakes the stream's task;
//! 4. the task, on whatever tokio worker polls it, turns completions into chunks in file order
//!    (resubmitting short reads and EINTR/EAGAIN) and hands them out as [`OwnedChunk`]s.
//!
//! So one driver serves any number of streams (hundreds, on any number of runtime threads) with one
//! ring, one thread and two descriptors; each stream costs its buffers, its file and a small state.
//! Programs that read faster than one thread can copy (many cached files at once on a large machine)
//! can make more drivers with [`Driver::new`] and spread streams over them.
//!
//! A chunk handed out keeps its buffer: a stream never has more than `depth` buffers, so holding
//! chunks (or `Bytes` made from them) stops its reading: that is the backpressure.
//!
//! Dropping a stream part way cancels its reads in flight with `IORING_OP_ASYNC_CANCEL`. Each read in
//! flight holds the stream's buffers and file, so the buffers are freed only after the read's
//! completion has arrived (and every chunk handed out is dropped), and the file is closed then too.
//!
//! Where io_uring is refused, the driver's thread serves the same requests with `pread(2)`, and
//! [`Driver::notice`] and [`FileStream::notices`] say why.
//!
//! # Compared with the synchronous engine
//!
//! The [`Reader`](crate::Reader) copies each chunk on the CPU that then processes it and passes the
//! processor between threads without a wake-up. A stream pays for a hand-off per chunk: a queue push,
//! sometimes an `eventfd` write, and a task wake-up from the driver thread, and the bytes are copied
//! on the driver's CPU and processed on another. `docs/BENCHMARKS.md` measures what that costs
//! (`ringread bench --backends stream,...`).
//!
//! # Adapters
//!
//! [`FileStream::into_async_read`] gives an `AsyncRead + AsyncBufRead` ([`ChunkReader`], tokio-util's
//! `StreamReader` over the stream), so `tokio::io::copy`, `FramedRead`, `lines()` and the rest work
//! unchanged, still without copying into an intermediate buffer.

mod chunk;
mod driver;
mod file;
mod pool;

pub use chunk::OwnedChunk;
pub use driver::{Driver, DriverStats, DEFAULT_BUDGET};
pub use file::{default_options, open, open_async, FileStream, DEFAULT_DEPTH};

use crate::error::Error;

/// A [`FileStream`] as `AsyncRead + AsyncBufRead`: tokio-util's `StreamReader` over it. Errors come
/// out as [`std::io::Error`]s whose message names the file and the offset.
pub type ChunkReader = tokio_util::io::StreamReader<FileStream, OwnedChunk>;

impl FileStream {
    /// This stream as an `AsyncRead + AsyncBufRead` ([`ChunkReader`]).
    pub fn into_async_read(self) -> ChunkReader {
        tokio_util::io::StreamReader::new(self)
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        let kind = match &e {
            Error::Interrupted { .. } => std::io::ErrorKind::Interrupted,
            Error::InvalidOptions(_) => std::io::ErrorKind::InvalidInput,
            Error::OutOfMemory { .. } => std::io::ErrorKind::OutOfMemory,
            other => other
                .io_error()
                .map_or(std::io::ErrorKind::Other, |s| s.kind()),
        };
        std::io::Error::new(kind, e)
    }
}
