//! The reader's verbs over a [`Source`]: [`Reader::read`], [`Reader::read_each`] and their
//! `_split` forms. Each says *how* results come back; the source says *what* is read.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Finished, Reader, Summary};
use crate::engine::many::Input as ManyInput;
use crate::error::{Error, Result};
use crate::file::open_read;
use crate::processor::{Combine, Prepare, Processor, Whole};
use crate::ranges::ByteRange;
use crate::source::{Source, What};

impl Reader {
    /// Reads `source` into one processor: each input to its end (or its ranges), one after
    /// another in order, handing the chunks to `proc` in order, each marked with its input's
    /// position ([`Chunk::input`](crate::Chunk::input)) and carrying its file offset. The
    /// processor's `begin` runs before the first input and its `finish` after the last, so a hash
    /// of several inputs is the hash of their bytes one after another (as `cat a b | b3sum`).
    ///
    /// One file is read with the lanes, many reads in flight (its chunks, or its ranges); for
    /// many files each with its own result, [`Reader::read_each`] reads them at once. The first
    /// error stops the call and names the file and offset. [`Summary::bytes`] counts every byte
    /// handed over; the route is the first input's, the notices those of all.
    ///
    /// ```
    /// use ringread::{processor::{Algorithm, Checksum}, Reader, ReadOptions};
    /// let mut sha = Checksum::new(Algorithm::Sha256);
    /// Reader::new(ReadOptions::default()).read("Cargo.toml", &mut sha)?;
    /// println!("{}  Cargo.toml", sha.hex());
    /// # Ok::<(), ringread::Error>(())
    /// ```
    pub fn read<'a, P>(&self, source: impl Into<Source<'a>>, proc: &mut P) -> Result<Summary>
    where
        P: Processor + Send + ?Sized,
    {
        self.read_split(source, &Whole, proc)
    }

    /// [`Reader::read`] with a processor in two halves: `prep` runs on the thread that read each
    /// chunk, as soon as it is read and in parallel with the others; `proc` then gets each chunk
    /// with what `prep` made of it, in order. See [`Prepare`].
    pub fn read_split<'a, Pr, C>(
        &self,
        source: impl Into<Source<'a>>,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        let source = source.into();
        let opts = source.get_range_options();
        let mut inputs = source.into_inputs().enumerate().peekable();
        let mut total: Option<Summary> = None;
        while let Some((index, input)) = inputs.next() {
            let mut joined = Joined {
                inner: &mut *proc,
                index,
                first: total.is_none(),
                last: inputs.peek().is_none(),
            };
            let summary = match (input.what, input.ranges) {
                (What::Path(p) | What::Regular(p), None) => {
                    self.read_path_split(&p, prep, &mut joined)
                }
                (What::File(f, n), None) => self.read_file_split(&f, &n, prep, &mut joined),
                (What::Path(p) | What::Regular(p), Some(r)) => open_read(&p).and_then(|f| {
                    self.read_ranges_opened(&f, &p, Some(&p), &r, &opts, prep, &mut joined)
                }),
                (What::File(f, n), Some(r)) => {
                    self.read_ranges_opened(&f, &n, None, &r, &opts, prep, &mut joined)
                }
                (What::Failed(_, e), _) => Err(e),
            }?;
            total = Some(match total {
                None => summary,
                Some(mut t) => {
                    t.bytes += summary.bytes;
                    for n in summary.notices {
                        if !t.notices.contains(&n) {
                            t.notices.push(n);
                        }
                    }
                    t
                }
            });
        }
        total.ok_or_else(|| Error::InvalidOptions("nothing to read: the source is empty".into()))
    }

    /// Reads every input of `source`, many at once, each with its own processor made by
    /// `make(index, path)`; each input's outcome goes to `done` **in input order**. One input's
    /// error is its own ([`Finished::result`]); the call fails only when reading cannot go on at
    /// all (the ring failed, the reader's [`Cancel`](crate::Cancel) was cancelled).
    ///
    /// A source reads whole files or ranges, as its first input does: among inputs with ranges,
    /// an input without any (and the other way round) is that input's [`Error::InvalidOptions`].
    /// A list of open files is taken from as reading goes, no further ahead of the results than
    /// `ulimit -n` leaves descriptors for.
    ///
    /// **Ordering.** Processors are made in input order; a file's chunks reach its processor in
    /// file order (files themselves are processed in whatever order their reads complete, each
    /// processor on the thread of the lane that reads its file); results are released in input
    /// order.
    ///
    /// **In flight.** Through io_uring, up to [`FILES_IN_FLIGHT`](super::FILES_IN_FLIGHT) files are in flight at once: their
    /// `statx`, `openat`, reads and `close` go through a ring in batches, the open linked to the
    /// first read. With more than one lane (one per CPU by default), each lane's kept thread has a
    /// ring and its share of the files (input `i` goes to lane `i % lanes`), so every CPU copies
    /// and processes; `make` and `done` run on the calling thread.
    ///
    /// **Descriptors.** Files are opened as direct descriptors (an entry each in the ring's
    /// registered file table), which the process's `ulimit -n` does not count. Where the kernel has
    /// no such table (before 5.19) and for files on anonymous devices (FUSE, tmpfs, overlay, btrfs),
    /// they are process descriptors, at most what `ulimit -n` leaves room for; an open refused with
    /// `EMFILE`/`ENFILE` waits for a descriptor (up to 2 s with nothing else in flight) and does not
    /// reach the caller.
    ///
    /// **Budget.** The files in flight share the reader's buffer budget (`depth * chunk_size`):
    /// each has one buffer of that share (at least 4 KiB, at most `chunk_size`), and its chunks are
    /// at most that long; memory is bounded whatever the number of files. Files larger than 16
    /// chunks, and anything that is not a regular file, are read when their turn comes, with the
    /// lanes, as [`Reader::read`] reads them.
    ///
    /// **What is not a regular file.** Each input is looked at (`statx`, or `stat(2)` on the pool)
    /// before it is opened. A directory, a missing file, a symbolic-link loop and whatever cannot
    /// be opened are that input's error (`Error::Open` with the kernel's errno). A FIFO, a
    /// character device (a terminal, `/dev/zero`: endless, so give it `max_bytes`) and a block
    /// device are read when their turn comes, as [`Reader::read`] reads them: a FIFO and a
    /// character device as a stream from its position, one read at a time; a block device by
    /// offset, with the lanes. A FIFO's open waits for a writer, as `cat`'s or `b3sum`'s does:
    /// the files before it are handed back meanwhile, and since results come in input order, the
    /// ones after it (already read, within the window) after it. With a [`Cancel`](crate::Cancel) handle that
    /// wait is a `poll(2)` beside the handle's `eventfd`, not an `open(2)`: a cancel ends the
    /// call with [`Error::Interrupted`] at once, writer or not. A socket cannot be opened by path
    /// (`ENXIO`).
    ///
    /// **Without io_uring** (refused, under `auto`) and under [`Backend::Pread`](crate::Backend::Pread), a pool of
    /// [`POOL_THREADS`](super::POOL_THREADS) kept threads opens and reads the files with `pread(2)`, by the same rules
    /// and with the same ordering; the results' [`Summary::notices`] say why io_uring was not used.
    /// With `O_DIRECT`, or [`Backend::Sync`](crate::Backend::Sync) or [`Backend::Epoll`](crate::Backend::Epoll), files are read one after
    /// another.
    ///
    /// **Ranges.** With ranges, the reads of every file are in flight together: the depth reaches
    /// across the files as it reaches across one file's ranges (see [`Reader::read`]). Each
    /// file's chunks carry their file offsets and are marked with the input's position
    /// ([`Chunk::input`](crate::Chunk::input)); in [`Order::Request`](crate::ranges::Order) the
    /// files' ranges reach their processors input after input, each file's in the order given.
    /// A file that cannot be opened, is not positional (a pipe), whose read fails or whose
    /// processor fails or asks to stop, ends there; the others go on. Inputs are read in groups
    /// of as many files as may be open at once (up to
    /// [`FILES_IN_FLIGHT`](super::FILES_IN_FLIGHT), fewer where `ulimit -n` is low); a group's
    /// results come when the group is read, each with its bytes and the route and notices of its
    /// group. A processor's panic resumes on the caller's thread.
    ///
    /// ```
    /// use ringread::{processor::LineCount, Reader, ReadOptions, Source};
    /// let paths = ["Cargo.toml", "README.md"];
    /// Reader::new(ReadOptions::default()).read_each(Source::paths(paths), |_, _| LineCount::default(),
    ///     |f| println!("{} {}", f.processor.lines, f.path.display()))?;
    /// # Ok::<(), ringread::Error>(())
    /// ```
    pub fn read_each<'a, M, P, D>(
        &self,
        source: impl Into<Source<'a>>,
        mut make: M,
        done: D,
    ) -> Result<()>
    where
        M: FnMut(usize, &Path) -> P,
        P: Processor + Send,
        D: FnMut(Finished<P>),
    {
        self.read_each_split(source, |i, p| (Whole, make(i, p)), done)
    }

    /// [`Reader::read_each`] with processors in two halves (see [`Reader::read_split`]).
    pub fn read_each_split<'a, M, Pr, C, D>(
        &self,
        source: impl Into<Source<'a>>,
        make: M,
        done: D,
    ) -> Result<()>
    where
        M: FnMut(usize, &Path) -> (Pr, C),
        Pr: Prepare + Send,
        C: Combine<Pr::Part> + Send,
        D: FnMut(Finished<C>),
    {
        let source = source.into();
        let opts = source.get_range_options();
        let mut inputs = source.into_inputs().peekable();
        let ranged = inputs.peek().is_some_and(|i| i.ranges.is_some());
        // Open files hold a descriptor each while taken ahead of their results: no more than
        // `ulimit -n` leaves room for (paths are opened in the ring's own file table).
        let ahead = match inputs.peek().map(|i| &i.what) {
            Some(What::File(..)) => super::many::descriptor_room(),
            _ => usize::MAX,
        };
        // Inputs that cannot be read (a tree's entry that could not be listed, an input of the
        // other kind) are handed back at their place among the others' results.
        let order = RefCell::new(Order {
            make,
            failed: VecDeque::new(),
            globals: VecDeque::new(),
            base: 0,
            next: 0,
        });
        let mut readable = std::iter::from_fn(|| {
            let mut o = order.borrow_mut();
            for input in inputs.by_ref() {
                let global = o.next;
                o.next += 1;
                let what = match (input.what, &input.ranges) {
                    (What::Failed(p, e), _) => Err((p, e)),
                    (what, r) if r.is_some() != ranged => Err((what.name().into(), mixed(ranged))),
                    (what, _) => Ok(what),
                };
                match what {
                    Ok(what) => {
                        o.globals.push_back(global);
                        return Some((what, input.ranges));
                    }
                    Err((path, e)) => o.failed.push_back((global, path, e)),
                }
            }
            None
        });
        let make = |i: usize, p: &Path| {
            let mut o = order.borrow_mut();
            let g = o.global(i);
            (o.make)(g, p)
        };
        let mut done = done;
        let mut hand = |mut f: Finished<C>| {
            let g = order.borrow().global(f.index);
            order.borrow_mut().release_failed(Some(g), &mut done);
            f.index = g;
            order.borrow_mut().base_past(g);
            done(f);
        };
        let result = if ranged {
            let mut each = readable.by_ref().map(|(what, ranges)| match what {
                What::File(f, n) => (n, Some(f), ranges.unwrap_or_else(no_ranges)),
                w => (w.name().into(), None, ranges.unwrap_or_else(no_ranges)),
            });
            self.ranges_each(&mut each, &opts, make, &mut hand)
        } else {
            let mut each = readable.by_ref().map(|(what, _)| match what {
                What::File(f, n) => ManyInput::Open(f, n),
                What::Regular(p) => ManyInput::Regular(p),
                w => ManyInput::Path(w.name().into()),
            });
            self.many_inputs(&mut each, ahead, make, &mut hand)
        };
        result?;
        // Failed inputs after the last readable one (the engine has taken every input by now).
        order.borrow_mut().release_failed(None, &mut done);
        Ok(())
    }
}

/// The ranges of an input that has none, never used (the input is refused before it is read).
fn no_ranges() -> Arc<[ByteRange]> {
    Arc::from([])
}

/// The error of an input of the other kind than the source's first.
fn mixed(ranged: bool) -> Error {
    Error::InvalidOptions(if ranged {
        "an input without ranges among inputs read as ranges (give it ranges, or read it apart)"
            .into()
    } else {
        "an input with ranges among inputs read whole (give the first input ranges too, or read \
         it apart)"
            .into()
    })
}

/// What [`Reader::read_each_split`] keeps to hand back results in input order, failed inputs
/// included: the engine numbers only the inputs it reads.
struct Order<M, E> {
    make: M,
    /// Failed inputs not handed back yet: their position, name and error.
    failed: VecDeque<(usize, PathBuf, E)>,
    /// The position among all inputs of each input the engine reads, from its `base`-th.
    globals: VecDeque<usize>,
    base: usize,
    /// The position of the next input taken.
    next: usize,
}

impl<M, E> Order<M, E> {
    /// The position among all inputs of the engine's input `i`.
    fn global(&self, i: usize) -> usize {
        self.globals[i - self.base]
    }

    /// Forgets the positions of the engine's inputs up to the one at `global` (handed back).
    fn base_past(&mut self, global: usize) {
        while self.globals.front().is_some_and(|&g| g <= global) {
            self.globals.pop_front();
            self.base += 1;
        }
    }
}

impl<M> Order<M, Error> {
    /// Hands back the failed inputs before `before` (all of them with `None`).
    fn release_failed<Pr, C, D>(&mut self, before: Option<usize>, done: &mut D)
    where
        M: FnMut(usize, &Path) -> (Pr, C),
        D: FnMut(Finished<C>),
    {
        while self
            .failed
            .front()
            .is_some_and(|(g, _, _)| before.is_none_or(|b| *g < b))
        {
            let (index, path, e) = self.failed.pop_front().expect("checked above");
            let (_, processor) = (self.make)(index, &path);
            done(Finished {
                index,
                path,
                result: Err(e),
                processor,
            });
        }
    }
}

/// One input's share of a processor that reads several one after another: `begin` before the
/// first only, `finish` after the last only, chunks marked with the input's position.
struct Joined<'p, C: ?Sized> {
    inner: &'p mut C,
    index: usize,
    first: bool,
    last: bool,
}

impl<Part, C: Combine<Part> + ?Sized> Combine<Part> for Joined<'_, C> {
    fn begin(&mut self) -> std::io::Result<()> {
        if self.first {
            self.inner.begin()?;
        }
        Ok(())
    }

    fn combine(&mut self, chunk: &crate::Chunk<'_>, part: Part) -> std::io::Result<bool> {
        self.inner.combine(&chunk.of_input(self.index), part)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if self.last {
            self.inner.finish()?;
        }
        Ok(())
    }
}
