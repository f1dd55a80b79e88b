//! ringread's engine: lanes of io_uring reads, and the baton that keeps chunks in file order.
//!
//! The file is cut into chunks 0, 1, 2, ... of `chunk` bytes. With `L` lanes (one thread each, one
//! ring each, its own buffers), lane `t` reads chunks `t, t + L, t + 2L, ...`. A lane keeps up to `D`
//! of its chunks in flight in a fixed slot array: its `n`-th chunk lives in slot `n % D`, and the slots
//! are freed in the same order they were filled, so the window `head..tail` of local sequence numbers
//! *is* the reorder buffer: completions may arrive in any order, and the head is delivered only when it
//! is complete. A completion's `user_data` is its slot index; nothing is looked up.
//!
//! Cached buffered reads complete inside `io_uring_enter`, so a lane copies its chunk on its own CPU;
//! it then waits for its turn ([`Baton`]) and runs the processor on that chunk while it is still in its
//! cache, and passes the turn on. Two lanes on two CPUs thus copy and process in alternation.
//!
//! Rules every path keeps:
//! - a short read is resubmitted for the rest of the chunk; the file ends where a read returns 0
//!   (`st_size` only limits how far lanes read ahead speculatively);
//! - `EINTR` and `EAGAIN` are retried; any other error stops the read at that offset: every byte before
//!   it is delivered, none after;
//! - a lane reaps every read it submitted before it returns, so no buffer is reused or freed while the
//!   kernel may still write into it (a lane that cannot reap says so, and its buffers are leaked).

use std::any::Any;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::baton::{Baton, Spin};
use super::Source;
use crate::buf::{Arena, Chunk};
use crate::error::Error;
use crate::processor::{Combine, Prepare};
use crate::ring::{Queue, ReadReq, CURRENT_POSITION};

/// The ordered half of the processor and what it has been given so far.
struct Sink<'p, C> {
    proc: &'p mut C,
    bytes: u64,
}

/// How a whole run ended (the first failure in file order wins).
#[derive(Default)]
struct Outcome {
    error: Option<Error>,
    panic: Option<Box<dyn Any + Send>>,
}

/// One file's read, shared by its lanes.
pub(crate) struct Run<'a, 'p, Pr, C> {
    src: Source<'a>,
    chunk: usize,
    lanes: u64,
    baton: Baton,
    prep: &'a Pr,
    sink: Mutex<Sink<'p, C>>,
    outcome: Mutex<Outcome>,
    interrupt: Option<&'a AtomicBool>,
}

impl<'a, 'p, Pr: Prepare, C: Combine<Pr::Part>> Run<'a, 'p, Pr, C> {
    /// A run of `lanes` lanes over `src` in chunks of `chunk` bytes.
    pub(crate) fn new(
        src: Source<'a>,
        chunk: usize,
        lanes: usize,
        prep: &'a Pr,
        proc: &'p mut C,
    ) -> Self {
        Run {
            src,
            chunk,
            lanes: lanes as u64,
            baton: Baton::new(),
            prep,
            sink: Mutex::new(Sink { proc, bytes: 0 }),
            outcome: Mutex::new(Outcome::default()),
            interrupt: None,
        }
    }

    /// Stops the run, reads reaped, with [`Error::Interrupted`] once `flag` is set.
    pub(crate) fn with_interrupt(mut self, flag: Option<&'a AtomicBool>) -> Self {
        self.interrupt = flag;
        self
    }

    fn interrupted(&self) -> bool {
        self.interrupt.is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Ends the run: the bytes delivered, or the first error; a processor's panic resumes here.
    pub(crate) fn finish(self) -> Result<u64, Error> {
        let outcome = self.outcome.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(payload) = outcome.panic {
            std::panic::resume_unwind(payload);
        }
        if let Some(e) = outcome.error {
            return Err(e);
        }
        let sink = self.sink.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(sink.bytes)
    }

    fn fail(&self, e: Error) {
        let mut o = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        o.error.get_or_insert(e);
    }

    /// Stops every lane before anything more is delivered (a lane could not start).
    pub(crate) fn abort(&self, e: Error) {
        self.fail(e);
        self.baton.stop_at(0);
    }
}

#[derive(Debug)]
enum State {
    InFlight,
    Ready { eof: bool },
    Failed(io::Error),
}

struct Slot<T> {
    /// The chunk's number in the file.
    k: u64,
    /// Where the chunk starts (for streams: set when it is delivered).
    offset: u64,
    /// Bytes read into the slot so far.
    filled: usize,
    state: State,
    /// What [`Prepare`] made of the chunk, once it is read.
    part: Option<T>,
}

/// Runs lane `lane` of `run` to the end, reading through `q` into the first `depth` slots of `arena`
/// (the first `registered` of which are registered with `q`'s ring).
///
/// Returns `false` if reads could not all be reaped: then the kernel may still write into `arena`,
/// and the caller must leak it (and the ring).
pub(crate) fn run_lane<Q: Queue, Pr: Prepare, C: Combine<Pr::Part>>(
    run: &Run<'_, '_, Pr, C>,
    lane: u64,
    q: &mut Q,
    arena: &Arena,
    depth: usize,
    registered: usize,
) -> bool {
    let mut lane = Lane {
        run,
        lane,
        q,
        arena,
        depth: depth.min(arena.slots()).max(1),
        registered,
        slots: Vec::new(),
        head: 0,
        tail: 0,
        in_flight: 0,
        unsubmitted: false,
        stream_offset: 0,
        spin: Spin::default(),
    };
    if !run.src.positional {
        // A stream has one position: reads are issued one after another.
        lane.depth = 1;
    }
    lane.drive();
    lane.drain()
}

/// One lane's means: where its reads go, its buffers, how many it uses, how many are registered.
pub(crate) struct LaneSpec<'l, Q> {
    pub q: &'l mut Q,
    pub arena: &'l mut Arena,
    pub depth: usize,
    pub registered: usize,
}

/// Runs every lane of `run`: lane 0 on the calling thread, the others on scoped threads. Returns,
/// per lane, whether all its reads were reaped (if not, its arena must be leaked).
pub(crate) fn run_lanes<Q, Pr, C>(
    run: &Run<'_, '_, Pr, C>,
    lanes: Vec<LaneSpec<'_, Q>>,
) -> Vec<bool>
where
    Q: Queue + Send,
    Pr: Prepare,
    C: Combine<Pr::Part> + Send,
{
    std::thread::scope(|s| {
        let mut lanes = lanes.into_iter();
        let first = lanes.next().expect("at least one lane");
        let mut handles = Vec::new();
        for (j, l) in lanes.enumerate() {
            let t = j as u64 + 1;
            let spawned = std::thread::Builder::new()
                .name(format!("ringread-lane{t}"))
                .spawn_scoped(s, move || {
                    run_lane(run, t, l.q, &*l.arena, l.depth, l.registered)
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    run.abort(Error::Ring {
                        path: run.src.path.to_path_buf(),
                        op: "thread spawn",
                        source: e,
                    });
                    break;
                }
            }
        }
        let mut clean = vec![run_lane(
            run,
            0,
            first.q,
            first.arena,
            first.depth,
            first.registered,
        )];
        clean.extend(handles.into_iter().map(|h| h.join().unwrap_or(false)));
        clean
    })
}

struct Lane<'r, 'a, 'p, 'q, Pr: Prepare, C, Q> {
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
    stream_offset: u64,
    spin: Spin,
}

impl<Pr: Prepare, C: Combine<Pr::Part>, Q: Queue> Lane<'_, '_, '_, '_, Pr, C, Q> {
    fn chunk_of(&self, seq: u64) -> u64 {
        self.lane + self.run.lanes * seq
    }

    fn slot_of(&self, seq: u64) -> usize {
        (seq % self.depth as u64) as usize
    }

    /// Whether the next chunk may be read now: it exists (before `end`), and it is either within the
    /// size `fstat` gave (plus the one chunk that finds the end), or every chunk before it was full.
    fn may_read_next(&self) -> bool {
        let k = self.chunk_of(self.tail);
        if k >= self.run.baton.end() || self.past_limit(k) {
            return false;
        }
        let src = &self.run.src;
        !src.positional
            || src.start + k * self.run.chunk as u64 <= src.size_hint
            || self.run.baton.turn() >= k
    }

    /// Whether chunk `k` starts at or past `--max-bytes` (it is then never read).
    fn past_limit(&self, k: u64) -> bool {
        let start = if self.run.src.positional {
            k * self.run.chunk as u64
        } else {
            self.stream_offset
        };
        start >= self.run.src.limit
    }

    fn drive(&mut self) {
        loop {
            if self.run.interrupted() {
                self.run.fail(Error::Interrupted {
                    path: self.run.src.path.to_path_buf(),
                });
                self.run.baton.stop_at(0);
                return;
            }
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
            while let Some((user_data, res)) = self.q.pop() {
                self.complete(user_data, res);
            }
            if !self.deliver() {
                return;
            }
        }
    }

    /// Puts reads in flight into every free slot that may be read now.
    fn fill(&mut self) {
        while self.tail - self.head < self.depth as u64 {
            if !self.may_read_next() {
                // Past the size hint with nothing of ours in flight: wait until the chunk before is
                // delivered (and was full), or the file has ended.
                let k = self.chunk_of(self.tail);
                if self.head == self.tail
                    && !self.past_limit(k)
                    && self.run.src.positional
                    && k < self.run.baton.end()
                    && self.run.baton.wait_for(k, &mut self.spin)
                {
                    continue;
                }
                return;
            }
            let k = self.chunk_of(self.tail);
            let slot = Slot {
                k,
                offset: self.run.src.start + k * self.run.chunk as u64,
                filled: 0,
                state: State::InFlight,
                part: None,
            };
            let i = self.slot_of(self.tail);
            if self.slots.len() <= i {
                self.slots.push(slot);
            } else {
                self.slots[i] = slot;
            }
            self.tail += 1;
            self.push(i);
        }
    }

    /// Queues the read of the rest of slot `i`.
    fn push(&mut self, i: usize) {
        let src = &self.run.src;
        let slot = &self.slots[i];
        let chunk_start = if src.positional {
            slot.offset - src.start
        } else {
            self.stream_offset
        };
        // Never past --max-bytes (a pipe's bytes beyond it stay in the pipe). A read is only queued
        // below the limit, so at least one byte is left.
        let left = src
            .limit
            .saturating_sub(chunk_start + slot.filled as u64)
            .max(1);
        let remaining =
            (self.run.chunk - slot.filled).min(usize::try_from(left).unwrap_or(usize::MAX));
        // O_DIRECT needs aligned offsets and lengths; after a short read that ended off alignment
        // (only the end of the file does that), or for a length cut by the limit, the rest is read
        // through the buffered descriptor.
        let fd = match src.direct_fd {
            Some(dfd) if slot.filled % src.align == 0 && remaining % src.align == 0 => dfd,
            _ => src.fd,
        };
        let req = ReadReq {
            fd,
            // SAFETY: filled < chunk <= slot length, so the pointer stays inside slot i.
            buf: unsafe { self.arena.slot_ptr(i).add(slot.filled) },
            len: remaining.min(u32::MAX as usize) as u32,
            offset: if src.positional {
                slot.offset + slot.filled as u64
            } else {
                CURRENT_POSITION
            },
            buf_index: (i < self.registered).then_some(i as u16),
            user_data: i as u64,
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
        let positional = self.run.src.positional;
        let chunk = self.run.chunk;
        let slot = &mut self.slots[i];
        if res < 0 {
            let errno = -res;
            if errno == libc::EINTR || errno == libc::EAGAIN {
                self.push(i);
            } else {
                slot.state = State::Failed(io::Error::from_raw_os_error(errno));
            }
            return;
        }
        let n = res as usize;
        if n == 0 {
            slot.state = State::Ready { eof: true };
            return;
        }
        slot.filled += n;
        // --max-bytes: what lies past the limit is dropped, and the chunk ends the read.
        let chunk_start = if positional {
            slot.offset - self.run.src.start
        } else {
            self.stream_offset
        };
        let room = self.run.src.limit.saturating_sub(chunk_start);
        if slot.filled as u64 >= room {
            slot.filled = room as usize;
            slot.state = State::Ready { eof: true };
            return;
        }
        if !positional || slot.filled >= chunk {
            slot.state = State::Ready { eof: false };
        } else {
            self.push(i);
        }
    }

    /// Hands complete chunks to the processor in turn. Returns `false` when this lane is done.
    fn deliver(&mut self) -> bool {
        while self.head < self.tail {
            let i = self.slot_of(self.head);
            if matches!(self.slots[i].state, State::InFlight) {
                return true;
            }
            let k = self.slots[i].k;
            if !self.prepare(i) {
                return false;
            }
            if self.run.baton.turn() != k {
                // Not our turn yet: first start whatever reads we can, then wait.
                if self.unsubmitted
                    || (self.tail - self.head < self.depth as u64 && self.may_read_next())
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
            if self.run.lanes > 1 {
                return true; // our next chunk is turns away: refill first
            }
            // One lane: keep the device busy while the processor works through ready chunks, by
            // refilling whenever a quarter of the window is free (a batch of reads per enter).
            let free = self.depth as u64 - (self.tail - self.head);
            if free >= (self.depth as u64 / 4).max(1) && self.may_read_next() {
                return true;
            }
        }
        true
    }

    /// Runs the parallel half of the processor on slot `i`, once, before its turn. Returns `false`
    /// if it panicked (the run is then stopped, and the panic resumes on the caller's thread).
    fn prepare(&mut self, i: usize) -> bool {
        let slot = &mut self.slots[i];
        if slot.part.is_some() || slot.filled == 0 {
            return true;
        }
        let offset = if self.run.src.positional {
            slot.offset
        } else {
            self.stream_offset
        };
        // SAFETY: the slot's read has completed (the caller saw a state other than InFlight) and
        // wrote `filled` bytes; nothing writes into it until it is refilled after delivery.
        let data = unsafe { self.arena.slot(i, slot.filled) };
        let prep = self.run.prep;
        match catch_unwind(AssertUnwindSafe(|| prep.prepare(&Chunk::new(offset, data)))) {
            Ok(part) => {
                slot.part = Some(part);
                true
            }
            Err(payload) => {
                let mut o = self.run.outcome.lock().unwrap_or_else(|e| e.into_inner());
                o.panic.get_or_insert(payload);
                drop(o);
                self.run.baton.stop_at(0);
                false
            }
        }
    }

    /// Gives slot `i` (whose turn it is) to the processor. Returns whether reading goes on.
    fn hand_over(&mut self, i: usize) -> bool {
        let run = self.run;
        let positional = run.src.positional;
        let slot = &mut self.slots[i];
        let k = slot.k;
        if !positional {
            slot.offset = self.stream_offset;
            self.stream_offset += slot.filled as u64;
        }
        if slot.filled > 0 {
            // SAFETY: the slot's read has completed (its state is not InFlight) and wrote `filled`
            // bytes; nothing writes into it until it is refilled after this call.
            let data = unsafe { self.arena.slot(i, slot.filled) };
            let chunk = Chunk::new(slot.offset, data);
            let part = slot.part.take().expect("prepared before its turn");
            let mut sink = run.sink.lock().unwrap_or_else(|e| e.into_inner());
            match catch_unwind(AssertUnwindSafe(|| sink.proc.combine(&chunk, part))) {
                Ok(Ok(go_on)) => {
                    sink.bytes += data.len() as u64;
                    if !go_on {
                        drop(sink);
                        run.baton.stop_at(k + 1);
                        run.baton.pass(k);
                        return false;
                    }
                }
                Ok(Err(source)) => {
                    drop(sink);
                    run.fail(Error::Process {
                        path: run.src.path.to_path_buf(),
                        offset: slot.offset,
                        source,
                    });
                    run.baton.stop_at(k);
                    return false;
                }
                Err(payload) => {
                    drop(sink);
                    let mut o = run.outcome.lock().unwrap_or_else(|e| e.into_inner());
                    o.panic.get_or_insert(payload);
                    drop(o);
                    run.baton.stop_at(0);
                    return false;
                }
            }
        }
        match std::mem::replace(&mut slot.state, State::InFlight) {
            State::Failed(source) => {
                run.fail(Error::Read {
                    path: run.src.path.to_path_buf(),
                    offset: slot.offset + slot.filled as u64,
                    source,
                });
                run.baton.stop_at(k);
                false
            }
            State::Ready { eof: true } => {
                run.baton.stop_at(k + 1);
                run.baton.pass(k);
                false
            }
            State::Ready { eof: false } | State::InFlight => {
                run.baton.pass(k);
                true
            }
        }
    }

    /// The ring itself failed (not one read): report it at the head chunk, in order, and stop.
    fn ring_failed(&mut self, source: io::Error) {
        let k = self.chunk_of(self.head);
        if self.run.baton.wait_for(k, &mut self.spin) {
            self.run.fail(Error::Ring {
                path: self.run.src.path.to_path_buf(),
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
            // is in flight (each still completes, and is reaped below).
            for seq in self.head..self.tail {
                let i = self.slot_of(seq);
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

#[cfg(test)]
mod tests;
