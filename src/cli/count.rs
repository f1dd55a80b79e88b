//! `ringread count`: newline and byte counts with the numbers and layout of `wc -lc`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use ringread::processor::{LineCount, NewlinePrepare};
use ringread::Error;

use super::{bytes_of, complain, Ctx};

#[derive(Debug, Args)]
pub(crate) struct CountArgs {
    /// Files ("-" or none: standard input)
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
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
    let named = !a.files.is_empty() || ctx.reads_connection();
    let files = ctx.inputs(a.files)?;
    // A connection is a stream, as a pipe on standard input is: wc's minimum width of 7.
    let width = if ctx.reads_connection() {
        7
    } else {
        column_width(&files)
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut total = LineCount::default();
    let mut ok = true;
    for name in &files {
        let mut counts = LineCount::default();
        let shown = named.then(|| bytes_of(name));
        let print = match ctx.read_split(name, &NewlinePrepare, &mut counts) {
            Ok(_) => true,
            Err(e) => {
                ok = false;
                complain(&e);
                // Like wc: a file that was opened shows what was counted before the error.
                match &e {
                    Error::Read { .. } => true,
                    Error::Open { source, .. } => source.raw_os_error() == Some(libc::EISDIR),
                    _ => false,
                }
            }
        };
        if print {
            out.write_all(&line(counts, width, shown))?;
            out.flush()?;
            total.lines += counts.lines;
            total.bytes += counts.bytes;
        }
    }
    if files.len() > 1 {
        out.write_all(&line(total, width, Some(b"total")))?;
    }
    out.flush()?;
    Ok(super::exit_code(ok))
}
