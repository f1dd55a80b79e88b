//! The reader's verbs over a [`Source`]: [`Reader::read`], [`Reader::read_each`] and their
//! `_split` forms. Each says *how* results come back; the source says *what* is read.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Finished, Reader, Summary};
use crate::engine::many::Input as ManyInput;
use crate::error::{Error, Result};
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
                (What::Path(p), None) => self.read_path_split(&p, prep, &mut joined),
                (What::File(f, n), None) => self.read_file_split(&f, &n, prep, &mut joined),
                (What::Path(p), Some(r)) => {
                    self.read_ranges_split(&p, &r, &opts, prep, &mut joined)
                }
                (What::File(f, n), Some(r)) => {
                    self.read_ranges_file_split(&f, &n, &r, &opts, prep, &mut joined)
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
    /// Whole files are read as [`Reader::read_many`] says (up to
    /// [`FILES_IN_FLIGHT`](super::FILES_IN_FLIGHT) in flight, their `statx`, `openat`, reads and
    /// `close` in batches on a ring per CPU; large and special files with the lanes). Ranges are
    /// read with the reads of every file in flight together, as
    /// [`Reader::read_ranges_many`] says. A source reads whole files or ranges, as its first
    /// input does: among inputs with ranges, an input without any (and the other way round) is
    /// that input's [`Error::InvalidOptions`].
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
            Some(What::File(..)) => super::descriptor_room(),
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
                w => ManyInput::Path(w.name().into()),
            });
            self.many_inputs(&mut each, ahead, make, &mut hand)
        };
        result?;
        // Failed inputs after the last readable one (the iterator is spent by now, or the call
        // ended early; what it still holds is taken so every input is answered).
        readable.for_each(drop);
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
