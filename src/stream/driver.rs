//! The driver: one thread per CPU (a lane, `lane.rs`), each with its own ring, performing the
//! operations of every stream, file and range read made from it; and the buffer pool they share.
//!
//! This is the handle and what it holds: the lanes' channels and threads, the counters, the pool,
//! the cancel handle. What each front end asks of it (`file.rs`, `many.rs`, `ranges.rs`) is made
//! there, in the front end's own `impl Driver`, as [`ReadOp`]s, [`Work`] and cancellations, which
//! this queues on the lanes without knowing whose they are.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::lane::{Channel, Counters, ReadOp, Request, Work};
use super::pool::Pool;
use crate::cancel::Cancel;
use crate::error::Result;
use crate::reader::Notice;

/// The buffer budget of a driver made without one ([`Driver::new`], [`Driver::with_threads`],
/// [`Driver::global`]): 64 MiB, shared by all its streams (16 streams reading ahead at the default
/// 16 buffers of 256 KiB, or 4,096 buffers of 16 KiB).
pub const DEFAULT_BUDGET: usize = 64 << 20;

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

/// What a driver's handles, streams, files and ranges share: its lanes, their threads, the
/// counters, the pool and the cancel handle. The lanes end when it drops.
pub(super) struct DriverInner {
    lanes: Vec<Arc<Channel>>,
    pub counters: Arc<Counters>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    notice: Option<Notice>,
    pub pool: Arc<Pool>,
    cancel: Arc<Mutex<Option<Cancel>>>,
    /// The lane the next whole-file read or `read_at` goes to (they go round).
    next_lane: AtomicUsize,
}

impl DriverInner {
    /// Its threads (lanes).
    pub(super) fn threads(&self) -> usize {
        self.lanes.len()
    }

    /// Queues reads on their lanes (`lane` modulo their number): one lock and at most one wake-up
    /// per lane.
    pub(super) fn read(&self, ops: Vec<ReadOp>) {
        self.send_each(ops, |op| (op.lane, Request::Read(op)));
    }

    /// Queues one read on its lane.
    pub(super) fn read_one(&self, op: ReadOp) {
        let lane = op.lane % self.lanes.len();
        self.lanes[lane].send(Request::Read(op));
    }

    /// Queues work (whole-file reads) on its lanes: one lock and at most one wake-up per lane.
    pub(super) fn start(&self, ops: Vec<Work>) {
        self.send_each(ops, |op| (op.lane(), Request::Work(op)));
    }

    /// Queues each item's request on its lane (`lane` modulo their number).
    fn send_each<T>(&self, items: Vec<T>, request: impl Fn(T) -> (usize, Request)) {
        let n = self.lanes.len();
        let mut per_lane: Vec<Vec<Request>> = (0..n).map(|_| Vec::new()).collect();
        for item in items {
            let (lane, req) = request(item);
            per_lane[lane % n].push(req);
        }
        for (lane, reqs) in self.lanes.iter().zip(per_lane) {
            if !reqs.is_empty() {
                lane.send_all(reqs);
            }
        }
    }

    /// Cancels every operation of `owner` in flight (a [`ReadOp`]'s `owner`, a work's batch), on
    /// every lane.
    pub(super) fn cancel<T: Send + Sync + 'static>(&self, owner: &Arc<T>) {
        for l in &self.lanes {
            l.send(Request::Cancel(Arc::clone(owner) as Arc<dyn Send + Sync>));
        }
    }

    /// Cancels the operations of `owner` in flight on `lane` (modulo the number of lanes).
    pub(super) fn cancel_on<T: Send + Sync + 'static>(&self, lane: usize, owner: Arc<T>) {
        self.lanes[lane % self.lanes.len()].send(Request::Cancel(owner));
    }

    /// The lane for the next whole-file read (or `read_at`): they go round.
    pub(super) fn next_lane(&self) -> usize {
        self.next_lane.fetch_add(1, Ordering::Relaxed)
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
    /// [`Error::Interrupted`](crate::Error::Interrupted) (and it ends). Replaces a handle set
    /// before.
    pub fn set_cancel(&self, cancel: Cancel) {
        *self.inner.cancel.lock().unwrap_or_else(|e| e.into_inner()) = Some(cancel);
        for chan in &self.inner.lanes {
            // The lane arms a poll on the new handle's eventfd at its next turn.
            chan.poke();
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
        self.inner.threads()
    }

    /// The buffer budget in bytes that this driver's streams share.
    pub fn budget(&self) -> usize {
        self.inner.pool.budget()
    }

    /// Whether bytes kept for long are to be copied out of the driver's buffers
    /// ([`Pool::pressed`](super::pool::Pool::pressed)).
    #[cfg(feature = "object-store")]
    pub(crate) fn pressed(&self) -> bool {
        self.inner.pool.pressed()
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
            return Err(crate::error::Error::Ring {
                path: "driver thread".into(),
                op: "spawn",
                source: std::io::Error::from_raw_os_error(libc::EAGAIN),
            });
        }
        let chan = Channel::new(
            Arc::clone(&self.counters),
            Arc::clone(&self.cancel),
            Arc::clone(&self.pool),
        )?;
        #[cfg(test)]
        tests::STARTED.with(|s| s.borrow_mut().push(Arc::downgrade(&chan)));
        let (thread, notice) = super::lane::spawn(Arc::clone(&chan))?;
        Ok((chan, thread, notice))
    }
}

impl Drop for DriverInner {
    fn drop(&mut self) {
        // Every stream holds this `DriverInner`, so all of them are gone: their reads are cancelled or
        // done. The thread reaps what is left and ends; waiting for it keeps thread and ring from
        // outliving the last handle. (Also the clean-up of a driver whose later lane failed to start.)
        for chan in &self.lanes {
            chan.shut_down();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
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
