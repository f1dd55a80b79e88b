//! What a tokio service writes with `ringread = { default-features = false, features = ["stream"] }`:
//! a file opened without blocking the executor and its chunks as `Bytes` (`Driver::chunks`), the
//! reader adapter, the pitfall of holding every chunk (an error, not a hang), whole files one or
//! many at a time (`Driver::files`), many tasks within one driver's budget, and random reads
//! (`Driver::range_file`, `read_at`) of one file from many tasks. Checks every result against
//! `std::fs::read`; exits 1 on a mismatch.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use ringread::stream::Driver;
use ringread::{Error, ReadOptions, Source};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("ringread-async-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let path = dir.join("data");
    let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 % 253) as u8).collect();
    File::create(&path)?.write_all(&data)?;

    // Chunks as Bytes, in order, the file opened off the executor's threads.
    let mut stream = Driver::global()?.chunks(Source::file(open(&path).await?, &path))?;
    let mut got = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        let bytes: bytes::Bytes = chunk?.into_bytes();
        got.extend_from_slice(&bytes);
    }
    check(got == data, "chunks differ")?;

    // AsyncRead; the path opened by `chunks`, on this thread (a local file: a short wait).
    let mut all = Vec::new();
    Driver::global()?
        .chunks(&path)?
        .into_async_read()
        .read_to_end(&mut all)
        .await?;
    check(all == data, "AsyncRead differs")?;

    // Holding every chunk: an error that says what to do, not a hang.
    let driver = Driver::with_budget(2, 16 << 20)?;
    let opts = ReadOptions::builder()
        .chunk_size(64 * 1024)
        .depth(4)
        .build()?;
    let chunks_64k = driver.with_options(opts)?;
    let mut held = Vec::new();
    let mut s = chunks_64k.chunks(&path)?;
    let err = loop {
        match s.next_chunk().await {
            Some(Ok(c)) => held.push(c),
            Some(Err(e)) => break e,
            None => return Err("a held stream ended without an error".into()),
        }
    };
    check(
        matches!(err, Error::BuffersHeld { .. }),
        "expected BuffersHeld",
    )?;
    println!("holding every chunk: {err}");
    drop(held);

    // Whole files without a task or a thread per read: one, then many (in input order; a missing
    // file is its own error and the rest are read).
    let small: Vec<std::path::PathBuf> = (0..50)
        .map(|i| {
            let p = dir.join(format!("small{i}"));
            std::fs::write(&p, vec![i as u8; i * 997]).map(|()| p)
        })
        .collect::<std::io::Result<_>>()?;
    let (_, whole) = Driver::global()?
        .files(&path)?
        .next_file()
        .await
        .ok_or("files of one path gave nothing")?;
    check(whole?[..] == data[..], "a whole file differs")?;
    let mut names = small.clone();
    names.insert(7, dir.join("missing"));
    let mut files = Driver::global()?.files(Source::paths(&names))?;
    let mut seen = 0;
    while let Some((i, r)) = files.next_file().await {
        check(i == seen, "files out of input order")?;
        seen += 1;
        match r {
            Ok(bytes) => check(bytes[..] == std::fs::read(&names[i])?[..], "files differ")?,
            Err(e) => check(i == 7, &format!("file {i}: {e}"))?,
        }
    }
    check(seen == names.len(), "files ended early")?;

    // 64 tasks at once on one driver, each checked.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (driver, path, data) = (chunks_64k.clone(), path.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = driver.chunks(&path)?;
            let mut got = Vec::with_capacity(data.len());
            while let Some(c) = s.next_chunk().await {
                got.extend_from_slice(&c?);
            }
            Ok::<bool, Error>(got == data)
        }));
    }
    for t in tasks {
        check(t.await??, "a task's bytes differ")?;
    }
    let stats = driver.stats();
    println!(
        "64 tasks: peak buffers {} KiB of a {} KiB budget",
        stats.peak_buffer_bytes / 1024,
        stats.budget / 1024
    );
    check(stats.peak_buffer_bytes <= stats.budget, "over budget")?;

    // The cached fast path (on by default): a cached file's chunks are read on the task's own
    // thread, with no wake-up from the driver; off, the driver reads every chunk. Same bytes.
    for fast in [true, false] {
        let driver = Driver::new()?;
        let opts = ReadOptions::builder()
            .chunk_size(64 * 1024)
            .depth(8)
            .cached_fast_path(fast)
            .build()?;
        let mut s = driver.with_options(opts)?.chunks(&path)?;
        let mut got = Vec::with_capacity(data.len());
        while let Some(c) = s.next_chunk().await {
            got.extend_from_slice(&c?);
        }
        check(got == data, "fast path on/off: bytes differ")?;
        let st = driver.stats();
        println!(
            "fast path {}: {} chunks read on the task's thread, {} task wake-ups by the driver",
            if fast { "on" } else { "off" },
            st.cached_chunks,
            st.wakeups
        );
        check(
            (st.cached_chunks > 0) == fast,
            "the fast path was not used as asked",
        )?;
    }

    // Random access: 64 tasks reading 4 KiB pieces of one shared file with read_at (Bytes over the
    // driver's buffers, no copy), the last one past the end (short, like pread).
    let file = driver.range_file(&path)?;
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let (file, data) = (file.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100u64 {
                let off = (t * 7919 + i * 104_729) % (data.len() as u64 + 100);
                let b = file.read_at(off, 4096).await?;
                let from = (off as usize).min(data.len());
                if b[..] != data[from..(from + 4096).min(data.len())] {
                    return Ok(false);
                }
            }
            Ok::<bool, Error>(true)
        }));
    }
    for t in tasks {
        check(t.await??, "a read_at's bytes differ")?;
    }

    // The same with O_DIRECT: reads widened to the alignment, only the asked bytes handed out.
    let direct = ReadOptions::builder().direct(true).build()?;
    let file = driver.with_options(direct)?.range_file(&path)?;
    println!(
        "read_at with O_DIRECT: {} {:?}",
        file.direct(),
        file.notices()
    );
    for off in [0u64, 1, 4095, 4097, 12_345, data.len() as u64 - 10] {
        let b = file.read_at(off, 5000).await?;
        let from = (off as usize).min(data.len());
        check(
            b[..] == data[from..(from + 5000).min(data.len())],
            "a direct read_at's bytes differ",
        )?;
    }
    println!("ok");
    Ok(())
}

/// Opens `path` on tokio's blocking pool, as a path that may block (a FIFO, a network file system)
/// should be opened.
async fn open(path: &Path) -> std::io::Result<File> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || File::open(path)).await?
}

fn check(ok: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}
