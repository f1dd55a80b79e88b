//! What the completion-based runtimes' ways share: an aligned buffer they can own while the kernel
//! writes into it, and the loop that keeps `depth` reads in flight and hands their chunks to the
//! processor in file order.
//!
//! Each runtime's way supplies only what its documentation shows: how to read one chunk at an
//! offset (`read_at` with an owned buffer, or a buffer the runtime allocates) and how to spawn that
//! read as a task. The order, the end of the file and the errors are handled here once.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::ops::Deref;
use std::path::Path;

use crate::buf::{Arena, Chunk};
use crate::error::{Error, Result};
use crate::options::ALIGN;
use crate::processor::Processor;

/// A buffer of `cap` bytes on an [`ALIGN`] boundary (so `O_DIRECT` accepts it), of which the first
/// `init` bytes hold data. A runtime's task owns it while its read is in flight.
pub(crate) struct AlignedBuf {
    pub(crate) arena: Arena,
    pub(crate) cap: usize,
    pub(crate) init: usize,
}

impl AlignedBuf {
    /// A buffer of `cap` bytes, empty.
    pub(crate) fn new(cap: usize) -> Result<AlignedBuf> {
        Ok(AlignedBuf {
            arena: Arena::new(1, cap)?,
            cap,
            init: 0,
        })
    }

    /// `depth` buffers of `cap` bytes.
    pub(crate) fn many(depth: usize, cap: usize) -> Result<Vec<AlignedBuf>> {
        (0..depth).map(|_| AlignedBuf::new(cap)).collect()
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: no read is in flight while the buffer is borrowed here (a task owns it for as
        // long as its read runs), and the first `init` bytes were written by the kernel.
        unsafe { self.arena.slot(0, self.init) }
    }
}

/// Whether a chunk whose buffer holds `filled` of `cap` bytes is complete: full, or short at the
/// end of the file (a direct read that ends off a block boundary has reached it).
pub(crate) fn chunk_done(filled: usize, cap: usize, direct: bool) -> bool {
    filled == cap || (direct && filled % ALIGN != 0)
}

/// Reads a file of chunks of `chunk` bytes with `depth` reads in flight, in file order, into
/// `proc`: `spawn(k, buf)` starts the task that reads chunk `k` (at `k * chunk`), given the buffer
/// of a chunk already processed to reuse (`None` for the first `depth`). A chunk shorter than
/// `chunk` ends the file. Returns the bytes delivered; calls neither `begin` nor `finish`.
pub(crate) async fn in_order<B, H>(
    path: &Path,
    chunk: usize,
    depth: usize,
    proc: &mut (dyn Processor + Send),
    mut spawn: impl FnMut(u64, Option<B>) -> H,
) -> Result<u64>
where
    B: Deref<Target = [u8]>,
    H: Future<Output = io::Result<B>>,
{
    let mut in_flight = VecDeque::with_capacity(depth);
    let mut next = 0u64;
    for _ in 0..depth.max(1) {
        in_flight.push_back(spawn(next, None));
        next += 1;
    }
    let mut offset = 0u64;
    let mut done = false;
    while let Some(task) = in_flight.pop_front() {
        let res = task.await;
        if done {
            // Past the end, or stopped: the tasks still in flight are only waited for.
            continue;
        }
        let buf = res.map_err(|source| Error::Read {
            path: path.into(),
            offset,
            source,
        })?;
        if !buf.is_empty() {
            let go_on =
                proc.process(&Chunk::new(offset, &buf))
                    .map_err(|source| Error::Process {
                        path: path.into(),
                        offset,
                        source,
                    })?;
            offset += buf.len() as u64;
            done = !go_on;
        }
        if buf.len() < chunk {
            done = true;
        } else if !done {
            in_flight.push_back(spawn(next, Some(buf)));
            next += 1;
        }
    }
    Ok(offset)
}

/// Runs `body` between the processor's `begin` and `finish`, naming `path` in their errors.
pub(crate) fn framed(
    path: &Path,
    proc: &mut (dyn Processor + Send),
    body: impl FnOnce(&mut (dyn Processor + Send)) -> Result<u64>,
) -> Result<u64> {
    let fail = |offset, source| Error::Process {
        path: path.into(),
        offset,
        source,
    };
    proc.begin().map_err(|e| fail(0, e))?;
    let bytes = body(&mut *proc)?;
    proc.finish().map_err(|e| fail(bytes, e))?;
    Ok(bytes)
}

/// An error of setting up a runtime (building it, registering its memory), for `path`.
pub(crate) fn runtime_error<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Ring {
        path: path.into(),
        op,
        source,
    }
}
