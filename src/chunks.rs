//! The rules for reading one source in chunks, with no I/O: what to read next, and what a
//! completion means. Every path that reads at offsets drives these rules — the engine's lanes
//! (io_uring and `pread(2)`), the synchronous path, and the async stream — so they are written once
//! and tested once, without a kernel (the property tests below, and the engine's fake queues).
//!
//! A source is cut into chunks `0, 1, 2, ...` of `chunk` bytes from where reading starts. For each
//! chunk a driver asks [`Chunks::piece`] whether it exists (it does not at or past the byte limit),
//! [`Chunks::may_read_ahead`] whether it may be read before the chunks ahead of it are delivered,
//! [`Chunks::next_read`] what read to issue (which descriptor, where, how long), and
//! [`Chunks::complete`] what the read's result means:
//!
//! - a short read is resubmitted for the rest of the chunk ([`Step::Again`]);
//! - a read returning 0 is the end ([`Step::Ready`] with `last`): `st_size` is only a hint. Chunks
//!   are read ahead up to and including the one that starts at `st_size` (the one that finds the
//!   end); past it, a chunk is read only once every chunk before it was delivered full;
//! - `EINTR` and `EAGAIN` are retried; any other error fails the chunk at `offset + filled`
//!   ([`Step::Failed`]), after the `filled` bytes before it are delivered;
//! - the byte limit (`max_bytes`) is an absolute end: no read goes past it, and the chunk that
//!   reaches it is the last;
//! - under `O_DIRECT` a read goes to the direct descriptor only when its file offset and its length
//!   are both aligned; after a short read that ended off alignment (only the end of the file does
//!   that), or for a length the limit cut, the rest goes through the buffered descriptor;
//! - a stream (pipe, socket) has no offsets: its reads are at the current position, one at a time,
//!   and whatever a read returns is a chunk (it is not topped up).

use crate::sys::CURRENT_POSITION;

/// How one source is read in chunks: everything the rules need to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunks {
    /// Where reading starts (a file handed over part read starts at its position).
    start: u64,
    /// Bytes per chunk.
    chunk: u64,
    /// Where reading ends at the latest: `start + max_bytes` (`u64::MAX`: no limit). For a stream,
    /// counted in bytes read from it.
    end: u64,
    /// The file's size as `fstat` gave it (absolute). A hint only.
    size_hint: u64,
    /// Reads carry offsets (regular files, block devices), or read a stream's current position.
    positional: bool,
    /// An `O_DIRECT` descriptor is there, needing `align`-aligned offsets and lengths.
    direct: bool,
    align: u64,
    /// The pieces are a range plan's reads ([`crate::ranges`]), not consecutive chunks: a read
    /// returning 0 ends its piece only, not the source.
    extents: bool,
}

/// One chunk being read: which, where it starts, how long it may be, how much of it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// The chunk's number.
    pub k: u64,
    /// Where it starts in the file (for a stream: the bytes read from it before).
    pub offset: u64,
    /// Its length at most (a chunk, or less where the limit cuts it).
    pub want: u32,
    /// Bytes read into it so far.
    pub filled: u32,
}

/// Which of the source's descriptors a read goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The descriptor opened without `O_DIRECT`.
    Buffered,
    /// The `O_DIRECT` twin.
    Direct,
}

/// One read to issue: into the piece's buffer at `filled`, `len` bytes at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NextRead {
    /// The descriptor.
    pub via: Via,
    /// Where in the file, or [`CURRENT_POSITION`] for a stream.
    pub offset: u64,
    /// Where in the chunk's buffer the bytes go.
    pub buf_offset: usize,
    /// How many bytes to read at most.
    pub len: u32,
}

/// What a completed read means for its piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Read the rest: issue [`Chunks::next_read`] again.
    Again,
    /// The piece is complete with `filled` bytes; `last`: nothing follows it (end of file, or of
    /// the limit).
    Ready {
        /// Nothing follows this piece.
        last: bool,
    },
    /// Reading failed at `offset + filled` with `errno`; the `filled` bytes before it are good.
    Failed {
        /// The error number.
        errno: i32,
    },
}

impl Chunks {
    /// The rules for a source read from `start` in chunks of `chunk` bytes, at most `max_bytes`
    /// (`None`: to the end), whose size `fstat` gave as `size_hint`. `direct_align` is the alignment
    /// of its `O_DIRECT` twin, if it has one.
    pub(crate) fn new(
        start: u64,
        chunk: usize,
        max_bytes: Option<u64>,
        size_hint: u64,
        positional: bool,
        direct_align: Option<usize>,
    ) -> Chunks {
        let start = if positional { start } else { 0 };
        Chunks {
            start,
            chunk: chunk as u64,
            end: max_bytes.map_or(u64::MAX, |m| start.saturating_add(m)),
            size_hint,
            positional,
            direct: direct_align.is_some(),
            align: direct_align.unwrap_or(1).max(1) as u64,
            extents: false,
        }
    }

    /// The rules for a range plan's reads ([`crate::ranges::Plan`]) of a positional file: each piece
    /// is one read the plan made (its driver builds it with [`Chunks::extent`]), read ahead freely; a
    /// read returning 0 (the end of the file) ends that piece, not the others.
    pub(crate) fn for_extents(chunk: usize, direct_align: Option<usize>) -> Chunks {
        Chunks {
            extents: true,
            ..Chunks::new(0, chunk, None, u64::MAX, true, direct_align)
        }
    }

    /// Piece `k` of a range plan: `want` bytes at `offset`.
    pub(crate) fn extent(k: u64, offset: u64, want: u32) -> Piece {
        Piece {
            k,
            offset,
            want,
            filled: 0,
        }
    }

    /// Whether reads carry offsets.
    pub(crate) fn positional(&self) -> bool {
        self.positional
    }

    /// The most reads of this source that may be in flight at once: one for a stream.
    pub(crate) fn max_in_flight(&self, depth: usize) -> usize {
        if self.positional {
            depth.max(1)
        } else {
            1
        }
    }

    /// How many chunks the source can have at most, as far as its size hint and the limit tell
    /// (at least 1: the read that finds the end). For choosing how many lanes to use.
    // For the engine's lanes (the stream does not need it).
    #[allow(dead_code)]
    pub(crate) fn expected_chunks(&self) -> u64 {
        if !self.positional {
            return 1;
        }
        let end = self.size_hint.min(self.end);
        end.saturating_sub(self.start).div_ceil(self.chunk).max(1)
    }

    /// Chunk `k`, ready to be read; for a stream, the next read at `stream_pos` bytes read so far.
    /// `None` if it starts at or past the limit: it is never read.
    pub(crate) fn piece(&self, k: u64, stream_pos: u64) -> Option<Piece> {
        let offset = if self.positional {
            self.start.checked_add(k.checked_mul(self.chunk)?)?
        } else {
            stream_pos
        };
        if offset >= self.end {
            return None;
        }
        let want = self.chunk.min(self.end - offset) as u32;
        Some(Piece {
            k,
            offset,
            want,
            filled: 0,
        })
    }

    /// Whether chunk `k` may be read while chunk `turn` is the next to be delivered: it lies within
    /// the size hint (or is the chunk that starts at it), or every chunk before it was delivered.
    pub(crate) fn may_read_ahead(&self, k: u64, turn: u64) -> bool {
        if !self.positional || turn >= k {
            return true;
        }
        match k
            .checked_mul(self.chunk)
            .and_then(|o| o.checked_add(self.start))
        {
            Some(offset) => offset <= self.size_hint,
            None => false,
        }
    }

    /// The read that brings in the rest of `p`.
    pub(crate) fn next_read(&self, p: &Piece) -> NextRead {
        let at = p.offset + p.filled as u64;
        let len = p.want - p.filled;
        let aligned = at % self.align == 0 && len as u64 % self.align == 0;
        NextRead {
            via: if self.direct && self.positional && aligned {
                Via::Direct
            } else {
                Via::Buffered
            },
            offset: if self.positional {
                at
            } else {
                CURRENT_POSITION
            },
            buf_offset: p.filled as usize,
            len,
        }
    }

    /// Books a read's result (a byte count, or `-errno`) into `p`, and says what follows.
    pub(crate) fn complete(&self, p: &mut Piece, res: i32) -> Step {
        if res < 0 {
            let errno = -res;
            return if errno == libc::EINTR || errno == libc::EAGAIN {
                Step::Again
            } else {
                Step::Failed { errno }
            };
        }
        if res == 0 {
            return Step::Ready {
                last: !self.extents,
            };
        }
        // A read never returns more than it asked for; should one, the excess is not ours.
        p.filled = p.filled.saturating_add(res as u32).min(p.want);
        if p.offset + p.filled as u64 >= self.end {
            return Step::Ready { last: true };
        }
        if !self.positional || p.filled >= p.want {
            Step::Ready { last: false }
        } else {
            Step::Again
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A kernel made of a byte vector: each read returns at most `cap` bytes, sometimes EINTR.
    struct FakeFile {
        data: Vec<u8>,
    }

    impl FakeFile {
        fn read(&self, r: &NextRead, buf: &mut [u8], cap: u32, errno_at: Option<u64>) -> i32 {
            // A bad byte past the end of the file is never reached: reads there return 0.
            if let Some(e) = errno_at.filter(|&e| e < self.data.len() as u64) {
                if r.offset <= e && e < r.offset + r.len as u64 {
                    if r.offset == e {
                        return -libc::EIO;
                    }
                    // Read up to the bad byte.
                    let n = (e - r.offset) as usize;
                    buf[r.buf_offset..r.buf_offset + n]
                        .copy_from_slice(&self.data[r.offset as usize..][..n]);
                    return n as i32;
                }
            }
            let from = (r.offset as usize).min(self.data.len());
            let n = (self.data.len() - from).min(r.len.min(cap) as usize);
            buf[r.buf_offset..r.buf_offset + n].copy_from_slice(&self.data[from..from + n]);
            n as i32
        }
    }

    /// Drives `rules` over `file` as the synchronous path does, chunk after chunk: returns the bytes
    /// delivered and the error offset, if any.
    fn drive(
        rules: &Chunks,
        file: &FakeFile,
        cap: u32,
        eintr_every: u32,
        errno_at: Option<u64>,
    ) -> (Vec<u8>, Option<u64>) {
        let mut out = Vec::new();
        let mut buf = vec![0u8; rules.chunk as usize];
        let mut calls = 0u32;
        for k in 0.. {
            assert!(rules.may_read_ahead(k, k));
            let Some(mut p) = rules.piece(k, 0) else {
                return (out, None);
            };
            loop {
                let r = rules.next_read(&p);
                assert!(r.len > 0 && r.buf_offset + r.len as usize <= buf.len());
                if r.via == Via::Direct {
                    assert_eq!(r.offset % rules.align, 0);
                    assert_eq!(r.len as u64 % rules.align, 0);
                }
                calls += 1;
                let res = if eintr_every > 0 && calls % eintr_every == 0 {
                    -libc::EINTR
                } else {
                    file.read(&r, &mut buf, cap, errno_at)
                };
                match rules.complete(&mut p, res) {
                    Step::Again => continue,
                    Step::Ready { last } => {
                        out.extend_from_slice(&buf[..p.filled as usize]);
                        if last {
                            return (out, None);
                        }
                        break;
                    }
                    Step::Failed { .. } => {
                        out.extend_from_slice(&buf[..p.filled as usize]);
                        return (out, Some(p.offset + p.filled as u64));
                    }
                }
            }
        }
        unreachable!()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Whatever the sizes, short reads, retries, limit and alignment: the bytes delivered are the
        /// file's from `start` to the limit, and an error comes at its offset after every byte before.
        #[test]
        fn chunks_deliver_exactly_the_file(
            len in prop_oneof![0usize..20_000, Just(4096), Just(4095), Just(4097), Just(8192)],
            chunk_pages in 1usize..4,
            start_pages in 0u64..2,
            hint_delta in -5000i64..5000,
            cap in prop_oneof![Just(u32::MAX), 1u32..5000],
            eintr_every in prop_oneof![Just(0u32), 2u32..7],
            max in prop::option::of(0u64..25_000),
            direct in any::<bool>(),
            fail in prop::option::of(0u64..20_000),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
            let file = FakeFile { data: data.clone() };
            let chunk = chunk_pages * 4096;
            let start = (start_pages * 4096).min(len as u64 / 4096 * 4096);
            let hint = (len as i64 + hint_delta).max(0) as u64;
            let rules = Chunks::new(start, chunk, max, hint, true, direct.then_some(512));
            let (got, err) = drive(&rules, &file, cap, eintr_every, fail);
            let end = max.map_or(len as u64, |m| (start + m).min(len as u64)) as usize;
            let start = start as usize;
            match fail {
                Some(f) if (f as usize) >= start && (f as usize) < end => {
                    prop_assert_eq!(err, Some(f));
                    prop_assert_eq!(&got[..], &data[start..f as usize]);
                }
                _ => {
                    prop_assert_eq!(err, None);
                    prop_assert_eq!(&got[..], &data[start..end.max(start)]);
                }
            }
        }
    }

    #[test]
    fn an_extent_that_meets_the_end_ends_alone() {
        let rules = Chunks::for_extents(8192, Some(4096));
        let mut p = Chunks::extent(3, 4096, 8192);
        assert!(rules.may_read_ahead(1000, 0));
        assert_eq!(rules.next_read(&p).via, Via::Direct);
        assert_eq!(rules.complete(&mut p, 5000), Step::Again);
        assert_eq!(rules.next_read(&p).via, Via::Buffered);
        assert_eq!(rules.complete(&mut p, 0), Step::Ready { last: false });
        assert_eq!(p.filled, 5000);
    }

    #[test]
    fn read_ahead_reaches_the_chunk_that_starts_at_the_size_hint() {
        let rules = Chunks::new(0, 4096, None, 8192, true, None);
        assert!(rules.may_read_ahead(2, 0)); // starts at st_size: finds the end
        assert!(!rules.may_read_ahead(3, 0));
        assert!(rules.may_read_ahead(3, 3));
    }

    #[test]
    fn the_limit_cuts_the_last_read_and_the_direct_tail_goes_buffered() {
        let rules = Chunks::new(0, 8192, Some(10_000), 1 << 20, true, Some(4096));
        assert!(rules.piece(2, 0).is_none());
        let p = rules.piece(1, 0).unwrap();
        assert_eq!(p.want, 10_000 - 8192);
        assert_eq!(rules.next_read(&p).via, Via::Buffered);
        let mut p0 = rules.piece(0, 0).unwrap();
        assert_eq!(rules.next_read(&p0).via, Via::Direct);
        assert_eq!(rules.complete(&mut p0, 5000), Step::Again);
        assert_eq!(rules.next_read(&p0).via, Via::Buffered);
        assert_eq!(rules.expected_chunks(), 2);
    }

    #[test]
    fn a_stream_hands_over_what_each_read_returns_up_to_the_limit() {
        let rules = Chunks::new(7, 4096, Some(6000), 0, false, Some(4096));
        assert_eq!(rules.start, 0);
        assert_eq!(rules.max_in_flight(8), 1);
        let mut p = rules.piece(0, 0).unwrap();
        let r = rules.next_read(&p);
        assert_eq!(
            (r.via, r.offset, r.len),
            (Via::Buffered, CURRENT_POSITION, 4096)
        );
        assert_eq!(rules.complete(&mut p, 100), Step::Ready { last: false });
        let mut p = rules.piece(1, 100).unwrap();
        assert_eq!(p.want, 4096);
        assert_eq!(rules.complete(&mut p, 4096), Step::Ready { last: false });
        let mut p = rules.piece(2, 4196).unwrap();
        assert_eq!(p.want, 6000 - 4196);
        assert_eq!(rules.complete(&mut p, 1804), Step::Ready { last: true });
        assert!(rules.piece(3, 6000).is_none());
    }
}
