//! The reader's lanes: the rings, buffers and threads it keeps for the engine's lanes
//! ([`crate::engine::lanes`], and [`in_place`] over a mapping), how many lanes read a source and
//! with what depth, and the [`Route`] they took.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};

use super::{Engine, Notice, Reader, Route};
use crate::buf::Arena;
use crate::engine::lanes::{run_lanes, FileOutcome, LaneSpec, Run};
use crate::engine::workers::Workers;
use crate::engine::{in_place, Job, PreadQueue};
use crate::error::{Error, Result};
use crate::file::register_reason;
use crate::mapped::Mapping;
use crate::options::Backend;
use crate::processor::{Combine, Prepare};
use crate::ring::{explain_setup_error, Queue, Ring};

/// A lane's kept resources: its ring (none on the `pread(2)` and synchronous paths) and its
/// buffers. The ring is declared first so that it is dropped (and its registration released) before
/// the buffers are freed.
pub(super) struct LaneRes {
    ring: Option<Ring>,
    arena: Arena,
    registered: usize,
    notice: Option<Notice>,
}

/// What a reader keeps between files: its lanes' rings and buffers, and the threads lanes `1..n`
/// run on.
#[derive(Default)]
pub(super) struct Kept {
    pub(super) lanes: Vec<Option<LaneRes>>,
    workers: Workers,
}

/// Range plans at least this long read on `pread(2)` lanes get a descriptor of their own for each
/// lane past the first (an `open` each: worth it over thousands of reads only).
const OWN_FD_EXTENTS: usize = 4096;

impl Reader {
    /// Processes a cached file in place: the lanes of [`in_place`] over its mapping, on the
    /// reader's kept threads.
    pub(super) fn read_in_place<Pr, C>(
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
    pub(super) fn read_lanes<Pr, C>(
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
    pub(super) fn read_lanes_files<Pr, C>(
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
        let (engine, with_ring) = self.ready_lanes(pool, lanes, share, engine, notices)?;
        let depths: Vec<usize> = (0..lanes)
            .map(|t| match engine {
                Engine::Sync => 1,
                _ if !src.rules.positional() => 1,
                _ => self.lane_depth(t, share),
            })
            .collect();
        let mut preads: Vec<PreadQueue> = (0..lanes).map(|_| PreadQueue::default()).collect();
        let (specs, registered) = lane_specs(pool, &mut preads, &depths, with_ring, notices);
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
        let own = own_files(src, engine, lanes);
        let lane_fds: Vec<Option<RawFd>> = std::iter::once(None)
            .chain(own.iter().map(|f| Some(f.as_raw_fd())))
            .collect();
        let run = Run::new(*src, lanes, prep, proc)
            .with_block(self.block(src, lanes))
            .with_cancel(self.cancel.as_ref())
            .with_read_times(self.read_times.as_ref())
            .with_lane_fds(if own.is_empty() { &[] } else { &lane_fds });
        let clean = run_lanes(&run, workers, specs);
        forget_unclean(pool, clean);
        drop(kept);
        let (bytes, files) = run.finish_files()?;
        Ok((bytes, read_path, files))
    }

    /// Makes sure lanes `0..lanes` have their buffers for the depth split over `share` lanes, and
    /// their rings where `engine` is io_uring. Returns the engine they read with, and whether
    /// through rings: a lane's ring that could not be set up although io_uring is there (no
    /// descriptor or memory left for it, say) makes the lanes, under `auto`, read with pread(2)
    /// instead, as where io_uring is refused, and say why.
    fn ready_lanes(
        &self,
        pool: &mut [Option<LaneRes>],
        lanes: usize,
        share: usize,
        engine: Engine,
        notices: &mut Vec<Notice>,
    ) -> Result<(Engine, bool)> {
        let with_ring = engine == Engine::Uring;
        for t in 0..lanes {
            match self.lane(pool, t, share, with_ring) {
                Ok(_) => {}
                Err(Error::UringUnavailable { reason })
                    if with_ring && self.opts.backend == Backend::Auto =>
                {
                    notices.push(Notice::UringUnavailable { reason });
                    for t in 0..lanes {
                        self.lane(pool, t, share, false)?;
                    }
                    return Ok((Engine::Pread, false));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((engine, with_ring))
    }

    /// How many pieces a lane reads before the next lane's turn. Pieces of a range plan handed
    /// over in the order asked are small: the lanes take turns every quarter of a lane's depth,
    /// not at every piece (a turn passed at every 4 KiB read woke the other lane up to 100,000
    /// times for 100,000 ranges: 0.08x of a `pread` loop). A lane waiting for its turn has the
    /// three blocks after it in flight. Measured in docs/BENCHMARKS.md ("Request order"): a
    /// quarter beat a half and a whole lane's depth.
    fn block(&self, src: &Job<'_>, lanes: usize) -> usize {
        if src.plan.is_some() && src.ordered {
            self.lane_depth(lanes - 1, lanes) / 4
        } else {
            1
        }
    }
}

/// Each lane's means for [`run_lanes`]: its ring where the lanes read through rings (`with_ring`),
/// else its `pread(2)` queue, its buffers and `depths`; with the registered buffers they use, and
/// the notices of rings that registered fewer than asked.
fn lane_specs<'k>(
    pool: &'k mut [Option<LaneRes>],
    preads: &'k mut [PreadQueue],
    depths: &[usize],
    with_ring: bool,
    notices: &mut Vec<Notice>,
) -> (Vec<LaneSpec<'k>>, usize) {
    let mut specs = Vec::with_capacity(depths.len());
    let mut registered = 0;
    for ((res, pread), &depth) in pool.iter_mut().flatten().zip(preads).zip(depths) {
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
    (specs, registered)
}

/// pread(2) lanes over one file's long range plan: lanes past the first read through an open file
/// of their own. A process with more than one thread takes a reference on the file at every read
/// (`fdget`), and two CPUs taking it on one file pass its cache line back and forth at every read;
/// opened again, each lane has its own. Empty otherwise.
fn own_files(src: &Job<'_>, engine: Engine, lanes: usize) -> Vec<File> {
    if engine == Engine::Pread
        && lanes > 1
        && src.members.is_empty()
        && src.plan.is_some_and(|p| p.extents.len() >= OWN_FD_EXTENTS)
    {
        (1..lanes)
            .filter_map(|_| File::open(format!("/proc/self/fd/{}", src.file.fd)).ok())
            .collect()
    } else {
        Vec::new()
    }
}

/// A lane whose reads could not all be reaped keeps its buffers forever: the kernel may still
/// write into them.
fn forget_unclean(pool: &mut [Option<LaneRes>], clean: Vec<bool>) {
    for (slot, ok) in pool.iter_mut().zip(clean) {
        if !ok {
            if let Some(lane) = slot.take() {
                std::mem::forget(lane);
            }
        }
    }
}
