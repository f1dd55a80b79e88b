//! BLAKE3 on every reading thread: a tree hash splits into independent subtrees.
//!
//! [`Blake3Prepare`] runs on the thread that read a chunk: it hashes the chunk as the subtree that
//! starts at the chunk's offset and returns its chaining value (BLAKE3's `hazmat` API). The ordered
//! half, [`Blake3Combine`], merges those values in file order, keeping a stack of completed subtrees
//! as BLAKE3 itself does. The digest equals `b3sum`'s.
//!
//! Subtrees must have the tree's shape: every piece but the last a power of two of at least 1 KiB, at
//! an offset it divides, all of one size. ringread's chunks of a regular file read from its start are
//! exactly that when the chunk size is a power of two; for anything else (a pipe's uneven pieces,
//! another chunk size, a file read from the middle) the combiner hashes serially and the prepared
//! values are ignored. The shape is decided by the first chunk, so a source read in uneven
//! pieces whose first piece happens to fit (a pipe) can fail with an error (never a wrong digest):
//! read those with [`blake3_in_order`].

use std::io;

use blake3::hazmat::{
    hash_derive_key_context, max_subtree_len, merge_subtrees_non_root, merge_subtrees_root_xof,
    ChainingValue, ContextKey, HasherExt, Mode,
};
use blake3::CHUNK_LEN;

use super::{Combine, Prepare};
use crate::buf::Chunk;

/// Which BLAKE3 function to compute: the plain hash, the keyed hash, or key derivation (`b3sum`'s
/// default, `--keyed` and `--derive-key`).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub enum Blake3Mode {
    /// The plain hash.
    #[default]
    Hash,
    /// The keyed hash with this 32-byte key.
    Keyed([u8; blake3::KEY_LEN]),
    /// Key derivation with a context (the context string already hashed: see
    /// [`Blake3Mode::derive_key`]).
    DeriveKey(ContextKey),
}

impl std::fmt::Debug for Blake3Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are not printed.
        f.write_str(match self {
            Blake3Mode::Hash => "Hash",
            Blake3Mode::Keyed(_) => "Keyed",
            Blake3Mode::DeriveKey(_) => "DeriveKey",
        })
    }
}

impl Blake3Mode {
    /// Key derivation with the context string `context` (`b3sum --derive-key CONTEXT`).
    pub fn derive_key(context: &str) -> Self {
        Blake3Mode::DeriveKey(hash_derive_key_context(context))
    }

    /// A hasher in this mode, for bytes hashed in the order given on one thread, whatever their
    /// offsets in a file (the ranges of a file hashed as one stream, say).
    pub fn hasher(&self) -> blake3::Hasher {
        match self {
            Blake3Mode::Hash => blake3::Hasher::new(),
            Blake3Mode::Keyed(key) => blake3::Hasher::new_keyed(key),
            Blake3Mode::DeriveKey(cx) => blake3::Hasher::new_from_context_key(cx),
        }
    }

    fn mode(&self) -> Mode<'_> {
        match self {
            Blake3Mode::Hash => Mode::Hash,
            Blake3Mode::Keyed(key) => Mode::KeyedHash(key),
            Blake3Mode::DeriveKey(cx) => Mode::DeriveKeyMaterial(cx),
        }
    }
}

/// The parallel half: a chunk's subtree chaining value, where the chunk can be a subtree.
#[derive(Debug, Clone, Copy, Default)]
pub struct Blake3Prepare {
    mode: Blake3Mode,
    /// Hash everything in order in the combiner ([`blake3_in_order`]).
    serial: bool,
}

impl Prepare for Blake3Prepare {
    type Part = Option<ChainingValue>;

    fn prepare(&self, chunk: &Chunk<'_>) -> Option<ChainingValue> {
        let (offset, len) = (chunk.offset(), chunk.len() as u64);
        // The first chunk is hashed by the combiner, which alone knows whether it is the whole input.
        let fits = !self.serial
            && offset > 0
            && offset % CHUNK_LEN as u64 == 0
            && len > 0
            && max_subtree_len(offset).is_some_and(|max| len <= max);
        fits.then(|| {
            self.mode
                .hasher()
                .set_input_offset(offset)
                .update(chunk)
                .finalize_non_root()
        })
    }
}

enum Mode3 {
    /// Nothing seen yet.
    Start,
    /// Merging subtrees: the first chunk's hasher (its value is pushed once a second chunk proves
    /// it is not the root), the subtree size, the stack of completed subtrees, and whether a short
    /// (final) piece was seen.
    Tree {
        first: Box<blake3::Hasher>,
        first_pushed: bool,
        piece: u64,
        stack: Vec<(ChainingValue, u64)>,
        ended: bool,
    },
    /// Hashing in order on one thread.
    Serial(Box<blake3::Hasher>),
    /// Finished: the output, which has as many bytes as asked (BLAKE3 is an extendable-output
    /// function).
    Done(Box<blake3::OutputReader>),
}

/// The ordered half: merges subtree values in file order; [`Blake3Combine::hex`] is the digest.
pub struct Blake3Combine {
    mode: Mode3,
    function: Blake3Mode,
    serial: bool,
}

impl std::fmt::Debug for Blake3Combine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blake3Combine").finish_non_exhaustive()
    }
}

impl Default for Blake3Combine {
    fn default() -> Self {
        Blake3Combine {
            mode: Mode3::Start,
            function: Blake3Mode::Hash,
            serial: false,
        }
    }
}

/// The two halves of a BLAKE3 hash that runs on every reading thread; use them with
/// [`Reader::read_split`](crate::Reader::read_split).
///
/// ```
/// let reader = ringread::Reader::new(ringread::ReadOptions::default());
/// let (prep, mut sum) = ringread::processor::blake3_parallel();
/// reader.read_split("Cargo.toml", &prep, &mut sum)?;
/// assert_eq!(sum.hex(), blake3::hash(&std::fs::read("Cargo.toml").unwrap()).to_hex().as_str());
/// # Ok::<(), ringread::Error>(())
/// ```
pub fn blake3_parallel() -> (Blake3Prepare, Blake3Combine) {
    blake3_parallel_mode(Blake3Mode::Hash)
}

/// [`blake3_parallel`] for the keyed hash or key derivation.
pub fn blake3_parallel_mode(mode: Blake3Mode) -> (Blake3Prepare, Blake3Combine) {
    halves(mode, false)
}

/// BLAKE3 hashed in order on one thread, for sources read in uneven pieces (pipes, sockets);
/// the same digest as [`blake3_parallel_mode`].
pub fn blake3_in_order(mode: Blake3Mode) -> (Blake3Prepare, Blake3Combine) {
    halves(mode, true)
}

fn halves(mode: Blake3Mode, serial: bool) -> (Blake3Prepare, Blake3Combine) {
    (
        Blake3Prepare { mode, serial },
        Blake3Combine {
            mode: Mode3::Start,
            function: mode,
            serial,
        },
    )
}

fn out_of_shape() -> io::Error {
    io::Error::other("BLAKE3 subtrees arrived out of the tree's shape")
}

impl Blake3Combine {
    /// The digest as lower-case hex (what `b3sum` prints), once the read has finished.
    pub fn hex(&mut self) -> String {
        self.digest().to_hex().to_string()
    }

    /// The digest; everything combined so far is the whole input.
    pub fn digest(&mut self) -> blake3::Hash {
        let mut out = [0; blake3::OUT_LEN];
        self.output(&mut out);
        out.into()
    }

    /// Fills `out` with the first `out.len()` bytes of the output (any length: BLAKE3 is an
    /// extendable-output function; the first 32 are [`Blake3Combine::digest`]).
    pub fn output(&mut self, out: &mut [u8]) {
        let reader = self.finish();
        reader.clone().fill(out);
    }

    fn finish(&mut self) -> &blake3::OutputReader {
        let f = self.function;
        let reader = match std::mem::replace(&mut self.mode, Mode3::Start) {
            Mode3::Start => f.hasher().finalize_xof(),
            Mode3::Serial(h) => h.finalize_xof(),
            Mode3::Done(r) => *r,
            Mode3::Tree {
                first,
                first_pushed,
                mut stack,
                ..
            } => {
                if !first_pushed {
                    first.finalize_xof()
                } else {
                    let (mut cv, _) = stack.pop().expect("a second piece was pushed");
                    while stack.len() > 1 {
                        let (left, _) = stack.pop().expect("len > 1");
                        cv = merge_subtrees_non_root(&left, &cv, f.mode());
                    }
                    let (left, _) = stack.pop().expect("the first piece is at the bottom");
                    merge_subtrees_root_xof(&left, &cv, f.mode())
                }
            }
        };
        self.mode = Mode3::Done(Box::new(reader));
        match &self.mode {
            Mode3::Done(r) => r,
            _ => unreachable!("just set"),
        }
    }
}

impl Combine<Option<ChainingValue>> for Blake3Combine {
    fn begin(&mut self) -> io::Result<()> {
        self.mode = Mode3::Start;
        Ok(())
    }

    fn combine(&mut self, chunk: &Chunk<'_>, part: Option<ChainingValue>) -> io::Result<bool> {
        let len = chunk.len() as u64;
        match &mut self.mode {
            Mode3::Start => {
                let mut first = Box::new(self.function.hasher());
                first.update(chunk);
                self.mode = if !self.serial
                    && chunk.offset() == 0
                    && len.is_power_of_two()
                    && len >= CHUNK_LEN as u64
                {
                    Mode3::Tree {
                        first,
                        first_pushed: false,
                        piece: len,
                        stack: Vec::new(),
                        ended: false,
                    }
                } else {
                    Mode3::Serial(first)
                };
            }
            Mode3::Serial(h) => {
                h.update(chunk);
            }
            Mode3::Tree {
                first,
                first_pushed,
                piece,
                stack,
                ended,
            } => {
                let cv = part.ok_or_else(out_of_shape)?;
                if *ended || len > *piece {
                    return Err(out_of_shape());
                }
                if !*first_pushed {
                    stack.push((first.finalize_non_root(), *piece));
                    *first_pushed = true;
                }
                // A piece after them proves the subtrees below are not the root: merge equal pairs.
                while stack.len() >= 2 && stack[stack.len() - 1].1 == stack[stack.len() - 2].1 {
                    let (right, n) = stack.pop().expect("len >= 2");
                    let (left, _) = stack.pop().expect("len >= 2");
                    let merged = merge_subtrees_non_root(&left, &right, self.function.mode());
                    stack.push((merged, 2 * n));
                }
                stack.push((cv, len));
                *ended = len < *piece;
            }
            Mode3::Done(_) => return Err(out_of_shape()),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_hash(data: &[u8], piece: usize) -> String {
        let mut out = [0; blake3::OUT_LEN];
        tree_output(data, piece, Blake3Mode::Hash, &mut out);
        blake3::Hash::from(out).to_hex().to_string()
    }

    fn tree_output(data: &[u8], piece: usize, mode: Blake3Mode, out: &mut [u8]) {
        let (prep, mut comb) = blake3_parallel_mode(mode);
        comb.begin().unwrap();
        for (i, p) in data.chunks(piece).enumerate() {
            let c = Chunk::new((i * piece) as u64, p);
            let part = prep.prepare(&c);
            comb.combine(&c, part).unwrap();
        }
        comb.output(out);
    }

    #[test]
    fn equals_blake3_for_every_shape() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 1000) as u8).collect();
        for piece in [1024, 4096, 65536, 1000, 3000] {
            for len in [
                0,
                1,
                1023,
                1024,
                1025,
                4096,
                4097,
                65535,
                65536,
                65537,
                131072,
                196608 + 5,
                300_000,
            ] {
                let want = blake3::hash(&data[..len]).to_hex().to_string();
                assert_eq!(
                    tree_hash(&data[..len], piece),
                    want,
                    "piece {piece}, len {len}"
                );
            }
        }
    }

    #[test]
    fn keyed_derived_and_long_outputs_equal_blake3() {
        let data: Vec<u8> = (0..140_000u32).map(|i| (i * 13 + i / 777) as u8).collect();
        let key = [7u8; 32];
        for len in [0, 1, 1024, 4097, 65536, 65537, 140_000] {
            let input = &data[..len];
            let cases: [(Blake3Mode, blake3::Hasher); 3] = [
                (Blake3Mode::Hash, blake3::Hasher::new()),
                (Blake3Mode::Keyed(key), blake3::Hasher::new_keyed(&key)),
                (
                    Blake3Mode::derive_key("ringread test context"),
                    blake3::Hasher::new_derive_key("ringread test context"),
                ),
            ];
            for (mode, mut reference) in cases {
                reference.update(input);
                let mut want = [0u8; 100];
                reference.finalize_xof().fill(&mut want);
                for piece in [1024, 4096, 3000] {
                    let mut got = [0u8; 100];
                    tree_output(input, piece, mode, &mut got);
                    assert_eq!(got, want, "{mode:?}, piece {piece}, len {len}");
                }
            }
        }
    }
}
