//! Processing cached files in place (`ReadOptionsBuilder::in_place`): the bytes of `std::fs::read`
//! on every edge, the copy where in place does not apply, a file cut or grown ahead of the
//! processor read to its new end as every path reads it, and a file cut under the processor: an
//! error naming the offset, never a signal.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ringread::processor::{blake3_parallel, Algorithm, Checksum};
use ringread::{Chunk, Engine, Error, Processor, ReadOptions, Reader, Source};

const MIB: usize = 1 << 20;

fn dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringread-in-place-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// Writes `data` and reads it back once, so that it is wholly cached.
fn cached_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    assert_eq!(std::fs::read(&path).unwrap().len(), data.len());
    path
}

/// Collects what it is given, checking that chunks follow one another.
#[derive(Default)]
struct Collect {
    bytes: Vec<u8>,
    start: Option<u64>,
    chunks: usize,
}

impl Processor for Collect {
    fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
        let start = *self.start.get_or_insert(c.offset());
        assert_eq!(
            c.offset(),
            start + self.bytes.len() as u64,
            "chunks out of order"
        );
        assert!(!c.is_empty(), "an empty chunk");
        self.bytes.extend_from_slice(c);
        self.chunks += 1;
        Ok(true)
    }
}

fn in_place(chunk: Option<usize>, threads: Option<usize>, max: Option<u64>) -> Reader {
    let mut b = ReadOptions::builder().in_place(true);
    if let Some(c) = chunk {
        b = b.chunk_size(c);
    }
    if let Some(t) = threads {
        b = b.threads(t);
    }
    if let Some(m) = max {
        b = b.max_bytes(m);
    }
    Reader::new(b.build().unwrap())
}

#[test]
fn in_place_gives_the_bytes_of_std_read_on_every_edge() {
    let _g = common::shared();
    let d = dir();
    // Chunk sizes: the tuned one (2 MiB), a power of two, and one that divides nothing.
    for chunk in [None, Some(64 << 10), Some(100_000)] {
        let c = chunk.unwrap_or(2 * MIB);
        let mut sizes = vec![MIB, MIB + 1, MIB + 4095, MIB + 4096, MIB + 4097];
        sizes.extend([3 * c - 1, 3 * c, 3 * c + 1, 5 * MIB + 12_345]);
        sizes.retain(|&s| s >= MIB);
        for (i, &size) in sizes.iter().enumerate() {
            let data = common::random_bytes(size, i as u64 + 7);
            let path = cached_file(d.path(), &format!("f{size}"), &data);
            for threads in [None, Some(1)] {
                // No limit, one inside the file, one at its end, one past it.
                for max in [
                    None,
                    Some(MIB as u64 + 4097),
                    Some(size as u64),
                    Some(u64::MAX / 2),
                ] {
                    let what =
                        format!("size {size}, chunk {chunk:?}, threads {threads:?}, max {max:?}");
                    let reader = in_place(chunk, threads, max);
                    let mut got = Collect::default();
                    let s = reader.read(&path, &mut got).expect(&what);
                    let want = &data[..data.len().min(max.unwrap_or(u64::MAX) as usize)];
                    assert_eq!(s.route.engine, Engine::InPlace, "{what}: {}", s.route);
                    // Without options, chunks as tuned; with any, the chunk size given or the
                    // default one.
                    let c = match (chunk, threads) {
                        (Some(c), _) => c,
                        (None, None) => 2 * MIB,
                        (None, Some(_)) => ReadOptions::default().chunk_size(),
                    };
                    assert_eq!(s.route.chunk_size, c, "{what}");
                    assert_eq!(s.bytes, want.len() as u64, "{what}");
                    assert!(got.bytes == want, "{what}: bytes differ");
                    assert_eq!(got.chunks, want.len().div_ceil(c), "{what}: chunk count");
                }
            }
        }
    }
}

#[test]
fn blake3_on_every_thread_in_place_is_b3sum_s_digest() {
    let _g = common::shared();
    let d = dir();
    for size in [MIB, 2 * MIB + 1, 9 * MIB - 1] {
        let data = common::random_bytes(size, size as u64);
        let path = cached_file(d.path(), "b", &data);
        for chunk in [None, Some(64 << 10), Some(1 << 20)] {
            let reader = in_place(chunk, None, None);
            let (prep, mut combine) = blake3_parallel();
            let s = reader.read_split(&path, &prep, &mut combine).unwrap();
            assert_eq!(s.route.engine, Engine::InPlace);
            assert_eq!(
                combine.hex(),
                blake3::hash(&data).to_hex().as_str(),
                "{size} {chunk:?}"
            );
        }
    }
}

#[test]
fn a_file_handed_over_is_read_in_place_from_its_position() {
    let _g = common::shared();
    let d = dir();
    let data = common::random_bytes(3 * MIB + 5, 3);
    let path = cached_file(d.path(), "h", &data);
    let mut file = File::open(&path).unwrap();
    file.seek(SeekFrom::Start(12_345)).unwrap();
    let mut got = Collect::default();
    let s = in_place(Some(64 << 10), None, None)
        .read(Source::file(file.try_clone().unwrap(), "h"), &mut got)
        .unwrap();
    assert_eq!(s.route.engine, Engine::InPlace, "{}", s.route);
    assert_eq!(got.start, Some(12_345));
    assert!(got.bytes == data[12_345..]);
    assert_eq!(file.stream_position().unwrap(), data.len() as u64);
}

#[test]
fn small_uncached_direct_and_uncached_reads_are_copied() {
    let _g = common::shared();
    let d = dir();
    let small = common::random_bytes(MIB - 1, 1);
    let small_path = cached_file(d.path(), "small", &small);
    let mut got = Collect::default();
    let s = in_place(None, None, None)
        .read(&small_path, &mut got)
        .unwrap();
    assert_ne!(s.route.engine, Engine::InPlace, "{}", s.route);
    assert!(got.bytes == small);

    let big = common::random_bytes(4 * MIB, 2);
    let big_path = cached_file(d.path(), "big", &big);
    let f = File::open(&big_path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: advice on a descriptor we hold.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let r = ringread::residency::of_file(&f).unwrap();
    assert!(r.fraction() < 0.9, "still {r:?} cached after DONTNEED");
    let mut got = Collect::default();
    let s = in_place(None, None, None)
        .read(&big_path, &mut got)
        .unwrap();
    assert_ne!(s.route.engine, Engine::InPlace, "{}", s.route);
    assert!(got.bytes == big);

    std::fs::read(&big_path).unwrap();
    for b in [
        ReadOptions::builder().in_place(true).direct(true),
        ReadOptions::builder().in_place(true).dontcache(true),
        ReadOptions::builder()
            .in_place(true)
            .backend(ringread::Backend::Sync),
    ] {
        let mut got = Collect::default();
        let s = Reader::new(b.build().unwrap())
            .read(&big_path, &mut got)
            .unwrap();
        assert_ne!(s.route.engine, Engine::InPlace, "{}", s.route);
        assert!(got.bytes == big);
    }
    // Without the option, never.
    std::fs::read(&big_path).unwrap();
    let s = Reader::new(ReadOptions::default())
        .read(&big_path, &mut Collect::default())
        .unwrap();
    assert_ne!(s.route.engine, Engine::InPlace);
}

/// Cuts its file to `cut` bytes when handed the chunk at `at`, then reads every byte of that chunk
/// and of the chunks after it.
struct Cutter {
    file: File,
    at: u64,
    cut: u64,
    /// Zero bytes seen past the cut.
    zeros_past_cut: usize,
    cut_done: bool,
    /// Bytes seen.
    seen: u64,
}

impl Processor for Cutter {
    fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
        if c.offset() == self.at && !self.cut_done {
            self.file.set_len(self.cut)?;
            self.cut_done = true;
        }
        for (i, &b) in c.iter().enumerate() {
            if c.offset() + i as u64 >= self.cut && b == 0 {
                self.zeros_past_cut += 1;
            }
        }
        self.seen += c.len() as u64;
        Ok(true)
    }
}

fn cutter(path: &Path, at: u64, cut: u64) -> Cutter {
    Cutter {
        file: OpenOptions::new().write(true).open(path).unwrap(),
        at,
        cut,
        zeros_past_cut: 0,
        cut_done: false,
        seen: 0,
    }
}

/// An 8 MiB file read in place, chunks of 64 KiB on `threads` lanes, cut to `cut` bytes when the
/// chunk at `at` is handed over: what the read said, and what the processor saw.
fn cut_case(
    dir: &Path,
    name: &str,
    at: u64,
    cut: u64,
    threads: usize,
) -> (Result<ringread::Summary, Error>, Cutter) {
    let data = vec![0xa5u8; 8 * MIB];
    let path = cached_file(dir, name, &data);
    let mut cutter = cutter(&path, at, cut);
    let reader = in_place(Some(64 << 10), Some(threads), None);
    let result = reader.read(&path, &mut cutter);
    (result, cutter)
}

#[test]
fn a_file_cut_while_read_in_place_fails_at_the_cut_without_a_signal() {
    let _g = common::shared();
    let d = dir();
    for threads in [1, 2] {
        // Cut inside the chunk being processed: its own pages past the cut fault (SIGBUS, answered
        // with zeros), and the read fails there.
        let at = MIB as u64;
        let (r, c) = cut_case(d.path(), "cut-here", at, at + 100, threads);
        let e = r.expect_err("a file cut under the processor must fail");
        match &e {
            Error::Read { offset, source, .. } => {
                assert_eq!(*offset, at + 100, "{e}");
                assert!(source.to_string().contains("shrank"), "{e}");
            }
            other => panic!("not a read error: {other}"),
        }
        assert!(
            c.zeros_past_cut > 0,
            "the processor never touched a cut page"
        );
    }
}

#[test]
fn a_file_cut_ahead_of_the_processor_in_place_ends_at_its_new_end() {
    let _g = common::shared();
    let d = dir();
    for threads in [1, 2] {
        // Cut ahead of the processing (chunks there may be prepared already): they are read
        // instead, and the file ends where a read returns 0, as on every other path.
        let cut = 5 * MIB as u64 + 4096 * 3 + 17;
        let (r, c) = cut_case(d.path(), "cut-ahead", 0, cut, threads);
        let s = r.expect("a file cut ahead is read to its new end");
        assert_eq!(s.route.engine, Engine::InPlace);
        assert_eq!((s.bytes, c.seen), (cut, cut));
        assert_eq!(c.zeros_past_cut, 0);
    }
}

#[test]
fn a_file_that_grows_while_read_in_place_is_read_to_its_new_end() {
    let _g = common::shared();
    let d = dir();
    let data = common::random_bytes(2 * MIB + 5000, 9);
    let more = common::random_bytes(MIB + 77, 10);
    let want = [&data[..], &more[..]].concat();
    for (threads, chunk) in [(1, 64 << 10), (2, 64 << 10), (2, MIB)] {
        let path = cached_file(d.path(), "grows", &data);
        struct Grower(PathBuf, Vec<u8>, Collect);
        impl Processor for Grower {
            fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
                if !self.1.is_empty() {
                    let mut f = OpenOptions::new().append(true).open(&self.0)?;
                    io::Write::write_all(&mut f, &std::mem::take(&mut self.1))?;
                }
                self.2.process(c)
            }
        }
        let mut g = Grower(path.clone(), more.clone(), Collect::default());
        let s = in_place(Some(chunk), Some(threads), None)
            .read(&path, &mut g)
            .expect("a grown file is read to its new end");
        assert_eq!(s.route.engine, Engine::InPlace);
        assert_eq!(s.bytes, want.len() as u64);
        assert!(g.2.bytes == want, "{threads} lanes, chunk {chunk}");
    }
}

#[test]
fn a_processor_panicking_in_place_resumes_on_the_caller_and_the_reader_goes_on() {
    let _g = common::shared();
    let d = dir();
    let data = common::random_bytes(4 * MIB, 4);
    let path = cached_file(d.path(), "p", &data);
    let reader = in_place(Some(64 << 10), None, None);
    let mut n = 0;
    let mut boom = ringread::processor::from_fn(|_: &Chunk<'_>| {
        n += 1;
        assert!(n < 10, "planted panic");
        Ok(true)
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader.read(&path, &mut boom)
    }));
    assert!(r.is_err(), "the panic reaches the caller");
    let mut sum = Checksum::new(Algorithm::Xxh3);
    let s = reader.read(&path, &mut sum).unwrap();
    assert_eq!(s.route.engine, Engine::InPlace);
    let mut want = Checksum::new(Algorithm::Xxh3);
    want.update(&data);
    assert_eq!(sum.hex(), want.hex());
}

/// Run as a child by the test below: ringread's SIGBUS guard is installed, then the process faults
/// on a mapping of its own; it must die of SIGBUS as it would without ringread.
#[test]
#[ignore = "the child of a_sigbus_outside_ringread_s_mappings_still_kills, which runs it"]
fn foreign_sigbus_child() {
    let d = PathBuf::from(
        std::env::var_os("RINGREAD_FOREIGN_SIGBUS_DIR").expect("run by its parent test"),
    );
    let path = cached_file(&d, "guarded", &vec![1u8; 2 * MIB]);
    let s = in_place(None, None, None)
        .read(&path, &mut Collect::default())
        .unwrap();
    assert_eq!(s.route.engine, Engine::InPlace);
    let own = cached_file(&d, "own", &vec![2u8; 64 << 10]);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&own)
        .unwrap();
    // SAFETY: a private read-only mapping of a file we hold; touched after the cut on purpose.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            64 << 10,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    f.set_len(0).unwrap();
    // SAFETY: deliberately touching a page past the file's end: this must raise SIGBUS.
    let b = unsafe { std::ptr::read_volatile(p.cast::<u8>().add(8192)) };
    println!("survived a foreign SIGBUS: read {b}");
    std::process::exit(3);
}

#[test]
fn a_sigbus_outside_ringread_s_mappings_still_kills() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let d = dir();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "foreign_sigbus_child",
            "--ignored",
            "--nocapture",
        ])
        .env("RINGREAD_FOREIGN_SIGBUS_DIR", d.path());
    // SAFETY: setrlimit is async-signal-safe; no core file for the expected death.
    unsafe {
        child.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        })
    };
    let out = child.output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
