//! What a service that imports ringread with `default-features = false` writes: read files in order
//! with its own processor and a built-in one (`Reader::read`), many files at once each into its own
//! (`Reader::read_each`), stop a read from another thread, and read many small ranges of one file
//! or of many with many reads in flight (`Source::ranges`, `Input::ranges`). Checks every result
//! against `std::fs::read`; exits 1 on a mismatch. Prints the time a one-chunk read takes
//! (measured, never asserted).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringread::processor::{from_fn, ByteCount, LineCount};
use ringread::ranges::{ByteRange, Order, RangeOptions};
use ringread::{Cancel, Chunk, Error, Input, Processor, ReadOptions, Reader, Source};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("ringread-minimal-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    // Files whose sizes straddle the chunk edges.
    let chunk = 64 * 1024;
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, size) in [0, 1, 4095, 4096, 4097, chunk - 1, chunk, chunk + 1, 5 << 20]
        .into_iter()
        .enumerate()
    {
        let path = dir.join(format!("f{i}"));
        let data: Vec<u8> = (0..size).map(|j| (j * 31 % 251) as u8 ^ b'\n').collect();
        std::fs::File::create(&path)?.write_all(&data)?;
        files.push(path);
    }
    let reader = Reader::new(ReadOptions::builder().chunk_size(chunk).depth(8).build()?);

    for path in &files {
        let want = std::fs::read(path)?;
        // A closure processor that collects the bytes.
        let mut got = Vec::new();
        let mut collect = from_fn(|c: &Chunk<'_>| {
            assert_eq!(c.offset(), got.len() as u64, "chunks out of order");
            got.extend_from_slice(c);
            Ok(true)
        });
        let summary = reader.read(path, &mut collect)?;
        check(got == want, format!("{}: bytes differ", path.display()))?;
        check(summary.bytes == want.len() as u64, "byte count".into())?;
        // A built-in processor, as a trait object chosen at run time.
        let mut lines: Box<dyn Processor + Send> = Box::new(LineCount::default());
        reader.read(path, lines.as_mut())?;
        let mut counted = LineCount::default();
        reader.read(path, &mut counted)?;
        let newlines = want.iter().filter(|&&b| b == b'\n').count() as u64;
        check(
            counted.lines == newlines,
            format!("{}: lines", path.display()),
        )?;
        println!(
            "{}: {} bytes by {}",
            path.display(),
            summary.bytes,
            summary.route
        );
    }

    // Uncached reads with the default (self-tuning) options, and how much of a file is cached.
    let uncached = Reader::new(ReadOptions::builder().dontcache(true).build()?);
    check(
        uncached.options().self_tuning(),
        "defaults tune themselves".into(),
    )?;
    for path in &files {
        let want = std::fs::read(path)?;
        let mut got = Vec::new();
        uncached.read(
            path,
            &mut from_fn(|c: &Chunk<'_>| {
                got.extend_from_slice(c);
                Ok(true)
            }),
        )?;
        check(
            got == want,
            format!("{}: uncached bytes differ", path.display()),
        )?;
        let r = ringread::residency::of_file(&std::fs::File::open(path)?)?;
        check(
            r.cached <= r.len,
            format!("{}: residency {r:?}", path.display()),
        )?;
    }

    // Cached files counted in place, from a mapping of the page cache (no copy); the 5 MiB file,
    // just read, is cached, and the route says how it went.
    let in_place = Reader::new(ReadOptions::builder().in_place(true).build()?);
    for path in &files {
        let want = std::fs::read(path)?;
        let mut counted = LineCount::default();
        let summary = in_place.read(path, &mut counted)?;
        let newlines = want.iter().filter(|&&b| b == b'\n').count() as u64;
        check(
            counted.lines == newlines && summary.bytes == want.len() as u64,
            format!("{}: in place: {counted:?}", path.display()),
        )?;
        println!("{}: {}", path.display(), summary.route);
    }

    // Many files at once, each into its own processor, results in input order; a missing file
    // among them is that file's error only. Then the same files opened by the caller.
    let mut list: Vec<PathBuf> = files.clone();
    list.insert(2, dir.join("missing"));
    for regular in [false, true] {
        let mut next = 0;
        let mut failed = Vec::new();
        reader.read_each(
            // As plain paths, then as a walk of one's own would give them: regular files, read
            // with no statx first (the missing one is still that file's error).
            Source::inputs(list.iter().map(|p| {
                if regular {
                    Input::regular(p)
                } else {
                    Input::path(p)
                }
            })),
            |_, _| Kept::default(),
            |f| {
                assert_eq!(f.index, next, "out of input order");
                next += 1;
                match (f.result, std::fs::read(&f.path)) {
                    (Ok(_), Ok(want)) if f.processor.0 == want => {}
                    (Err(Error::Open { .. }), Err(_)) => {}
                    (r, _) => failed.push(format!("{}: {r:?}", f.path.display())),
                }
            },
        )?;
        check(
            failed.is_empty() && next == list.len(),
            format!("read_each (regular: {regular}): {failed:?}"),
        )?;
    }
    let opened = files
        .iter()
        .map(|p| Ok((std::fs::File::open(p)?, p.clone())))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut same = 0;
    reader.read_each(
        Source::files(opened),
        |_, _| Kept::default(),
        |f| {
            if f.result.is_ok() && std::fs::read(&f.path).ok() == Some(f.processor.0) {
                same += 1;
            }
        },
    )?;
    check(same == files.len(), "read_each of open files".to_string())?;

    // A cancel handle stops a read from another thread.
    let mut stoppable = Reader::new(ReadOptions::default());
    let cancel = Cancel::new()?;
    stoppable.set_cancel(cancel.clone());
    let big = files.last().expect("files");
    let mut seen = 0u64;
    let mut stop_early = from_fn(|c: &Chunk<'_>| {
        seen += c.len() as u64;
        if seen > 1 << 20 {
            cancel.cancel();
        }
        Ok(true)
    });
    match stoppable.read(big, &mut stop_early) {
        Err(Error::Interrupted { .. }) => {}
        other => return Err(format!("expected Interrupted, got {other:?}").into()),
    }

    // Many small ranges of one file, 64 reads in flight, in request order (close ones share a
    // read), then the same in completion order: every range's bytes, each with its offset.
    let ranged = Reader::new(ReadOptions::builder().chunk_size(4096).depth(64).build()?);
    let want = std::fs::read(big)?;
    let ranges: Vec<ByteRange> = (0..1000u64)
        .map(|i| ByteRange::new(i * 7919 % (want.len() as u64 + 4096), 1 + i % 5000))
        .collect();
    let mut got = Vec::new();
    ranged.read(
        Source::path(big).ranges(ranges.clone()),
        &mut from_fn(|c: &Chunk<'_>| {
            got.extend_from_slice(c);
            Ok(true)
        }),
    )?;
    let expected: Vec<u8> = ranges
        .iter()
        .flat_map(|r| {
            let end = (r.end() as usize).min(want.len());
            want[(r.offset as usize).min(end)..end].to_vec()
        })
        .collect();
    check(got == expected, "ranges: bytes differ".into())?;
    let mut wrong = 0;
    ranged.read(
        Source::path(big)
            .ranges(ranges)
            .range_options(RangeOptions::new().order(Order::Completion)),
        &mut from_fn(|c: &Chunk<'_>| {
            let at = c.offset() as usize;
            if want.get(at..at + c.len()) != Some(&c[..]) {
                wrong += 1;
            }
            Ok(true)
        }),
    )?;
    check(wrong == 0, "ranges in completion order".into())?;

    // Ranges of many files in one call, the reads of all of them in flight together: each file's
    // bytes go to its own processor; a missing file is its own error and the others go on.
    let mut inputs: Vec<(PathBuf, Vec<ByteRange>)> = files
        .iter()
        .map(|f| {
            (
                f.clone(),
                vec![ByteRange::new(0, 100), ByteRange::new(4000, 200)],
            )
        })
        .collect();
    inputs.insert(1, ("no-such-file".into(), vec![ByteRange::new(0, 1)]));
    let mut seen = 0;
    ranged.read_each(
        Source::inputs(
            inputs
                .iter()
                .map(|(path, ranges)| Input::path(path).ranges(ranges.as_slice())),
        ),
        |index, _| OfInput {
            index,
            kept: Kept::default(),
            wrong: 0,
        },
        |done| {
            seen += 1;
            let ok = match (&done.result, done.index) {
                (Err(Error::Open { .. }), 1) => true,
                (Ok(_), i) if i != 1 => {
                    let data = std::fs::read(&inputs[i].0).unwrap_or_default();
                    let want: Vec<u8> = inputs[i]
                        .1
                        .iter()
                        .flat_map(|r| {
                            let end = (r.end() as usize).min(data.len());
                            data[(r.offset as usize).min(end)..end].to_vec()
                        })
                        .collect();
                    done.processor.kept.0 == want && done.processor.wrong == 0
                }
                _ => false,
            };
            if !ok {
                eprintln!(
                    "ranges of many files: input {} wrong: {:?}",
                    done.index, done.result
                );
                std::process::exit(1);
            }
        },
    )?;
    check(
        seen == inputs.len(),
        "ranges of many files: results missing".into(),
    )?;

    // A one-chunk read runs on the calling thread: time it (reported, not asserted).
    let small = &files[3];
    let one = Reader::new(ReadOptions::default());
    let mut n = ByteCount::default();
    one.read(small, &mut n)?;
    let rounds = 2000;
    let start = Instant::now();
    for _ in 0..rounds {
        let mut n = ByteCount::default();
        one.read(small, &mut n)?;
    }
    let per = start.elapsed() / rounds;
    println!(
        "a 4 KiB file through Reader: {:.1} us per read (open, statx, read, close)",
        us(per)
    );
    println!("ok");
    Ok(())
}

/// A processor that keeps every byte.
#[derive(Default)]
struct Kept(Vec<u8>);

impl Processor for Kept {
    fn process(&mut self, c: &Chunk<'_>) -> std::io::Result<bool> {
        self.0.extend_from_slice(c);
        Ok(true)
    }
}

/// Keeps the bytes of one input of a many-files range read, and counts chunks marked with another
/// input (`Chunk::input`).
struct OfInput {
    index: usize,
    kept: Kept,
    wrong: usize,
}

impl Processor for OfInput {
    fn process(&mut self, c: &Chunk<'_>) -> std::io::Result<bool> {
        self.wrong += usize::from(c.input() != self.index);
        self.kept.process(c)
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn check(ok: bool, what: String) -> Result<(), Box<dyn std::error::Error>> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}
