//! Counting processors: bytes, and lines as `wc -l` counts them (newline bytes).

use std::io;

use super::{Combine, Prepare, Processor};
use crate::buf::Chunk;

/// Counts bytes and newlines, the numbers `wc -lc` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCount {
    /// Newline (`\n`) bytes seen.
    pub lines: u64,
    /// Bytes seen.
    pub bytes: u64,
}

impl Processor for LineCount {
    fn process(&mut self, chunk: &Chunk<'_>) -> io::Result<bool> {
        self.lines += bytecount::count(chunk, b'\n') as u64;
        self.bytes += chunk.len() as u64;
        Ok(true)
    }
}

/// Counts a chunk's newlines on the thread that read it, so that counting runs on every reading
/// thread; [`LineCount`] adds the counts up in order (as a `Combine<u64>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NewlinePrepare;

impl Prepare for NewlinePrepare {
    type Part = u64;
    fn prepare(&self, chunk: &Chunk<'_>) -> u64 {
        bytecount::count(chunk, b'\n') as u64
    }
}

impl Combine<u64> for LineCount {
    fn combine(&mut self, chunk: &Chunk<'_>, newlines: u64) -> io::Result<bool> {
        self.lines += newlines;
        self.bytes += chunk.len() as u64;
        Ok(true)
    }
}

/// Counts bytes and looks at nothing: the cost of reading alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteCount {
    /// Bytes seen.
    pub bytes: u64,
}

impl Processor for ByteCount {
    fn process(&mut self, chunk: &Chunk<'_>) -> io::Result<bool> {
        self.bytes += chunk.len() as u64;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_newlines_across_chunks() {
        let mut c = LineCount::default();
        c.process(&Chunk::new(0, b"a\nb")).unwrap();
        c.process(&Chunk::new(3, b"\n\nc")).unwrap();
        assert_eq!(c, LineCount { lines: 3, bytes: 6 });
    }
}
