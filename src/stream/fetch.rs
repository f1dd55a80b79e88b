//! Many ranges of one file at once, for callers that want them all before going on (an object
//! store's `get_ranges`, a Parquet reader's column chunks): [`RangeFile::read_ranges`].
//!
//! The ranges are sorted by offset and planned by the same [`Plan`] as the sync engine's ranges
//! (ranges that overlap, touch or lie within the merge gap share one read; a long range is read in
//! pieces), every read is in flight at once up to [`IN_FLIGHT`], and each range is handed back as
//! [`Bytes`] over the read's buffer, without a copy, in the order asked. A range read in several
//! pieces is put together in one buffer of its own (one copy). So that what a caller keeps cannot
//! starve the reads still to come, bytes are copied out of the driver's buffers once those handed
//! out hold more than half the driver's budget ([`RangeFile::pressed`]).

use std::io;

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
        let mut out = vec![Bytes::new(); ranges.len()];
        let mut fill = Fill::default();
        let extents: Vec<(u64, usize)> = plan
            .extents
            .iter()
            .map(|x| (x.offset, x.len as usize))
            .collect();
        // Of many reads, the driver's threads take their share even of cached ones (with `t`
        // threads, `t` of every `t + 1` reads): they copy on the other CPUs while this task
        // copies the rest on its own.
        let share = (extents.len() >= SPREAD_FROM).then(|| self.threads() + 1);
        let mut reads = stream::iter(extents.into_iter().enumerate())
            .map(|(k, (offset, len))| {
                let read = if share.is_some_and(|t| k % t != 0) {
                    self.read_at_elsewhere(offset, len)
                } else {
                    self.read_at(offset, len)
                };
                async move { (k, read.await) }
            })
            .buffered(IN_FLIGHT);
        while let Some((k, got)) = reads.next().await {
            let bytes = got?;
            let copy = self.pressed();
            for part in plan.parts_of(k) {
                let (at, len) = (part.at as usize, part.len as usize);
                if bytes.len() < at + len {
                    return Err(self.ended(part.offset + bytes.len().saturating_sub(at) as u64));
                }
                let piece = if copy {
                    Bytes::copy_from_slice(&bytes[at..at + len])
                } else {
                    bytes.slice(at..at + len)
                };
                let i = order[fill.range];
                if let Some(whole) = fill.add(piece, ranges[i].len) {
                    out[i] = whole;
                }
            }
        }
        Ok(out)
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

/// The range being put together from its pieces: which (among the sorted non-empty ranges), and
/// the pieces so far where it has more than one.
#[derive(Default)]
struct Fill {
    range: usize,
    parts: Option<BytesMut>,
}

impl Fill {
    /// Adds the next piece of the current range (`len` bytes in all): the range's bytes once it is
    /// whole (then the next range is current).
    fn add(&mut self, piece: Bytes, len: u64) -> Option<Bytes> {
        let whole = match self.parts.take() {
            None if piece.len() as u64 == len => piece,
            None => {
                let mut parts = BytesMut::with_capacity(len as usize);
                parts.extend_from_slice(&piece);
                self.parts = Some(parts);
                return None;
            }
            Some(mut parts) => {
                parts.extend_from_slice(&piece);
                if (parts.len() as u64) < len {
                    self.parts = Some(parts);
                    return None;
                }
                parts.freeze()
            }
        };
        self.range += 1;
        Some(whole)
    }
}
