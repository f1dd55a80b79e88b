//! `Reader::read_many`: many files in flight, each into its own processor, results in input order,
//! against `std::fs::read`, on every backend, with bad inputs among good ones.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ringread::processor::from_fn;
use ringread::{Backend, Chunk, Error, Finished, ReadOptions, Reader};

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
    let _g = common::shared();
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
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
        .read_many(
            &list,
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
fn every_file_in_input_order_one_by_one_and_on_the_thread_pool() {
    check(Backend::Sync, 64 * 1024);
    // pread: the thread pool that stands in for io_uring where it is refused.
    check(Backend::Pread, 16 * 1024);
    check(Backend::Pread, 4096);
}

#[test]
fn max_bytes_and_a_stopping_processor() {
    let _g = common::shared();
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let paths: Vec<PathBuf> = (0..50)
        .map(|i| {
            let p = dir.path().join(format!("{i}"));
            std::fs::write(&p, common::random_bytes(i * 3000, i as u64)).unwrap();
            p
        })
        .collect();
    let opts = ReadOptions::builder()
        .chunk_size(4096)
        .max_bytes(10_000)
        .build()
        .unwrap();
    let reader = Reader::new(opts);
    reader
        .read_many(
            &paths,
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
        .read_many(
            &paths,
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
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let paths: Vec<PathBuf> = (0..200)
        .map(|i| {
            let p = dir.path().join(format!("{i}"));
            std::fs::write(&p, common::random_bytes(1000 + i, i as u64)).unwrap();
            p
        })
        .collect();
    let reader = Reader::new(ReadOptions::builder().backend(backend).build().unwrap());
    // Set up the reader's ring first, so that its descriptors are not counted as leaked.
    reader
        .read_many(&paths[..1], |_, _| Collect::default(), |_| {})
        .unwrap();
    let before = common::open_fds();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader.read_many(
            &paths,
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
        .read_many(
            &paths,
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
fn a_cancel_stops_read_many_with_nothing_left_in_flight() {
    let _g = common::exclusive();
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let paths: Vec<PathBuf> = (0..500)
        .map(|i| {
            let p = dir.path().join(format!("{i}"));
            std::fs::write(&p, common::random_bytes(3000, i as u64)).unwrap();
            p
        })
        .collect();
    let cancel = ringread::Cancel::new().unwrap();
    let mut reader = Reader::new(ReadOptions::default());
    reader.set_cancel(cancel.clone());
    reader
        .read_many(&paths[..1], |_, _| Collect::default(), |_| {})
        .unwrap();
    let before = common::open_fds();
    let mut released = 0;
    let r = reader.read_many(
        &paths,
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
        .read_many(&paths, |_, _| Collect::default(), |_| n += 1)
        .unwrap();
    assert_eq!(n, paths.len());
}
