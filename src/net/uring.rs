//! The io_uring way for streams: one armed request per stream, buffers from a shared provided
//! buffer ring, completions handed over in order as they come.
//!
//! Order: the completions of one multishot request come in the order the kernel received the
//! bytes, and a single-shot stream has one request at a time, so handing each completion over as it
//! is popped keeps every stream in order. A buffer goes back to the ring right after its processor
//! returns. A request ends (no `IORING_CQE_F_MORE`) at the end of the stream, on an error, or when
//! the ring ran dry (`-ENOBUFS`); in the last case, and after every single-shot read, the stream is
//! armed again once the batch of completions has given its buffers back.

use libc::{EAGAIN, EBADFD, ECANCELED, EINTR, EINVAL, ENOBUFS, EOPNOTSUPP};

use super::{hand_over, read_error, Deliver, RingSetup, Stream, StreamOptions};
use crate::error::{Error, Result};
use crate::ring::{StreamKind, StreamRing};

/// How long a wait for a batch of completions may hold back one that is ready, in microseconds.
const BATCH_WAIT_USEC: u32 = 50;

/// Set in the `user_data` of a stream's poll request (its index is in the low bits).
const POLL_BIT: u64 = 1 << 63;

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
/// then nothing was read.
pub(super) fn run(
    streams: &[Stream<'_>],
    opts: &StreamOptions,
    multishot: bool,
    deliver: &mut Deliver<'_>,
) -> std::result::Result<Vec<Result<u64>>, RingSetup> {
    let mut ring =
        StreamRing::new(streams.len(), opts.buffers, opts.chunk_size).map_err(RingSetup)?;
    let read_multi = ring.has_read_multishot();
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
    let ring_err = |s: &Stream<'_>, op, source| Error::Ring {
        path: s.name.to_path_buf(),
        op,
        source,
    };
    // Wait for a few completions at a time if asked, where the kernel can bound the wait (Linux
    // 6.12). Never more than half the pool.
    let batch = opts.batch.min(opts.buffers / 2).max(1);
    let mut armed = 0usize;
    let mut rearm: Vec<usize> = (0..streams.len()).collect();
    let mut poll: Vec<usize> = Vec::new();
    let mut interrupted = false;
    let mut clean = true;
    loop {
        for i in rearm.drain(..) {
            if st[i].done.is_some() {
                continue;
            }
            let s = &streams[i];
            match ring.arm(s.fd, s.kind, st[i].multi, i as u64) {
                Ok(()) => {
                    st[i].armed = true;
                    st[i].polling = false;
                    armed += 1;
                }
                Err(e) => st[i].done = Some(Err(ring_err(s, "submit", e))),
            }
        }
        for i in poll.drain(..) {
            if st[i].done.is_some() {
                continue;
            }
            let s = &streams[i];
            match ring.arm_poll(s.fd, i as u64 | POLL_BIT) {
                Ok(()) => {
                    st[i].armed = true;
                    st[i].polling = true;
                    armed += 1;
                }
                Err(e) => st[i].done = Some(Err(ring_err(s, "submit", e))),
            }
        }
        if armed == 0 {
            break;
        }
        // A single-shot request completes once: wait for no more completions than can come.
        let want = if batch == 1 || st.iter().any(|s| s.armed && s.multi && !s.polling) {
            batch
        } else {
            armed.min(batch)
        };
        if let Err(e) = ring.submit_batched(want, BATCH_WAIT_USEC) {
            // The ring cannot wait any more: what is in flight cannot be reaped.
            clean = false;
            for (s, state) in streams.iter().zip(st.iter_mut()) {
                if state.done.is_none() {
                    let e = std::io::Error::new(e.kind(), e.to_string());
                    state.done = Some(Err(ring_err(s, "enter", e)));
                }
            }
            break;
        }
        if !interrupted && opts.interrupted() {
            interrupted = true;
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
        while let Some(c) = ring.pop() {
            if c.user_data & POLL_BIT != 0 {
                // The descriptor is readable (or the poll was cancelled): read again.
                let i = (c.user_data & !POLL_BIT) as usize;
                st[i].armed = false;
                armed -= 1;
                if st[i].done.is_none() {
                    rearm.push(i);
                }
                continue;
            }
            let i = c.user_data as usize;
            let (s, state) = (&streams[i], &mut st[i]);
            if let Some(bid) = c.buf {
                if c.result > 0 && state.done.is_none() {
                    // SAFETY: the kernel handed us `bid` with `result` bytes in this completion, and
                    // it goes back to the ring only below, after the processor returned.
                    let data = unsafe { ring.buf(bid, c.result as usize) };
                    match hand_over(i, s, state.offset, data, opts, deliver) {
                        Ok((n, go)) => {
                            state.offset += n;
                            if !go {
                                state.done = Some(Ok(state.offset));
                            }
                        }
                        Err(e) => state.done = Some(Err(e)),
                    }
                }
                ring.give_back(bid);
            }
            if state.done.is_none() {
                match c.result {
                    r if r > 0 => {}
                    0 => state.done = Some(Ok(state.offset)),
                    r => match -r {
                        // Out of buffers, or a transient: arm again below.
                        ENOBUFS | EINTR => {}
                        // A non-blocking descriptor with nothing to read: the kernel does not wait
                        // for it, so wait with a poll, then read again.
                        EAGAIN if !c.more => {
                            state.armed = false;
                            armed -= 1;
                            poll.push(i);
                            continue;
                        }
                        EAGAIN => {}
                        // No multishot for this descriptor (an old kernel, or a file that cannot
                        // be polled such as /dev/zero): single-shot from now on.
                        EINVAL | EBADFD | EOPNOTSUPP if state.multi && state.offset == 0 => {
                            state.multi = false
                        }
                        ECANCELED if interrupted => {}
                        code => state.done = Some(Err(read_error(s, state.offset, code))),
                    },
                }
            }
            if !c.more {
                state.armed = false;
                armed -= 1;
                if state.done.is_none() {
                    rearm.push(i);
                }
            } else if state.done.is_some() && !state.cancel_sent {
                state.cancel_sent = ring.cancel(i as u64).is_ok();
            }
        }
        ring.publish();
    }
    if !clean {
        // The kernel may still write into the pool: never free it.
        std::mem::forget(ring);
    }
    Ok(st
        .into_iter()
        .map(|s| s.done.unwrap_or(Ok(s.offset)))
        .collect())
}
