//! The driver's verbs over a [`Source`]: [`Driver::chunks`] (an async stream of chunks),
//! [`Driver::files`] (an async stream of whole files), [`Driver::ranges`] (an async stream of
//! ranges) and [`Driver::range_file`] (`read_at` from many tasks), with the options of
//! [`Driver::with_options`].

use std::sync::Arc;

use super::driver::Driver;
use super::file::{default_options, FileStream};
use super::many::ReadMany;
use super::ranges::{RangeFile, RangeStream};
use crate::error::{Error, Result};
use crate::options::ReadOptions;
use crate::source::{Input, Source, What};

impl Driver {
    /// This driver, reading with `opts` (chunk size, depth, `direct`, `dontcache`, `max_bytes`,
    /// registered buffers, the cached fast path): a handle that shares the driver's threads, rings
    /// and budget, as cheap as a clone. Without it a driver reads with [`default_options`].
    /// `threads` and `sqpoll` belong to the synchronous engine (a driver's threads are set by
    /// [`Driver::with_threads`]): options that set them are refused, as is a chunk larger than
    /// the whole budget.
    ///
    /// ```no_run
    /// # fn f() -> Result<(), ringread::Error> {
    /// use ringread::{stream::Driver, ReadOptions};
    /// let direct = Driver::global()?.with_options(ReadOptions::builder().direct(true).build()?)?;
    /// let file = direct.range_file("data.bin")?;
    /// # drop(file); Ok(()) }
    /// ```
    pub fn with_options(&self, opts: ReadOptions) -> Result<Driver> {
        super::file::validate(&opts, self.budget())?;
        Ok(Driver {
            inner: Arc::clone(&self.inner),
            opts: Some(Arc::new(opts)),
        })
    }

    /// The options this driver's verbs read with ([`Driver::with_options`]).
    pub fn options(&self) -> ReadOptions {
        self.opts
            .as_deref()
            .cloned()
            .unwrap_or_else(default_options)
    }

    /// The chunks of one input, in file order, as an async stream ([`FileStream`]): a path (its
    /// `open(2)` runs on the calling thread, as `std::fs::File::open`'s does: for a path that may
    /// block there, a FIFO or a network file system, open it elsewhere, with
    /// `tokio::fs::File::open`, and give the file) or an open file, read from its current
    /// position (a pipe, a socket, standard input). Ranges come from [`Driver::ranges`] and many
    /// files from [`Driver::files`]: a source of those is refused before any I/O.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// # async fn f() -> Result<(), ringread::Error> {
    /// let mut chunks = ringread::stream::Driver::global()?.chunks("/var/log/syslog")?;
    /// while let Some(chunk) = chunks.next().await {
    ///     let bytes = chunk?.into_bytes(); // bytes::Bytes, no copy; the buffer returns on drop
    ///     # drop(bytes);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn chunks<'a>(&self, source: impl Into<Source<'a>>) -> Result<FileStream> {
        let input = whole_one(source.into(), "Driver::chunks", "Driver::ranges")?;
        let opts = self.options();
        match input.what {
            What::Path(p) | What::Regular(p) => self.open(p, &opts),
            What::File(f, n) => self.open_file(f, n, &opts),
            What::Failed(_, e) => Err(e),
        }
    }

    /// The inputs of a list or a tree, each read whole, many in flight on the driver's threads:
    /// an async stream of `(index, Result<Bytes>)` in input order ([`ReadMany`], which says
    /// how). Each input's error is its own. Only paths are read this way (their `statx`,
    /// `openat`, read and `close` run on the driver's rings); open files are refused (read each
    /// with [`Driver::chunks`]), and so are ranges (read them with [`Driver::ranges`]). A tree is
    /// walked when this is called, on the calling thread. With
    /// [`ReadOptionsBuilder::dontcache`](crate::ReadOptionsBuilder::dontcache) the files are read
    /// uncached ([`ReadMany::dontcache`]).
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// # async fn f() -> Result<(), ringread::Error> {
    /// let mut files = ringread::stream::Driver::global()?.files(ringread::Source::tree("src"))?;
    /// while let Some((i, bytes)) = files.next().await {
    ///     println!("{i}: {} bytes", bytes?.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn files<'a>(&self, source: impl Into<Source<'a>>) -> Result<ReadMany> {
        let mut paths = Vec::new();
        let mut globals = Vec::new();
        let mut failed = Vec::new();
        for (g, input) in source.into().into_inputs().enumerate() {
            if input.ranges.is_some() {
                return Err(Error::InvalidOptions(
                    "Driver::files reads whole files: read ranges with Driver::ranges".into(),
                ));
            }
            match input.what {
                What::Path(p) | What::Regular(p) => {
                    paths.push(p);
                    globals.push(g);
                }
                What::File(_, n) => {
                    return Err(Error::InvalidOptions(format!(
                        "Driver::files opens the files it reads by path: {} is open already \
                         (read it with Driver::chunks)",
                        n.display()
                    )))
                }
                What::Failed(_, e) => failed.push((g, e)),
            }
        }
        let dontcache = self.options().dontcache();
        Ok(self
            .whole_files(paths)
            .dontcache(dontcache)
            .with_failed(globals, failed))
    }

    /// The ranges of one input ([`Source::ranges`], or an [`Input`] with its own), in the order
    /// given, as an async stream of `(offset, Bytes)` with up to the options' `depth` reads in
    /// flight ([`RangeFile::ranges`], which says how; `direct` reads with `O_DIRECT`).
    pub fn ranges<'a>(&self, source: impl Into<Source<'a>>) -> Result<RangeStream> {
        let input = source.into().into_one("Driver::ranges")?;
        let Some(ranges) = input.ranges.clone() else {
            return Err(Error::InvalidOptions(
                "Driver::ranges reads ranges: give the source some (Source::ranges); a whole \
                 file's chunks come from Driver::chunks"
                    .into(),
            ));
        };
        let depth = self.options().depth();
        let file = self.range_file(Input {
            ranges: None,
            ..input
        })?;
        Ok(file.ranges(ranges.iter().copied(), depth))
    }

    /// One input opened for [`RangeFile::read_at`] from any number of tasks: a path (opened on
    /// the calling thread) or a file the caller opened (its position neither used nor moved).
    /// With the options' `direct`, reads use `O_DIRECT`. A source with ranges or of many inputs
    /// is refused before any I/O (ranges come from [`Driver::ranges`]).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), ringread::Error> {
    /// let file = ringread::stream::Driver::global()?.range_file("data.bin")?;
    /// let page = file.read_at(8192, 4096).await?; // Bytes over the driver's buffer, no copy
    /// # drop(page); Ok(()) }
    /// ```
    pub fn range_file<'a>(&self, source: impl Into<Source<'a>>) -> Result<RangeFile> {
        let input = whole_one(source.into(), "Driver::range_file", "Driver::ranges")?;
        let opts = self.options();
        match input.what {
            What::Path(p) | What::Regular(p) => self.open_ranges_with(p, &opts),
            What::File(f, n) => self.ranges_file_with(f, n, &opts),
            What::Failed(_, e) => Err(e),
        }
    }
}

/// The only input of a source of one, read whole (`verb` names the verb in the errors, `ranged`
/// the one that reads ranges).
fn whole_one(source: Source<'_>, verb: &str, ranged: &str) -> Result<Input> {
    let input = source.into_one(verb)?;
    if input.ranges.is_some() {
        return Err(Error::InvalidOptions(format!(
            "{verb} reads a whole file: ranges come from {ranged}"
        )));
    }
    Ok(input)
}
