//! The driver: one thread per CPU, each with its own ring, performing the reads of every stream made
//! from it and the whole-file reads ([`WholeOp`]s) of `read`/`read_many`; and the buffer pool they
//! share.
//!
//! Streams hand a lane requests through a queue and an `eventfd`; the lane pushes them to its ring
//! ([`DriverRing`], in `crate::ring`: the only code here that touches io_uring), waits for
//! completions, records each one in its stream's shared state and wakes the stream's task. A read in
//! flight keeps its stream's buffers and file open (it holds `Arc`s to them), so nothing the kernel
//! may still write into is freed before its completion has arrived. A whole-file read goes from
//! operation to operation on the lane (each completion pushes the next), and is kept in the lane's
//! slab, with its path, `statx` record and buffer, while an operation of it is in the kernel.
//!
//! Where io_uring is refused, the same thread serves the same requests with `pread(2)`/`read(2)`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::thread::JoinHandle;

use slab::Slab;

use super::file::{Fds, Shared};
use super::many::Batch;
use super::pool::{Pool, Reg, REGISTERED_TABLE};
use super::ranges::{AtOp, AtShared};
use super::whole::{perform, Io, WholeOp};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::reader::Notice;
use crate::ring::{explain_setup_error, DriverCqe, DriverRing};
use crate::sys::CURRENT_POSITION;

/// The buffer budget of a driver made without one ([`Driver::new`], [`Driver::with_threads`],
/// [`Driver::global`]): 64 MiB, shared by all its streams (16 streams reading ahead at the default
/// 16 buffers of 256 KiB, or 4,096 buffers of 16 KiB).
pub const DEFAULT_BUDGET: usize = 64 << 20;

/// One read a stream asks for.
pub(super) struct ReadOp {
    pub shared: Arc<Shared>,
    /// Not read: held so that the file stays open until the read completes.
    #[allow(dead_code)]
    pub fds: Arc<Fds>,
    pub slot: usize,
    pub fd: RawFd,
    pub offset: u64,
    pub buf: *mut u8,
    pub len: u32,
    /// Read with `read(2)`/`pread(2)` on the driver thread, not through the ring (FUSE files).
    pub blocking: bool,
    /// Which of the driver's threads performs it.
    pub lane: usize,
    /// `RWF_*` flags of the read (`RWF_DONTCACHE`).
    pub rw_flags: i32,
    /// Drop the pages it read from the page cache once it completes (`dontcache` where the file
    /// system lacks `RWF_DONTCACHE` and `O_DIRECT`).
    pub drop_behind: bool,
    /// The slot's whole buffer and its registered-buffer entry, when the stream registers
    /// buffers: the lane reads with `READ_FIXED` where its ring has (or can take) the entry.
    pub fixed: Option<Fixed>,
}

/// A read's buffer as the rings' tables of registered buffers know it.
#[derive(Clone, Copy)]
pub(super) struct Fixed {
    pub reg: Reg,
    /// The buffer's first byte and length (the read's `buf .. buf + len` lies within).
    pub base: *mut u8,
    pub len: usize,
}

// SAFETY: `buf` (and `fixed.base`, the same buffer's start) points into a buffer that `shared` holds for its slot, which the op keeps alive
// through its `Arc`; the slot belongs to this read alone until the read's completion is recorded (the
// stream's state machine never lends, reuses or gives back a slot's buffer with a read in flight).
// Moving the op to the driver thread moves that exclusive use with it.
unsafe impl Send for ReadOp {}

pub(super) enum Request {
    Read(ReadOp),
    /// A whole-file read to start (or to go on with, once its buffer was given by its task).
    Whole(WholeOp),
    /// Cancel every read of this stream still in flight (the stream was dropped).
    Cancel(Arc<Shared>),
    /// Cancel every operation of this batch's whole-file reads in flight (its consumer is gone).
    CancelWhole(Arc<Batch>),
    /// A read of `RangeFile::read_at` (`ranges.rs`).
    ReadAt(AtOp),
    /// Cancel this `read_at`'s read if it is in flight (its future was dropped).
    CancelAt(Arc<AtShared>),
}

/// What a lane has in its ring, by `user_data`.
enum LaneOp {
    Read(ReadOp),
    Whole(WholeOp),
    ReadAt(AtOp),
}

/// What streams and the driver thread share.
pub(super) struct Channel {
    queue: Mutex<Vec<Request>>,
    /// Set when the driver has been woken and has not yet looked at the queue: saves writes.
    notified: AtomicBool,
    wake: OwnedFd,
    shutdown: AtomicBool,
    pub counters: Arc<Counters>,
    /// The driver's cancel handle, if it has one.
    cancel: Arc<Mutex<Option<Cancel>>>,
    pool: Arc<Pool>,
}

/// What every lane of a driver counts, together.
#[derive(Default)]
pub(super) struct Counters {
    /// Reads in flight in the kernel (or queued for it), and whole-file reads queued for a lane or
    /// with an operation in its ring.
    pub in_flight: AtomicUsize,
    /// Reads completed (no longer `in_flight`) whose task a lane has not finished waking: see
    /// [`Wakes`].
    pub delivering: AtomicUsize,
    /// Streams whose buffers are still allocated (held by a stream, a chunk or a read in flight).
    pub live_buffers: AtomicUsize,
    /// Reads cancelled because their stream was dropped.
    pub cancelled: AtomicUsize,
    /// Tasks woken by the lanes with completions (once per stream per batch of completions).
    pub wakeups: AtomicUsize,
    /// Chunks read on the thread that polled their stream, from the page cache (`RWF_NOWAIT`).
    pub cached_chunks: AtomicUsize,
    /// Reads into registered buffers (`READ_FIXED`).
    pub fixed_reads: AtomicUsize,
    /// Buffers registered, over every lane's ring, and buffers a lane read into without
    /// registering them after the kernel refused (`fixed_refused`: its reason).
    pub registered: AtomicUsize,
    pub unregistered: AtomicUsize,
    pub fixed_refused: Mutex<Option<String>>,
}

/// A lane's table of registered buffers: which buffer (generation) each entry holds.
struct Table {
    /// By entry: the generation registered there (0: none).
    held: Vec<u64>,
    /// The kernel refused a registration (`RLIMIT_MEMLOCK`, an old kernel): no more are tried,
    /// and `seen` counts the buffers read without.
    refused: bool,
    seen: Vec<u64>,
}

impl Table {
    fn new() -> Table {
        Table {
            held: vec![0; REGISTERED_TABLE as usize],
            refused: false,
            seen: vec![0; REGISTERED_TABLE as usize],
        }
    }

    /// The entry to read into `f` with, registering the buffer there if the entry holds another;
    /// `None`: a plain read (the kernel refused, now or before).
    fn entry(&mut self, ring: &mut DriverRing, f: &Fixed, counters: &Counters) -> Option<u16> {
        let i = f.reg.index as usize;
        if self.held.get(i) == Some(&f.reg.generation) {
            return Some(f.reg.index);
        }
        if !self.refused {
            // SAFETY: the entry is then this buffer's; a read through it is pushed only after this
            // check found the buffer's own generation there, and the buffer lives while such a
            // read is in flight (the read's op holds it). A buffer freed and another given the
            // entry is registered anew before a read uses it.
            match unsafe { ring.register_buffer(REGISTERED_TABLE, f.reg.index, f.base, f.len) } {
                Ok(()) => {
                    self.held[i] = f.reg.generation;
                    counters.registered.fetch_add(1, Ordering::Relaxed);
                    return Some(f.reg.index);
                }
                Err(e) => {
                    self.refused = true;
                    self.held[i] = 0;
                    let mut first = counters
                        .fixed_refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert_with(|| crate::file::register_reason(&e));
                }
            }
        }
        if self.seen.get(i).is_some_and(|&g| g != f.reg.generation) {
            self.seen[i] = f.reg.generation;
            counters.unregistered.fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

/// The tasks a lane's batch of completions wakes: each once, after the whole batch is recorded
/// (a task woken at the first completion would otherwise be polled, and woken again, for each of
/// the others).
///
/// Until a task's wake has returned, the lane holds its waker, and a waker holds its task: with
/// tokio, the task holds its runtime, whose I/O driver holds descriptors (two `eventpoll`, an
/// `eventfd`), and tokio's `wake` keeps its hold while it schedules the task, which may meanwhile
/// run to its end and have its runtime dropped. So a read leaves `in_flight` for `delivering` when
/// its completion is recorded ([`complete`]), and leaves `delivering` only once its task is woken:
/// whoever waits for a driver with neither (and then counts descriptors, or expects a runtime's
/// resources gone with it) does not find a task's runtime still open in a lane's hands.
#[derive(Default)]
struct Wakes {
    tasks: Vec<Waker>,
    /// Completions recorded since the last wake ([`complete`]'s, each counted in `delivering`).
    recorded: usize,
}

impl Wakes {
    /// A completion [`complete`] recorded; `w`: its stream's task, to wake with the batch.
    fn add(&mut self, w: Option<Waker>) {
        self.recorded += 1;
        if let Some(w) = w {
            if !self.tasks.iter().any(|x| x.will_wake(&w)) {
                self.tasks.push(w);
            }
        }
    }

    /// Wakes every task collected, and counts them; then their reads are delivered.
    fn wake(&mut self, counters: &Counters) {
        counters
            .wakeups
            .fetch_add(self.tasks.len(), Ordering::Relaxed);
        for w in self.tasks.drain(..) {
            w.wake();
        }
        let recorded = std::mem::take(&mut self.recorded);
        counters.delivering.fetch_sub(recorded, Ordering::AcqRel);
    }
}

impl Channel {
    /// Queues a request and wakes the driver thread if it may be asleep.
    fn send(&self, req: Request) {
        self.send_all(vec![req]);
    }

    fn send_all(&self, reqs: Vec<Request>) {
        let reads = reqs
            .iter()
            .filter(|r| matches!(r, Request::Read(_) | Request::ReadAt(_)))
            .count();
        self.counters.in_flight.fetch_add(reads, Ordering::Relaxed);
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(reqs);
        self.notify();
    }

    fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            crate::cancel::signal_event(self.wake.as_raw_fd());
        }
    }

    /// The driver's cancel handle, if it has one.
    fn cancel_handle(&self) -> Option<Cancel> {
        self.cancel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(Cancel::is_cancelled)
    }
}

/// A handle to a driver: threads with an io_uring each that perform the reads of the streams opened
/// from it, and the buffer budget those streams share. Cloning is cheap (it is an `Arc`); the threads
/// end when the last handle and the last stream are gone.
#[derive(Clone)]
pub struct Driver {
    pub(super) inner: Arc<DriverInner>,
    /// The options its verbs read with ([`Driver::with_options`]); `None`: [`default_options`].
    ///
    /// [`default_options`]: super::default_options
    pub(super) opts: Option<Arc<crate::ReadOptions>>,
}

pub(super) struct DriverInner {
    lanes: Vec<Arc<Channel>>,
    pub counters: Arc<Counters>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    notice: Option<Notice>,
    pub pool: Arc<Pool>,
    cancel: Arc<Mutex<Option<Cancel>>>,
    /// The lane the next whole-file read goes to (they go round).
    next_lane: AtomicUsize,
}

impl DriverInner {
    /// Queues whole-file reads on their lanes: one lock and at most one wake-up per lane.
    pub(super) fn start_whole(&self, ops: Vec<WholeOp>) {
        let n = self.lanes.len();
        let mut per_lane: Vec<Vec<Request>> = (0..n).map(|_| Vec::new()).collect();
        for op in ops {
            per_lane[op.lane % n].push(Request::Whole(op));
        }
        for (lane, reqs) in self.lanes.iter().zip(per_lane) {
            if !reqs.is_empty() {
                lane.send_all(reqs);
            }
        }
    }

    /// Cancels every operation of `batch` in flight, on every lane.
    pub(super) fn cancel_whole(&self, batch: &Arc<Batch>) {
        for l in &self.lanes {
            l.send(Request::CancelWhole(Arc::clone(batch)));
        }
    }

    /// The lane for the next whole-file read.
    pub(super) fn next_lane(&self) -> usize {
        self.next_lane.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues reads on their lanes: one lock and at most one wake-up per lane.
    pub(super) fn read(&self, ops: Vec<ReadOp>) {
        let n = self.lanes.len();
        let mut per_lane: Vec<Vec<Request>> = (0..n).map(|_| Vec::new()).collect();
        for op in ops {
            per_lane[op.lane % n].push(Request::Read(op));
        }
        for (lane, reqs) in self.lanes.iter().zip(per_lane) {
            if !reqs.is_empty() {
                lane.send_all(reqs);
            }
        }
    }

    /// Queues a `read_at` read on its lane.
    pub(super) fn read_at(&self, op: AtOp) {
        let lane = op.lane % self.lanes.len();
        self.lanes[lane].send(Request::ReadAt(op));
    }

    /// Cancels the `read_at` read of `shared` on `lane`, if it is in flight.
    pub(super) fn cancel_at(&self, lane: usize, shared: Arc<AtShared>) {
        self.lanes[lane % self.lanes.len()].send(Request::CancelAt(shared));
    }

    /// Cancels every read of `shared` in flight, on every lane.
    pub(super) fn cancel(&self, shared: &Arc<Shared>) {
        for l in &self.lanes {
            l.send(Request::Cancel(Arc::clone(shared)));
        }
    }

    /// Whether the driver's cancel handle was cancelled.
    pub(super) fn cancelled(&self) -> bool {
        self.cancel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(Cancel::is_cancelled)
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("uring", &self.inner.notice.is_none())
            .field("stats", &self.stats())
            .finish()
    }
}

/// What a driver has in hand, for tests and monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Reads queued or in flight in the kernel.
    pub in_flight: usize,
    /// Reads completed whose task a driver thread is still waking. That thread holds the task's
    /// waker until the wake returns, and with it the task (with tokio, also the task's runtime and
    /// the runtime's descriptors), even once the task has run to its end: with this, `in_flight`
    /// and `live_buffers` at 0, no driver thread holds anything of the tasks that read through it.
    pub delivering: usize,
    /// Streams whose buffers are still allocated: held by a stream, by a chunk handed out, or by a
    /// read whose completion has not arrived yet.
    pub live_buffers: usize,
    /// Reads cancelled so far (`IORING_OP_ASYNC_CANCEL` sent) because their stream was dropped or
    /// the driver was cancelled.
    pub cancelled: usize,
    /// Tasks woken by the driver's threads so far with completed reads: once per stream per batch
    /// of completions a thread reaps.
    pub wakeups: usize,
    /// Chunks read so far from the page cache on the thread that polled their stream (the cached
    /// fast path, [`ReadOptionsBuilder::cached_fast_path`](crate::options::ReadOptionsBuilder::cached_fast_path)),
    /// crossing no thread and waking no task.
    pub cached_chunks: usize,
    /// Reads so far into registered buffers (`READ_FIXED`).
    pub fixed_reads: usize,
    /// The buffer budget in bytes ([`Driver::with_budget`], [`DEFAULT_BUDGET`]).
    pub budget: usize,
    /// Bytes of buffers that exist now, held by streams or kept for reuse: never above `budget`.
    pub buffer_bytes: usize,
    /// The most `buffer_bytes` has been.
    pub peak_buffer_bytes: usize,
    /// Bytes of buffers streams hold (reading, ready, or lent out as chunks).
    pub held_bytes: usize,
    /// Streams waiting for the budget to free a buffer.
    pub waiting_streams: usize,
}

impl Driver {
    /// Starts a driver: one thread per CPU this process may use, each with its own io_uring (a
    /// stream's chunks are spread over them, so the copies out of the page cache run on every CPU),
    /// with a buffer budget of [`DEFAULT_BUDGET`]. Where the kernel refuses io_uring the threads
    /// read with `pread(2)` instead, and [`Driver::notice`] says why.
    pub fn new() -> Result<Driver> {
        Driver::with_threads(crate::ring::usable_cpus())
    }

    /// A driver with `threads` threads (at least one), each with its own ring, and a buffer budget
    /// of [`DEFAULT_BUDGET`].
    pub fn with_threads(threads: usize) -> Result<Driver> {
        Driver::with_budget(threads, DEFAULT_BUDGET)
    }

    /// A driver with `threads` threads (at least one) whose streams share `budget` bytes of buffers.
    /// A stream still has at most `depth` buffers; when the budget is spent, a stream that needs a
    /// buffer waits until another stream gives one back (a chunk dropped, a stream ended). A stream
    /// whose chunk size is larger than the whole budget cannot be opened.
    pub fn with_budget(threads: usize, budget: usize) -> Result<Driver> {
        let counters = Arc::new(Counters::default());
        let pool = Arc::new(Pool::new(budget));
        let cancel = Arc::new(Mutex::new(None));
        let mut inner = DriverInner {
            lanes: Vec::new(),
            counters,
            threads: Mutex::new(Vec::new()),
            notice: None,
            pool,
            cancel,
            next_lane: AtomicUsize::new(0),
        };
        for _ in 0..threads.max(1) {
            // On failure `inner` is dropped: the lanes already started are shut down and joined.
            let (chan, handle, n) = inner.lane()?;
            inner.lanes.push(chan);
            inner
                .threads
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .push(handle);
            inner.notice = inner.notice.take().or(n);
        }
        Ok(Driver {
            inner: Arc::new(inner),
            opts: None,
        })
    }

    /// Stops every stream of this driver once `cancel` is cancelled: each one's reads in flight
    /// are cancelled (`IORING_OP_ASYNC_CANCEL`), its task is woken, and its next poll returns
    /// [`Error::Interrupted`] (and it ends). Replaces a handle set before.
    pub fn set_cancel(&self, cancel: Cancel) {
        *self.inner.cancel.lock().unwrap_or_else(|e| e.into_inner()) = Some(cancel);
        for chan in &self.inner.lanes {
            // The lane arms a poll on the new handle's eventfd at its next turn.
            chan.notified.store(false, Ordering::Release);
            chan.notify();
        }
    }

    /// The process-wide driver the `open` functions of this module use, started on first use (with
    /// [`DEFAULT_BUDGET`]).
    pub fn global() -> Result<&'static Driver> {
        static GLOBAL: std::sync::OnceLock<Driver> = std::sync::OnceLock::new();
        if let Some(d) = GLOBAL.get() {
            return Ok(d);
        }
        let d = Driver::new()?;
        Ok(GLOBAL.get_or_init(|| d))
    }

    /// How many threads (each with its own ring) read for this driver.
    pub fn threads(&self) -> usize {
        self.inner.lanes.len()
    }

    /// The buffer budget in bytes that this driver's streams share.
    pub fn budget(&self) -> usize {
        self.inner.pool.budget()
    }

    /// Why this driver reads without io_uring, if it does.
    pub fn notice(&self) -> Option<&Notice> {
        self.inner.notice.as_ref()
    }

    /// Why some of the buffers this driver's threads read into are not registered with the kernel
    /// (so are read with plain `READ`, not `READ_FIXED`), if the kernel refused one so far: most
    /// often `RLIMIT_MEMLOCK` (`ulimit -l`), which the driver's budget passes for ordinary users.
    /// Each thread registers the pool's buffers in its ring as it first reads into them, up to
    /// the first refusal. `registered` counts the registrations over every thread's ring.
    pub fn registration_notice(&self) -> Option<Notice> {
        let c = &self.inner.counters;
        let reason = c
            .fixed_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let registered = c.registered.load(Ordering::Acquire);
        Some(Notice::RegisteredFewer {
            registered,
            wanted: registered + c.unregistered.load(Ordering::Acquire),
            reason,
        })
    }

    /// What the driver has in hand right now.
    pub fn stats(&self) -> DriverStats {
        let p = self.inner.pool.stats();
        DriverStats {
            in_flight: self.inner.counters.in_flight.load(Ordering::Acquire),
            delivering: self.inner.counters.delivering.load(Ordering::Acquire),
            live_buffers: self.inner.counters.live_buffers.load(Ordering::Acquire),
            cancelled: self.inner.counters.cancelled.load(Ordering::Acquire),
            wakeups: self.inner.counters.wakeups.load(Ordering::Acquire),
            cached_chunks: self.inner.counters.cached_chunks.load(Ordering::Acquire),
            fixed_reads: self.inner.counters.fixed_reads.load(Ordering::Acquire),
            budget: p.budget,
            buffer_bytes: p.allocated,
            peak_buffer_bytes: p.peak,
            held_bytes: p.lent,
            waiting_streams: p.waiting,
        }
    }
}

impl DriverInner {
    /// Starts one lane: its eventfd, and its thread, which makes its ring (or falls back to pread).
    #[allow(clippy::type_complexity)]
    fn lane(&self) -> Result<(Arc<Channel>, JoinHandle<()>, Option<Notice>)> {
        #[cfg(test)]
        if tests::FAIL_LANE.with(|f| f.get()) == Some(self.lanes.len()) {
            return Err(Error::Ring {
                path: "driver thread".into(),
                op: "spawn",
                source: io::Error::from_raw_os_error(libc::EAGAIN),
            });
        }
        // SAFETY: eventfd has no memory arguments; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(Error::Ring {
                path: "eventfd".into(),
                op: "setup",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: a descriptor just returned to us, owned by nobody else.
        let wake = unsafe { OwnedFd::from_raw_fd(efd) };
        let chan = Arc::new(Channel {
            queue: Mutex::new(Vec::new()),
            notified: AtomicBool::new(false),
            wake,
            shutdown: AtomicBool::new(false),
            counters: Arc::clone(&self.counters),
            cancel: Arc::clone(&self.cancel),
            pool: Arc::clone(&self.pool),
        });
        let c = Arc::clone(&chan);
        #[cfg(test)]
        tests::STARTED.with(|s| s.borrow_mut().push(Arc::downgrade(&chan)));
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // The ring is made on its thread: with IORING_SETUP_SINGLE_ISSUER only the thread that made
        // it may submit.
        let thread = std::thread::Builder::new()
            .name("ringread-driver".into())
            .spawn(move || match DriverRing::new() {
                Ok(ring) => {
                    let _ = tx.send(None);
                    run_uring(ring, &c)
                }
                Err(e) => {
                    let _ = tx.send(Some(Notice::UringUnavailable {
                        reason: explain_setup_error(&e),
                    }));
                    run_pread(&c)
                }
            })
            .map_err(|source| Error::Ring {
                path: "driver thread".into(),
                op: "spawn",
                source,
            })?;
        let notice = rx.recv().unwrap_or(None);
        Ok((chan, thread, notice))
    }
}

impl Drop for DriverInner {
    fn drop(&mut self) {
        // Every stream holds this `DriverInner`, so all of them are gone: their reads are cancelled or
        // done. The thread reaps what is left and ends; waiting for it keeps thread and ring from
        // outliving the last handle. (Also the clean-up of a driver whose later lane failed to start.)
        for chan in &self.lanes {
            chan.shutdown.store(true, Ordering::Release);
            chan.notified.store(false, Ordering::Release);
            chan.notify();
        }
        // The last reference may be dropped on a lane's own thread (a completion or a cancel
        // releasing the last stream, with every handle gone): that lane is not joined (a thread
        // cannot join itself; std panics on `EDEADLK`). It sees `shutdown` when this returns, reaps
        // what is left and ends by itself.
        let me = std::thread::current().id();
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// The io_uring driver loop.
fn run_uring(mut ring: DriverRing, chan: &Channel) {
    let mut ops: Slab<LaneOp> = Slab::new();
    // Whole-file reads to go on with (kept across turns, so that a turn allocates nothing).
    let mut next: Vec<WholeOp> = Vec::new();
    let mut cancelling_wake = false;
    // The cancel handle whose eventfd the ring polls (kept, so its descriptor stays open).
    let mut polled: Option<Cancel> = None;
    // Kept across turns, so that a turn allocates nothing: the queue's vector and this one swap.
    let mut reqs: Vec<Request> = Vec::new();
    let mut done: Vec<DriverCqe> = Vec::new();
    let mut wakes = Wakes::default();
    let mut table = Table::new();
    loop {
        let shutdown = chan.shutdown.load(Ordering::Acquire);
        if !shutdown {
            ring.arm_wake(chan.wake.as_raw_fd());
        }
        // Clear before taking the queue: a request queued after this point writes the eventfd again.
        chan.notified.store(false, Ordering::Release);
        std::mem::swap(
            &mut *chan.queue.lock().unwrap_or_else(|e| e.into_inner()),
            &mut reqs,
        );
        let cancel = chan.cancel_handle();
        let cancelled = cancel.as_ref().is_some_and(Cancel::is_cancelled);
        if let Some(c) = &cancel {
            let same = polled
                .as_ref()
                .is_some_and(|p| p.event_fd() == c.event_fd());
            if !same && ring.cancel_poll_armed() {
                // A new handle replaced the one polled: stop that poll (its completion is not taken
                // for a cancellation: the flag is looked at).
                ring.stop_cancel_poll();
            } else if !cancelled && !shutdown && !ring.cancel_poll_armed() {
                ring.arm_cancel_poll(c.event_fd());
                polled = Some(c.clone());
            }
        }
        for req in reqs.drain(..) {
            match req {
                Request::Read(op) if cancelled => {
                    chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                    wakes.add(complete(chan, op, -libc::ECANCELED))
                }
                Request::Read(op) if op.blocking => {
                    let res = read_now(&op, chan);
                    wakes.add(complete(chan, op, res));
                }
                Request::Read(op) => {
                    let (fd, buf, len, offset, flags) =
                        (op.fd, op.buf, op.len, op.offset, op.rw_flags);
                    let entry = op
                        .fixed
                        .and_then(|f| table.entry(&mut ring, &f, &chan.counters));
                    let idx = ops.insert(LaneOp::Read(op));
                    match entry {
                        Some(index) => {
                            chan.counters.fixed_reads.fetch_add(1, Ordering::Relaxed);
                            // SAFETY: as below; and `buf .. buf + len` lies in the slot's buffer,
                            // which `table.entry` found (or just made) registered as `index`.
                            unsafe {
                                ring.push_read_fixed(fd, buf, len, offset, flags, index, idx as u64)
                            }
                        }
                        // SAFETY: the buffer and descriptor are kept alive, and the buffer is this
                        // read's alone, by the op stored in `ops` (see `ReadOp`) until its
                        // completion is reaped below; if the ring fails, the ops are leaked with
                        // their buffers.
                        None => unsafe { ring.push_read(fd, buf, len, offset, flags, idx as u64) },
                    }
                }
                Request::Whole(op) if cancelled => op.interrupt(&mut next),
                Request::Whole(op) => next.push(op),
                Request::ReadAt(op) if cancelled => {
                    chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                    complete_at(chan, op, -libc::ECANCELED)
                }
                Request::ReadAt(op) => {
                    let (fd, buf, len, offset) = (op.fd, op.buf, op.len, op.offset);
                    let idx = ops.insert(LaneOp::ReadAt(op));
                    // SAFETY: the op stored in `ops` keeps the buffer (its `AtShared`) and the file
                    // alive, and the buffer is this read's alone, until its completion is reaped
                    // below; if the ring fails, the op is abandoned and its buffer leaked.
                    unsafe { ring.push_read(fd, buf, len, offset, 0, idx as u64) };
                }
                Request::CancelAt(shared) => {
                    for (idx, op) in ops.iter() {
                        if matches!(op, LaneOp::ReadAt(r) if Arc::ptr_eq(&r.shared, &shared)) {
                            chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                            ring.cancel(idx as u64);
                        }
                    }
                }
                Request::Cancel(shared) => {
                    for (idx, op) in ops.iter() {
                        if matches!(op, LaneOp::Read(r) if Arc::ptr_eq(&r.shared, &shared)) {
                            chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                            ring.cancel(idx as u64);
                        }
                    }
                }
                Request::CancelWhole(batch) => {
                    for (idx, op) in ops.iter() {
                        if matches!(op, LaneOp::Whole(w) if Arc::ptr_eq(&w.batch, &batch) && w.cancellable())
                        {
                            chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                            ring.cancel(idx as u64);
                        }
                    }
                }
            }
        }
        wakes.wake(&chan.counters);
        push_whole(&mut ring, &mut ops, &mut next);
        if shutdown && ops.is_empty() {
            if !ring.wake_armed() && !ring.cancel_poll_armed() {
                return;
            }
            if !cancelling_wake {
                if ring.wake_armed() {
                    ring.cancel_wake();
                }
                if ring.cancel_poll_armed() {
                    ring.stop_cancel_poll();
                }
                cancelling_wake = true;
            }
        }
        if ring.submit_and_wait().is_err() {
            // The ring itself failed: no read in it can be trusted to complete. Fail them (their
            // buffers are never freed: the kernel may still write into them), leak the ring (and
            // the buffer of its eventfd read) for the same reason, and serve what comes next with
            // pread(2).
            for op in ops.drain() {
                match op {
                    LaneOp::Read(op) => {
                        std::mem::forget(Arc::clone(&op.shared));
                        op.shared.poison(op.slot);
                        wakes.add(complete(chan, op, -libc::EIO));
                    }
                    LaneOp::Whole(op) => op.abandon(&mut next),
                    LaneOp::ReadAt(op) => {
                        op.shared.poison();
                        complete_at(chan, op, -libc::EIO);
                    }
                }
            }
            wakes.wake(&chan.counters);
            std::mem::forget(ring);
            // Whole-file reads that went on (given buffers meanwhile) are served by pread.
            for op in next.drain(..) {
                run_whole_now(op);
            }
            run_pread(chan);
            return;
        }
        ring.completions(&mut done);
        for cqe in done.drain(..) {
            match cqe {
                DriverCqe::Wake => {}
                DriverCqe::Cancelled => {
                    if chan.cancelled() {
                        // Every read in flight is cancelled (a pipe's might never complete), and
                        // streams waiting for a buffer are woken: their polls say `Interrupted`.
                        for (idx, op) in ops.iter() {
                            if let LaneOp::Whole(w) = op {
                                if !w.cancellable() {
                                    continue;
                                }
                            }
                            chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                            ring.cancel(idx as u64);
                        }
                        chan.pool.wake_all();
                    }
                }
                DriverCqe::Read { user_data, res } => match ops.try_remove(user_data as usize) {
                    Some(LaneOp::Read(op)) => wakes.add(complete(chan, op, res)),
                    Some(LaneOp::Whole(op)) => op.complete(res, &mut next),
                    Some(LaneOp::ReadAt(op)) => complete_at(chan, op, res),
                    None => {}
                },
            }
        }
        // Every stream that had completions in this batch is woken once, now that all are recorded.
        wakes.wake(&chan.counters);
        // What the completions started goes into the ring before the next wait.
        push_whole(&mut ring, &mut ops, &mut next);
    }
}

/// Pushes the next operation of each whole-file read in `next` (those finished are dropped; FUSE
/// files' reads are done here with the system call).
fn push_whole(ring: &mut DriverRing, ops: &mut Slab<LaneOp>, next: &mut Vec<WholeOp>) {
    while let Some(mut op) = next.pop() {
        let idx = ops.vacant_key() as u64;
        match op.io() {
            None => continue, // finished: dropped
            Some(io @ Io::Read { blocking: true, .. }) => {
                let res = perform(io);
                op.complete(res, next);
                continue;
            }
            // SAFETY: the path and the record are the op's heap allocations, which do not move
            // with it, and the op goes into `ops` below, where it stays until this operation's
            // completion is reaped (or for ever, if the ring fails: see `WholeOp::abandon`).
            Some(Io::Statx { path, out }) => unsafe { ring.push_statx(path, out, idx) },
            // SAFETY: as for the statx: the path stays in `ops` with the op.
            Some(Io::Open { path }) => unsafe { ring.push_openat(path, idx) },
            Some(Io::Read {
                fd,
                buf,
                len,
                offset,
                rw_flags,
                ..
            }) => {
                // SAFETY: `buf .. buf + len` lies in the op's buffer (its `Lease`), which is this
                // read's alone and stays allocated with the op in `ops` until the read's completion
                // is reaped; the descriptor is the op's, closed only after that.
                unsafe { ring.push_read(fd, buf, len, offset, rw_flags, idx) }
            }
            Some(Io::Close { fd }) => ring.push_close(fd, idx),
        }
        let at = ops.insert(LaneOp::Whole(op));
        debug_assert_eq!(at as u64, idx);
    }
}

/// Takes a whole-file read (and those given buffers meanwhile) to its end with system calls on this
/// thread.
fn run_whole_now(op: WholeOp) {
    let mut next = vec![op];
    while let Some(mut op) = next.pop() {
        if let Some(io) = op.io() {
            let res = perform(io);
            op.complete(res, &mut next);
        }
    }
}

/// Records a completion in its stream; returns the stream's task to wake (once the batch is
/// recorded), for a [`Wakes`]: the read is `delivering` until that wake has returned.
#[must_use]
fn complete(chan: &Channel, op: ReadOp, res: i32) -> Option<Waker> {
    // Counted as delivering before it leaves in_flight: never in neither count.
    chan.counters.delivering.fetch_add(1, Ordering::AcqRel);
    chan.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
    if op.drop_behind && res > 0 {
        // SAFETY: advice on a descriptor the op holds open (`fds`).
        unsafe {
            libc::posix_fadvise(
                op.fd,
                op.offset as libc::off_t,
                res as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
    }
    let ReadOp {
        shared, fds, slot, ..
    } = op;
    // The hold on the file ends before the stream can see the completion, so that the stream's
    // own hold is the last when it finishes (what `dontcache` drops is then dropped in its time).
    drop(fds);
    shared.complete(slot, res)
    // `shared` drops here: the op's hold on the buffers ends with the read.
}

/// Records a `read_at` completion and wakes its task; the read is `delivering` until the wake has
/// returned (see [`Wakes`]).
fn complete_at(chan: &Channel, op: AtOp, res: i32) {
    chan.counters.delivering.fetch_add(1, Ordering::AcqRel);
    chan.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
    op.complete(res);
    chan.counters.delivering.fetch_sub(1, Ordering::AcqRel);
}

/// The driver loop where io_uring is refused: the same requests, served with `pread(2)`/`read(2)`
/// on this thread. A stream's reads are served one after another, so a slow pipe delays the others:
/// the fallback keeps working, not fast.
fn run_pread(chan: &Channel) {
    let mut buf = 0u64;
    let mut reqs: Vec<Request> = Vec::new();
    loop {
        chan.notified.store(false, Ordering::Release);
        std::mem::swap(
            &mut *chan.queue.lock().unwrap_or_else(|e| e.into_inner()),
            &mut reqs,
        );
        let idle = reqs.is_empty();
        for req in reqs.drain(..) {
            match req {
                Request::Read(op) => {
                    let res = if chan.cancelled() {
                        -libc::ECANCELED
                    } else {
                        read_now(&op, chan)
                    };
                    let mut wakes = Wakes::default();
                    wakes.add(complete(chan, op, res));
                    wakes.wake(&chan.counters);
                }
                Request::Whole(op) if chan.cancelled() => {
                    let mut next = Vec::new();
                    op.interrupt(&mut next);
                    next.into_iter().for_each(run_whole_now);
                }
                Request::Whole(op) => run_whole_now(op),
                Request::ReadAt(op) => {
                    let res = if chan.cancelled() {
                        -libc::ECANCELED
                    } else {
                        op.pread()
                    };
                    complete_at(chan, op, res);
                }
                Request::Cancel(_) | Request::CancelWhole(_) | Request::CancelAt(_) => {}
            }
        }
        if chan.shutdown.load(Ordering::Acquire) {
            return;
        }
        if idle {
            // SAFETY: reads 8 bytes into a live u64 from our eventfd; blocks until a stream wakes us.
            unsafe { libc::read(chan.wake.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
        }
    }
}

/// Performs `op` with `pread(2)` (or `read(2)` at the current position) on this thread.
fn read_now(op: &ReadOp, chan: &Channel) -> i32 {
    if op.offset == CURRENT_POSITION && !wait_readable(op, chan) {
        return -libc::ECANCELED;
    }
    // SAFETY: the op keeps the buffer alive and it is this read's alone (see ReadOp).
    unsafe { read_with(op.fd, op.buf, op.len, op.offset, op.rw_flags) }
}

/// One read with a system call: `read(2)` at [`CURRENT_POSITION`], otherwise `pread(2)`, or
/// `preadv2(2)` with `rw_flags` (`RWF_NOWAIT`, `RWF_DONTCACHE`). Returns the bytes read or
/// `-errno`, as a completion does.
///
/// # Safety
/// `buf .. buf + len` must be allocated and written by nobody else during the call.
pub(super) unsafe fn read_with(
    fd: RawFd,
    buf: *mut u8,
    len: u32,
    offset: u64,
    rw_flags: i32,
) -> i32 {
    // SAFETY: the caller's promise covers the buffer; the descriptor is only read from.
    let n = unsafe {
        if offset == CURRENT_POSITION {
            libc::read(fd, buf.cast(), len as usize)
        } else if rw_flags != 0 {
            let iov = libc::iovec {
                iov_base: buf.cast(),
                iov_len: len as usize,
            };
            libc::preadv2(fd, &iov, 1, offset as i64, rw_flags)
        } else {
            libc::pread(fd, buf.cast(), len as usize, offset as i64)
        }
    };
    crate::sys::completion(n)
}

/// Waits (in 100 ms steps) until a stream's descriptor has something to read, or its stream is
/// dropped, or the driver shuts down or is cancelled: a silent pipe must not hold the fallback
/// thread forever.
fn wait_readable(op: &ReadOp, chan: &Channel) -> bool {
    loop {
        let mut p = libc::pollfd {
            fd: op.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 100) };
        if op.shared.is_closed() || chan.shutdown.load(Ordering::Acquire) || chan.cancelled() {
            return false;
        }
        if n != 0 {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::sync::Weak;

    thread_local! {
        /// Makes the lane with this index fail to start (on this thread's next driver).
        pub(super) static FAIL_LANE: Cell<Option<usize>> = const { Cell::new(None) };
        /// The lanes started on this thread.
        pub(super) static STARTED: RefCell<Vec<Weak<Channel>>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn a_driver_whose_later_lane_fails_stops_the_lanes_it_started() {
        FAIL_LANE.with(|f| f.set(Some(2)));
        let e = Driver::with_threads(3).unwrap_err();
        FAIL_LANE.with(|f| f.set(None));
        assert!(matches!(e, Error::Ring { op: "spawn", .. }), "{e}");
        let started = STARTED.with(|s| std::mem::take(&mut *s.borrow_mut()));
        assert_eq!(started.len(), 2);
        // Each lane's thread holds its channel until it ends: none is left running.
        assert!(
            started.iter().all(|w| w.upgrade().is_none()),
            "a lane's thread outlived the failed driver"
        );
        // The next driver starts normally.
        assert_eq!(Driver::with_threads(2).unwrap().threads(), 2);
    }
}
