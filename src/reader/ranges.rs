//! [`Reader::read_ranges`]: many ranges of one file, read by the engine's lanes (see
//! [`crate::ranges`] for the plan, and `docs/ARCHITECTURE.md`, "Range reads").

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::{inspect, open_read, Engine, Inspected, Reader, Summary};
use crate::chunks::Chunks;
use crate::engine::Source;
use crate::error::{Error, Result};
use crate::options::Backend;
use crate::processor::{Combine, Prepare, Processor, Whole};
use crate::ranges::{ByteRange, Order, Plan, RangeOptions};

/// Whether at least 99% of a regular file is in the page cache (cachestat, else mincore).
fn mostly_cached(file: &File) -> bool {
    crate::residency::of_file(file).is_ok_and(|r| r.fraction() >= 0.99)
}

impl Reader {
    /// Reads `ranges` of the file at `path`, many reads in flight, handing each range's bytes to
    /// `proc` as [`Chunk`](crate::Chunk)s that carry the range's file offset: in the order given,
    /// or as the reads complete ([`Order::Completion`]).
    ///
    /// Each read is at most the chunk size and lands in the reader's (registered) buffers; up to
    /// `depth` are in flight, split over the lanes as a file's chunks are. Ranges close together
    /// share a read ([`RangeOptions::merge_gap`]); a range longer than the chunk size arrives as
    /// consecutive chunks. A range past the end gives the bytes up to the end, like `pread(2)`; an
    /// empty range gives nothing. Under `O_DIRECT` the reads are widened to the file's alignment
    /// and only the asked bytes are handed over. A failed read stops the call with
    /// [`Error::Read`] naming its offset. [`Summary::bytes`] counts the bytes handed over.
    ///
    /// For random reads of small ranges, make the reader with a chunk size of the usual range
    /// (4 KiB, say) and the depth of reads to keep in flight. Under [`Backend::Auto`] a file
    /// that is (almost) wholly in the page cache is read with `pread(2)` lanes, which cost less
    /// CPU per cached read than io_uring; otherwise, and with `O_DIRECT`, through io_uring.
    ///
    /// ```
    /// use ringread::{ranges::{ByteRange, RangeOptions}, ReadOptions, Reader};
    /// let reader = Reader::new(ReadOptions::builder().chunk_size(4096).depth(32).build()?);
    /// let file = std::fs::read("Cargo.toml").unwrap();
    /// let ranges = [ByteRange::new(10, 20), ByteRange::new(0, 5), ByteRange::new(1 << 40, 9)];
    /// let mut got = Vec::new();
    /// let mut copy = ringread::processor::from_fn(|c: &ringread::Chunk<'_>| {
    ///     got.extend_from_slice(c);
    ///     Ok(true)
    /// });
    /// reader.read_ranges("Cargo.toml", &ranges, &RangeOptions::new(), &mut copy)?;
    /// assert_eq!(got, [&file[10..30], &file[..5]].concat());
    /// # Ok::<(), ringread::Error>(())
    /// ```
    pub fn read_ranges<P>(
        &self,
        path: impl AsRef<Path>,
        ranges: &[ByteRange],
        opts: &RangeOptions,
        proc: &mut P,
    ) -> Result<Summary>
    where
        P: Processor + Send + ?Sized,
    {
        let path = path.as_ref();
        let file = open_read(path)?;
        self.read_ranges_opened(&file, path, Some(path), ranges, opts, &Whole, proc)
    }

    /// [`Reader::read_ranges`] of a file the caller opened (its position is neither used nor
    /// moved); `name` is what errors call it.
    pub fn read_ranges_file<P>(
        &self,
        file: &File,
        name: impl AsRef<Path>,
        ranges: &[ByteRange],
        opts: &RangeOptions,
        proc: &mut P,
    ) -> Result<Summary>
    where
        P: Processor + Send + ?Sized,
    {
        self.read_ranges_file_split(file, name, ranges, opts, &Whole, proc)
    }

    /// [`Reader::read_ranges_file`] with a processor in two halves, as
    /// [`Reader::read_ranges_split`].
    pub fn read_ranges_file_split<Pr, C>(
        &self,
        file: &File,
        name: impl AsRef<Path>,
        ranges: &[ByteRange],
        opts: &RangeOptions,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        self.read_ranges_opened(file, name.as_ref(), None, ranges, opts, prep, proc)
    }

    /// [`Reader::read_ranges`] with a processor in two halves (see [`Prepare`]): `prep` runs on
    /// each range's bytes on the thread that read them, `proc` gets them with what `prep` made.
    pub fn read_ranges_split<Pr, C>(
        &self,
        path: impl AsRef<Path>,
        ranges: &[ByteRange],
        opts: &RangeOptions,
        prep: &Pr,
        proc: &mut C,
    ) -> Result<Summary>
    where
        Pr: Prepare,
        C: Combine<Pr::Part> + Send + ?Sized,
    {
        let path = path.as_ref();
        let file = open_read(path)?;
        self.read_ranges_opened(&file, path, Some(path), ranges, opts, prep, proc)
    }

    #[allow(clippy::too_many_arguments)]
    fn read_ranges_opened<Pr, C>(
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
        let Inspected {
            fd,
            positional,
            direct,
            mut notices,
            rw_flags,
            drop_behind,
            ..
        } = inspect(
            file,
            name,
            path,
            self.opts.direct,
            self.opts.dontcache,
            self.opts.chunk_size,
        )?;
        if !positional {
            return Err(Error::InvalidOptions(format!(
                "{}: ranges are read at offsets, which only regular files and block devices have",
                name.display()
            )));
        }
        let align = direct.as_ref().map(|(_, a)| *a);
        let chunk = self.opts.chunk_size;
        let plan = Plan::new(
            ranges,
            chunk as u64,
            align.unwrap_or(1) as u64,
            opts.get_merge_gap(),
        );
        let src = Source {
            path: name,
            fd,
            direct_fd: direct.as_ref().map(|(f, _)| f.as_raw_fd()),
            rw_flags,
            drop_behind,
            rules: Chunks::for_extents(chunk, align),
            plan: Some(&plan),
            ordered: opts.get_order() == Order::Request,
        };
        let engine = match self.choose_engine(name, fd, positional, &mut notices)? {
            Engine::Epoll => Engine::Sync,
            // Cached buffered reads: a `pread(2)` costs less CPU than the same read through
            // io_uring on the kernels measured (docs/BENCHMARKS.md, section 15: the engine's pread
            // lanes did 1.25x the IOPS of its io_uring lanes on random 4 KiB reads of a cached
            // file), and every lane still reads on its own CPU. Under `auto` only, and only when
            // the whole file is in the page cache (one `cachestat`).
            Engine::Uring
                if self.opts.backend == Backend::Auto
                    && src.direct_fd.is_none()
                    && mostly_cached(file) =>
            {
                Engine::Pread
            }
            e => e,
        };
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
