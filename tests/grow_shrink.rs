//! A file that grows or shrinks after the reader took its size gives the same result through every
//! front door (issue 24, item 2): the end of a file is a read that returns 0, on every path. Each
//! case makes the change happen at a known point: after the first chunk reached the processor
//! (`Reader::read`, `read_split`, `read_each` and `read_each_split` of a large file, through the
//! lanes, the `pread(2)` pool, and in place from a mapping of the cached file), after the first
//! chunk was handed out (`Driver::chunks`), or after `statx` and before the read (`Driver::files`,
//! whose read waits for a buffer another task holds).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ringread::processor::{Combine, Prepare};
use ringread::stream::Driver;
use ringread::{Backend, Chunk, Engine, Processor, ReadOptions, Reader, Source, Summary};

mod common;
use common::stream::runtime;
use common::{random_bytes, shared};

const CHUNK: usize = 64 * 1024;

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn shrink(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// `first` written to a new file; the file after `change` ran is what every path must give.
struct Case {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn case(first: &[u8]) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, first).unwrap();
    Case { _dir: dir, path }
}

/// A reader of chunks of [`CHUNK`], two in flight, on `backend` (`Pread`: many files through the
/// pool of threads, one file through the `pread(2)` lanes).
fn reader_on(backend: Backend) -> Reader {
    reader(ReadOptions::builder().backend(backend))
}

/// A reader of chunks of [`CHUNK`], two in flight, that reads cached files in place.
fn in_place() -> Reader {
    reader(ReadOptions::builder().in_place(true))
}

fn reader(b: ringread::ReadOptionsBuilder) -> Reader {
    Reader::new(b.chunk_size(CHUNK).depth(2).build().unwrap())
}

/// A driver of two threads reading chunks of [`CHUNK`], two in flight; `fast`: with the cached
/// fast path (chunks the page cache holds read by the polling thread).
fn driver(fast: bool) -> Driver {
    let opts = ReadOptions::builder()
        .chunk_size(CHUNK)
        .depth(2)
        .cached_fast_path(fast)
        .build()
        .unwrap();
    Driver::with_threads(2).unwrap().with_options(opts).unwrap()
}

/// Which of the reader's verbs reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Read,
    ReadSplit,
    ReadEach,
    ReadEachSplit,
}

/// The parallel half of a split processor: a copy of its chunk, with its offset.
struct Copy;

impl Prepare for Copy {
    type Part = (u64, Vec<u8>);
    fn prepare(&self, c: &Chunk<'_>) -> (u64, Vec<u8>) {
        (c.offset(), c.to_vec())
    }
}

/// Gathers what it is given, in order; `change` runs once, on the first chunk. As a split
/// processor's ordered half, it checks each part (what [`Copy`] made) against its chunk.
struct Gather<F> {
    got: Vec<u8>,
    change: Option<F>,
}

impl<F: FnOnce()> Gather<F> {
    fn take(&mut self, c: &Chunk<'_>) -> std::io::Result<bool> {
        if let Some(change) = self.change.take() {
            change();
        }
        assert_eq!(c.offset(), self.got.len() as u64, "chunks out of order");
        self.got.extend_from_slice(c);
        Ok(true)
    }
}

impl<F: FnOnce()> Processor for Gather<F> {
    fn process(&mut self, c: &Chunk<'_>) -> std::io::Result<bool> {
        self.take(c)
    }
}

impl<F: FnOnce()> Combine<(u64, Vec<u8>)> for Gather<F> {
    fn combine(&mut self, c: &Chunk<'_>, (at, bytes): (u64, Vec<u8>)) -> std::io::Result<bool> {
        assert_eq!(at, c.offset(), "a part of another chunk");
        assert!(bytes == **c, "a part of other bytes at {at}");
        self.take(c)
    }
}

/// Reads `path` with `reader` through `verb`, `change` run once when the first chunk reaches the
/// processor: the bytes, and how the file was read.
fn sync_read(
    reader: &Reader,
    verb: Verb,
    path: &Path,
    change: impl Fn(&Path) + Sync,
) -> (Vec<u8>, Summary) {
    let mut g = Gather {
        got: Vec::new(),
        change: Some(|| change(path)),
    };
    let summary = match verb {
        Verb::Read => reader.read(path, &mut g).unwrap(),
        Verb::ReadSplit => reader.read_split(path, &Copy, &mut g).unwrap(),
        Verb::ReadEach | Verb::ReadEachSplit => {
            let (mut one, mut finished) = (Some(g), None);
            let src = Source::paths([path]);
            let done = |f| finished = Some(f);
            if verb == Verb::ReadEach {
                reader.read_each(src, |_, _| one.take().expect("one input"), done)
            } else {
                let make = |_: usize, _: &Path| (Copy, one.take().expect("one input"));
                reader.read_each_split(src, make, done)
            }
            .unwrap();
            let f: ringread::Finished<_> = finished.unwrap();
            return (f.processor.got, f.result.unwrap());
        }
    };
    (g.got, summary)
}

/// Every reader's verb, on the lanes, the `pread(2)` pool and in place: what each gave, named.
fn every_verb(
    first: &[u8],
    change: impl Fn(&Path) + Sync + std::marker::Copy,
) -> Vec<(String, Vec<u8>)> {
    let verbs = [
        ("read", Verb::Read),
        ("read_split", Verb::ReadSplit),
        ("read_each", Verb::ReadEach),
        ("read_each_split", Verb::ReadEachSplit),
    ];
    let mut got = Vec::new();
    for (verb_name, verb) in verbs {
        for (how, reader) in [
            ("", reader_on(Backend::Auto)),
            (", pread", reader_on(Backend::Pread)),
            (", in place", in_place()),
        ] {
            let c = case(first);
            if how == ", in place" {
                // Cached, for reading in place.
                assert_eq!(fs::read(&c.path).unwrap().len(), first.len());
            }
            let (bytes, summary) = sync_read(&reader, verb, &c.path, change);
            let name = format!("Reader::{verb_name}{how}");
            if how == ", in place" {
                assert_eq!(summary.route.engine, Engine::InPlace, "{name}");
            }
            got.push((name, bytes));
        }
    }
    got
}

/// `Driver::chunks` of `path`, `change` run once the first chunk is handed out.
fn chunks_read(driver: &Driver, path: &Path, change: impl Fn(&Path)) -> Vec<u8> {
    runtime().block_on(async {
        let mut s = driver.chunks(path).unwrap();
        let mut got = Vec::new();
        while let Some(c) = s.next().await {
            if got.is_empty() {
                change(path);
            }
            got.extend_from_slice(&c.unwrap());
        }
        got
    })
}

/// `Driver::files` of `path`, `change` run after its `statx` and before its read: another task
/// holds the driver's whole budget (a file of that size) until the change is made.
fn files_read(path: &Path, change: impl Fn(&Path) + Send + 'static) -> Vec<u8> {
    let budget = 1 << 20;
    let driver = Driver::with_budget(1, budget).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let holder = dir.path().join("holder");
    fs::write(&holder, vec![7u8; budget - 1000]).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let d = driver.clone();
        let holder_task = tokio::spawn(async move {
            let mut files = d.files(&holder).unwrap();
            let bytes = files.next().await.unwrap().1.unwrap();
            held_tx.send(()).unwrap();
            release_rx.await.unwrap();
            drop(bytes);
        });
        held_rx.await.unwrap();
        let mut files = driver.files(path).unwrap();
        let target = path.to_path_buf();
        let reader = tokio::spawn(async move { files.next().await.unwrap().1.unwrap() });
        // The read waits for a buffer: its statx is done.
        let until = Instant::now() + Duration::from_secs(20);
        while driver.stats().waiting_streams == 0 {
            assert!(
                Instant::now() < until,
                "no read waited for the budget: {:?}",
                driver.stats()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        change(&target);
        release_tx.send(()).unwrap();
        holder_task.await.unwrap();
        reader.await.unwrap().to_vec()
    })
}

#[test]
fn a_file_that_grows_while_read_is_read_to_its_new_end_on_every_path() {
    let _g = shared();
    // Over 1 MiB: large enough to be read in place.
    let first = random_bytes(17 * CHUNK + 100, 1);
    let more = random_bytes(3 * CHUNK + 7, 2);
    let want = [&first[..], &more[..]].concat();
    let grow = |p: &Path| append(p, &more);
    let driver = driver(true);
    let mut got = every_verb(&first, grow);
    got.push((
        "Driver::chunks".into(),
        chunks_read(&driver, &case(&first).path, grow),
    ));
    for (name, got) in got {
        assert!(
            got == want,
            "{name}: {} bytes, the grown file has {}",
            got.len(),
            want.len()
        );
    }
    // A small file, grown after statx: read to its new end, as every other path reads it. (An
    // empty one, which waits for no buffer, is grown between its statx and its open in
    // `stream::whole`'s unit test.)
    let small = random_bytes(100_000, 3);
    let c = case(&small);
    let tail = more.clone();
    let got = files_read(&c.path, move |p| append(p, &tail));
    let want = [&small[..], &more[..]].concat();
    assert!(
        got == want,
        "Driver::files: {} bytes, the grown file has {}",
        got.len(),
        want.len()
    );
}

#[test]
fn a_file_that_shrinks_while_read_ends_at_its_new_end_on_every_path() {
    let _g = shared();
    let first = random_bytes(17 * CHUNK + 100, 4);
    let cut = 5 * CHUNK as u64 + 3;
    let want = &first[..cut as usize];
    let driver = driver(false);
    let shrink_it = move |p: &Path| shrink(p, cut);
    let mut got = every_verb(&first, shrink_it);
    got.push((
        "Driver::chunks".into(),
        chunks_read(&driver, &case(&first).path, shrink_it),
    ));
    for (name, got) in got {
        assert!(
            got == want,
            "{name}: {} bytes, the cut file has {}",
            got.len(),
            want.len()
        );
    }
    let small = random_bytes(100_000, 5);
    let c = case(&small);
    let got = files_read(&c.path, |p| shrink(p, 40_000));
    assert!(got == small[..40_000], "Driver::files: {} bytes", got.len());
}
