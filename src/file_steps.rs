//! The life of one file, with no I/O: its `statx`, its open, its reads, the read that finds its
//! end, and its close. Both engines that read whole files drive it — the many-files engine
//! (`engine/many.rs`, on a `PathQueue`, and its `pread(2)` pool, `engine/many_pool.rs`) and the
//! async driver's whole-file reads (`stream/whole.rs`, on a lane's ring) — so the steps, what
//! `statx` decides and where a file ends are written once and tested here, without a kernel.
//!
//! A driver asks [`FileSteps::next`] what to do ([`Io`]: stat, open, read, probe, close, done),
//! does it its own way (linked on a ring, one at a time on a lane, with a system call), and hands
//! the result back as a completion gives it (a count, a descriptor, or `-errno`) to the method of
//! that step. Once the file's fate is known, [`FileSteps::end`] says it ([`End`]).
//!
//! - **`statx` decides** ([`verdict`]): a directory, anything but a regular file, and a file larger
//!   than the driver's limit are refused ([`Refusal`]) before they are opened (a FIFO's open would
//!   wait for a writer); its size is a hint for the reads, nothing more.
//! - **The reads** are [`Chunks`]' rules (short reads topped up, `EINTR`/`EAGAIN` retried, errors
//!   at `offset + filled`, the byte limit), in one of two [`Shape`]s: chunk after chunk into one
//!   buffer of a chunk, each handed over as it is in ([`Event::Chunk`]); or the whole file into one
//!   buffer as long as its size, handed over at the end.
//! - **Where the file ends** is a read that returns 0, on every path. Where a read's range holds
//!   the size hint, [`Io::Read`] carries the read that finds the end (a *probe* at the size hint,
//!   into the same buffer), for a driver to link after the read: its result counts only where the
//!   read stopped exactly at the hint, and saves a trip. A whole file's buffer ends at the size
//!   hint, so once it is full, [`Io::Probe`] reads one byte at the hint: 0 is the end; a byte means
//!   the file has more ([`End::Longer`]: it grew, or, on a file system without a device such as
//!   procfs, said 0 for a file with bytes, of which [`PROBE_EMPTY`] are read first). An empty
//!   whole file on a device has no buffer, only the probe at 0 (into a byte of the driver's), so
//!   it too ends by a read that returns 0. A file that shrank ends where a read returned 0.
//!   [`probe_end`] says what a probe found, for these and for a file read in place (whose
//!   mapping ends at its size).
//! - `-ECANCELED` from any step is [`End::Cancelled`] (the driver cancelled it).
//! - **Without `statx`** ([`FileSteps::unstated`], chunk shape; for paths known to be regular
//!   files): a path is opened (`O_NONBLOCK`, so a FIFO after all does not wait for a writer) and
//!   its first read goes at the file's position, followed by one byte read at the position it
//!   leaves (into a byte of the driver's, which the driver keeps as the file's next byte if it
//!   gets one): a file that ends inside its first chunk is read with no `statx`. Only a file
//!   found longer than its first chunk is stat'ed, its first chunk held meanwhile: a regular file
//!   larger than the limit, or a block device, is refused then (nothing handed over yet); a FIFO
//!   or character device read on. A directory (`EISDIR`) is refused as its `statx` would have it
//!   ([`Refusal::Directory`]); a first read that finds nothing (an empty file, a FIFO without a
//!   writer) or says `EAGAIN` (before Linux 6.5, a file system whose device cannot read without
//!   waiting refuses every read of an `O_NONBLOCK` file so), and an open that would wait (`EAGAIN`:
//!   a lease) are refused ([`Refusal::Elsewhere`]): the caller reads them its usual way.

use std::io;
use std::path::Path;

use crate::chunks::{Chunks, Piece, Step};
use crate::error::Error;
use crate::sys::CURRENT_POSITION;

/// [`Span::buf_offset`] of a read into a byte of the driver's own, not the file's buffer (the
/// probe after an unstated file's first read).
pub(crate) const SPARE_BYTE: usize = usize::MAX;

/// How much of a file that says it is empty, on a file system without a device (tmpfs, procfs,
/// sysfs), a whole-file read takes to find out: procfs says 0 for files that have bytes.
pub(crate) const PROBE_EMPTY: u64 = 4096;

/// What `statx` (or `fstat`) says of a file, as far as its steps care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Its type: the `S_IFMT` bits of its mode.
    pub kind: u32,
    /// Its size: a hint.
    pub size: u64,
    /// The major number of its device (0: anonymous — FUSE, tmpfs, procfs, overlay, btrfs).
    pub dev_major: u32,
}

impl Stat {
    /// From a `statx` record.
    pub(crate) fn of_statx(st: &libc::statx) -> Stat {
        Stat {
            kind: u32::from(st.stx_mode) & libc::S_IFMT,
            size: st.stx_size,
            dev_major: st.stx_dev_major,
        }
    }

    /// From a `stat` record.
    pub(crate) fn of_stat(st: &libc::stat) -> Stat {
        Stat {
            kind: st.st_mode & libc::S_IFMT,
            size: st.st_size.max(0) as u64,
            dev_major: libc::major(st.st_dev),
        }
    }

    /// From a file's metadata.
    pub(crate) fn of_metadata(meta: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            kind: meta.mode() & libc::S_IFMT,
            size: meta.len(),
            dev_major: libc::major(meta.dev()),
        }
    }

    /// On an anonymous device: perhaps FUSE (whose files io_uring may misread), and its size may
    /// say 0 for a file with bytes.
    pub(crate) fn anonymous(&self) -> bool {
        self.dev_major == 0
    }
}

/// How a file's bytes are held while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Chunk after chunk into one buffer of `chunk` bytes, each chunk handed over as it is in;
    /// at most `max_bytes` (`None`: to the end).
    Chunks {
        /// Bytes per read and per buffer.
        chunk: usize,
        /// The byte limit.
        max_bytes: Option<u64>,
    },
    /// The whole file into one buffer of [`FileSteps::buffer_len`] bytes (its size hint), in
    /// reads of up to `piece` bytes each, at their file offsets.
    // Used by the async driver (`stream/whole.rs`).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    Whole {
        /// The longest single read.
        piece: usize,
    },
}

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Its `statx` is asked for.
    Stat,
    /// Its open.
    Open,
    /// Its reads.
    Read,
    /// The read at the end of its whole buffer, which tells whether it ends there.
    Probe,
    /// Its close (its outcome, if any, is known).
    Close,
    /// Nothing more to do.
    Done,
}

/// One read: `len` bytes at file `offset`, into the file's buffer at `buf_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Where in the file: an offset, or [`CURRENT_POSITION`] (the file's position, which the read
    /// moves on).
    pub offset: u64,
    /// How many bytes at most.
    pub len: u32,
    /// Where in the buffer, or [`SPARE_BYTE`].
    pub buf_offset: usize,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Io {
    /// `statx` the path: [`FileSteps::stat_done`].
    Stat,
    /// Open the path: [`FileSteps::open_done`].
    Open,
    /// Read: [`FileSteps::read_done`]. `probe`: the read that finds the end, at the size hint
    /// inside this read's range (or, for an unstated file's first read, one byte at the position
    /// the read leaves), for the driver to link after it (or not issue).
    Read {
        /// The read.
        read: Span,
        /// The read at the size hint.
        probe: Option<Span>,
    },
    /// Read one byte at the end of the whole buffer (into its last byte; for an empty file,
    /// whose buffer length is 0, into a byte of the driver's): [`FileSteps::probe_done`].
    Probe(Span),
    /// Close the file: [`FileSteps::closed`].
    Close,
    /// Finished.
    Done,
}

/// Why a file is not read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A directory.
    Directory,
    /// Not a regular file (its `S_IFMT` bits).
    NotRegular(u32),
    /// Larger than the driver's limit (its size).
    TooLarge(u64),
    /// Its driver reads it another way (FUSE, a file system that refuses uncached reads; an
    /// unstated file that read nothing, or would wait to be opened).
    Elsewhere,
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Its `statx` or open, with this errno.
    Open(i32),
    /// A read at `offset`, with `errno` (every byte before it was read).
    Read {
        /// Where.
        offset: u64,
        /// The error number.
        errno: i32,
    },
}

impl Failure {
    /// The error, naming `path` (and for a read, the offset).
    pub(crate) fn error(self, path: &Path) -> Error {
        match self {
            Failure::Open(errno) => Error::Open {
                path: path.to_path_buf(),
                source: io::Error::from_raw_os_error(errno),
            },
            Failure::Read { offset, errno } => Error::Read {
                path: path.to_path_buf(),
                offset,
                source: io::Error::from_raw_os_error(errno),
            },
        }
    }
}

/// What became of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Read to its end (or the limit, or until its processor said stop): the bytes handed over
    /// (chunks), or the bytes in the buffer (whole).
    Read(u64),
    /// Not read: why.
    Refused(Refusal),
    /// Failed.
    Failed(Failure),
    /// A whole file with more bytes than its buffer holds (it grew since `statx`, or its size said
    /// 0 on procfs): to be read to its end another way.
    Longer,
    /// A step completed with `-ECANCELED`.
    Cancelled,
}

/// What a read's completion asks of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Go on with [`FileSteps::next`].
    Go,
    /// `len` bytes of file offset `offset` are in the chunk buffer from its start: hand them over,
    /// then say [`FileSteps::handed`] (or [`FileSteps::stop`] if the processor failed).
    Chunk {
        /// Where in the file.
        offset: u64,
        /// How many bytes (0 at the end).
        len: usize,
    },
}

/// Whether a file `statx` describes as `st` is read by a driver whose limit is `large` bytes.
pub(crate) fn verdict(st: Stat, large: u64) -> Result<(), Refusal> {
    match st.kind {
        libc::S_IFDIR => Err(Refusal::Directory),
        libc::S_IFREG if st.size > large => Err(Refusal::TooLarge(st.size)),
        libc::S_IFREG => Ok(()),
        // A FIFO's open would wait for a writer, a device's may wait or never end.
        kind => Err(Refusal::NotRegular(kind)),
    }
}

/// The life of one file (see the module's docs).
#[derive(Debug, Clone)]
pub(crate) struct FileSteps {
    shape: Shape,
    /// Files larger than this are refused.
    large: u64,
    phase: Phase,
    /// The file is open (its close is owed).
    opened: bool,
    /// Its size as `statx` gave it (a hint).
    size: u64,
    /// A whole file's buffer length: reads stop there.
    limit: u64,
    rules: Chunks,
    /// The piece being read (`None`: past the limit, nothing to read).
    piece: Option<Piece>,
    /// A chunk's result, held while the chunk is handed over (or, unstated, while the file is
    /// stat'ed).
    held: Option<Step>,
    /// Opened without a `statx`: its size and kind are not known ([`FileSteps::unstated`]).
    unstated: bool,
    /// Its first read, at the file's position and followed by a byte's probe, is in flight.
    first: bool,
    /// Bytes handed over (chunks) or in the buffer (whole).
    bytes: u64,
    end: Option<End>,
}

impl FileSteps {
    /// A file known by its path, to be stat'ed, opened and read in `shape`; refused if larger than
    /// `large` bytes.
    pub(crate) fn new(shape: Shape, large: u64) -> FileSteps {
        FileSteps {
            shape,
            large,
            phase: Phase::Stat,
            opened: false,
            size: 0,
            limit: 0,
            rules: Chunks::new(0, 1, Some(0), 0, true, None),
            piece: None,
            held: None,
            unstated: false,
            first: false,
            bytes: 0,
            end: None,
        }
    }

    /// A file known by its path, opened and read without a `statx` first (see the module's
    /// docs), in chunks of `chunk` bytes, at most `max_bytes` (not `Some(0)`: such a file has no
    /// read to link to its open); stat'ed only if longer than its first chunk, and refused then if
    /// larger than `large` bytes.
    pub(crate) fn unstated(chunk: usize, max_bytes: Option<u64>, large: u64) -> FileSteps {
        debug_assert_ne!(max_bytes, Some(0));
        let mut steps = FileSteps::new(Shape::Chunks { chunk, max_bytes }, large);
        // No size hint: no probe at it (the first read carries its own).
        steps.sized(u64::MAX, 0, false);
        steps.unstated = true;
        steps.first = true;
        steps
    }

    /// Whether the file is opened without a `statx` (with `O_NONBLOCK`).
    pub(crate) fn is_unstated(&self) -> bool {
        self.unstated
    }

    /// A file the caller opened, that `fstat` gave as `st` and [`verdict`] accepted, read from
    /// `start` (its position): its reads come next.
    pub(crate) fn opened(shape: Shape, st: Stat, start: u64) -> FileSteps {
        let mut steps = FileSteps::new(shape, u64::MAX);
        steps.sized(st.size, start, st.anonymous());
        steps.open_done(0);
        steps
    }

    /// Where the file is.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// What became of it, once known.
    pub(crate) fn end(&self) -> Option<End> {
        self.end
    }

    /// Bytes handed over so far (chunks), or in the buffer (whole).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The buffer the file needs, once its `statx` is in: a chunk, or (whole) its size hint, or
    /// [`PROBE_EMPTY`] where its size may lie; 0 for none.
    // Used by the async driver (`stream/whole.rs`).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn buffer_len(&self) -> u64 {
        match self.shape {
            Shape::Chunks { chunk, .. } => chunk as u64,
            Shape::Whole { .. } => self.limit,
        }
    }

    /// Whether, once open, the file has a read to do into its buffer (not when the limit is 0, or
    /// a whole file is empty: that one has only the probe): the read a driver may link to the
    /// open.
    pub(crate) fn has_read(&self) -> bool {
        self.piece.is_some()
    }

    /// Where reads are now: the offset of the first byte not read yet.
    // Used by the async driver (`stream/whole.rs`).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn position(&self) -> u64 {
        self.piece
            .map_or(self.limit, |p| p.offset + u64::from(p.filled))
    }

    /// What to do next. In [`Phase::Open`], [`FileSteps::first_read`] is the read that follows.
    pub(crate) fn next(&self) -> Io {
        match self.phase {
            Phase::Stat => Io::Stat,
            Phase::Open => Io::Open,
            Phase::Read => match self.read_io() {
                Some(io) => io,
                None => Io::Close,
            },
            Phase::Probe => Io::Probe(Span {
                offset: self.limit,
                len: 1,
                // Into the last byte read: a read that returns 0 writes nothing; one that returns
                // a byte means the file is longer, and these bytes are not handed over. An empty
                // file has no buffer: the driver gives the byte.
                buf_offset: (self.limit as usize).saturating_sub(1),
            }),
            Phase::Close => Io::Close,
            Phase::Done => Io::Done,
        }
    }

    /// The read that follows the open (for a driver that links it to the open).
    pub(crate) fn first_read(&self) -> Option<Io> {
        self.read_io()
    }

    /// The read of the rest of the current piece, with the probe where its range holds the size.
    /// An unstated file's first read is at the file's position (0, just opened), followed by one
    /// byte at the position it leaves, into [`SPARE_BYTE`].
    fn read_io(&self) -> Option<Io> {
        let p = self.piece.as_ref()?;
        if self.first {
            let r = self.rules.next_read(p);
            return Some(Io::Read {
                read: Span {
                    offset: CURRENT_POSITION,
                    len: r.len,
                    buf_offset: r.buf_offset,
                },
                probe: Some(Span {
                    offset: CURRENT_POSITION,
                    len: 1,
                    buf_offset: SPARE_BYTE,
                }),
            });
        }
        let r = self.rules.next_read(p);
        let (buf_offset, probe) = match self.shape {
            Shape::Chunks { .. } => {
                let end = r.offset + u64::from(r.len);
                let probe = (r.offset < self.size && self.size < end).then(|| {
                    let skip = self.size - r.offset;
                    Span {
                        offset: self.size,
                        len: r.len - skip as u32,
                        buf_offset: r.buf_offset + skip as usize,
                    }
                });
                (r.buf_offset, probe)
            }
            // A whole buffer holds the file from offset 0 (a read never reaches past the size).
            Shape::Whole { .. } => (p.offset as usize + r.buf_offset, None),
        };
        let read = Span {
            offset: r.offset,
            len: r.len,
            buf_offset,
        };
        Some(Io::Read { read, probe })
    }

    /// Sets the rules for a file of size hint `size`, read from `start`.
    fn sized(&mut self, size: u64, start: u64, anonymous: bool) {
        self.size = size;
        self.rules = match self.shape {
            Shape::Chunks { chunk, max_bytes } => {
                Chunks::new(start, chunk, max_bytes, size, true, None)
            }
            Shape::Whole { piece } => {
                self.limit = if size == 0 && anonymous {
                    PROBE_EMPTY
                } else {
                    size
                };
                Chunks::new(0, piece, Some(self.limit), self.limit, true, None)
            }
        };
        self.piece = self.rules.piece(0, 0);
        self.phase = Phase::Open;
    }

    /// Ends the file with `end`: its close next if it is open.
    fn conclude(&mut self, end: Option<End>) {
        if end.is_some() {
            self.end = end;
        }
        self.held = None;
        self.phase = if self.opened {
            Phase::Close
        } else {
            Phase::Done
        };
    }

    /// The file's `statx` is in: `res` (0 or `-errno`), and what it says, `st`.
    pub(crate) fn stat_done(&mut self, res: i32, st: Stat) {
        debug_assert_eq!(self.phase, Phase::Stat);
        if res < 0 {
            return self.conclude(Some(failed(res, Failure::Open(-res))));
        }
        if let Err(why) = verdict(st, self.large) {
            return self.conclude(Some(End::Refused(why)));
        }
        self.sized(st.size, 0, st.anonymous());
    }

    /// The open is in: `res` (a descriptor, or `-errno`).
    pub(crate) fn open_done(&mut self, res: i32) {
        debug_assert_eq!(self.phase, Phase::Open);
        if self.unstated && res == -libc::EAGAIN {
            // Opened with O_NONBLOCK, it would wait (a lease): the caller opens it its way.
            return self.conclude(Some(End::Refused(Refusal::Elsewhere)));
        }
        if res < 0 {
            return self.conclude(Some(failed(res, Failure::Open(-res))));
        }
        self.opened = true;
        if self.piece.is_none() {
            if matches!(self.shape, Shape::Whole { .. }) {
                // An empty whole file (opened, as `std::fs::read` does, so permissions count):
                // its end is a read that returns 0 too, the probe at 0, into no buffer.
                self.phase = Phase::Probe;
                return;
            }
            // Nothing to read: the limit is 0.
            return self.conclude(Some(End::Read(0)));
        }
        self.phase = Phase::Read;
    }

    /// A read is in: `res` (a count or `-errno`); `probe`: the result of the probe [`Io::Read`]
    /// carried, if the driver issued it.
    pub(crate) fn read_done(&mut self, res: i32, probe: Option<i32>) -> Event {
        debug_assert_eq!(self.phase, Phase::Read);
        let Some(p) = self.piece.as_mut() else {
            self.conclude(None);
            return Event::Go;
        };
        if res == -libc::ECANCELED {
            self.conclude(Some(End::Cancelled));
            return Event::Go;
        }
        if std::mem::take(&mut self.first) {
            return self.first_done(res, probe);
        }
        let mut step = self.rules.complete(p, res);
        if step == Step::Again {
            // Stopped short: exactly at the size hint, the probe is the read of the rest.
            if let Some(r) = probe {
                if p.offset + u64::from(p.filled) == self.size {
                    if r == -libc::ECANCELED {
                        self.conclude(Some(End::Cancelled));
                        return Event::Go;
                    }
                    step = self.rules.complete(p, r);
                }
            }
        }
        self.took(step)
    }

    /// An unstated file's first read is in (`res`), and the byte read after it (`probe`): its
    /// bytes are handed over if the file ends inside them; otherwise held while it is stat'ed.
    fn first_done(&mut self, res: i32, probe: Option<i32>) -> Event {
        let Some(p) = self.piece.as_mut() else {
            self.conclude(None);
            return Event::Go;
        };
        if res == -libc::EISDIR {
            // A directory: refused as its `statx` would have it refused.
            self.conclude(Some(End::Refused(Refusal::Directory)));
            return Event::Go;
        }
        if res == -libc::EAGAIN {
            // O_NONBLOCK honoured by a kernel before 6.5 on a file system that cannot read
            // without waiting: every read would say so. The caller opens it without the flag.
            self.conclude(Some(End::Refused(Refusal::Elsewhere)));
            return Event::Go;
        }
        let mut step = self.rules.complete(p, res);
        if res >= 0 && probe == Some(0) {
            // The byte after the read, where the read stopped, is the end.
            step = match step {
                Step::Again => self.rules.complete(p, 0),
                Step::Ready { .. } => Step::Ready { last: true },
                failed => failed,
            };
        }
        self.took(step)
    }

    /// A late `statx` of an unstated file longer than its first chunk, held meanwhile, is in:
    /// `res` (0 or `-errno`) and what it says, `st`. The held chunk is handed over
    /// ([`Event::Chunk`]) where the file is read on here; a regular file larger than the limit,
    /// or a block device, is refused before anything of it is handed over.
    pub(crate) fn late_stat_done(&mut self, res: i32, st: Stat) -> Event {
        debug_assert!(self.phase == Phase::Stat && self.unstated);
        self.unstated = false;
        self.phase = Phase::Read;
        if res == 0 {
            match verdict(st, self.large) {
                Ok(()) => self.size = st.size,
                Err(why @ (Refusal::TooLarge(_) | Refusal::NotRegular(libc::S_IFBLK))) => {
                    self.conclude(Some(End::Refused(why)));
                    return Event::Go;
                }
                // A FIFO or character device, its bytes taken: read on to its end. (A directory
                // now at its path: the file opened is read on.)
                Err(_) => {}
            }
        }
        // A failed `statx` (the path gone since the open): the open file is read on.
        let step = self.held.take().expect("a held first chunk");
        self.took(step)
    }

    /// Goes on from a read's `step` (its piece complete, or not).
    fn took(&mut self, step: Step) -> Event {
        let Some(p) = self.piece else {
            self.conclude(None);
            return Event::Go;
        };
        let (offset, filled) = (p.offset, p.filled);
        if self.unstated {
            match step {
                Step::Ready { last: true } if filled == 0 && self.bytes == 0 => {
                    // Nothing: an empty file, a FIFO with no writer, a device; the caller looks.
                    self.conclude(Some(End::Refused(Refusal::Elsewhere)));
                    return Event::Go;
                }
                Step::Ready { last: false } => {
                    // Longer than its first chunk: its `statx` says whether it is read here.
                    self.held = Some(step);
                    self.phase = Phase::Stat;
                    return Event::Go;
                }
                _ => {}
            }
        }
        match (self.shape, step) {
            (_, Step::Again) => Event::Go,
            (Shape::Chunks { .. }, step) => {
                self.held = Some(step);
                Event::Chunk {
                    offset,
                    len: filled as usize,
                }
            }
            (Shape::Whole { .. }, Step::Failed { errno }) => {
                let offset = offset + u64::from(filled);
                self.conclude(Some(End::Failed(Failure::Read { offset, errno })));
                Event::Go
            }
            (Shape::Whole { .. }, Step::Ready { last }) => {
                self.bytes = offset + u64::from(filled);
                self.next_piece(last);
                Event::Go
            }
        }
    }

    /// A chunk the last read completed ([`Event::Chunk`]) was handed over; `more`: its processor
    /// wants more.
    pub(crate) fn handed(&mut self, more: bool) {
        let (Some(step), Some(p)) = (self.held.take(), self.piece) else {
            debug_assert!(false, "no chunk was handed over");
            return;
        };
        self.bytes += u64::from(p.filled);
        match step {
            Step::Failed { errno } => {
                let offset = p.offset + u64::from(p.filled);
                self.conclude(Some(End::Failed(Failure::Read { offset, errno })));
            }
            Step::Ready { last } => self.next_piece(last || !more),
            Step::Again => unreachable!("a chunk is handed over complete"),
        }
    }

    /// The current piece is complete (`last`: nothing follows it): on to the next, or the end.
    fn next_piece(&mut self, last: bool) {
        let next = self.piece.and_then(|p| self.rules.piece(p.k + 1, 0));
        match next {
            Some(p) if !last => self.piece = Some(p),
            _ => match self.shape {
                // The whole buffer is full: one read at its end tells whether the file ends.
                Shape::Whole { .. } if self.bytes == self.limit => self.phase = Phase::Probe,
                _ => self.conclude(Some(End::Read(self.bytes))),
            },
        }
    }

    /// The read at the end of the whole buffer is in: 0 ends the file there, a byte means it is
    /// longer ([`probe_end`]).
    // Used by the async driver (`stream/whole.rs`).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn probe_done(&mut self, res: i32) {
        debug_assert_eq!(self.phase, Phase::Probe);
        self.conclude(Some(probe_end(res, self.limit)));
    }

    /// Its driver will not read it (found after `statx` or the open): its close next if open.
    pub(crate) fn refuse(&mut self, why: Refusal) {
        self.conclude(Some(End::Refused(why)));
    }

    /// Stops without an outcome of its own (its processor failed, nobody waits for it): its close
    /// next if open.
    pub(crate) fn stop(&mut self) {
        self.conclude(None);
    }

    /// Fails where it is with `errno` (its driver gave up on the step in flight).
    // Used by the async driver (`stream/whole.rs`).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn fail(&mut self, errno: i32) {
        let failure = match self.phase {
            Phase::Read | Phase::Probe => Failure::Read {
                offset: self.position(),
                errno,
            },
            _ => Failure::Open(errno),
        };
        self.conclude(Some(End::Failed(failure)));
    }

    /// The close is in.
    pub(crate) fn closed(&mut self) {
        self.opened = false;
        self.phase = Phase::Done;
    }
}

/// What the read of one byte at `at`, the size a file was taken to have (the *probe*), says of
/// its end, from its result `res` (a count or `-errno`): 0 ends the file at `at`
/// ([`End::Read`]); a byte means it is longer ([`End::Longer`]: read on to a read that returns
/// 0); an error fails it at `at`. Whole files ([`Io::Probe`]) and files read in place
/// (`engine/in_place.rs`, at the end of the mapping) ask it.
pub(crate) fn probe_end(res: i32, at: u64) -> End {
    match res {
        0 => End::Read(at),
        e if e < 0 => failed(
            e,
            Failure::Read {
                offset: at,
                errno: -e,
            },
        ),
        _ => End::Longer,
    }
}

/// `failure`, or [`End::Cancelled`] where `res` says the step was cancelled.
fn failed(res: i32, failure: Failure) -> End {
    if res == -libc::ECANCELED {
        End::Cancelled
    } else {
        End::Failed(failure)
    }
}

#[cfg(test)]
#[path = "file_steps_tests.rs"]
mod tests;
