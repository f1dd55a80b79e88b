//! `ringread count`: newline and byte counts with the numbers and layout of `wc -lc`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use ringread::processor::{LineCount, NewlinePrepare};
use ringread::Error;

use super::inputs::InputArgs;
use super::{bytes_of, complain, Ctx, Output};

#[derive(Debug, Args)]
pub(crate) struct CountArgs {
    /// Files ("-" or none: standard input)
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    pub(crate) ranges: super::ranges::RangeArgs,
}

/// The column width `wc` uses: the digits of the sum of the regular files' sizes, at least 7 when
/// any input is not a regular file (a pipe's size is unknown); files that cannot be stat'ed count
/// for nothing.
fn column_width(names: &[PathBuf]) -> usize {
    let stat = |p: &Path| {
        if p.as_os_str() == "-" {
            // SAFETY: fd 0 stays open; ManuallyDrop never closes it.
            let f = std::mem::ManuallyDrop::new(unsafe {
                <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0)
            });
            f.metadata()
        } else {
            std::fs::metadata(p)
        }
    };
    let stats: Vec<_> = names.iter().map(|p| stat(p)).collect();
    let mut min = 1;
    let mut total: u64 = 0;
    for m in stats.iter().flatten() {
        let ft = m.file_type();
        if ft.is_file() {
            total += m.len();
        } else {
            min = 7;
        }
    }
    total.to_string().len().max(min)
}

fn line(counts: LineCount, width: usize, name: Option<&[u8]>) -> Vec<u8> {
    let mut l = format!("{:>w$} {:>w$}", counts.lines, counts.bytes, w = width).into_bytes();
    if let Some(n) = name {
        l.push(b' ');
        l.extend_from_slice(n);
    }
    l.push(b'\n');
    l
}

pub(crate) fn run(ctx: &Ctx, a: CountArgs) -> anyhow::Result<ExitCode> {
    // Named files, and a connection (named by its address, as `sum` names it), show their names.
    let named = !a.files.is_empty() || ctx.reads_connection() || a.inputs.is_set();
    let super::inputs::Gathered {
        names: files,
        regular,
        mut ok,
        skipped,
        streamed,
    } = ctx.names(a.files, &a.inputs)?;
    // A connection is a stream, as a pipe on standard input is: wc's minimum width of 7. Names
    // listed in a stream (a pipe) cannot be sized ahead: wc's width of 1.
    let width = if ctx.reads_connection() {
        7
    } else if streamed {
        1
    } else {
        column_width(&files)
    };
    let mut out = Output::new();
    let mut total = LineCount::default();
    let mut failed = None;
    let mut write = |name: &Path, counted: Result<LineCount, (Error, LineCount)>| {
        let (counts, print) = match counted {
            Ok(c) => (c, true),
            Err((e, c)) => {
                ok = false;
                if let Err(e) = out.flush() {
                    failed.get_or_insert(e);
                }
                complain(&e);
                // Like wc: a file that was opened shows what was counted before the error.
                let print = match &e {
                    Error::Read { .. } => true,
                    Error::Open { source, .. } => source.raw_os_error() == Some(libc::EISDIR),
                    _ => false,
                };
                (c, print)
            }
        };
        if print {
            // As wc: a name with a newline is quoted (`'a'$'\n''b'`), so the line stays one line.
            let quoted;
            let shown = if bytes_of(name).contains(&b'\n') {
                quoted = super::quotef(name.as_os_str());
                quoted.as_bytes()
            } else {
                bytes_of(name)
            };
            if let Err(e) = out.line(&line(counts, width, named.then_some(shown))) {
                failed.get_or_insert(e);
            }
            total.lines += counts.lines;
            total.bytes += counts.bytes;
        }
    };
    if ctx.can_read_many(&files) {
        // Ranges (`--range`) of several files: one call, the reads of every file in flight together.
        let r = ctx
            .ranges_many(&files, |_| LineCount::default(), |name, r| write(name, r))
            .unwrap_or_else(|| {
                ctx.many(
                    &files,
                    &regular,
                    |_| (NewlinePrepare, LineCount::default()),
                    |name, r| write(name, r),
                )
            });
        if let Err(e) = r {
            out.flush()?;
            super::stop(e);
        }
    } else {
        for name in &files {
            let mut counts = LineCount::default();
            let r = ctx.read_split(name, &NewlinePrepare, &mut counts);
            write(name, r.map(|_| counts).map_err(|e| (e, counts)));
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    // As wc: a total when there was more than one input, skipped names in a list included.
    if files.len() + skipped > 1 {
        out.line(&line(total, width, Some(b"total")))?;
    }
    out.flush()?;
    Ok(super::exit_code(ok))
}
