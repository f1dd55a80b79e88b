//! `ringread cat`: files to standard output, in order.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ringread::processor::CopyTo;
use ringread::Error;

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
