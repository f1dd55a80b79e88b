//! `ringread bench`: every way of reading, side by side, on the same data.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ringread::bench::{self, BenchConfig, BenchSource, CacheMode, ProcessorKind};

use super::{parse_size_arg, ReadArgs};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// What to read: file (files), pipe or tcp (a child process writes --size bytes at full speed
    /// to a pipe, or to a TCP connection on 127.0.0.1)
    #[arg(long, value_name = "SOURCE", default_value = "file", value_parser = parse_source)]
    source: BenchSource,
    /// Files to read [default: a random file of --size bytes under $TMPDIR, removed afterwards]
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Size of the generated file (or of each run's stream)
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size_arg)]
    size: u64,
    /// Backends to compare, comma-separated [default: all: sync, pread-pool, tokio-fs, tokio-uring,
    /// mmap, uring, uring-fixed, uring-sqpoll, stream (the async stream interface); for --source
    /// pipe or tcp: sync, epoll, tokio, uring-recv, uring-multishot, uring-multishot-batch]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    backends: Vec<String>,
    /// What the timed runs do with the bytes: null, xxh3, crc32c, sha256, blake3 or count
    #[arg(long, value_name = "NAME", default_value = "null", value_parser = parse_processor)]
    processor: ProcessorKind,
    /// Cache state: warm, cold, direct or all
    #[arg(long, value_name = "STATE", default_value = "warm", value_parser = ["warm", "cold", "direct", "all"])]
    cache: String,
    /// Timed runs per backend and cache state
    #[arg(long, value_name = "N", default_value_t = 5)]
    runs: usize,
    /// Write the results as JSON to PATH ("-": standard output, the table then goes to standard error)
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a bar chart of the results as SVG to PATH
    #[arg(long, value_name = "PATH.svg")]
    plot: Option<PathBuf>,
}

fn parse_source(s: &str) -> Result<BenchSource, String> {
    s.parse()
}

fn parse_processor(s: &str) -> Result<ProcessorKind, String> {
    s.parse()
}

pub(crate) fn run(read: &ReadArgs, a: BenchArgs) -> anyhow::Result<ExitCode> {
    if a.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let caches = match a.cache.as_str() {
        "all" => vec![CacheMode::Warm, CacheMode::Cold, CacheMode::Direct],
        s => vec![s.parse::<CacheMode>().map_err(anyhow::Error::msg)?],
    };
    let known = a.source.methods();
    let methods = if a.backends.is_empty() {
        known.iter().map(|s| s.to_string()).collect()
    } else {
        a.backends
    };
    for m in &methods {
        if !known.contains(&m.as_str()) {
            anyhow::bail!("unknown backend '{m}' (expected {})", known.join(", "));
        }
    }
    if a.source != BenchSource::File && !a.files.is_empty() {
        anyhow::bail!(
            "--source {} generates its data; give no FILE",
            a.source.name()
        );
    }
    // Check the read options before any I/O.
    read.options()?;
    let config = BenchConfig {
        source: a.source,
        files: a.files,
        size: a.size,
        methods,
        processor: a.processor,
        caches,
        runs: a.runs,
        chunk_size: read
            .chunk_size
            .map(|c| usize::try_from(c).unwrap_or(usize::MAX)),
        depth: read.depth,
        threads: read.threads,
        cancel: super::interrupt_handle(),
    };
    let report = match bench::run(&config, &mut std::io::stderr()) {
        Err(ringread::Error::Interrupted { .. }) => return Ok(ExitCode::from(130)),
        other => other?,
    };
    let json_to_stdout = a.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if json_to_stdout {
        eprintln!("{report}");
    } else {
        println!("{report}");
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        if json_to_stdout {
            std::io::stdout().write_all(text.as_bytes())?;
        } else {
            std::fs::write(path, text).with_context(|| format!("{}", path.display()))?;
        }
    }
    if let Some(path) = &a.plot {
        bench::write_svg(&report, path)?;
    }
    Ok(ExitCode::SUCCESS)
}
