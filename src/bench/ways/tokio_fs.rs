//! What a tokio user writes today: `tokio::fs::File` read into a large buffer, in a loop.
//!
//! tokio runs each read on its blocking thread pool and copies through the file's own buffer, so this
//! is the baseline an async program starts from.

use std::path::Path;

use tokio::io::AsyncReadExt;

use super::{open_error, ReadMethod};
use crate::buf::Chunk;
use crate::error::{Error, Result};
use crate::processor::Processor;

/// `tokio::fs::File::read` into a buffer of `chunk_size` bytes.
#[derive(Debug, Clone)]
pub struct TokioFs {
    /// Bytes per read (tokio caps each blocking read at 2 MiB).
    pub chunk_size: usize,
}

impl ReadMethod for TokioFs {
    fn name(&self) -> String {
        "tokio-fs".into()
    }

    fn read(&self, path: &Path, proc: &mut (dyn Processor + Send)) -> Result<u64> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Ring {
                path: path.into(),
                op: "tokio runtime",
                source,
            })?;
        let chunk = self.chunk_size;
        rt.block_on(async move {
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(open_error(path))?;
            file.set_max_buf_size(chunk);
            let mut buf = vec![0u8; chunk];
            let mut offset = 0u64;
            let fail = |offset, source| Error::Process {
                path: path.into(),
                offset,
                source,
            };
            proc.begin().map_err(|e| fail(0, e))?;
            loop {
                // Fill the buffer (tokio hands back at most its own buffer's size per call).
                let mut filled = 0;
                while filled < chunk {
                    let n = file
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|source| Error::Read {
                            path: path.into(),
                            offset: offset + filled as u64,
                            source,
                        })?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                let go_on = proc
                    .process(&Chunk::new(offset, &buf[..filled]))
                    .map_err(|e| fail(offset, e))?;
                offset += filled as u64;
                if !go_on || filled < chunk {
                    break;
                }
            }
            proc.finish().map_err(|e| fail(offset, e))?;
            Ok(offset)
        })
    }
}
