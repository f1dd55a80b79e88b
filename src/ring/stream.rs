//! A ring for streams (pipes, sockets): reads that take their buffer from a provided buffer ring.
//!
//! A stream has no offsets to read ahead at, so instead of many reads in flight into buffers of our
//! choosing, each stream has one request armed (a multishot `RECV` or `READ_MULTISHOT`, or one
//! single-shot `RECV`/`READ`) and the kernel picks a free buffer from a shared pool (a *provided
//! buffer ring*, `IORING_REGISTER_PBUF_RING`, Linux 5.19) whenever data arrives. The completion says
//! which buffer (`IORING_CQE_F_BUFFER`) and whether the request stays armed (`IORING_CQE_F_MORE`).
//! The buffer goes back to the ring once the processor has seen it, so the pool is the memory bound
//! however many streams share the ring.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::{entered, ENTERS};
use crate::buf::Arena;

/// The buffer group id of the ring's one pool.
const GROUP: u16 = 0;

/// The `user_data` of cancel requests (their own completions are dropped).
const CANCEL_TAG: u64 = u64::MAX;

/// Stream rings dropped while their accounting said requests were still in the kernel (which may
/// then write into a pool about to be freed). Zero unless ringread has a bug; tests look at it.
static DROPPED_BUSY: AtomicU64 = AtomicU64::new(0);

/// How many [`StreamRing`]s were dropped with requests still in the kernel, in this process.
pub(crate) fn rings_dropped_busy() -> u64 {
    DROPPED_BUSY.load(Ordering::Relaxed)
}

/// One completion of a stream request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamCqe {
    /// The request's `user_data` (the stream's index).
    pub user_data: u64,
    /// Bytes received, 0 at the end of the stream, or `-errno`.
    pub result: i32,
    /// The pool buffer holding the bytes, if the kernel took one.
    pub buf: Option<u16>,
    /// Whether the request stays armed (more completions will come from it).
    pub more: bool,
}

/// What kind of descriptor a stream is: sockets are read with `RECV`, anything else with `READ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// A socket.
    Socket,
    /// A pipe, FIFO or character device, read at its current position.
    Pipe,
}

/// The provided buffer ring: an array of entries shared with the kernel, and the buffers.
struct Pool {
    entries: *mut types::BufRingEntry,
    entries_len: usize,
    count: u16,
    tail: u16,
    arena: Arena,
    buf_len: usize,
}

/// A ring with one pool of provided buffers, for reading streams.
pub(crate) struct StreamRing {
    // Declared first: dropped (and the pool unregistered with it) before the pool's memory goes.
    ring: IoUring,
    pool: Pool,
    // Read by the net tests only while pipes are read single-shot (see net/uring.rs).
    #[cfg_attr(not(test), allow(dead_code))]
    read_multishot: bool,
    min_timeout: bool,
    /// Requests pushed and not yet ended: each push counts one (reads, polls, cancels), each
    /// completion without `IORING_CQE_F_MORE` ends one. Zero means the kernel holds nothing of
    /// ours, so the pool may go.
    in_kernel: usize,
}

impl StreamRing {
    /// A ring for `streams` streams sharing `count` buffers of `buf_len` bytes (`count` is rounded up
    /// to a power of two, at most 32768).
    ///
    /// Fails with the kernel's error where io_uring is refused, or `EINVAL` where it has no buffer
    /// rings (before Linux 5.19).
    pub(crate) fn new(streams: usize, count: usize, buf_len: usize) -> io::Result<StreamRing> {
        let count = count.clamp(1, 32768).next_power_of_two();
        let sq = streams.clamp(4, 4096).next_power_of_two() as u32;
        // Every buffer can be one completion waiting, and every stream one more (its end).
        let cq = (count + streams).clamp(8, 65536).next_power_of_two() as u32;
        // One thread submits and reaps (the reader's), so the kernel may defer completion work to
        // the moment that thread waits (DEFER_TASKRUN, Linux 6.1) instead of interrupting it.
        let ring = super::setup_with(
            sq,
            &super::Setup {
                defer_taskrun: true,
                cq_entries: Some(cq),
                ..super::Setup::default()
            },
        )?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::Recv::CODE) || !probe.is_supported(opcode::Read::CODE) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel's io_uring has no RECV or READ (Linux 5.6 or later needed)",
            ));
        }
        let read_multishot = probe.is_supported(opcode::ReadMulti::CODE);
        let min_timeout = ring.params().is_feature_min_timeout();
        let arena = Arena::new(count, buf_len)
            .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e.to_string()))?;
        let entries_len = (count * std::mem::size_of::<types::BufRingEntry>()).max(4096);
        // SAFETY: an anonymous private mapping of a fresh range; nothing else refers to it.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut pool = Pool {
            entries: mem.cast(),
            entries_len,
            count: count as u16,
            tail: 0,
            arena,
            buf_len,
        };
        // SAFETY: the entries are page-aligned memory of `count` entries that the pool owns and
        // keeps mapped until after the ring is dropped (field order); the buffers they will point
        // at are the pool's arena, likewise kept.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(mem as u64, count as u16, GROUP, 0)?
        };
        for bid in 0..count as u16 {
            pool.give(bid);
        }
        pool.publish();
        Ok(StreamRing {
            ring,
            pool,
            read_multishot,
            min_timeout,
            in_kernel: 0,
        })
    }

    /// Whether the kernel has `IORING_OP_READ_MULTISHOT` (Linux 6.7).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn has_read_multishot(&self) -> bool {
        self.read_multishot
    }

    /// Arms a read of stream `fd` tagged `user_data`: multishot (a `RECV` with
    /// `IORING_RECV_MULTISHOT`, or `READ_MULTISHOT`) or one single-shot `RECV`/`READ`; every read
    /// takes its buffer from the pool.
    pub(crate) fn arm(
        &mut self,
        fd: RawFd,
        kind: StreamKind,
        multishot: bool,
        user_data: u64,
    ) -> io::Result<()> {
        let fd = types::Fd(fd);
        let len = self.pool.buf_len as u32;
        let entry = match (kind, multishot) {
            (StreamKind::Socket, true) => opcode::RecvMulti::new(fd, GROUP).build(),
            (StreamKind::Socket, false) => opcode::Recv::new(fd, std::ptr::null_mut(), len)
                .buf_group(GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT),
            // Length 0: each read fills up to a whole pool buffer. Kernels since 6.10 or so refuse
            // any other length (-EINVAL), which silently made every pipe single-shot.
            (StreamKind::Pipe, true) => opcode::ReadMulti::new(fd, 0, GROUP)
                .offset(u64::MAX)
                .build(),
            (StreamKind::Pipe, false) => opcode::Read::new(fd, std::ptr::null_mut(), len)
                .offset(u64::MAX)
                .buf_group(GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT),
        }
        .user_data(user_data);
        self.push(&entry)
    }

    /// Arms a one-shot poll for input on `fd`, tagged `user_data`: for a non-blocking descriptor,
    /// whose single-shot reads say `-EAGAIN` instead of waiting.
    pub(crate) fn arm_poll(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(user_data);
        self.push(&entry)
    }

    /// Asks the kernel to cancel the request tagged `user_data`; its last completion still comes.
    pub(crate) fn cancel(&mut self, user_data: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(CANCEL_TAG);
        self.push(&entry)
    }

    /// Asks the kernel to cancel every request of this ring (`IORING_ASYNC_CANCEL_ANY`, Linux 5.19,
    /// as old as buffer rings); their last completions still come.
    pub(crate) fn cancel_all(&mut self) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(CANCEL_TAG);
        self.push(&entry)
    }

    /// Requests of this ring that the kernel may still hold (pushed, and their last completion not
    /// yet popped).
    pub(crate) fn in_kernel(&self) -> usize {
        self.in_kernel
    }

    /// Cancels every request in the kernel and reaps them all, giving their buffers back unread:
    /// afterwards [`StreamRing::in_kernel`] is 0 and the ring and pool may be dropped. An error
    /// means the ring cannot be waited on: the caller must then leak ring and pool
    /// (`std::mem::forget`), since the kernel may still write into the pool.
    pub(crate) fn cancel_and_reap(&mut self) -> io::Result<()> {
        if self.in_kernel == 0 {
            return Ok(());
        }
        self.cancel_all()?;
        while self.in_kernel > 0 {
            self.submit(1)?;
            while let Some(c) = self.pop() {
                if let Some(bid) = c.buf {
                    self.give_back(bid);
                }
            }
            self.publish();
        }
        Ok(())
    }

    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        if self.ring.submission().is_full() {
            self.submit(0)?;
        }
        // SAFETY: the entry names no memory of ours but the pool (by group id), which outlives
        // every request: the owner reaps every request before dropping the ring (`in_kernel` counts
        // them, and `Drop` reports a ring dropped busy), or leaks it.
        unsafe { self.ring.submission().push(entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.in_kernel += 1;
        Ok(())
    }

    /// Submits what was pushed and waits for at least `wait` completions. A signal (`EINTR`) or a
    /// full completion queue returns early without error: the caller reaps and comes back.
    pub(crate) fn submit(&mut self, wait: usize) -> io::Result<()> {
        ENTERS.fetch_add(1, Ordering::Relaxed);
        entered(self.ring.submit_and_wait(wait))
    }

    /// Submits what was pushed and waits for `want` completions, but returns as soon as there is
    /// one once `min_wait_usec` microseconds have passed (`IORING_FEAT_MIN_TIMEOUT`, Linux 6.12;
    /// before it, waits for one). Fewer wake-ups when data streams in, no more latency than
    /// `min_wait_usec` when it trickles. Returns early on a signal, as [`StreamRing::submit`].
    pub(crate) fn submit_batched(&mut self, want: usize, min_wait_usec: u32) -> io::Result<()> {
        if !self.min_timeout || want <= 1 || min_wait_usec == 0 {
            return self.submit(1);
        }
        ENTERS.fetch_add(1, Ordering::Relaxed);
        let args = types::SubmitArgs::new().min_wait_usec(min_wait_usec);
        match self.ring.submitter().submit_with_args(want, &args) {
            // The minimum wait ran out: as good as a completion.
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
            res => entered(res),
        }
    }

    /// The next completion, if one is ready (the completions of cancel requests are counted, then
    /// dropped).
    pub(crate) fn pop(&mut self) -> Option<StreamCqe> {
        loop {
            let c = self.ring.completion().next()?;
            let more = cqueue::more(c.flags());
            if !more {
                // The request's last completion: the kernel is done with it.
                self.in_kernel = self.in_kernel.saturating_sub(1);
            }
            if c.user_data() == CANCEL_TAG {
                continue;
            }
            return Some(StreamCqe {
                user_data: c.user_data(),
                result: c.result(),
                buf: cqueue::buffer_select(c.flags()),
                more,
            });
        }
    }

    /// The first `len` bytes of pool buffer `bid`.
    ///
    /// # Safety
    /// `bid` must come from a completion popped since the buffer was last given back with
    /// [`StreamRing::give_back`], and `len` must be no more than that completion's result.
    pub(crate) unsafe fn buf(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.pool.count && len <= self.pool.buf_len);
        // SAFETY: the kernel wrote `len` bytes into this buffer and, having handed it to us, writes
        // no more until it is given back (the caller's promise).
        unsafe { self.pool.arena.slot(bid as usize, len) }
    }

    /// Gives buffer `bid` back to the kernel; it sees it at the next [`StreamRing::publish`].
    pub(crate) fn give_back(&mut self, bid: u16) {
        assert!(bid < self.pool.count);
        self.pool.give(bid);
    }

    /// Makes the buffers given back visible to the kernel.
    pub(crate) fn publish(&mut self) {
        self.pool.publish();
    }
}

impl Drop for StreamRing {
    fn drop(&mut self) {
        if self.in_kernel > 0 {
            // A bug of ours: the kernel may still hold requests that write into the pool.
            DROPPED_BUSY.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Pool {
    /// Writes buffer `bid` at the local tail (not yet visible to the kernel).
    fn give(&mut self, bid: u16) {
        let mask = self.count - 1;
        let idx = (self.tail & mask) as usize;
        // SAFETY: idx < count, and the entries array holds `count` entries; the kernel reads only
        // the entries between its head and the published tail, which this one is not (yet).
        let entry = unsafe { &mut *self.entries.add(idx) };
        entry.set_addr(self.arena.slot_ptr(bid as usize) as u64);
        entry.set_len(self.buf_len as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the local tail (a release store, so the entries written before are seen first).
    fn publish(&mut self) {
        // SAFETY: the tail field lives inside the first entry of the mapping we own; the kernel
        // only reads it. AtomicU16 has the layout of u16 and the field is 2-byte aligned.
        let tail = unsafe { &*(types::BufRingEntry::tail(self.entries) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `StreamRing::new`, of this length; the ring (and with it the
        // kernel's registration) is dropped before the pool (field order).
        unsafe { libc::munmap(self.entries.cast(), self.entries_len) };
    }
}
