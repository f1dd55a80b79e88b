//! A stream's buffers and their states ([`Shared`]): what a [`FileStream`](super::FileStream), its
//! [`OwnedChunk`](super::OwnedChunk)s and its reads in flight share, freed when the last of them is
//! gone. The stream moves its slots from state to state (`file.rs`); a lane records a read's
//! completion here ([`ReadOwner`]); a chunk gives its slot back here.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use super::lane::{Counters, ReadOwner};
use super::pool::{Buf, Pool};
use crate::chunks::Piece;

/// One buffer of a stream, and where it is in its life.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    /// Nobody's: the stream may read into it.
    Free,
    /// A read of `piece` is in flight (or its completion `res` has arrived and awaits the stream).
    Reading { piece: Piece, res: Option<i32> },
    /// Chunk `seq` is read (`len` bytes; `end`: nothing follows it; `errno` non-zero: reading on at
    /// `offset + len` failed with it, so the error follows the chunk).
    Ready {
        seq: u64,
        offset: u64,
        len: u32,
        end: bool,
        errno: i32,
    },
    /// Reading chunk `seq` failed at `offset`.
    Failed { seq: u64, offset: u64, errno: i32 },
    /// Handed out as an [`OwnedChunk`](super::OwnedChunk); free again when that is dropped.
    Lent,
}

/// The slots of a stream, under its lock.
pub(super) struct State {
    pub(super) slots: Vec<Slot>,
    /// Each slot's buffer: taken from the driver's pool when a read into the slot starts, given
    /// back when the slot is free again. `Some` whenever the slot is `Reading`, `Ready` or `Lent`.
    pub(super) bufs: Vec<Option<Buf>>,
    /// Slots whose buffer the kernel may still write (their read was abandoned when a ring failed):
    /// when freed, the buffer is leaked, never given back.
    poisoned: Vec<bool>,
    pub(super) waker: Option<Waker>,
    /// The stream was dropped: nothing will collect what is read.
    pub(super) closed: bool,
    /// The stream has handed out its end (or was dropped): what completes from now on is not
    /// wanted, and its buffer goes straight back to the pool.
    finished: bool,
}

/// A stream's buffers and their states: shared by the stream, its chunks and its reads in flight,
/// and freed when the last of them is gone.
pub(super) struct Shared {
    state: Mutex<State>,
    pub(super) counters: Arc<Counters>,
    pub(super) pool: Arc<Pool>,
}

// SAFETY: the buffers' memory is only touched through the slot state machine under `state`'s lock:
// a slot's buffer is written by the kernel only while `Reading` (and nobody reads it then), and read
// through an `OwnedChunk` only while `Lent` (and the kernel is not given it then). The rest is Sync
// already.
unsafe impl Sync for Shared {}

impl State {
    /// The stream is done with its slots: every one not lent out and not being read is freed
    /// (into `giveback`), and reads completing from now on free theirs.
    pub(super) fn finish(&mut self, giveback: &mut Vec<Buf>) {
        self.finished = true;
        for i in 0..self.slots.len() {
            if matches!(
                self.slots[i],
                Slot::Free
                    | Slot::Ready { .. }
                    | Slot::Failed { .. }
                    | Slot::Reading { res: Some(_), .. }
            ) {
                giveback.extend(self.free(i));
            }
        }
    }

    /// Frees slot `i`; returns its buffer, for the pool once the lock is released (none if the slot
    /// had none, or if it is poisoned: then the buffer is leaked).
    #[must_use]
    pub(super) fn free(&mut self, i: usize) -> Option<Buf> {
        self.slots[i] = Slot::Free;
        let buf = self.bufs[i].take();
        if std::mem::take(&mut self.poisoned[i]) {
            std::mem::forget(buf);
            return None;
        }
        buf
    }
}

impl Shared {
    /// The shared state of a stream of `depth` slots, all free, whose buffers come from `pool`.
    /// Counted in `live_buffers` until it is dropped.
    pub(super) fn new(depth: usize, pool: Arc<Pool>, counters: Arc<Counters>) -> Shared {
        counters.live_buffers.fetch_add(1, Ordering::AcqRel);
        Shared {
            pool,
            state: Mutex::new(State {
                slots: vec![Slot::Free; depth],
                bufs: (0..depth).map(|_| None).collect(),
                poisoned: vec![false; depth],
                waker: None,
                closed: false,
                finished: false,
            }),
            counters,
        }
    }

    /// The slots, locked.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The chunk lent from `slot` was dropped.
    pub(super) fn release(&self, slot: usize) {
        let (giveback, waker) = {
            let mut st = self.lock();
            (st.free(slot), st.waker.take())
        };
        // Back to the pool first: that wakes streams waiting for a buffer, this one included.
        self.pool.give(giveback);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl ReadOwner for Shared {
    /// A read into `slot` completed with `res` (bytes, or `-errno`). Returns the stream's task to
    /// wake (the lane wakes each task once per batch of completions).
    fn complete(&self, slot: usize, res: i32) -> Option<Waker> {
        let mut giveback = None;
        let waker = {
            let mut st = self.lock();
            if let Some(Slot::Reading { res: r @ None, .. }) = st.slots.get_mut(slot) {
                *r = Some(res);
                if st.finished {
                    // The kernel is done with the buffer (this is the read's completion).
                    giveback = st.free(slot);
                }
            }
            st.waker.take()
        };
        self.pool.give(giveback);
        waker
    }

    /// The read into `slot` is abandoned (its ring failed): the kernel may still write the slot's
    /// buffer, so it must never be given back, and the stream's state is never freed.
    fn abandon(self: Arc<Self>, slot: usize) {
        self.lock().poisoned[slot] = true;
        std::mem::forget(self);
    }

    /// Whether the stream is gone.
    fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // No read is in flight (each holds this `Shared`) and no chunk is lent (each does too).
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let bufs: Vec<Buf> = (0..st.slots.len()).filter_map(|i| st.free(i)).collect();
        self.pool.give(bufs);
        self.counters.live_buffers.fetch_sub(1, Ordering::AcqRel);
    }
}
