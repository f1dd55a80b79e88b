//! Range reads end to end ([`Reader::read`] of a `Source` with ranges), against slices of
//! `std::fs::read` of the same file: every range shape, every backend (io_uring, the `pread(2)`
//! lanes, the synchronous path), buffered and `O_DIRECT`, merged and unmerged, in request and
//! completion order.
//!
//! The file lives on the real disk (under `CARGO_TARGET_TMPDIR`, not tmpfs) so that `O_DIRECT`
//! reaches the device; io_uring cases ask for `Backend::Uring` and fail where it is refused.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

mod common;
use common::random_bytes;
use ringread::processor::from_fn;
use ringread::ranges::{ByteRange, Order, RangeOptions};
use ringread::{Backend, Chunk, Error, ReadOptions, Reader, Source};

/// 3 MiB and a tail that is no multiple of any block size.
const SIZE: usize = (3 << 20) + 1234;

struct Fixture {
    path: PathBuf,
    data: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("ringread-ranges-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, random_bytes(SIZE, 12)).unwrap();
        let data = std::fs::read(&path).unwrap();
        Fixture {
            path,
            data,
            _dir: dir,
        }
    })
}

/// Every shape the issue names: offset 0, the last byte, across chunk and alignment edges,
/// overlapping, duplicate, empty, past the end, longer than a chunk.
fn shapes() -> Vec<ByteRange> {
    let n = SIZE as u64;
    [
        (0, 1),
        (n - 1, 1),
        (0, 4096),
        (4095, 2),
        (4096, 4096),
        (65_535, 3),
        (65_000, 70_000),
        (1_000, 500),
        (1_200, 500),
        (1_200, 500),
        (1_700, 1),
        (77, 0),
        (n - 100, 4096),
        (n, 10),
        (n + 50_000, 4096),
        (1 << 20, 300_000),
        (12_345, 1),
        (0, n + 1),
    ]
    .into_iter()
    .map(ByteRange::from)
    .collect()
}

/// `count` random ranges, 1 byte to 16 KiB, some past the end (deterministic).
fn random_ranges(count: usize, seed: u64) -> Vec<ByteRange> {
    let mut s = seed;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..count)
        .map(|_| {
            let off = next() % (SIZE as u64 + 8192);
            let len = 1 + next() % 16_384;
            ByteRange::new(off, len)
        })
        .collect()
}

fn expected(ranges: &[ByteRange], data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for r in ranges {
        let a = (r.offset as usize).min(data.len());
        let b = (r.end() as usize).min(data.len());
        v.extend_from_slice(&data[a..b]);
    }
    v
}

#[derive(Debug, Clone, Copy)]
struct Case {
    backend: Backend,
    direct: bool,
    chunk: usize,
    depth: usize,
    threads: Option<usize>,
    gap: Option<u64>,
    order: Order,
}

impl Case {
    fn reader(&self) -> Reader {
        let mut b = ReadOptions::builder()
            .backend(self.backend)
            .direct(self.direct)
            .chunk_size(self.chunk)
            .depth(self.depth);
        if let Some(t) = self.threads {
            b = b.threads(t);
        }
        Reader::new(b.build().unwrap())
    }

    fn opts(&self) -> RangeOptions {
        RangeOptions::new().order(self.order).merge_gap(self.gap)
    }
}

/// Reads `ranges` as `case` says and checks every chunk against the file: in request order the
/// concatenation is exactly the ranges' bytes; in completion order each chunk is the file's bytes
/// at its offset, and the chunks are the same (offset, length) multiset as in request order.
fn check(case: Case, reader: &Reader, ranges: &[ByteRange]) {
    let f = fixture();
    let mut got = Vec::new();
    let mut pieces: BTreeMap<(u64, usize), usize> = BTreeMap::new();
    let mut bad = None;
    let mut proc = from_fn(|c: &Chunk<'_>| {
        let at = c.offset() as usize;
        if c.is_empty() || at + c.len() > f.data.len() || f.data[at..at + c.len()] != c[..] {
            bad.get_or_insert((c.offset(), c.len()));
        }
        got.extend_from_slice(c);
        *pieces.entry((c.offset(), c.len())).or_default() += 1;
        Ok(true)
    });
    let summary = reader
        .read(
            Source::path(&f.path)
                .ranges(ranges.to_vec())
                .range_options(case.opts()),
            &mut proc,
        )
        .unwrap_or_else(|e| panic!("{case:?}: {e}"));
    assert_eq!(bad, None, "{case:?}: a chunk differs from the file");
    let want = expected(ranges, &f.data);
    assert_eq!(summary.bytes, want.len() as u64, "{case:?}");
    if case.direct {
        assert!(summary.route.direct, "{case:?}: {:?}", summary.notices);
    }
    match case.order {
        Order::Request => assert!(got == want, "{case:?}: bytes differ in request order"),
        Order::Completion => {
            assert_eq!(got.len(), want.len(), "{case:?}");
            let req = Case {
                order: Order::Request,
                ..case
            };
            let mut in_order: BTreeMap<(u64, usize), usize> = BTreeMap::new();
            let mut p = from_fn(|c: &Chunk<'_>| {
                *in_order.entry((c.offset(), c.len())).or_default() += 1;
                Ok(true)
            });
            reader
                .read(
                    Source::path(&f.path)
                        .ranges(ranges.to_vec())
                        .range_options(req.opts()),
                    &mut p,
                )
                .unwrap();
            assert_eq!(
                pieces, in_order,
                "{case:?}: other pieces than in request order"
            );
        }
    }
}

fn matrix(backend: Backend, ranges: &[ByteRange]) {
    for direct in [false, true] {
        for (chunk, depth, threads) in [(4096, 1, None), (4096, 32, None), (65_536, 8, Some(3))] {
            for gap in [None, Some(0), Some(10_000)] {
                for order in [Order::Request, Order::Completion] {
                    let case = Case {
                        backend,
                        direct,
                        chunk,
                        depth,
                        threads,
                        gap,
                        order,
                    };
                    check(case, &case.reader(), ranges);
                }
            }
        }
    }
}

#[test]
fn every_shape_through_io_uring() {
    matrix(Backend::Uring, &shapes());
}

#[test]
fn every_shape_through_the_pread_lanes() {
    matrix(Backend::Pread, &shapes());
}

#[test]
fn every_shape_through_the_synchronous_path() {
    matrix(Backend::Sync, &shapes());
}

#[test]
fn ten_thousand_random_ranges_on_every_backend() {
    let ranges = random_ranges(10_000, 0x5EED);
    for backend in [Backend::Uring, Backend::Pread, Backend::Sync] {
        for direct in [false, true] {
            for gap in [None, Some(0)] {
                for order in [Order::Request, Order::Completion] {
                    let case = Case {
                        backend,
                        direct,
                        chunk: 16_384,
                        depth: 64,
                        threads: None,
                        gap,
                        order,
                    };
                    check(case, &case.reader(), &ranges);
                }
            }
        }
    }
}

#[test]
fn a_reader_is_reused_across_calls_and_with_whole_files() {
    let f = fixture();
    let case = Case {
        backend: Backend::Uring,
        direct: false,
        chunk: 4096,
        depth: 16,
        threads: None,
        gap: Some(0),
        order: Order::Request,
    };
    let reader = case.reader();
    for seed in 1..4 {
        check(case, &reader, &random_ranges(500, seed));
        let mut n = 0u64;
        reader
            .read(
                &f.path,
                &mut from_fn(|c: &Chunk<'_>| {
                    n += c.len() as u64;
                    Ok(true)
                }),
            )
            .unwrap();
        assert_eq!(n, SIZE as u64);
    }
}

#[test]
fn nothing_asked_nothing_read() {
    let f = fixture();
    let reader = Reader::new(ReadOptions::default());
    let mut calls = 0;
    let s = reader
        .read(
            Source::path(&f.path).ranges(vec![
                ByteRange::new(5, 0),
                ByteRange::new(SIZE as u64 + 1, 100),
            ]),
            &mut from_fn(|_: &Chunk<'_>| {
                calls += 1;
                Ok(true)
            }),
        )
        .unwrap();
    assert_eq!((s.bytes, calls), (0, 0));
    let s = reader
        .read(
            Source::path(&f.path).ranges(Vec::<ByteRange>::new()),
            &mut from_fn(|_: &Chunk<'_>| Ok(true)),
        )
        .unwrap();
    assert_eq!(s.bytes, 0);
}

#[test]
fn the_processor_stops_and_fails_at_a_ranges_offset() {
    let f = fixture();
    let reader = Reader::new(
        ReadOptions::builder()
            .chunk_size(4096)
            .depth(8)
            .build()
            .unwrap(),
    );
    let ranges: Vec<ByteRange> = (0..100).map(|i| ByteRange::new(i * 10_000, 100)).collect();
    let mut seen = 0;
    let s = reader
        .read(
            Source::path(&f.path).ranges(ranges.to_vec()),
            &mut from_fn(|_: &Chunk<'_>| {
                seen += 1;
                Ok(seen < 10)
            }),
        )
        .unwrap();
    assert_eq!((seen, s.bytes), (10, 1000));
    let err = reader
        .read(
            Source::path(&f.path).ranges(ranges.to_vec()),
            &mut from_fn(|c: &Chunk<'_>| {
                if c.offset() == 50_000 {
                    Err(io::Error::other("no room"))
                } else {
                    Ok(true)
                }
            }),
        )
        .unwrap_err();
    match err {
        Error::Process {
            offset, ref path, ..
        } => {
            assert_eq!(offset, 50_000);
            assert_eq!(path, &f.path);
        }
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn a_pipe_has_no_ranges() {
    let (r, _w) = common::pipe(0);
    let reader = Reader::new(ReadOptions::default());
    let err = reader
        .read(
            Source::file(r, "pipe").ranges(vec![ByteRange::new(0, 1)]),
            &mut from_fn(|_: &Chunk<'_>| Ok(true)),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
    assert!(err.to_string().contains("pipe"), "{err}");
}

#[test]
fn auto_reads_a_cached_file_with_pread_lanes_and_direct_with_io_uring() {
    let f = fixture();
    // The file was just read whole (std::fs::read): it is in the page cache.
    let _ = std::fs::read(&f.path).unwrap();
    let ranges = random_ranges(200, 9);
    let mut n = 0u64;
    let mut count = from_fn(|c: &Chunk<'_>| {
        n += c.len() as u64;
        Ok(true)
    });
    let auto = Reader::new(
        ReadOptions::builder()
            .chunk_size(4096)
            .depth(16)
            .build()
            .unwrap(),
    );
    let s = auto
        .read(Source::path(&f.path).ranges(ranges.to_vec()), &mut count)
        .unwrap();
    assert_eq!(s.route.engine, ringread::Engine::Pread, "{}", s.route);
    let direct = Reader::new(
        ReadOptions::builder()
            .chunk_size(4096)
            .depth(16)
            .direct(true)
            .build()
            .unwrap(),
    );
    let s = direct
        .read(Source::path(&f.path).ranges(ranges.to_vec()), &mut count)
        .unwrap();
    assert_eq!(s.route.engine, ringread::Engine::Uring, "{}", s.route);
    assert!(s.route.direct);
    assert_eq!(n, 2 * expected(&ranges, &f.data).len() as u64);
}

/// Options left to the reader: range reads the size of the median range, as many in flight as the
/// default budget holds (random 4 KiB ranges: 4 KiB reads, 128 in flight); options given are used
/// as given. Either way the bytes are the file's.
#[test]
fn default_options_read_small_ranges_deep_and_given_ones_as_given() {
    let f = fixture();
    let ranges = random_ranges(2000, 77)
        .into_iter()
        .map(|r| ByteRange::new(r.offset, 4096))
        .collect::<Vec<_>>();
    let want = expected(&ranges, &f.data);
    for (reader, chunk, buffers) in [
        (Reader::new(ReadOptions::default()), 4096, 128),
        (
            Reader::new(ReadOptions::builder().depth(8).build().unwrap()),
            ringread::options::DEFAULT_CHUNK_SIZE,
            8,
        ),
    ] {
        let mut got = Vec::new();
        let s = reader
            .read(
                Source::path(&f.path).ranges(ranges.to_vec()),
                &mut from_fn(|c: &Chunk<'_>| {
                    got.extend_from_slice(c);
                    Ok(true)
                }),
            )
            .unwrap();
        assert!(got == want, "bytes differ");
        assert_eq!(s.route.chunk_size, chunk, "{}", s.route);
        // 2,000 ranges in request order: the whole depth, over a lane per CPU.
        assert_eq!(s.route.buffers, buffers, "{}", s.route);
    }
    // Long ranges: the default chunk size and depth.
    let long = [ByteRange::new(0, 1 << 20), ByteRange::new(2 << 20, 1 << 20)];
    let s = Reader::new(ReadOptions::default())
        .read(
            Source::path(&f.path).ranges(long.to_vec()),
            &mut from_fn(|_| Ok(true)),
        )
        .unwrap();
    assert_eq!(
        s.route.chunk_size,
        ringread::options::DEFAULT_CHUNK_SIZE,
        "{}",
        s.route
    );
}

/// Request order at any number of ranges only adds reordering: 100,000 random 4 KiB ranges are
/// handed over in order, each lane delivering a block of pieces per turn. Passing the turn between
/// lanes at every piece (a wake-up of the other lane each time) made request order 17x slower than
/// completion order from 32,768 ranges on; here the lanes may take turns at most once every 4
/// pieces (the block is a quarter of a lane's depth: 16 at the default depth over 2 lanes).
#[test]
fn a_hundred_thousand_ranges_in_request_order_take_turns_by_blocks() {
    let f = fixture();
    let ranges: Vec<ByteRange> = random_ranges(100_000, 2323)
        .into_iter()
        .map(|r| ByteRange::new(r.offset.min(SIZE as u64 - 4096), 4096))
        .collect();
    let want = expected(&ranges, &f.data);
    for backend in [Backend::Auto, Backend::Uring, Backend::Pread] {
        let reader = Reader::new(
            ReadOptions::builder()
                .backend(backend)
                .chunk_size(4096)
                .depth(128)
                .build()
                .unwrap(),
        );
        let mut got = Vec::with_capacity(want.len());
        let (mut last, mut turns, mut pieces) = (None, 0usize, 0usize);
        let s = reader
            .read(
                Source::path(&f.path)
                    .ranges(ranges.to_vec())
                    .range_options(RangeOptions::new().order(Order::Request).merge_gap(None)),
                &mut from_fn(|c: &Chunk<'_>| {
                    got.extend_from_slice(c);
                    let me = std::thread::current().id();
                    turns += usize::from(last.is_some_and(|t| t != me));
                    last = Some(me);
                    pieces += 1;
                    Ok(true)
                }),
            )
            .unwrap();
        assert!(got == want, "{backend:?}: bytes differ");
        assert_eq!(pieces, ranges.len(), "{backend:?}");
        assert!(
            turns * 4 <= pieces,
            "{backend:?}: the lanes took turns {turns} times over {pieces} pieces ({})",
            s.route
        );
        if s.route.threads > 1 {
            assert!(
                turns > 0,
                "{backend:?}: {} lanes never took turns",
                s.route.threads
            );
        }
    }
}
