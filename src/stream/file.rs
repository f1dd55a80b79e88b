//! [`FileStream`]: a file's chunks as a `Stream`, read ahead by the driver into the stream's own
//! buffers, handed out in file order as [`OwnedChunk`]s.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::chunk::OwnedChunk;
use super::driver::{Counters, Driver, DriverInner, ReadOp};
use crate::buf::Arena;
use crate::error::{Error, Result};
use crate::options::{ReadOptions, ALIGN};
use crate::reader::{inspect, on_fuse, open_read, Inspected, Notice};
use crate::ring::CURRENT_POSITION;

/// The descriptors a stream reads: kept open by the stream and by each of its reads in flight.
pub(super) struct Fds {
    file: File,
    direct: Option<OwnedFd>,
}

/// One buffer of a stream, and where it is in its life.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// Nobody's: the stream may read into it.
    Free,
    /// A read of chunk `seq` is in flight (or its completion `res` has arrived and awaits the stream).
    Reading {
        seq: u64,
        offset: u64,
        filled: u32,
        want: u32,
        res: Option<i32>,
    },
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
    /// Handed out as an [`OwnedChunk`]; free again when that is dropped.
    Lent,
}

struct State {
    slots: Vec<Slot>,
    waker: Option<Waker>,
    /// The stream was dropped: nothing will collect what is read.
    closed: bool,
}

/// A stream's buffers and their states: shared by the stream, its chunks and its reads in flight,
/// and freed when the last of them is gone.
pub(super) struct Shared {
    arena: Arena,
    state: Mutex<State>,
    counters: Arc<Counters>,
}

// SAFETY: the arena's memory is only touched through the slot state machine under `state`'s lock: a
// slot is written by the kernel only while `Reading` (and nobody reads it then), and read through an
// `OwnedChunk` only while `Lent` (and the kernel is not given it then). The rest is Sync already.
unsafe impl Sync for Shared {}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A read into `slot` completed with `res` (bytes, or `-errno`).
    pub(super) fn complete(&self, slot: usize, res: i32) {
        let waker = {
            let mut st = self.lock();
            if let Some(Slot::Reading { res: r @ None, .. }) = st.slots.get_mut(slot) {
                *r = Some(res);
            }
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The chunk lent from `slot` was dropped.
    pub(super) fn release(&self, slot: usize) {
        let waker = {
            let mut st = self.lock();
            st.slots[slot] = Slot::Free;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the stream is gone.
    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The first `len` bytes of `slot`.
    ///
    /// # Safety
    /// The slot must be `Lent` to the caller, and `len` bytes of it written by a completed read.
    pub(super) unsafe fn bytes(&self, slot: usize, start: usize, len: usize) -> &[u8] {
        // SAFETY: the caller's promise: the kernel is done with this slot and nobody else writes it.
        unsafe { &self.arena.slot(slot, len)[start..] }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.counters.live_buffers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A file's chunks, in file order, as a [`Stream`](futures_core::Stream) of
/// `Result<OwnedChunk, Error>`.
///
/// The stream reads ahead: up to `depth` reads of `chunk_size` bytes are in flight at once, performed
/// by its [`Driver`]'s thread. A chunk handed out keeps its buffer until it (or the `Bytes` made from
/// it) is dropped, and the stream never has more than `depth` buffers: holding chunks stops reading.
///
/// Dropping the stream part way cancels its reads in flight (`IORING_OP_ASYNC_CANCEL`); its buffers
/// are freed once those reads have completed and every chunk handed out is dropped, and its file is
/// closed once the reads have completed.
///
/// After an error (named by path and offset, every byte before the offset delivered) the stream ends.
pub struct FileStream {
    shared: Arc<Shared>,
    fds: Arc<Fds>,
    driver: Arc<DriverInner>,
    path: PathBuf,
    chunk: u64,
    align: u64,
    start: u64,
    /// Where reading stops at the latest (`max_bytes`).
    limit_end: u64,
    size_hint: u64,
    positional: bool,
    /// The next chunk to read, and the next to hand out.
    next_submit: u64,
    next_deliver: u64,
    /// Bytes read of a stream (pipe) so far: its chunks' offsets.
    consumed: u64,
    /// The end is found (or an error handed out): no more reads.
    ended: bool,
    /// Everything is handed out.
    done: bool,
    /// An error to hand out after the chunk just handed out (the bytes before it come first).
    pending: Option<Error>,
    blocking: bool,
    notices: Vec<Notice>,
}

impl std::fmt::Debug for FileStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStream")
            .field("path", &self.path)
            .field("chunk", &self.chunk)
            .field("next_deliver", &self.next_deliver)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Opens `path` for streaming with these options (`chunk_size`, `depth`, `direct`, `max_bytes`;
    /// `threads` and `sqpoll` do not apply: the driver's threads read). The open itself is a
    /// blocking `open(2)` on the calling thread, as `std::fs::File::open` is (a FIFO's waits for a
    /// writer); a pipe, socket or FIFO already open can be handed over with [`Driver::open_file`].
    pub fn open(&self, path: impl AsRef<Path>, opts: &ReadOptions) -> Result<FileStream> {
        let path = path.as_ref();
        let file = open_read(path)?;
        self.stream(file, path, Some(path), opts)
    }

    /// Streams an open file (a pipe, standard input, a file handed over) from its current position;
    /// `name` is what errors call it. The stream owns the file from now on.
    pub fn open_file(
        &self,
        file: File,
        name: impl AsRef<Path>,
        opts: &ReadOptions,
    ) -> Result<FileStream> {
        self.stream(file, name.as_ref(), None, opts)
    }

    fn stream(
        &self,
        file: File,
        name: &Path,
        path: Option<&Path>,
        opts: &ReadOptions,
    ) -> Result<FileStream> {
        let Inspected {
            fd,
            positional,
            start,
            size_hint,
            direct,
            mut notices,
        } = inspect(&file, name, path, opts.direct(), opts.chunk_size())?;
        let (direct, align) = match direct {
            Some((d, a)) => (Some(d), a as u64),
            None => (None, ALIGN as u64),
        };
        // io_uring on FUSE files opened with FOPEN_DIRECT_IO reports short replies as full reads
        // (see the reader); the driver reads FUSE files with read(2) on its thread instead.
        let blocking = on_fuse(fd);
        if blocking {
            notices.push(Notice::Fuse { forced: false });
        }
        if let Some(n) = self.notice() {
            notices.push(n.clone());
        }
        let depth = opts.depth();
        let arena = Arena::new(depth, opts.chunk_size())?;
        let counters = Arc::clone(&self.inner.counters);
        counters.live_buffers.fetch_add(1, Ordering::AcqRel);
        let shared = Arc::new(Shared {
            arena,
            state: Mutex::new(State {
                slots: vec![Slot::Free; depth],
                waker: None,
                closed: false,
            }),
            counters,
        });
        Ok(FileStream {
            shared,
            fds: Arc::new(Fds { file, direct }),
            driver: Arc::clone(&self.inner),
            path: name.to_path_buf(),
            chunk: opts.chunk_size() as u64,
            align,
            start,
            limit_end: opts
                .max_bytes()
                .map_or(u64::MAX, |m| start.saturating_add(m)),
            size_hint,
            positional,
            next_submit: 0,
            next_deliver: 0,
            consumed: 0,
            ended: false,
            done: false,
            pending: None,
            blocking,
            notices,
        })
    }
}

/// Buffers per stream when the caller does not choose: 16 of 256 KiB (4 MiB). A stream's reads are
/// spread over the driver's threads and each completion costs a task wake-up, so it wants more in
/// flight than the synchronous engine (whose default is 4): 2 GiB warm, null processor, 2 CPUs:
/// 7.0 GiB/s at depth 4, 8.9 at 8, 10.7 at 16, 11.0 at 32 (docs/BENCHMARKS.md).
pub const DEFAULT_DEPTH: usize = 16;

/// The options [`open`] uses: the engine's defaults with [`DEFAULT_DEPTH`] buffers.
pub fn default_options() -> ReadOptions {
    ReadOptions::builder()
        .depth(DEFAULT_DEPTH)
        .build()
        .expect("the default options are valid")
}

/// Opens `path` on the process-wide driver ([`Driver::global`]) with [`default_options`].
pub fn open(path: impl AsRef<Path>) -> Result<FileStream> {
    Driver::global()?.open(path, &default_options())
}

impl FileStream {
    /// The path (or name) errors use.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the stream does differently from what was asked, and why (no io_uring, no `O_DIRECT`,
    /// a FUSE file read with `read(2)`).
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// The next chunk, or `None` at the end: the same as `StreamExt::next`, without the import.
    pub fn next_chunk(&mut self) -> impl Future<Output = Option<Result<OwnedChunk>>> + '_ {
        std::future::poll_fn(move |cx| self.poll_chunk(cx))
    }

    fn offset_of(&self, seq: u64) -> u64 {
        self.start.saturating_add(seq.saturating_mul(self.chunk))
    }

    /// Queues a read of `want - filled` bytes at `offset + filled` into `slot`.
    fn read_op(&self, slot: usize, offset: u64, filled: u32, want: u32) -> ReadOp {
        let at = offset + filled as u64;
        let left = want - filled;
        let fd: RawFd = match &self.fds.direct {
            Some(d) if at % self.align == 0 && left as u64 % self.align == 0 => d.as_raw_fd(),
            _ => self.fds.file.as_raw_fd(),
        };
        ReadOp {
            shared: Arc::clone(&self.shared),
            fds: Arc::clone(&self.fds),
            slot,
            fd,
            offset: if self.positional {
                at
            } else {
                CURRENT_POSITION
            },
            // `filled` < `want` <= the slot's length, so this stays inside the slot.
            buf: self
                .shared
                .arena
                .slot_ptr(slot)
                .wrapping_add(filled as usize),
            len: left,
            blocking: self.blocking,
            // Chunks go round the driver's threads, as the engine's go round its lanes.
            lane: if self.positional {
                ((offset - self.start) / self.chunk) as usize
            } else {
                0
            },
        }
    }

    /// Reads the rest of chunk `seq` into slot `i` (`filled` of `want` bytes are there): the read goes
    /// in `resend`, the slot's new state is returned.
    fn again(
        &self,
        i: usize,
        seq: u64,
        offset: u64,
        filled: u32,
        want: u32,
        resend: &mut Vec<ReadOp>,
    ) -> Slot {
        resend.push(self.read_op(i, offset, filled, want));
        Slot::Reading {
            seq,
            offset,
            filled,
            want,
            res: None,
        }
    }

    /// Turns the completions that arrived into states: short reads and EINTR/EAGAIN go back to the
    /// driver (in `resend`).
    fn settle(&mut self, st: &mut State, resend: &mut Vec<ReadOp>) {
        for i in 0..st.slots.len() {
            let Slot::Reading {
                seq,
                offset,
                filled,
                want,
                res: Some(res),
            } = st.slots[i]
            else {
                continue;
            };
            if self.ended {
                // Read past the end that was found, or after an error: nobody wants it.
                st.slots[i] = Slot::Free;
                continue;
            }
            st.slots[i] = if res < 0 {
                let errno = -res;
                if matches!(errno, libc::EINTR | libc::EAGAIN) {
                    self.again(i, seq, offset, filled, want, resend)
                } else if filled > 0 {
                    // The bytes before the failure are handed out first, then the error.
                    Slot::Ready {
                        seq,
                        offset,
                        len: filled,
                        end: true,
                        errno,
                    }
                } else {
                    Slot::Failed { seq, offset, errno }
                }
            } else if res == 0 {
                Slot::Ready {
                    seq,
                    offset,
                    len: filled,
                    end: true,
                    errno: 0,
                }
            } else {
                let filled = filled + res as u32;
                if !self.positional {
                    self.consumed += filled as u64;
                    Slot::Ready {
                        seq,
                        offset,
                        len: filled,
                        end: self.consumed >= self.limit_end,
                        errno: 0,
                    }
                } else if filled >= want {
                    Slot::Ready {
                        seq,
                        offset,
                        len: filled,
                        end: offset + filled as u64 >= self.limit_end,
                        errno: 0,
                    }
                } else {
                    // A short read: the rest of the chunk, or the end of the file (the next read
                    // says 0).
                    self.again(i, seq, offset, filled, want, resend)
                }
            };
        }
    }

    /// Whether chunk `seq` may be read now.
    fn may_read(&self, st: &State, seq: u64) -> bool {
        if self.ended {
            return false;
        }
        if !self.positional {
            // A pipe or socket has one position: one read at a time, and nothing past the limit.
            return self.consumed < self.limit_end
                && !st.slots.iter().any(|s| matches!(s, Slot::Reading { .. }));
        }
        let offset = self.offset_of(seq);
        if offset >= self.limit_end {
            return false;
        }
        // Past the size `fstat` gave, one read at a time, and only when all before it are handed
        // out: it finds the end (0), or that the file grew.
        offset < self.size_hint || seq == self.next_deliver
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<OwnedChunk>>> {
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Poll::Ready(Some(Err(e)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let shared = Arc::clone(&self.shared);
        let mut send = Vec::new();
        let out = {
            let mut st = shared.lock();
            self.settle(&mut st, &mut send);
            let turn = st.slots.iter().position(|s| match *s {
                Slot::Ready { seq, .. } | Slot::Failed { seq, .. } => seq == self.next_deliver,
                _ => false,
            });
            let out = match turn.map(|i| (i, st.slots[i])) {
                Some((
                    i,
                    Slot::Ready {
                        offset,
                        len,
                        end,
                        errno,
                        ..
                    },
                )) => {
                    self.next_deliver += 1;
                    if errno != 0 {
                        self.ended = true;
                        self.pending = Some(Error::Read {
                            path: self.path.clone(),
                            offset: offset + len as u64,
                            source: io::Error::from_raw_os_error(errno),
                        });
                    } else if end {
                        self.ended = true;
                        self.done = true;
                    }
                    if len == 0 {
                        st.slots[i] = Slot::Free;
                        self.done = true;
                        Some(None)
                    } else {
                        st.slots[i] = Slot::Lent;
                        Some(Some(Ok(OwnedChunk::new(
                            Arc::clone(&self.shared),
                            i,
                            offset,
                            len as usize,
                        ))))
                    }
                }
                Some((i, Slot::Failed { offset, errno, .. })) => {
                    st.slots[i] = Slot::Free;
                    self.ended = true;
                    self.done = true;
                    Some(Some(Err(Error::Read {
                        path: self.path.clone(),
                        offset,
                        source: io::Error::from_raw_os_error(errno),
                    })))
                }
                _ => None,
            };
            if self.done {
                // Anything still in flight is not wanted: free the slots as completions come.
                self.settle(&mut st, &mut send);
            } else {
                // Fill every free buffer (the reads go out after the lock is released), once a
                // quarter of them are free or nothing is in flight: a wake-up of the driver then
                // carries several reads, not one per chunk handed out.
                let free = st.slots.iter().filter(|s| matches!(s, Slot::Free)).count();
                let busy = st
                    .slots
                    .iter()
                    .any(|s| matches!(s, Slot::Reading { .. } | Slot::Ready { .. }));
                let batch = (st.slots.len() / 4).max(1);
                let fill = free >= batch || !busy;
                for i in 0..st.slots.len() {
                    if !fill {
                        break;
                    }
                    if !matches!(st.slots[i], Slot::Free) || !self.may_read(&st, self.next_submit) {
                        continue;
                    }
                    let seq = self.next_submit;
                    let offset = if self.positional {
                        self.offset_of(seq)
                    } else {
                        self.consumed
                    };
                    let room = if self.positional {
                        self.limit_end - offset
                    } else {
                        self.limit_end - self.consumed
                    };
                    let want = self.chunk.min(room) as u32;
                    st.slots[i] = Slot::Reading {
                        seq,
                        offset,
                        filled: 0,
                        want,
                        res: None,
                    };
                    send.push(self.read_op(i, offset, 0, want));
                    self.next_submit += 1;
                }
                if out.is_none() {
                    // Woken by the next completion or by a chunk given back. Registered under the
                    // lock, so a completion recorded after this point sees the waker.
                    match &st.waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => st.waker = Some(cx.waker().clone()),
                    }
                }
            }
            out
        };
        if !send.is_empty() {
            self.driver.read(send);
        }
        match out {
            Some(item) => Poll::Ready(item),
            None => Poll::Pending,
        }
    }
}

impl futures_core::Stream for FileStream {
    type Item = Result<OwnedChunk>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }
}

impl futures_core::FusedStream for FileStream {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl Drop for FileStream {
    fn drop(&mut self) {
        let in_flight = {
            let mut st = self.shared.lock();
            st.closed = true;
            st.waker = None;
            st.slots
                .iter()
                .any(|s| matches!(s, Slot::Reading { res: None, .. }))
        };
        if in_flight {
            // The reads keep the buffers and the file alive until their completions arrive.
            self.driver.cancel(&self.shared);
        }
    }
}
