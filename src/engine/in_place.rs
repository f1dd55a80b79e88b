//! Reading in place: the lanes of a cached file whose chunks are slices of its mapping (see
//! [`crate::mapped`]) instead of copies in buffers.
//!
//! Lanes claim chunks 0, 1, 2, ... from a shared counter (no buffers tie a chunk to a lane), and the
//! same [`Chunks`] rules say where each starts and ends (the limit, the end). For each a lane
//! populates the chunk's pages (one `madvise`, which reports a page cut off the file instead of
//! faulting) and runs the processor's parallel half on the mapped bytes; it hands its chunks over
//! on their turns ([`Run::give`]), preparing up to [`AHEAD`] while an earlier chunk is late.
//!
//! The file ends where the other paths end it, at a read that returns 0:
//!
//! - the mapping covers the file's size at the start. The chunk that reaches the mapping's end
//!   (its *tail*) asks, on its turn, for the byte at that size (the probe, [`probe_end`]): 0 ends
//!   the file there; a byte means it grew, and from the tail on the lane holding it reads the
//!   chunks with `pread(2)` by the same rules, in order, to the read that returns 0;
//! - on its turn, before it is handed over, a chunk's mapped bytes are checked against the file's
//!   size now and the first page found cut ([`Mapping::fault`]): a chunk the file no longer holds
//!   whole (it shrank) is read with `pread(2)` instead, and ends where a read returns 0;
//! - a file cut while the processor has a chunk still fails the read at the cut (the processor
//!   may have seen zeros there, not the file's bytes: see [`crate::mapped`]).
//!
//! [`Chunks`]: crate::chunks::Chunks
//! [`probe_end`]: crate::file_steps::probe_end

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use super::baton::Spin;
use super::lanes::Run;
use crate::buf::Chunk;
use crate::chunks::Step;
use crate::error::Error;
use crate::file_steps::{probe_end, End};
use crate::mapped::Mapping;
use crate::processor::{Combine, Prepare};

/// Chunks a lane may have prepared and not yet handed over: it goes on preparing while the chunk
/// before its own is late (its thread descheduled, say), instead of waiting in step.
const AHEAD: usize = 4;

/// A chunk prepared, waiting for its turn.
struct Prepared<T> {
    k: u64,
    offset: u64,
    /// Its bytes in the mapping.
    filled: usize,
    part: Option<T>,
    failure: Option<Error>,
    /// Nothing follows it (the limit).
    last: bool,
    /// It reaches the mapping's end: whether the file ends there is asked on its turn.
    tail: bool,
    /// Its pages were found cut off the file: it is read on its turn.
    cut: bool,
}

/// Runs one lane of `run` over `map`, a mapping of the run's file from offset 0. Lanes claim
/// chunks from `next` (shared), so a lane slowed down takes fewer of them.
pub(crate) fn run_lane<Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    run: &Run<'_, '_, Pr, C>,
    next: &AtomicU64,
    map: &Mapping,
) {
    let mut spin = Spin::default();
    let mut queue: VecDeque<Prepared<Pr::Part>> = VecDeque::with_capacity(AHEAD);
    let mut claiming = true;
    loop {
        // Hand over what may be, without waiting.
        while let Some(front) = queue.front() {
            if run.baton.end() <= front.k {
                return;
            }
            if run.baton.turn() < front.k {
                break;
            }
            let p = queue.pop_front().expect("a front");
            if !hand_over(run, map, p) {
                return;
            }
        }
        if claiming && queue.len() < AHEAD {
            if run.interrupted() {
                run.fail(Error::Interrupted {
                    path: run.src.file.path.to_path_buf(),
                });
                run.baton.stop_at(0);
                return;
            }
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= run.baton.end() {
                claiming = false;
                continue;
            }
            match prepare(run, map, k) {
                Some(p) => {
                    // Past the end, the mapping's end or a failure: no later chunk is needed
                    // from this lane (the tail's lane reads whatever follows it).
                    claiming = !p.last && !p.tail && p.failure.is_none();
                    queue.push_back(p);
                }
                // Past the limit or the mapping's end, or a panic (the run is stopped): hand
                // over what is queued.
                None => claiming = false,
            }
            continue;
        }
        match queue.front() {
            Some(front) => {
                if !run.baton.wait_for(front.k, &mut spin) {
                    return;
                }
            }
            None => return,
        }
    }
}

/// Chunk `k` made ready: its pages populated and the processor's parallel half run on it. `None`:
/// past the limit (the run is told), past the tail (the tail's lane reads it), or the parallel
/// half panicked (the run is stopped).
fn prepare<Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    run: &Run<'_, '_, Pr, C>,
    map: &Mapping,
    k: u64,
) -> Option<Prepared<Pr::Part>> {
    let rules = &run.src.rules;
    let mapped = map.len() as u64;
    let Some(mut piece) = rules.piece(k, 0) else {
        // Past the limit: never read.
        run.baton.stop_at(k);
        return None;
    };
    if piece.offset > mapped {
        return None;
    }
    let have = (mapped - piece.offset).min(u64::from(piece.want));
    let mut p = Prepared {
        k,
        offset: piece.offset,
        filled: 0,
        part: None,
        failure: None,
        last: false,
        // Not wholly in the mapping: the file may end in it, or go on past it.
        tail: have < u64::from(piece.want),
        cut: false,
    };
    if have > 0 {
        if let Err(e) = map.populate(piece.offset as usize, have as usize) {
            // EFAULT: a page of it lies past the file's end (it was cut).
            p.cut = e.raw_os_error() == Some(libc::EFAULT);
            if !p.cut {
                p.failure = Some(read_error(run, piece.offset, e));
            }
            return Some(p);
        }
        // A chunk of `have` bytes, as if a read had returned them.
        p.last = matches!(
            rules.complete(&mut piece, have as i32),
            Step::Ready { last: true }
        );
    }
    p.tail &= !p.last;
    p.filled = piece.filled as usize;
    if p.filled > 0 {
        // SAFETY: `piece.offset + filled <= mapped`: `have` is cut to the mapping's length.
        let data = unsafe { map.bytes(piece.offset as usize, p.filled) };
        p.part = Some(prepare_part(run, &Chunk::new(piece.offset, data))?);
    }
    Some(p)
}

/// The processor's parallel half of `chunk`; `None` if it panicked (the run is stopped).
fn prepare_part<Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    run: &Run<'_, '_, Pr, C>,
    chunk: &Chunk<'_>,
) -> Option<Pr::Part> {
    let prep = run.prep;
    match catch_unwind(AssertUnwindSafe(|| prep.prepare(chunk))) {
        Ok(part) => Some(part),
        Err(payload) => {
            run.panicked(payload);
            None
        }
    }
}

/// Hands chunk `p.k` over on its turn (or reads it, where the mapping no longer holds it or the
/// file goes on past it). Returns whether this lane goes on.
fn hand_over<Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    run: &Run<'_, '_, Pr, C>,
    map: &Mapping,
    p: Prepared<Pr::Part>,
) -> bool {
    let k = p.k;
    if let Some(e) = p.failure {
        run.fail(e);
        run.baton.stop_at(k);
        return false;
    }
    let end = p.offset + p.filled as u64;
    if p.cut || !held(run, map, end) {
        // The file no longer has these bytes where they were mapped: read them.
        return read_on(run, map, k);
    }
    let mut last = p.last;
    if p.tail {
        // The mapping's end: does the file end there?
        let mapped = map.len() as u64;
        match probe_end(
            crate::sys::pread(run.src.file.fd, &mut [0u8], mapped),
            mapped,
        ) {
            End::Read(_) => last = true,
            End::Failed(f) => {
                run.fail(f.error(run.src.file.path));
                run.baton.stop_at(k);
                return false;
            }
            // It grew: read the tail and what follows.
            _ => return read_on(run, map, k),
        }
    }
    if let Some(part) = p.part {
        // SAFETY: prepared within the mapping (see `prepare`).
        let data = unsafe { map.bytes(p.offset as usize, p.filled) };
        if !run.give(k, &Chunk::new(p.offset, data), part) {
            return false;
        }
    }
    if let Some(page) = map.fault().filter(|&page| page < end) {
        // Cut while the processor had it: what it saw is not the file's.
        let at = size_now(run.src.file.fd).unwrap_or(page).min(page);
        run.fail(read_error(run, at, shrank()));
        run.baton.stop_at(k + 1);
        return false;
    }
    // Done with: the process's memory does not grow with the file.
    map.release(p.offset as usize, p.filled);
    if last {
        run.baton.stop_at(k + 1);
        run.baton.pass(k);
        return false;
    }
    run.baton.pass(k);
    true
}

/// Whether the mapping still holds the file's bytes up to `end`: the file is that long now and
/// no page before `end` was found cut.
fn held<Pr, C: ?Sized>(run: &Run<'_, '_, Pr, C>, map: &Mapping, end: u64) -> bool {
    map.fault().is_none_or(|page| end <= page)
        && size_now(run.src.file.fd).is_none_or(|size| end <= size)
}

/// Chunk `k`, on its turn, read with `pread(2)` by the rules (short reads topped up, errors at
/// `offset + filled`, the end a read that returns 0) and handed over; past the mapping's end, the
/// chunks after it too (no lane holds them). Returns whether this lane goes on.
fn read_on<Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    run: &Run<'_, '_, Pr, C>,
    map: &Mapping,
    mut k: u64,
) -> bool {
    let rules = &run.src.rules;
    let mut buf = Vec::new();
    loop {
        let Some(mut piece) = rules.piece(k, 0) else {
            run.baton.stop_at(k);
            return false;
        };
        if run.interrupted() {
            run.fail(Error::Interrupted {
                path: run.src.file.path.to_path_buf(),
            });
            run.baton.stop_at(k);
            return false;
        }
        buf.resize(piece.want as usize, 0);
        let step = loop {
            let r = rules.next_read(&piece);
            let into = &mut buf[r.buf_offset..][..r.len as usize];
            match rules.complete(
                &mut piece,
                crate::sys::pread(run.src.file.fd, into, r.offset),
            ) {
                Step::Again => continue,
                step => break step,
            }
        };
        let chunk = Chunk::new(piece.offset, &buf[..piece.filled as usize]);
        if !chunk.is_empty() {
            let Some(part) = prepare_part(run, &chunk) else {
                return false;
            };
            if !run.give(k, &chunk, part) {
                return false;
            }
        }
        match step {
            Step::Failed { errno } => {
                let at = piece.offset + u64::from(piece.filled);
                run.fail(read_error(run, at, io::Error::from_raw_os_error(errno)));
                run.baton.stop_at(k + 1);
                return false;
            }
            Step::Ready { last: true } => {
                run.baton.stop_at(k + 1);
                run.baton.pass(k);
                return false;
            }
            _ => run.baton.pass(k),
        }
        k += 1;
        if rules
            .piece(k, 0)
            .is_some_and(|p| p.offset <= map.len() as u64)
        {
            // Within the mapping: a lane holds it.
            return true;
        }
    }
}

fn read_error<Pr, C: ?Sized>(run: &Run<'_, '_, Pr, C>, offset: u64, source: io::Error) -> Error {
    Error::Read {
        path: run.src.file.path.to_path_buf(),
        offset,
        source,
    }
}

fn shrank() -> io::Error {
    io::Error::other("the file shrank while it was read in place")
}

/// The file's size now (`fstat`), if it can be had.
fn size_now(fd: std::os::fd::RawFd) -> Option<u64> {
    // SAFETY: fstat writes into a zeroed stat of our own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some(st.st_size.max(0) as u64)
    }
}
