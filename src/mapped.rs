//! A file's page cache mapped into memory, guarded against the file shrinking: reading in place.
//!
//! Mapping a cached file and handing its pages to a processor saves the copy into a buffer (what
//! `b3sum` does). The danger is truncation: once another process cuts the file, touching a mapped
//! page past the new end raises `SIGBUS`, which kills the process. A [`Mapping`] cannot do that:
//!
//! - each piece is first populated with `MADV_POPULATE_READ` (Linux 5.14), which maps it in one
//!   call and *reports* a page past the end as `EFAULT` instead of raising a signal;
//! - a file cut while a populated piece is being processed still zaps its pages, so the first
//!   mapping made installs a `SIGBUS` handler (once per process, chaining whatever handler was there
//!   before). A fault inside a live mapping is answered by mapping zero pages from the faulting
//!   page to the mapping's end and recording where it happened; the reader then fails the read at
//!   that offset ([`Mapping::fault`]). A fault anywhere else goes to the previous handler, or kills
//!   the process as it would have without this one.
//!
//! So a processor fed from a mapping may see zeros where the file was cut while it ran, but the
//! read then ends in an error naming the offset: use it for processors whose result is used only
//! when the read succeeds (digests, counts), not for copies.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// Mappings that may be live at once (across every reader of the process).
const SLOTS: usize = 64;
/// An entry's `start` while it is taken but not (or no longer) live.
const CLAIMED: usize = 1;
/// No fault recorded.
const NO_FAULT: u64 = u64::MAX;

/// One live mapping, as the signal handler sees it.
struct Entry {
    /// Its first byte's address; 0: free; [`CLAIMED`]: being set up or torn down.
    start: AtomicUsize,
    len: AtomicUsize,
    /// The file offset of the first page a fault hit, or [`NO_FAULT`].
    fault: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // one fresh entry per slot, by design
const FREE: Entry = Entry {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    fault: AtomicU64::new(NO_FAULT),
};

static ENTRIES: [Entry; SLOTS] = [FREE; SLOTS];
static INSTALL: Once = Once::new();
/// The `SIGBUS` disposition before ours, and whether installing ours worked.
static PREVIOUS: OnceLock<Option<Previous>> = OnceLock::new();

/// The handler that was there before ours.
#[derive(Clone, Copy)]
struct Previous {
    handler: libc::sighandler_t,
    siginfo: bool,
}

/// The page size, asked of the system once (0: not yet). The `SIGBUS` handler reads it from here,
/// so it calls nothing that POSIX does not list as async-signal-safe (`sysconf` is not listed).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

fn page_size() -> usize {
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf only reads a constant of the system.
            let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let p = if p > 0 { p as usize } else { 4096 };
            PAGE_SIZE.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

/// Installs the `SIGBUS` handler once per process; `false` if the kernel refused it.
fn install() -> bool {
    INSTALL.call_once(|| {
        // The handler's page size, known before it can run.
        page_size();
        // SAFETY: a zeroed sigaction is a valid "no handler, no flags, empty mask" value; we then
        // set the handler and flags, and sigaction only reads `new` and writes `old`.
        let previous = unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            let mut old: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            (libc::sigaction(libc::SIGBUS, &new, &mut old) == 0).then_some(Previous {
                handler: old.sa_sigaction,
                siginfo: old.sa_flags & libc::SA_SIGINFO != 0,
            })
        };
        let _ = PREVIOUS.set(previous);
    });
    PREVIOUS.get().copied().flatten().is_some()
}

/// The `SIGBUS` handler. Only async-signal-safe work: atomics, `mmap`, `sigaction`, `raise`.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a handler installed with SA_SIGINFO.
    let addr = unsafe { (*info).si_addr() } as usize;
    // SAFETY: as above.
    let from_fault = unsafe { (*info).si_code } > 0;
    if from_fault {
        for e in &ENTRIES {
            let start = e.start.load(Ordering::Acquire);
            let len = e.len.load(Ordering::Acquire);
            if start <= CLAIMED || addr < start || addr >= start + len {
                continue;
            }
            let page = addr & !(page_size() - 1);
            // SAFETY: the range lies inside a live mapping this module made (the registry says
            // so); replacing it with zero pages makes the faulting access succeed on retry. mmap
            // is a plain system call, safe in a signal handler.
            let zeros = unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    start + len - page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if zeros != libc::MAP_FAILED {
                e.fault.fetch_min((page - start) as u64, Ordering::AcqRel);
                return;
            }
            break;
        }
    }
    // Not ours (or no memory to answer it): what would have happened without this handler.
    match PREVIOUS.get().copied().flatten() {
        Some(p) if p.handler != libc::SIG_DFL && p.handler != libc::SIG_IGN => {
            if p.siginfo {
                // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this
                // signature; we pass it the kernel's own arguments.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(p.handler) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a handler installed without SA_SIGINFO takes the signal number only.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(p.handler) };
                f(sig);
            }
        }
        _ => {
            // SAFETY: restoring the default disposition; a fault then recurs when this handler
            // returns and kills the process as it would have; a signal sent by kill(2) is
            // raised again.
            unsafe {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
                if !from_fault {
                    libc::raise(libc::SIGBUS);
                }
            }
        }
    }
}

/// A read-only shared mapping of a file's first `len` bytes, registered with the `SIGBUS` guard.
pub(crate) struct Mapping {
    ptr: *mut u8,
    len: usize,
    entry: &'static Entry,
    /// `MADV_POPULATE_READ` works here (cleared on a kernel that says `EINVAL`).
    populate: AtomicBool,
}

// SAFETY: the mapping is plain read-only memory owned by this value; any thread may read it, and
// its entry is made of atomics.
unsafe impl Send for Mapping {}
// SAFETY: as above: shared access only reads.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd` (`len > 0`). Fails when the guard cannot be installed or
    /// every entry is taken; the caller then reads by copying.
    pub(crate) fn new(fd: RawFd, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        if !install() {
            return Err(io::Error::other("cannot install the SIGBUS guard"));
        }
        let entry = ENTRIES
            .iter()
            .find(|e| {
                e.start
                    .compare_exchange(0, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| io::Error::other("too many files mapped at once"))?;
        // SAFETY: a new read-only shared mapping of a descriptor the caller holds; the kernel picks
        // the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            entry.start.store(0, Ordering::Release);
            return Err(e);
        }
        entry.len.store(len, Ordering::Release);
        entry.fault.store(NO_FAULT, Ordering::Release);
        entry.start.store(ptr as usize, Ordering::Release);
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
            entry,
            populate: AtomicBool::new(true),
        })
    }

    /// The mapped length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Maps in the pages of `offset..offset + len` in one call. `EFAULT`: a page lies past the
    /// file's end (it shrank). Kernels without `MADV_POPULATE_READ` leave the pages to be faulted
    /// in as they are touched (the guard still holds).
    pub(crate) fn populate(&self, offset: usize, len: usize) -> io::Result<()> {
        if !self.populate.load(Ordering::Relaxed) || len == 0 {
            return Ok(());
        }
        let page = offset & !(page_size() - 1);
        let end = (offset + len).min(self.len);
        loop {
            // SAFETY: advice on a range inside this mapping.
            let r = unsafe {
                libc::madvise(
                    self.ptr.add(page).cast(),
                    end - page,
                    libc::MADV_POPULATE_READ,
                )
            };
            if r == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINVAL) => {
                    self.populate.store(false, Ordering::Relaxed);
                    return Ok(());
                }
                _ => return Err(e),
            }
        }
    }

    /// Unmaps the pages wholly inside `offset..offset + len` from this process (the page cache
    /// keeps them; touching them again maps them in again), so that the process's resident memory
    /// and page tables do not grow with the file. Advice only: a refusal changes nothing.
    pub(crate) fn release(&self, offset: usize, len: usize) {
        let page = page_size();
        let first = offset.div_ceil(page) * page;
        let end = ((offset + len).min(self.len) / page) * page;
        if end > first {
            // SAFETY: advice on whole pages inside this mapping; a shared file mapping refills
            // them from the file on the next touch, so no borrowed byte changes meaning.
            unsafe { libc::madvise(self.ptr.add(first).cast(), end - first, libc::MADV_DONTNEED) };
        }
    }

    /// The bytes of `offset..offset + len` (inside the mapping).
    ///
    /// # Safety
    ///
    /// The range must lie inside the mapping. The bytes may change while they are borrowed (another
    /// process writing the file, or zeros where it was cut); the caller must not rely on them
    /// staying the same, only on [`Mapping::fault`] to learn of a cut.
    pub(crate) unsafe fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        debug_assert!(offset + len <= self.len);
        // SAFETY: the caller keeps the range inside the mapping, which lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.add(offset), len) }
    }

    /// The file offset of the first page found cut off (past the file's end) while mapped, if any.
    pub(crate) fn fault(&self) -> Option<u64> {
        let f = self.entry.fault.load(Ordering::Acquire);
        (f != NO_FAULT).then_some(f)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // No longer ours before it goes away: a fault at this address from now on is not this
        // mapping's.
        self.entry.start.store(CLAIMED, Ordering::Release);
        // SAFETY: unmapping the mapping this value made; nothing borrows it any more (`bytes`
        // borrows `self`).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
        self.entry.start.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_cut_file_reports_the_offset_instead_of_a_signal() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 64 << 10]).unwrap();
        let m = Mapping::new(f.as_raw_fd(), 64 << 10).unwrap();
        m.populate(0, 64 << 10).unwrap();
        // SAFETY: inside the mapping.
        assert!(unsafe { m.bytes(0, 64 << 10) }.iter().all(|&b| b == 7));
        assert_eq!(m.fault(), None);
        f.set_len(10_000).unwrap();
        // Populating past the new end says so.
        let e = m.populate(32 << 10, 4096).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
        // Touching it raises SIGBUS, answered with zeros and the offset of the first page cut.
        // SAFETY: inside the mapping.
        let tail = unsafe { m.bytes(40 << 10, 4096) };
        assert!(tail.iter().all(|&b| b == 0));
        assert_eq!(m.fault(), Some(40 << 10));
        // SAFETY: inside the mapping; the page with the new end keeps its bytes up to it.
        assert!(unsafe { m.bytes(0, 10_000) }.iter().all(|&b| b == 7));
    }

    #[test]
    fn entries_are_given_back() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abc").unwrap();
        for _ in 0..SLOTS * 2 {
            let m = Mapping::new(f.as_raw_fd(), 3).unwrap();
            // SAFETY: inside the mapping.
            assert_eq!(unsafe { m.bytes(0, 3) }, b"abc");
        }
    }
}
