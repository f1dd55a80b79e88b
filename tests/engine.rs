//! The reader end to end, against `std::fs::read` of the same file.
//!
//! Every test here compares the bytes a processor was handed, chunk by chunk, with the file as the
//! standard library reads it, on a real disk file system (ext4 under `CARGO_TARGET_TMPDIR`, so that
//! `O_DIRECT` really goes to the device), on tmpfs, on `/proc` and `/sys`, and through pipes.
//!
//! io_uring tests ask for `Backend::Uring`: where the kernel refuses io_uring they fail, they do not
//! skip.
//!
//! One test counts this process's file descriptors; it takes `common::exclusive()`, every other
//! test `common::shared()`, so no other test opens or closes descriptors while it counts.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;

mod common;
use common::{exclusive, open_fds, pipe, random_bytes, shared};
use ringread::{
    Backend, Chunk, Engine, Error, Notice, Processor, ReadOptions, Reader, Source, Summary,
};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// The file system type of `path` (`statfs`'s `f_type`).
#[allow(clippy::unnecessary_cast)]
fn fs_type(path: &Path) -> i64 {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: all-zero is a valid statfs; the call writes into it and reads the NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    assert_eq!(
        rc,
        0,
        "statfs {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
    st.f_type as i64
}

#[allow(clippy::unnecessary_cast)]
const TMPFS: i64 = libc::TMPFS_MAGIC as i64;
#[allow(clippy::unnecessary_cast)]
const EXT4: i64 = libc::EXT4_SUPER_MAGIC as i64;

/// A fresh directory on the real disk (not tmpfs), removed when dropped.
fn disk_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ringread-engine-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory under CARGO_TARGET_TMPDIR");
    let t = fs_type(dir.path());
    assert_ne!(
        t,
        TMPFS,
        "{} is on tmpfs: O_DIRECT would not be exercised",
        dir.path().display()
    );
    dir
}

fn write_file(path: &Path, data: &[u8]) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

/// The CPUs this process may run on (what the reader uses when `threads` is not given).
fn usable_cpus() -> usize {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        (libc::CPU_COUNT(&set) as usize).max(1)
    }
}

/// Directories that live for the whole test process (fixtures shared through `OnceLock`) are
/// removed at exit: statics are never dropped.
static KEEP_UNTIL_EXIT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn remove_fixtures() {
    if let Ok(dirs) = KEEP_UNTIL_EXIT.lock() {
        for d in dirs.iter() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

fn process_lifetime_dir() -> PathBuf {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a plain extern "C" function with no arguments.
        assert_eq!(unsafe { libc::atexit(remove_fixtures) }, 0);
    });
    let dir = disk_dir().keep();
    KEEP_UNTIL_EXIT.lock().unwrap().push(dir.clone());
    dir
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const CHUNKS: [usize; 3] = [4096, 64 * 1024, 1024 * 1024];
const DEPTHS: [usize; 3] = [1, 2, 64];
const THREADS: [Option<usize>; 3] = [None, Some(1), Some(3)];
/// About 64 MiB, with a tail that is not a multiple of any block size.
const BIG_SIZE: usize = (64 << 20) + 12_345;

fn sizes_for(chunk: usize) -> Vec<usize> {
    let mut v = vec![
        0,
        1,
        511,
        4095,
        4096,
        4097,
        chunk - 1,
        chunk,
        chunk + 1,
        3 * chunk + 17,
    ];
    v.sort_unstable();
    v.dedup();
    v
}

struct TestFile {
    path: PathBuf,
    data: Vec<u8>,
}

/// One file of every size the matrix reads, on disk.
fn small_files() -> &'static [TestFile] {
    static FILES: OnceLock<Vec<TestFile>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = process_lifetime_dir();
        let mut sizes: Vec<usize> = CHUNKS.iter().flat_map(|&c| sizes_for(c)).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
            .into_iter()
            .map(|size| {
                let path = dir.join(format!("small-{size}"));
                let data = random_bytes(size, size as u64 + 1);
                write_file(&path, &data);
                TestFile { path, data }
            })
            .collect()
    })
}

fn small_file(size: usize) -> &'static TestFile {
    small_files()
        .iter()
        .find(|f| f.data.len() == size)
        .expect("a fixture of that size")
}

fn big_file() -> &'static TestFile {
    static BIG: OnceLock<TestFile> = OnceLock::new();
    BIG.get_or_init(|| {
        let path = process_lifetime_dir().join("big");
        let data = random_bytes(BIG_SIZE, 0xB16_F11E);
        write_file(&path, &data);
        TestFile { path, data }
    })
}

// ---------------------------------------------------------------------------------------------
// The checking processor
// ---------------------------------------------------------------------------------------------

/// Checks every chunk against the reference as it arrives: contiguous offsets from `start` (0
/// unless set), no empty chunk, no chunk longer than the chunk size and (for files) every chunk but
/// the last full.
struct Recorder<'r> {
    reference: &'r [u8],
    start: u64,
    chunk: usize,
    full_chunks: bool,
    collected: Option<Vec<u8>>,
    next: u64,
    chunks: u64,
    short_seen: bool,
    begins: u32,
    finishes: u32,
    problem: Option<String>,
}

impl<'r> Recorder<'r> {
    fn new(reference: &'r [u8], chunk: usize, full_chunks: bool, collect: bool) -> Self {
        Recorder {
            reference,
            start: 0,
            chunk,
            full_chunks,
            collected: collect.then(Vec::new),
            next: 0,
            chunks: 0,
            short_seen: false,
            begins: 0,
            finishes: 0,
            problem: None,
        }
    }

    /// Expects the bytes from `start` to the end of the reference, at their file offsets.
    fn starting_at(mut self, start: u64) -> Self {
        self.start = start;
        self.next = start;
        self
    }

    fn inspect(&mut self, c: &Chunk<'_>) -> Result<(), String> {
        let (off, len) = (c.offset(), c.len());
        let n = self.chunks;
        if self.begins != 1 {
            return Err(format!(
                "chunk {n} delivered with begin() called {} times",
                self.begins
            ));
        }
        if off != self.next {
            return Err(format!("chunk {n} starts at {off}, expected {}", self.next));
        }
        if len == 0 {
            return Err(format!("chunk {n} at {off} is empty"));
        }
        if len > self.chunk {
            return Err(format!(
                "chunk {n} at {off} has {len} bytes, more than the chunk size {}",
                self.chunk
            ));
        }
        if self.full_chunks {
            if self.short_seen {
                return Err(format!(
                    "chunk {n} at {off} follows a chunk shorter than the chunk size"
                ));
            }
            self.short_seen = len < self.chunk;
        }
        let end = off as usize + len;
        if end > self.reference.len() {
            return Err(format!(
                "chunk {n} at {off} of {len} bytes ends past the end of the file ({})",
                self.reference.len()
            ));
        }
        let want = &self.reference[off as usize..end];
        if want != c.bytes() {
            let i = want
                .iter()
                .zip(c.bytes())
                .position(|(a, b)| a != b)
                .unwrap();
            return Err(format!(
                "chunk {n} at {off}: byte {} is {:#04x}, the file has {:#04x}",
                off as usize + i,
                c.bytes()[i],
                want[i]
            ));
        }
        Ok(())
    }

    /// Everything that must hold once the read returned `summary`.
    fn verdict(self, summary: &Summary) -> Result<(), String> {
        if let Some(p) = self.problem {
            return Err(p);
        }
        let len = self.reference.len() as u64;
        let expected_bytes = len - self.start;
        if self.begins != 1 || self.finishes != 1 {
            return Err(format!(
                "begin() called {} times, finish() {} times",
                self.begins, self.finishes
            ));
        }
        if self.next != len {
            return Err(format!(
                "delivered bytes end at {}, the file has {len}",
                self.next
            ));
        }
        if summary.bytes != expected_bytes {
            return Err(format!(
                "Summary.bytes = {}, expected {expected_bytes}",
                summary.bytes
            ));
        }
        if self.full_chunks {
            let want = expected_bytes.div_ceil(self.chunk as u64);
            if self.chunks != want {
                return Err(format!("{} chunks delivered, expected {want}", self.chunks));
            }
        }
        if let Some(v) = self.collected {
            if v.as_slice() != &self.reference[self.start as usize..] {
                return Err("collected bytes differ from std::fs::read".into());
            }
        }
        Ok(())
    }
}

impl Processor for Recorder<'_> {
    fn begin(&mut self) -> io::Result<()> {
        self.begins += 1;
        Ok(())
    }

    fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
        if self.problem.is_none() {
            self.problem = self.inspect(c).err();
        }
        if let Some(v) = &mut self.collected {
            v.extend_from_slice(c);
        }
        self.chunks += 1;
        self.next = c.offset() + c.len() as u64;
        Ok(true)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.finishes += 1;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Cases and expectations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Case {
    backend: Backend,
    direct: bool,
    register: bool,
    depth: usize,
    chunk: usize,
    threads: Option<usize>,
    sqpoll: bool,
}

impl Case {
    fn uring(chunk: usize, depth: usize, threads: Option<usize>) -> Case {
        Case {
            backend: Backend::Uring,
            direct: false,
            register: true,
            depth,
            chunk,
            threads,
            sqpoll: false,
        }
    }

    fn sync(chunk: usize) -> Case {
        Case {
            backend: Backend::Sync,
            ..Case::uring(chunk, 1, None)
        }
    }

    fn direct(self, on: bool) -> Case {
        Case { direct: on, ..self }
    }

    fn register(self, on: bool) -> Case {
        Case {
            register: on,
            ..self
        }
    }

    fn options(&self) -> ReadOptions {
        let mut b = ReadOptions::builder()
            .backend(self.backend)
            .direct(self.direct)
            .register_buffers(self.register)
            .depth(self.depth)
            .chunk_size(self.chunk)
            .sqpoll(self.sqpoll);
        if let Some(t) = self.threads {
            b = b.threads(t);
        }
        b.build()
            .unwrap_or_else(|e| panic!("options of {self:?} refused: {e}"))
    }

    fn reader(&self) -> Reader {
        Reader::new(self.options())
    }
}

/// What the summary of a read must say, given the case and whether `O_DIRECT` can work on the file.
fn check_summary(
    case: &Case,
    s: &Summary,
    direct_expected: bool,
    positional: bool,
) -> Result<(), String> {
    let p = &s.route;
    let mut bad = Vec::new();
    let want_engine = match case.backend {
        Backend::Sync => Engine::Sync,
        Backend::Pread => Engine::Pread,
        _ => Engine::Uring,
    };
    if p.engine != want_engine {
        bad.push(format!("engine {:?}, expected {want_engine:?}", p.engine));
    }
    if p.direct != direct_expected {
        bad.push(format!(
            "path.direct = {}, expected {direct_expected}",
            p.direct
        ));
    }
    if p.chunk_size != case.chunk {
        bad.push(format!("path.chunk_size = {}", p.chunk_size));
    }
    if p.positional != positional {
        bad.push(format!(
            "path.positional = {}, expected {positional}",
            p.positional
        ));
    }
    if p.registered > p.buffers {
        bad.push(format!(
            "{} registered of {} buffers",
            p.registered, p.buffers
        ));
    }
    let direct_notice = s
        .notices
        .iter()
        .any(|n| matches!(n, Notice::DirectUnavailable { .. }));
    if case.direct && !direct_expected && !direct_notice {
        bad.push("O_DIRECT not used and no DirectUnavailable notice".into());
    }
    if direct_expected && direct_notice {
        bad.push("O_DIRECT used, yet a DirectUnavailable notice".into());
    }
    if s.notices
        .iter()
        .any(|n| matches!(n, Notice::UringUnavailable { .. }))
    {
        bad.push("UringUnavailable notice".into());
    }
    let fewer_notice = s
        .notices
        .iter()
        .any(|n| matches!(n, Notice::RegisteredFewer { .. }));
    match p.engine {
        Engine::Uring | Engine::Pread => {
            let max_threads = case.threads.unwrap_or_else(usable_cpus).min(case.depth);
            if p.threads == 0 || p.threads > max_threads {
                bad.push(format!(
                    "path.threads = {}, expected 1..={max_threads}",
                    p.threads
                ));
            }
            if !positional && p.threads != 1 {
                bad.push(format!("a stream read by {} threads", p.threads));
            }
            if p.buffers == 0 || p.buffers > case.depth || p.buffers < p.threads {
                bad.push(format!(
                    "path.buffers = {} (depth {}, threads {})",
                    p.buffers, case.depth, p.threads
                ));
            }
            if !case.register && (p.registered != 0 || fewer_notice) {
                bad.push(format!(
                    "registration off, yet {} registered / notice {fewer_notice}",
                    p.registered
                ));
            }
            if p.engine == Engine::Uring
                && case.register
                && p.registered < p.buffers
                && !fewer_notice
            {
                bad.push(format!(
                    "only {} of {} buffers registered and no RegisteredFewer notice",
                    p.registered, p.buffers
                ));
            }
            if p.sqpoll != case.sqpoll {
                bad.push(format!("path.sqpoll = {}", p.sqpoll));
            }
        }
        Engine::Sync => {
            if (p.threads, p.buffers, p.registered) != (1, 1, 0) || p.sqpoll || fewer_notice {
                bad.push(format!("sync path {p:?}, notices {:?}", s.notices));
            }
        }
        other => bad.push(format!("unexpected engine {other:?}")),
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{} (summary {s:?})", bad.join("; ")))
    }
}

/// Reads `path` with `reader` and checks everything against `reference`.
fn read_and_check(
    reader: &Reader,
    case: &Case,
    path: &Path,
    reference: &[u8],
    collect: bool,
    direct_expected: bool,
) -> Result<Summary, String> {
    let mut rec = Recorder::new(reference, case.chunk, true, collect);
    let summary = reader
        .read(path, &mut rec)
        .map_err(|e| format!("read failed: {e} ({e:?})"))?;
    rec.verdict(&summary)?;
    check_summary(case, &summary, direct_expected, true)?;
    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// The checker itself must be able to fail
// ---------------------------------------------------------------------------------------------

#[test]
fn checker_rejects_bad_deliveries() {
    let reference: Vec<u8> = (0..10u8).collect();
    let summary = |bytes: u64| Summary {
        bytes,
        route: ringread::Route {
            engine: Engine::Sync,
            threads: 1,
            buffers: 1,
            registered: 0,
            chunk_size: 4,
            direct: false,
            uncached: false,
            sqpoll: false,
            positional: true,
        },
        notices: Vec::new(),
    };
    let run = |chunks: &[(u64, &[u8])], begins: u32, bytes: u64| {
        let mut r = Recorder::new(&reference, 4, true, true);
        for _ in 0..begins {
            r.begin().unwrap();
        }
        for (off, data) in chunks {
            assert!(r.process(&Chunk::new(*off, data)).unwrap());
        }
        r.finish().unwrap();
        r.verdict(&summary(bytes))
    };
    let good: [(u64, &[u8]); 3] = [(0, &[0, 1, 2, 3]), (4, &[4, 5, 6, 7]), (8, &[8, 9])];
    assert_eq!(run(&good, 1, 10), Ok(()));
    // (what, chunks, begin() calls, Summary.bytes)
    type Bad<'a> = (&'a str, Vec<(u64, &'a [u8])>, u32, u64);
    let bad: [Bad<'_>; 8] = [
        ("gap", vec![good[0], good[2]], 1, 10),
        (
            "overlap",
            vec![good[0], (3, &[3, 4, 5, 6]), (7, &[7, 8, 9])],
            1,
            10,
        ),
        (
            "wrong byte",
            vec![good[0], (4, &[4, 5, 0, 7]), good[2]],
            1,
            10,
        ),
        (
            "short middle chunk",
            vec![(0, &[0, 1]), (2, &[2, 3, 4, 5]), (6, &[6, 7, 8, 9])],
            1,
            10,
        ),
        ("missing tail", vec![good[0], good[1]], 1, 8),
        ("wrong Summary.bytes", good.to_vec(), 1, 9),
        ("begin twice", good.to_vec(), 2, 10),
        (
            "past the end",
            vec![good[0], good[1], (8, &[8, 9, 10])],
            1,
            11,
        ),
    ];
    for (what, chunks, begins, bytes) in bad {
        assert!(
            run(&chunks, begins, bytes).is_err(),
            "{what} was not caught"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 0. The environment
// ---------------------------------------------------------------------------------------------

#[test]
fn io_uring_is_available() {
    let _g = shared();
    let reader = Reader::new(ReadOptions::default());
    assert_eq!(
        reader.uring_status(),
        Ok(()),
        "io_uring must be usable for these tests"
    );
}

#[test]
fn fixtures_live_on_ext4() {
    let _g = shared();
    let f = small_file(4097);
    assert_eq!(
        fs_type(&f.path),
        EXT4,
        "the fixtures must be on ext4 (CARGO_TARGET_TMPDIR = {})",
        env!("CARGO_TARGET_TMPDIR")
    );
}

#[test]
fn auto_backend_uses_uring_here() {
    let _g = shared();
    let f = small_file(4097);
    let reader = Reader::new(ReadOptions::builder().chunk_size(4096).build().unwrap());
    let mut rec = Recorder::new(&f.data, 4096, true, true);
    let s = reader.read(&f.path, &mut rec).unwrap();
    rec.verdict(&s).unwrap();
    assert_eq!(s.route.engine, Engine::Uring, "{s:?}");
    assert!(s.notices.is_empty(), "{:?}", s.notices);
}

// ---------------------------------------------------------------------------------------------
// 1. The matrix
// ---------------------------------------------------------------------------------------------

/// On a file of many chunks, every lane and every buffer is used: `threads` threads (default: the
/// usable CPUs), never more than the depth, and `depth` buffers in all.
fn check_all_lanes(case: &Case, s: &Summary) -> Result<(), String> {
    if s.route.engine != Engine::Uring {
        return Ok(());
    }
    // One lane per usable CPU by default; one under O_DIRECT and SQPOLL, where a lane has no copy to
    // share (the device or a kernel thread does it).
    let default = if case.direct || case.sqpoll {
        1
    } else {
        usable_cpus()
    };
    let threads = case.threads.unwrap_or(default).min(case.depth);
    if (s.route.threads, s.route.buffers) != (threads, case.depth) {
        return Err(format!(
            "{} threads and {} buffers, expected {threads} and {}",
            s.route.threads, s.route.buffers, case.depth
        ));
    }
    if case.register && s.route.registered != s.route.buffers {
        let fewer = s
            .notices
            .iter()
            .any(|n| matches!(n, Notice::RegisteredFewer { .. }));
        if !fewer {
            return Err(format!(
                "{} of {} registered without a notice",
                s.route.registered, s.route.buffers
            ));
        }
    }
    Ok(())
}

/// Every combination of registration, depth, chunk size and threads for one backend and one
/// `direct`, over every small size (`big == false`) or the ~64 MiB file (`big == true`).
fn run_matrix(backend: Backend, direct: bool, big: bool) {
    let _g = shared();
    let mut failures = Vec::new();
    let mut reads = 0usize;
    let mut expected_reads = 0usize;
    for register in [false, true] {
        for depth in DEPTHS {
            for chunk in CHUNKS {
                for threads in THREADS {
                    let case = Case {
                        backend,
                        direct,
                        register,
                        depth,
                        chunk,
                        threads,
                        sqpoll: false,
                    };
                    let reader = case.reader();
                    let files: Vec<(&TestFile, bool)> = if big {
                        vec![(big_file(), false)]
                    } else {
                        sizes_for(chunk)
                            .into_iter()
                            .map(|s| (small_file(s), true))
                            .collect()
                    };
                    expected_reads += files.len();
                    for (f, collect) in files {
                        reads += 1;
                        let outcome =
                            read_and_check(&reader, &case, &f.path, &f.data, collect, direct)
                                .and_then(|s| {
                                    if big {
                                        check_all_lanes(&case, &s)
                                    } else {
                                        Ok(())
                                    }
                                });
                        if let Err(e) = outcome {
                            failures.push(format!("{case:?} size={}: {e}", f.data.len()));
                        }
                    }
                }
            }
        }
    }
    let per_chunk: usize = CHUNKS
        .iter()
        .map(|&c| if big { 1 } else { sizes_for(c).len() })
        .sum();
    assert_eq!(reads, expected_reads);
    assert_eq!(reads, 2 * DEPTHS.len() * THREADS.len() * per_chunk);
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn matrix_uring_buffered() {
    run_matrix(Backend::Uring, false, false);
}

#[test]
fn matrix_uring_direct() {
    run_matrix(Backend::Uring, true, false);
}

#[test]
fn matrix_sync_buffered() {
    run_matrix(Backend::Sync, false, false);
}

#[test]
fn matrix_sync_direct() {
    run_matrix(Backend::Sync, true, false);
}

#[test]
fn matrix_pread_buffered() {
    run_matrix(Backend::Pread, false, false);
}

#[test]
fn matrix_pread_direct() {
    run_matrix(Backend::Pread, true, false);
}

#[test]
fn matrix_big_pread_buffered() {
    run_matrix(Backend::Pread, false, true);
}

#[test]
fn matrix_big_pread_direct() {
    run_matrix(Backend::Pread, true, true);
}

#[test]
fn matrix_big_uring_buffered() {
    run_matrix(Backend::Uring, false, true);
}

#[test]
fn matrix_big_uring_direct() {
    run_matrix(Backend::Uring, true, true);
}

#[test]
fn matrix_big_sync_buffered() {
    run_matrix(Backend::Sync, false, true);
}

#[test]
fn matrix_big_sync_direct() {
    run_matrix(Backend::Sync, true, true);
}

// ---------------------------------------------------------------------------------------------
// 2. /proc and /sys: st_size says nothing about the content
// ---------------------------------------------------------------------------------------------

fn pseudo_file_cases() -> Vec<Case> {
    vec![
        Case::uring(1, 1, Some(1)),
        Case::uring(7, 4, Some(2)).register(false),
        Case::uring(64, 16, Some(3)),
        Case::uring(4096, 8, None),
        Case::uring(65536, 2, Some(2)).register(false),
        Case::uring(1 << 20, 64, None),
        Case::sync(1),
        Case::sync(4096),
    ]
}

/// Reads `path` with every case and compares with `std::fs::read`, which must itself be stable.
fn check_pseudo_file(path: &str, cases: &[Case]) {
    let want = fs::read(path).unwrap();
    assert!(!want.is_empty(), "{path} is empty");
    assert_eq!(
        fs::read(path).unwrap(),
        want,
        "{path} changes between reads: no oracle"
    );
    let mut failures = Vec::new();
    for case in cases {
        let reader = case.reader();
        let mut rec = Recorder::new(&want, case.chunk, true, true);
        let result = reader
            .read(path, &mut rec)
            .map_err(|e| format!("read failed: {e}"))
            .and_then(|s| {
                rec.verdict(&s)?;
                check_summary(case, &s, false, true)
            });
        if let Err(e) = result {
            failures.push(format!("{path} {case:?}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn proc_files_through_uring() {
    let _g = shared();
    for path in ["/proc/version", "/proc/filesystems"] {
        assert_eq!(
            fs::metadata(path).unwrap().len(),
            0,
            "{path}: st_size is expected to be 0"
        );
        check_pseudo_file(path, &pseudo_file_cases());
    }
}

#[test]
fn large_proc_file_through_uring() {
    let _g = shared();
    // Several MiB with st_size 0: many chunks, read past the size hint one turn at a time.
    let path = "/proc/kallsyms";
    assert_eq!(fs::metadata(path).unwrap().len(), 0);
    let cases = [
        Case::uring(64 * 1024, 8, Some(2)),
        Case::uring(256 * 1024, 9, Some(3)).register(false),
        Case::uring(1 << 20, 4, None),
        Case::sync(64 * 1024),
    ];
    check_pseudo_file(path, &cases);
    assert!(
        fs::read(path).unwrap().len() > 1 << 20,
        "{path} is expected to span several chunks"
    );
}

#[test]
fn sys_files_through_uring() {
    let _g = shared();
    for path in [
        "/sys/devices/system/cpu/possible",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ] {
        let st_size = fs::metadata(path).unwrap().len();
        let content = fs::read(path).unwrap().len() as u64;
        assert!(
            st_size > content,
            "{path}: st_size {st_size} is expected to overstate {content}"
        );
        check_pseudo_file(path, &pseudo_file_cases());
    }
}

// ---------------------------------------------------------------------------------------------
// 3. The processor stops or fails
// ---------------------------------------------------------------------------------------------

/// Stops (`Ok(false)`) or fails (`Err`) on call number `at` (0-based); records every call.
struct Quitter {
    at: usize,
    fail: bool,
    offsets: Vec<u64>,
    lens: Vec<usize>,
}

impl Quitter {
    fn new(at: usize, fail: bool) -> Self {
        Quitter {
            at,
            fail,
            offsets: Vec::new(),
            lens: Vec::new(),
        }
    }
}

impl Processor for Quitter {
    fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
        let call = self.offsets.len();
        self.offsets.push(c.offset());
        self.lens.push(c.len());
        if call == self.at {
            if self.fail {
                return Err(io::Error::other("processor gave up"));
            }
            return Ok(false);
        }
        Ok(true)
    }
}

fn interrupt_cases(chunk: usize) -> Vec<Case> {
    vec![
        Case::uring(chunk, 1, Some(1)),
        Case::uring(chunk, 8, Some(1)).register(false),
        Case::uring(chunk, 8, Some(2)),
        Case::uring(chunk, 9, Some(3)),
        Case::uring(chunk, 64, None),
        Case::uring(chunk, 8, Some(2)).direct(chunk % 4096 == 0),
        Case::sync(chunk),
        Case::sync(chunk).direct(chunk % 4096 == 0),
    ]
}

/// A file of 100 full chunks and a short one; the processor quits at calls 0, 1, 2, 3, 50, 100.
fn run_interrupts(fail: bool) {
    let _g = shared();
    let dir = disk_dir();
    let mut failures = Vec::new();
    for chunk in [4096usize, 5000] {
        let data = random_bytes(100 * chunk + 123, chunk as u64 * 7 + u64::from(fail));
        let path = dir.path().join(format!("quit-{chunk}"));
        write_file(&path, &data);
        for case in interrupt_cases(chunk) {
            let reader = case.reader();
            for at in [0usize, 1, 2, 3, 50, 100] {
                let mut q = Quitter::new(at, fail);
                let result = reader.read(&path, &mut q);
                let calls = q.offsets.len();
                let expect_offsets: Vec<u64> = (0..=at as u64).map(|k| k * chunk as u64).collect();
                let what = format!("{case:?} quitting at call {at} (fail={fail})");
                if q.offsets != expect_offsets {
                    failures.push(format!("{what}: {calls} calls at offsets {:?}", q.offsets));
                    continue;
                }
                let delivered: u64 = q.lens.iter().map(|&l| l as u64).sum();
                match (fail, result) {
                    (false, Ok(s)) => {
                        if s.bytes != delivered {
                            failures.push(format!(
                                "{what}: Summary.bytes {} != delivered {delivered}",
                                s.bytes
                            ));
                        }
                    }
                    (
                        true,
                        Err(Error::Process {
                            path: p,
                            offset,
                            source,
                        }),
                    ) => {
                        let want_off = at as u64 * chunk as u64;
                        if p != path
                            || offset != want_off
                            || source.to_string() != "processor gave up"
                        {
                            failures.push(format!(
                                "{what}: Error::Process at {offset} on {} ({source}), expected offset {want_off}",
                                p.display()
                            ));
                        }
                    }
                    (_, other) => failures.push(format!("{what}: unexpected result {other:?}")),
                }
                // The same reader, right after: the whole file, correctly.
                if let Err(e) = read_and_check(&reader, &case, &path, &data, false, case.direct) {
                    failures.push(format!("{what}, then a full read: {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn processor_stopping_early_gets_no_further_chunk() {
    run_interrupts(false);
}

#[test]
fn processor_error_is_error_process_at_its_offset() {
    run_interrupts(true);
}

#[test]
fn processor_error_display_names_path_and_reason() {
    let _g = shared();
    let dir = disk_dir();
    let path = dir.path().join("f");
    write_file(&path, &random_bytes(3 * 4096, 3));
    let reader = Case::uring(4096, 4, Some(2)).reader();
    let err = reader.read(&path, &mut Quitter::new(1, true)).unwrap_err();
    assert!(
        matches!(err, Error::Process { offset: 4096, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("{}: processor gave up", path.display())
    );
}

/// begin() and finish() failing are reported as processor errors at 0 and at the end.
#[test]
fn begin_and_finish_errors() {
    struct Fails {
        begin: bool,
        calls: usize,
    }
    impl Processor for Fails {
        fn begin(&mut self) -> io::Result<()> {
            if self.begin {
                Err(io::Error::other("begin failed"))
            } else {
                Ok(())
            }
        }
        fn process(&mut self, _: &Chunk<'_>) -> io::Result<bool> {
            self.calls += 1;
            Ok(true)
        }
        fn finish(&mut self) -> io::Result<()> {
            Err(io::Error::other("finish failed"))
        }
    }
    let _g = shared();
    let dir = disk_dir();
    let path = dir.path().join("f");
    let len = 5 * 4096 + 3;
    write_file(&path, &random_bytes(len, 5));
    for case in [Case::uring(4096, 4, Some(2)), Case::sync(4096)] {
        let reader = case.reader();
        let mut p = Fails {
            begin: true,
            calls: 0,
        };
        let e = reader.read(&path, &mut p).unwrap_err();
        assert!(
            matches!(e, Error::Process { offset: 0, .. }),
            "{case:?}: {e:?}"
        );
        assert_eq!(
            p.calls, 0,
            "{case:?}: chunks delivered after begin() failed"
        );
        let mut p = Fails {
            begin: false,
            calls: 0,
        };
        let e = reader.read(&path, &mut p).unwrap_err();
        assert!(
            matches!(e, Error::Process { offset, .. } if offset == len as u64),
            "{case:?}: {e:?}"
        );
        assert_eq!(e.to_string(), format!("{}: finish failed", path.display()));
        assert_eq!(p.calls, 6);
    }
}

#[test]
fn processor_panic_reaches_the_caller_and_the_reader_survives() {
    let _g = shared();
    let dir = disk_dir();
    let path = dir.path().join("f");
    let data = random_bytes(40 * 4096 + 9, 11);
    write_file(&path, &data);
    for case in [
        Case::uring(4096, 8, Some(2)),
        Case::uring(4096, 3, Some(3)),
        Case::uring(4096, 1, Some(1)),
        Case::sync(4096),
    ] {
        let reader = case.reader();
        for at in [0usize, 5] {
            let mut calls = 0usize;
            let payload = {
                let mut p = ringread::processor::from_fn(|_c: &Chunk<'_>| {
                    if calls == at {
                        std::panic::panic_any(format!("panic at call {at}"));
                    }
                    calls += 1;
                    Ok(true)
                });
                catch_unwind(AssertUnwindSafe(|| reader.read(&path, &mut p)))
                    .expect_err("the processor's panic must reach the caller")
            };
            assert_eq!(
                payload.downcast_ref::<String>().map(String::as_str),
                Some(format!("panic at call {at}").as_str()),
                "{case:?}"
            );
            assert_eq!(calls, at, "{case:?}");
            read_and_check(&reader, &case, &path, &data, false, false)
                .unwrap_or_else(|e| panic!("{case:?} after a panic at {at}: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Errors and non-files
// ---------------------------------------------------------------------------------------------

fn all_backends() -> [Case; 3] {
    [
        Case::uring(4096, 4, None),
        Case::sync(4096),
        Case {
            backend: Backend::Auto,
            ..Case::uring(4096, 4, None)
        },
    ]
}

#[test]
fn missing_file_is_an_open_error() {
    let _g = shared();
    let dir = disk_dir();
    let path = dir.path().join("does-not-exist");
    for case in all_backends() {
        for direct in [false, true] {
            let case = case.direct(direct);
            let mut rec = Recorder::new(&[], 4096, true, true);
            let e = case.reader().read(&path, &mut rec).unwrap_err();
            assert!(
                matches!(&e, Error::Open { path: p, .. } if p == &path),
                "{case:?}: {e:?}"
            );
            assert_eq!(
                e.io_error().and_then(io::Error::raw_os_error),
                Some(libc::ENOENT)
            );
            assert_eq!(
                e.to_string(),
                format!("{}: No such file or directory", path.display())
            );
            assert_eq!(e.path(), Some(path.as_path()));
            assert_eq!((rec.begins, rec.chunks), (0, 0), "{case:?}");
        }
    }
}

#[test]
fn directory_is_an_open_error() {
    let _g = shared();
    let dir = disk_dir();
    for case in all_backends() {
        for direct in [false, true] {
            let case = case.direct(direct);
            let mut rec = Recorder::new(&[], 4096, true, true);
            let e = case.reader().read(dir.path(), &mut rec).unwrap_err();
            assert!(matches!(&e, Error::Open { .. }), "{case:?}: {e:?}");
            assert_eq!(
                e.io_error().and_then(io::Error::raw_os_error),
                Some(libc::EISDIR)
            );
            assert_eq!(
                e.to_string(),
                format!("{}: Is a directory", dir.path().display())
            );
            assert_eq!((rec.begins, rec.chunks), (0, 0), "{case:?}");
        }
    }
}

fn stream_cases() -> Vec<Case> {
    vec![
        Case::uring(1000, 4, None),
        Case::uring(65536, 8, Some(2)).register(false),
        Case::uring(4096, 16, Some(3)).direct(true),
        Case::sync(1000),
        Case::sync(65536).direct(true),
    ]
}

/// Writes `data` in pieces of uneven sizes, then closes the descriptor.
fn write_in_pieces(mut w: File, data: &[u8]) -> io::Result<()> {
    let mut rest = data;
    let mut step = 1usize;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        w.write_all(&rest[..n])?;
        rest = &rest[n..];
        step = step * 7 % 100_003 + 1;
    }
    Ok(())
}

/// Checks a stream's read: contiguous chunks, exact bytes, a stream's summary.
fn check_stream(
    case: &Case,
    result: ringread::Result<Summary>,
    rec: Recorder<'_>,
) -> Result<(), String> {
    let s = result.map_err(|e| format!("read failed: {e}"))?;
    rec.verdict(&s)?;
    check_summary(case, &s, false, false)?;
    if case.direct
        && !s
            .notices
            .iter()
            .any(|n| matches!(n, Notice::DirectUnavailable { reason } if reason.contains("pipes")))
    {
        return Err(format!(
            "no DirectUnavailable notice naming pipes: {:?}",
            s.notices
        ));
    }
    Ok(())
}

#[test]
fn fifo_written_by_a_thread() {
    let _g = shared();
    let dir = disk_dir();
    let data = random_bytes(3 * 1024 * 1024 + 77, 99);
    let mut failures = Vec::new();
    for (i, case) in stream_cases().into_iter().enumerate() {
        let fifo = dir.path().join(format!("fifo{i}"));
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        let reader = case.reader();
        let mut rec = Recorder::new(&data, case.chunk, false, true);
        let (result, written) = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let w = File::options().write(true).open(&fifo)?;
                write_in_pieces(w, &data)
            });
            let result = reader.read(&fifo, &mut rec);
            // If the reader never opened the FIFO, the writer still waits in open(): let it go.
            let _unblock = File::options()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo);
            (result, writer.join().unwrap())
        });
        if let Err(e) = written {
            failures.push(format!("{case:?}: writer failed: {e}"));
        }
        if let Err(e) = check_stream(&case, result, rec) {
            failures.push(format!("{case:?}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn anonymous_pipe_as_an_open_file_source() {
    let _g = shared();
    let data = random_bytes(1024 * 1024 + 5, 123);
    let mut failures = Vec::new();
    for case in stream_cases() {
        let (r, w) = pipe(0);
        let reader = case.reader();
        let mut rec = Recorder::new(&data, case.chunk, false, true);
        let (result, written) = std::thread::scope(|s| {
            let writer = s.spawn(|| write_in_pieces(w, &data));
            // The read takes the read end and closes it when it returns: a writer still writing
            // gets EPIPE instead of blocking.
            let result = reader.read(Source::file(r, "<pipe>"), &mut rec);
            (result, writer.join().unwrap())
        });
        if let Err(e) = written {
            failures.push(format!("{case:?}: writer failed: {e}"));
        }
        if let Err(e) = check_stream(&case, result, rec) {
            failures.push(format!("{case:?}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `read` of an open file (`Source::file`) that is a regular file reads from the descriptor's
/// position to the end, hands over chunks at their file offsets, and leaves the position after
/// what it read (the read is given a duplicate of the descriptor, which shares its position).
/// Starting off alignment, `O_DIRECT` cannot be used: a notice says so.
#[test]
fn an_open_file_is_read_from_its_position_and_moves_it() {
    let _g = shared();
    let f = small_file(3 * 65536 + 17);
    let len = f.data.len() as u64;
    let mut failures = Vec::new();
    for case in [
        Case::uring(4096, 8, Some(2)),
        Case::uring(4096, 1, Some(1)).register(false),
        Case::sync(4096),
        Case::uring(65536, 4, None).direct(true),
        Case::sync(8192).direct(true),
    ] {
        let reader = case.reader();
        for pos in [0u64, 1, 8192, 10_000, len - 1, len] {
            let mut file = File::open(&f.path).unwrap();
            file.seek(SeekFrom::Start(pos)).unwrap();
            let mut rec = Recorder::new(&f.data, case.chunk, true, true).starting_at(pos);
            let direct_expected = case.direct && pos % 4096 == 0;
            let outcome = reader
                .read(Source::file(file.try_clone().unwrap(), &f.path), &mut rec)
                .map_err(|e| format!("read failed: {e}"))
                .and_then(|s| {
                    rec.verdict(&s)?;
                    check_summary(&case, &s, direct_expected, true)
                })
                .and_then(|()| match file.stream_position() {
                    Ok(p) if p == len => Ok(()),
                    other => Err(format!("position afterwards {other:?}, expected {len}")),
                });
            if let Err(e) = outcome {
                failures.push(format!("{case:?} from {pos}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 5. One reader, many files; no descriptor leaks
// ---------------------------------------------------------------------------------------------

#[test]
fn reused_reader_over_200_files_leaks_nothing() {
    let _g = exclusive();
    let dir = disk_dir();
    let chunk = 16 * 1024;
    let files: Vec<TestFile> = (0..200usize)
        .map(|i| {
            // Sizes from 0 to ~330 KiB, in no order, hitting chunk boundaries now and then.
            let size = match i % 10 {
                0 => 0,
                1 => chunk * (i % 7 + 1),
                2 => chunk * (i % 5 + 1) + 1,
                3 => chunk - 1,
                _ => (i * 7919 + i * i * 31) % (20 * chunk),
            };
            let path = dir.path().join(format!("f{i:03}"));
            let data = random_bytes(size, i as u64 * 1_000_003);
            write_file(&path, &data);
            TestFile { path, data }
        })
        .collect();
    let warm = dir.path().join("warm");
    let warm_data = random_bytes(8 * chunk, 77);
    write_file(&warm, &warm_data);

    let before = open_fds();
    let cases = [
        Case::uring(chunk, 8, Some(2)),
        Case::uring(chunk, 6, Some(3)).direct(true),
        Case::uring(chunk, 4, Some(2)).register(false),
        Case::sync(chunk),
    ];
    let readers: Vec<Reader> = cases.iter().map(Case::reader).collect();
    // Set every lane of every reader up: a file of 8 chunks uses all of them.
    for (case, reader) in cases.iter().zip(&readers) {
        read_and_check(reader, case, &warm, &warm_data, true, case.direct).unwrap();
    }
    let warmed = open_fds();
    let mut failures = Vec::new();
    for (i, f) in files.iter().enumerate() {
        for (case, reader) in cases.iter().zip(&readers) {
            if let Err(e) = read_and_check(reader, case, &f.path, &f.data, true, case.direct) {
                failures.push(format!("file {i} ({} bytes) {case:?}: {e}", f.data.len()));
            }
        }
        let now = open_fds();
        if now != warmed {
            failures.push(format!(
                "after file {i}: {now} descriptors open, {warmed} after warming up"
            ));
        }
    }
    // The ways a read can end early, with the same readers.
    let missing = dir.path().join("missing");
    for (case, reader) in cases.iter().zip(&readers) {
        let mut q = Quitter::new(2, false);
        reader.read(&warm, &mut q).unwrap();
        let mut q = Quitter::new(3, true);
        reader.read(&warm, &mut q).unwrap_err();
        reader
            .read(&missing, &mut Quitter::new(0, false))
            .unwrap_err();
        reader
            .read(dir.path(), &mut Quitter::new(0, false))
            .unwrap_err();
        if let Err(e) = read_and_check(reader, case, &warm, &warm_data, true, case.direct) {
            failures.push(format!("{case:?} after the early ends: {e}"));
        }
    }
    let after_errors = open_fds();
    drop(readers);
    let after = open_fds();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(after_errors, warmed, "descriptors leaked by early ends");
    assert_eq!(
        after, before,
        "descriptors left open after the readers were dropped"
    );
    assert!(
        warmed > before,
        "the readers are expected to keep their rings open ({before} -> {warmed})"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. SQPOLL; tmpfs
// ---------------------------------------------------------------------------------------------

#[test]
fn sqpoll_reads_correct_bytes() {
    let _g = shared();
    let mut failures = Vec::new();
    for direct in [false, true] {
        for register in [false, true] {
            for (chunk, depth, threads) in
                [(4096, 1, Some(1)), (65536, 8, Some(2)), (4096, 64, None)]
            {
                let case = Case {
                    sqpoll: true,
                    ..Case::uring(chunk, depth, threads)
                        .direct(direct)
                        .register(register)
                };
                let reader = case.reader();
                for size in sizes_for(chunk) {
                    let f = small_file(size);
                    if let Err(e) = read_and_check(&reader, &case, &f.path, &f.data, true, direct) {
                        failures.push(format!("{case:?} size={size}: {e}"));
                    }
                }
            }
        }
    }
    let case = Case {
        sqpoll: true,
        ..Case::uring(1 << 20, 16, None).direct(true)
    };
    let big = big_file();
    if let Err(e) = read_and_check(&case.reader(), &case, &big.path, &big.data, false, true) {
        failures.push(format!("{case:?} big: {e}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether the kernel lets `path` be opened with `O_DIRECT` (asked independently of the reader).
fn kernel_opens_direct(path: &Path) -> bool {
    match File::options()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => false,
        Err(e) => panic!("probing O_DIRECT on {}: {e}", path.display()),
    }
}

/// `direct(true)` on tmpfs. Before Linux 6.6 tmpfs refuses `O_DIRECT` (EINVAL) and the reader must
/// say so with a `DirectUnavailable` notice; from 6.6 on tmpfs accepts it and the reader must use
/// it. Which one applies is asked of the kernel directly; the bytes must be right either way.
#[test]
fn tmpfs_with_direct_reads_correctly_and_notices_agree_with_the_kernel() {
    let _g = shared();
    let dir = tempfile::Builder::new()
        .prefix("ringread-engine-")
        .tempdir_in("/dev/shm")
        .unwrap();
    assert_eq!(
        fs_type(dir.path()),
        TMPFS,
        "/dev/shm is expected to be tmpfs"
    );
    let mut failures = Vec::new();
    for size in [0usize, 1, 4096, 65536 * 3 + 17] {
        let path = dir.path().join(format!("f{size}"));
        let data = random_bytes(size, size as u64 ^ 0x5150);
        write_file(&path, &data);
        let accepted = kernel_opens_direct(&path);
        for case in [
            Case::uring(65536, 8, None).direct(true),
            Case::uring(4096, 2, Some(1)).direct(true).register(false),
            Case::sync(4096).direct(true),
        ] {
            let reader = case.reader();
            // check_summary demands a DirectUnavailable notice whenever O_DIRECT is not used.
            match read_and_check(&reader, &case, &path, &data, true, accepted) {
                Err(e) => failures.push(format!(
                    "{case:?} size={size} (kernel accepts O_DIRECT on tmpfs: {accepted}): {e}"
                )),
                Ok(s) => {
                    let n = s
                        .notices
                        .iter()
                        .filter(|n| matches!(n, Notice::DirectUnavailable { .. }))
                        .count();
                    if n != usize::from(!accepted) {
                        failures.push(format!("{case:?} size={size}: notices {:?}", s.notices));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `direct(true)` where the kernel refuses `O_DIRECT` on every kernel (procfs, sysfs): a
/// `DirectUnavailable` notice, no O_DIRECT in the path, and the right bytes.
#[test]
fn direct_refused_by_the_kernel_gives_a_notice_and_correct_bytes() {
    let _g = shared();
    let mut failures = Vec::new();
    for path in ["/proc/version", "/sys/devices/system/cpu/possible"] {
        assert!(
            !kernel_opens_direct(Path::new(path)),
            "{path}: O_DIRECT is expected to be refused"
        );
        let want = fs::read(path).unwrap();
        for case in [
            Case::uring(4096, 4, Some(2)).direct(true),
            Case::uring(8192, 1, Some(1)).direct(true).register(false),
            Case::sync(4096).direct(true),
        ] {
            let mut rec = Recorder::new(&want, case.chunk, true, true);
            let result = case
                .reader()
                .read(path, &mut rec)
                .map_err(|e| format!("read failed: {e}"))
                .and_then(|s| {
                    rec.verdict(&s)?;
                    check_summary(&case, &s, false, true)?;
                    match s.notices.as_slice() {
                        [Notice::DirectUnavailable { reason }] if !reason.is_empty() => Ok(()),
                        other => Err(format!("notices {other:?}")),
                    }
                });
            if let Err(e) = result {
                failures.push(format!("{path} {case:?}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 7. Random shapes
// ---------------------------------------------------------------------------------------------

fn proptest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(process_lifetime_dir)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_files_and_options_match_std_read(
        size in 0usize..(2 << 20),
        chunk_raw in 1usize..300_000,
        depth in 1usize..32,
        direct in any::<bool>(),
        register in any::<bool>(),
        uring in prop::bool::weighted(0.8),
        threads in prop::option::of(1usize..5),
        seed in any::<u64>(),
    ) {
        let _g = shared();
        let chunk = if direct { (chunk_raw / 4096).max(1) * 4096 } else { chunk_raw };
        let case = Case {
            backend: if uring { Backend::Uring } else { Backend::Sync },
            direct,
            register,
            depth,
            chunk,
            threads,
            sqpoll: false,
        };
        let data = random_bytes(size, seed);
        let path = proptest_dir().join(format!("case-{seed:016x}-{size}"));
        write_file(&path, &data);
        let reference = fs::read(&path).unwrap();
        prop_assert_eq!(reference.len(), size);
        let outcome = read_and_check(&case.reader(), &case, &path, &reference, size <= 256 * 1024, direct);
        fs::remove_file(&path).unwrap();
        prop_assert!(outcome.is_ok(), "{:?} size={}: {}", case, size, outcome.unwrap_err());
    }
}
