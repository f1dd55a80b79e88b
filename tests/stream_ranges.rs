//! Random access from async code (`RangeFile::read_at`, `RangeFile::ranges`) in tokio's
//! multi-threaded runtime: every range shape against slices of `std::fs::read`, from many tasks at
//! once; futures dropped mid-read (no read, buffer or byte of budget left over); the budget spent
//! (a read waits, the pool does not grow); the file shrinking under the reads (the error names the
//! offset).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::StreamExt;
use ringread::ranges::ByteRange;
use ringread::stream::Driver;
use ringread::{Error, ReadOptions, Source};

mod common;
use common::random_bytes;
use common::stream::{runtime, tmpdir, wait_idle, write_file};

const SIZE: usize = (2 << 20) + 777;

fn slice(data: &[u8], off: u64, len: usize) -> &[u8] {
    let a = (off as usize).min(data.len());
    &data[a..(a + len).min(data.len())]
}

#[test]
fn read_at_from_64_tasks_gives_the_files_bytes() {
    read_at_from_64_tasks(false);
}

#[test]
fn read_at_under_o_direct_gives_the_files_bytes() {
    read_at_from_64_tasks(true);
}

/// Every shape, then 64 tasks of random reads, then the ranges stream: buffered, or with
/// `O_DIRECT` (reads widened to the alignment, only the asked bytes handed out).
fn read_at_from_64_tasks(direct: bool) {
    let dir = tmpdir("ringread-read-at-");
    let data = random_bytes(SIZE, 3);
    let path = write_file(dir.path(), "f", &data);
    let driver = Driver::with_budget(2, 4 << 20).unwrap();
    let opts = ringread::ReadOptions::builder()
        .direct(direct)
        .build()
        .unwrap();
    let file = driver
        .with_options(opts)
        .unwrap()
        .range_file(&path)
        .unwrap();
    assert_eq!(file.direct(), direct, "{:?}", file.notices());
    let n = SIZE as u64;
    let shapes: Vec<(u64, usize)> = vec![
        (0, 1),
        (n - 1, 1),
        (0, 4096),
        (4095, 2),
        (65_535, 70_000),
        (n - 10, 4096),
        (n, 10),
        (n + 12_345, 4096),
        (7, 0),
        (1 << 20, 1 << 20),
        ((1 << 20) + 1, 1 << 20),
        (n - 5000, 9000),
        (4097, 4095),
        (8191, 4097),
    ];
    runtime().block_on(async {
        for &(off, len) in &shapes {
            let b = file.read_at(off, len).await.unwrap();
            assert!(b == slice(&data, off, len), "read_at({off}, {len})");
        }
        // Exact reads: whole inside the file, or an error at the offset where the file ends.
        let b = file.read_exact_at(4097, 8190).await.unwrap();
        assert!(b == slice(&data, 4097, 8190));
        match file.read_exact_at(n - 100, 4096).await {
            Err(Error::Read { offset, .. }) => assert_eq!(offset, n, "where the bytes stopped"),
            other => panic!("read_exact_at past the end: {other:?}"),
        }
        let data = std::sync::Arc::new(data);
        let tasks: Vec<_> = (0..64u64)
            .map(|t| {
                let (file, data) = (file.clone(), data.clone());
                tokio::spawn(async move {
                    let mut s = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for _ in 0..300 {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        let off = s % (n + 5000);
                        let len = 1 + (s >> 40) as usize % 20_000;
                        let b = file.read_at(off, len).await.unwrap();
                        assert!(b == slice(&data, off, len), "read_at({off}, {len})");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // The ranges stream: request order, several in flight.
        let ranges: Vec<ByteRange> = shapes
            .iter()
            .filter(|&&(_, l)| l > 0)
            .map(|&(o, l)| ByteRange::new(o, l as u64))
            .collect();
        let got: Vec<(u64, bytes::Bytes)> = file
            .ranges(ranges.clone(), 4)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(got.len(), ranges.len());
        for ((off, b), r) in got.iter().zip(&ranges) {
            assert_eq!(*off, r.offset);
            assert!(b == slice(&data, r.offset, r.len as usize));
        }
    });
    wait_idle(&driver);
}

#[test]
fn futures_dropped_mid_read_leave_nothing_behind() {
    let dir = tmpdir("ringread-read-at-cancel-");
    let data = random_bytes(8 << 20, 4);
    let path = write_file(dir.path(), "f", &data);
    let driver = Driver::with_budget(2, 16 << 20).unwrap();
    let file = driver.range_file(&path).unwrap();
    runtime().block_on(async {
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let file = file.clone();
                tokio::spawn(async move {
                    let mut read = pin!(file.read_at((i * 40_961) % (8 << 20), 1 << 20));
                    // Start the read, then drop it after a few polls (some before the driver has
                    // it, some in the kernel, some done).
                    for _ in 0..(i % 4) {
                        let _ =
                            std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Aborted tasks too.
        let tasks: Vec<_> = (0..100u64)
            .map(|i| {
                let file = file.clone();
                tokio::spawn(async move { file.read_at(i * 4096, 1 << 20).await })
            })
            .collect();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    wait_idle(&driver);
    let s = driver.stats();
    assert!(s.peak_buffer_bytes <= s.budget, "{s:?}");
    // The file is still readable after all that.
    let b = runtime().block_on(file.read_at(100, 50)).unwrap();
    assert!(b == data[100..150]);
}

/// A `read_at` keeps its driver busy until the driver's thread has woken its task, not only until
/// its result is recorded: that thread holds the task's waker (with tokio, the task and its runtime)
/// inside `wake`, so an idle driver must mean no thread of it holds one (`DriverStats::delivering`;
/// issue 23; the stream's case is `a_driver_is_not_idle_while_its_thread_still_holds_a_task` in
/// tests/stream.rs). The task here is polled again while the thread is held inside `wake` (as if
/// woken some other way), takes its bytes and drops them.
#[test]
fn a_read_at_keeps_the_driver_busy_until_its_task_is_woken() {
    use common::stream::{wake_then_idle, OpenOnDrop, WakeGate};
    let dir = tmpdir("ringread-read-at-wake-");
    let data = random_bytes(8192, 5);
    let path = write_file(dir.path(), "f", &data);
    let driver = Driver::with_threads(1).unwrap();
    let gate = WakeGate::new();
    let _open = OpenOnDrop(Arc::clone(&gate));
    // The read goes to the driver's thread (a cached one would complete in the first poll).
    let no_fast = ReadOptions::builder()
        .cached_fast_path(false)
        .build()
        .unwrap();
    let file = driver
        .with_options(no_fast)
        .unwrap()
        .range_file(&path)
        .unwrap();
    let mut read = Box::pin(file.read_at(100, 4096));
    let waker = gate.waker();
    assert!(read
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    drop(waker);
    gate.wait_entered();
    let got = match read.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("the result is recorded before the task is woken"),
    };
    assert!(got == data[100..4196]);
    drop((got, read));
    let st = driver.stats();
    assert_eq!(st.held_bytes, 0, "{st:?}");
    wake_then_idle(&driver, &gate, st);
}

#[test]
fn a_spent_budget_makes_reads_wait_without_growing() {
    let dir = tmpdir("ringread-read-at-budget-");
    let data = random_bytes(1 << 20, 5);
    let path = write_file(dir.path(), "f", &data);
    let budget = 3 * 4096;
    let driver = Driver::with_budget(1, budget).unwrap();
    let file = driver.range_file(&path).unwrap();
    runtime().block_on(async {
        // Read by another task (which hands them over): the budget is spent by bytes that task
        // took. Had this task read them, its fourth read would be told it holds the whole budget
        // (`Error::BudgetHeld`, tests/stream_many.rs) rather than wait.
        let f = file.clone();
        let held: Vec<bytes::Bytes> = tokio::spawn(async move {
            futures_util::future::try_join_all((0..3u64).map(|i| f.read_at(i * 4096, 4096))).await
        })
        .await
        .unwrap()
        .unwrap();
        let mut fourth = pin!(file.read_at(5 * 4096, 4096));
        let first = std::future::poll_fn(|cx| Poll::Ready(fourth.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "a read got a buffer beyond the budget");
        let s = driver.stats();
        assert_eq!(s.buffer_bytes, budget, "{s:?}");
        assert_eq!(s.waiting_streams, 1, "{s:?}");
        drop(held.into_iter().next());
        let b = tokio::time::timeout(Duration::from_secs(20), fourth)
            .await
            .expect("a buffer came back: the waiting read goes on")
            .unwrap();
        assert!(b == data[5 * 4096..6 * 4096]);
        assert!(driver.stats().peak_buffer_bytes <= budget);
        // A read larger than the whole budget is refused, not waited for.
        let e = file.read_at(0, budget + 1).await.unwrap_err();
        assert!(matches!(e, Error::InvalidOptions(_)), "{e}");
    });
    wait_idle(&driver);
}

#[test]
fn a_file_shrinking_under_the_reads_names_the_offset() {
    let dir = tmpdir("ringread-read-at-shrink-");
    let data = random_bytes(1 << 20, 6);
    let path = write_file(dir.path(), "f", &data);
    let driver = Driver::with_budget(2, 1 << 20).unwrap();
    let file = driver.range_file(&path).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100_000)
        .unwrap();
    runtime().block_on(async {
        let b = file.read_at(99_990, 4096).await.unwrap();
        assert!(b == data[99_990..100_000]);
        match file.read_exact_at(99_990, 4096).await {
            Err(Error::Read {
                offset, path: p, ..
            }) => {
                assert_eq!(offset, 100_000);
                assert_eq!(p, path);
            }
            other => panic!("expected a read error at 100000, got {other:?}"),
        }
        match file.read_exact_at(200_000, 10).await {
            Err(
                e @ Error::Read {
                    offset: 200_000, ..
                },
            ) => {
                assert!(e.to_string().contains("200000"), "{e}");
            }
            other => panic!("expected a read error at 200000, got {other:?}"),
        }
        // Many ranges at once, read in any order: the error names the first range (by offset) the
        // file lacks (100,007: the file ends before it), whichever read failed first.
        let asked: Vec<ByteRange> = (0..200u64)
            .rev()
            .map(|i| ByteRange::new(i * 5_000 + 7, 4096))
            .collect();
        for gap in [None, Some(64 << 10)] {
            match file.read_ranges(&asked, gap).await {
                Err(Error::Read { offset, .. }) => assert_eq!(offset, 100_007, "gap {gap:?}"),
                other => panic!("expected a read error at 100007, got {other:?}"),
            }
        }
    });
    wait_idle(&driver);
}

#[test]
fn a_pipe_is_refused() {
    let (r, _w) = common::pipe(0);
    let driver = Driver::with_threads(1).unwrap();
    let e = driver.range_file(Source::file(r, "a pipe")).unwrap_err();
    assert!(matches!(e, Error::InvalidOptions(_)), "{e}");
}

/// A `read_at` of cached bytes is read on the polling thread (`RWF_NOWAIT`) and resolves in its
/// first poll, crossing no thread; one of bytes the cache lacks goes to the driver's thread. Both
/// give the file's bytes, at the edges of pages and of the file.
#[test]
fn a_cached_read_at_resolves_in_its_first_poll_and_an_uncached_one_goes_to_the_driver() {
    use std::os::fd::AsRawFd;
    let dir = tmpdir("ringread-read-at-fast-");
    let data = random_bytes(3 * 4096 + 17, 8);
    let path = write_file(dir.path(), "f", &data);
    let driver = Driver::with_threads(1).unwrap();
    let file = driver.range_file(&path).unwrap();
    std::fs::read(&path).unwrap();
    for (offset, len) in [
        (0, 1),
        (4095, 2),
        (4096, 4096),
        (100, 3 * 4096),
        (3 * 4096, 100),
    ] {
        let before = driver.stats().cached_chunks;
        let mut read = Box::pin(file.read_at(offset, len));
        let got = match read.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => panic!("a cached read_at({offset}, {len}) waited"),
        };
        let end = (offset as usize + len).min(data.len());
        assert!(got == data[offset as usize..end], "{offset} {len}");
        assert_eq!(driver.stats().cached_chunks, before + 1);
    }
    // Not cached: the driver reads it.
    let f = std::fs::File::open(&path).unwrap();
    f.sync_all().unwrap(); // dirty pages are not dropped
                           // SAFETY: posix_fadvise on a descriptor `f` owns; no memory is passed.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let before = driver.stats().cached_chunks;
    let got = runtime().block_on(file.read_exact_at(4000, 8000)).unwrap();
    assert!(got == data[4000..12000]);
    assert_eq!(driver.stats().cached_chunks, before, "read by the driver");
}
