//! `ringread sum`: checksums as sha256sum, b3sum and xxhsum print them.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ringread::processor::Algorithm;
use ringread::sumfile::format_line;

use super::{bytes_of, complain, Ctx, DEFAULT_ALGORITHM};

#[derive(Debug, Args)]
pub(crate) struct SumArgs {
    /// sha256, blake3, xxh3, xxh128 or crc32c [default: blake3]
    #[arg(short, long, value_name = "ALGO", value_parser = parse_algo)]
    algo: Option<Algorithm>,
    /// BSD-style lines: `SHA256 (file) = hex`
    #[arg(long)]
    tag: bool,
    /// Read checksum lines from the FILEs and check them
    #[arg(short, long)]
    check: bool,
    /// With --check: do not print OK for each file that matches
    #[arg(long, requires = "check")]
    quiet: bool,
    /// With --check: print nothing; the exit status tells
    #[arg(long, requires = "check")]
    status: bool,
    /// With --check: do not fail or report for files that are missing
    #[arg(long, requires = "check")]
    ignore_missing: bool,
    /// With --check: fail for improperly formatted lines
    #[arg(long, requires = "check")]
    strict: bool,
    /// With --check: warn about improperly formatted lines
    #[arg(short, long, requires = "check")]
    warn: bool,
    /// Files ("-" or none: standard input)
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

fn parse_algo(s: &str) -> Result<Algorithm, String> {
    s.parse().map_err(|e: ringread::Error| e.to_string())
}

pub(crate) fn run(ctx: &Ctx, a: SumArgs) -> anyhow::Result<ExitCode> {
    if a.check {
        return super::check::run(ctx, &a.into());
    }
    let algo = a.algo.unwrap_or(DEFAULT_ALGORITHM);
    let mut ok = true;
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    for name in ctx.inputs(a.files)? {
        match ctx.digest(&name, algo) {
            Ok(hex) => {
                stdout.write_all(&format_line(algo, &hex, bytes_of(&name), a.tag))?;
                // Line by line, as the standard tools do, so a consumer sees each as it is done.
                stdout.flush()?;
            }
            Err(e) => {
                ok = false;
                complain(&e);
            }
        }
    }
    Ok(super::exit_code(ok))
}

/// The `--check` settings.
pub(crate) struct CheckArgs {
    pub algo: Option<Algorithm>,
    pub quiet: bool,
    pub status: bool,
    pub ignore_missing: bool,
    pub strict: bool,
    pub warn: bool,
    pub files: Vec<PathBuf>,
}

impl From<SumArgs> for CheckArgs {
    fn from(a: SumArgs) -> Self {
        CheckArgs {
            algo: a.algo,
            quiet: a.quiet,
            status: a.status,
            ignore_missing: a.ignore_missing,
            strict: a.strict,
            warn: a.warn,
            files: a.files,
        }
    }
}
