//! Files as asynchronous streams of chunks, for tokio (or any executor) programs.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! # async fn f() -> Result<(), ringread::Error> {
//! let mut stream = ringread::stream::Driver::global()?.chunks("/var/log/syslog")?;
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
//! A [`Driver`] is one thread per CPU this process may use, each with its own io_uring, and a pool
//! of buffers its streams share within a budget. Streams opened from it ([`Driver::chunks`],
//! [`Driver::files`], [`Driver::ranges`], [`Driver::range_file`]; [`Driver::global`] is the
//! process's) decide what to read; the driver's threads perform the reads:
//!
//! 1. the task polling a [`FileStream`] takes buffers from the driver's pool for its free slots,
//!    makes read requests and puts them on the queues of the driver's threads (chunk `k` goes to
//!    thread `k % threads`, waking it through an `eventfd` it keeps a read on);
//! 2. each driver thread submits them in batches and waits in `io_uring_enter`; a read of cached data
//!    completes inside that call, on that thread's CPU (the copy out of the page cache happens
//!    there); a read from the device completes when the device is done;
//! 3. the thread records each completion in its stream's state and wakes the stream's task;
//! 4. the task, on whatever worker polls it, turns completions into chunks in file order
//!    (resubmitting short reads and EINTR/EAGAIN, by the same rules as every other path) and hands
//!    them out as [`OwnedChunk`]s.
//!
//! Before any of that, a poll reads the chunk its consumer waits for itself when the page cache
//! holds it (the *cached fast path*: `preadv2` with `RWF_NOWAIT`, on the polling thread, one chunk
//! per poll) and hands it out at once: a cached chunk crosses no thread, wakes no task, and is
//! processed from the cache of the CPU that copied it. The driver reads ahead only once such a read
//! finds the cache lacking, and only up to the next chunk the cache holds whole.
//! [`ReadOptionsBuilder::cached_fast_path(false)`](crate::ReadOptionsBuilder::cached_fast_path)
//! turns it off; `O_DIRECT`, pipes, FUSE files and `dontcache` streams never use it.
//!
//! So one driver serves any number of streams (hundreds, on any number of runtime threads) with one
//! ring per CPU; each stream costs its file, a small state, and the buffers it holds. Programs can
//! make more drivers with [`Driver::new`] to keep groups of streams apart.
//!
//! # Memory: `depth` per stream, a budget per driver
//!
//! A stream has at most `depth` buffers of `chunk_size` bytes (`DEFAULT_STREAM_DEPTH`: 16 of 256 KiB). All
//! the streams of a driver take their buffers from one pool of at most [`DEFAULT_BUDGET`] bytes
//! (64 MiB; choose with [`Driver::with_budget`]); buffers given back are kept for the next stream.
//! A stream reads ahead only within its share of the budget (`budget / open streams`, at least one
//! buffer); when the budget is spent, a stream that needs a buffer waits until another stream gives
//! one back. [`Driver::stats`] shows the budget, the bytes of buffers, their peak and what streams
//! hold.
//!
//! A chunk handed out keeps its buffer until it (or the last `Bytes` made from it) is dropped, so
//! holding chunks stops the stream's reading: that is the backpressure. Holding *every* buffer of
//! a stream while asking it for the next chunk cannot work (`stream.collect::<Vec<_>>()` of a file
//! longer than `depth` chunks, for instance): the stream then returns
//! [`Error::BuffersHeld`] and ends, rather than wait for ever. Drop
//! chunks before asking for more, copy what you keep (`Bytes::copy_from_slice`), or raise `depth`.
//! The same holds across streams of one driver: chunks held while waiting for other streams'
//! chunks hold the budget (see below).
//!
//! # Which calls wait for the budget, and when they say they never could get it
//!
//! A call waits for a buffer of its driver's budget when the budget is spent and nothing of its own
//! is in flight or ready:
//!
//! - a [`FileStream`]'s poll (`next()`, [`FileStream::next_chunk`], and reads through
//!   [`FileStream::into_async_read`]), when the stream has no read in flight and no chunk ready;
//! - [`Driver::files`], and each file of [`Driver::files`] when its turn for a buffer comes and
//!   its stream holds no buffer (the files before it handed out);
//! - [`RangeFile::read_at`] (and [`RangeFile::ranges`]) before its read starts.
//!
//! Such a wait ends when someone gives a buffer back: a chunk, a file's `Bytes` or a range's
//! `Bytes` dropped (by any task), a stream dropped or finished. Each buffer handed out is booked
//! to the task that polled it out. When the waiting task is the one every byte of the budget is
//! booked to (no read in flight, nothing ready in a stream or read and not handed out, nothing
//! held by another task), only it could give one back, and it is waiting: the call returns
//! [`Error::BudgetHeld`] instead, naming how many chunks or files the task holds, their bytes and
//! the paths they came from (a stream then ends; `read_many` goes on with its next file). A
//! stream's own chunks holding the whole budget are [`Error::BuffersHeld`], as above.
//!
//! What the check cannot see, it leaves waiting or mistakes:
//!
//! - a chunk or `Bytes` moved to another task after it was polled out (sent on a channel, say)
//!   stays booked to the task that polled it: if that task then waits for the budget while
//!   everything is booked to it, it is told so even though the other task may drop them. Let the
//!   task that keeps the bytes poll them out, copy them, or give the driver a larger budget;
//! - likewise a branch of the same task that would drop them later (the other arm of a `select!`
//!   or `join!`) is not seen: a poll that finds everything held by its own task says so at once;
//! - futures that give each of their parts a waker of its own (`FuturesUnordered`, `buffered`)
//!   look like different tasks, and chunks ready in a stream nobody polls, or read ahead and not
//!   yet handed out, are not booked to anyone: those waits are left to wait, as before.
//!
//! # Opening without blocking
//!
//! [`Driver::chunks`] and [`Driver::range_file`] of a path call `open(2)` on the calling thread, as
//! `std::fs::File::open` does: a FIFO's waits there for a writer, a network file system's for its
//! server. From async code, for such a path, open the file off the executor
//! (`tokio::fs::File::open(path).await?.into_std().await`) and give it:
//! `driver.chunks(Source::file(file, path))`. [`Driver::files`] opens on the driver's rings and
//! never blocks the polling thread.
//!
//! # Whole files, many at once
//!
//! [`Driver::files`] reads files whole (a list of paths, or a tree), for programs that want files' contents rather than a stream of
//! chunks: a source tree, a directory of small documents. Each file's `statx`, `openat`, reads and
//! `close` run on a driver thread's ring, one after another, each pushed by the thread that reaped
//! the one before: no blocking call on the executor, no thread or task per file, and the task woken
//! once per file (with its bytes), or once per batch of files that complete together. The bytes are
//! read into one buffer of the driver's pool, sized from `statx`, and handed out as
//! [`bytes::Bytes`] over that buffer (no copy); the buffer goes back to the pool when the last
//! `Bytes` of it drops.
//!
//! A [`ReadMany`] keeps up to [`DEFAULT_FILES_IN_FLIGHT`] files in flight and yields
//! `(index, Result<Bytes>)` in input order, each file's error its own. Buffers go to its files in
//! input order too (a driver thread gives one when the pool has it within the stream's share, the
//! task otherwise, waiting as a stream does), so the file the consumer waits for never waits for
//! budget held by the files after it.
//!
//! Only regular files are read this way: a FIFO (whose open waits for a writer) or a device is
//! refused at its `statx`, as is a file larger than the whole budget; each error says which way to
//! read it instead ([`Driver::chunks`]).
//!
//! # Cancelling
//!
//! Dropping a stream part way cancels its reads in flight with `IORING_OP_ASYNC_CANCEL`. Each read
//! in flight holds its buffer and the stream's file, so a buffer goes back to the pool only after
//! its read's completion has arrived, and the file is closed then too. A driver given a
//! [`Cancel`](crate::Cancel) ([`Driver::set_cancel`]) stops all its streams when it is cancelled:
//! their reads in flight are cancelled and their polls return
//! [`Error::Interrupted`].
//!
//! Where io_uring is refused, the driver's threads serve the same requests with `pread(2)`, and
//! [`Driver::notice`] and [`FileStream::notices`] say why.
//!
//! # Compared with the synchronous engine
//!
//! The [`Reader`](crate::Reader) copies each chunk on the CPU that then processes it and passes the
//! processor between threads without a wake-up. A stream does the same for cached chunks (the fast
//! path); for the chunks its driver reads it pays for a hand-off: a queue push, sometimes an
//! `eventfd` write, and a task wake-up from the driver thread (one per batch of completions), and
//! the bytes are copied on the driver's CPU and processed on another. `docs/BENCHMARKS.md` measures what that costs
//! (`ringread bench --backends stream,...`).
//!
//! # Adapters
//!
//! [`FileStream::into_async_read`] gives an `AsyncRead + AsyncBufRead` ([`ChunkReader`], tokio-util's
//! `StreamReader` over the stream), so `tokio::io::copy`, `FramedRead`, `lines()` and the rest work
//! unchanged, still without copying into an intermediate buffer.

mod chunk;
mod driver;
mod fetch;
mod file;
mod front;
mod lane;
mod many;
mod pool;
mod ranges;
mod slots;
mod whole;

pub use chunk::OwnedChunk;
pub use driver::{Driver, DriverStats, DEFAULT_BUDGET};
pub use file::{default_options, FileStream, DEFAULT_STREAM_DEPTH};
pub use many::{ReadMany, DEFAULT_FILES_IN_FLIGHT};
pub use ranges::{RangeFile, RangeStream, ReadAt};

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
