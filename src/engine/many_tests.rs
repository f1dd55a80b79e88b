//! The many-files engine against a fake ring: files in memory, `statx` sizes that lie (the file grew
//! or shrank since), opens that fail, reads cut short or failing at an offset, and completions of
//! all the files in flight handed back in a shuffled order, with links kept as the kernel keeps them
//! (an open's failure cancels the reads linked to it; a hard link runs whatever came before).

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use proptest::prelude::*;

use super::{run, Feed, Input, Next, Outcome, Settings};
use crate::buf::{Arena, Chunk};
use crate::engine::fake::Rng;
use crate::error::Error;
use crate::processor::{Processor, Whole};
use crate::ring::{FileRef, PathQueue, Queue, ReadReq, Statx};
use crate::sys::CURRENT_POSITION;

/// One file of the fake file system.
#[derive(Debug, Clone)]
struct FakeFile {
    data: Vec<u8>,
    /// What `statx` says its size is (a hint: the file may have changed since).
    hint: u64,
    /// Not there at all (`statx` says `ENOENT`).
    missing: bool,
    /// Its open fails with this errno (after `statx` found it).
    open_errno: Option<i32>,
    /// Reads at or past this offset fail with `EIO`.
    fail_at: Option<u64>,
    /// A FIFO, its writer gone after writing `data` (its reads take the next bytes, whatever
    /// the offset): the engine must hand it back where it stats first, without opening it; read
    /// without a statx, every byte, none twice.
    fifo: bool,
    /// On an anonymous device (major 0): opened as a process descriptor even with a file table.
    anonymous: bool,
}

/// What the fake ring was asked to do.
enum Op {
    Statx(usize, *mut Statx),
    Open(usize, Option<u32>),
    Read(ReadReq),
    Close(FileRef),
}

/// Whether an entry's successor runs only if it succeeds (`IO_LINK`) or whatever happens
/// (`IO_HARDLINK`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    None,
    Soft,
    Hard,
}

struct FakeRing<'f> {
    files: &'f [FakeFile],
    queued: Vec<(Op, Link, u64)>,
    done: Vec<(u64, i32)>,
    fds: HashMap<i32, usize>,
    next_fd: i32,
    table: Vec<Option<usize>>,
    rng: Rng,
    short: bool,
    in_kernel: usize,
    /// Process descriptors the engine may hold at once.
    fd_limit: usize,
    /// Each open file's position (reads at `CURRENT_POSITION` use and move it), by descriptor
    /// (table entries as `-1 - entry`).
    pos: HashMap<i32, u64>,
}

impl FakeRing<'_> {
    fn file_of(&self, path: &CStr) -> usize {
        path.to_str().unwrap().parse().unwrap()
    }

    fn read(&mut self, r: &ReadReq) -> i32 {
        let which = if r.fixed_file {
            self.table[r.fd as usize]
        } else {
            self.fds.get(&r.fd).copied()
        };
        let Some(f) = which else { return -libc::EBADF };
        let file = &self.files[f];
        let key = if r.fixed_file { -1 - r.fd } else { r.fd };
        // A FIFO's reads take its next bytes, whatever the offset.
        let at_pos = r.offset == CURRENT_POSITION || file.fifo;
        let off = if at_pos { self.pos[&key] } else { r.offset } as usize;
        let n = self.read_at(f, off, r);
        if at_pos && n > 0 {
            *self.pos.get_mut(&key).expect("an open file") += n as u64;
        }
        n
    }

    fn read_at(&mut self, f: usize, off: usize, r: &ReadReq) -> i32 {
        let file = &self.files[f];
        let mut want = r.len as usize;
        if let Some(bad) = file.fail_at.map(|b| b as usize) {
            if off >= bad && bad < file.data.len() {
                return -libc::EIO;
            }
            if off < bad && off + want > bad {
                want = bad - off;
            }
        }
        if off >= file.data.len() {
            return 0;
        }
        let mut n = want.min(file.data.len() - off);
        if self.short && n > 1 && self.rng.below(3) == 0 {
            n = 1 + self.rng.below(n);
        }
        // SAFETY: the engine lent `r.buf .. r.buf + r.len` until this read's completion is popped.
        unsafe { std::ptr::copy_nonoverlapping(file.data[off..].as_ptr(), r.buf, n) };
        n as i32
    }

    fn perform(&mut self, op: &Op) -> i32 {
        match *op {
            Op::Statx(f, out) => {
                let file = &self.files[f];
                if file.missing {
                    return -libc::ENOENT;
                }
                // SAFETY: the engine keeps the record valid until this completion is popped.
                let st = unsafe { &mut *out };
                st.stx_mode = if file.fifo {
                    libc::S_IFIFO
                } else {
                    libc::S_IFREG
                } as u16;
                st.stx_size = file.hint;
                st.stx_dev_major = if file.anonymous { 0 } else { 8 };
                0
            }
            Op::Open(f, fixed) => {
                if self.files[f].missing {
                    return -libc::ENOENT;
                }
                if let Some(e) = self.files[f].open_errno {
                    return -e;
                }
                match fixed {
                    Some(n) => {
                        assert!(self.table[n as usize].is_none(), "entry {n} in use");
                        self.table[n as usize] = Some(f);
                        self.pos.insert(-1 - n as i32, 0);
                        0
                    }
                    None => {
                        assert!(self.fds.len() < self.fd_limit, "over the descriptor limit");
                        self.next_fd += 1;
                        self.fds.insert(self.next_fd, f);
                        self.pos.insert(self.next_fd, 0);
                        self.next_fd
                    }
                }
            }
            Op::Read(r) => self.read(&r),
            Op::Close(FileRef::Fixed(n)) => match self.table[n as usize].take() {
                Some(_) => 0,
                None => -libc::EBADF,
            },
            Op::Close(FileRef::Fd(fd)) => match self.fds.remove(&fd) {
                Some(_) => 0,
                None => -libc::EBADF,
            },
        }
    }

    fn queue(&mut self, op: Op, link: Link, user_data: u64) {
        self.queued.push((op, link, user_data));
        self.in_kernel += 1;
    }
}

impl Queue for FakeRing<'_> {
    unsafe fn push(&mut self, req: ReadReq) -> io::Result<()> {
        let link = if req.then { Link::Hard } else { Link::None };
        self.queue(Op::Read(req), link, req.user_data);
        Ok(())
    }
    fn submit(&mut self, _wait: usize) -> io::Result<()> {
        // Chains run in order, as the kernel runs them; their completions come back shuffled.
        let mut failed_chain = false;
        let mut linked = Link::None;
        for (op, link, ud) in std::mem::take(&mut self.queued) {
            let res = if failed_chain && linked != Link::None {
                -libc::ECANCELED
            } else {
                let res = self.perform(&op);
                let short = matches!(&op, Op::Read(r) if res >= 0 && (res as u32) < r.len);
                failed_chain = link == Link::Soft && (res < 0 || short);
                res
            };
            if link == Link::None {
                failed_chain = false;
            }
            linked = link;
            self.done.push((ud, res));
        }
        Ok(())
    }
    fn pop(&mut self) -> Option<(u64, i32)> {
        if self.done.is_empty() || self.rng.below(5) == 0 {
            return None; // some come back at a later submit
        }
        let j = self.rng.below(self.done.len());
        self.in_kernel -= 1;
        Some(self.done.swap_remove(j))
    }
    fn cancel(&mut self, _: u64) -> io::Result<()> {
        Ok(())
    }
}

impl PathQueue for FakeRing<'_> {
    unsafe fn push_statx(&mut self, path: &CStr, out: *mut Statx, ud: u64) -> io::Result<()> {
        let f = self.file_of(path);
        self.queue(Op::Statx(f, out), Link::None, ud);
        Ok(())
    }
    unsafe fn push_openat(
        &mut self,
        path: &CStr,
        fixed: Option<u32>,
        link: bool,
        _nonblock: bool,
        ud: u64,
    ) -> io::Result<()> {
        let f = self.file_of(path);
        let link = if link { Link::Soft } else { Link::None };
        self.queue(Op::Open(f, fixed), link, ud);
        Ok(())
    }
    fn push_close(&mut self, file: FileRef, ud: u64) -> io::Result<()> {
        self.queue(Op::Close(file), Link::None, ud);
        Ok(())
    }
    fn stat_now(&mut self, path: &CStr, out: &mut Statx) -> i32 {
        let f = self.file_of(path);
        self.perform(&Op::Statx(f, out))
    }
}

/// Collects what the engine delivers, checking offsets are contiguous.
#[derive(Default)]
struct Collect {
    data: Vec<u8>,
    finished: bool,
}
impl Processor for Collect {
    fn process(&mut self, chunk: &Chunk<'_>) -> io::Result<bool> {
        assert_eq!(
            chunk.offset(),
            self.data.len() as u64,
            "chunks out of order"
        );
        assert!(!chunk.is_empty());
        self.data.extend_from_slice(chunk);
        Ok(true)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        Ok(())
    }
}

struct List {
    n: usize,
    next: usize,
    /// Inputs given as known regular files (read without a statx where the settings allow).
    regular: bool,
}
impl Feed<Whole, Collect> for List {
    fn next(&mut self, _wait: bool) -> Next<Whole, Collect> {
        if self.next == self.n {
            return Next::End;
        }
        self.next += 1;
        let i = self.next - 1;
        Next::Item(
            i,
            if self.regular {
                Input::Regular(PathBuf::from(i.to_string()))
            } else {
                Input::Path(PathBuf::from(i.to_string()))
            },
            (Whole, Collect::default()),
        )
    }
}

fn fake_file() -> impl Strategy<Value = FakeFile> {
    (
        prop_oneof![0usize..70, 0usize..300],
        -40i64..40,
        0u8..20,
        prop::option::of(0u64..200),
    )
        .prop_map(|(len, lie, what, fail_at)| FakeFile {
            data: (0..len).map(|i| (i * 7 + len) as u8).collect(),
            hint: (len as i64 + if what < 6 { lie } else { 0 }).max(0) as u64,
            missing: what == 6,
            open_errno: (what == 7).then_some(libc::EACCES),
            fail_at: fail_at.filter(|_| what == 8),
            fifo: what == 9,
            anonymous: (10..14).contains(&what),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_file_exactly_in_input_order_whatever_the_completion_order(
        files in prop::collection::vec(fake_file(), 0..24),
        chunk in prop_oneof![Just(1usize), 1usize..40, Just(64)],
        width in 1usize..9,
        fixed_files in any::<bool>(),
        unstated in any::<bool>(),
        stat_here in any::<bool>(),
        fd_limit in 1usize..5,
        short in any::<bool>(),
        max_bytes in prop::option::of(0u64..150),
        seed in any::<u64>(),
    ) {
        let arena = Arena::new(width, chunk).unwrap();
        let mut ring = FakeRing {
            files: &files,
            queued: Vec::new(),
            done: Vec::new(),
            fds: HashMap::new(),
            next_fd: 100,
            table: vec![None; width],
            rng: Rng(seed | 1),
            short,
            in_kernel: 0,
            fd_limit,
            pos: HashMap::new(),
        };
        let s = Settings {
            chunk,
            width,
            window: 4 * width,
            large: 250,
            max_bytes,
            registered: 0,
            fixed_files,
            fd_limit,
            cancel: None,
            dontcache: false,
            unstated,
            stat_here,
            read_elsewhere: |_| false,
            open: |_| unreachable!("the ring opens its files itself"),
        };
        // Opened without a statx: what the steps learn from reads, not from the size hint.
        let unstated = unstated && fixed_files && max_bytes != Some(0);
        let mut released = Vec::new();
        let mut release = |i: usize, path: PathBuf, out: Outcome<Whole, Collect>| {
            assert_eq!(path.as_os_str().as_bytes(), i.to_string().as_bytes());
            released.push((i, out));
            Ok(())
        };
        let mut feed = List {
            n: files.len(),
            next: 0,
            regular: unstated,
        };
        run(&mut ring, &arena, &s, &mut feed, &mut release).unwrap();
        prop_assert_eq!(ring.in_kernel, 0, "operations left in the kernel");
        prop_assert!(ring.fds.is_empty(), "descriptors left open");
        prop_assert!(ring.table.iter().all(Option::is_none), "direct descriptors left open");
        prop_assert_eq!(released.len(), files.len());
        for (n, (i, out)) in released.into_iter().enumerate() {
            prop_assert_eq!(n, i, "released out of input order");
            check_outcome(i, &files[i], out, max_bytes, unstated)?;
        }
    }
}

/// What became of file `i` (`f`), as the engine handed it back, against what it holds.
fn check_outcome(
    i: usize,
    f: &FakeFile,
    out: Outcome<Whole, Collect>,
    max_bytes: Option<u64>,
    unstated: bool,
) -> Result<(), TestCaseError> {
    let limit = max_bytes.map_or(usize::MAX, |m| m as usize);
    match out {
        Outcome::Deferred(_, _, _) if unstated => {
            // Nothing read (empty, a FIFO), or larger than its first chunk and than
            // the limit by its statx.
            let large = !f.fifo && f.hint > 250;
            prop_assert!(f.data.is_empty() || large, "file {} deferred", i);
            prop_assert!(!f.missing && f.open_errno.is_none());
        }
        Outcome::Deferred(_, _, _) => {
            prop_assert!(f.fifo || f.hint > 250, "file {} deferred", i);
        }
        Outcome::Read(Ok(bytes), c) => {
            prop_assert!(!f.missing && f.open_errno.is_none());
            prop_assert!(unstated || (f.hint <= 250 && !f.fifo));
            let end = f.data.len().min(limit);
            if let Some(bad) = f.fail_at.filter(|&b| (b as usize) < end) {
                prop_assert!(false, "file {} read past its bad byte at {}", i, bad);
            }
            prop_assert_eq!(&c.data[..], &f.data[..end], "file {}", i);
            prop_assert_eq!(bytes, end as u64);
            prop_assert!(c.finished || (end == 0 && limit == 0));
        }
        Outcome::Read(Err(e), c) => match e {
            Error::Open { .. } => {
                prop_assert!(f.missing || f.open_errno.is_some(), "file {}: {}", i, e);
                prop_assert!(c.data.is_empty());
            }
            Error::Read { offset, .. } => {
                let bad = f.fail_at.expect("a read error only where one was set");
                prop_assert_eq!(offset, bad);
                prop_assert_eq!(&c.data[..], &f.data[..bad as usize]);
                prop_assert!(!c.finished);
            }
            e => prop_assert!(false, "file {}: {}", i, e),
        },
    }
    Ok(())
}
