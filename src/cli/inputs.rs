//! Which files a command reads: those named, the lines of `--files-from`/`--files0-from`, and with
//! `-r` everything below the directories named, in a deterministic order.

use std::io::{BufRead, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use clap::Args;

/// Where the names come from (sum, count, cat).
#[derive(Debug, Args, Default)]
pub(crate) struct InputArgs {
    /// Read the files below each directory given, in order (each directory's entries sorted by
    /// name, byte by byte); FIFOs, sockets and devices met there are skipped (said under -v)
    #[arg(help_heading = "Inputs", short, long)]
    recursive: bool,
    /// With -r: follow symbolic links (loops are reported); without it they are skipped
    #[arg(help_heading = "Inputs", short = 'L', long, requires = "recursive")]
    dereference: bool,
    /// Read the names of the files from FILE, one a line ("-": standard input)
    #[arg(
        help_heading = "Inputs",
        long,
        value_name = "FILE",
        conflicts_with = "files0_from"
    )]
    files_from: Option<PathBuf>,
    /// Read the names of the files from FILE, each ended by a NUL, as `find -print0` writes
    /// them ("-": standard input)
    #[arg(help_heading = "Inputs", long, value_name = "FILE")]
    files0_from: Option<PathBuf>,
}

impl InputArgs {
    /// Whether the names come from anywhere but the command line.
    pub(crate) fn is_set(&self) -> bool {
        self.recursive || self.files_from.is_some() || self.files0_from.is_some()
    }
}

/// The names to read, in order, and whether every directory could be walked and every list read.
/// `say` tells what is skipped (the caller shows it under -v); `fail` reports what went wrong.
pub(crate) fn gather(
    files: Vec<PathBuf>,
    a: &InputArgs,
    say: &mut dyn FnMut(String),
    fail: &mut dyn FnMut(String),
) -> anyhow::Result<(Vec<PathBuf>, bool)> {
    let mut names = files;
    let mut ok = true;
    if let Some(list) = a.files_from.as_ref().or(a.files0_from.as_ref()) {
        if !names.is_empty() {
            anyhow::bail!("file operands cannot be combined with --files-from or --files0-from");
        }
        let mut input: Box<dyn Read> = if list.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::fs::File::open(list).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} for reading: {}",
                    list.display(),
                    super::reason(&e)
                )
            })?)
        };
        let sep = if a.files0_from.is_some() { 0 } else { b'\n' };
        let mut reader = std::io::BufReader::with_capacity(1 << 16, &mut input);
        let mut name = Vec::new();
        loop {
            name.clear();
            if reader.read_until(sep, &mut name)? == 0 {
                break;
            }
            if name.last() == Some(&sep) {
                name.pop();
            }
            if name.is_empty() {
                // wc: "invalid zero-length file name"; skipped, and the exit status says so.
                fail(format!("{}: invalid zero-length file name", list.display()));
                ok = false;
                continue;
            }
            names.push(PathBuf::from(std::ffi::OsString::from_vec(name.clone())));
        }
    }
    if !a.recursive {
        return Ok((names, ok));
    }
    let mut out = Vec::with_capacity(names.len());
    for top in names {
        if top.as_os_str() == "-" || !top.is_dir() {
            out.push(top);
            continue;
        }
        let walk = walkdir::WalkDir::new(&top)
            .follow_links(a.dereference)
            .sort_by_file_name();
        for entry in walk {
            match entry {
                Ok(e) if e.file_type().is_file() => out.push(e.into_path()),
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) if e.file_type().is_symlink() => say(format!(
                    "{}: a symbolic link, skipped (-L follows it)",
                    e.path().display()
                )),
                Ok(e) => say(format!(
                    "{}: not a regular file (a FIFO, socket or device), skipped",
                    e.path().display()
                )),
                Err(e) => {
                    ok = false;
                    let path = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let why = match (e.loop_ancestor(), e.io_error()) {
                        (Some(a), _) => format!("a file system loop back to {}", a.display()),
                        (None, Some(io)) => super::reason(io),
                        (None, None) => e.to_string(),
                    };
                    fail(format!("{path}: {why}"));
                }
            }
        }
    }
    Ok((out, ok))
}
