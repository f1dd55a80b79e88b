//! The driver's buffer pool: every stream of a driver takes its buffers from it, within one budget
//! in bytes, and gives them back when their chunks are dropped; buffers given back are kept for the
//! next stream (no allocation, no `mmap`/`munmap`, per `open`).
//!
//! Buffers are grouped by length (a stream's chunk size rounded up to [`ALIGN`]); the budget counts
//! the bytes of every buffer that exists, kept or lent, across lengths. When a length has none kept
//! and the budget is spent, buffers of other lengths that are kept are freed to make room.
//!
//! Two rules keep streams from starving each other:
//!
//! - a stream reads ahead (takes a buffer while it has a read in flight or a chunk ready) only
//!   within its share, `budget / open streams` (at least one buffer), and only while no stream
//!   waits;
//! - a stream with nothing in flight and nothing ready takes a buffer whenever the budget has one,
//!   and otherwise waits: its task's waker is kept, and every buffer given back wakes the waiters.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

use crate::error::{Error, Result};
use crate::options::ALIGN;

/// Entries of each driver ring's table of registered buffers (`READ_FIXED`): a buffer of the pool
/// has one of them, while there are free ones (1,024 buffers: the whole default budget at 64 KiB
/// chunks); a buffer without reads with plain `READ`.
pub(crate) const REGISTERED_TABLE: u16 = 1024;

/// A buffer's entry in the driver rings' tables of registered buffers: its index, and which buffer
/// holds that index now (the pool gives an index freed with one buffer to another, and a ring whose
/// entry holds an older generation registers the new buffer there before it reads into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reg {
    /// The entry.
    pub index: u16,
    /// Which buffer holds it (from 1; a ring's empty entry is 0).
    pub generation: u64,
}

/// One buffer: `len` bytes aligned to [`ALIGN`], owned outright.
pub(super) struct Buf {
    ptr: NonNull<u8>,
    len: usize,
    reg: Option<Reg>,
}

// SAFETY: a `Buf` owns its allocation like a `Box<[u8]>`; who writes into it while the kernel reads
// is governed by the stream's slot states.
unsafe impl Send for Buf {}

impl Buf {
    fn new(len: usize) -> Result<Buf> {
        let layout =
            Layout::from_size_align(len, ALIGN).map_err(|_| Error::OutOfMemory { bytes: len })?;
        // SAFETY: `len` is non-zero (a stride is at least ALIGN).
        let raw = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(raw).ok_or(Error::OutOfMemory { bytes: len })?;
        Ok(Buf {
            ptr,
            len,
            reg: None,
        })
    }

    /// Its entry in the rings' tables of registered buffers, if it has one.
    pub(super) fn reg(&self) -> Option<Reg> {
        self.reg
    }

    /// The buffer's first byte. Writing through it is the caller's business (the kernel's).
    pub(super) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The buffer's length.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout (it was valid then). A stream gives a buffer
        // back (and so can drop it) only when no read into it is in flight.
        unsafe {
            alloc::dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.len, ALIGN),
            )
        }
    }
}

/// The pool's books.
#[derive(Default)]
struct Books {
    /// Bytes of every buffer that exists (kept or lent): never above the budget.
    allocated: usize,
    /// The most `allocated` has been.
    peak: usize,
    /// Bytes of buffers streams hold.
    lent: usize,
    /// Buffers given back, by length.
    kept: Vec<(usize, Vec<Buf>)>,
    /// Streams open on the driver (for each one's share).
    streams: usize,
    /// Tasks of streams waiting for a buffer.
    waiters: Vec<Waker>,
    /// Registered-buffer entries given up by freed buffers, and the next never given.
    free_entries: Vec<u16>,
    next_entry: u16,
    /// The last generation given to a buffer.
    generation: u64,
}

impl Books {
    /// Frees a buffer nobody holds; its registered-buffer entry goes to the next new buffer.
    fn free(&mut self, buf: Buf) {
        self.allocated -= buf.len;
        if let Some(r) = buf.reg {
            self.free_entries.push(r.index);
        }
        drop(buf);
    }

    /// An entry for a new buffer, while there is one.
    fn entry(&mut self) -> Option<Reg> {
        let index = self.free_entries.pop().or_else(|| {
            (self.next_entry < REGISTERED_TABLE).then(|| {
                self.next_entry += 1;
                self.next_entry - 1
            })
        })?;
        self.generation += 1;
        Some(Reg {
            index,
            generation: self.generation,
        })
    }
}

/// Buffers within a budget, shared by a driver's streams.
pub(super) struct Pool {
    budget: usize,
    books: Mutex<Books>,
}

/// What the pool holds, for [`DriverStats`](super::DriverStats).
#[derive(Debug, Clone, Copy)]
pub(super) struct PoolStats {
    pub budget: usize,
    pub allocated: usize,
    pub peak: usize,
    pub lent: usize,
    pub waiting: usize,
}

impl Pool {
    pub(super) fn new(budget: usize) -> Pool {
        Pool {
            budget,
            books: Mutex::new(Books::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The length of a buffer for chunks of `chunk` bytes.
    pub(super) fn stride(chunk: usize) -> usize {
        chunk.div_ceil(ALIGN).max(1) * ALIGN
    }

    /// The length of the buffer a whole file of `size` bytes is read into (`size` > 0), or `None`
    /// when even `size` rounded up to [`ALIGN`] is more than the budget. Lengths go by classes, so
    /// that buffers given back fit other files: multiples of [`ALIGN`] up to 64 KiB, then eight
    /// classes per doubling (at most an eighth more than the file), never past the budget.
    pub(super) fn whole_len(&self, size: u64) -> Option<usize> {
        let exact = usize::try_from(size)
            .ok()?
            .checked_next_multiple_of(ALIGN)?;
        if exact > self.budget {
            return None;
        }
        if exact <= 64 << 10 {
            return Some(exact);
        }
        let step = 1usize << (usize::BITS - 1 - exact.leading_zeros() - 3);
        Some(exact.next_multiple_of(step).min(self.budget))
    }

    /// The budget in bytes.
    pub(super) fn budget(&self) -> usize {
        self.budget
    }

    /// A stream opened (`+1`) or went away (`-1`).
    pub(super) fn stream_count(&self, opened: bool) {
        let mut b = self.lock();
        if opened {
            b.streams += 1;
        } else {
            b.streams = b.streams.saturating_sub(1);
        }
    }

    /// A buffer of `len` bytes for a stream that holds `held` bytes of buffers already. `urgent`: the
    /// stream has nothing in flight and nothing ready, so it waits for this buffer (then `waker` is
    /// kept and woken when a buffer comes back). `Ok(None)`: not now.
    pub(super) fn take(
        &self,
        len: usize,
        held: usize,
        urgent: bool,
        waker: &Waker,
    ) -> Result<Option<Buf>> {
        self.take_fit(len, len, held, urgent, waker)
    }

    /// As [`Pool::take`], for a buffer of at least `len` bytes: a kept buffer of up to `up_to`
    /// bytes will do (the shortest there is), before buffers are freed and one allocated. For
    /// whole-file reads, whose lengths vary: reusing saves a `free`, a `malloc` and the page faults
    /// of fresh memory.
    pub(super) fn take_fit(
        &self,
        len: usize,
        up_to: usize,
        held: usize,
        urgent: bool,
        waker: &Waker,
    ) -> Result<Option<Buf>> {
        let mut b = self.lock();
        if !urgent {
            let share = (self.budget / b.streams.max(1)).max(len);
            if held + len > share || !b.waiters.is_empty() {
                return Ok(None);
            }
        }
        let fit = b
            .kept
            .iter()
            .enumerate()
            .filter(|(_, (l, list))| *l >= len && *l <= up_to && !list.is_empty())
            .min_by_key(|(_, (l, _))| *l)
            .map(|(i, _)| i);
        if let Some(i) = fit {
            if let Some(buf) = b.kept[i].1.pop() {
                b.lent += buf.len;
                return Ok(Some(buf));
            }
        }
        // Make room by freeing buffers of other lengths nobody holds.
        while b.allocated + len > self.budget {
            let Some(buf) = b.kept.iter_mut().find_map(|(_, list)| list.pop()) else {
                break;
            };
            b.free(buf);
        }
        if b.allocated + len <= self.budget {
            let mut buf = Buf::new(len)?;
            buf.reg = b.entry();
            b.allocated += len;
            b.peak = b.peak.max(b.allocated);
            b.lent += len;
            return Ok(Some(buf));
        }
        if urgent && !b.waiters.iter().any(|w| w.will_wake(waker)) {
            b.waiters.push(waker.clone());
        }
        Ok(None)
    }

    /// Buffers given back: kept for the next stream, and every waiting stream is woken.
    pub(super) fn give(&self, bufs: impl IntoIterator<Item = Buf>) {
        let waiters = {
            let mut b = self.lock();
            let mut any = false;
            for buf in bufs {
                any = true;
                b.lent -= buf.len;
                let len = buf.len;
                match b.kept.iter_mut().find(|(l, _)| *l == len) {
                    Some((_, list)) => list.push(buf),
                    None => b.kept.push((len, vec![buf])),
                }
            }
            if !any {
                return;
            }
            std::mem::take(&mut b.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    /// Bytes of buffers streams hold.
    pub(super) fn lent(&self) -> usize {
        self.lock().lent
    }

    /// Wakes every waiting stream (the driver was cancelled).
    pub(super) fn wake_all(&self) {
        let waiters = std::mem::take(&mut self.lock().waiters);
        for w in waiters {
            w.wake();
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        let b = self.lock();
        PoolStats {
            budget: self.budget,
            allocated: b.allocated,
            peak: b.peak,
            lent: b.lent,
            waiting: b.waiters.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_allocation_and_buffers_are_reused() {
        let pool = Pool::new(3 * 8192);
        pool.stream_count(true);
        let w = Waker::noop();
        let a = pool.take(8192, 0, true, w).unwrap().unwrap();
        let a_ptr = a.ptr();
        let b = pool.take(8192, 8192, false, w).unwrap().unwrap();
        let c = pool.take(8192, 16384, false, w).unwrap().unwrap();
        // The budget is spent: an urgent taker waits, a read-ahead taker is refused.
        assert!(pool.take(8192, 0, true, w).unwrap().is_none());
        assert_eq!(pool.stats().waiting, 1);
        assert!(pool.take(8192, 0, false, w).unwrap().is_none());
        pool.give([a]);
        assert_eq!(pool.stats().waiting, 0);
        let again = pool.take(8192, 0, true, w).unwrap().unwrap();
        assert_eq!(again.ptr(), a_ptr, "a kept buffer is reused");
        // Another length: kept buffers of the first are freed to make room.
        pool.give([again, b]);
        let big = pool.take(16384, 0, true, w).unwrap().unwrap();
        let s = pool.stats();
        assert!(s.allocated <= s.budget && s.peak <= s.budget, "{s:?}");
        assert_eq!(s.lent, 8192 + 16384);
        pool.give([big, c]);
        assert_eq!(pool.stats().lent, 0);
    }

    #[test]
    fn a_kept_buffer_a_little_longer_is_reused_rather_than_freed() {
        let pool = Pool::new(4 * 8192);
        let w = Waker::noop();
        let bufs: Vec<Buf> = (0..4)
            .map(|_| pool.take(8192, 0, true, w).unwrap().unwrap())
            .collect();
        pool.give(bufs);
        // 4096 asked, up to 8192 taken: a kept 8192 is lent, nothing freed or allocated.
        let b = pool.take_fit(4096, 8192, 0, true, w).unwrap().unwrap();
        assert_eq!(b.len(), 8192);
        let s = pool.stats();
        assert_eq!((s.allocated, s.lent), (4 * 8192, 8192));
        // Exactly 4096 asked: no kept buffer fits, so one 8192 is freed to make room.
        let c = pool.take(4096, 0, true, w).unwrap().unwrap();
        assert_eq!(c.len(), 4096);
        assert_eq!(pool.stats().allocated, 3 * 8192 + 4096);
        pool.give([b, c]);
        assert_eq!(pool.stats().lent, 0);
    }

    #[test]
    fn whole_file_lengths_go_by_classes_within_the_budget() {
        let pool = Pool::new(1 << 20);
        assert_eq!(pool.whole_len(1), Some(4096));
        assert_eq!(pool.whole_len(4096), Some(4096));
        assert_eq!(pool.whole_len(4097), Some(8192));
        assert_eq!(pool.whole_len(65536), Some(65536));
        // Above 64 KiB: eight classes per doubling.
        assert_eq!(pool.whole_len(65537), Some(65536 + 8192));
        assert_eq!(pool.whole_len(600_000), Some(655_360));
        for size in [65537u64, 100_000, 300_001, 700_000, 1 << 20] {
            let len = pool.whole_len(size).unwrap();
            assert!(
                len as u64 >= size && len as u64 <= size + size / 8 + 4096,
                "{size} {len}"
            );
        }
        // Never past the budget: the class is cut to it, and a file above it has none.
        assert_eq!(pool.whole_len((1 << 20) - 5), Some(1 << 20));
        assert_eq!(pool.whole_len((1 << 20) + 1), None);
        assert_eq!(pool.whole_len(u64::MAX), None);
    }

    #[test]
    fn read_ahead_stays_within_a_share() {
        let pool = Pool::new(4 * 4096);
        pool.stream_count(true);
        pool.stream_count(true);
        let w = Waker::noop();
        let a = pool.take(4096, 0, true, w).unwrap().unwrap();
        let b = pool.take(4096, 4096, false, w).unwrap().unwrap();
        assert!(
            pool.take(4096, 8192, false, w).unwrap().is_none(),
            "past the share"
        );
        pool.give([a, b]);
    }
}
