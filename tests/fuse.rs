//! Faults from a real file system: a FUSE file system inside the test serves one file and can fail
//! with EIO at a chosen offset, return short reads, or answer slowly. ringread must name the path and
//! the offset, deliver every byte before the failure and none after, and never hang.
//!
//! Mounting needs root and /dev/fuse (CI runs as root); if it cannot mount, the test fails.
//!
//! Found with these tests (Linux 6.18): io_uring's reads of a file whose FUSE server opened it with
//! `FOPEN_DIRECT_IO` complete with the full length asked for even when the server answered short
//! or with EIO, leaving bytes the server never sent. So ringread reads FUSE files with read(2)
//! (`Notice::Fuse`), and these tests hold it to the same rules there.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fuse::{expected, Faults};
use ringread::{processor::from_fn, Backend, Chunk, Error, ReadOptions, Reader};

/// The size of the served file.
const SIZE: u64 = 3 * 262_144 + 12_345;

/// Mounts the test file system with `faults` (its file of [`SIZE`] bytes); returns the file's path.
fn mount(faults: Faults) -> (tempfile::TempDir, fuser::BackgroundSession, PathBuf) {
    let (dir, session, root) = common::fuse::mount(Faults {
        size: SIZE,
        ..faults
    });
    (dir, session, root.join("data"))
}

fn reader(backend: Backend, threads: usize) -> Reader {
    Reader::new(
        ReadOptions::builder()
            .chunk_size(65_536)
            .depth(8)
            .threads(threads)
            .backend(backend)
            .build()
            .unwrap(),
    )
}

/// Reads `file`; returns the bytes delivered and the outcome. With the default backend, a FUSE file
/// is read with read(2), and the summary says why (see `Notice::Fuse`).
fn read_all(r: &Reader, file: &Path) -> (Vec<u8>, ringread::Result<u64>) {
    let mut got = Vec::new();
    let mut p = from_fn(|c: &Chunk<'_>| {
        assert_eq!(c.offset(), got.len() as u64, "in order, no gaps");
        got.extend_from_slice(c);
        Ok(true)
    });
    let res = r.read(file, &mut p).map(|s| {
        if r.options().backend() == Backend::Auto {
            assert_eq!(s.route.engine, ringread::Engine::Sync);
            assert!(s
                .notices
                .contains(&ringread::Notice::Fuse { forced: false }));
        }
        s.bytes
    });
    (got, res)
}

/// The async stream's bytes (and its result) for `file`: a FUSE file is read with read(2) on the
/// driver's thread, by the same rules.
fn stream_all(file: &Path) -> (Vec<u8>, ringread::Result<u64>) {
    let driver = ringread::stream::Driver::new().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let opts = ringread::ReadOptions::builder()
        .chunk_size(16384)
        .depth(4)
        .build()
        .unwrap();
    let mut got = Vec::new();
    let res = rt.block_on(async {
        let mut s = driver.with_options(opts)?.chunks(file)?;
        assert!(
            s.notices()
                .iter()
                .any(|n| matches!(n, ringread::Notice::Fuse { .. })),
            "the stream did not notice FUSE"
        );
        while let Some(c) = s.next_chunk().await {
            let c = c?;
            assert_eq!(c.offset(), got.len() as u64);
            got.extend_from_slice(&c);
        }
        Ok(got.len() as u64)
    });
    (got, res)
}

#[test]
fn eio_at_an_offset_stops_there_and_names_it() {
    for fail_at in [0, 1, 4095, 4096, 65_536, 100_000, SIZE - 1] {
        let (_dir, _session, file) = mount(Faults {
            fail_at: Some(fail_at),
            ..Faults::default()
        });
        for (backend, threads) in [(Backend::Auto, 1), (Backend::Auto, 2), (Backend::Sync, 1)] {
            let (got, res) = read_all(&reader(backend, threads), &file);
            match res {
                Err(Error::Read {
                    path,
                    offset,
                    source,
                }) => {
                    assert_eq!(path, file);
                    assert_eq!(offset, fail_at, "{backend:?} x{threads}");
                    assert_eq!(source.raw_os_error(), Some(libc::EIO));
                }
                other => panic!("{backend:?} x{threads}, EIO at {fail_at}: got {other:?}"),
            }
            assert!(
                got == expected(fail_at),
                "every byte before the failure, none after"
            );
        }
        let (got, res) = stream_all(&file);
        match res {
            Err(Error::Read { offset, .. }) => assert_eq!(offset, fail_at, "stream"),
            other => panic!("stream, EIO at {fail_at}: got {other:?}"),
        }
        assert!(
            got == expected(fail_at),
            "stream: every byte before, none after"
        );
        // The command line says it in words, and goes on with the next file.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringread"))
            .arg("count")
            .arg(&file)
            .arg("/proc/version")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{}: read error at offset {fail_at}: Input/output error",
                file.display()
            )),
            "{err}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("/proc/version"));
    }
}

#[test]
fn short_and_slow_reads_deliver_every_byte() {
    for faults in [
        Faults {
            short: true,
            ..Faults::default()
        },
        Faults {
            delay: Some(Duration::from_millis(3)),
            ..Faults::default()
        },
        Faults {
            short: true,
            delay: Some(Duration::from_millis(1)),
            ..Faults::default()
        },
    ] {
        let (_dir, _session, file) = mount(faults);
        for (backend, threads) in [(Backend::Auto, 1), (Backend::Auto, 2), (Backend::Sync, 1)] {
            let (got, res) = read_all(&reader(backend, threads), &file);
            assert_eq!(res.unwrap(), SIZE, "{backend:?} x{threads}");
            assert!(got == expected(SIZE));
        }
        let (got, res) = stream_all(&file);
        assert_eq!(res.unwrap(), SIZE, "stream");
        assert!(got == expected(SIZE), "stream");
    }
}
