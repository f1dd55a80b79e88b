//! The engine: lanes of reads in flight, the baton that keeps chunks in file order, and the threads
//! a [`Reader`](crate::Reader) keeps for its lanes.
//!
//! - [`lanes`]: each lane owns a queue (an io_uring [`Ring`](crate::ring::Ring), or a
//!   [`PreadQueue`] where io_uring is refused or not wanted) and a few buffers, and drives
//!   [`Chunks`](crate::chunks::Chunks) — the one set of chunk rules — for every `n`-th chunk;
//! - [`baton`]: whose turn it is to hand a chunk to the processor;
//! - [`workers`]: the threads lanes `1..n` run on, started once per reader and parked between files;
//! - [`in_place`]: lanes whose chunks are slices of a cached file's mapping, not copies;
//! - [`many`]: many whole files in flight on one ring (`statx`, open, reads, close), each file's
//!   chunks in order to its own processor; [`many_drive`]: the rings (or the `pread(2)` pool of
//!   [`many_pool`]) and threads kept for them, one run per thread, the outcomes in input order.
//!
//! The synchronous path is one lane of depth one on a [`PreadQueue`], on the calling thread: the
//! same code, the same rules.

pub(crate) mod baton;
pub(crate) mod in_place;
pub(crate) mod lanes;
pub(crate) mod many;
pub(crate) mod many_drive;
pub(crate) mod many_pool;
pub(crate) mod pread_queue;
pub(crate) mod workers;

/// What the engine's fake-kernel tests share.
#[cfg(test)]
pub(crate) mod fake {
    /// A tiny deterministic generator (xorshift), so a failing case replays exactly.
    pub(crate) struct Rng(pub u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform in `0..n` (0 for `n` = 0).
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }
}

use std::os::fd::RawFd;
use std::path::Path;

pub(crate) use pread_queue::PreadQueue;

use crate::chunks::{Chunks, Piece, Via};
use crate::ranges::Plan;

/// A file the engine reads: its name, descriptors and flags. A [`Job`] has one; a range plan
/// over several files has one for each ([`Job::members`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    /// The name its errors carry.
    pub path: &'a Path,
    /// The file, opened buffered.
    pub fd: RawFd,
    /// The same file opened with `O_DIRECT`, when direct reads are on (and it took them).
    pub direct_fd: Option<RawFd>,
    /// `RWF_*` flags of its buffered reads.
    pub rw_flags: i32,
    /// Drop its chunks' pages once handed over.
    pub drop_behind: bool,
}

/// An open file, as the engine reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job<'a> {
    /// The file: the name errors carry, its descriptors (buffered, and `O_DIRECT` when direct
    /// reads are on), the `RWF_*` flags of its buffered reads (`RWF_DONTCACHE`), and whether each
    /// chunk's pages are dropped from the page cache once handed over (`POSIX_FADV_DONTNEED`:
    /// `dontcache` where the file system lacks `RWF_DONTCACHE`). For a plan over several files,
    /// the first file's, with `O_DIRECT` if any of them has it.
    pub file: Member<'a>,
    /// How it is read in chunks.
    pub rules: Chunks,
    /// Range reads: the plan's extents are the pieces (`None`: the file's chunks).
    pub plan: Option<&'a Plan>,
    /// Chunks go to the processor in order (the baton); `false`: as each lane has them
    /// (range reads in completion order).
    pub ordered: bool,
    /// A range plan over several files: the files its extents name (empty: the source is one
    /// file). Each file ends on its own: a failed read or processor ends that file, not the run.
    pub members: &'a [Member<'a>],
}

impl<'a> Job<'a> {
    /// Which of `members` piece `k` is of (`None`: the source is one file).
    pub(crate) fn member_of(&self, k: u64) -> Option<usize> {
        if self.members.is_empty() {
            return None;
        }
        let x = self.plan?.extents.get(usize::try_from(k).ok()?)?;
        Some(x.file as usize)
    }

    /// The source as piece `k` sees it: for a plan over several files, with that file's name,
    /// descriptors and flags.
    pub(crate) fn for_piece(&self, k: u64) -> Job<'a> {
        match self.member_of(k).and_then(|f| self.members.get(f)) {
            Some(&file) => Job { file, ..*self },
            None => *self,
        }
    }

    /// The descriptor a read goes to.
    pub(crate) fn fd(&self, via: Via) -> RawFd {
        match (via, self.file.direct_fd) {
            (Via::Direct, Some(d)) => d,
            _ => self.file.fd,
        }
    }

    /// Piece `k`: the file's chunk `k` by the rules, or the plan's extent `k`.
    pub(crate) fn piece(&self, k: u64, stream_pos: u64) -> Option<Piece> {
        match self.plan {
            Some(plan) => {
                let x = plan.extents.get(usize::try_from(k).ok()?)?;
                Some(Chunks::extent(k, x.offset, x.len))
            }
            None => self.rules.piece(k, stream_pos),
        }
    }

    /// How many pieces there can be at most (at least 1), for choosing the number of lanes.
    pub(crate) fn expected_pieces(&self) -> u64 {
        match self.plan {
            Some(plan) => plan.extents.len().max(1) as u64,
            None => self.rules.expected_chunks(),
        }
    }
}
