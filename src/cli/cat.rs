//! `ringread cat`: files to standard output, in order.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use ringread::processor::{from_fn, CopyTo};
use ringread::{Chunk, Error, Processor};

use super::inputs::InputArgs;
use super::{complain, stdout_raw, Ctx};

#[derive(Debug, Args)]
pub(crate) struct CatArgs {
    /// Files ("-" or none: standard input)
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    pub(crate) ranges: super::ranges::RangeArgs,
}

pub(crate) fn run(ctx: &Ctx, a: CatArgs) -> anyhow::Result<ExitCode> {
    // One file at a time: the bytes go straight to standard output, in order.
    let super::inputs::Gathered { names, mut ok, .. } = ctx.names(a.files, &a.inputs)?;
    if ctx.can_read_many(&names) {
        // Ranges of several files: one call, reads of every file in flight together; each file's
        // ranges are written whole, in the order of the files.
        let stdout = stdout_raw();
        let mut write_error = None;
        // Once standard output failed, nothing more is written: every file after it ends at once.
        let failed = AtomicBool::new(false);
        let read = ctx.ranges_many(
            &names,
            |_| {
                let mut copy = CopyTo::new(&*stdout);
                let failed = &failed;
                from_fn(move |c: &Chunk<'_>| {
                    if failed.load(Ordering::Relaxed) {
                        return Err(io::Error::from_raw_os_error(libc::EPIPE));
                    }
                    copy.process(c)
                        .inspect_err(|_| failed.store(true, Ordering::Relaxed))
                })
            },
            |_, result| match result {
                Ok(_) => {}
                Err((Error::Process { source, .. }, _)) => {
                    write_error.get_or_insert(source);
                }
                Err((e, _)) => {
                    ok = false;
                    complain(&e);
                }
            },
        );
        if let Some(read) = read {
            if let Some(source) = write_error {
                anyhow::bail!("write error: {}", super::reason(&source));
            }
            read.unwrap_or_else(|e| super::stop(e));
            return Ok(super::exit_code(ok));
        }
    }
    for name in names {
        let mut stdout = stdout_raw();
        let mut copy = CopyTo::new(&mut *stdout);
        match ctx.read(&name, &mut copy) {
            Ok(_) => {}
            // Standard output failed: nothing more can be written, as with cat.
            Err(Error::Process { source, .. }) => {
                anyhow::bail!("write error: {}", super::reason(&source));
            }
            Err(e) => {
                ok = false;
                complain(&e);
            }
        }
    }
    Ok(super::exit_code(ok))
}
