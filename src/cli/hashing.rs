//! What a `sum` run was asked ([`Settings`]) and how it hashes a file ([`HashSpec`]), shared by
//! its two modes, printing sums (`super::sum`) and checking them (`super::check`, `sum --check`),
//! and by the tools' names (`super::multicall`).

use std::path::{Path, PathBuf};

use ringread::processor::{
    blake3_in_order, blake3_parallel_mode, Algorithm, Blake3Mode, Checksum, Processor, Whole,
};
use ringread::sumfile::Convention;

use super::{Ctx, DEFAULT_ALGORITHM};

/// What `sum` was asked, however it was invoked (`ringread sum` or a peer's name).
#[derive(Debug, Default, Clone)]
pub(crate) struct Settings {
    pub algo: Option<Algorithm>,
    pub check: bool,
    pub tag: bool,
    /// sha256sum's `-b` (`Some(true)`) or `-t` (`Some(false)`), the last given.
    pub binary: Option<bool>,
    pub zero: bool,
    pub quiet: bool,
    pub status: bool,
    pub warn: bool,
    pub strict: bool,
    pub ignore_missing: bool,
    pub no_names: bool,
    pub raw: bool,
    pub length: Option<u64>,
    pub keyed: bool,
    pub derive_key: Option<String>,
    pub little_endian: bool,
    pub files: Vec<PathBuf>,
    /// b3sum was given a length it cannot parse: each file it opens then fails.
    pub bad_length: bool,
    /// b3sum's `--no-mmap` (for `ringread sum` it is a reading option: `ReadArgs`).
    pub no_mmap: bool,
}

impl Settings {
    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algo.unwrap_or(DEFAULT_ALGORITHM)
    }

    /// Whose rules apply.
    pub fn convention(&self) -> Convention {
        Convention::of(self.algorithm())
    }
}

/// The hash a run computes, with b3sum's key and output length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HashSpec {
    pub algo: Algorithm,
    pub blake3: Blake3Mode,
    /// BLAKE3 output bytes.
    pub length: usize,
}

impl HashSpec {
    /// The plain hash `algo`.
    pub fn plain(algo: Algorithm) -> HashSpec {
        HashSpec {
            algo,
            blake3: Blake3Mode::Hash,
            length: 32,
        }
    }

    fn blake3_hex(&self, sum: &mut ringread::processor::Blake3Combine) -> String {
        let mut out = vec![0; self.length];
        sum.output(&mut out);
        hex::encode(out)
    }

    /// The digest of `name` ("-": standard input) as lower-case hex.
    pub fn read_one(&self, ctx: &Ctx, name: &Path) -> ringread::Result<String> {
        if ctx.ranges.is_some() {
            let mut sum = RangeHash::new(self, self.algo);
            ctx.read_split(name, &Whole, &mut sum)?;
            return Ok(sum.hex());
        }
        if Convention::of(self.algo) == Convention::B3sum {
            // BLAKE3 runs on every reading thread where the chunks allow: a regular file's (a
            // pipe's uneven pieces do not).
            let regular = name.as_os_str() != "-"
                && !ctx.reads_connection()
                && std::fs::metadata(name).is_ok_and(|m| m.is_file());
            let (prep, mut sum) = if !regular {
                blake3_in_order(self.blake3)
            } else {
                blake3_parallel_mode(self.blake3)
            };
            ctx.read_split(name, &prep, &mut sum)?;
            return Ok(self.blake3_hex(&mut sum));
        }
        let mut sum = Checksum::new(self.algo);
        ctx.read_split(name, &Whole, &mut sum)?;
        Ok(sum.hex())
    }

    /// Reads `names` many at once, each digest handed to `done` in order. The error is what
    /// stopped reading altogether (see [`Ctx::many`]).
    pub fn read_many(
        &self,
        ctx: &Ctx,
        names: &[PathBuf],
        regular: &[bool],
        algo_of: impl Fn(usize) -> Algorithm,
        mut done: impl FnMut(&Path, ringread::Result<String>),
    ) -> Result<(), ringread::Error> {
        // Ranges (`--range`) of several files: one call, the reads of every file in flight together.
        let ranges = ctx.ranges_many(
            names,
            |i| RangeHash::new(self, algo_of(i)),
            |n, r| done(n, r.map(|h| h.hex()).map_err(|(e, _)| e)),
        );
        if let Some(r) = ranges {
            return r;
        }
        if (0..names.len()).all(|i| Convention::of(algo_of(i)) == Convention::B3sum) {
            ctx.many(
                names,
                regular,
                |_| blake3_parallel_mode(self.blake3),
                |n, r| {
                    done(
                        n,
                        r.map(|mut s| self.blake3_hex(&mut s)).map_err(|(e, _)| e),
                    )
                },
            )
        } else {
            ctx.many(
                names,
                regular,
                |i| (Whole, Checksum::new(algo_of(i))),
                |n, r| done(n, r.map(|s| s.hex()).map_err(|(e, _)| e)),
            )
        }
    }
}

/// The digest of the bytes handed over, in the order handed over, whatever their offsets: the
/// `--range`s of a file hashed as one stream, as the tool would hash them piped in one after
/// another. (The BLAKE3 of a whole file is hashed on every reading thread instead, placed by
/// offset: see [`blake3_parallel_mode`].)
enum RangeHash {
    /// BLAKE3 in its mode, and the output bytes wanted.
    Blake3(Box<blake3::Hasher>, usize),
    Other(Checksum),
}

impl RangeHash {
    fn new(spec: &HashSpec, algo: Algorithm) -> RangeHash {
        if Convention::of(algo) == Convention::B3sum {
            RangeHash::Blake3(Box::new(spec.blake3.hasher()), spec.length)
        } else {
            RangeHash::Other(Checksum::new(algo))
        }
    }

    fn hex(&self) -> String {
        match self {
            RangeHash::Blake3(h, len) => {
                let mut out = vec![0; *len];
                h.finalize_xof().fill(&mut out);
                hex::encode(out)
            }
            RangeHash::Other(c) => c.hex(),
        }
    }
}

impl Processor for RangeHash {
    fn process(&mut self, chunk: &ringread::Chunk<'_>) -> std::io::Result<bool> {
        match self {
            RangeHash::Blake3(h, _) => {
                h.update(chunk);
            }
            RangeHash::Other(c) => c.update(chunk),
        }
        Ok(true)
    }
}

/// Whether an error is a directory's (opened fine by the peers, refused at the first read).
pub(crate) fn is_dir_error(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EISDIR)
}
