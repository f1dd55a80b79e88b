//! The engine against a fake completion layer that reorders completions, cuts reads short, says
//! `EAGAIN`, fails at a chosen offset and shrinks the file, on one or more threads.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::chunks::Chunks;
use crate::engine::fake::Rng;
use crate::engine::{Job, Member};
use crate::processor::{Processor, Whole};
use crate::ranges::{ByteRange, Plan};
use crate::sys::CURRENT_POSITION;

/// A file of the fake kernel: its name and descriptor, read buffered with no flags.
fn fake_file(path: &'static str, fd: std::os::fd::RawFd) -> Member<'static> {
    Member {
        path: Path::new(path),
        fd,
        direct_fd: None,
        rw_flags: 0,
        drop_behind: false,
    }
}

#[derive(Clone, Copy, Default)]
struct Faults {
    short: bool,
    eagain: bool,
    fail_at: Option<u64>,
    /// After this many reads, the file is cut to this length.
    shrink: Option<(usize, usize)>,
}

struct Fake<'f> {
    file: &'f [u8],
    len: usize,
    queued: Vec<ReadReq>,
    kernel: Vec<ReadReq>,
    done: VecDeque<(u64, i32)>,
    rng: Rng,
    faults: Faults,
    reads: usize,
    /// Reads of this descriptor that cover this offset fail (`EIO`) from it on.
    fail_fd: Option<(i32, u64)>,
}

impl<'f> Fake<'f> {
    fn new(file: &'f [u8], seed: u64, faults: Faults) -> Self {
        Fake {
            file,
            len: file.len(),
            queued: Vec::new(),
            kernel: Vec::new(),
            done: VecDeque::new(),
            rng: Rng(seed | 1),
            faults,
            reads: 0,
            fail_fd: None,
        }
    }

    fn perform(&mut self, r: ReadReq) -> i32 {
        self.reads += 1;
        if let Some((after, new_len)) = self.faults.shrink {
            if self.reads > after {
                self.len = self.len.min(new_len);
            }
        }
        if self.faults.eagain && self.rng.below(4) == 0 {
            return -libc::EAGAIN;
        }
        let off = r.offset as usize;
        let mut want = r.len as usize;
        let fail_at = match self.fail_fd {
            Some((fd, at)) if fd == r.fd => Some(at),
            Some(_) => None,
            None => self.faults.fail_at,
        };
        if let Some(bad) = fail_at {
            let bad = bad as usize;
            if off == bad {
                return -libc::EIO;
            }
            if off < bad && off + want > bad {
                want = bad - off;
            }
        }
        if off >= self.len {
            return 0;
        }
        let mut n = want.min(self.len - off);
        if self.faults.short && n > 1 && self.rng.below(2) == 0 {
            n = 1 + self.rng.below(n);
        }
        // SAFETY: the engine lent us `r.buf .. r.buf + r.len` until we complete this read.
        unsafe { std::ptr::copy_nonoverlapping(self.file[off..].as_ptr(), r.buf, n) };
        n as i32
    }
}

impl Queue for Fake<'_> {
    unsafe fn push(&mut self, req: ReadReq) -> io::Result<()> {
        assert_ne!(req.offset, CURRENT_POSITION);
        self.queued.push(req);
        Ok(())
    }
    fn submit(&mut self, wait: usize) -> io::Result<()> {
        self.kernel.append(&mut self.queued);
        if self.kernel.is_empty() {
            return Ok(());
        }
        let n = wait.max(self.rng.below(self.kernel.len() + 1));
        for _ in 0..n.min(self.kernel.len()) {
            let j = self.rng.below(self.kernel.len());
            let r = self.kernel.swap_remove(j);
            let res = self.perform(r);
            self.done.push_back((r.user_data, res));
        }
        Ok(())
    }
    fn pop(&mut self) -> Option<(u64, i32)> {
        self.done.pop_front()
    }
    fn cancel(&mut self, _: u64) -> io::Result<()> {
        Ok(()) // fake reads always complete at the next submit
    }
}

/// Collects what the engine delivers, checking offsets are contiguous.
#[derive(Default)]
struct Collect {
    data: Vec<u8>,
    chunks: usize,
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
        self.chunks += 1;
        Ok(true)
    }
}

fn run_fake(
    file: &[u8],
    size_hint: u64,
    chunk: usize,
    lanes: usize,
    depth: usize,
    seed: u64,
    faults: Faults,
) -> (Collect, Result<u64, Error>) {
    run_fake_limited(file, size_hint, chunk, lanes, depth, seed, faults, u64::MAX)
}

#[allow(clippy::too_many_arguments)]
fn run_fake_limited(
    file: &[u8],
    size_hint: u64,
    chunk: usize,
    lanes: usize,
    depth: usize,
    seed: u64,
    faults: Faults,
    limit: u64,
) -> (Collect, Result<u64, Error>) {
    let src = Job {
        file: fake_file("fake", -1),
        plan: None,
        ordered: true,
        members: &[],
        rules: Chunks::new(
            0,
            chunk,
            (limit != u64::MAX).then_some(limit),
            size_hint,
            true,
            None,
        ),
    };
    let mut out = Collect::default();
    let result = {
        // Lanes take turns every 1, 2 or 3 chunks (the blocks of ranges in request order): the
        // same rules must hold whatever the block.
        let block = 1 + (seed % 3) as usize;
        let run = Run::new(src, lanes, &crate::processor::Whole, &mut out).with_block(block);
        std::thread::scope(|s| {
            for t in 0..lanes {
                let run = &run;
                s.spawn(move || {
                    let arena = Arena::new(depth, chunk).unwrap();
                    // Stale bytes must never show: fill the buffers with garbage first.
                    for i in 0..depth {
                        // SAFETY: the slot is ours and not in flight.
                        unsafe { std::ptr::write_bytes(arena.slot_ptr(i), 0xEE, arena.slot_len()) };
                    }
                    let mut q = Fake::new(file, seed.wrapping_add(t as u64 * 7919), faults);
                    assert!(run_lane(run, t as u64, &mut q, &arena, depth, 0));
                    assert!(
                        q.kernel.is_empty() && q.queued.is_empty(),
                        "reads left in flight"
                    );
                });
            }
        });
        run.finish()
    };
    (out, result)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

#[test]
fn every_byte_once_in_order_with_reordered_short_reads() {
    for (size, chunk, lanes, depth) in [
        (0, 16, 1, 1),
        (1, 16, 2, 2),
        (15, 16, 2, 3),
        (16, 16, 2, 3),
        (17, 16, 2, 3),
        (16 * 7 + 5, 16, 3, 2),
        (100_000, 4096, 2, 4),
    ] {
        let file = pattern(size);
        let faults = Faults {
            short: true,
            eagain: true,
            ..Faults::default()
        };
        let (out, res) = run_fake(&file, size as u64, chunk, lanes, depth, 42, faults);
        assert_eq!(res.unwrap(), size as u64);
        assert!(out.data == file, "size {size}: wrong bytes");
    }
}

#[test]
fn size_hint_is_not_trusted() {
    let file = pattern(10_000);
    // A /proc-like file says 0; a grown file says less than it has.
    for hint in [0, 100, 4096, 9_999] {
        let (out, res) = run_fake(&file, hint, 1000, 2, 3, 9, Faults::default());
        assert_eq!(res.unwrap(), 10_000);
        assert!(out.data == file);
    }
}

#[test]
fn an_error_stops_delivery_at_its_offset() {
    let file = pattern(50_000);
    for fail_at in [0u64, 1, 4095, 4096, 20_000, 49_999] {
        let faults = Faults {
            short: true,
            fail_at: Some(fail_at),
            ..Faults::default()
        };
        let (out, res) = run_fake(&file, 50_000, 4096, 2, 3, fail_at + 1, faults);
        match res {
            Err(Error::Read { offset, source, .. }) => {
                assert_eq!(offset, fail_at);
                assert_eq!(source.raw_os_error(), Some(libc::EIO));
            }
            other => panic!("expected a read error, got {other:?}"),
        }
        assert!(
            out.data == file[..fail_at as usize],
            "bytes after the failure were delivered"
        );
    }
}

#[test]
fn a_shrinking_file_ends_cleanly_without_stale_bytes() {
    let file = pattern(64 * 1024);
    for (after, new_len) in [(0, 0), (1, 5000), (3, 20_000), (5, 4096)] {
        let faults = Faults {
            shrink: Some((after, new_len)),
            ..Faults::default()
        };
        let (out, res) = run_fake(&file, file.len() as u64, 4096, 2, 2, 3, faults);
        let n = res.unwrap() as usize;
        assert_eq!(out.data.len(), n);
        assert!(out.data == file[..n], "delivered bytes are not the file's");
    }
}

#[test]
fn a_processor_can_stop_early() {
    let file = pattern(40_000);
    let src = Job {
        file: fake_file("fake", -1),
        plan: None,
        ordered: true,
        members: &[],
        rules: Chunks::new(0, 1000, None, 40_000, true, None),
    };
    let mut seen = Vec::new();
    let mut p = crate::processor::from_fn(|c: &Chunk<'_>| {
        seen.push(c.offset());
        Ok(seen.len() < 3)
    });
    let run = Run::new(src, 2, &crate::processor::Whole, &mut p);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let run = &run;
            let file = &file;
            s.spawn(move || {
                let arena = Arena::new(4, 1000).unwrap();
                let mut q = Fake::new(file, t + 5, Faults::default());
                assert!(run_lane(run, t, &mut q, &arena, 4, 0));
            });
        }
    });
    assert_eq!(run.finish().unwrap(), 3000);
    assert_eq!(seen, vec![0, 1000, 2000]);
}

#[test]
fn max_bytes_delivers_exactly_the_prefix() {
    let file = pattern(100_000);
    for limit in [0u64, 1, 999, 1000, 1001, 4096, 99_999, 100_000, 200_000] {
        for lanes in [1, 2, 3] {
            let faults = Faults {
                short: true,
                eagain: true,
                ..Faults::default()
            };
            let (out, res) =
                run_fake_limited(&file, 100_000, 1000, lanes, 3, limit + 1, faults, limit);
            let want = limit.min(100_000) as usize;
            assert_eq!(res.unwrap(), want as u64, "limit {limit}, lanes {lanes}");
            assert!(out.data == file[..want]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_sizes_chunks_depths_and_faults(
        size in 0usize..40_000,
        chunk in 1usize..9000,
        lanes in 1usize..4,
        depth in 1usize..6,
        seed in any::<u64>(),
        short in any::<bool>(),
        eagain in any::<bool>(),
        hint_fraction in 0u64..=2,
    ) {
        let file = pattern(size);
        let hint = size as u64 * hint_fraction / 2;
        let faults = Faults { short, eagain, ..Faults::default() };
        let (out, res) = run_fake(&file, hint, chunk, lanes, depth, seed, faults);
        prop_assert_eq!(res.unwrap(), size as u64);
        prop_assert!(out.data == file);
    }
}

/// Range plans in completion order (`ordered` off): with completions reordered, reads cut short
/// and `EAGAIN`, each range's bytes reach the processor exactly once, at their offsets, on one or
/// more lanes; over several member files, each chunk is marked with its file, and a read that
/// fails ends its file only.
#[test]
fn unordered_plans_deliver_every_range_once_and_failures_end_their_file() {
    let file = pattern(50_000);
    let ranges: Vec<ByteRange> = (0..300u64)
        .map(|i| ByteRange::new(i * 7919 % 52_000, 1 + i * 31 % 9000))
        .collect();
    for (seed, lanes, depth, chunk) in [(1, 1, 8, 4096), (2, 2, 5, 4096), (3, 3, 16, 1024)] {
        for faults in [
            Faults::default(),
            Faults {
                short: true,
                eagain: true,
                ..Faults::default()
            },
        ] {
            let lanes_of = Unordered {
                file: &file,
                ranges: &ranges,
                seed,
                lanes,
                depth,
                chunk,
                faults,
            };
            lanes_of.one_file();
            lanes_of.two_files_the_second_failing();
        }
    }
}

/// What each piece of a plan should give, keyed by (file, offset, len), counted.
type Pieces = BTreeMap<(usize, u64, usize), usize>;

/// A processor that checks each chunk's bytes against the file's and counts the pieces it got.
struct Seen<'d> {
    file: &'d [u8],
    got: Pieces,
}

impl Processor for Seen<'_> {
    fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
        let at = c.offset() as usize;
        assert_eq!(&self.file[at..at + c.len()], &c[..], "bytes differ at {at}");
        *self
            .got
            .entry((c.input(), c.offset(), c.len()))
            .or_default() += 1;
        Ok(true)
    }
}

/// One case of [`unordered_plans_deliver_every_range_once_and_failures_end_their_file`].
struct Unordered<'a> {
    file: &'a [u8],
    ranges: &'a [ByteRange],
    seed: u64,
    lanes: usize,
    depth: usize,
    chunk: usize,
    faults: Faults,
}

impl Unordered<'_> {
    /// What each piece of `plan` over the file (as file 0) should give: each range cut to
    /// chunk-sized reads, and at the file's end.
    fn want_for(&self, plan: &Plan) -> Pieces {
        let mut want = Pieces::new();
        for (k, x) in plan.extents.iter().enumerate() {
            let avail = (self.file.len() as u64)
                .saturating_sub(x.offset)
                .min(x.len as u64) as u32;
            for p in plan.parts_of(k) {
                let to = (p.at + p.len).min(avail);
                if to > p.at {
                    *want.entry((0, p.offset, (to - p.at) as usize)).or_default() += 1;
                }
            }
        }
        want
    }

    /// The plan of the ranges over one file.
    fn plan(&self) -> Plan {
        Plan::new(self.ranges, self.chunk as u64, 1, None)
    }

    /// The source of `plan` in completion order, over `members` (none: one file).
    fn src<'p>(&self, plan: &'p Plan, members: &'p [Member<'p>]) -> Job<'p> {
        Job {
            file: fake_file("fake", -1),
            plan: Some(plan),
            ordered: false,
            members,
            rules: Chunks::for_extents(self.chunk, None),
        }
    }

    /// One file: every piece exactly once.
    fn one_file(&self) {
        let plan = self.plan();
        let mut seen = Seen {
            file: self.file,
            got: Pieces::new(),
        };
        let run = Run::new(self.src(&plan, &[]), self.lanes, &Whole, &mut seen);
        let (seed, lanes) = (self.seed, self.lanes);
        run_lanes_on(
            &run,
            self.file,
            self.depth,
            self.chunk,
            seed,
            self.faults,
            None,
        );
        run.finish().unwrap();
        assert_eq!(seen.got, self.want_for(&plan), "seed {seed} lanes {lanes}");
    }

    /// Two member files (the same bytes), the second failing at offset 8192: its ranges before
    /// the failure may arrive, the first file's all do, exactly once.
    fn two_files_the_second_failing(&self) {
        let (seed, lanes) = (self.seed, self.lanes);
        let want = self.want_for(&self.plan());
        let mut two = Plan::default();
        two.append(self.plan(), 0);
        two.append(self.plan(), 1);
        let members = [fake_file("a", -1), fake_file("b", -2)];
        let mut seen = Seen {
            file: self.file,
            got: Pieces::new(),
        };
        let run = Run::new(self.src(&two, &members), lanes, &Whole, &mut seen);
        // The fake fails reads of file b (fd -2) that cover offset 8192.
        let fail = Some((-2, 8192));
        run_lanes_on(
            &run,
            self.file,
            self.depth,
            self.chunk,
            seed,
            self.faults,
            fail,
        );
        let (_, files) = run.finish_files().unwrap();
        assert!(files[0].error.is_none());
        match &files[1].error {
            Some(Error::Read { path, offset, .. }) => {
                assert_eq!(path, Path::new("b"));
                assert_eq!(*offset, 8192, "the failing read's offset");
            }
            other => panic!("file b: {other:?}"),
        }
        let first: Pieces = seen
            .got
            .iter()
            .filter(|(k, _)| k.0 == 0)
            .map(|(k, v)| (*k, *v))
            .collect();
        assert_eq!(first, want, "file a whole, seed {seed} lanes {lanes}");
        // File b: each piece at most as often as asked (the one the failure cut may be
        // shorter), none past the failure.
        let mut asked: BTreeMap<u64, usize> = BTreeMap::new();
        for ((_, off, _), n) in &want {
            *asked.entry(*off).or_default() += n;
        }
        let mut got_b: BTreeMap<u64, usize> = BTreeMap::new();
        for ((f, off, len), n) in &seen.got {
            if *f == 1 {
                assert!(
                    *off + *len as u64 <= 8192 || *off >= 8192,
                    "past the failure"
                );
                *got_b.entry(*off).or_default() += n;
            }
        }
        for (off, n) in got_b {
            assert!(
                n <= asked.get(&off).copied().unwrap_or(0),
                "file b: {off} too often"
            );
        }
    }
}

/// Runs every lane of `run` on its own thread over a fake kernel of `file` (failing reads of one
/// descriptor at an offset, if `fail_fd` says so), and checks that each reaped all its reads.
fn run_lanes_on<C: Combine<()> + Send + ?Sized>(
    run: &Run<'_, '_, crate::processor::Whole, C>,
    file: &[u8],
    depth: usize,
    chunk: usize,
    seed: u64,
    faults: Faults,
    fail_fd: Option<(i32, u64)>,
) {
    std::thread::scope(|s| {
        for t in 0..run.lanes {
            s.spawn(move || {
                let arena = Arena::new(depth, chunk).unwrap();
                let mut q = Fake::new(file, seed + t * 13, faults);
                q.fail_fd = fail_fd;
                assert!(run_lane(run, t, &mut q, &arena, depth, 0));
                assert!(
                    q.kernel.is_empty() && q.queued.is_empty(),
                    "reads left in flight"
                );
            });
        }
    });
}
