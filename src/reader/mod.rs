//! [`Reader`]: opens a file, picks the way to read it, and runs it to the end.
//!
//! A `Reader` is made once from [`ReadOptions`] and reused for any number of files: its rings and
//! registered buffers are set up on first use and kept, so reading many small files does not pay for
//! ring setup and buffer registration each time.
//!
//! This file is the front door's core: the reader, what it keeps, and the choice, per file, of the
//! way to read it. `front.rs` has its verbs over a [`Source`](crate::Source); `lanes.rs` the
//! rings, buffers and threads it keeps for the engine's lanes; `many.rs` the choice for many whole
//! files (the engine's rings or pool, or one file after another); `ranges.rs` range reads;
//! `summary.rs` what a read reports; `tune.rs` the self-tuning profiles.

mod front;
mod lanes;
mod many;
mod ranges;
pub(crate) mod summary;
mod tune;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub use summary::{Engine, Notice, Route, Summary};

use crate::cancel::Cancel;
use crate::chunks::Chunks;
use crate::engine::many_drive::ManyKept;
use crate::engine::Job;
use crate::error::{Error, Result};
use crate::file::{inspect, on_fuse, open_read_cancellable, Inspected};
use crate::mapped::Mapping;
use crate::options::{Backend, ReadOptions};
use crate::processor::{Combine, Prepare};
use crate::ring::{explain_setup_error, usable_cpus, Ring};
use lanes::Kept;

/// Threads of `read_each`'s pool where io_uring is refused: as many files in flight as `xargs -P8`
/// has, so that cold metadata and data reads overlap on the device.
pub const POOL_THREADS: usize = 8;

/// Files [`Reader::read_each`] keeps in flight at most through io_uring (fewer where they must be
/// process descriptors and `ulimit -n` leaves less room).
pub const FILES_IN_FLIGHT: usize = 128;

/// One input of [`Reader::read_each`], finished; handed back in input order.
#[derive(Debug)]
pub struct Finished<P> {
    /// Its position among the inputs.
    pub index: usize,
    /// Its path, as given.
    pub path: PathBuf,
    /// What was read and how, or the error that stopped this input (the others go on).
    pub result: Result<Summary>,
    /// Its processor, after its last chunk (or its error).
    pub processor: P,
}

/// A regular file's size and the share of it in the page cache; `None` for anything else.
fn regular_residency(file: &File) -> Option<(u64, f64)> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let r = crate::residency::of_file(file).ok()?;
    Some((meta.len(), r.fraction()))
}

/// Reads files in order through io_uring (or the fallback), reusing its rings, buffers and threads.
///
/// A `Reader` is made once and reused: its rings and registered buffers are set up on first use
/// and kept, and so are the threads of lanes past the first (parked between files), so reading many
/// files pays for none of that again. A read that can only be one chunk (by its size or
/// `max_bytes`) runs on the calling thread alone.
///
/// A `Reader` reads one file at a time: it is `Sync`, but a second thread's read waits until the
/// first is done (the rings and buffers are the reader's). To read files concurrently, give each
/// thread its own `Reader` (each then has its own buffer budget).
///
/// The processor is `Send` because lanes on other threads take turns calling it; a trait object
/// works as `&mut (dyn Processor + Send)`.
///
/// ```
/// use ringread::{processor::{Algorithm, Checksum}, Processor, ReadOptions, Reader};
/// let reader = Reader::new(ReadOptions::default());
/// let mut sum = Checksum::new(Algorithm::Xxh3);
/// let summary = reader.read("Cargo.toml", &mut sum)?;
/// assert!(summary.bytes > 0);
/// println!("{}  Cargo.toml ({})", sum.hex(), summary.route);
/// // Any processor, chosen at run time:
/// let mut dynamic: Box<dyn Processor + Send> = Box::new(Checksum::new(Algorithm::Sha256));
/// reader.read("Cargo.toml", dynamic.as_mut())?;
/// # Ok::<(), ringread::Error>(())
/// ```
pub struct Reader {
    opts: ReadOptions,
    max_lanes: usize,
    kept: Mutex<Kept>,
    many: Mutex<Option<ManyKept>>,
    uring: OnceLock<std::result::Result<(), String>>,
    cancel: Option<Cancel>,
    /// When `bench` times each read of the lanes: the nanoseconds from each read's submission to
    /// its completion, every lane's (`None`: not timed).
    read_times: Option<Mutex<Vec<u64>>>,
    /// The reader cold files are handed to when self-tuning (`tune::Profile::Cold`), made on
    /// first use, with its own kept lanes and buffers.
    cold: OnceLock<Box<Reader>>,
    /// The reader range reads are handed to when self-tuning (`tune::for_ranges`): made for the
    /// chunk size the last call wanted, kept while calls want the same.
    ranged: Mutex<Option<std::sync::Arc<Reader>>>,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("opts", &self.opts)
            .field("max_lanes", &self.max_lanes)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader with these options. Nothing is set up until the first read.
    pub fn new(opts: ReadOptions) -> Reader {
        // One lane per CPU shares the copying out of the page cache. Under O_DIRECT the device copies
        // (DMA) and one lane is as fast, and keeps the processor on one CPU (sha256 of a 2 GiB file:
        // 1.17 s with one lane, 1.93 s with two; docs/BENCHMARKS.md). Under SQPOLL a kernel thread
        // already reads on another CPU (and each lane's ring would bring its own). The caller's
        // `threads` overrides all of this.
        let default_lanes = if opts.sqpoll || opts.direct {
            1
        } else {
            usable_cpus()
        };
        let max_lanes = opts.threads.unwrap_or(default_lanes).min(opts.depth).max(1);
        Reader {
            opts,
            max_lanes,
            kept: Mutex::new(Kept::default()),
            many: Mutex::new(None),
            uring: OnceLock::new(),
            cancel: None,
            read_times: None,
            cold: OnceLock::new(),
            ranged: Mutex::new(None),
        }
    }

    /// Times every read of the lanes from here on, from its submission to its completion (for
    /// `bench`'s latency figures; two clock reads a read).
    #[cfg(feature = "bench")]
    pub(crate) fn time_reads(&mut self) {
        self.read_times = Some(Mutex::new(Vec::new()));
    }

    /// The read times (nanoseconds) gathered since the last call.
    #[cfg(feature = "bench")]
    pub(crate) fn take_read_times(&self) -> Vec<u64> {
        self.read_times.as_ref().map_or_else(Vec::new, |m| {
            std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner()))
        })
    }

    /// A reader a tuning profile hands reads to: `chunk` and `depth` as the profile chose, never
    /// tuned again, the rest (uncached reads, registration, backend, limit, cancel handle) as this
    /// one's.
    fn profile_reader(&self, chunk: usize, depth: usize) -> Result<Reader> {
        let mut b = ReadOptions::builder()
            .chunk_size(chunk)
            .depth(depth)
            .dontcache(self.opts.dontcache)
            .register_buffers(self.opts.register_buffers)
            .backend(self.opts.backend)
            .fixed();
        if let Some(m) = self.opts.max_bytes {
            b = b.max_bytes(m);
        }
        let mut r = Reader::new(b.build()?);
        r.cancel = self.cancel.clone();
        Ok(r)
    }

    /// The reader for cold files: the cold profile's chunk size and depth, the rest as this one's.
    fn cold_reader(&self) -> &Reader {
        self.cold.get_or_init(|| {
            Box::new(
                self.profile_reader(tune::COLD_CHUNK, tune::COLD_DEPTH)
                    .expect("the cold profile's options are valid"),
            )
        })
    }

    /// The reader for range reads of these lengths when the options are the reader's to choose
    /// (`None`: they are the caller's): reads of the usual range's size, as many in flight as the
    /// default budget holds ([`tune::for_ranges`]).
    fn ranges_reader(&self, lens: impl Iterator<Item = u64>) -> Option<std::sync::Arc<Reader>> {
        if !self.opts.self_tuning {
            return None;
        }
        let (chunk, depth) = tune::for_ranges(lens);
        let mut kept = self.ranged.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = kept.as_ref().filter(|r| r.opts.chunk_size == chunk) {
            return Some(std::sync::Arc::clone(r));
        }
        let r = std::sync::Arc::new(self.profile_reader(chunk, depth).ok()?);
        *kept = Some(std::sync::Arc::clone(&r));
        Some(r)
    }

    /// Reads stop with [`Error::Interrupted`] once `cancel` is cancelled, from any thread or a
    /// signal handler: a lane asleep in `io_uring_enter` wakes, reads that may never complete (a
    /// silent pipe's) are cancelled, and every read in flight is reaped before the call returns.
    pub fn set_cancel(&mut self, cancel: Cancel) {
        // Rings watch one handle each: the new one is armed on fresh rings.
        self.kept
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .lanes
            .clear();
        *self.many.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        // The readers made for the cold profile and for range reads copied the old handle.
        self.cold = OnceLock::new();
        *self.ranged.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        self.cancel = Some(cancel);
    }

    /// The cancel handle given with [`Reader::set_cancel`].
    pub fn cancel_handle(&self) -> Option<&Cancel> {
        self.cancel.as_ref()
    }

    /// The options.
    pub fn options(&self) -> &ReadOptions {
        &self.opts
    }

    /// Whether io_uring can be used here; if not, the kernel's reason. Checked once.
    pub fn uring_status(&self) -> std::result::Result<(), &str> {
        self.uring
            .get_or_init(|| {
                Ring::new(4, false)
                    .map(drop)
                    .map_err(|e| explain_setup_error(&e))
            })
            .as_ref()
            .map(|_| ())
            .map_err(|s| s.as_str())
    }

    /// Reads the file at `path` with a processor in two halves: `prep` runs on the thread that read
    /// each chunk, as soon as it is read and in parallel with the others; `proc` then gets each chunk
    /// with what `prep` made of it, in file order. See [`Prepare`].
    pub(crate) fn read_path_split<Pr, C>(
        &self,
        path: impl AsRef<Path>,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        let path = path.as_ref();
        let file = open_read_cancellable(path, self.cancel.as_ref())?;
        self.read_opened(&file, path, Some(path), prep, proc)
    }

    /// [`Reader::read`] with a processor in two halves, as [`Reader::read_split`].
    pub(crate) fn read_file_split<Pr, C>(
        &self,
        file: &File,
        name: impl AsRef<Path>,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        self.read_opened(file, name.as_ref(), None, prep, proc)
    }

    /// Reads an open file (`path` when this reader opened it, `None` for the caller's: then left
    /// positioned after what was read) as its size and share in the page cache say: with the
    /// cold profile's reader (self-tuning), in place, or as the options say.
    fn read_opened<Pr, C>(
        &self,
        file: &File,
        name: &Path,
        path: Option<&Path>,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        // Per file, from its size and how much of it is cached: the cold profile (self-tuning), or
        // processing in place.
        let mut in_place = false;
        if self.opts.self_tuning || self.opts.in_place {
            if let Some((size, cached)) = regular_residency(file) {
                match tune::choose(size, cached, self.opts.self_tuning, self.opts.in_place) {
                    tune::Profile::Cold => {
                        let cold = self.cold_reader();
                        let mut summary = cold.read_opened(file, name, path, prep, proc)?;
                        summary.notices.push(Notice::Tuned {
                            chunk_size: cold.opts.chunk_size,
                            depth: cold.opts.depth,
                            reason: format!("{:.1}% of its {size} bytes cached", 100.0 * cached),
                        });
                        return Ok(summary);
                    }
                    tune::Profile::InPlace => in_place = true,
                    tune::Profile::AsGiven => {}
                }
            }
        }
        let inspected = self.inspect(file, name, path)?;
        self.read_inspected(inspected, name, path, in_place, prep, proc)
    }

    /// [`Reader::read_opened`] of a file looked at: the processor's `begin`, the file's chunks
    /// (from a mapping where `in_place` and it can be, as a stream where it is one, else with the
    /// lanes), its `finish`.
    fn read_inspected<Pr, C>(
        &self,
        mut inspected: Inspected,
        name: &Path,
        path: Option<&Path>,
        in_place: bool,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        let mut notices = std::mem::take(&mut inspected.notices);
        let src = self.file_job(&inspected, name);
        // What is not taken here (the O_DIRECT twin) stays open in `inspected` until the end.
        let Inspected {
            fd,
            positional,
            start,
            size_hint,
            drop_after,
            ..
        } = inspected;
        let engine = self.choose_engine(name, fd, positional, &mut notices)?;

        proc.begin().map_err(|source| Error::Process {
            path: name.to_path_buf(),
            offset: start,
            source,
        })?;
        let mapping = if in_place {
            map_in_place(&src, engine, size_hint, &mut notices)
        } else {
            None
        };
        let read = if let Some(map) = &mapping {
            // No buffers to fit in a cache: chunks as large as the tuner likes, unless given.
            let chunk = if self.opts.self_tuning {
                tune::IN_PLACE_CHUNK
            } else {
                self.opts.chunk_size
            };
            let rules = Chunks::new(start, chunk, self.opts.max_bytes, size_hint, true, None);
            self.read_in_place(&Job { rules, ..src }, map, chunk, prep, proc)
        } else if !positional && matches!(engine, Engine::Uring | Engine::Epoll) {
            self.read_stream(&src, engine, prep, proc, &mut notices)
        } else {
            self.read_lanes(&src, engine, prep, proc, &mut notices)
        };
        if drop_after {
            // Nothing was cached before: what is cached now, this read brought in.
            // SAFETY: advice on a descriptor the caller holds.
            unsafe { libc::posix_fadvise(fd, start as libc::off_t, 0, libc::POSIX_FADV_DONTNEED) };
        }
        let (bytes, read_path) = read?;
        if positional && path.is_none() {
            // SAFETY: lseek on a descriptor we hold.
            unsafe { libc::lseek(fd, (start + bytes) as libc::off_t, libc::SEEK_SET) };
        }
        proc.finish().map_err(|source| Error::Process {
            path: name.to_path_buf(),
            offset: start + bytes,
            source,
        })?;
        Ok(Summary {
            bytes,
            route: read_path,
            notices,
        })
    }

    /// A whole file looked at, as the engine reads it: its chunks from where reading starts, by
    /// the options (aligned for `O_DIRECT` where it has the twin).
    fn file_job<'a>(&self, ins: &Inspected, name: &'a Path) -> Job<'a> {
        Job {
            file: ins.member(name),
            plan: None,
            ordered: true,
            members: &[],
            rules: Chunks::new(
                ins.start,
                self.opts.chunk_size,
                self.opts.max_bytes,
                ins.size_hint,
                ins.positional,
                ins.direct.as_ref().map(|(_, a)| *a),
            ),
        }
    }

    /// [`inspect`]s `file` for this reader's options (`direct`, `dontcache`, the chunk size).
    fn inspect(&self, file: &File, name: &Path, path: Option<&Path>) -> Result<Inspected> {
        inspect(
            file,
            name,
            path,
            self.opts.direct,
            self.opts.dontcache,
            self.opts.chunk_size,
        )
    }

    /// Which engine reads `fd` under the options' backend: io_uring, or where it is refused (and the
    /// backend is `auto`) `pread(2)`; FUSE files synchronously. Says why in `notices`.
    fn choose_engine(
        &self,
        name: &Path,
        fd: std::os::fd::RawFd,
        positional: bool,
        notices: &mut Vec<Notice>,
    ) -> Result<Engine> {
        Ok(match self.opts.backend {
            Backend::Epoll if positional => {
                return Err(Error::InvalidOptions(format!(
                    "{}: epoll cannot wait on a regular file or block device (it is always \
                     ready); read it with --backend auto, uring, sync or pread",
                    name.display()
                )))
            }
            Backend::Epoll => Engine::Epoll,
            Backend::Sync => Engine::Sync,
            Backend::Pread => Engine::Pread,
            Backend::Uring => {
                if let Err(reason) = self.uring_status() {
                    return Err(Error::UringUnavailable {
                        reason: reason.to_string(),
                    });
                }
                if on_fuse(fd) {
                    notices.push(Notice::Fuse { forced: true });
                }
                Engine::Uring
            }
            Backend::Auto => match self.uring_status() {
                Ok(()) if on_fuse(fd) => {
                    notices.push(Notice::Fuse { forced: false });
                    Engine::Sync
                }
                Ok(()) => Engine::Uring,
                Err(reason) => {
                    notices.push(Notice::UringUnavailable {
                        reason: reason.to_string(),
                    });
                    Engine::Pread
                }
            },
        })
    }

    /// A stream (pipe, terminal, socket) through io_uring (one armed multishot `READ`/`RECV`, buffers
    /// from a provided buffer ring of up to `depth` buffers) or epoll: see [`crate::net`].
    #[cfg(feature = "net")]
    fn read_stream<Pr, C>(
        &self,
        src: &Job<'_>,
        engine: Engine,
        prep: &Pr,
        proc: &mut C,
        notices: &mut Vec<Notice>,
    ) -> Result<(u64, Route)>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        use crate::net::{StreamMethod, StreamOptions};
        let method = match (engine, self.opts.backend) {
            (Engine::Epoll, _) => StreamMethod::Epoll,
            (_, Backend::Uring) => StreamMethod::UringMultishot,
            _ => StreamMethod::Auto,
        };
        // The pool is a power of two of at most `depth` buffers.
        let buffers = 1usize << (usize::BITS - 1 - self.opts.depth.max(1).leading_zeros());
        let opts = StreamOptions::new(method)
            .chunk_size(self.opts.chunk_size)
            .buffers(buffers)
            .max_bytes(self.opts.max_bytes)
            .cancel(self.cancel.clone());
        let mut fell_back = None;
        let (bytes, used) = crate::net::read_stream_split(
            src.file.fd,
            src.file.path,
            &opts,
            prep,
            proc,
            &mut fell_back,
        )?;
        if let Some(reason) = fell_back {
            notices.push(Notice::StreamUringUnavailable { reason });
        }
        let (engine, buffers) = match used {
            StreamMethod::Epoll => (Engine::Epoll, 1),
            StreamMethod::Sync => (Engine::Sync, 1),
            _ => (Engine::Uring, buffers),
        };
        if engine == Engine::Uring && self.opts.register_buffers {
            notices.push(Notice::RegisteredFewer {
                registered: 0,
                wanted: buffers,
                reason: "a stream is read into a provided buffer ring, where the kernel picks the \
                         buffer as data arrives; READ_FIXED cannot be used with it"
                    .into(),
            });
        }
        let path = Route {
            engine,
            threads: 1,
            buffers,
            registered: 0,
            chunk_size: self.opts.chunk_size,
            direct: false,
            uncached: false,
            sqpoll: false,
            positional: false,
        };
        Ok((bytes, path))
    }

    /// Without the `net` feature a stream is read by one lane, one read at a time (epoll needs it).
    #[cfg(not(feature = "net"))]
    fn read_stream<Pr, C>(
        &self,
        src: &Job<'_>,
        engine: Engine,
        prep: &Pr,
        proc: &mut C,
        notices: &mut Vec<Notice>,
    ) -> Result<(u64, Route)>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        if engine == Engine::Epoll {
            return Err(Error::InvalidOptions(
                "reading with epoll needs ringread's `net` feature".into(),
            ));
        }
        self.read_lanes(src, engine, prep, proc, notices)
    }
}

/// The mapping a file is processed in place from, where it can be: a positional file read
/// buffered from the page cache (no `O_DIRECT`, no uncached reads), by the lanes (io_uring or
/// `pread(2)`); where mapping it fails, why in `notices`.
fn map_in_place(
    src: &Job<'_>,
    engine: Engine,
    size_hint: u64,
    notices: &mut Vec<Notice>,
) -> Option<Mapping> {
    if !(src.rules.positional()
        && src.file.direct_fd.is_none()
        && !src.file.drop_behind
        && src.file.rw_flags == 0
        && matches!(engine, Engine::Uring | Engine::Pread))
    {
        return None;
    }
    match usize::try_from(size_hint)
        .map_err(io::Error::other)
        .and_then(|len| Mapping::new(src.file.fd, len))
    {
        Ok(m) => Some(m),
        Err(e) => {
            notices.push(Notice::InPlaceUnavailable {
                reason: e.to_string(),
            });
            None
        }
    }
}
