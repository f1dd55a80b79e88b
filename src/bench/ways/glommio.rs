//! What a glommio user writes (glommio 0.9), as its `io` module's documentation lays out:
//!
//! - with `O_DIRECT` (`direct`): a `DmaFile` read through a `DmaStreamReader` whose read-ahead is
//!   `depth` buffers of `chunk_size` bytes, taking each buffer with `get_buffer_aligned` (no copy:
//!   the reader's own buffers, from glommio's registered I/O memory);
//! - through the page cache (`warm`, `cold`): a `BufferedFile` and `read_at` (glommio allocates
//!   each read's buffer), one task (`spawn_local`) per read, `depth` in flight, awaited in order.
//!   `DmaFile` cannot serve these: it always opens with `O_DIRECT`.
//!
//! glommio's executor and files are `!Send` (thread-per-core): the executor runs on the calling
//! thread, so it reads on that one core only; it locks its I/O memory (`RLIMIT_MEMLOCK`), one
//! executor per read of a file.

use std::path::Path;
use std::rc::Rc;

use glommio::io::{BufferedFile, DmaFile, DmaStreamReaderBuilder};
use glommio::{LocalExecutorBuilder, Placement};

use super::owned::{framed, in_order, runtime_error};
use super::ReadMethod;
use crate::buf::Chunk;
use crate::error::{Error, Result};
use crate::processor::Processor;

/// glommio 0.9's reader for the cache state: `DmaStreamReader` with `O_DIRECT`, `BufferedFile::read_at`
/// with `depth` tasks otherwise.
#[derive(Debug, Clone)]
pub struct Glommio {
    /// Bytes per read (the stream reader's buffer size).
    pub chunk_size: usize,
    /// Reads in flight (the stream reader's read-ahead).
    pub depth: usize,
    /// Read with `O_DIRECT` through a `DmaStreamReader`.
    pub direct: bool,
}

/// The operating system's error inside glommio's.
fn io<T>(e: glommio::GlommioError<T>) -> std::io::Error {
    e.into()
}

impl ReadMethod for Glommio {
    fn name(&self) -> String {
        "glommio".into()
    }

    fn notice(&self) -> Option<String> {
        Some(if self.direct {
            "glommio 0.9: DmaFile + DmaStreamReader (read-ahead = depth, buffer = chunk); !Send \
             (thread-per-core): one executor on the calling thread, one core; an empty file is \
             not opened (glommio would take the device for IOPOLL-able, and fail every later read)"
                .into()
        } else {
            "glommio 0.9: BufferedFile::read_at with depth tasks (DmaFile always opens O_DIRECT, \
             so it cannot read through the page cache); each read into a buffer glommio \
             allocates; !Send (thread-per-core): one executor on the calling thread, one core"
                .into()
        })
    }

    fn read(&self, path: &Path, proc: &mut (dyn Processor + Send)) -> Result<u64> {
        let (chunk, depth, direct) = (self.chunk_size, self.depth.max(1), self.direct);
        let ex = LocalExecutorBuilder::new(Placement::Unbound)
            .name("ringread-bench-glommio")
            .io_memory((chunk * (depth + 2)).max(10 << 20))
            .make()
            .map_err(|e| runtime_error(path, "glommio executor")(io(e)))?;
        let open = |e| Error::Open {
            path: path.into(),
            source: io(e),
        };
        framed(path, proc, |proc| {
            ex.run(async {
                if direct {
                    // glommio 0.9 learns whether a device takes IOPOLL by reading the first file
                    // it opens with O_DIRECT there; an empty file's read succeeds (nothing to read),
                    // glommio then keeps the device as pollable for the whole process, and every
                    // later read on it fails with EOPNOTSUPP (this virtio disk has no IOPOLL). An
                    // empty file has nothing to read: it is not opened.
                    let len = std::fs::metadata(path)
                        .map_err(super::open_error(path))?
                        .len();
                    if len == 0 {
                        return Ok(0);
                    }
                    let file = DmaFile::open(path).await.map_err(open)?;
                    let mut reader = DmaStreamReaderBuilder::new(file)
                        .with_read_ahead(depth)
                        .with_buffer_size(chunk)
                        .build();
                    let bytes = stream(path, &mut reader, chunk, proc).await;
                    let _ = reader.close().await;
                    bytes
                } else {
                    let file = Rc::new(BufferedFile::open(path).await.map_err(open)?);
                    let bytes = in_order(path, chunk, depth, proc, |k, _| {
                        let file = file.clone();
                        glommio::spawn_local(async move {
                            file.read_at(k * chunk as u64, chunk).await.map_err(io)
                        })
                    })
                    .await;
                    if let Ok(file) = Rc::try_unwrap(file) {
                        let _ = file.close().await;
                    }
                    bytes
                }
            })
        })
    }
}

/// Takes the stream reader's buffers one after another into `proc`.
async fn stream(
    path: &Path,
    reader: &mut glommio::io::DmaStreamReader,
    chunk: usize,
    proc: &mut (dyn Processor + Send),
) -> Result<u64> {
    let mut offset = 0u64;
    loop {
        let buf = reader
            .get_buffer_aligned(chunk as u64)
            .await
            .map_err(|e| Error::Read {
                path: path.into(),
                offset,
                source: io(e),
            })?;
        if buf.is_empty() {
            return Ok(offset);
        }
        let go_on = proc
            .process(&Chunk::new(offset, &buf))
            .map_err(|source| Error::Process {
                path: path.into(),
                offset,
                source,
            })?;
        offset += buf.len() as u64;
        if !go_on {
            return Ok(offset);
        }
    }
}
