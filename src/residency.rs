//! The page cache as ringread sees it. How much of a file is in it: `cachestat(2)` (Linux 6.5) in one call, without
//! mapping the file; `mincore(2)` over a mapping where cachestat is missing (older kernels) or
//! refused (some file systems). And (crate-private) whether a file system takes uncached reads
//! (`RWF_DONTCACHE`).
//!
//! ```
//! let f = std::fs::File::open("Cargo.toml")?;
//! let r = ringread::residency::of_file(&f)?;
//! assert!(r.cached <= r.len);
//! println!("{:.1}% cached (by {:?})", 100.0 * r.fraction(), r.measured);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// How a [`Residency`] was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// `cachestat(2)`.
    Cachestat,
    /// `mincore(2)` over a read-only mapping (never touched, so a concurrent truncation cannot
    /// fault).
    Mincore,
}

/// The part of a range of a file that is in the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    /// Bytes of the range in the page cache (whole pages; the last page of a file counts as a
    /// page).
    pub cached: u64,
    /// Bytes in the range, rounded up to whole pages.
    pub len: u64,
    /// How it was measured.
    pub measured: Measured,
}

impl Residency {
    /// The cached share, 0.0 to 1.0 (1.0 for an empty range: nothing is missing).
    pub fn fraction(&self) -> f64 {
        if self.len == 0 {
            1.0
        } else {
            self.cached as f64 / self.len as f64
        }
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// The residency of the whole of `file`.
pub fn of_file(file: &File) -> io::Result<Residency> {
    of_range(file, 0, u64::MAX)
}

/// The residency of `len` bytes of `file` from `offset` (clipped to the file's size).
pub fn of_range(file: &File, offset: u64, len: u64) -> io::Result<Residency> {
    of_range_sized(file, file.metadata()?.len(), offset, len)
}

/// [`of_range`] of a file whose size the caller has just read (one `fstat` fewer).
pub(crate) fn of_range_sized(
    file: &File,
    size: u64,
    offset: u64,
    len: u64,
) -> io::Result<Residency> {
    let page = page_size();
    let start = offset.min(size) / page * page;
    let end = offset.saturating_add(len).min(size);
    let span = end.saturating_sub(start).div_ceil(page) * page;
    if span == 0 {
        return Ok(Residency {
            cached: 0,
            len: 0,
            measured: Measured::Cachestat,
        });
    }
    match cachestat(file, start, span) {
        Ok(pages) => Ok(Residency {
            cached: (pages * page).min(span),
            len: span,
            measured: Measured::Cachestat,
        }),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM)
            ) =>
        {
            mincore(file, start, span, page)
        }
        Err(e) => Err(e),
    }
}

/// Whether every page of `len` bytes of `file` from `offset` is in the page cache with its data
/// in (for a reader deciding, chunk by chunk, what to read ahead). By `mincore(2)`, not
/// `cachestat(2)`: mincore counts a page only once it is up to date, cachestat from the moment the
/// kernel's read-ahead puts it in the cache, before the device has filled it (with the default
/// read-ahead of several MiB, a cold file would look cached right ahead of every read). No
/// `fstat`: pages past the end are not resident. `false` where the kernel cannot tell: then the
/// caller reads as if nothing were cached.
#[cfg(feature = "stream")]
pub(crate) fn all_cached(file: &File, offset: u64, len: u64) -> bool {
    let page = page_size();
    let start = offset / page * page;
    let span = (offset.saturating_add(len) - start).div_ceil(page) * page;
    span > 0 && mincore(file, start, span, page).is_ok_and(|r| r.cached >= span)
}

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>` (counts in pages).
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// The number of cached pages in the range, by `cachestat(2)` (not yet wrapped by libc).
fn cachestat(file: &File, off: u64, len: u64) -> io::Result<u64> {
    // The same number on every architecture (added after the tables were unified).
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = CachestatRange { off, len };
    let mut stat = Cachestat::default();
    // SAFETY: both structs are the kernel's layout, live for the call and are only written by the
    // kernel as `cachestat(2)` documents; flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.nr_cache)
}

/// The residency of a page-aligned range by `mincore(2)` over a mapping of it.
fn mincore(file: &File, start: u64, span: u64, page: u64) -> io::Result<Residency> {
    let len = usize::try_from(span).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    let off =
        libc::off_t::try_from(start).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: a fresh read-only shared mapping that nothing else refers to; it is only passed to
    // mincore (never read, so a truncation meanwhile cannot fault) and unmapped below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            off,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let pages = span.div_ceil(page) as usize;
    let mut vec = vec![0u8; pages];
    // SAFETY: the mapping covers len bytes; vec has one byte per page of it.
    let rc = unsafe { libc::mincore(map, len, vec.as_mut_ptr()) };
    let err = io::Error::last_os_error();
    // SAFETY: the mapping made above, unmapped once.
    unsafe { libc::munmap(map, len) };
    if rc != 0 {
        return Err(err);
    }
    let resident = vec.iter().filter(|&&b| b & 1 != 0).count() as u64;
    Ok(Residency {
        cached: resident * page,
        len: span,
        measured: Measured::Mincore,
    })
}

/// Whether the file system of `fd` (device `dev`) takes uncached buffered reads
/// (`RWF_DONTCACHE`, Linux 6.14; per file system). Asked once per device with a one-byte
/// `preadv2` at the file's end (no I/O), then remembered for the process.
pub(crate) fn dontcache_supported(fd: RawFd, dev: u64) -> bool {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static KNOWN: Mutex<Option<HashMap<u64, bool>>> = Mutex::new(None);
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&ok) = known.get_or_insert_with(HashMap::new).get(&dev) {
        return ok;
    }
    let mut byte = 0u8;
    let iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // At the end of the file: the kernel checks the flags before it finds the end, so the answer
    // costs no I/O and starts no read-ahead (whose pages would stay cached).
    // SAFETY: fstat into a zeroed struct we own.
    let end = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) == 0 {
            st.st_size.max(0)
        } else {
            0
        }
    };
    // SAFETY: at most one byte into `byte`, which outlives the call.
    let n = unsafe { libc::preadv2(fd, &iov, 1, end, libc::RWF_DONTCACHE) };
    let refused = n < 0
        && matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EOPNOTSUPP | libc::EINVAL)
        );
    // Other errors (EIO, say) say nothing of the file system: the reads will report them.
    if n >= 0 || refused {
        known.get_or_insert_with(HashMap::new).insert(dev, !refused);
    }
    !refused
}

/// [`dontcache_supported`] for a file named by path (opened for the question only).
pub(crate) fn dontcache_supported_at(path: &std::ffi::CStr, dev: u64) -> bool {
    // SAFETY: a plain open of a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        return true; // the engine's own open will say why
    }
    let ok = dontcache_supported(fd, dev);
    // SAFETY: the descriptor opened above, closed once.
    unsafe { libc::close(fd) };
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn cachestat_and_mincore_agree_on_a_half_cached_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; 8 << 20]).unwrap();
        f.sync_all().unwrap();
        let f = File::open(&path).unwrap();
        // SAFETY: plain advice on a descriptor we hold: drop its pages, and no read-ahead after.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
        }
        let mut buf = vec![0u8; 4 << 20];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 0).unwrap();
        let page = page_size();
        let by_cachestat = of_file(&f).unwrap();
        let by_mincore = mincore(&f, 0, (8 << 20) / page * page, page).unwrap();
        assert_eq!(by_cachestat.len, 8 << 20);
        assert_eq!(by_mincore.len, 8 << 20);
        // Read-ahead may bring in a little more than was read; both see the same pages.
        assert!(by_cachestat.cached >= 4 << 20, "{by_cachestat:?}");
        assert!(by_cachestat.cached < 8 << 20, "{by_cachestat:?}");
        assert_eq!(by_cachestat.cached, by_mincore.cached);
        // A range: the first half is all cached.
        let first = of_range(&f, 0, 4 << 20).unwrap();
        assert_eq!(first.cached, 4 << 20);
        assert_eq!(of_range(&f, 9 << 20, 10).unwrap().len, 0);
    }
}
