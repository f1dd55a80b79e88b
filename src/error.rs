//! The one error type of the library.
//!
//! Every error a user can see names what failed, on which path and, for a read, at which offset,
//! with the operating system's reason in words (never a bare errno).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or inspected (missing, permission denied, a directory, ...).
    #[error("{}: {}", path.display(), Reason(source))]
    Open {
        /// The path given by the caller.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A read failed at `offset`. Every byte before `offset` was delivered; none after it.
    #[error("{}: read error at offset {offset}: {}", path.display(), Reason(source))]
    Read {
        /// The path given by the caller.
        path: PathBuf,
        /// The byte offset of the read that failed.
        offset: u64,
        /// The operating system's error.
        source: io::Error,
    },
    /// The processor failed on the chunk at `offset` (for example, writing to a closed pipe).
    #[error("{}: {}", path.display(), Reason(source))]
    Process {
        /// The path given by the caller.
        path: PathBuf,
        /// The byte offset of the chunk the processor was given.
        offset: u64,
        /// The processor's error.
        source: io::Error,
    },
    /// The options cannot work; nothing was read.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// io_uring was required (`Backend::Uring`) but the kernel refused it.
    #[error("io_uring is unavailable: {reason}")]
    UringUnavailable {
        /// Why, in words (for example "blocked by seccomp or the kernel.io_uring_disabled sysctl").
        reason: String,
    },
    /// Reading was stopped by a [`Cancel`](crate::Cancel) handle (see
    /// [`Reader::set_cancel`](crate::Reader::set_cancel)); every read in flight was reaped first.
    #[error("{}: interrupted", path.display())]
    Interrupted {
        /// The path being read.
        path: PathBuf,
    },
    /// The buffer budget could not be allocated.
    #[error("cannot allocate {bytes} bytes of read buffers")]
    OutOfMemory {
        /// The size of the allocation that failed.
        bytes: usize,
    },
    /// A [`FileStream`](crate::stream::FileStream) was polled while every one of its `held`
    /// buffers was lent out as a chunk and nothing was being read, or a
    /// [`ReadMany`](crate::stream::ReadMany)'s next file found the driver's whole budget held by
    /// the files it had handed out: it could only wait for one to be dropped, which never happens
    /// if the polling task holds them (`collect()`ing them, say). A stream ends; `ReadMany` goes on
    /// with the next file. Drop chunks and files before asking for more, copy the bytes out
    /// (`Bytes::copy_from_slice`), or give the stream a larger `depth` or the driver a larger
    /// budget.
    #[error(
        "{}: all {held} read buffers are held by chunks (or files) not dropped yet; drop chunks \
         before asking for the next one, copy them (Bytes::copy_from_slice), or raise depth (or \
         the driver's budget)",
        path.display()
    )]
    BuffersHeld {
        /// The stream's path (or name).
        path: PathBuf,
        /// How many buffers are held (a stream's `depth`; for `ReadMany`, the files it holds).
        held: usize,
    },
    /// A poll had to wait for a buffer of its [`Driver`](crate::stream::Driver)'s budget (the
    /// budget spent, and nothing of the poll's own stream or file in flight), while every buffer of
    /// the budget was held by chunks, files or ranges (`OwnedChunk`s, `Bytes`) that the waiting
    /// task itself had taken and not dropped: only that task could give one back, and it was
    /// waiting, so the wait would never have ended. Returned by a [`FileStream`](crate::stream::FileStream)'s
    /// poll (the stream ends), a [`ReadMany`](crate::stream::ReadMany)'s next file (the stream goes
    /// on), [`Driver::files`](crate::stream::Driver::files) and
    /// [`RangeFile::read_at`](crate::stream::RangeFile::read_at). Drop what you hold before
    /// waiting for more, copy the bytes you keep (`Bytes::copy_from_slice`), or give the driver a
    /// larger budget ([`Driver::with_budget`](crate::stream::Driver::with_budget)).
    #[error(
        "{}: waits for a buffer of the driver's budget ({budget} bytes), but this task holds all \
         of it: {held} chunks or files not dropped ({bytes} bytes{}); drop them before waiting for \
         more, copy what you keep (Bytes::copy_from_slice), or give the driver a larger budget \
         (Driver::with_budget)",
        path.display(),
        HeldOf(of, *held)
    )]
    BudgetHeld {
        /// The stream or file whose poll would have waited.
        path: PathBuf,
        /// The driver's budget in bytes.
        budget: usize,
        /// How many buffers the task holds (chunks, files, ranges).
        held: usize,
        /// Their bytes: every byte of the budget in use.
        bytes: usize,
        /// Where they came from: up to four paths, with how many buffers of each (the others, if
        /// any, are the rest of `held`).
        of: Vec<(PathBuf, usize)>,
    },
    /// Two ways of reading the same file gave different results: the correctness check of
    /// `ringread bench --tree` (the file changed while the benchmark ran, or a way is wrong). Only
    /// with the `bench` feature: the lean core has no benchmark.
    #[cfg(feature = "bench")]
    #[error(
        "{}: {way} made {got} of it, {reference} made {expected}: the ways disagree",
        path.display()
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The way whose result differs.
        way: String,
        /// Its result.
        got: String,
        /// The way whose result was taken as the reference (the first run's).
        reference: String,
        /// The reference's result.
        expected: String,
    },
    /// io_uring itself failed while reading (submission or setup, not an individual read).
    #[error("{}: io_uring {op} failed: {}", path.display(), Reason(source))]
    Ring {
        /// The path being read.
        path: PathBuf,
        /// Which ring operation failed.
        op: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
}

impl Error {
    /// The operating system's error behind this one, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Open { source, .. }
            | Error::Read { source, .. }
            | Error::Process { source, .. }
            | Error::Ring { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The path this error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Open { path, .. }
            | Error::Read { path, .. }
            | Error::Process { path, .. }
            | Error::Ring { path, .. }
            | Error::Interrupted { path }
            | Error::BuffersHeld { path, .. }
            | Error::BudgetHeld { path, .. } => Some(path),
            #[cfg(feature = "bench")]
            Error::Mismatch { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shows where the buffers of [`Error::BudgetHeld`] came from: ", of a (3), b (1) and 2 others".
struct HeldOf<'a>(&'a [(PathBuf, usize)], usize);

impl fmt::Display for HeldOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut named = 0;
        for (k, (p, n)) in self.0.iter().enumerate() {
            f.write_str(if k == 0 { ", of " } else { ", " })?;
            write!(f, "{} ({n})", p.display())?;
            named += n;
        }
        match self.1.saturating_sub(named) {
            0 => Ok(()),
            rest if named == 0 => write!(f, ", of {rest} files"),
            rest => write!(f, " and {rest} of other files"),
        }
    }
}

/// Shows an [`io::Error`] as the operating system words it ("No such file or directory"), without
/// Rust's " (os error 2)" suffix, so that messages read like coreutils'.
pub struct Reason<'a>(pub &'a io::Error);

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.raw_os_error() {
            Some(code) => {
                let text = io::Error::from_raw_os_error(code).to_string();
                let words = text.split(" (os error ").next().unwrap_or(&text);
                f.write_str(words)
            }
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_error_names_path_offset_and_reason() {
        let e = Error::Read {
            path: "/data/x".into(),
            offset: 4096,
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        assert_eq!(
            e.to_string(),
            "/data/x: read error at offset 4096: Input/output error"
        );
    }

    #[test]
    fn budget_held_names_what_is_held() {
        let e = Error::BudgetHeld {
            path: "b".into(),
            budget: 262144,
            held: 4,
            bytes: 262144,
            of: vec![("a".into(), 3)],
        };
        assert_eq!(
            e.to_string(),
            "b: waits for a buffer of the driver's budget (262144 bytes), but this task holds all \
             of it: 4 chunks or files not dropped (262144 bytes, of a (3) and 1 of other files); \
             drop them before waiting for more, copy what you keep (Bytes::copy_from_slice), or \
             give the driver a larger budget (Driver::with_budget)"
        );
    }

    #[test]
    fn open_error_reads_like_coreutils() {
        let e = Error::Open {
            path: "nope".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(e.to_string(), "nope: No such file or directory");
    }
}
