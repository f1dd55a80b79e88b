//! `mmap(2)` with sequential advice: no copy into a buffer, but a page fault per page not yet mapped
//! (each page is touched before its chunk is handed over).

use std::fs::File;
use std::path::Path;

use super::{open_error, ReadMethod};
use crate::buf::Chunk;
use crate::error::{Error, Result};
use crate::processor::Processor;

/// The file mapped with `memmap2`, handed over in chunks of `chunk_size` bytes.
#[derive(Debug, Clone)]
pub struct Mmap {
    /// Bytes per chunk handed to the processor.
    pub chunk_size: usize,
}

impl ReadMethod for Mmap {
    fn name(&self) -> String {
        "mmap".into()
    }

    fn read(&self, path: &Path, proc: &mut (dyn Processor + Send)) -> Result<u64> {
        let file = File::open(path).map_err(open_error(path))?;
        let fail = |offset, source| Error::Process {
            path: path.into(),
            offset,
            source,
        };
        proc.begin().map_err(|e| fail(0, e))?;
        let len = file.metadata().map_err(open_error(path))?.len();
        let mut offset = 0u64;
        if len > 0 {
            // SAFETY: the map is read-only and private to this call. If another process truncates
            // the file meanwhile, touching the lost pages raises SIGBUS: the hazard every mmap reader
            // accepts, and the reason ringread's engine does not read this way.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(open_error(path))?;
            let _ = map.advise(memmap2::Advice::Sequential);
            for piece in map.chunks(self.chunk_size.max(1)) {
                // Reading a mapping means faulting its pages in: touch one byte per page, so that
                // even a processor that looks at nothing pays for what the other ways pay for.
                let mut touched = 0u8;
                for page in piece.chunks(4096) {
                    // SAFETY: page[0] is a valid byte of the map (chunks are never empty).
                    touched ^= unsafe { std::ptr::read_volatile(page.as_ptr()) };
                }
                std::hint::black_box(touched);
                let go_on = proc
                    .process(&Chunk::new(offset, piece))
                    .map_err(|e| fail(offset, e))?;
                offset += piece.len() as u64;
                if !go_on {
                    break;
                }
            }
        }
        proc.finish().map_err(|e| fail(offset, e))?;
        Ok(offset)
    }
}
