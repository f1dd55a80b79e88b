//! [`Reader`]: opens a file, picks the way to read it, and runs it to the end.
//!
//! A `Reader` is made once from [`ReadOptions`] and reused for any number of files: its rings and
//! registered buffers are set up on first use and kept, so reading many small files does not pay for
//! ring setup and buffer registration each time.

mod front;
mod ranges;
pub(crate) mod summary;
mod tune;

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub use summary::{Engine, Notice, Route, Summary};

use crate::buf::Arena;
use crate::cancel::Cancel;
use crate::chunks::Chunks;
use crate::engine::lanes::{run_lane, run_lanes, FileOutcome, LaneSpec, Run};
use crate::engine::many::{self, Feed, Input, Next, Outcome, Settings, DESCRIPTOR_WAIT_MS};
use crate::engine::workers::Workers;
use crate::engine::{in_place, Job, Member, PreadQueue};
use crate::error::{Error, Result};
use crate::file::{inspect, on_fuse, open_read, open_read_cancellable, register_reason, Inspected};
use crate::mapped::Mapping;
use crate::options::{Backend, ReadOptions, ALIGN};
use crate::processor::{Combine, Prepare};
use crate::residency::dontcache_supported;
use crate::ring::{explain_setup_error, usable_cpus, Queue, Ring};

/// A lane's kept resources: its ring (none on the `pread(2)` and synchronous paths) and its
/// buffers. The ring is declared first so that it is dropped (and its registration released) before
/// the buffers are freed.
struct LaneRes {
    ring: Option<Ring>,
    arena: Arena,
    registered: usize,
    notice: Option<Notice>,
}

/// The ring and slot buffers of [`Reader::read_each`], kept between calls.
struct ManyRes {
    ring: Ring,
    arena: Arena,
    registered: usize,
    /// The ring has a registered file table with an entry per slot.
    fixed_files: bool,
}

/// What `read_many` keeps: a ring and slots per thread (or, without io_uring, a buffer per thread
/// of the pool), and the threads.
struct ManyKept {
    threads: usize,
    rings: Vec<ManyRes>,
    pool: Vec<Arena>,
    workers: Workers,
}

/// Threads of `read_many`'s pool where io_uring is refused: as many files in flight as `xargs -P8`
/// has, so that cold metadata and data reads overlap on the device.
pub const POOL_THREADS: usize = 8;

/// Range plans at least this long read on `pread(2)` lanes get a descriptor of their own for each
/// lane past the first (an `open` each: worth it over thousands of reads only).
const OWN_FD_EXTENTS: usize = 4096;

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

/// What a reader keeps between files: its lanes' rings and buffers, and the threads lanes `1..n`
/// run on.
#[derive(Default)]
struct Kept {
    lanes: Vec<Option<LaneRes>>,
    workers: Workers,
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
/// let summary = reader.read_path("Cargo.toml", &mut sum)?;
/// assert!(summary.bytes > 0);
/// println!("{}  Cargo.toml ({})", sum.hex(), summary.route);
/// // Any processor, chosen at run time:
/// let mut dynamic: Box<dyn Processor + Send> = Box::new(Checksum::new(Algorithm::Sha256));
/// reader.read_path("Cargo.toml", dynamic.as_mut())?;
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

    /// `read_many` of paths or open files, taking at most `ahead` inputs from the caller's
    /// iterator before their results are handed back.
    fn many_inputs<M, Pr, C, D>(
        &self,
        inputs: &mut dyn Iterator<Item = Input>,
        ahead: usize,
        mut make: M,
        mut done: D,
    ) -> Result<()>
    where
        M: FnMut(usize, &Path) -> (Pr, C),
        Pr: Prepare + Send,
        C: Combine<Pr::Part> + Send,
        D: FnMut(Finished<C>),
    {
        let uring = matches!(self.opts.backend, Backend::Auto | Backend::Uring)
            && !self.opts.direct
            && self.uring_status().is_ok();
        // Without io_uring, a pool of threads opens and reads (`pread(2)`), many files at once.
        let pool = !self.opts.direct
            && (self.opts.backend == Backend::Pread || self.opts.backend == Backend::Auto);
        if !uring && !pool {
            return self.many_one_by_one(inputs, &mut make, &mut done);
        }
        let mut guard = self.many.lock().unwrap_or_else(|e| e.into_inner());
        // One ring per thread, each with its share of the files in flight.
        let threads = if uring { self.max_lanes } else { POOL_THREADS };
        let width = (FILES_IN_FLIGHT.min(ahead) / threads).max(1);
        // Files opened as process descriptors (where the ring has no file table, or for files on
        // anonymous devices) are fewer where `ulimit -n` leaves less room.
        let fd_limit = (descriptor_room() / threads).max(1);
        let slot_len = self.many_slot(width * threads);
        let pool_slot = self.many_slot(POOL_THREADS);
        let kept = match &mut *guard {
            // A pool kept because rings could not be set up (no descriptor left, say) is kept
            // only until they can: each call where io_uring is there tries them again.
            Some(k) if k.threads == threads && (!uring || !k.rings.is_empty()) => k,
            slot => {
                let rings: Option<Vec<ManyRes>> = if uring {
                    (0..threads)
                        .map(|_| self.many_res(width, slot_len))
                        .collect()
                } else {
                    None
                };
                if rings.is_none() && self.opts.backend == Backend::Uring {
                    // io_uring asked for outright, but no ring for many files (no path operations
                    // on it, or none could be set up): one file at a time, each through io_uring.
                    return self.many_one_by_one(inputs, &mut make, &mut done);
                }
                let (rings, pool) = match rings {
                    Some(rings) => (rings, Vec::new()),
                    // No ring, or one without path operations (Linux before 5.6).
                    None => (
                        Vec::new(),
                        (0..POOL_THREADS)
                            .map(|_| Arena::new(1, pool_slot))
                            .collect::<Result<Vec<_>>>()?,
                    ),
                };
                slot.insert(ManyKept {
                    threads,
                    rings,
                    pool,
                    workers: Workers::default(),
                })
            }
        };
        let on_ring = !kept.rings.is_empty();
        let route = Route {
            engine: if on_ring {
                Engine::Uring
            } else {
                Engine::Pread
            },
            threads: 1,
            buffers: 1,
            registered: 0,
            chunk_size: if on_ring { slot_len } else { pool_slot },
            direct: false,
            // Files whose file system refuses RWF_DONTCACHE are deferred to the lanes' path,
            // which says how it reads them instead.
            uncached: self.opts.dontcache,
            sqpoll: false,
            positional: true,
        };
        let notices = match self.uring_status() {
            Err(reason) if !on_ring && self.opts.backend == Backend::Auto => {
                vec![Notice::UringUnavailable {
                    reason: reason.to_string(),
                }]
            }
            _ => Vec::new(),
        };
        let registered = usize::from(kept.rings.iter().all(|r| r.registered > 0));
        // Hands an input's outcome to the caller; a deferred one is read here, with the lanes.
        let mut release = |index: usize, path: PathBuf, outcome: Outcome<Pr, C>| {
            let (result, processor) = match outcome {
                Outcome::Read(result, c) => {
                    let result = result.map(|bytes| Summary {
                        bytes,
                        route: Route {
                            registered,
                            ..route.clone()
                        },
                        notices: notices.clone(),
                    });
                    (result, c)
                }
                Outcome::Deferred(None, pr, mut c) => (self.read_path_split(&path, &pr, &mut c), c),
                Outcome::Deferred(Some(file), pr, mut c) => {
                    (self.read_file_split(&file, &path, &pr, &mut c), c)
                }
            };
            if let Err(Error::Interrupted { path }) = result {
                return Err(Error::Interrupted { path });
            }
            done(Finished {
                index,
                path,
                result,
                processor,
            });
            Ok(())
        };
        let settings = |res: &ManyRes| Settings {
            chunk: slot_len,
            width,
            window: (4 * width).min(ahead),
            large: 16 * self.opts.chunk_size as u64,
            max_bytes: self.opts.max_bytes,
            registered: res.registered,
            fixed_files: res.fixed_files,
            fd_limit,
            cancel: self.cancel.as_ref(),
            read_elsewhere: on_fuse,
            dontcache: self.opts.dontcache,
        };
        let r = if !on_ring {
            let ManyKept { pool, workers, .. } = kept;
            let pool_settings = Settings {
                chunk: pool_slot,
                width: 1,
                window: 4,
                large: 16 * self.opts.chunk_size as u64,
                max_bytes: self.opts.max_bytes,
                registered: 0,
                fixed_files: false,
                fd_limit: 1, // the pool opens by itself, one file per thread
                cancel: self.cancel.as_ref(),
                read_elsewhere: on_fuse,
                dontcache: self.opts.dontcache,
            };
            let pool_settings = &pool_settings;
            let runs = pool
                .iter_mut()
                .map(|arena| {
                    let run: ManyRun<'_, Pr, C> = Box::new(move |feed, release| {
                        many_on_thread(arena, pool_settings, feed, release)
                    });
                    run
                })
                .collect();
            let feed = Feeding {
                queue: 2,
                ahead,
                inputs,
            };
            many_parallel(workers, runs, feed, &mut make, &mut release)
        } else if threads == 1 {
            let res = &mut kept.rings[0];
            let mut feed = ListFeed {
                paths: inputs,
                make: &mut make,
                next: 0,
            };
            let s = settings(res);
            many::run(&mut res.ring, &res.arena, &s, &mut feed, &mut release)
        } else {
            let ManyKept { rings, workers, .. } = kept;
            let runs = rings
                .iter_mut()
                .map(|res| {
                    let s = settings(res);
                    let run: ManyRun<'_, Pr, C> = Box::new(move |feed, release| {
                        many::run(&mut res.ring, &res.arena, &s, feed, release)
                    });
                    run
                })
                .collect();
            let feed = Feeding {
                queue: 4 * width,
                ahead,
                inputs,
            };
            many_parallel(workers, runs, feed, &mut make, &mut release)
        };
        if let Err(Error::Ring { .. }) = r {
            // A ring failed: it may still own the slots' buffers. Never free them.
            if let Some(k) = guard.take() {
                std::mem::forget(k);
            }
        }
        r
    }

    /// `read_many` one file after another, each as [`Reader::read_split`] reads it.
    fn many_one_by_one<M, Pr, C, D>(
        &self,
        inputs: &mut dyn Iterator<Item = Input>,
        make: &mut M,
        done: &mut D,
    ) -> Result<()>
    where
        M: FnMut(usize, &Path) -> (Pr, C),
        Pr: Prepare,
        C: Combine<Pr::Part> + Send,
        D: FnMut(Finished<C>),
    {
        for (index, input) in inputs.enumerate() {
            if let Some(c) = &self.cancel {
                if c.is_cancelled() {
                    return Err(Error::Interrupted {
                        path: input.into_name(),
                    });
                }
            }
            let (pr, mut c) = make(index, input.name());
            let (result, path) = match input {
                Input::Path(path) => (self.read_path_split(&path, &pr, &mut c), path),
                Input::Open(file, path) => (self.read_file_split(&file, &path, &pr, &mut c), path),
            };
            if let Err(Error::Interrupted { .. }) = result {
                return result.map(drop);
            }
            done(Finished {
                index,
                path,
                result,
                processor: c,
            });
        }
        Ok(())
    }

    /// The size of each file's buffer in `read_many`: the reader's buffer budget
    /// (`depth * chunk_size`) shared by the `files` in flight, at least a page, never more than a
    /// chunk.
    fn many_slot(&self, files: usize) -> usize {
        let share = self.opts.budget() / files.max(1) / ALIGN * ALIGN;
        share.max(ALIGN).min(self.opts.chunk_size)
    }

    /// The ring and slots of `read_many`, or `None` where the kernel lacks path operations on the
    /// ring (then files are read one after another).
    fn many_res(&self, width: usize, slot: usize) -> Option<ManyRes> {
        // Up to three operations per file at once (an open and two linked reads), and a poll.
        let ring = Ring::new(3 * width + 2, false).ok()?;
        if !ring.has_path_ops() {
            return None;
        }
        let arena = Arena::new(width, slot).ok()?;
        let mut ring = ring;
        ring.widen_workers(width as u32);
        let registered = if self.opts.register_buffers {
            ring.register(&arena, width).0
        } else {
            0
        };
        let fixed_files = ring.register_fixed_files(width as u32);
        Some(ManyRes {
            ring,
            arena,
            registered,
            fixed_files,
        })
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
        let member = inspected.member(name);
        let Inspected {
            fd,
            positional,
            start,
            size_hint,
            direct,
            mut notices,
            drop_after,
            ..
        } = inspected;
        let src = Job {
            file: member,
            plan: None,
            ordered: true,
            members: &[],
            rules: Chunks::new(
                start,
                self.opts.chunk_size,
                self.opts.max_bytes,
                size_hint,
                positional,
                direct.as_ref().map(|(_, a)| *a),
            ),
        };

        let engine = self.choose_engine(name, fd, positional, &mut notices)?;

        proc.begin().map_err(|source| Error::Process {
            path: name.to_path_buf(),
            offset: start,
            source,
        })?;
        // In place: a file read buffered from the page cache, by the lanes.
        let mapping = if in_place
            && positional
            && src.file.direct_fd.is_none()
            && !src.file.drop_behind
            && src.file.rw_flags == 0
            && matches!(engine, Engine::Uring | Engine::Pread)
        {
            match usize::try_from(size_hint)
                .map_err(io::Error::other)
                .and_then(|len| Mapping::new(fd, len))
            {
                Ok(m) => Some(m),
                Err(e) => {
                    notices.push(Notice::InPlaceUnavailable {
                        reason: e.to_string(),
                    });
                    None
                }
            }
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

    /// Processes a cached file in place: the lanes of [`in_place`] over its mapping, on the
    /// reader's kept threads.
    fn read_in_place<Pr, C>(
        &self,
        src: &Job<'_>,
        map: &Mapping,
        chunk_size: usize,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<(u64, Route)>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        let lanes = self.lanes_for(src);
        let run = Run::new(*src, lanes, prep, proc).with_cancel(self.cancel.as_ref());
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let next = std::sync::atomic::AtomicU64::new(0);
        let others = (1..lanes)
            .map(|_| {
                let (run, next) = (&run, &next);
                move || {
                    in_place::run_lane(run, next, map);
                    true
                }
            })
            .collect();
        kept.workers.scope(
            others,
            || {
                in_place::run_lane(&run, &next, map);
                true
            },
            |source| {
                run.abort(Error::Ring {
                    path: src.file.path.to_path_buf(),
                    op: "thread spawn",
                    source,
                })
            },
        );
        drop(kept);
        let bytes = run.finish()?;
        Ok((
            bytes,
            Route {
                engine: Engine::InPlace,
                threads: lanes,
                buffers: 0,
                registered: 0,
                chunk_size,
                direct: false,
                uncached: false,
                sqpoll: false,
                positional: true,
            },
        ))
    }

    /// How many lanes read `src`: one per usable CPU (see `new`), but one for a stream and no more
    /// than the file can have chunks (by its size and the limit).
    fn lanes_for(&self, src: &Job<'_>) -> usize {
        // Range plans in request order too: their lanes take turns a block of pieces at a time
        // (`Run::with_block`), so a second lane pays off at any length.
        let pieces = src.expected_pieces();
        self.max_lanes
            .min(pieces.min(usize::MAX as u64) as usize)
            .max(1)
    }

    /// The buffers lane `t` owns when the depth is split over `share` lanes: evenly, the first
    /// lanes taking the remainder.
    fn lane_depth(&self, t: usize, share: usize) -> usize {
        let (d, n) = (self.opts.depth, share.max(1));
        (d / n + usize::from(t < d % n)).max(1)
    }

    /// Makes sure lane `t` has its buffers for the depth split over `share` lanes (made again,
    /// larger, if it has fewer), and its ring if `with_ring`; returns what it has.
    fn lane<'k>(
        &self,
        kept: &'k mut [Option<LaneRes>],
        t: usize,
        share: usize,
        with_ring: bool,
    ) -> Result<&'k mut LaneRes> {
        let depth = self.lane_depth(t, share);
        if kept[t].as_ref().is_some_and(|r| r.arena.slots() < depth) {
            // Nothing is in flight between reads: its ring and buffers can go.
            kept[t] = None;
        }
        let res = match &mut kept[t] {
            Some(r) => r,
            empty => empty.insert(LaneRes {
                ring: None,
                arena: Arena::new(depth, self.opts.chunk_size)?,
                registered: 0,
                notice: None,
            }),
        };
        if with_ring && res.ring.is_none() {
            let mut ring =
                Ring::new(depth, self.opts.sqpoll).map_err(|e| Error::UringUnavailable {
                    reason: explain_setup_error(&e),
                })?;
            if self.opts.register_buffers {
                let (n, err) = ring.register(&res.arena, depth);
                res.registered = n;
                res.notice = err.filter(|_| n < depth).map(|e| Notice::RegisteredFewer {
                    registered: n,
                    wanted: depth,
                    reason: register_reason(&e),
                });
            }
            res.ring = Some(ring);
        }
        Ok(res)
    }

    /// Reads a source with the engine's lanes: io_uring rings ([`Engine::Uring`]), `pread(2)` in
    /// their place ([`Engine::Pread`], where the kernel refuses io_uring), or one lane of depth one on
    /// the calling thread ([`Engine::Sync`]). Rings, buffers and threads are the reader's, kept.
    fn read_lanes<Pr, C>(
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
        let (bytes, route, _) = self.read_lanes_files(src, engine, prep, proc, notices)?;
        Ok((bytes, route))
    }

    /// [`Reader::read_lanes`], with how each file of a range plan over several files went
    /// ([`Job::members`]).
    fn read_lanes_files<Pr, C>(
        &self,
        src: &Job<'_>,
        engine: Engine,
        prep: &Pr,
        proc: &mut C,
        notices: &mut Vec<Notice>,
    ) -> Result<(u64, Route, Vec<FileOutcome>)>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        let (engine, lanes) = match engine {
            Engine::Uring => (Engine::Uring, self.lanes_for(src)),
            Engine::Pread => (Engine::Pread, self.lanes_for(src)),
            _ => (Engine::Sync, 1),
        };
        let (mut engine, mut with_ring) = (engine, engine == Engine::Uring);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let Kept {
            lanes: pool,
            workers,
        } = &mut *kept;
        if pool.len() < self.max_lanes {
            pool.resize_with(self.max_lanes, || None);
        }
        // A range plan's lanes share the whole depth (fewer lanes than CPUs read long plans in
        // request order); a file's lanes each keep their share of it.
        let share = if src.plan.is_some() {
            lanes
        } else {
            self.max_lanes
        };
        for t in 0..lanes {
            match self.lane(pool, t, share, with_ring) {
                Ok(_) => {}
                // A lane's ring could not be set up although io_uring is there (no descriptor or
                // memory left for it, say): under `auto`, the lanes read with pread(2) instead, as
                // where io_uring is refused, and say why.
                Err(Error::UringUnavailable { reason })
                    if with_ring && self.opts.backend == Backend::Auto =>
                {
                    notices.push(Notice::UringUnavailable { reason });
                    (engine, with_ring) = (Engine::Pread, false);
                    for t in 0..lanes {
                        self.lane(pool, t, share, false)?;
                    }
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let depths: Vec<usize> = (0..lanes)
            .map(|t| match engine {
                Engine::Sync => 1,
                _ if !src.rules.positional() => 1,
                _ => self.lane_depth(t, share),
            })
            .collect();
        let mut preads: Vec<PreadQueue> = (0..lanes).map(|_| PreadQueue::default()).collect();
        let mut specs = Vec::with_capacity(lanes);
        let mut registered = 0;
        for ((res, pread), &depth) in pool.iter_mut().flatten().zip(&mut preads).zip(&depths) {
            let q: &mut (dyn Queue + Send) = match &mut res.ring {
                Some(ring) if with_ring => {
                    if let Some(n) = &res.notice {
                        if !notices.contains(n) {
                            notices.push(n.clone());
                        }
                    }
                    registered += res.registered.min(depth);
                    ring
                }
                _ => pread,
            };
            specs.push(LaneSpec {
                q,
                arena: &mut res.arena,
                depth,
                registered: if with_ring { res.registered } else { 0 },
            });
        }
        let read_path = Route {
            engine,
            threads: lanes,
            buffers: depths.iter().sum(),
            registered,
            chunk_size: self.opts.chunk_size,
            direct: src.file.direct_fd.is_some(),
            uncached: src.file.rw_flags != 0,
            sqpoll: with_ring && self.opts.sqpoll,
            positional: src.rules.positional(),
        };
        // pread(2) lanes over one file's long range plan: lanes past the first read through an
        // open file of their own. A process with more than one thread takes a reference on the
        // file at every read (`fdget`), and two CPUs taking it on one file pass its cache line
        // back and forth at every read; opened again, each lane has its own.
        let own: Vec<File> = if engine == Engine::Pread
            && lanes > 1
            && src.members.is_empty()
            && src.plan.is_some_and(|p| p.extents.len() >= OWN_FD_EXTENTS)
        {
            (1..lanes)
                .filter_map(|_| File::open(format!("/proc/self/fd/{}", src.file.fd)).ok())
                .collect()
        } else {
            Vec::new()
        };
        let lane_fds: Vec<Option<std::os::fd::RawFd>> = std::iter::once(None)
            .chain(own.iter().map(|f| Some(f.as_raw_fd())))
            .collect();
        // Pieces of a range plan handed over in the order asked are small: the lanes take turns
        // every quarter of a lane's depth, not at every piece (a turn passed at every 4 KiB read
        // woke the other lane up to 100,000 times for 100,000 ranges: 0.08x of a `pread` loop).
        // A lane waiting for its turn has the three blocks after it in flight. Measured in
        // docs/BENCHMARKS.md ("Request order"): a quarter beat a half and a whole lane's depth.
        let block = if src.plan.is_some() && src.ordered {
            self.lane_depth(lanes - 1, lanes) / 4
        } else {
            1
        };
        let run = Run::new(*src, lanes, prep, proc)
            .with_block(block)
            .with_cancel(self.cancel.as_ref())
            .with_read_times(self.read_times.as_ref())
            .with_lane_fds(if own.is_empty() { &[] } else { &lane_fds });
        let clean = run_lanes(&run, workers, specs);
        // A lane whose reads could not all be reaped keeps its buffers forever: the kernel may still
        // write into them.
        for (slot, ok) in pool.iter_mut().zip(clean) {
            if !ok {
                if let Some(lane) = slot.take() {
                    std::mem::forget(lane);
                }
            }
        }
        drop(kept);
        let (bytes, files) = run.finish_files()?;
        Ok((bytes, read_path, files))
    }
}

/// How many process descriptors `read_many` may hold at once: [`FILES_IN_FLIGHT`], or what
/// `ulimit -n` leaves room for beside the descriptors already open (at least one).
fn descriptor_room() -> usize {
    // SAFETY: getrlimit writes into the struct we pass.
    let limit = unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        (libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0).then_some(r.rlim_cur)
    };
    let open = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count());
    match limit {
        Some(l) if l != libc::RLIM_INFINITY => {
            // Room for the lanes' descriptors (a file and its O_DIRECT twin) and a few more.
            let room = (l as usize).saturating_sub(open + 8);
            FILES_IN_FLIGHT.min(room).max(1)
        }
        _ => FILES_IN_FLIGHT,
    }
}

/// The inputs of a run on the calling thread: a list, each processor made as its input is taken.
struct ListFeed<'a, M> {
    paths: &'a mut dyn Iterator<Item = Input>,
    make: &'a mut M,
    next: usize,
}

impl<Pr, C, M: FnMut(usize, &Path) -> (Pr, C)> Feed<Pr, C> for ListFeed<'_, M> {
    fn next(&mut self, _wait: bool) -> Next<Pr, C> {
        match self.paths.next() {
            Some(input) => {
                let work = (self.make)(self.next, input.name());
                self.next += 1;
                Next::Item(self.next - 1, input, work)
            }
            None => Next::End,
        }
    }
}

/// The inputs of one of several runs: what the calling thread hands it through a channel.
struct ChannelFeed<Pr, C> {
    inputs: std::sync::mpsc::Receiver<(usize, Input, (Pr, C))>,
}

impl<Pr, C> Feed<Pr, C> for ChannelFeed<Pr, C> {
    fn next(&mut self, wait: bool) -> Next<Pr, C> {
        use std::sync::mpsc::TryRecvError;
        let got = if wait {
            self.inputs.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            self.inputs.try_recv()
        };
        match got {
            Ok((i, path, work)) => Next::Item(i, path, work),
            Err(TryRecvError::Empty) => Next::NotNow,
            Err(TryRecvError::Disconnected) => Next::End,
        }
    }
}

/// Opens `path`; where the process has no descriptor left (`EMFILE`, `ENFILE`), waits for one
/// (another thread of the pool closes its file soon) for up to two seconds before saying so.
fn open_waiting(path: &Path) -> Result<File> {
    let mut waited = 0;
    loop {
        match open_read(path) {
            Err(Error::Open { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    && waited < DESCRIPTOR_WAIT_MS =>
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
                waited += 1;
            }
            r => return r,
        }
    }
}

/// One thread of `read_many`'s pool (without io_uring): reads the inputs of `feed` one after
/// another, each by the same rules as every path (one lane of depth one on `pread(2)`, as the
/// synchronous path reads), into `arena`'s one buffer. What is not a regular file, or is larger
/// than `s.large`, goes back to the caller, as from the ring.
fn many_on_thread<Pr, C>(
    arena: &Arena,
    s: &Settings<'_>,
    feed: &mut dyn Feed<Pr, C>,
    release: &mut dyn FnMut(usize, PathBuf, Outcome<Pr, C>) -> Result<()>,
) -> Result<()>
where
    Pr: Prepare,
    C: Combine<Pr::Part>,
{
    let mut q = PreadQueue::default();
    loop {
        if let Some(c) = s.cancel {
            if c.is_cancelled() {
                return Err(Error::Interrupted {
                    path: PathBuf::new(),
                });
            }
        }
        let (i, input, (pr, mut c)) = match feed.next(true) {
            Next::Item(i, input, work) => (i, input, work),
            Next::NotNow => continue,
            Next::End => return Ok(()),
        };
        // stat(2) before open(2): a FIFO's open would wait for a writer.
        let (opened, path) = match input {
            Input::Path(path) => (None, path),
            Input::Open(file, path) => (Some(file), path),
        };
        let meta = match &opened {
            Some(file) => file.metadata(),
            None => std::fs::metadata(&path),
        };
        let meta = match meta {
            Ok(m) => m,
            Err(source) => {
                let e = Error::Open {
                    path: path.clone(),
                    source,
                };
                release(i, path, Outcome::Read(Err(e), c))?;
                continue;
            }
        };
        // Files whose file system refuses uncached reads go the lanes' way, which reads them
        // another way that spares the cache and says so.
        let uncached_refused = s.dontcache
            && opened.as_ref().is_some_and(|f| {
                !dontcache_supported(f.as_raw_fd(), std::os::unix::fs::MetadataExt::dev(&meta))
            });
        if !meta.file_type().is_file() || meta.len() > s.large || uncached_refused {
            release(i, path, Outcome::Deferred(opened, pr, c))?;
            continue;
        }
        let file = match opened {
            Some(file) => Ok(file),
            None => open_waiting(&path),
        };
        let result = file.and_then(|file| {
            // A file the caller opened is read from its current position.
            // SAFETY: lseek on a descriptor `file` owns.
            let start = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_CUR) }.max(0) as u64;
            let rw_flags = if s.dontcache
                && dontcache_supported(file.as_raw_fd(), std::os::unix::fs::MetadataExt::dev(&meta))
            {
                libc::RWF_DONTCACHE
            } else {
                0
            };
            let src = Job {
                file: Member {
                    path: &path,
                    fd: file.as_raw_fd(),
                    direct_fd: None,
                    rw_flags,
                    // A file system without RWF_DONTCACHE: its pages dropped behind the reads.
                    drop_behind: s.dontcache && rw_flags == 0,
                },
                rules: Chunks::new(start, s.chunk, s.max_bytes, meta.len(), true, None),
                plan: None,
                ordered: true,
                members: &[],
            };
            c.begin().map_err(|source| Error::Process {
                path: path.clone(),
                offset: 0,
                source,
            })?;
            let run = Run::new(src, 1, &pr, &mut c).with_cancel(s.cancel);
            // A pread queue completes every read before it returns: nothing is left to reap.
            run_lane(&run, 0, &mut q, arena, 1, 0);
            run.finish()
        });
        let result = result.and_then(|bytes| {
            c.finish().map(|()| bytes).map_err(|source| Error::Process {
                path: path.clone(),
                offset: bytes,
                source,
            })
        });
        if let Err(Error::Interrupted { path }) = result {
            return Err(Error::Interrupted { path });
        }
        release(i, path, Outcome::Read(result, c))?;
    }
}

/// Empties a vector when dropped, also while unwinding.
struct ClearOnDrop<'a, T>(&'a mut Vec<T>);

impl<T> Drop for ClearOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// What a run on a kept thread tells the calling thread.
enum FromRun<Pr, C> {
    /// Input `index` is finished (or deferred).
    Out(usize, PathBuf, Outcome<Pr, C>),
    /// The run ended: all its inputs were handed back, or it failed.
    End(Result<()>),
    /// A processor panicked in it (its operations in the kernel are reaped already).
    Panicked(Box<dyn std::any::Any + Send>),
}

/// One run of [`many_parallel`]: reads the inputs its feed gives, handing each outcome to `release`.
type ManyRun<'s, Pr, C> = Box<
    dyn FnOnce(
            &mut dyn Feed<Pr, C>,
            &mut dyn FnMut(usize, PathBuf, Outcome<Pr, C>) -> Result<()>,
        ) -> Result<()>
        + Send
        + 's,
>;

/// How [`many_parallel`] takes the caller's inputs.
struct Feeding<'i> {
    /// Inputs each run's queue holds at most.
    queue: usize,
    /// Inputs taken and not yet released, at most.
    ahead: usize,
    inputs: &'i mut dyn Iterator<Item = Input>,
}

/// `read_many` on several threads: each of `runs` on a kept thread of `workers` (each with its own
/// ring and slots, or, without io_uring, its own buffer); the calling thread makes the processors,
/// hands input `i` to run `i % n` (in input order, each run's queue holding `feed.queue` inputs at
/// most, and `feed.ahead` inputs taken and not released at most), reads the deferred inputs with
/// the lanes, and releases everything in input order.
fn many_parallel<'s, Pr, C, M>(
    workers: &mut Workers,
    runs: Vec<ManyRun<'s, Pr, C>>,
    feed: Feeding<'_>,
    make: &mut M,
    release: &mut dyn FnMut(usize, PathBuf, Outcome<Pr, C>) -> Result<()>,
) -> Result<()>
where
    Pr: Prepare + Send + 's,
    C: Combine<Pr::Part> + Send + 's,
    M: FnMut(usize, &Path) -> (Pr, C),
{
    use std::sync::mpsc::{channel, sync_channel, TrySendError};
    let n = runs.len();
    let Feeding {
        queue,
        ahead,
        inputs: paths,
    } = feed;
    let (to_caller, from_runs) = channel::<FromRun<Pr, C>>();
    let mut queues = Vec::with_capacity(n);
    let mut jobs = Vec::with_capacity(n);
    for run in runs {
        let (tx, rx) = sync_channel(queue.max(1));
        queues.push(tx);
        let to_caller = to_caller.clone();
        jobs.push(move || {
            let mut feed = ChannelFeed { inputs: rx };
            let tell = to_caller.clone();
            let mut release = |i, path, outcome| {
                // The caller may be gone (it failed): then nothing wants this.
                let _ = tell.send(FromRun::Out(i, path, outcome));
                Ok(())
            };
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(&mut feed, &mut release)
            }));
            let _ = to_caller.send(match ran {
                Ok(r) => FromRun::End(r),
                Err(payload) => FromRun::Panicked(payload),
            });
            true
        });
    }
    drop(to_caller);
    let mut outcome: Result<()> = Ok(());
    let mut panic = None;
    type Queues<Pr, C> = Vec<std::sync::mpsc::SyncSender<(usize, Input, (Pr, C))>>;
    let mut caller = |queues: &mut Queues<Pr, C>| {
        let mut waiting: std::collections::BTreeMap<usize, (PathBuf, Outcome<Pr, C>)> =
            Default::default();
        let mut held: Option<(usize, Input, (Pr, C))> = None;
        let (mut fed, mut head, mut ended) = (0usize, 0usize, 0usize);
        let mut inputs_done = false;
        loop {
            // Hand out inputs in order, as far as the runs' queues take them.
            while !inputs_done && fed - head < ahead {
                let item = match held.take() {
                    Some(item) => item,
                    None => match paths.next() {
                        Some(input) => {
                            let work = make(fed, input.name());
                            (fed, input, work)
                        }
                        None => {
                            inputs_done = true;
                            queues.clear(); // the runs see the end
                            break;
                        }
                    },
                };
                match queues[item.0 % n].try_send(item) {
                    Ok(()) => fed += 1,
                    Err(TrySendError::Full(item)) => {
                        held = Some(item);
                        break;
                    }
                    Err(TrySendError::Disconnected(_)) => break, // that run ended: its End says why
                }
            }
            while let Some((path, out)) = waiting.remove(&head) {
                release(head, path, out)?;
                head += 1;
            }
            if ended == n {
                return Ok(());
            }
            match from_runs.recv() {
                Ok(FromRun::Out(i, path, out)) => {
                    waiting.insert(i, (path, out));
                }
                Ok(FromRun::End(Ok(()))) => ended += 1,
                Ok(FromRun::End(Err(e))) => return Err(e),
                Ok(FromRun::Panicked(p)) => {
                    panic = Some(p);
                    return Ok(());
                }
                Err(_) => return Ok(()), // every run is gone
            }
        }
    };
    let mut spawn_error = None;
    workers.scope(
        jobs,
        || {
            // However the caller ends (a run failed, or a callback on this thread panics and
            // unwinds), the runs still waiting for inputs see the end, so that `scope` can wait
            // for them.
            let guard = ClearOnDrop(&mut queues);
            outcome = caller(&mut *guard.0);
            true
        },
        |e| spawn_error = Some(e),
    );
    if let Some(p) = panic {
        std::panic::resume_unwind(p);
    }
    if let Some(source) = spawn_error {
        return Err(Error::Ring {
            path: PathBuf::from("read_many"),
            op: "thread spawn",
            source,
        });
    }
    outcome
}
