//! `Reader::read_each` over a list of paths (`Source::paths`) or of open files (`Source::files`):
//! many files in flight, each into its own processor, results in input order, against
//! `std::fs::read`, on every backend, with bad inputs among good ones.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ringread::processor::from_fn;
use ringread::{Backend, Chunk, Error, Finished, Input, ReadOptions, Reader, Source};

/// A processor that keeps every byte and checks the offsets.
#[derive(Default)]
struct Collect(Vec<u8>);

impl ringread::Processor for Collect {
    fn process(&mut self, c: &Chunk<'_>) -> std::io::Result<bool> {
        assert_eq!(c.offset(), self.0.len() as u64, "chunks out of order");
        self.0.extend_from_slice(c);
        Ok(true)
    }
}

/// The inputs: files on every edge of the chunk and of the deferral size, odd names, and bad ones.
fn inputs(dir: &Path, chunk: usize) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let sizes = [
        0,
        1,
        4095,
        4096,
        4097,
        chunk - 1,
        chunk,
        chunk + 1,
        3 * chunk + 17,
        16 * chunk,
        16 * chunk + 1,
        40 * chunk + 5,
    ];
    for (i, size) in sizes.into_iter().enumerate() {
        let p = dir.join(format!("f{i} with space"));
        std::fs::write(&p, common::random_bytes(size, i as u64)).unwrap();
        paths.push(p);
        // Bad inputs between good ones.
        match i {
            2 => paths.push(dir.join("missing")),
            4 => paths.push(dir.to_path_buf()), // a directory
            // A file whose size says 0 and whose reads give bytes (read without a statx first,
            // where no FUSE file system is mounted, as any other).
            5 => paths.push(PathBuf::from("/proc/version")),
            6 => {
                let l = dir.join("loop");
                std::os::unix::fs::symlink(&l, &l).unwrap();
                paths.push(l);
            }
            8 => {
                let odd = dir.join(std::ffi::OsStr::from_bytes(b"new\nline \xff"));
                std::fs::write(&odd, b"odd name").unwrap();
                paths.push(odd);
            }
            _ => {}
        }
    }
    paths
}

fn check(backend: Backend, chunk: usize) {
    check_as(backend, chunk, false);
}

/// `check`, every input given as `Input::regular` (`regular`: read without a statx first, whatever
/// it turns out to be) or as a plain path.
fn check_as(backend: Backend, chunk: usize, regular: bool) {
    let _g = common::shared();
    let dir = tempdir();
    let paths = inputs(dir.path(), chunk);
    // Many rounds of the list, so that more files than slots are in flight and reused.
    let list: Vec<PathBuf> = (0..8).flat_map(|_| paths.clone()).collect();
    let opts = ReadOptions::builder()
        .chunk_size(chunk)
        .backend(backend)
        .build()
        .unwrap();
    let reader = Reader::new(opts);
    let mut seen = 0;
    reader
        .read_each(
            Source::inputs(list.iter().map(|p| {
                if regular {
                    Input::regular(p)
                } else {
                    Input::path(p)
                }
            })),
            |_, _| Collect::default(),
            |f: Finished<Collect>| {
                assert_eq!(f.index, seen, "{backend:?}: out of input order");
                assert_eq!(f.path, list[f.index]);
                seen += 1;
                match std::fs::read(&f.path) {
                    Ok(want) => {
                        let s = f.result.unwrap_or_else(|e| panic!("{backend:?} {e}"));
                        assert_eq!(s.bytes, want.len() as u64);
                        assert!(f.processor.0 == want, "{backend:?}: {:?} differs", f.path);
                    }
                    Err(want) => match f.result {
                        Err(Error::Open { path, source }) => {
                            assert_eq!(path, f.path);
                            assert_eq!(source.raw_os_error(), want.raw_os_error(), "{path:?}");
                        }
                        other => panic!("{backend:?} {:?}: expected {want}, got {other:?}", f.path),
                    },
                }
            },
        )
        .unwrap();
    assert_eq!(seen, list.len());
}

#[test]
fn every_file_in_input_order_through_io_uring() {
    check(Backend::Auto, 64 * 1024);
    check(Backend::Uring, 4096);
}

#[test]
fn inputs_said_to_be_regular_files_read_without_statx_whatever_they_are() {
    // Missing, a directory, a loop, /proc/version among them: the same bytes and errors.
    check_as(Backend::Auto, 64 * 1024, true);
    check_as(Backend::Uring, 4096, true);
    check_as(Backend::Pread, 4096, true);
}

#[test]
fn every_file_in_input_order_one_by_one_and_on_the_thread_pool() {
    check(Backend::Sync, 64 * 1024);
    // pread: the thread pool that stands in for io_uring where it is refused.
    check(Backend::Pread, 16 * 1024);
    check(Backend::Pread, 4096);
}

#[test]
fn max_bytes_and_a_stopping_processor() {
    let _g = common::shared();
    let dir = tempdir();
    let paths = numbered_files(dir.path(), 0..50, |i| i * 3000);
    let opts = ReadOptions::builder()
        .chunk_size(4096)
        .max_bytes(10_000)
        .build()
        .unwrap();
    let reader = Reader::new(opts);
    reader
        .read_each(
            Source::paths(&paths),
            |_, _| Collect::default(),
            |f| {
                let want = std::fs::read(&f.path).unwrap();
                let n = want.len().min(10_000);
                assert_eq!(f.result.unwrap().bytes, n as u64);
                assert!(f.processor.0 == want[..n]);
            },
        )
        .unwrap();
    // A processor that stops at its first chunk (which counts: it was delivered).
    let reader = Reader::new(ReadOptions::builder().chunk_size(4096).build().unwrap());
    reader
        .read_each(
            Source::paths(&paths),
            |_, _| from_fn(|_: &Chunk<'_>| Ok(false)),
            |f| {
                let len = std::fs::metadata(&f.path).unwrap().len();
                assert_eq!(f.result.unwrap().bytes, len.min(4096));
            },
        )
        .unwrap();
}

#[test]
fn a_panicking_processor_leaves_no_descriptor_and_the_reader_reads_on() {
    panicking_processor(Backend::Auto);
    panicking_processor(Backend::Pread);
}

fn panicking_processor(backend: Backend) {
    let _g = common::exclusive();
    let dir = tempdir();
    let paths = numbered_files(dir.path(), 0..200, |i| 1000 + i);
    let reader = Reader::new(ReadOptions::builder().backend(backend).build().unwrap());
    // Set up the reader's ring first, so that its descriptors are not counted as leaked.
    reader
        .read_each(
            Source::paths(&paths[..1]),
            |_, _| Collect::default(),
            |_| {},
        )
        .unwrap();
    let before = common::open_fds();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader.read_each(
            Source::paths(&paths),
            |i, _| {
                from_fn(move |_: &Chunk<'_>| {
                    assert!(i != 77, "processor 77 panics");
                    Ok(true)
                })
            },
            |_| {},
        )
    }));
    let payload = caught.expect_err("the panic reaches the caller");
    let said = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    assert_eq!(said.as_deref(), Some("processor 77 panics"));
    assert_eq!(common::open_fds(), before, "descriptors leaked");
    let mut n = 0;
    reader
        .read_each(
            Source::paths(&paths),
            |_, _| Collect::default(),
            |f| {
                assert!(f.result.is_ok());
                n += 1;
            },
        )
        .unwrap();
    assert_eq!(n, paths.len());
}

#[test]
fn a_cancel_stops_read_each_with_nothing_left_in_flight() {
    let _g = common::exclusive();
    let dir = tempdir();
    let paths = numbered_files(dir.path(), 0..500, |_| 3000);
    let cancel = ringread::Cancel::new().unwrap();
    let mut reader = Reader::new(ReadOptions::default());
    reader.set_cancel(cancel.clone());
    reader
        .read_each(
            Source::paths(&paths[..1]),
            |_, _| Collect::default(),
            |_| {},
        )
        .unwrap();
    let before = common::open_fds();
    let mut released = 0;
    let r = reader.read_each(
        Source::paths(&paths),
        |_, _| Collect::default(),
        |f| {
            released += 1;
            if f.index == 10 {
                cancel.cancel();
            }
        },
    );
    assert!(matches!(r, Err(Error::Interrupted { .. })), "{r:?}");
    assert!(released < paths.len(), "reading went on after the cancel");
    assert_eq!(common::open_fds(), before, "descriptors leaked");
    cancel.reset();
    let mut n = 0;
    reader
        .read_each(Source::paths(&paths), |_, _| Collect::default(), |_| n += 1)
        .unwrap();
    assert_eq!(n, paths.len());
}

/// Files `0`, `1`, ... in `dir`, file `i` of `size(i)` random bytes.
fn numbered_files(
    dir: &Path,
    range: std::ops::Range<usize>,
    size: impl Fn(usize) -> usize,
) -> Vec<PathBuf> {
    range
        .map(|i| {
            let p = dir.join(format!("{i}"));
            std::fs::write(&p, common::random_bytes(size(i), i as u64)).unwrap();
            p
        })
        .collect()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// Readers on every path `read_each` takes: the many-files ring on every lane, on one lane, with a
/// page-sized budget, and without io_uring.
fn many_readers() -> Vec<(String, Reader)> {
    let opts = |chunk: usize, depth: usize, threads: Option<usize>, backend: Backend| {
        let mut b = ReadOptions::builder()
            .chunk_size(chunk)
            .depth(depth)
            .backend(backend);
        if let Some(t) = threads {
            b = b.threads(t);
        }
        Reader::new(b.build().unwrap())
    };
    vec![
        ("auto 64K".into(), opts(64 << 10, 4, None, Backend::Auto)),
        (
            "auto 1 lane".into(),
            opts(64 << 10, 4, Some(1), Backend::Auto),
        ),
        (
            "uring 4K depth 1, 3 lanes".into(),
            opts(4096, 1, Some(3), Backend::Uring),
        ),
        ("sync".into(), opts(64 << 10, 4, None, Backend::Sync)),
    ]
}

/// What happens to input `i` right after its processor is made (so before it is stat'ed or
/// opened: the processor goes with the input into the ring).
fn change_before_open(i: usize, path: &Path) {
    let set_len = |len| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap()
    };
    match i % 8 {
        1 => std::fs::remove_file(path).unwrap(),
        2 => set_len(std::fs::metadata(path).unwrap().len() / 3),
        3 => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(&common::random_bytes(70_001, i as u64))
                .unwrap();
        }
        4 => set_len(0),
        5 => {
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, common::random_bytes(12_345, i as u64 + 1)).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        6 if i % 3 == 0 => {
            std::fs::remove_file(path).unwrap();
            std::fs::create_dir(path).unwrap();
        }
        _ => {}
    }
}

/// Files that vanish, shrink, grow, are emptied, replaced by another file or by a directory after
/// they are listed and before they are opened: each is read as it is when opened, or fails with
/// the error `std::fs::read` gets then; the others are unaffected; results in input order.
#[test]
fn files_changed_between_the_listing_and_the_open_are_read_as_they_are_when_opened() {
    let _g = common::shared();
    let dir = tempdir();
    let paths: Vec<PathBuf> = (0..400)
        .map(|i| dir.path().join(format!("f{i:03}")))
        .collect();
    for (name, reader) in many_readers() {
        for (i, p) in paths.iter().enumerate() {
            if p.is_dir() {
                std::fs::remove_dir(p).unwrap();
            }
            // Some larger than 16 chunks of 64 KiB: the lanes read those.
            let len = if i % 41 == 0 {
                3 << 20
            } else {
                i * 1237 % 200_000
            };
            std::fs::write(p, common::random_bytes(len, i as u64)).unwrap();
        }
        let expected = std::cell::RefCell::new(vec![None; paths.len()]);
        let mut seen = 0;
        reader
            .read_each(
                Source::paths(&paths),
                |i, p| {
                    assert_eq!(p, paths[i], "{name}");
                    let mut e = expected.borrow_mut();
                    assert!(e[i].is_none(), "{name}: input {i} made twice");
                    change_before_open(i, p);
                    e[i] = Some(std::fs::read(p).map_err(|e| e.raw_os_error()));
                    Collect::default()
                },
                |f: Finished<Collect>| {
                    assert_eq!(f.index, seen, "{name}: out of input order");
                    seen += 1;
                    let e = expected.borrow();
                    let want = e[f.index].as_ref().expect("finished before it was made");
                    match (want, &f.result) {
                        (Ok(want), Ok(s)) => {
                            assert_eq!(s.bytes, want.len() as u64, "{name} {:?}", f.path);
                            assert!(f.processor.0 == *want, "{name}: {:?} differs", f.path);
                        }
                        (Err(errno), Err(Error::Open { path, source })) => {
                            assert_eq!(path, &f.path);
                            assert_eq!(source.raw_os_error(), *errno, "{name} {path:?}");
                        }
                        (want, got) => panic!("{name} {:?}: {want:?}, got {got:?}", f.path),
                    }
                },
            )
            .unwrap();
        assert_eq!(seen, paths.len(), "{name}");
    }
}

/// A processor that keeps what it is given and makes a change to its file at its first chunk.
struct ChangeAtFirst {
    got: Vec<u8>,
    change: Option<Box<dyn FnOnce() + Send>>,
}

impl ringread::Processor for ChangeAtFirst {
    fn process(&mut self, c: &Chunk<'_>) -> std::io::Result<bool> {
        assert_eq!(c.offset(), self.got.len() as u64, "chunks out of order");
        self.got.extend_from_slice(c);
        if let Some(change) = self.change.take() {
            change();
        }
        Ok(true)
    }
}

#[derive(Clone, Copy, Debug)]
enum WhileRead {
    Truncate(u64),
    Append,
    Unlink,
    RenamedOver,
    Untouched,
}

/// Files among many that change while they are read, from their processor at their first chunk,
/// both those the many-files ring reads (at most 16 chunks) and those it leaves to the lanes: the
/// rules of tests/changing.rs hold for every one of them. Truncated: what is delivered was in the
/// file, at least up to the cut, and at most the reads in flight past it; grown: read to the new
/// end; unlinked or renamed over: the opened file, whole.
#[test]
fn files_changed_while_read_among_many_follow_the_rules_of_a_single_read() {
    let _g = common::shared();
    let dir = tempdir();
    let tail = common::random_bytes(100_001, 99);
    for (chunk, depth, threads) in [(4096usize, 4usize, 1usize), (64 << 10, 4, 2)] {
        let reader = Reader::new(
            ReadOptions::builder()
                .chunk_size(chunk)
                .depth(depth)
                .threads(threads)
                .build()
                .unwrap(),
        );
        let kinds = [
            WhileRead::Truncate(0),
            WhileRead::Truncate(5_000),
            WhileRead::Truncate(7 * chunk as u64 + 3),
            WhileRead::Append,
            WhileRead::Unlink,
            WhileRead::RenamedOver,
            WhileRead::Untouched,
        ];
        let mut cases = Vec::new();
        for i in 0..140usize {
            // 10 chunks (the ring's slots) or 40 (the lanes).
            let len = if i % 2 == 0 {
                10 * chunk + 11
            } else {
                40 * chunk + 7
            };
            let p = dir.path().join(format!("c{chunk} {i}"));
            let data = common::random_bytes(len, i as u64);
            std::fs::write(&p, &data).unwrap();
            cases.push((p, data, kinds[i / 2 % kinds.len()]));
        }
        let paths: Vec<PathBuf> = cases.iter().map(|c| c.0.clone()).collect();
        let mut seen = 0;
        reader
            .read_each(
                Source::paths(&paths),
                |i, p| {
                    let p = p.to_path_buf();
                    let tail = tail.clone();
                    let other = dir.path().join(format!("other {i}"));
                    let change: Box<dyn FnOnce() + Send> = match cases[i].2 {
                        WhileRead::Truncate(len) => Box::new(move || {
                            std::fs::OpenOptions::new()
                                .write(true)
                                .open(&p)
                                .unwrap()
                                .set_len(len)
                                .unwrap()
                        }),
                        WhileRead::Append => Box::new(move || {
                            use std::io::Write;
                            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
                            f.write_all(&tail).unwrap();
                        }),
                        WhileRead::Unlink => Box::new(move || std::fs::remove_file(&p).unwrap()),
                        WhileRead::RenamedOver => Box::new(move || {
                            std::fs::write(&other, b"another file").unwrap();
                            std::fs::rename(&other, &p).unwrap();
                        }),
                        WhileRead::Untouched => Box::new(|| {}),
                    };
                    ChangeAtFirst {
                        got: Vec::new(),
                        change: Some(change),
                    }
                },
                |f: Finished<ChangeAtFirst>| {
                    assert_eq!(f.index, seen);
                    seen += 1;
                    let (_, original, kind) = &cases[f.index];
                    let what = format!("chunk {chunk}, {kind:?}, {:?}", f.path);
                    let s = f.result.unwrap_or_else(|e| panic!("{what}: {e}"));
                    let got = f.processor.got;
                    assert_eq!(s.bytes, got.len() as u64, "{what}");
                    assert!(f.processor.change.is_none(), "{what}: never read");
                    match kind {
                        WhileRead::Truncate(cut) => {
                            let cut = *cut as usize;
                            assert!(
                                got.len() <= original.len() && got == original[..got.len()],
                                "{what}: bytes that were never in the file"
                            );
                            assert!(got.len() >= cut, "{what}: {} bytes", got.len());
                            assert!(
                                got.len() <= cut.max((depth + 1) * chunk),
                                "{what}: read {} bytes past a cut at {cut}",
                                got.len()
                            );
                        }
                        WhileRead::Append => {
                            let mut want = original.clone();
                            want.extend_from_slice(&tail);
                            assert_eq!(got.len(), want.len(), "{what}");
                            assert!(got == want, "{what}");
                        }
                        _ => {
                            assert_eq!(got.len(), original.len(), "{what}");
                            assert!(got == *original, "{what}");
                        }
                    }
                },
            )
            .unwrap();
        assert_eq!(seen, cases.len());
    }
}

/// A processor that remembers which input it was made for and the longest chunk it got.
struct Tagged {
    index: usize,
    got: Vec<u8>,
    longest: usize,
}

impl ringread::Processor for Tagged {
    fn process(&mut self, c: &Chunk<'_>) -> std::io::Result<bool> {
        assert_eq!(c.offset(), self.got.len() as u64, "chunks out of order");
        self.got.extend_from_slice(c);
        self.longest = self.longest.max(c.len());
        Ok(true)
    }
}

/// A budget of one page (`depth 1 x 4 KiB`) shared by thousands of files, on one lane and on
/// three: every file whole, handed back in input order with the processor made for it (made once,
/// for its own path), no chunk longer than the chunk size.
#[test]
fn a_one_page_budget_and_thousands_of_files_in_input_order() {
    let _g = common::shared();
    let dir = tempdir();
    let paths: Vec<PathBuf> = (0..3000usize)
        .map(|i| {
            let p = dir.path().join(format!("{}/{i}", i % 7));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let len = if i % 500 == 3 {
                200_000
            } else {
                i * 7919 % 20_000
            };
            std::fs::write(&p, common::random_bytes(len, i as u64)).unwrap();
            p
        })
        .collect();
    for threads in [1, 3] {
        let reader = Reader::new(
            ReadOptions::builder()
                .chunk_size(4096)
                .depth(1)
                .threads(threads)
                .build()
                .unwrap(),
        );
        let mut made = vec![0u32; paths.len()];
        let mut seen = 0;
        reader
            .read_each(
                Source::paths(&paths),
                |i, p| {
                    assert_eq!(p, paths[i]);
                    made[i] += 1;
                    Tagged {
                        index: i,
                        got: Vec::new(),
                        longest: 0,
                    }
                },
                |f| {
                    assert_eq!(f.index, seen, "{threads} lanes: out of input order");
                    assert_eq!(f.processor.index, f.index, "another input's processor");
                    assert_eq!(f.path, paths[f.index]);
                    seen += 1;
                    let want = std::fs::read(&f.path).unwrap();
                    assert_eq!(f.result.unwrap().bytes, want.len() as u64);
                    assert!(f.processor.got == want, "{:?} differs", f.path);
                    assert!(f.processor.longest <= 4096, "{}", f.processor.longest);
                },
            )
            .unwrap();
        assert_eq!(seen, paths.len());
        assert!(
            made.iter().all(|&n| n == 1),
            "a processor made twice or never"
        );
    }
}

/// A FIFO among many files is read when its turn comes, from its writer, whole; the files around
/// it are unaffected.
#[test]
fn a_fifo_among_many_files_is_read_in_its_turn() {
    let _g = common::shared();
    let dir = tempdir();
    let mut paths = numbered_files(dir.path(), 0..80, |i| i * 2000);
    let fifo = dir.path().join("fifo");
    common::mkfifo(&fifo);
    paths.insert(40, fifo.clone());
    let data = common::random_bytes(60_000, 7);
    for (name, reader) in many_readers() {
        let writer = common::FifoWriter::start(&fifo, data.clone());
        let mut seen = 0;
        reader
            .read_each(
                Source::paths(&paths),
                |_, _| Collect::default(),
                |f: Finished<Collect>| {
                    assert_eq!(f.index, seen, "{name}");
                    seen += 1;
                    let want = if f.path == fifo {
                        data.clone()
                    } else {
                        std::fs::read(&f.path).unwrap()
                    };
                    let s = f.result.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(s.bytes, want.len() as u64, "{name} {:?}", f.path);
                    assert!(f.processor.0 == want, "{name} {:?}", f.path);
                },
            )
            .unwrap();
        drop(writer);
        assert_eq!(seen, paths.len(), "{name}");
    }
}

/// Files the caller opened: each read from its current position to its end, closed after, in
/// input order, on the ring, on the thread pool and one by one; a directory opened among them says
/// so for itself only.
/// Keeps every byte, and where the first chunk started (chunk offsets are file offsets).
#[derive(Default)]
struct Positioned(Option<u64>, Vec<u8>);

impl ringread::Processor for Positioned {
    fn process(&mut self, c: &Chunk<'_>) -> std::io::Result<bool> {
        let start = *self.0.get_or_insert(c.offset());
        assert_eq!(
            c.offset(),
            start + self.1.len() as u64,
            "chunks out of order"
        );
        self.1.extend_from_slice(c);
        Ok(true)
    }
}

#[test]
fn open_files_are_read_from_their_position_and_closed() {
    use std::io::{Seek, SeekFrom};
    let _g = common::exclusive();
    let dir = tempdir();
    let chunk = 16 * 1024;
    let paths = inputs(dir.path(), chunk);
    for backend in [Backend::Auto, Backend::Pread, Backend::Sync] {
        let opts = ReadOptions::builder()
            .chunk_size(chunk)
            .backend(backend)
            .build()
            .unwrap();
        let reader = Reader::new(opts);
        // Set up the reader first (its rings, its lanes' rings), so that its own descriptors are
        // not counted as leaked.
        reader
            .read_each(Source::paths(&paths), |_, _| Positioned::default(), |_| {})
            .unwrap();
        let before = common::open_fds();
        let mut want = Vec::new();
        let mut files = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let Ok(mut f) = std::fs::File::open(p) else {
                continue;
            };
            let data = std::fs::read(p).ok();
            // Every third file is read from part way in.
            let from = match &data {
                Some(d) if i % 3 == 1 => d.len() / 3,
                _ => 0,
            };
            f.seek(SeekFrom::Start(from as u64)).unwrap();
            want.push(data.map(|d| (from as u64, d[from..].to_vec())));
            files.push((f, p.clone()));
        }
        let mut seen = 0;
        reader
            .read_each(
                Source::files(files),
                |_, _| Positioned::default(),
                |f: Finished<Positioned>| {
                    assert_eq!(f.index, seen, "{backend:?}: out of input order");
                    seen += 1;
                    match &want[f.index] {
                        Some((from, w)) => {
                            let s = f.result.unwrap_or_else(|e| panic!("{backend:?}: {e}"));
                            assert_eq!(s.bytes, w.len() as u64, "{backend:?} {:?}", f.path);
                            assert!(f.processor.1 == *w, "{backend:?}: {:?} differs", f.path);
                            if !w.is_empty() {
                                assert_eq!(f.processor.0, Some(*from), "{backend:?} {:?}", f.path);
                            }
                        }
                        None => assert!(f.result.is_err(), "{backend:?}: {:?}", f.path),
                    }
                },
            )
            .unwrap();
        assert_eq!(seen, want.len());
        assert_eq!(
            common::open_fds(),
            before,
            "{backend:?}: descriptors left open"
        );
    }
}

/// A `done` callback (on the calling thread) that panics: the panic reaches the caller once every
/// run has stopped (the runs waiting for inputs see the end), on the ring's lanes and on the pool,
/// and the reader reads again after.
#[test]
fn a_panicking_done_callback_reaches_the_caller_and_nothing_waits() {
    let _g = common::shared();
    let dir = tempdir();
    let paths = numbered_files(dir.path(), 0..300, |i| 100 + i);
    for backend in [Backend::Auto, Backend::Pread] {
        let reader = Reader::new(ReadOptions::builder().backend(backend).build().unwrap());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reader.read_each(
                Source::paths(&paths),
                |_, _| Collect::default(),
                |f| assert!(f.index != 40, "done panics at 40"),
            )
        }));
        assert!(caught.is_err(), "{backend:?}: the panic reaches the caller");
        let mut n = 0;
        reader
            .read_each(
                Source::paths(&paths),
                |_, _| Collect::default(),
                |f| {
                    assert!(f.result.is_ok());
                    n += 1;
                },
            )
            .unwrap();
        assert_eq!(n, paths.len(), "{backend:?}");
    }
}
