//! Hashing processors whose output matches the standard tools byte for byte.
//!
//! | algorithm | crate | matches |
//! |---|---|---|
//! | `sha256` | `sha2` (SHA-NI at run time where the CPU has it) | `sha256sum` |
//! | `blake3` | `blake3` (SIMD at run time) | `b3sum` |
//! | `xxh3` | `xxhash-rust` (XXH3 64-bit) | the hex of `xxhsum -H3` |
//! | `xxh128` | `xxhash-rust` (XXH3 128-bit) | `xxhsum -H2` |
//! | `xxh64` | `xxhash-rust` (XXH64) | `xxhsum -H1`, xxhsum's default |
//! | `xxh32` | `xxhash-rust` (XXH32) | `xxhsum -H0` |
//! | `crc32c` | `crc32c` (SSE 4.2 at run time) | the Castagnoli CRC as 8 hex digits |

use std::fmt;
use std::io;
use std::str::FromStr;

#[cfg(feature = "sha256")]
use sha2::Digest;

use super::Processor;
use crate::buf::Chunk;
use crate::error::Error;

/// A hash algorithm `ringread sum` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256, as `sha256sum`.
    #[cfg(feature = "sha256")]
    Sha256,
    /// BLAKE3 (32-byte output), as `b3sum`.
    #[cfg(feature = "blake3")]
    Blake3,
    /// XXH3 64-bit, as `xxhsum -H3`.
    #[cfg(feature = "xxh3")]
    Xxh3,
    /// XXH3 128-bit, as `xxhsum -H2`.
    #[cfg(feature = "xxh3")]
    Xxh128,
    /// XXH64, as `xxhsum -H1` (xxhsum's default).
    #[cfg(feature = "xxh3")]
    Xxh64,
    /// XXH32, as `xxhsum -H0`.
    #[cfg(feature = "xxh3")]
    Xxh32,
    /// CRC-32C (Castagnoli), as iSCSI, ext4 and many storage formats use.
    #[cfg(feature = "crc32c")]
    Crc32c,
}

impl Algorithm {
    /// Whether hashing a cached file in place ([`ReadOptionsBuilder::in_place`]: from a mapping of
    /// the page cache, no copy) was measured faster than hashing the lanes' copies. The command
    /// reads in place only where it is. Measured warm on this project's 2-CPU machine, 2 GiB, the
    /// two ways side by side (docs/BENCHMARKS.md, "In place or copying"): in place took 0.70-0.83x
    /// the copying time for XXH3, 0.76x for XXH64, 0.68x for XXH32, 0.90x for SHA-256 (1 GiB);
    /// the same (0.96-1.00x) for XXH128, and more for CRC-32C (1.21-1.26x) and BLAKE3
    /// (1.11x, 1.11x). A single sequential hash does not predict it: BLAKE3, whose subtrees are
    /// hashed on every lane in place, spends more CPU there (its parallel half reads pages no
    /// copy brought into the CPU's caches).
    ///
    /// [`ReadOptionsBuilder::in_place`]: crate::options::ReadOptionsBuilder::in_place
    pub fn in_place_pays(self) -> bool {
        match self {
            #[cfg(feature = "sha256")]
            Algorithm::Sha256 => true,
            #[cfg(feature = "blake3")]
            Algorithm::Blake3 => false,
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh3 | Algorithm::Xxh64 | Algorithm::Xxh32 => true,
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh128 => false,
            #[cfg(feature = "crc32c")]
            Algorithm::Crc32c => false,
        }
    }

    /// The bytes per read the command reads this algorithm's input with when none is asked for,
    /// where that differs from the default ([`DEFAULT_CHUNK_SIZE`](crate::options::DEFAULT_CHUNK_SIZE)): BLAKE3
    /// 1 MiB (its parallel half hashes each chunk's subtrees on the lane that read it: 2 GiB warm,
    /// 0.89x of the time at 256 KiB, side by side with `hyperfine`, docs/BENCHMARKS.md "One file,
    /// warm").
    pub fn preferred_chunk_size(self) -> Option<usize> {
        match self {
            #[cfg(feature = "blake3")]
            Algorithm::Blake3 => Some(1 << 20),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Every algorithm, in the order the help lists them.
    pub const ALL: &'static [Algorithm] = &[
        #[cfg(feature = "sha256")]
        Algorithm::Sha256,
        #[cfg(feature = "blake3")]
        Algorithm::Blake3,
        #[cfg(feature = "xxh3")]
        Algorithm::Xxh3,
        #[cfg(feature = "xxh3")]
        Algorithm::Xxh128,
        #[cfg(feature = "xxh3")]
        Algorithm::Xxh64,
        #[cfg(feature = "xxh3")]
        Algorithm::Xxh32,
        #[cfg(feature = "crc32c")]
        Algorithm::Crc32c,
    ];

    /// The lower-case name used on the command line (`sha256`, `blake3`, ...).
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "sha256")]
            Algorithm::Sha256 => "sha256",
            #[cfg(feature = "blake3")]
            Algorithm::Blake3 => "blake3",
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh3 => "xxh3",
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh128 => "xxh128",
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh64 => "xxh64",
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh32 => "xxh32",
            #[cfg(feature = "crc32c")]
            Algorithm::Crc32c => "crc32c",
        }
    }

    /// The tag of the BSD-style line (`SHA256 (file) = ...`), as `sha256sum --tag` and `xxhsum` write it.
    pub fn tag(self) -> &'static str {
        match self {
            #[cfg(feature = "sha256")]
            Algorithm::Sha256 => "SHA256",
            #[cfg(feature = "blake3")]
            Algorithm::Blake3 => "BLAKE3",
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh3 => "XXH3",
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh128 => "XXH128",
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh64 => "XXH64",
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh32 => "XXH32",
            #[cfg(feature = "crc32c")]
            Algorithm::Crc32c => "CRC32C",
        }
    }

    /// The algorithm a BSD-style tag names, if any.
    pub fn from_tag(tag: &str) -> Option<Algorithm> {
        Algorithm::ALL.iter().copied().find(|a| a.tag() == tag)
    }

    /// The number of hex digits of a digest.
    pub fn hex_len(self) -> usize {
        match self {
            #[cfg(feature = "sha256")]
            Algorithm::Sha256 => 64,
            #[cfg(feature = "blake3")]
            Algorithm::Blake3 => 64,
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh3 => 16,
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh128 => 32,
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh64 => 16,
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh32 => 8,
            #[cfg(feature = "crc32c")]
            Algorithm::Crc32c => 8,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Algorithm::ALL
            .iter()
            .copied()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::InvalidOptions(format!(
                    "unknown algorithm '{s}' (expected sha256, blake3, xxh3, xxh128, xxh64, xxh32 or crc32c)"
                ))
            })
    }
}

enum State {
    #[cfg(feature = "sha256")]
    Sha256(sha2::Sha256),
    #[cfg(feature = "blake3")]
    Blake3(Box<blake3::Hasher>),
    #[cfg(feature = "xxh3")]
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
    #[cfg(feature = "xxh3")]
    Xxh128(Box<xxhash_rust::xxh3::Xxh3>),
    #[cfg(feature = "xxh3")]
    Xxh64(xxhash_rust::xxh64::Xxh64),
    #[cfg(feature = "xxh3")]
    Xxh32(xxhash_rust::xxh32::Xxh32),
    #[cfg(feature = "crc32c")]
    Crc32c(u32),
}

/// A running hash of the chunks it is given; [`Checksum::hex`] is the digest as the tools print it.
pub struct Checksum {
    algorithm: Algorithm,
    state: State,
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checksum")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Checksum {
    /// A fresh hash.
    pub fn new(algorithm: Algorithm) -> Self {
        let state = match algorithm {
            #[cfg(feature = "sha256")]
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            #[cfg(feature = "blake3")]
            Algorithm::Blake3 => State::Blake3(Box::new(blake3::Hasher::new())),
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh3 => State::Xxh3(Box::default()),
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh128 => State::Xxh128(Box::default()),
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh64 => State::Xxh64(xxhash_rust::xxh64::Xxh64::new(0)),
            #[cfg(feature = "xxh3")]
            Algorithm::Xxh32 => State::Xxh32(xxhash_rust::xxh32::Xxh32::new(0)),
            #[cfg(feature = "crc32c")]
            Algorithm::Crc32c => State::Crc32c(0),
        };
        Checksum { algorithm, state }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            #[cfg(feature = "sha256")]
            State::Sha256(h) => h.update(data),
            #[cfg(feature = "blake3")]
            State::Blake3(h) => {
                h.update(data);
            }
            #[cfg(feature = "xxh3")]
            State::Xxh3(h) | State::Xxh128(h) => h.update(data),
            #[cfg(feature = "xxh3")]
            State::Xxh64(h) => h.update(data),
            #[cfg(feature = "xxh3")]
            State::Xxh32(h) => h.update(data),
            #[cfg(feature = "crc32c")]
            State::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
        }
    }

    /// The digest of everything added so far, as lower-case hex (what the standard tools print).
    pub fn hex(&self) -> String {
        match &self.state {
            #[cfg(feature = "sha256")]
            State::Sha256(h) => hex::encode(h.clone().finalize()),
            #[cfg(feature = "blake3")]
            State::Blake3(h) => h.finalize().to_hex().to_string(),
            #[cfg(feature = "xxh3")]
            State::Xxh3(h) => format!("{:016x}", h.digest()),
            #[cfg(feature = "xxh3")]
            State::Xxh128(h) => format!("{:032x}", h.digest128()),
            #[cfg(feature = "xxh3")]
            State::Xxh64(h) => format!("{:016x}", h.digest()),
            #[cfg(feature = "xxh3")]
            State::Xxh32(h) => format!("{:08x}", h.digest()),
            #[cfg(feature = "crc32c")]
            State::Crc32c(c) => format!("{c:08x}"),
        }
    }
}

impl Processor for Checksum {
    fn process(&mut self, chunk: &Chunk<'_>) -> io::Result<bool> {
        self.update(chunk);
        Ok(true)
    }
}

#[cfg(all(
    test,
    feature = "sha256",
    feature = "blake3",
    feature = "xxh3",
    feature = "crc32c"
))]
mod tests {
    use super::*;

    fn hex_of(a: Algorithm, parts: &[&[u8]]) -> String {
        let mut c = Checksum::new(a);
        for p in parts {
            c.update(p);
        }
        c.hex()
    }

    #[test]
    fn known_digests_of_hello_world() {
        // Printed by sha256sum, b3sum, xxhsum -H3, -H2, -H1 and -H0 for the bytes "hello\nworld\n".
        let parts: &[&[u8]] = &[b"hello\n", b"world\n"];
        assert_eq!(
            hex_of(Algorithm::Sha256, parts),
            "4a1e67f2fe1d1cc7b31d0ca2ec441da4778203a036a77da10344c85e24ff0f92"
        );
        assert_eq!(
            hex_of(Algorithm::Blake3, parts),
            "e55980c788fb1801601cc1aca0af926bf091d52cf906c60ef5b341d108e881a9"
        );
        assert_eq!(hex_of(Algorithm::Xxh3, parts), "642f46e1b195a45e");
        assert_eq!(
            hex_of(Algorithm::Xxh128, parts),
            "0f1ec5d127fd87d5c9a9e0d0e69a2972"
        );
        // xxhsum -H1 and -H0.
        assert_eq!(hex_of(Algorithm::Xxh64, parts), "d1d8db7d17870eb5");
        assert_eq!(hex_of(Algorithm::Xxh32, parts), "06f83030");
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(hex_of(Algorithm::Crc32c, &[b"1234", b"56789"]), "e3069283");
    }

    #[test]
    fn names_round_trip() {
        for &a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>().unwrap(), a);
            assert_eq!(Algorithm::from_tag(a.tag()), Some(a));
            assert_eq!(Checksum::new(a).hex().len(), a.hex_len());
        }
    }
}
