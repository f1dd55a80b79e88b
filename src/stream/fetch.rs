//! Many ranges of one file at once, for callers that want them all before going on (an object
//! store's `get_ranges`, a Parquet reader's column chunks): [`RangeFile::read_ranges`].
//!
//! The ranges are sorted by offset and planned by the same [`Plan`] as the sync engine's ranges
//! (ranges that overlap, touch or lie within the merge gap share one read; a long range is read in
//! pieces), every read is in flight at once up to [`IN_FLIGHT`], and each range is handed back as
//! [`Bytes`] over the read's buffer, without a copy, in the order asked. Reads are handed over as
//! they complete, in any order (a read that waits for a buffer never waits behind reads done before
//! it that hold theirs). A range read in several pieces is put together in one buffer of its own
//! (one copy). So that what a caller keeps cannot starve the reads still to come, bytes are copied
//! out of the driver's buffers once those handed out hold more than half the driver's budget
//! ([`RangeFile::pressed`]).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};

use super::ranges::RangeFile;
use crate::error::{Error, Result};
use crate::options::ALIGN;
use crate::ranges::{ByteRange, Plan};

/// The longest single read (a read of merged ranges, or one piece of a long range), at most.
const MAX_READ: usize = 4 << 20;

/// From this many reads on, a call spreads its cached reads over the polling thread and the
/// driver's threads.
const SPREAD_FROM: usize = 64;

/// Reads in flight at once for one call, at most.
pub(crate) const IN_FLIGHT: usize = 256;

impl RangeFile {
    /// The bytes of each of `ranges`, in the order given, as [`Bytes`] over the driver's buffers
    /// (no copy): all read at once, up to 256 reads in flight. Ranges that overlap or lie within
    /// `merge_gap` bytes of each other (after sorting by offset) share one read of at most 4 MiB
    /// (`None`: every range is read on its own); a longer range is read in pieces and put together
    /// in a buffer of its own. An empty range gives empty bytes.
    ///
    /// Each range must lie within the file: a range the file ends before (or shrinks before while
    /// it is read) is an [`Error::Read`] naming the offset where the bytes stopped, and the other
    /// ranges are not returned. Once the bytes handed out by the driver hold more than half its
    /// budget, further ranges are copied out of its buffers, so that a caller keeping many results
    /// never stops the driver's reads.
    ///
    /// ```no_run
    /// use ringread::ranges::ByteRange;
    /// # async fn f() -> Result<(), ringread::Error> {
    /// let file = ringread::stream::Driver::global()?.range_file("data.bin")?;
    /// let parts = file
    ///     .read_ranges(&[ByteRange::new(0, 4096), ByteRange::new(1 << 20, 512)], Some(16 << 10))
    ///     .await?;
    /// assert_eq!(parts[1].len(), 512);
    /// # Ok(()) }
    /// ```
    pub async fn read_ranges(
        &self,
        ranges: &[ByteRange],
        merge_gap: Option<u64>,
    ) -> Result<Vec<Bytes>> {
        let mut order: Vec<usize> = (0..ranges.len()).filter(|&i| ranges[i].len > 0).collect();
        order.sort_by_key(|&i| (ranges[i].offset, ranges[i].len));
        let sorted: Vec<ByteRange> = order.iter().map(|&i| ranges[i]).collect();
        let max = MAX_READ.min(self.budget() / 8).max(ALIGN) as u64;
        let plan = Plan::new(&sorted, max, 1, merge_gap);
        let mut out = Out {
            bytes: vec![Bytes::new(); ranges.len()],
            owner: owners(&plan, &sorted),
            sorted: &sorted,
            order: &order,
            joins: HashMap::new(),
        };
        let extents: Vec<(u64, usize)> = plan
            .extents
            .iter()
            .map(|x| (x.offset, x.len as usize))
            .collect();
        // Of many reads, the driver's threads take their share even of cached ones (with `t`
        // threads, `t` of every `t + 1` reads): they copy on the other CPUs while this task
        // copies the rest on its own.
        let share = (extents.len() >= SPREAD_FROM).then(|| self.threads() + 1);
        // Once a read failed, no more are started; those in flight are waited for, so that the
        // error told is the first read's (by offset) that failed.
        let stop = AtomicBool::new(false);
        let mut failed: Option<(usize, Error)> = None;
        // Each read is handed over as it completes, in any order: a read waiting for a buffer
        // must never wait behind reads that hold theirs until it is done (with every buffer out
        // to reads done but not handed over, none would come back).
        let mut reads = stream::iter(
            extents
                .into_iter()
                .enumerate()
                .take_while(|_| !stop.load(Ordering::Relaxed)),
        )
        .map(|(k, (offset, len))| {
            let read = if share.is_some_and(|t| k % t != 0) {
                self.read_at_elsewhere(offset, len)
            } else {
                self.read_at(offset, len)
            };
            async move { (k, read.await) }
        })
        .buffer_unordered(IN_FLIGHT);
        while let Some((k, got)) = reads.next().await {
            // After a failure only reads before it matter (one of them may fail too).
            if failed.as_ref().is_some_and(|(at, _)| k > *at) {
                continue;
            }
            if let Err(e) = got.and_then(|bytes| self.hand_over(&plan, k, &bytes, &mut out)) {
                stop.store(true, Ordering::Relaxed);
                failed = Some((k, e));
            }
        }
        match failed {
            Some((_, e)) => Err(e),
            None => Ok(out.bytes),
        }
    }

    /// Hands over what read `k` of `plan` brought (`bytes`) to the ranges it holds: without a copy
    /// while the driver is not pressed ([`RangeFile::pressed`]); a range read in pieces is put
    /// together in a buffer of its own.
    fn hand_over(&self, plan: &Plan, k: usize, bytes: &Bytes, out: &mut Out<'_>) -> Result<()> {
        let copy = self.pressed();
        let first = plan.extents[k].first;
        for (p, part) in plan.parts_of(k).iter().enumerate() {
            let (at, len) = (part.at as usize, part.len as usize);
            if bytes.len() < at + len {
                return Err(self.ended(part.offset + bytes.len().saturating_sub(at) as u64));
            }
            let s = out.owner[first + p];
            let range = out.sorted[s];
            let i = out.order[s];
            if part.len as u64 == range.len {
                out.bytes[i] = if copy {
                    Bytes::copy_from_slice(&bytes[at..at + len])
                } else {
                    bytes.slice(at..at + len)
                };
                continue;
            }
            let (buf, filled) = out
                .joins
                .entry(s)
                .or_insert_with(|| (BytesMut::zeroed(range.len as usize), 0));
            let from = (part.offset - range.offset) as usize;
            buf[from..from + len].copy_from_slice(&bytes[at..at + len]);
            *filled += len;
            if *filled == buf.len() {
                if let Some((whole, _)) = out.joins.remove(&s) {
                    out.bytes[i] = whole.freeze();
                }
            }
        }
        Ok(())
    }

    /// The error of a range the file ends before, at `offset`.
    fn ended(&self, offset: u64) -> Error {
        Error::Read {
            path: self.path().to_path_buf(),
            offset,
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ends (or shrank) before the range asked for",
            ),
        }
    }
}

/// Where the reads of one `read_ranges` call go.
struct Out<'a> {
    /// The ranges' bytes, in the order asked.
    bytes: Vec<Bytes>,
    /// Of each part of the plan, the range (among the sorted ones) it belongs to.
    owner: Vec<usize>,
    /// The non-empty ranges, sorted by offset, and where each was asked.
    sorted: &'a [ByteRange],
    order: &'a [usize],
    /// Ranges read in several pieces, being put together: the buffer and the bytes in it so far.
    joins: HashMap<usize, (BytesMut, usize)>,
}

/// Of each part of `plan` (made of `sorted`), the range it belongs to: the plan hands over the
/// ranges' bytes in order, a range's in one part or in several that follow each other.
fn owners(plan: &Plan, sorted: &[ByteRange]) -> Vec<usize> {
    let mut owner = Vec::with_capacity(plan.parts.len());
    let (mut range, mut got) = (0, 0u64);
    for part in &plan.parts {
        owner.push(range);
        got += part.len as u64;
        if got >= sorted[range].len {
            range += 1;
            got = 0;
        }
    }
    owner
}
