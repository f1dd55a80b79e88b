//! [`Reader`]: opens a file, picks the way to read it, and runs it to the end.
//!
//! A `Reader` is made once from [`ReadOptions`] and reused for any number of files: its rings and
//! registered buffers are set up on first use and kept, so reading many small files does not pay for
//! ring setup and buffer registration each time.

mod file;
mod summary;

use std::fmt;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

pub use summary::{Engine, Notice, ReadPath, Summary};

use crate::backend::pread_queue::PreadQueue;
use crate::backend::uring::{run_lanes, LaneSpec, Run};
use crate::backend::{sync, Source};
use crate::buf::Arena;
use crate::error::{Error, Result};
use crate::options::{Backend, ReadOptions, ALIGN};
use crate::processor::{Combine, Prepare, Processor, Whole};
use crate::ring::{explain_setup_error, usable_cpus, Ring};
use file::register_reason;
pub(crate) use file::{inspect, on_fuse, open_read, Inspected};

/// A lane's kept resources: its ring and its buffers. The ring is declared first so that it is
/// dropped (and its registration released) before the buffers are freed.
struct LaneRes {
    ring: Ring,
    arena: Arena,
    registered: usize,
    notice: Option<Notice>,
}

/// Reads files in order through io_uring (or the fallback), reusing its rings and buffers.
///
/// A `Reader` reads one file at a time: it is `Sync`, but a second thread's read waits until the
/// first is done (the rings and buffers are the reader's). To read files concurrently, give each
/// thread its own `Reader` (each then has its own buffer budget).
///
/// ```
/// use ringread::{processor::{Algorithm, Checksum}, ReadOptions, Reader};
/// let reader = Reader::new(ReadOptions::default());
/// let mut sum = Checksum::new(Algorithm::Xxh3);
/// let summary = reader.read_path("Cargo.toml", &mut sum)?;
/// assert!(summary.bytes > 0);
/// println!("{}  Cargo.toml ({})", sum.hex(), summary.path);
/// # Ok::<(), ringread::Error>(())
/// ```
pub struct Reader {
    opts: ReadOptions,
    max_lanes: usize,
    lanes: Mutex<Vec<Option<LaneRes>>>,
    uring: OnceLock<std::result::Result<(), String>>,
    interrupt: Option<Arc<AtomicBool>>,
    /// Stops stream reads (`crate::net`) from any thread.
    cancel: Option<crate::Cancel>,
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
            lanes: Mutex::new(Vec::new()),
            uring: OnceLock::new(),
            interrupt: None,
            cancel: None,
        }
    }

    /// Reads stop with [`Error::Interrupted`] once `flag` is set (from a signal handler, say: storing
    /// to an atomic is async-signal-safe). Every read in flight is reaped, or cancelled and reaped,
    /// before the call returns. A signal that interrupts a wait is noticed at once; otherwise the flag
    /// is seen after the read in flight completes.
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// Stream reads (standard input, pipes, FIFOs, sockets) stop with [`Error::Interrupted`] once
    /// `cancel` is cancelled, even while they wait for data. (Interim: regular files still stop
    /// on [`Reader::set_interrupt`]'s flag only.)
    pub fn set_cancel(&mut self, cancel: crate::Cancel) {
        self.cancel = Some(cancel);
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

    /// Reads the file at `path` to its end, handing its chunks to `proc` in order.
    pub fn read_path<P>(&self, path: impl AsRef<Path>, proc: &mut P) -> Result<Summary>
    where
        P: Processor + Send,
    {
        self.read_path_split(path, &Whole, proc)
    }

    /// Reads the file at `path` with a processor in two halves: `prep` runs on the thread that read
    /// each chunk, as soon as it is read and in parallel with the others; `proc` then gets each chunk
    /// with what `prep` made of it, in file order. See [`Prepare`].
    pub fn read_path_split<Pr, C>(
        &self,
        path: impl AsRef<Path>,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send,
    {
        let path = path.as_ref();
        let file = open_read(path)?;
        self.read_opened(&file, path, Some(path), prep, proc)
    }

    /// Reads an already open file (standard input, say) from its current position to its end, and
    /// leaves the position after what was read, as `read(2)` would; chunk offsets are file offsets.
    /// `name` is what errors call it.
    pub fn read_file<P>(&self, file: &File, name: impl AsRef<Path>, proc: &mut P) -> Result<Summary>
    where
        P: Processor + Send,
    {
        self.read_file_split(file, name, &Whole, proc)
    }

    /// [`Reader::read_file`] with a processor in two halves, as [`Reader::read_path_split`].
    pub fn read_file_split<Pr, C>(
        &self,
        file: &File,
        name: impl AsRef<Path>,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send,
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
        C: Combine<Pr::Part> + Send,
    {
        let Inspected {
            fd,
            positional,
            start,
            size_hint,
            direct,
            mut notices,
        } = inspect(file, name, path, self.opts.direct, self.opts.chunk_size)?;
        let src = Source {
            path: name,
            fd,
            direct_fd: direct.as_ref().map(|(f, _)| f.as_raw_fd()),
            align: direct.as_ref().map_or(ALIGN, |(_, a)| *a),
            size_hint,
            positional,
            start,
            limit: self.opts.max_bytes.unwrap_or(u64::MAX),
        };

        let engine = match self.opts.backend {
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
        };

        proc.begin().map_err(|source| Error::Process {
            path: name.to_path_buf(),
            offset: start,
            source,
        })?;
        let stream = !positional && matches!(engine, Engine::Uring | Engine::Epoll);
        let (bytes, read_path) = if stream {
            self.read_stream(&src, engine, prep, proc, &mut notices)?
        } else if engine == Engine::Uring {
            self.read_uring(&src, prep, proc, &mut notices)?
        } else if engine == Engine::Pread {
            self.read_pread(&src, prep, proc)?
        } else {
            let bytes = sync::read(
                &src,
                self.opts.chunk_size,
                prep,
                proc,
                self.interrupt.as_deref(),
            )?;
            let path = ReadPath {
                engine: Engine::Sync,
                threads: 1,
                buffers: 1,
                registered: 0,
                chunk_size: self.opts.chunk_size,
                direct: src.direct_fd.is_some(),
                sqpoll: false,
                positional,
            };
            (bytes, path)
        };
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
            path: read_path,
            notices,
        })
    }

    /// A stream (pipe, terminal, socket) through io_uring (one armed multishot `READ`/`RECV`, buffers
    /// from a provided buffer ring of up to `depth` buffers) or epoll: see [`crate::net`].
    fn read_stream<Pr, C>(
        &self,
        src: &Source<'_>,
        engine: Engine,
        prep: &Pr,
        proc: &mut C,
        notices: &mut Vec<Notice>,
    ) -> Result<(u64, ReadPath)>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send,
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
            .max_bytes(Some(src.limit))
            .cancel(self.cancel.clone());
        let mut fell_back = None;
        let (bytes, used) =
            crate::net::read_stream_split(src.fd, src.path, &opts, prep, proc, &mut fell_back)?;
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
        let path = ReadPath {
            engine,
            threads: 1,
            buffers,
            registered: 0,
            chunk_size: self.opts.chunk_size,
            direct: false,
            sqpoll: false,
            positional: false,
        };
        Ok((bytes, path))
    }

    /// How many lanes read `src`: one per usable CPU (see `new`), but one for a stream and no more
    /// than the file has chunks.
    fn lanes_for(&self, src: &Source<'_>) -> usize {
        if !src.positional {
            return 1;
        }
        let chunks = src
            .size_hint
            .saturating_sub(src.start)
            .div_ceil(self.opts.chunk_size as u64);
        self.max_lanes.min(chunks.max(1) as usize)
    }

    /// The engine's lanes with `pread(2)` in place of io_uring (where the kernel refuses it): the
    /// same chunks, order and rules, and every lane copying on its own CPU.
    fn read_pread<Pr, C>(
        &self,
        src: &Source<'_>,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<(u64, ReadPath)>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send,
    {
        let lanes = self.lanes_for(src);
        let depths = self.lane_depths(src, lanes);
        let mut arenas = depths
            .iter()
            .map(|&d| Arena::new(d, self.opts.chunk_size))
            .collect::<Result<Vec<_>>>()?;
        let mut queues: Vec<PreadQueue> = (0..lanes).map(|_| PreadQueue::default()).collect();
        let run = Run::new(*src, self.opts.chunk_size, lanes, prep, proc)
            .with_interrupt(self.interrupt.as_deref());
        let specs = queues
            .iter_mut()
            .zip(arenas.iter_mut())
            .zip(&depths)
            .map(|((q, arena), &depth)| LaneSpec {
                q,
                arena,
                depth,
                registered: 0,
            })
            .collect();
        // pread(2) returns before the submit does: there is never a read left to reap.
        run_lanes(&run, specs);
        let bytes = run.finish()?;
        let path = ReadPath {
            engine: Engine::Pread,
            threads: lanes,
            buffers: depths.iter().sum(),
            registered: 0,
            chunk_size: self.opts.chunk_size,
            direct: src.direct_fd.is_some(),
            sqpoll: false,
            positional: src.positional,
        };
        Ok((bytes, path))
    }

    /// The buffers each of `lanes` lanes uses for `src` (a stream reads one at a time).
    fn lane_depths(&self, src: &Source<'_>, lanes: usize) -> Vec<usize> {
        (0..lanes)
            .map(|t| {
                if src.positional {
                    self.lane_depth(t)
                } else {
                    1
                }
            })
            .collect()
    }

    /// The buffers lane `t` owns: the depth split evenly, the first lanes taking the remainder.
    fn lane_depth(&self, t: usize) -> usize {
        let d = self.opts.depth;
        d / self.max_lanes + usize::from(t < d % self.max_lanes)
    }

    fn lane_res(&self, t: usize) -> Result<LaneRes> {
        let depth = self.lane_depth(t);
        let arena = Arena::new(depth, self.opts.chunk_size)?;
        let mut ring = Ring::new(depth, self.opts.sqpoll).map_err(|e| Error::UringUnavailable {
            reason: explain_setup_error(&e),
        })?;
        let (registered, notice) = if self.opts.register_buffers {
            let (n, err) = ring.register(&arena, depth);
            let notice = err.filter(|_| n < depth).map(|e| Notice::RegisteredFewer {
                registered: n,
                wanted: depth,
                reason: register_reason(&e),
            });
            (n, notice)
        } else {
            (0, None)
        };
        Ok(LaneRes {
            ring,
            arena,
            registered,
            notice,
        })
    }

    fn read_uring<Pr, C>(
        &self,
        src: &Source<'_>,
        prep: &Pr,
        proc: &mut C,
        notices: &mut Vec<Notice>,
    ) -> Result<(u64, ReadPath)>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send,
    {
        let lanes = self.lanes_for(src);
        let mut pool = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.max_lanes {
            pool.resize_with(self.max_lanes, || None);
        }
        for (t, slot) in pool.iter_mut().enumerate().take(lanes) {
            if slot.is_none() {
                *slot = Some(self.lane_res(t)?);
            }
        }
        let mut res: Vec<&mut LaneRes> = pool.iter_mut().take(lanes).flatten().collect();
        let depths = self.lane_depths(src, lanes);
        for r in &res {
            if let Some(n) = &r.notice {
                if !notices.contains(n) {
                    notices.push(n.clone());
                }
            }
        }
        let read_path = ReadPath {
            engine: Engine::Uring,
            threads: lanes,
            buffers: depths.iter().sum(),
            registered: res
                .iter()
                .zip(&depths)
                .map(|(r, d)| r.registered.min(*d))
                .sum(),
            chunk_size: self.opts.chunk_size,
            direct: src.direct_fd.is_some(),
            sqpoll: self.opts.sqpoll,
            positional: src.positional,
        };

        let run = Run::new(*src, self.opts.chunk_size, lanes, prep, proc)
            .with_interrupt(self.interrupt.as_deref());
        let specs = res
            .iter_mut()
            .zip(&depths)
            .map(|(r, &depth)| LaneSpec {
                q: &mut r.ring,
                arena: &mut r.arena,
                depth,
                registered: r.registered,
            })
            .collect();
        let clean = run_lanes(&run, specs);
        drop(res);
        // A lane whose reads could not all be reaped keeps its buffers forever: the kernel may still
        // write into them.
        for (slot, ok) in pool.iter_mut().zip(clean) {
            if !ok {
                if let Some(lane) = slot.take() {
                    std::mem::forget(lane);
                }
            }
        }
        drop(pool);
        let bytes = run.finish()?;
        Ok((bytes, read_path))
    }
}
