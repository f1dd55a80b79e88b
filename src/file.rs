//! Looking at a file before reading it: `O_DIRECT` alignment (`statx`), opening it for `O_DIRECT`,
//! whether it is on FUSE, and why the kernel refused to register buffers, in words.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::cancel::Cancel;
use crate::engine::Member;
use crate::error::{Error, Reason, Result};
use crate::options::ALIGN;
use crate::reader::summary::Notice;

/// The error for ranges of a pipe, socket or terminal.
pub(crate) fn not_positional(name: &Path) -> Error {
    Error::InvalidOptions(format!(
        "{}: ranges are read at offsets, which only regular files and block devices have",
        name.display()
    ))
}

/// Opens `path` for reading as every path of ringread does (`O_CLOEXEC`, and `O_NOCTTY` so a
/// terminal never becomes the controlling one); a failure names the path.
pub(crate) fn open_read(path: &Path) -> Result<File> {
    File::options()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// Opens `path` as [`open_read`] does, except that a FIFO's open never waits in `open(2)` (where
/// nothing can interrupt it) for a writer: with a `cancel` handle, the file is opened with
/// `O_NONBLOCK`, and a FIFO then waits in `poll(2)` for its first writer's bytes or hang-up (what a
/// blocking open and its first read wait for), or for `cancel` ([`Error::Interrupted`]). The
/// descriptor is made blocking again before it is returned. Without a handle nothing could stop
/// the wait anyway: the plain open.
pub(crate) fn open_read_cancellable(path: &Path, cancel: Option<&Cancel>) -> Result<File> {
    let Some(cancel) = cancel else {
        return open_read(path);
    };
    let named = |source| Error::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(named)?;
    if file.metadata().map_err(named)?.file_type().is_fifo()
        && !crate::cancel::wait_readable(file.as_raw_fd(), Some(cancel))
    {
        return Err(Error::Interrupted {
            path: path.to_path_buf(),
        });
    }
    // SAFETY: fcntl on a descriptor `file` owns; no memory is passed. The file was opened with
    // no status flag but `O_NONBLOCK`, so 0 clears just that.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) } < 0 {
        return Err(named(io::Error::last_os_error()));
    }
    Ok(file)
}

/// An open file, looked at before reading: what kind it is, where reading starts, the size `fstat`
/// gives, and its `O_DIRECT` twin when that was asked for and granted.
pub(crate) struct Inspected {
    /// The file's descriptor (borrowed from the caller's `File`).
    pub fd: RawFd,
    /// Whether reads carry offsets (regular files, block devices) or read a stream's position.
    pub positional: bool,
    /// Where reading starts: 0 for a file opened by path, the current position of one handed over.
    pub start: u64,
    /// The size `fstat` (or, for a block device, `lseek`) gives: a hint, not the end.
    pub size_hint: u64,
    /// The device the file is on (`st_dev`).
    pub dev: u64,
    /// The same file opened with `O_DIRECT`, and the alignment it needs.
    pub direct: Option<(OwnedFd, usize)>,
    /// Why `O_DIRECT` was not granted, if it was asked for and refused (and how `dontcache` is
    /// done where the file system refuses `RWF_DONTCACHE`).
    pub notices: Vec<Notice>,
    /// `RWF_*` flags for every buffered read.
    pub rw_flags: i32,
    /// Drop pages behind the reads (`dontcache` without `RWF_DONTCACHE` or `O_DIRECT`).
    pub drop_behind: bool,
    /// Nothing of the file was cached when reading began (`dontcache` with `RWF_DONTCACHE`): drop
    /// it whole when reading ends. Uncached reads drop the pages they read, but read-ahead that
    /// races with them can leave a few MiB behind.
    pub drop_after: bool,
}

impl Inspected {
    /// The file as the engine reads it, called `name` in errors: its descriptors and flags.
    pub fn member<'a>(&self, name: &'a Path) -> Member<'a> {
        Member {
            path: name,
            fd: self.fd,
            direct_fd: self.direct.as_ref().map(|(f, _)| f.as_raw_fd()),
            rw_flags: self.rw_flags,
            drop_behind: self.drop_behind,
        }
    }
}

/// Looks at `file` (called `name` in errors; `path` when we opened it ourselves): refuses a
/// directory, finds where reading starts and the size hint, and opens the `O_DIRECT` twin if
/// `direct` asks for it (reads of `chunk` bytes). The file's position is left where it was.
pub(crate) fn inspect(
    file: &File,
    name: &Path,
    path: Option<&Path>,
    direct: bool,
    dontcache: bool,
    chunk: usize,
) -> Result<Inspected> {
    let open_err = |source| Error::Open {
        path: name.to_path_buf(),
        source,
    };
    let meta = file.metadata().map_err(open_err)?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(open_err(io::Error::from_raw_os_error(libc::EISDIR)));
    }
    let fd = file.as_raw_fd();
    let positional = ft.is_file() || ft.is_block_device();
    // A file we opened is read from its start; one handed to us (standard input) from where its
    // position is.
    // SAFETY: lseek on a descriptor the caller holds; positional reads do not use the position.
    let here = || unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }.max(0) as u64;
    let start = if positional && path.is_none() {
        here()
    } else {
        0
    };
    let size_hint = if ft.is_block_device() {
        let pos = here();
        // SAFETY: as above; the position is put back right after.
        let end = unsafe { libc::lseek(fd, 0, libc::SEEK_END) }.max(0) as u64;
        // SAFETY: as above.
        unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_SET) };
        end
    } else {
        meta.len()
    };
    let mut notices = Vec::new();
    let mut twin = None;
    if direct && start % ALIGN as u64 != 0 {
        notices.push(Notice::DirectUnavailable {
            reason: format!("reading starts at offset {start}, which is not {ALIGN}-aligned"),
        });
    } else if direct {
        match open_direct(fd, path, positional, chunk) {
            Ok(d) => twin = Some(d),
            Err(reason) => notices.push(Notice::DirectUnavailable { reason }),
        }
    }
    // Uncached buffered reads: only files have a page cache to spare (a pipe's data is gone once
    // read). Where the file system refuses them: O_DIRECT where the file allows it, else each
    // chunk's pages dropped once handed over.
    let (mut rw_flags, mut drop_behind, mut drop_after) = (0, false, false);
    if dontcache && ft.is_file() {
        use std::os::unix::fs::MetadataExt;
        if crate::residency::dontcache_supported(fd, meta.dev()) {
            rw_flags = libc::RWF_DONTCACHE;
            drop_after = crate::residency::of_range(file, start, size_hint.saturating_sub(start))
                .is_ok_and(|r| r.cached == 0);
        } else {
            let why = "this file system does not take uncached reads (RWF_DONTCACHE)";
            let direct = if start % ALIGN as u64 == 0 {
                open_direct(fd, path, positional, chunk)
            } else {
                Err(format!(
                    "reading starts at offset {start}, which is not {ALIGN}-aligned"
                ))
            };
            match direct {
                Ok(d) => {
                    twin = Some(d);
                    notices.push(Notice::DontcacheFallback {
                        reason: why.into(),
                        instead: "O_DIRECT".into(),
                    });
                }
                Err(no_direct) => {
                    drop_behind = true;
                    notices.push(Notice::DontcacheFallback {
                        reason: format!("{why}, nor O_DIRECT ({no_direct})"),
                        instead: "dropping its pages behind the reads (POSIX_FADV_DONTNEED)".into(),
                    });
                }
            }
        }
    }
    Ok(Inspected {
        fd,
        positional,
        start,
        size_hint,
        dev: std::os::unix::fs::MetadataExt::dev(&meta),
        direct: twin,
        notices,
        rw_flags,
        drop_behind,
        drop_after,
    })
}

pub(crate) fn register_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOMEM) => {
            // SAFETY: getrlimit writes into the struct we pass.
            let limit = unsafe {
                let mut r: libc::rlimit = std::mem::zeroed();
                (libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) == 0).then_some(r.rlim_cur)
            };
            match limit {
                Some(l) if l != libc::RLIM_INFINITY => format!(
                    "ENOMEM: locked memory is limited to {} KiB (ulimit -l) and shared by this \
                     user's processes; the kernel also frees it only some time after a ring closes",
                    l / 1024
                ),
                _ => "ENOMEM: the kernel could not pin the memory".into(),
            }
        }
        _ => format!("{}", Reason(e)),
    }
}

/// Whether `fd` is on a FUSE file system (`fstatfs`, `FUSE_SUPER_MAGIC`).
pub(crate) fn on_fuse(fd: RawFd) -> bool {
    const FUSE_SUPER_MAGIC: libc::c_long = 0x6573_5546;
    // SAFETY: fstatfs writes into the struct we pass, which is plain data.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::fstatfs(fd, &mut st) == 0 && st.f_type as libc::c_long == FUSE_SUPER_MAGIC
    }
}

/// Whether a FUSE file system is mounted anywhere this process can see (`/proc/self/mountinfo`):
/// read once, then again only when the mount table changes (the kernel marks the file, kept open,
/// with `POLLPRI`). `true` where it cannot tell. The many-files engine skips `statx` only when
/// none is: the FUSE rule needs to know each file's file system.
pub(crate) fn fuse_mounted() -> bool {
    use std::io::{Read, Seek};
    use std::sync::Mutex;
    static MOUNTS: Mutex<Option<(File, bool)>> = Mutex::new(None);
    let mut kept = MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((file, fuse)) = kept.as_ref() {
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one pollfd of ours, no wait.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        if n == 0 || (n > 0 && pfd.revents & (libc::POLLPRI | libc::POLLERR) == 0) {
            return *fuse;
        }
    }
    let read = |file: &mut File| -> std::io::Result<bool> {
        let mut text = String::new();
        file.rewind()?;
        file.read_to_string(&mut text)?;
        // Each line: "... - FSTYPE SOURCE OPTIONS".
        Ok(text.lines().any(|line| {
            line.split_once(" - ")
                .and_then(|(_, rest)| rest.split(' ').next())
                // fuse, fuse.sshfs, fuseblk, fuseblk.ntfs; virtiofs is FUSE inside.
                .and_then(|fstype| fstype.split('.').next())
                .is_some_and(|kind| matches!(kind, "fuse" | "fuseblk" | "virtiofs"))
        }))
    };
    let file = match kept.take() {
        Some((file, _)) => Ok(file),
        None => File::open("/proc/self/mountinfo"),
    };
    match file {
        Ok(mut file) => match read(&mut file) {
            Ok(fuse) => {
                *kept = Some((file, fuse));
                fuse
            }
            Err(_) => true,
        },
        Err(_) => true,
    }
}

/// The kernel's `statx` record, as far as `STATX_DIOALIGN` needs it.
#[repr(C)]
struct Statx {
    mask: u32,
    head: [u8; 148],
    dio_mem_align: u32,
    dio_offset_align: u32,
    rest: [u64; 12],
}

const STATX_DIOALIGN: u32 = 0x2000;

/// The alignment `O_DIRECT` needs on `fd` (memory, offset), if the kernel says (Linux 6.1+).
fn dio_alignment(fd: RawFd) -> Option<(u32, u32)> {
    // SAFETY: all-zero is a valid Statx; the kernel writes at most size_of::<Statx>() = 256 bytes.
    let mut st: Statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, an empty NUL-terminated path with AT_EMPTY_PATH, and a buffer of
    // the size the kernel's struct statx has.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_DIOALIGN,
            &mut st as *mut Statx,
        )
    };
    (rc == 0 && st.mask & STATX_DIOALIGN != 0).then_some((st.dio_mem_align, st.dio_offset_align))
}

/// Opens the file a second time with `O_DIRECT`, or says why not.
fn open_direct(
    fd: RawFd,
    path: Option<&Path>,
    positional: bool,
    chunk: usize,
) -> std::result::Result<(OwnedFd, usize), String> {
    if !positional {
        return Err("O_DIRECT does not apply to pipes, terminals and character devices".into());
    }
    let mut align = ALIGN;
    if let Some((mem, off)) = dio_alignment(fd) {
        if mem == 0 || off == 0 {
            return Err("the file system does not support O_DIRECT for this file (statx)".into());
        }
        if mem as usize > ALIGN || off as usize > ALIGN || chunk % off as usize != 0 {
            return Err(format!(
                "the file needs O_DIRECT alignment of {mem} bytes in memory and {off} in the file, \
                 which chunks of {chunk} bytes in {ALIGN}-aligned buffers do not meet"
            ));
        }
        align = off as usize;
    }
    let target = match path {
        Some(p) => p.to_path_buf(),
        None => format!("/proc/self/fd/{fd}").into(),
    };
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(&target)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => {
                "the file system refuses O_DIRECT (EINVAL; tmpfs before Linux 6.6 does, for one)"
                    .to_string()
            }
            _ => format!("opening with O_DIRECT failed: {}", Reason(&e)),
        })?;
    // SAFETY: into_raw_fd hands over ownership of a valid descriptor.
    let owned = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(file)) };
    Ok((owned, align))
}
