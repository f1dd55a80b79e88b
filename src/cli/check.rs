//! `ringread sum --check`: verifies checksum lines with the messages and exit status of `sha256sum -c`.
//!
//! Each list is read whole first; then its files are read many at once (as `sum` reads its
//! operands), and the messages come in list order, each as its file's turn comes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ringread::processor::{blake3_parallel, Algorithm, Checksum, Whole};
use ringread::sumfile::{escape, parse_line, Entry};

use super::sum::CheckArgs;
use super::{files_or_stdin, quotef, Ctx, Output, DEFAULT_ALGORITHM};

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line of a list that says something: a checksum line, one that is not (its number), or the
/// error that stopped reading the list.
enum Item {
    Entry(Entry),
    BadLine(usize),
    ListError(io::Error),
}

/// What one list came to.
#[derive(Default)]
struct Tally {
    bad_lines: usize,
    unreadable: usize,
    mismatched: usize,
    verified: usize,
}

/// The messages of one list, said in list order.
struct Said<'a> {
    a: &'a CheckArgs,
    shown: &'a str,
    algo: Algorithm,
    items: &'a [Item],
    next: usize,
    tally: Tally,
    list_failed: bool,
    out: &'a mut Output,
}

impl Said<'_> {
    /// Says the items before the next checksum line (improperly formatted lines under `--warn`,
    /// the list's read error); returns that line's place, if there is one.
    fn up_to_entry(&mut self) -> io::Result<Option<usize>> {
        while let Some(item) = self.items.get(self.next) {
            match item {
                Item::Entry(_) => return Ok(Some(self.next)),
                Item::BadLine(n) => {
                    self.tally.bad_lines += 1;
                    if self.a.warn {
                        self.out.flush()?;
                        eprintln!(
                            "ringread: {}: {n}: improperly formatted {} checksum line",
                            self.shown,
                            self.algo.tag()
                        );
                    }
                }
                Item::ListError(e) => {
                    self.out.flush()?;
                    eprintln!("ringread: {}: {}", self.shown, super::reason(e));
                    self.list_failed = true;
                }
            }
            self.next += 1;
        }
        Ok(None)
    }

    /// Says the verdict on the next checksum line, whose file's digest (or error) is `digest`.
    fn entry(&mut self, digest: ringread::Result<String>) -> io::Result<()> {
        let Some(k) = self.up_to_entry()? else {
            return Ok(());
        };
        self.next += 1;
        let Item::Entry(entry) = &self.items[k] else {
            unreachable!("up_to_entry stops at entries")
        };
        let verdict: &[u8] = match digest {
            Ok(hex) => {
                self.tally.verified += 1;
                if hex == entry.hex {
                    if self.a.quiet {
                        return Ok(());
                    }
                    b": OK\n"
                } else {
                    self.tally.mismatched += 1;
                    b": FAILED\n"
                }
            }
            Err(e) => {
                let missing = e
                    .io_error()
                    .is_some_and(|io| io.kind() == io::ErrorKind::NotFound);
                if missing && self.a.ignore_missing {
                    return Ok(());
                }
                self.tally.unreadable += 1;
                if !self.a.status {
                    self.out.flush()?;
                    super::complain(&e);
                }
                b": FAILED open or read\n"
            }
        };
        if self.a.status {
            return Ok(());
        }
        // Names with a newline are shown escaped, with a leading backslash, as sha256sum does.
        let (prefix, shown_name) = if entry.name.contains(&b'\n') {
            (&b"\\"[..], escape(&entry.name))
        } else {
            (&b""[..], entry.name.clone())
        };
        let mut l = Vec::with_capacity(shown_name.len() + 24);
        l.extend_from_slice(prefix);
        l.extend_from_slice(&shown_name);
        l.extend_from_slice(verdict);
        self.out.line(&l)
    }
}

/// Reads a list's whole text into its items.
fn parse(reader: Box<dyn Read>, algo: Algorithm) -> Vec<Item> {
    let mut lines = BufReader::new(reader);
    let mut items = Vec::new();
    let mut buf = Vec::new();
    let mut lineno = 0usize;
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                items.push(Item::ListError(e));
                break;
            }
        }
        lineno += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if line.first() == Some(&b'#') || line.is_empty() {
            continue;
        }
        items.push(match parse_line(line, algo) {
            Some(entry) => Item::Entry(entry),
            None => Item::BadLine(lineno),
        });
    }
    items
}

/// Reads the files the list names, many at once where they can be, and says each verdict in list
/// order.
fn verify(ctx: &Ctx, said: &mut Said<'_>) -> io::Result<()> {
    let entries: Vec<&Entry> = said
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Entry(e) => Some(e),
            _ => None,
        })
        .collect();
    let names: Vec<PathBuf> = entries
        .iter()
        .map(|e| PathBuf::from(std::ffi::OsStr::from_bytes(&e.name)))
        .collect();
    if !ctx.can_read_many(&names) {
        for (entry, name) in entries.iter().zip(&names) {
            said.entry(ctx.digest(name, entry.algorithm))?;
        }
        return Ok(());
    }
    let mut failed = None;
    let mut keep = |digest| {
        if failed.is_none() {
            failed = said.entry(digest).err();
        }
    };
    let r = if entries.iter().all(|e| e.algorithm == Algorithm::Blake3) {
        ctx.many(
            &names,
            |_| blake3_parallel(),
            |_: &Path, r| keep(r.map(|mut s| s.hex()).map_err(|(e, _)| e)),
        )
    } else {
        ctx.many(
            &names,
            |i| (Whole, Checksum::new(entries[i].algorithm)),
            |_: &Path, r| keep(r.map(|s| s.hex()).map_err(|(e, _)| e)),
        )
    };
    if let Err(e) = r {
        // The verdicts said so far go out first.
        said.out.flush()?;
        super::stop(e);
    }
    failed.map_or(Ok(()), Err)
}

pub(crate) fn run(ctx: &Ctx, a: &CheckArgs) -> anyhow::Result<ExitCode> {
    let algo = a.algo.unwrap_or(DEFAULT_ALGORITHM);
    let mut ok = true;
    let mut out = Output::new();
    for list in files_or_stdin(a.files.clone()) {
        let shown = if list.as_os_str() == "-" {
            quotef("standard input".as_ref())
        } else {
            quotef(list.as_os_str())
        };
        let reader: Box<dyn Read> = if list.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            match File::open(&list) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    out.flush()?;
                    eprintln!("ringread: {shown}: {}", super::reason(&e));
                    ok = false;
                    continue;
                }
            }
        };
        let items = parse(reader, algo);
        let good_lines = items.iter().filter(|i| matches!(i, Item::Entry(_))).count();
        let mut said = Said {
            a,
            shown: &shown,
            algo,
            items: &items,
            next: 0,
            tally: Tally::default(),
            list_failed: false,
            out: &mut out,
        };
        verify(ctx, &mut said)?;
        said.up_to_entry()?;
        let (tally, list_failed) = (said.tally, said.list_failed);
        out.flush()?;
        if list_failed {
            ok = false;
            continue;
        }
        if good_lines == 0 {
            eprintln!("ringread: {shown}: no properly formatted checksum lines found");
            ok = false;
            continue;
        }
        if !a.status {
            if tally.bad_lines > 0 {
                eprintln!(
                    "ringread: WARNING: {} improperly formatted",
                    plural(tally.bad_lines, "line is", "lines are")
                );
            }
            if tally.unreadable > 0 {
                eprintln!(
                    "ringread: WARNING: {} could not be read",
                    plural(tally.unreadable, "listed file", "listed files")
                );
            }
            if tally.mismatched > 0 {
                eprintln!(
                    "ringread: WARNING: {} did NOT match",
                    plural(tally.mismatched, "computed checksum", "computed checksums")
                );
            }
        }
        if a.ignore_missing && tally.verified == 0 {
            if !a.status {
                eprintln!("ringread: {shown}: no file was verified");
            }
            ok = false;
        }
        if tally.mismatched > 0 || tally.unreadable > 0 || (a.strict && tally.bad_lines > 0) {
            ok = false;
        }
    }
    out.flush()?;
    Ok(super::exit_code(ok))
}
