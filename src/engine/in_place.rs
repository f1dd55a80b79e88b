//! Reading in place: the lanes of a cached file whose chunks are slices of its mapping (see
//! [`crate::mapped`]) instead of copies in buffers.
//!
//! Lane `t` takes chunks `t, t + L, ...` as the copying lanes do, and the same [`Chunks`] rules say
//! where each starts and ends (the limit, the end). For each it populates the chunk's pages (one
//! `madvise`, which reports a page cut off the file instead of faulting), runs the processor's
//! parallel half on the mapped bytes, waits for its turn and hands the chunk over ([`Run::give`]).
//! The mapping covers the file's size at the start; the chunk that reaches it asks the file for
//! one byte more, as the copying lanes' read of 0 does, and a file that grew or shrank meanwhile
//! fails the read at the offset where it changed (a processor may have seen zeros there: see
//! [`crate::mapped`]).
//!
//! [`Chunks`]: crate::chunks::Chunks

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::baton::Spin;
use super::lanes::Run;
use crate::buf::Chunk;
use crate::chunks::Step;
use crate::error::Error;
use crate::mapped::Mapping;
use crate::processor::{Combine, Prepare};

/// Runs lane `lane` of `run` over `map`, a mapping of the run's file from offset 0.
pub(crate) fn run_lane<Pr: Prepare, C: Combine<Pr::Part> + ?Sized>(
    run: &Run<'_, '_, Pr, C>,
    lane: u64,
    map: &Mapping,
) {
    let src = run.src;
    let rules = &src.rules;
    let mapped = map.len() as u64;
    let read_error = |offset: u64, source: io::Error| Error::Read {
        path: src.path.to_path_buf(),
        offset,
        source,
    };
    let mut spin = Spin::default();
    let mut k = lane;
    while k < run.baton.end() {
        if run.interrupted() {
            run.fail(Error::Interrupted {
                path: src.path.to_path_buf(),
            });
            run.baton.stop_at(0);
            return;
        }
        let Some(mut piece) = rules.piece(k, 0) else {
            // Past the limit: never read.
            run.baton.stop_at(k);
            return;
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
                        size_now(src.fd, piece.offset, piece.offset + have),
                        shrank(),
                    )
                } else {
                    read_error(piece.offset, e)
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
            match one_more(src.fd, mapped) {
                Ok(false) => last = true,
                Ok(true) => {
                    failure = Some(read_error(
                        mapped,
                        io::Error::other("the file grew while it was read in place"),
                    ))
                }
                Err(e) => failure = Some(read_error(mapped, e)),
            }
        }
        let filled = piece.filled as usize;
        // SAFETY: `piece.offset + filled <= mapped`: `have` is cut to the mapping's length.
        let data = unsafe { map.bytes(piece.offset as usize, filled) };
        let chunk = Chunk::new(piece.offset, data);
        let part = if failure.is_none() && filled > 0 {
            let prep = run.prep;
            match catch_unwind(AssertUnwindSafe(|| prep.prepare(&chunk))) {
                Ok(part) => Some(part),
                Err(payload) => {
                    run.panicked(payload);
                    return;
                }
            }
        } else {
            None
        };
        if !run.baton.wait_for(k, &mut spin) {
            return;
        }
        if let Some(page) = map.fault() {
            failure.get_or_insert_with(|| read_error(size_now(src.fd, 0, page), shrank()));
        }
        if let Some(e) = failure {
            run.fail(e);
            run.baton.stop_at(k);
            return;
        }
        if let Some(part) = part {
            if !run.give(k, &chunk, part) {
                return;
            }
        }
        if let Some(page) = map.fault() {
            // Cut while the processor had it: what it saw is not the file's.
            run.fail(read_error(size_now(src.fd, 0, page), shrank()));
            run.baton.stop_at(k + 1);
            return;
        }
        if last {
            run.baton.stop_at(k + 1);
            run.baton.pass(k);
            return;
        }
        run.baton.pass(k);
        k += run.lanes;
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
