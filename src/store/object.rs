//! [`RingStore`]: object_store's local file system, with its reads through a ringread driver.
//!
//! `get_opts` (and so `get`, `get_range` and `head`, which object_store 0.13 routes through it)
//! opens the file on the calling task without waiting for a FIFO's writer, takes its metadata from
//! the open file, checks the preconditions, and hands back the range as a stream of [`Bytes`]: a
//! range of up to 16 MiB as one read into a buffer of its own (outside the driver's budget: the
//! caller keeps it as long as it likes, and `GetResult::bytes` takes it without a copy), a longer
//! one as the driver's chunk stream ([`Driver::chunks`], many reads in flight, cached chunks read
//! on the polling thread). `get_ranges` reads every range at once
//! ([`RangeFile::read_ranges`](crate::stream::RangeFile::read_ranges)). Files that are not
//! regular files (FIFOs, devices) are read the way `LocalFileSystem` reads them, as are writes,
//! listings, copies, renames and deletes: the store wraps a `LocalFileSystem` with the same root
//! and path rules, and its object metadata (the `ETag` in particular) is the same.
//!
//! Chunks are handed out without a copy while the consumer gives them back: one that keeps half
//! of its stream's buffers (or the driver's budget half held) gets copies from then on, so that a
//! consumer collecting every chunk of a large object can never stop the stream.

use std::fmt;
use std::fs::{File, Metadata};
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

use super::ahead::{ask_ahead, ask_ahead_of, Strides};
use crate::error::{Error, Result};
use crate::ranges::ByteRange;
use crate::reader::Notice;
use crate::source::Source;
use crate::stream::{Driver, FileStream, OwnedChunk};

/// The name this store gives in object_store's errors.
const STORE: &str = "RingStore";

/// Ranges that start within this many bytes of the end of the read before them share that read
/// (the bytes between are read and not handed out): on a disk, one read of 16 KiB more costs less
/// than a second read; in the page cache, less than a second system call.
pub const DEFAULT_MERGE_GAP: u64 = 16 << 10;

/// The longest range `get_opts` reads with one read, into a buffer of its own (the caller keeps the
/// `Bytes` as long as it likes, outside the driver's budget, and `GetResult::bytes` takes it
/// without a copy); a longer one streams the driver's chunks.
const ONE_READ: u64 = 16 << 20;

/// Ranges at least this long that the page cache lacks are asked of the device at once
/// ([`ask_ahead`](super::ahead::ask_ahead)).
const AHEAD_FROM: u64 = 1 << 20;

/// An [`ObjectStore`] for local files whose reads go through ringread: object_store's
/// [`LocalFileSystem`] (same root, same path rules, same metadata), with `get_opts` (every form of
/// `get`, `get_range` and `head`) and `get_ranges` read through a [`Driver`].
///
/// ```no_run
/// use object_store::{path::Path, ObjectStore, ObjectStoreExt};
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let store = ringread::store::RingStore::new_with_prefix("/data")?;
/// let object = store.get(&Path::from("logs/app.log")).await?.bytes().await?;
/// let pages = store.get_ranges(&Path::from("table.bin"), &[0..4096, 1 << 20..(1 << 20) + 4096]).await?;
/// # drop((object, pages)); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RingStore {
    local: Arc<LocalFileSystem>,
    driver: Driver,
    merge_gap: Option<u64>,
    /// Each file's last `get_ranges` calls, to ask the next one's ranges ahead.
    strides: Arc<Strides>,
}

impl RingStore {
    /// A store over the whole file system (object paths are absolute paths), reading through the
    /// process's driver ([`Driver::global`]).
    pub fn new() -> Result<RingStore> {
        Ok(RingStore::from_local(
            LocalFileSystem::new(),
            Driver::global()?.clone(),
        ))
    }

    /// A store whose object paths are relative to the directory `prefix` (which must exist), as
    /// [`LocalFileSystem::new_with_prefix`] makes, reading through the process's driver.
    pub fn new_with_prefix(prefix: impl AsRef<FsPath>) -> Result<RingStore> {
        let prefix = prefix.as_ref();
        let local = LocalFileSystem::new_with_prefix(prefix).map_err(|e| Error::Open {
            path: prefix.to_path_buf(),
            source: io::Error::other(e),
        })?;
        Ok(RingStore::from_local(local, Driver::global()?.clone()))
    }

    /// A store over `local` (its root, its settings for writes and deletes), reading through
    /// `driver` (its threads, its budget, its options: [`Driver::with_options`] chooses
    /// `O_DIRECT`, the chunk size and the read-ahead of whole-object reads).
    pub fn from_local(local: LocalFileSystem, driver: Driver) -> RingStore {
        RingStore {
            local: Arc::new(local),
            driver,
            merge_gap: Some(DEFAULT_MERGE_GAP),
            strides: Arc::default(),
        }
    }

    /// `get_ranges` reads ranges that start within `gap` bytes of the end of the read before them
    /// in one read (`None`: each range on its own). Default: [`DEFAULT_MERGE_GAP`].
    pub fn with_merge_gap(mut self, gap: Option<u64>) -> RingStore {
        self.merge_gap = gap;
        self
    }

    /// The `LocalFileSystem` this store writes, lists and deletes through.
    pub fn local(&self) -> &LocalFileSystem {
        &self.local
    }

    /// The driver this store reads through.
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// Why this store reads without io_uring (with `pread(2)` on the driver's threads), if it
    /// does: io_uring refused by the kernel, a seccomp profile or the `io_uring_disabled` sysctl.
    pub fn notice(&self) -> Option<&Notice> {
        self.driver.notice()
    }

    /// Opens `location` for reading: the file, its metadata, and its path on the file system.
    /// `None`: not a regular file (a FIFO, a device), to be read as `LocalFileSystem` reads it.
    fn open(&self, location: &Path) -> object_store::Result<Option<(File, Metadata, String)>> {
        let path = self.local.path_to_filesystem(location)?;
        let name = path.display().to_string();
        // O_NONBLOCK: the open of a FIFO does not wait for a writer on this task's thread.
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| open_error(e, &name))?;
        let md = file.metadata().map_err(|e| open_error(e, &name))?;
        if md.is_dir() {
            return Err(is_directory(&name));
        }
        if !md.is_file() {
            return Ok(None);
        }
        // SAFETY: fcntl on a descriptor `file` owns; no memory is passed. The file was opened with
        // no status flag but `O_NONBLOCK`, so 0 clears just that.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) } < 0 {
            return Err(open_error(io::Error::last_os_error(), &name));
        }
        Ok(Some((file, md, name)))
    }

    /// The payload of `range` of `file`, read through the driver.
    fn payload(
        &self,
        file: File,
        name: String,
        range: Range<u64>,
    ) -> object_store::Result<BoxStream<'static, object_store::Result<Bytes>>> {
        let len = range.end - range.start;
        if len == 0 {
            return Ok(stream::empty().boxed());
        }
        let opts = self.driver.options();
        let cached = len >= AHEAD_FROM && !ask_ahead(&file, range.start, len);
        if len <= ONE_READ {
            let file = self
                .driver
                .range_file(Source::file(file, name))
                .map_err(read_error)?;
            let read = if cached {
                file.read_exact_owned_cached(range.start, len as usize)
            } else {
                file.read_exact_owned(range.start, len as usize)
            };
            return Ok(stream::once(async move { read.await.map_err(read_error) }).boxed());
        }
        // The chunk stream reads from the file's position, `len` bytes at most.
        // SAFETY: lseek on a descriptor `file` owns; no memory is passed.
        if unsafe { libc::lseek(file.as_raw_fd(), range.start as libc::off_t, libc::SEEK_SET) } < 0
        {
            return Err(generic(io::Error::last_os_error()));
        }
        let depth = opts.depth();
        let mut opts = opts;
        opts.max_bytes = Some(len);
        let chunks = self
            .driver
            .with_options(opts)
            .and_then(|d| d.chunks(Source::file(file, name)))
            .map_err(read_error)?;
        Ok(Chunks::new(chunks, self.driver.clone(), len, depth).into_stream())
    }
}

/// A whole-object (or long range) read: the driver's chunks as `Bytes`, and the check that the
/// file gave all `len` bytes.
struct Chunks {
    chunks: FileStream,
    driver: Driver,
    left: u64,
    /// Chunks handed out without a copy and not dropped yet.
    out: Arc<AtomicUsize>,
    /// Copy once the consumer keeps this many.
    keep: usize,
}

impl Chunks {
    fn new(chunks: FileStream, driver: Driver, len: u64, depth: usize) -> Chunks {
        Chunks {
            chunks,
            driver,
            left: len,
            out: Arc::new(AtomicUsize::new(0)),
            keep: (depth / 2).max(1),
        }
    }

    fn into_stream(self) -> BoxStream<'static, object_store::Result<Bytes>> {
        stream::unfold(Some(self), |state| async move {
            let mut this = state?;
            match this.chunks.next().await {
                Some(Ok(chunk)) => {
                    this.left = this.left.saturating_sub(chunk.len() as u64);
                    let bytes = this.hand_out(chunk);
                    Some((Ok(bytes), Some(this)))
                }
                Some(Err(e)) => Some((Err(read_error(e)), None)),
                None if this.left > 0 => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: the file ended (or shrank) {} bytes before the range asked for",
                            this.chunks.path().display(),
                            this.left
                        ),
                    );
                    Some((Err(generic(e)), None))
                }
                None => None,
            }
        })
        .boxed()
    }

    /// The chunk's bytes: its buffer itself, or a copy once the consumer keeps half the stream's
    /// buffers or the driver's budget is half held.
    fn hand_out(&self, chunk: OwnedChunk) -> Bytes {
        if self.out.load(Ordering::Acquire) >= self.keep || self.driver.pressed() {
            return Bytes::copy_from_slice(chunk.bytes());
        }
        self.out.fetch_add(1, Ordering::AcqRel);
        Bytes::from_owner(Kept {
            bytes: chunk.into_bytes(),
            out: Arc::clone(&self.out),
        })
    }
}

/// A chunk handed out without a copy: counted until it drops.
struct Kept {
    bytes: Bytes,
    out: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Kept {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.out.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Display for RingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.local.to_string();
        let root = local
            .strip_prefix("LocalFileSystem(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(&local);
        match self.notice() {
            Some(n) => write!(f, "{STORE}({root}; {n})"),
            None => write!(f, "{STORE}({root})"),
        }
    }
}

#[async_trait]
impl ObjectStore for RingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.local.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.local.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            return self.head_opts(location, options);
        }
        let Some((file, md, name)) = self.open(location)? else {
            return self.local.get_opts(location, options).await;
        };
        let meta = object_meta(&md, location.clone());
        options.check_preconditions(&meta)?;
        let range = get_range(&options, meta.size)?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(self.payload(file, name, range.clone())?),
            meta,
            range,
            attributes: Attributes::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let Some((file, md, name)) = self.open(location)? else {
            return self.local.get_ranges(location, ranges).await;
        };
        let size = md.len();
        let mut asked = Vec::with_capacity(ranges.len());
        for r in ranges {
            check_range(r, size, &name)?;
            asked.push(ByteRange::new(r.start, r.end - r.start));
        }
        // A call that repeats the last one a step further on (a scan's next row group): the
        // step after is asked of the device once these reads are done, while the caller decodes
        // them (asked before, it would come before these in the device's queue).
        let ahead = self.strides.next(&name, ranges, size);
        let file = self
            .driver
            .range_file(Source::file(file, name))
            .map_err(read_error)?;
        let got = file
            .read_ranges(&asked, self.merge_gap)
            .await
            .map_err(read_error)?;
        ask_ahead_of(&file, ahead);
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.local.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.local.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.local.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.local.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.local.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.local.rename_opts(from, to, options).await
    }
}

impl RingStore {
    /// `get_opts` with `head`: the metadata from one `statx`, no open and no read.
    fn head_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let path = self.local.path_to_filesystem(location)?;
        let name = path.display().to_string();
        let md = std::fs::metadata(&path).map_err(|e| open_error(e, &name))?;
        if md.is_dir() {
            return Err(is_directory(&name));
        }
        let meta = object_meta(&md, location.clone());
        options.check_preconditions(&meta)?;
        let range = get_range(&options, meta.size)?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::empty().boxed()),
            meta,
            range,
            attributes: Attributes::default(),
        })
    }
}

/// The byte range `options` asks for of an object of `size` bytes (all of it by default).
fn get_range(options: &GetOptions, size: u64) -> object_store::Result<Range<u64>> {
    match &options.range {
        Some(r) => r.as_range(size).map_err(generic),
        None => Ok(0..size),
    }
}

/// A range of `get_ranges` must lie within the object, as `LocalFileSystem` requires: an empty
/// range anywhere is fine.
fn check_range(r: &Range<u64>, size: u64, name: &str) -> object_store::Result<()> {
    if r.start > r.end {
        return Err(generic(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{name}: the range {}..{} ends before it starts",
                r.start, r.end
            ),
        )));
    }
    if r.start < r.end && r.end > size {
        return Err(generic(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{name}: the range {}..{} is out of the object's {size} bytes",
                r.start, r.end
            ),
        )));
    }
    Ok(())
}

/// The object's metadata as `LocalFileSystem` gives it (the same `ETag`: inode, modification time
/// in microseconds and size, in hex).
fn object_meta(md: &Metadata, location: Path) -> ObjectMeta {
    let modified = md.modified().unwrap_or(std::time::UNIX_EPOCH);
    let micros = modified
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    ObjectMeta {
        location,
        last_modified: modified.into(),
        size: md.len(),
        e_tag: Some(format!("{:x}-{micros:x}-{:x}", md.ino(), md.len())),
        version: None,
    }
}

/// An error of object_store's that says this store failed.
fn generic(source: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(source),
    }
}

/// An open that failed: not found where the file is not there, as object_store's callers expect.
fn open_error(source: io::Error, name: &str) -> object_store::Error {
    if source.kind() == io::ErrorKind::NotFound {
        object_store::Error::NotFound {
            path: name.to_string(),
            source: Box::new(source),
        }
    } else {
        generic(Error::Open {
            path: name.into(),
            source,
        })
    }
}

/// A directory is no object.
fn is_directory(name: &str) -> object_store::Error {
    object_store::Error::NotFound {
        path: name.to_string(),
        source: Box::new(io::Error::new(io::ErrorKind::NotFound, "is directory")),
    }
}

/// ringread's error as object_store's (a file gone since it was opened is not found).
fn read_error(e: Error) -> object_store::Error {
    match e {
        Error::Open { path, source } if source.kind() == io::ErrorKind::NotFound => {
            object_store::Error::NotFound {
                path: path.display().to_string(),
                source: Box::new(source),
            }
        }
        e => generic(e),
    }
}
