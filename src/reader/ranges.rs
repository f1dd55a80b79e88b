//! [`Reader::read`]: many ranges of one file, read by the engine's lanes (see
//! [`crate::ranges`] for the plan, and `docs/ARCHITECTURE.md`, "Range reads").

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::many::descriptor_room;
use super::{Engine, Finished, Notice, Reader, Route, Summary, FILES_IN_FLIGHT};
use crate::chunks::Chunks;
use crate::engine::lanes::FileOutcome;
use crate::engine::{Job, Member};
use crate::error::{Error, Result};
use crate::file::{not_positional, open_read, Inspected};
use crate::options::Backend;
use crate::processor::{Combine, Prepare};
use crate::ranges::{ByteRange, Order, Plan, RangeOptions};

/// The ordered half of a range read over several files: each chunk goes to its file's processor,
/// marked with that file's position among the call's inputs.
struct Dispatch<'a, C> {
    procs: Vec<&'a mut C>,
    inputs: Vec<usize>,
}

impl<Part, C: Combine<Part>> Combine<Part> for Dispatch<'_, C> {
    fn combine(&mut self, chunk: &crate::Chunk<'_>, part: Part) -> std::io::Result<bool> {
        let m = chunk.input();
        self.procs[m].combine(&chunk.of_input(self.inputs[m]), part)
    }
}

/// The parallel half of a range read over several files: each chunk is prepared by its file's.
struct DispatchPrep<'a, Pr> {
    preps: Vec<&'a Pr>,
}

impl<Pr: Prepare> Prepare for DispatchPrep<'_, Pr> {
    type Part = Pr::Part;
    fn prepare(&self, chunk: &crate::Chunk<'_>) -> Pr::Part {
        self.preps[chunk.input()].prepare(chunk)
    }
}

/// One input of a group of [`Reader::read_each`], opened (or not).
struct Entry<R> {
    index: usize,
    path: PathBuf,
    /// The file, when the caller opened it.
    given: Option<File>,
    ranges: R,
    /// The file and how to read it; `None` once it failed.
    opened: Option<(File, Inspected)>,
    error: Option<Error>,
}

/// How many files of a group of [`Reader::read_each`] are looked at to tell whether the
/// group is in the page cache.
const CACHE_SAMPLE: usize = 8;

/// Whether at least 99% of a regular file of `size` bytes is in the page cache (cachestat, else
/// mincore).
fn mostly_cached(file: &File, size: u64) -> bool {
    crate::residency::of_range_sized(file, size, 0, size).is_ok_and(|r| r.fraction() >= 0.99)
}

impl Reader {
    /// Ranges of many inputs, each a path or an open file (`(name, Some(file), ranges)`), with a
    /// processor each in two halves: [`Reader::read_each`]'s way.
    pub(crate) fn ranges_each<R, M, Pr, C, D>(
        &self,
        inputs: &mut dyn Iterator<Item = (PathBuf, Option<File>, R)>,
        opts: &RangeOptions,
        mut make: M,
        mut done: D,
    ) -> Result<()>
    where
        R: AsRef<[ByteRange]>,
        M: FnMut(usize, &Path) -> (Pr, C),
        Pr: Prepare + Send,
        C: Combine<Pr::Part> + Send,
        D: FnMut(Finished<C>),
    {
        // Two descriptors a file where it may get an O_DIRECT twin.
        let per_file = if self.opts.direct || self.opts.dontcache {
            2
        } else {
            1
        };
        let per_group = (descriptor_room() / per_file).clamp(1, FILES_IN_FLIGHT);
        let mut inputs = inputs.enumerate().peekable();
        while inputs.peek().is_some() {
            let mut procs = Vec::new();
            let group = inputs
                .by_ref()
                .take(per_group)
                .map(|(index, (path, given, ranges))| {
                    procs.push(make(index, &path));
                    Entry {
                        index,
                        path,
                        given,
                        ranges,
                        opened: None,
                        error: None,
                    }
                });
            let group: Vec<Entry<R>> = group.collect();
            self.ranges_group(group, procs, opts, &mut done)?;
        }
        Ok(())
    }

    /// Reads one group of [`Reader::read_each`]'s inputs, all in flight together.
    fn ranges_group<R, Pr, C, D>(
        &self,
        mut group: Vec<Entry<R>>,
        mut procs: Vec<(Pr, C)>,
        opts: &RangeOptions,
        done: &mut D,
    ) -> Result<()>
    where
        R: AsRef<[ByteRange]>,
        Pr: Prepare + Send,
        C: Combine<Pr::Part> + Send,
        D: FnMut(Finished<C>),
    {
        let lens = group
            .iter()
            .flat_map(|e| e.ranges.as_ref().iter().map(|r| r.len));
        if let Some(tuned) = self.ranges_reader(lens) {
            return tuned.ranges_group(group, procs, opts, done);
        }
        for (e, (_, proc)) in group.iter_mut().zip(&mut procs) {
            let opened = self.open_entry(e).and_then(|(file, ins)| {
                proc.begin().map_err(|source| Error::Process {
                    path: e.path.clone(),
                    offset: 0,
                    source,
                })?;
                Ok((file, ins))
            });
            match opened {
                Ok(o) => e.opened = Some(o),
                Err(err) => e.error = Some(err),
            }
        }
        let mut notices = Vec::new();
        let read = match self.group_engine(&group, &mut notices)? {
            Some(engine) => self.read_group(&group, &mut procs, engine, opts, &mut notices)?,
            None => None,
        };
        hand_back(group, procs, read, &notices, done);
        Ok(())
    }

    /// Opens an input of a group (or takes the file the caller opened) and looks at it: a FIFO
    /// is refused before it is opened (opening one waits for a writer), and so is a socket or a
    /// character device, and anything else not positional once looked at.
    fn open_entry<R>(&self, e: &mut Entry<R>) -> Result<(File, Inspected)> {
        let given = e.given.take();
        let meta = match &given {
            Some(file) => file.metadata(),
            None => std::fs::metadata(&e.path),
        };
        let special = meta.is_ok_and(|m| {
            let t = m.file_type();
            t.is_fifo() || t.is_socket() || t.is_char_device()
        });
        let by_path = given.is_none().then_some(e.path.as_path());
        let file = match given {
            _ if special => Err(not_positional(&e.path)),
            Some(file) => Ok(file),
            None => open_read(&e.path),
        }?;
        let ins = self.inspect(&file, &e.path, by_path)?;
        if !ins.positional {
            return Err(not_positional(&e.path));
        }
        Ok((file, ins))
    }

    /// The engine of a group: the weakest any of its opened files allows (a file on FUSE reads the
    /// group on one thread), asked once a device (the group's files are mostly on one or two);
    /// `None` where no file opened. The files' notices go to `notices`.
    fn group_engine<R>(
        &self,
        group: &[Entry<R>],
        notices: &mut Vec<Notice>,
    ) -> Result<Option<Engine>> {
        let mut engine = None;
        let mut devices: Vec<(u64, Engine)> = Vec::new();
        for e in group {
            if let Some((_, ins)) = &e.opened {
                let chosen = match devices.iter().find(|(dev, _)| *dev == ins.dev) {
                    Some(&(_, chosen)) => chosen,
                    None => {
                        let chosen = self.choose_engine(&e.path, ins.fd, true, notices)?;
                        devices.push((ins.dev, chosen));
                        chosen
                    }
                };
                engine = Some(match (engine, chosen) {
                    (Some(Engine::Sync), _) | (_, Engine::Sync | Engine::Epoll) => Engine::Sync,
                    (Some(Engine::Pread), _) | (_, Engine::Pread) => Engine::Pread,
                    _ => chosen,
                });
            }
            for n in e.opened.iter().flat_map(|(_, ins)| &ins.notices) {
                if !notices.contains(n) {
                    notices.push(n.clone());
                }
            }
        }
        Ok(engine)
    }

    /// Reads the opened files of a group with the lanes, as one range plan over all of them:
    /// the route, and how each file went (`None` where no file opened).
    fn read_group<R, Pr, C>(
        &self,
        group: &[Entry<R>],
        procs: &mut [(Pr, C)],
        engine: Engine,
        opts: &RangeOptions,
        notices: &mut Vec<Notice>,
    ) -> Result<Option<(Route, Vec<FileOutcome>)>>
    where
        R: AsRef<[ByteRange]>,
        Pr: Prepare + Send,
        C: Combine<Pr::Part> + Send,
    {
        let chunk = self.opts.chunk_size;
        let align = group
            .iter()
            .filter_map(|e| e.opened.as_ref()?.1.direct.as_ref().map(|(_, a)| *a))
            .max();
        let (plan, members, inputs) = group_plan(group, chunk, align, opts);
        let Some(first) = members.first() else {
            return Ok(None);
        };
        let src = Job {
            file: Member {
                direct_fd: members.iter().find_map(|m| m.direct_fd),
                ..*first
            },
            rules: Chunks::for_extents(chunk, align),
            plan: Some(&plan),
            ordered: opts.get_order() == Order::Request,
            members: &members,
        };
        // Whether the group is cached, from a sample of its files spread over it: a system
        // call a file costs small files as much as the choice saves them.
        let engine = self.ranges_engine(engine, src.file.direct_fd.is_some(), || {
            let opened: Vec<_> = group.iter().filter_map(|e| e.opened.as_ref()).collect();
            let step = opened.len().div_ceil(CACHE_SAMPLE).max(1);
            opened
                .iter()
                .step_by(step)
                .all(|(file, ins)| mostly_cached(file, ins.size_hint))
        });
        let (preps, procs) = procs
            .iter_mut()
            .zip(group)
            .filter(|(_, e)| e.opened.is_some())
            .map(|((pr, c), _)| (&*pr, c))
            .unzip();
        let prep = DispatchPrep { preps };
        let mut dispatch = Dispatch { procs, inputs };
        let (_, route, files) =
            self.read_lanes_files(&src, engine, &prep, &mut dispatch, notices)?;
        Ok(Some((route, files)))
    }

    /// The engine for range reads, from what [`Reader::choose_engine`] chose: epoll has nothing to
    /// wait for on a positional file, so it reads as `sync`.
    ///
    /// Cached buffered reads: a `pread(2)` costs less CPU than the same read through io_uring on
    /// the kernels measured (docs/BENCHMARKS.md, "Which lanes for a cached file": the engine's
    /// pread lanes did 1.25x the IOPS of its io_uring lanes on random 4 KiB reads of a cached
    /// file), and every lane still reads on its own CPU. Under `auto` only, and only when the
    /// files are (almost) wholly in the page cache (`cached`: one `cachestat` a file, or a group's
    /// sample of [`CACHE_SAMPLE`] files).
    fn ranges_engine(&self, chosen: Engine, direct: bool, cached: impl FnOnce() -> bool) -> Engine {
        match chosen {
            Engine::Epoll => Engine::Sync,
            Engine::Uring if self.opts.backend == Backend::Auto && !direct && cached() => {
                Engine::Pread
            }
            e => e,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn read_ranges_opened<Pr, C>(
        &self,
        file: &File,
        name: &Path,
        path: Option<&Path>,
        ranges: &[ByteRange],
        opts: &RangeOptions,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        if let Some(tuned) = self.ranges_reader(ranges.iter().map(|r| r.len)) {
            return tuned.read_ranges_opened(file, name, path, ranges, opts, prep, proc);
        }
        let inspected = self.inspect(file, name, path)?;
        let member = inspected.member(name);
        let Inspected {
            fd,
            positional,
            direct,
            mut notices,
            size_hint,
            ..
        } = inspected;
        if !positional {
            return Err(not_positional(name));
        }
        let align = direct.as_ref().map(|(_, a)| *a);
        let chunk = self.opts.chunk_size;
        let plan = Plan::new(
            ranges,
            chunk as u64,
            align.unwrap_or(1) as u64,
            opts.get_merge_gap(),
        );
        let src = Job {
            file: member,
            rules: Chunks::for_extents(chunk, align),
            plan: Some(&plan),
            ordered: opts.get_order() == Order::Request,
            members: &[],
        };
        let engine = self.choose_engine(name, fd, positional, &mut notices)?;
        let engine = self.ranges_engine(engine, src.file.direct_fd.is_some(), || {
            mostly_cached(file, size_hint)
        });
        proc.begin().map_err(|source| Error::Process {
            path: name.to_path_buf(),
            offset: 0,
            source,
        })?;
        let (bytes, route) = self.read_lanes(&src, engine, prep, proc, &mut notices)?;
        proc.finish().map_err(|source| Error::Process {
            path: name.to_path_buf(),
            offset: ranges.last().map_or(0, ByteRange::end),
            source,
        })?;
        Ok(Summary {
            bytes,
            route,
            notices,
        })
    }
}

/// One range plan over the opened files of a group (`chunk`-sized reads, aligned to `align`
/// under `O_DIRECT`), the files it names (their descriptors and flags), and their positions
/// among the call's inputs.
fn group_plan<'e, R: AsRef<[ByteRange]>>(
    group: &'e [Entry<R>],
    chunk: usize,
    align: Option<usize>,
    opts: &RangeOptions,
) -> (Plan, Vec<Member<'e>>, Vec<usize>) {
    let mut plan = Plan::default();
    let mut members = Vec::new();
    let mut inputs = Vec::new();
    for e in group {
        if let Some((_, ins)) = &e.opened {
            let one = Plan::new(
                e.ranges.as_ref(),
                chunk as u64,
                align.unwrap_or(1) as u64,
                opts.get_merge_gap(),
            );
            plan.append(one, members.len() as u32);
            members.push(ins.member(&e.path));
            inputs.push(e.index);
        }
    }
    (plan, members, inputs)
}

/// Hands back every input of a group, in order, with its processor: its error, or (the group
/// read: `read`) its bytes with the group's route and `notices`, once its processor finished.
fn hand_back<R, Pr, C, D>(
    group: Vec<Entry<R>>,
    procs: Vec<(Pr, C)>,
    read: Option<(Route, Vec<FileOutcome>)>,
    notices: &[Notice],
    done: &mut D,
) where
    R: AsRef<[ByteRange]>,
    Pr: Prepare,
    C: Combine<Pr::Part>,
    D: FnMut(Finished<C>),
{
    let (route, outcomes) = match read {
        Some((route, outcomes)) => (Some(route), outcomes),
        None => (None, Vec::new()),
    };
    let mut outcomes = outcomes.into_iter();
    for (mut e, (_, mut proc)) in group.into_iter().zip(procs) {
        let result = match (e.error.take(), &e.opened, route.as_ref()) {
            (Some(err), _, _) => Err(err),
            (None, Some(_), Some(route)) => {
                let outcome = outcomes.next().unwrap_or_default();
                match outcome.error {
                    Some(err) => Err(err),
                    None => proc.finish().map_err(|source| Error::Process {
                        path: e.path.clone(),
                        offset: e.ranges.as_ref().last().map_or(0, ByteRange::end),
                        source,
                    }),
                }
                .map(|()| Summary {
                    bytes: outcome.bytes,
                    route: route.clone(),
                    notices: notices.to_vec(),
                })
            }
            _ => unreachable!("an input is either opened or failed, and opened ones are read"),
        };
        drop(e.opened.take());
        done(Finished {
            index: e.index,
            path: e.path,
            result,
            processor: proc,
        });
    }
}
