//! The cache states of `bench --tree`: warm (every file read just before), cold (everything
//! dropped as root; each file's pages otherwise, said so).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::bench::ways::open_error;
use crate::error::Result;

/// Reads every file once, so that its pages (and its metadata) are cached.
pub(super) fn warm_all(paths: &[PathBuf]) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    for p in paths {
        let mut f = std::fs::File::open(p).map_err(open_error(p))?;
        while f.read(&mut buf).map_err(open_error(p))? > 0 {}
    }
    Ok(())
}

/// Drops the cache: as root every clean page, dentry and inode of the machine
/// (`sync; echo 3 > /proc/sys/vm/drop_caches`); otherwise each file's pages with
/// `posix_fadvise(DONTNEED)`, which leaves its dentry and inode cached. Returns why the drop was
/// only partial, if it was.
pub(super) fn drop_all(paths: &[PathBuf]) -> Result<Option<String>> {
    // SAFETY: geteuid has no preconditions.
    let why = if unsafe { libc::geteuid() } == 0 {
        // SAFETY: sync has no preconditions.
        unsafe { libc::sync() };
        match std::fs::write("/proc/sys/vm/drop_caches", "3") {
            Ok(()) => return Ok(None),
            Err(e) => format!("writing /proc/sys/vm/drop_caches failed ({e})"),
        }
    } else {
        "not root".to_string()
    };
    for p in paths {
        let f = std::fs::File::open(p).map_err(open_error(p))?;
        // SAFETY: posix_fadvise on a descriptor we hold; it touches no memory of ours.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(open_error(p)(std::io::Error::from_raw_os_error(rc)));
        }
    }
    Ok(Some(why))
}

/// Whether `dir` is on tmpfs (whose pages cannot be dropped).
pub(super) fn on_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let Ok(f) = std::fs::File::open(dir) else {
        return false;
    };
    // SAFETY: fstatfs writes into the struct we pass, on a descriptor we hold.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::fstatfs(f.as_raw_fd(), &mut s) == 0 && s.f_type as i64 == TMPFS_MAGIC
    }
}
