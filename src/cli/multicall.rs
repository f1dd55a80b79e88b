//! ringread invoked through a link named after a peer tool (`sha256sum`, `b3sum`, `xxhsum`,
//! `xxh128sum`...) is that tool: its options, parsed its way, its defaults and its messages.
//!
//! Each tool parses its command line differently, and scripts rely on it:
//! - coreutils (`sha256sum`) uses getopt_long: options anywhere, long ones abbreviated, `--`;
//! - `b3sum` (clap 2): options anywhere, long ones in full;
//! - `xxhsum`: options first, up to the first file name; `-H0`..`-H3` (or 32, 64, 128).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ringread::processor::Algorithm;
use ringread::ReadOptions;

use super::hashing::Settings;
use super::inputs::InputArgs;
use super::sum::{run_settings, usage_error, validate};
use super::Ctx;

/// A tool ringread can be invoked as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// GNU coreutils `sha256sum`.
    Sha256sum,
    /// `b3sum`.
    B3sum,
    /// `xxhsum` and its `xxh32sum`, `xxh64sum`, `xxh128sum`, `xxh3sum` names: the name gives the
    /// default algorithm.
    Xxhsum(&'static str, Algorithm),
}

/// The names ringread answers to, and the tools they are.
const TOOLS: &[Tool] = &[
    Tool::Sha256sum,
    Tool::B3sum,
    Tool::Xxhsum("xxhsum", Algorithm::Xxh64),
    Tool::Xxhsum("xxh32sum", Algorithm::Xxh32),
    Tool::Xxhsum("xxh64sum", Algorithm::Xxh64),
    Tool::Xxhsum("xxh128sum", Algorithm::Xxh128),
    Tool::Xxhsum("xxh3sum", Algorithm::Xxh3),
];

impl Tool {
    /// The name it is invoked by.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::Sha256sum => "sha256sum",
            Tool::B3sum => "b3sum",
            Tool::Xxhsum(name, _) => name,
        }
    }
}

/// The tool `argv[0]` names, if it names one.
pub(crate) fn tool_of(args: &[OsString]) -> Option<Tool> {
    let base = Path::new(args.first()?).file_name()?.as_bytes();
    TOOLS.iter().copied().find(|t| t.name().as_bytes() == base)
}

/// What parsing decided.
enum Parsed {
    Run(Settings),
    /// Print this (help, version) on standard output and succeed.
    Print(String),
    /// A usage error, already said; exit with this status.
    Exit(ExitCode),
}

/// Runs ringread as `tool` with the arguments after `argv[0]`.
pub(crate) fn run(tool: Tool, args: &[OsString]) -> anyhow::Result<ExitCode> {
    let parsed = match tool {
        Tool::Sha256sum => parse_coreutils(args),
        Tool::B3sum => parse_b3sum(args),
        Tool::Xxhsum(_, algo) => parse_xxhsum(args, algo),
    };
    let mut s = match parsed {
        Parsed::Run(s) => s,
        Parsed::Print(text) => {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        Parsed::Exit(code) => return Ok(code),
    };
    if s.algo.is_none() {
        s.algo = Some(match tool {
            Tool::Sha256sum => Algorithm::Sha256,
            Tool::B3sum => Algorithm::Blake3,
            Tool::Xxhsum(_, a) => a,
        });
    }
    if let Err(e) = validate(&s) {
        return Ok(usage_error(&s, &e, tool.name()));
    }
    // Cached files are hashed in place where that was measured to win (b3sum maps files, but
    // BLAKE3 is faster here from the lanes' copies: `Algorithm::in_place_pays`), never at the
    // risk of a SIGBUS (see ReadOptionsBuilder::in_place).
    let in_place = !s.no_mmap && s.algorithm().in_place_pays();
    let mut opts = ReadOptions::builder().in_place(in_place);
    if let Some(c) = s.algorithm().preferred_chunk_size() {
        opts = opts.chunk_size(c);
    }
    let opts = opts.build()?;
    let mut ctx = Ctx::new(opts, false)?;
    // A stand-in says nothing the tool would not (a fallback to pread(2) changes no output).
    ctx.notices = false;
    run_settings(&ctx, s, &InputArgs::default())
}

fn help(tool: Tool) -> String {
    format!(
        "Usage: {0} [OPTION]... [FILE]...\n\
         ringread {1}, invoked as {0}: prints or checks checksums as {0} does, reading through\n\
         io_uring. The options are {0}'s; `ringread sum --help` lists them all.\n",
        tool.name(),
        env!("CARGO_PKG_VERSION")
    )
}

fn version(tool: Tool) -> String {
    format!("{} (ringread {})\n", tool.name(), env!("CARGO_PKG_VERSION"))
}

/// `arg` if it is an option; otherwise it is a file (added to `files`) or the `--` that makes
/// every later argument one (`only_files` set).
fn option<'a>(
    arg: &'a OsString,
    only_files: &mut bool,
    files: &mut Vec<PathBuf>,
) -> Option<&'a [u8]> {
    let bytes = arg.as_bytes();
    if *only_files || bytes == b"-" || !bytes.starts_with(b"-") {
        files.push(PathBuf::from(arg));
        None
    } else if bytes == b"--" {
        *only_files = true;
        None
    } else {
        Some(bytes)
    }
}

/// sha256sum's options, as getopt_long reads them (abbreviations, permutation, `--`).
fn parse_coreutils(args: &[OsString]) -> Parsed {
    const LONG: &[&str] = &[
        "binary",
        "check",
        "ignore-missing",
        "quiet",
        "status",
        "strict",
        "tag",
        "text",
        "warn",
        "zero",
        "help",
        "version",
    ];
    let tool = Tool::Sha256sum;
    let fail = |msg: String| {
        eprintln!(
            "{0}: {msg}\nTry '{0} --help' for more information.",
            tool.name()
        );
        Parsed::Exit(ExitCode::FAILURE)
    };
    let mut s = Settings::default();
    let mut only_files = false;
    for arg in args {
        let Some(bytes) = option(arg, &mut only_files, &mut s.files) else {
            continue;
        };
        let text = String::from_utf8_lossy(bytes);
        if let Some(long) = text.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            let found = match LONG.iter().find(|l| **l == name) {
                Some(l) => *l,
                None => {
                    let matches: Vec<&str> = LONG
                        .iter()
                        .copied()
                        .filter(|l| l.starts_with(name))
                        .collect();
                    match matches.as_slice() {
                        [one] => *one,
                        [] => return fail(format!("unrecognized option '--{name}'")),
                        many => {
                            let list: Vec<String> =
                                many.iter().map(|m| format!("'--{m}'")).collect();
                            return fail(format!(
                                "option '--{name}' is ambiguous; possibilities: {}",
                                list.join(" ")
                            ));
                        }
                    }
                }
            };
            if value {
                return fail(format!("option '--{found}' doesn't allow an argument"));
            }
            match found {
                "help" => return Parsed::Print(help(tool)),
                "version" => return Parsed::Print(version(tool)),
                other => set_coreutils(&mut s, other),
            }
            continue;
        }
        for c in text[1..].chars() {
            let name = match c {
                'b' => "binary",
                'c' => "check",
                't' => "text",
                'w' => "warn",
                'z' => "zero",
                _ => return fail(format!("invalid option -- '{c}'")),
            };
            set_coreutils(&mut s, name);
        }
    }
    Parsed::Run(s)
}

/// Sets one of sha256sum's options; `--quiet`, `--status` and `--warn` each clear the others, and
/// `--tag` means binary, as in coreutils.
fn set_coreutils(s: &mut Settings, name: &str) {
    match name {
        "binary" => s.binary = Some(true),
        "text" => s.binary = Some(false),
        "check" => s.check = true,
        "ignore-missing" => s.ignore_missing = true,
        "strict" => s.strict = true,
        "zero" => s.zero = true,
        "tag" => {
            s.tag = true;
            s.binary = Some(true);
        }
        "quiet" | "status" | "warn" => {
            s.quiet = name == "quiet";
            s.status = name == "status";
            s.warn = name == "warn";
        }
        _ => unreachable!("every long option is handled: {name}"),
    }
}

/// b3sum's options (clap 2: anywhere, long names in full, values as `--opt V` or `--opt=V`).
fn parse_b3sum(args: &[OsString]) -> Parsed {
    let tool = Tool::B3sum;
    let fail = |arg: &str| {
        eprintln!(
            "error: Found argument '{arg}' which wasn't expected, or isn't valid in this context\n\n\
             USAGE:\n    b3sum [FLAGS] [OPTIONS] [FILE]...\n\nFor more information try --help"
        );
        Parsed::Exit(ExitCode::FAILURE)
    };
    let bad_value = |what: &str| {
        eprintln!("Error: {what}");
        Parsed::Exit(ExitCode::FAILURE)
    };
    let mut s = Settings::default();
    let mut only_files = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(bytes) = option(arg, &mut only_files, &mut s.files) else {
            continue;
        };
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ if text.starts_with("-l") && text.len() > 2 && !text.starts_with("--") => {
                ("-l".to_owned(), Some(text[2..].to_owned()))
            }
            _ => (text.clone(), None),
        };
        let mut value = |what: &str| -> Option<String> {
            inline.clone().or_else(|| {
                it.next()
                    .map(|v| v.to_string_lossy().into_owned())
                    .or_else(|| {
                        eprintln!(
                            "error: The argument '{what}' requires a value but none was supplied\n\n\
                             USAGE:\n    b3sum {what}\n\nFor more information try --help"
                        );
                        None
                    })
            })
        };
        match name.as_str() {
            "-c" | "--check" => s.check = true,
            "--quiet" => s.quiet = true,
            "--keyed" => s.keyed = true,
            "--no-mmap" => s.no_mmap = true,
            "--no-names" => s.no_names = true,
            "--raw" => s.raw = true,
            "--tag" => s.tag = true,
            "-h" | "--help" => return Parsed::Print(help(tool)),
            "-V" | "--version" => return Parsed::Print(version(tool)),
            "-l" | "--length" => {
                let Some(v) = value("--length <LEN>") else {
                    return Parsed::Exit(ExitCode::FAILURE);
                };
                // b3sum parses the length when it writes a digest: each file then fails.
                match v.parse::<u64>() {
                    Ok(n) => s.length = Some(n),
                    Err(_) => s.bad_length = true,
                }
            }
            "--num-threads" => {
                let Some(v) = value("--num-threads <NUM>") else {
                    return Parsed::Exit(ExitCode::FAILURE);
                };
                if let Err(e) = v.parse::<usize>() {
                    return bad_value(&format!(
                        "Failed to parse num threads.\n\nCaused by:\n    {e}"
                    ));
                }
            }
            "--derive-key" => {
                let Some(v) = value("--derive-key <CONTEXT>") else {
                    return Parsed::Exit(ExitCode::FAILURE);
                };
                s.derive_key = Some(v);
            }
            _ => {
                // Combined short flags are only -c here (b3sum has no others without values).
                if text.len() > 2 && !text.starts_with("--") && text[1..].chars().all(|c| c == 'c')
                {
                    s.check = true;
                    continue;
                }
                return fail(&name);
            }
        }
    }
    Parsed::Run(s)
}

/// xxhsum's options: read in order up to the first file name (after it, everything is a file).
fn parse_xxhsum(args: &[OsString], default: Algorithm) -> Parsed {
    let tool_name = super::prog();
    let wrong = || {
        eprintln!(
            "Wrong parameters\n\nUsage: {tool_name} [options] [files]\n\n\
             When no filename provided or when '-' is provided, uses stdin as input.\n\
             Options:\n  -H#         algorithm selection: 0,1,2,3 or 32,64,128 (default: 1)\n  \
             -c, --check read xxHash checksum from [files] and check them\n  \
             -h, --help  display a long help page about advanced options"
        );
        Parsed::Exit(ExitCode::FAILURE)
    };
    let mut s = Settings {
        algo: Some(default),
        ..Settings::default()
    };
    let mut files_started = false;
    for arg in args {
        let Some(bytes) = option(arg, &mut files_started, &mut s.files) else {
            // The first file ends the options.
            files_started = true;
            continue;
        };
        match bytes {
            b"--check" => s.check = true,
            b"--quiet" => s.quiet = true,
            b"--status" => s.status = true,
            b"--strict" => s.strict = true,
            b"--warn" => s.warn = true,
            b"--tag" => s.tag = true,
            b"--little-endian" => s.little_endian = true,
            b"--ignore-missing" => s.ignore_missing = true,
            b"--help" => return Parsed::Print(help_xxhsum(tool_name)),
            b"--version" => {
                return Parsed::Print(format!(
                    "{tool_name} (ringread {})\n",
                    env!("CARGO_PKG_VERSION")
                ))
            }
            _ if bytes.starts_with(b"--") => return wrong(),
            _ => {
                let mut rest = &bytes[1..];
                while let Some((&c, tail)) = rest.split_first() {
                    rest = tail;
                    match c {
                        b'c' => s.check = true,
                        b'q' => s.quiet = true,
                        b'w' => s.warn = true,
                        b'h' => return Parsed::Print(help_xxhsum(tool_name)),
                        b'V' => {
                            return Parsed::Print(format!(
                                "{tool_name} (ringread {})\n",
                                env!("CARGO_PKG_VERSION")
                            ))
                        }
                        b'H' => {
                            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                            let algo = match &rest[..digits] {
                                b"0" | b"32" => Algorithm::Xxh32,
                                b"1" | b"64" => Algorithm::Xxh64,
                                b"2" | b"128" => Algorithm::Xxh128,
                                b"3" => Algorithm::Xxh3,
                                _ => return wrong(),
                            };
                            s.algo = Some(algo);
                            rest = &rest[digits..];
                        }
                        _ => return wrong(),
                    }
                }
            }
        }
    }
    Parsed::Run(s)
}

fn help_xxhsum(tool_name: &str) -> String {
    format!(
        "{tool_name} (ringread {}): print or verify xxHash checksums, as xxhsum 0.8.1\n\n\
         Usage: {tool_name} [options] [files]\n\n\
         When no filename provided or when '-' is provided, uses stdin as input.\n\
         Options:\n  -H#         algorithm selection: 0,1,2,3 or 32,64,128 (default: 1)\n  \
         -c, --check read xxHash checksum from [files] and check them\n  \
         -h, --help  this help\n  -V, --version\n      --tag            BSD-style lines\n      \
         --little-endian  digests in little-endian byte order\n  \
         -q, --quiet          with -c: don't print OK for each verified file\n      \
         --status         with -c: print nothing; the exit status tells\n      \
         --strict         with -c: fail for improperly formatted lines\n  \
         -w, --warn           with -c: warn about improperly formatted lines\n      \
         --ignore-missing with -c: skip files that are missing\n",
        env!("CARGO_PKG_VERSION")
    )
}
