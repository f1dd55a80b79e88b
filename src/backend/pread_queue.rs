//! The engine's lanes without io_uring: a [`Queue`] whose reads are `pread(2)` (or `read(2)` for a
//! stream) done at submit time, on the lane's own thread. Where the kernel refuses io_uring, this
//! keeps every lane, the baton and the in-order rules, and both CPUs copying, with plain system calls.

use std::collections::VecDeque;
use std::io;

use crate::ring::{Queue, ReadReq, CURRENT_POSITION};

/// Reads queued by the engine, done synchronously at [`Queue::submit`].
#[derive(Debug, Default)]
pub(crate) struct PreadQueue {
    queued: Vec<ReadReq>,
    done: VecDeque<(u64, i32)>,
}

// SAFETY: the queued requests hold raw pointers into the lane's arena, which only this lane's
// thread uses; moving the queue to that thread moves nothing else.
unsafe impl Send for PreadQueue {}

impl Queue for PreadQueue {
    unsafe fn push(&mut self, req: ReadReq) -> io::Result<()> {
        self.queued.push(req);
        Ok(())
    }

    fn submit(&mut self, _wait: usize) -> io::Result<()> {
        for r in self.queued.drain(..) {
            // SAFETY: the engine lent r.buf .. r.buf + r.len until this read's completion is popped
            // (the Queue contract); the call writes at most r.len bytes there.
            let n = unsafe {
                if r.offset == CURRENT_POSITION {
                    libc::read(r.fd, r.buf.cast(), r.len as usize)
                } else {
                    libc::pread(r.fd, r.buf.cast(), r.len as usize, r.offset as libc::off_t)
                }
            };
            let res = if n < 0 {
                let errno = io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO);
                if errno == libc::EAGAIN {
                    // A non-blocking descriptor: wait until it has data, then the engine retries.
                    let mut pfd = libc::pollfd {
                        fd: r.fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut pfd, 1, -1) };
                }
                -errno // EINTR and EAGAIN are retried by the engine, after it looks at interrupts
            } else {
                n as i32
            };
            self.done.push_back((r.user_data, res));
        }
        Ok(())
    }

    fn pop(&mut self) -> Option<(u64, i32)> {
        self.done.pop_front()
    }

    fn cancel(&mut self, _: u64) -> io::Result<()> {
        Ok(()) // every read is finished by the time submit returns
    }
}
