//! Many files in flight on one ring: `STATX`, `OPENAT`, the reads and `CLOSE` of up to `width` files
//! at once, batched into few `io_uring_enter` calls, so that the metadata and data reads of many
//! files overlap (that is where a device's parallelism is, and what `xargs -P` gets from processes).
//!
//! Each file in flight has a slot: one buffer of `chunk` bytes and one step in the kernel at a time.
//! Its life — `statx`, open, reads, the read that finds the end, close, and what each completion
//! means — is its [`FileSteps`] (the one per-file state machine, which the async driver's whole
//! files drive too; its reads follow [`Chunks`](crate::chunks::Chunks), the same rules as every
//! path); this engine does what the steps ask, on the ring, and hands each chunk to the file's own
//! processor as it comes: files are processed in the order their reads complete, each file's
//! chunks in file order.
//!
//! A file takes three trips to the kernel where the rules allow: its `statx`; its open, linked to
//! its first read, linked to the read that finds its end; its close. Where the ring has a table of
//! registered files, slot `i` opens its file into entry `i` (a direct descriptor: no room taken in
//! the process's descriptor table, so `ulimit -n` does not limit the files in flight), which is what
//! lets the read be linked to the open (`IORING_FILE_INDEX_ALLOC` would pick the entry only when
//! the open completes, too late for a linked read). The read that finds the end is the read the
//! rules would issue next if the first read stopped at `st_size`: it is linked after the first
//! (`IOSQE_IO_HARDLINK`), and its result is used only if the first did stop there; otherwise it is
//! waited for and dropped, and the rules go on as usual. Results are released to the caller in
//! input order. Files the slots should not take — larger than `large` bytes (the lanes read those
//! faster), and anything that is not a regular file (a FIFO's open would wait for a writer) — are
//! handed back as [`Outcome::Deferred`] for the caller to read its usual way when their turn comes.
//!
//! A path known to be a regular file ([`Input::Regular`]: a walk's entry type said so), where the
//! settings allow ([`Settings::unstated`]) and the ring has a file table, is not stat'ed first:
//! it is opened (`O_NONBLOCK`, alone: a read linked to an open that io-wq runs would run there,
//! blocking), then read at the file's position with a one-byte read hard-linked after it at the
//! position it leaves (into the run's spare byte for the slot), then closed: a file that ends
//! inside its first chunk takes no `statx` (which io_uring always hands to a worker thread). A
//! file longer than its first chunk is stat'ed then, on this thread (it is open: its inode is in
//! memory), and deferred if it is large; what the steps refuse after the open (nothing read: an
//! empty file, a FIFO without a writer) is deferred too, and the caller reads it its usual way
//! ([`FileSteps::unstated`]).
//!
//! Every user callback (the factory, the processor, the caller's `release`) runs on the calling
//! thread; if one panics, the reads in flight are reaped and the descriptors closed before the panic
//! goes on (the slots' buffers belong to the caller's arena, which outlives this call).

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::buf::{Arena, Chunk};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::file_steps::{
    verdict, End, Event, FileSteps, Io, Phase, Refusal, Shape, Span, Stat, SPARE_BYTE,
};
use crate::processor::{Combine, Prepare};
use crate::residency::{dontcache_supported, dontcache_supported_at};
use crate::ring::{FileRef, PathQueue, ReadReq, Statx};
use crate::sys::CURRENT_POSITION;

/// How long (in milliseconds) an open refused for want of a descriptor waits for one, where other
/// threads may be about to close theirs, before the refusal is the file's error.
pub(crate) const DESCRIPTOR_WAIT_MS: u32 = 2000;

/// One input: a path to open, or a file the caller opened (read from its current position; this
/// run closes it), with the name its errors carry.
#[derive(Debug)]
pub(crate) enum Input {
    /// Opened here.
    Path(PathBuf),
    /// Opened here, known to be a regular file (a walk's entry type): read without a `statx`
    /// first where the settings allow ([`Settings::unstated`]).
    Regular(PathBuf),
    /// Opened already.
    Open(File, PathBuf),
}

impl Input {
    /// The name errors and results carry.
    pub(crate) fn name(&self) -> &Path {
        match self {
            Input::Path(p) | Input::Regular(p) | Input::Open(_, p) => p,
        }
    }

    /// The name, given up.
    pub(crate) fn into_name(self) -> PathBuf {
        match self {
            Input::Path(p) | Input::Regular(p) | Input::Open(_, p) => p,
        }
    }
}

/// What became of one input.
pub(crate) enum Outcome<Pr, C> {
    /// Read here: the bytes delivered, or the error that stopped it.
    Read(Result<u64>, C),
    /// Not for the slots (large, or not a regular file): the caller reads it (its file too, for an
    /// input opened by the caller).
    Deferred(Option<File>, Pr, C),
}

/// The next input of a run.
pub(crate) enum Next<Pr, C> {
    /// Input `index` (its place among all inputs), and the processor made for it.
    Item(usize, Input, (Pr, C)),
    /// None yet; more may come.
    NotNow,
    /// No more.
    End,
}

/// Where a run's inputs come from: a list on this thread, or a channel from the thread that hands
/// inputs to several runs.
pub(crate) trait Feed<Pr, C> {
    /// The next input; with `wait`, blocks until there is one or there will be none.
    fn next(&mut self, wait: bool) -> Next<Pr, C>;
    /// The run is about to wait for the kernel: what the feed's side holds back for the caller
    /// (outcomes sent in batches) goes now.
    fn idle(&mut self) {}
}

/// The settings of one run.
#[derive(Clone, Copy)]
pub(crate) struct Settings<'a> {
    /// Bytes per read, and per slot buffer.
    pub chunk: usize,
    /// Files in flight at most (no more than the arena has slots).
    pub width: usize,
    /// Inputs taken from the feed and not yet released, at most (the reorder window).
    pub window: usize,
    /// Files larger than this are deferred to the lanes.
    pub large: u64,
    /// `ReadOptions::max_bytes`.
    pub max_bytes: Option<u64>,
    /// The first `registered` slots of the arena are registered with the ring.
    pub registered: usize,
    /// The ring has a registered file table with an entry per slot: files are opened into it.
    pub fixed_files: bool,
    /// Process descriptors this run may hold at once (what `ulimit -n` leaves room for): files not
    /// opened into the file table wait for one beyond that.
    pub fd_limit: usize,
    /// Stops the run with [`Error::Interrupted`].
    pub cancel: Option<&'a Cancel>,
    /// Whether an open file must be read by the caller instead (the Reader's FUSE rule).
    pub read_elsewhere: fn(RawFd) -> bool,
    /// How a path is opened where a thread opens it itself, without the ring (the pool of
    /// [`many_pool`](super::many_pool)): the Reader's way.
    pub open: fn(&Path) -> Result<File>,
    /// Uncached reads (`RWF_DONTCACHE`); files whose file system refuses them are deferred to the
    /// caller, which reads them another way that spares the cache.
    pub dontcache: bool,
    /// Paths known to be regular files ([`Input::Regular`]) may be opened and read without a
    /// `statx` first, where the ring has a file table (the caller knows no file is on FUSE, and
    /// `dontcache` is off: the checks a `statx` feeds).
    pub unstated: bool,
    /// Other paths' `statx` is done with `statx(2)` on this thread rather than the ring's `STATX`
    /// (which io_uring always hands to an io-wq worker), until one takes longer than
    /// [`STAT_HERE_MAX`] (it waited for the disk): then the next [`STAT_RING_RUN`] go to the
    /// ring, whose workers wait for many at once, and the run tries here again after them.
    pub stat_here: bool,
}

/// A `statx(2)` on the run's thread that took longer than this waited for the disk.
const STAT_HERE_MAX: std::time::Duration = std::time::Duration::from_micros(50);

/// Inputs whose `statx` goes to the ring after one on the run's thread waited for the disk.
const STAT_RING_RUN: usize = 64;

/// Finished inputs waiting for the ones before them (from `head` on): their global index, path
/// and outcome.
type Done<Pr, C> = VecDeque<Option<(usize, PathBuf, Outcome<Pr, C>)>>;

/// Which operation a completion is for: the low bits of its `user_data`.
const OP_STAT: u64 = 0;
const OP_OPEN: u64 = 1;
const OP_READ: u64 = 2;
const OP_PROBE: u64 = 3;
const OP_CLOSE: u64 = 4;
const OP_BITS: u32 = 3;

struct Slot<Pr, C> {
    /// Its place in this run's inputs.
    index: usize,
    /// Its place among all inputs (what `release` is told).
    global: usize,
    path: PathBuf,
    cpath: CString,
    statx: Box<Statx>,
    /// Its life: what to do next, what each completion means (see [`FileSteps`]).
    steps: FileSteps,
    /// Opened, and not yet closed.
    file: Option<FileRef>,
    /// Opened (or being opened) into the ring's file table (entry `i` for slot `i`).
    fixed: bool,
    /// Its open is linked to its first read: part of the read step.
    linked: bool,
    /// Its close was pushed.
    closing: bool,
    /// Holds (or is opening) one of the process descriptors this run counts against `fd_limit`.
    counted: bool,
    /// Operations of the current step still in the kernel.
    pending: u8,
    /// The results of the current step: the linked open, the read, and the read that finds the
    /// end (its result once in), if one was linked.
    open_res: Option<i32>,
    read_res: Option<i32>,
    probe: Option<Option<i32>>,
    /// The read in flight: its length and place in the slot's buffer (as the steps asked).
    asked: (u32, usize),
    /// The probe in flight reads into the run's spare byte for this slot.
    spare: bool,
    /// A byte of the file read ahead of its place (the spare byte's, after a full first read):
    /// put at the start of the slot's next read, which asks for one byte less.
    carried: Option<u8>,
    /// The read in flight was given a carried byte: its count is one more.
    bonus: Option<u8>,
    began: bool,
    /// Its processor's error (the file's own are its steps' [`End`]).
    error: Option<Error>,
    work: Option<(Pr, C)>,
}

impl<Pr, C> Slot<Pr, C> {
    /// A slot for input `index` (`global` among all inputs), at `steps`, nothing in flight yet.
    fn new(
        (index, global): (usize, usize),
        path: PathBuf,
        cpath: CString,
        statx: Box<Statx>,
        steps: FileSteps,
        work: (Pr, C),
    ) -> Self {
        Slot {
            index,
            global,
            path,
            cpath,
            statx,
            steps,
            file: None,
            fixed: false,
            linked: false,
            closing: false,
            counted: false,
            pending: 0,
            open_res: None,
            read_res: None,
            probe: None,
            asked: (0, 0),
            spare: false,
            carried: None,
            bonus: None,
            began: false,
            error: None,
            work: Some(work),
        }
    }
}

impl<Pr: Prepare, C: Combine<Pr::Part>> Slot<Pr, C> {
    /// Hands the step's `filled` bytes at file `offset`, in slot `i` of `arena`, to the processor
    /// (beginning it first, on the file's first step): whether it wants more, or `None` if it
    /// failed (its error kept).
    fn hand_over(&mut self, arena: &Arena, i: usize, offset: u64, filled: usize) -> Option<bool> {
        if filled == 0 && self.began {
            return Some(true);
        }
        let (pr, c) = self.work.as_mut().expect("work");
        if !self.began {
            self.began = true;
            if let Err(source) = c.begin() {
                self.error = Some(Error::Process {
                    path: self.path.clone(),
                    offset: 0,
                    source,
                });
                return None;
            }
        }
        if filled == 0 {
            return Some(true);
        }
        // SAFETY: the step's reads completed (all of them: nothing else writes into slot i) and
        // wrote `filled` bytes into it; nothing writes into it until the next read of this file
        // is queued, after this borrow ends.
        let data = unsafe { arena.slot(i, filled) };
        let chunk = Chunk::new(offset, data);
        let part = pr.prepare(&chunk);
        match c.combine(&chunk, part) {
            Ok(more) => Some(more),
            Err(source) => {
                self.error = Some(Error::Process {
                    path: self.path.clone(),
                    offset,
                    source,
                });
                None
            }
        }
    }

    /// Does what a step's `event` asks: hands a chunk in slot `i` over, and tells the steps.
    fn take(&mut self, arena: &Arena, i: usize, event: Event) {
        if let Event::Chunk { offset, len } = event {
            match self.hand_over(arena, i, offset, len) {
                Some(more) => {
                    self.steps.handed(more);
                    self.finish_processor();
                }
                None => self.steps.stop(), // the processor failed
            }
        }
    }

    /// Finishes the processor, if it began, once the file is read to its end (its error kept).
    fn finish_processor(&mut self) {
        if !self.began || !matches!(self.steps.end(), Some(End::Read(_))) {
            return;
        }
        let (_, c) = self.work.as_mut().expect("work");
        if let Err(source) = c.finish() {
            self.error = Some(Error::Process {
                path: self.path.clone(),
                offset: self.steps.bytes(),
                source,
            });
        }
    }
}

/// The ring's work in flight, reaped and closed on drop (also while a user callback unwinds).
struct InFlight<'r, Q: PathQueue, Pr, C> {
    ring: &'r mut Q,
    ops: usize,
    slots: Vec<Option<Slot<Pr, C>>>,
    /// Process descriptors held or being opened (slots with `counted`).
    fds: usize,
    /// Slots waiting for a process descriptor (over `fd_limit`, or refused with `EMFILE`/`ENFILE`),
    /// opened once one is closed.
    starved: Vec<usize>,
    /// A byte per slot for the read after an unstated file's first read: written by the kernel,
    /// read by `settle` once that read is back (the file's next byte).
    spare: Box<[u8]>,
}

impl<Q: PathQueue, Pr, C> InFlight<'_, Q, Pr, C> {
    /// Reaps every operation in the kernel; gives up after 100 failed submissions.
    fn reap(&mut self) {
        let mut failures = 0;
        while self.ops > 0 && failures < 100 {
            if self.ring.submit(1).is_err() {
                failures += 1;
                continue;
            }
            while let Some((ud, res)) = self.ring.pop() {
                self.ops -= 1;
                let (i, op) = untag(ud);
                if let Some(Some(slot)) = self.slots.get_mut(i) {
                    match op {
                        // An open that completed after all: its descriptor is ours to close.
                        OP_OPEN if res >= 0 => {
                            slot.file = Some(if slot.fixed {
                                FileRef::Fixed(i as u32)
                            } else {
                                FileRef::Fd(res)
                            });
                        }
                        OP_CLOSE => slot.file = None,
                        _ => {}
                    }
                }
            }
        }
    }
}

impl<Q: PathQueue, Pr, C> Drop for InFlight<'_, Q, Pr, C> {
    fn drop(&mut self) {
        if self.ops > 0 {
            // Stopped part way (an error, a cancel, a panic): what may never complete on its own
            // (an open that waits in io-wq, say for a FIFO that replaced a file after its statx)
            // is cancelled; closes are left to finish.
            for (i, slot) in self.slots.iter().enumerate() {
                if slot.as_ref().is_some_and(|s| s.pending > 0 && !s.closing) {
                    for op in [OP_STAT, OP_OPEN, OP_READ, OP_PROBE] {
                        let _ = self.ring.cancel(tag(i, op));
                    }
                }
            }
        }
        self.reap();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            if slot.closing {
                // Its close was pushed: done, or (if reaping gave up) perhaps still to come. The
                // descriptor is not ours to close again.
                continue;
            }
            match slot.file.take() {
                // SAFETY: a descriptor this run opened and still owns.
                Some(FileRef::Fd(fd)) => unsafe {
                    libc::close(fd);
                },
                Some(file) if self.ring.push_close(file, tag(i, OP_CLOSE)).is_ok() => self.ops += 1,
                _ => {}
            }
        }
        self.reap();
        if self.ops > 0 {
            // The ring will not give its reads back: the kernel may still write into the arena.
            // Nothing here can free it; the caller's arena must be leaked (see `Reader`).
            std::mem::forget(std::mem::take(&mut self.slots));
            std::mem::forget(std::mem::take(&mut self.spare));
        }
    }
}

/// Reads the inputs of `feed` with up to `s.width` files in flight on `ring`, into the slots of
/// `arena`; `release` gets each input's outcome, in the order `feed` gave them.
pub(crate) fn run<Q, Pr, C>(
    ring: &mut Q,
    arena: &Arena,
    s: &Settings<'_>,
    feed: &mut dyn Feed<Pr, C>,
    release: &mut dyn FnMut(usize, PathBuf, Outcome<Pr, C>) -> Result<()>,
) -> Result<()>
where
    Q: PathQueue,
    Pr: Prepare,
    C: Combine<Pr::Part>,
{
    let width = s.width.min(arena.slots()).max(1);
    // Each read fills at most one slot: a kept arena made for a call with more files in flight
    // (smaller slots) than this one's settings ask is read in reads of its own slot size.
    let s = &Settings {
        chunk: s.chunk.min(arena.slot_len()),
        ..*s
    };
    let mut run = Files {
        s,
        arena,
        done: VecDeque::new(),
        free: (0..width).rev().collect(),
        head: 0,
        next: 0,
        exhausted: false,
        starved_waits: 0,
        stat_here_from: 0,
        fly: InFlight {
            ring,
            ops: 0,
            slots: (0..width).map(|_| None).collect(),
            fds: 0,
            starved: Vec::new(),
            spare: vec![0; width].into_boxed_slice(),
        },
    };
    loop {
        run.check_cancel()?;
        run.admit(feed)?;
        // Release, in input order, what is finished; deferred inputs are read here by the caller.
        while let Some(Some(_)) = run.done.front() {
            let (global, path, outcome) = run.done.pop_front().flatten().expect("checked above");
            release(global, path, outcome)?;
            run.head += 1;
        }
        if run.exhausted && run.head == run.next {
            return Ok(());
        }
        if run.fly.ops == 0 {
            run.unstarve()?;
            continue;
        }
        feed.idle();
        run.fly.ring.submit(1).map_err(ring_error)?;
        run.complete()?;
    }
}

/// The state of one [`run`]: the ring's work in flight, the free slots, and the finished inputs
/// waiting for their turn to be released.
struct Files<'a, Q: PathQueue, Pr, C> {
    s: &'a Settings<'a>,
    arena: &'a Arena,
    /// Finished inputs waiting for the ones before them, from `head` on.
    done: Done<Pr, C>,
    /// Slots with nothing in them.
    free: Vec<usize>,
    /// This run's number of the first input not yet released.
    head: usize,
    /// This run's number of the next input taken.
    next: usize,
    /// The feed has no more inputs.
    exhausted: bool,
    /// Milliseconds waited, with nothing in flight, for a descriptor to come free.
    starved_waits: u32,
    /// This run's number of the first input whose `statx` is done here again (see
    /// [`Settings::stat_here`]).
    stat_here_from: usize,
    /// Declared last: dropped (every operation reaped, every descriptor closed) after the rest.
    fly: InFlight<'a, Q, Pr, C>,
}

impl<Q: PathQueue, Pr: Prepare, C: Combine<Pr::Part>> Files<'_, Q, Pr, C> {
    /// Stops with [`Error::Interrupted`] once the cancel handle is cancelled; otherwise makes sure
    /// the ring watches it.
    fn check_cancel(&mut self) -> Result<()> {
        if let Some(c) = self.s.cancel {
            if c.is_cancelled() {
                return Err(Error::Interrupted {
                    path: self
                        .fly
                        .slots
                        .iter()
                        .flatten()
                        .map(|sl| sl.path.clone())
                        .next()
                        .unwrap_or_default(),
                });
            }
            self.fly.ring.watch(c.event_fd()).map_err(ring_error)?;
        }
        Ok(())
    }

    /// Admits new files while slots are free and the reorder window has room.
    fn admit(&mut self, feed: &mut dyn Feed<Pr, C>) -> Result<()> {
        while !self.exhausted && self.next < self.head + self.s.window.max(1) {
            let Some(&i) = self.free.last() else { break };
            // Wait for an input only when nothing else can happen: nothing in the kernel, nothing
            // to hand back.
            let idle = self.fly.ops == 0 && self.done.is_empty();
            let (global, input, work) = match feed.next(idle) {
                Next::Item(g, input, work) => (g, input, work),
                Next::NotNow => break,
                Next::End => {
                    self.exhausted = true;
                    break;
                }
            };
            self.done.push_back(None);
            match input {
                Input::Path(path) => self.admit_path(i, global, path, false, work)?,
                Input::Regular(path) => self.admit_path(i, global, path, true, work)?,
                Input::Open(file, path) => self.admit_open(i, global, file, path, work)?,
            }
        }
        Ok(())
    }

    /// Puts a file the caller opened into slot `i` and queues its first read; or, for one the
    /// slots should not take, keeps its outcome for its turn.
    fn admit_open(
        &mut self,
        i: usize,
        global: usize,
        file: File,
        path: PathBuf,
        work: (Pr, C),
    ) -> Result<()> {
        match opened(self.s, self.next, global, file, path, work) {
            Ok(slot) => {
                self.free.pop();
                self.fly.slots[i] = Some(slot);
                self.next += 1;
                self.proceed(i)
            }
            Err((path, outcome)) => {
                self.done[self.next - self.head] = Some((global, path, outcome));
                self.next += 1;
                Ok(())
            }
        }
    }

    /// Puts a path into slot `i` and queues its `statx` (or, for one known to be a regular file
    /// where the settings allow, its open); a path the kernel cannot take (a NUL in it) is that
    /// input's error.
    fn admit_path(
        &mut self,
        i: usize,
        global: usize,
        path: PathBuf,
        regular: bool,
        work: (Pr, C),
    ) -> Result<()> {
        let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
            let e = Error::Open {
                path: path.clone(),
                source: io::Error::from_raw_os_error(libc::EINVAL),
            };
            self.done[self.next - self.head] = Some((global, path, Outcome::Read(Err(e), work.1)));
            self.next += 1;
            return Ok(());
        };
        self.free.pop();
        let s = self.s;
        // SAFETY: all-zero is a valid statx record (the kernel fills it).
        let statx = Box::new(unsafe { std::mem::zeroed() });
        if regular && s.unstated && s.fixed_files && s.max_bytes != Some(0) {
            // Opened and read with no `statx` first. The open goes alone: a read linked to an
            // open that a worker thread does (a name not in the dentry cache) would be done
            // there too, blocking, where the ring's own read of an uncached page waits for it
            // without a thread.
            let steps = FileSteps::unstated(s.chunk, s.max_bytes, s.large);
            let mut slot = Slot::new((self.next, global), path, cpath, statx, steps, work);
            slot.fixed = true;
            slot.pending = 1;
            // SAFETY: the slot's path stays put until this operation's completion is popped
            // (the slot, placed in `fly.slots` below, is freed only once nothing of it is in
            // flight; its CString's bytes are on the heap).
            unsafe {
                self.fly
                    .ring
                    .push_openat(&slot.cpath, Some(i as u32), false, true, tag(i, OP_OPEN))
            }
            .map_err(ring_error)?;
            self.fly.ops += 1;
            self.fly.slots[i] = Some(slot);
            self.next += 1;
            return Ok(());
        }
        let steps = FileSteps::new(shape(s), s.large);
        let mut slot = Slot::new((self.next, global), path, cpath, statx, steps, work);
        if s.stat_here && self.next >= self.stat_here_from {
            // `statx(2)` here: no worker thread woken, where the name is in the dentry cache. One
            // that waited (for the disk) sends the next STAT_RING_RUN to the ring's `STATX`,
            // whose io-wq workers wait many at once.
            let t = std::time::Instant::now();
            let res = self.fly.ring.stat_now(&slot.cpath, &mut slot.statx);
            if t.elapsed() > STAT_HERE_MAX {
                self.stat_here_from = self.next + STAT_RING_RUN;
            }
            self.fly.slots[i] = Some(slot);
            self.next += 1;
            return self.on_stat(i, res);
        }
        slot.pending = 1;
        let out: *mut Statx = &mut *slot.statx;
        // SAFETY: the path and the statx record are the slot's, boxed or heap-allocated so they
        // do not move, and the slot stays in `fly.slots` until this operation's completion is
        // popped (a slot is freed only after its last operation completes).
        unsafe { self.fly.ring.push_statx(&slot.cpath, out, tag(i, OP_STAT)) }
            .map_err(ring_error)?;
        self.fly.ops += 1;
        self.fly.slots[i] = Some(slot);
        self.next += 1;
        Ok(())
    }

    /// Nothing in the kernel, yet inputs unfinished: only starved opens can be left. Other runs
    /// (on other threads), or the caller, hold the descriptors: waits a little for one to be
    /// closed, then tries again; gives up (each starved file's error) only after a while.
    fn unstarve(&mut self) -> Result<()> {
        if self.fly.starved.is_empty() {
            if self.head == self.next {
                return Ok(()); // everything admitted is released: admit more (or wait for it)
            }
            return Err(ring_error(io::Error::other(
                "many files: nothing in flight and nothing finished (a bug)",
            )));
        }
        if self.starved_waits < DESCRIPTOR_WAIT_MS {
            self.starved_waits += 1;
            std::thread::sleep(std::time::Duration::from_millis(1));
            let j = self.fly.starved.pop().expect("a starved open");
            return open_fd(&mut self.fly, j);
        }
        for i in std::mem::take(&mut self.fly.starved) {
            let slot = self.fly.slots[i].as_mut().expect("starved slot");
            slot.error.get_or_insert(Error::Open {
                path: slot.path.clone(),
                source: io::Error::from_raw_os_error(libc::EMFILE),
            });
            self.finish(i);
        }
        Ok(())
    }

    /// Books every completion the ring has, each by what its slot was waiting for.
    fn complete(&mut self) -> Result<()> {
        while let Some((ud, res)) = self.fly.ring.pop() {
            self.fly.ops -= 1;
            let (i, op) = untag(ud);
            let slot = self.fly.slots[i].as_mut().expect("a slot in flight");
            slot.pending -= 1;
            // An open linked to its first read is part of the read step.
            let linked = slot.linked;
            match op {
                OP_STAT => self.on_stat(i, res)?,
                OP_OPEN if !linked => self.on_open(i, res)?,
                OP_CLOSE => self.on_close(i)?,
                _ => self.on_read(i, op, res)?,
            }
        }
        Ok(())
    }

    /// A file's `statx` came back: open it (with its first reads linked, where it can be opened
    /// into the ring's file table), or defer it.
    fn on_stat(&mut self, i: usize, res: i32) -> Result<()> {
        let s = self.s;
        let slot = self.fly.slots[i].as_mut().expect("slot");
        let st = Stat::of_statx(&slot.statx);
        slot.steps.stat_done(res, st);
        let dev = libc::makedev(slot.statx.stx_dev_major, slot.statx.stx_dev_minor);
        if slot.steps.phase() == Phase::Open
            && s.dontcache
            && !dontcache_supported_at(&slot.cpath, dev)
        {
            slot.steps.refuse(Refusal::Elsewhere);
        }
        if slot.steps.phase() != Phase::Open {
            self.finish(i);
            return Ok(());
        }
        // Anonymous devices (major 0) may be FUSE, whose files the caller reads: they are opened
        // as process descriptors, for the check.
        // A file with no read to do (`max_bytes` 0) has no read to link: the open goes alone.
        if s.fixed_files && !st.anonymous() && slot.steps.has_read() {
            slot.fixed = true;
            slot.linked = true;
            return read_next(&mut self.fly, s, self.arena, i, true);
        }
        if self.fly.fds >= s.fd_limit {
            self.fly.starved.push(i); // opened when one of this run's descriptors is closed
            return Ok(());
        }
        open_fd(&mut self.fly, i)
    }

    /// A file's open not linked to its read came back: into the file table (an unstated file),
    /// read it; as a process descriptor, read it, or hand it back (FUSE), or wait for a
    /// descriptor (`EMFILE`, `ENFILE`); or end it with the error.
    fn on_open(&mut self, i: usize, res: i32) -> Result<()> {
        let slot = self.fly.slots[i].as_mut().expect("slot");
        if slot.fixed {
            // An unstated file's open into the file table (no process descriptor counted).
            slot.steps.open_done(res);
            if res >= 0 {
                slot.file = Some(FileRef::Fixed(i as u32));
            }
            return self.proceed(i);
        }
        if res == -libc::EMFILE || res == -libc::ENFILE {
            slot.counted = false;
            self.fly.fds -= 1;
            self.fly.starved.push(i);
            return Ok(());
        }
        slot.steps.open_done(res);
        if res < 0 {
            slot.counted = false;
            self.fly.fds -= 1;
        } else {
            self.starved_waits = 0;
            slot.file = Some(FileRef::Fd(res));
            // Files the engine must not read with io_uring (FUSE, see the Reader) go back to
            // the caller. Only anonymous devices (major 0: FUSE, tmpfs, overlay, btrfs) need
            // the check.
            if slot.statx.stx_dev_major == 0 && (self.s.read_elsewhere)(res) {
                slot.steps.refuse(Refusal::Elsewhere);
            }
        }
        self.proceed(i)
    }

    /// One operation of a read step came back (the linked open, the read, or the read that finds
    /// the end); once all have, the step is settled.
    fn on_read(&mut self, i: usize, op: u64, res: i32) -> Result<()> {
        let slot = self.fly.slots[i].as_mut().expect("slot");
        match op {
            OP_OPEN => {
                slot.open_res = Some(res);
                if res >= 0 {
                    slot.file = Some(FileRef::Fixed(i as u32));
                }
            }
            OP_PROBE => {
                if let Some(r) = &mut slot.probe {
                    *r = Some(res);
                }
            }
            _ => slot.read_res = Some(res),
        }
        if slot.pending == 0 {
            self.settle(i)?;
        }
        Ok(())
    }

    /// A file's close came back: its outcome waits for its turn, and a starved open may go now.
    fn on_close(&mut self, i: usize) -> Result<()> {
        let slot = self.fly.slots[i].as_mut().expect("slot");
        slot.file = None;
        slot.steps.closed();
        let freed = std::mem::take(&mut slot.counted);
        self.finish(i);
        if freed {
            self.fly.fds -= 1;
            // A descriptor came free: a starved open may go now.
            if let Some(j) = self.fly.starved.pop() {
                open_fd(&mut self.fly, j)?;
            }
        }
        Ok(())
    }

    /// Every operation of a read step came back: book the results by the file's steps, hand the
    /// chunk over, and go on.
    fn settle(&mut self, i: usize) -> Result<()> {
        let slot = self.fly.slots[i].as_mut().expect("slot");
        let mut read = slot.read_res.take().expect("a read in the step");
        let mut probe = slot.probe.take().flatten();
        if let Some(b) = slot.bonus.take() {
            match read {
                // The carried byte is the read's first.
                r if r >= 0 => read = r + 1,
                // Retried: with the byte again.
                r if r == -libc::EINTR || r == -libc::EAGAIN => slot.carried = Some(b),
                _ => {}
            }
        }
        if std::mem::take(&mut slot.spare) && read >= 0 && probe == Some(1) {
            // The byte after an unstated file's first read, in the spare byte, is the file's
            // next (of a FIFO, taken from it): part of this read if it stopped short, else the
            // first byte of the next.
            let b = self.fly.spare[i];
            let (len, buf_offset) = slot.asked;
            if (read as u32) < len {
                // SAFETY: the step's reads completed; `buf_offset + read < buf_offset + len`,
                // inside slot i's buffer, which nothing else writes.
                unsafe { *self.arena.slot_ptr(i).add(buf_offset + read as usize) = b };
                read += 1;
                probe = None;
            } else {
                slot.carried = Some(b);
            }
        }
        if let Some(res) = slot.open_res.take() {
            slot.steps.open_done(res);
            if slot.steps.phase() != Phase::Read {
                // The open failed; the reads linked to it were cancelled.
                return self.proceed(i);
            }
        }
        let event = slot.steps.read_done(read, probe);
        slot.take(self.arena, i, event);
        self.proceed(i)
    }

    /// Does what slot `i`'s steps say comes next: a read, its close, or its outcome (or, for an
    /// unstated file longer than its first chunk, its `statx`, here and now).
    fn proceed(&mut self, i: usize) -> Result<()> {
        let fly = &mut self.fly;
        let slot = fly.slots[i].as_mut().expect("slot");
        match slot.steps.next() {
            Io::Stat => {
                let res = fly.ring.stat_now(&slot.cpath, &mut slot.statx);
                let event = slot.steps.late_stat_done(res, Stat::of_statx(&slot.statx));
                slot.take(self.arena, i, event);
                self.proceed(i)
            }
            Io::Read { .. } => read_next(&mut self.fly, self.s, self.arena, i, false),
            Io::Close => close(&mut self.fly, i),
            Io::Done => {
                self.finish(i);
                Ok(())
            }
            io => unreachable!("{io:?} after a read, an open or a stat"),
        }
    }

    /// Slot `i` is done (its file closed, or never opened): its outcome waits for its turn.
    fn finish(&mut self, i: usize) {
        let slot = self.fly.slots[i].take().expect("slot");
        let (pr, c) = slot.work.expect("work");
        let outcome = match (slot.error, slot.steps.end()) {
            (Some(e), _) => Outcome::Read(Err(e), c),
            (None, Some(End::Refused(_))) => Outcome::Deferred(None, pr, c),
            (None, Some(End::Failed(f))) => Outcome::Read(Err(f.error(&slot.path)), c),
            (None, Some(End::Cancelled)) => Outcome::Read(
                Err(Error::Interrupted {
                    path: slot.path.clone(),
                }),
                c,
            ),
            (None, _) => Outcome::Read(Ok(slot.steps.bytes()), c),
        };
        self.done[slot.index - self.head] = Some((slot.global, slot.path, outcome));
        self.free.push(i);
    }
}

/// A slot for a file the caller opened, ready for its reads from its current position; or, for
/// one the slots should not take (not a regular file, large, on FUSE) or cannot look at, its
/// outcome.
#[allow(clippy::type_complexity, clippy::result_large_err)]
fn opened<Pr, C>(
    s: &Settings<'_>,
    index: usize,
    global: usize,
    file: File,
    path: PathBuf,
    (pr, c): (Pr, C),
) -> std::result::Result<Slot<Pr, C>, (PathBuf, Outcome<Pr, C>)> {
    let fd = file.as_raw_fd();
    // SAFETY: all-zero is a valid stat record, which fstat fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a descriptor `file` owns, into a record of ours.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        let e = Error::Open {
            path: path.clone(),
            source: io::Error::last_os_error(),
        };
        return Err((path, Outcome::Read(Err(e), c)));
    }
    let stat = Stat::of_stat(&st);
    if verdict(stat, s.large).is_err()
        || (stat.anonymous() && (s.read_elsewhere)(fd))
        || (s.dontcache && !dontcache_supported(fd, st.st_dev))
    {
        return Err((path, Outcome::Deferred(Some(file), pr, c)));
    }
    // SAFETY: lseek on a descriptor `file` owns.
    let start = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }.max(0) as u64;
    let steps = FileSteps::opened(shape(s), stat, start);
    // SAFETY: all-zero is a valid statx record, never looked at for an opened file.
    let statx: Box<Statx> = Box::new(unsafe { std::mem::zeroed() });
    let mut slot = Slot::new(
        (index, global),
        path,
        CString::default(),
        statx,
        steps,
        (pr, c),
    );
    // From here on this run owns the descriptor, and closes it.
    slot.file = Some(FileRef::Fd(file.into_raw_fd()));
    Ok(slot)
}

/// How the slots read a file: chunk after chunk into the slot's buffer.
fn shape(s: &Settings<'_>) -> Shape {
    Shape::Chunks {
        chunk: s.chunk,
        max_bytes: s.max_bytes,
    }
}

fn tag(slot: usize, op: u64) -> u64 {
    (slot as u64) << OP_BITS | op
}

fn untag(user_data: u64) -> (usize, u64) {
    (
        (user_data >> OP_BITS) as usize,
        user_data & ((1 << OP_BITS) - 1),
    )
}

fn ring_error(source: io::Error) -> Error {
    Error::Ring {
        path: PathBuf::from("io_uring"),
        op: "submit",
        source,
    }
}

/// Queues the open of slot `i`'s file as a process descriptor (counted against `fd_limit`).
fn open_fd<Q: PathQueue, Pr, C>(fly: &mut InFlight<'_, Q, Pr, C>, i: usize) -> Result<()> {
    let slot = fly.slots[i].as_mut().expect("slot");
    slot.counted = true;
    slot.pending += 1;
    fly.fds += 1;
    // SAFETY: the slot's path stays put until this operation's completion is popped (the slot is
    // freed only once nothing of it is in flight).
    unsafe {
        fly.ring
            .push_openat(&slot.cpath, None, false, false, tag(i, OP_OPEN))
    }
    .map_err(ring_error)?;
    fly.ops += 1;
    Ok(())
}

/// Queues the read slot `i`'s steps ask for, after the file's open when `open_first` (linked to
/// it), and followed by the read that finds the end where the steps carry one (hard-linked).
fn read_next<Q: PathQueue, Pr, C>(
    fly: &mut InFlight<'_, Q, Pr, C>,
    s: &Settings<'_>,
    arena: &Arena,
    i: usize,
    open_first: bool,
) -> Result<()> {
    let slot = fly.slots[i].as_mut().expect("slot");
    let io = if open_first {
        slot.steps.first_read()
    } else {
        Some(slot.steps.next())
    };
    let Some(Io::Read { mut read, probe }) = io else {
        unreachable!("read_next without a read to do");
    };
    slot.asked = (read.len, read.buf_offset);
    if let Some(b) = slot.carried.take() {
        // SAFETY: slot i's buffer is this file's alone, and none of its reads is in flight.
        unsafe { *arena.slot_ptr(i).add(read.buf_offset) = b };
        slot.bonus = Some(b);
        read = Span {
            offset: read.offset.checked_add(1).unwrap_or(CURRENT_POSITION),
            len: read.len - 1,
            buf_offset: read.buf_offset + 1,
        };
    }
    if open_first {
        slot.open_res = None;
        slot.pending += 1;
        let nonblock = slot.steps.is_unstated();
        // SAFETY: the slot's path stays put until this operation's completion is popped.
        unsafe {
            fly.ring
                .push_openat(&slot.cpath, Some(i as u32), true, nonblock, tag(i, OP_OPEN))
        }
        .map_err(ring_error)?;
        fly.ops += 1;
    }
    let (fd, fixed_file) = match slot.file {
        Some(FileRef::Fd(fd)) => (fd, false),
        _ => (i as i32, true), // opened (or being opened, linked before) into entry i
    };
    let base = ReadReq {
        fd,
        // SAFETY: buf_offset < chunk = the slot's length.
        buf: unsafe { arena.slot_ptr(i).add(read.buf_offset) },
        len: read.len,
        offset: read.offset,
        buf_index: (i < s.registered).then_some(i as u16),
        user_data: tag(i, OP_READ),
        fixed_file,
        then: probe.is_some(),
        // Under --direct, `dontcache` is refused: the flag never meets O_DIRECT.
        rw_flags: if s.dontcache { libc::RWF_DONTCACHE } else { 0 },
    };
    slot.read_res = None;
    slot.pending += 1;
    // SAFETY: slot i's buffer is this file's alone, and nothing reads it until this read's
    // completion is popped; `InFlight` reaps every operation before the arena can go.
    unsafe { fly.ring.push(base) }.map_err(ring_error)?;
    fly.ops += 1;
    slot.probe = None;
    if let Some(p) = probe {
        slot.spare = p.buf_offset == SPARE_BYTE;
        let (buf, buf_index) = if slot.spare {
            debug_assert_eq!(p.len, 1);
            (&raw mut fly.spare[i], None)
        } else {
            // SAFETY: the probe lies inside the read's part of slot i (its buf_offset < chunk).
            (
                unsafe { arena.slot_ptr(i).add(p.buf_offset) },
                base.buf_index,
            )
        };
        let req = ReadReq {
            buf,
            buf_index,
            len: p.len,
            offset: p.offset,
            user_data: tag(i, OP_PROBE),
            then: false,
            ..base
        };
        slot.probe = Some(None);
        slot.pending += 1;
        // SAFETY: as for the read before it: the same slot's buffer, not looked at until both
        // completions are popped (`settle` waits for every operation of the step); or the
        // slot's spare byte, which `InFlight` owns and keeps until every operation is reaped,
        // and which `settle` reads only once this read is back.
        unsafe { fly.ring.push(req) }.map_err(ring_error)?;
        fly.ops += 1;
    }
    Ok(())
}

fn close<Q: PathQueue, Pr, C>(fly: &mut InFlight<'_, Q, Pr, C>, i: usize) -> Result<()> {
    let slot = fly.slots[i].as_mut().expect("slot");
    slot.closing = true;
    let file = slot.file.expect("an open file to close");
    slot.pending += 1;
    fly.ring
        .push_close(file, tag(i, OP_CLOSE))
        .map_err(ring_error)?;
    fly.ops += 1;
    Ok(())
}

#[cfg(test)]
#[path = "many_tests.rs"]
mod tests;
