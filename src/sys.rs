//! The one adapter from a system call's return to what an io_uring completion says: the count, or
//! `-errno`. Every path that reads with a system call where a completion could have come (the
//! pread lanes, the async driver's threads without io_uring or for FUSE files, whole files read
//! with `statx`/`open`/`pread`/`close`) reports through it, so the chunk rules see one shape.

use std::io;

/// The offset that means "the file's current position" (pipes and other streams): `read(2)`
/// instead of `pread(2)`, and io_uring's offset -1.
pub(crate) const CURRENT_POSITION: u64 = u64::MAX;

/// `n` (a system call's return) as a completion's result: `n` itself, or `-errno` when it failed
/// (`EIO` if the kernel left no errno).
pub(crate) fn completion(n: isize) -> i32 {
    if n < 0 {
        -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        n as i32
    }
}

/// `pread(2)` of `buf.len()` bytes at `offset` into `buf`, as a completion gives it: the count,
/// or `-errno`.
pub(crate) fn pread(fd: std::os::fd::RawFd, buf: &mut [u8], offset: u64) -> i32 {
    // SAFETY: writes at most `buf.len()` bytes into `buf`, which is ours for the call.
    let n = unsafe {
        libc::pread(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            offset as libc::off_t,
        )
    };
    completion(n)
}
