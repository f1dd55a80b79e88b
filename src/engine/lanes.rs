//! Lanes: many reads in flight, delivered in file order.
//!
//! The file is cut into chunks 0, 1, 2, ... (the rules of [`crate::chunks`]). With `L` lanes (each on
//! its own thread, with its own queue and buffers), lane `t` reads chunks `t, t + L, t + 2L, ...`. A
//! lane keeps up to `D` of its chunks in flight in a fixed slot array: its `n`-th chunk lives in slot
//! `n % D`, and the slots are freed in the same order they were filled, so the window `head..tail` of
//! local sequence numbers *is* the reorder buffer: completions may arrive in any order, and the head
//! is delivered only when it is complete. A completion's `user_data` is its slot index; nothing is
//! looked up.
//!
//! Cached buffered reads complete inside `io_uring_enter`, so a lane copies its chunk on its own CPU;
//! it then waits for its turn ([`Baton`]) and runs the processor on that chunk while it is still in its
//! cache, and passes the turn on. Two lanes on two CPUs thus copy and process in alternation.
//!
//! What a completion means (short reads, the end, errors, the limit, the `O_DIRECT` tail) is decided
//! by [`Chunks`](crate::chunks::Chunks), not here. What the lanes add: a lane reaps every read it
//! submitted before it returns, so no buffer is reused or freed while the kernel may still write into
//! it (a lane that cannot reap says so, and its buffers are leaked); a processor's panic is caught,
//! every lane stops and drains, and the panic resumes on the caller's thread.

use std::any::Any;
use std::io;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::Instant;

use super::baton::{Baton, Spin};
use super::workers::Workers;
use super::Job;
use crate::buf::{Arena, Chunk};
use crate::cancel::Cancel;
use crate::chunks::{Piece, Step, Via};
use crate::error::Error;
use crate::processor::{Combine, Prepare};
use crate::ranges::Part;
use crate::ring::{Queue, ReadReq};

/// The ordered half of the processor and what it has been given so far.
struct Sink<'p, C: ?Sized> {
    proc: &'p mut C,
    bytes: u64,
    /// Of a range plan over several files ([`Job::members`]), how each file went.
    files: Vec<FileOutcome>,
}

/// How one file of a range plan over several files went.
#[derive(Debug, Default)]
pub(crate) struct FileOutcome {
    /// The bytes handed over.
    pub bytes: u64,
    /// The failure that ended it (a read or the processor), if any.
    pub error: Option<Error>,
    /// Its processor asked to stop, or it failed: its later pieces are not handed over.
    pub ended: bool,
}

/// How a whole run ended (the first failure in file order wins).
#[derive(Default)]
struct Outcome {
    error: Option<Error>,
    panic: Option<Box<dyn Any + Send>>,
}

/// One file's read, shared by its lanes.
pub(crate) struct Run<'a, 'p, Pr, C: ?Sized> {
    pub(super) src: Job<'a>,
    pub(super) lanes: u64,
    /// Chunks a lane reads one after another before the next lane's turn: lane `t` reads chunks
    /// `t * block .. (t + 1) * block`, then the same `lanes * block` further on, and so on (1: the
    /// lanes take turns at every chunk).
    pub(super) block: u64,
    pub(super) baton: Baton,
    pub(super) prep: &'a Pr,
    sink: Mutex<Sink<'p, C>>,
    outcome: Mutex<Outcome>,
    cancel: Option<&'a Cancel>,
    /// Where each read's time from submission to completion goes, when reads are timed.
    read_times: Option<&'a Mutex<Vec<u64>>>,
    /// Descriptors of their own for lanes `1..` of `pread(2)` lanes over one file (`None`: the
    /// source's): each its own open file, so that the lanes' reads do not share its reference
    /// count.
    lane_fds: &'a [Option<RawFd>],
}

impl<'a, 'p, Pr: Prepare, C: Combine<Pr::Part> + ?Sized> Run<'a, 'p, Pr, C> {
    /// A run of `lanes` lanes over `src`.
    pub(crate) fn new(src: Job<'a>, lanes: usize, prep: &'a Pr, proc: &'p mut C) -> Self {
        Run {
            src,
            lanes: lanes as u64,
            block: 1,
            baton: Baton::new(),
            prep,
            sink: Mutex::new(Sink {
                proc,
                bytes: 0,
                files: std::iter::repeat_with(FileOutcome::default)
                    .take(src.members.len())
                    .collect(),
            }),
            outcome: Mutex::new(Outcome::default()),
            cancel: None,
            read_times: None,
            lane_fds: &[],
        }
    }

    /// Lanes take turns every `block` chunks instead of at every chunk ([`Run::block`]): for many
    /// small pieces delivered in order, where passing the turn (a wake-up of the other lane, when
    /// it sleeps) would cost more than the read itself.
    pub(crate) fn with_block(mut self, block: usize) -> Self {
        self.block = block.max(1) as u64;
        self
    }

    /// Lane `t` reads buffered through `fds[t]` where that is `Some`.
    pub(crate) fn with_lane_fds(mut self, fds: &'a [Option<RawFd>]) -> Self {
        self.lane_fds = fds;
        self
    }

    /// Times every read (nanoseconds from its submission to its completion) into `times`.
    pub(crate) fn with_read_times(mut self, times: Option<&'a Mutex<Vec<u64>>>) -> Self {
        self.read_times = times;
        self
    }

    /// Stops the run, reads reaped, with [`Error::Interrupted`] once `cancel` is cancelled.
    pub(crate) fn with_cancel(mut self, cancel: Option<&'a Cancel>) -> Self {
        self.cancel = cancel;
        self
    }

    pub(super) fn interrupted(&self) -> bool {
        self.cancel.is_some_and(Cancel::is_cancelled)
    }

    /// Ends the run: the bytes delivered, or the first error; a processor's panic resumes here.
    pub(crate) fn finish(self) -> Result<u64, Error> {
        self.finish_files().map(|(bytes, _)| bytes)
    }

    /// [`Run::finish`], with how each file of a plan over several files went.
    pub(crate) fn finish_files(self) -> Result<(u64, Vec<FileOutcome>), Error> {
        let outcome = self.outcome.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(payload) = outcome.panic {
            std::panic::resume_unwind(payload);
        }
        if let Some(e) = outcome.error {
            return Err(e);
        }
        let sink = self.sink.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok((sink.bytes, sink.files))
    }

    /// File `f` (of a plan over several files) failed with `e`: that file ends, unless it had
    /// already; the run goes on.
    fn file_failed(&self, f: usize, e: Error) {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = sink.files.get_mut(f).filter(|file| !file.ended) {
            file.error.get_or_insert(e);
            file.ended = true;
        }
    }

    pub(super) fn fail(&self, e: Error) {
        let mut o = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        o.error.get_or_insert(e);
    }

    pub(super) fn panicked(&self, payload: Box<dyn Any + Send>) {
        let mut o = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        o.panic.get_or_insert(payload);
        drop(o);
        self.baton.stop_at(0);
    }

    /// Stops every lane before anything more is delivered (a lane could not start).
    pub(crate) fn abort(&self, e: Error) {
        self.fail(e);
        self.baton.stop_at(0);
    }

    /// Gives chunk `k` and its prepared part to the processor, on chunk `k`'s turn. Returns whether
    /// reading goes on; if not (the processor asked to stop, failed or panicked), the run already
    /// knows and the turn is passed or the run stopped as that requires.
    pub(super) fn give(&self, k: u64, chunk: &Chunk<'_>, part: Pr::Part) -> bool {
        self.give_with(k, chunk.offset(), chunk.len() as u64, |_, proc| {
            let n = chunk.len() as u64;
            (
                n,
                proc.combine(chunk, part).map_err(|e| (chunk.offset(), e)),
            )
        })
    }

    /// [`Run::give`] for chunk `k` (at `offset`, `len` bytes) handed over by `hand`, which returns
    /// the bytes it handed over and whether to go on, or where the processor failed.
    pub(super) fn give_with<F>(&self, k: u64, offset: u64, len: u64, hand: F) -> bool
    where
        F: FnOnce(&Pr, &mut C) -> (u64, Result<bool, (u64, io::Error)>),
    {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let member = self.src.member_of(k);
        if member.is_some_and(|f| sink.files[f].ended) {
            return true; // its file has ended: the run goes on without it
        }
        let prep = self.prep;
        let sink_ref = &mut *sink;
        let src = self.src.for_piece(k);
        match catch_unwind(AssertUnwindSafe(|| hand(prep, &mut *sink_ref.proc))) {
            Ok((n, result)) => {
                sink.bytes += n;
                // A file of several: its end (asked for, or a failure) is that file's alone.
                let result = match member {
                    Some(f) => {
                        let file = &mut sink.files[f];
                        file.bytes += n;
                        match result {
                            Ok(go_on) => file.ended |= !go_on,
                            Err((offset, source)) => {
                                file.ended = true;
                                file.error.get_or_insert(Error::Process {
                                    path: src.file.path.to_path_buf(),
                                    offset,
                                    source,
                                });
                            }
                        }
                        Ok(true)
                    }
                    None => result,
                };
                drop(sink);
                match result {
                    Ok(go_on) => {
                        if src.file.drop_behind && src.rules.positional() {
                            // SAFETY: advice on a descriptor the source holds open for the run.
                            unsafe {
                                libc::posix_fadvise(
                                    src.file.fd,
                                    offset as libc::off_t,
                                    len as libc::off_t,
                                    libc::POSIX_FADV_DONTNEED,
                                )
                            };
                        }
                        if !go_on {
                            self.baton.stop_at(k + 1);
                            self.baton.pass(k);
                        }
                        go_on
                    }
                    Err((offset, source)) => {
                        self.fail(Error::Process {
                            path: self.src.file.path.to_path_buf(),
                            offset,
                            source,
                        });
                        self.baton.stop_at(k);
                        false
                    }
                }
            }
            Err(payload) => {
                drop(sink);
                self.panicked(payload);
                false
            }
        }
    }
}

#[derive(Debug)]
enum State {
    InFlight,
    Ready { last: bool },
    Failed(io::Error),
}

struct Slot<T> {
    /// The chunk, as the rules see it (for a stream, its offset is set when it is delivered).
    piece: Piece,
    /// When its first read was queued on the lane (only when reads are timed). Its time runs to
    /// the completion being reaped: through io_uring that includes the submission; on `pread`
    /// lanes, the reads of a batch run one after another, so it includes the wait behind the
    /// reads queued before it, as a device's queue would.
    queued: Option<Instant>,
    state: State,
    /// What [`Prepare`] made of the chunk, once it is read.
    part: Option<T>,
}

/// Runs lane `lane` of `run` to the end, reading through `q` into the first `depth` slots of `arena`
/// (the first `registered` of which are registered with `q`'s ring).
///
/// Returns `false` if reads could not all be reaped: then the kernel may still write into `arena`,
/// and the caller must leak it (and the ring).
pub(crate) fn run_lane<Q: Queue + ?Sized, Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    run: &Run<'_, '_, Pr, C>,
    lane: u64,
    q: &mut Q,
    arena: &Arena,
    depth: usize,
    registered: usize,
) -> bool {
    let depth = run.src.rules.max_in_flight(depth.min(arena.slots()).max(1));
    let mut lane = Lane {
        run,
        lane,
        q,
        arena,
        depth,
        registered,
        slots: Vec::new(),
        head: 0,
        tail: 0,
        in_flight: 0,
        unsubmitted: false,
        stream_offset: 0,
        spin: Spin::default(),
        times: Vec::new(),
        now: None,
    };
    if run.src.ordered {
        lane.drive();
    } else {
        lane.drive_unordered();
    }
    let clean = lane.drain();
    if let Some(times) = run.read_times {
        let mut all = times.lock().unwrap_or_else(|e| e.into_inner());
        all.extend_from_slice(&lane.times);
    }
    clean
}

/// One lane's means: where its reads go, its buffers, how many it uses, how many are registered.
pub(crate) struct LaneSpec<'l> {
    pub q: &'l mut (dyn Queue + Send),
    pub arena: &'l mut Arena,
    pub depth: usize,
    pub registered: usize,
}

/// Runs every lane of `run`: lane 0 on the calling thread, the others on the reader's kept
/// `workers`. Returns, per lane, whether all its reads were reaped (if not, its arena must be
/// leaked).
pub(crate) fn run_lanes<Pr, C>(
    run: &Run<'_, '_, Pr, C>,
    workers: &mut Workers,
    lanes: Vec<LaneSpec<'_>>,
) -> Vec<bool>
where
    Pr: Prepare,
    C: Combine<Pr::Part> + Send + ?Sized,
{
    let mut lanes = lanes.into_iter();
    let first = lanes.next().expect("at least one lane");
    let others = lanes
        .enumerate()
        .map(|(j, l)| {
            let t = j as u64 + 1;
            move || run_lane(run, t, l.q, &*l.arena, l.depth, l.registered)
        })
        .collect();
    let path = run.src.file.path;
    workers.scope(
        others,
        || run_lane(run, 0, first.q, first.arena, first.depth, first.registered),
        |source| {
            run.abort(Error::Ring {
                path: path.to_path_buf(),
                op: "thread spawn",
                source,
            })
        },
    )
}

struct Lane<'r, 'a, 'p, 'q, Pr: Prepare, C: ?Sized, Q: ?Sized> {
    run: &'r Run<'a, 'p, Pr, C>,
    lane: u64,
    q: &'q mut Q,
    arena: &'r Arena,
    depth: usize,
    registered: usize,
    slots: Vec<Slot<Pr::Part>>,
    head: u64,
    tail: u64,
    in_flight: usize,
    unsubmitted: bool,
    /// Bytes of a stream delivered so far (its next chunk's offset).
    stream_offset: u64,
    spin: Spin,
    /// Each read's time from queued to complete, when reads are timed (nanoseconds).
    times: Vec<u64>,
    /// The clock when reads are timed, read once a batch (see [`Lane::tick`]).
    now: Option<Instant>,
}

impl<Pr: Prepare, C: Combine<Pr::Part> + ?Sized, Q: Queue + ?Sized> Lane<'_, '_, '_, '_, Pr, C, Q> {
    /// The chunk that is this lane's `seq`-th: lanes take turns every [`Run::block`] chunks.
    fn chunk_of(&self, seq: u64) -> u64 {
        let b = self.run.block;
        (seq / b * self.run.lanes + self.lane) * b + seq % b
    }

    fn slot_of(&self, seq: u64) -> usize {
        (seq % self.depth as u64) as usize
    }

    /// The next chunk of this lane, if it exists and may be read now (see `Chunks`).
    fn next_piece(&self) -> Option<Piece> {
        let k = self.chunk_of(self.tail);
        if k >= self.run.baton.end() {
            return None;
        }
        let piece = self.run.src.piece(k, self.stream_offset)?;
        self.run
            .src
            .rules
            .may_read_ahead(k, self.run.baton.turn())
            .then_some(piece)
    }

    /// Whether the lane may go on: not interrupted, and its queue's wait watches the cancel
    /// handle (a lane asleep there wakes when it is cancelled). If not, the run knows why.
    fn may_go_on(&mut self) -> bool {
        if self.run.interrupted() {
            self.run.fail(Error::Interrupted {
                path: self.run.src.file.path.to_path_buf(),
            });
            self.run.baton.stop_at(0);
            return false;
        }
        if let Some(c) = self.run.cancel {
            if let Err(e) = self.q.watch(c.event_fd()) {
                self.ring_failed(e);
                return false;
            }
        }
        true
    }

    /// Reads the clock for the reads queued or reaped next, when reads are timed: once a batch,
    /// not once a read (two clock reads cost 2% of a cached 4 KiB `pread`, as much as the rest of
    /// the lane's own work). A read's time is then from the batch it was queued in to the batch
    /// its completion was reaped in.
    fn tick(&mut self) {
        if self.run.read_times.is_some() {
            self.now = Some(Instant::now());
        }
    }

    /// Puts `piece` in slot `i` (the `tail`-th of the lane) and queues its read.
    fn start(&mut self, i: usize, piece: Piece) {
        let slot = Slot {
            piece,
            queued: self.now,
            state: State::InFlight,
            part: None,
        };
        if self.slots.len() <= i {
            self.slots.push(slot);
        } else {
            self.slots[i] = slot;
        }
        self.tail += 1;
        self.push(i);
    }

    fn drive(&mut self) {
        loop {
            if !self.may_go_on() {
                return;
            }
            self.tick();
            self.fill();
            if self.head == self.tail {
                return; // nothing in flight and nothing more to read
            }
            let head = self.slot_of(self.head);
            let want = usize::from(matches!(self.slots[head].state, State::InFlight));
            if self.unsubmitted || want > 0 {
                self.unsubmitted = false;
                if let Err(e) = self.q.submit(want) {
                    self.ring_failed(e);
                    return;
                }
            }
            self.tick();
            while let Some((user_data, res)) = self.q.pop() {
                self.complete(user_data, res);
            }
            if !self.deliver() {
                return;
            }
        }
    }

    /// Drives a lane whose pieces go to the processor as they complete ([`Job::ordered`] off:
    /// range reads in completion order). A slot is handed over as soon as its read completes and
    /// read into again at once, whatever the slots before it are doing: one slow read does not
    /// hold the others back, and the lane keeps its whole depth in flight.
    fn drive_unordered(&mut self) {
        let mut free: Vec<usize> = (0..self.depth).rev().collect();
        loop {
            if !self.may_go_on() {
                return;
            }
            self.tick();
            while let Some(&i) = free.last() {
                let k = self.chunk_of(self.tail);
                if k >= self.run.baton.end() {
                    break;
                }
                let Some(piece) = self.run.src.piece(k, 0) else {
                    break;
                };
                free.pop();
                self.start(i, piece);
                // A read the queue refused is over already.
                if !matches!(self.slots[i].state, State::InFlight) {
                    if !self.hand_over(i) {
                        return;
                    }
                    free.push(i);
                }
            }
            if self.in_flight == 0 {
                return; // nothing in flight and nothing more to read
            }
            self.unsubmitted = false;
            if let Err(e) = self.q.submit(1) {
                self.ring_failed(e);
                return;
            }
            self.tick();
            while let Some((user_data, res)) = self.q.pop() {
                self.complete(user_data, res);
                let i = user_data as usize;
                if matches!(self.slots[i].state, State::InFlight) {
                    continue; // read on (a short read)
                }
                if self.run.baton.end() <= self.slots[i].piece.k || !self.hand_over(i) {
                    return;
                }
                free.push(i);
            }
        }
    }

    /// Puts reads in flight into every free slot that may be read now.
    fn fill(&mut self) {
        while self.tail - self.head < self.depth as u64 {
            let Some(piece) = self.next_piece() else {
                // Past the size hint with nothing of ours in flight: wait until the chunk before is
                // delivered (and was full), or the file has ended.
                let k = self.chunk_of(self.tail);
                if self.head == self.tail
                    && self.run.src.piece(k, self.stream_offset).is_some()
                    && k < self.run.baton.end()
                    && self.run.baton.wait_for(k, &mut self.spin)
                {
                    self.tick();
                    continue;
                }
                return;
            };
            let i = self.slot_of(self.tail);
            self.start(i, piece);
        }
    }

    /// Queues the read of the rest of slot `i`.
    fn push(&mut self, i: usize) {
        let src = &self.run.src.for_piece(self.slots[i].piece.k);
        let read = src.rules.next_read(&self.slots[i].piece);
        let own = match read.via {
            Via::Buffered => self.run.lane_fds.get(self.lane as usize).copied().flatten(),
            Via::Direct => None,
        };
        let req = ReadReq {
            fd: own.unwrap_or_else(|| src.fd(read.via)),
            // SAFETY: buf_offset = filled < want <= chunk <= slot length, so the pointer stays
            // inside slot i.
            buf: unsafe { self.arena.slot_ptr(i).add(read.buf_offset) },
            len: read.len,
            offset: read.offset,
            buf_index: (i < self.registered).then_some(i as u16),
            user_data: i as u64,
            fixed_file: false,
            then: false,
            // O_DIRECT reads bypass the cache anyway.
            rw_flags: if matches!(read.via, Via::Direct) && src.file.direct_fd.is_some() {
                0
            } else {
                src.file.rw_flags
            },
        };
        // SAFETY: slot i is owned by this lane and marked in flight; nothing reads or reuses it until
        // its completion is popped (`complete`), and `drain` pops every completion before the arena
        // can go.
        match unsafe { self.q.push(req) } {
            Ok(()) => {
                self.in_flight += 1;
                self.unsubmitted = true;
            }
            Err(e) => self.slots[i].state = State::Failed(e),
        }
    }

    /// Books the result of the read in slot `user_data`; resubmits the rest after a short read.
    fn complete(&mut self, user_data: u64, res: i32) {
        self.in_flight -= 1;
        let i = user_data as usize;
        let rules = self.run.src.rules;
        let slot = &mut self.slots[i];
        let step = rules.complete(&mut slot.piece, res);
        if let (Some(t), Some(now), false) = (slot.queued, self.now, matches!(step, Step::Again)) {
            self.times
                .push(now.saturating_duration_since(t).as_nanos() as u64);
        }
        match step {
            Step::Again => self.push(i),
            Step::Ready { last } => slot.state = State::Ready { last },
            Step::Failed { errno } => {
                slot.state = State::Failed(io::Error::from_raw_os_error(errno))
            }
        }
    }

    /// Hands complete chunks to the processor in turn. Returns `false` when this lane is done.
    fn deliver(&mut self) -> bool {
        while self.head < self.tail {
            let i = self.slot_of(self.head);
            if matches!(self.slots[i].state, State::InFlight) {
                return true;
            }
            let k = self.slots[i].piece.k;
            if !self.prepare(i) {
                return false;
            }
            if self.run.src.ordered && self.run.baton.turn() != k {
                // Not our turn yet: first start whatever reads we can, then wait.
                if self.unsubmitted
                    || (self.tail - self.head < self.depth as u64 && self.next_piece().is_some())
                {
                    return true;
                }
                if !self.run.baton.wait_for(k, &mut self.spin) {
                    return false;
                }
            }
            if self.run.baton.end() <= k {
                return false;
            }
            if !self.hand_over(i) {
                return false;
            }
            self.head += 1;
            if self.run.lanes > 1 && self.chunk_of(self.head) != k + 1 {
                return true; // our next chunk is turns away: refill first
            }
            // The next chunk is ours too (one lane, or within a block): keep the device busy while the processor works through ready chunks, by
            // refilling whenever a quarter of the window is free (a batch of reads per enter).
            let free = self.depth as u64 - (self.tail - self.head);
            if free >= (self.depth as u64 / 4).max(1) && self.next_piece().is_some() {
                return true;
            }
        }
        true
    }

    /// The offset of slot `i`'s bytes: a file offset, or for a stream the bytes delivered before.
    fn offset_of(&self, i: usize) -> u64 {
        if self.run.src.rules.positional() {
            self.slots[i].piece.offset
        } else {
            self.stream_offset
        }
    }

    /// Runs the parallel half of the processor on slot `i`, once, before its turn. Returns `false`
    /// if it panicked (the run is then stopped, and the panic resumes on the caller's thread).
    fn prepare(&mut self, i: usize) -> bool {
        let offset = self.offset_of(i);
        let slot = &mut self.slots[i];
        // A range plan's extent is prepared part by part, in `hand_parts`.
        if slot.part.is_some() || slot.piece.filled == 0 || self.run.src.plan.is_some() {
            return true;
        }
        // SAFETY: the slot's read has completed (the caller saw a state other than InFlight) and
        // wrote `filled` bytes; nothing writes into it until it is refilled after delivery.
        let data = unsafe { self.arena.slot(i, slot.piece.filled as usize) };
        let prep = self.run.prep;
        match catch_unwind(AssertUnwindSafe(|| prep.prepare(&Chunk::new(offset, data)))) {
            Ok(part) => {
                slot.part = Some(part);
                true
            }
            Err(payload) => {
                self.run.panicked(payload);
                false
            }
        }
    }

    /// Gives slot `i` (whose turn it is) to the processor. Returns whether reading goes on.
    fn hand_over(&mut self, i: usize) -> bool {
        let run = self.run;
        let offset = self.offset_of(i);
        let slot = &mut self.slots[i];
        let k = slot.piece.k;
        let filled = slot.piece.filled as usize;
        if !run.src.rules.positional() {
            self.stream_offset += filled as u64;
        }
        if filled > 0 {
            // SAFETY: the slot's read has completed (its state is not InFlight) and wrote `filled`
            // bytes; nothing writes into it until it is refilled after this call.
            let data = unsafe { self.arena.slot(i, filled) };
            let handed = match run.src.plan {
                None => {
                    let part = slot.part.take().expect("prepared before its turn");
                    run.give(k, &Chunk::new(offset, data), part)
                }
                // A range plan's extent: each range's part with its own offset.
                Some(plan) => run.give_with(k, offset, data.len() as u64, |prep, proc| {
                    let input = plan.extents[k as usize].file as usize;
                    hand_parts(plan.parts_of(k as usize), input, data, prep, proc)
                }),
            };
            if !handed {
                return false;
            }
        }
        match std::mem::replace(&mut slot.state, State::InFlight) {
            State::Failed(source) => {
                let e = Error::Read {
                    path: run.src.for_piece(k).file.path.to_path_buf(),
                    offset: offset + filled as u64,
                    source,
                };
                if let Some(f) = run.src.member_of(k) {
                    // One file of several: it ends here, the others go on.
                    run.file_failed(f, e);
                    run.baton.pass(k);
                    return true;
                }
                run.fail(e);
                run.baton.stop_at(k);
                false
            }
            State::Ready { last: true } => {
                run.baton.stop_at(k + 1);
                run.baton.pass(k);
                false
            }
            State::Ready { last: false } | State::InFlight => {
                run.baton.pass(k);
                true
            }
        }
    }

    /// The ring itself failed (not one read): report it at the head chunk, in order, and stop.
    fn ring_failed(&mut self, source: io::Error) {
        let k = self.chunk_of(self.head);
        if !self.run.src.ordered || self.run.baton.wait_for(k, &mut self.spin) {
            self.run.fail(Error::Ring {
                path: self.run.src.file.path.to_path_buf(),
                op: "submit",
                source,
            });
            self.run.baton.stop_at(k);
        }
    }

    /// Reaps every read still in flight. Returns `false` if the ring will not give them back.
    fn drain(&mut self) -> bool {
        // Lanes that stop early must still let the others finish their turns: nothing to do here,
        // since `end` was moved by whoever stopped the run.
        let mut failures = 0;
        if self.run.interrupted() {
            // A read of a pipe or terminal may wait forever for data: ask the kernel to cancel what
            // is in flight (each still completes, and is reaped below). Unordered, any slot may be.
            let slots: Vec<usize> = if self.run.src.ordered {
                (self.head..self.tail)
                    .map(|seq| self.slot_of(seq))
                    .collect()
            } else {
                (0..self.slots.len()).collect()
            };
            for i in slots {
                if matches!(self.slots[i].state, State::InFlight) {
                    let _ = self.q.cancel(i as u64);
                }
            }
        }
        while self.in_flight > 0 {
            if self.q.submit(1).is_err() {
                failures += 1;
                if failures > 100 {
                    return false;
                }
                continue;
            }
            while self.q.pop().is_some() {
                self.in_flight -= 1;
            }
        }
        true
    }
}

/// Hands a range plan's extent (of file `input` of the plan) over, part by part (each range's bytes
/// with its own offset, cut to what the read brought in): returns the bytes handed over, and
/// whether to go on or where the processor failed.
fn hand_parts<Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    parts: &[Part],
    input: usize,
    data: &[u8],
    prep: &Pr,
    proc: &mut C,
) -> (u64, Result<bool, (u64, io::Error)>) {
    let mut n = 0;
    for p in parts {
        let from = (p.at as usize).min(data.len());
        let to = (p.at as usize + p.len as usize).min(data.len());
        if to <= from {
            continue;
        }
        let chunk = Chunk::new(p.offset, &data[from..to]).of_input(input);
        let part = prep.prepare(&chunk);
        match proc.combine(&chunk, part) {
            Ok(true) => n += (to - from) as u64,
            Ok(false) => return (n + (to - from) as u64, Ok(false)),
            Err(e) => return (n, Err((p.offset, e))),
        }
    }
    (n, Ok(true))
}

#[cfg(test)]
#[path = "lanes_tests.rs"]
mod tests;
