//! Every system call of the process, counted by the kernel: a perf counter on the
//! `raw_syscalls:sys_enter` tracepoint, opened on the calling thread with `inherit`, so that it
//! also counts every thread started after it (the reader's lanes, tokio's workers and blocking
//! pool). No tracer is attached and nothing is sampled: the kernel only adds to a number.
//!
//! It needs tracefs mounted (for the tracepoint's id) and the right to open the counter (root, or
//! `perf_event_paranoid` at 1 or less); where either is missing, [`SyscallCounter::open`] says why
//! and the benchmark counts what it can without it.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};

/// Where tracefs may be mounted.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// `PERF_TYPE_TRACEPOINT`.
const PERF_TYPE_TRACEPOINT: u32 = 2;
/// The `inherit` bit of `perf_event_attr`'s flags: count the threads started later too.
const INHERIT: u64 = 1 << 1;
/// `PERF_FLAG_FD_CLOEXEC`.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// `struct perf_event_attr` as of `PERF_ATTR_SIZE_VER0` (64 bytes); the kernel takes the size
/// from `size` and treats the fields it added later as zero.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// A count of the system calls made by the thread that opened it and every thread started after.
#[derive(Debug)]
pub(crate) struct SyscallCounter {
    file: File,
}

impl SyscallCounter {
    /// Opens the counter; if it cannot be, the reason in words.
    pub(crate) fn open() -> Result<SyscallCounter, String> {
        let id = TRACEFS
            .iter()
            .find_map(|d| {
                std::fs::read_to_string(format!("{d}/events/raw_syscalls/sys_enter/id")).ok()
            })
            .ok_or_else(|| {
                "tracefs is not mounted (as root: mount -t tracefs nodev /sys/kernel/tracing)"
                    .to_string()
            })?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("tracefs gave '{}' as the tracepoint's id", id.trim()))?;
        let attr = PerfEventAttr {
            kind: PERF_TYPE_TRACEPOINT,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: id,
            flags: INHERIT,
            ..PerfEventAttr::default()
        };
        // SAFETY: attr is a perf_event_attr of the size it states, alive for the call; pid 0 is
        // this thread, cpu -1 any CPU, group -1 none. The kernel only reads attr.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                0 as libc::pid_t,
                -1 as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!(
                "perf_event_open on raw_syscalls:sys_enter was refused: {e} (root, or \
                 kernel.perf_event_paranoid <= 1, is needed)"
            ));
        }
        // SAFETY: the kernel just returned this descriptor to us, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        Ok(SyscallCounter {
            file: File::from(fd),
        })
    }

    /// The system calls counted so far (of live threads and of those that have ended). Reading it
    /// is one `read(2)`, itself counted.
    pub(crate) fn count(&self) -> u64 {
        let mut v = [0u8; 8];
        match (&self.file).read_exact(&mut v) {
            Ok(()) => u64::from_ne_bytes(v),
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the counter can be opened, it counts the calls of a thread started after it.
    #[test]
    fn counts_calls_of_later_threads() {
        let Ok(c) = SyscallCounter::open() else {
            return;
        };
        let before = c.count();
        std::thread::spawn(|| {
            for _ in 0..1000 {
                // SAFETY: getppid has no preconditions.
                unsafe { libc::getppid() };
            }
        })
        .join()
        .unwrap();
        assert!(c.count() - before >= 1000);
    }
}
