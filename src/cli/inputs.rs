//! Which files a command reads: those named, the lines of `--files-from`/`--files0-from`, and with
//! `-r` everything below the directories named, in a deterministic order.

use std::fs::Metadata;
use std::io::{BufRead, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

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

/// What [`gather`] found.
pub(crate) struct Gathered {
    /// The names to read, in order.
    pub names: Vec<PathBuf>,
    /// For each name, whether a walk found it a regular file (then it is read without a `statx`
    /// first: `ringread::Input::regular`); empty where nothing was walked.
    pub regular: Vec<bool>,
    /// Whether every directory could be walked and every name in a list was valid.
    pub ok: bool,
    /// The names of a list that were skipped (empty, or "-" in a list read from standard input):
    /// `wc` counts them among its inputs when it decides whether to print a total.
    pub skipped: usize,
    /// Whether the list was read as a stream (not a regular file of at most 10 MiB): `wc` then
    /// cannot size its columns ahead and prints them 1 wide.
    pub streamed: bool,
}

/// The names to read, in order, and whether every directory could be walked and every list read.
/// `say` tells what is skipped (the caller shows it under -v); `fail` reports what went wrong.
pub(crate) fn gather(
    files: Vec<PathBuf>,
    a: &InputArgs,
    say: &mut dyn FnMut(String),
    fail: &mut dyn FnMut(String),
) -> anyhow::Result<Gathered> {
    let mut gathered = match a.files_from.as_ref().or(a.files0_from.as_ref()) {
        Some(list) => {
            if !files.is_empty() {
                anyhow::bail!(
                    "file operands cannot be combined with --files-from or --files0-from"
                );
            }
            read_list(list, a.files0_from.is_some(), fail)?
        }
        None => Gathered {
            names: files,
            regular: Vec::new(),
            ok: true,
            skipped: 0,
            streamed: false,
        },
    };
    if !a.recursive {
        return Ok(gathered);
    }
    let names = std::mem::take(&mut gathered.names);
    let mut out = Vec::with_capacity(names.len());
    let mut regular = Vec::with_capacity(names.len());
    for top in names {
        if top.as_os_str() == "-" || !top.is_dir() {
            out.push(top);
            regular.push(false);
            continue;
        }
        if !walk(&top, a.dereference, &mut out, say, fail) {
            gathered.ok = false;
        }
        // Every name the walk added is a regular file (its entry type said so).
        regular.resize(out.len(), true);
    }
    gathered.names = out;
    gathered.regular = regular;
    Ok(gathered)
}

/// Opens the list `list` ("-": standard input): the reader, and what the file is.
fn open_list(list: &Path) -> anyhow::Result<(Box<dyn Read>, std::io::Result<Metadata>)> {
    if list.as_os_str() == "-" {
        // SAFETY: fd 0 stays open; ManuallyDrop never closes it.
        let fd0 = std::mem::ManuallyDrop::new(unsafe {
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0)
        });
        return Ok((Box::new(std::io::stdin().lock()), fd0.metadata()));
    }
    let f = std::fs::File::open(list).map_err(|e| {
        anyhow::anyhow!(
            "cannot open {} for reading: {}",
            list.display(),
            super::reason(&e)
        )
    })?;
    let meta = f.metadata();
    Ok((Box::new(f), meta))
}

/// The names in the list `list` ("-": standard input), one a line, or each ended by a NUL if
/// `nul`; an empty name (or "-" in a list read from standard input) is reported and skipped.
fn read_list(list: &Path, nul: bool, fail: &mut dyn FnMut(String)) -> anyhow::Result<Gathered> {
    let from_stdin = list.as_os_str() == "-";
    let (mut input, meta) = open_list(list)?;
    let mut g = Gathered {
        names: Vec::new(),
        regular: Vec::new(),
        ok: true,
        skipped: 0,
        // As wc: a list it can read whole ahead (a regular file of at most 10 MiB), or a stream.
        streamed: !meta.is_ok_and(|m| m.is_file() && m.len() <= 10 << 20),
    };
    let shown = super::quotef(list.as_os_str());
    let sep = if nul { 0 } else { b'\n' };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, &mut input);
    let mut name = Vec::new();
    let mut item = 0usize;
    loop {
        name.clear();
        if reader.read_until(sep, &mut name)? == 0 {
            break;
        }
        item += 1;
        if name.last() == Some(&sep) {
            name.pop();
        }
        if from_stdin && name == b"-" {
            // Standard input is the list: it cannot be read again (wc's message).
            fail("when reading file names from stdin, no file name of '-' allowed".into());
            g.ok = false;
            g.skipped += 1;
            continue;
        }
        if name.is_empty() {
            // As wc: skipped, said with the list's name and the item's number, and the exit
            // status says so.
            fail(format!("{shown}:{item}: invalid zero-length file name"));
            g.ok = false;
            g.skipped += 1;
            continue;
        }
        g.names
            .push(PathBuf::from(std::ffi::OsString::from_vec(name.clone())));
    }
    Ok(g)
}

/// Adds the regular files below the directory `top` to `out` in walk order (each directory's
/// entries sorted by name; symbolic links followed if `dereference`), saying what it skips and
/// reporting what it cannot walk. Whether it could walk everything.
fn walk(
    top: &Path,
    dereference: bool,
    out: &mut Vec<PathBuf>,
    say: &mut dyn FnMut(String),
    fail: &mut dyn FnMut(String),
) -> bool {
    let mut ok = true;
    let walk = walkdir::WalkDir::new(top)
        .follow_links(dereference)
        .sort_by_file_name();
    for entry in walk {
        match entry {
            Ok(e) if e.file_type().is_file() => out.push(e.into_path()),
            Ok(e) if e.file_type().is_dir() => {}
            Ok(e) if e.file_type().is_symlink() => say(format!(
                "{}: a symbolic link, skipped (-L follows it)",
                super::quotef(e.path().as_os_str())
            )),
            Ok(e) => say(format!(
                "{}: not a regular file (a FIFO, socket or device), skipped",
                super::quotef(e.path().as_os_str())
            )),
            Err(e) => {
                ok = false;
                let path = e
                    .path()
                    .map(|p| super::quotef(p.as_os_str()))
                    .unwrap_or_default();
                let why = match (e.loop_ancestor(), e.io_error()) {
                    (Some(a), _) => {
                        format!(
                            "a file system loop back to {}",
                            super::quotef(a.as_os_str())
                        )
                    }
                    (None, Some(io)) => super::reason(io),
                    (None, None) => e.to_string(),
                };
                fail(format!("{path}: {why}"));
            }
        }
    }
    ok
}
