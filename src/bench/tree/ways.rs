//! The ways `bench --tree` compares, each reading every file of the tree into a fresh processor
//! of the same kind and handing back each file's result by its place in the walk: ringread's
//! many-files engine ([`Many`]), ringread one file at a time ([`OneByOne`]), and a pool of threads
//! doing `std::fs::read` ([`Threads`]); the tokio ways are in `tokio.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::bench::ways::open_error;
use crate::bench::ProcessorKind;
use crate::error::{Error, Result};
use crate::processor::{Algorithm, ByteCount, Checksum, LineCount, Processor};
use crate::{Cancel, Chunk, ReadOptions, Reader};

/// One way of reading a whole tree.
pub(crate) trait TreeWay {
    /// Reads every file of `paths` into its own processor of `kind`, and puts file `i`'s result
    /// ([`Digester::digest`]) in `out[i]`; returns the bytes read. (The list is shared, so that
    /// `'static` tasks can hold it without copying it.)
    fn run(
        &mut self,
        paths: &Arc<[PathBuf]>,
        kind: ProcessorKind,
        out: &mut [String],
    ) -> Result<u64>;
}

/// The bench's processor of a file, and its result as text: the hex digest of a hash, the byte
/// count of `null`, `lines bytes` of `count`.
#[derive(Debug)]
pub(crate) enum Digester {
    /// `null`.
    Bytes(ByteCount),
    /// `count`.
    Lines(LineCount),
    /// A hash.
    Sum(Checksum),
}

impl Digester {
    pub(crate) fn new(kind: ProcessorKind) -> Digester {
        match kind {
            ProcessorKind::Null => Digester::Bytes(ByteCount::default()),
            ProcessorKind::Count => Digester::Lines(LineCount::default()),
            ProcessorKind::Xxh3 => Digester::Sum(Checksum::new(Algorithm::Xxh3)),
            ProcessorKind::Crc32c => Digester::Sum(Checksum::new(Algorithm::Crc32c)),
            ProcessorKind::Sha256 => Digester::Sum(Checksum::new(Algorithm::Sha256)),
            ProcessorKind::Blake3 => Digester::Sum(Checksum::new(Algorithm::Blake3)),
        }
    }

    /// The result, as the report's checksum takes it.
    pub(crate) fn digest(&self) -> String {
        match self {
            Digester::Bytes(b) => b.bytes.to_string(),
            Digester::Lines(l) => format!("{} {}", l.lines, l.bytes),
            Digester::Sum(s) => s.hex(),
        }
    }

    fn inner(&mut self) -> &mut dyn Processor {
        match self {
            Digester::Bytes(p) => p,
            Digester::Lines(p) => p,
            Digester::Sum(p) => p,
        }
    }

    /// Feeds a whole file read in one piece (the ways that read with `std::fs::read` or alike):
    /// `begin`, the bytes as one chunk (none for an empty file, as the reader does), `finish`.
    pub(crate) fn whole(&mut self, path: &Path, data: &[u8]) -> Result<()> {
        let fail = |offset| {
            let path = path.to_path_buf();
            move |source| Error::Process {
                path,
                offset,
                source,
            }
        };
        self.begin().map_err(fail(0))?;
        if !data.is_empty() {
            self.process(&Chunk::new(0, data)).map_err(fail(0))?;
        }
        self.finish().map_err(fail(data.len() as u64))
    }
}

impl Processor for Digester {
    fn begin(&mut self) -> std::io::Result<()> {
        self.inner().begin()
    }
    fn process(&mut self, chunk: &Chunk<'_>) -> std::io::Result<bool> {
        self.inner().process(chunk)
    }
    fn finish(&mut self) -> std::io::Result<()> {
        self.inner().finish()
    }
}

/// `Error::Interrupted` for `path` once `cancel` is cancelled.
pub(crate) fn check_cancel(cancel: Option<&Cancel>, path: &Path) -> Result<()> {
    match cancel {
        Some(c) if c.is_cancelled() => Err(Error::Interrupted {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

fn reader(opts: &ReadOptions, cancel: Option<&Cancel>) -> Reader {
    let mut r = Reader::new(opts.clone());
    if let Some(c) = cancel {
        r.set_cancel(c.clone());
    }
    r
}

/// ringread's many-files engine: one [`Reader::read_each`] call over the whole list (files in
/// flight through io_uring, results in input order), each path given as the walk found it, a
/// regular file ([`crate::Input::regular`]). The reader is kept across runs.
#[derive(Debug)]
pub(crate) struct Many {
    reader: Reader,
}

impl Many {
    pub(crate) fn new(opts: &ReadOptions, cancel: Option<&Cancel>) -> Many {
        Many {
            reader: reader(opts, cancel),
        }
    }
}

impl TreeWay for Many {
    fn run(
        &mut self,
        paths: &Arc<[PathBuf]>,
        kind: ProcessorKind,
        out: &mut [String],
    ) -> Result<u64> {
        let mut bytes = 0;
        let mut failed = None;
        self.reader.read_each(
            // The list is the walk's regular files (their entry types said so).
            crate::Source::inputs(paths.iter().map(crate::Input::regular)),
            |_, _| Digester::new(kind),
            |f| match f.result {
                Ok(s) => {
                    bytes += s.bytes;
                    out[f.index] = f.processor.digest();
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            },
        )?;
        match failed {
            Some(e) => Err(e),
            None => Ok(bytes),
        }
    }
}

/// ringread one file at a time, as before `read_many`: [`Reader::read`] per file, one reader
/// kept across files and runs.
#[derive(Debug)]
pub(crate) struct OneByOne {
    reader: Reader,
}

impl OneByOne {
    pub(crate) fn new(opts: &ReadOptions, cancel: Option<&Cancel>) -> OneByOne {
        OneByOne {
            reader: reader(opts, cancel),
        }
    }
}

impl TreeWay for OneByOne {
    fn run(
        &mut self,
        paths: &Arc<[PathBuf]>,
        kind: ProcessorKind,
        out: &mut [String],
    ) -> Result<u64> {
        let mut bytes = 0;
        for (p, slot) in paths.iter().zip(out.iter_mut()) {
            let mut d = Digester::new(kind);
            bytes += self.reader.read(p, &mut d)?.bytes;
            *slot = d.digest();
        }
        Ok(bytes)
    }
}

/// What `find | xargs -P8` does with threads in place of processes: `threads` threads, started for
/// each run, each taking the next file of the list, reading it whole with `std::fs::read` and
/// feeding it to the processor.
#[derive(Debug)]
pub(crate) struct Threads {
    pub(crate) threads: usize,
    pub(crate) cancel: Option<Cancel>,
}

impl TreeWay for Threads {
    fn run(
        &mut self,
        paths: &Arc<[PathBuf]>,
        kind: ProcessorKind,
        out: &mut [String],
    ) -> Result<u64> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let work = || -> Result<Vec<(usize, u64, String)>> {
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else { break };
                let done = check_cancel(self.cancel.as_ref(), path).and_then(|()| {
                    let data = std::fs::read(path).map_err(open_error(path))?;
                    let mut d = Digester::new(kind);
                    d.whole(path, &data)?;
                    Ok((i, data.len() as u64, d.digest()))
                });
                match done {
                    Ok(r) => mine.push(r),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok(mine)
        };
        let results: Vec<Result<Vec<(usize, u64, String)>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.threads.max(1)).map(|_| s.spawn(work)).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut bytes = 0;
        for r in results {
            for (i, n, digest) in r? {
                bytes += n;
                out[i] = digest;
            }
        }
        Ok(bytes)
    }
}
