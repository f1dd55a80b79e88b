//! Random access from async code: [`RangeFile::read_at`] and [`RangeFile::ranges`] on a file shared
//! by any number of tasks, read by the driver's threads into buffers of the driver's pool.
//!
//! Each `read_at` takes one buffer of the pool (within the driver's budget: when it is spent, the
//! read waits for a buffer to come back, it never grows the pool), puts one read on a driver
//! thread's queue (the reads that tasks queue while that thread is busy go to the kernel together,
//! many entries per `io_uring_enter`), and resolves to [`Bytes`] over that buffer: no copy, and the
//! buffer goes back to the pool when the last `Bytes` of it drops. Short reads are read on, and
//! errors retried or reported, by the same rules as every other path (`chunks.rs`). Dropping the
//! future cancels its read (`IORING_OP_ASYNC_CANCEL`); the buffer goes back to the pool only once
//! the read's completion has arrived, and the file stays open until then.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::driver::{Driver, DriverInner};
use super::lane::{read_with, ReadOp, ReadOwner};
use super::pool::{Buf, Pool, Take};
use crate::chunks::{Chunks, Piece, Step, Via};
use crate::error::{Error, Result};
use crate::file::{inspect, not_positional, open_read};
use crate::options::{ReadOptions, ALIGN};
use crate::ranges::ByteRange;
use crate::reader::Notice;

/// The longest read of a buffer of its own made on the polling thread (the cached fast path): a
/// longer one goes to the driver's threads, so that many, polled by one task, copy on every CPU.
const FAST_MAX: usize = 1 << 20;

/// A file open for random reads from many tasks at once: cheap to clone (an `Arc`), `Send + Sync`.
///
/// ```no_run
/// # async fn f() -> Result<(), ringread::Error> {
/// let driver = ringread::stream::Driver::global()?;
/// let file = driver.range_file("data.bin")?;
/// let page = file.read_at(8192, 4096).await?; // Bytes over the driver's buffer, no copy
/// # drop(page);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RangeFile {
    inner: Arc<FileInner>,
}

struct FileInner {
    driver: Arc<DriverInner>,
    file: File,
    path: Arc<Path>,
    /// The same file opened with `O_DIRECT`, and the alignment its reads need.
    direct: Option<(OwnedFd, usize)>,
    /// Choices made differently from the options (`O_DIRECT` refused), with reasons.
    notices: Vec<Notice>,
    /// Reads try the page cache on the polling thread first (`RWF_NOWAIT`): the options' cached
    /// fast path, buffered reads only; off for good once the file system refuses `RWF_NOWAIT`.
    fast: AtomicBool,
    /// Fast-path reads in a row that found the cache lacking (see [`FileInner::try_here`]).
    misses: AtomicU32,
}

/// After this many fast-path reads in a row find the cache lacking, a file's reads go straight to
/// the driver's threads (a miss costs a system call, and its readahead reads more than a random
/// read wants), trying the cache again once every [`MISS_SKIP`] reads.
const MISS_LIMIT: u32 = 8;

/// Reads sent straight to the driver between two tries of the cache, after [`MISS_LIMIT`] misses.
const MISS_SKIP: u32 = 64;

impl FileInner {
    /// Whether the next read tries the page cache on the polling thread: the fast path is on and
    /// the file's recent tries did not all miss (then one read in [`MISS_SKIP`] tries again).
    fn try_here(&self) -> bool {
        if !self.fast.load(Ordering::Relaxed) {
            return false;
        }
        let m = self.misses.load(Ordering::Relaxed);
        if m < MISS_LIMIT {
            return true;
        }
        if m >= MISS_LIMIT + MISS_SKIP {
            // One try: a hit starts the count again, a miss goes back to skipping.
            self.misses.store(MISS_LIMIT - 1, Ordering::Relaxed);
            return true;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Books a try's outcome.
    fn tried(&self, hit: bool) {
        if hit {
            self.misses.store(0, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for RangeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeFile")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// [`Driver::range_file`] with options: [`ReadOptions::direct`] reads with `O_DIRECT` (each
    /// read widened to the file's alignment, and only the asked bytes handed out; where the file
    /// refuses `O_DIRECT`, buffered, said by [`RangeFile::notices`]). The other options belong to
    /// whole-file reads and do not change a range read.
    pub(crate) fn open_ranges_with(
        &self,
        path: impl AsRef<Path>,
        opts: &ReadOptions,
    ) -> Result<RangeFile> {
        let path = path.as_ref();
        let file = open_read(path)?;
        self.ranges_file_at(file, path, Some(path), opts)
    }

    /// [`Driver::range_file`] with options, as [`Driver::range_file`] takes them.
    pub(crate) fn ranges_file_with(
        &self,
        file: File,
        name: impl AsRef<Path>,
        opts: &ReadOptions,
    ) -> Result<RangeFile> {
        self.ranges_file_at(file, name.as_ref(), None, opts)
    }

    fn ranges_file_at(
        &self,
        file: File,
        name: &Path,
        path: Option<&Path>,
        opts: &ReadOptions,
    ) -> Result<RangeFile> {
        // Ranges do not start at the file's position: look at it as a file opened by path (the
        // O_DIRECT twin of one handed over is opened through /proc).
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let ins = inspect(
            &file,
            name,
            Some(path.unwrap_or(&by_fd)),
            opts.direct(),
            false,
            ALIGN,
        )?;
        if !ins.positional {
            return Err(not_positional(name));
        }
        Ok(RangeFile {
            inner: Arc::new(FileInner {
                driver: Arc::clone(&self.inner),
                file,
                path: Arc::from(name),
                fast: AtomicBool::new(opts.cached_fast_path() && ins.direct.is_none()),
                misses: AtomicU32::new(0),
                direct: ins.direct,
                notices: ins.notices,
            }),
        })
    }
}

impl RangeFile {
    /// The path (or name) errors carry.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether reads go through `O_DIRECT` (asked for, and granted).
    pub fn direct(&self) -> bool {
        self.inner.direct.is_some()
    }

    /// Choices made differently from the options, with reasons (`O_DIRECT` refused).
    pub fn notices(&self) -> &[Notice] {
        &self.inner.notices
    }

    /// As [`RangeFile::read_exact_at`], into a buffer of the read's own, allocated for it outside
    /// the driver's pool and budget (as a read into a `Vec` is): for bytes a caller keeps as long
    /// as it likes (an object store's whole object), which then hold nothing of the driver's, and
    /// for reads longer than the budget. Still no copy: the `Bytes` is over that buffer, freed
    /// when the last `Bytes` of it drops. Cached reads of up to 1 MiB are made on the polling
    /// thread; longer ones go to the driver's threads even when cached, so that many of them
    /// polled by one task copy on every CPU.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), ringread::Error> {
    /// let file = ringread::stream::Driver::global()?.range_file("data.bin")?;
    /// let object = file.read_exact_owned(0, 8 << 20).await?; // kept: holds none of the budget
    /// # drop(object); Ok(()) }
    /// ```
    pub fn read_exact_owned(&self, offset: u64, len: usize) -> ReadAt {
        ReadAt::new(self.clone(), offset, len, true, false)
    }

    /// As [`RangeFile::read_exact_owned`], for a range the page cache holds: its buffer is backed
    /// by huge pages where it is long enough (fewer faults as the read fills it).
    #[cfg(feature = "object-store")]
    pub(crate) fn read_exact_owned_cached(&self, offset: u64, len: usize) -> ReadAt {
        let mut read = self.read_exact_owned(offset, len);
        read.huge = true;
        read
    }

    /// The driver's threads.
    pub(crate) fn threads(&self) -> usize {
        self.inner.driver.threads()
    }

    /// As [`RangeFile::read_at`], read by the driver's threads even when cached: so that of many
    /// reads polled by one task, some copy on the other CPUs while the task copies the rest.
    pub(crate) fn read_at_elsewhere(&self, offset: u64, len: usize) -> ReadAt {
        let mut read = ReadAt::new(self.clone(), offset, len, false, true);
        read.here = false;
        read
    }

    /// Whether bytes kept for long are to be copied out of the driver's buffers
    /// ([`Pool::pressed`]).
    pub(crate) fn pressed(&self) -> bool {
        self.inner.driver.pool.pressed()
    }

    /// The file (opened without `O_DIRECT`), for advice to the kernel.
    #[cfg(any(feature = "object-store", feature = "parquet"))]
    pub(crate) fn file(&self) -> &File {
        &self.inner.file
    }

    /// The driver's buffer budget in bytes.
    pub(crate) fn budget(&self) -> usize {
        self.inner.driver.pool.budget()
    }

    /// Reads `len` bytes at `offset`, as `pread(2)` does: fewer only at the end of the file (none
    /// past it). Resolves to [`Bytes`] over a buffer of the driver's pool, given back when the last
    /// `Bytes` of it drops. `len` may be at most the driver's budget (under `O_DIRECT`, `len`
    /// widened to the file's alignment at both ends). Dropping the future cancels
    /// the read.
    ///
    /// When the budget is spent, the read waits until a buffer is given back. If every byte of
    /// the budget is held by what the awaiting task itself took and kept (`Bytes` of earlier
    /// reads, chunks, whole files), that wait would never end: the result is
    /// [`Error::BudgetHeld`], naming what is held (see the [module](super) documentation).
    /// That check sees tasks, not the futures a combinator polls within one: reads polled through
    /// `buffered(n)` (`FuturesOrdered`) keep each finished read's bytes until every read before it
    /// is done, so with `n x len` above the budget the first may wait behind buffers only the
    /// reads after it hold, for ever. Use `buffer_unordered(n)` and put results in place by index
    /// (as [`RangeFile::read_ranges`] does), or keep `n x len` within the budget.
    pub fn read_at(&self, offset: u64, len: usize) -> ReadAt {
        ReadAt::new(self.clone(), offset, len, false, true)
    }

    /// As [`RangeFile::read_at`], but fewer than `len` bytes (the file ended, or shrank, before
    /// `offset + len`) is an [`Error::Read`] naming the offset where the bytes stopped.
    pub fn read_exact_at(&self, offset: u64, len: usize) -> ReadAt {
        ReadAt::new(self.clone(), offset, len, true, true)
    }

    /// The bytes of each of `ranges`, in the order given, with up to `in_flight` reads at once
    /// (at least one): a [`Stream`](futures_core::Stream) of `(offset, Bytes)`. Each range is one
    /// read, so each must be at most the driver's budget; the buffers of the reads in flight and
    /// of the `Bytes` the consumer holds come out of the driver's budget (holding them all while
    /// polling for more cannot go on: the stream's next item is then [`Error::BudgetHeld`], as
    /// [`RangeFile::read_at`] says; drop or copy what you keep).
    pub fn ranges(
        &self,
        ranges: impl IntoIterator<Item = ByteRange>,
        in_flight: usize,
    ) -> RangeStream {
        RangeStream {
            file: self.clone(),
            rest: ranges.into_iter().collect::<Vec<_>>().into_iter(),
            pending: std::collections::VecDeque::new(),
            in_flight: in_flight.max(1),
        }
    }
}

/// What a `read_at`'s future and its read in flight share: the buffer, the result, the waker.
pub(super) struct AtShared {
    state: Mutex<AtState>,
    /// Where the buffer goes back (`None`: it is the read's own, freed).
    pool: Option<Arc<Pool>>,
}

struct AtState {
    buf: Option<Buf>,
    res: Option<i32>,
    waker: Option<Waker>,
    /// The kernel may still write the buffer (its ring failed): never give it back.
    poisoned: bool,
}

impl AtShared {
    fn lock(&self) -> MutexGuard<'_, AtState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for AtShared {
    fn drop(&mut self) {
        // No read is in flight (each holds this) and the future is gone or has taken the buffer.
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(buf) = st.buf.take() {
            if st.poisoned {
                std::mem::forget(buf);
            } else if let Some(pool) = &self.pool {
                pool.give([buf]);
            }
        }
    }
}

impl ReadOwner for AtShared {
    /// Records the result and wakes the future's task here, at once (not with the lane's batch).
    fn complete(&self, _slot: usize, res: i32) -> Option<Waker> {
        let waker = {
            let mut st = self.lock();
            st.res = Some(res);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        None
    }

    /// The read was abandoned with its ring: the buffer is leaked.
    fn abandon(self: Arc<Self>, _slot: usize) {
        self.lock().poisoned = true;
    }

    /// Never: a `read_at` whose future is dropped cancels its read.
    fn is_closed(&self) -> bool {
        false
    }
}

/// The future of [`RangeFile::read_at`]: resolves to the bytes, or the error naming the offset.
/// Dropping it cancels its read.
#[must_use = "a read_at does nothing unless awaited"]
pub struct ReadAt {
    file: RangeFile,
    /// The read: the range asked for, or under `O_DIRECT` the range widened to the alignment.
    piece: Piece,
    /// Where the asked bytes start within the read, and how many were asked.
    skip: usize,
    len: usize,
    rules: Chunks,
    exact: bool,
    /// Its buffer comes from the driver's pool (else it is its own).
    pooled: bool,
    /// Its buffer of its own is for huge pages ([`Buf::new_huge`]: the range is cached).
    huge: bool,
    /// It may be read on the polling thread when cached (the cached fast path); else the driver's
    /// threads read it.
    here: bool,
    /// The read in flight (`Some` from the first submit to the end).
    shared: Option<Arc<AtShared>>,
    lane: usize,
    /// A result to hand out at once (an empty read, an invalid length).
    early: Option<Result<Bytes>>,
    done: bool,
}

impl std::fmt::Debug for ReadAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAt")
            .field("path", &self.file.inner.path)
            .field("offset", &self.offset())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ReadAt {
    fn new(file: RangeFile, offset: u64, len: usize, exact: bool, pooled: bool) -> ReadAt {
        let budget = if pooled {
            file.inner.driver.pool.budget()
        } else {
            usize::MAX
        };
        // One piece, read on until full or the end; under O_DIRECT widened to the alignment (a
        // short read at the end goes on buffered, by the rules).
        let align = file.inner.direct.as_ref().map(|(_, a)| *a);
        let rules = Chunks::for_extents(u32::MAX as usize, align);
        let (start, end) =
            crate::ranges::ByteRange::new(offset, len as u64).widened(align.unwrap_or(1) as u64);
        let wide = usize::try_from(end - start).unwrap_or(usize::MAX);
        let early = if len == 0 {
            Some(Ok(Bytes::new()))
        } else if wide > budget || wide > u32::MAX as usize {
            let aligned = if wide == len {
                String::new()
            } else {
                format!(" ({wide} once aligned for O_DIRECT)")
            };
            Some(Err(Error::InvalidOptions(format!(
                "{}: a read of {len} bytes at offset {offset}{aligned} is larger than the \
                 driver's budget of {budget} bytes",
                file.inner.path.display()
            ))))
        } else {
            None
        };
        let lane = file.inner.driver.next_lane();
        ReadAt {
            piece: Chunks::extent(0, start, wide.min(u32::MAX as usize) as u32),
            skip: (offset - start) as usize,
            len,
            rules,
            file,
            exact,
            pooled,
            here: true,
            huge: false,
            shared: None,
            lane,
            early,
            done: false,
        }
    }

    fn submit(&self, shared: &Arc<AtShared>, st: &mut AtState) {
        let read = self.rules.next_read(&self.piece);
        let buf = st.buf.as_ref().expect("the read's buffer").ptr();
        let fd = match (read.via, &self.file.inner.direct) {
            (Via::Direct, Some((d, _))) => d.as_raw_fd(),
            _ => self.file.inner.file.as_raw_fd(),
        };
        // The buffer is `shared`'s, which the op holds; the future neither reads nor gives back
        // that buffer until the op's completion is recorded (it only looks at the buffer once
        // `res` is set, and `res` is set after the kernel is done with it).
        let op = ReadOp {
            owner: Arc::clone(shared) as _,
            // Held so that the file stays open until the read completes.
            keep: Arc::clone(&self.file.inner) as _,
            slot: 0,
            fd,
            offset: read.offset,
            // SAFETY: buf_offset = filled < want <= the buffer's length.
            buf: unsafe { buf.add(read.buf_offset) },
            len: read.len,
            blocking: false,
            lane: self.lane,
            rw_flags: 0,
            drop_behind: false,
            fixed: None,
        };
        st.res = None;
        self.file.inner.driver.read_one(op);
    }

    fn error(&self, source: io::Error) -> Error {
        Error::Read {
            path: self.file.inner.path.to_path_buf(),
            offset: (self.piece.offset + self.piece.filled as u64).max(self.offset()),
            source,
        }
    }

    /// Where the asked bytes start in the file.
    fn offset(&self) -> u64 {
        self.piece.offset + self.skip as u64
    }

    /// The first poll: takes a buffer (within the budget, or waits until one comes back) and
    /// submits the read.
    fn start(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes>> {
        let driver = Arc::clone(&self.file.inner.driver);
        let len = Pool::stride(self.piece.want as usize);
        let took = if self.pooled {
            driver.pool.take(len, 0, true, cx.waker())
        } else if self.huge {
            Buf::new_huge(len).map(|b| Take::Got(b.populated()))
        } else {
            Buf::new(len).map(|b| Take::Got(b.populated()))
        };
        let buf = match took {
            Ok(Take::Got(b)) => b,
            Ok(Take::Later) => return Poll::Pending,
            // Waiting would never end: the budget is out to this task.
            Ok(Take::Held(h)) => {
                self.done = true;
                return Poll::Ready(Err(h.error(&self.file.inner.path)));
            }
            Err(e) => {
                self.done = true;
                return Poll::Ready(Err(e));
            }
        };
        let here = self.here && (self.pooled || self.piece.want as usize <= FAST_MAX);
        if here && self.file.inner.try_here() {
            let step = self.read_here(&buf);
            self.file.inner.tried(step.is_some());
            match step {
                Some(Step::Ready { .. }) => return Poll::Ready(self.deliver(buf, cx)),
                Some(Step::Failed { errno }) => {
                    self.done = true;
                    self.release(buf);
                    return Poll::Ready(Err(self.error(io::Error::from_raw_os_error(errno))));
                }
                // The cache lacks (the rest of) it: the driver reads on from where this stopped.
                _ => {}
            }
        }
        let shared = Arc::new(AtShared {
            state: Mutex::new(AtState {
                buf: Some(buf),
                res: None,
                waker: Some(cx.waker().clone()),
                poisoned: false,
            }),
            pool: self.pooled.then(|| Arc::clone(&driver.pool)),
        });
        {
            let mut st = shared.lock();
            self.submit(&shared, &mut st);
        }
        self.shared = Some(shared);
        Poll::Pending
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes>> {
        if let Some(r) = self.early.take() {
            self.done = true;
            return Poll::Ready(r);
        }
        let driver = &self.file.inner.driver;
        if driver.cancelled() {
            self.done = true;
            return Poll::Ready(Err(Error::Interrupted {
                path: self.file.inner.path.to_path_buf(),
            }));
        }
        let Some(shared) = self.shared.clone() else {
            return self.start(cx);
        };
        let mut st = shared.lock();
        let Some(res) = st.res else {
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        };
        match self.rules.complete(&mut self.piece, res) {
            Step::Again => {
                st.waker = Some(cx.waker().clone());
                self.submit(&shared, &mut st);
                Poll::Pending
            }
            Step::Failed { errno } => {
                self.done = true;
                drop(st);
                self.shared = None;
                Poll::Ready(Err(self.error(io::Error::from_raw_os_error(errno))))
            }
            Step::Ready { .. } => {
                let buf = st.buf.take().expect("the read's buffer");
                drop(st);
                self.shared = None;
                Poll::Ready(self.deliver(buf, cx))
            }
        }
    }

    /// The read is done (`piece` filled to the end or the file's end): the asked bytes over `buf`,
    /// or, for `read_exact_at` of a range the file ends before, the error (and `buf` back to the
    /// pool).
    fn deliver(&mut self, mut buf: Buf, cx: &Context<'_>) -> Result<Bytes> {
        self.done = true;
        let filled = self.piece.filled as usize;
        // The asked bytes within what was read.
        let end = filled.min(self.skip + self.len);
        if self.exact && end < self.skip + self.len {
            self.release(buf);
            return Err(self.error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ends (or shrank) before the {} bytes asked for",
                    self.len
                ),
            )));
        }
        let pool = self
            .pooled
            .then(|| Arc::clone(&self.file.inner.driver.pool));
        if let Some(pool) = &pool {
            // The bytes are the polling task's now: booked to it until they are dropped.
            let mut anywhere = u32::MAX;
            pool.hand_out(&mut buf, cx.waker(), &self.file.inner.path, &mut anywhere);
        }
        let bytes = Bytes::from_owner(PoolBytes {
            buf: Some(buf),
            pool,
            len: filled,
        });
        Ok(if end <= self.skip {
            Bytes::new()
        } else if self.skip == 0 && end == filled {
            bytes
        } else {
            bytes.slice(self.skip..end)
        })
    }

    /// A buffer no read writes any more, back where it came from.
    fn release(&self, buf: Buf) {
        if self.pooled {
            self.file.inner.driver.pool.give([buf]);
        }
    }

    /// The cached fast path of a `read_at` (as a stream's, `FileStream::read_here`): the read on
    /// the polling thread with `RWF_NOWAIT`, so only what the page cache holds is copied and the
    /// poll never waits for a device; read on (a few reads at most) while each moves on. The step
    /// the rules made of the last result; `None`: the cache lacks the rest (or the file system
    /// refuses `RWF_NOWAIT`, and this file's reads no longer try), which the driver then reads.
    fn read_here(&mut self, buf: &Buf) -> Option<Step> {
        for _ in 0..4 {
            let r = self.rules.next_read(&self.piece);
            // SAFETY: `buf_offset + len` lies within the piece, within `buf`, which this read
            // holds alone (nothing of it is in flight) and which stays allocated during the call;
            // the descriptor is the file's, open while `self.file` is held.
            let res = unsafe {
                read_with(
                    self.file.inner.file.as_raw_fd(),
                    buf.ptr().wrapping_add(r.buf_offset),
                    r.len,
                    r.offset,
                    libc::RWF_NOWAIT,
                )
            };
            if res == -libc::EOPNOTSUPP || res == -libc::EINVAL {
                self.file.inner.fast.store(false, Ordering::Relaxed);
                return None;
            }
            if res == -libc::EAGAIN {
                return None;
            }
            match self.rules.complete(&mut self.piece, res) {
                Step::Again => continue,
                step => {
                    let counters = &self.file.inner.driver.counters;
                    counters.cached_chunks.fetch_add(1, Ordering::Relaxed);
                    return Some(step);
                }
            }
        }
        None
    }
}

impl Future for ReadAt {
    type Output = Result<Bytes>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Bytes>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(Error::InvalidOptions(
                "a read_at future polled after it resolved".into(),
            )));
        }
        this.poll_read(cx)
    }
}

impl Drop for ReadAt {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            // In flight: ask the driver to cancel it. The buffer goes back when the read's
            // completion drops the op's hold (`AtShared`'s drop).
            let in_flight = shared.lock().res.is_none();
            if in_flight {
                self.file.inner.driver.cancel_on(self.lane, shared);
            }
        }
    }
}

/// The owner of a `read_at`'s bytes inside the [`Bytes`] handed out: back to the pool on drop
/// (or freed, a buffer of the read's own).
struct PoolBytes {
    buf: Option<Buf>,
    pool: Option<Arc<Pool>>,
    len: usize,
}

impl AsRef<[u8]> for PoolBytes {
    fn as_ref(&self) -> &[u8] {
        match &self.buf {
            // SAFETY: the read into the buffer has completed (its result was recorded) and wrote
            // `len` bytes; nothing writes it again until it is back in the pool, after this drops.
            Some(b) if self.len > 0 => unsafe { std::slice::from_raw_parts(b.ptr(), self.len) },
            _ => &[],
        }
    }
}

impl Drop for PoolBytes {
    fn drop(&mut self) {
        if let (Some(b), Some(pool)) = (self.buf.take(), &self.pool) {
            pool.give([b]);
        }
    }
}

/// The bytes of many ranges of a [`RangeFile`], in the order given, several reads in flight:
/// made by [`RangeFile::ranges`]. Dropping it cancels the reads in flight.
#[must_use = "streams do nothing unless polled"]
pub struct RangeStream {
    file: RangeFile,
    rest: std::vec::IntoIter<ByteRange>,
    pending: std::collections::VecDeque<(u64, ReadAt, Option<Result<Bytes>>)>,
    in_flight: usize,
}

impl std::fmt::Debug for RangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeStream")
            .field("path", &self.file.inner.path)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl futures_core::Stream for RangeStream {
    type Item = Result<(u64, Bytes)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while this.pending.len() < this.in_flight {
            let Some(r) = this.rest.next() else { break };
            let len = usize::try_from(r.len).unwrap_or(usize::MAX);
            let read = this.file.read_at(r.offset, len);
            this.pending.push_back((r.offset, read, None));
        }
        // Start (or follow) every read in flight, so that they are all in the driver's queues.
        for (_, read, out) in this.pending.iter_mut() {
            if out.is_none() {
                if let Poll::Ready(r) = read.poll_read(cx) {
                    *out = Some(r);
                }
            }
        }
        match this.pending.front_mut() {
            None => Poll::Ready(None),
            Some((_, _, None)) => Poll::Pending,
            Some((_, _, Some(_))) => {
                let (offset, _, out) = this.pending.pop_front().expect("front");
                let r = out.expect("ready");
                if r.is_err() {
                    // An error ends the stream: what is left is not read.
                    this.rest = Vec::new().into_iter();
                    this.pending.clear();
                }
                Poll::Ready(Some(r.map(|b| (offset, b))))
            }
        }
    }
}
