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
//!
//! A buffer handed to a consumer (a stream's chunk, a whole file's or a range's `Bytes`) is booked
//! to the task that polled it out ([`Pool::hand_out`]), until it comes back. A task that must wait
//! for the budget while every byte of it is booked to itself would wait for ever (nothing else can
//! give a buffer back): [`Take::Held`] says so instead, with what it holds.

use std::alloc::{self, Layout};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// Handed to a consumer: to whom ([`Pool::hand_out`]), until it is given back.
    out: Option<Tag>,
    /// Aligned to a huge page, and advised to be backed by huge pages ([`Buf::new_huge`]).
    huge: bool,
}

/// Whom a buffer handed out is booked to: an entry of [`Books::takers`], and its source there
/// ([`OTHERS`]: none of the named ones).
#[derive(Debug, Clone, Copy)]
struct Tag {
    taker: u32,
    source: u8,
}

/// The sources (paths) a taker's entry names; its buffers from further sources are only counted.
const SOURCES: usize = 4;
const OTHERS: u8 = u8::MAX;

/// A task as [`Waker::will_wake`] tells tasks apart: its waker's data and vtable pointers.
type TaskId = (usize, usize);

fn task_id(w: &Waker) -> TaskId {
    (w.data() as usize, std::ptr::from_ref(w.vtable()) as usize)
}

/// The buffers handed out to one task and not given back yet.
#[derive(Default)]
struct Taker {
    /// The task, while buffers are out to it (`None`: none are; the entry is free, and `id` only
    /// remembers whom it was for, so that the task finds it again without a search).
    waker: Option<Waker>,
    id: TaskId,
    buffers: usize,
    bytes: usize,
    /// Where they came from: the first [`SOURCES`] paths, with how many buffers each; `others`
    /// counts the rest.
    sources: [Option<(Arc<Path>, usize)>; SOURCES],
    others: usize,
}

impl Taker {
    /// Books one more buffer from `from`; returns its source's place.
    fn add(&mut self, len: usize, from: &Arc<Path>) -> u8 {
        self.buffers += 1;
        self.bytes += len;
        for (k, s) in self.sources.iter_mut().enumerate() {
            if let Some((p, n)) = s {
                if Arc::ptr_eq(p, from) || **p == **from {
                    *n += 1;
                    return k as u8;
                }
            }
        }
        if let Some(k) = self.sources.iter().position(Option::is_none) {
            self.sources[k] = Some((Arc::clone(from), 1));
            return k as u8;
        }
        self.others += 1;
        OTHERS
    }

    /// A buffer booked with `source` came back; returns the task's waker once nothing is out to
    /// it any more (the entry is free: the caller drops the waker once the pool is unlocked).
    fn remove(&mut self, len: usize, source: u8) -> Option<Waker> {
        self.buffers -= 1;
        self.bytes -= len;
        let k = source as usize;
        if let Some(Some((_, n))) = self.sources.get_mut(k) {
            *n -= 1;
            if *n == 0 {
                self.sources[k] = None;
            }
        } else {
            self.others -= 1;
        }
        if self.buffers == 0 {
            self.waker.take()
        } else {
            None
        }
    }

    fn held(&self, budget: usize) -> Held {
        Held {
            buffers: self.buffers,
            bytes: self.bytes,
            budget,
            of: self
                .sources
                .iter()
                .flatten()
                .map(|(p, n)| (p.to_path_buf(), *n))
                .collect(),
        }
    }
}

/// What a task that waits for the budget holds: all of it ([`Take::Held`]).
#[derive(Debug)]
pub(super) struct Held {
    buffers: usize,
    bytes: usize,
    budget: usize,
    of: Vec<(PathBuf, usize)>,
}

impl Held {
    /// The error of the poll of `path` that would have waited.
    pub(super) fn error(self, path: &Path) -> Error {
        Error::BudgetHeld {
            path: path.to_path_buf(),
            budget: self.budget,
            held: self.buffers,
            bytes: self.bytes,
            of: self.of,
        }
    }

    /// Bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// What [`Pool::take`] gives.
pub(super) enum Take {
    /// A buffer.
    Got(Buf),
    /// None now: an urgent taker's waker is kept, and woken when a buffer comes back.
    Later,
    /// None, ever: the taker must wait for the budget (it is urgent and the budget is spent), and
    /// every buffer of it is out to the taker's own task, which cannot give one back while it
    /// waits. Its waker is not kept.
    Held(Held),
}

impl Take {
    /// The buffer, if one was given.
    #[cfg(test)]
    fn got(self) -> Option<Buf> {
        match self {
            Take::Got(b) => Some(b),
            _ => None,
        }
    }
}

// SAFETY: a `Buf` owns its allocation like a `Box<[u8]>`; who writes into it while the kernel reads
// is governed by the stream's slot states.
unsafe impl Send for Buf {}

/// The size of a transparent huge page (x86-64, aarch64 with 4 KiB pages).
const HUGE_PAGE: usize = 2 << 20;

impl Buf {
    /// A buffer of `len` bytes (non-zero), aligned to [`ALIGN`]; outside the pool's books until
    /// the pool takes it.
    pub(super) fn new(len: usize) -> Result<Buf> {
        Buf::alloc(len, false)
    }

    /// As [`Buf::new`], for a buffer the first read fills from the page cache at once: of 2 MiB
    /// or more, it is aligned to a huge page and advised to be backed by huge pages
    /// (`MADV_HUGEPAGE`: a fault per 2 MiB as the read fills it, not one per 4 KiB). Not for
    /// reads the device serves: measured, huge pages made 64 concurrent cold 8 MiB reads take
    /// twice as long once the page cache was full (docs/BENCHMARKS.md, "Object store, Parquet
    /// and DataFusion").
    pub(super) fn new_huge(len: usize) -> Result<Buf> {
        Buf::alloc(len, len >= HUGE_PAGE)
    }

    fn alloc(len: usize, huge: bool) -> Result<Buf> {
        let layout = Layout::from_size_align(len, Buf::align(huge))
            .map_err(|_| Error::OutOfMemory { bytes: len })?;
        // SAFETY: `len` is non-zero (a stride is at least ALIGN).
        let raw = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(raw).ok_or(Error::OutOfMemory { bytes: len })?;
        if huge {
            // SAFETY: madvise over the allocation just made, `len` bytes from its start; advice
            // only (where refused, the buffer is made of small pages, as without it).
            unsafe { libc::madvise(raw.cast(), len, libc::MADV_HUGEPAGE) };
        }
        Ok(Buf {
            ptr,
            len,
            reg: None,
            out: None,
            huge,
        })
    }

    /// Its pages made present now (`MADV_POPULATE_WRITE`), for a fresh buffer a read fills at
    /// once: a buffered read that meets a missing page of its buffer while it copies without
    /// blocking (io_uring's first try) is handed to an io-wq worker instead, and 64 concurrent
    /// reads of 8 MiB into fresh buffers then took from 77 ms to 640 ms, run by run
    /// (docs/BENCHMARKS.md, "Object store, Parquet and DataFusion"); populated, 77-81 ms every
    /// run. Advice only: where refused, the pages come as the read faults them in.
    pub(super) fn populated(self) -> Buf {
        // SAFETY: madvise over this buffer's own allocation; no memory is read or moved.
        unsafe {
            libc::madvise(
                self.ptr.as_ptr().cast(),
                self.len,
                libc::MADV_POPULATE_WRITE,
            )
        };
        self
    }

    /// The alignment of a buffer: a huge page's, or [`ALIGN`].
    fn align(huge: bool) -> usize {
        if huge {
            HUGE_PAGE
        } else {
            ALIGN
        }
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
                Layout::from_size_align_unchecked(self.len, Buf::align(self.huge)),
            )
        }
    }
}

/// Buffers of one length that the pool keeps, where its budget has room, before it lends one
/// again: a stream that gives each chunk back at once still reads into buffers in turn.
const ROTATE: usize = 4;

/// The pool's books.
#[derive(Default)]
struct Books {
    /// Bytes of every buffer that exists (kept or lent): never above the budget.
    allocated: usize,
    /// The most `allocated` has been.
    peak: usize,
    /// Bytes of buffers streams hold.
    lent: usize,
    /// Buffers given back, by length, lent again oldest first: a copy into the buffer just
    /// given back (still in the CPU's caches) runs at three quarters of the speed of a copy
    /// into one given back earlier (measured: 12.2 against 16.6 GiB/s from the page cache).
    kept: Vec<(usize, VecDeque<Buf>)>,
    /// Streams open on the driver (for each one's share).
    streams: usize,
    /// Tasks of streams waiting for a buffer.
    waiters: Vec<Waker>,
    /// Buffers handed out to consumers, by task ([`Pool::hand_out`]); entries are reused, and no
    /// two have the same `id`.
    takers: Vec<Taker>,
    /// Where each task's entry is: found without a search, however many tasks (or futures with
    /// wakers of their own, as in a `FuturesUnordered`) take buffers.
    by_task: HashMap<TaskId, usize>,
    /// Entries freed (nothing out to their task), to reuse; one may have been taken again by its
    /// own task since (then it is skipped).
    idle: Vec<usize>,
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

    /// The entry of the task `w` wakes, made if need be (`hint`: where it was last).
    fn taker(&mut self, w: &Waker, hint: u32) -> usize {
        let id = task_id(w);
        let i = match self.takers.get(hint as usize) {
            Some(t) if t.id == id => hint as usize,
            _ => match self.by_task.get(&id) {
                Some(&i) => i,
                None => {
                    let i = self.idle_entry();
                    self.takers[i].id = id;
                    self.by_task.insert(id, i);
                    i
                }
            },
        };
        let t = &mut self.takers[i];
        if t.waker.is_none() {
            t.waker = Some(w.clone());
        }
        i
    }

    /// A free entry for a task that has none: a freed one (no longer its old task's), or a new one.
    fn idle_entry(&mut self) -> usize {
        while let Some(i) = self.idle.pop() {
            if self.takers[i].waker.is_none() {
                let old = self.takers[i].id;
                if self.by_task.get(&old) == Some(&i) {
                    self.by_task.remove(&old);
                }
                return i;
            }
        }
        self.takers.push(Taker::default());
        self.takers.len() - 1
    }

    /// What the task `w` wakes holds, if it is every buffer lent.
    fn held_by(&self, w: &Waker, budget: usize) -> Option<Held> {
        let t = &self.takers[*self.by_task.get(&task_id(w))?];
        t.waker.as_ref()?;
        (t.bytes == self.lent).then(|| t.held(budget))
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
    /// kept and woken when a buffer comes back, or [`Take::Held`] if that can never happen).
    pub(super) fn take(
        &self,
        len: usize,
        held: usize,
        urgent: bool,
        waker: &Waker,
    ) -> Result<Take> {
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
    ) -> Result<Take> {
        let mut b = self.lock();
        if !urgent {
            let share = (self.budget / b.streams.max(1)).max(len);
            if held + len > share || !b.waiters.is_empty() {
                return Ok(Take::Later);
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
            // Fewer than ROTATE kept of this length, and room in the budget: a new one, so that
            // the buffers a stream reads into take turns (see `kept`).
            let rotate = b.kept[i].1.len() < ROTATE && b.allocated + len <= self.budget;
            if !rotate || b.kept[i].0 != len {
                if let Some(buf) = b.kept[i].1.pop_front() {
                    b.lent += buf.len;
                    return Ok(Take::Got(buf));
                }
            }
        }
        // Make room by freeing buffers of other lengths nobody holds.
        while b.allocated + len > self.budget {
            let Some(buf) = b.kept.iter_mut().find_map(|(_, list)| list.pop_back()) else {
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
            return Ok(Take::Got(buf));
        }
        if !urgent {
            return Ok(Take::Later);
        }
        // Nothing is kept (the loop above freed it all) and every buffer that exists is lent. If
        // all of them are out to this very task, only it could give one back, and it is waiting:
        // it would wait for ever. Buffers of reads in flight, of chunks ready in a stream or of
        // files not handed out yet are not out to anyone, and come back (or go out) without this
        // task; buffers out to other tasks come back when those drop them.
        if let Some(held) = b.held_by(waker, self.budget) {
            // Not kept waiting (the waker of an earlier wait goes, once the pool is unlocked).
            let stale = b
                .waiters
                .iter()
                .position(|w| w.will_wake(waker))
                .map(|k| b.waiters.swap_remove(k));
            drop(b);
            drop(stale);
            return Ok(Take::Held(held));
        }
        if !b.waiters.iter().any(|w| w.will_wake(waker)) {
            b.waiters.push(waker.clone());
        }
        Ok(Take::Later)
    }

    /// `buf`, lent to a stream, a batch or a read, goes to its consumer: the task `to` polled it
    /// out, and `from` names the file. Until it is given back it is booked to that task (so that
    /// the task, waiting for the budget while holding all of it, is told: [`Take::Held`]). A task
    /// it then moves to is not seen: the buffer stays booked to the first. `hint`: the caller's
    /// memory of where the task's entry was (any value will do; it is updated).
    pub(super) fn hand_out(&self, buf: &mut Buf, to: &Waker, from: &Arc<Path>, hint: &mut u32) {
        let wake = {
            let mut b = self.lock();
            let i = b.taker(to, *hint);
            *hint = i as u32;
            let source = b.takers[i].add(buf.len, from);
            buf.out = Some(Tag {
                taker: i as u32,
                source,
            });
            // If this task waits for the budget too (another of its streams or reads, polled in
            // the same task), and it now holds every buffer lent, wake it: its next poll says so.
            // (It is the task being polled now: the wake only asks for another poll.)
            if b.takers[i].bytes == b.lent && !b.waiters.is_empty() {
                let id = b.takers[i].id;
                b.waiters
                    .iter()
                    .position(|w| task_id(w) == id)
                    .map(|k| b.waiters.swap_remove(k))
            } else {
                None
            }
        };
        if let Some(w) = wake {
            w.wake();
        }
    }

    /// Buffers given back: kept for the next stream, and every waiting stream is woken.
    pub(super) fn give(&self, bufs: impl IntoIterator<Item = Buf>) {
        let mut bufs = bufs.into_iter().peekable();
        if bufs.peek().is_none() {
            return;
        }
        // The wakers of tasks that no longer hold any buffer, dropped once the pool is unlocked
        // (dropping a task's last waker may drop the task, and with it buffers given back here).
        // Buffers handed out come back one at a time: `more` stays empty (no allocation).
        let mut freed: Option<Waker> = None;
        let mut more: Vec<Waker> = Vec::new();
        let waiters = {
            let mut b = self.lock();
            for mut buf in bufs {
                b.lent -= buf.len;
                let len = buf.len;
                if let Some(tag) = buf.out.take() {
                    if let Some(w) = b.takers[tag.taker as usize].remove(len, tag.source) {
                        b.idle.push(tag.taker as usize);
                        match freed {
                            None => freed = Some(w),
                            Some(_) => more.push(w),
                        }
                    }
                }
                match b.kept.iter_mut().find(|(l, _)| *l == len) {
                    Some((_, list)) => list.push_back(buf),
                    None => b.kept.push((len, VecDeque::from([buf]))),
                }
            }
            std::mem::take(&mut b.waiters)
        };
        for w in waiters {
            w.wake();
        }
        drop(freed);
        drop(more);
    }

    /// Bytes of buffers streams hold.
    pub(super) fn lent(&self) -> usize {
        self.lock().lent
    }

    /// Whether the buffers handed out hold more than half the budget: bytes a caller may keep for
    /// long are then copied out of the pool's buffers, so that reads can go on.
    pub(super) fn pressed(&self) -> bool {
        self.lent() > self.budget / 2
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
        let a = pool.take(8192, 0, true, w).unwrap().got().unwrap();
        let a_ptr = a.ptr();
        let b = pool.take(8192, 8192, false, w).unwrap().got().unwrap();
        let c = pool.take(8192, 16384, false, w).unwrap().got().unwrap();
        // The budget is spent: an urgent taker waits, a read-ahead taker is refused.
        assert!(pool.take(8192, 0, true, w).unwrap().got().is_none());
        assert_eq!(pool.stats().waiting, 1);
        assert!(pool.take(8192, 0, false, w).unwrap().got().is_none());
        pool.give([a]);
        assert_eq!(pool.stats().waiting, 0);
        let again = pool.take(8192, 0, true, w).unwrap().got().unwrap();
        assert_eq!(again.ptr(), a_ptr, "a kept buffer is reused");
        // Another length: kept buffers of the first are freed to make room.
        pool.give([again, b]);
        let big = pool.take(16384, 0, true, w).unwrap().got().unwrap();
        let s = pool.stats();
        assert!(s.allocated <= s.budget && s.peak <= s.budget, "{s:?}");
        assert_eq!(s.lent, 8192 + 16384);
        pool.give([big, c]);
        assert_eq!(pool.stats().lent, 0);
    }

    #[test]
    fn a_stream_that_gives_each_buffer_back_at_once_reads_into_buffers_in_turn() {
        let pool = Pool::new(16 * 8192);
        let w = Waker::noop();
        let mut seen = Vec::new();
        for _ in 0..3 * ROTATE {
            let b = pool.take(8192, 0, true, w).unwrap().got().unwrap();
            seen.push(b.ptr());
            pool.give([b]);
        }
        let distinct: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), ROTATE);
        for k in ROTATE..seen.len() {
            assert_eq!(seen[k], seen[k - ROTATE], "lent again oldest first");
        }
        assert_eq!(pool.stats().allocated, ROTATE * 8192);
    }

    #[test]
    fn a_kept_buffer_a_little_longer_is_reused_rather_than_freed() {
        let pool = Pool::new(4 * 8192);
        let w = Waker::noop();
        let bufs: Vec<Buf> = (0..4)
            .map(|_| pool.take(8192, 0, true, w).unwrap().got().unwrap())
            .collect();
        pool.give(bufs);
        // 4096 asked, up to 8192 taken: a kept 8192 is lent, nothing freed or allocated.
        let b = pool
            .take_fit(4096, 8192, 0, true, w)
            .unwrap()
            .got()
            .unwrap();
        assert_eq!(b.len(), 8192);
        let s = pool.stats();
        assert_eq!((s.allocated, s.lent), (4 * 8192, 8192));
        // Exactly 4096 asked: no kept buffer fits, so one 8192 is freed to make room.
        let c = pool.take(4096, 0, true, w).unwrap().got().unwrap();
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

    /// A task whose own chunks hold the whole budget is told when it would wait for more; another
    /// task waits (the first may drop them), and so does the first while any buffer lent is not
    /// out to it (a read in flight, a chunk ready in a stream, a chunk out to another task).
    #[test]
    fn a_task_that_holds_the_whole_budget_is_told_instead_of_waiting() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Task(AtomicUsize);
        impl std::task::Wake for Task {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (ta, tb) = (
            Arc::new(Task(AtomicUsize::new(0))),
            Arc::new(Task(AtomicUsize::new(0))),
        );
        let (a, b) = (Waker::from(Arc::clone(&ta)), Waker::from(Arc::clone(&tb)));
        let pool = Pool::new(2 * 8192);
        let (f, g): (Arc<Path>, Arc<Path>) = (Arc::from(Path::new("f")), Arc::from(Path::new("g")));
        let mut hint = u32::MAX;
        let mut x = pool.take(8192, 0, true, &a).unwrap().got().unwrap();
        let mut y = pool.take(8192, 0, true, &a).unwrap().got().unwrap();
        pool.hand_out(&mut x, &a, &f, &mut hint);
        // `y` is still its stream's (a read in flight, a chunk ready): it comes back without `a`.
        assert!(matches!(pool.take(8192, 0, true, &a).unwrap(), Take::Later));
        assert_eq!(pool.stats().waiting, 1);
        // Handed out to `a` too: `a` waits for what only it can give back, and is woken to be told.
        pool.hand_out(&mut y, &a, &g, &mut hint);
        assert_eq!(ta.0.load(Ordering::Relaxed), 1, "the waiting task is woken");
        match pool.take(8192, 0, true, &a).unwrap() {
            Take::Held(h) => match h.error(Path::new("h")) {
                Error::BudgetHeld {
                    held, bytes, of, ..
                } => {
                    assert_eq!((held, bytes), (2, 16384));
                    assert_eq!(of, [("f".into(), 1), ("g".into(), 1)]);
                }
                e => panic!("{e}"),
            },
            _ => panic!("a waits for ever"),
        }
        assert_eq!(pool.stats().waiting, 0, "a task told is not kept waiting");
        // Another task waits: `a` may give them back.
        assert!(matches!(pool.take(8192, 0, true, &b).unwrap(), Take::Later));
        pool.give([y]);
        assert_eq!(tb.0.load(Ordering::Relaxed), 1);
        // One out to `b`, one to `a`: neither is told, both wait.
        let mut y = pool.take(8192, 0, true, &b).unwrap().got().unwrap();
        let mut other = u32::MAX;
        pool.hand_out(&mut y, &b, &f, &mut other);
        assert_ne!(other, hint, "one entry a task");
        assert!(matches!(pool.take(8192, 0, true, &a).unwrap(), Take::Later));
        assert!(matches!(pool.take(8192, 0, true, &b).unwrap(), Take::Later));
        pool.give([x, y]);
        let books = pool.lock();
        assert_eq!(books.lent, 0);
        assert!(
            books
                .takers
                .iter()
                .all(|t| t.waker.is_none() && t.buffers == 0),
            "no waker kept for a task that holds nothing"
        );
    }

    #[test]
    fn read_ahead_stays_within_a_share() {
        let pool = Pool::new(4 * 4096);
        pool.stream_count(true);
        pool.stream_count(true);
        let w = Waker::noop();
        let a = pool.take(4096, 0, true, w).unwrap().got().unwrap();
        let b = pool.take(4096, 4096, false, w).unwrap().got().unwrap();
        assert!(
            pool.take(4096, 8192, false, w).unwrap().got().is_none(),
            "past the share"
        );
        pool.give([a, b]);
    }
}
