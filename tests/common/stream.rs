//! Helpers of the async interface's tests (`ringread::stream`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringread::stream::{Driver, DriverStats};

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

/// Waits until the driver has nothing in hand: no operation in flight, no buffer alive or held by
/// a chunk or a file handed out (what completes after a drop is reaped on the driver's threads).
/// Fails the test if that does not happen within 20 s.
pub fn wait_idle(driver: &Driver) {
    let until = Instant::now() + Duration::from_secs(20);
    while !matches!(
        driver.stats(),
        DriverStats {
            in_flight: 0,
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
