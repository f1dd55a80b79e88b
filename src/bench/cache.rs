//! The page cache state a measurement starts from: warm, cold (and how cold, measured), or bypassed.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The cache state of a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// The file was read once right before each measurement (this VM evicts idle page cache).
    Warm,
    /// The file's pages were dropped before each measurement (`drop_caches` as root, and
    /// `posix_fadvise(DONTNEED)`); how much stayed resident is measured, not assumed.
    Cold,
    /// `O_DIRECT`: the page cache is bypassed.
    Direct,
    /// Cold, and ringread's ways read with `RWF_DONTCACHE` (`--dontcache`): what a run leaves in
    /// the page cache is the point (each way's `residency_after`); the other ways read as cold.
    Dontcache,
}

impl CacheMode {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Warm => "warm",
            CacheMode::Cold => "cold",
            CacheMode::Direct => "direct",
            CacheMode::Dontcache => "dontcache",
        }
    }
}

impl std::str::FromStr for CacheMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "warm" => Ok(CacheMode::Warm),
            "cold" => Ok(CacheMode::Cold),
            "direct" => Ok(CacheMode::Direct),
            "dontcache" => Ok(CacheMode::Dontcache),
            _ => Err(format!(
                "unknown cache mode '{s}' (warm, cold, direct, dontcache or all)"
            )),
        }
    }
}

/// Reads the whole file once, so its pages are in the cache.
pub fn warm(path: &Path) -> io::Result<()> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// Drops the file's pages from the cache: as root, every clean page of the machine
/// (`sync; echo 1 > /proc/sys/vm/drop_caches`), then this file's by `posix_fadvise(DONTNEED)`.
pub fn drop_cache(path: &Path) -> io::Result<()> {
    drop_caches(std::slice::from_ref(&path))
}

/// [`drop_cache`] of several files: each written back, the machine's clean pages dropped once
/// (as root), then each file's pages by `posix_fadvise(DONTNEED)`.
pub fn drop_caches<P: AsRef<Path>>(paths: &[P]) -> io::Result<()> {
    let files = paths
        .iter()
        .map(|p| File::open(p.as_ref()))
        .collect::<io::Result<Vec<File>>>()?;
    for f in &files {
        // SAFETY: fdatasync on a descriptor we hold; it does not touch our memory.
        unsafe {
            libc::fdatasync(f.as_raw_fd());
        }
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        // SAFETY: sync has no preconditions.
        unsafe { libc::sync() };
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
    }
    for f in &files {
        // SAFETY: posix_fadvise on a descriptor we hold; it does not touch our memory.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// The share of the bytes of `files`, all together, in the page cache now (0.0 to 1.0); `None`
/// if one cannot be asked.
pub fn cached_share(files: &[std::path::PathBuf]) -> Option<f64> {
    let (cached, len) = files.iter().try_fold((0u64, 0u64), |(c, l), f| {
        let r = crate::residency::of_file(&File::open(f).ok()?).ok()?;
        Some((c + r.cached, l + r.len))
    })?;
    Some(cached as f64 / len.max(1) as f64)
}

/// The fraction of the file's pages in the page cache (`crate::residency`: cachestat, else
/// mincore), 0.0 to 1.0.
pub fn residency(path: &Path) -> io::Result<f64> {
    Ok(crate::residency::of_file(&File::open(path)?)?.fraction())
}
