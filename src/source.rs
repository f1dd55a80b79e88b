//! [`Source`]: what to read, said once for every way of reading it.
//!
//! A source is a path, an open file, a list of either, or a tree, each whole or as ranges. The
//! same description goes to the synchronous [`Reader`](crate::Reader)'s verbs
//! ([`read`](crate::Reader::read), [`read_each`](crate::Reader::read_each) and their `_split`
//! forms) and to the async driver's ([`chunks`], [`files`], [`range_file`]); a verb that cannot
//! serve a source says so with [`Error::InvalidOptions`] before any
//! I/O.
//!
//! ```
//! use ringread::{ranges::ByteRange, Input, Source};
//! let one = Source::from("Cargo.toml");                      // a path (&str, &Path, PathBuf)
//! let list = Source::paths(["Cargo.toml", "README.md"]);      // many, in this order
//! let head = Source::path("Cargo.toml").ranges([ByteRange::new(0, 16)]);
//! let mixed = Source::inputs([
//!     Input::path("Cargo.toml").ranges([ByteRange::new(0, 4)]),
//!     Input::file(std::fs::File::open("README.md")?, "README.md"),
//! ]);
//! # let _ = (one, list, head, mixed);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`chunks`]: crate::stream::Driver::chunks
//! [`files`]: crate::stream::Driver::files
//! [`range_file`]: crate::stream::Driver::range_file

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ranges::{ByteRange, RangeOptions};

/// What to read: one input or many, each whole or as ranges (see the [module](self) docs).
///
/// Made with [`Source::path`], [`Source::file`], [`Source::paths`], [`Source::files`],
/// [`Source::inputs`] or `Source::tree` (feature `tree`), or from a path (`"a.log".into()`); then
/// [`Source::ranges`] reads only those ranges of each input, with [`Source::range_options`].
pub struct Source<'a> {
    inputs: Inputs<'a>,
    ranges: Option<Arc<[ByteRange]>>,
    range_options: RangeOptions,
}

enum Inputs<'a> {
    One(Input),
    Many(Box<dyn Iterator<Item = Input> + 'a>),
    #[cfg(feature = "tree")]
    Tree {
        roots: Vec<PathBuf>,
        follow: bool,
    },
}

/// One input of a [`Source`]: a path or an open file, whole or as its own ranges.
#[derive(Debug)]
pub struct Input {
    pub(crate) what: What,
    pub(crate) ranges: Option<Arc<[ByteRange]>>,
}

/// A path to open, or a file open already (with the name its errors and results carry), or a
/// failure found before it could be read (a tree's entry that could not be listed).
#[derive(Debug)]
pub(crate) enum What {
    Path(PathBuf),
    /// A path its source knows names a regular file ([`Input::regular`]).
    Regular(PathBuf),
    File(File, PathBuf),
    #[cfg_attr(not(feature = "tree"), allow(dead_code))]
    Failed(PathBuf, Error),
}

impl What {
    /// The name errors and results carry.
    pub(crate) fn name(&self) -> &Path {
        match self {
            What::Path(p) | What::Regular(p) | What::File(_, p) | What::Failed(p, _) => p,
        }
    }
}

impl Input {
    /// The file at `path`, opened when its turn comes.
    pub fn path(path: impl Into<PathBuf>) -> Input {
        Input {
            what: What::Path(path.into()),
            ranges: None,
        }
    }

    /// The file at `path`, which the caller knows to be a regular file (a directory walk's entry
    /// type says so, as `Source::tree`'s does): read many at a time, it is opened and read with no
    /// `statx` first where no FUSE file system is mounted and `dontcache` is off (its size is
    /// learned from the reads; one longer than its first chunk is stat'ed then). Should it be
    /// something else after all, it is still read correctly as any path is, except a FIFO, which
    /// is opened without waiting for a writer (one with no writer is then read as
    /// [`Input::path`] reads it, once its open found nothing).
    pub fn regular(path: impl Into<PathBuf>) -> Input {
        Input {
            what: What::Regular(path.into()),
            ranges: None,
        }
    }

    /// A file the caller opened; `name` is what its errors and result carry. Read whole, it is
    /// read from its current position (standard input, a pipe); read as ranges, at their offsets.
    pub fn file(file: File, name: impl Into<PathBuf>) -> Input {
        Input {
            what: What::File(file, name.into()),
            ranges: None,
        }
    }

    /// Reads only `ranges` of this input, in the order given (they win over the
    /// [`Source::ranges`] of the source it is in).
    pub fn ranges(mut self, ranges: impl Into<Arc<[ByteRange]>>) -> Input {
        self.ranges = Some(ranges.into());
        self
    }

    /// The name its errors and results carry.
    pub fn name(&self) -> &Path {
        self.what.name()
    }
}

impl<P: Into<PathBuf>> From<P> for Input {
    fn from(path: P) -> Input {
        Input::path(path)
    }
}

impl<'a> Source<'a> {
    fn of(inputs: Inputs<'a>) -> Source<'a> {
        Source {
            inputs,
            ranges: None,
            range_options: RangeOptions::new(),
        }
    }

    /// The file at `path`.
    pub fn path(path: impl Into<PathBuf>) -> Source<'a> {
        Source::of(Inputs::One(Input::path(path)))
    }

    /// A file the caller opened (standard input, a pipe, a socket, a file handed over); `name` is
    /// what its errors and result carry. See [`Input::file`].
    pub fn file(file: File, name: impl Into<PathBuf>) -> Source<'a> {
        Source::of(Inputs::One(Input::file(file, name)))
    }

    /// The files at `paths`, in this order. The iterator is taken from lazily, as reading goes.
    pub fn paths<I>(paths: I) -> Source<'a>
    where
        I: IntoIterator,
        I::IntoIter: 'a,
        I::Item: Into<PathBuf> + 'a,
    {
        Source::of(Inputs::Many(Box::new(paths.into_iter().map(Input::path))))
    }

    /// Files the caller opened, each with the name its errors and result carry, in this order.
    /// Each holds a descriptor until it is read and closed, so no more are taken from the
    /// iterator ahead of the results than `ulimit -n` leaves room for: an iterator that opens
    /// each file as it is taken never runs out of descriptors.
    pub fn files<I, N>(files: I) -> Source<'a>
    where
        I: IntoIterator<Item = (File, N)>,
        I::IntoIter: 'a,
        N: Into<PathBuf> + 'a,
    {
        Source::of(Inputs::Many(Box::new(
            files.into_iter().map(|(f, n)| Input::file(f, n)),
        )))
    }

    /// Any inputs, each a path or an open file, whole or with its own ranges ([`Input`]).
    pub fn inputs<I>(inputs: I) -> Source<'a>
    where
        I: IntoIterator,
        I::IntoIter: 'a,
        I::Item: Into<Input> + 'a,
    {
        Source::of(Inputs::Many(Box::new(inputs.into_iter().map(Into::into))))
    }

    /// The regular files under `dir`, walked as the reading goes: each directory's entries in
    /// the order of their names, depth first (as `find | sort` and `ringread sum -r` list them).
    /// Symbolic links are not followed ([`Source::follow_links`]); entries that are neither
    /// regular files nor directories (FIFOs, sockets, devices, links) are left out. A directory
    /// that cannot be listed (permission denied, a loop of followed links) is an input of its
    /// own whose result is that error, at its place in the order. A `dir` that is a file is that
    /// file.
    #[cfg(feature = "tree")]
    pub fn tree(dir: impl Into<PathBuf>) -> Source<'a> {
        Source::of(Inputs::Tree {
            roots: vec![dir.into()],
            follow: false,
        })
    }

    /// Several trees, one after another (see `Source::tree`).
    #[cfg(feature = "tree")]
    pub fn trees<I>(dirs: I) -> Source<'a>
    where
        I: IntoIterator,
        I::Item: Into<PathBuf>,
    {
        Source::of(Inputs::Tree {
            roots: dirs.into_iter().map(Into::into).collect(),
            follow: false,
        })
    }

    /// A tree's walk follows symbolic links (as `find -L`); a link that leads back to a directory
    /// it is in is an error of that entry. Only trees walk.
    #[cfg_attr(not(feature = "tree"), allow(unused_mut))]
    pub fn follow_links(mut self, follow: bool) -> Source<'a> {
        #[cfg(feature = "tree")]
        if let Inputs::Tree { follow: f, .. } = &mut self.inputs {
            *f = follow;
        }
        let _ = follow;
        self
    }

    /// Reads only `ranges` of every input (an [`Input`] with ranges of its own reads those), in
    /// the order given or as the reads complete ([`Source::range_options`]), many reads in
    /// flight; each range's bytes come as [`Chunk`](crate::Chunk)s that carry the range's file
    /// offset.
    ///
    /// Each read is at most the chunk size and lands in the reader's (registered) buffers; up to
    /// `depth` are in flight, split over the lanes as a file's chunks are (across the files, for
    /// many). Ranges close together share a read
    /// ([`RangeOptions::merge_gap`](crate::ranges::RangeOptions::merge_gap)); a range longer than
    /// the chunk size arrives as consecutive chunks. A range past the end gives the bytes up to
    /// the end, like `pread(2)`; an empty range gives nothing. Under `O_DIRECT` the reads are
    /// widened to the file's alignment and only the asked bytes are handed over. A failed read
    /// stops that input with [`Error::Read`] naming its offset; its
    /// [`Summary::bytes`](crate::Summary::bytes) counts the bytes handed over.
    ///
    /// With the options left to the reader (no chunk size, depth, threads, `direct` or `sqpoll`
    /// given: [`ReadOptions::self_tuning`](crate::ReadOptions::self_tuning)), each read is the
    /// size of the median range (a power of two from 4 KiB to 256 KiB) and as many are in flight
    /// as the default budget of 1 MiB holds, at most 128: random 4 KiB ranges get 128 reads in
    /// flight. Otherwise the reader's chunk size bounds each read and its depth the reads in
    /// flight, as given. Under [`Backend::Auto`](crate::Backend::Auto) files that are (almost)
    /// wholly in the page cache are read with `pread(2)` lanes, which cost less CPU per cached
    /// read than io_uring; otherwise, and with `O_DIRECT`, through io_uring.
    ///
    /// ```
    /// use ringread::{ranges::ByteRange, ReadOptions, Reader, Source};
    /// let reader = Reader::new(ReadOptions::builder().chunk_size(4096).depth(32).build()?);
    /// let file = std::fs::read("Cargo.toml").unwrap();
    /// let ranges = [ByteRange::new(10, 20), ByteRange::new(0, 5), ByteRange::new(1 << 40, 9)];
    /// let mut got = Vec::new();
    /// let mut copy = ringread::processor::from_fn(|c: &ringread::Chunk<'_>| {
    ///     got.extend_from_slice(c);
    ///     Ok(true)
    /// });
    /// reader.read(Source::path("Cargo.toml").ranges(ranges), &mut copy)?;
    /// assert_eq!(got, [&file[10..30], &file[..5]].concat());
    /// # Ok::<(), ringread::Error>(())
    /// ```
    pub fn ranges(mut self, ranges: impl Into<Arc<[ByteRange]>>) -> Source<'a> {
        self.ranges = Some(ranges.into());
        self
    }

    /// How ranges are read: their order, and how close two must be to share a read.
    pub fn range_options(mut self, opts: RangeOptions) -> Source<'a> {
        self.range_options = opts;
        self
    }

    /// The range options ([`Source::range_options`]).
    pub(crate) fn get_range_options(&self) -> RangeOptions {
        self.range_options
    }

    /// Whether the source is one input (a path or a file), not a list or a tree.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn is_one(&self) -> bool {
        matches!(self.inputs, Inputs::One(_))
    }

    /// The inputs, in order, each with its ranges (its own, else the source's); a tree's walk
    /// goes on as they are taken.
    pub(crate) fn into_inputs(self) -> Box<dyn Iterator<Item = Input> + 'a> {
        let shared = self.ranges;
        let with = move |mut i: Input| {
            if i.ranges.is_none() {
                i.ranges.clone_from(&shared);
            }
            i
        };
        match self.inputs {
            Inputs::One(i) => Box::new(std::iter::once(with(i))),
            Inputs::Many(it) => Box::new(it.map(with)),
            #[cfg(feature = "tree")]
            Inputs::Tree { roots, follow } => Box::new(walk(roots, follow).map(with)),
        }
    }

    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    /// The only input of a source of one, for a verb that reads one (`verb` names it in the error).
    pub(crate) fn into_one(self, verb: &str) -> Result<Input> {
        if !self.is_one() {
            return Err(Error::InvalidOptions(format!(
                "{verb} reads one input (a path or an open file), not a list or a tree"
            )));
        }
        self.into_inputs()
            .next()
            .ok_or_else(|| Error::InvalidOptions(format!("{verb}: no input")))
    }
}

impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inputs = match &self.inputs {
            Inputs::One(i) => format!("{:?}", i.name()),
            Inputs::Many(_) => "a list".to_string(),
            #[cfg(feature = "tree")]
            Inputs::Tree { roots, .. } => format!("trees {roots:?}"),
        };
        f.debug_struct("Source")
            .field("inputs", &inputs)
            .field("ranges", &self.ranges.as_ref().map(|r| r.len()))
            .finish_non_exhaustive()
    }
}

impl From<Input> for Source<'_> {
    fn from(input: Input) -> Self {
        Source::of(Inputs::One(input))
    }
}

macro_rules! path_sources {
    ($($t:ty),*) => {$(
        impl From<$t> for Source<'_> {
            fn from(path: $t) -> Self {
                Source::path(path)
            }
        }
    )*};
}
path_sources!(&str, String, &String, &Path, PathBuf, &PathBuf);

/// The regular files under `roots`, each directory's entries by name; what cannot be listed is a
/// failed input at its place.
#[cfg(feature = "tree")]
fn walk(roots: Vec<PathBuf>, follow: bool) -> impl Iterator<Item = Input> {
    roots.into_iter().flat_map(move |root| {
        walkdir::WalkDir::new(root)
            .follow_links(follow)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(e) if e.file_type().is_file() => Some(Input::regular(e.into_path())),
                Ok(_) => None,
                Err(e) => {
                    let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                    let source = match (e.loop_ancestor(), e.io_error()) {
                        (Some(a), _) => std::io::Error::other(format!(
                            "a file system loop back to {}",
                            a.display()
                        )),
                        (None, Some(io)) => match io.raw_os_error() {
                            Some(errno) => std::io::Error::from_raw_os_error(errno),
                            None => std::io::Error::new(io.kind(), io.to_string()),
                        },
                        (None, None) => std::io::Error::other(e.to_string()),
                    };
                    let what = What::Failed(path.clone(), Error::Open { path, source });
                    Some(Input { what, ranges: None })
                }
            })
    })
}
