//! Self-tuning: the reading options for one file, chosen from its size and how much of it is in
//! the page cache, when the caller left them to the reader ([`ReadOptions::self_tuning`]).
//!
//! Measured on this project's machine (docs/BENCHMARKS.md): from the page cache the defaults
//! (256 KiB chunks, 4 in flight, a lane per CPU) copy as fast as anything, and bigger buffers
//! only fall out of the CPU caches; from the device, a cold file read in 1 MiB chunks with 16 in
//! flight took 0.55-0.82x the time of the defaults, which leave the device idle between requests.
//!
//! [`ReadOptions::self_tuning`]: crate::ReadOptions::self_tuning

/// What a file is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// The reader's options as they are.
    AsGiven,
    /// Mostly not cached and large: bigger reads, more of them in flight.
    Cold,
    /// (Almost) wholly cached: processed in place, from a mapping, without a copy.
    InPlace,
}

/// Files smaller than this are read as given: a few requests, nothing to overlap.
pub(crate) const COLD_MIN_SIZE: u64 = 32 << 20;
/// Below this share in the page cache a file counts as cold.
pub(crate) const COLD_BELOW: f64 = 0.5;
/// The cold profile's chunk size.
pub(crate) const COLD_CHUNK: usize = 1 << 20;
/// The cold profile's reads in flight.
pub(crate) const COLD_DEPTH: usize = 16;

/// Files smaller than this are copied even when in place is allowed: mapping and unmapping
/// cost more than copying a few chunks.
pub(crate) const IN_PLACE_MIN_SIZE: u64 = 1 << 20;
/// At least this share must be in the page cache to read in place: a page that is not is read
/// from the device by the lane that touches it, one fault at a time, with nothing in flight.
pub(crate) const IN_PLACE_FROM: f64 = 0.9;

/// The chunk size in place when none was given: with no buffers to keep in the CPU's caches, only
/// the turns between lanes cost, and fewer are better (BLAKE3 of a cached 2 GiB file: see
/// docs/BENCHMARKS.md).
pub(crate) const IN_PLACE_CHUNK: usize = 2 << 20;

/// The profile for a file of `size` bytes of which `cached` (0.0 to 1.0) is in the page cache,
/// when the cold profile may be used (`tuning`) and reading in place may be (`in_place`).
pub(crate) fn choose(size: u64, cached: f64, tuning: bool, in_place: bool) -> Profile {
    if in_place && size >= IN_PLACE_MIN_SIZE && cached >= IN_PLACE_FROM {
        Profile::InPlace
    } else if tuning && size >= COLD_MIN_SIZE && cached < COLD_BELOW {
        Profile::Cold
    } else {
        Profile::AsGiven
    }
}

/// Range reads with the options left to the reader: the most reads in flight (random 4 KiB reads
/// of this machine's disk peak at depth 128: fio's marks in docs/BENCHMARKS.md, "Random access").
pub(crate) const RANGE_MAX_DEPTH: usize = 128;

/// The chunk size and depth for range reads whose options the reader chooses, from the ranges'
/// lengths: each read the size of the median range (a power of two from 4 KiB to the default chunk
/// size; longer ranges are read in several), and as many in flight as the default options' budget
/// holds (`DEFAULT_CHUNK_SIZE * DEFAULT_DEPTH`, 1 MiB), at most [`RANGE_MAX_DEPTH`]. Random 4 KiB
/// ranges thus get 128 reads in flight in 512 KiB, not the whole-file defaults' 4.
pub(crate) fn for_ranges(lens: impl Iterator<Item = u64>) -> (usize, usize) {
    use crate::options::{ALIGN, DEFAULT_CHUNK_SIZE, DEFAULT_DEPTH};
    let mut lens: Vec<u64> = lens.filter(|&l| l > 0).collect();
    let median = if lens.is_empty() {
        DEFAULT_CHUNK_SIZE as u64
    } else {
        let mid = lens.len() / 2;
        *lens.select_nth_unstable(mid).1
    };
    let chunk = (median.min(DEFAULT_CHUNK_SIZE as u64) as usize)
        .next_power_of_two()
        .clamp(ALIGN, DEFAULT_CHUNK_SIZE);
    let depth = (DEFAULT_CHUNK_SIZE * DEFAULT_DEPTH / chunk).clamp(1, RANGE_MAX_DEPTH);
    (chunk, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_reads_are_as_long_as_the_median_range_and_fill_the_budget() {
        assert_eq!(for_ranges([4096; 10].into_iter()), (4096, 128));
        assert_eq!(for_ranges([1, 100, 5000].into_iter()), (4096, 128));
        assert_eq!(for_ranges([10_000, 0, 0, 0].into_iter()), (16384, 64));
        assert_eq!(
            for_ranges([1 << 20, 1 << 20, 1].into_iter()),
            (256 << 10, 4)
        );
        assert_eq!(for_ranges([0u64; 3].into_iter()), (256 << 10, 4));
        assert_eq!(for_ranges(std::iter::empty()), (256 << 10, 4));
    }

    #[test]
    fn cold_only_when_large_and_mostly_uncached() {
        let choose = |size, cached| choose(size, cached, true, false);
        assert_eq!(choose(2 << 30, 0.0), Profile::Cold);
        assert_eq!(choose(COLD_MIN_SIZE, 0.49), Profile::Cold);
        assert_eq!(choose(COLD_MIN_SIZE - 1, 0.0), Profile::AsGiven);
        assert_eq!(choose(2 << 30, 0.5), Profile::AsGiven);
        assert_eq!(choose(2 << 30, 1.0), Profile::AsGiven);
        assert_eq!(choose(0, 0.0), Profile::AsGiven);
    }

    #[test]
    fn in_place_only_when_allowed_large_enough_and_cached() {
        assert_eq!(choose(2 << 30, 1.0, true, true), Profile::InPlace);
        assert_eq!(choose(2 << 30, 1.0, false, true), Profile::InPlace);
        assert_eq!(
            choose(IN_PLACE_MIN_SIZE, 0.9, false, true),
            Profile::InPlace
        );
        assert_eq!(
            choose(IN_PLACE_MIN_SIZE - 1, 1.0, true, true),
            Profile::AsGiven
        );
        assert_eq!(choose(2 << 30, 0.89, false, true), Profile::AsGiven);
        assert_eq!(choose(2 << 30, 1.0, true, false), Profile::AsGiven);
        // Cold and allowed in place: the cold profile.
        assert_eq!(choose(2 << 30, 0.1, true, true), Profile::Cold);
        assert_eq!(choose(2 << 30, 0.1, false, true), Profile::AsGiven);
    }
}
