//! io_uring refused by the kernel, not by a mock: a seccomp filter in the child (as a container's
//! profile does) and the `kernel.io_uring_disabled` sysctl. ringread must read the same bytes through
//! pread(2) (the engine's lanes without io_uring), say why once, and fail with the reason under
//! `--backend uring`.
//!
//! These live in their own test binary: cargo runs test binaries one after another, so flipping the
//! sysctl here cannot disturb the engine's other tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

mod common;

use common::deny_io_uring;

static SERIAL: Mutex<()> = Mutex::new(());

fn ringread() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringread"))
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (name, len) in [("a", 0usize), ("b", 4097), ("c", 3 * 262_144 + 17)] {
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 131 + i / 7) as u8).collect();
        f.write_all(&data).unwrap();
        out.push(p);
    }
    out
}

fn sha256sum(files: &[PathBuf]) -> Vec<u8> {
    let out = Command::new("sha256sum")
        .args(files)
        .output()
        .expect("sha256sum (coreutils) must be installed");
    assert!(out.status.success());
    out.stdout
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The checks every refusal must pass, whatever refused.
fn falls_back_and_explains(setup: &dyn Fn(&mut Command) -> &mut Command, why: &str) {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let files = data_files(dir.path());

    // Same bytes, one line saying why (once, for three files).
    let out = setup(ringread().args(["sum", "-a", "sha256"]).args(&files))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, sha256sum(&files));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "one line of explanation, got {lines:?}");
    assert!(
        lines[0].starts_with("ringread: io_uring is unavailable, reading with pread(2) instead:")
            && lines[0].contains(why),
        "{lines:?}"
    );

    // -v shows the path taken.
    let out = setup(ringread().args(["-v", "count"]).arg(&files[2]))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("by pread(2)"));

    // --backend uring fails before reading, with the reason.
    let out = setup(ringread().args(["--backend", "uring", "sum"]).args(&files))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ringread: io_uring is unavailable:") && err.contains(why),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn refused_by_seccomp() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    falls_back_and_explains(&|c| deny_io_uring(c), "EPERM");
}

/// Sets `kernel.io_uring_disabled` and puts the old value back when dropped.
struct Sysctl(String);
impl Sysctl {
    const PATH: &'static str = "/proc/sys/kernel/io_uring_disabled";
    fn set(v: &str) -> Sysctl {
        let old = std::fs::read_to_string(Self::PATH)
            .expect("this kernel has kernel.io_uring_disabled (Linux 6.6+)");
        std::fs::write(Self::PATH, v).expect("writing the sysctl needs root");
        Sysctl(old.trim().to_string())
    }
}
impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.0);
    }
}

#[test]
fn refused_by_sysctl() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "this test flips kernel.io_uring_disabled and must run as root (CI does)"
    );
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _restore = Sysctl::set("2");
    falls_back_and_explains(&|c| c, "io_uring_disabled sysctl, which is 2");
}

/// The async stream's driver under the same seccomp filter: its threads read with pread(2) and the
/// stream delivers the same bytes as read(2) does (the bench's checksum of each way's bytes).
#[test]
fn stream_driver_falls_back_to_pread_under_seccomp() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = deny_io_uring(&mut ringread())
        .args([
            "bench",
            "--backends",
            "sync,stream",
            "--size",
            "5000017",
            "--runs",
            "1",
            "--chunk-size",
            "64K",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let methods = report["results"][0]["methods"].as_array().unwrap();
    let sum = |name: &str| {
        methods
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["checksum"].as_str())
            .unwrap_or_else(|| panic!("no checksum for {name}: {report}"))
            .to_string()
    };
    assert_eq!(sum("stream"), sum("sync"));
    assert_eq!(report["file"]["bytes"], 5000017);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stream: ") && err.contains("io_uring_setup was refused"),
        "the fallback was not explained: {err}"
    );
}
