//! [`Reader::read_each`] of whole files: the choice between the engine's many-files drivers
//! ([`ManyKept`]: rings, or a pool of threads where io_uring is refused) and one file after
//! another, and what each file's outcome is to the caller ([`Finished`], its [`Summary`]).

use std::path::{Path, PathBuf};

use super::{Engine, Finished, Notice, Reader, Route, Summary, FILES_IN_FLIGHT, POOL_THREADS};
use crate::engine::many::{Input, Outcome, Settings};
use crate::engine::many_drive::ManyKept;
use crate::error::{Error, Result};
use crate::file::{fuse_mounted, on_fuse, open_read};
use crate::options::{Backend, ALIGN};
use crate::processor::{Combine, Prepare};

impl Reader {
    /// `read_many` of paths or open files, taking at most `ahead` inputs from the caller's
    /// iterator before their results are handed back.
    pub(super) fn many_inputs<M, Pr, C, D>(
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
        let s = self.many_settings(threads, width, ahead);
        let pool_slot = self.many_slot(POOL_THREADS);
        let kept = match &mut *guard {
            Some(k) if k.fits(threads, uring) => k,
            slot => match self.many_kept(uring, threads, width, s.chunk, pool_slot)? {
                Some(k) => slot.insert(k),
                // io_uring asked for outright, but no ring for many files (no path operations
                // on it, or none could be set up): one file at a time, each through io_uring.
                None => return self.many_one_by_one(inputs, &mut make, &mut done),
            },
        };
        let (route, notices) = self.many_route(kept, s.chunk, pool_slot);
        // Hands an input's outcome to the caller; a deferred one is read here, with the lanes.
        let mut release = |index: usize, path: PathBuf, outcome: Outcome<Pr, C>| {
            let (result, processor) = self.many_result(&path, outcome, &route, &notices);
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
        let r = kept.read(&s, pool_slot, inputs, ahead, &mut make, &mut release);
        if let Err(Error::Ring { .. }) = r {
            // A ring failed: it may still own the slots' buffers. Never free them.
            if let Some(k) = guard.take() {
                std::mem::forget(k);
            }
        }
        r
    }

    /// The settings of a run of `read_many` on a ring of `width` files in flight, one of
    /// `threads` (what each ring registered is filled in by the engine).
    fn many_settings(&self, threads: usize, width: usize, ahead: usize) -> Settings<'_> {
        let room = descriptor_room();
        Settings {
            chunk: self.many_slot(width * threads),
            width,
            window: (4 * width).min(ahead),
            large: 16 * self.opts.chunk_size as u64,
            max_bytes: self.opts.max_bytes,
            registered: 0,
            fixed_files: false,
            // Files opened as process descriptors (where the ring has no file table, or for files
            // on anonymous devices) are fewer where `ulimit -n` leaves less room.
            fd_limit: (room / threads).max(1),
            cancel: self.cancel.as_ref(),
            read_elsewhere: on_fuse,
            open: open_read,
            dontcache: self.opts.dontcache,
            // A statx tells the file system (FUSE files are read elsewhere) and, for
            // `dontcache`, the device: needed only where there is one to tell. Where descriptors
            // are scarce, the one kept to watch the mount table is not taken.
            unstated: !self.opts.dontcache && room >= FILES_IN_FLIGHT / 2 && !fuse_mounted(),
            stat_here: true,
        }
    }

    /// The rings of `read_many` for `threads` threads (`width` slots of `slot` bytes each) where
    /// io_uring is there, else a pool of [`POOL_THREADS`] threads with a buffer of `pool_slot`
    /// bytes each; `None` where io_uring was asked for outright but gives no ring for many files.
    fn many_kept(
        &self,
        uring: bool,
        threads: usize,
        width: usize,
        slot: usize,
        pool_slot: usize,
    ) -> Result<Option<ManyKept>> {
        let rings = if uring {
            ManyKept::rings(threads, width, slot, self.opts.register_buffers)
        } else {
            None
        };
        match rings {
            Some(kept) => Ok(Some(kept)),
            None if self.opts.backend == Backend::Uring => Ok(None),
            // No ring, or one without path operations (Linux before 5.6).
            None => ManyKept::pool(threads, POOL_THREADS, pool_slot).map(Some),
        }
    }

    /// The route of every file `kept` reads (`slot` bytes a read on its rings, `pool_slot` on its
    /// pool), and the notices they all carry: why io_uring was not used, where `auto` fell back.
    fn many_route(&self, kept: &ManyKept, slot: usize, pool_slot: usize) -> (Route, Vec<Notice>) {
        let on_ring = kept.on_ring();
        let route = Route {
            engine: if on_ring {
                Engine::Uring
            } else {
                Engine::Pread
            },
            threads: 1,
            buffers: 1,
            registered: usize::from(kept.all_registered()),
            chunk_size: if on_ring { slot } else { pool_slot },
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
        (route, notices)
    }

    /// An input's result and processor from its outcome: read by the engine (with the call's
    /// `route` and `notices`), or deferred to this reader and read here, as [`Reader::read`]
    /// reads a file.
    fn many_result<Pr, C>(
        &self,
        path: &Path,
        outcome: Outcome<Pr, C>,
        route: &Route,
        notices: &[Notice],
    ) -> (Result<Summary>, C)
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send,
    {
        match outcome {
            Outcome::Read(result, c) => {
                let result = result.map(|bytes| Summary {
                    bytes,
                    route: route.clone(),
                    notices: notices.to_vec(),
                });
                (result, c)
            }
            Outcome::Deferred(None, pr, mut c) => (self.read_path_split(path, &pr, &mut c), c),
            Outcome::Deferred(Some(file), pr, mut c) => {
                (self.read_file_split(&file, path, &pr, &mut c), c)
            }
        }
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
                Input::Path(path) | Input::Regular(path) => {
                    (self.read_path_split(&path, &pr, &mut c), path)
                }
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
}

/// How many process descriptors `read_many` may hold at once: [`FILES_IN_FLIGHT`], or what
/// `ulimit -n` leaves room for beside the descriptors already open (at least one).
pub(super) fn descriptor_room() -> usize {
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
