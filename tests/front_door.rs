//! The front door: one [`Source`] (a path, an open file, a list of either, a tree, ranges of any)
//! through every verb of the `Reader` (`read`, `read_split`, `read_each`, `read_each_split`) and of
//! the async `Driver` (`chunks`, `files`, `ranges`, `range_file`). Every combination that makes
//! sense gives the bytes `std::fs::read` gives, on sizes that straddle the chunk and page edges;
//! every one that does not is refused with `Error::InvalidOptions` before any I/O (shown by a
//! missing path that is never opened: an open would say `Error::Open`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use ringread::processor::{from_fn, Combine, Prepare};
use ringread::ranges::{ByteRange, Order, RangeOptions};
use ringread::stream::Driver;
use ringread::{Chunk, Error, Input, ReadOptions, Reader, Source};

mod common;
use common::stream::runtime;
use common::{random_bytes, shared};

const CHUNK: usize = 64 * 1024;
const SIZES: [usize; 10] = [
    0,
    1,
    4095,
    4096,
    4097,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    3 * CHUNK + 5,
    1 << 20,
];

struct Files {
    _dir: tempfile::TempDir,
    paths: Vec<PathBuf>,
    data: Vec<Vec<u8>>,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let (mut paths, mut data) = (Vec::new(), Vec::new());
    for (i, &size) in SIZES.iter().enumerate() {
        let p = dir.path().join(format!("f{i:02}"));
        let d = random_bytes(size, i as u64 + 1);
        fs::write(&p, &d).unwrap();
        paths.push(p);
        data.push(d);
    }
    Files {
        _dir: dir,
        paths,
        data,
    }
}

fn reader() -> Reader {
    Reader::new(
        ReadOptions::builder()
            .chunk_size(CHUNK)
            .depth(8)
            .build()
            .unwrap(),
    )
}

/// Ranges that straddle the edges of every size, some past the end, in no order.
fn ranges() -> Vec<ByteRange> {
    vec![
        ByteRange::new(4000, 200),
        ByteRange::new(0, 1),
        ByteRange::new(CHUNK as u64 - 3, 10),
        ByteRange::new(1 << 19, 3 * CHUNK as u64),
        ByteRange::new(5, 0),
        ByteRange::new(1 << 40, 7),
    ]
}

/// What `ranges` of `data` are, as `pread(2)` gives them.
fn expect_ranges(data: &[u8], ranges: &[ByteRange]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in ranges {
        let start = (r.offset as usize).min(data.len());
        let end = (r.offset.saturating_add(r.len) as usize).min(data.len());
        out.extend_from_slice(&data[start..end]);
    }
    out
}

/// A processor that collects every chunk's bytes with the input it is marked with.
fn collect(out: &mut Vec<(usize, Vec<u8>)>) -> impl ringread::Processor + Send + '_ {
    from_fn(move |c: &Chunk<'_>| {
        match out.last_mut() {
            Some((i, d)) if *i == c.input() => d.extend_from_slice(c),
            _ => out.push((c.input(), c.to_vec())),
        }
        Ok(true)
    })
}

fn joined(out: Vec<(usize, Vec<u8>)>) -> Vec<u8> {
    out.into_iter().flat_map(|(_, d)| d).collect()
}

#[test]
fn read_gives_each_kind_of_source_into_one_processor() {
    let _g = shared();
    let f = files();
    let reader = reader();
    for (p, want) in f.paths.iter().zip(&f.data) {
        let mut got = Vec::new();
        let s = reader.read(p, &mut collect(&mut got)).unwrap();
        assert_eq!(s.bytes, want.len() as u64);
        assert_eq!(joined(got), *want, "{}", p.display());
        let mut got = Vec::new();
        let file = File::open(p).unwrap();
        reader
            .read(Source::file(file, "handed"), &mut collect(&mut got))
            .unwrap();
        assert_eq!(joined(got), *want);
        for src in [
            Source::path(p).ranges(ranges()),
            Source::file(File::open(p).unwrap(), "handed").ranges(ranges()),
        ] {
            let mut got = Vec::new();
            reader.read(src, &mut collect(&mut got)).unwrap();
            assert_eq!(joined(got), expect_ranges(want, &ranges()));
        }
    }
    // A list into one processor: the inputs one after another, each chunk marked with its input.
    let mut got = Vec::new();
    let s = reader
        .read(Source::paths(&f.paths), &mut collect(&mut got))
        .unwrap();
    assert_eq!(s.bytes, f.data.iter().map(|d| d.len() as u64).sum::<u64>());
    let inputs: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
    let nonempty: Vec<usize> = (0..SIZES.len()).filter(|&i| SIZES[i] > 0).collect();
    assert_eq!(inputs, nonempty);
    assert_eq!(joined(got), f.data.concat());
    // Its hash is the hash of the bytes one after another (begin once, finish once).
    let mut one = ringread::processor::Checksum::new(ringread::processor::Algorithm::Sha256);
    reader.read(Source::paths(&f.paths), &mut one).unwrap();
    let mut cat = ringread::processor::Checksum::new(ringread::processor::Algorithm::Sha256);
    let all = f.data.concat();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("all"), &all).unwrap();
    reader.read(dir.path().join("all"), &mut cat).unwrap();
    assert_eq!(one.hex(), cat.hex());
    // The first error stops the call and names the file.
    let missing = f.paths[0].with_file_name("missing");
    let list = [f.paths[1].clone(), missing.clone(), f.paths[2].clone()];
    match reader.read(Source::paths(list), &mut collect(&mut Vec::new())) {
        Err(Error::Open { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
}

/// A `Prepare` that copies each chunk; its `Combine` checks the copy and collects it.
struct Copy;
impl Prepare for Copy {
    type Part = Vec<u8>;
    fn prepare(&self, chunk: &Chunk<'_>) -> Vec<u8> {
        chunk.to_vec()
    }
}
#[derive(Default)]
struct Got(Vec<u8>);
impl Combine<Vec<u8>> for Got {
    fn combine(&mut self, chunk: &Chunk<'_>, part: Vec<u8>) -> std::io::Result<bool> {
        assert_eq!(&part[..], &chunk[..]);
        self.0.extend_from_slice(&part);
        Ok(true)
    }
}

#[test]
fn read_split_gives_the_same_bytes() {
    let _g = shared();
    let f = files();
    let reader = reader();
    let mut got = Got::default();
    reader
        .read_split(Source::paths(&f.paths), &Copy, &mut got)
        .unwrap();
    assert_eq!(got.0, f.data.concat());
    let mut got = Got::default();
    let src = Source::path(&f.paths[9]).ranges(ranges());
    reader.read_split(src, &Copy, &mut got).unwrap();
    assert_eq!(got.0, expect_ranges(&f.data[9], &ranges()));
}

/// `read_each` of `src`: each input's bytes or error, in the order `done` got them.
fn each(reader: &Reader, src: Source<'_>) -> Vec<(usize, Result<Vec<u8>, String>)> {
    let mut out = Vec::new();
    reader
        .read_each(
            src,
            |_, _| ringread::processor::CopyTo::new(Vec::new()),
            |f| {
                out.push((
                    f.index,
                    f.result
                        .map(|_| f.processor.into_inner())
                        .map_err(|e| e.to_string()),
                ))
            },
        )
        .unwrap();
    out
}

#[test]
fn read_each_serves_paths_files_mixed_lists_and_ranges_of_either() {
    let _g = shared();
    let f = files();
    let reader = reader();
    let want: Vec<(usize, Result<Vec<u8>, String>)> =
        f.data.iter().cloned().map(Ok).enumerate().collect();
    assert_eq!(each(&reader, Source::paths(&f.paths)), want);
    let opened = f.paths.iter().map(|p| (File::open(p).unwrap(), p.clone()));
    assert_eq!(each(&reader, Source::files(opened)), want);
    let mixed = f.paths.iter().enumerate().map(|(i, p)| match i % 2 {
        0 => Input::path(p),
        _ => Input::file(File::open(p).unwrap(), p),
    });
    assert_eq!(each(&reader, Source::inputs(mixed)), want);
    // Ranges of many paths, and (once a hole) of many open files, in either order.
    let want: Vec<_> = f
        .data
        .iter()
        .map(|d| Ok(expect_ranges(d, &ranges())))
        .enumerate()
        .collect();
    assert_eq!(
        each(&reader, Source::paths(&f.paths).ranges(ranges())),
        want
    );
    let opened = f.paths.iter().map(|p| (File::open(p).unwrap(), p.clone()));
    assert_eq!(each(&reader, Source::files(opened).ranges(ranges())), want);
    // Each input with ranges of its own.
    let own = f
        .paths
        .iter()
        .zip(&f.data)
        .enumerate()
        .map(|(i, (p, _))| Input::path(p).ranges(vec![ByteRange::new(i as u64 * 7, 5000)]));
    let got = each(&reader, Source::inputs(own));
    for (i, d) in f.data.iter().enumerate() {
        let r = [ByteRange::new(i as u64 * 7, 5000)];
        assert_eq!(got[i], (i, Ok(expect_ranges(d, &r))));
    }
    // In completion order, every range's bytes are there, each marked with its offset.
    let src = Source::paths(&f.paths[8..])
        .ranges(ranges())
        .range_options(RangeOptions::new().order(Order::Completion));
    let mut bytes = 0;
    reader
        .read_each(
            src,
            |_, _| ringread::processor::ByteCount::default(),
            |f| {
                assert!(f.result.is_ok());
                bytes += f.processor.bytes as usize;
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let want: usize = f.data[8..]
        .iter()
        .map(|d| expect_ranges(d, &ranges()).len())
        .sum();
    assert_eq!(bytes, want);
}

#[test]
fn read_each_split_of_ranges_fills_what_was_a_hole() {
    let _g = shared();
    let f = files();
    let reader = reader();
    let mut got = Vec::new();
    let src = Source::paths(&f.paths).ranges(ranges());
    reader
        .read_each_split(
            src,
            |_, _| (Copy, Got::default()),
            |f| got.push((f.index, f.result.map(|_| f.processor.0).unwrap())),
        )
        .unwrap();
    for (i, d) in f.data.iter().enumerate() {
        assert_eq!(got[i], (i, expect_ranges(d, &ranges())));
    }
    let mut got = Vec::new();
    reader
        .read_each_split(
            Source::paths(&f.paths),
            |_, _| (Copy, Got::default()),
            |f| got.push(f.result.map(|_| f.processor.0).unwrap()),
        )
        .unwrap();
    assert_eq!(got, f.data);
}

#[test]
fn errors_are_each_inputs_own_at_its_place() {
    let _g = shared();
    let f = files();
    let reader = reader();
    let missing = f.paths[0].with_file_name("missing");
    let list = [f.paths[1].clone(), missing.clone(), f.paths[2].clone()];
    let got = each(&reader, Source::paths(&list));
    assert_eq!(got[0], (0, Ok(f.data[1].clone())));
    assert!(
        matches!(&got[1], (1, Err(e)) if e.contains("missing")),
        "{got:?}"
    );
    assert_eq!(got[2], (2, Ok(f.data[2].clone())));
    // Inputs of the other kind than the first are refused one by one, the others read.
    let mixed = [
        Input::path(&f.paths[3]).ranges(vec![ByteRange::new(0, 10)]),
        Input::path(&missing),
        Input::path(&f.paths[4]).ranges(vec![ByteRange::new(0, 10)]),
    ];
    let got = each(&reader, Source::inputs(mixed));
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], (0, Ok(f.data[3][..10].to_vec())));
    assert!(
        matches!(&got[1], (1, Err(e)) if e.contains("without ranges")),
        "refused before it was opened (no 'No such file'): {got:?}"
    );
    assert_eq!(got[2], (2, Ok(f.data[4][..10].to_vec())));
}

/// A tree: `a`, `sub/b`, `sub/c`, a FIFO (left out) and a link back to the top (a loop when
/// links are followed).
fn tree() -> (tempfile::TempDir, Vec<(PathBuf, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    fs::create_dir(top.join("sub")).unwrap();
    let mut files = Vec::new();
    for (i, name) in ["a", "sub/b", "sub/c"].into_iter().enumerate() {
        let d = random_bytes(SIZES[i + 5], i as u64 + 9);
        fs::write(top.join(name), &d).unwrap();
        files.push((top.join(name), d));
    }
    common::mkfifo(&top.join("fifo"));
    std::os::unix::fs::symlink(top, top.join("sub/loop")).unwrap();
    (dir, files)
}

#[test]
fn a_tree_is_its_regular_files_by_name_and_a_loop_is_an_error_at_its_place() {
    let _g = shared();
    let (dir, files) = tree();
    let reader = reader();
    let got = each(&reader, Source::tree(dir.path()));
    let want: Vec<_> = files
        .iter()
        .map(|(_, d)| Ok(d.clone()))
        .enumerate()
        .collect();
    assert_eq!(got, want, "the FIFO and the unfollowed link are left out");
    let got = each(&reader, Source::tree(dir.path()).follow_links(true));
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], (0, Ok(files[0].1.clone())));
    assert_eq!(got[1], (1, Ok(files[1].1.clone())));
    assert_eq!(got[2], (2, Ok(files[2].1.clone())));
    assert!(
        matches!(&got[3], (3, Err(e)) if e.contains("loop")),
        "{got:?}"
    );
    // One processor over the tree: the loop stops the call.
    let mut all = Vec::new();
    let r = reader.read(
        Source::tree(dir.path()).follow_links(true),
        &mut collect(&mut all),
    );
    assert!(matches!(r, Err(Error::Open { .. })), "{r:?}");
    assert_eq!(
        joined(all),
        [&files[0].1[..], &files[1].1, &files[2].1].concat()
    );
}

#[test]
fn the_driver_serves_one_file_many_files_ranges_and_read_at() {
    let _g = shared();
    let f = files();
    let (dir, tfiles) = tree();
    let rt = runtime();
    let driver = Driver::with_threads(2)
        .unwrap()
        .with_options(
            ReadOptions::builder()
                .chunk_size(CHUNK)
                .depth(4)
                .build()
                .unwrap(),
        )
        .unwrap();
    rt.block_on(async {
        for (p, want) in f.paths.iter().zip(&f.data) {
            let mut got = Vec::new();
            let mut s = driver.chunks(p).unwrap();
            while let Some(c) = s.next().await {
                got.extend_from_slice(&c.unwrap());
            }
            assert_eq!(got, *want);
            let mut got = Vec::new();
            let mut s = driver
                .chunks(Source::file(File::open(p).unwrap(), "handed"))
                .unwrap();
            while let Some(c) = s.next().await {
                got.extend_from_slice(&c.unwrap());
            }
            assert_eq!(got, *want);
            let mut got = Vec::new();
            let mut s = driver.ranges(Source::path(p).ranges(ranges())).unwrap();
            while let Some(r) = s.next().await {
                got.extend_from_slice(&r.unwrap().1);
            }
            assert_eq!(got, expect_ranges(want, &ranges()));
            let file = driver.range_file(p).unwrap();
            let at = file.read_at(4090, 10).await.unwrap();
            let end = want.len().min(4100);
            assert_eq!(&at[..], &want[4090.min(want.len())..end]);
            let handed = driver
                .range_file(Source::file(File::open(p).unwrap(), "handed"))
                .unwrap();
            assert_eq!(
                &handed.read_at(0, 3).await.unwrap()[..],
                &want[..3.min(want.len())]
            );
        }
        let mut files = driver.files(Source::paths(&f.paths)).unwrap();
        let mut i = 0;
        while let Some((index, bytes)) = files.next().await {
            assert_eq!(index, i);
            assert_eq!(bytes.unwrap(), f.data[i]);
            i += 1;
        }
        assert_eq!(i, f.data.len());
        // A tree, its loop an error at its place.
        let mut files = driver
            .files(Source::tree(dir.path()).follow_links(true))
            .unwrap();
        let mut got = Vec::new();
        while let Some((index, bytes)) = files.next().await {
            got.push((index, bytes.map(|b| b.to_vec()).map_err(|e| e.to_string())));
        }
        assert_eq!(got.len(), 4, "{got:?}");
        for (i, (_, d)) in tfiles.iter().enumerate() {
            assert_eq!(got[i], (i, Ok(d.clone())));
        }
        assert!(
            matches!(&got[3], (3, Err(e)) if e.contains("loop")),
            "{got:?}"
        );
    });
}

fn invalid<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::InvalidOptions(why)) => why,
        other => panic!("not refused before any I/O: {other:?}"),
    }
}

#[test]
fn what_a_verb_cannot_serve_is_refused_before_any_io() {
    let _g = shared();
    let rt = runtime();
    let _enter = rt.enter();
    let driver = Driver::with_threads(1).unwrap();
    let missing = Path::new("/nonexistent/ringread-front-door");
    let list = || Source::paths([missing, missing]);
    assert!(invalid(driver.chunks(list())).contains("one input"));
    assert!(invalid(driver.chunks(Source::path(missing).ranges(ranges()))).contains("ranges"));
    assert!(invalid(driver.range_file(list())).contains("one input"));
    assert!(invalid(driver.range_file(Source::path(missing).ranges(ranges()))).contains("ranges"));
    assert!(invalid(driver.ranges(Source::path(missing))).contains("ranges"));
    assert!(invalid(driver.ranges(list().ranges(ranges()))).contains("one input"));
    assert!(invalid(driver.files(list().ranges(ranges()))).contains("ranges"));
    let file = File::open("Cargo.toml").unwrap();
    assert!(invalid(driver.files(Source::files([(file, "Cargo.toml")]))).contains("open already"));
    let threads = ReadOptions::builder().threads(2).build().unwrap();
    assert!(invalid(driver.with_options(threads)).contains("threads"));
    let huge = ReadOptions::builder().chunk_size(1 << 30).build().unwrap();
    assert!(
        invalid(Driver::with_budget(1, 1 << 20).unwrap().with_options(huge)).contains("budget")
    );
    // The reader: nothing to read is said, not an empty summary.
    let empty: [&str; 0] = [];
    assert!(
        invalid(reader().read(Source::paths(empty), &mut collect(&mut Vec::new())))
            .contains("empty")
    );
}
