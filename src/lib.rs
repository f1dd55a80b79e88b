//! # ringread
//!
//! Reads files on Linux as fast as the machine allows, through io_uring, and hands their bytes to
//! processors (hashes, counters, a writer, or your own) strictly in file order.
//!
//! A file is read as chunk-sized reads with many in flight, submitted in batches, into buffers
//! registered with the kernel (`READ_FIXED`). Each CPU the process may use gets a lane: its own ring,
//! its own few buffers, and every `n`-th chunk of the file. Cached reads complete inside
//! `io_uring_enter` on the lane's own CPU, and the same thread then runs the processor on that chunk
//! while it is still in its cache, passing the processor on to the next lane in file order (see
//! `docs/ARCHITECTURE.md`). Where io_uring is refused, or a feature of it is (registered buffers
//! under a small `ulimit -l`, `O_DIRECT` on a file system without it), the reader says what and why in
//! [`Summary::notices`] and goes on with the next best path, with the same in-order guarantees.
//!
//! Streams (standard input, pipes, sockets) have no offsets to read ahead at: [`net`] reads them
//! with one multishot io_uring request per stream and a shared provided buffer ring (or epoll,
//! tokio, `read(2)`), and [`net::read_many`] reads many sockets on one thread in bounded memory.
//!
//! What to read is a [`Source`] (a path, an open file, a list of either, a tree, ranges of any of
//! them); a handful of verbs say how the results come back: [`Reader::read`] (one processor),
//! [`Reader::read_each`] (a processor per input, in input order), their `_split` forms, and on the
//! async side (feature `stream`) `Driver::chunks`, `Driver::files`, `Driver::ranges` and
//! `Driver::range_file`.
//!
//! ```
//! use ringread::{processor::{Algorithm, Checksum, LineCount}, ReadOptions, Reader, Source};
//!
//! let reader = Reader::new(ReadOptions::builder().chunk_size(64 * 1024).depth(8).build()?);
//! let mut sha = Checksum::new(Algorithm::Sha256);
//! let summary = reader.read("Cargo.toml", &mut sha)?;
//! println!("{}  Cargo.toml, read by {}", sha.hex(), summary.route);
//! reader.read_each(Source::paths(["Cargo.toml", "README.md"]), |_, _| LineCount::default(), |f| {
//!     println!("{} lines in {}", f.processor.lines, f.path.display());
//! })?;
//! # Ok::<(), ringread::Error>(())
//! ```
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "bench")]
pub mod bench;
mod buf;
mod cancel;
mod chunks;
mod engine;
pub mod error;
mod file;
mod file_steps;
mod mapped;
#[cfg(feature = "net")]
pub mod net;
pub mod options;
pub mod processor;
pub mod ranges;
pub mod reader;
pub mod residency;
mod ring;
pub mod source;
#[cfg(any(feature = "object-store", feature = "parquet"))]
pub mod store;
#[cfg(feature = "stream")]
pub mod stream;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod sumfile;
mod sys;

pub use buf::Chunk;
pub use cancel::Cancel;
pub use error::{Error, Result};
pub use options::{Backend, ReadOptions, ReadOptionsBuilder};
pub use processor::Processor;
pub use reader::{Engine, Finished, Notice, Reader, Route, Summary};
pub use source::{Input, Source};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
