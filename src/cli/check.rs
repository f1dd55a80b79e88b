//! `ringread sum --check`: verifies checksum lines with the messages and exit status of `sha256sum -c`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use ringread::sumfile::{escape, parse_line};

use super::sum::CheckArgs;
use super::{files_or_stdin, quotef, Ctx, DEFAULT_ALGORITHM};

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(crate) fn run(ctx: &Ctx, a: &CheckArgs) -> anyhow::Result<ExitCode> {
    let algo = a.algo.unwrap_or(DEFAULT_ALGORITHM);
    let mut ok = true;
    let mut stdout = io::stdout().lock();
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
                    eprintln!("ringread: {shown}: {}", super::reason(&e));
                    ok = false;
                    continue;
                }
            }
        };
        let mut lines = BufReader::new(reader);
        let (mut bad_lines, mut unreadable, mut mismatched, mut good_lines, mut verified) =
            (0usize, 0usize, 0usize, 0usize, 0usize);
        let mut buf = Vec::new();
        let mut lineno = 0usize;
        let mut read_failed = false;
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("ringread: {shown}: {}", super::reason(&e));
                    ok = false;
                    read_failed = true;
                    break;
                }
            }
            lineno += 1;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if line.first() == Some(&b'#') || line.is_empty() {
                continue;
            }
            let Some(entry) = parse_line(line, algo) else {
                bad_lines += 1;
                if a.warn {
                    eprintln!(
                        "ringread: {shown}: {lineno}: improperly formatted {} checksum line",
                        algo.tag()
                    );
                }
                continue;
            };
            good_lines += 1;
            let name = PathBuf::from(std::ffi::OsStr::from_bytes(&entry.name));
            // Names with a newline are shown escaped, with a leading backslash, as sha256sum does.
            let (prefix, shown_name) = if entry.name.contains(&b'\n') {
                (&b"\\"[..], escape(&entry.name))
            } else {
                (&b""[..], entry.name.clone())
            };
            let verdict: &[u8] = match ctx.digest(&name, entry.algorithm) {
                Ok(hex) => {
                    verified += 1;
                    if hex == entry.hex {
                        if a.quiet {
                            continue;
                        }
                        b": OK\n"
                    } else {
                        mismatched += 1;
                        b": FAILED\n"
                    }
                }
                Err(e) => {
                    let missing = e
                        .io_error()
                        .is_some_and(|io| io.kind() == io::ErrorKind::NotFound);
                    if missing && a.ignore_missing {
                        continue;
                    }
                    unreadable += 1;
                    if !a.status {
                        super::complain(&e);
                    }
                    b": FAILED open or read\n"
                }
            };
            if !a.status {
                let mut l = Vec::with_capacity(shown_name.len() + 24);
                l.extend_from_slice(prefix);
                l.extend_from_slice(&shown_name);
                l.extend_from_slice(verdict);
                stdout.write_all(&l)?;
                stdout.flush()?;
            }
        }
        if read_failed {
            continue;
        }
        if good_lines == 0 {
            eprintln!("ringread: {shown}: no properly formatted checksum lines found");
            ok = false;
            continue;
        }
        if !a.status {
            if bad_lines > 0 {
                eprintln!(
                    "ringread: WARNING: {} improperly formatted",
                    plural(bad_lines, "line is", "lines are")
                );
            }
            if unreadable > 0 {
                eprintln!(
                    "ringread: WARNING: {} could not be read",
                    plural(unreadable, "listed file", "listed files")
                );
            }
            if mismatched > 0 {
                eprintln!(
                    "ringread: WARNING: {} did NOT match",
                    plural(mismatched, "computed checksum", "computed checksums")
                );
            }
        }
        if a.ignore_missing && verified == 0 {
            if !a.status {
                eprintln!("ringread: {shown}: no file was verified");
            }
            ok = false;
        }
        if mismatched > 0 || unreadable > 0 || (a.strict && bad_lines > 0) {
            ok = false;
        }
    }
    Ok(super::exit_code(ok))
}
