//! `RingStore` as object_store's users see it: object_store's own conformance suite (the functions
//! `LocalFileSystem`'s test runs against itself), with io_uring and with io_uring refused by a
//! seccomp filter (the store then reads with pread(2) and says so); and the reads themselves:
//! every form of `get_opts` and `get_ranges` gives the bytes `std::fs::read` gives, at sizes that
//! straddle the read and chunk edges, unsorted and overlapping ranges, a consumer that keeps every
//! chunk, a budget smaller than what a call returns, a file that shrinks, FIFOs and directories.
#![cfg(feature = "object-store")]

mod common;

use std::ops::Range;
use std::path::Path as FsPath;
use std::process::Command;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use ringread::store::RingStore;
use ringread::stream::Driver;

/// The functions `LocalFileSystem`'s own `file_test` runs (object_store 0.13, src/local.rs).
async fn conformance(store: &RingStore) {
    use object_store::integration::*;
    put_get_delete_list(store).await;
    list_with_offset_exclusivity(store).await;
    get_opts(store).await;
    list_uses_directories_correctly(store).await;
    list_with_delimiter(store).await;
    rename_and_copy(store).await;
    copy_if_not_exists(store).await;
    copy_rename_nonexistent_object(store).await;
    stream_get(store).await;
    put_opts(store, false).await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn passes_object_stores_own_suite() {
    let _g = common::shared();
    let root = tempfile::tempdir().unwrap();
    let store = RingStore::new_with_prefix(root.path()).unwrap();
    assert!(store.notice().is_none(), "{:?}", store.notice());
    runtime().block_on(conformance(&store));
}

/// Run by `passes_object_stores_own_suite_with_io_uring_refused` in a child process under the
/// seccomp filter; does nothing when run on its own.
#[test]
fn conformance_in_child() {
    if std::env::var_os("RINGREAD_STORE_CHILD").is_none() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let store = RingStore::new_with_prefix(root.path()).unwrap();
    // After a newline: the harness's "test ... " line has none of its own yet.
    println!("\nstore: {store}");
    println!(
        "notice: {}",
        store.notice().map(|n| n.to_string()).unwrap_or_default()
    );
    runtime().block_on(conformance(&store));
    println!("conformance passed");
}

#[test]
fn passes_object_stores_own_suite_with_io_uring_refused() {
    let _g = common::shared();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "conformance_in_child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("RINGREAD_STORE_CHILD", "1");
    let out = common::deny_io_uring(&mut cmd).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("conformance passed"), "{stdout}");
    let notice = stdout
        .lines()
        .find_map(|l| l.strip_prefix("notice: "))
        .unwrap_or_default();
    assert!(
        notice.contains("io_uring") && notice.contains("EPERM"),
        "the store says why it reads without io_uring: {stdout}"
    );
    let shown = stdout
        .lines()
        .find_map(|l| l.strip_prefix("store: "))
        .unwrap();
    assert!(
        shown.starts_with("RingStore(file://") && shown.contains(notice),
        "{shown}"
    );
}

/// Sizes around the page size and the chunk size (256 KiB by default), and past the largest
/// single read (16 MiB: longer ranges stream the driver's chunks).
const SIZES: [usize; 11] = [
    0,
    1,
    4095,
    4096,
    4097,
    (256 << 10) - 1,
    256 << 10,
    (256 << 10) + 1,
    (3 << 20) + 7,
    (9 << 20) + 4095,
    (17 << 20) + 5,
];

/// Every form of `get_opts` gives what `std::fs::read` gives, through both of the store's ways
/// (one read, and the chunk stream), and the same metadata as `LocalFileSystem`.
#[test]
fn every_get_form_matches_std_fs_read() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let store = RingStore::new_with_prefix(dir.path()).unwrap();
    let local = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    runtime().block_on(async {
        for (i, &size) in SIZES.iter().enumerate() {
            let name = format!("f{size}");
            std::fs::write(dir.path().join(&name), common::random_bytes(size, i as u64)).unwrap();
            let want = std::fs::read(dir.path().join(&name)).unwrap();
            let at = Path::from(name.as_str());
            let got = store.get(&at).await.unwrap();
            assert_eq!(got.meta, local.head(&at).await.unwrap(), "{name}");
            assert_eq!(got.range, 0..size as u64);
            assert_eq!(got.bytes().await.unwrap(), want, "{name} whole");
            let n = size as u64;
            let forms = [
                GetRange::Bounded(0..n.min(1)),
                GetRange::Bounded(n / 3..n),
                GetRange::Bounded(n / 3..n + 10),
                GetRange::Offset(n / 2),
                GetRange::Suffix(4097),
                GetRange::Suffix(n + 1),
            ];
            for r in forms {
                let opts = GetOptions::new().with_range(Some(r.clone()));
                let mine = store.get_opts(&at, opts.clone()).await;
                let theirs = local.get_opts(&at, opts).await;
                match (mine, theirs) {
                    (Ok(m), Ok(t)) => {
                        assert_eq!(m.range, t.range, "{name} {r:?}");
                        assert_eq!(m.bytes().await.unwrap(), t.bytes().await.unwrap());
                    }
                    (Err(_), Err(_)) => {}
                    (m, t) => panic!("{name} {r:?}: {m:?} against {t:?}"),
                }
            }
            assert_eq!(
                store.head(&at).await.unwrap(),
                local.head(&at).await.unwrap()
            );
        }
    });
}

/// Ranges in any order, overlapping, empty, touching, and longer than one read: the bytes
/// `std::fs::read` has there; ranges past the end are errors, as `LocalFileSystem` makes them.
#[test]
fn get_ranges_matches_std_fs_read() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let store = RingStore::new_with_prefix(dir.path()).unwrap();
    let data = common::random_bytes((11 << 20) + 123, 7);
    std::fs::write(dir.path().join("data"), &data).unwrap();
    let at = Path::from("data");
    let n = data.len() as u64;
    let mut ranges: Vec<Range<u64>> = vec![
        5..9,
        0..1,
        0..5,
        4096..4096,
        n - 1..n,
        100..(9 << 20),
        4095..8193,
        8193..8200,
        0..n,
    ];
    let mut x = 99u64;
    for _ in 0..2000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let start = (x >> 20) % n;
        let len = (x >> 8) % 20_000;
        ranges.push(start..(start + len).min(n));
    }
    runtime().block_on(async {
        for gap in [None, Some(0), Some(16 << 10), Some(1 << 20)] {
            let store = store.clone().with_merge_gap(gap);
            let got = store.get_ranges(&at, &ranges).await.unwrap();
            assert_eq!(got.len(), ranges.len());
            for (r, b) in ranges.iter().zip(&got) {
                assert_eq!(
                    b,
                    &data[r.start as usize..r.end as usize],
                    "{r:?} gap {gap:?}"
                );
            }
        }
        assert!(store.get_ranges(&at, &[0..4, n..n + 1]).await.is_err());
        assert!(store
            .get_ranges(&at, std::slice::from_ref(&(n - 4..n + 4)))
            .await
            .is_err());
        assert!(store
            .get_ranges(&at, std::slice::from_ref(&(n + 5..n + 5)))
            .await
            .unwrap()[0]
            .is_empty());
        let gone = store
            .get_ranges(&Path::from("nothing"), std::slice::from_ref(&(0..1)))
            .await;
        assert!(
            matches!(gone, Err(object_store::Error::NotFound { .. })),
            "{gone:?}"
        );
    });
}

/// A consumer that keeps every chunk of a large object (far more than its stream's buffers), and a
/// `get_ranges` whose results are eight times the driver's budget: both complete, with the right
/// bytes (the store copies what is kept once half is held).
#[test]
fn keeping_everything_never_stops_the_reads() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let data = common::random_bytes(40 << 20, 3);
    std::fs::write(dir.path().join("big"), &data).unwrap();
    let local = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let driver = Driver::with_budget(2, 1 << 20).unwrap();
    let store = RingStore::from_local(local, driver.clone());
    runtime().block_on(async {
        let at = Path::from("big");
        let chunks: Vec<Bytes> = store
            .get(&at)
            .await
            .unwrap()
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert!(chunks.len() > 16, "{} chunks", chunks.len());
        assert_eq!(chunks.concat(), data);
        let ranges: Vec<Range<u64>> = (0..2048u64)
            .map(|i| i * 20_000..i * 20_000 + 4096)
            .collect();
        let got = store.get_ranges(&at, &ranges).await.unwrap();
        for (r, b) in ranges.iter().zip(&got) {
            assert_eq!(b, &data[r.start as usize..r.end as usize]);
        }
        drop((chunks, got));
    });
    assert_eq!(driver.stats().held_bytes, 0);
}

/// A file cut short after `get` returned: the stream ends with an error, not with fewer bytes.
#[test]
fn a_file_that_shrinks_after_get_is_an_error_not_fewer_bytes() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let store = RingStore::new_with_prefix(dir.path()).unwrap();
    for size in [100_000usize, 20 << 20] {
        let path = dir.path().join("shrinks");
        std::fs::write(&path, common::random_bytes(size, 1)).unwrap();
        runtime().block_on(async {
            let got = store.get(&Path::from("shrinks")).await.unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(size as u64 / 2)
                .unwrap();
            let res = got.bytes().await;
            assert!(res.is_err(), "{size}: {:?}", res.map(|b| b.len()));
        });
    }
}

/// Not objects: a directory is not found, a missing file is not found; a FIFO is read as
/// `LocalFileSystem` reads it, without blocking the runtime's thread in `open(2)`.
#[test]
fn directories_missing_files_and_fifos() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let store = RingStore::new_with_prefix(dir.path()).unwrap();
    let fifo = dir.path().join("fifo");
    common::mkfifo(&fifo);
    runtime().block_on(async {
        for name in ["sub", "missing"] {
            let e = store.get(&Path::from(name)).await.unwrap_err();
            assert!(
                matches!(e, object_store::Error::NotFound { .. }),
                "{name}: {e}"
            );
            let e = store.head(&Path::from(name)).await.unwrap_err();
            assert!(
                matches!(e, object_store::Error::NotFound { .. }),
                "{name}: {e}"
            );
        }
        // As LocalFileSystem does: the open waits (on a blocking thread) for the writer, and the
        // object's size is what the FIFO's metadata says, 0.
        let writer = std::thread::spawn(move || write_fifo(&fifo));
        let got = store.get(&Path::from("fifo")).await.unwrap();
        assert_eq!(got.meta.size, 0);
        assert!(got.bytes().await.unwrap().is_empty());
        writer.join().unwrap();
    });
}

fn write_fifo(path: &FsPath) {
    use std::io::Write;
    let mut w = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    // The reader may be gone already (EPIPE): what counts is that the open did not hang.
    let _ = w.write_all(b"through a pipe");
}

/// Preconditions are checked against the same `ETag` and time `LocalFileSystem` gives.
#[test]
fn preconditions_use_local_file_systems_etag() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let store = RingStore::new_with_prefix(dir.path()).unwrap();
    std::fs::write(dir.path().join("x"), b"0123456789").unwrap();
    runtime().block_on(async {
        let at = Path::from("x");
        let put = store
            .put(&at, Bytes::from_static(b"abcdefghij").into())
            .await
            .unwrap();
        let tag = store.head(&at).await.unwrap().e_tag;
        assert_eq!(tag, put.e_tag);
        let ok = GetOptions::new().with_if_match(tag.clone());
        assert_eq!(
            store
                .get_opts(&at, ok)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
            &b"abcdefghij"[..]
        );
        let stale = GetOptions::new().with_if_match(Some("1-2-3"));
        assert!(matches!(
            store.get_opts(&at, stale).await,
            Err(object_store::Error::Precondition { .. })
        ));
        let same = GetOptions::new().with_if_none_match(tag);
        assert!(matches!(
            store.get_opts(&at, same).await,
            Err(object_store::Error::NotModified { .. })
        ));
    });
}

/// A scan that reads the same columns of one row group after another, cold: from its third call
/// on, the next call's ranges are asked of the device while the caller decodes (they become
/// resident without being read), and every call's bytes are the file's.
#[test]
fn a_scan_row_group_by_row_group_is_read_ahead() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let data = common::random_bytes(8 << 20, 11);
    let path = dir.path().join("table");
    std::fs::write(&path, &data).unwrap();
    common::evict(&path);
    let file = std::fs::File::open(&path).unwrap();
    let resident = |r: &Range<u64>| {
        let got = ringread::residency::of_range(&file, r.start, r.end - r.start).unwrap();
        got.cached == got.len
    };
    // Two column chunks a row group, 1 MiB apart.
    let group = |k: u64| {
        let at = k << 20;
        vec![at + 1000..at + 300_000, at + 500_000..at + 700_000]
    };
    assert!(
        !resident(&group(3)[0]),
        "the file stayed in the page cache after DONTNEED"
    );
    let store = RingStore::new_with_prefix(dir.path()).unwrap();
    runtime().block_on(async {
        for k in 0..3 {
            let ranges = group(k);
            let got = store
                .get_ranges(&Path::from("table"), &ranges)
                .await
                .unwrap();
            for (r, b) in ranges.iter().zip(&got) {
                assert_eq!(b, &data[r.start as usize..r.end as usize]);
            }
        }
    });
    // Asked ahead, not read: the kernel's reads complete on their own.
    let next = group(3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !next.iter().all(resident) {
        assert!(
            std::time::Instant::now() < deadline,
            "the next row group's ranges were not asked ahead"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // What lies between them was not asked for.
    assert!(!resident(&(next[0].end + 8192..next[1].start - 8192)));
    assert!(!resident(&group(4)[0]));
}
