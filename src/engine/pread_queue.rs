//! The engine's lanes without io_uring: a [`Queue`] whose reads are `pread(2)` (or `read(2)` for a
//! stream) done at submit time, on the lane's own thread. Where the kernel refuses io_uring, this
//! keeps every lane, the baton and the in-order rules, and both CPUs copying, with plain system calls;
//! one lane of depth one on it is the synchronous path.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

use crate::cancel::poll_readable;
use crate::ring::{Queue, ReadReq};
use crate::sys::CURRENT_POSITION;

/// Reads queued by the engine, done synchronously at [`Queue::submit`].
#[derive(Debug, Default)]
pub(crate) struct PreadQueue {
    queued: Vec<ReadReq>,
    done: VecDeque<(u64, i32)>,
    /// A cancel handle's `eventfd`: a wait for a stream's data also ends when it is readable.
    watch: Option<RawFd>,
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
        // Drained in place: the queue keeps its capacity from batch to batch.
        let PreadQueue {
            queued,
            done,
            watch,
        } = self;
        for r in queued.drain(..) {
            let stream = r.offset == CURRENT_POSITION;
            // A stream's read may wait forever: wait in poll(2), beside the cancel handle, first.
            if stream && watch.is_some() && !poll_readable(r.fd, *watch) {
                // Cancelled: EINTR makes the lane look at its cancel handle before anything else.
                done.push_back((r.user_data, -libc::EINTR));
                continue;
            }
            // SAFETY: the engine lent r.buf .. r.buf + r.len until this read's completion is popped
            // (the Queue contract); the call writes at most r.len bytes there.
            let n = unsafe {
                if stream {
                    libc::read(r.fd, r.buf.cast(), r.len as usize)
                } else if r.rw_flags != 0 {
                    let iov = libc::iovec {
                        iov_base: r.buf.cast(),
                        iov_len: r.len as usize,
                    };
                    libc::preadv2(r.fd, &iov, 1, r.offset as libc::off_t, r.rw_flags)
                } else {
                    // The system call itself: libc's pread is a thread cancellation point, which
                    // costs two calls around every read, and nothing here cancels threads.
                    libc::syscall(
                        libc::SYS_pread64,
                        r.fd,
                        r.buf,
                        r.len as usize,
                        r.offset as libc::off_t,
                    ) as isize
                }
            };
            // EINTR and EAGAIN are retried by the engine, after it looks at its cancel handle.
            let res = crate::sys::completion(n);
            if res == -libc::EAGAIN {
                // A non-blocking descriptor: wait until it has data, then the engine retries.
                poll_readable(r.fd, *watch);
            }
            done.push_back((r.user_data, res));
        }
        Ok(())
    }

    fn pop(&mut self) -> Option<(u64, i32)> {
        self.done.pop_front()
    }

    fn cancel(&mut self, user_data: u64) -> io::Result<()> {
        // A read not yet done is dropped; one done already is in `done`.
        if let Some(i) = self.queued.iter().position(|r| r.user_data == user_data) {
            self.queued.swap_remove(i);
            self.done.push_back((user_data, -libc::ECANCELED));
        }
        Ok(())
    }

    fn watch(&mut self, fd: RawFd) -> io::Result<()> {
        self.watch = Some(fd);
        Ok(())
    }
}
