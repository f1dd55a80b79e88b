//! One thread of the pool that reads many whole files where io_uring is refused or not wanted
//! ([`Reader::read_each`](crate::Reader::read_each) under `pread`): its inputs one after another,
//! each by the same rules as every path (one lane of depth one on `pread(2)`, as the synchronous
//! path reads), into one buffer. What is not a regular file, or is larger than
//! [`Settings::large`], goes back to the caller, as from the ring ([`Outcome::Deferred`]).

use std::fs::{File, Metadata};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::lanes::{run_lane, Run};
use super::many::{Feed, Input, Next, Outcome, Settings, DESCRIPTOR_WAIT_MS};
use super::{Job, Member, PreadQueue};
use crate::buf::Arena;
use crate::chunks::Chunks;
use crate::error::{Error, Result};
use crate::file_steps::{verdict, Stat};
use crate::processor::{Combine, Prepare};
use crate::residency::dontcache_supported;

/// Reads the inputs of `feed` one after another into `arena`'s one buffer, handing each outcome
/// to `release` (in the order `feed` gave them).
pub(crate) fn run<Pr, C>(
    arena: &Arena,
    s: &Settings<'_>,
    feed: &mut dyn Feed<Pr, C>,
    release: &mut dyn FnMut(usize, PathBuf, Outcome<Pr, C>) -> Result<()>,
) -> Result<()>
where
    Pr: Prepare,
    C: Combine<Pr::Part>,
{
    let mut thread = PoolThread {
        arena,
        s,
        q: PreadQueue::default(),
    };
    loop {
        if let Some(c) = s.cancel {
            if c.is_cancelled() {
                return Err(Error::Interrupted {
                    path: PathBuf::new(),
                });
            }
        }
        let (i, input, (pr, mut c)) = match feed.next(true) {
            Next::Item(i, input, work) => (i, input, work),
            Next::NotNow => continue,
            Next::End => return Ok(()),
        };
        // stat(2) before open(2): a FIFO's open would wait for a writer.
        let (opened, path) = match input {
            Input::Path(path) | Input::Regular(path) => (None, path),
            Input::Open(file, path) => (Some(file), path),
        };
        let meta = match &opened {
            Some(file) => file.metadata(),
            None => std::fs::metadata(&path),
        };
        let meta = match meta {
            Ok(m) => m,
            Err(source) => {
                let e = Error::Open {
                    path: path.clone(),
                    source,
                };
                release(i, path, Outcome::Read(Err(e), c))?;
                continue;
            }
        };
        if thread.for_the_caller(opened.as_ref(), &meta) {
            release(i, path, Outcome::Deferred(opened, pr, c))?;
            continue;
        }
        let result = thread.read(opened, &path, &meta, &pr, &mut c);
        if let Err(Error::Interrupted { path }) = result {
            return Err(Error::Interrupted { path });
        }
        release(i, path, Outcome::Read(result, c))?;
    }
}

/// What a thread of the pool reads with: its buffer, the settings, its `pread(2)` queue.
struct PoolThread<'a> {
    arena: &'a Arena,
    s: &'a Settings<'a>,
    q: PreadQueue,
}

impl PoolThread<'_> {
    /// Whether the caller reads this input its own way: anything but a regular file, one larger
    /// than [`Settings::large`], and a file whose file system refuses uncached reads (the lanes'
    /// way reads it another way that spares the cache, and says so).
    fn for_the_caller(&self, opened: Option<&File>, meta: &Metadata) -> bool {
        let uncached_refused = self.s.dontcache
            && opened.is_some_and(|f| !dontcache_supported(f.as_raw_fd(), meta.dev()));
        verdict(Stat::of_metadata(meta), self.s.large).is_err() || uncached_refused
    }

    /// Reads a regular file (opened here unless the caller opened it; read from its current
    /// position if so) to its end or the limit, with one lane of depth one; then finishes its
    /// processor. The bytes delivered.
    fn read<Pr, C>(
        &mut self,
        opened: Option<File>,
        path: &Path,
        meta: &Metadata,
        pr: &Pr,
        c: &mut C,
    ) -> Result<u64>
    where
        Pr: Prepare,
        C: Combine<Pr::Part>,
    {
        let s = self.s;
        let file = match opened {
            Some(file) => Ok(file),
            None => open_waiting(path, s.open),
        };
        let result = file.and_then(|file| {
            // A file the caller opened is read from its current position.
            // SAFETY: lseek on a descriptor `file` owns.
            let start = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_CUR) }.max(0) as u64;
            let rw_flags = if s.dontcache && dontcache_supported(file.as_raw_fd(), meta.dev()) {
                libc::RWF_DONTCACHE
            } else {
                0
            };
            let src = Job {
                file: Member {
                    path,
                    fd: file.as_raw_fd(),
                    direct_fd: None,
                    rw_flags,
                    // A file system without RWF_DONTCACHE: its pages dropped behind the reads.
                    drop_behind: s.dontcache && rw_flags == 0,
                },
                rules: Chunks::new(start, s.chunk, s.max_bytes, meta.len(), true, None),
                plan: None,
                ordered: true,
                members: &[],
            };
            c.begin().map_err(|source| Error::Process {
                path: path.to_path_buf(),
                offset: 0,
                source,
            })?;
            let run = Run::new(src, 1, pr, &mut *c).with_cancel(s.cancel);
            // A pread queue completes every read before it returns: nothing is left to reap.
            run_lane(&run, 0, &mut self.q, self.arena, 1, 0);
            run.finish()
        });
        result.and_then(|bytes| {
            c.finish().map(|()| bytes).map_err(|source| Error::Process {
                path: path.to_path_buf(),
                offset: bytes,
                source,
            })
        })
    }
}

/// Opens `path` with `open`; where the process has no descriptor left (`EMFILE`, `ENFILE`),
/// waits for one (another thread of the pool closes its file soon) for up to two seconds before
/// saying so.
fn open_waiting(path: &Path, open: fn(&Path) -> Result<File>) -> Result<File> {
    let mut waited = 0;
    loop {
        match open(path) {
            Err(Error::Open { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    && waited < DESCRIPTOR_WAIT_MS =>
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
                waited += 1;
            }
            r => return r,
        }
    }
}
