//! Soak: reads random files with random options for a while and compares every byte with
//! `std::fs::read`. Not part of CI's run.
//!
//! ```sh
//! cargo run --release --example soak -- [MINUTES] [DIR]      # defaults: 1 minute, $TMPDIR
//! ```
//!
//! Prints the reads done, the bytes verified and every failure; exits 1 if any read was wrong.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringread::{processor::from_fn, Backend, Chunk, ReadOptions, Reader};

/// xorshift: enough randomness for choosing sizes and options, and repeatable from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let minutes: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let dir: PathBuf = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let seed = std::process::id() as u64 | 1;
    let mut rng = Rng(seed);
    let work = dir.join(format!("ringread-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("make the soak directory");
    println!(
        "soak: {minutes} minute(s) in {}, seed {seed}",
        work.display()
    );

    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let (mut reads, mut verified, mut failures) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        // A file of a random size, often on a chunk or alignment edge.
        let chunk = rng.pick(&[4096usize, 65536, 262144, 1 << 20, 1000, 12288]);
        let size = match rng.below(4) {
            0 => rng.below(64 << 20) as usize,
            1 => chunk * rng.below(40) as usize + rng.pick(&[0usize, 1, 4095, 4096, 4097]),
            2 => rng.below(10_000) as usize,
            _ => (chunk * rng.below(8) as usize).saturating_sub(1),
        };
        let data: Vec<u8> = (0..size)
            .map(|i| (i as u64 ^ seed).wrapping_mul(0x9E37) as u8)
            .collect();
        let path = work.join("file");
        std::fs::write(&path, &data).expect("write the soak file");

        let direct = chunk % 4096 == 0 && rng.below(2) == 0;
        let mut b = ReadOptions::builder()
            .chunk_size(chunk)
            .depth(rng.pick(&[1usize, 2, 3, 4, 8, 16, 64]))
            .direct(direct)
            .register_buffers(rng.below(4) != 0)
            .sqpoll(rng.below(10) == 0)
            .backend(rng.pick(&[Backend::Uring, Backend::Uring, Backend::Sync]));
        if rng.below(2) == 0 {
            b = b.threads(1 + rng.below(3) as usize);
        }
        let opts = b.build().expect("valid options");
        let described = format!("{opts:?}, size {size}");
        let reader = Reader::new(opts);
        let mut got = Vec::with_capacity(size);
        let mut in_order = true;
        let mut p = from_fn(|c: &Chunk<'_>| {
            in_order &= c.offset() == got.len() as u64;
            got.extend_from_slice(c);
            Ok(true)
        });
        let result = reader.read(&path, &mut p);
        reads += 1;
        let reference = std::fs::read(&path).expect("std::fs::read");
        match result {
            Ok(s) if in_order && got == reference && s.bytes == reference.len() as u64 => {
                verified += got.len() as u64;
            }
            other => {
                failures += 1;
                println!(
                    "FAILED: {described}: {:?}; in order {in_order}; {} bytes of {}",
                    other.map(|s| s.bytes),
                    got.len(),
                    reference.len()
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    println!("{reads} reads, {verified} bytes verified, {failures} failures");
    std::process::exit(i32::from(failures > 0));
}
