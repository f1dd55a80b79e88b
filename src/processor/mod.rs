//! Processors: what consumes the chunks, in file order.
//!
//! A [`Processor`] is a sink, like ripgrep's `Sink`: [`Processor::process`] receives every chunk of the
//! file exactly once, in order, and says whether to go on. [`begin`](Processor::begin) and
//! [`finish`](Processor::finish) have default bodies. Any `FnMut(&Chunk) -> io::Result<bool>` becomes a
//! processor through [`from_fn`].
//!
//! The reader may call a processor from more than one thread (one at a time, in file order: the
//! engine's "baton", see `docs/ARCHITECTURE.md`), so reading with it requires `Send`; a trait
//! object is `&mut (dyn Processor + Send)`.

use std::io;

use crate::buf::Chunk;

#[cfg(feature = "blake3")]
mod blake3_tree;
#[cfg(any(
    feature = "sha256",
    feature = "blake3",
    feature = "xxh3",
    feature = "crc32c"
))]
mod checksum;
mod copy;
mod count;

#[cfg(feature = "blake3")]
pub use blake3_tree::{
    blake3_in_order, blake3_parallel, blake3_parallel_mode, Blake3Combine, Blake3Mode,
    Blake3Prepare,
};
#[cfg(any(
    feature = "sha256",
    feature = "blake3",
    feature = "xxh3",
    feature = "crc32c"
))]
pub use checksum::{Algorithm, Checksum};
pub use copy::CopyTo;
pub use count::{ByteCount, LineCount, NewlinePrepare};

/// Receives a file's chunks in order.
///
/// ```
/// use ringread::{Chunk, Processor};
/// struct Zeros(u64);
/// impl Processor for Zeros {
///     fn process(&mut self, chunk: &Chunk<'_>) -> std::io::Result<bool> {
///         self.0 += chunk.iter().filter(|&&b| b == 0).count() as u64;
///         Ok(true)
///     }
/// }
/// ```
pub trait Processor {
    /// Called once before the first chunk.
    fn begin(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Receives the next chunk; returns `Ok(false)` to stop reading (no further chunk is delivered).
    fn process(&mut self, chunk: &Chunk<'_>) -> io::Result<bool>;
    /// Called once after the last chunk, when the whole file was read without error.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<P: Processor + ?Sized> Processor for &mut P {
    fn begin(&mut self) -> io::Result<()> {
        (**self).begin()
    }
    fn process(&mut self, chunk: &Chunk<'_>) -> io::Result<bool> {
        (**self).process(chunk)
    }
    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
}

impl<P: Processor + ?Sized> Processor for Box<P> {
    fn begin(&mut self) -> io::Result<()> {
        (**self).begin()
    }
    fn process(&mut self, chunk: &Chunk<'_>) -> io::Result<bool> {
        (**self).process(chunk)
    }
    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
}

/// The half of a processor's work that needs no other chunk: the reading thread does it as soon as
/// the chunk is read, before its turn, in parallel with other chunks and with [`Combine::combine`].
///
/// With two reading threads this doubles the speed of work that splits this way, such as hashing
/// the subtrees of a BLAKE3 tree ([`blake3_parallel`]) or counting the newlines of each chunk.
pub trait Prepare: Sync {
    /// What the work yields; handed to [`Combine::combine`] with its chunk, in file order.
    type Part: Send;
    /// Does the work on one chunk.
    fn prepare(&self, chunk: &Chunk<'_>) -> Self::Part;
}

impl<P: Prepare + ?Sized> Prepare for &P {
    type Part = P::Part;
    fn prepare(&self, chunk: &Chunk<'_>) -> P::Part {
        (**self).prepare(chunk)
    }
}

/// The ordered half: receives each chunk with what [`Prepare::prepare`] made of it, in file order,
/// exactly once. Every [`Processor`] is a `Combine<()>`.
pub trait Combine<Part> {
    /// Called once before the first chunk.
    fn begin(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Receives the next chunk and its prepared part; `Ok(false)` stops reading.
    fn combine(&mut self, chunk: &Chunk<'_>, part: Part) -> io::Result<bool>;
    /// Called once after the last chunk, when the whole file was read without error.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The preparation of a plain [`Processor`]: nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Whole;

impl Prepare for Whole {
    type Part = ();
    fn prepare(&self, _: &Chunk<'_>) {}
}

impl<P: Processor + ?Sized> Combine<()> for P {
    fn begin(&mut self) -> io::Result<()> {
        Processor::begin(self)
    }
    fn combine(&mut self, chunk: &Chunk<'_>, (): ()) -> io::Result<bool> {
        self.process(chunk)
    }
    fn finish(&mut self) -> io::Result<()> {
        Processor::finish(self)
    }
}

/// A closure as a processor; made by [`from_fn`].
#[derive(Debug, Clone)]
pub struct FnProcessor<F>(F);

/// Makes a processor of a closure.
///
/// ```
/// let mut total = 0u64;
/// let mut p = ringread::processor::from_fn(|c: &ringread::Chunk<'_>| {
///     total += c.len() as u64;
///     Ok(true)
/// });
/// # let _ = &mut p;
/// ```
pub fn from_fn<F>(f: F) -> FnProcessor<F>
where
    F: FnMut(&Chunk<'_>) -> io::Result<bool>,
{
    FnProcessor(f)
}

impl<F> Processor for FnProcessor<F>
where
    F: FnMut(&Chunk<'_>) -> io::Result<bool>,
{
    fn process(&mut self, chunk: &Chunk<'_>) -> io::Result<bool> {
        (self.0)(chunk)
    }
}
