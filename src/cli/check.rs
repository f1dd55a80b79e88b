//! `ringread sum --check`: verifies checksum lines with the messages and exit status of the
//! algorithm's tool: `sha256sum -c` (coreutils 9.1), `b3sum -c` (1.2.0) or `xxhsum -c` (0.8.1).
//!
//! Each list is read whole first; then its files are read many at once (as `sum` reads its
//! operands), and the messages come in list order, each as its file's turn comes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ringread::processor::{Algorithm, Checksum};
use ringread::sumfile::{
    message_name, parse_b3sum_line, parse_line_in, parse_xxhsum_line, reverse_hex, Convention,
    Entry, ListState,
};

use super::hashing::{is_dir_error, HashSpec, Settings};
use super::{files_or_stdin, prog, quotef, Ctx, Output};

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the name of a checksum line stands for: what is read to check it.
enum Target {
    /// A file ("-": standard input, read as `sum -` reads it).
    Path(PathBuf),
    /// Bytes already read: the rest of a list read from standard input (see [`resolve`]).
    Bytes(Vec<u8>),
}

/// The one place where the name of a checksum line becomes what is read to check it, by the
/// rules of the list's tool; `None`: the line is improperly formatted after all. `rest`, for a
/// list read from standard input, is what follows the line there:
///
/// - sha256sum: `-` is standard input, but in a list read from standard input the line is
///   improperly formatted;
/// - b3sum: `-` is standard input (read again: what the list left of it);
/// - xxhsum: `stdin` is standard input, even with a file of that name in the directory; in a list
///   read from standard input, that is the rest of the list (xxhsum reads both through one
///   `FILE`), which then ends there. `-` is a file of that name.
fn resolve(conv: Convention, name: &[u8], rest: Option<&[u8]>) -> Option<Target> {
    let path = |n: &[u8]| Target::Path(PathBuf::from(std::ffi::OsStr::from_bytes(n)));
    Some(match (conv, name, rest) {
        (Convention::Coreutils, b"-", Some(_)) => return None,
        (Convention::Xxhsum, b"stdin", Some(rest)) => Target::Bytes(rest.to_vec()),
        (Convention::Xxhsum, b"stdin", None) => path(b"-"),
        (Convention::Xxhsum, b"-", _) => path(b"./-"),
        _ => path(name),
    })
}

/// One line of a list that says something.
enum Item {
    /// A checksum line: what it says, its number, its name as the list writes it (b3sum repeats
    /// that in its messages), and what is read to check it.
    Entry(Entry, usize, Vec<u8>, Target),
    /// A line that is not a checksum line: its number and, for b3sum, why.
    BadLine(usize, Option<&'static str>),
    /// The error that stopped reading the list (`fatal`: it stops the whole run, as in b3sum).
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
    s: &'a Settings,
    conv: Convention,
    /// The list's name as messages show it.
    shown: &'a str,
    items: &'a [Item],
    next: usize,
    tally: Tally,
    list_failed: bool,
    out: &'a mut Output,
}

impl Said<'_> {
    /// Says the items before the next checksum line (improperly formatted lines, the list's read
    /// error); returns that line's place, if there is one.
    fn up_to_entry(&mut self) -> io::Result<Option<usize>> {
        while let Some(item) = self.items.get(self.next) {
            match item {
                Item::Entry(..) => return Ok(Some(self.next)),
                Item::BadLine(n, why) => {
                    self.tally.bad_lines += 1;
                    let (shown, tag) = (self.shown, self.s.algorithm().tag());
                    let line = match self.conv {
                        Convention::Coreutils if self.s.warn => Some(format!(
                            "{}: {shown}: {n}: improperly formatted {tag} checksum line",
                            prog()
                        )),
                        Convention::B3sum => {
                            Some(format!("{}: {}", prog(), why.unwrap_or("Invalid line")))
                        }
                        Convention::Xxhsum if self.s.warn => Some(format!(
                            "{shown}:{n}: Error: Improperly formatted checksum line."
                        )),
                        _ => None,
                    };
                    if let Some(line) = line {
                        self.out.flush()?;
                        super::progress::suspend(|| eprintln!("{line}"));
                    }
                }
                Item::ListError(e) => {
                    self.out.flush()?;
                    match self.conv {
                        Convention::Coreutils => super::progress::suspend(|| {
                            eprintln!("{}: {}: {}", prog(), self.shown, super::reason(e))
                        }),
                        Convention::B3sum | Convention::Xxhsum => fatal(&format!("Error: {e}")),
                    }
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
        let Item::Entry(entry, lineno, as_listed, _) = &self.items[k] else {
            unreachable!("up_to_entry stops at entries")
        };
        // The name in the verdict: b3sum repeats the list's text; the others escape a name with
        // a newline (coreutils) or show it as it is (xxhsum).
        let (prefix, name): (&[u8], Vec<u8>) = match self.conv {
            Convention::B3sum => (b"", as_listed.clone()),
            Convention::Xxhsum => (b"", entry.name.clone()),
            Convention::Coreutils => match message_name(&entry.name) {
                (n, true) => (b"\\", n),
                (n, false) => (b"", n),
            },
        };
        let verdict: Vec<u8> = match digest {
            Ok(hex) => {
                self.tally.verified += 1;
                if hex == entry.hex {
                    if self.s.quiet || self.s.status {
                        return Ok(());
                    }
                    b": OK\n".to_vec()
                } else {
                    self.tally.mismatched += 1;
                    if self.s.status {
                        return Ok(());
                    }
                    b": FAILED\n".to_vec()
                }
            }
            Err(e) => {
                let io = e.io_error();
                let missing = io.is_some_and(|io| io.kind() == io::ErrorKind::NotFound);
                if missing && self.s.ignore_missing {
                    return Ok(());
                }
                self.tally.unreadable += 1;
                match self.conv {
                    Convention::Coreutils => {
                        // Said even under --status, as sha256sum does.
                        self.out.flush()?;
                        super::complain(&e);
                        b": FAILED open or read\n".to_vec()
                    }
                    Convention::B3sum => {
                        let why = io.map_or_else(|| e.to_string(), |io| io.to_string());
                        format!(": FAILED ({why})\n").into_bytes()
                    }
                    Convention::Xxhsum => {
                        if io.is_some_and(is_dir_error)
                            || !matches!(e, ringread::Error::Open { .. })
                        {
                            self.out.flush()?;
                            fatal("Error: a failure occurred reading the input file.");
                        }
                        if self.s.status {
                            return Ok(());
                        }
                        let why = io.map_or_else(|| e.to_string(), super::reason);
                        let mut l = format!("{}:{lineno}: Could not open or read '", self.shown)
                            .into_bytes();
                        l.extend_from_slice(&entry.name);
                        l.extend_from_slice(format!("': {why}.\n").as_bytes());
                        return self.out.line(&l);
                    }
                }
            }
        };
        if self.s.status {
            return Ok(());
        }
        let mut l = Vec::with_capacity(name.len() + 24);
        l.extend_from_slice(prefix);
        l.extend_from_slice(&name);
        l.extend_from_slice(&verdict);
        self.out.line(&l)
    }
}

/// Ends the run at once with `message` on standard error and status 1, as b3sum and xxhsum do
/// for some errors (what was written to standard output before is kept).
fn fatal(message: &str) -> ! {
    super::progress::hide();
    eprintln!("{message}");
    std::process::exit(1);
}

/// The whole text of a list, and the error that stopped reading it, if one did.
fn slurp(reader: Box<dyn Read>) -> (Vec<u8>, Option<io::Error>) {
    let mut text = Vec::new();
    let mut reader = BufReader::new(reader);
    loop {
        match reader.read_until(b'\n', &mut text) {
            Ok(0) => return (text, None),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (text, Some(e)),
        }
    }
}

/// The algorithm of a list checked without `--algo`: the one its first checksum line names (a
/// BSD line's tag, xxhsum's `XXH3_` prefix), else BLAKE3 (ringread's default, b3sum's lines).
fn algorithm_of_list(text: &[u8]) -> Algorithm {
    let default = super::DEFAULT_ALGORITHM;
    let Some(line) = text
        .split(|&b| b == b'\n')
        .find(|l| !l.is_empty() && l.first() != Some(&b'#'))
    else {
        return default;
    };
    if std::str::from_utf8(line).is_ok_and(|l| parse_b3sum_line(l).is_ok()) {
        return default;
    }
    let named = |e: &Entry| {
        line.windows(e.algorithm.tag().len())
            .any(|w| w == e.algorithm.tag().as_bytes())
    };
    if let Some(e) = parse_line_in(line, default, &mut ListState::default()).filter(named) {
        return e.algorithm;
    }
    parse_xxhsum_line(line).map_or(default, |e| e.algorithm)
}

/// Reads a list's whole text into its items, by the rules of `conv` (`list_from_stdin`: the list
/// was read from standard input).
fn parse(text: &[u8], error: Option<io::Error>, s: &Settings, list_from_stdin: bool) -> Vec<Item> {
    let (conv, algo, little_endian) = (s.convention(), s.algorithm(), s.little_endian);
    let mut lines = text;
    let mut items = Vec::new();
    let mut buf = Vec::new();
    let mut lineno = 0usize;
    let mut state = ListState::default();
    loop {
        buf.clear();
        if lines.read_until(b'\n', &mut buf).unwrap_or(0) == 0 {
            break;
        }
        lineno += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let parsed = match conv {
            Convention::Coreutils => {
                if line.first() == Some(&b'#') || line.is_empty() {
                    continue;
                }
                match parse_line_in(line, algo, &mut state) {
                    Some(entry) => Ok((entry, Vec::new())),
                    None => Err(None),
                }
            }
            Convention::B3sum => {
                let Ok(text) = std::str::from_utf8(line) else {
                    items.push(Item::ListError(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "stream did not contain valid UTF-8",
                    )));
                    break;
                };
                match parse_b3sum_line(text) {
                    Ok(entry) => {
                        // The name as the list has it (escaped, with its `\`).
                        let listed = if line.first() == Some(&b'\\') {
                            [&b"\\"[..], &line[67..]].concat()
                        } else {
                            line[66..].to_vec()
                        };
                        Ok((entry, listed))
                    }
                    Err(why) => Err(Some(why.0)),
                }
            }
            Convention::Xxhsum => match parse_xxhsum_line(line) {
                Some(mut entry) => {
                    // --little-endian: plain lines hold little-endian digests (tagged ones say so).
                    if little_endian && !line.starts_with(b"XXH") {
                        entry.hex = reverse_hex(&entry.hex);
                    }
                    Ok((entry, Vec::new()))
                }
                None => Err(None),
            },
        };
        let (entry, listed) = match parsed {
            Ok(parsed) => parsed,
            Err(why) => {
                items.push(Item::BadLine(lineno, why));
                continue;
            }
        };
        let rest = list_from_stdin.then_some(lines);
        match resolve(conv, &entry.name, rest) {
            Some(target) => {
                // A list's rest read to check a line: no line follows.
                let ends = matches!(target, Target::Bytes(_));
                items.push(Item::Entry(entry, lineno, listed, target));
                if ends {
                    break;
                }
            }
            None => items.push(Item::BadLine(lineno, None)),
        }
    }
    if let Some(e) = error {
        items.push(Item::ListError(e));
    }
    items
}

/// Reads the files the list names, many at once where they can be, and says each verdict in list
/// order (those of bytes already in hand in their turn).
fn verify(ctx: &Ctx, said: &mut Said<'_>) -> io::Result<()> {
    let items = said.items;
    let entries: Vec<(&Entry, &Target)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Entry(e, _, _, t) => Some((e, t)),
            _ => None,
        })
        .collect();
    // The files to read, each with its entry's place.
    let (at, names): (Vec<usize>, Vec<PathBuf>) = entries
        .iter()
        .enumerate()
        .filter_map(|(k, (_, t))| match t {
            Target::Path(p) => Some((k, p.clone())),
            Target::Bytes(_) => None,
        })
        .unzip();
    let mut next = 0;
    if !ctx.can_read_many(&names) {
        for (&k, name) in at.iter().zip(&names) {
            say_in_hand(said, &entries, &mut next, k)?;
            said.entry(HashSpec::plain(entries[k].0.algorithm).read_one(ctx, name))?;
            next = k + 1;
        }
        return say_in_hand(said, &entries, &mut next, entries.len());
    }
    let mut failed = None;
    let mut j = 0;
    let spec = HashSpec::plain(entries[at[0]].0.algorithm);
    let r = spec.read_many(
        ctx,
        &names,
        &[],
        |i| entries[at[i]].0.algorithm,
        |_: &Path, digest| {
            let k = at[j];
            j += 1;
            if failed.is_none() {
                failed = say_in_hand(said, &entries, &mut next, k)
                    .and_then(|()| said.entry(digest))
                    .err();
                next = k + 1;
            }
        },
    );
    if let Err(e) = r {
        // The verdicts said so far go out first.
        said.out.flush()?;
        super::stop(e);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    say_in_hand(said, &entries, &mut next, entries.len())
}

/// Says the verdicts of the entries from `next` up to `upto` whose bytes are in hand (the rest of
/// a list read from standard input), hashed as they are.
fn say_in_hand(
    said: &mut Said<'_>,
    entries: &[(&Entry, &Target)],
    next: &mut usize,
    upto: usize,
) -> io::Result<()> {
    while *next < upto {
        if let (entry, Target::Bytes(bytes)) = entries[*next] {
            let mut sum = Checksum::new(entry.algorithm);
            sum.update(bytes);
            said.entry(Ok(sum.hex()))?;
        }
        *next += 1;
    }
    Ok(())
}

pub(crate) fn run(ctx: &Ctx, given: &Settings) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    let mut out = Output::new();
    for list in files_or_stdin(given.files.clone()) {
        let conv = given.convention();
        let stdin = list.as_os_str() == "-";
        let shown = match conv {
            Convention::Coreutils if stdin => quotef("standard input".as_ref()),
            Convention::Coreutils => quotef(list.as_os_str()),
            Convention::Xxhsum if stdin => "stdin".to_owned(),
            _ => list.display().to_string(),
        };
        let reader: Box<dyn Read> = if stdin {
            Box::new(io::stdin().lock())
        } else {
            match File::open(&list) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    out.flush()?;
                    match conv {
                        Convention::Coreutils => {
                            eprintln!("{}: {shown}: {}", prog(), super::reason(&e));
                        }
                        Convention::B3sum => fatal(&format!("Error: {e}")),
                        Convention::Xxhsum => {
                            eprintln!("Error: Could not open '{shown}': {}", super::reason(&e));
                        }
                    }
                    ok = false;
                    continue;
                }
            }
        };
        let (text, error) = slurp(reader);
        // Without --algo, the list says which tool's it is.
        let mut s = given.clone();
        s.algo = Some(given.algo.unwrap_or_else(|| algorithm_of_list(&text)));
        let s = &s;
        let conv = s.convention();
        let items = parse(&text, error, s, stdin);
        let good_lines = items
            .iter()
            .filter(|i| matches!(i, Item::Entry(..)))
            .count();
        let mut said = Said {
            s,
            conv,
            shown: &shown,
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
        let list_ok = match conv {
            Convention::Coreutils => coreutils_summary(s, &shown, good_lines, &tally),
            Convention::B3sum => {
                tally.bad_lines == 0 && tally.mismatched == 0 && tally.unreadable == 0
            }
            Convention::Xxhsum => xxhsum_summary(s, &shown, good_lines, &tally, &mut out)?,
        };
        ok &= list_ok;
    }
    out.flush()?;
    Ok(super::exit_code(ok))
}

/// sha256sum's closing warnings for one list (standard error); whether the list passed.
fn coreutils_summary(s: &Settings, shown: &str, good_lines: usize, tally: &Tally) -> bool {
    if good_lines == 0 {
        eprintln!(
            "{}: {shown}: no properly formatted checksum lines found",
            prog()
        );
        return false;
    }
    if !s.status {
        if tally.bad_lines > 0 {
            eprintln!(
                "{}: WARNING: {} improperly formatted",
                prog(),
                plural(tally.bad_lines, "line is", "lines are")
            );
        }
        if tally.unreadable > 0 {
            eprintln!(
                "{}: WARNING: {} could not be read",
                prog(),
                plural(tally.unreadable, "listed file", "listed files")
            );
        }
        if tally.mismatched > 0 {
            eprintln!(
                "{}: WARNING: {} did NOT match",
                prog(),
                plural(tally.mismatched, "computed checksum", "computed checksums")
            );
        }
    }
    let mut ok = true;
    if s.ignore_missing && tally.verified == 0 {
        if !s.status {
            eprintln!("{}: {shown}: no file was verified", prog());
        }
        ok = false;
    }
    ok && tally.mismatched == 0 && tally.unreadable == 0 && !(s.strict && tally.bad_lines > 0)
}

/// xxhsum's closing lines for one list (standard output, or standard error when nothing was
/// found); whether the list passed.
fn xxhsum_summary(
    s: &Settings,
    shown: &str,
    good_lines: usize,
    tally: &Tally,
    out: &mut Output,
) -> io::Result<bool> {
    if good_lines == 0 {
        out.flush()?;
        eprintln!("{shown}: no properly formatted xxHash checksum lines found");
        return Ok(false);
    }
    if !s.status {
        if tally.bad_lines > 0 {
            let l = plural(tally.bad_lines, "line is", "lines are");
            out.line(format!("{l} improperly formatted\n").as_bytes())?;
        }
        if tally.unreadable > 0 {
            let l = plural(tally.unreadable, "listed file", "listed files");
            out.line(format!("{l} could not be read\n").as_bytes())?;
        }
        if tally.mismatched > 0 {
            let l = plural(tally.mismatched, "computed checksum", "computed checksums");
            out.line(format!("{l} did NOT match\n").as_bytes())?;
        }
    }
    let mut ok = true;
    if s.ignore_missing && tally.verified == 0 {
        out.flush()?;
        if !s.status {
            eprintln!("{shown}: no file was verified");
        }
        ok = false;
    }
    Ok(ok && tally.mismatched == 0 && tally.unreadable == 0 && !(s.strict && tally.bad_lines > 0))
}
