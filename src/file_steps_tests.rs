//! The life of one file driven by hand: sequences of completions as the kernel would give them.

use std::path::Path;

use super::*;

const REG: u32 = libc::S_IFREG;

fn stat(size: u64) -> Stat {
    Stat {
        kind: REG,
        size,
        dev_major: 8,
    }
}

fn chunks(chunk: usize) -> FileSteps {
    FileSteps::new(
        Shape::Chunks {
            chunk,
            max_bytes: None,
        },
        u64::MAX,
    )
}

fn whole() -> FileSteps {
    FileSteps::new(Shape::Whole { piece: 1 << 30 }, 1 << 20)
}

/// Stats and opens `f` (size hint `size`).
fn opened(mut f: FileSteps, st: Stat) -> FileSteps {
    assert_eq!(f.next(), Io::Stat);
    f.stat_done(0, st);
    assert_eq!(f.next(), Io::Open);
    f.open_done(3);
    f
}

fn read_of(f: &FileSteps) -> (Span, Option<Span>) {
    match f.next() {
        Io::Read { read, probe } => (read, probe),
        io => panic!("a read expected, not {io:?}"),
    }
}

/// Books a read of `res`, and hands over the chunk it completed (as its processor wanting more).
fn hand(f: &mut FileSteps, res: i32) -> (u64, usize) {
    let ev = f.read_done(res, None);
    let Event::Chunk { offset, len } = ev else {
        panic!("a chunk expected, not {ev:?}")
    };
    f.handed(true);
    (offset, len)
}

#[test]
fn a_file_read_in_chunks_ends_where_a_read_returns_0() {
    let mut f = opened(chunks(4096), stat(4096 * 2));
    let (r, probe) = read_of(&f);
    assert_eq!((r.offset, r.len, r.buf_offset, probe), (0, 4096, 0, None));
    assert_eq!(hand(&mut f, 4096), (0, 4096));
    let (r, _) = read_of(&f);
    assert_eq!(r.offset, 4096);
    // A short read, then EINTR, then EAGAIN: the rest of the chunk, then the chunk is in.
    assert_eq!(f.read_done(1000, None), Event::Go);
    let (r, _) = read_of(&f);
    assert_eq!((r.offset, r.len, r.buf_offset), (5096, 3096, 1000));
    assert_eq!(f.read_done(-libc::EINTR, None), Event::Go);
    assert_eq!(f.read_done(-libc::EAGAIN, None), Event::Go);
    assert_eq!(hand(&mut f, 3096), (4096, 4096));
    // The chunk that starts at the size hint finds the end.
    let (r, _) = read_of(&f);
    assert_eq!(r.offset, 8192);
    assert_eq!(hand(&mut f, 0), (8192, 0));
    assert_eq!(f.end(), Some(End::Read(8192)));
    assert_eq!(f.next(), Io::Close);
    f.closed();
    assert_eq!(f.next(), Io::Done);
}

/// `f.read_done`, then `handed(true)` if it completed a chunk.
fn read_and_hand(f: &mut FileSteps, res: i32, probe: Option<i32>) -> Event {
    let ev = f.read_done(res, probe);
    if matches!(ev, Event::Chunk { .. }) {
        f.handed(true);
    }
    ev
}

#[test]
fn the_probe_at_the_size_hint_is_the_rest_only_where_the_read_stopped_there() {
    // A file of 5000 bytes in chunks of 8192: the read carries the probe at 5000.
    let mut f = opened(chunks(8192), stat(5000));
    let (r, probe) = read_of(&f);
    assert_eq!((r.offset, r.len), (0, 8192));
    let p = probe.expect("a probe inside the read");
    assert_eq!((p.offset, p.len, p.buf_offset), (5000, 3192, 5000));
    // The read stopped at the hint, the probe found the end: one trip.
    assert_eq!(
        read_and_hand(&mut f, 5000, Some(0)),
        Event::Chunk {
            offset: 0,
            len: 5000
        }
    );
    assert_eq!(f.end(), Some(End::Read(5000)));
    assert_eq!(f.next(), Io::Close);

    // Grown since statx: the probe got bytes past the hint, which belong to the chunk.
    let mut f = opened(chunks(8192), stat(5000));
    assert_eq!(
        read_and_hand(&mut f, 5000, Some(700)),
        Event::Go,
        "5700 of 8192: the rest is read"
    );
    let (r, probe) = read_of(&f);
    assert_eq!(
        (r.offset, r.len, r.buf_offset, probe),
        (5700, 2492, 5700, None)
    );
    read_and_hand(&mut f, 0, None);
    assert_eq!(f.end(), Some(End::Read(5700)));

    // Shrunk since statx: the read stopped before the hint; the probe's 0 is not the end there.
    let mut f = opened(chunks(8192), stat(5000));
    assert_eq!(read_and_hand(&mut f, 3000, Some(0)), Event::Go);
    let (r, probe) = read_of(&f);
    assert_eq!(r.offset, 3000);
    assert!(probe.is_some(), "the hint is still inside the read");
    read_and_hand(&mut f, 0, Some(0));
    assert_eq!(f.end(), Some(End::Read(3000)));
}

#[test]
fn a_read_error_names_the_path_and_the_offset_after_the_bytes_before_it() {
    let mut f = opened(chunks(4096), stat(10_000));
    read_and_hand(&mut f, 4096, None);
    assert_eq!(f.read_done(100, None), Event::Go);
    assert_eq!(
        f.read_done(-libc::EIO, None),
        Event::Chunk {
            offset: 4096,
            len: 100
        }
    );
    f.handed(true);
    assert_eq!(f.bytes(), 4196);
    let Some(End::Failed(failure)) = f.end() else {
        panic!("{:?}", f.end())
    };
    assert_eq!(
        failure,
        Failure::Read {
            offset: 4196,
            errno: libc::EIO
        }
    );
    let e = failure.error(Path::new("/d/f"));
    let text = e.to_string();
    assert!(text.contains("/d/f") && text.contains("4196"), "{text}");
    assert_eq!(
        f.next(),
        Io::Close,
        "an open file is closed after a failure"
    );
}

#[test]
fn stat_and_open_failures_end_the_file_without_a_close() {
    let mut f = chunks(4096);
    f.stat_done(-libc::ENOENT, stat(0));
    assert_eq!(f.end(), Some(End::Failed(Failure::Open(libc::ENOENT))));
    assert_eq!(f.next(), Io::Done);
    let e = Failure::Open(libc::ENOENT).error(Path::new("/gone"));
    assert!(e.to_string().contains("/gone"), "{e}");

    let mut f = chunks(4096);
    f.stat_done(0, stat(10));
    f.open_done(-libc::EACCES);
    assert_eq!(f.end(), Some(End::Failed(Failure::Open(libc::EACCES))));
    assert_eq!(f.next(), Io::Done);

    let mut f = whole();
    f.stat_done(0, stat(10));
    f.open_done(-libc::ECANCELED);
    assert_eq!(f.end(), Some(End::Cancelled));
}

#[test]
fn statx_refuses_directories_fifos_and_files_over_the_limit_before_the_open() {
    for (kind, size, want) in [
        (libc::S_IFDIR, 0, Refusal::Directory),
        (libc::S_IFIFO, 0, Refusal::NotRegular(libc::S_IFIFO)),
        (libc::S_IFCHR, 0, Refusal::NotRegular(libc::S_IFCHR)),
        (REG, 2 << 20, Refusal::TooLarge(2 << 20)),
    ] {
        let mut f = whole();
        f.stat_done(
            0,
            Stat {
                kind,
                size,
                dev_major: 8,
            },
        );
        assert_eq!(f.end(), Some(End::Refused(want)));
        assert_eq!(f.next(), Io::Done, "never opened");
    }
    // Refused by the driver once open (FUSE): closed.
    let mut f = opened(chunks(4096), stat(10));
    f.refuse(Refusal::Elsewhere);
    assert_eq!(f.next(), Io::Close);
}

#[test]
fn an_empty_file_ends_by_a_read_of_0_in_chunks_and_whole() {
    let mut f = opened(chunks(4096), stat(0));
    let (r, probe) = read_of(&f);
    assert_eq!((r.offset, probe), (0, None));
    assert_eq!(f.read_done(0, None), Event::Chunk { offset: 0, len: 0 });
    f.handed(true);
    assert_eq!(f.end(), Some(End::Read(0)));

    // Whole: no buffer, no read into one; the probe at 0 (into a byte of the driver's) ends it.
    let mut f = opened(whole(), stat(0));
    assert_eq!(f.buffer_len(), 0);
    assert!(!f.has_read());
    assert_eq!(f.end(), None);
    let probe = Span {
        offset: 0,
        len: 1,
        buf_offset: 0,
    };
    assert_eq!(f.next(), Io::Probe(probe));
    f.probe_done(0);
    assert_eq!(f.end(), Some(End::Read(0)));
    assert_eq!(f.next(), Io::Close);
    // It grew after statx: read to its end another way, as every path reads it.
    let mut f = opened(whole(), stat(0));
    f.probe_done(1);
    assert_eq!(f.end(), Some(End::Longer));
}

#[test]
fn a_probe_ends_at_0_goes_on_at_a_byte_and_fails_at_its_offset() {
    assert_eq!(probe_end(0, 77), End::Read(77));
    assert_eq!(probe_end(1, 77), End::Longer);
    assert_eq!(
        probe_end(-libc::EIO, 77),
        End::Failed(Failure::Read {
            offset: 77,
            errno: libc::EIO
        })
    );
    assert_eq!(probe_end(-libc::ECANCELED, 77), End::Cancelled);
}

#[test]
fn a_whole_file_probes_one_byte_at_its_size_hint() {
    // Read to the hint in one read, then the probe: 0 ends it there.
    let mut f = opened(whole(), stat(10_000));
    assert_eq!(f.buffer_len(), 10_000);
    let (r, _) = read_of(&f);
    assert_eq!((r.offset, r.len, r.buf_offset), (0, 10_000, 0));
    assert_eq!(f.read_done(6000, None), Event::Go);
    let (r, _) = read_of(&f);
    assert_eq!((r.offset, r.len, r.buf_offset), (6000, 4000, 6000));
    f.read_done(4000, None);
    assert_eq!(
        f.next(),
        Io::Probe(Span {
            offset: 10_000,
            len: 1,
            buf_offset: 9_999
        })
    );
    f.probe_done(0);
    assert_eq!(f.end(), Some(End::Read(10_000)));
    assert_eq!(f.next(), Io::Close);

    // Grown: the probe got a byte.
    let mut f = opened(whole(), stat(10_000));
    f.read_done(10_000, None);
    f.probe_done(1);
    assert_eq!(f.end(), Some(End::Longer));

    // Shrunk: a read returned 0 before the hint; no probe.
    let mut f = opened(whole(), stat(10_000));
    f.read_done(3000, None);
    f.read_done(0, None);
    assert_eq!(f.end(), Some(End::Read(3000)));
    assert_eq!(f.next(), Io::Close);

    // The probe failed: at the hint.
    let mut f = opened(whole(), stat(100));
    f.read_done(100, None);
    f.probe_done(-libc::EIO);
    assert_eq!(
        f.end(),
        Some(End::Failed(Failure::Read {
            offset: 100,
            errno: libc::EIO
        }))
    );
}

#[test]
fn an_empty_file_without_a_device_is_read_a_page_to_see() {
    let st = Stat {
        kind: REG,
        size: 0,
        dev_major: 0,
    };
    let mut f = opened(whole(), st);
    assert_eq!(f.buffer_len(), PROBE_EMPTY);
    f.read_done(123, None);
    f.read_done(0, None);
    assert_eq!(f.end(), Some(End::Read(123)));
    // A page full: one read more tells.
    let mut f = opened(whole(), st);
    f.read_done(PROBE_EMPTY as i32, None);
    assert_eq!(f.phase(), Phase::Probe);
    f.probe_done(1);
    assert_eq!(f.end(), Some(End::Longer));
}

#[test]
fn the_byte_limit_ends_the_file_and_a_file_opened_reads_from_its_position() {
    let shape = Shape::Chunks {
        chunk: 4096,
        max_bytes: Some(5000),
    };
    let mut f = FileSteps::opened(shape, stat(1 << 20), 100);
    let (r, _) = read_of(&f);
    assert_eq!(r.offset, 100);
    read_and_hand(&mut f, 4096, None);
    let (r, _) = read_of(&f);
    assert_eq!((r.offset, r.len), (4196, 904));
    read_and_hand(&mut f, 904, None);
    assert_eq!(f.end(), Some(End::Read(5000)));

    // A limit of 0: opened, nothing read.
    let shape = Shape::Chunks {
        chunk: 4096,
        max_bytes: Some(0),
    };
    let f = opened(FileSteps::new(shape, u64::MAX), stat(10));
    assert!(f.end() == Some(End::Read(0)) && f.next() == Io::Close);
}

#[test]
fn a_processor_that_stops_ends_the_file_with_what_it_was_given() {
    let mut f = opened(chunks(4096), stat(100_000));
    f.read_done(4096, None);
    f.handed(false);
    assert_eq!(f.end(), Some(End::Read(4096)));
    assert_eq!(f.next(), Io::Close);
    // A processor that failed: no outcome of the steps' own.
    let mut f = opened(chunks(4096), stat(100_000));
    f.read_done(4096, None);
    f.stop();
    assert_eq!((f.end(), f.next()), (None, Io::Close));
}

#[test]
fn a_driver_that_gives_up_fails_the_file_where_it_was() {
    let mut f = opened(whole(), stat(10_000));
    f.read_done(2000, None);
    f.fail(libc::EIO);
    assert_eq!(
        f.end(),
        Some(End::Failed(Failure::Read {
            offset: 2000,
            errno: libc::EIO
        }))
    );
    let mut f = whole();
    f.fail(libc::EIO);
    assert_eq!(f.end(), Some(End::Failed(Failure::Open(libc::EIO))));
}

/// An unstated file of `chunk`-byte chunks, opened (its first read next, linked).
fn unstated_opened(chunk: usize, large: u64) -> FileSteps {
    let mut f = FileSteps::unstated(chunk, None, large);
    assert_eq!(f.next(), Io::Open);
    let Some(Io::Read { read, probe }) = f.first_read() else {
        panic!("a first read to link")
    };
    assert_eq!((read.offset, read.len), (CURRENT_POSITION, chunk as u32));
    assert_eq!(
        probe,
        Some(Span {
            offset: CURRENT_POSITION,
            len: 1,
            buf_offset: SPARE_BYTE
        })
    );
    f.open_done(0);
    f
}

#[test]
fn an_unstated_file_that_ends_inside_its_first_chunk_takes_no_statx() {
    // Short, then the byte after it says the end.
    let mut f = unstated_opened(4096, 1 << 20);
    assert_eq!(
        f.read_done(100, Some(0)),
        Event::Chunk {
            offset: 0,
            len: 100
        }
    );
    f.handed(true);
    assert_eq!(f.next(), Io::Close);
    assert_eq!(f.end(), Some(End::Read(100)));
    // Exactly a chunk, and nothing after it.
    let mut f = unstated_opened(4096, 1 << 20);
    assert_eq!(
        f.read_done(4096, Some(0)),
        Event::Chunk {
            offset: 0,
            len: 4096
        }
    );
    f.handed(true);
    assert_eq!(f.next(), Io::Close);
    assert_eq!(f.end(), Some(End::Read(4096)));
}

#[test]
fn an_unstated_file_longer_than_its_first_chunk_is_stated_with_the_chunk_held() {
    let mut f = unstated_opened(4096, 1 << 20);
    assert_eq!(f.read_done(4096, Some(1)), Event::Go);
    assert_eq!(f.next(), Io::Stat);
    assert_eq!(
        f.late_stat_done(0, stat(5000)),
        Event::Chunk {
            offset: 0,
            len: 4096
        }
    );
    f.handed(true);
    // Now sized: the next read carries the probe at the size.
    let (r, probe) = read_of(&f);
    assert_eq!((r.offset, r.len), (4096, 4096));
    assert_eq!(probe.map(|p| p.offset), Some(5000));
    assert!(matches!(
        f.read_done(904, Some(0)),
        Event::Chunk {
            offset: 4096,
            len: 904
        }
    ));
    f.handed(true);
    assert_eq!(f.end(), Some(End::Read(5000)));

    // Larger than the limit: refused, nothing handed over.
    let mut f = unstated_opened(4096, 8192);
    assert_eq!(f.read_done(4096, Some(1)), Event::Go);
    assert_eq!(f.late_stat_done(0, stat(10_000)), Event::Go);
    assert_eq!(f.end(), Some(End::Refused(Refusal::TooLarge(10_000))));
    assert_eq!(f.next(), Io::Close);

    // A FIFO with a writer: its bytes taken, it is read on, unsized.
    let mut f = unstated_opened(4096, 8192);
    assert_eq!(f.read_done(4096, Some(1)), Event::Go);
    let fifo = Stat {
        kind: libc::S_IFIFO,
        size: 0,
        dev_major: 0,
    };
    assert!(matches!(
        f.late_stat_done(0, fifo),
        Event::Chunk { len: 4096, .. }
    ));
    f.handed(true);
    assert_eq!(read_of(&f).1, None);
}

#[test]
fn an_unstated_file_read_short_reads_on_at_the_offset_it_reached() {
    let mut f = unstated_opened(4096, 1 << 20);
    // Short, and the byte after it says there is more: the rest of the chunk at 100.
    assert_eq!(f.read_done(100, Some(1)), Event::Go);
    let (r, probe) = read_of(&f);
    assert_eq!((r.offset, r.len, r.buf_offset), (100, 3996, 100));
    assert_eq!(probe, None);
    assert!(matches!(
        f.read_done(0, None),
        Event::Chunk { len: 100, .. }
    ));
    f.handed(true);
    assert_eq!(f.end(), Some(End::Read(100)));
}

#[test]
fn what_an_unstated_open_or_first_read_cannot_tell_goes_back_to_the_caller() {
    // Nothing read: an empty file, or a FIFO with no writer.
    let mut f = unstated_opened(4096, 1 << 20);
    assert_eq!(f.read_done(0, Some(0)), Event::Go);
    assert_eq!(f.end(), Some(End::Refused(Refusal::Elsewhere)));
    assert_eq!(f.next(), Io::Close);
    // A directory.
    let mut f = unstated_opened(4096, 1 << 20);
    assert_eq!(f.read_done(-libc::EISDIR, Some(-libc::EISDIR)), Event::Go);
    assert_eq!(f.end(), Some(End::Refused(Refusal::Directory)));
    assert_eq!(f.next(), Io::Close);
    // A first read refused under O_NONBLOCK (a kernel before 6.5): the caller reads it.
    let mut f = unstated_opened(4096, 1 << 20);
    assert_eq!(f.read_done(-libc::EAGAIN, Some(-libc::EAGAIN)), Event::Go);
    assert_eq!(f.end(), Some(End::Refused(Refusal::Elsewhere)));
    assert_eq!(f.next(), Io::Close);
    // An open that would wait (a lease), under O_NONBLOCK: nothing to close.
    let mut f = FileSteps::unstated(4096, None, 1 << 20);
    f.open_done(-libc::EAGAIN);
    assert_eq!(f.end(), Some(End::Refused(Refusal::Elsewhere)));
    assert_eq!(f.next(), Io::Done);
    // Other failures are the file's, as from a statx.
    let mut f = FileSteps::unstated(4096, None, 1 << 20);
    f.open_done(-libc::ENOENT);
    assert_eq!(f.end(), Some(End::Failed(Failure::Open(libc::ENOENT))));
}
