//! The tree `bench --tree` makes when it is given none: `files` files of random bytes spread over
//! 100 directories, sizes drawn from a lognormal distribution (the sizes of a source tree or a
//! photo library: most files a few KiB, a few of megabytes), the same for the same seed.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::Cancel;

/// The directories of a generated tree (fewer when there are fewer files).
pub const TREE_DIRS: usize = 100;
/// The mean of the logarithm of a generated file's size in bytes.
pub const SIZE_MU: f64 = 8.0;
/// The standard deviation of the logarithm of a generated file's size in bytes.
pub const SIZE_SIGMA: f64 = 1.5;
/// The largest generated file, bytes.
pub const SIZE_CAP: u64 = 2_000_000;
/// The seed of the generated trees (sizes and contents).
pub const TREE_SEED: u64 = 11;

/// What [`make_tree`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TreeStats {
    /// Files made.
    pub files: u64,
    /// Their total size, bytes.
    pub bytes: u64,
}

/// splitmix64: a tiny deterministic generator, good enough for sizes and filler bytes.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The sizes of the `files` files of the tree of `seed`: `exp(N(SIZE_MU, SIZE_SIGMA))` bytes, at
/// most [`SIZE_CAP`].
pub fn tree_sizes(files: usize, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix(seed);
    (0..files)
        .map(|_| ((SIZE_MU + SIZE_SIGMA * rng.normal()).exp() as u64).min(SIZE_CAP))
        .collect()
}

/// The path of file `i` of a tree of `files` files below `dir`: `dNNN/fNNNNNN`, file `i` in
/// directory `i % 100`, so that each directory's sorted names are in the order they were made.
fn file_path(dir: &Path, i: usize, files: usize) -> PathBuf {
    let dirs = TREE_DIRS.min(files).max(1);
    let width = (files.max(1) - 1).to_string().len().max(6);
    dir.join(format!("d{:03}", i % dirs))
        .join(format!("f{i:0width$}"))
}

/// Makes the tree of `seed` with `files` files in `dir`, which must not exist yet (its parent
/// must), and flushes it to the device (`syncfs`), so that a cold run reads it from there.
/// Stops with [`Error::Interrupted`] once `cancel` is cancelled; the caller removes what was made.
pub fn make_tree(
    dir: &Path,
    files: usize,
    seed: u64,
    cancel: Option<&Cancel>,
) -> Result<TreeStats> {
    let open_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Open { path, source }
    };
    std::fs::create_dir(dir).map_err(open_err(dir))?;
    for d in 0..TREE_DIRS.min(files) {
        let sub = dir.join(format!("d{d:03}"));
        std::fs::create_dir(&sub).map_err(open_err(&sub))?;
    }
    let sizes = tree_sizes(files, seed);
    let mut buf = Vec::new();
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let path = file_path(dir, i, files);
        if i % 256 == 0 && cancel.is_some_and(Cancel::is_cancelled) {
            return Err(Error::Interrupted { path });
        }
        // The contents: splitmix64 output seeded by the tree's seed and the file's number.
        let mut rng = SplitMix(seed ^ (i as u64).wrapping_mul(0xD605_BBB5_8C8A_BDCB));
        buf.clear();
        buf.reserve(size as usize + 8);
        while buf.len() < size as usize {
            buf.extend_from_slice(&rng.next().to_le_bytes());
        }
        buf.truncate(size as usize);
        let mut f = std::fs::File::create_new(&path).map_err(open_err(&path))?;
        f.write_all(&buf).map_err(open_err(&path))?;
        bytes += size;
    }
    let d = std::fs::File::open(dir).map_err(open_err(dir))?;
    // SAFETY: syncfs on a descriptor we hold; it touches no memory of ours.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d)) } != 0 {
        return Err(open_err(dir)(std::io::Error::last_os_error()));
    }
    Ok(TreeStats {
        files: files as u64,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_deterministic_capped_and_lognormal() {
        let a = tree_sizes(50_000, TREE_SEED);
        assert_eq!(a, tree_sizes(50_000, TREE_SEED));
        assert_ne!(a, tree_sizes(50_000, TREE_SEED + 1));
        assert!(a.iter().all(|&s| s <= SIZE_CAP));
        // The median of exp(N(8, 1.5)) is e^8 = 2981 bytes.
        let mut s = a.clone();
        s.sort_unstable();
        let median = s[s.len() / 2] as f64;
        assert!((median / 8f64.exp() - 1.0).abs() < 0.05, "median {median}");
        // The mean is e^(8 + 1.5^2/2) = 9181 bytes (the cap takes little of it).
        let mean = a.iter().sum::<u64>() as f64 / a.len() as f64;
        assert!((7_500.0..11_000.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn layout_spreads_files_over_sorted_directories() {
        let p = file_path(Path::new("t"), 1234, 50_000);
        assert_eq!(p, Path::new("t/d034/f001234"));
        assert_eq!(file_path(Path::new("t"), 3, 5), Path::new("t/d003/f000003"));
    }

    #[test]
    fn makes_the_tree_it_says() {
        let tmp = std::env::temp_dir().join(format!("ringread-gen-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let stats = make_tree(&tmp, 250, 7, None).unwrap();
        let sizes = tree_sizes(250, 7);
        assert_eq!(stats.bytes, sizes.iter().sum::<u64>());
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 100);
        let f = file_path(&tmp, 101, 250);
        assert_eq!(std::fs::metadata(&f).unwrap().len(), sizes[101]);
        assert!(
            make_tree(&tmp, 1, 7, None).is_err(),
            "an existing directory is refused"
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
