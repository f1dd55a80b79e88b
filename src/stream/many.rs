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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::driver::{Counters, Driver, DriverInner};
use super::file::Handoff;
use super::pool::{Buf, Held, Pool, Take};
use super::whole::WholeOp;
use crate::error::{Error, Result};

/// Files a [`ReadMany`] has in flight at most, unless [`ReadMany::files_in_flight`] says otherwise:
/// their `statx`, `openat`, reads and `close` overlap in the kernel, and at most this many files
/// are read and not yet handed out.
pub const DEFAULT_FILES_IN_FLIGHT: usize = 64;

/// What became of one file, as a lane tells its batch.
pub(super) enum Outcome {
    /// Read: `len` bytes in the lease's buffer.
    Bytes(Lease, usize),
    /// Read: no bytes.
    Empty,
    /// `statx` or `openat` failed with this errno.
    OpenFailed(i32),
    /// A read failed at `offset` with `errno`.
    ReadFailed { offset: u64, errno: i32 },
    /// Not a regular file (`S_IFMT` of its mode).
    NotRegular(u32),
    /// Larger than the driver's whole budget.
    TooLarge(u64),
    /// The buffer could not be allocated.
    NoMemory(usize),
    /// A regular file whose size `statx` cannot tell (procfs says 0) and that has more than a page:
    /// read it to its end elsewhere.
    Fallback,
    /// The driver was cancelled.
    Interrupted,
    /// Its turn for a buffer came while every buffer of the budget was held by bytes this batch
    /// handed out (`held` of them).
    BuffersHeld(usize),
    /// Its turn for a buffer came while every buffer of the budget was held by what the batch's
    /// task had taken (from this batch and others, streams, ranges).
    BudgetHeld(Held),
}

/// Whether a file has had its turn for a buffer.
// A parked op waits in its entry, unboxed: boxing it would allocate once a file.
#[allow(clippy::large_enum_variant)]
enum Turn {
    /// Its `statx` is not in: its need is not known.
    Stat,
    /// Needs a buffer and waits for it (the op is here meanwhile, nothing of it in the kernel).
    Parked(WholeOp),
    /// Has its buffer, or needs none.
    Passed,
}

struct Entry {
    turn: Turn,
    outcome: Option<Outcome>,
}

impl Entry {
    /// The file's outcome is decided here, before its turn for a buffer: it needs none now.
    fn dismiss(&mut self, outcome: Outcome) {
        if let Turn::Parked(op) = std::mem::replace(&mut self.turn, Turn::Passed) {
            op.dismiss();
        }
        self.outcome = Some(outcome);
    }
}

struct BatchState {
    /// The input index of `entries[0]`: the next to hand out.
    head: usize,
    /// The files admitted and not handed out yet, in input order.
    entries: VecDeque<Entry>,
    /// The next file whose turn for a buffer it is.
    next_turn: usize,
    waker: Option<Waker>,
    closed: bool,
}

/// What the files of one call share with the lanes that read them.
pub(super) struct Batch {
    state: Mutex<BatchState>,
    closed: AtomicBool,
    /// Read uncached ([`ReadMany::dontcache`]).
    pub(super) dontcache: AtomicBool,
    pub(super) pool: Arc<Pool>,
    pub(super) counters: Arc<Counters>,
    /// Bytes of buffers given to this batch's files and not handed out yet.
    held: AtomicUsize,
    /// Buffers handed out (as `Bytes`) and not dropped yet, and their bytes.
    out_count: AtomicUsize,
    out_bytes: AtomicUsize,
}

/// Why a turn stopped.
enum Stop {
    /// Nothing waits for a buffer now.
    Idle,
    /// The file whose turn it is waits for a buffer; `urgent`: this batch holds none.
    Waiting { urgent: bool },
    /// The file whose turn it is would wait for ever: the budget is spent and all of it is out to
    /// the task that polls (see [`Take::Held`]).
    Held(Held),
}

impl Batch {
    fn lock(&self) -> MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the batch's consumer is gone.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A lane has the file's size (`op.need`, 0: no buffer needed): it goes on (into `out`) or waits
    /// for its turn for a buffer; files whose turn came meanwhile go on too.
    pub(super) fn sized(self: &Arc<Self>, mut op: WholeOp, out: &mut Vec<WholeOp>) {
        let mut st = self.lock();
        if st.closed {
            drop(st);
            return; // the op drops here: nothing of it is in the kernel
        }
        let head = st.head;
        let Some(e) = entry(&mut st, head, op.index) else {
            debug_assert!(false, "file {} sized outside the window", op.index);
            op.dismiss();
            return;
        };
        if op.need == 0 {
            e.turn = Turn::Passed;
            out.push(op);
        } else {
            op.uncount();
            e.turn = Turn::Parked(op);
        }
        let waiting = matches!(self.turns(&mut st, None, out), Stop::Waiting { .. });
        let waker = if waiting || head_is_in(&st) {
            st.waker.take()
        } else {
            None
        };
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// A lane has file `index`'s outcome (files whose turn for a buffer came meanwhile go to `out`).
    pub(super) fn deliver(
        self: &Arc<Self>,
        index: usize,
        outcome: Outcome,
        out: &mut Vec<WholeOp>,
    ) {
        let mut st = self.lock();
        if st.closed {
            drop(st);
            return; // the outcome drops here: its buffer goes back to the pool
        }
        let head = st.head;
        let Some(e) = entry(&mut st, head, index) else {
            debug_assert!(false, "an outcome for file {index} outside the window");
            return;
        };
        e.outcome = Some(outcome);
        let mut waiting = false;
        if matches!(e.turn, Turn::Stat) {
            e.turn = Turn::Passed;
            waiting = matches!(self.turns(&mut st, None, out), Stop::Waiting { .. });
        }
        // Only the file at the head can be handed out: the others wait for it without a wake-up.
        let waker = if waiting || head_is_in(&st) {
            st.waker.take()
        } else {
            None
        };
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Gives buffers to the files whose turn it is, in input order; those go on (into `out`). From a
    /// lane (`task` is `None`): only within the batch's share of the budget, never waiting. From the
    /// task: a file waits in the pool (its waker kept) when the batch holds no buffer.
    fn turns(
        self: &Arc<Self>,
        st: &mut BatchState,
        task: Option<&Waker>,
        out: &mut Vec<WholeOp>,
    ) -> Stop {
        st.next_turn = st.next_turn.max(st.head);
        loop {
            let i = st.next_turn - st.head;
            let Some(e) = st.entries.get_mut(i) else {
                return Stop::Idle;
            };
            let len = match &e.turn {
                Turn::Stat => return Stop::Idle,
                Turn::Passed => {
                    st.next_turn += 1;
                    continue;
                }
                Turn::Parked(op) => op.need,
            };
            let held = self.held.load(Ordering::Acquire);
            let urgent = task.is_some() && held == 0;
            // A kept buffer up to half as long again will do (lengths vary from file to file).
            let got = self.pool.take_fit(
                len,
                len + len / 2,
                held,
                urgent,
                task.unwrap_or(Waker::noop()),
            );
            match got {
                Ok(Take::Got(buf)) => {
                    let Turn::Parked(mut op) = std::mem::replace(&mut e.turn, Turn::Passed) else {
                        unreachable!("matched above")
                    };
                    self.held.fetch_add(buf.len(), Ordering::AcqRel);
                    op.buf = Some(Lease {
                        buf: Some(buf),
                        batch: Arc::clone(self),
                        out: false,
                    });
                    if task.is_none() {
                        // Goes on on this lane's ring straight away.
                        op.count();
                    }
                    out.push(op);
                }
                Ok(Take::Later) => return Stop::Waiting { urgent },
                Ok(Take::Held(h)) => return Stop::Held(h),
                Err(_) => {
                    e.dismiss(Outcome::NoMemory(len));
                }
            }
            st.next_turn += 1;
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.counters.live_buffers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A buffer of the pool lent to one file of a batch: back to the pool when dropped.
pub(super) struct Lease {
    buf: Option<Buf>,
    batch: Arc<Batch>,
    /// Handed out (counted in `out_*`), or still the batch's (counted in `held`).
    out: bool,
}

impl Lease {
    /// The buffer's first byte.
    pub(super) fn ptr(&self) -> *mut u8 {
        self.buf.as_ref().map_or(std::ptr::null_mut(), Buf::ptr)
    }

    /// The buffer's length.
    pub(super) fn capacity(&self) -> usize {
        self.buf.as_ref().map_or(0, Buf::len)
    }

    /// The kernel may still write the buffer (its ring failed): it is never given back.
    pub(super) fn leak(mut self) {
        std::mem::forget(self.buf.take());
    }

    /// Now the consumer's: the task `to` polled it out (`from`: the file; `hint`: see
    /// [`Pool::hand_out`]).
    fn hand_out(&mut self, to: &Waker, from: &Arc<Path>, hint: &mut u32) {
        let len = self.capacity();
        self.batch.held.fetch_sub(len, Ordering::AcqRel);
        self.batch.out_bytes.fetch_add(len, Ordering::AcqRel);
        self.batch.out_count.fetch_add(1, Ordering::AcqRel);
        self.out = true;
        if let Some(buf) = self.buf.as_mut() {
            self.batch.pool.hand_out(buf, to, from, hint);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(buf) = self.buf.take() else { return };
        let len = buf.len();
        if self.out {
            self.batch.out_bytes.fetch_sub(len, Ordering::AcqRel);
            self.batch.out_count.fetch_sub(1, Ordering::AcqRel);
        } else {
            self.batch.held.fetch_sub(len, Ordering::AcqRel);
        }
        self.batch.pool.give([buf]);
    }
}

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
/// call on the polling thread, no thread per file. A file is read up to the size `statx` gave (a
/// file that grows meanwhile is read to that size, one that shrinks to its new end), into a buffer
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
    /// Where the pool found this stream's consumer task last ([`Pool::hand_out`]).
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
    /// Reads the files at `paths` whole, as [`Driver::files`] reads one, with up to
    /// [`DEFAULT_FILES_IN_FLIGHT`] of them in flight on the driver's threads: a stream of
    /// `(index, Result<Bytes>)` in input order ([`ReadMany`]). Nothing starts until it is polled.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// # async fn f(paths: Vec<std::path::PathBuf>) -> Result<(), ringread::Error> {
    /// let driver = ringread::stream::Driver::global()?;
    /// let mut files = driver.read_many(&paths);
    /// while let Some((i, bytes)) = files.next().await {
    ///     match bytes {
    ///         Ok(bytes) => println!("{}: {} bytes", paths[i].display(), bytes.len()),
    ///         Err(e) => eprintln!("{e}"), // this file only: the next ones are read as usual
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub(crate) fn read_many<I>(&self, paths: I) -> ReadMany
    where
        I: IntoIterator,
        I::Item: AsRef<Path>,
    {
        let counters = Arc::clone(&self.inner.counters);
        counters.live_buffers.fetch_add(1, Ordering::AcqRel);
        self.inner.pool.stream_count(true);
        ReadMany {
            batch: Arc::new(Batch {
                state: Mutex::new(BatchState {
                    head: 0,
                    entries: VecDeque::new(),
                    next_turn: 0,
                    waker: None,
                    closed: false,
                }),
                closed: AtomicBool::new(false),
                dontcache: AtomicBool::new(false),
                pool: Arc::clone(&self.inner.pool),
                counters,
                held: AtomicUsize::new(0),
                out_count: AtomicUsize::new(0),
                out_bytes: AtomicUsize::new(0),
            }),
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
            self.driver.cancel_whole(&self.batch);
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
            self.driver.start_whole(send);
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
    fn turn(&mut self, cx: &mut Context<'_>, send: &mut Vec<WholeOp>) -> Option<Outcome> {
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
        // Buffers for the files whose turn it is.
        let mut given = Vec::new();
        loop {
            let outcome = match batch.turns(&mut st, Some(cx.waker()), &mut given) {
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
        for mut op in given {
            op.count();
            send.push(op);
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

/// The entry of input `index` (`head`: the first in the window), if it is in the window.
fn entry(st: &mut BatchState, head: usize, index: usize) -> Option<&mut Entry> {
    st.entries.get_mut(index.checked_sub(head)?)
}

/// Whether the head's outcome is in.
fn head_is_in(st: &BatchState) -> bool {
    st.entries.front().is_some_and(|e| e.outcome.is_some())
}

/// The head's outcome, if it is in (the entry leaves the window).
fn pop_head(st: &mut BatchState) -> Option<Outcome> {
    let o = st.entries.front_mut()?.outcome.take()?;
    st.entries.pop_front();
    st.head += 1;
    Some(o)
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
