//! [`Cancel`]: a handle that stops reads from any thread, or from a signal handler.
//!
//! A handle is a flag and an `eventfd`. [`Cancel::cancel`] sets the flag and makes the `eventfd`
//! readable, and it stays readable: every waiter sees it, however many there are and whenever they
//! look. Each path that can block watches the `eventfd` beside its own wait:
//!
//! - an io_uring lane keeps a `POLL_ADD` on it in its ring, so a lane asleep in `io_uring_enter`
//!   wakes with that poll's completion, cancels its reads in flight (`IORING_OP_ASYNC_CANCEL`: a
//!   pipe's may never complete on their own) and reaps them;
//! - a `read(2)` of a pipe, FIFO or socket first `poll(2)`s the descriptor together with the
//!   `eventfd`, so a silent writer cannot hold it;
//! - a FIFO that a `Reader` opens by path is opened with `O_NONBLOCK` and waits for its writer
//!   in the same `poll(2)`, not in `open(2)`, so a FIFO that never gets a writer cannot hold its
//!   open either (nor, in `read_each`, the call);
//! - an open or `statx` in io_uring's workers (a file on a stalled FUSE server) is cancelled with
//!   `IORING_OP_ASYNC_CANCEL`;
//! - a `pread(2)` of a regular file is never stopped part way; the flag is looked at between reads.
//!
//! Both halves of [`Cancel::cancel`] (an atomic store and a `write(2)`) are async-signal-safe, so a
//! SIGINT handler may call it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Stops the reads of every [`Reader`](crate::Reader), stream or driver it is given to, from any
/// thread: they end with [`Error::Interrupted`](crate::Error::Interrupted) after every read in
/// flight is reaped (or cancelled, then reaped). Cloning is cheap; clones share one state.
///
/// ```
/// use ringread::{Cancel, ReadOptions, Reader};
/// let cancel = Cancel::new()?;
/// let mut reader = Reader::new(ReadOptions::default());
/// reader.set_cancel(cancel.clone());
/// // From another thread, a signal handler, a timeout ...:
/// cancel.cancel();
/// let mut bytes = ringread::processor::ByteCount::default();
/// let err = reader.read("Cargo.toml", &mut bytes).unwrap_err();
/// assert!(matches!(err, ringread::Error::Interrupted { .. }));
/// // Ready to be used again:
/// cancel.reset();
/// reader.read("Cargo.toml", &mut bytes)?;
/// # Ok::<(), ringread::Error>(())
/// ```
#[derive(Clone)]
pub struct Cancel {
    inner: Arc<Inner>,
}

struct Inner {
    flag: AtomicBool,
    /// Readable once cancelled (its counter is non-zero), until [`Cancel::reset`].
    event: OwnedFd,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    /// A new handle, not cancelled. Fails only if the process cannot have another descriptor.
    pub fn new() -> crate::Result<Cancel> {
        // SAFETY: eventfd takes no pointers; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(crate::Error::Ring {
                path: "cancel handle".into(),
                op: "eventfd",
                source: io::Error::last_os_error(),
            });
        }
        Ok(Cancel {
            inner: Arc::new(Inner {
                flag: AtomicBool::new(false),
                // SAFETY: a descriptor just returned to us, owned by nobody else.
                event: unsafe { OwnedFd::from_raw_fd(fd) },
            }),
        })
    }

    /// Stops every read this handle was given to. Async-signal-safe. Reads started after this call
    /// stop at once, until [`Cancel::reset`].
    pub fn cancel(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        signal_event(self.inner.event.as_raw_fd());
    }

    /// Whether [`Cancel::cancel`] was called (and not [`Cancel::reset`] since).
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// Makes the handle usable again. Call it only when no read it was given to is running.
    pub fn reset(&self) {
        self.inner.flag.store(false, Ordering::SeqCst);
        let mut counter = 0u64;
        // SAFETY: reads 8 bytes into a live u64; the descriptor is non-blocking (EAGAIN when the
        // counter is already 0).
        unsafe {
            libc::read(
                self.inner.event.as_raw_fd(),
                (&mut counter as *mut u64).cast(),
                8,
            )
        };
    }

    /// The `eventfd` that becomes readable (`POLLIN`) when the handle is cancelled.
    pub(crate) fn event_fd(&self) -> RawFd {
        self.inner.event.as_raw_fd()
    }
}

/// Makes an `eventfd` readable: adds 1 to its counter. Async-signal-safe (one `write(2)`).
pub(crate) fn signal_event(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64. It fails only when the counter would overflow (then
    // the descriptor is readable already) or the descriptor is not an eventfd (nothing is written).
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Waits until `fd` is readable (or hung up), or `cancel` is cancelled. Returns `false` if cancelled.
/// For `read(2)` of pipes, FIFOs and sockets on paths without io_uring.
pub(crate) fn wait_readable(fd: RawFd, cancel: Option<&Cancel>) -> bool {
    !cancel.is_some_and(Cancel::is_cancelled) && poll_readable(fd, cancel.map(Cancel::event_fd))
}

/// Waits in `poll(2)` until `fd` is readable or hung up (`true`), or `watch` (a cancel handle's
/// `eventfd`) is readable (`false`). A failing `poll` returns `true`: the read that follows says
/// what is wrong.
pub(crate) fn poll_readable(fd: RawFd, watch: Option<RawFd>) -> bool {
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: watch.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfds for the duration of the call (a negative fd is ignored).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n > 0 {
            return fds[1].revents == 0;
        }
        if n < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_wakes_a_poller_on_another_thread_and_reset_clears() {
        let c = Cancel::new().unwrap();
        let mut p = [0 as RawFd; 2];
        // SAFETY: a pipe into a live array of two descriptors.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        let c2 = c.clone();
        let t = std::thread::spawn(move || wait_readable(p[0], Some(&c2)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        c.cancel();
        assert!(!t.join().unwrap());
        assert!(c.is_cancelled());
        c.reset();
        assert!(!c.is_cancelled());
        // SAFETY: writes one byte from a live array to the pipe we made.
        assert_eq!(unsafe { libc::write(p[1], b"x".as_ptr().cast(), 1) }, 1);
        assert!(wait_readable(p[0], Some(&c)));
        // SAFETY: our descriptors, closed once.
        unsafe {
            libc::close(p[0]);
            libc::close(p[1]);
        }
    }
}
