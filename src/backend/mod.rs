//! The ways of reading. Each delivers the same chunks, in file order, to the same processors.
//!
//! - [`uring`]: ringread's engine: one io_uring per thread, registered buffers, many reads in flight,
//!   the processor passed between threads in file order (the baton).
//! - [`sync`]: plain `read(2)`/`pread(2)` into one buffer on the calling thread; the fallback where
//!   io_uring is refused, and the baseline every benchmark compares against.

pub(crate) mod baton;
pub(crate) mod sync;
pub(crate) mod uring;

use std::os::fd::RawFd;
use std::path::Path;

/// An open file, as the backends read it.
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
}
