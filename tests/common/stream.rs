//! Helpers of the async interface's tests (`ringread::stream`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringread::stream::{Driver, DriverStats};
use ringread::Error;

/// A fresh directory under the target's temporary directory, named from `prefix`.
pub fn tmpdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// Writes `data` to `dir/name`; returns the path.
pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// A multi-thread tokio runtime of 4 workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// The file at `path` read whole on `driver`, as `Bytes` (what `Driver::read` was): one file of
/// `Driver::files`, one in flight. The stream is made now, as `read` made it, and read when the
/// future is polled; the future is `Send + 'static`, for `tokio::spawn`.
pub fn read_whole(
    driver: &Driver,
    path: impl AsRef<Path>,
) -> impl Future<Output = ringread::Result<Bytes>> + Send + 'static {
    let path = path.as_ref().to_path_buf();
    let files = driver.files(&path);
    async move {
        match files?.files_in_flight(1).next_file().await {
            Some((_, r)) => r,
            None => Err(Error::Interrupted { path }),
        }
    }
}

/// Waits until the driver has nothing in hand: no operation in flight, no task being woken by one
/// of its threads (which holds the task, and its runtime, until the wake returns), no buffer alive
/// or held by a chunk or a file handed out (what completes after a drop is reaped on the driver's
/// threads). Fails the test if that does not happen within 20 s.
pub fn wait_idle(driver: &Driver) {
    let until = Instant::now() + Duration::from_secs(20);
    while !matches!(
        driver.stats(),
        DriverStats {
            in_flight: 0,
            delivering: 0,
            live_buffers: 0,
            held_bytes: 0,
            ..
        }
    ) {
        assert!(
            Instant::now() < until,
            "driver still holds {:?} 20 s after everything was dropped",
            driver.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// While a driver thread is held inside `gate`'s wake (its read completed, `st` its stats then),
/// the driver counts the read as delivering and does not look idle; once the gate opens, it goes
/// idle and no driver thread still holds the waker (`gate` is held by the caller and its waker
/// only).
pub fn wake_then_idle(driver: &Driver, gate: &Arc<WakeGate>, st: DriverStats) {
    assert_eq!(
        (st.in_flight, st.delivering),
        (0, 1),
        "the driver looks idle while its thread still holds a task's waker: {st:?}"
    );
    gate.open();
    wait_idle(driver);
    assert_eq!(
        Arc::strong_count(gate),
        2,
        "a driver thread holds the task's waker after the driver went idle"
    );
}

/// A waker whose `wake` holds the thread that wakes (a driver's thread, a helper thread) until the
/// test opens the gate: the window a thread descheduled inside `wake` leaves open, made as long as
/// the test needs. While a thread is inside, it holds a reference to the gate
/// (`Arc::strong_count`), as it would hold a tokio task and its runtime.
#[derive(Default)]
pub struct WakeGate {
    /// Wakes begun, and whether the gate is open.
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl WakeGate {
    /// A new gate, closed.
    pub fn new() -> Arc<WakeGate> {
        Arc::new(WakeGate::default())
    }

    /// A waker of this gate.
    pub fn waker(self: &Arc<Self>) -> Waker {
        Waker::from(Arc::clone(self))
    }

    /// Waits until a thread is inside `wake` (fails the test after 20 s).
    pub fn wait_entered(&self) {
        let st = self.state.lock().unwrap();
        let (st, timeout) = self
            .changed
            .wait_timeout_while(st, Duration::from_secs(20), |(entered, _)| *entered == 0)
            .unwrap();
        assert!(st.0 > 0, "nothing woke the task in 20 s ({timeout:?})");
    }

    /// Lets every thread inside `wake` go on, and those to come pass.
    pub fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

impl Wake for WakeGate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 += 1;
        self.changed.notify_all();
        // Bounded, so that a test that failed without opening the gate does not hang the thread
        // (and whoever joins it) for ever.
        let until = Instant::now() + Duration::from_secs(60);
        while !st.1 && Instant::now() < until {
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Opens its gate when dropped, so that a test that fails part way does not leave a driver's thread
/// inside `wake` (the driver's drop would wait for it).
pub struct OpenOnDrop(pub Arc<WakeGate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}
