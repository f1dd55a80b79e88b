//! `Reader::read_each` over a `Source` of inputs each with its own ranges (`Input::ranges`):
//! ranges of many files in one call, reads of every file in flight together, each file's bytes
//! identical to a slice of `std::fs::read`, each file ending on its own.

mod common;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::random_bytes;
use ringread::processor::{from_fn, Processor};
use ringread::ranges::{ByteRange, Order, RangeOptions};
use ringread::{Backend, Chunk, Error, Input, ReadOptions, Reader, Source};

/// `(path, ranges)` pairs read with `opts`, as one source for `Reader::read_each`: each input with
/// its own ranges.
fn ranged<'a, I, P, R>(inputs: I, opts: RangeOptions) -> Source<'a>
where
    I: IntoIterator<Item = (P, R)>,
    I::IntoIter: 'a,
    P: Into<PathBuf> + 'a,
    R: AsRef<[ByteRange]> + 'a,
{
    Source::inputs(
        inputs
            .into_iter()
            .map(|(p, r)| Input::path(p).ranges(r.as_ref().to_vec())),
    )
    .range_options(opts)
}

/// Sizes that straddle the chunk and alignment edges (chunks of 4 KiB and 64 KiB in the matrix).
const SIZES: [usize; 8] = [0, 1, 4095, 4096, 4097, 65_535, 65_537, (1 << 20) + 12_345];

struct Fixture {
    files: Vec<(PathBuf, Vec<u8>)>,
    dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("ringread-ranges-many-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let files = SIZES
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, random_bytes(n, 100 + i as u64)).unwrap();
                (path.clone(), std::fs::read(&path).unwrap())
            })
            .collect();
        Fixture { files, dir }
    })
}

/// The ranges asked of a file of `n` bytes: its first and last byte, edges, overlaps, duplicates,
/// an empty one, past the end, longer than a chunk, and random ones (deterministic by `seed`).
fn ranges_for(n: u64, seed: u64) -> Vec<ByteRange> {
    let mut v: Vec<ByteRange> = [
        (0, 1),
        (n.saturating_sub(1), 1),
        (4095, 2),
        (4096, 4096),
        (100, 50),
        (120, 50),
        (120, 50),
        (7, 0),
        (n.saturating_sub(10), 4096),
        (n + 5, 10),
        (0, n + 1),
    ]
    .into_iter()
    .map(ByteRange::from)
    .collect();
    let mut s = seed | 1;
    for _ in 0..200 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let off = s % (n + 8192);
        let len = 1 + (s >> 20) % 20_000;
        v.push(ByteRange::new(off, len));
    }
    v
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

/// What a file's processor saw: the bytes in arrival order, each chunk's (offset, length), the
/// inputs its chunks were marked with, and any chunk that differs from the file.
#[derive(Default)]
struct Seen {
    data: Vec<u8>,
    pieces: BTreeMap<(u64, usize), usize>,
    inputs: Vec<usize>,
    file: Vec<u8>,
    bad: Option<(u64, usize)>,
    begun: bool,
    finished: bool,
}

impl Processor for Seen {
    fn begin(&mut self) -> io::Result<()> {
        self.begun = true;
        Ok(())
    }
    fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
        let at = c.offset() as usize;
        if c.is_empty() || at + c.len() > self.file.len() || self.file[at..at + c.len()] != c[..] {
            self.bad.get_or_insert((c.offset(), c.len()));
        }
        self.data.extend_from_slice(c);
        *self.pieces.entry((c.offset(), c.len())).or_default() += 1;
        if self.inputs.last() != Some(&c.input()) {
            self.inputs.push(c.input());
        }
        Ok(true)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        Ok(())
    }
}

fn reader(backend: Backend, direct: bool, chunk: usize, depth: usize) -> Reader {
    Reader::new(
        ReadOptions::builder()
            .backend(backend)
            .direct(direct)
            .chunk_size(chunk)
            .depth(depth)
            .build()
            .unwrap(),
    )
}

#[test]
fn every_file_gets_exactly_its_ranges_on_every_backend() {
    let _g = common::shared();
    let f = fixture();
    let asked: Vec<Vec<ByteRange>> = f
        .files
        .iter()
        .enumerate()
        .map(|(i, (_, d))| ranges_for(d.len() as u64, 7 + i as u64))
        .collect();
    for backend in [Backend::Uring, Backend::Pread, Backend::Sync, Backend::Auto] {
        for direct in [false, true] {
            for (chunk, depth) in [(4096, 1), (4096, 64), (65_536, 8)] {
                for gap in [None, Some(0), Some(10_000)] {
                    for order in [Order::Request, Order::Completion] {
                        let case = format!(
                            "{backend:?} direct {direct} chunk {chunk} depth {depth} gap {gap:?} \
                             {order:?}"
                        );
                        let r = reader(backend, direct, chunk, depth);
                        let opts = RangeOptions::new().order(order).merge_gap(gap);
                        let inputs = f.files.iter().zip(&asked).map(|((p, _), a)| (p, a));
                        let mut results = Vec::new();
                        r.read_each(
                            ranged(inputs, opts),
                            |i, _| Seen {
                                file: f.files[i].1.clone(),
                                ..Seen::default()
                            },
                            |done| results.push(done),
                        )
                        .unwrap_or_else(|e| panic!("{case}: {e}"));
                        assert_eq!(results.len(), f.files.len(), "{case}");
                        for (i, done) in results.into_iter().enumerate() {
                            assert_eq!(done.index, i, "{case}: results in input order");
                            assert_eq!(done.path, f.files[i].0, "{case}");
                            let summary = done.result.unwrap_or_else(|e| panic!("{case}: {e}"));
                            let seen = done.processor;
                            let want = expected(&asked[i], &f.files[i].1);
                            assert_eq!(seen.bad, None, "{case}: file {i}: a chunk differs");
                            assert_eq!(summary.bytes, want.len() as u64, "{case}: file {i}");
                            assert!(seen.begun && seen.finished, "{case}: file {i}");
                            if !want.is_empty() {
                                assert_eq!(seen.inputs, [i], "{case}: file {i}: marked input");
                            }
                            if direct {
                                assert!(summary.route.direct, "{case}: {:?}", summary.notices);
                            }
                            match order {
                                Order::Request => {
                                    assert!(seen.data == want, "{case}: file {i}: bytes differ")
                                }
                                Order::Completion => {
                                    assert_eq!(seen.data.len(), want.len(), "{case}: file {i}");
                                    let mut ordered = Seen {
                                        file: f.files[i].1.clone(),
                                        ..Seen::default()
                                    };
                                    r.read(
                                        Source::path(&f.files[i].0)
                                            .ranges(asked[i].to_vec())
                                            .range_options(opts.order(Order::Request)),
                                        &mut ordered,
                                    )
                                    .unwrap();
                                    assert_eq!(
                                        seen.pieces, ordered.pieces,
                                        "{case}: file {i}: other pieces than one by one"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A processor that fails, or asks to stop, at its file's second chunk.
struct EndsAtSecond {
    seen: Seen,
    fail: bool,
    chunks: usize,
}

impl Processor for EndsAtSecond {
    fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
        self.chunks += 1;
        if self.chunks == 2 {
            return if self.fail {
                Err(io::Error::other("refused"))
            } else {
                Ok(false)
            };
        }
        self.seen.process(c)
    }
}

#[test]
fn one_input_failing_ends_that_input_only() {
    let _g = common::shared();
    let f = fixture();
    let good = &f.files[7];
    let fifo = f.dir.path().join("fifo");
    if !fifo.exists() {
        nix_mkfifo(&fifo);
    }
    let ranges = vec![
        ByteRange::new(0, 10),
        ByteRange::new(500_000, 4096),
        ByteRange::new(10_000, 3),
    ];
    let want = expected(&ranges, &good.1);
    let inputs: Vec<(PathBuf, Vec<ByteRange>)> = vec![
        (good.0.clone(), ranges.clone()),
        (f.dir.path().join("missing"), ranges.clone()),
        (f.dir.path().to_path_buf(), ranges.clone()),
        (fifo.clone(), ranges.clone()),
        // The process's memory at address 0: no page there, so the read fails (EIO).
        (PathBuf::from("/proc/self/mem"), ranges.clone()),
        (good.0.clone(), ranges.clone()), // its processor fails at the second range
        (good.0.clone(), ranges.clone()), // its processor asks to stop at the second range
        (good.0.clone(), ranges.clone()),
    ];
    for backend in [Backend::Uring, Backend::Pread, Backend::Sync] {
        for order in [Order::Request, Order::Completion] {
            let r = reader(backend, false, 4096, 16);
            let mut results = Vec::new();
            r.read_each(
                ranged(inputs.clone(), RangeOptions::new().order(order)),
                |i, _| EndsAtSecond {
                    seen: Seen {
                        file: good.1.clone(),
                        ..Seen::default()
                    },
                    fail: i == 5,
                    chunks: if i == 5 || i == 6 { 0 } else { 10 },
                },
                |done| results.push(done),
            )
            .unwrap();
            let case = format!("{backend:?} {order:?}");
            let outcome: Vec<String> = results
                .iter()
                .map(|d| match &d.result {
                    Ok(s) => format!("ok {}", s.bytes),
                    Err(e) => e.to_string(),
                })
                .collect();
            for i in [0, 7] {
                let d = &results[i];
                assert_eq!(
                    d.result.as_ref().map(|s| s.bytes).ok(),
                    Some(want.len() as u64)
                );
                if order == Order::Request {
                    assert!(d.processor.seen.data == want, "{case}: input {i}");
                }
                assert!(d.processor.seen.bad.is_none(), "{case}: input {i}");
            }
            assert!(
                matches!(&results[1].result, Err(Error::Open { path, .. }) if path.ends_with("missing")),
                "{case}: {outcome:?}"
            );
            assert!(
                results[2].result.is_err(),
                "{case}: a directory: {outcome:?}"
            );
            let fifo_err = results[3].result.as_ref().unwrap_err().to_string();
            assert!(fifo_err.contains("offsets"), "{case}: {fifo_err}");
            match &results[4].result {
                Err(Error::Read { path, offset, .. }) => {
                    assert_eq!(path, &PathBuf::from("/proc/self/mem"));
                    // Every range fails there; in request order the first is reported.
                    if order == Order::Request {
                        assert_eq!(*offset, 0, "{case}: the failed read's offset");
                    } else {
                        assert!(
                            ranges.iter().any(|r| r.offset == *offset),
                            "{case}: {offset}"
                        );
                    }
                }
                other => panic!("{case}: /proc/self/mem: {other:?}"),
            }
            match &results[5].result {
                Err(Error::Process { offset, source, .. }) => {
                    assert_eq!(source.to_string(), "refused");
                    if order == Order::Request {
                        assert_eq!(*offset, 500_000, "{case}: the failing range's offset");
                    }
                }
                other => panic!("{case}: failing processor: {other:?}"),
            }
            // Asked to stop: not an error, and nothing after the stop reaches the processor.
            let stopped = &results[6];
            assert!(stopped.result.is_ok(), "{case}: {outcome:?}");
            assert_eq!(stopped.processor.chunks, 2, "{case}: chunks after a stop");
        }
    }
}

fn nix_mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn more_inputs_than_one_group_holds_come_back_whole_and_in_order() {
    let _g = common::shared();
    let f = fixture();
    // 300 inputs: more than the 128 files a group holds.
    let inputs: Vec<(PathBuf, Vec<ByteRange>)> = (0..300)
        .map(|i| {
            let (p, d) = &f.files[i % f.files.len()];
            (p.clone(), ranges_for(d.len() as u64, i as u64))
        })
        .collect();
    let r = reader(Backend::Auto, false, 4096, 32);
    let mut n = 0;
    r.read_each(
        ranged(inputs.iter().map(|(p, a)| (p, a)), RangeOptions::new()),
        |i, _| Seen {
            file: f.files[i % f.files.len()].1.clone(),
            ..Seen::default()
        },
        |done| {
            assert_eq!(done.index, n);
            let want = expected(&inputs[n].1, &f.files[n % f.files.len()].1);
            assert_eq!(done.result.unwrap().bytes, want.len() as u64);
            assert!(done.processor.data == want, "input {n}");
            n += 1;
        },
    )
    .unwrap();
    assert_eq!(n, 300);
}

#[test]
fn nothing_asked_of_any_file_reads_nothing() {
    let _g = common::shared();
    let f = fixture();
    let r = reader(Backend::Auto, false, 4096, 32);
    let mut results = Vec::new();
    let none: Vec<(PathBuf, Vec<ByteRange>)> = Vec::new();
    r.read_each(
        ranged(none, RangeOptions::new()),
        |_, _| Seen::default(),
        |d| results.push(d.index),
    )
    .unwrap();
    assert!(results.is_empty());
    let empty = f.files.iter().map(|(p, _)| (p, Vec::<ByteRange>::new()));
    r.read_each(
        ranged(empty, RangeOptions::new()),
        |_, _| Seen::default(),
        |d| {
            assert_eq!(d.result.unwrap().bytes, 0);
            assert!(d.processor.data.is_empty() && d.processor.finished);
            results.push(d.index);
        },
    )
    .unwrap();
    assert_eq!(results, (0..f.files.len()).collect::<Vec<_>>());
}

#[test]
fn a_processors_panic_reaches_the_caller_and_the_reader_reads_on() {
    let _g = common::shared();
    let f = fixture();
    let r = reader(Backend::Uring, false, 4096, 16);
    let inputs = || {
        f.files
            .iter()
            .map(|(p, d)| (p.clone(), ranges_for(d.len() as u64, 3)))
    };
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.read_each(
            ranged(inputs(), RangeOptions::new()),
            |i, _| {
                from_fn(move |c: &Chunk<'_>| {
                    assert!(!(i == 7 && c.offset() > 0), "boom");
                    Ok(true)
                })
            },
            |_| {},
        )
    }));
    assert!(caught.is_err(), "the panic reached the caller");
    let mut ok = 0;
    r.read_each(
        ranged(inputs(), RangeOptions::new()),
        |_, _| from_fn(|_| Ok(true)),
        |d| ok += usize::from(d.result.is_ok()),
    )
    .unwrap();
    assert_eq!(ok, f.files.len());
}

#[test]
fn auto_reads_a_cached_group_with_pread_lanes_and_an_evicted_one_with_io_uring() {
    let _g = common::shared();
    let f = fixture();
    // Files of their own, so that evicting them disturbs no other test.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let files: Vec<(PathBuf, Vec<u8>)> = (0..40)
        .map(|i| {
            let (_, data) = &f.files[i % f.files.len()];
            let path = dir.path().join(format!("g{i}"));
            std::fs::write(&path, data).unwrap();
            (path, data.clone())
        })
        .collect();
    let r = reader(Backend::Auto, false, 4096, 32);
    let engines = |files: &[(PathBuf, Vec<u8>)]| {
        let mut engines = Vec::new();
        r.read_each(
            ranged(
                files
                    .iter()
                    .map(|(p, d)| (p, ranges_for(d.len() as u64, 3))),
                RangeOptions::new(),
            ),
            |i, _| Seen {
                file: files[i].1.clone(),
                ..Seen::default()
            },
            |done| {
                let want = expected(
                    &ranges_for(files[done.index].1.len() as u64, 3),
                    &files[done.index].1,
                );
                assert!(done.processor.data == want, "input {}", done.index);
                engines.push(done.result.unwrap().route.engine);
            },
        )
        .unwrap();
        engines
    };
    // Just written and read back: cached.
    for (p, _) in &files {
        let _ = std::fs::read(p).unwrap();
    }
    let cached = engines(&files);
    assert!(
        cached.iter().all(|&e| e == ringread::Engine::Pread),
        "{cached:?}"
    );
    // Evicted (written back first, so that the pages can go).
    for (p, _) in &files {
        let file = std::fs::File::open(p).unwrap();
        file.sync_all().unwrap();
        // SAFETY: advice on a descriptor we hold; no memory is passed.
        let rc = unsafe {
            libc::posix_fadvise(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
                0,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        assert_eq!(rc, 0);
    }
    let evicted = engines(&files);
    assert!(
        evicted.iter().all(|&e| e == ringread::Engine::Uring),
        "{evicted:?}"
    );
}
