//! Whole files read on the async driver (`Driver::files`; one file alone through
//! `common::stream::read_whole`, what `Driver::read` was): the bytes against `std::fs::read`,
//! errors per file, what is not a regular file, the budget (small budgets, files larger than it,
//! results held), cancellation (futures and streams dropped part way: nothing left in flight, no
//! buffer or descriptor left over), a cancelled driver, FUSE and procfs files, and the driver
//! without io_uring.
//!
//! Tests that count this process's descriptors take `common::exclusive()`; every other test takes
//! `common::shared()`.

use std::fs;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Context;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use ringread::stream::{Driver, ReadMany};
use ringread::{Error, Source};

mod common;
use common::stream::{read_whole, runtime, tmpdir, wait_idle, write_file};
use common::{exclusive, fuse, mkfifo, open_fds, random_bytes, shared};

/// Sizes lognormal as a source tree's (bytes = exp(N(8, 1.5)), capped at 2,000,000), from `seed`.
fn tree_sizes(n: usize, seed: u64) -> Vec<usize> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (((z ^ (z >> 31)) >> 11) + 1) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (next(), next());
            let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
            (8.0 + 1.5 * z).exp().min(2_000_000.0) as usize
        })
        .collect()
}

/// Every item of `s`, checking that indexes come in input order.
async fn all(mut s: ReadMany) -> Vec<Result<Bytes, Error>> {
    let mut out = Vec::new();
    while let Some((i, r)) = s.next().await {
        assert_eq!(i, out.len(), "out of input order");
        out.push(r);
    }
    assert!(s.next().await.is_none(), "the stream went on after its end");
    out
}

#[test]
fn bytes_match_std_for_sizes_on_every_boundary() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    let driver = Driver::new().unwrap();
    assert!(driver.notice().is_none(), "{:?}", driver.notice());
    let sizes = [
        0usize,
        1,
        4095,
        4096,
        4097,
        65535,
        65536,
        65537,
        (256 << 10) - 1,
        256 << 10,
        (256 << 10) + 1,
        (1 << 20) + 1,
        (8 << 20) + 3,
    ];
    let paths: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| write_file(dir.path(), &format!("f{i}"), &random_bytes(n, i as u64)))
        .collect();
    let rt = runtime();
    rt.block_on(async {
        for p in &paths {
            let got = read_whole(&driver, p).await.unwrap();
            assert!(got[..] == fs::read(p).unwrap()[..], "{}", p.display());
        }
        for width in [1, 3, 64] {
            let got = all(driver
                .files(Source::paths(&paths))
                .unwrap()
                .files_in_flight(width))
            .await;
            for (p, r) in paths.iter().zip(got) {
                assert!(
                    r.unwrap()[..] == fs::read(p).unwrap()[..],
                    "{}",
                    p.display()
                );
            }
        }
        // The process-wide driver.
        let global = Driver::global().unwrap();
        let got = read_whole(global, &paths[3]).await.unwrap();
        assert!(got[..] == fs::read(&paths[3]).unwrap()[..]);
        let got = all(global.files(Source::paths(&paths[..4])).unwrap()).await;
        assert_eq!(got.len(), 4);
    });
    drop(rt);
    wait_idle(&driver);
    // The process-wide driver outlives this test: nothing of it may still hold this test's tasks
    // once the test is over.
    wait_idle(Driver::global().unwrap());
}

/// The bytes are the pool's buffer, not a copy: while a `Bytes` (or a clone or slice of it) lives,
/// the driver counts its buffer as held; when the last goes, it is back.
#[test]
fn bytes_are_the_pools_buffer_until_the_last_clone_drops() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    let data = random_bytes(300_001, 5);
    let p = write_file(dir.path(), "f", &data);
    let driver = Driver::with_budget(2, 4 << 20).unwrap();
    let rt = runtime();
    let b = rt.block_on(read_whole(&driver, &p)).unwrap();
    assert!(b[..] == data[..]);
    let held = driver.stats().held_bytes;
    assert!(
        held >= data.len() && held <= data.len() + data.len() / 8 + 4096,
        "{:?}",
        driver.stats()
    );
    let tail = b.slice(300_000..);
    drop(b);
    assert_eq!(driver.stats().held_bytes, held, "a slice keeps the buffer");
    assert_eq!(tail[..], data[300_000..]);
    drop(tail);
    assert_eq!(driver.stats().held_bytes, 0);
    drop(rt);
    wait_idle(&driver);
}

/// One file's error is that file's item; the files around it are read. What is not a regular file
/// is refused at its `statx`: a FIFO without a writer must not hang the stream (its open would wait
/// for one).
#[test]
fn errors_are_per_file_and_a_fifo_does_not_hang() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    let a = write_file(dir.path(), "a", &random_bytes(10_000, 1));
    let b = write_file(dir.path(), "b", &random_bytes(70_000, 2));
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let missing = dir.path().join("missing");
    let nul = PathBuf::from(std::ffi::OsString::from("with\0nul"));
    let paths = [
        a.clone(),
        missing.clone(),
        b.clone(),
        fifo.clone(),
        dir.path().to_path_buf(),
        PathBuf::from("/dev/null"),
        nul,
        a.clone(),
    ];
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let got = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            all(driver.files(Source::paths(&paths)).unwrap()),
        )
        .await
        .expect("Driver::files hung (on the FIFO?)")
    });
    assert_eq!(got.len(), paths.len());
    let err = |i: usize| got[i].as_ref().unwrap_err().to_string();
    assert!(got[0].as_ref().unwrap()[..] == fs::read(&a).unwrap()[..]);
    assert_eq!(
        err(1),
        format!("{}: No such file or directory", missing.display())
    );
    assert!(got[2].as_ref().unwrap()[..] == fs::read(&b).unwrap()[..]);
    assert_eq!(
        err(3),
        format!(
            "{}: a FIFO, not a regular file: stream it with Driver::chunks",
            fifo.display()
        )
    );
    assert!(matches!(&got[3], Err(Error::Open { .. })));
    assert_eq!(
        got[3].as_ref().unwrap_err().io_error().unwrap().kind(),
        std::io::ErrorKind::InvalidInput
    );
    assert_eq!(err(4), format!("{}: Is a directory", dir.path().display()));
    assert!(err(5).contains("a character device"), "{}", err(5));
    assert!(matches!(&got[6], Err(Error::Open { .. })), "{:?}", got[6]);
    assert!(got[7].as_ref().unwrap()[..] == fs::read(&a).unwrap()[..]);
    // One file alone says the same.
    let e = rt.block_on(read_whole(&driver, &fifo)).unwrap_err();
    assert!(e.to_string().contains("a FIFO"), "{e}");
    // Through `?` into io::Error, the kind and words stay.
    let io: std::io::Error = rt
        .block_on(read_whole(&driver, &missing))
        .unwrap_err()
        .into();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    drop(got);
    drop(rt);
    wait_idle(&driver);
}

/// A file larger than the driver's whole budget cannot have one buffer: refused, with the way out.
#[test]
fn a_file_larger_than_the_budget_is_refused_with_the_way_out() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    let big = write_file(dir.path(), "big", &random_bytes((1 << 20) + 1, 3));
    let fits = write_file(dir.path(), "fits", &random_bytes((1 << 20) - 100, 4));
    let driver = Driver::with_budget(1, 1 << 20).unwrap();
    let rt = runtime();
    let e = rt.block_on(read_whole(&driver, &big)).unwrap_err();
    assert!(matches!(e, Error::Open { .. }), "{e}");
    assert_eq!(
        e.io_error().unwrap().kind(),
        std::io::ErrorKind::FileTooLarge
    );
    assert!(
        e.to_string().contains("stream it with Driver::chunks"),
        "{e}"
    );
    // A file of the budget's size fits.
    let got = rt.block_on(read_whole(&driver, &fits)).unwrap();
    assert!(got[..] == fs::read(&fits).unwrap()[..]);
    drop(got);
    drop(rt);
    wait_idle(&driver);
}

/// 2,000 files of a tree (lognormal sizes, up to 2 MB) on a 4 MiB budget: one `Driver::files`
/// stream and 64 tasks of `read_whole` all finish, every file's bytes right, and the driver's
/// buffers never exceed the budget.
#[test]
fn two_thousand_files_within_a_four_mib_budget() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    let sizes = tree_sizes(2000, 7);
    let files: Vec<(PathBuf, Arc<Vec<u8>>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let d = random_bytes(n, 5000 + i as u64);
            (write_file(dir.path(), &format!("t{i}"), &d), Arc::new(d))
        })
        .collect();
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let budget = 4 << 20;
    let driver = Driver::with_budget(2, budget).unwrap();
    let rt = runtime();
    rt.block_on(async {
        // One stream over all of them, each file checked and dropped.
        let mut s = driver
            .files(Source::paths(&paths))
            .unwrap()
            .files_in_flight(128);
        let mut n = 0;
        while let Some((i, r)) = s.next().await {
            assert_eq!(i, n);
            assert!(r.unwrap()[..] == files[i].1[..], "file {i}");
            n += 1;
        }
        assert_eq!(n, 2000);
        // 64 tasks, each reading its share one file at a time.
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let driver = driver.clone();
                let mine: Vec<_> = files.iter().skip(t).step_by(64).cloned().collect();
                tokio::spawn(async move {
                    for (p, want) in mine {
                        let got = read_whole(&driver, &p).await.unwrap();
                        assert!(got[..] == want[..], "{}", p.display());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let st = driver.stats();
    assert!(
        st.peak_buffer_bytes <= budget && st.peak_buffer_bytes > 0,
        "{st:?}"
    );
    eprintln!("{st:?}");
    drop(rt);
    wait_idle(&driver);
}

/// Holding every file's bytes (collecting them) on a small budget: the files whose turn comes when
/// the held bytes have spent the budget say `BuffersHeld`, the stream goes on and ends; no hang.
#[test]
fn holding_every_result_is_an_error_per_file_not_a_hang() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    let paths: Vec<PathBuf> = (0..40)
        .map(|i| write_file(dir.path(), &format!("h{i}"), &random_bytes(100_000, i)))
        .collect();
    let driver = Driver::with_budget(2, 1 << 20).unwrap();
    let rt = runtime();
    let got: Vec<(usize, Result<Bytes, Error>)> = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            driver
                .files(Source::paths(&paths))
                .unwrap()
                .collect::<Vec<_>>(),
        )
        .await
        .expect("collecting every file's bytes hung")
    });
    assert_eq!(got.len(), 40);
    let mut held = 0;
    for (k, (i, r)) in got.iter().enumerate() {
        assert_eq!(k, *i);
        match r {
            Ok(b) => assert!(b[..] == fs::read(&paths[k]).unwrap()[..]),
            Err(e @ Error::BuffersHeld { .. }) => {
                held += 1;
                assert_eq!(e.path(), Some(paths[k].as_path()));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(held > 0, "1 MiB cannot hold 40 x 100 kB");
    assert!(driver.stats().peak_buffer_bytes <= 1 << 20);
    drop(got);
    drop(rt);
    wait_idle(&driver);
}

/// One task holds the bytes of earlier whole-file reads (`read_whole`) worth the driver's whole
/// budget and awaits another: only it could give a buffer back, so the wait would never end. The
/// read says so instead (`Error::BudgetHeld`, naming the files held), as do the files of a
/// `Driver::files` stream (the stream goes on) and `RangeFile::read_at`; once the bytes are
/// dropped the same files read.
#[test]
fn holding_read_results_while_awaiting_another_read_is_an_error_not_a_hang() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    let paths: Vec<PathBuf> = (0..6)
        .map(|i| {
            write_file(
                dir.path(),
                &format!("r{i}"),
                &random_bytes(256 << 10, 60 + i),
            )
        })
        .collect();
    let budget = 1 << 20;
    let driver = Driver::with_budget(2, budget).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let limit = Duration::from_secs(20);
        let mut held = Vec::new();
        for p in &paths[..4] {
            held.push(read_whole(&driver, p).await.unwrap());
        }
        assert_eq!(driver.stats().held_bytes, budget);
        let e = tokio::time::timeout(limit, read_whole(&driver, &paths[4]))
            .await
            .expect("awaiting a read while holding the budget's worth of results hung")
            .unwrap_err();
        match &e {
            Error::BudgetHeld {
                path,
                budget: n,
                held,
                bytes,
                of,
            } => {
                assert_eq!(path, &paths[4]);
                assert_eq!((*n, *held, *bytes), (budget, 4, budget));
                let want: Vec<(PathBuf, usize)> =
                    paths[..4].iter().map(|p| (p.clone(), 1)).collect();
                assert_eq!(of, &want);
            }
            e => panic!("expected BudgetHeld, got {e}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("this task holds all") && msg.contains("4 chunks or files"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("{} (1)", paths[0].display())),
            "{msg}"
        );
        // Driver::files: each file says so, and the stream goes on to its end.
        let items = tokio::time::timeout(
            limit,
            all(driver.files(Source::paths(&paths[4..])).unwrap()),
        )
        .await
        .expect("Driver::files while holding the budget hung");
        assert_eq!(items.len(), 2);
        for (k, r) in items.iter().enumerate() {
            match r {
                Err(e @ Error::BudgetHeld { .. }) => {
                    assert_eq!(e.path(), Some(paths[4 + k].as_path()))
                }
                other => panic!("expected BudgetHeld, got {other:?}"),
            }
        }
        // read_at: the same.
        let f = driver.range_file(&paths[5]).unwrap();
        let e = tokio::time::timeout(limit, f.read_at(4096, 4096))
            .await
            .expect("read_at while holding the budget hung")
            .unwrap_err();
        assert!(matches!(e, Error::BudgetHeld { held: 4, .. }), "{e}");
        // Dropped, the bytes give the budget back.
        drop(held);
        let got = tokio::time::timeout(limit, read_whole(&driver, &paths[4]))
            .await
            .expect("hung with the budget free")
            .unwrap();
        assert!(got[..] == fs::read(&paths[4]).unwrap()[..]);
        let page = f.read_at(4096, 4096).await.unwrap();
        assert!(page[..] == fs::read(&paths[5]).unwrap()[4096..8192]);
    });
    drop(rt);
    wait_idle(&driver);
}

/// Futures and streams dropped at every stage (before the first poll, after it, part way through,
/// with bytes kept past the drop): nothing is left in flight, every buffer goes back, and no
/// descriptor is left open.
#[test]
fn dropping_part_way_leaves_nothing_in_flight() {
    let _g = exclusive();
    let dir = tmpdir("stream-many");
    let sizes = tree_sizes(300, 11);
    let mut files: Vec<(PathBuf, Arc<Vec<u8>>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let d = random_bytes(n, 9000 + i as u64);
            (write_file(dir.path(), &format!("d{i}"), &d), Arc::new(d))
        })
        .collect();
    // Large files among them: their reads take long enough to be caught in flight.
    for i in (5..300).step_by(37) {
        let d = random_bytes(6 << 20, i as u64);
        fs::write(&files[i].0, &d).unwrap();
        files[i].1 = Arc::new(d);
    }
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let driver = Driver::with_budget(2, 32 << 20).unwrap();
    let before = open_fds();
    let rt = runtime();
    let waker = futures_util::task::noop_waker();
    for round in 0..40usize {
        rt.block_on(async {
            // A future dropped after one poll.
            let mut one = Box::pin(read_whole(&driver, &paths[(round * 37 + 5) % 300]));
            let _ = one.as_mut().poll(&mut Context::from_waker(&waker));
            drop(one);
            // A stream dropped before any poll, after one, and after `take` items.
            drop(driver.files(Source::paths(&paths)).unwrap());
            let mut s = driver.files(Source::paths(&paths[round..])).unwrap();
            let _ = futures_core::Stream::poll_next(
                std::pin::Pin::new(&mut s),
                &mut Context::from_waker(&waker),
            );
            drop(s);
            let take = round % 9;
            let mut s = driver
                .files(Source::paths(&paths[round..]))
                .unwrap()
                .files_in_flight(16 + round);
            let mut kept = Vec::new();
            for k in 0..take {
                let (i, r) = s.next().await.unwrap();
                assert_eq!(i, k);
                let b = r.unwrap();
                assert!(b[..] == files[round + i].1[..]);
                if k % 2 == 0 {
                    kept.push((round + i, b));
                }
            }
            drop(s);
            // Bytes kept past the stream still hold the right bytes.
            tokio::task::yield_now().await;
            for (i, b) in &kept {
                assert!(b[..] == files[*i].1[..]);
            }
        });
        wait_idle(&driver);
    }
    drop(rt);
    assert_eq!(open_fds(), before, "a descriptor was left open");
    let st = driver.stats();
    // Buffered reads of cached data complete inside the submission, so whether a drop catches an
    // operation in the kernel here is chance (`a_stuck_statx_is_cancelled_when_dropped` makes sure).
    eprintln!("{st:?}");
    assert!(st.peak_buffer_bytes <= 32 << 20);
}

/// A driver whose `Cancel` fires: the stream's next item is `Interrupted`, and it ends; after a
/// reset the driver reads again.
#[test]
fn a_cancelled_driver_interrupts_whole_file_reads() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    let paths: Vec<PathBuf> = (0..50)
        .map(|i| write_file(dir.path(), &format!("c{i}"), &random_bytes(50_000, i)))
        .collect();
    let driver = Driver::new().unwrap();
    let cancel = ringread::Cancel::new().unwrap();
    driver.set_cancel(cancel.clone());
    let rt = runtime();
    rt.block_on(async {
        let mut s = driver.files(Source::paths(&paths)).unwrap();
        let (i, first) = s.next().await.unwrap();
        assert_eq!(i, 0);
        assert!(first.unwrap()[..] == fs::read(&paths[0]).unwrap()[..]);
        cancel.cancel();
        let (i, r) = s.next().await.unwrap();
        assert_eq!(i, 1);
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Interrupted { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("{}: interrupted", paths[1].display())
        );
        assert!(s.next().await.is_none());
        let e = read_whole(&driver, &paths[2]).await.unwrap_err();
        assert!(matches!(e, Error::Interrupted { .. }), "{e}");
    });
    wait_idle(&driver);
    cancel.reset();
    let got = rt.block_on(read_whole(&driver, &paths[3])).unwrap();
    assert!(got[..] == fs::read(&paths[3]).unwrap()[..]);
    drop(got);
    drop(rt);
    wait_idle(&driver);
}

/// procfs says 0 bytes for files that have some: such a file is read to its end (within a page on
/// the ring, past it on a helper thread), not handed out empty; sysfs-like sizes (4096 for a few
/// bytes) end at the real end; an empty file on tmpfs is empty.
#[test]
fn procfs_files_are_read_to_their_end() {
    let _g = shared();
    let driver = Driver::new().unwrap();
    let rt = runtime();
    rt.block_on(async {
        // Less than a page: read on the ring.
        let status = read_whole(&driver, "/proc/self/status").await.unwrap();
        assert!(status.starts_with(b"Name:"), "{status:?}");
        assert!(status.ends_with(b"\n"));
        let got = all(driver
            .files(Source::paths(["/proc/self/stat", "/proc/version"]))
            .unwrap())
        .await;
        assert!(got.iter().all(|r| !r.as_ref().unwrap().is_empty()));
        // More than a page: read to its end on a helper thread.
        let smaps = read_whole(&driver, "/proc/self/smaps").await.unwrap();
        assert!(smaps.len() > 4096, "{}", smaps.len());
        assert!(smaps.ends_with(b"\n"));
        let want = fs::read("/proc/self/smaps").unwrap();
        assert!(want.len() > 4096);
        let e = read_whole(&driver, "/proc/self/nonexistent")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Open { .. }), "{e}");
    });
    if Path::new("/dev/shm").is_dir() {
        let empty = tempfile::NamedTempFile::new_in("/dev/shm").unwrap();
        let full = tempfile::NamedTempFile::new_in("/dev/shm").unwrap();
        fs::write(full.path(), random_bytes(10_000, 3)).unwrap();
        let got = rt.block_on(all(driver
            .files(Source::paths([empty.path(), full.path()]))
            .unwrap()));
        assert!(got[0].as_ref().unwrap().is_empty());
        assert!(got[1].as_ref().unwrap()[..] == fs::read(full.path()).unwrap()[..]);
    }
    if Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
        let p = "/sys/kernel/mm/transparent_hugepage/enabled";
        let got = rt.block_on(read_whole(&driver, p)).unwrap();
        assert_eq!(got[..], fs::read(p).unwrap()[..]);
    }
    drop(rt);
    wait_idle(&driver);
}

/// The child half of `without_io_uring_the_lanes_read_whole_files_with_system_calls`: runs only
/// when that test starts this binary with io_uring refused.
#[test]
fn child_reads_whole_files_without_io_uring() {
    let Some(dir) = std::env::var_os("RINGREAD_WHOLE_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let driver = Driver::with_threads(2).unwrap();
    assert!(driver.notice().is_some(), "io_uring was not refused");
    let rt = runtime();
    let mut paths: Vec<PathBuf> = (0..30).map(|i| dir.join(format!("n{i}"))).collect();
    paths.push(dir.join("missing"));
    let got = rt.block_on(all(driver
        .files(Source::paths(&paths))
        .unwrap()
        .files_in_flight(8)));
    for (p, r) in paths.iter().zip(&got).take(30) {
        assert!(r.as_ref().unwrap()[..] == fs::read(p).unwrap()[..]);
    }
    assert!(got[30].is_err());
    let one = rt.block_on(read_whole(&driver, &paths[7])).unwrap();
    assert!(one[..] == fs::read(&paths[7]).unwrap()[..]);
    drop((one, got));
    drop(rt);
    wait_idle(&driver);
    println!("child: whole files read without io_uring");
}

/// io_uring refused by a seccomp filter (as a container's profile does): the driver's lanes serve
/// whole-file reads with `statx(2)`, `open(2)`, `pread(2)` and `close(2)`, same bytes.
#[test]
fn without_io_uring_the_lanes_read_whole_files_with_system_calls() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    for (i, n) in tree_sizes(30, 3).into_iter().enumerate() {
        write_file(dir.path(), &format!("n{i}"), &random_bytes(n, i as u64));
    }
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_reads_whole_files_without_io_uring",
        "--nocapture",
    ])
    .env("RINGREAD_WHOLE_CHILD", dir.path());
    common::deny_io_uring(&mut cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child: whole files read without io_uring"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file that grows while it is read: the bytes up to the size `statx` gave (a prefix of what
/// `std::fs::read` would see later), never garbage past the end.
#[test]
fn a_file_appended_to_is_read_to_its_size_at_the_statx() {
    let _g = shared();
    let dir = tmpdir("stream-many");
    let data = random_bytes(1 << 20, 21);
    let p = write_file(dir.path(), "grows", &data);
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p2, stop2) = (p.clone(), Arc::clone(&stop));
    let writer = std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new().append(true).open(p2).unwrap();
        let mut len = 1 << 20;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            f.write_all(&[7u8; 4096]).unwrap();
            len += 4096;
            if len > 16 << 20 {
                // Back to the first MiB (a read may see it shrink: still a prefix).
                f.set_len(1 << 20).unwrap();
                len = 1 << 20;
            }
        }
    });
    rt.block_on(async {
        for _ in 0..20 {
            let got = read_whole(&driver, &p).await.unwrap();
            assert!(got.len() >= data.len());
            assert!(got[..data.len()] == data[..]);
            assert!(got[data.len()..].iter().all(|&b| b == 7));
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    drop(rt);
    wait_idle(&driver);
}

/// The future of one whole file (`read_whole`: `ReadMany::next_file` in an async block) and the
/// stream are `Send + 'static` (for `tokio::spawn`).
#[test]
fn futures_and_streams_are_send_and_static() {
    fn send_static<T: Send + 'static>(_: &T) {}
    let driver = Driver::with_threads(1).unwrap();
    let f = read_whole(&driver, "Cargo.toml");
    send_static(&f);
    let s = driver.files(Source::paths(["Cargo.toml"])).unwrap();
    send_static(&s);
    drop((f, s));
}

/// A FUSE file whose server answers every read short, opened with `FOPEN_DIRECT_IO`: io_uring
/// reports such replies as full reads (see tests/fuse.rs), so the lane reads FUSE files with
/// `read(2)`; the bytes are the server's, every one.
#[test]
fn a_fuse_file_answering_short_is_read_whole() {
    let _g = shared();
    let (_dir, _session, root) = fuse::mount(fuse::Faults {
        size: 300_007,
        short: true,
        ..fuse::Faults::default()
    });
    let file = root.join("data");
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let got = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), read_whole(&driver, &file))
            .await
            .expect("reading the FUSE file hung")
            .unwrap()
    });
    let want = fuse::expected(300_007);
    assert_eq!(got.len(), want.len());
    assert!(got[..] == want[..], "bytes the server never sent");
    drop(got);
    drop(rt);
    wait_idle(&driver);
}

/// A `statx` that cannot complete (its file system's lookup waits) while a one-file future
/// (`read_whole`) and a `Driver::files` stream are dropped: the lane cancels it
/// (`IORING_OP_ASYNC_CANCEL`); when it does complete, nothing is left: no operation, no buffer, no
/// descriptor.
#[test]
fn a_stuck_statx_is_cancelled_when_dropped() {
    use std::sync::atomic::Ordering;
    let _g = exclusive();
    let gate = std::sync::Arc::new(fuse::Gate::default());
    let (_dir, session, root) = fuse::mount(fuse::Faults {
        gate: Some(gate.clone()),
        ..fuse::Faults::default()
    });
    let driver = Driver::new().unwrap();
    let before = open_fds();
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let until = Instant::now() + Duration::from_secs(60);
    let mut one = Box::pin(read_whole(&driver, root.join("stuck1")));
    assert!(one.as_mut().poll(&mut cx).is_pending());
    let dir = tmpdir("stream-many");
    let plain = write_file(dir.path(), "plain", &random_bytes(5000, 1));
    let mut many = driver
        .files(Source::paths([
            plain,
            root.join("stuck2"),
            root.join("stuck3"),
        ]))
        .unwrap();
    let _ = futures_core::Stream::poll_next(std::pin::Pin::new(&mut many), &mut cx);
    // The file system has the first lookup: its statx is in the kernel, in a lane's ring.
    while gate.waiting.load(Ordering::Acquire) == 0 {
        assert!(
            Instant::now() < until,
            "the statx never reached the file system"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let cancelled = driver.stats().cancelled;
    drop(one);
    drop(many);
    while driver.stats().cancelled < cancelled + 1 {
        assert!(
            Instant::now() < until,
            "no cancel sent: {:?}",
            driver.stats()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(driver.stats().in_flight > 0, "{:?}", driver.stats());
    gate.open();
    wait_idle(&driver);
    assert_eq!(open_fds(), before, "a descriptor was left open");
    drop(session);
}

/// `ReadMany::dontcache`: every size's bytes as `std::fs::read` gives them; cold files are left
/// (almost) uncached, cached ones stay cached; without it, a cold file read whole is cached.
#[test]
fn uncached_whole_files_leave_the_page_cache_as_it_was() {
    use std::os::fd::AsRawFd;
    let _g = shared();
    let dir = tmpdir("stream-many-dontcache");
    let driver = Driver::new().unwrap();
    let sizes = [0usize, 1, 4095, 4096, 4097, (1 << 20) + 1, 8 << 20];
    let files: Vec<(PathBuf, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let data = random_bytes(n, i as u64 + 40);
            let p = write_file(dir.path(), &format!("u{i}"), &data);
            (p, data)
        })
        .collect();
    let cached = |p: &Path| {
        ringread::residency::of_file(&fs::File::open(p).unwrap())
            .unwrap()
            .cached
    };
    let evict = |p: &Path| {
        let f = fs::File::open(p).unwrap();
        f.sync_all().unwrap();
        // SAFETY: advice on a descriptor we hold.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(cached(p), 0, "{} still cached", p.display());
    };
    let rt = runtime();
    let paths: Vec<&PathBuf> = files.iter().map(|(p, _)| p).collect();
    for (p, _) in &files {
        evict(p);
    }
    let got = rt.block_on(all(driver
        .files(Source::paths(&paths))
        .unwrap()
        .dontcache(true)));
    for ((p, data), r) in files.iter().zip(got) {
        assert!(r.unwrap() == data[..], "{}: bytes differ", p.display());
        let left = cached(p);
        assert!(
            left as f64 <= 0.02 * data.len() as f64,
            "{}: {left} bytes of {} left cached",
            p.display(),
            data.len()
        );
    }
    // Cached before: stays cached.
    let (big, data) = &files[files.len() - 1];
    assert_eq!(fs::read(big).unwrap().len(), data.len());
    let got = rt.block_on(all(driver
        .files(Source::paths([big]))
        .unwrap()
        .dontcache(true)));
    assert!(got[0].as_ref().unwrap()[..] == data[..]);
    assert!(cached(big) as f64 >= 0.95 * data.len() as f64, "evicted");
    // Without it: a cold file read whole is cached after.
    evict(big);
    let got = rt.block_on(all(driver.files(Source::paths([big])).unwrap()));
    assert!(got[0].as_ref().unwrap()[..] == data[..]);
    assert!(cached(big) as f64 >= 0.95 * data.len() as f64, "not cached");
}
