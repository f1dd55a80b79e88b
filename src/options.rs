//! What a read looks like: chunk size, queue depth, direct or buffered, registered buffers, backend.
//!
//! [`ReadOptions`] is immutable once built; [`ReadOptionsBuilder`] checks every value before any I/O
//! happens, so a bad option fails with a clear message and touches no file.

use crate::error::{Error, Result};

/// Which way of reading to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring where the kernel allows it, otherwise the engine's lanes with `pread(2)`
    /// ([`Backend::Pread`]), saying why once. FUSE files are read as [`Backend::Sync`] (see
    /// [`Notice::Fuse`](crate::Notice::Fuse)).
    #[default]
    Auto,
    /// io_uring only: fail with the kernel's reason if it is refused.
    Uring,
    /// Synchronous `pread(2)` (`read(2)` for streams) into one buffer, on the calling thread: one
    /// lane of depth one, with the same rules as every other path.
    Sync,
    /// The engine's lanes (one per CPU, the baton, the same rules) with `pread(2)` in place of
    /// io_uring: what [`Backend::Auto`] falls back to where the kernel refuses io_uring.
    Pread,
    /// Streams (pipes, sockets) only: non-blocking `read(2)` driven by epoll, to compare with
    /// io_uring. Refused for regular files and block devices, on which epoll cannot wait.
    Epoll,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Backend::Auto),
            "uring" => Ok(Backend::Uring),
            "sync" => Ok(Backend::Sync),
            "pread" => Ok(Backend::Pread),
            "epoll" => Ok(Backend::Epoll),
            other => Err(Error::InvalidOptions(format!(
                "unknown backend '{other}' (expected auto, uring, sync, pread or epoll)"
            ))),
        }
    }
}

/// The chunk size used when none is given: 256 KiB.
///
/// Measured on the 2-core machine of docs/BENCHMARKS.md: with the default depth the buffers of one
/// thread (2 x 256 KiB) stay within its L2 cache, so the processor reads the bytes the copy just wrote
/// while they are still close. 1 MiB chunks at the same depth were slower on cached data.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// The queue depth (buffers in flight, all threads together) used when none is given: 4, that is
/// two 256 KiB buffers per thread on two CPUs.
///
/// Measured warm on a 2 GiB file (docs/BENCHMARKS.md, median of 7): `count` 0.124 s at 256K x 4,
/// 0.128 s at 256K x 8, 0.163 s at 1M x 8; `sum -a xxh3` 0.150 s at 256K x 4, 0.175 s at 256K x 8;
/// BLAKE3 is slower with smaller chunks (0.73 s at 128K, 0.50 s at 256K). More buffers only push
/// the data out of the cache before the processor reads it.
pub const DEFAULT_DEPTH: usize = 4;
/// The chunk size used with `O_DIRECT` when none is given: 1 MiB (the device wants large requests).
pub const DEFAULT_DIRECT_CHUNK_SIZE: usize = 1024 * 1024;
/// The depth used with `O_DIRECT` when none is given: 16 (the device wants many requests in flight).
pub const DEFAULT_DIRECT_DEPTH: usize = 16;
/// The alignment of every buffer, and the alignment chunk sizes must have under `O_DIRECT`.
pub const ALIGN: usize = 4096;
/// The largest chunk: the kernel registers buffers of at most 1 GiB.
pub const MAX_CHUNK_SIZE: usize = 1 << 30;
/// The deepest queue: io_uring rings hold at most 32768 entries; a read takes one, and a lane's
/// ring keeps a few for its own polls and cancels.
pub const MAX_DEPTH: usize = 16384;

/// How to read. Build one with [`ReadOptions::builder`]; the defaults suit cached and cold files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    pub(crate) chunk_size: usize,
    pub(crate) depth: usize,
    pub(crate) direct: bool,
    pub(crate) dontcache: bool,
    pub(crate) register_buffers: bool,
    pub(crate) sqpoll: bool,
    pub(crate) backend: Backend,
    pub(crate) threads: Option<usize>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) self_tuning: bool,
    pub(crate) in_place: bool,
    pub(crate) cached_fast_path: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions::builder()
            .build()
            .expect("the default options are valid")
    }
}

impl ReadOptions {
    /// A builder with every value at its default.
    pub fn builder() -> ReadOptionsBuilder {
        ReadOptionsBuilder::default()
    }
    /// Bytes per read (and per chunk handed to a processor).
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }
    /// Reads in flight at once, all threads together; also the number of buffers.
    pub fn depth(&self) -> usize {
        self.depth
    }
    /// The buffer budget: `depth * chunk_size` bytes, the most memory the reader holds for data.
    pub fn budget(&self) -> usize {
        self.depth * self.chunk_size
    }
    /// Whether reads bypass the page cache (`O_DIRECT`).
    pub fn direct(&self) -> bool {
        self.direct
    }
    /// Whether reads leave the page cache as they found it (`RWF_DONTCACHE`).
    pub fn dontcache(&self) -> bool {
        self.dontcache
    }
    /// Whether buffers are registered with the kernel (`READ_FIXED`).
    pub fn register_buffers(&self) -> bool {
        self.register_buffers
    }
    /// Whether a kernel thread polls the submission queue (`IORING_SETUP_SQPOLL`).
    pub fn sqpoll(&self) -> bool {
        self.sqpoll
    }
    /// The backend asked for.
    pub fn backend(&self) -> Backend {
        self.backend
    }
    /// The number of reading threads asked for, if fixed (otherwise: the CPUs this process may run on).
    pub fn threads(&self) -> Option<usize> {
        self.threads
    }
    /// The most bytes read from each file, if limited.
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }
    /// Whether the reader picks chunk size and depth per file from its size and how much of it is
    /// cached (on when none of chunk size, depth, threads, `direct` and `sqpoll` was given).
    pub fn self_tuning(&self) -> bool {
        self.self_tuning
    }
    /// Whether cached files may be processed in place, from a mapping, instead of copied (see
    /// [`ReadOptionsBuilder::in_place`]).
    pub fn in_place(&self) -> bool {
        self.in_place
    }
    /// Streams only ([`crate::stream`]): whether a chunk the page cache holds is read on the thread
    /// that polls the stream (`preadv2` with `RWF_NOWAIT`) rather than by a driver thread.
    pub fn cached_fast_path(&self) -> bool {
        self.cached_fast_path
    }
}

/// Builds [`ReadOptions`], checking every value.
///
/// ```
/// let opts = ringread::ReadOptions::builder().chunk_size(64 * 1024).depth(16).build()?;
/// assert_eq!(opts.budget(), 1024 * 1024);
/// # Ok::<(), ringread::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ReadOptionsBuilder {
    chunk_size: Option<usize>,
    depth: Option<usize>,
    direct: bool,
    dontcache: bool,
    no_register: bool,
    sqpoll: bool,
    backend: Backend,
    threads: Option<usize>,
    max_bytes: Option<u64>,
    fixed: bool,
    in_place: bool,
    no_fast_path: bool,
}

impl ReadOptionsBuilder {
    /// Never tune per file: read every file with these options (or the defaults) as they are.
    /// Default: tuning is on unless chunk size, depth, threads, `direct` or `sqpoll` is given.
    pub fn fixed(mut self) -> Self {
        self.fixed = true;
        self
    }
    /// Read at most this many bytes of each file (from where reading starts), then stop as at its
    /// end; for endless sources such as `/dev/zero`. Default: no limit.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }
    /// Process a file that is (almost) wholly in the page cache in place: map it and hand the
    /// processor slices of the mapping instead of copies (what `b3sum` does), saving the copy.
    /// Default: off.
    ///
    /// Unlike a plain mapping, a file cut short meanwhile cannot kill the process with `SIGBUS`:
    /// pages are mapped in with `MADV_POPULATE_READ`, which reports a page past the end instead of
    /// faulting, and the first such read installs a process-wide `SIGBUS` handler (chaining any
    /// handler installed before it) that answers a fault in a live mapping with zero pages. A file
    /// that shrinks or grows ahead of the processor ends as on every other path, where a read
    /// returns 0 (the chunks the mapping no longer holds, and those past its end, are read with
    /// `pread(2)`); one cut while the processor has the chunk fails with [`Error::Read`] at the
    /// offset where it was cut, since the processor may have been given zeros there: use this for
    /// processors whose result counts only when the read succeeds (digests, counts), not for
    /// copies. A handler installed later that does not chain to the one before it defeats the
    /// guard.
    ///
    /// Used only for regular files of at least 1 MiB read buffered (not `direct`, not
    /// `dontcache`) with the `auto`, `uring` or `pread` backend, at least 90% of which is cached
    /// when the read starts ([`residency`](crate::residency)); other files are copied as usual.
    /// The [`Route`](crate::Route) says which way a file went.
    pub fn in_place(mut self, on: bool) -> Self {
        self.in_place = on;
        self
    }
    /// Bytes per read. Default: 256 KiB buffered, 1 MiB with `O_DIRECT`.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = Some(bytes);
        self
    }
    /// Reads in flight at once, all threads together. Default: [`DEFAULT_DEPTH`] (4) buffered,
    /// [`DEFAULT_DIRECT_DEPTH`] (16) with `O_DIRECT`.
    pub fn depth(mut self, depth: usize) -> Self {
        self.depth = Some(depth);
        self
    }
    /// Bypass the page cache with `O_DIRECT`. Default: off.
    pub fn direct(mut self, on: bool) -> Self {
        self.direct = on;
        self
    }
    /// Read through the page cache without growing it (uncached buffered reads, `RWF_DONTCACHE`,
    /// Linux 6.14): pages that were cached stay cached, pages a read brings in are dropped after
    /// use. Where a file system refuses it, a file is read with `O_DIRECT` where it allows, else
    /// with its pages dropped behind the reads (`POSIX_FADV_DONTNEED`), said in a notice. Default:
    /// off. Not with [`direct`](Self::direct), which bypasses the cache already.
    pub fn dontcache(mut self, on: bool) -> Self {
        self.dontcache = on;
        self
    }
    /// Register buffers with the kernel and read with `READ_FIXED`. Default: on.
    pub fn register_buffers(mut self, on: bool) -> Self {
        self.no_register = !on;
        self
    }
    /// Let a kernel thread poll the submission queue. Default: off (on two cores it costs a core).
    pub fn sqpoll(mut self, on: bool) -> Self {
        self.sqpoll = on;
        self
    }
    /// Which backend to use. Default: [`Backend::Auto`].
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    /// Fix the number of reading threads. Default: the CPUs this process may run on
    /// (`sched_getaffinity`) for buffered reads, one with `O_DIRECT` or SQPOLL; never more than the
    /// depth.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Streams only ([`crate::stream`]): read the next chunk on the thread that polls the stream
    /// when the page cache holds it (`preadv2` with `RWF_NOWAIT`: the copy lands in that CPU's
    /// cache, where the consumer reads it, and crosses no thread), leaving the driver's threads to
    /// read ahead what is not cached. Off: every chunk is read by a driver thread. Default: on. The
    /// engine ([`Reader`](crate::Reader)) ignores it: its baton keeps a chunk on the CPU that copied
    /// it already.
    pub fn cached_fast_path(mut self, on: bool) -> Self {
        self.no_fast_path = !on;
        self
    }

    /// Checks the values and makes the options.
    pub fn build(self) -> Result<ReadOptions> {
        let chunk_size = self.chunk_size.unwrap_or(if self.direct {
            DEFAULT_DIRECT_CHUNK_SIZE
        } else {
            DEFAULT_CHUNK_SIZE
        });
        let depth = self.depth.unwrap_or(if self.direct {
            DEFAULT_DIRECT_DEPTH
        } else {
            DEFAULT_DEPTH
        });
        let bad = |m: String| Err(Error::InvalidOptions(m));
        if chunk_size == 0 {
            return bad("chunk size must be at least 1 byte".into());
        }
        if chunk_size > MAX_CHUNK_SIZE {
            return bad(format!(
                "chunk size {chunk_size} is larger than the kernel's limit of 1 GiB"
            ));
        }
        if self.direct && chunk_size % ALIGN != 0 {
            return bad(format!(
                "with O_DIRECT the chunk size must be a multiple of {ALIGN} bytes, not {chunk_size}"
            ));
        }
        if self.direct && self.dontcache {
            return bad(
                "--dontcache and --direct exclude each other (O_DIRECT bypasses the page cache \
                 already)"
                    .into(),
            );
        }
        if depth == 0 {
            return bad("depth must be at least 1".into());
        }
        if depth > MAX_DEPTH {
            return bad(format!("depth {depth} is above the limit of {MAX_DEPTH}"));
        }
        if self.threads == Some(0) {
            return bad("threads must be at least 1".into());
        }
        let budget = depth.saturating_mul(chunk_size);
        let ram = physical_memory();
        if budget as u64 > ram / 2 {
            return bad(format!(
                "a buffer budget of {budget} bytes (depth {depth} x chunk {chunk_size}) is more than \
                 half of this machine's {ram} bytes of memory"
            ));
        }
        Ok(ReadOptions {
            chunk_size,
            depth,
            direct: self.direct,
            dontcache: self.dontcache,
            register_buffers: !self.no_register,
            sqpoll: self.sqpoll,
            backend: self.backend,
            threads: self.threads,
            max_bytes: self.max_bytes,
            self_tuning: !self.fixed
                && self.chunk_size.is_none()
                && self.depth.is_none()
                && self.threads.is_none()
                && !self.direct
                && !self.sqpoll,
            in_place: self.in_place,
            cached_fast_path: !self.no_fast_path,
        })
    }
}

/// The machine's physical memory in bytes (`sysinfo`); `u64::MAX` if unknown.
fn physical_memory() -> u64 {
    // SAFETY: sysinfo only writes into the struct we pass, which is plain old data.
    unsafe {
        let mut info: libc::sysinfo = std::mem::zeroed();
        if libc::sysinfo(&mut info) == 0 {
            (info.totalram as u64).saturating_mul(info.mem_unit as u64)
        } else {
            u64::MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_depend_on_direct() {
        let b = ReadOptions::builder().build().unwrap();
        assert_eq!(
            (b.chunk_size(), b.depth()),
            (DEFAULT_CHUNK_SIZE, DEFAULT_DEPTH)
        );
        let d = ReadOptions::builder().direct(true).build().unwrap();
        assert_eq!(
            (d.chunk_size(), d.depth()),
            (DEFAULT_DIRECT_CHUNK_SIZE, DEFAULT_DIRECT_DEPTH)
        );
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let msg = |b: ReadOptionsBuilder| b.build().unwrap_err().to_string();
        assert!(msg(ReadOptions::builder().chunk_size(0)).contains("at least 1 byte"));
        assert!(msg(ReadOptions::builder().depth(0)).contains("depth must be"));
        assert!(
            msg(ReadOptions::builder().direct(true).chunk_size(1000)).contains("multiple of 4096")
        );
        assert!(msg(ReadOptions::builder().depth(MAX_DEPTH + 1)).contains("above the limit"));
        assert!(
            msg(ReadOptions::builder().chunk_size(1 << 30).depth(MAX_DEPTH)).contains("memory")
        );
        assert!(msg(ReadOptions::builder().chunk_size((1 << 30) + 1)).contains("1 GiB"));
    }
}
