//! Criterion benches: the engine against plain `read(2)` on a cached 256 MiB file, across chunk sizes
//! and depths; and the processors alone on in-memory data, to see what bounds a `sum`.
//!
//! Cache state: warm. The file is read once before each group and again before each measurement
//! batch (this VM evicts page cache left idle for about a minute). Run: `cargo bench --bench engine`.

use std::io::Write;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringread::processor::{Algorithm, ByteCount, Checksum, LineCount, Processor};
use ringread::{Backend, Chunk, ReadOptions, Reader};

const FILE_SIZE: usize = 256 << 20;

fn bench_file() -> PathBuf {
    let path = std::env::temp_dir().join("ringread-criterion-256m.bin");
    if std::fs::metadata(&path).map(|m| m.len() as usize).ok() != Some(FILE_SIZE) {
        let mut f = std::fs::File::create(&path).expect("create the bench file");
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..FILE_SIZE / buf.len() {
            for w in buf.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                w.copy_from_slice(&state.to_le_bytes());
            }
            f.write_all(&buf).expect("write the bench file");
        }
    }
    path
}

fn read_all(reader: &Reader, path: &Path) -> u64 {
    let mut n = ByteCount::default();
    reader.read(path, &mut n).expect("read");
    n.bytes
}

fn engine_vs_sync(c: &mut Criterion) {
    let path = bench_file();
    let mut g = c.benchmark_group("read 256 MiB warm");
    g.throughput(Throughput::Bytes(FILE_SIZE as u64));
    g.sample_size(10);
    for chunk in [64 << 10, 256 << 10, 1 << 20] {
        for depth in [1, 4, 16, 64] {
            for backend in [Backend::Uring, Backend::Sync] {
                if backend == Backend::Sync && depth != 1 {
                    continue; // read(2) has one buffer whatever the depth
                }
                let opts = ReadOptions::builder()
                    .chunk_size(chunk)
                    .depth(depth)
                    .backend(backend)
                    .build()
                    .expect("valid options");
                let reader = Reader::new(opts);
                ringread::bench::warm(&path).expect("warm the file");
                let id =
                    format!("{:?} chunk {}K depth {depth}", backend, chunk >> 10).to_lowercase();
                g.bench_function(BenchmarkId::from_parameter(id), |b| {
                    b.iter(|| assert_eq!(read_all(&reader, &path), FILE_SIZE as u64))
                });
            }
        }
    }
    g.finish();
}

fn processors(c: &mut Criterion) {
    let data: Vec<u8> = (0..(64usize << 20))
        .map(|i| ((i * 2654435761usize) >> 13) as u8)
        .collect();
    let mut g = c.benchmark_group("processor on 64 MiB in memory");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    let mut run = |name: &str, make: &dyn Fn() -> Box<dyn Processor>| {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut p = make();
                for (i, piece) in data.chunks(256 << 10).enumerate() {
                    p.process(&Chunk::new((i * (256 << 10)) as u64, piece))
                        .expect("process");
                }
            })
        });
    };
    run("null", &|| Box::new(ByteCount::default()));
    run("count", &|| Box::new(LineCount::default()));
    for &a in Algorithm::ALL {
        run(a.name(), &move || Box::new(Checksum::new(a)));
    }
    g.finish();
}

criterion_group!(benches, engine_vs_sync, processors);
criterion_main!(benches);
