//! Path operations on the ring, for reading many files at once: `STATX`, `OPENAT` and `CLOSE` beside
//! the reads. When they must block (a cold directory lookup), the kernel runs them in its io-wq
//! workers, so many files' metadata is fetched at once and overlaps their data reads.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::Ring;

/// What `STATX` writes: the kernel's `struct statx` (256 bytes).
pub(crate) type Statx = libc::statx;

impl Ring {
    fn push_entry(&mut self, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        if self.ring.submission().is_full() {
            use super::Queue;
            self.submit(0)?;
        }
        // SAFETY: the callers below document why the memory each entry refers to outlives it.
        unsafe { self.ring.submission().push(entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))
    }

    /// Queues `statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_SIZE)` (symbolic links followed), whose
    /// completion carries `user_data`.
    ///
    /// # Safety
    /// `path` and `out` must stay valid (and `out` neither read nor written by anyone else) until
    /// the completion carrying `user_data` has been popped.
    pub(crate) unsafe fn push_statx(
        &mut self,
        path: &CStr,
        out: *mut Statx,
        user_data: u64,
    ) -> io::Result<()> {
        let entry = opcode::Statx::new(types::Fd(libc::AT_FDCWD), path.as_ptr(), out.cast())
            .mask(libc::STATX_TYPE | libc::STATX_SIZE)
            .build()
            .user_data(user_data);
        self.push_entry(&entry)
    }

    /// Queues `openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOCTTY)`; the completion's result is
    /// the new descriptor (the caller owns it) or `-errno`.
    ///
    /// # Safety
    /// `path` must stay valid until the completion carrying `user_data` has been popped.
    pub(crate) unsafe fn push_openat(&mut self, path: &CStr, user_data: u64) -> io::Result<()> {
        let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY)
            .build()
            .user_data(user_data);
        self.push_entry(&entry)
    }

    /// Queues `close(fd)`: the caller gives the descriptor up.
    pub(crate) fn push_close(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(user_data);
        self.push_entry(&entry)
    }

    /// Whether the kernel has `STATX`, `OPENAT` and `CLOSE` on the ring (Linux 5.6).
    pub(crate) fn has_path_ops(&self) -> bool {
        self.path_ops
    }
}
