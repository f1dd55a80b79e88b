//! A driver's lane: one thread with its own ring, performing the operations the front ends
//! (`file.rs`, `ranges.rs`, `whole.rs`) queue on its [`Channel`]; and what those front ends hand
//! it. Nothing here knows a front end: a lane runs
//!
//! - [`ReadOp`]s: one read each, into a buffer its [`ReadOwner`] (a stream's slots, a `read_at`'s
//!   state) holds for it, the completion recorded in that owner. Reads are the hot path and travel
//!   by value, unboxed;
//! - [`Work`]: an operation that goes on from completion to completion on the lane (a whole-file
//!   read: `statx`, `openat`, reads, `close`), through the [`LaneWork`] trait;
//! - cancellations, of every operation of one owner ([`Request::Cancel`]).
//!
//! The lane pushes them to its ring ([`DriverRing`], in `crate::ring`: the only code that touches
//! io_uring), waits for completions, hands each to its operation and wakes the tasks they name. A
//! read in flight keeps its buffer and its file open (its op holds `Arc`s to them), and a
//! [`LaneWork`] stays in the lane's slab while an operation of it is in the kernel, so nothing the
//! kernel may still write into is freed before its completion has arrived.
//!
//! Where io_uring is refused, the same thread serves the same requests with system calls.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::thread::JoinHandle;

use slab::Slab;

use super::pool::{Pool, Reg, REGISTERED_TABLE};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::reader::Notice;
use crate::ring::{DriverCqe, DriverRing};
use crate::sys::CURRENT_POSITION;

/// Where a read's completion goes: the shared state of what asked for the read (a stream's slots,
/// a `read_at`'s result), which holds the read's buffer while the read is in flight.
pub(super) trait ReadOwner: Send + Sync {
    /// The read into `slot` completed with `res` (bytes, or `-errno`). Returns the task to wake:
    /// the lane wakes each task once, after the whole batch of completions is recorded.
    #[must_use]
    fn complete(&self, slot: usize, res: i32) -> Option<Waker>;

    /// The read into `slot` is abandoned with its ring (the ring failed): the kernel may still
    /// write the buffer, which must never be given back. Its completion follows, with `EIO`.
    fn abandon(self: Arc<Self>, slot: usize);

    /// Whether nobody will collect what is read (a stream dropped): a read waiting for a silent
    /// pipe on the fallback lane gives up.
    fn is_closed(&self) -> bool;
}

/// One read a front end asks for.
///
/// Who makes one promises what the lane relies on: `buf .. buf + len` lies in a buffer that `owner`
/// holds for `slot` (and `fixed.base .. + fixed.len` is that same buffer), alive and written by
/// nobody else until the read's completion is recorded in `owner`; `fd` stays open while `keep`
/// lives.
pub(super) struct ReadOp {
    /// Records the completion (and holds the buffer).
    pub owner: Arc<dyn ReadOwner>,
    /// Not read: held so that the file stays open until the read completes.
    #[allow(dead_code)]
    pub keep: Arc<dyn Send + Sync>,
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

// SAFETY: `buf` (and `fixed.base`, the same buffer's start) points into a buffer that `owner` holds
// for the read's slot, which the op keeps alive through its `Arc`; the buffer belongs to this read
// alone until its completion is recorded (the promise of whoever made the op: a stream's state
// machine never lends, reuses or gives back a slot's buffer with a read in flight, a `read_at`
// never looks at its buffer before its result is in). Moving the op to the driver thread moves that
// exclusive use with it.
unsafe impl Send for ReadOp {}

impl ReadOp {
    /// Its owner's address: what a [`Request::Cancel`] names.
    fn owner_addr(&self) -> *const () {
        Arc::as_ptr(&self.owner).cast()
    }
}

/// What [`LaneWork::push`] did.
pub(super) enum Push {
    /// Its next operation is in the ring, with the `user_data` given.
    Pushed,
    /// Its next operation was performed here, with the system call (FUSE files): the result, as a
    /// completion gives it, for [`LaneWork::complete`].
    Done(i32),
    /// Nothing is left to do: the work is dropped.
    Finished,
}

/// An operation that goes on, on a lane, from completion to completion (a whole-file read), each
/// step pushed by the lane that reaped the one before. It owns what the kernel is pointed at, in
/// heap allocations that do not move with it (a [`Work`] is boxed).
pub(super) trait LaneWork: Send {
    /// Which of the driver's threads it goes to (modulo their number).
    fn lane(&self) -> usize;

    /// The address of what it belongs to (its batch): a [`Request::Cancel`] of that cancels it.
    fn owner(&self) -> *const ();

    /// Whether an `IORING_OP_ASYNC_CANCEL` may stop what it has in the kernel now (a close is left
    /// to finish: a cancelled close would leave the descriptor open).
    fn cancellable(&self) -> bool;

    /// Pushes its next operation on `ring` with `user_data` (or performs it here, or says it is
    /// finished).
    ///
    /// # Safety
    /// If it returns [`Push::Pushed`], the caller keeps it (boxed: its contents do not move) until
    /// it hands the operation's completion to [`LaneWork::complete`], or, the ring having failed,
    /// hands it to [`LaneWork::abandon`].
    unsafe fn push(&mut self, ring: &mut DriverRing, user_data: u64) -> Push;

    /// Performs its next operation with the system call on this thread; the result as a completion
    /// gives it, `None` when it is finished (drop it).
    fn perform(&mut self) -> Option<i32>;

    /// Its operation completed with `res` (`-errno` on failure). What goes on (this work, and work
    /// it made ready meanwhile) goes to `next`.
    fn complete(self: Box<Self>, res: i32, next: &mut Vec<Work>);

    /// The driver was cancelled before it reached the kernel (what goes on goes to `next`).
    fn interrupt(self: Box<Self>, next: &mut Vec<Work>);

    /// The ring failed with its operation in it: the kernel may still write what it was pointed
    /// at, so that is leaked (what goes on goes to `next`, for the system calls).
    fn abandon(self: Box<Self>, next: &mut Vec<Work>);
}

/// A [`LaneWork`], as lanes keep it.
pub(super) type Work = Box<dyn LaneWork>;

/// What a lane is asked to do.
pub(super) enum Request {
    Read(ReadOp),
    /// Work to start (or to go on with, once its task gave it what it waited for).
    Work(Work),
    /// Cancel every operation in flight of this owner (a [`ReadOp`]'s `owner`, a
    /// [`LaneWork::owner`]): its stream, batch or `read_at` is gone.
    Cancel(Arc<dyn Send + Sync>),
}

/// What a lane has in its ring, by `user_data`.
enum LaneOp {
    Read(ReadOp),
    Work(Work),
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

/// What front ends and a lane's thread share.
pub(super) struct Channel {
    queue: Mutex<Vec<Request>>,
    /// Set when the driver has been woken and has not yet looked at the queue: saves writes.
    notified: AtomicBool,
    wake: OwnedFd,
    shutdown: AtomicBool,
    counters: Arc<Counters>,
    /// The driver's cancel handle, if it has one.
    cancel: Arc<Mutex<Option<Cancel>>>,
    pool: Arc<Pool>,
}

impl Channel {
    /// A lane's channel, with its `eventfd`; its thread is started by [`spawn`].
    pub(super) fn new(
        counters: Arc<Counters>,
        cancel: Arc<Mutex<Option<Cancel>>>,
        pool: Arc<Pool>,
    ) -> Result<Arc<Channel>> {
        // SAFETY: eventfd has no memory arguments; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(Error::Ring {
                path: "eventfd".into(),
                op: "setup",
                source: io::Error::last_os_error(),
            });
        }
        Ok(Arc::new(Channel {
            queue: Mutex::new(Vec::new()),
            notified: AtomicBool::new(false),
            // SAFETY: a descriptor just returned to us, owned by nobody else.
            wake: unsafe { OwnedFd::from_raw_fd(efd) },
            shutdown: AtomicBool::new(false),
            counters,
            cancel,
            pool,
        }))
    }

    /// Queues a request and wakes the driver thread if it may be asleep.
    pub(super) fn send(&self, req: Request) {
        self.send_all(vec![req]);
    }

    /// Queues requests (reads are counted `in_flight` from now on) with one lock, and wakes the
    /// driver thread if it may be asleep.
    pub(super) fn send_all(&self, reqs: Vec<Request>) {
        let reads = reqs
            .iter()
            .filter(|r| matches!(r, Request::Read(_)))
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

    /// Wakes the thread even if a wake-up is pending (it looks at the cancel handle again).
    pub(super) fn poke(&self) {
        self.notified.store(false, Ordering::Release);
        self.notify();
    }

    /// Tells the thread to end once what is in its ring is reaped.
    pub(super) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.poke();
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

    /// Takes what is queued (into `reqs`, empty, whose allocation the queue keeps).
    fn take(&self, reqs: &mut Vec<Request>) {
        // Cleared before the queue is taken: a request queued after this point writes the eventfd
        // again.
        self.notified.store(false, Ordering::Release);
        std::mem::swap(
            &mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()),
            reqs,
        );
    }
}

/// Starts the thread of `chan`'s lane, which makes its ring (or falls back to system calls).
/// Returns it and, if the ring was refused, why.
pub(super) fn spawn(chan: Arc<Channel>) -> Result<(JoinHandle<()>, Option<Notice>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    // The ring is made on its thread: with IORING_SETUP_SINGLE_ISSUER only the thread that made
    // it may submit.
    let thread = std::thread::Builder::new()
        .name("ringread-driver".into())
        .spawn(move || match DriverRing::new() {
            Ok(ring) => {
                let _ = tx.send(None);
                run_uring(ring, &chan)
            }
            Err(e) => {
                let _ = tx.send(Some(Notice::UringUnavailable {
                    reason: crate::ring::explain_setup_error(&e),
                }));
                run_pread(&chan)
            }
        })
        .map_err(|source| Error::Ring {
            path: "driver thread".into(),
            op: "spawn",
            source,
        })?;
    let notice = rx.recv().unwrap_or(None);
    Ok((thread, notice))
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

/// A lane's thread with its ring: what it has in flight and what it has to push.
struct Lane<'a> {
    chan: &'a Channel,
    ring: DriverRing,
    ops: Slab<LaneOp>,
    /// Work to go on with (kept across turns, so that a turn allocates nothing).
    next: Vec<Work>,
    wakes: Wakes,
    table: Table,
    /// The cancel handle whose eventfd the ring polls (kept, so its descriptor stays open).
    polled: Option<Cancel>,
}

/// The io_uring driver loop.
fn run_uring(ring: DriverRing, chan: &Channel) {
    let mut lane = Lane {
        chan,
        ring,
        ops: Slab::new(),
        next: Vec::new(),
        wakes: Wakes::default(),
        table: Table::new(),
        polled: None,
    };
    let mut cancelling_wake = false;
    // Kept across turns, so that a turn allocates nothing: the queue's vector and this one swap.
    let mut reqs: Vec<Request> = Vec::new();
    let mut done: Vec<DriverCqe> = Vec::new();
    loop {
        let shutdown = chan.shutdown.load(Ordering::Acquire);
        if !shutdown {
            lane.ring.arm_wake(chan.wake.as_raw_fd());
        }
        chan.take(&mut reqs);
        let cancelled = lane.watch_cancel(shutdown);
        for req in reqs.drain(..) {
            lane.request(req, cancelled);
        }
        lane.wakes.wake(&chan.counters);
        lane.push_work();
        if shutdown && lane.ops.is_empty() {
            let ring = &mut lane.ring;
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
        if lane.ring.submit_and_wait().is_err() {
            lane.fail();
            run_pread(chan);
            return;
        }
        lane.ring.completions(&mut done);
        for cqe in done.drain(..) {
            lane.reap(cqe);
        }
        // Every stream that had completions in this batch is woken once, now that all are recorded.
        lane.wakes.wake(&chan.counters);
        // What the completions started goes into the ring before the next wait.
        lane.push_work();
    }
}

impl Lane<'_> {
    /// Keeps a poll on the driver's cancel handle's eventfd armed; returns whether it is cancelled.
    fn watch_cancel(&mut self, shutdown: bool) -> bool {
        let cancel = self.chan.cancel_handle();
        let cancelled = cancel.as_ref().is_some_and(Cancel::is_cancelled);
        if let Some(c) = &cancel {
            let same = self
                .polled
                .as_ref()
                .is_some_and(|p| p.event_fd() == c.event_fd());
            if !same && self.ring.cancel_poll_armed() {
                // A new handle replaced the one polled: stop that poll (its completion is not taken
                // for a cancellation: the flag is looked at).
                self.ring.stop_cancel_poll();
            } else if !cancelled && !shutdown && !self.ring.cancel_poll_armed() {
                self.ring.arm_cancel_poll(c.event_fd());
                self.polled = Some(c.clone());
            }
        }
        cancelled
    }

    /// Takes one request (`cancelled`: the driver is).
    fn request(&mut self, req: Request, cancelled: bool) {
        let chan = self.chan;
        match req {
            Request::Read(op) if cancelled => {
                chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                self.wakes.add(complete(chan, op, -libc::ECANCELED))
            }
            Request::Read(op) if op.blocking => {
                let res = read_now(&op, chan);
                self.wakes.add(complete(chan, op, res));
            }
            Request::Read(op) => self.push_read(op),
            Request::Work(op) if cancelled => op.interrupt(&mut self.next),
            Request::Work(op) => self.next.push(op),
            Request::Cancel(owner) => self.cancel(Arc::as_ptr(&owner).cast()),
        }
    }

    /// Pushes a read on the ring (into a registered buffer where it can).
    fn push_read(&mut self, op: ReadOp) {
        let (fd, buf, len, offset, flags) = (op.fd, op.buf, op.len, op.offset, op.rw_flags);
        let entry = op
            .fixed
            .and_then(|f| self.table.entry(&mut self.ring, &f, &self.chan.counters));
        let idx = self.ops.insert(LaneOp::Read(op)) as u64;
        match entry {
            Some(index) => {
                self.chan
                    .counters
                    .fixed_reads
                    .fetch_add(1, Ordering::Relaxed);
                // SAFETY: as below; and `buf .. buf + len` lies in the slot's buffer, which
                // `table.entry` found (or just made) registered as `index`.
                unsafe {
                    self.ring
                        .push_read_fixed(fd, buf, len, offset, flags, index, idx)
                }
            }
            // SAFETY: the buffer and descriptor are kept alive, and the buffer is this read's
            // alone, by the op stored in `ops` (see `ReadOp`) until its completion is reaped; if
            // the ring fails, the ops are abandoned with their buffers (`Lane::fail`).
            None => unsafe { self.ring.push_read(fd, buf, len, offset, flags, idx) },
        }
    }

    /// Cancels every operation in flight that `owner` owns.
    fn cancel(&mut self, owner: *const ()) {
        for (idx, op) in self.ops.iter() {
            let hit = match op {
                LaneOp::Read(r) => r.owner_addr() == owner,
                LaneOp::Work(w) => w.owner() == owner && w.cancellable(),
            };
            if hit {
                self.chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                self.ring.cancel(idx as u64);
            }
        }
    }

    /// Takes one completion.
    fn reap(&mut self, cqe: DriverCqe) {
        match cqe {
            DriverCqe::Wake => {}
            DriverCqe::Cancelled => {
                if self.chan.cancelled() {
                    // Every operation in flight is cancelled (a pipe's read might never complete),
                    // and streams waiting for a buffer are woken: their polls say `Interrupted`.
                    for (idx, op) in self.ops.iter() {
                        if let LaneOp::Work(w) = op {
                            if !w.cancellable() {
                                continue;
                            }
                        }
                        self.chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                        self.ring.cancel(idx as u64);
                    }
                    self.chan.pool.wake_all();
                }
            }
            DriverCqe::Read { user_data, res } => match self.ops.try_remove(user_data as usize) {
                Some(LaneOp::Read(op)) => self.wakes.add(complete(self.chan, op, res)),
                Some(LaneOp::Work(op)) => op.complete(res, &mut self.next),
                None => {}
            },
        }
    }

    /// Pushes the next operation of each work in `next` (those finished are dropped; those that
    /// perform their step with the system call, here, go on).
    fn push_work(&mut self) {
        while let Some(mut op) = self.next.pop() {
            let idx = self.ops.vacant_key();
            // SAFETY: pushed, the op goes into `ops` below, boxed, and stays there until this
            // operation's completion is reaped and handed to it (`reap`), or for ever if the ring
            // fails (`fail`: then it is abandoned).
            match unsafe { op.push(&mut self.ring, idx as u64) } {
                Push::Finished => {}
                Push::Done(res) => op.complete(res, &mut self.next),
                Push::Pushed => {
                    let at = self.ops.insert(LaneOp::Work(op));
                    debug_assert_eq!(at, idx);
                }
            }
        }
    }

    /// The ring itself failed: no operation in it can be trusted to complete. Fails them (their
    /// buffers are never freed: the kernel may still write into them), leaks the ring (and the
    /// buffer of its eventfd read) for the same reason, and takes the work that goes on to its end
    /// with system calls.
    fn fail(mut self) {
        let chan = self.chan;
        for op in self.ops.drain() {
            match op {
                LaneOp::Read(op) => {
                    Arc::clone(&op.owner).abandon(op.slot);
                    self.wakes.add(complete(chan, op, -libc::EIO));
                }
                LaneOp::Work(op) => op.abandon(&mut self.next),
            }
        }
        self.wakes.wake(&chan.counters);
        std::mem::forget(self.ring);
        // Work that went on (given buffers meanwhile, say) is served by system calls.
        for op in self.next.drain(..) {
            run_now(op);
        }
    }
}

/// Takes work (and what it makes ready meanwhile) to its end with system calls on this thread.
fn run_now(op: Work) {
    let mut next = vec![op];
    while let Some(mut op) = next.pop() {
        if let Some(res) = op.perform() {
            op.complete(res, &mut next);
        }
    }
}

/// Records a completion in its owner; returns the task to wake (once the batch is recorded), for
/// a [`Wakes`]: the read is `delivering` until that wake has returned.
#[must_use]
fn complete(chan: &Channel, op: ReadOp, res: i32) -> Option<Waker> {
    // Counted as delivering before it leaves in_flight: never in neither count.
    chan.counters.delivering.fetch_add(1, Ordering::AcqRel);
    chan.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
    if op.drop_behind && res > 0 {
        // SAFETY: advice on a descriptor the op holds open (`keep`).
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
        owner, keep, slot, ..
    } = op;
    // The hold on the file ends before the owner can see the completion, so that a stream's own
    // hold is the last when it finishes (what `dontcache` drops is then dropped in its time).
    drop(keep);
    owner.complete(slot, res)
    // `owner` drops here: the op's hold on the buffer ends with the read.
}

/// The driver loop where io_uring is refused: the same requests, served with `pread(2)`/`read(2)`
/// on this thread. A stream's reads are served one after another, so a slow pipe delays the others:
/// the fallback keeps working, not fast.
fn run_pread(chan: &Channel) {
    let mut buf = 0u64;
    let mut reqs: Vec<Request> = Vec::new();
    loop {
        chan.take(&mut reqs);
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
                Request::Work(op) if chan.cancelled() => {
                    let mut next = Vec::new();
                    op.interrupt(&mut next);
                    next.into_iter().for_each(run_now);
                }
                Request::Work(op) => run_now(op),
                Request::Cancel(_) => {}
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
        if op.owner.is_closed() || chan.shutdown.load(Ordering::Acquire) || chan.cancelled() {
            return false;
        }
        if n != 0 {
            return true;
        }
    }
}
