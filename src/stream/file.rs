//! [`FileStream`]: a file's chunks as a `Stream`, read ahead by the driver into buffers from the
//! driver's pool, handed out in file order as [`OwnedChunk`]s.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::chunk::OwnedChunk;
use super::driver::{Driver, DriverInner};
use super::lane::{read_with, Fixed, ReadOp};
use super::pool::{Buf, Held, Pool, Take};
use super::slots::{Shared, Slot, State};
use crate::chunks::{Chunks, Piece, Step, Via};
use crate::error::{Error, Result};
use crate::file::{inspect, on_fuse, open_read, Inspected};
use crate::options::ReadOptions;
use crate::reader::Notice;
use crate::residency::all_cached;

/// The descriptors a stream reads: kept open by the stream and by each of its reads in flight.
struct Fds {
    file: File,
    direct: Option<OwnedFd>,
    /// Drop the file from this offset on from the page cache when the last holder is done with it
    /// (`dontcache`, and nothing of that part was cached when its reading began; see the reader's
    /// `Inspected`).
    drop_after: Option<u64>,
}

impl Drop for Fds {
    fn drop(&mut self) {
        if let Some(from) = self.drop_after {
            // Every read of the stream is over (each holds this): what is cached, it brought in.
            // SAFETY: advice on the descriptor this struct owns, before it is closed.
            unsafe {
                libc::posix_fadvise(
                    self.file.as_raw_fd(),
                    from as libc::off_t,
                    0,
                    libc::POSIX_FADV_DONTNEED,
                )
            };
        }
    }
}

/// A file's chunks, in file order, as a [`Stream`](futures_core::Stream) of
/// `Result<OwnedChunk, Error>`.
///
/// The stream reads ahead: up to `depth` reads of `chunk_size` bytes are in flight at once, performed
/// by its [`Driver`]'s threads into buffers from the driver's pool (within the driver's budget, see
/// [`Driver::with_budget`]). A chunk handed out keeps its buffer until it (or the `Bytes` made from
/// it) is dropped, and the stream never has more than `depth` buffers: holding chunks stops reading.
///
/// Holding every one of them while asking for the next chunk would wait for ever (the task that
/// polls is the one that holds them, as `stream.collect::<Vec<_>>()` does): instead the poll returns
/// [`Error::BuffersHeld`] and the stream ends. Drop chunks before asking for more, copy the bytes you
/// keep (`Bytes::copy_from_slice`), or open the stream with a larger `depth`. A file of exactly
/// `depth` chunks counts too: the read that finds its end needs a buffer.
///
/// A poll also waits when the driver's budget is spent (by other streams, whole files, ranges):
/// it goes on when any of them gives a buffer back. If every byte of the budget is held by chunks
/// and `Bytes` that the polling task itself took (chunks of other streams it keeps while it awaits
/// this one, say), that wait would never end: the poll returns [`Error::BudgetHeld`], naming what
/// the task holds, and the stream ends. See the [module](super) documentation for which calls
/// wait and what the check cannot see.
///
/// If the driver has a [`Cancel`](crate::Cancel) ([`Driver::set_cancel`]) and it is cancelled, the
/// next poll cancels the reads in flight and returns [`Error::Interrupted`].
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
    path: Arc<Path>,
    /// Where the pool found this stream's consumer task last ([`Pool::hand_out`]).
    taker: u32,
    /// The rules: what to read next and what a completion means (shared with every other path).
    rules: Chunks,
    /// Buffers of this stream at most (`depth`).
    depth: usize,
    /// The length of each buffer.
    stride: usize,
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
    /// `RWF_*` flags of its buffered reads (`RWF_DONTCACHE`).
    rw_flags: i32,
    /// Drop read pages from the page cache (`dontcache` without `RWF_DONTCACHE` or `O_DIRECT`).
    drop_behind: bool,
    notices: Vec<Notice>,
    /// The cached fast path applies: the next chunk is first read on the polling thread with
    /// `RWF_NOWAIT` (see [`FileStream::read_here`]).
    fast: bool,
    /// The last read on the polling thread found its chunk (or part of it) not cached: the driver
    /// reads ahead, until it meets a chunk the page cache holds whole.
    read_ahead: bool,
    /// Chunks read on the polling thread since the stream last returned `Pending`.
    fast_run: u32,
    /// Reads go into registered buffers where the driver's rings have them (`register_buffers`).
    register: bool,
}

/// Chunks a stream reads on the polling thread in a row before it yields (wakes its task and
/// returns `Pending`), so that one stream over a cached file does not hold an executor thread:
/// each poll copies at most one chunk, and 32 of 256 KiB are 8 MiB, a few milliseconds.
const FAST_RUN: u32 = 32;

impl std::fmt::Debug for FileStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStream")
            .field("path", &self.path)
            .field("depth", &self.depth)
            .field("next_deliver", &self.next_deliver)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Opens `path` for streaming with these options (`chunk_size`, `depth`, `direct`, `max_bytes`,
    /// `register_buffers`). `threads` and `sqpoll` belong to the synchronous engine: a stream is read
    /// by its driver's threads ([`Driver::with_threads`]), so options that set them are refused with
    /// [`Error::InvalidOptions`] rather than ignored. The open itself is a
    /// blocking `open(2)` on the calling thread, as `std::fs::File::open` is (a FIFO's waits for a
    /// writer); a pipe, socket or FIFO already open can be handed over with [`Driver::chunks`].
    pub(crate) fn open(&self, path: impl AsRef<Path>, opts: &ReadOptions) -> Result<FileStream> {
        let path = path.as_ref();
        let file = open_read(path)?;
        self.stream(file, path, Some(path), opts)
    }

    /// Streams an open file (a pipe, standard input, a file handed over) from its current position;
    /// `name` is what errors call it. The stream owns the file from now on.
    pub(crate) fn open_file(
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
        validate(opts, self.inner.pool.budget())?;
        let Inspected {
            fd,
            positional,
            start,
            size_hint,
            direct,
            mut notices,
            rw_flags,
            drop_behind,
            drop_after,
            dev: _,
        } = inspect(
            &file,
            name,
            path,
            opts.direct(),
            opts.dontcache(),
            opts.chunk_size(),
        )?;
        let rules = Chunks::new(
            start,
            opts.chunk_size(),
            opts.max_bytes(),
            size_hint,
            positional,
            direct.as_ref().map(|(_, a)| *a),
        );
        let direct = direct.map(|(d, _)| d);
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
        let stride = Pool::stride(opts.chunk_size());
        // The fast path reads the page cache: not for O_DIRECT (which bypasses it: its reads wait
        // for the device, which RWF_NOWAIT refuses), pipes and sockets (no offsets: a read there
        // may take bytes that then must be handed out, whatever the cache), FUSE files (read with
        // read(2) on a lane, see above) or `dontcache` (a file mostly not cached, read so as to
        // leave the cache as it was: the probe would fail on nearly every chunk).
        let fast = opts.cached_fast_path()
            && positional
            && direct.is_none()
            && !blocking
            && rw_flags == 0
            && !drop_behind;
        self.inner.pool.stream_count(true);
        let shared = Arc::new(Shared::new(
            depth,
            Arc::clone(&self.inner.pool),
            Arc::clone(&self.inner.counters),
        ));
        Ok(FileStream {
            shared,
            fds: Arc::new(Fds {
                file,
                direct,
                drop_after: drop_after.then_some(start),
            }),
            driver: Arc::clone(&self.inner),
            path: Arc::from(name),
            taker: u32::MAX,
            rules,
            depth,
            stride,
            next_submit: 0,
            next_deliver: 0,
            consumed: 0,
            ended: false,
            done: false,
            pending: None,
            blocking,
            rw_flags,
            drop_behind,
            notices,
            fast,
            read_ahead: false,
            fast_run: 0,
            register: opts.register_buffers(),
        })
    }
}

/// Refuses options a driver cannot read with: `threads` and `sqpoll` belong to the synchronous
/// engine (a driver's threads are its own), and a chunk must fit the driver's whole `budget`.
pub(super) fn validate(opts: &ReadOptions, budget: usize) -> Result<()> {
    if opts.threads().is_some() || opts.sqpoll() {
        return Err(Error::InvalidOptions(
            "a driver reads with its own threads: set them with Driver::with_threads; \
             threads and sqpoll do not apply to it"
                .into(),
        ));
    }
    if Pool::stride(opts.chunk_size()) > budget {
        return Err(Error::InvalidOptions(format!(
            "chunk_size {} is larger than the driver's whole buffer budget ({budget} bytes)",
            opts.chunk_size(),
        )));
    }
    Ok(())
}

/// Buffers per stream when the caller does not choose: 16 of 256 KiB (4 MiB). A stream's reads are
/// spread over the driver's threads and each completion costs a task wake-up, so it wants more in
/// flight than the synchronous engine (whose default is 4): 2 GiB warm, null processor, 2 CPUs:
/// 7.0 GiB/s at depth 4, 8.9 at 8, 10.7 at 16, 11.0 at 32 (docs/BENCHMARKS.md).
pub const DEFAULT_STREAM_DEPTH: usize = 16;

/// The options a [`Driver`] reads with unless given others ([`Driver::with_options`]): the
/// engine's defaults with [`DEFAULT_STREAM_DEPTH`] buffers.
pub fn default_options() -> ReadOptions {
    ReadOptions::builder()
        .depth(DEFAULT_STREAM_DEPTH)
        .build()
        .expect("the default options are valid")
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

    /// Queues the read that brings in the rest of `piece`, into `slot`, whose buffer is `buf`.
    fn read_op(&self, slot: usize, buf: Option<&Buf>, piece: &Piece) -> ReadOp {
        let r = self.rules.next_read(piece);
        let fixed = buf.filter(|_| self.register).and_then(|b| {
            Some(Fixed {
                reg: b.reg()?,
                base: b.ptr(),
                len: b.len(),
            })
        });
        let buf = buf.map_or(std::ptr::null_mut(), Buf::ptr);
        let fd: RawFd = match (r.via, &self.fds.direct) {
            (Via::Direct, Some(d)) => d.as_raw_fd(),
            _ => self.fds.file.as_raw_fd(),
        };
        ReadOp {
            owner: Arc::clone(&self.shared) as _,
            keep: Arc::clone(&self.fds) as _,
            slot,
            fd,
            offset: r.offset,
            // `buf_offset + len` <= the chunk <= the slot's length, so this stays inside the slot.
            buf: buf.wrapping_add(r.buf_offset),
            len: r.len,
            blocking: self.blocking,
            rw_flags: match (r.via, &self.fds.direct) {
                (Via::Direct, Some(_)) => 0,
                _ => self.rw_flags,
            },
            drop_behind: self.drop_behind,
            fixed,
            // Chunks go round the driver's threads, as the engine's go round its lanes.
            lane: if self.rules.positional() {
                piece.k as usize
            } else {
                0
            },
        }
    }

    /// Turns the completions that arrived into states, as [`Chunks::complete`] says: short reads and
    /// EINTR/EAGAIN go back to the driver (in `resend`).
    fn settle(&mut self, st: &mut State, resend: &mut Vec<ReadOp>, giveback: &mut Vec<Buf>) {
        for i in 0..st.slots.len() {
            let Slot::Reading {
                mut piece,
                res: Some(res),
            } = st.slots[i]
            else {
                continue;
            };
            if self.ended {
                // Read past the end that was found, or after an error: nobody wants it.
                giveback.extend(st.free(i));
                continue;
            }
            let offset = piece.offset;
            st.slots[i] = match self.rules.complete(&mut piece, res) {
                Step::Again => {
                    resend.push(self.read_op(i, st.bufs[i].as_ref(), &piece));
                    Slot::Reading { piece, res: None }
                }
                Step::Ready { last } => {
                    if !self.rules.positional() {
                        self.consumed += piece.filled as u64;
                    }
                    Slot::Ready {
                        seq: piece.k,
                        offset,
                        len: piece.filled,
                        end: last,
                        errno: 0,
                    }
                }
                // The bytes before the failure are handed out first, then the error.
                Step::Failed { errno } if piece.filled > 0 => Slot::Ready {
                    seq: piece.k,
                    offset,
                    len: piece.filled,
                    end: true,
                    errno,
                },
                Step::Failed { errno } => Slot::Failed {
                    seq: piece.k,
                    offset,
                    errno,
                },
            };
        }
    }

    /// Chunk `next_submit`, if it may be read now (see [`Chunks::may_read_ahead`]).
    fn next_piece(&self, st: &State) -> Option<Piece> {
        if self.ended {
            return None;
        }
        let reading = st
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Reading { .. }))
            .count();
        if reading >= self.rules.max_in_flight(self.depth) {
            return None;
        }
        if !self
            .rules
            .may_read_ahead(self.next_submit, self.next_deliver)
        {
            return None;
        }
        self.rules.piece(self.next_submit, self.consumed)
    }

    /// Ends the stream because the driver was cancelled: its reads in flight are cancelled (their
    /// buffers stay with them until their completions arrive).
    fn interrupt(&mut self) -> Error {
        if self.finish() {
            self.driver.cancel(&self.shared);
        }
        Error::Interrupted {
            path: self.path.to_path_buf(),
        }
    }

    /// Ends the stream: the buffers it does not lend out go back to the pool (those being read,
    /// as their reads complete). Returns whether reads are in flight.
    fn finish(&mut self) -> bool {
        self.ended = true;
        self.done = true;
        let mut giveback = Vec::new();
        let in_flight = {
            let mut st = self.shared.lock();
            st.finish(&mut giveback);
            st.slots
                .iter()
                .any(|s| matches!(s, Slot::Reading { res: None, .. }))
        };
        self.shared.pool.give(giveback);
        in_flight
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<OwnedChunk>>> {
        if let Some(e) = self.pending.take() {
            self.finish();
            return Poll::Ready(Some(Err(e)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        if self.driver.cancelled() {
            return Poll::Ready(Some(Err(self.interrupt())));
        }
        if self.fast_run >= FAST_RUN {
            // Bounded work per poll, and a bounded run of polls that are all ready: let the
            // executor run other tasks before the next chunk.
            self.fast_run = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let shared = Arc::clone(&self.shared);
        if self.fast && self.read_here(&shared, cx) {
            self.fast_run += 1;
        }
        let mut send = Vec::new();
        let mut giveback = Vec::new();
        let out = self.turn(&shared, cx, &mut send, &mut giveback);
        self.shared.pool.give(giveback);
        if !send.is_empty() {
            self.driver.read(send);
        }
        match out {
            Some(item) => Poll::Ready(item),
            None => {
                self.fast_run = 0;
                Poll::Pending
            }
        }
    }

    /// The cached fast path: when no read of the next chunk is under way, reads it here, on the
    /// thread that polls (which then hands it out: the copy is in this CPU's cache, where the
    /// consumer reads it), with `RWF_NOWAIT`, so only what the page cache holds is copied and the
    /// poll never waits for a device. The read is booked into its slot as a completion is, and
    /// `turn` applies the chunk rules to it like to any other: what the cache lacked (`EAGAIN`, or a
    /// short read that more `RWF_NOWAIT` reads do not complete) goes to the driver, and the driver
    /// reads ahead from then on (`read_ahead`). Returns whether the chunk was read here, whole or to
    /// its end.
    fn read_here(&mut self, shared: &Shared, cx: &mut Context<'_>) -> bool {
        let (slot, mut piece, buf) = {
            let mut st = shared.lock();
            if self.ended || self.next_submit != self.next_deliver {
                return false;
            }
            let Some(slot) = st.slots.iter().position(|s| matches!(s, Slot::Free)) else {
                return false;
            };
            let Some(piece) = self.next_piece(&st) else {
                return false;
            };
            // The consumer waits for this chunk and nothing else is read or ready: it may have a
            // buffer whenever the budget has one (as `turn` would take it, waiting the same way).
            let held = st.bufs.iter().flatten().count() * self.stride;
            let Ok(Take::Got(buf)) = shared.pool.take(self.stride, held, true, cx.waker()) else {
                return false;
            };
            let ptr = buf.ptr();
            st.bufs[slot] = Some(buf);
            // `Reading` with no result: nobody else touches the slot or its buffer until the result
            // is booked below (no lane has a read of it; the stream is `&mut self`).
            st.slots[slot] = Slot::Reading { piece, res: None };
            self.next_submit += 1;
            (slot, piece, ptr)
        };
        // Reads on until the chunk is whole, the end is found, or the cache lacks the rest (a
        // short read stops where the cached pages do; the next says EAGAIN). Bounded: each read
        // that returns bytes moves on, and at most a few are made.
        let mut res = -libc::EAGAIN;
        for _ in 0..4 {
            let r = self.rules.next_read(&piece);
            // SAFETY: `buf_offset + len` lies within the chunk, within the slot's buffer, which is
            // this read's alone (the slot is `Reading` with no read in flight) and stays allocated
            // (the stream holds it in `bufs`); the descriptor is the stream's own, open.
            res = unsafe {
                read_with(
                    self.fds.file.as_raw_fd(),
                    buf.wrapping_add(r.buf_offset),
                    r.len,
                    r.offset,
                    libc::RWF_NOWAIT,
                )
            };
            if res == -libc::EOPNOTSUPP || res == -libc::EINVAL {
                // The file system (or the kernel) has no RWF_NOWAIT: the driver reads this chunk,
                // and every other, as it would without the fast path.
                self.fast = false;
                res = -libc::EAGAIN;
                break;
            }
            let mut more = piece;
            if res > 0 && self.rules.complete(&mut more, res) == Step::Again {
                piece = more;
                res = -libc::EAGAIN;
                continue;
            }
            break;
        }
        let missed = res == -libc::EAGAIN || res == -libc::EINTR;
        self.read_ahead |= missed;
        if !missed {
            self.shared
                .counters
                .cached_chunks
                .fetch_add(1, Ordering::Relaxed);
        }
        shared.lock().slots[slot] = Slot::Reading {
            piece,
            res: Some(res),
        };
        !missed
    }

    /// One poll's work under the stream's lock: settle completions, hand out the next chunk if it is
    /// in, start reads into free slots (in `send`, sent once the lock is released), free buffers (in
    /// `giveback`). `None`: nothing to hand out yet (the waker is registered).
    #[allow(clippy::type_complexity)]
    fn turn(
        &mut self,
        shared: &Shared,
        cx: &mut Context<'_>,
        send: &mut Vec<ReadOp>,
        giveback: &mut Vec<Buf>,
    ) -> Option<Option<Result<OwnedChunk>>> {
        let mut st = shared.lock();
        self.settle(&mut st, send, giveback);
        let out = self.hand_next(&mut st, shared, cx, giveback);
        if self.done {
            // Anything still in flight is not wanted: its buffer goes back as it completes.
            st.finish(giveback);
            return out;
        }
        let held = match self.fill(&mut st, shared, cx, send, out.is_some()) {
            Ok(held) => held,
            Err(e) => {
                self.ended = true;
                self.done = true;
                st.finish(giveback);
                return Some(Some(Err(e)));
            }
        };
        if out.is_some() {
            return out;
        }
        if let Some(e) = self.dead_end(&st, shared, held) {
            self.ended = true;
            self.done = true;
            st.finish(giveback);
            return Some(Some(Err(e)));
        }
        // Woken by the next completion, a chunk given back, or a buffer freed in the pool.
        // Registered under the lock, so a completion recorded after this point sees the waker.
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        None
    }

    /// The chunk the consumer waits for, if it is in: lent to the polling task (`Some(Some(Ok))`),
    /// the stream's end (`Some(None)`) or its error.
    #[allow(clippy::type_complexity)]
    fn hand_next(
        &mut self,
        st: &mut State,
        shared: &Shared,
        cx: &mut Context<'_>,
        giveback: &mut Vec<Buf>,
    ) -> Option<Option<Result<OwnedChunk>>> {
        let turn = st.slots.iter().position(|s| match *s {
            Slot::Ready { seq, .. } | Slot::Failed { seq, .. } => seq == self.next_deliver,
            _ => false,
        })?;
        match st.slots[turn] {
            Slot::Ready {
                offset,
                len,
                end,
                errno,
                ..
            } => {
                self.next_deliver += 1;
                if errno != 0 {
                    self.ended = true;
                    self.pending = Some(Error::Read {
                        path: self.path.to_path_buf(),
                        offset: offset + len as u64,
                        source: io::Error::from_raw_os_error(errno),
                    });
                } else if end {
                    self.ended = true;
                    self.done = true;
                }
                if len == 0 {
                    giveback.extend(st.free(turn));
                    self.done = true;
                    return Some(None);
                }
                st.slots[turn] = Slot::Lent;
                // The chunk is the polling task's now: booked to it until it is dropped.
                if let Some(b) = st.bufs[turn].as_mut() {
                    shared
                        .pool
                        .hand_out(b, cx.waker(), &self.path, &mut self.taker);
                }
                let buf = st.bufs[turn]
                    .as_ref()
                    .map_or(std::ptr::null_mut(), Buf::ptr);
                Some(Some(Ok(OwnedChunk::new(
                    Arc::clone(&self.shared),
                    turn,
                    buf,
                    offset,
                    len as usize,
                ))))
            }
            Slot::Failed { offset, errno, .. } => {
                giveback.extend(st.free(turn));
                self.ended = true;
                self.done = true;
                Some(Some(Err(Error::Read {
                    path: self.path.to_path_buf(),
                    offset,
                    source: io::Error::from_raw_os_error(errno),
                })))
            }
            _ => None,
        }
    }

    /// Fills every free slot with a read (sent once the lock is released), once a quarter of them
    /// are free or nothing is in flight: a wake-up of the driver then carries several reads, not
    /// one per chunk handed out. `handing`: a chunk is handed out by this poll. The result says
    /// whether a read wanted a buffer the pool could not give now (`starved`), and whether the
    /// budget is all held by the polling task; an error ends the stream.
    fn fill(
        &mut self,
        st: &mut State,
        shared: &Shared,
        cx: &mut Context<'_>,
        send: &mut Vec<ReadOp>,
        handing: bool,
    ) -> Result<Starved> {
        let free = st.slots.iter().filter(|s| matches!(s, Slot::Free)).count();
        let batch = (st.slots.len() / 4).max(1);
        let mut starved = Starved::default();
        if free < batch && busy(st) {
            return Ok(starved);
        }
        for i in 0..st.slots.len() {
            if !matches!(st.slots[i], Slot::Free) {
                continue;
            }
            let Some(piece) = self.next_piece(st) else {
                break;
            };
            // With the fast path, the driver reads ahead only after the polling thread found a
            // chunk not cached, and until the page cache holds a whole window (`depth` chunks)
            // from the next chunk on, with its data in (`residency::all_cached`: pages the
            // kernel's own read-ahead has put in the cache before their data arrived do not
            // count). From there the polling thread reads again. A window, not a chunk: the
            // kernel's read-ahead makes the chunks right ahead of a cold read come in one by one,
            // and handing each to the polling thread as it does would leave the driver one read
            // in flight after each miss. (The chunk the consumer waits for now is read here when
            // `read_here` could not take it.)
            if self.fast && (piece.k > self.next_deliver || handing) {
                if !self.read_ahead {
                    break;
                }
                let window = piece.want as u64 * self.depth as u64;
                if all_cached(&self.fds.file, piece.offset, window) {
                    self.read_ahead = false;
                    break;
                }
            }
            // A buffer from the driver's pool: read ahead only within this stream's share; when
            // its consumer waits (nothing handed out now) and nothing is in flight or ready, this
            // stream needs one, and waits for it.
            let held = st.bufs.iter().flatten().count() * self.stride;
            let urgent = !handing && !busy(st);
            let buf = match shared.pool.take(self.stride, held, urgent, cx.waker())? {
                Take::Got(b) => b,
                Take::Later => {
                    starved.starved = urgent;
                    break;
                }
                Take::Held(h) => {
                    starved.starved = true;
                    starved.all_held = Some(h);
                    break;
                }
            };
            send.push(self.read_op(i, Some(&buf), &piece));
            st.bufs[i] = Some(buf);
            st.slots[i] = Slot::Reading { piece, res: None };
            self.next_submit += 1;
        }
        Ok(starved)
    }

    /// The error of a poll that would wait for ever: every buffer this stream can have is with
    /// the consumer and nothing is being read (only a chunk dropped could wake it, and the task
    /// polling it is the likeliest holder: `collect()`, a Vec of chunks), or the budget is all
    /// out to the polling task.
    fn dead_end(&self, st: &State, shared: &Shared, starved: Starved) -> Option<Error> {
        let lent = st.slots.iter().filter(|s| matches!(s, Slot::Lent)).count();
        let all_lent = lent == st.slots.len();
        // Waiting for the pool while this stream's own chunks hold the whole budget is the same
        // dead end.
        let budget_lent = starved.starved && lent > 0 && shared.pool.lent() == lent * self.stride;
        if all_lent || budget_lent {
            return Some(Error::BuffersHeld {
                path: self.path.to_path_buf(),
                held: lent,
            });
        }
        // The budget is spent, and every buffer of it is out to this task (chunks of other
        // streams of the driver, files, ranges it holds): the same dead end across streams.
        starved.all_held.map(|h| h.error(&self.path))
    }
}

/// What [`FileStream::fill`] found of the pool.
#[derive(Default)]
struct Starved {
    /// A read wanted a buffer the pool could not give now.
    starved: bool,
    /// The budget is spent and all of it is out to the polling task.
    all_held: Option<Held>,
}

/// Whether any slot has a read in flight or a chunk ready.
fn busy(st: &State) -> bool {
    st.slots
        .iter()
        .any(|s| matches!(s, Slot::Reading { .. } | Slot::Ready { .. }))
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
        let mut giveback = Vec::new();
        let in_flight = {
            let mut st = self.shared.lock();
            st.closed = true;
            st.waker = None;
            st.finish(&mut giveback);
            st.slots
                .iter()
                .any(|s| matches!(s, Slot::Reading { res: None, .. }))
        };
        self.shared.pool.give(giveback);
        if in_flight {
            // The reads keep the buffers and the file alive until their completions arrive.
            self.driver.cancel(&self.shared);
        }
        self.shared.pool.stream_count(false);
    }
}
