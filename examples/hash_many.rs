//! Hashes many files at once, one tokio task per file, all on one `Driver` (one ring per CPU): the
//! output is `b3sum`'s (`HASH  NAME`), in the order the files were given.
//!
//! ```text
//! cargo run --release --example hash_many -- FILE...
//! ```
//!
//! Without files it writes 300 files of assorted sizes to a temporary directory, hashes them, and
//! checks each hash against BLAKE3 of `std::fs::read` (exit status 1 if any differs).

use ringread::processor::{Algorithm, Checksum};
use ringread::stream::Driver;
use ringread::{Processor, ReadOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut files: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let tmp = if files.is_empty() {
        let dir = tempfile::tempdir()?;
        for i in 0..300u64 {
            let len = (i * i * 7919) % (3 << 20);
            let data: Vec<u8> = (0..len).map(|j| (j ^ (j >> 9) ^ i) as u8).collect();
            let p = dir.path().join(format!("file{i:03}"));
            std::fs::write(&p, data)?;
            files.push(p);
        }
        Some(dir)
    } else {
        None
    };

    let driver = Driver::new()?;
    if let Some(n) = driver.notice() {
        eprintln!("hash_many: {n}");
    }
    // Every file is open at once here. The streams share the driver's buffer budget
    // (`stream::DEFAULT_BUDGET`, 64 MiB): each reads ahead within its share of it, up to 4 x 64 KiB.
    let driver = driver.with_options(
        ReadOptions::builder()
            .chunk_size(64 << 10)
            .depth(4)
            .build()?,
    )?;
    let tasks: Vec<_> = files
        .iter()
        .cloned()
        .map(|path| {
            let driver = driver.clone();
            tokio::spawn(async move {
                let mut stream = driver.chunks(&path)?;
                let mut sum = Checksum::new(Algorithm::Blake3);
                while let Some(chunk) = stream.next_chunk().await {
                    sum.process(&chunk?.as_chunk())?;
                }
                Ok::<_, anyhow::Error>(sum.hex())
            })
        })
        .collect();
    let mut status = 0;
    for (path, task) in files.iter().zip(tasks) {
        match task.await? {
            Ok(hex) => {
                println!("{hex}  {}", path.display());
                if tmp.is_some() {
                    let want = blake3::hash(&std::fs::read(path)?).to_hex().to_string();
                    if hex != want {
                        eprintln!(
                            "hash_many: MISMATCH for {}: std says {want}",
                            path.display()
                        );
                        status = 1;
                    }
                }
            }
            Err(e) => {
                eprintln!("hash_many: {e}");
                status = 1;
            }
        }
    }
    if tmp.is_some() && status == 0 {
        eprintln!(
            "checked {} files against std::fs::read: all the same",
            files.len()
        );
    }
    std::process::exit(status);
}
