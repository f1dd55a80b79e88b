//! One whole-file read on a driver lane ([`WholeOp`]): `STATX`, then `OPENAT`, the reads into one
//! buffer from the driver's pool, and `CLOSE`, one operation in the kernel at a time, each pushed by
//! the lane that reaped the one before (no round trip through the task between them); and the
//! [`Batch`] the files of one call share with the lanes that read them (their outcomes, the turns
//! for buffers), which the task's side ([`ReadMany`](super::ReadMany), `many.rs`) reads.
//!
//! The op is boxed, and owns everything the kernel is given a pointer to (the path, the `statx`
//! record, the buffer through its [`Lease`]) in heap allocations that do not move with it; the lane
//! keeps the op in its slab until the operation's completion is reaped: nothing the kernel may
//! still write is freed before. The op's [`FileSteps`] (the one per-file state machine, which the
//! many-files engine drives too) say what to do next ([`WholeOp::io`]) and what a completion means
//! ([`LaneWork::complete`]); the lane performs it on its ring
//! ([`LaneWork::push`]), or with the system call itself ([`system_call`]) where the ring is refused
//! and for FUSE files.
//!
//! Its outcome goes to its [`Batch`] as soon as it is known (the bytes as soon as the last read
//! completes); the close follows on the lane.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use super::lane::{Counters, LaneWork, Push, Work};
use super::pool::{Buf, Held, Pool, Take};
use crate::file::on_fuse;
use crate::file_steps::{self, End, FileSteps, Phase, Refusal, Shape, Stat};
use crate::ring::{DriverRing, Statx};

/// The longest single read (a whole file is read in pieces of this many bytes into its buffer).
const PIECE: usize = 1 << 30;

/// What an op asks of the kernel next.
enum Io<'a> {
    /// `statx(AT_FDCWD, path)` into `out`.
    Statx { path: &'a CStr, out: *mut Statx },
    /// `openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOCTTY)`.
    Open { path: &'a CStr },
    /// `pread(fd, buf, len, offset)`; `blocking`: with the system call on the lane (FUSE files:
    /// io_uring can report their short replies as full reads).
    Read {
        fd: RawFd,
        buf: *mut u8,
        len: u32,
        offset: u64,
        blocking: bool,
        /// `RWF_*` flags (`RWF_DONTCACHE`).
        rw_flags: i32,
    },
    /// `close(fd)`.
    Close { fd: RawFd },
}

/// One file being read whole. Always boxed (made so by [`WholeOp::new`]): the kernel is given the
/// address of its `statx` record.
pub(super) struct WholeOp {
    batch: Arc<Batch>,
    /// Its place in the batch's inputs.
    index: usize,
    /// Which of the driver's threads it goes to.
    lane: usize,
    path: CString,
    statx: Statx,
    /// Its life: what to do next, what each completion means (see [`FileSteps`]).
    steps: FileSteps,
    fd: RawFd,
    /// The buffer length it needs (0: none), known once `statx` is in.
    need: usize,
    /// Its buffer, from the driver's pool (given when its turn comes, see [`Batch`]).
    buf: Option<Lease>,
    /// Where the probe of an empty file (which has no buffer) reads its byte.
    spare: u8,
    blocking: bool,
    /// `RWF_*` flags of its reads: `RWF_DONTCACHE` for a batch read uncached.
    rw_flags: i32,
    /// Drop the file's pages once it is read (`POSIX_FADV_DONTNEED`): uncached and nothing of it
    /// was cached before, or the file system refuses `RWF_DONTCACHE`.
    drop_after: bool,
    /// Counted in the driver's `in_flight` (queued for a lane, or in its ring).
    counted: bool,
    /// Its outcome went to the batch.
    delivered: bool,
}

// SAFETY: the raw descriptor and the heap allocations the kernel is pointed at belong to this op
// alone; moving the op to a lane moves that exclusive use with it (a parked op has nothing in the
// kernel).
unsafe impl Send for WholeOp {}

impl WholeOp {
    /// Input `index` of `batch`, `path` as a C string, for `lane`.
    pub(super) fn new(batch: Arc<Batch>, index: usize, path: CString, lane: usize) -> Box<WholeOp> {
        let large = batch.pool.budget() as u64;
        Box::new(WholeOp {
            batch,
            index,
            lane,
            path,
            // SAFETY: all-zero is a valid statx record.
            statx: unsafe { std::mem::zeroed() },
            steps: FileSteps::new(Shape::Whole { piece: PIECE }, large),
            fd: -1,
            need: 0,
            buf: None,
            spare: 0,
            blocking: false,
            rw_flags: 0,
            drop_after: false,
            counted: false,
            delivered: false,
        })
    }

    /// Counts the op in the driver's `in_flight` (it is sent to a lane, or pushed on its ring).
    pub(super) fn count(&mut self) {
        if !self.counted {
            self.counted = true;
            self.batch.counters.in_flight.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// No longer counted: parked in its batch, waiting for a buffer.
    fn uncount(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.batch.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Drops a parked op whose outcome its batch decided (nothing of it is in the kernel).
    fn dismiss(mut self: Box<Self>) {
        self.delivered = true;
    }

    /// What to ask the kernel next, as its steps say; `None`: the op is finished (drop it). Once
    /// its consumer is gone, only the close is left.
    fn io(&mut self) -> Option<Io<'_>> {
        if self.batch.is_closed() && self.steps.phase() != Phase::Close {
            self.delivered = true;
            self.steps.stop();
        }
        let read = match self.steps.next() {
            file_steps::Io::Stat => {
                return Some(Io::Statx {
                    path: &self.path,
                    out: &mut self.statx,
                })
            }
            file_steps::Io::Open => return Some(Io::Open { path: &self.path }),
            file_steps::Io::Close => return Some(Io::Close { fd: self.fd }),
            file_steps::Io::Done => return None,
            file_steps::Io::Read { read, .. } => read,
            file_steps::Io::Probe(read) if self.need == 0 => {
                // An empty file: its probe reads into the op's own byte (the op is boxed).
                let spare = std::ptr::addr_of_mut!(self.spare);
                return Some(self.read_io(read, spare));
            }
            file_steps::Io::Probe(read) => read,
        };
        let lease = self.buf.as_ref()?;
        debug_assert!(read.buf_offset + read.len as usize <= lease.capacity());
        // Within the buffer: reads stop at its length (the probe reads into its last byte).
        let buf = lease.ptr().wrapping_add(read.buf_offset);
        Some(self.read_io(read, buf))
    }

    /// The read of `read` into `buf`.
    fn read_io(&self, read: file_steps::Span, buf: *mut u8) -> Io<'static> {
        Io::Read {
            fd: self.fd,
            buf,
            len: read.len,
            offset: read.offset,
            blocking: self.blocking,
            rw_flags: self.rw_flags,
        }
    }

    /// Hands the outcome to the batch (ops whose buffers came meanwhile go to `out`).
    fn deliver(&mut self, outcome: Outcome, out: &mut Vec<Work>) {
        self.delivered = true;
        let batch = Arc::clone(&self.batch);
        batch.deliver(self.index, outcome, out);
    }

    /// The operation [`WholeOp::io`] asked for completed with `res` (`-errno` on failure): its
    /// steps book it. The op, if it goes on, and the ops given a buffer meanwhile (see
    /// [`Batch::sized`]) go to `out`.
    fn step(mut self: Box<Self>, res: i32, out: &mut Vec<Work>) {
        let closed = self.batch.is_closed();
        match self.steps.phase() {
            Phase::Stat => {
                self.steps.stat_done(res, Stat::of_statx(&self.statx));
                if self.steps.phase() == Phase::Open && !closed {
                    return self.stat_done(out);
                }
            }
            Phase::Open => {
                if res >= 0 {
                    self.fd = res;
                }
                self.steps.open_done(res);
                if matches!(self.steps.phase(), Phase::Read | Phase::Probe) && !closed {
                    self.opened();
                }
            }
            Phase::Read => {
                self.steps.read_done(res, None);
            }
            Phase::Probe => self.steps.probe_done(res),
            Phase::Close => {
                if res == -libc::ECANCELED {
                    // Not closed after all (a driver-wide cancel caught it): close it here.
                    // SAFETY: our descriptor, given up now.
                    unsafe { libc::close(self.fd) };
                }
                self.fd = -1;
                self.steps.closed();
            }
            Phase::Done => {}
        }
        if closed {
            self.delivered = true;
            self.steps.stop();
        }
        self.go_on(out);
    }

    /// Hands the outcome to the batch once its steps know it, and goes on (into `out`) unless the
    /// op is finished.
    fn go_on(mut self: Box<Self>, out: &mut Vec<Work>) {
        if let Some(end) = self.steps.end().filter(|_| !self.delivered) {
            let outcome = self.outcome(end);
            self.deliver(outcome, out);
        }
        if self.steps.phase() != Phase::Done {
            out.push(self);
        }
    }

    /// The batch's outcome for the file's `end` (its bytes given up to it).
    fn outcome(&mut self, end: End) -> Outcome {
        match end {
            End::Read(len) => {
                if self.drop_after {
                    // SAFETY: advice on the op's own descriptor.
                    unsafe { libc::posix_fadvise(self.fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
                }
                match self.buf.take() {
                    Some(lease) if len > 0 => Outcome::Bytes(lease, len as usize),
                    _ => Outcome::Empty,
                }
            }
            End::Refused(Refusal::Directory) => Outcome::OpenFailed(libc::EISDIR),
            End::Refused(Refusal::NotRegular(kind)) => Outcome::NotRegular(kind),
            End::Refused(Refusal::TooLarge(size)) => Outcome::TooLarge(size),
            End::Refused(Refusal::Elsewhere) => unreachable!("whole files are read here"),
            End::Failed(file_steps::Failure::Open(errno)) => Outcome::OpenFailed(errno),
            End::Failed(file_steps::Failure::Read { offset, errno }) => {
                Outcome::ReadFailed { offset, errno }
            }
            // The file has more than its buffer holds: read to its end elsewhere.
            End::Longer => {
                drop(self.buf.take());
                Outcome::Fallback
            }
            End::Cancelled => Outcome::Interrupted,
        }
    }

    /// The open is in: how to read the file.
    fn opened(&mut self) {
        // Files the lanes must not read through io_uring (FUSE, see the reader) are read
        // with read(2) on the lane. Only anonymous devices (major 0) need the look.
        self.blocking = self.statx.stx_dev_major == 0 && on_fuse(self.fd);
        if self.batch.dontcache.load(Ordering::Relaxed) {
            self.uncached();
        }
    }

    /// `statx` is in and its steps take the file: wait for a buffer of the length they need (or
    /// go on).
    fn stat_done(mut self: Box<Self>, out: &mut Vec<Work>) {
        let limit = self.steps.buffer_len();
        if limit > 0 {
            match self.batch.pool.whole_len(limit) {
                Some(len) => self.need = len,
                None => {
                    let size = self.statx.stx_size;
                    self.steps.refuse(Refusal::TooLarge(size));
                    return self.go_on(out);
                }
            }
        }
        let batch = Arc::clone(&self.batch);
        batch.sized(self, out);
    }

    /// Reads uncached (the batch asked for it): `RWF_DONTCACHE` where the file system takes it,
    /// and the whole file dropped once read if nothing of it was cached before (for what
    /// read-ahead racing with the reads left); elsewhere its pages are dropped once it is read.
    fn uncached(&mut self) {
        let dev = libc::makedev(self.statx.stx_dev_major, self.statx.stx_dev_minor);
        if crate::residency::dontcache_supported(self.fd, dev) {
            self.rw_flags = libc::RWF_DONTCACHE;
            // SAFETY: the descriptor is ours and stays open for as long as the File lives; the
            // File is forgotten, never closed here.
            let file = std::mem::ManuallyDrop::new(unsafe {
                <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(self.fd)
            });
            self.drop_after = crate::residency::of_file(&file).is_ok_and(|r| r.cached == 0);
        } else {
            self.drop_after = true;
        }
    }
}

impl LaneWork for WholeOp {
    fn lane(&self) -> usize {
        self.lane
    }

    /// Its batch.
    fn owner(&self) -> *const () {
        Arc::as_ptr(&self.batch).cast()
    }

    /// Anything but its close.
    fn cancellable(&self) -> bool {
        self.steps.phase() != Phase::Close
    }

    unsafe fn push(&mut self, ring: &mut DriverRing, user_data: u64) -> Push {
        match self.io() {
            None => return Push::Finished,
            Some(io @ Io::Read { blocking: true, .. }) => return Push::Done(system_call(io)),
            // SAFETY: the path and the record are the op's heap allocations (its `CString`, its
            // box), which do not move with it, and the caller keeps the op until this operation's
            // completion is handed to it, or has it leak them (`abandon`) if the ring fails.
            Some(Io::Statx { path, out }) => unsafe { ring.push_statx(path, out, user_data) },
            // SAFETY: as for the statx: the path stays with the op.
            Some(Io::Open { path }) => unsafe { ring.push_openat(path, user_data) },
            Some(Io::Read {
                fd,
                buf,
                len,
                offset,
                rw_flags,
                ..
            }) => {
                // SAFETY: `buf .. buf + len` lies in the op's buffer (its `Lease`), which is this
                // read's alone and stays allocated with the op, which the caller keeps until the
                // read's completion is handed to it; the descriptor is the op's, closed only after
                // that.
                unsafe { ring.push_read(fd, buf, len, offset, rw_flags, user_data) }
            }
            Some(Io::Close { fd }) => ring.push_close(fd, user_data),
        }
        Push::Pushed
    }

    fn perform(&mut self) -> Option<i32> {
        self.io().map(system_call)
    }

    fn complete(self: Box<Self>, res: i32, next: &mut Vec<Work>) {
        self.step(res, next);
    }

    /// Its outcome is [`Outcome::Interrupted`] (unless nobody waits for it); its descriptor, if it
    /// has one, is closed next.
    fn interrupt(mut self: Box<Self>, next: &mut Vec<Work>) {
        if self.batch.is_closed() {
            self.delivered = true;
        } else {
            self.deliver(Outcome::Interrupted, next);
        }
        self.steps.stop();
        if self.steps.phase() == Phase::Close {
            next.push(self);
        }
    }

    /// The buffer, the path and the `statx` record (in the op's own allocation, which is leaked)
    /// may still be written or read by the kernel; the outcome is an I/O error.
    fn abandon(mut self: Box<Self>, next: &mut Vec<Work>) {
        if let Some(lease) = self.buf.take() {
            lease.leak();
        }
        std::mem::forget(std::mem::take(&mut self.path));
        if self.batch.is_closed() || self.delivered {
            self.delivered = true;
        } else {
            // A read (or the probe) fails where it was, anything before as an open.
            self.steps.fail(libc::EIO);
            if let Some(end) = self.steps.end() {
                let outcome = self.outcome(end);
                self.deliver(outcome, next);
            }
        }
        // What the op owns is dropped (its hold on the batch; its descriptor, closed by Drop: the
        // kernel holds its own reference to the file), its allocation is not.
        let op: *mut WholeOp = Box::into_raw(self);
        // SAFETY: `op` is a valid op, owned here alone, dropped once and never used again; its
        // allocation is never freed.
        unsafe { std::ptr::drop_in_place(op) };
    }
}

impl Drop for WholeOp {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // Only on paths that failed (an abandoned ring, a panic): ours to close.
            // SAFETY: our descriptor, given up now.
            unsafe { libc::close(self.fd) };
        }
        self.uncount();
        debug_assert!(
            self.delivered || self.batch.is_closed() || std::thread::panicking(),
            "a whole-file read finished without an outcome"
        );
    }
}

/// Performs `io` with the system call on this thread; the result as a completion gives it.
fn system_call(io: Io<'_>) -> i32 {
    let res = match io {
        // SAFETY: the path is a valid C string and `out` a statx record, both owned by the op,
        // which lives across this call.
        Io::Statx { path, out } => unsafe {
            libc::statx(
                libc::AT_FDCWD,
                path.as_ptr(),
                0,
                libc::STATX_TYPE | libc::STATX_SIZE,
                out.cast(),
            ) as isize
        },
        // SAFETY: a valid C string.
        Io::Open { path } => unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY,
            ) as isize
        },
        Io::Read {
            fd,
            buf,
            len,
            offset,
            rw_flags,
            ..
        } => {
            let iov = libc::iovec {
                iov_base: buf.cast(),
                iov_len: len as usize,
            };
            // SAFETY: `buf .. buf + len` lies in the op's buffer, which is its alone (see
            // `WholeOp::io`) and outlives this call.
            unsafe { libc::preadv2(fd, &iov, 1, offset as i64, rw_flags) }
        }
        // SAFETY: the op's descriptor, given up.
        Io::Close { fd } => unsafe { libc::close(fd) as isize },
    };
    crate::sys::completion(res)
}

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
pub(super) enum Turn {
    /// Its `statx` is not in: its need is not known.
    Stat,
    /// Needs a buffer and waits for it (the op is here meanwhile, nothing of it in the kernel).
    Parked(Box<WholeOp>),
    /// Has its buffer, or needs none.
    Passed,
}

/// A file of a batch, admitted and not handed out yet.
pub(super) struct Entry {
    pub(super) turn: Turn,
    pub(super) outcome: Option<Outcome>,
}

impl Entry {
    /// The file's outcome is decided here, before its turn for a buffer: it needs none now.
    pub(super) fn dismiss(&mut self, outcome: Outcome) {
        if let Turn::Parked(op) = std::mem::replace(&mut self.turn, Turn::Passed) {
            op.dismiss();
        }
        self.outcome = Some(outcome);
    }
}

/// A batch's files, under its lock.
pub(super) struct BatchState {
    /// The input index of `entries[0]`: the next to hand out.
    pub(super) head: usize,
    /// The files admitted and not handed out yet, in input order.
    pub(super) entries: VecDeque<Entry>,
    /// The next file whose turn for a buffer it is.
    pub(super) next_turn: usize,
    pub(super) waker: Option<Waker>,
    pub(super) closed: bool,
}

/// What the files of one call share with the lanes that read them.
pub(super) struct Batch {
    state: Mutex<BatchState>,
    /// Its consumer is gone (set by the task's side).
    pub(super) closed: AtomicBool,
    /// Read uncached ([`ReadMany::dontcache`](super::ReadMany::dontcache)).
    pub(super) dontcache: AtomicBool,
    pub(super) pool: Arc<Pool>,
    counters: Arc<Counters>,
    /// Bytes of buffers given to this batch's files and not handed out yet.
    held: AtomicUsize,
    /// Buffers handed out (as `Bytes`) and not dropped yet, and their bytes.
    pub(super) out_count: AtomicUsize,
    pub(super) out_bytes: AtomicUsize,
}

/// Why a turn stopped.
pub(super) enum Stop {
    /// Nothing waits for a buffer now.
    Idle,
    /// The file whose turn it is waits for a buffer; `urgent`: this batch holds none.
    Waiting { urgent: bool },
    /// The file whose turn it is would wait for ever: the budget is spent and all of it is out to
    /// the task that polls (see [`Take::Held`]).
    Held(Held),
}

impl Batch {
    /// A batch of no files yet, whose buffers come from `pool`. Counted in `live_buffers` until it
    /// is dropped.
    pub(super) fn new(pool: Arc<Pool>, counters: Arc<Counters>) -> Batch {
        counters.live_buffers.fetch_add(1, Ordering::AcqRel);
        Batch {
            state: Mutex::new(BatchState {
                head: 0,
                entries: VecDeque::new(),
                next_turn: 0,
                waker: None,
                closed: false,
            }),
            closed: AtomicBool::new(false),
            dontcache: AtomicBool::new(false),
            pool,
            counters,
            held: AtomicUsize::new(0),
            out_count: AtomicUsize::new(0),
            out_bytes: AtomicUsize::new(0),
        }
    }

    /// The files, locked.
    pub(super) fn lock(&self) -> MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the batch's consumer is gone.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A lane has the file's size (`op.need`, 0: no buffer needed): it goes on (into `out`) or waits
    /// for its turn for a buffer; files whose turn came meanwhile go on too.
    fn sized(self: &Arc<Self>, mut op: Box<WholeOp>, out: &mut Vec<Work>) {
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
        wake_consumer(st, waiting);
    }

    /// A lane has file `index`'s outcome (files whose turn for a buffer came meanwhile go to `out`).
    fn deliver(self: &Arc<Self>, index: usize, outcome: Outcome, out: &mut Vec<Work>) {
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
        wake_consumer(st, waiting);
    }

    /// Gives buffers to the files whose turn it is, in input order; those go on (into `out`,
    /// counted `in_flight`: they go to a lane, or on this lane's ring straight away). From a lane
    /// (`task` is `None`): only within the batch's share of the budget, never waiting. From the
    /// task: a file waits in the pool (its waker kept) when the batch holds no buffer.
    pub(super) fn turns(
        self: &Arc<Self>,
        st: &mut BatchState,
        task: Option<&Waker>,
        out: &mut Vec<Work>,
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
                    op.count();
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
    fn capacity(&self) -> usize {
        self.buf.as_ref().map_or(0, Buf::len)
    }

    /// The kernel may still write the buffer (its ring failed): it is never given back.
    fn leak(mut self) {
        std::mem::forget(self.buf.take());
    }

    /// Now the consumer's: the task `to` polled it out (`from`: the file; `hint`: see
    /// [`Pool::hand_out`]).
    pub(super) fn hand_out(&mut self, to: &Waker, from: &Arc<Path>, hint: &mut u32) {
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

/// The entry of input `index` (`head`: the first in the window), if it is in the window.
fn entry(st: &mut BatchState, head: usize, index: usize) -> Option<&mut Entry> {
    st.entries.get_mut(index.checked_sub(head)?)
}

/// Wakes the consumer, after the lock is released, when a file waits for a buffer only the task
/// can give (`waiting`) or the file at the head is in. Only the file at the head can be handed out:
/// the others wait for it without a wake-up.
fn wake_consumer(mut st: MutexGuard<'_, BatchState>, waiting: bool) {
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

/// Whether the head's outcome is in.
fn head_is_in(st: &BatchState) -> bool {
    st.entries.front().is_some_and(|e| e.outcome.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// An empty file on a device that grows between its `statx` and its end: the probe at 0 finds
    /// the byte, and the file is read to its end another way (the fallback), not returned empty.
    #[test]
    fn an_empty_file_grown_after_statx_is_read_to_its_new_end() {
        for grows in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("empty");
            std::fs::write(&path, b"").unwrap();
            let pool = Arc::new(Pool::new(1 << 20));
            let batch = Arc::new(Batch::new(pool, Arc::new(Counters::default())));
            batch.lock().entries.push_back(Entry {
                turn: Turn::Stat,
                outcome: None,
            });
            let c = CString::new(path.as_os_str().as_bytes()).unwrap();
            let mut work: Vec<Work> = vec![WholeOp::new(Arc::clone(&batch), 0, c, 0)];
            let mut steps = 0;
            // Each step with its system call, as a lane without io_uring does.
            while let Some(mut w) = work.pop() {
                let res = w.perform().expect("a step to do");
                if steps == 0 && grows {
                    // Its statx is done (it said 0 bytes); its open comes next.
                    std::fs::write(&path, b"more").unwrap();
                }
                steps += 1;
                w.complete(res, &mut work);
            }
            let outcome = batch.lock().entries[0].outcome.take();
            match (grows, outcome) {
                (false, Some(Outcome::Empty)) | (true, Some(Outcome::Fallback)) => {}
                (_, other) => panic!("grows: {grows}: {}", other.is_some()),
            }
        }
    }
}
