//! The stream driver's ring ([`DriverRing`]): reads into buffers the driver's streams own, the
//! `STATX`, `OPENAT` and `CLOSE` of whole-file reads, a read on the driver's own `eventfd` to wake
//! it, a poll on a [`Cancel`](crate::Cancel) handle's `eventfd`, and cancellation of operations in
//! flight. The driver (`crate::stream`) decides what to do; this is the only place its io_uring is
//! touched.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use io_uring::{opcode, squeue, types, IoUring};

use super::{entered, setup, Statx, CANCEL_POLL_TAG, CANCEL_TAG, ENTERS, WAKE_TAG};

/// Submission queue entries of a driver ring.
const RING_ENTRIES: u32 = 256;

/// What a completion of a driver ring is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DriverCqe {
    /// The read on the wake-up `eventfd` completed: look at the queue (and arm it again).
    Wake,
    /// The cancel handle's `eventfd` became readable.
    Cancelled,
    /// An operation pushed with [`DriverRing::push_read`], [`DriverRing::push_statx`],
    /// [`DriverRing::push_openat`] or [`DriverRing::push_close`] completed with `res` (bytes, a
    /// descriptor, 0, or `-errno`).
    Read {
        /// The read's `user_data`.
        user_data: u64,
        /// Bytes read, or `-errno`.
        res: i32,
    },
}

/// A driver lane's ring. Made on the thread that uses it (it is set up `SINGLE_ISSUER` where the
/// kernel has that).
pub(crate) struct DriverRing {
    ring: IoUring,
    /// Where the wake-up read puts the `eventfd`'s counter. Boxed: the kernel holds its address.
    wake_buf: Box<u64>,
    wake_armed: bool,
    cancel_armed: bool,
    /// The table of registered buffers: not made yet (`None`), made with this many entries, or
    /// refused (`Some(0)`).
    table: Option<u32>,
}

impl DriverRing {
    /// Sets up a ring for the driver (cooperative task running and a single issuer, where the kernel
    /// has them).
    pub(crate) fn new() -> io::Result<DriverRing> {
        Ok(DriverRing {
            ring: setup(RING_ENTRIES, false, true)?,
            wake_buf: Box::new(0),
            wake_armed: false,
            cancel_armed: false,
            table: None,
        })
    }

    /// Registers `buf .. buf + len` as entry `index` of this ring's table of registered buffers
    /// (`IORING_REGISTER_BUFFERS_UPDATE`), replacing what the entry held (whose pages the kernel
    /// then unpins). The table, of `entries` empty entries (`IORING_RSRC_REGISTER_SPARSE`), is made
    /// at the first call. Fails with the kernel's reason: `ENOMEM` when the pages would pass
    /// `RLIMIT_MEMLOCK` (`ulimit -l`, 8 MiB for ordinary users), `EINVAL`/`EOPNOTSUPP` on kernels
    /// before 5.13; the caller then reads into the buffer with plain reads.
    ///
    /// # Safety
    /// Until the entry is replaced or the ring is dropped, a read pushed with
    /// [`DriverRing::push_read_fixed`] with `index` must be into this buffer, alive; the kernel
    /// holds the pages pinned meanwhile, so freeing the memory is not itself a hazard, reading
    /// into it through a stale entry is.
    pub(crate) unsafe fn register_buffer(
        &mut self,
        entries: u16,
        index: u16,
        buf: *mut u8,
        len: usize,
    ) -> io::Result<()> {
        if self.table.is_none() {
            let made = self
                .ring
                .submitter()
                .register_buffers_sparse(entries as u32);
            self.table = Some(if made.is_ok() { entries as u32 } else { 0 });
            made?;
        }
        if self.table.is_none_or(|n| index as u32 >= n) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let iov = libc::iovec {
            iov_base: buf.cast(),
            iov_len: len,
        };
        // SAFETY: the caller's promise: reads through this entry go into this buffer while it
        // lives.
        unsafe {
            self.ring
                .submitter()
                .register_buffers_update(index as u32, &[iov], None)
        }
    }

    /// As [`DriverRing::push_read`], as a `READ_FIXED` into registered buffer `index` (the kernel
    /// pins no pages for it: they are pinned already).
    ///
    /// # Safety
    /// As for [`DriverRing::push_read`]; and `buf .. buf + len` must lie within the buffer
    /// registered as entry `index` by [`DriverRing::register_buffer`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn push_read_fixed(
        &mut self,
        fd: RawFd,
        buf: *mut u8,
        len: u32,
        offset: u64,
        rw_flags: i32,
        index: u16,
        user_data: u64,
    ) {
        debug_assert!(user_data < CANCEL_POLL_TAG);
        let e = opcode::ReadFixed::new(types::Fd(fd), buf, len, index)
            .offset(offset)
            .rw_flags(rw_flags)
            .build()
            .user_data(user_data);
        // SAFETY: the caller's promise covers the buffer, its registration and the descriptor.
        unsafe { self.push(&e) }
    }

    /// Queues a read of `len` bytes at `offset` ([`CURRENT_POSITION`](crate::sys::CURRENT_POSITION) for a
    /// stream) of `fd` into `buf`, with `RWF_*` flags `rw_flags`; its completion carries `user_data` (which must be below
    /// [`CANCEL_TAG`], [`WAKE_TAG`] and [`CANCEL_POLL_TAG`]).
    ///
    /// # Safety
    /// `buf .. buf + len` must stay allocated, and be neither read nor written by anyone else, and
    /// `fd` must stay open, until this read's completion has been returned by
    /// [`DriverRing::completions`] (or for ever, if the ring fails: then the caller must leak them).
    pub(crate) unsafe fn push_read(
        &mut self,
        fd: RawFd,
        buf: *mut u8,
        len: u32,
        offset: u64,
        rw_flags: i32,
        user_data: u64,
    ) {
        debug_assert!(user_data < CANCEL_POLL_TAG);
        let e = opcode::Read::new(types::Fd(fd), buf, len)
            .offset(offset)
            .rw_flags(rw_flags)
            .build()
            .user_data(user_data);
        // SAFETY: the caller's promise covers the buffer and the descriptor.
        unsafe { self.push(&e) }
    }

    /// Queues `statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_SIZE)` (symbolic links followed) into
    /// `out`; its completion carries `user_data` (below the tags, as for [`DriverRing::push_read`]).
    /// The same entry as the engine's (`ring/files.rs`). The kernel runs it in its io-wq workers.
    ///
    /// # Safety
    /// `path` and `out` must stay allocated (and `out` neither read nor written by anyone else)
    /// until this operation's completion has been returned by [`DriverRing::completions`] (or for
    /// ever, if the ring fails: then the caller must leak them).
    pub(crate) unsafe fn push_statx(&mut self, path: &CStr, out: *mut Statx, user_data: u64) {
        debug_assert!(user_data < CANCEL_POLL_TAG);
        let e = super::files::statx_entry(path, out).user_data(user_data);
        // SAFETY: the caller's promise covers the path and the record.
        unsafe { self.push(&e) }
    }

    /// Queues `openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOCTTY)`; the completion's result is
    /// the new descriptor (the caller owns it) or `-errno`.
    ///
    /// # Safety
    /// `path` must stay allocated until this operation's completion has been returned by
    /// [`DriverRing::completions`] (or for ever, if the ring fails).
    pub(crate) unsafe fn push_openat(&mut self, path: &CStr, user_data: u64) {
        debug_assert!(user_data < CANCEL_POLL_TAG);
        let e = super::files::openat_entry(path, None, false, 0).user_data(user_data);
        // SAFETY: the caller's promise covers the path.
        unsafe { self.push(&e) }
    }

    /// Queues `close(fd)`: the caller gives the descriptor up.
    pub(crate) fn push_close(&mut self, fd: RawFd, user_data: u64) {
        debug_assert!(user_data < CANCEL_POLL_TAG);
        let e = super::files::close_entry(super::FileRef::Fd(fd)).user_data(user_data);
        // SAFETY: a close refers to no memory of ours.
        unsafe { self.push(&e) }
    }

    /// Keeps a read on the wake-up `eventfd` `fd` in the ring (arms it unless it is armed). The ring
    /// owns the 8 bytes it reads into.
    pub(crate) fn arm_wake(&mut self, fd: RawFd) {
        if self.wake_armed {
            return;
        }
        let e = opcode::Read::new(types::Fd(fd), (&mut *self.wake_buf as *mut u64).cast(), 8)
            .build()
            .user_data(WAKE_TAG);
        // SAFETY: `wake_buf` lives as long as the ring, and longer if the read is still armed when
        // the ring is dropped (see Drop). The caller keeps the eventfd open while the ring lives.
        unsafe { self.push(&e) };
        self.wake_armed = true;
    }

    /// Whether the wake-up read is in the ring.
    pub(crate) fn wake_armed(&self) -> bool {
        self.wake_armed
    }

    /// Cancels the wake-up read (at shutdown): its completion comes back as [`DriverCqe::Wake`].
    pub(crate) fn cancel_wake(&mut self) {
        self.cancel(WAKE_TAG);
    }

    /// Keeps a poll for `POLLIN` on a cancel handle's `eventfd` in the ring (arms it unless armed).
    pub(crate) fn arm_cancel_poll(&mut self, fd: RawFd) {
        if self.cancel_armed {
            return;
        }
        let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(CANCEL_POLL_TAG);
        // SAFETY: a poll refers to no memory of ours.
        unsafe { self.push(&e) };
        self.cancel_armed = true;
    }

    /// Whether the cancel poll is in the ring.
    pub(crate) fn cancel_poll_armed(&self) -> bool {
        self.cancel_armed
    }

    /// Stops the cancel poll (the handle was replaced, or the driver shuts down): its completion
    /// comes back as [`DriverCqe::Cancelled`].
    pub(crate) fn stop_cancel_poll(&mut self) {
        self.cancel(CANCEL_POLL_TAG);
    }

    /// Asks the kernel to cancel the operation carrying `user_data` (it still completes).
    pub(crate) fn cancel(&mut self, user_data: u64) {
        let e = opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(CANCEL_TAG);
        // SAFETY: a cancel refers to no memory of ours.
        unsafe { self.push(&e) };
    }

    /// Submits what is queued and waits for at least one completion ([`entered`]: a signal or a
    /// full completion queue is not an error).
    pub(crate) fn submit_and_wait(&mut self) -> io::Result<()> {
        ENTERS.fetch_add(1, Ordering::Relaxed);
        entered(self.ring.submit_and_wait(1))
    }

    /// Moves the completions that arrived into `out` (cancel requests' own are dropped).
    pub(crate) fn completions(&mut self, out: &mut Vec<DriverCqe>) {
        for c in self.ring.completion() {
            match c.user_data() {
                CANCEL_TAG => {}
                WAKE_TAG => {
                    self.wake_armed = false;
                    out.push(DriverCqe::Wake);
                }
                CANCEL_POLL_TAG => {
                    self.cancel_armed = false;
                    out.push(DriverCqe::Cancelled);
                }
                user_data => out.push(DriverCqe::Read {
                    user_data,
                    res: c.result(),
                }),
            }
        }
    }

    /// Pushes one entry, submitting first while the queue is full.
    ///
    /// # Safety
    /// Whatever memory the entry refers to must outlive the operation.
    unsafe fn push(&mut self, e: &squeue::Entry) {
        loop {
            // SAFETY: the caller's promise.
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return;
            }
            ENTERS.fetch_add(1, Ordering::Relaxed);
            let _ = self.ring.submit();
        }
    }
}

impl Drop for DriverRing {
    fn drop(&mut self) {
        if self.wake_armed {
            // The kernel may still write the eventfd's counter here after the ring closes (its
            // requests are torn down asynchronously): 8 bytes leaked rather than written after free.
            Box::leak(std::mem::replace(&mut self.wake_buf, Box::new(0)));
        }
    }
}
