//! The async stream interface (`ringread::stream`) in tokio's multi-threaded runtime: the bytes
//! against `std::fs::read`, the adapters against tokio's own utilities, backpressure, and
//! cancellation (many streams dropped at random points; no buffer, read or descriptor left over).
//!
//! Tests that count this process's descriptors take `common::exclusive()`; every other test takes
//! `common::shared()`.

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use ringread::stream::{Driver, FileStream, OwnedChunk};
use ringread::{Error, ReadOptions, Source};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

mod common;
use common::stream::{runtime, tmpdir, wait_idle, write_file};
use common::{exclusive, open_fds, pipe, random_bytes, shared};

/// A small random-number generator for choosing sizes and drop points (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Whether the streams of these tests read cached chunks on the polling thread: yes here; no when
/// this file runs again as a module of tests/stream_driver.rs, so that every test also covers the
/// driver's path alone.
fn fast_path() -> bool {
    !module_path!().starts_with("stream_driver")
}

/// Options with the default values but the fast path as [`fast_path`] says.
fn builder() -> ringread::options::ReadOptionsBuilder {
    ReadOptions::builder().cached_fast_path(fast_path())
}

fn opts(chunk: usize, depth: usize, direct: bool) -> ReadOptions {
    builder()
        .chunk_size(chunk)
        .depth(depth)
        .direct(direct)
        .build()
        .unwrap()
}

/// Collects a stream, checking that offsets run on without gaps and every chunk is non-empty.
async fn collect(mut s: FileStream) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        let c = c?;
        assert_eq!(
            c.offset(),
            out.len() as u64,
            "chunks out of order or with a gap"
        );
        assert!(!c.is_empty(), "an empty chunk was handed out");
        out.extend_from_slice(&c);
    }
    assert!(s.next().await.is_none(), "a stream went on after its end");
    Ok(out)
}

#[test]
fn bytes_match_std_for_sizes_on_every_boundary() {
    let _g = shared();
    let dir = tmpdir("stream");
    let driver = Driver::new().unwrap();
    assert!(
        driver.notice().is_none(),
        "io_uring refused: {:?}",
        driver.notice()
    );
    let rt = runtime();
    for &(chunk, depth, direct) in &[
        (4096, 1, false),
        (4096, 3, false),
        (65536, 8, false),
        (65536, 2, true),
        (1 << 20, 4, true),
        (5000, 4, false),
    ] {
        let d = driver.with_options(opts(chunk, depth, direct)).unwrap();
        for (i, &size) in [
            0usize,
            1,
            4095,
            4096,
            4097,
            chunk - 1,
            chunk,
            chunk + 1,
            3 * chunk + 17,
            8 << 20,
        ]
        .iter()
        .enumerate()
        {
            let data = random_bytes(size, (chunk + size) as u64);
            let p = write_file(dir.path(), &format!("f{chunk}-{depth}-{i}"), &data);
            let s = d.chunks(&p).unwrap();
            let got = rt.block_on(collect(s)).unwrap();
            assert_eq!(
                got.len(),
                fs::read(&p).unwrap().len(),
                "{chunk} {depth} {direct} {size}"
            );
            assert!(
                got == data,
                "bytes differ: chunk {chunk} depth {depth} direct {direct} size {size}"
            );
        }
    }
    drop(rt);
    wait_idle(&driver);
}

#[test]
fn max_bytes_and_a_file_handed_over_part_read() {
    let _g = shared();
    let dir = tmpdir("stream");
    let data = random_bytes(300_000, 7);
    let p = write_file(dir.path(), "f", &data);
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let o = builder()
        .chunk_size(4096)
        .depth(4)
        .max_bytes(100_001)
        .build()
        .unwrap();
    let got = rt
        .block_on(collect(driver.with_options(o).unwrap().chunks(&p).unwrap()))
        .unwrap();
    assert!(got == data[..100_001]);

    // A file handed over is streamed from its position; chunk offsets are file offsets.
    let mut f = File::open(&p).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(12_345)).unwrap();
    let mut s = driver
        .with_options(opts(4096, 4, false))
        .unwrap()
        .chunks(Source::file(f, "handed"))
        .unwrap();
    let first = rt.block_on(s.next()).unwrap().unwrap();
    assert_eq!(first.offset(), 12_345);
    let mut got = first.to_vec();
    rt.block_on(async {
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
    });
    assert!(got == data[12_345..]);
}

#[test]
fn bytes_conversion_does_not_copy_and_outlives_the_stream() {
    let _g = shared();
    let dir = tmpdir("stream");
    let data = random_bytes(1 << 20, 3);
    let p = write_file(dir.path(), "f", &data);
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let kept: Vec<Bytes> = rt.block_on(async {
        let mut s = driver
            .with_options(opts(65536, 4, false))
            .unwrap()
            .chunks(&p)
            .unwrap();
        let mut kept = Vec::new();
        for _ in 0..3 {
            let c = s.next().await.unwrap().unwrap();
            let ptr = c.as_ptr();
            let b = c.into_bytes();
            assert_eq!(b.as_ptr(), ptr, "into_bytes copied the chunk");
            kept.push(b);
        }
        // Clones share the buffer; the stream is dropped with three buffers still lent out.
        kept.push(kept[0].clone());
        kept
    });
    assert_eq!(
        driver.stats().live_buffers,
        1,
        "buffers freed while Bytes hold them"
    );
    assert!(kept[0][..] == data[..65536]);
    assert!(kept[1][..] == data[65536..131072]);
    assert!(kept[2][..] == data[131072..196608]);
    assert_eq!(kept[3].as_ptr(), kept[0].as_ptr());
    drop(kept);
    wait_idle(&driver);
}

#[test]
fn holding_chunks_stops_reading_backpressure() {
    let _g = shared();
    let dir = tmpdir("stream");
    let data = random_bytes(64 * 4096, 11);
    let p = write_file(dir.path(), "f", &data);
    let driver = Driver::new().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let depth = 4;
        let mut s = driver
            .with_options(opts(4096, depth, false))
            .unwrap()
            .chunks(&p)
            .unwrap();
        let mut held: Vec<OwnedChunk> = Vec::new();
        for _ in 0..depth - 1 {
            held.push(s.next().await.unwrap().unwrap());
        }
        // One buffer left: the stream reads into it and nothing more, whatever the driver does.
        let next = s.next().await.unwrap().unwrap();
        assert_eq!(next.offset(), (depth as u64 - 1) * 4096);
        assert!(
            driver.stats().in_flight <= 1,
            "more reads than free buffers"
        );
        held.push(next);
        // One chunk given back: one buffer to read into, and the next chunk comes.
        let first = held.remove(0);
        assert_eq!(first.offset(), 0);
        drop(first);
        let next = s.next().await.unwrap().unwrap();
        assert_eq!(next.offset(), depth as u64 * 4096);
        assert!(next[..] == data[depth * 4096..(depth + 1) * 4096]);
        held.push(next);
        // Now every buffer is lent out and nothing is in flight: polling says so at once instead of
        // waiting for a drop that this task would have to make.
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut polls = 0;
        let e = loop {
            match futures_core::Stream::poll_next(std::pin::Pin::new(&mut s), &mut cx) {
                Poll::Ready(Some(Err(e))) => break e,
                Poll::Ready(other) => panic!("expected BuffersHeld, got {other:?}"),
                // Reads still in flight complete first (there are none here, but be fair).
                Poll::Pending => {
                    polls += 1;
                    assert!(polls < 10_000, "never reported the held buffers");
                    tokio::task::yield_now().await;
                }
            }
        };
        assert!(
            matches!(e, Error::BuffersHeld { held, .. } if held == depth),
            "{e}"
        );
        assert!(e.to_string().contains("drop chunks"), "{e}");
        assert_eq!(
            driver.stats().in_flight,
            0,
            "a read started with no free buffer"
        );
        assert!(
            s.next().await.is_none(),
            "the stream goes on after the error"
        );
    });
}

/// `collect()`ing a stream holds every chunk: with more chunks than buffers that used to hang
/// forever; now the stream says why.
#[test]
fn collecting_more_chunks_than_buffers_is_an_error_not_a_hang() {
    let _g = shared();
    let dir = tmpdir("stream");
    let p = write_file(dir.path(), "f", &random_bytes(10 * 4096 + 5, 12));
    let driver = Driver::new().unwrap();
    let depth3 = driver.with_options(opts(4096, 3, false)).unwrap();
    let rt = runtime();
    let items: Vec<Result<OwnedChunk, Error>> = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            depth3.chunks(&p).unwrap().collect(),
        )
        .await
        .expect("collect() hung")
    });
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(items[..3].iter().all(|c| c.is_ok()));
    assert!(
        matches!(items[3], Err(Error::BuffersHeld { held: 3, .. })),
        "{:?}",
        items[3]
    );
    drop(items);
    // With few enough chunks for the buffers, collect() works.
    let small = write_file(dir.path(), "small", &random_bytes(2 * 4096, 13));
    let items: Vec<_> = rt.block_on(depth3.chunks(&small).unwrap().collect());
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|c: &Result<OwnedChunk, Error>| c.is_ok()));
    drop(items);
    wait_idle(&driver);
}

/// One task holds chunks of one stream worth the driver's whole budget and awaits another stream:
/// only that task could give a buffer back, so the wait would never end. The poll says so instead
/// (`Error::BudgetHeld`, naming what is held and the way out), through `next()` and through the
/// `AsyncRead` adapter; once the chunks are dropped the same file reads whole.
#[test]
fn holding_chunks_of_one_stream_while_awaiting_another_is_an_error_not_a_hang() {
    let _g = shared();
    let dir = tmpdir("stream");
    let a = write_file(dir.path(), "a", &random_bytes(8 * 65536, 51));
    let data = random_bytes(3 * 65536 + 7, 52);
    let b = write_file(dir.path(), "b", &data);
    let budget = 4 * 65536;
    let driver = Driver::with_budget(2, budget).unwrap();
    let d = driver.with_options(opts(65536, 4, false)).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let limit = Duration::from_secs(20);
        let mut sa = d.chunks(&a).unwrap();
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(sa.next().await.unwrap().unwrap().into_bytes());
        }
        assert_eq!(driver.stats().held_bytes, budget);
        let mut sb = d.chunks(&b).unwrap();
        let e = tokio::time::timeout(limit, sb.next())
            .await
            .expect("awaiting stream b while holding stream a's chunks hung")
            .unwrap()
            .unwrap_err();
        match &e {
            Error::BudgetHeld {
                path,
                budget: n,
                held,
                bytes,
                of,
            } => {
                assert_eq!(path, &b);
                assert_eq!((*n, *held, *bytes), (budget, 4, budget));
                assert_eq!(of, &[(a.clone(), 4)]);
            }
            e => panic!("expected BudgetHeld, got {e}"),
        }
        let msg = e.to_string();
        for words in [
            "this task holds all",
            "4 chunks or files",
            "drop them",
            "Driver::with_budget",
        ] {
            assert!(msg.contains(words), "{msg}");
        }
        assert!(msg.contains(&format!("{} (4)", a.display())), "{msg}");
        assert!(
            sb.next().await.is_none(),
            "the stream goes on after the error"
        );
        // The AsyncRead adapter: the same error, as an io::Error.
        let mut r = d.chunks(&b).unwrap().into_async_read();
        let mut got = Vec::new();
        let e = tokio::time::timeout(limit, r.read_to_end(&mut got))
            .await
            .expect("reading stream b through AsyncRead hung")
            .unwrap_err();
        assert!(e.to_string().contains("this task holds all"), "{e}");
        // Dropped, the chunks give the budget back.
        drop(held);
        let got = tokio::time::timeout(limit, collect(d.chunks(&b).unwrap()))
            .await
            .expect("hung with the budget free")
            .unwrap();
        assert!(got == data);
        drop(sa);
    });
    drop(rt);
    wait_idle(&driver);
}

/// The same budget held by chunks another task holds, and drops a little later: the waiter is not
/// told anything, it waits, and gets its bytes once they are dropped (no false error).
#[test]
fn chunks_another_task_holds_and_drops_are_waited_for() {
    let _g = shared();
    let dir = tmpdir("stream");
    let a = write_file(dir.path(), "a", &random_bytes(8 * 65536, 53));
    let data = random_bytes(3 * 65536 + 7, 54);
    let b = write_file(dir.path(), "b", &data);
    let budget = 4 * 65536;
    let driver = Driver::with_budget(2, budget).unwrap();
    let d = driver.with_options(opts(65536, 4, false)).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let (holding, held) = tokio::sync::oneshot::channel();
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let holder = {
            let (d, dropped) = (d.clone(), Arc::clone(&dropped));
            tokio::spawn(async move {
                let mut sa = d.chunks(&a).unwrap();
                let mut chunks = Vec::new();
                for _ in 0..4 {
                    chunks.push(sa.next().await.unwrap().unwrap());
                }
                holding.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                dropped.store(true, std::sync::atomic::Ordering::SeqCst);
                drop(chunks);
            })
        };
        held.await.unwrap();
        assert_eq!(driver.stats().held_bytes, budget);
        let got = tokio::time::timeout(Duration::from_secs(20), collect(d.chunks(&b).unwrap()))
            .await
            .expect("awaiting stream b hung after the other task dropped its chunks")
            .expect("an error although another task held the chunks");
        assert!(got == data);
        assert!(
            dropped.load(std::sync::atomic::Ordering::SeqCst),
            "stream b had a buffer before the other task dropped its chunks: nothing was waited for"
        );
        holder.await.unwrap();
    });
    drop(rt);
    wait_idle(&driver);
}

#[test]
fn adapters_work_with_tokio_copy_framed_read_and_lines() {
    use tokio_stream::wrappers::LinesStream;
    use tokio_util::codec::{FramedRead, LinesCodec};

    let _g = shared();
    let dir = tmpdir("stream");
    let driver = Driver::new().unwrap();
    let rt = runtime();
    // Text with lines of every length, so line ends fall on and around chunk boundaries.
    let mut text = String::new();
    let mut rng = Rng(42);
    while text.len() < 300_000 {
        let n = rng.below(9000) as usize;
        text.extend(std::iter::repeat_n('x', n));
        text.push('\n');
    }
    text.push_str("last line without newline");
    let p = write_file(dir.path(), "lines.txt", text.as_bytes());
    let want_lines: Vec<&str> = text.lines().collect();
    for &(chunk, depth) in &[(4096usize, 1usize), (4096, 4), (65536, 8), (5000, 3)] {
        let d = driver.with_options(opts(chunk, depth, false)).unwrap();
        rt.block_on(async {
            // tokio::io::copy
            let mut r = d.chunks(&p).unwrap().into_async_read();
            let mut out = Vec::new();
            let n = tokio::io::copy(&mut r, &mut out).await.unwrap();
            assert_eq!(n as usize, text.len());
            assert!(out == text.as_bytes());

            // FramedRead + LinesCodec
            let r = d.chunks(&p).unwrap().into_async_read();
            let lines: Vec<String> = FramedRead::new(r, LinesCodec::new())
                .map(|l| l.unwrap())
                .collect()
                .await;
            assert_eq!(lines, want_lines);

            // AsyncBufReadExt::lines through LinesStream
            let r = d.chunks(&p).unwrap().into_async_read();
            let lines: Vec<String> = LinesStream::new(r.lines())
                .map(|l| l.unwrap())
                .collect()
                .await;
            assert_eq!(lines, want_lines);

            // read_exact in odd sizes across chunk boundaries
            let mut r = d.chunks(&p).unwrap().into_async_read();
            let mut buf = vec![0u8; 7777];
            r.read_exact(&mut buf).await.unwrap();
            assert!(buf == text.as_bytes()[..7777]);
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).await.unwrap();
            assert!(rest == text.as_bytes()[7777..]);
        });
    }
}

#[test]
fn errors_name_the_file_and_offset() {
    let _g = shared();
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let d = driver.with_options(builder().build().unwrap()).unwrap();
    let e = d.chunks("/nonexistent/x").unwrap_err();
    assert!(matches!(e, Error::Open { .. }), "{e}");
    assert_eq!(e.to_string(), "/nonexistent/x: No such file or directory");
    let e = d.chunks("/tmp").unwrap_err();
    assert_eq!(e.to_string(), "/tmp: Is a directory");
    // /proc/self/mem cannot be read at offset 0 (nothing is mapped there): EIO at offset 0.
    let s = d.chunks("/proc/self/mem").unwrap();
    let e = rt.block_on(collect(s)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/proc/self/mem: read error at offset 0: Input/output error"
    );
    // Through the AsyncRead adapter the same words arrive as an io::Error.
    let mut r = d.chunks("/proc/self/mem").unwrap().into_async_read();
    let mut v = Vec::new();
    let e = rt.block_on(r.read_to_end(&mut v)).unwrap_err();
    assert!(
        e.to_string()
            .contains("/proc/self/mem: read error at offset 0"),
        "{e}"
    );
    drop(r);
    wait_idle(&driver);
}

#[test]
fn pipes_stream_in_order_with_offsets_counting_bytes() {
    let _g = shared();
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let data = random_bytes(3_000_000, 5);
    let (r, mut w) = pipe(0);
    let d2 = data.clone();
    let writer = std::thread::spawn(move || {
        let mut rng = Rng(9);
        let mut at = 0;
        while at < d2.len() {
            let n = (1 + rng.below(100_000) as usize).min(d2.len() - at);
            w.write_all(&d2[at..at + n]).unwrap();
            at += n;
        }
    });
    let s = driver
        .with_options(opts(65536, 4, false))
        .unwrap()
        .chunks(Source::file(r, "pipe"))
        .unwrap();
    let got = rt.block_on(collect(s)).unwrap();
    writer.join().unwrap();
    assert!(got == data);
}

#[test]
fn dropping_a_stream_cancels_a_read_that_would_never_complete() {
    let _g = exclusive();
    let driver = Driver::new().unwrap();
    let before = open_fds();
    let rt = runtime();
    let (r, w) = pipe(0);
    rt.block_on(async {
        let mut s = driver
            .with_options(opts(4096, 2, false))
            .unwrap()
            .chunks(Source::file(r, "silent pipe"))
            .unwrap();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(futures_core::Stream::poll_next(std::pin::Pin::new(&mut s), &mut cx).is_pending());
        assert_eq!(driver.stats().in_flight, 1);
        drop(s);
    });
    wait_idle(&driver);
    drop(w);
    drop(rt);
    assert_eq!(open_fds(), before, "a descriptor was left open");
}

/// Many streams on one driver, on four runtime threads, dropped at random points, some with their
/// chunks (as `Bytes`) outliving them; then nothing may be left: no read in flight, no buffer, no
/// descriptor (the runtime's own are closed once it is dropped: no driver thread still holds one of
/// its tasks). `RINGREAD_STRESS_REPEAT=N` runs it N times over, each time with a runtime of its own,
/// checked after each (CI runs it 200 times).
#[test]
fn cancellation_stress_many_streams_dropped_at_random_points() {
    let _g = exclusive();
    let repeat: usize = std::env::var("RINGREAD_STRESS_REPEAT")
        .ok()
        .map(|v| v.parse().expect("RINGREAD_STRESS_REPEAT: a number of runs"))
        .unwrap_or(1);
    let dir = tmpdir("stream");
    let sizes = [0usize, 1, 4095, 4097, 65535, 65537, 300_001, 2 << 20];
    let files: Vec<(PathBuf, Arc<Vec<u8>>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let d = random_bytes(n, i as u64 + 100);
            (
                write_synced(dir.path(), &format!("s{i}"), &d).0,
                Arc::new(d),
            )
        })
        .collect();
    let driver = Driver::new().unwrap();
    let before = open_fds();
    let mut rng = Rng(0xfeed);
    for run in 0..repeat {
        let rt = runtime();
        for round in 0..4 {
            cancellation_stress_round(&driver, &rt, &files, &mut rng, run, round);
            wait_idle(&driver);
        }
        drop(rt);
        let after = open_fds();
        assert_eq!(
            after,
            before,
            "run {run}: descriptors left open after every stream was dropped:\n{}",
            common::fd_listing()
        );
    }
    // The drops did catch reads in flight (else this test would not test cancellation).
    assert!(driver.stats().cancelled > 0, "{:?}", driver.stats());
    eprintln!("{repeat} runs; {:?}", driver.stats());
}

/// One round of [`cancellation_stress_many_streams_dropped_at_random_points`]: 250 streams.
fn cancellation_stress_round(
    driver: &Driver,
    rt: &tokio::runtime::Runtime,
    files: &[(PathBuf, Arc<Vec<u8>>)],
    rng: &mut Rng,
    run: usize,
    round: usize,
) {
    // Cached files are read on the polling thread, with nothing in flight to cancel: each round
    // starts with the files out of the cache, so the driver reads (and the drops cancel).
    for (path, _) in files {
        uncache(&File::open(path).unwrap(), 0, 0);
    }
    let mut tasks = Vec::new();
    for k in 0..250 {
        let (path, data) = files[rng.below(files.len() as u64) as usize].clone();
        let chunk = [4096usize, 8192, 65536][rng.below(3) as usize];
        let depth = 1 + rng.below(8) as usize;
        let direct = rng.below(4) == 0;
        let take = rng.below(12) as usize;
        let keep = rng.below(2) == 0;
        let yield_first = rng.below(3) == 0;
        let driver = driver.clone();
        tasks.push(rt.spawn(async move {
            let mut s = driver
                .with_options(opts(chunk, depth, direct))
                .unwrap()
                .chunks(&path)
                .unwrap();
            if yield_first {
                tokio::task::yield_now().await;
            }
            let mut kept = Vec::new();
            let mut at = 0usize;
            for _ in 0..take {
                match s.next().await {
                    Some(c) => {
                        let c = c.unwrap();
                        assert_eq!(c.offset() as usize, at);
                        assert!(
                            c[..] == data[at..at + c.len()],
                            "run {run} round {round} task {k}"
                        );
                        at += c.len();
                        // Holding all `depth` buffers would stop the stream (backpressure).
                        if keep && kept.len() + 1 < depth {
                            kept.push(c.into_bytes());
                        }
                    }
                    None => {
                        assert_eq!(at, data.len());
                        break;
                    }
                }
            }
            drop(s);
            // Chunks kept past the stream still hold the right bytes.
            tokio::task::yield_now().await;
            let mut off = 0;
            for b in &kept {
                assert!(b[..] == data[off..off + b.len()]);
                off += b.len();
            }
        }));
    }
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// A driver's thread wakes a stream's task once it has recorded the read's completion, and holds
/// the task's waker until that wake returns (a tokio waker holds its task, the task its runtime,
/// the runtime its descriptors; tokio's `wake` keeps its hold while it schedules the task, which may
/// meanwhile run, end, and have its runtime dropped). Until then the read is `delivering`
/// (`DriverStats`): idle (`wait_idle`) means no driver thread holds a task. Issue 23: the stress
/// test above found its runtime's three descriptors (two `eventpoll`, an `eventfd`) still open
/// after `drop(rt)`, held by a lane still inside `wake`. Here a waker that holds its thread inside
/// `wake` makes that window as long as the test needs.
#[test]
fn a_driver_is_not_idle_while_its_thread_still_holds_a_task() {
    use common::stream::{wake_then_idle, OpenOnDrop, WakeGate};
    let _g = shared();
    let driver = Driver::with_threads(1).unwrap();
    let gate = WakeGate::new();
    let _open = OpenOnDrop(Arc::clone(&gate));
    let (r, mut w) = pipe(0);
    let mut s = driver
        .with_options(opts(4096, 1, false))
        .unwrap()
        .chunks(Source::file(r, "pipe"))
        .unwrap();
    let waker = gate.waker();
    let poll = futures_core::Stream::poll_next(
        std::pin::Pin::new(&mut s),
        &mut Context::from_waker(&waker),
    );
    assert!(poll.is_pending());
    drop(waker);
    // The read completes; the driver's thread takes the stream's waker and is held inside `wake`.
    w.write_all(b"x").unwrap();
    gate.wait_entered();
    // The stream (its buffer, its file) is gone; the task's waker is still held.
    drop(s);
    let st = driver.stats();
    assert_eq!((st.live_buffers, st.held_bytes), (0, 0), "{st:?}");
    wake_then_idle(&driver, &gate, st);
}

#[test]
fn hundreds_of_concurrent_streams_each_read_whole() {
    let _g = shared();
    let dir = tmpdir("stream");
    let files: Vec<(PathBuf, u64)> = (0..20)
        .map(|i| {
            let d = random_bytes(100_000 + i * 37_001, i as u64);
            let h = xxhash_rust::xxh3::xxh3_64(&d);
            (write_file(dir.path(), &format!("c{i}"), &d), h)
        })
        .collect();
    let driver = Driver::new().unwrap();
    let d = driver.with_options(opts(16384, 4, false)).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(400));
        let mut tasks = Vec::new();
        for k in 0..400 {
            let (path, want) = files[k % files.len()].clone();
            let d = d.clone();
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                let mut s = d.chunks(&path).unwrap();
                // All 400 streams are open before any reads.
                barrier.wait().await;
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                while let Some(c) = s.next().await {
                    h.update(&c.unwrap());
                }
                assert_eq!(h.digest(), want, "stream {k}");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    wait_idle(&driver);
}

#[test]
fn a_file_that_shrinks_while_streamed_ends_at_its_new_end() {
    let _g = shared();
    let dir = tmpdir("stream");
    let data = random_bytes(1 << 20, 77);
    let p = write_file(dir.path(), "shrinks", &data);
    let driver = Driver::new().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let mut s = pin!(driver
            .with_options(opts(4096, 2, false))
            .unwrap()
            .chunks(&p)
            .unwrap());
        let first = s.next().await.unwrap().unwrap();
        assert!(first[..] == data[..4096]);
        // Truncate to 10,000 bytes: what is delivered is a prefix of the old contents, ending at or
        // after the new end only with bytes read before the truncation (two reads were in flight).
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(10_000)
            .unwrap();
        let mut got = first.to_vec();
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert!(
            got.len() >= 10_000 && got.len() <= 4096 * 3,
            "{}",
            got.len()
        );
        assert!(got == data[..got.len()]);
    });
}

#[test]
fn chunks_and_streams_are_send_and_static() {
    fn send_static<T: Send + 'static>() {}
    fn send_sync<T: Send + Sync + 'static>() {}
    send_static::<OwnedChunk>();
    send_sync::<OwnedChunk>();
    send_static::<FileStream>();
    send_static::<ringread::stream::ChunkReader>();
    send_sync::<Driver>();
    // The error crosses into io::Error with its words.
    let e: std::io::Error = Error::Read {
        path: "/x".into(),
        offset: 5,
        source: std::io::Error::from_raw_os_error(libc::EIO),
    }
    .into();
    assert_eq!(
        e.to_string(),
        "/x: read error at offset 5: Input/output error"
    );
}

/// A non-blocking pipe and a non-blocking socket that are often empty (a writer trickling bytes):
/// the stream waits for them (io_uring's own poll, or a linked `POLL_ADD` after EAGAIN) and hands out
/// every byte in order.
#[test]
fn a_non_blocking_socket_that_is_often_empty() {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let _g = shared();
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let data = random_bytes(200_000, 22);
    let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
    r.set_nonblocking(true).unwrap();
    let d2 = data.clone();
    let writer = std::thread::spawn(move || {
        let mut rng = Rng(6);
        let mut at = 0;
        while at < d2.len() {
            let n = (1 + rng.below(20_000) as usize).min(d2.len() - at);
            w.write_all(&d2[at..at + n]).unwrap();
            at += n;
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    // SAFETY: into_raw_fd hands over a descriptor nobody else owns.
    let file = unsafe { File::from_raw_fd(r.into_raw_fd()) };
    let s = driver
        .with_options(opts(65536, 4, false))
        .unwrap()
        .chunks(Source::file(file, "socket"))
        .unwrap();
    let got = rt.block_on(collect(s)).unwrap();
    writer.join().unwrap();
    assert!(got == data);
    drop(rt);
    wait_idle(&driver);
}

#[test]
fn a_non_blocking_pipe_that_is_often_empty() {
    let _g = shared();
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let data = random_bytes(200_000, 21);
    let (r, w) = pipe(libc::O_NONBLOCK);
    let d2 = data.clone();
    let writer = std::thread::spawn(move || {
        let mut w = w;
        let mut rng = Rng(5);
        let mut at = 0;
        while at < d2.len() {
            let n = (1 + rng.below(20_000) as usize).min(d2.len() - at);
            match w.write(&d2[at..at + n]) {
                Ok(k) => at += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let s = driver
        .with_options(opts(65536, 4, false))
        .unwrap()
        .chunks(Source::file(r, "nonblocking pipe"))
        .unwrap();
    let got = rt.block_on(collect(s)).unwrap();
    writer.join().unwrap();
    assert!(got == data);
    drop(rt);
    wait_idle(&driver);
}

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("no VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 200 streams on a driver with a 16 MiB budget, each holding a chunk at the same moment (and
/// asking for up to 8 buffers of 64 KiB: 100 MiB without the budget): the driver never has more than
/// the budget in buffers, the process's peak memory grows by less than the budget and some slack,
/// and every stream reads its file whole.
#[test]
fn two_hundred_streams_share_a_sixteen_mib_budget() {
    // Alone: the peak memory of the process is measured.
    let _g = exclusive();
    let dir = tmpdir("stream");
    let files: Vec<(PathBuf, u64)> = (0..20)
        .map(|i| {
            let d = random_bytes((1 << 20) + i * 50_001, 1000 + i as u64);
            let h = xxhash_rust::xxh3::xxh3_64(&d);
            (write_file(dir.path(), &format!("b{i}"), &d), h)
        })
        .collect();
    let budget = 16 << 20;
    let driver = Driver::with_budget(2, budget).unwrap();
    assert_eq!(driver.budget(), budget);
    let rt = runtime();
    // Start the peak from here (writing 5 to clear_refs resets VmHWM; Linux 4.0 and later).
    let _ = fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_kib();
    rt.block_on(async {
        let streams = 200;
        let opened = Arc::new(tokio::sync::Barrier::new(streams));
        let holding = Arc::new(tokio::sync::Barrier::new(streams + 1));
        let mut tasks = Vec::new();
        for k in 0..streams {
            let (path, want) = files[k % files.len()].clone();
            let d = driver.with_options(opts(65536, 8, false)).unwrap();
            let (opened, holding) = (Arc::clone(&opened), Arc::clone(&holding));
            tasks.push(tokio::spawn(async move {
                let mut s = d.chunks(&path).unwrap();
                opened.wait().await;
                let first = s.next().await.unwrap().unwrap();
                // Every stream holds a chunk now.
                holding.wait().await;
                holding.wait().await;
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                h.update(&first);
                drop(first);
                while let Some(c) = s.next().await {
                    h.update(&c.unwrap());
                }
                assert_eq!(h.digest(), want, "stream {k}");
            }));
        }
        holding.wait().await;
        let st = driver.stats();
        assert!(
            st.held_bytes >= streams * 65536,
            "not every stream holds a chunk: {st:?}"
        );
        assert!(st.buffer_bytes <= budget, "{st:?}");
        holding.wait().await;
        for t in tasks {
            t.await.unwrap();
        }
    });
    let after = peak_rss_kib();
    let st = driver.stats();
    assert!(
        st.peak_buffer_bytes <= budget && st.peak_buffer_bytes > 0,
        "{st:?}"
    );
    eprintln!(
        "peak RSS grew by {} KiB; driver {st:?}",
        after.saturating_sub(before)
    );
    // Under AddressSanitizer (scripts/asan.sh sets RINGREAD_ASAN) freed memory waits in the
    // sanitizer's quarantine instead of being reused, and every allocation has red zones: the
    // process grows by more for the same buffers, so the bound has more slack there.
    let slack = if std::env::var_os("RINGREAD_ASAN").is_some() {
        96 << 10
    } else {
        48 << 10
    };
    assert!(
        after.saturating_sub(before) < (budget as u64 >> 10) + slack,
        "peak RSS grew by {} KiB on a {} KiB budget",
        after - before,
        budget >> 10
    );
    drop(rt);
    wait_idle(&driver);
    // Buffers given back are kept for the next stream, within the budget.
    assert!(driver.stats().buffer_bytes <= budget);
}

/// A chunk size larger than the whole budget cannot work: `Driver::with_options` says so.
#[test]
fn a_chunk_larger_than_the_budget_is_refused() {
    let _g = shared();
    let driver = Driver::with_budget(1, 1 << 20).unwrap();
    let e = driver.with_options(opts(2 << 20, 2, false)).unwrap_err();
    assert!(matches!(e, Error::InvalidOptions(_)), "{e}");
    // The budget also bounds a stream's buffers when it could use more: depth 8 of 512 KiB on 1 MiB.
    let dir = tmpdir("stream");
    let data = random_bytes(5 << 20, 41);
    let p = write_file(dir.path(), "f", &data);
    let rt = runtime();
    let got = rt
        .block_on(collect(
            driver
                .with_options(opts(512 << 10, 8, false))
                .unwrap()
                .chunks(&p)
                .unwrap(),
        ))
        .unwrap();
    assert!(got == data);
    assert!(driver.stats().peak_buffer_bytes <= 1 << 20);
    drop(rt);
    wait_idle(&driver);
}

/// A FIFO with no writer blocks `open(2)`: opened off the executor (`tokio::fs::File::open`, on
/// tokio's blocking threads) and handed to the driver (`Source::file`), as `Driver::chunks` says
/// to, a current-thread runtime goes on running its other tasks; once a writer comes the bytes
/// arrive. (This was `Driver::open_async`, which opened on a helper thread of its own.)
#[test]
fn a_fifo_opened_off_the_executor_does_not_block_the_runtime() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let _g = shared();
    let dir = tmpdir("stream");
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let driver = Driver::new().unwrap();
    let data = random_bytes(300_000, 31);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t2 = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                t2.fetch_add(1, Ordering::Relaxed);
            }
        });
        let d = driver.with_options(opts(65536, 4, false)).unwrap();
        let f = fifo.clone();
        let open = tokio::spawn(async move {
            let file = tokio::fs::File::open(&f).await?.into_std().await;
            Ok::<_, std::io::Error>(d.chunks(Source::file(file, f)))
        });
        // The runtime's one thread runs the ticker while the open waits for a writer.
        let until = Instant::now() + Duration::from_secs(60);
        while ticks.load(Ordering::Relaxed) < 10 {
            assert!(
                Instant::now() < until,
                "the ticker stopped: the runtime is blocked"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!open.is_finished(), "a FIFO opened without a writer");
        let (f2, d2) = (fifo.clone(), data.clone());
        let writer = std::thread::spawn(move || {
            let mut w = fs::OpenOptions::new().write(true).open(f2).unwrap();
            w.write_all(&d2).unwrap();
        });
        let s = tokio::time::timeout(Duration::from_secs(60), open)
            .await
            .expect("the open hung after a writer came")
            .unwrap()
            .unwrap()
            .unwrap();
        let got = collect(s).await.unwrap();
        writer.join().unwrap();
        assert!(got == data);
        ticker.abort();
        // A path that does not exist, given to `chunks` on a blocking thread, fails the same way
        // as on the calling thread.
        let d = driver.with_options(ReadOptions::default()).unwrap();
        let e = tokio::task::spawn_blocking(move || d.chunks("/nonexistent/y"))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.to_string(), "/nonexistent/y: No such file or directory");
        // The process-wide driver, on a regular file opened off the executor.
        let p = write_file(dir.path(), "plain", &data);
        let file = tokio::fs::File::open(&p).await.unwrap().into_std().await;
        let s = Driver::global()
            .unwrap()
            .chunks(Source::file(file, &p))
            .unwrap();
        let got = collect(s).await.unwrap();
        assert!(got == data);
    });
    drop(rt);
    // The process-wide driver outlives this test: nothing of it may still hold this test's tasks
    // once the test is over.
    wait_idle(Driver::global().unwrap());
}

/// Options a stream refuses (`threads`) are refused by `Driver::with_options`, before any open: a
/// FIFO (whose open would wait for a writer; one is there, so that an open would succeed instead
/// of hanging the test) is never opened, and the error holds no driver, so the caller's last
/// handle stops the driver's threads and closes their rings.
///
/// This was `open_async`'s test: its helper thread (`ringread-open`) opened the path, woke the
/// task with the refusal as its last act, and had to let go of the driver before that wake. The
/// helper went with `open_async` (a path's open runs on the calling thread; opening it off the
/// executor is the caller's, with `tokio::fs`), so what is left to check is the refusal before
/// the open and that it holds no driver. The name is kept for docs/RELIABILITY.md.
#[test]
fn options_refused_before_any_open_hold_no_driver() {
    let _g = exclusive();
    let dir = tmpdir("stream");
    let fifo = dir.path().join("fifo");
    common::mkfifo(&fifo);
    let before = open_fds();
    let driver = Driver::with_threads(1).unwrap();
    let writer = common::FifoWriter::start(&fifo, Vec::new());
    let refused = builder().threads(2).build().unwrap();
    let got = driver
        .with_options(refused)
        .and_then(|d| d.chunks(&fifo).map(drop));
    assert!(matches!(got, Err(Error::InvalidOptions(_))), "{got:?}");
    drop(writer);
    drop(driver);
    assert_eq!(
        open_fds(),
        before,
        "the driver's ring and eventfd are still open after its last handle was dropped:\n{}",
        common::fd_listing()
    );
}

/// A driver given a `Cancel`: once cancelled, a stream waiting on a silent pipe and a stream part
/// way through a file both end with `Interrupted`, their reads in flight cancelled.
#[test]
fn a_cancelled_driver_interrupts_its_streams() {
    let _g = shared();
    let dir = tmpdir("stream");
    let data = random_bytes(1 << 20, 51);
    let p = write_file(dir.path(), "f", &data);
    let driver = Driver::new().unwrap();
    let cancel = ringread::Cancel::new().unwrap();
    driver.set_cancel(cancel.clone());
    let rt = runtime();
    let (r, w) = pipe(0);
    rt.block_on(async {
        let mut silent = driver
            .with_options(opts(4096, 2, false))
            .unwrap()
            .chunks(Source::file(r, "silent pipe"))
            .unwrap();
        let waiter = tokio::spawn(async move { silent.next().await });
        // The pipe's read is in the kernel before anything else is (so that the cancel always
        // finds a read to cancel, whatever the file's reads are doing by then).
        let until = Instant::now() + Duration::from_secs(60);
        while driver.stats().in_flight == 0 {
            assert!(Instant::now() < until, "the pipe's read never started");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut file = driver
            .with_options(opts(4096, 4, false))
            .unwrap()
            .chunks(&p)
            .unwrap();
        let first = file.next().await.unwrap().unwrap();
        assert!(first[..] == data[..4096]);
        drop(first);
        cancel.cancel();
        let got = tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("a stream waiting on a silent pipe was not woken by the cancel")
            .unwrap();
        assert!(
            matches!(got, Some(Err(Error::Interrupted { .. }))),
            "{got:?}"
        );
        let e = file.next().await.unwrap().unwrap_err();
        assert!(matches!(e, Error::Interrupted { .. }), "{e}");
        assert_eq!(e.to_string(), format!("{}: interrupted", p.display()));
        assert!(file.next().await.is_none());
        // Streams opened while cancelled are interrupted at once.
        let mut late = driver
            .with_options(opts(4096, 4, false))
            .unwrap()
            .chunks(&p)
            .unwrap();
        assert!(matches!(
            late.next().await,
            Some(Err(Error::Interrupted { .. }))
        ));
    });
    drop(rt);
    wait_idle(&driver);
    assert!(driver.stats().cancelled >= 1, "{:?}", driver.stats());
    drop(w);
    // Reset, the driver reads again.
    cancel.reset();
    let rt = runtime();
    let got = rt
        .block_on(collect(
            driver
                .with_options(opts(65536, 4, false))
                .unwrap()
                .chunks(&p)
                .unwrap(),
        ))
        .unwrap();
    assert!(got == data);
}

/// Uncached reads through the stream: the bytes on every boundary, and a file not cached before is
/// (almost) not cached after.
#[test]
fn dontcache_streams_the_same_bytes_and_spares_the_cache() {
    use std::os::fd::AsRawFd;
    let _g = shared();
    let dir = tmpdir("stream-dontcache");
    let driver = Driver::new().unwrap();
    let rt = runtime();
    let o = builder()
        .chunk_size(65536)
        .depth(4)
        .dontcache(true)
        .build()
        .unwrap();
    let d = driver.with_options(o).unwrap();
    for (i, size) in [0usize, 1, 4095, 4096, 4097, 65535, 65536, 65537, 300_001]
        .into_iter()
        .enumerate()
    {
        let data = random_bytes(size, 900 + i as u64);
        let p = write_file(dir.path(), &format!("f{i}"), &data);
        let got = rt.block_on(collect(d.chunks(&p).unwrap())).unwrap();
        assert!(got == data, "size {size}");
    }
    let data = random_bytes(32 << 20, 77);
    let p = write_file(dir.path(), "big", &data);
    let f = File::open(&p).unwrap();
    f.sync_all().unwrap();
    // SAFETY: plain advice on a descriptor we hold.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
    assert_eq!(ringread::residency::of_file(&f).unwrap().cached, 0);
    let got = rt.block_on(collect(d.chunks(&p).unwrap())).unwrap();
    assert!(got == data);
    // The file is dropped from the cache when its last read lets go of it, on the driver's thread.
    wait_idle(&driver);
    let after = ringread::residency::of_file(&f).unwrap();
    assert!(after.fraction() <= 0.02, "{after:?}");
    drop(rt);
    wait_idle(&driver);
}

/// Drops `len` bytes of `file` from `offset` from the page cache (its pages are clean: the file was
/// synced).
fn uncache(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: advice on a descriptor we own; no memory is passed.
    let rc = unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        )
    };
    assert_eq!(rc, 0, "posix_fadvise");
}

/// Writes `data` to `dir/name` and syncs it, so that its pages can be dropped from the cache.
fn write_synced(dir: &std::path::Path, name: &str, data: &[u8]) -> (PathBuf, File) {
    let p = write_file(dir, name, data);
    let f = File::open(&p).unwrap();
    f.sync_all().unwrap();
    (p, f)
}

/// Every other MiB cached: the cached ones are read on the polling thread (with the fast path), the
/// others by the driver, and the bytes come out whole and in order, whatever the chunk size's
/// relation to the cached runs.
#[test]
fn a_file_cached_every_other_mib_streams_whole() {
    let _g = shared();
    let dir = tmpdir("stream");
    let data = random_bytes(12 << 20, 1616);
    let (p, f) = write_synced(dir.path(), "striped", &data);
    for &(chunk, depth) in &[(256 << 10, 8), (192 << 10, 4), (4096, 16), (3 << 20, 2)] {
        let driver = Driver::new().unwrap();
        // Out of the cache, then the even MiBs read back in without read-ahead (dropping the odd
        // ones instead would not work: the page cache holds large folios, which a range's
        // DONTNEED leaves alone when they reach past it).
        uncache(&f, 0, 0);
        let g = File::open(&p).unwrap();
        {
            use std::os::fd::AsRawFd;
            // SAFETY: advice on a descriptor we own.
            let rc = unsafe { libc::posix_fadvise(g.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
            assert_eq!(rc, 0);
        }
        let mut mib = vec![0u8; 1 << 20];
        for k in (0..12u64).step_by(2) {
            std::os::unix::fs::FileExt::read_exact_at(&g, &mut mib, k << 20).unwrap();
            assert!(mib[..] == data[(k as usize) << 20..][..1 << 20]);
        }
        let cached = ringread::residency::of_file(&f).unwrap();
        assert!(
            cached.cached <= 7 << 20 && cached.cached >= 5 << 20,
            "the cache was not striped: {cached:?}"
        );
        let rt = runtime();
        let got = rt
            .block_on(collect(
                driver
                    .with_options(opts(chunk, depth, false))
                    .unwrap()
                    .chunks(&p)
                    .unwrap(),
            ))
            .unwrap();
        assert!(got == data, "bytes differ at chunk {chunk} depth {depth}");
        let st = driver.stats();
        if fast_path() && chunk <= 1 << 20 {
            // (A chunk of 2 MiB or more always spans an uncached MiB: the polling thread copies
            // the cached part of it and the driver reads the rest.)
            assert!(
                st.cached_chunks > 0,
                "nothing read on the polling thread: {st:?}"
            );
        } else if !fast_path() {
            assert_eq!(st.cached_chunks, 0, "{st:?}");
        }
        // The uncached half came through the driver, which woke the task.
        assert!(st.wakeups > 0, "{st:?}");
        drop(rt);
        wait_idle(&driver);
    }
}

/// The page cache dropped while the stream reads it: the polling thread's reads find nothing
/// cached (EAGAIN, or a short read) and the driver reads on; the bytes are the file's.
#[test]
fn a_file_whose_cache_is_dropped_while_it_is_read() {
    let _g = shared();
    let dir = tmpdir("stream");
    let data = random_bytes(16 << 20, 1717);
    let (p, f) = write_synced(dir.path(), "dropped", &data);
    assert!(fs::read(&p).unwrap() == data);
    let driver = Driver::new().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let mut s = driver
            .with_options(opts(128 << 10, 8, false))
            .unwrap()
            .chunks(&p)
            .unwrap();
        let mut got = Vec::new();
        let mut n = 0;
        while let Some(c) = s.next().await {
            let c = c.unwrap();
            assert_eq!(c.offset(), got.len() as u64);
            got.extend_from_slice(&c);
            n += 1;
            if n == 5 || n == 60 {
                uncache(&f, 0, 0);
            }
        }
        assert!(got == data, "bytes differ");
    });
    let st = driver.stats();
    if fast_path() {
        assert!(st.cached_chunks >= 5, "{st:?}");
        assert!(
            st.cached_chunks < 128,
            "the dropped part came from the cache: {st:?}"
        );
    } else {
        assert_eq!(st.cached_chunks, 0, "{st:?}");
    }
    assert!(st.wakeups > 0, "{st:?}");
    drop(rt);
    wait_idle(&driver);
}

/// The fast path and the driver give the same bytes for the same file; with the fast path on, a
/// cached file's chunks are read on the polling thread (no wake-up), and a run of them is cut by a
/// `Pending` now and then (bounded work per poll).
#[test]
fn the_fast_path_and_the_driver_give_the_same_bytes() {
    let _g = shared();
    let dir = tmpdir("stream");
    let data = random_bytes((4 << 20) + 4097, 1818);
    let p = write_file(dir.path(), "both", &data);
    assert!(fs::read(&p).unwrap() == data);
    let rt = runtime();
    let mut seen = Vec::new();
    for fast in [true, false] {
        let driver = Driver::new().unwrap();
        let o = builder()
            .cached_fast_path(fast)
            .chunk_size(16 << 10)
            .depth(4)
            .build()
            .unwrap();
        assert_eq!(o.cached_fast_path(), fast);
        let got = rt
            .block_on(collect(driver.with_options(o).unwrap().chunks(&p).unwrap()))
            .unwrap();
        assert!(got == data, "fast path {fast}: bytes differ");
        let st = driver.stats();
        if fast {
            assert!(st.cached_chunks > 0, "{st:?}");
        } else {
            assert_eq!(st.cached_chunks, 0, "{st:?}");
            assert!(st.wakeups > 0, "{st:?}");
        }
        seen.push(got);
        wait_idle(&driver);
    }
    assert!(seen[0] == seen[1]);

    // Polled by hand, as an executor would, on a cached file: a run of chunks read on this thread
    // ends with a `Pending` (whose waker is woken at once) well before the file does.
    let driver = Driver::new().unwrap();
    let o = builder()
        .cached_fast_path(true)
        .chunk_size(4096)
        .depth(4)
        .build()
        .unwrap();
    let mut s = driver.with_options(o).unwrap().chunks(&p).unwrap();
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut run, mut longest, mut got) = (0, 0, Vec::new());
    loop {
        match futures_core::Stream::poll_next(std::pin::Pin::new(&mut s), &mut cx) {
            Poll::Ready(Some(c)) => {
                got.extend_from_slice(&c.unwrap());
                run += 1;
                longest = longest.max(run);
            }
            Poll::Ready(None) => break,
            Poll::Pending => {
                run = 0;
                std::thread::yield_now();
            }
        }
    }
    assert!(got == data);
    assert!(
        longest < 1000,
        "{longest} chunks handed out without a Pending"
    );
    drop(s);
    wait_idle(&driver);
}

/// The driver's threads read into registered buffers (`READ_FIXED`) unless the stream asks not to;
/// where the kernel refuses to register (locked memory), the driver says why.
#[test]
fn registered_buffers_are_read_with_read_fixed() {
    let _g = shared();
    let dir = tmpdir("stream");
    let data = random_bytes(6 << 20, 2020);
    let (p, f) = write_synced(dir.path(), "fixed", &data);
    let rt = runtime();
    for register in [true, false] {
        // Out of the cache: the driver reads (with or without the fast path).
        uncache(&f, 0, 0);
        let driver = Driver::with_budget(2, 8 << 20).unwrap();
        let o = builder()
            .chunk_size(128 << 10)
            .depth(8)
            .register_buffers(register)
            .build()
            .unwrap();
        let got = rt
            .block_on(collect(driver.with_options(o).unwrap().chunks(&p).unwrap()))
            .unwrap();
        assert!(got == data, "register {register}: bytes differ");
        let st = driver.stats();
        if register {
            assert!(
                st.fixed_reads > 0 || driver.registration_notice().is_some(),
                "no READ_FIXED and no reason: {st:?}"
            );
        } else {
            assert_eq!(st.fixed_reads, 0, "{st:?}");
            assert!(driver.registration_notice().is_none());
        }
        wait_idle(&driver);
    }
}
