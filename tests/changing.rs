//! A file that changes while it is read. The rules (docs/RELIABILITY.md):
//! - truncated: reading ends where a read first returns 0; every byte delivered was in the file at
//!   that offset when it was read; no buffer byte that was not read is ever delivered;
//! - grown: bytes appended before the read reaches the old end are read (the end is where a read
//!   returns 0, not `st_size`);
//! - renamed over: the open descriptor keeps the file that was opened; its bytes are delivered whole.
//!
//! The changes are made from inside the processor, at a chosen chunk, so each case is deterministic.

use std::io::Write;
use std::path::Path;

use ringread::{processor::from_fn, Backend, Chunk, ReadOptions, Reader};

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

fn readers() -> Vec<(String, Reader)> {
    let mut out = Vec::new();
    for backend in [Backend::Uring, Backend::Sync] {
        for direct in [false, true] {
            for threads in [1, 2] {
                let opts = ReadOptions::builder()
                    .chunk_size(64 << 10)
                    .depth(8)
                    .threads(threads)
                    .direct(direct)
                    .backend(backend)
                    .build()
                    .unwrap();
                out.push((
                    format!("{backend:?} direct={direct} threads={threads}"),
                    Reader::new(opts),
                ));
            }
        }
    }
    out
}

/// Reads `path`, calling `change` once when the chunk at `at` is delivered; returns the bytes.
fn read_changing(reader: &Reader, path: &Path, at: u64, change: &(dyn Fn() + Sync)) -> Vec<u8> {
    let mut got = Vec::new();
    let mut p = from_fn(|c: &Chunk<'_>| {
        assert_eq!(c.offset(), got.len() as u64, "in order, no gaps");
        got.extend_from_slice(c);
        if c.offset() == at {
            change();
        }
        Ok(true)
    });
    reader.read(path, &mut p).unwrap();
    got
}

#[test]
fn truncated_while_read_ends_cleanly_with_real_bytes() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().join("f");
    let original = pattern(4 << 20, 1);
    for (name, reader) in readers() {
        for new_len in [0usize, 100_000, 1 << 20] {
            std::fs::write(&path, &original).unwrap();
            let got = read_changing(&reader, &path, 0, &|| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(new_len as u64)
                    .unwrap();
            });
            // Reads that completed before the cut may carry bytes past it; nothing else.
            assert!(got.len() <= original.len(), "{name}");
            assert!(
                got == original[..got.len()],
                "{name}: bytes that were never in the file"
            );
            // Past the reads already in flight (at most the depth of chunks), the cut is seen.
            assert!(
                got.len() <= new_len.max(9 * (64 << 10)),
                "{name}: read {} bytes past a cut at {new_len}",
                got.len()
            );
        }
    }
}

#[test]
fn grown_while_read_is_read_to_the_new_end() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().join("f");
    let original = pattern(4 << 20, 2);
    let tail = pattern(300_001, 3);
    for (name, reader) in readers() {
        std::fs::write(&path, &original).unwrap();
        let got = read_changing(&reader, &path, 0, &|| {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(&tail).unwrap();
        });
        let mut want = original.clone();
        want.extend_from_slice(&tail);
        assert_eq!(got.len(), want.len(), "{name}");
        assert!(got == want, "{name}");
    }
}

#[test]
fn renamed_over_while_read_keeps_the_opened_file() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().join("f");
    let other = dir.path().join("other");
    let original = pattern(3 << 20, 4);
    for (name, reader) in readers() {
        std::fs::write(&path, &original).unwrap();
        std::fs::write(&other, pattern(1000, 5)).unwrap();
        let got = read_changing(&reader, &path, 64 << 10, &|| {
            std::fs::rename(&other, &path).unwrap();
        });
        assert!(got == original, "{name}");
    }
}
