//! The ways of reading `bench` compares. Each delivers the same chunks, in file order, to the same
//! processors, behind one trait ([`ReadMethod`]), one file each: [`UringMethod`] and [`SyncMethod`]
//! (ringread's engine, and its one-lane synchronous path), [`PreadPool`], [`TokioFs`],
//! [`TokioUring`], [`Compio`], [`Monoio`], [`Glommio`], [`Mmap`] and [`AsyncStreamMethod`]
//! (ringread's async stream). The completion-based runtimes' ways share their buffers and their
//! in-order loop (module `owned`).
//! `epoll` is not among them: it cannot wait on a regular file (`epoll_ctl` says `EPERM`).

mod compio;
mod glommio;
mod mmap;
mod monoio;
mod owned;
mod pread_pool;
mod stream;
mod tokio_fs;
mod tokio_uring;

use std::io;
use std::path::{Path, PathBuf};

pub use self::compio::Compio;
pub use self::glommio::Glommio;
pub use self::monoio::Monoio;
pub use mmap::Mmap;
pub(crate) use owned::AlignedBuf;
pub use pread_pool::PreadPool;
pub use stream::AsyncStreamMethod;
pub use tokio_fs::TokioFs;
pub use tokio_uring::TokioUring;

use crate::error::{Error, Result};
use crate::options::{Backend, ReadOptions};
use crate::processor::Processor;
use crate::reader::Reader;

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
        Ok(self.reader.read(path, &mut proc)?.bytes)
    }
}

/// The engine's synchronous path (one lane, one buffer, `pread(2)` on the calling thread): the
/// baseline of every comparison.
#[derive(Debug)]
pub struct SyncMethod {
    reader: Reader,
}

impl SyncMethod {
    /// `pread(2)` with these options' chunk size and `O_DIRECT` setting.
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
        Ok(self.reader.read(path, &mut proc)?.bytes)
    }
}

fn rebuild(o: &ReadOptions, backend: Backend) -> Result<ReadOptions> {
    let mut b = ReadOptions::builder()
        .chunk_size(o.chunk_size())
        .depth(o.depth())
        .direct(o.direct())
        .dontcache(o.dontcache())
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
