//! A driver's last handle dropped while its reads are in flight, in every order of the handles
//! (the `Driver`, a `RangeFile` and its `read_at` future, a stream, a one-file future of
//! `Driver::files`): the last reference then goes on a driver thread, when a completion or a
//! cancel releases it. That thread must not join itself (std panics with "failed to join thread:
//! Resource deadlock avoided"); every driver thread ends.
//!
//! The rounds run twice: in this process with a panic hook that counts panics, and in a child
//! process whose panic hook aborts, as a service built with `panic = "abort"` would die.
//! `RINGREAD_DROP_ROUNDS` sets the rounds (200 by default).
//!
//! This file is its own test binary: it counts the process's `ringread-driver` threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ringread::stream::Driver;
use ringread::ReadOptions;

mod common;
use common::random_bytes;
use common::stream::{read_whole, tmpdir, write_file};

/// Panics seen by the hook of the in-process rounds.
static PANICS: AtomicUsize = AtomicUsize::new(0);

const CHILD: &str = "RINGREAD_DROP_CHILD";

fn rounds() -> usize {
    std::env::var("RINGREAD_DROP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// The process's threads named `ringread-driver`.
fn driver_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "ringread-driver")
        .count()
}

/// Polls `f` once with a waker that does nothing: its reads are queued and in flight.
fn poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(std::task::Waker::noop()))
}

/// `n` rounds: a driver, a stream, a `RangeFile` and a one-file `read_whole` each with reads in
/// flight, the handles dropped in the round's order. Returns how many reads were in flight at a
/// drop, over all rounds (so that the rounds are known to have tested something).
fn drop_rounds(n: usize) -> usize {
    let dir = tmpdir("driver-drop");
    let path = write_file(dir.path(), "f", &random_bytes(4 << 20, 7));
    let opts = |direct| {
        ReadOptions::builder()
            .chunk_size(64 << 10)
            .depth(8)
            .direct(direct)
            .build()
            .unwrap()
    };
    let mut in_flight_at_drop = 0;
    for round in 0..n {
        common::evict(&path);
        let driver = Driver::with_threads(2).unwrap();
        let mut stream = driver
            .with_options(opts(round % 3 == 0))
            .unwrap()
            .chunks(&path)
            .unwrap();
        let ranges = driver.range_file(&path).unwrap();
        let mut next = Box::pin(stream.next());
        let _ = poll_once(next.as_mut());
        drop(next);
        let mut at = Box::pin(ranges.read_at((round as u64 % 60) * 65_536, 4096));
        let _ = poll_once(at.as_mut());
        let mut whole = Box::pin(read_whole(&driver, &path));
        let _ = poll_once(whole.as_mut());
        in_flight_at_drop += driver.stats().in_flight;
        // Every order of the five handles over the rounds.
        let mut order = [0, 1, 2, 3, 4];
        let mut r = round;
        for i in (1..5).rev() {
            order.swap(i, r % (i + 1));
            r /= i + 1;
        }
        let mut d = Some(driver);
        let mut s = Some(stream);
        let mut rf = Some(ranges);
        let mut a = Some(at);
        let mut w = Some(whole);
        for k in order {
            match k {
                0 => drop(d.take()),
                1 => drop(s.take()),
                2 => drop(rf.take()),
                3 => drop(a.take()),
                _ => drop(w.take()),
            }
        }
    }
    in_flight_at_drop
}

/// Waits (up to 20 s) until no driver thread is left, and says how many are.
fn wait_for_no_driver_threads() -> usize {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let n = driver_threads();
        if n == 0 || Instant::now() > until {
            return n;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn dropping_the_last_handle_with_reads_in_flight_panics_no_thread() {
    if std::env::var_os(CHILD).is_some() {
        // The child of `..._under_panic_abort`: any panic on any thread ends the process.
        std::panic::set_hook(Box::new(|info| {
            eprintln!("panic in the drop rounds: {info}");
            std::process::abort();
        }));
        drop_rounds(rounds());
        assert_eq!(wait_for_no_driver_threads(), 0, "driver threads left");
        return;
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
    let in_flight = drop_rounds(rounds());
    let left = wait_for_no_driver_threads();
    let _ = std::panic::take_hook();
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a driver thread panicked");
    assert_eq!(
        left, 0,
        "driver threads still running after every handle was dropped"
    );
    assert!(
        in_flight > 0,
        "no read was in flight at a drop: the rounds tested nothing"
    );
}

/// The same rounds in a child process whose panic hook aborts (as `panic = "abort"` would): it
/// must exit cleanly.
#[test]
fn dropping_the_last_handle_with_reads_in_flight_under_panic_abort() {
    if std::env::var_os(CHILD).is_some() {
        return; // the child runs only the test above
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "dropping_the_last_handle_with_reads_in_flight_panics_no_thread",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child died ({:?}):\n{stderr}\n{stdout}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran no rounds:\n{stdout}"
    );
}
