//! One whole-file read on a driver lane ([`WholeOp`]): `STATX`, then `OPENAT`, the reads into one
//! buffer from the driver's pool, and `CLOSE`, one operation in the kernel at a time, each pushed by
//! the lane that reaped the one before (no round trip through the task between them).
//!
//! The op owns everything the kernel is given a pointer to (the path, the `statx` record, the buffer
//! through its [`Lease`]) in heap allocations that do not move with it, and the lane keeps the op in
//! its slab until the operation's completion is reaped: nothing the kernel may still write is freed
//! before. The op says what to do next ([`WholeOp::io`]) and what a completion means
//! ([`WholeOp::complete`]); the lane performs it on its ring, or with the system call itself
//! ([`perform`]) where the ring is refused and for FUSE files.
//!
//! Its outcome goes to its [`Batch`] as soon as it is known (the bytes as soon as the last read
//! completes); the close follows on the lane.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::many::{Batch, Lease, Outcome};
use crate::chunks::{Chunks, Piece, Step};
use crate::file::on_fuse;
use crate::ring::Statx;

/// The longest single read (a whole file is read in pieces of this many bytes into its buffer).
const PIECE: usize = 1 << 30;

/// How much of a file that says it is empty on a file system without a device (tmpfs, procfs,
/// sysfs) is read to find out: procfs says 0 for files that have bytes.
const PROBE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Stat,
    Open,
    Read,
    Close,
}

/// What an op asks of the kernel next.
pub(super) enum Io<'a> {
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

/// One file being read whole.
pub(super) struct WholeOp {
    pub(super) batch: Arc<Batch>,
    /// Its place in the batch's inputs.
    pub(super) index: usize,
    /// Which of the driver's threads it goes to.
    pub(super) lane: usize,
    path: CString,
    statx: Box<Statx>,
    phase: Phase,
    fd: RawFd,
    /// The buffer length it needs (0: none), known once `statx` is in.
    pub(super) need: usize,
    /// Its buffer, from the driver's pool (given when its turn comes, see [`Batch`]).
    pub(super) buf: Option<Lease>,
    rules: Chunks,
    piece: Piece,
    blocking: bool,
    /// Its size said 0 where that may not be true: reading [`PROBE`] bytes tells.
    probe: bool,
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
    pub(super) fn new(batch: Arc<Batch>, index: usize, path: CString, lane: usize) -> WholeOp {
        WholeOp {
            batch,
            index,
            lane,
            path,
            // SAFETY: all-zero is a valid statx record.
            statx: Box::new(unsafe { std::mem::zeroed() }),
            phase: Phase::Stat,
            fd: -1,
            need: 0,
            buf: None,
            rules: Chunks::new(0, PIECE, Some(0), 0, true, None),
            piece: Piece {
                k: 0,
                offset: 0,
                want: 0,
                filled: 0,
            },
            blocking: false,
            probe: false,
            rw_flags: 0,
            drop_after: false,
            counted: false,
            delivered: false,
        }
    }

    /// Counts the op in the driver's `in_flight` (it is sent to a lane, or pushed on its ring).
    pub(super) fn count(&mut self) {
        if !self.counted {
            self.counted = true;
            self.batch.counters.in_flight.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// No longer counted: parked in its batch, waiting for a buffer.
    pub(super) fn uncount(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.batch.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Drops a parked op whose outcome its batch decided (nothing of it is in the kernel).
    pub(super) fn dismiss(mut self) {
        self.delivered = true;
    }

    /// Whether an `IORING_OP_ASYNC_CANCEL` may stop what it has in the kernel (a close is left to
    /// finish: a cancelled close would leave the descriptor open).
    pub(super) fn cancellable(&self) -> bool {
        self.phase != Phase::Close
    }

    /// What to ask the kernel next; `None`: the op is finished (drop it). Once its consumer is gone,
    /// only the close is left.
    pub(super) fn io(&mut self) -> Option<Io<'_>> {
        if self.phase != Phase::Close && self.batch.is_closed() {
            self.delivered = true;
            self.phase = Phase::Close;
        }
        match self.phase {
            Phase::Stat => Some(Io::Statx {
                path: &self.path,
                out: &mut *self.statx,
            }),
            Phase::Open => Some(Io::Open { path: &self.path }),
            Phase::Read => {
                let r = self.rules.next_read(&self.piece);
                let lease = self.buf.as_ref()?;
                let at = self.piece.offset as usize + r.buf_offset;
                debug_assert!(at + r.len as usize <= lease.capacity());
                Some(Io::Read {
                    fd: self.fd,
                    // `at + len` <= the file's size as statx gave it <= the buffer's length.
                    buf: lease.ptr().wrapping_add(at),
                    len: r.len,
                    offset: r.offset,
                    blocking: self.blocking,
                    rw_flags: self.rw_flags,
                })
            }
            Phase::Close if self.fd >= 0 => Some(Io::Close { fd: self.fd }),
            Phase::Close => None,
        }
    }

    /// Hands the outcome to the batch (ops whose buffers came meanwhile go to `out`).
    fn deliver(&mut self, outcome: Outcome, out: &mut Vec<WholeOp>) {
        self.delivered = true;
        let batch = Arc::clone(&self.batch);
        batch.deliver(self.index, outcome, out);
    }

    /// Closes the descriptor next if there is one (else the op is finished).
    fn close(mut self, out: &mut Vec<WholeOp>) {
        self.phase = Phase::Close;
        if self.fd >= 0 {
            out.push(self);
        }
    }

    /// The operation [`WholeOp::io`] asked for completed with `res` (`-errno` on failure). The op,
    /// if it goes on, and the ops given a buffer meanwhile (see [`Batch::sized`]) go to `out`.
    pub(super) fn complete(mut self, res: i32, out: &mut Vec<WholeOp>) {
        let closed = self.batch.is_closed();
        match self.phase {
            Phase::Stat => {
                if closed {
                    self.delivered = true;
                } else if res == -libc::ECANCELED {
                    self.deliver(Outcome::Interrupted, out);
                } else if res < 0 {
                    self.deliver(Outcome::OpenFailed(-res), out);
                } else {
                    self.stat_done(out);
                }
            }
            Phase::Open => {
                if res >= 0 {
                    self.fd = res;
                }
                if closed {
                    self.delivered = true;
                    return self.close(out);
                }
                if res == -libc::ECANCELED {
                    self.deliver(Outcome::Interrupted, out);
                    return;
                }
                if res < 0 {
                    self.deliver(Outcome::OpenFailed(-res), out);
                    return;
                }
                // Files the lanes must not read through io_uring (FUSE, see the reader) are read
                // with read(2) on the lane. Only anonymous devices (major 0) need the look.
                self.blocking = self.statx.stx_dev_major == 0 && on_fuse(self.fd);
                if self.batch.dontcache.load(Ordering::Relaxed) {
                    self.uncached();
                }
                match self.rules.piece(0, 0) {
                    Some(p) => {
                        self.piece = p;
                        self.phase = Phase::Read;
                        out.push(self);
                    }
                    None => {
                        // An empty file: opened (as `std::fs::read` does, so permissions count),
                        // nothing to read.
                        self.deliver(Outcome::Empty, out);
                        self.close(out);
                    }
                }
            }
            Phase::Read => {
                if closed {
                    self.delivered = true;
                    return self.close(out);
                }
                if res == -libc::ECANCELED {
                    self.deliver(Outcome::Interrupted, out);
                    return self.close(out);
                }
                match self.rules.complete(&mut self.piece, res) {
                    Step::Again => out.push(self),
                    Step::Ready { last: false } => match self.rules.piece(self.piece.k + 1, 0) {
                        Some(p) => {
                            self.piece = p;
                            out.push(self);
                        }
                        None => self.finish_read(out),
                    },
                    Step::Ready { last: true } => self.finish_read(out),
                    Step::Failed { errno } => {
                        let offset = self.piece.offset + self.piece.filled as u64;
                        self.deliver(Outcome::ReadFailed { offset, errno }, out);
                        self.close(out);
                    }
                }
            }
            Phase::Close => {
                if res == -libc::ECANCELED {
                    // Not closed after all (a driver-wide cancel caught it): close it here.
                    // SAFETY: our descriptor, given up now.
                    unsafe { libc::close(self.fd) };
                }
                self.fd = -1;
            }
        }
    }

    /// `statx` is in: refuse what this way cannot read, else wait for a buffer (or go on).
    fn stat_done(mut self, out: &mut Vec<WholeOp>) {
        let mode = u32::from(self.statx.stx_mode) & libc::S_IFMT;
        let size = self.statx.stx_size;
        if mode == libc::S_IFDIR {
            return self.deliver(Outcome::OpenFailed(libc::EISDIR), out);
        }
        if mode != libc::S_IFREG {
            // A FIFO's open would wait for a writer, a device's may wait or never end.
            return self.deliver(Outcome::NotRegular(mode), out);
        }
        // procfs says 0 for files that have bytes (tmpfs's empty files are empty): read a page to
        // see. Files on a device say their size.
        self.probe = size == 0 && self.statx.stx_dev_major == 0;
        let limit = if self.probe { PROBE } else { size };
        if limit > 0 {
            match self.batch.pool.whole_len(limit) {
                Some(len) => self.need = len,
                None => return self.deliver(Outcome::TooLarge(size), out),
            }
        }
        // Reads stop at the size statx gave (a file that grew since is read to that size; one that
        // shrank, to its new end).
        self.rules = Chunks::new(0, PIECE, Some(limit), limit, true, None);
        self.phase = Phase::Open;
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

    /// The last read is in: the bytes go to the batch, the descriptor is closed next.
    fn finish_read(mut self, out: &mut Vec<WholeOp>) {
        if self.drop_after {
            // SAFETY: advice on the op's own descriptor.
            unsafe { libc::posix_fadvise(self.fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
        let len = self.piece.offset + self.piece.filled as u64;
        let lease = self.buf.take();
        if self.probe && len == PROBE {
            // A page full, and maybe more: read to the end elsewhere.
            drop(lease);
            self.deliver(Outcome::Fallback, out);
        } else {
            match lease {
                Some(lease) if len > 0 => self.deliver(Outcome::Bytes(lease, len as usize), out),
                _ => self.deliver(Outcome::Empty, out),
            }
        }
        self.close(out);
    }

    /// The driver was cancelled before this op reached the kernel.
    pub(super) fn interrupt(mut self, out: &mut Vec<WholeOp>) {
        if self.batch.is_closed() {
            self.delivered = true;
        } else {
            self.deliver(Outcome::Interrupted, out);
        }
        self.close(out);
    }

    /// The ring failed with this op in it: the kernel may still write its buffer and path, so they
    /// are leaked; the outcome is an I/O error.
    pub(super) fn abandon(mut self, out: &mut Vec<WholeOp>) {
        if let Some(lease) = self.buf.take() {
            lease.leak();
        }
        std::mem::forget(std::mem::take(&mut self.path));
        std::mem::forget(std::mem::replace(
            &mut self.statx,
            // SAFETY: all-zero is a valid statx record.
            Box::new(unsafe { std::mem::zeroed() }),
        ));
        if self.batch.is_closed() || self.delivered {
            self.delivered = true;
        } else if self.phase == Phase::Read {
            let offset = self.piece.offset + self.piece.filled as u64;
            self.deliver(
                Outcome::ReadFailed {
                    offset,
                    errno: libc::EIO,
                },
                out,
            );
        } else {
            self.deliver(Outcome::OpenFailed(libc::EIO), out);
        }
        self.phase = Phase::Close;
        // The descriptor is closed by Drop: the kernel holds its own reference to the file.
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
pub(super) fn perform(io: Io<'_>) -> i32 {
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
