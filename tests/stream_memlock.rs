//! The driver's registered buffers past `RLIMIT_MEMLOCK`: as an unprivileged user with 1 MiB of
//! lockable memory (this test binary run again through `setpriv` and `ulimit -l`, as root), the
//! driver's rings register what fits, read the rest with plain reads, and say why; the bytes are
//! the file's.

use std::process::Command;

use ringread::stream::Driver;
use ringread::{Notice, ReadOptions};

mod common;
use common::random_bytes;

#[test]
fn registration_past_memlock_falls_back_to_plain_reads() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "this test drops to an unprivileged user and must run as root (CI does)"
    );
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg("ulimit -l 1024 && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "as_a_user_with_one_mib_of_locked_memory",
            "--ignored",
            "--nocapture",
        ])
        .env("RINGREAD_MEMLOCK_CHILD", "1")
        .output()
        .expect("setpriv (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run: {stdout}\n{stderr}"
    );
}

/// Run by [`registration_past_memlock_falls_back_to_plain_reads`] as user 65534; ignored when run
/// on its own (it needs the limit that test sets).
#[test]
#[ignore = "run by registration_past_memlock_falls_back_to_plain_reads as an unprivileged user"]
fn as_a_user_with_one_mib_of_locked_memory() {
    assert_eq!(
        std::env::var("RINGREAD_MEMLOCK_CHILD").as_deref(),
        Ok("1"),
        "run through registration_past_memlock_falls_back_to_plain_reads"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(24 << 20, 1919);
    let p = dir.path().join("data");
    std::fs::write(&p, &data).unwrap();
    // 8 MiB of buffers, 1 MiB lockable: four 256 KiB buffers can be registered, not more.
    let driver = Driver::with_budget(2, 8 << 20).unwrap();
    assert!(driver.notice().is_none(), "{:?}", driver.notice());
    let o = ReadOptions::builder()
        .chunk_size(256 << 10)
        .depth(16)
        .cached_fast_path(false)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let got = rt.block_on(async {
        let mut s = driver.with_options(o).unwrap().chunks(&p).unwrap();
        let mut got = Vec::new();
        while let Some(c) = s.next_chunk().await {
            got.extend_from_slice(&c.unwrap());
        }
        got
    });
    assert!(got == data, "bytes differ");
    let st = driver.stats();
    assert!(
        st.fixed_reads > 0,
        "nothing registered within the limit: {st:?}"
    );
    match driver.registration_notice() {
        Some(Notice::RegisteredFewer {
            registered,
            wanted,
            reason,
        }) => {
            assert!(
                registered > 0 && registered < wanted,
                "{registered} of {wanted}"
            );
            assert!(reason.contains("ulimit -l"), "{reason}");
        }
        other => panic!("no notice of the refusal: {other:?}"),
    }
}
