//! Helpers the integration tests share (each test binary compiles the ones it uses).
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Tests that count this process's descriptors take it for writing, every other test for reading,
/// so that no descriptor opens or closes while one counts.
static FD_LOCK: RwLock<()> = RwLock::new(());

/// Taken by every test that does not count descriptors.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    FD_LOCK.read().unwrap_or_else(|e| e.into_inner())
}

/// Taken by the tests that count descriptors: no other test runs meanwhile.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    FD_LOCK.write().unwrap_or_else(|e| e.into_inner())
}

/// This process's open descriptors.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Deterministic, fast, not a constant pattern (splitmix64).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x9E37_79B9_7F4A_7C15;
    for word in out.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        word.copy_from_slice(&z.to_le_bytes()[..word.len()]);
    }
    out
}

/// A pipe with `O_CLOEXEC` and `flags` (`O_NONBLOCK`, say): (read end, write end).
pub fn pipe(flags: libc::c_int) -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | flags) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: the descriptors were just created and are owned by nobody else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}
