//! A file that grows or shrinks after the reader took its size gives the same result through every
//! front door (issue 24, item 2): the end of a file is a read that returns 0, on every path. Each
//! case makes the change happen at a known point: after the first chunk reached the processor (the
//! lanes, `Reader::read` and `read_each` of a large file), after the first chunk was handed out
//! (`Driver::chunks`), or after `statx` and before the read (`Driver::files`, whose read waits for
//! a buffer another task holds).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ringread::processor::from_fn;
use ringread::stream::Driver;
use ringread::{Backend, Chunk, ReadOptions, Reader, Source};

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
    Reader::new(
        ReadOptions::builder()
            .chunk_size(CHUNK)
            .depth(2)
            .backend(backend)
            .build()
            .unwrap(),
    )
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

/// Reads `path` (`each`: with `read_each`, else `read`) while `change` runs once, when the first chunk reaches the processor.
fn sync_read(path: &Path, each: bool, change: impl Fn(&Path) + Sync) -> Vec<u8> {
    sync_read_on(Backend::Auto, path, each, change)
}

/// [`sync_read`] with a reader on `backend`.
fn sync_read_on(
    backend: Backend,
    path: &Path,
    each: bool,
    change: impl Fn(&Path) + Sync,
) -> Vec<u8> {
    let mut got = Vec::new();
    let mut changed = false;
    let mut proc = from_fn(|c: &Chunk<'_>| {
        if !changed {
            change(path);
            changed = true;
        }
        got.extend_from_slice(c);
        Ok(true)
    });
    if each {
        let mut one = Some(proc);
        let mut result = None;
        reader_on(backend)
            .read_each(
                Source::paths([path]),
                |_, _| one.take().expect("one input"),
                |f| result = Some(f.result),
            )
            .unwrap();
        result.unwrap().unwrap();
    } else {
        reader_on(backend).read(path, &mut proc).unwrap();
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
    let first = random_bytes(8 * CHUNK + 100, 1);
    let more = random_bytes(3 * CHUNK + 7, 2);
    let want = [&first[..], &more[..]].concat();
    let grow = {
        let more = more.clone();
        move |p: &Path| append(p, &more)
    };
    let driver = driver(true);
    for (name, got) in [
        ("Reader::read", sync_read(&case(&first).path, false, &grow)),
        (
            "Reader::read_each",
            sync_read(&case(&first).path, true, &grow),
        ),
        (
            "Reader::read_each, pread pool",
            sync_read_on(Backend::Pread, &case(&first).path, true, &grow),
        ),
        (
            "Driver::chunks",
            chunks_read(&driver, &case(&first).path, &grow),
        ),
    ] {
        assert!(
            got == want,
            "{name}: {} bytes, the grown file has {}",
            got.len(),
            want.len()
        );
    }
    // A small file, grown after statx: read to its new end, as every other path reads it.
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
    let first = random_bytes(8 * CHUNK + 100, 4);
    let cut = 5 * CHUNK as u64 + 3;
    let want = &first[..cut as usize];
    let driver = driver(false);
    let shrink_it = move |p: &Path| shrink(p, cut);
    for (name, got) in [
        (
            "Reader::read",
            sync_read(&case(&first).path, false, shrink_it),
        ),
        (
            "Reader::read_each",
            sync_read(&case(&first).path, true, shrink_it),
        ),
        (
            "Reader::read_each, pread pool",
            sync_read_on(Backend::Pread, &case(&first).path, true, shrink_it),
        ),
        (
            "Driver::chunks",
            chunks_read(&driver, &case(&first).path, shrink_it),
        ),
    ] {
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
