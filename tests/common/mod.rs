//! Helpers the integration tests share (each test binary compiles the ones it uses).
#![allow(dead_code)]

pub mod fuse;
#[cfg(feature = "stream")]
pub mod stream;

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

/// Taken by the tests that count descriptors: no other test runs meanwhile, and the library's helper
/// threads that earlier tests started have ended (see [`wait_for_helper_threads`]).
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    let guard = FD_LOCK.write().unwrap_or_else(|e| e.into_inner());
    wait_for_helper_threads();
    guard
}

/// The library's helper threads: `Driver::files`'s read of a file whose size only reading tells
/// (`ringread-read`). (`ringread-open`, the open of the former `Driver::open_async`, went with it.)
const HELPER_THREADS: [&str; 1] = ["ringread-read"];

/// Waits until none of the library's helper threads runs (fails the test after 20 s). A helper
/// wakes its task as its last act, and a waker holds its task (with tokio, its runtime and the
/// runtime's descriptors) until that wake returns: the test that started the helper may have ended
/// by then, and a descriptor count begun meanwhile would see that runtime close.
pub fn wait_for_helper_threads() {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let running: Vec<String> = thread_names()
            .into_iter()
            .filter(|n| HELPER_THREADS.contains(&n.as_str()))
            .collect();
        if running.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "helper threads still running 20 s after the tests that started them: {running:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The names of this process's threads (`/proc/self/task/*/comm`; those that end while they are
/// listed may be missing).
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect()
}

/// This process's open descriptors.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's open descriptors and what each one is (`3 -> anon_inode:[eventpoll]`), one a
/// line: for the message of a test whose count is off.
pub fn fd_listing() -> String {
    let mut fds: Vec<(u32, String)> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().to_str()?.parse().ok()?;
            let to = std::fs::read_link(e.path()).ok()?;
            Some((n, to.display().to_string()))
        })
        .collect();
    fds.sort();
    fds.iter().map(|(n, to)| format!("{n} -> {to}\n")).collect()
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

/// Drops `path` from the page cache (after writing it back), so that its reads go to the device.
pub fn evict(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let f = File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: advice on a descriptor we hold; no memory is passed.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise(DONTNEED) of {}", path.display());
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

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Makes the child's `io_uring_setup` fail with EPERM, as Docker's default seccomp profile does:
/// io_uring refused by the kernel, not by a mock.
pub fn deny_io_uring(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        f(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        f(JEQ_K, 0, 3, AUDIT_ARCH),
        f(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        f(JEQ_K, 0, 1, libc::SYS_io_uring_setup as u32),
        f(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        f(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: the closure runs in the forked child before exec and only makes two prctl calls on
    // memory it owns (the filter is moved into it).
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// A writer for the FIFO at `path`: a thread that opens it (waiting for a reader), writes `data`
/// and closes it. Dropped, it makes sure the thread is not left waiting for a reader that never
/// came (it opens the FIFO itself and drains it) and joins it.
pub struct FifoWriter {
    path: std::path::PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FifoWriter {
    pub fn start(path: &std::path::Path, data: Vec<u8>) -> FifoWriter {
        let p = path.to_path_buf();
        let thread = std::thread::spawn(move || {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) {
                let _ = f.write_all(&data);
            }
        });
        FifoWriter {
            path: path.to_path_buf(),
            thread: Some(thread),
        }
    }
}

impl Drop for FifoWriter {
    fn drop(&mut self) {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(t) = self.thread.take() else { return };
        let mut ours: Option<std::fs::File> = None;
        while !t.is_finished() {
            match &mut ours {
                None => {
                    ours = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&self.path)
                        .ok()
                }
                Some(f) => {
                    let _ = f.read(&mut [0; 1 << 16]);
                }
            }
            std::thread::yield_now();
        }
        let _ = t.join();
    }
}
