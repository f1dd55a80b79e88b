//! What a read did and how: [`Summary`], [`Route`], and the [`Notice`]s that say which choices
//! differed from the options, and why.

use std::fmt;

/// Which engine read a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Engine {
    /// io_uring (ringread's engine).
    Uring,
    /// Plain synchronous `read(2)`/`pread(2)` into one buffer.
    Sync,
    /// The engine's lanes with `pread(2)` in place of io_uring: the fallback where io_uring is
    /// refused.
    Pread,
    /// Non-blocking `read(2)` driven by epoll (streams only, `Backend::Epoll`).
    Epoll,
    /// No reads: the cached file mapped into memory and processed in place
    /// ([`ReadOptionsBuilder::in_place`](crate::ReadOptionsBuilder::in_place)).
    InPlace,
}

/// Something the reader chose differently from what was asked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// io_uring is refused by the kernel; reading goes on with the lanes and `pread(2)`.
    UringUnavailable {
        /// The kernel's reason, in words.
        reason: String,
    },
    /// Fewer buffers than asked were registered with the kernel; the rest are read with plain `READ`.
    RegisteredFewer {
        /// Buffers registered.
        registered: usize,
        /// Buffers asked for.
        wanted: usize,
        /// The kernel's reason.
        reason: String,
    },
    /// Uncached reads (`dontcache`) were asked for but the file system refuses `RWF_DONTCACHE`; the
    /// file is read another way that leaves the page cache alone.
    DontcacheFallback {
        /// Why.
        reason: String,
        /// How it is read instead.
        instead: String,
    },
    /// Self-tuning read this file with other options than the reader's (see
    /// [`ReadOptions::self_tuning`](crate::ReadOptions::self_tuning)).
    Tuned {
        /// The chunk size it was read with.
        chunk_size: usize,
        /// The reads in flight.
        depth: usize,
        /// Why, in words.
        reason: String,
    },
    /// Processing in place was chosen for this cached file but its mapping could not be made; it
    /// is read by copying, as usual.
    InPlaceUnavailable {
        /// Why.
        reason: String,
    },
    /// `O_DIRECT` was asked for but cannot be used on this file; it is read through the page cache.
    DirectUnavailable {
        /// Why.
        reason: String,
    },
    /// The file is on a FUSE file system, where io_uring's reads can report a short read from the
    /// server as complete (measured on Linux 6.18 with a server that opens files with
    /// `FOPEN_DIRECT_IO`: the bytes past the short read were never written); it is read with
    /// `read(2)`, unless `Backend::Uring` insists (then this notice is a warning).
    Fuse {
        /// `Backend::Uring` insisted: the file was read with io_uring all the same.
        forced: bool,
    },
    /// A stream (pipe, socket) could not get its io_uring ring with a provided buffer ring (Linux
    /// 5.19 or later needed); it is read with `read(2)`.
    StreamUringUnavailable {
        /// The kernel's reason, in words.
        reason: String,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::StreamUringUnavailable { reason } => write!(
                f,
                "a stream's io_uring ring with a provided buffer ring cannot be set up, reading \
                 with read(2) instead: {reason}"
            ),
            Notice::UringUnavailable { reason } => {
                write!(
                    f,
                    "io_uring is unavailable, reading with pread(2) instead: {reason}"
                )
            }
            Notice::RegisteredFewer {
                registered,
                wanted,
                reason,
            } => write!(
                f,
                "registered {registered} of {wanted} buffers with the kernel ({reason}); \
                 the others use unregistered reads"
            ),
            Notice::DontcacheFallback { reason, instead } => {
                write!(f, "uncached reads: {reason}; {instead} instead")
            }
            Notice::Tuned {
                chunk_size,
                depth,
                reason,
            } => write!(
                f,
                "read as a cold file ({reason}): chunks of {chunk_size} bytes, {depth} in flight"
            ),
            Notice::InPlaceUnavailable { reason } => {
                write!(f, "not processed in place ({reason}); read by copying")
            }
            Notice::DirectUnavailable { reason } => {
                write!(
                    f,
                    "O_DIRECT not used, reading through the page cache: {reason}"
                )
            }
            Notice::Fuse { forced: false } => write!(
                f,
                "a FUSE file: reading with read(2), because io_uring can report a FUSE server's \
                 short read as complete (kernel FUSE direct I/O)"
            ),
            Notice::Fuse { forced: true } => write!(
                f,
                "warning: a FUSE file read with io_uring, as --backend uring asks; io_uring can \
                 report a FUSE server's short read as complete (kernel FUSE direct I/O)"
            ),
        }
    }
}

/// How a file was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The engine.
    pub engine: Engine,
    /// Reading threads (lanes).
    pub threads: usize,
    /// Buffers in use (reads in flight at most).
    pub buffers: usize,
    /// Of those, registered with the kernel.
    pub registered: usize,
    /// Bytes per read.
    pub chunk_size: usize,
    /// Whether `O_DIRECT` was used.
    pub direct: bool,
    /// Whether reads were uncached buffered reads (`RWF_DONTCACHE`).
    pub uncached: bool,
    /// Whether a kernel thread polled the submission queue.
    pub sqpoll: bool,
    /// Whether reads carried offsets (files) or read a stream's position (pipes, terminals).
    pub positional: bool,
}

impl Route {
    /// How the page cache was used, in a word.
    fn cache(&self) -> &'static str {
        if self.direct {
            "O_DIRECT"
        } else if self.uncached {
            "buffered uncached (RWF_DONTCACHE)"
        } else {
            "buffered"
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.engine {
            Engine::Uring => write!(
                f,
                "io_uring, {} thread{}, {} buffer{} of {} bytes ({} registered), {}{}{}",
                self.threads,
                if self.threads == 1 { "" } else { "s" },
                self.buffers,
                if self.buffers == 1 { "" } else { "s" },
                self.chunk_size,
                self.registered,
                self.cache(),
                if self.sqpoll { ", SQPOLL" } else { "" },
                if self.positional { "" } else { ", stream" },
            ),
            Engine::Pread => write!(
                f,
                "pread(2), {} thread{}, {} buffer{} of {} bytes, {}{}",
                self.threads,
                if self.threads == 1 { "" } else { "s" },
                self.buffers,
                if self.buffers == 1 { "" } else { "s" },
                self.chunk_size,
                self.cache(),
                if self.positional { "" } else { ", stream" },
            ),
            Engine::Epoll => write!(
                f,
                "epoll and non-blocking read(2), 1 thread, 1 buffer of {} bytes, stream",
                self.chunk_size,
            ),
            Engine::InPlace => write!(
                f,
                "in place (the page cache mapped, no copy), {} thread{}, chunks of {} bytes",
                self.threads,
                if self.threads == 1 { "" } else { "s" },
                self.chunk_size,
            ),
            Engine::Sync => write!(
                f,
                "read(2), 1 thread, 1 buffer of {} bytes, {}{}",
                self.chunk_size,
                self.cache(),
                if self.positional { "" } else { ", stream" },
            ),
        }
    }
}

/// What one read did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Bytes delivered to the processor.
    pub bytes: u64,
    /// How the file was read.
    pub route: Route,
    /// Choices made differently from the options, with reasons.
    pub notices: Vec<Notice>,
}
