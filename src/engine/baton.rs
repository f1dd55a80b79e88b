//! The baton: which chunk the processor takes next, and how threads wait for their turn.
//!
//! Chunks are numbered 0, 1, 2, ... in file order. `turn` is the number of the next chunk to hand to
//! the processor; only the thread holding chunk `turn` may call the processor, and when it is done it
//! moves `turn` on. `end` is the first chunk that will never be handed over (end of file, an error,
//! or the processor asked to stop); threads waiting for a turn at or past `end` give up.
//!
//! Waiting spins first (a turn usually comes within the time one chunk takes to process), then yields,
//! then sleeps on a condition variable. The spin budget adapts per thread: it doubles when spinning
//! was enough and halves when it was not, so that a busy machine (another process holding a core)
//! does not burn the time slice the other thread needs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};

const MIN_SPIN: u32 = 16;
/// Measured warm on a 2 GiB file (docs/BENCHMARKS.md): a cap of 64 spins (then yields, then sleep)
/// against 16384 took `sum -a xxh3` from 0.160 s to 0.149 s and `count` from 0.133 s to 0.119 s;
/// the turn usually comes within a few microseconds, and a longer spin only takes cycles from
/// whatever shares the CPU.
const MAX_SPIN: u32 = 1 << 6;
const YIELDS: u32 = 4;

/// Shared turn state of one file's read.
#[derive(Debug)]
pub(crate) struct Baton {
    turn: AtomicU64,
    end: AtomicU64,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

/// A thread's adaptive spin budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spin(u32);

impl Default for Spin {
    fn default() -> Self {
        Spin(MAX_SPIN)
    }
}

impl Baton {
    pub(crate) fn new() -> Self {
        Baton {
            turn: AtomicU64::new(0),
            end: AtomicU64::new(u64::MAX),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// The next chunk to be handed to the processor.
    pub(crate) fn turn(&self) -> u64 {
        self.turn.load(SeqCst)
    }

    /// The first chunk that will never be handed over.
    pub(crate) fn end(&self) -> u64 {
        self.end.load(SeqCst)
    }

    /// Chunk `k` was handed over: the next turn is `k + 1`.
    pub(crate) fn pass(&self, k: u64) {
        self.turn.store(k + 1, SeqCst);
        self.notify();
    }

    /// No chunk at or after `k` will be handed over.
    pub(crate) fn stop_at(&self, k: u64) {
        self.end.fetch_min(k, SeqCst);
        self.notify();
    }

    fn notify(&self) {
        if self.sleepers.load(SeqCst) > 0 {
            drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
            self.wake.notify_all();
        }
    }

    fn state(&self, k: u64) -> Option<bool> {
        if self.end.load(SeqCst) <= k {
            Some(false)
        } else if self.turn.load(SeqCst) >= k {
            Some(true)
        } else {
            None
        }
    }

    /// Waits until chunk `k` may be handed over (`true`), or never will be (`false`).
    pub(crate) fn wait_for(&self, k: u64, spin: &mut Spin) -> bool {
        if let Some(r) = self.state(k) {
            return r;
        }
        for _ in 0..spin.0 {
            std::hint::spin_loop();
            if let Some(r) = self.state(k) {
                spin.0 = (spin.0 * 2).min(MAX_SPIN);
                return r;
            }
        }
        spin.0 = (spin.0 / 2).max(MIN_SPIN);
        for _ in 0..YIELDS {
            std::thread::yield_now();
            if let Some(r) = self.state(k) {
                return r;
            }
        }
        self.sleepers.fetch_add(1, SeqCst);
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let r = loop {
            if let Some(r) = self.state(k) {
                break r;
            }
            guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
        };
        drop(guard);
        self.sleepers.fetch_sub(1, SeqCst);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn turns_pass_in_order_between_threads() {
        let baton = Arc::new(Baton::new());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..3u64)
            .map(|t| {
                let (baton, seen) = (baton.clone(), seen.clone());
                std::thread::spawn(move || {
                    let mut spin = Spin(MIN_SPIN);
                    let mut k = t;
                    while baton.wait_for(k, &mut spin) {
                        seen.lock().unwrap().push(k);
                        if k == 299 {
                            baton.stop_at(k + 1);
                        }
                        baton.pass(k);
                        k += 3;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*seen.lock().unwrap(), (0..300).collect::<Vec<_>>());
    }

    #[test]
    fn stop_wakes_sleepers() {
        let baton = Arc::new(Baton::new());
        let b = baton.clone();
        let waiter = std::thread::spawn(move || b.wait_for(5, &mut Spin(MIN_SPIN)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        baton.stop_at(3);
        assert!(!waiter.join().unwrap());
    }
}
