//! Reading in place: the lanes of a cached file whose chunks are slices of its mapping (see
//! [`crate::mapped`]) instead of copies in buffers.
//!
//! Lanes claim chunks 0, 1, 2, ... from a shared counter (no buffers tie a chunk to a lane), and the
//! same [`Chunks`] rules say where each starts and ends (the limit, the end). For each a lane
//! populates the chunk's pages (one `madvise`, which reports a page cut off the file instead of
//! faulting) and runs the processor's parallel half on the mapped bytes; it hands its chunks over
//! on their turns ([`Run::give`]), preparing up to [`AHEAD`] while an earlier chunk is late.
//! The mapping covers the file's size at the start; the chunk that reaches it asks the file for
//! one byte more, as the copying lanes' read of 0 does, and a file that grew or shrank meanwhile
//! fails the read at the offset where it changed (a processor may have seen zeros there: see
//! [`crate::mapped`]).
//!
//! [`Chunks`]: crate::chunks::Chunks

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use super::baton::Spin;
use super::lanes::Run;
use crate::buf::Chunk;
use crate::chunks::Step;
use crate::error::Error;
use crate::mapped::Mapping;
use crate::processor::{Combine, Prepare};

/// Chunks a lane may have prepared and not yet handed over: it goes on preparing while the chunk
/// before its own is late (its thread descheduled, say), instead of waiting in step.
const AHEAD: usize = 4;

/// A chunk prepared, waiting for its turn.
struct Prepared<T> {
    k: u64,
    offset: u64,
    filled: usize,
    part: Option<T>,
    failure: Option<Error>,
    /// Nothing follows it.
    last: bool,
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
                    // Past the end or a failure: no later chunk is needed from this lane.
                    claiming = !p.last && p.failure.is_none();
                    queue.push_back(p);
                }
                // Past the limit, or a panic (the run is stopped): hand over what is queued.
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

/// Chunk `k` made ready: its pages populated, the end asked for where it reaches the mapping's,
/// and the processor's parallel half run on it. `None`: past the limit (the run is told), or the
/// parallel half panicked (the run is stopped).
fn prepare<Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    run: &Run<'_, '_, Pr, C>,
    map: &Mapping,
    k: u64,
) -> Option<Prepared<Pr::Part>> {
    let src = run.src;
    let rules = &src.rules;
    let mapped = map.len() as u64;
    let Some(mut piece) = rules.piece(k, 0) else {
        // Past the limit: never read.
        run.baton.stop_at(k);
        return None;
    };
    let have = mapped
        .saturating_sub(piece.offset)
        .min(u64::from(piece.want));
    let mut failure = None;
    if have > 0 {
        if let Err(e) = map.populate(piece.offset as usize, have as usize) {
            failure = Some(if e.raw_os_error() == Some(libc::EFAULT) {
                // A page of it lies past the file's end: it was cut.
                read_error(
                    run,
                    size_now(src.file.fd, piece.offset, piece.offset + have),
                    shrank(),
                )
            } else {
                read_error(run, piece.offset, e)
            });
        }
    }
    // A chunk of `have` bytes, as if a read had returned them; none: the mapping's end.
    let mut last = have > 0
        && match rules.complete(&mut piece, have as i32) {
            Step::Ready { last } => last,
            Step::Again | Step::Failed { .. } => false,
        };
    let end = piece.offset + u64::from(piece.filled);
    if !last && end >= mapped && failure.is_none() {
        // The chunk that reaches the mapping's end asks for more, as a read of 0 would.
        match one_more(src.file.fd, mapped) {
            Ok(false) => last = true,
            Ok(true) => {
                failure = Some(read_error(
                    run,
                    mapped,
                    io::Error::other("the file grew while it was read in place"),
                ))
            }
            Err(e) => failure = Some(read_error(run, mapped, e)),
        }
    }
    let filled = piece.filled as usize;
    let part = if failure.is_none() && filled > 0 {
        // SAFETY: `piece.offset + filled <= mapped`: `have` is cut to the mapping's length.
        let data = unsafe { map.bytes(piece.offset as usize, filled) };
        let prep = run.prep;
        match catch_unwind(AssertUnwindSafe(|| {
            prep.prepare(&Chunk::new(piece.offset, data))
        })) {
            Ok(part) => Some(part),
            Err(payload) => {
                run.panicked(payload);
                return None;
            }
        }
    } else {
        None
    };
    Some(Prepared {
        k,
        offset: piece.offset,
        filled,
        part,
        failure,
        last,
    })
}

/// Hands chunk `p.k` over on its turn. Returns whether this lane goes on.
fn hand_over<Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    run: &Run<'_, '_, Pr, C>,
    map: &Mapping,
    p: Prepared<Pr::Part>,
) -> bool {
    let k = p.k;
    let cut = |run: &Run<'_, '_, Pr, C>, page| {
        read_error(run, size_now(run.src.file.fd, 0, page), shrank())
    };
    let mut failure = p.failure;
    if let Some(page) = map.fault() {
        failure.get_or_insert_with(|| cut(run, page));
    }
    if let Some(e) = failure {
        run.fail(e);
        run.baton.stop_at(k);
        return false;
    }
    if let Some(part) = p.part {
        // SAFETY: prepared within the mapping (see `prepare`).
        let data = unsafe { map.bytes(p.offset as usize, p.filled) };
        if !run.give(k, &Chunk::new(p.offset, data), part) {
            return false;
        }
    }
    if let Some(page) = map.fault() {
        // Cut while the processor had it: what it saw is not the file's.
        run.fail(cut(run, page));
        run.baton.stop_at(k + 1);
        return false;
    }
    // Done with: the process's memory does not grow with the file.
    map.release(p.offset as usize, p.filled);
    if p.last {
        run.baton.stop_at(k + 1);
        run.baton.pass(k);
        return false;
    }
    run.baton.pass(k);
    true
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

/// Where the file ends now, kept within `lo..=hi` (where the cut was seen): the offset a cut
/// file's error names.
fn size_now(fd: std::os::fd::RawFd, lo: u64, hi: u64) -> u64 {
    // SAFETY: fstat writes into a zeroed stat of our own.
    let size = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some(st.st_size.max(0) as u64)
    };
    size.unwrap_or(hi).clamp(lo, hi)
}

/// Whether the file has a byte at `offset` (one `pread` of one byte).
fn one_more(fd: std::os::fd::RawFd, offset: u64) -> io::Result<bool> {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into a local.
        let n = unsafe { libc::pread(fd, (&mut byte as *mut u8).cast(), 1, offset as libc::off_t) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) {
            return Err(e);
        }
    }
}
