//! Range reads: many `(offset, len)` pieces of one file, read with many reads in flight.
//!
//! [`Reader::read`](crate::Reader::read) takes a list of [`ByteRange`]s and hands
//! each range's bytes to a processor as [`Chunk`](crate::Chunk)s that carry the range's file
//! offset. This module holds the I/O-free part: the [`RangeOptions`] and the plan that turns the
//! ranges into reads ("extents"):
//!
//! - consecutive ranges (in the order given) that overlap, touch, or lie within
//!   [`RangeOptions::merge_gap`] bytes of each other are merged into one read of at most the chunk
//!   size (as glommio's `read_many` merges with its maximum buffer size and read amplification),
//!   and split again when handed over: each range is delivered on its own, with its own offset;
//! - a range longer than the chunk size is read as several reads, each a chunk at most, and
//!   delivered as consecutive chunks;
//! - under `O_DIRECT` every read is widened to the file's alignment, and only the asked bytes are
//!   handed over;
//! - a range past the end of the file gives the bytes up to the end, like `pread(2)`; an empty range,
//!   or one wholly past the end, gives nothing.
//!
//! Ranges are not sorted: a caller whose ranges are sorted (column chunks, index blocks) gets the
//! most merging. The engine then reads the extents as it reads a file's chunks: the same lanes,
//! rules for short reads, retries and errors (`chunks.rs`), registered buffers and fallbacks.

/// A run of bytes of a file: `len` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteRange {
    /// Where the range starts in the file.
    pub offset: u64,
    /// How many bytes it holds.
    pub len: u64,
}

impl ByteRange {
    /// `len` bytes from `offset`.
    pub fn new(offset: u64, len: u64) -> ByteRange {
        ByteRange { offset, len }
    }

    /// The first byte after the range (saturating).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }

    /// The range widened to `align` at both ends (as `O_DIRECT` reads must be): its first byte
    /// rounded down, its end rounded up (saturating). The one widening of every `O_DIRECT` range
    /// read, planned (`Plan::new`) or one at a time (`RangeFile::read_at`).
    pub(crate) fn widened(&self, align: u64) -> (u64, u64) {
        let align = align.max(1);
        (
            self.offset / align * align,
            self.end().div_ceil(align).saturating_mul(align),
        )
    }
}

impl From<(u64, u64)> for ByteRange {
    fn from((offset, len): (u64, u64)) -> ByteRange {
        ByteRange { offset, len }
    }
}

/// The order in which ranges reach the processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// In the order the ranges were given (the reads may still complete in any order).
    #[default]
    Request,
    /// As the reads complete: no thread waits for another's turn. Each [`Chunk`](crate::Chunk)
    /// carries its file offset; a range longer than the chunk size may arrive in pieces, each in
    /// order within its thread.
    Completion,
}

/// How [`Reader::read`](crate::Reader::read) reads a list of ranges.
///
/// ```
/// use ringread::ranges::{Order, RangeOptions};
/// let opts = RangeOptions::new().order(Order::Completion).merge_gap(Some(4096));
/// assert_eq!(opts.get_merge_gap(), Some(4096));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeOptions {
    order: Order,
    merge_gap: Option<u64>,
}

impl Default for RangeOptions {
    fn default() -> Self {
        RangeOptions::new()
    }
}

impl RangeOptions {
    /// Request order; ranges that overlap or touch are merged (a gap of 0).
    pub fn new() -> RangeOptions {
        RangeOptions {
            order: Order::Request,
            merge_gap: Some(0),
        }
    }

    /// The order of delivery. Default: [`Order::Request`].
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Merge a range into the read before it when it starts at most `gap` bytes after that read's
    /// end (and the read stays within the chunk size); the bytes in the gap are read and not handed
    /// over. `None`: every range is read on its own. Default: `Some(0)` (overlapping and adjacent
    /// ranges share a read).
    pub fn merge_gap(mut self, gap: Option<u64>) -> Self {
        self.merge_gap = gap;
        self
    }

    /// The order of delivery.
    pub fn get_order(&self) -> Order {
        self.order
    }

    /// The merge gap (`None`: no merging).
    pub fn get_merge_gap(&self) -> Option<u64> {
        self.merge_gap
    }
}

/// One read of the plan: `len` bytes at `offset` of file `file` (of a plan over several files, its
/// position among them; else 0), handing over `parts[first..end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub file: u32,
    pub offset: u64,
    pub len: u32,
    pub first: usize,
    pub end: usize,
}

/// A piece of a range, within its extent's buffer: `len` bytes at `at`, file offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub at: u32,
    pub len: u32,
    pub offset: u64,
}

/// The reads that bring in a list of ranges, and what each hands over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub extents: Vec<Extent>,
    pub parts: Vec<Part>,
}

impl Plan {
    /// Plans `ranges`, with reads of at most `max` bytes (the chunk size), widened to `align`
    /// (1 when buffered; `max` must then be a multiple of it), merging within `gap`.
    pub(crate) fn new(ranges: &[ByteRange], max: u64, align: u64, gap: Option<u64>) -> Plan {
        let align = align.max(1);
        let max = (max / align * align).max(align);
        let mut plan = Plan::default();
        for r in ranges.iter().filter(|r| r.len > 0) {
            let (s, e) = (r.offset, r.end());
            let (rs, re) = r.widened(align);
            if let (Some(cur), Some(gap)) = (plan.extents.last_mut(), gap) {
                let cur_end = cur.offset + cur.len as u64;
                let new_end = cur_end.max(re);
                if rs >= cur.offset
                    && rs <= cur_end.saturating_add(gap)
                    && new_end - cur.offset <= max
                {
                    cur.len = (new_end - cur.offset) as u32;
                    cur.end += 1;
                    plan.parts.push(Part {
                        at: (s - cur.offset) as u32,
                        len: r.len as u32,
                        offset: s,
                    });
                    continue;
                }
            }
            let mut pos = rs;
            while pos < re {
                let len = (re - pos).min(max);
                let from = s.max(pos);
                let to = e.min(pos + len);
                let first = plan.parts.len();
                plan.parts.push(Part {
                    at: (from - pos) as u32,
                    len: (to - from) as u32,
                    offset: from,
                });
                plan.extents.push(Extent {
                    file: 0,
                    offset: pos,
                    len: len as u32,
                    first,
                    end: first + 1,
                });
                pos += len;
            }
        }
        plan
    }

    /// Adds `other`, a plan of file `file`, after this plan's reads: a plan over several files, whose
    /// reads are in flight together (each extent stays within its file).
    pub(crate) fn append(&mut self, other: Plan, file: u32) {
        let base = self.parts.len();
        self.parts.extend(other.parts);
        self.extents
            .extend(other.extents.into_iter().map(|x| Extent {
                file,
                first: x.first + base,
                end: x.end + base,
                ..x
            }));
    }

    /// The parts extent `k` hands over.
    pub(crate) fn parts_of(&self, k: usize) -> &[Part] {
        let x = &self.extents[k];
        &self.parts[x.first..x.end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `plan` from `data` as the engine would (pread semantics: short at the end), and returns
    /// what each part hands over, in order.
    fn deliver(plan: &Plan, data: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for (k, x) in plan.extents.iter().enumerate() {
            let from = (x.offset as usize).min(data.len());
            let to = (x.offset as usize + x.len as usize).min(data.len());
            let buf = &data[from..to];
            for p in plan.parts_of(k) {
                let a = (p.at as usize).min(buf.len());
                let b = (p.at as usize + p.len as usize).min(buf.len());
                if b > a {
                    out.push((p.offset, buf[a..b].to_vec()));
                }
            }
        }
        out
    }

    fn expect(ranges: &[ByteRange], data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for r in ranges {
            let a = (r.offset as usize).min(data.len());
            let b = (r.end() as usize).min(data.len());
            v.extend_from_slice(&data[a..b]);
        }
        v
    }

    #[test]
    fn every_shape_delivers_the_files_bytes_in_request_order() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 31 + i / 97) as u8).collect();
        let len = data.len() as u64;
        let ranges: Vec<ByteRange> = [
            (0, 1),
            (len - 1, 1),
            (4090, 20),
            (4000, 9000),
            (100, 10),
            (100, 10),
            (105, 30),
            (7, 0),
            (len - 10, 100),
            (len + 5, 10),
            (8192, 8192),
            (0, len),
        ]
        .into_iter()
        .map(ByteRange::from)
        .collect();
        for (max, align) in [
            (4096, 1),
            (8192, 1),
            (8192, 512),
            (4096, 4096),
            (65536, 4096),
        ] {
            for gap in [None, Some(0), Some(5000)] {
                let plan = Plan::new(&ranges, max, align, gap);
                for x in &plan.extents {
                    assert!(x.len as u64 <= max);
                    assert_eq!(x.offset % align, 0);
                    assert_eq!(x.len as u64 % align, 0);
                }
                let got: Vec<u8> = deliver(&plan, &data)
                    .into_iter()
                    .flat_map(|p| p.1)
                    .collect();
                assert_eq!(
                    got,
                    expect(&ranges, &data),
                    "max {max} align {align} gap {gap:?}"
                );
                for (off, bytes) in deliver(&plan, &data) {
                    assert_eq!(&data[off as usize..off as usize + bytes.len()], &bytes[..]);
                }
            }
        }
    }

    #[test]
    fn close_ranges_merge_and_far_ones_do_not() {
        let r = [
            ByteRange::new(0, 100),
            ByteRange::new(150, 50),
            ByteRange::new(10_000, 5),
        ];
        assert_eq!(Plan::new(&r, 4096, 1, Some(64)).extents.len(), 2);
        assert_eq!(Plan::new(&r, 4096, 1, Some(0)).extents.len(), 3);
        assert_eq!(Plan::new(&r, 4096, 1, None).extents.len(), 3);
        // The maximum read bounds a merge.
        assert_eq!(Plan::new(&r, 128, 1, Some(64)).extents.len(), 3);
    }
}
