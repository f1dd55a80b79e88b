//! Whole files read on the driver: [`Driver::files`] (one file, as a `Future` of [`Bytes`]) and
//! [`Driver::files`] (many, as a [`ReadMany`] stream of `(index, Result<Bytes>)` in input order).
//!
//! Each file is a [`WholeOp`] that a driver lane takes from `statx` to `close` on its ring; the
//! files of one call share a [`Batch`]: their outcomes in input order, the buffer turns, the task's
//! waker. A file's buffer comes from the driver's pool once `statx` has told its size, and the
//! buffers of a batch are given strictly in input order: a file waits for its buffer only after
//! every file before it has one, so the file the consumer waits for never waits behind buffers held
//! by files after it (which would deadlock a small budget). A lane gives a buffer itself when the
//! pool has one within the batch's share; otherwise the task does, waiting in the pool as a stream
//! does.
//!
//! The bytes are handed out as [`Bytes`] over the pool's buffer (`Bytes::from_owner`): no copy; the
//! buffer goes back to the pool when the last `Bytes` of it drops.

use std::collections::VecDeque;
use std::ffi::CString;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::driver::{Driver, DriverInner};
use super::lane::Work;
use super::whole::{Batch, BatchState, Entry, Lease, Outcome, Stop, Turn, WholeOp};
use crate::error::{Error, Result};

/// Files a [`ReadMany`] has in flight at most, unless [`ReadMany::files_in_flight`] says otherwise:
/// their `statx`, `openat`, reads and `close` overlap in the kernel, and at most this many files
/// are read and not yet handed out.
pub const DEFAULT_FILES_IN_FLIGHT: usize = 64;

/// The owner of a file's bytes inside the [`Bytes`] handed out.
struct FileBytes {
    lease: Lease,
    len: usize,
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the file's reads into the buffer have completed (their completions were reaped
        // before the lease was handed to the batch) and wrote `len` bytes (<= its capacity); the
        // lease keeps the buffer alive, and nothing writes it again until it is back in the pool,
        // which happens only when this owner drops.
        unsafe { std::slice::from_raw_parts(self.lease.ptr(), self.len) }
    }
}

/// The files' contents, one whole file at a time, as a [`Stream`](futures_core::Stream) of
/// `(index, Result<Bytes>)` in input order (`index` is the file's place among the inputs). Made by
/// [`Driver::files`].
///
/// Up to [`DEFAULT_FILES_IN_FLIGHT`] files ([`ReadMany::files_in_flight`]) are in flight at once,
/// their operations spread over the driver's threads. A file's error (missing, a directory, a
/// FIFO...) is its own item; the files after it are read as usual.
///
/// Each file is read into one buffer from the driver's pool and handed out as [`Bytes`] without
/// copying (the buffer goes back to the pool when the last `Bytes` of it drops). Its `statx`,
/// `openat`, read and `close` run on a driver thread's io_uring, one after the other (the task is
/// woken once per file, or once per batch of files that complete together): no blocking system
/// call on the polling thread, no thread per file. A file ends where a read returns 0, as on every
/// path: it is read up to the size `statx` gave, then one more read there tells whether it ends
/// (one that grew meanwhile is read to its new end on a helper thread; one that shrank ends at its
/// new end), into a buffer
/// of that size rounded up to a size class (at most an eighth more; a kept buffer up to half as
/// long again is reused). Refused, each with [`Error::Open`] naming the path and the way to read it
/// instead:
///
/// - anything that is not a regular file (a FIFO's open would wait for a writer, a device may
///   never end): stream it with [`Driver::chunks`] (open it off the executor first); a directory
///   is `EISDIR`;
/// - a file larger than the driver's whole budget (`ErrorKind::FileTooLarge`): stream it with
///   [`Driver::chunks`].
///
/// A regular file that says it is empty on a file system without a device (tmpfs, or procfs,
/// whose files say 0 and have bytes) is read into one page to see; one that fills the page is read
/// to its end with `read(2)` on a helper thread and copied. FUSE files are read with `read(2)` on
/// the driver's thread (see the reader's rule for them).
///
/// Memory: the buffers of files read and not yet handed out, and of the `Bytes` handed out and not
/// dropped, come from the driver's budget ([`Driver::with_budget`]). Buffers are given in input
/// order, so a file never waits for budget held by the files after it. Holding the `Bytes` of the
/// files handed out (collecting them all, say) can spend the whole budget: when a file's turn comes
/// while every buffer is held by bytes this stream handed out, its item is
/// [`Error::BuffersHeld`] rather than a wait for ever; drop or copy what you keep. When the budget
/// is held by what the polling task took from other streams, reads or ranges too, the item is
/// [`Error::BudgetHeld`], naming what is held (see the [module](super) documentation). Either
/// way the stream goes on with the next file.
///
/// If the driver is cancelled ([`Driver::set_cancel`]), the next item is the next file's
/// [`Error::Interrupted`], and the stream ends. Dropping the stream part way cancels what it has in
/// the kernel (`IORING_OP_ASYNC_CANCEL`); buffers go back to the pool as those operations complete,
/// descriptors are closed by the lanes.
pub struct ReadMany {
    batch: Arc<Batch>,
    driver: Arc<DriverInner>,
    paths: Vec<Arc<Path>>,
    /// Where the pool found this stream's consumer task last
    /// ([`Pool::hand_out`](super::pool::Pool::hand_out)).
    taker: u32,
    /// The next input to admit.
    next: usize,
    width: usize,
    /// The next input to hand out.
    head: usize,
    /// A file read off the driver (see [`Outcome::Fallback`]), while it is read.
    fallback: Option<Arc<Handoff<Result<Bytes>>>>,
    done: bool,
    /// Inputs that failed before they could be read (a tree's entries that could not be listed),
    /// by their position among all inputs; `paths` holds the others.
    failed: VecDeque<(usize, Error)>,
    /// The position among all inputs of each of `paths` (empty: the same as in `paths`).
    globals: Vec<usize>,
}

impl std::fmt::Debug for ReadMany {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadMany")
            .field("files", &self.paths.len())
            .field("next", &self.head)
            .field("files_in_flight", &self.width)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// The files at `paths` read whole ([`Driver::files`]'s way), up to
    /// [`DEFAULT_FILES_IN_FLIGHT`] of them in flight on the driver's threads. Nothing starts
    /// until it is polled.
    pub(crate) fn whole_files<I>(&self, paths: I) -> ReadMany
    where
        I: IntoIterator,
        I::Item: AsRef<Path>,
    {
        let batch = Batch::new(
            Arc::clone(&self.inner.pool),
            Arc::clone(&self.inner.counters),
        );
        self.inner.pool.stream_count(true);
        ReadMany {
            batch: Arc::new(batch),
            driver: Arc::clone(&self.inner),
            paths: paths.into_iter().map(|p| Arc::from(p.as_ref())).collect(),
            taker: u32::MAX,
            next: 0,
            width: DEFAULT_FILES_IN_FLIGHT,
            head: 0,
            fallback: None,
            done: false,
            failed: VecDeque::new(),
            globals: Vec::new(),
        }
    }
}

impl ReadMany {
    /// Keeps at most `n` files (at least 1) in flight: admitted and not yet handed out. Set it
    /// before the first poll.
    pub fn files_in_flight(mut self, n: usize) -> Self {
        self.width = n.max(1);
        self
    }

    /// Reads the files uncached, leaving the page cache as it was (`RWF_DONTCACHE`, as
    /// [`ReadOptionsBuilder::dontcache`](crate::ReadOptionsBuilder::dontcache) for streams): pages
    /// that were cached stay, pages the reads bring in are dropped, and a file of which nothing
    /// was cached is dropped whole once read. Where the file system refuses `RWF_DONTCACHE`, a
    /// file's pages are dropped once it is read. Set it before the first poll.
    pub fn dontcache(self, on: bool) -> Self {
        self.batch.dontcache.store(on, Ordering::Relaxed);
        self
    }

    /// The next file, or `None` after the last: the same as `StreamExt::next`, without the import.
    pub fn next_file(&mut self) -> impl Future<Output = Option<(usize, Result<Bytes>)>> + '_ {
        std::future::poll_fn(move |cx| self.poll_file(cx))
    }

    /// Ends the stream: what is in the kernel is cancelled, what is not is dropped (buffers back to
    /// the pool).
    fn close(&mut self) {
        self.done = true;
        self.batch.closed.store(true, Ordering::Release);
        let (entries, in_flight) = {
            let mut st = self.batch.lock();
            st.closed = true;
            st.waker = None;
            let entries = std::mem::take(&mut st.entries);
            // Files without an outcome that are not parked here have operations on a lane.
            let in_flight = entries
                .iter()
                .any(|e| e.outcome.is_none() && !matches!(e.turn, Turn::Parked(_)));
            (entries, in_flight)
        };
        drop(entries);
        if in_flight {
            self.driver.cancel(&self.batch);
        }
    }

    /// Makes the item of file `index` from its outcome, for the task `to`.
    fn item(&mut self, index: usize, outcome: Outcome, to: &Waker) -> Option<Result<Bytes>> {
        let path = &self.paths[index];
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        Some(match outcome {
            Outcome::Bytes(mut lease, len) => {
                lease.hand_out(to, path, &mut self.taker);
                Ok(Bytes::from_owner(FileBytes { lease, len }))
            }
            Outcome::Empty => Ok(Bytes::new()),
            Outcome::OpenFailed(errno) => Err(open_err(io::Error::from_raw_os_error(errno))),
            Outcome::ReadFailed { offset, errno } => Err(Error::Read {
                path: path.to_path_buf(),
                offset,
                source: io::Error::from_raw_os_error(errno),
            }),
            Outcome::NotRegular(mode) => {
                let what = match mode {
                    libc::S_IFIFO => "a FIFO",
                    libc::S_IFCHR => "a character device",
                    libc::S_IFBLK => "a block device",
                    libc::S_IFSOCK => "a socket",
                    _ => "not a regular file",
                };
                Err(open_err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what}, not a regular file: stream it with Driver::chunks"),
                )))
            }
            Outcome::TooLarge(size) => Err(open_err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!(
                    "{size} bytes, more than the driver's whole buffer budget ({} bytes): stream \
                     it with Driver::chunks",
                    self.batch.pool.budget()
                ),
            ))),
            Outcome::NoMemory(bytes) => Err(Error::OutOfMemory { bytes }),
            Outcome::Interrupted => Err(Error::Interrupted {
                path: path.to_path_buf(),
            }),
            Outcome::BuffersHeld(held) => Err(Error::BuffersHeld {
                path: path.to_path_buf(),
                held,
            }),
            Outcome::BudgetHeld(held) => Err(held.error(path)),
            Outcome::Fallback => {
                self.fallback = Some(read_elsewhere(path.to_path_buf()));
                return None;
            }
        })
    }

    fn poll_file(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Result<Bytes>)>> {
        // A failed input is handed out at its place: once every readable input before it is.
        let next_global = match self.globals.get(self.head) {
            Some(&g) => g,
            None => usize::MAX,
        };
        if self.failed.front().is_some_and(|(g, _)| *g < next_global) {
            let (g, e) = self.failed.pop_front().expect("checked above");
            return Poll::Ready(Some((g, Err(e))));
        }
        let polled = self.poll_readable(cx);
        match polled {
            Poll::Ready(Some((i, r))) if !self.globals.is_empty() => {
                Poll::Ready(Some((self.globals[i], r)))
            }
            polled => polled,
        }
    }

    /// Inputs of a list with failed ones: `paths` are those that can be read, `globals` their
    /// positions among all, `failed` the others.
    pub(super) fn with_failed(mut self, globals: Vec<usize>, failed: Vec<(usize, Error)>) -> Self {
        if !failed.is_empty() {
            self.globals = globals;
            self.failed = failed.into();
        }
        self
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Result<Bytes>)>> {
        if let Some(h) = &self.fallback {
            let Poll::Ready(r) = h.poll(cx) else {
                return Poll::Pending;
            };
            self.fallback = None;
            self.head += 1;
            return Poll::Ready(Some((self.head - 1, r)));
        }
        if self.done || self.head == self.paths.len() {
            self.done = true;
            return Poll::Ready(None);
        }
        if self.driver.cancelled() {
            let index = self.head;
            self.close();
            return Poll::Ready(Some((
                index,
                Err(Error::Interrupted {
                    path: self.paths[index].to_path_buf(),
                }),
            )));
        }
        let mut send = Vec::new();
        let ready = self.turn(cx, &mut send);
        if !send.is_empty() {
            self.driver.start(send);
        }
        let Some(outcome) = ready else {
            return Poll::Pending;
        };
        let index = self.head;
        match self.item(index, outcome, cx.waker()) {
            Some(r) => {
                self.head += 1;
                Poll::Ready(Some((index, r)))
            }
            // Read elsewhere: poll that.
            None => self.poll_readable(cx),
        }
    }

    /// One poll's work under the batch's lock: take the head's outcome if it is in, admit files up
    /// to the window, give buffers whose turn came (the ops to send go to `send`). `None`: nothing
    /// to hand out yet (the waker is registered).
    fn turn(&mut self, cx: &mut Context<'_>, send: &mut Vec<Work>) -> Option<Outcome> {
        let batch = Arc::clone(&self.batch);
        let mut st = batch.lock();
        let ready = pop_head(&mut st);
        // Admit files while the window has room, once a quarter of it is free (or it is empty): a
        // wake-up of a lane then carries several files, not one per file handed out.
        let batch_of = (self.width / 4).max(1);
        let room = self.width - st.entries.len().min(self.width);
        let admit = if room >= batch_of || st.entries.is_empty() {
            room
        } else {
            0
        };
        for _ in 0..admit {
            if self.next == self.paths.len() {
                break;
            }
            let index = self.next;
            self.next += 1;
            match CString::new(self.paths[index].as_os_str().as_bytes()) {
                Ok(c) => {
                    let lane = self.driver.next_lane();
                    let mut op = WholeOp::new(Arc::clone(&batch), index, c, lane);
                    op.count();
                    send.push(op);
                    st.entries.push_back(Entry {
                        turn: Turn::Stat,
                        outcome: None,
                    });
                }
                Err(_) => st.entries.push_back(Entry {
                    turn: Turn::Passed,
                    outcome: Some(Outcome::OpenFailed(libc::EINVAL)),
                }),
            }
        }
        // Buffers for the files whose turn it is (those given one go to `send`).
        loop {
            let outcome = match batch.turns(&mut st, Some(cx.waker()), send) {
                // The file whose turn it is waits for the budget and this batch holds none of it:
                // if everything lent is bytes this stream handed out, only the consumer can give
                // it back, and it is waiting for this stream. Say so rather than wait for ever.
                Stop::Waiting { urgent: true } => {
                    let out = batch.out_bytes.load(Ordering::Acquire);
                    if out == 0 || batch.pool.lent() > out {
                        break;
                    }
                    Outcome::BuffersHeld(batch.out_count.load(Ordering::Acquire))
                }
                // Everything lent is out to this task: this stream's own files (said as above), or
                // chunks, files and ranges of others too.
                Stop::Held(h) => {
                    if batch.out_bytes.load(Ordering::Acquire) == h.bytes() {
                        Outcome::BuffersHeld(batch.out_count.load(Ordering::Acquire))
                    } else {
                        Outcome::BudgetHeld(h)
                    }
                }
                _ => break,
            };
            let i = st.next_turn - st.head;
            st.entries[i].dismiss(outcome);
        }
        let ready = ready.or_else(|| pop_head(&mut st));
        if ready.is_none() {
            match &st.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.waker = Some(cx.waker().clone()),
            }
        }
        ready
    }
}

/// The head's outcome, if it is in (the entry leaves the window).
fn pop_head(st: &mut BatchState) -> Option<Outcome> {
    let o = st.entries.front_mut()?.outcome.take()?;
    st.entries.pop_front();
    st.head += 1;
    Some(o)
}

/// Where a helper thread (a whole-file read's fallback) leaves its result for the task.
struct Handoff<T> {
    state: Mutex<(Option<T>, Option<Waker>)>,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Handoff {
            state: Mutex::new((None, None)),
        }
    }
}

impl<T> Handoff<T> {
    fn put(&self, r: T) {
        let waker = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.0 = Some(r);
            st.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                st.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Reads `path` to its end with `read(2)` on a helper thread (files whose size only reading tells),
/// into a `Vec`.
fn read_elsewhere(path: PathBuf) -> Arc<Handoff<Result<Bytes>>> {
    let cell = Arc::new(Handoff::default());
    let put = Arc::clone(&cell);
    let p = path.clone();
    let spawned = std::thread::Builder::new()
        .name("ringread-read".into())
        .spawn(move || put.put(read_to_end(&p)));
    if let Err(source) = spawned {
        cell.put(Err(Error::Open { path, source }));
    }
    cell
}

fn read_to_end(path: &Path) -> Result<Bytes> {
    use std::io::Read;
    let mut file = crate::file::open_read(path)?;
    let mut out = Vec::new();
    loop {
        match file.read_to_end(&mut out) {
            Ok(_) => return Ok(Bytes::from(out)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_path_buf(),
                    offset: out.len() as u64,
                    source,
                })
            }
        }
    }
}

impl futures_core::Stream for ReadMany {
    type Item = (usize, Result<Bytes>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_file(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.paths.len() - self.head;
        if self.done {
            (0, Some(0))
        } else {
            (left, Some(left))
        }
    }
}

impl futures_core::FusedStream for ReadMany {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl Drop for ReadMany {
    fn drop(&mut self) {
        if !self.batch.is_closed() {
            self.close();
        }
        self.batch.pool.stream_count(false);
    }
}
