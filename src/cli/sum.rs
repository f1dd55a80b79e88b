//! `ringread sum`: checksums as sha256sum, b3sum and xxhsum print them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use ringread::processor::{blake3_parallel, Algorithm, Checksum, Whole};
use ringread::sumfile::format_line;

use super::inputs::InputArgs;
use super::{bytes_of, complain, Ctx, Output, DEFAULT_ALGORITHM};

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
    #[arg(long, requires = "check", overrides_with_all = ["status", "warn"])]
    quiet: bool,
    /// With --check: print nothing; the exit status tells
    #[arg(long, requires = "check", overrides_with_all = ["quiet", "warn"])]
    status: bool,
    /// With --check: do not fail or report for files that are missing
    #[arg(long, requires = "check")]
    ignore_missing: bool,
    /// With --check: fail for improperly formatted lines
    #[arg(long, requires = "check")]
    strict: bool,
    /// With --check: warn about improperly formatted lines (of --quiet, --status and --warn, the
    /// last given wins, as with sha256sum)
    #[arg(short, long, requires = "check", overrides_with_all = ["quiet", "status"])]
    warn: bool,
    /// Files ("-" or none: standard input)
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    inputs: InputArgs,
}

impl SumArgs {
    /// `--quiet` or `--status` of `-c`: nothing but what was asked for, so no progress either.
    pub(crate) fn silent(&self) -> bool {
        self.quiet || self.status
    }
}

fn parse_algo(s: &str) -> Result<Algorithm, String> {
    s.parse().map_err(|e: ringread::Error| e.to_string())
}

pub(crate) fn run(ctx: &Ctx, a: SumArgs) -> anyhow::Result<ExitCode> {
    if a.check {
        if a.inputs.is_set() {
            anyhow::bail!(
                "--check reads check lists: -r, --files-from and --files0-from do not apply"
            );
        }
        return super::check::run(ctx, &a.into());
    }
    let algo = a.algo.unwrap_or(DEFAULT_ALGORITHM);
    let super::inputs::Gathered { names, mut ok, .. } = ctx.names(a.files, &a.inputs)?;
    let mut out = Output::new();
    let mut write = |name: &Path, hex: ringread::Result<String>| -> std::io::Result<()> {
        match hex {
            Ok(hex) => out.line(&format_line(algo, &hex, bytes_of(name), a.tag)),
            Err(e) => {
                ok = false;
                out.flush()?;
                complain(&e);
                Ok(())
            }
        }
    };
    if ctx.can_read_many(&names) {
        // Many files in flight at once; lines in input order.
        let mut failed = None;
        let mut keep = |name: &Path, hex| {
            if failed.is_none() {
                failed = write(name, hex).err();
            }
        };
        let r = if algo == Algorithm::Blake3 {
            ctx.many(
                &names,
                |_| blake3_parallel(),
                |n, r| keep(n, r.map(|mut s| s.hex()).map_err(|(e, _)| e)),
            )
        } else {
            ctx.many(
                &names,
                |_| (Whole, Checksum::new(algo)),
                |n, r| keep(n, r.map(|s| s.hex()).map_err(|(e, _)| e)),
            )
        };
        if let Err(e) = r {
            out.flush()?;
            super::stop(e);
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
    } else {
        for name in names {
            write(&name, ctx.digest(&name, algo))?;
        }
    }
    out.flush()?;
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
