//! Path operations on the ring, for reading many files at once: `STATX`, `OPENAT` and `CLOSE` beside
//! the reads. When they must block (a cold directory lookup), the kernel runs them in its io-wq
//! workers, so many files' metadata is fetched at once and overlaps their data reads.

use std::ffi::CStr;
use std::io;

use io_uring::{opcode, squeue, types};

use super::{FileRef, PathQueue, Ring};

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

    /// Lets up to `bounded` of the kernel's io-wq workers run this ring's blocking work at once
    /// (`IORING_REGISTER_IOWQ_MAX_WORKERS`, Linux 5.15). Opens and `statx` calls on cold metadata
    /// block in those workers, and the kernel's default (`4 x CPUs`, 8 here) caps how many inode
    /// reads a tree's walk has in flight. Best effort: an older kernel keeps its default.
    pub(crate) fn widen_workers(&mut self, bounded: u32) {
        let mut max = [bounded, 0];
        let _ = self.ring.submitter().register_iowq_max_workers(&mut max);
    }

    /// Registers an empty table of `n` files (`IORING_REGISTER_FILES` sparse, Linux 5.19), for
    /// opening files as direct descriptors: they take no room in the process's descriptor table
    /// (`ulimit -n` does not limit them) and reads on them skip the descriptor lookup. Whether the
    /// kernel took it.
    pub(crate) fn register_fixed_files(&mut self, n: u32) -> bool {
        self.ring.submitter().register_files_sparse(n).is_ok()
    }

    /// Whether the kernel has `STATX`, `OPENAT` and `CLOSE` on the ring (Linux 5.6).
    pub(crate) fn has_path_ops(&self) -> bool {
        self.path_ops
    }
}

/// The `STATX` entry for `path` (symbolic links followed; type and size), writing into `out`.
pub(super) fn statx_entry(path: &CStr, out: *mut Statx) -> squeue::Entry {
    opcode::Statx::new(types::Fd(libc::AT_FDCWD), path.as_ptr(), out.cast())
        .mask(libc::STATX_TYPE | libc::STATX_SIZE)
        .build()
}

/// The `OPENAT` entry for `path`, read-only (and `flags`): into entry `fixed` of the registered
/// file table, or as a process descriptor; with `link`, the next entry runs only if it succeeds.
pub(super) fn openat_entry(
    path: &CStr,
    fixed: Option<u32>,
    link: bool,
    flags: i32,
) -> squeue::Entry {
    // A direct descriptor is in no process's table, so there is nothing to close on exec (and
    // the kernel refuses O_CLOEXEC with it).
    let cloexec = if fixed.is_some() { 0 } else { libc::O_CLOEXEC };
    let mut open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(libc::O_RDONLY | cloexec | libc::O_NOCTTY | flags);
    if let Some(n) = fixed {
        open = open.file_index(types::DestinationSlot::try_from_slot_target(n).ok());
    }
    let entry = open.build();
    if link {
        entry.flags(squeue::Flags::IO_LINK)
    } else {
        entry
    }
}

/// The `CLOSE` entry for `file`.
pub(super) fn close_entry(file: FileRef) -> squeue::Entry {
    match file {
        FileRef::Fd(fd) => opcode::Close::new(types::Fd(fd)).build(),
        FileRef::Fixed(n) => opcode::Close::new(types::Fixed(n)).build(),
    }
}

impl PathQueue for Ring {
    unsafe fn push_statx(
        &mut self,
        path: &CStr,
        out: *mut Statx,
        user_data: u64,
    ) -> io::Result<()> {
        self.push_entry(&statx_entry(path, out).user_data(user_data))
    }

    unsafe fn push_openat(
        &mut self,
        path: &CStr,
        fixed: Option<u32>,
        link: bool,
        nonblock: bool,
        user_data: u64,
    ) -> io::Result<()> {
        let flags = if nonblock { libc::O_NONBLOCK } else { 0 };
        self.push_entry(&openat_entry(path, fixed, link, flags).user_data(user_data))
    }

    fn push_close(&mut self, file: FileRef, user_data: u64) -> io::Result<()> {
        self.push_entry(&close_entry(file).user_data(user_data))
    }

    fn stat_now(&mut self, path: &CStr, out: &mut Statx) -> i32 {
        // SAFETY: a NUL-terminated path and a statx record of ours for the kernel to fill.
        let r = unsafe {
            libc::statx(
                libc::AT_FDCWD,
                path.as_ptr(),
                0,
                libc::STATX_TYPE | libc::STATX_SIZE,
                out,
            )
        };
        if r == 0 {
            0
        } else {
            -io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        }
    }
}
