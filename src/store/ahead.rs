//! Reading ahead of the caller: a long range the page cache lacks is asked of the device at once
//! ([`ask_ahead`]), and the ranges of a call that repeats the call before it one step further on
//! (a Parquet scan reading the same columns of one row group after another) tell the next call's,
//! which are asked of the device while this call's bytes are read and decoded ([`Stride`]).
//!
//! A query engine reads a Parquet file one `get_ranges` call per row group, and decodes each
//! call's bytes before it asks for the next: from a cold cache the device gets one call's reads at
//! a time per file, idle while the engine decodes. Asked ahead, the next row group's column chunks
//! are on their way, or cached, when the engine asks for them.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use crate::stream::RangeFile;

/// Where the page cache lacks part of `len` bytes at `start`, asks the kernel to read all of it now
/// (`POSIX_FADV_WILLNEED`: the device gets the whole range at once, where a read's own readahead
/// would ask for it a window at a time); the reads that follow find it cached or on its way.
/// Returns whether the cache lacked part of it.
pub(crate) fn ask_ahead(file: &File, start: u64, len: u64) -> bool {
    let lacking = crate::residency::of_range(file, start, len).map_or(true, |r| r.cached < r.len);
    if lacking {
        // SAFETY: posix_fadvise on a descriptor `file` owns; no memory is passed. Advice only:
        // its failure changes nothing but speed.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                start as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            )
        };
    }
    lacking
}

/// Asks `ranges` of `file` ahead ([`ask_ahead`]) where its reads go through the page cache (not
/// under `O_DIRECT`, which the page cache would not serve).
pub(crate) fn ask_ahead_of(file: &RangeFile, ranges: Vec<Range<u64>>) {
    if file.direct() {
        return;
    }
    for r in ranges {
        ask_ahead(file.file(), r.start, r.end - r.start);
    }
}

/// Bytes a predicted range is widened by at each end, at least: the next row group's column
/// chunks are about, not exactly, where this one's step puts them.
const PAD: u64 = 4096;

/// Ranges closer than this are taken as one (a column chunk's pages, with their headers between):
/// calls are compared, and asked ahead, by these clusters, whose lengths vary less from one row
/// group to the next than those of single pages do.
const CLUSTER_GAP: u64 = 64 << 10;

/// The last calls of one file: their ranges (non-empty, sorted by offset), and the step from the
/// call before the last to the last, range by range.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stride {
    last: Vec<Range<u64>>,
    step: Vec<u64>,
}

impl Stride {
    /// Takes a call's ranges as [`clusters`]. If they are the last call's moved forward, each by
    /// about the step the last call moved them by (each within an eighth of its length, or
    /// [`PAD`]), the ranges the next call would ask for if it moved on the same way, widened by
    /// how much the steps and lengths varied, merged where they touch, and clipped to `size`.
    /// Otherwise none: one step alone (a random read that happens to lie ahead) is never enough.
    pub(crate) fn next(&mut self, now: Vec<Range<u64>>, size: u64) -> Vec<Range<u64>> {
        let step = steps(&self.last, &now);
        let mut ahead = Vec::new();
        if let Some(step) = &step {
            if step.len() == self.step.len() {
                for ((r, (&s, &before)), last) in
                    now.iter().zip(step.iter().zip(&self.step)).zip(&self.last)
                {
                    let len = r.end - r.start;
                    let slack = (len / 8).max(PAD);
                    if s.abs_diff(before) > slack || len.abs_diff(last.end - last.start) > slack {
                        ahead.clear();
                        break;
                    }
                    let pad = PAD + s.abs_diff(before) + len.abs_diff(last.end - last.start);
                    let start = r.start.saturating_add(s).saturating_sub(pad);
                    let end = r.end.saturating_add(s).saturating_add(pad).min(size);
                    if start < end {
                        ahead.push(start..end);
                    }
                }
            }
        }
        self.step = step.unwrap_or_default();
        self.last = now;
        ahead.sort_by_key(|r| r.start);
        merge(ahead, 0)
    }
}

/// A call's `ranges` as [`Stride`] compares them: empty ones left out, sorted by offset, those
/// less than [`CLUSTER_GAP`] apart made one.
pub(crate) fn clusters(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut now: Vec<Range<u64>> = ranges.iter().filter(|r| r.end > r.start).cloned().collect();
    now.sort_by_key(|r| (r.start, r.end));
    merge(now, CLUSTER_GAP)
}

/// The step from `before` to `now`, range by range: as many ranges, each moved forward (none back,
/// none staying).
fn steps(before: &[Range<u64>], now: &[Range<u64>]) -> Option<Vec<u64>> {
    if before.is_empty() || before.len() != now.len() {
        return None;
    }
    before
        .iter()
        .zip(now)
        .map(|(b, n)| n.start.checked_sub(b.start).filter(|&s| s > 0))
        .collect()
}

/// `ranges` (sorted by start) with those less than `gap` bytes apart made one.
fn merge(ranges: Vec<Range<u64>>, gap: u64) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(gap) => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The [`Stride`]s of the files a store (or a reader) reads, by path and by the number of
/// clusters of a call: a scan that reads a filter's column in one call and the other columns'
/// pages in the next, row group after row group, has two strides in one file. At most
/// [`Strides::MAX`] are remembered: past that the memory starts again from nothing.
#[derive(Debug, Default)]
pub(crate) struct Strides(Mutex<HashMap<(String, usize), Stride>>);

impl Clone for Strides {
    fn clone(&self) -> Strides {
        Strides(Mutex::new(
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        ))
    }
}

impl Strides {
    /// Strides remembered at most.
    const MAX: usize = 1024;
    /// Ranges in a call, at most, for the call to be compared and remembered.
    const MAX_RANGES: usize = 4096;

    /// [`Stride::next`] of the call of `ranges` to the file `name` of `size` bytes.
    pub(crate) fn next(&self, name: &str, ranges: &[Range<u64>], size: u64) -> Vec<Range<u64>> {
        // A call of more ranges than a row group's pages (a random sample, say) is not a scan's
        // step, and remembering it would cost its size for every file.
        if ranges.len() > Self::MAX_RANGES {
            return Vec::new();
        }
        let now = clusters(ranges);
        if now.is_empty() {
            return Vec::new();
        }
        let mut strides = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (name.to_owned(), now.len());
        if strides.len() >= Self::MAX && !strides.contains_key(&key) {
            strides.clear();
        }
        strides.entry(key).or_default().next(now, size)
    }
}

#[cfg(test)]
// Calls of one range are slices of one range here, not ranges meant as lists.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn call(s: &mut Stride, ranges: &[Range<u64>], size: u64) -> Vec<Range<u64>> {
        s.next(clusters(ranges), size)
    }

    /// Three column chunks of a row group, `k` row groups on, sizes varying a little.
    fn row_group(k: u64) -> Vec<Range<u64>> {
        let at = 494_303 + k * 1_513_743 + (k % 3) * 16;
        vec![
            at..at + 494_299,
            at + 494_299..at + 519_721,
            at + 519_721..at + 979_200 + (k % 2) * 40,
        ]
    }

    #[test]
    fn a_scan_of_row_groups_is_asked_ahead_from_its_third_call() {
        let mut s = Stride::default();
        assert!(call(&mut s, &row_group(0), u64::MAX).is_empty());
        assert!(
            call(&mut s, &row_group(1), u64::MAX).is_empty(),
            "one step is not enough"
        );
        for k in 2..20 {
            let ahead = call(&mut s, &row_group(k), u64::MAX);
            assert_eq!(ahead.len(), 1, "touching ranges merged: {ahead:?}");
            let next = row_group(k + 1);
            assert!(
                ahead[0].start <= next[0].start && ahead[0].end >= next[2].end,
                "{ahead:?} covers {next:?}"
            );
            assert!(ahead[0].end - ahead[0].start < next[2].end - next[0].start + (64 << 10));
        }
    }

    /// A projection read page by page: many ranges a column, page sizes varying from one row
    /// group to the next; the columns' clusters keep their place and size.
    #[test]
    fn pages_of_column_chunks_are_asked_ahead_by_chunk() {
        let pages = |k: u64| -> Vec<Range<u64>> {
            let base = k * 1_513_743;
            let mut out = Vec::new();
            for (col, at) in [(0u64, 4u64), (1, 988_602), (2, 1_473_491)] {
                let mut p = base + at;
                for j in 0..10 {
                    let len = 8_000 + ((k * 7 + j * 13 + col) % 5) * 900;
                    out.push(p..p + len);
                    p += len + 100;
                }
            }
            out
        };
        let mut s = Stride::default();
        call(&mut s, &pages(0), u64::MAX);
        call(&mut s, &pages(1), u64::MAX);
        let ahead = call(&mut s, &pages(2), u64::MAX);
        assert_eq!(ahead.len(), 3, "{ahead:?}");
        for (a, chunk) in ahead.iter().zip(merge(pages(3), CLUSTER_GAP)) {
            assert!(
                a.start <= chunk.start && a.end >= chunk.end,
                "{a:?} covers {chunk:?}"
            );
        }
    }

    #[test]
    fn random_ranges_and_changed_shapes_are_not_asked_ahead() {
        let mut s = Stride::default();
        let mut x = 7u64;
        for _ in 0..1000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (x >> 20) % (2 << 30);
            assert!(call(&mut s, &[at..at + 4096], 2 << 30).is_empty());
        }
        // A steady step, then a range more: nothing until the new shape has stepped twice.
        let mut s = Stride::default();
        for k in 0..3 {
            call(&mut s, &[k * 1_000_000..k * 1_000_000 + 5000], u64::MAX);
        }
        let three = |k: u64| {
            let at = k * 1_000_000;
            [at..at + 5000, at + 200_000..at + 210_000]
        };
        assert!(call(&mut s, &three(3), u64::MAX).is_empty());
        assert!(call(&mut s, &three(4), u64::MAX).is_empty());
        assert_eq!(call(&mut s, &three(5), u64::MAX).len(), 2);
        // Backwards, or the same place again: nothing.
        assert!(call(&mut s, &three(4), u64::MAX).is_empty());
        assert!(call(&mut s, &three(4), u64::MAX).is_empty());
    }

    #[test]
    fn what_is_asked_ahead_stops_at_the_end_of_the_file() {
        let mut s = Stride::default();
        for k in 0..3 {
            call(&mut s, &[k * 1000..k * 1000 + 500], 3200);
        }
        assert_eq!(call(&mut s, &[3000..3500], 3200), vec![0..3200]);
        let mut s = Stride::default();
        for k in 0..3 {
            call(&mut s, &[k * 100_000..k * 100_000 + 500], 350_000);
        }
        assert!(call(&mut s, &[300_000..300_500], 350_000).is_empty());
        // Ranges at the top of the offsets (a reader's caller may ask anything): no overflow.
        let mut s = Stride::default();
        for k in (1..4).rev() {
            let at = u64::MAX - k * 1000;
            call(&mut s, &[at..at + 100], u64::MAX);
        }
        // The last step is 900 where the one before was 1000: widened by the 100 it varied.
        let ahead = call(&mut s, &[u64::MAX - 100..u64::MAX], u64::MAX);
        assert_eq!(ahead, vec![u64::MAX - 4196..u64::MAX]);
    }

    /// A filter's column in one call, the other columns' pages in the next, row group after row
    /// group: each kind of call is asked ahead on its own.
    #[test]
    fn two_kinds_of_calls_taking_turns_each_have_their_stride() {
        let strides = Strides::default();
        let filter = |k: u64| [k * 1_500_000 + 1_000_000..k * 1_500_000 + 1_450_000];
        let others = |k: u64| {
            let at = k * 1_500_000;
            [at..at + 400_000, at + 1_460_000..at + 1_480_000]
        };
        for k in 0..2 {
            assert!(strides.next("f", &filter(k), u64::MAX).is_empty());
            assert!(strides.next("f", &others(k), u64::MAX).is_empty());
        }
        // A call of many ranges is neither compared nor remembered (the turns go on).
        let many: Vec<Range<u64>> = (0..5000u64).map(|i| i * 8192..i * 8192 + 100).collect();
        assert!(strides.next("f", &many, u64::MAX).is_empty());
        assert_eq!(strides.0.lock().unwrap().len(), 2);
        for k in 2..10 {
            assert_eq!(strides.next("f", &filter(k), u64::MAX).len(), 1);
            assert_eq!(strides.next("f", &others(k), u64::MAX).len(), 2);
            // Another file has a stride of its own, from its third call.
            let g = strides.next("g", &filter(k), u64::MAX);
            assert_eq!(g.len(), usize::from(k >= 4), "{k}: {g:?}");
        }
    }
}
