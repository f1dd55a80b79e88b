//! What one measurement costs the process: CPU time of all its threads, read calls, io_uring_enter
//! calls, page faults, and peak memory.

use std::time::Instant;

/// A snapshot of the process's counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    at: Instant,
    cpu: f64,
    faults: u64,
    read_calls: u64,
    enters: u64,
    polls: u64,
    switches: u64,
}

/// The difference between two snapshots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cost {
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub faults: u64,
    pub read_calls: u64,
    pub enters: u64,
    /// `epoll_wait` calls of ringread's epoll way.
    pub polls: u64,
    pub peak_rss: Option<u64>,
    /// Voluntary context switches of all the process's threads: each is a thread that went to
    /// sleep (to be woken: a task's worker, a driver or runtime thread waiting for completions).
    pub switches: u64,
}

impl Snapshot {
    /// Takes a snapshot, after resetting the peak-memory mark.
    pub(crate) fn now() -> Snapshot {
        // Resets VmHWM (Linux 4.0+), so the peak is this measurement's.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let (cpu, faults, switches) = rusage();
        Snapshot {
            cpu,
            faults,
            switches,
            read_calls: read_calls(),
            enters: crate::ring::enter_count(),
            polls: crate::net::poll_count(),
            at: Instant::now(),
        }
    }

    /// The cost since `self`.
    pub(crate) fn cost(&self) -> Cost {
        let seconds = self.at.elapsed().as_secs_f64();
        let (cpu, faults, switches) = rusage();
        Cost {
            switches: switches - self.switches,
            seconds,
            cpu_seconds: cpu - self.cpu,
            faults: faults - self.faults,
            read_calls: read_calls() - self.read_calls,
            enters: crate::ring::enter_count() - self.enters,
            polls: crate::net::poll_count() - self.polls,
            peak_rss: peak_rss(),
        }
    }
}

/// User + system CPU seconds of every thread of the process, its page faults and its voluntary
/// context switches.
fn rusage() -> (f64, u64, u64) {
    // SAFETY: getrusage writes into the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        (ru.ru_minflt + ru.ru_majflt) as u64,
        ru.ru_nvcsw as u64,
    )
}

/// `read(2)`-family calls of the process so far (`syscr` of `/proc/self/io`).
fn read_calls() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("syscr: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident memory since the last reset (`VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
