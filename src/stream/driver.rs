//! The driver: one thread that owns an io_uring and performs the reads of every stream made from it.
//!
//! Streams hand it requests through a queue and an `eventfd`; it pushes them to the ring, waits for
//! completions, records each one in its stream's shared state and wakes the stream's task. A read
//! in flight keeps its stream's buffers and file open (it holds `Arc`s to them), so nothing the kernel
//! may still write into is freed before its completion has arrived.
//!
//! Where io_uring is refused, the same thread serves the same requests with `pread(2)`/`read(2)`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use io_uring::{opcode, types, IoUring};
use slab::Slab;

use super::file::{Fds, Shared};
use crate::error::{Error, Result};
use crate::reader::Notice;
use crate::ring::{explain_setup_error, CURRENT_POSITION};

/// `user_data` of the read on the driver's own `eventfd`.
const WAKE_TAG: u64 = u64::MAX;
/// `user_data` of cancel requests (their completions carry nothing).
const CANCEL_TAG: u64 = u64::MAX - 1;
/// Submission queue entries of the driver's ring.
const RING_ENTRIES: u32 = 256;

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
}

// SAFETY: `buf` points into `shared`'s arena, which the op keeps alive through its `Arc`; the slot it
// points at belongs to this read alone until the read's completion is recorded (the stream's state
// machine never lends or reuses a slot with a read in flight). Moving the op to the driver thread moves
// that exclusive use with it.
unsafe impl Send for ReadOp {}

pub(super) enum Request {
    Read(ReadOp),
    /// Cancel every read of this stream still in flight (the stream was dropped).
    Cancel(Arc<Shared>),
}

/// What streams and the driver thread share.
pub(super) struct Channel {
    queue: Mutex<Vec<Request>>,
    /// Set when the driver has been woken and has not yet looked at the queue: saves writes.
    notified: AtomicBool,
    wake: OwnedFd,
    shutdown: AtomicBool,
    pub counters: Arc<Counters>,
}

/// What every lane of a driver counts, together.
#[derive(Default)]
pub(super) struct Counters {
    /// Reads in flight in the kernel (or queued for it).
    pub in_flight: AtomicUsize,
    /// Streams whose buffers are still allocated (held by a stream, a chunk or a read in flight).
    pub live_buffers: AtomicUsize,
    /// Reads cancelled because their stream was dropped.
    pub cancelled: AtomicUsize,
}

impl Channel {
    /// Queues a request and wakes the driver thread if it may be asleep.
    fn send(&self, req: Request) {
        self.send_all(vec![req]);
    }

    fn send_all(&self, reqs: Vec<Request>) {
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
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd. It cannot fail short of the
            // counter overflowing, which 2^64 - 1 wakes would take.
            unsafe {
                libc::write(
                    self.wake.as_raw_fd(),
                    (&one as *const u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
        }
    }
}

/// A handle to a driver: a thread with an io_uring that performs the reads of the streams opened
/// from it. Cloning is cheap (it is an `Arc`); the thread ends when the last handle and the last
/// stream are gone.
#[derive(Clone)]
pub struct Driver {
    pub(super) inner: Arc<DriverInner>,
}

pub(super) struct DriverInner {
    lanes: Vec<Arc<Channel>>,
    pub counters: Arc<Counters>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    notice: Option<Notice>,
}

impl DriverInner {
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

    /// Cancels every read of `shared` in flight, on every lane.
    pub(super) fn cancel(&self, shared: &Arc<Shared>) {
        for l in &self.lanes {
            l.send(Request::Cancel(Arc::clone(shared)));
        }
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
pub struct DriverStats {
    /// Reads queued or in flight in the kernel.
    pub in_flight: usize,
    /// Streams whose buffers are still allocated: held by a stream, by a chunk handed out, or by a
    /// read whose completion has not arrived yet.
    pub live_buffers: usize,
    /// Reads cancelled so far (`IORING_OP_ASYNC_CANCEL` sent) because their stream was dropped.
    pub cancelled: usize,
}

impl Driver {
    /// Starts a driver: one thread per CPU this process may use, each with its own io_uring (a
    /// stream's chunks are spread over them, so the copies out of the page cache run on every CPU).
    /// Where the kernel refuses io_uring the threads read with `pread(2)` instead, and
    /// [`Driver::notice`] says why.
    pub fn new() -> Result<Driver> {
        Driver::with_threads(crate::ring::usable_cpus())
    }

    /// A driver with `threads` threads (at least one), each with its own ring.
    pub fn with_threads(threads: usize) -> Result<Driver> {
        let counters = Arc::new(Counters::default());
        let mut lanes = Vec::new();
        let mut handles = Vec::new();
        let mut notice = None;
        for _ in 0..threads.max(1) {
            let (chan, handle, n) = Driver::lane(&counters)?;
            lanes.push(chan);
            handles.push(handle);
            notice = notice.or(n);
        }
        Ok(Driver {
            inner: Arc::new(DriverInner {
                lanes,
                counters,
                threads: Mutex::new(handles),
                notice,
            }),
        })
    }

    #[allow(clippy::type_complexity)]
    fn lane(counters: &Arc<Counters>) -> Result<(Arc<Channel>, JoinHandle<()>, Option<Notice>)> {
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
            counters: Arc::clone(counters),
        });
        let c = Arc::clone(&chan);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // The ring is made on its thread: with IORING_SETUP_SINGLE_ISSUER only the thread that made
        // it may submit.
        let thread = std::thread::Builder::new()
            .name("ringread-driver".into())
            .spawn(move || {
                let ring = IoUring::builder()
                    .setup_coop_taskrun()
                    .setup_single_issuer()
                    .build(RING_ENTRIES)
                    .or_else(|e| match e.raw_os_error() {
                        // COOP_TASKRUN and SINGLE_ISSUER came with 5.19 and 6.0.
                        Some(libc::EINVAL) => IoUring::new(RING_ENTRIES),
                        _ => Err(e),
                    });
                match ring {
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

    /// The process-wide driver the `open` functions of this module use, started on first use.
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

    /// Why this driver reads without io_uring, if it does.
    pub fn notice(&self) -> Option<&Notice> {
        self.inner.notice.as_ref()
    }

    /// What the driver has in hand right now.
    pub fn stats(&self) -> DriverStats {
        DriverStats {
            in_flight: self.inner.counters.in_flight.load(Ordering::Acquire),
            live_buffers: self.inner.counters.live_buffers.load(Ordering::Acquire),
            cancelled: self.inner.counters.cancelled.load(Ordering::Acquire),
        }
    }
}

impl Drop for DriverInner {
    fn drop(&mut self) {
        // Every stream holds this `DriverInner`, so all of them are gone: their reads are cancelled or
        // done. The thread reaps what is left and ends; waiting for it keeps thread and ring from
        // outliving the last handle.
        for chan in &self.lanes {
            chan.shutdown.store(true, Ordering::Release);
            chan.notified.store(false, Ordering::Release);
            chan.notify();
        }
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = t.join();
        }
    }
}

/// The io_uring driver loop.
fn run_uring(mut ring: IoUring, chan: &Channel) {
    let mut ops: Slab<ReadOp> = Slab::new();
    let mut wake_buf = Box::new(0u64);
    let mut wake_armed = false;
    let mut cancelling_wake = false;
    // Kept across turns, so that a turn allocates nothing: the queue's vector and this one swap.
    let mut reqs: Vec<Request> = Vec::new();
    let mut done: Vec<(u64, i32)> = Vec::new();
    loop {
        let shutdown = chan.shutdown.load(Ordering::Acquire);
        if !wake_armed && !shutdown {
            let e = opcode::Read::new(
                types::Fd(chan.wake.as_raw_fd()),
                (&mut *wake_buf as *mut u64).cast(),
                8,
            )
            .build()
            .user_data(WAKE_TAG);
            // SAFETY: `wake_buf` lives until this function returns, and it returns only once this
            // read has completed (it is cancelled and reaped at shutdown).
            push(&mut ring, &e);
            wake_armed = true;
        }
        // Clear before taking the queue: a request queued after this point writes the eventfd again.
        chan.notified.store(false, Ordering::Release);
        std::mem::swap(
            &mut *chan.queue.lock().unwrap_or_else(|e| e.into_inner()),
            &mut reqs,
        );
        for req in reqs.drain(..) {
            match req {
                Request::Read(op) if op.blocking => {
                    let res = read_now(&op, chan);
                    complete(chan, op, res);
                }
                Request::Read(op) => {
                    let offset = op.offset;
                    let e = opcode::Read::new(types::Fd(op.fd), op.buf, op.len)
                        .offset(offset)
                        .build();
                    let idx = ops.insert(op);
                    // SAFETY: the buffer and descriptor are kept alive by the op stored in `ops`
                    // until its completion is reaped below.
                    push(&mut ring, &e.user_data(idx as u64));
                }
                Request::Cancel(shared) => {
                    for (idx, op) in ops.iter() {
                        if Arc::ptr_eq(&op.shared, &shared) {
                            chan.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                            let e = opcode::AsyncCancel::new(idx as u64)
                                .build()
                                .user_data(CANCEL_TAG);
                            // SAFETY: a cancel refers to no memory of ours.
                            push(&mut ring, &e);
                        }
                    }
                }
            }
        }
        if shutdown && ops.is_empty() {
            if !wake_armed {
                return;
            }
            if !cancelling_wake {
                let e = opcode::AsyncCancel::new(WAKE_TAG)
                    .build()
                    .user_data(CANCEL_TAG);
                // SAFETY: as above.
                push(&mut ring, &e);
                cancelling_wake = true;
            }
        }
        crate::ring::ENTERS.fetch_add(1, Ordering::Relaxed);
        if crate::ring::entered(ring.submit_and_wait(1)).is_err() {
            // The ring itself failed: no read in it can be trusted to complete. Fail them (their
            // buffers are never freed: the kernel may still write into them), leak the ring and
            // its eventfd buffer for the same reason, and serve what comes next with pread(2).
            for op in ops.drain() {
                std::mem::forget(Arc::clone(&op.shared));
                complete(chan, op, -libc::EIO);
            }
            std::mem::forget(ring);
            Box::leak(wake_buf);
            run_pread(chan);
            return;
        }
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for (ud, res) in done.drain(..) {
            match ud {
                WAKE_TAG => wake_armed = false,
                CANCEL_TAG => {}
                idx => {
                    if let Some(op) = ops.try_remove(idx as usize) {
                        complete(chan, op, res);
                    }
                }
            }
        }
    }
}

/// Pushes one entry, submitting first when the queue is full.
fn push(ring: &mut IoUring, e: &io_uring::squeue::Entry) {
    loop {
        // SAFETY: every caller documents why the memory the entry refers to outlives the operation.
        if unsafe { ring.submission().push(e) }.is_ok() {
            return;
        }
        crate::ring::ENTERS.fetch_add(1, Ordering::Relaxed);
        let _ = ring.submit();
    }
}

/// Records a completion in its stream and wakes the stream's task.
fn complete(chan: &Channel, op: ReadOp, res: i32) {
    chan.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
    op.shared.complete(op.slot, res);
    // `op` drops here: its hold on the buffers and the file ends with the read.
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
            if let Request::Read(op) = req {
                let res = read_now(&op, chan);
                complete(chan, op, res);
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
    let n = unsafe {
        if op.offset == CURRENT_POSITION {
            libc::read(op.fd, op.buf.cast(), op.len as usize)
        } else {
            libc::pread(op.fd, op.buf.cast(), op.len as usize, op.offset as i64)
        }
    };
    if n < 0 {
        -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        n as i32
    }
}

/// Waits (in 100 ms steps) until a stream's descriptor has something to read, or its stream is
/// dropped, or the driver shuts down: a silent pipe must not hold the fallback thread forever.
fn wait_readable(op: &ReadOp, chan: &Channel) -> bool {
    loop {
        let mut p = libc::pollfd {
            fd: op.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 100) };
        if op.shared.is_closed() || chan.shutdown.load(Ordering::Acquire) {
            return false;
        }
        if n != 0 {
            return true;
        }
    }
}
