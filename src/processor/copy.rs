//! Copying chunks to a writer, in order (what `ringread cat` does).

use std::io::{self, Write};

use super::Processor;
use crate::buf::Chunk;

/// Writes every chunk to `W`, in file order, and flushes at the end.
#[derive(Debug)]
pub struct CopyTo<W> {
    writer: W,
    written: u64,
}

impl<W: Write> CopyTo<W> {
    /// Copies to `writer`. Give it an unbuffered writer: chunks are already large.
    pub fn new(writer: W) -> Self {
        CopyTo { writer, written: 0 }
    }
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
    /// The writer back.
    pub fn into_inner(self) -> W {
        self.writer
    }
}

impl<W: Write> Processor for CopyTo<W> {
    fn process(&mut self, chunk: &Chunk<'_>) -> io::Result<bool> {
        self.writer.write_all(chunk)?;
        self.written += chunk.len() as u64;
        Ok(true)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}
