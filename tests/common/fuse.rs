//! A FUSE file system the tests mount (root and /dev/fuse needed; CI has both): one file, `data`,
//! opened with `FOPEN_DIRECT_IO` (every read reaches the server with its own offset and size), whose
//! byte `i` is [`byte_at`]`(i)`. It can fail with EIO at an offset, answer short or slowly, and make
//! lookups of any other name wait at a gate the test opens.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner,
    MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyEntry, ReplyOpen, Request,
};

const TTL: Duration = Duration::from_secs(60);

/// What the file system does.
#[derive(Clone)]
pub struct Faults {
    /// The size of `data`.
    pub size: u64,
    /// Reads at this offset fail with EIO; reads across it stop there.
    pub fail_at: Option<u64>,
    /// Every read is answered short.
    pub short: bool,
    /// Every read is answered after this long.
    pub delay: Option<Duration>,
    /// Lookups of names other than `data` wait here, then say ENOENT (without a gate: at once).
    pub gate: Option<Arc<Gate>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            size: 3 * 262_144 + 12_345,
            fail_at: None,
            short: false,
            delay: None,
            gate: None,
        }
    }
}

/// Where lookups wait until the test opens it.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Lookups that reached the gate.
    pub waiting: AtomicUsize,
}

impl Gate {
    /// Lets every waiting lookup (and later ones) go on.
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Byte `i` of `data`.
pub fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2654435761) >> 11) as u8
}

/// The first `len` bytes of `data`.
pub fn expected(len: u64) -> Vec<u8> {
    (0..len).map(byte_at).collect()
}

struct FaultFs(Faults);

impl FaultFs {
    fn attr(&self, ino: u64) -> FileAttr {
        let dir = ino == 1;
        let size = self.0.size;
        FileAttr {
            ino: INodeNo(ino),
            size: if dir { 0 } else { size },
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: if dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: if dir { 0o755 } else { 0o444 },
            nlink: if dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }
}

impl Filesystem for FaultFs {
    fn lookup(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if u64::from(parent) == 1 && name == "data" {
            return reply.entry(&TTL, &self.attr(2), fuser::Generation(0));
        }
        if let Some(gate) = &self.0.gate {
            gate.waiting.fetch_add(1, Ordering::AcqRel);
            let mut open = gate.open.lock().unwrap();
            while !*open {
                open = gate.opened.wait(open).unwrap();
            }
        }
        reply.error(Errno::ENOENT);
    }

    fn getattr(&self, _: &Request, ino: INodeNo, _: Option<FileHandle>, reply: ReplyAttr) {
        match u64::from(ino) {
            1 | 2 => reply.attr(&TTL, &self.attr(u64::from(ino))),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _: &Request, _: INodeNo, _: OpenFlags, reply: ReplyOpen) {
        // Direct I/O: every read reaches us with its own offset and size, past the page cache.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        _: &Request,
        _: INodeNo,
        _: FileHandle,
        offset: u64,
        size: u32,
        _: OpenFlags,
        _: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let f = &self.0;
        if let Some(d) = f.delay {
            std::thread::sleep(d);
        }
        let mut end = (offset + size as u64).min(f.size);
        if let Some(bad) = f.fail_at {
            if offset == bad {
                reply.error(Errno::EIO);
                return;
            }
            if offset < bad && end > bad {
                end = bad; // a disk returns what it read before the bad sector
            }
        }
        if f.short && end > offset + 1 {
            end = offset + 1 + (offset * 7 + 13) % (end - offset);
        }
        let data: Vec<u8> = (offset..end.max(offset)).map(byte_at).collect();
        reply.data(&data);
    }
}

/// Mounts the file system on a fresh directory (unmounted when the session drops); returns the
/// directory, the session and the mount point.
pub fn mount(faults: Faults) -> (tempfile::TempDir, fuser::BackgroundSession, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.mount_options = vec![MountOption::RO, MountOption::FSName("ringread-test".into())];
    let session = fuser::spawn_mount(FaultFs(faults), dir.path(), &cfg)
        .expect("mounting the test's FUSE file system needs root and /dev/fuse (CI has both)");
    let root = dir.path().to_path_buf();
    (dir, session, root)
}
