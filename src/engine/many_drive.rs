//! Many whole files ([`Reader::read_each`](crate::Reader::read_each)) over the rings, buffers and
//! threads kept between calls ([`ManyKept`]): [`many::run`] on one ring on the calling thread; or
//! one on each of several kept threads, a ring each, the calling thread handing out the inputs and
//! releasing the outcomes in input order ([`parallel`]); or, where io_uring is refused or not
//! wanted, the same over a pool of threads reading with `pread(2)` ([`many_pool`]).
//!
//! What a file's outcome means to the caller (its summary, a deferred file read its usual way) is
//! the caller's `release`; the engine hands outcomes back and knows nothing of the reader.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{
    channel, sync_channel, Receiver, Sender, SyncSender, TryRecvError, TrySendError,
};

use super::many::{self, Feed, Input, Next, Outcome, Settings};
use super::many_pool;
use super::workers::Workers;
use crate::buf::Arena;
use crate::error::{Error, Result};
use crate::processor::{Combine, Prepare};
use crate::ring::Ring;

/// A ring and its slot buffers, for many files in flight on one thread.
pub(crate) struct ManyRes {
    ring: Ring,
    arena: Arena,
    registered: usize,
    /// The ring has a registered file table with an entry per slot.
    fixed_files: bool,
}

impl ManyRes {
    /// A ring and `width` slots of `slot` bytes (registered with it if `register_buffers`), or
    /// `None` where the kernel lacks path operations on the ring or it cannot be set up.
    fn new(width: usize, slot: usize, register_buffers: bool) -> Option<ManyRes> {
        // Up to three operations per file at once (an open and two linked reads), and a poll.
        let ring = Ring::new(3 * width + 2, false).ok()?;
        if !ring.has_path_ops() {
            return None;
        }
        let arena = Arena::new(width, slot).ok()?;
        let mut ring = ring;
        ring.widen_workers(width as u32);
        let registered = if register_buffers {
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

    /// The settings of a run on this ring: `s` with what the ring registered.
    fn settings<'a>(&self, s: &Settings<'a>) -> Settings<'a> {
        Settings {
            registered: self.registered,
            fixed_files: self.fixed_files,
            ..*s
        }
    }
}

/// What many files are read with, kept between calls: a ring and slots per thread (or, without
/// io_uring, a buffer per thread of the pool), and the threads.
pub(crate) struct ManyKept {
    threads: usize,
    rings: Vec<ManyRes>,
    pool: Vec<Arena>,
    workers: Workers,
}

impl ManyKept {
    /// A ring of `width` slots of `slot` bytes for each of `threads` threads; `None` where the
    /// kernel lacks path operations on the ring, or one cannot be set up.
    pub(crate) fn rings(
        threads: usize,
        width: usize,
        slot: usize,
        register_buffers: bool,
    ) -> Option<ManyKept> {
        let rings = (0..threads)
            .map(|_| ManyRes::new(width, slot, register_buffers))
            .collect::<Option<Vec<_>>>()?;
        Some(ManyKept {
            threads,
            rings,
            pool: Vec::new(),
            workers: Workers::default(),
        })
    }

    /// A pool of `pool` threads with a buffer of `slot` bytes each, kept for calls that want
    /// `threads` threads.
    pub(crate) fn pool(threads: usize, pool: usize, slot: usize) -> Result<ManyKept> {
        Ok(ManyKept {
            threads,
            rings: Vec::new(),
            pool: (0..pool)
                .map(|_| Arena::new(1, slot))
                .collect::<Result<Vec<_>>>()?,
            workers: Workers::default(),
        })
    }

    /// Whether these serve a call that wants `threads` threads (and rings, if `uring`). A pool
    /// kept because rings could not be set up (no descriptor left, say) is kept only until they
    /// can: each call where io_uring is there tries them again.
    pub(crate) fn fits(&self, threads: usize, uring: bool) -> bool {
        self.threads == threads && (!uring || !self.rings.is_empty())
    }

    /// Whether files are read through rings (not the pool).
    pub(crate) fn on_ring(&self) -> bool {
        !self.rings.is_empty()
    }

    /// Whether every ring registered buffers (true of none, on the pool).
    pub(crate) fn all_registered(&self) -> bool {
        self.rings.iter().all(|r| r.registered > 0)
    }

    /// Reads `inputs`, taking at most `ahead` of them before their outcomes are released: on the
    /// rings with the settings `s` (what each ring registered filled in), or on the pool with
    /// buffers of `pool_chunk` bytes ([`Settings::for_pool`]); processors are made by `make`, on
    /// the calling thread, and `release` gets every outcome there, in input order.
    pub(crate) fn read<Pr, C, M>(
        &mut self,
        s: &Settings<'_>,
        pool_chunk: usize,
        inputs: &mut dyn Iterator<Item = Input>,
        ahead: usize,
        make: &mut M,
        release: &mut dyn FnMut(usize, PathBuf, Outcome<Pr, C>) -> Result<()>,
    ) -> Result<()>
    where
        Pr: Prepare + Send,
        C: Combine<Pr::Part> + Send,
        M: FnMut(usize, &Path) -> (Pr, C),
    {
        if !self.on_ring() {
            let pool_settings = s.for_pool(pool_chunk);
            let pool_settings = &pool_settings;
            let runs = self
                .pool
                .iter_mut()
                .map(|arena| {
                    let run: ManyRun<'_, Pr, C> = Box::new(move |feed, release| {
                        many_pool::run(arena, pool_settings, feed, release)
                    });
                    run
                })
                .collect();
            let feed = Feeding {
                queue: 2,
                ahead,
                inputs,
            };
            return parallel(&mut self.workers, runs, feed, make, release);
        }
        if self.threads == 1 {
            let res = &mut self.rings[0];
            let mut feed = ListFeed {
                paths: inputs,
                make,
                next: 0,
            };
            let s = res.settings(s);
            return many::run(&mut res.ring, &res.arena, &s, &mut feed, release);
        }
        let runs = self
            .rings
            .iter_mut()
            .map(|res| {
                let s = res.settings(s);
                let run: ManyRun<'_, Pr, C> = Box::new(move |feed, release| {
                    many::run(&mut res.ring, &res.arena, &s, feed, release)
                });
                run
            })
            .collect();
        let feed = Feeding {
            queue: 4 * s.width,
            ahead,
            inputs,
        };
        parallel(&mut self.workers, runs, feed, make, release)
    }
}

impl<'a> Settings<'a> {
    /// The settings of a thread of the pool, from the rings' `self`: one file at a time into one
    /// buffer of `chunk` bytes, opened by the thread itself.
    fn for_pool(&self, chunk: usize) -> Settings<'a> {
        Settings {
            chunk,
            width: 1,
            window: 4,
            registered: 0,
            fixed_files: false,
            fd_limit: 1, // the pool opens by itself, one file per thread
            ..*self
        }
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

/// An input's outcome on its way to the calling thread: its index, path and outcome, boxed (a
/// processor's state can be kilobytes, moved several times on the way).
type Out<Pr, C> = Box<(usize, PathBuf, Outcome<Pr, C>)>;

/// Outcomes a run sends in batches, to wake the calling thread once for several.
const OUT_BATCH: usize = 16;

/// A run's outcomes not yet sent to the calling thread.
struct Outbox<Pr, C> {
    held: RefCell<Vec<Out<Pr, C>>>,
    tell: Sender<FromRun<Pr, C>>,
}

impl<Pr, C> Outbox<Pr, C> {
    /// Keeps an outcome; sends the batch once it is full.
    fn put(&self, out: Out<Pr, C>) {
        let full = {
            let mut held = self.held.borrow_mut();
            held.push(out);
            held.len() >= OUT_BATCH
        };
        if full {
            self.flush();
        }
    }

    /// Sends what is kept (the caller may be gone, having failed: then nothing wants it).
    fn flush(&self) {
        let batch = std::mem::take(&mut *self.held.borrow_mut());
        if !batch.is_empty() {
            let _ = self.tell.send(FromRun::Outs(batch));
        }
    }
}

/// The inputs of one of several runs: what the calling thread hands it through a channel. Before
/// the run waits (for an input, or for the kernel), its outcomes held back go to the caller.
struct ChannelFeed<'o, Pr, C> {
    inputs: Receiver<(usize, Input, (Pr, C))>,
    outbox: &'o Outbox<Pr, C>,
}

impl<Pr, C> Feed<Pr, C> for ChannelFeed<'_, Pr, C> {
    fn idle(&mut self) {
        self.outbox.flush();
    }

    fn next(&mut self, wait: bool) -> Next<Pr, C> {
        let got = if wait {
            match self.inputs.try_recv() {
                Err(TryRecvError::Empty) => {
                    self.outbox.flush();
                    self.inputs.recv().map_err(|_| TryRecvError::Disconnected)
                }
                got => got,
            }
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

/// Empties a vector when dropped, also while unwinding.
struct ClearOnDrop<'a, T>(&'a mut Vec<T>);

impl<T> Drop for ClearOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// What a run on a kept thread tells the calling thread.
enum FromRun<Pr, C> {
    /// Inputs finished (or deferred).
    Outs(Vec<Out<Pr, C>>),
    /// The run ended: all its inputs were handed back, or it failed.
    End(Result<()>),
    /// A processor panicked in it (its operations in the kernel are reaped already).
    Panicked(Box<dyn Any + Send>),
}

/// One run of [`parallel`]: reads the inputs its feed gives, handing each outcome to `release`.
type ManyRun<'s, Pr, C> = Box<
    dyn FnOnce(
            &mut dyn Feed<Pr, C>,
            &mut dyn FnMut(usize, PathBuf, Outcome<Pr, C>) -> Result<()>,
        ) -> Result<()>
        + Send
        + 's,
>;

/// The queues through which the calling thread hands each run its inputs.
type Queues<Pr, C> = Vec<SyncSender<(usize, Input, (Pr, C))>>;

/// How [`parallel`] takes the caller's inputs.
struct Feeding<'i> {
    /// Inputs each run's queue holds at most.
    queue: usize,
    /// Inputs taken and not yet released, at most.
    ahead: usize,
    inputs: &'i mut dyn Iterator<Item = Input>,
}

/// Many files on several threads: each of `runs` on a kept thread of `workers` (each with its own
/// ring and slots, or, without io_uring, its own buffer); the calling thread makes the processors,
/// hands input `i` to run `i % n` (in input order, each run's queue holding `feed.queue` inputs at
/// most, and `feed.ahead` inputs taken and not released at most), and releases everything in
/// input order (`release` reads the deferred inputs its own way).
fn parallel<'s, Pr, C, M>(
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
    let n = runs.len();
    let (to_caller, from_runs) = channel::<FromRun<Pr, C>>();
    let (mut queues, jobs) = jobs(runs, feed.queue, to_caller);
    let mut outcome: Result<()> = Ok(());
    let mut panic = None;
    let mut spawn_error = None;
    workers.scope(
        jobs,
        || {
            // However the caller ends (a run failed, or a callback on this thread panics and
            // unwinds), the runs still waiting for inputs see the end, so that `scope` can wait
            // for them.
            let guard = ClearOnDrop(&mut queues);
            let mut caller = Caller::new(n, feed);
            outcome = caller.run(&mut *guard.0, &from_runs, make, release);
            panic = caller.panic.take();
            true
        },
        |e| spawn_error = Some(e),
    );
    if let Some(p) = panic {
        std::panic::resume_unwind(p);
    }
    if let Some(source) = spawn_error {
        return Err(Error::Ring {
            path: PathBuf::from("read_each"),
            op: "thread spawn",
            source,
        });
    }
    outcome
}

/// For each of `runs`, the queue of `queue` inputs through which it is fed, and the job that
/// runs it on a kept thread, telling `to_caller` each outcome, then its end (or its panic).
#[allow(clippy::type_complexity)]
fn jobs<'s, Pr, C>(
    runs: Vec<ManyRun<'s, Pr, C>>,
    queue: usize,
    to_caller: Sender<FromRun<Pr, C>>,
) -> (Queues<Pr, C>, Vec<impl FnOnce() -> bool + Send + 's>)
where
    Pr: Send + 's,
    C: Send + 's,
{
    let mut queues = Vec::with_capacity(runs.len());
    let mut jobs = Vec::with_capacity(runs.len());
    for run in runs {
        let (tx, rx) = sync_channel(queue.max(1));
        queues.push(tx);
        let to_caller = to_caller.clone();
        jobs.push(move || {
            let outbox = Outbox {
                held: RefCell::new(Vec::new()),
                tell: to_caller.clone(),
            };
            let mut feed = ChannelFeed {
                inputs: rx,
                outbox: &outbox,
            };
            let mut release = |i, path, outcome| {
                outbox.put(Box::new((i, path, outcome)));
                Ok(())
            };
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(&mut feed, &mut release)
            }));
            outbox.flush();
            let _ = to_caller.send(match ran {
                Ok(r) => FromRun::End(r),
                Err(payload) => FromRun::Panicked(payload),
            });
            true
        });
    }
    (queues, jobs)
}

/// The calling thread's side of [`parallel`]: what it has handed out, and the outcomes that came
/// before their turn.
struct Caller<'i, Pr, C> {
    /// The runs.
    n: usize,
    /// Inputs taken and not yet released, at most.
    ahead: usize,
    inputs: &'i mut dyn Iterator<Item = Input>,
    /// Outcomes that came before their turn, by input.
    waiting: BTreeMap<usize, Out<Pr, C>>,
    /// An input taken that its run's queue had no room for yet.
    held: Option<(usize, Input, (Pr, C))>,
    /// Inputs handed out.
    fed: usize,
    /// The next input to release.
    head: usize,
    /// Runs that ended well.
    ended: usize,
    /// The caller's inputs are all taken.
    inputs_done: bool,
    /// A run's panic, resumed on the calling thread once every run has returned.
    panic: Option<Box<dyn Any + Send>>,
}

impl<'i, Pr, C> Caller<'i, Pr, C> {
    /// Nothing handed out yet to `n` runs.
    fn new(n: usize, feed: Feeding<'i>) -> Self {
        Caller {
            n,
            ahead: feed.ahead,
            inputs: feed.inputs,
            waiting: BTreeMap::new(),
            held: None,
            fed: 0,
            head: 0,
            ended: 0,
            inputs_done: false,
            panic: None,
        }
    }

    /// Hands out inputs and releases outcomes in input order until every run has ended, one has
    /// failed (its error) or panicked (kept in `panic`), or every run is gone.
    fn run<M>(
        &mut self,
        queues: &mut Queues<Pr, C>,
        from_runs: &Receiver<FromRun<Pr, C>>,
        make: &mut M,
        release: &mut dyn FnMut(usize, PathBuf, Outcome<Pr, C>) -> Result<()>,
    ) -> Result<()>
    where
        M: FnMut(usize, &Path) -> (Pr, C),
    {
        loop {
            self.hand_out(queues, make);
            while let Some(out) = self.waiting.remove(&self.head) {
                let (i, path, out) = *out;
                release(i, path, out)?;
                self.head += 1;
            }
            if self.ended == self.n {
                return Ok(());
            }
            match from_runs.recv() {
                Ok(FromRun::Outs(outs)) => {
                    for out in outs {
                        self.waiting.insert(out.0, out);
                    }
                }
                Ok(FromRun::End(Ok(()))) => self.ended += 1,
                Ok(FromRun::End(Err(e))) => return Err(e),
                Ok(FromRun::Panicked(p)) => {
                    self.panic = Some(p);
                    return Ok(());
                }
                Err(_) => return Ok(()), // every run is gone
            }
        }
    }

    /// Hands out inputs in order, as far as the runs' queues take them and `ahead` allows; once
    /// the inputs are all taken, empties `queues` (the runs see the end).
    fn hand_out<M>(&mut self, queues: &mut Queues<Pr, C>, make: &mut M)
    where
        M: FnMut(usize, &Path) -> (Pr, C),
    {
        while !self.inputs_done && self.fed - self.head < self.ahead {
            let item = match self.held.take() {
                Some(item) => item,
                None => match self.inputs.next() {
                    Some(input) => {
                        let work = make(self.fed, input.name());
                        (self.fed, input, work)
                    }
                    None => {
                        self.inputs_done = true;
                        queues.clear(); // the runs see the end
                        break;
                    }
                },
            };
            match queues[item.0 % self.n].try_send(item) {
                Ok(()) => self.fed += 1,
                Err(TrySendError::Full(item)) => {
                    self.held = Some(item);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => break, // that run ended: its End says why
            }
        }
    }
}
