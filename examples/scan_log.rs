//! Scans a log file line by line through the async stream interface: `Driver::chunks` (a
//! `FileStream`) -> `AsyncBufRead` (`into_async_read`) -> `lines()`, in tokio's multi-threaded
//! runtime.
//!
//! ```text
//! cargo run --release --example scan_log -- [FILE [WORD]]
//! ```
//!
//! Without a file it writes a 64 MiB synthetic log to a temporary file, scans it, and checks its counts
//! against `std::fs::read` (exit status 1 if they differ). WORD defaults to `ERROR`.

use std::io::Write;
use std::time::Instant;

use ringread::stream::Driver;
use tokio::io::AsyncBufReadExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let given = args.next();
    let word = args
        .next()
        .map(|w| w.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ERROR".into());
    let (_tmp, path) = match given {
        Some(p) => (None, std::path::PathBuf::from(p)),
        None => {
            let mut f = tempfile::NamedTempFile::new()?;
            let mut w = std::io::BufWriter::new(f.as_file_mut());
            let mut n = 0u64;
            let mut written = 0usize;
            while written < 64 << 20 {
                let level = ["INFO", "WARN", "ERROR", "DEBUG"][(n * 7 % 13 % 4) as usize];
                let line = format!(
                    "2026-11-24T23:{:02}:{:02}.{:06}Z {level} request {n} took {} us\n",
                    n / 60 % 60,
                    n % 60,
                    n * 7919 % 1_000_000,
                    n * 31 % 5000
                );
                w.write_all(line.as_bytes())?;
                written += line.len();
                n += 1;
            }
            w.flush()?;
            drop(w);
            let p = f.path().to_path_buf();
            (Some(f), p)
        }
    };

    let started = Instant::now();
    let stream = Driver::global()?.chunks(&path)?;
    for n in stream.notices() {
        eprintln!("scan_log: {n}");
    }
    let mut lines = stream.into_async_read().lines();
    let (mut total, mut matching) = (0u64, 0u64);
    while let Some(line) = lines.next_line().await? {
        total += 1;
        if line.contains(&word) {
            matching += 1;
        }
    }
    let took = started.elapsed();
    println!(
        "{}: {total} lines, {matching} containing {word:?} ({:.0} ms)",
        path.display(),
        took.as_secs_f64() * 1e3
    );

    if _tmp.is_some() {
        // The built-in log: check the counts against the standard library.
        let data = std::fs::read(&path)?;
        let text = String::from_utf8(data)?;
        let want_total = text.lines().count() as u64;
        let want_matching = text.lines().filter(|l| l.contains(&word)).count() as u64;
        if (total, matching) != (want_total, want_matching) {
            eprintln!("scan_log: MISMATCH: std::fs::read counts {want_total} lines, {want_matching} matching");
            std::process::exit(1);
        }
        println!("checked against std::fs::read: same counts");
    }
    Ok(())
}
