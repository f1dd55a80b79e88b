//! The only code that touches io_uring: setting a ring up, probing it, registering buffers, and
//! submitting and reaping reads.
//!
//! The engine above sees a ring only through the [`Queue`] trait: push a read, submit, pop a
//! completion. Tests put a fake queue in its place that completes reads out of order, cuts them short
//! and fails them, to exercise the engine's bookkeeping without a kernel.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};

use io_uring::{opcode, squeue, types, IoUring, Probe};

use crate::buf::Arena;

#[cfg(feature = "stream")]
mod driver;
mod files;
#[cfg(feature = "net")]
mod stream;
#[cfg(feature = "stream")]
pub(crate) use driver::{DriverCqe, DriverRing};
pub(crate) use files::Statx;
#[cfg(feature = "net")]
pub(crate) use stream::{rings_dropped_busy, StreamCqe, StreamKind, StreamRing};

/// `io_uring_enter` calls made by this process's rings so far (for the benchmark's syscall counts).
pub(crate) static ENTERS: AtomicU64 = AtomicU64::new(0);

/// `io_uring_enter` calls made by ringread's rings in this process so far.
#[cfg(feature = "bench")]
pub(crate) fn enter_count() -> u64 {
    ENTERS.load(Ordering::Relaxed)
}

/// One read for the kernel to do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadReq {
    /// The file.
    pub fd: RawFd,
    /// Where the bytes go.
    pub buf: *mut u8,
    /// How many bytes to read at most.
    pub len: u32,
    /// Where in the file, or [`CURRENT_POSITION`](crate::sys::CURRENT_POSITION).
    pub offset: u64,
    /// The registered buffer `buf` lies in, if it is registered (then the read is `READ_FIXED`).
    pub buf_index: Option<u16>,
    /// Comes back with the completion.
    pub user_data: u64,
    /// `fd` is not a descriptor but an index into the ring's table of registered files (a direct
    /// descriptor, see [`PathQueue::push_openat`]).
    pub fixed_file: bool,
    /// The next entry pushed runs after this read completes, whatever its result
    /// (`IOSQE_IO_HARDLINK`).
    pub then: bool,
    /// `RWF_*` flags of the read (`RWF_DONTCACHE`), 0 for none.
    pub rw_flags: i32,
}

/// A file the ring reads: a process descriptor, or an index into the ring's registered file table
/// (a direct descriptor, which takes no room in the process's descriptor table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileRef {
    /// A descriptor of the process.
    Fd(RawFd),
    /// Entry `n` of the ring's registered file table (a "direct descriptor", in io_uring's
    /// words; `Fixed` here, as `types::Fixed`, since "direct" is `O_DIRECT` in this crate).
    Fixed(u32),
}

/// A [`Queue`] that also opens, inspects and closes files by path, for reading many files at once.
pub(crate) trait PathQueue: Queue {
    /// Queues `statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_SIZE)` (symbolic links followed), whose
    /// completion carries `user_data`.
    ///
    /// # Safety
    /// `path` and `out` must stay valid (and `out` neither read nor written by anyone else) until
    /// the completion carrying `user_data` has been popped.
    unsafe fn push_statx(&mut self, path: &CStr, out: *mut Statx, user_data: u64)
        -> io::Result<()>;
    /// Queues `openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOCTTY)`: as a process descriptor
    /// (the completion's result; the caller owns it), or, with `direct`, into that entry of the
    /// registered file table (the result is 0; without `O_CLOEXEC`, which the kernel refuses there
    /// and which means nothing for a descriptor no process table holds). With `link`, the next
    /// entry pushed runs only if the open succeeds (it completes with `-ECANCELED` otherwise).
    /// With `nonblock`, `O_NONBLOCK` too (a FIFO's open does not wait for a writer).
    ///
    /// # Safety
    /// `path` must stay valid until the completion carrying `user_data` has been popped.
    unsafe fn push_openat(
        &mut self,
        path: &CStr,
        fixed: Option<u32>,
        link: bool,
        nonblock: bool,
        user_data: u64,
    ) -> io::Result<()>;
    /// Queues the close of `file`: the caller gives it up.
    fn push_close(&mut self, file: FileRef, user_data: u64) -> io::Result<()>;
    /// `statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_SIZE)` into `out`, on this thread, now: 0 or
    /// `-errno`. For a file just opened and read, whose dentry and inode are in memory (it does
    /// not wait for a disk, where the ring's `statx` would go to a worker thread).
    fn stat_now(&mut self, path: &CStr, out: &mut Statx) -> i32;
}

/// Where reads go in and completions come out.
pub(crate) trait Queue {
    /// Queues a read; it starts at the next [`Queue::submit`].
    ///
    /// # Safety
    /// `req.buf .. req.buf + req.len` must stay allocated, and be neither read nor written by anyone
    /// else, until the completion carrying `req.user_data` has been popped.
    unsafe fn push(&mut self, req: ReadReq) -> io::Result<()>;
    /// Starts the queued reads and waits until at least `wait` completions are ready.
    fn submit(&mut self, wait: usize) -> io::Result<()>;
    /// The next completion: `(user_data, result)`, where the result is a byte count or `-errno`.
    fn pop(&mut self) -> Option<(u64, i32)>;
    /// Asks the kernel to cancel the read carrying `user_data` (it completes, with `-ECANCELED` or
    /// its result, and must still be popped). For reads that may never complete on their own, such as
    /// a pipe's with no writer sending.
    fn cancel(&mut self, user_data: u64) -> io::Result<()>;
    /// Makes the queue's waits end when `fd` (a [`Cancel`](crate::Cancel)'s `eventfd`) becomes
    /// readable. Kept armed until it fires; calling it again while armed does nothing.
    fn watch(&mut self, fd: RawFd) -> io::Result<()> {
        let _ = fd;
        Ok(())
    }
}

/// The `user_data` of cancel requests; their own completions are not reads and are not returned.
const CANCEL_TAG: u64 = u64::MAX;
/// The `user_data` of a driver ring's read on its wake-up `eventfd`.
#[cfg(feature = "stream")]
const WAKE_TAG: u64 = u64::MAX - 1;
/// The `user_data` of a ring's poll on a [`Cancel`](crate::Cancel) handle's `eventfd` (see
/// [`Queue::watch`]).
const CANCEL_POLL_TAG: u64 = u64::MAX - 2;

/// Sets up a ring of `entries` submission entries: with a kernel polling thread (`sqpoll`), or with
/// cooperative task running; `single_issuer` where only the calling thread will submit. A kernel
/// older than those flags (5.19, 6.0) says `EINVAL`: then a plain ring is made (not for `sqpoll`,
/// which was asked for outright).
pub(crate) fn setup(entries: u32, sqpoll: bool, single_issuer: bool) -> io::Result<IoUring> {
    setup_with(
        entries,
        &Setup {
            sqpoll,
            single_issuer,
            ..Setup::default()
        },
    )
}

/// How [`setup_with`] sets a ring up.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Setup {
    /// A kernel thread polls the submission queue (`IORING_SETUP_SQPOLL`, idle after 50 ms).
    pub sqpoll: bool,
    /// Only the calling thread submits (`IORING_SETUP_SINGLE_ISSUER`, Linux 6.0).
    pub single_issuer: bool,
    /// Completion work waits for the submitting thread to wait (`IORING_SETUP_DEFER_TASKRUN`,
    /// Linux 6.1; needs `single_issuer`) instead of cooperative task running.
    pub defer_taskrun: bool,
    /// Completion queue entries, if not twice the submission queue's.
    pub cq_entries: Option<u32>,
}

/// The one place rings are set up. Without `sqpoll`, a kernel older than the flags asked for says
/// `EINVAL`: then a ring with none of them (but the completion queue's size) is made; `sqpoll` was
/// asked for outright, and its refusal is the error.
pub(crate) fn setup_with(entries: u32, s: &Setup) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    if let Some(cq) = s.cq_entries {
        builder.setup_cqsize(cq);
    }
    if s.sqpoll {
        builder.setup_sqpoll(50);
    } else if s.defer_taskrun {
        builder.setup_defer_taskrun();
    } else {
        builder.setup_coop_taskrun();
    }
    if s.single_issuer || s.defer_taskrun {
        builder.setup_single_issuer();
    }
    match builder.build(entries) {
        Ok(r) => Ok(r),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) && !s.sqpoll => {
            let mut plain = IoUring::builder();
            if let Some(cq) = s.cq_entries {
                plain.setup_cqsize(cq);
            }
            plain.build(entries)
        }
        Err(e) => Err(e),
    }
}

/// A ring, as this crate sets it up.
pub(crate) struct Ring {
    ring: IoUring,
    read_fixed: bool,
    sqpoll: bool,
    /// The descriptor a poll is armed on, until its completion is popped.
    watching: Option<RawFd>,
    /// The kernel has `STATX`, `OPENAT` and `CLOSE` on the ring.
    path_ops: bool,
}

impl Ring {
    /// Sets up a ring for `depth` reads in flight.
    ///
    /// Errors are the kernel's: `ENOSYS` (no io_uring), `EPERM` (seccomp, or the
    /// `kernel.io_uring_disabled` sysctl), `ENOMEM`.
    pub(crate) fn new(depth: usize, sqpoll: bool) -> io::Result<Ring> {
        // Callers size `depth` to what they keep in flight (a lane: one read per slot; many files:
        // three operations per slot), so depth entries suffice; SQPOLL wants slack because the
        // kernel thread may not have consumed the previous batch yet.
        let entries = if sqpoll { depth * 2 } else { depth }
            .next_power_of_two()
            .clamp(4, 32768) as u32;
        let ring = setup(entries, sqpoll, false)?;
        let mut probe = Probe::new();
        let path_ops;
        let read_fixed = match ring.submitter().register_probe(&mut probe) {
            Ok(()) => {
                path_ops = [
                    opcode::Statx::CODE,
                    opcode::OpenAt::CODE,
                    opcode::Close::CODE,
                ]
                .iter()
                .all(|&op| probe.is_supported(op));
                if !probe.is_supported(opcode::Read::CODE) {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the kernel's io_uring has no IORING_OP_READ (Linux 5.6 or later needed)",
                    ));
                }
                probe.is_supported(opcode::ReadFixed::CODE)
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "the kernel's io_uring cannot be probed ({e}); Linux 5.6 or later needed"
                    ),
                ))
            }
        };
        Ok(Ring {
            ring,
            read_fixed,
            sqpoll,
            watching: None,
            path_ops,
        })
    }

    /// Registers the first `want` slots of `arena` (`IORING_REGISTER_BUFFERS`).
    ///
    /// The kernel charges registered memory to `RLIMIT_MEMLOCK` for users without `CAP_IPC_LOCK`
    /// (8 MiB here), and releases the charge asynchronously after a ring closes. So when it says
    /// `ENOMEM` this tries half as many, down to none. Returns how many were registered and, when that
    /// is fewer than asked, the kernel's reason.
    pub(crate) fn register(&mut self, arena: &Arena, want: usize) -> (usize, Option<io::Error>) {
        if !self.read_fixed {
            return (
                0,
                Some(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the kernel has no IORING_OP_READ_FIXED",
                )),
            );
        }
        let mut count = want.min(arena.slots()).min(u16::MAX as usize);
        let mut first_error = None;
        while count > 0 {
            let iovecs = arena.iovecs(count);
            // SAFETY: every iovec lies inside `arena`, which the caller keeps alive (and unmoved: it
            // is a heap allocation) for as long as this ring may use the registration; the ring is
            // always dropped or unregistered before the arena goes (see `Lane`).
            match unsafe { self.ring.submitter().register_buffers(&iovecs) } {
                Ok(()) => return (count, first_error),
                Err(e) => {
                    let retry = matches!(e.raw_os_error(), Some(libc::ENOMEM) | Some(libc::EAGAIN));
                    first_error.get_or_insert(e);
                    if !retry {
                        break;
                    }
                    count /= 2;
                }
            }
        }
        (0, first_error)
    }
}

impl Queue for Ring {
    unsafe fn push(&mut self, req: ReadReq) -> io::Result<()> {
        let entry = match (req.buf_index, req.fixed_file) {
            (Some(index), false) => {
                opcode::ReadFixed::new(types::Fd(req.fd), req.buf, req.len, index)
                    .offset(req.offset)
                    .rw_flags(req.rw_flags)
                    .build()
            }
            (Some(index), true) => {
                opcode::ReadFixed::new(types::Fixed(req.fd as u32), req.buf, req.len, index)
                    .offset(req.offset)
                    .rw_flags(req.rw_flags)
                    .build()
            }
            (None, false) => opcode::Read::new(types::Fd(req.fd), req.buf, req.len)
                .offset(req.offset)
                .rw_flags(req.rw_flags)
                .build(),
            (None, true) => opcode::Read::new(types::Fixed(req.fd as u32), req.buf, req.len)
                .offset(req.offset)
                .rw_flags(req.rw_flags)
                .build(),
        }
        .user_data(req.user_data);
        let entry = if req.then {
            entry.flags(squeue::Flags::IO_HARDLINK)
        } else {
            entry
        };
        if self.ring.submission().is_full() {
            self.submit(0)?;
        }
        // SAFETY: the caller promises the buffer outlives the read (this trait's contract); the entry
        // is fully built above.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))
    }

    fn submit(&mut self, wait: usize) -> io::Result<()> {
        let sqpoll_awake = self.sqpoll && wait == 0 && !self.ring.submission().need_wakeup();
        if !sqpoll_awake {
            ENTERS.fetch_add(1, Ordering::Relaxed);
        }
        entered(self.ring.submit_and_wait(wait))
    }

    fn pop(&mut self) -> Option<(u64, i32)> {
        for c in self.ring.completion() {
            match c.user_data() {
                CANCEL_TAG => {}
                CANCEL_POLL_TAG => self.watching = None,
                ud => return Some((ud, c.result())),
            }
        }
        None
    }

    fn cancel(&mut self, user_data: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(CANCEL_TAG);
        if self.ring.submission().is_full() {
            self.submit(0)?;
        }
        // SAFETY: a cancel request refers to no memory of ours.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))
    }

    fn watch(&mut self, fd: RawFd) -> io::Result<()> {
        if self.watching == Some(fd) {
            return Ok(());
        }
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(CANCEL_POLL_TAG);
        if self.ring.submission().is_full() {
            self.submit(0)?;
        }
        // SAFETY: a poll refers to no memory of ours; the kernel holds its own reference to the file.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.watching = Some(fd);
        Ok(())
    }
}

/// The result of an `io_uring_enter`, with what only means "come back" taken as success: a signal
/// (`EINTR`: the caller loops, and looks first at why, an interrupt request say), a full completion
/// queue (`EBUSY`: the caller reaps and comes back), `EAGAIN`.
pub(crate) fn entered(res: io::Result<usize>) -> io::Result<()> {
    match res {
        Ok(_) => Ok(()),
        Err(e) => match e.raw_os_error() {
            Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => Ok(()),
            _ => Err(e),
        },
    }
}

/// How many CPUs this process may run on (`sched_getaffinity`), at least 1.
pub(crate) fn usable_cpus() -> usize {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most size_of::<cpu_set_t>() bytes.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            (libc::CPU_COUNT(&set) as usize).max(1)
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// Explains a failed `io_uring_setup` in words a user can act on.
pub(crate) fn explain_setup_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            "the kernel has no io_uring (ENOSYS: older than 5.1, or built without it)".into()
        }
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "io_uring_setup was refused ({}: a seccomp profile, as containers use, or the \
             kernel.io_uring_disabled sysctl, which is {})",
            if e.raw_os_error() == Some(libc::EPERM) {
                "EPERM"
            } else {
                "EACCES"
            },
            std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unreadable".into())
        ),
        _ => format!("io_uring_setup failed: {}", crate::error::Reason(e)),
    }
}
