//! `Reader::read_each` over `Source::files` with a caller that opens its files lazily, under
//! `ulimit -n 64`: the reader takes no more files from the iterator than the descriptor room
//! allows, so the caller's own `open` never fails with `EMFILE`, on every backend. (It took about
//! 512 ahead, with a descriptor each.)
//!
//! The same reader, kept from a read of paths (small slots) and used again under the low limit
//! (fewer files in flight, so larger reads), reads each file's bytes right: its reads never
//! overrun the kept slots.
//!
//! This file is its own test binary: it lowers the process's `RLIMIT_NOFILE`.

mod common;

use std::cell::Cell;
use std::fs::File;
use std::path::PathBuf;

use ringread::processor::from_fn;
use ringread::{Backend, Chunk, ReadOptions, Reader, Source};

const LIMIT: u64 = 64;

#[test]
fn a_lazy_iterator_of_opened_files_under_ulimit_n_64_never_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(PathBuf, Vec<u8>)> = (0..1500)
        .map(|i| {
            let data = common::random_bytes(1 + i * 37 % 20_000, i as u64);
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, &data).unwrap();
            (p, data)
        })
        .collect();
    // A reader whose many-files rings were made for paths (128 in flight: the smallest slots),
    // read again below with open files under the low limit (fewer in flight: larger reads each).
    let kept = Reader::new(ReadOptions::default());
    let mut n = 0;
    kept.read_each(
        Source::paths(files.iter().map(|(p, _)| p)),
        |_, _| Keep::default(),
        |f| {
            f.result.unwrap();
            n += 1;
        },
    )
    .unwrap();
    assert_eq!(n, files.len());
    // SAFETY: setrlimit reads the struct we pass.
    unsafe {
        let r = libc::rlimit {
            rlim_cur: LIMIT,
            rlim_max: LIMIT,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
    }
    for backend in [Backend::Auto, Backend::Uring, Backend::Pread, Backend::Sync] {
        let reader = Reader::new(ReadOptions::builder().backend(backend).build().unwrap());
        let taken = Cell::new(0usize);
        let released = Cell::new(0usize);
        let most_ahead = Cell::new(0usize);
        let lazy = files.iter().map(|(p, _)| {
            let f = File::open(p).unwrap_or_else(|e| {
                panic!(
                    "{backend:?}: the caller's open failed with {} taken and {} handed back: {e}",
                    taken.get(),
                    released.get()
                )
            });
            taken.set(taken.get() + 1);
            most_ahead.set(most_ahead.get().max(taken.get() - released.get()));
            (f, p.clone())
        });
        let mut ok = 0;
        reader
            .read_each(
                Source::files(lazy),
                |_, _| {
                    let mut v = Vec::new();
                    from_fn(move |c: &Chunk<'_>| {
                        v.extend_from_slice(c);
                        Ok(true)
                    })
                },
                |f| {
                    released.set(released.get() + 1);
                    f.result.unwrap();
                    ok += 1;
                },
            )
            .unwrap();
        assert_eq!(ok, files.len(), "{backend:?}");
        assert!(
            most_ahead.get() < LIMIT as usize,
            "{backend:?}: {} files taken ahead",
            most_ahead.get()
        );
    }
    // The bytes, once, on the default backend (a processor that keeps them per file), by the
    // reader whose rings were kept from the read of paths: its slots are smaller than a read of
    // this call's own settings (reads there once overran them).
    let reader = kept;
    let lazy = files
        .iter()
        .map(|(p, _)| (File::open(p).unwrap(), p.clone()));
    let mut got: Vec<Vec<u8>> = Vec::new();
    reader
        .read_each(
            Source::files(lazy),
            |_, _| Keep::default(),
            |f| {
                f.result.unwrap();
                got.push(f.processor.0);
            },
        )
        .unwrap();
    assert_eq!(got.len(), files.len());
    for ((p, want), got) in files.iter().zip(&got) {
        assert!(got == want, "{}: bytes differ", p.display());
    }
}

/// Keeps every byte.
#[derive(Default)]
struct Keep(Vec<u8>);

impl ringread::Processor for Keep {
    fn process(&mut self, c: &Chunk<'_>) -> std::io::Result<bool> {
        self.0.extend_from_slice(c);
        Ok(true)
    }
}
