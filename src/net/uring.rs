//! The io_uring way for streams: one armed request per stream, buffers from a shared provided
//! buffer ring, completions handed over in order as they come.
//!
//! Order: the completions of one multishot request come in the order the kernel received the
//! bytes, and a single-shot stream has one request at a time, so handing each completion over as it
//! is popped keeps every stream in order. A buffer goes back to the ring right after its processor
//! returns. A request ends (no `IORING_CQE_F_MORE`) at the end of the stream, on an error, or when
//! the ring ran dry (`-ENOBUFS`); in the last case, and after every single-shot read, the stream is
//! armed again once the batch of completions has given its buffers back.
//!
//! Cancel: with a [`Cancel`](crate::Cancel) handle, the ring also holds a one-shot `POLL_ADD` on
//! the handle's `eventfd` (its own tag), so a reader asleep in `io_uring_enter` wakes when another
//! thread cancels, sends an `ASYNC_CANCEL` for every armed request and reaps them all before
//! returning [`Error::Interrupted`].
//!
//! Panics: the processor runs while requests are armed, so the kernel may hold pool buffers. A
//! panic (the processor's, or ours) is caught, every request in the kernel is cancelled and reaped
//! (the ring counts them), and only then do ring and pool go and the panic resume.

use std::panic::{self, AssertUnwindSafe};

use libc::{EAGAIN, EBADFD, ECANCELED, EINTR, EINVAL, ENOBUFS, EOPNOTSUPP};

use super::{hand_over, read_error, Deliver, RingSetup, Stream, StreamOptions};
use crate::error::{Error, Result};
use crate::ring::{StreamCqe, StreamKind, StreamRing};

/// How long a wait for a batch of completions may hold back one that is ready, in microseconds.
const BATCH_WAIT_USEC: u32 = 50;

/// Set in the `user_data` of a stream's poll request (its index is in the low bits).
const POLL_BIT: u64 = 1 << 63;

/// The `user_data` of the poll on the cancel handle's `eventfd` (looked at before `POLL_BIT`).
const CANCEL_POLL: u64 = u64::MAX - 1;

/// One stream's progress.
struct State {
    /// Bytes delivered so far (the next chunk's offset).
    offset: u64,
    /// Whether a request of this stream is in the kernel.
    armed: bool,
    /// Multishot (else single-shot).
    multi: bool,
    /// The stream's result, once it has one; later completions are only reaped.
    done: Option<Result<u64>>,
    /// Whether a cancel was sent for its armed request.
    cancel_sent: bool,
    /// Whether the armed request is a poll (waiting for a non-blocking descriptor).
    polling: bool,
}

/// Reads every stream to its end (or error) on one ring. `Err` only when the ring cannot be set up;
/// then nothing was read. A panic of the processor is resumed once nothing is left in the kernel.
pub(super) fn run(
    streams: &[Stream<'_>],
    opts: &StreamOptions,
    multishot: bool,
    deliver: &mut Deliver<'_>,
) -> std::result::Result<Vec<Result<u64>>, RingSetup> {
    let mut ring =
        StreamRing::new(streams.len(), opts.buffers, opts.chunk_size).map_err(RingSetup)?;
    // READ_MULTISHOT on a FIFO opened by path was seen to miss the end (the writer gone, no 0
    // completion: `tests/bad_input.rs` `a_fifo_is_read_as_a_stream` hung on Linux 6.18), so pipes
    // are read single-shot until that is understood; sockets keep multishot RECV.
    let read_multi = false;
    let mut st: Vec<State> = streams
        .iter()
        .map(|s| State {
            offset: 0,
            armed: false,
            multi: multishot && (s.kind == StreamKind::Socket || read_multi),
            done: None,
            cancel_sent: false,
            polling: false,
        })
        .collect();
    // Everything that runs the processor runs in here: a panic must not unwind past the ring while
    // the kernel may still write into its pool.
    let driven = panic::catch_unwind(AssertUnwindSafe(|| {
        drive(&mut ring, streams, &mut st, opts, deliver)
    }));
    // Whatever happened, cancel and reap what is left (after a normal end, at most the poll on the
    // cancel handle; after a panic, any armed read). Then nothing of ours is in the kernel.
    match ring.cancel_and_reap() {
        Ok(()) => {
            debug_assert_eq!(ring.in_kernel(), 0);
            drop(ring);
        }
        // The ring cannot be waited on, so requests may stay in the kernel and write into the pool
        // at any time: never free it (nor the ring, which would unregister and free nothing safely).
        Err(_) => std::mem::forget(ring),
    }
    if let Err(payload) = driven {
        panic::resume_unwind(payload);
    }
    Ok(st
        .into_iter()
        .map(|s| s.done.unwrap_or(Ok(s.offset)))
        .collect())
}

/// The loop: arms, waits, hands completions over, until no stream has a request in the kernel (or
/// the ring fails, every open stream then ending with its error). Leaves at most the cancel poll
/// in the kernel on a normal end.
fn drive(
    ring: &mut StreamRing,
    streams: &[Stream<'_>],
    st: &mut [State],
    opts: &StreamOptions,
    deliver: &mut Deliver<'_>,
) {
    if let Some(cancel) = &opts.cancel {
        if let Err(e) = ring.arm_poll(cancel.event_fd(), CANCEL_POLL) {
            fail_open(streams, st, "submit", &e);
            return;
        }
    }
    Drive {
        ring,
        streams,
        st,
        opts,
        deliver,
        armed: 0,
        rearm: (0..streams.len()).collect(),
        poll: Vec::new(),
        interrupted: false,
    }
    .run();
}

/// The error of a ring operation `op` for stream `s`.
fn ring_err(s: &Stream<'_>, op: &'static str, source: std::io::Error) -> Error {
    Error::Ring {
        path: s.name.to_path_buf(),
        op,
        source,
    }
}

/// Ends every open stream with the error `e` of the ring operation `op`.
fn fail_open(streams: &[Stream<'_>], st: &mut [State], op: &'static str, e: &std::io::Error) {
    for (s, state) in streams.iter().zip(st.iter_mut()) {
        if state.done.is_none() {
            let e = std::io::Error::new(e.kind(), e.to_string());
            state.done = Some(Err(ring_err(s, op, e)));
        }
    }
}

/// The loop's state: the ring, the streams and their progress, and what is to be armed next.
struct Drive<'a, 'd> {
    ring: &'a mut StreamRing,
    streams: &'a [Stream<'a>],
    st: &'a mut [State],
    opts: &'a StreamOptions,
    deliver: &'a mut Deliver<'d>,
    /// The streams' requests in the kernel (the cancel poll not counted).
    armed: usize,
    /// Streams to arm with a read.
    rearm: Vec<usize>,
    /// Streams to arm with a poll (a non-blocking descriptor with nothing to read).
    poll: Vec<usize>,
    /// Whether a cancel ended every open stream (and asked the kernel to cancel their requests).
    interrupted: bool,
}

impl Drive<'_, '_> {
    fn run(&mut self) {
        // Wait for a few completions at a time if asked, where the kernel can bound the wait
        // (Linux 6.12). Never more than half the pool.
        let batch = self.opts.batch.min(self.opts.buffers / 2).max(1);
        loop {
            self.arm();
            if self.armed == 0 {
                break;
            }
            // A single-shot request completes once: wait for no more completions than can come.
            let multi = self.st.iter().any(|s| s.armed && s.multi && !s.polling);
            let want = if batch == 1 || multi {
                batch
            } else {
                self.armed.min(batch)
            };
            if let Err(e) = self.ring.submit_batched(want, BATCH_WAIT_USEC) {
                // The ring cannot wait any more: what is in flight cannot be reaped (the caller
                // tries once more, then leaks the ring).
                fail_open(self.streams, self.st, "enter", &e);
                break;
            }
            // The cancel poll's completion woke us, or the flag was set (by the processor, say):
            // end every open stream, and cancel every armed request; the loop reaps them.
            self.look_for_cancel();
            while let Some(c) = self.ring.pop() {
                self.complete(c);
            }
            // Looked at again before the next wait: a cancel that came after the look above, its
            // poll's completion popped in the loop, must not leave that wait with nothing to wake
            // it.
            self.look_for_cancel();
            self.ring.publish();
        }
    }

    /// Arms a read for each stream in `rearm` and a poll for each in `poll` that is still open.
    fn arm(&mut self) {
        for i in self.rearm.drain(..) {
            if self.st[i].done.is_some() {
                continue;
            }
            let s = &self.streams[i];
            match self.ring.arm(s.fd, s.kind, self.st[i].multi, i as u64) {
                Ok(()) => {
                    self.st[i].armed = true;
                    self.st[i].polling = false;
                    self.armed += 1;
                }
                Err(e) => self.st[i].done = Some(Err(ring_err(s, "submit", e))),
            }
        }
        for i in self.poll.drain(..) {
            if self.st[i].done.is_some() {
                continue;
            }
            let s = &self.streams[i];
            match self.ring.arm_poll(s.fd, i as u64 | POLL_BIT) {
                Ok(()) => {
                    self.st[i].armed = true;
                    self.st[i].polling = true;
                    self.armed += 1;
                }
                Err(e) => self.st[i].done = Some(Err(ring_err(s, "submit", e))),
            }
        }
    }

    /// Interrupts every stream, once, if the cancel handle was cancelled.
    fn look_for_cancel(&mut self) {
        if !self.interrupted && self.opts.cancelled() {
            self.interrupted = true;
            interrupt_all(self.ring, self.streams, self.st);
        }
    }

    /// Takes one completion: the cancel poll's, a stream's poll's, or a stream's read's.
    fn complete(&mut self, c: StreamCqe) {
        if c.user_data == CANCEL_POLL {
            // The handle was cancelled (the flag is looked at after this loop), or the poll
            // failed: either way it is not in the kernel any more, and is not armed again.
            return;
        }
        if c.user_data & POLL_BIT != 0 {
            // The descriptor is readable (or the poll was cancelled): read again.
            let i = (c.user_data & !POLL_BIT) as usize;
            self.st[i].armed = false;
            self.armed -= 1;
            if self.st[i].done.is_none() {
                self.rearm.push(i);
            }
            return;
        }
        let i = c.user_data as usize;
        if let Some(bid) = c.buf {
            self.hand_over_buf(i, bid, c.result);
            self.ring.give_back(bid);
        }
        if self.st[i].done.is_none() && !self.settle(i, &c) {
            return;
        }
        let state = &mut self.st[i];
        if !c.more {
            state.armed = false;
            self.armed -= 1;
            if state.done.is_none() {
                self.rearm.push(i);
            }
        } else if state.done.is_some() && !state.cancel_sent {
            state.cancel_sent = self.ring.cancel(i as u64).is_ok();
        }
    }

    /// Hands the `result` bytes of pool buffer `bid` over to stream `i`'s processor, if there are
    /// any and the stream is open (the caller gives the buffer back).
    fn hand_over_buf(&mut self, i: usize, bid: u16, result: i32) {
        let (s, state) = (&self.streams[i], &mut self.st[i]);
        if result > 0 && state.done.is_none() {
            // SAFETY: the kernel handed us `bid` with `result` bytes in this completion, and it
            // goes back to the ring only after this returns, after the processor returned.
            let data = unsafe { self.ring.buf(bid, result as usize) };
            match hand_over(i, s, state.offset, data, self.opts, self.deliver) {
                Ok((n, go)) => {
                    state.offset += n;
                    if !go {
                        state.done = Some(Ok(state.offset));
                    }
                }
                Err(e) => state.done = Some(Err(e)),
            }
        }
    }

    /// What the result of open stream `i`'s completion `c` means for it: its end, an error, or
    /// nothing. `false` if the stream now waits with a poll (its request is over and counted out).
    fn settle(&mut self, i: usize, c: &StreamCqe) -> bool {
        let (s, state) = (&self.streams[i], &mut self.st[i]);
        match c.result {
            r if r > 0 => {}
            0 => state.done = Some(Ok(state.offset)),
            r => match -r {
                // Out of buffers, or a transient: arm again below.
                ENOBUFS | EINTR => {}
                // A non-blocking descriptor with nothing to read: the kernel does not wait for
                // it, so wait with a poll, then read again.
                EAGAIN if !c.more => {
                    state.armed = false;
                    self.armed -= 1;
                    self.poll.push(i);
                    return false;
                }
                EAGAIN => {}
                // No multishot for this descriptor (an old kernel, or a file that cannot be
                // polled such as /dev/zero): single-shot from now on.
                EINVAL | EBADFD | EOPNOTSUPP if state.multi && state.offset == 0 => {
                    state.multi = false
                }
                ECANCELED if self.interrupted => {}
                code => state.done = Some(Err(read_error(s, state.offset, code))),
            },
        }
        true
    }
}

/// Ends every open stream with [`Error::Interrupted`] and asks the kernel to cancel every armed
/// request (their last completions are still reaped by the loop).
fn interrupt_all(ring: &mut StreamRing, streams: &[Stream<'_>], st: &mut [State]) {
    for (i, (s, state)) in streams.iter().zip(st.iter_mut()).enumerate() {
        if state.done.is_none() {
            state.done = Some(Err(Error::Interrupted {
                path: s.name.to_path_buf(),
            }));
        }
        if state.armed && !state.cancel_sent {
            let tag = if state.polling { POLL_BIT } else { 0 };
            state.cancel_sent = ring.cancel(i as u64 | tag).is_ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ring::{rings_dropped_busy, StreamKind, StreamRing};

    /// A connected pair of Unix stream sockets, closed by the caller.
    fn socket_pair() -> [i32; 2] {
        let mut p = [0; 2];
        // SAFETY: socketpair writes two descriptors into a live array.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                p.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        p
    }

    /// The ring counts what is in the kernel: an armed multishot read stays counted across its
    /// completions, `cancel_and_reap` brings the count to 0 (the cancel's own completion included),
    /// and a ring dropped with a request in the kernel is counted as dropped busy.
    #[test]
    fn stream_ring_accounts_for_every_request_in_the_kernel() {
        let mut ring = StreamRing::new(1, 4, 4096).expect("io_uring with buffer rings");
        let p = socket_pair();
        // A multishot RECV (Linux 6.0).
        ring.arm(p[0], StreamKind::Socket, true, 7).unwrap();
        // A poll on another descriptor (one on `p[0]` could miss the bytes the read takes).
        let q = socket_pair();
        ring.arm_poll(q[0], 8).unwrap();
        assert_eq!(ring.in_kernel(), 2);
        // SAFETY: writes 5 bytes from a live array into sockets we made.
        unsafe {
            assert_eq!(libc::write(p[1], b"hello".as_ptr().cast(), 5), 5);
            assert_eq!(libc::write(q[1], b"hello".as_ptr().cast(), 5), 5);
        }
        let mut seen = Vec::new();
        while seen.len() < 2 {
            ring.submit(1).unwrap();
            while let Some(c) = ring.pop() {
                if let Some(bid) = c.buf {
                    ring.give_back(bid);
                }
                seen.push(c);
            }
        }
        ring.publish();
        let read = seen.iter().find(|c| c.user_data == 7).expect("the read");
        assert_eq!(read.result, 5);
        assert!(read.more);
        // The poll ended; the multishot read is still armed.
        assert_eq!(ring.in_kernel(), 1);
        ring.arm(p[0], StreamKind::Socket, false, 9).unwrap();
        assert_eq!(ring.in_kernel(), 2);
        ring.cancel_and_reap().unwrap();
        assert_eq!(ring.in_kernel(), 0);
        let busy = rings_dropped_busy();
        drop(ring);
        assert_eq!(rings_dropped_busy(), busy);

        // Dropped with a read armed (on a socket nobody writes to, so nothing lands in the freed
        // pool): counted.
        let mut ring = StreamRing::new(1, 4, 4096).unwrap();
        ring.arm(p[0], StreamKind::Socket, false, 1).unwrap();
        ring.submit(0).unwrap();
        drop(ring);
        assert!(rings_dropped_busy() > busy);
        // READ_MULTISHOT on a pipe stays armed across its completions too (Linux 6.7).
        let mut ring = StreamRing::new(1, 4, 4096).unwrap();
        if ring.has_read_multishot() {
            let mut r = [0; 2];
            // SAFETY: pipe2 writes two descriptors into a live array.
            assert_eq!(unsafe { libc::pipe2(r.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            ring.arm(r[0], StreamKind::Pipe, true, 3).unwrap();
            // SAFETY: writes 5 bytes from a live array into the pipe we made.
            assert_eq!(unsafe { libc::write(r[1], b"hello".as_ptr().cast(), 5) }, 5);
            let c = loop {
                ring.submit(1).unwrap();
                if let Some(c) = ring.pop() {
                    break c;
                }
            };
            assert_eq!((c.user_data, c.result, c.more), (3, 5, true));
            ring.give_back(c.buf.expect("a pool buffer"));
            assert_eq!(ring.in_kernel(), 1);
            ring.cancel_and_reap().unwrap();
            assert_eq!(ring.in_kernel(), 0);
            drop(ring);
            for fd in r {
                // SAFETY: our descriptors, closed once.
                unsafe { libc::close(fd) };
            }
        }
        for fd in p.into_iter().chain(q) {
            // SAFETY: our descriptors, closed once.
            unsafe { libc::close(fd) };
        }
    }
}
