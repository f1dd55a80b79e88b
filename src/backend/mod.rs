//! The ways of reading. Each delivers the same chunks, in file order, to the same processors.
//!
//! The engine ([`Reader`]) uses two of them internally:
//! - `uring`: ringread's engine: one io_uring per thread, registered buffers, many reads in flight,
//!   the processor passed between threads in file order (the baton);
//! - `pread_queue`: the same lanes with `pread(2)` done at submit: the fallback where io_uring is
//!   refused (`Backend::Pread`);
//! - `sync`: plain `read(2)`/`pread(2)` into one buffer on the calling thread: the baseline every
//!   benchmark compares against (`Backend::Sync`).
//!
//! For comparison, [`ReadMethod`] puts every way behind one trait, one file each: [`UringMethod`] and
//! [`SyncMethod`] (the engine's two), [`PreadPool`], [`TokioFs`], [`TokioUring`], [`Mmap`] and
//! [`StreamMethod`] (the async stream interface).
//! `epoll` is not among them: it cannot wait on a regular file (`epoll_ctl` says `EPERM`).

pub(crate) mod baton;
mod mmap;
mod pread_pool;
pub(crate) mod pread_queue;
mod stream;
pub(crate) mod sync;
mod tokio_fs;
mod tokio_uring;
pub(crate) mod uring;

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

pub use mmap::Mmap;
pub use pread_pool::PreadPool;
pub use stream::StreamMethod;
pub use tokio_fs::TokioFs;
pub use tokio_uring::TokioUring;

use crate::error::{Error, Result};
use crate::options::{Backend, ReadOptions};
use crate::processor::Processor;
use crate::reader::Reader;

/// An open file, as the engine's backends read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The name errors carry.
    pub path: &'a Path,
    /// The file, opened buffered.
    pub fd: RawFd,
    /// The same file opened with `O_DIRECT`, when direct reads are on.
    pub direct_fd: Option<RawFd>,
    /// The alignment of offsets and lengths `direct_fd` needs.
    pub align: usize,
    /// The size `fstat` gave (0 for `/proc` files, pipes and character devices). A hint only: reading
    /// goes on until a read returns 0.
    pub size_hint: u64,
    /// Whether reads carry offsets (regular files, block devices) or read the current position of a
    /// stream (pipes, sockets, terminals, character devices).
    pub positional: bool,
    /// Where reading starts (a regular file given as standard input may be part read already).
    pub start: u64,
    /// The most bytes to deliver, counted from `start` (`u64::MAX`: no limit).
    pub limit: u64,
}

/// One way of reading a whole file into a processor, in order. The benchmark runs each side by side.
pub trait ReadMethod: Send + Sync {
    /// The name the report uses (`sync`, `uring-fixed`, ...).
    fn name(&self) -> String;
    /// Reads `path` to its end into `proc`; returns the bytes delivered.
    fn read(&self, path: &Path, proc: &mut (dyn Processor + Send)) -> Result<u64>;
    /// What this way does differently from its name, and why (io_uring refused, say).
    fn notice(&self) -> Option<String> {
        None
    }
}

/// ringread's engine through a [`Reader`] (kept across reads, as a long-lived program would).
#[derive(Debug)]
pub struct UringMethod {
    name: String,
    reader: Reader,
}

impl UringMethod {
    /// The engine with these options (the backend is forced to io_uring).
    pub fn new(name: impl Into<String>, opts: ReadOptions) -> Result<Self> {
        let opts = rebuild(&opts, Backend::Uring)?;
        Ok(UringMethod {
            name: name.into(),
            reader: Reader::new(opts),
        })
    }
}

impl ReadMethod for UringMethod {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn read(&self, path: &Path, mut proc: &mut (dyn Processor + Send)) -> Result<u64> {
        Ok(self.reader.read_path(path, &mut proc)?.bytes)
    }
}

/// Plain `read(2)` into one buffer, the baseline of every comparison.
#[derive(Debug)]
pub struct SyncMethod {
    reader: Reader,
}

impl SyncMethod {
    /// `read(2)` with these options' chunk size and `O_DIRECT` setting.
    pub fn new(opts: ReadOptions) -> Result<Self> {
        Ok(SyncMethod {
            reader: Reader::new(rebuild(&opts, Backend::Sync)?),
        })
    }
}

impl ReadMethod for SyncMethod {
    fn name(&self) -> String {
        "sync".into()
    }
    fn read(&self, path: &Path, mut proc: &mut (dyn Processor + Send)) -> Result<u64> {
        Ok(self.reader.read_path(path, &mut proc)?.bytes)
    }
}

fn rebuild(o: &ReadOptions, backend: Backend) -> Result<ReadOptions> {
    let mut b = ReadOptions::builder()
        .chunk_size(o.chunk_size())
        .depth(o.depth())
        .direct(o.direct())
        .register_buffers(o.register_buffers())
        .sqpoll(o.sqpoll())
        .backend(backend);
    if let Some(t) = o.threads() {
        b = b.threads(t);
    }
    if let Some(m) = o.max_bytes() {
        b = b.max_bytes(m);
    }
    b.build()
}

/// Maps an open failure to the library's error for `path`.
pub(crate) fn open_error(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Open {
        path: PathBuf::from(path),
        source,
    }
}
