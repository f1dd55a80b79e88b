//! `ringread sum`: checksums as sha256sum, b3sum and xxhsum print them.
//!
//! Each algorithm follows the tool that prints it ([`Convention::of`]): sha256 and crc32c follow
//! GNU coreutils' `sha256sum`, blake3 follows `b3sum`, the xxHash family follows `xxhsum`, in
//! the lines written, the options taken, the check messages and the exit status. Invoked through
//! a link named after one of those tools, ringread is that tool (`super::multicall`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use ringread::processor::{Algorithm, Blake3Mode};
use ringread::sumfile::{format_line_as, Convention, LineStyle};

use super::hashing::{is_dir_error, HashSpec, Settings};
use super::inputs::InputArgs;
use super::{bytes_of, prog, Ctx, Output, DEFAULT_ALGORITHM};

#[derive(Debug, Args)]
pub(crate) struct SumArgs {
    /// sha256, blake3, xxh3, xxh128, xxh64, xxh32 or crc32c [default: blake3]
    #[arg(short, long, value_name = "ALGO", value_parser = parse_algo)]
    algo: Option<Algorithm>,
    /// BSD-style lines: `SHA256 (file) = hex`
    #[arg(long)]
    tag: bool,
    /// Read checksum lines from the FILEs and check them
    #[arg(short, long)]
    check: bool,
    /// With --check: do not print OK for each file that matches
    #[arg(short, long, overrides_with_all = ["status", "warn"])]
    quiet: bool,
    /// With --check: print nothing; the exit status tells
    #[arg(long, overrides_with_all = ["quiet", "warn"])]
    status: bool,
    /// With --check: do not fail or report for files that are missing
    #[arg(long)]
    ignore_missing: bool,
    /// With --check: fail for improperly formatted lines
    #[arg(long)]
    strict: bool,
    /// With --check: warn about improperly formatted lines (of --quiet, --status and --warn, the
    /// last given wins, as with sha256sum)
    #[arg(short, long, overrides_with_all = ["quiet", "status"])]
    warn: bool,
    /// sha256sum's binary mode: lines `hex *name` (the bytes read are the same)
    #[arg(short, long, overrides_with = "text")]
    binary: bool,
    /// sha256sum's text mode (the default): lines `hex  name`
    #[arg(short, long, overrides_with = "binary")]
    text: bool,
    /// End each output line with NUL, not newline, and do not escape names (as sha256sum -z)
    #[arg(short, long)]
    zero: bool,
    /// blake3: print the digests without the names (as b3sum --no-names)
    #[arg(long)]
    no_names: bool,
    /// blake3: write the raw output bytes, not hex (one file only; as b3sum --raw)
    #[arg(long)]
    raw: bool,
    /// blake3: bytes of output, before hex encoding [default: 32]
    #[arg(short, long, value_name = "LEN")]
    length: Option<u64>,
    /// blake3: the keyed hash; the 32-byte key is read from standard input (as b3sum --keyed)
    #[arg(long, conflicts_with = "derive_key")]
    keyed: bool,
    /// blake3: key derivation with this context string (as b3sum --derive-key)
    #[arg(long, value_name = "CONTEXT")]
    derive_key: Option<String>,
    /// As b3sum --num-threads: the reading (and hashing) threads, as --threads
    #[arg(long, value_name = "NUM")]
    pub(crate) num_threads: Option<usize>,
    /// xxh*: digests in little-endian byte order (as xxhsum --little-endian)
    #[arg(long)]
    little_endian: bool,
    /// Files ("-" or none: standard input)
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    pub(crate) ranges: super::ranges::RangeArgs,
}

impl SumArgs {
    /// `--quiet` or `--status` of `-c`: nothing but what was asked for, so no progress either.
    pub(crate) fn silent(&self) -> bool {
        self.quiet || self.status
    }

    /// The algorithm asked for (BLAKE3 by default, as b3sum).
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algo.unwrap_or(DEFAULT_ALGORITHM)
    }
}

fn parse_algo(s: &str) -> Result<Algorithm, String> {
    s.parse().map_err(|e: ringread::Error| e.to_string())
}

impl SumArgs {
    fn settings(self) -> (Settings, InputArgs) {
        let a = self;
        let s = Settings {
            algo: a.algo,
            check: a.check,
            tag: a.tag,
            binary: match (a.binary, a.text) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            zero: a.zero,
            quiet: a.quiet,
            status: a.status,
            warn: a.warn,
            strict: a.strict,
            ignore_missing: a.ignore_missing,
            no_names: a.no_names,
            raw: a.raw,
            length: a.length,
            keyed: a.keyed,
            derive_key: a.derive_key,
            little_endian: a.little_endian,
            files: a.files,
            bad_length: false,
            no_mmap: false,
        };
        (s, a.inputs)
    }
}

/// A refused combination of options, said as the tool being imitated says it.
pub(crate) struct UsageError(pub String);

/// Checks the options as the algorithm's tool does (same refusals, same order).
pub(crate) fn validate(s: &Settings) -> Result<(), UsageError> {
    let err = |m: &str| Err(UsageError(m.to_owned()));
    let blake3_only =
        s.no_names || s.raw || s.length.is_some() || s.keyed || s.derive_key.is_some();
    if blake3_only && s.convention() != Convention::B3sum {
        return err("--no-names, --raw, --length, --keyed and --derive-key are for blake3 (b3sum)");
    }
    if s.little_endian && s.convention() != Convention::Xxhsum {
        return err("--little-endian is for the xxHash algorithms (xxhsum)");
    }
    match s.convention() {
        Convention::Coreutils => {
            let modes = s.check.then_some("verifying checksums");
            if s.tag && s.binary == Some(false) {
                return err("--tag does not support --text mode");
            }
            if s.zero && modes.is_some() {
                return err("the --zero option is not supported when verifying checksums");
            }
            if s.tag && s.check {
                return err("the --tag option is meaningless when verifying checksums");
            }
            if s.binary.is_some() && s.check {
                return err(
                    "the --binary and --text options are meaningless when verifying checksums",
                );
            }
            for (set, name) in [
                (s.ignore_missing, "--ignore-missing"),
                (s.status, "--status"),
                (s.warn, "--warn"),
                (s.quiet, "--quiet"),
                (s.strict, "--strict"),
            ] {
                if set && !s.check {
                    return err(&format!(
                        "the {name} option is meaningful only when verifying checksums"
                    ));
                }
            }
        }
        Convention::B3sum => {
            // clap 2's words, as b3sum 1.2.0 prints them.
            let clap = |m: String, usage: &str| {
                Err(UsageError(format!(
                    "error: {m}\n\nUSAGE:\n    {} {usage}\n\nFor more information try --help",
                    prog()
                )))
            };
            if s.check {
                for (set, name) in [
                    (s.derive_key.is_some(), "--derive-key <CONTEXT>"),
                    (s.keyed, "--keyed"),
                    (s.length.is_some(), "--length <LEN>"),
                    (s.raw, "--raw"),
                    (s.no_names, "--no-names"),
                    (s.tag, "--tag"),
                ] {
                    if set {
                        return clap(
                            format!("The argument '{name}' cannot be used with '--check'"),
                            &format!("--check {name}"),
                        );
                    }
                }
            } else if s.quiet {
                return clap(
                    "The following required arguments were not provided:\n    --check".into(),
                    "--check --quiet",
                );
            }
            if s.keyed && s.files.is_empty() {
                return clap(
                    "The following required arguments were not provided:\n    <file>...".into(),
                    "--keyed <file>...",
                );
            }
            if s.raw && s.files.len() > 1 {
                return err("Only one filename can be provided when using --raw");
            }
        }
        Convention::Xxhsum => {}
    }
    if s.zero && s.convention() != Convention::Coreutils {
        return err("--zero is sha256sum's (-a sha256 or crc32c)");
    }
    if s.binary.is_some() && s.convention() != Convention::Coreutils {
        return err("--binary and --text are sha256sum's (-a sha256 or crc32c)");
    }
    Ok(())
}

/// Prints a usage error as the tool being imitated does; its exit status.
pub(crate) fn usage_error(s: &Settings, e: &UsageError, help: &str) -> ExitCode {
    match s.convention() {
        Convention::Coreutils => {
            eprintln!(
                "{}: {}\nTry '{help} --help' for more information.",
                prog(),
                e.0
            );
        }
        Convention::B3sum if e.0.starts_with("error: ") => eprintln!("{}", e.0),
        Convention::B3sum | Convention::Xxhsum => eprintln!("Error: {}", e.0),
    }
    ExitCode::FAILURE
}

/// One output line of `sum` (with its end), as the algorithm's tool writes it. `name` is the name
/// as given; `hex` the digest.
pub(crate) fn format(s: &Settings, name: &[u8], hex: &str) -> Vec<u8> {
    let conv = s.convention();
    if conv == Convention::B3sum && s.raw {
        return hex::decode(hex).unwrap_or_default();
    }
    if conv == Convention::B3sum && s.no_names {
        return format!("{hex}\n").into_bytes();
    }
    // What each tool calls standard input.
    let name: &[u8] = match (conv, name) {
        (Convention::Xxhsum, b"-") => b"stdin",
        _ => name,
    };
    let style = LineStyle {
        tag: s.tag,
        binary: s.binary == Some(true),
        zero: s.zero,
        little_endian: s.little_endian,
    };
    format_line_as(conv, s.algorithm(), hex, name, style)
}

/// Says that `name` could not be hashed, in the words of the algorithm's tool.
pub(crate) fn complain(s: &Settings, e: &ringread::Error) {
    let Some(io) = e.io_error().filter(|_| e.path().is_some()) else {
        return super::complain(e);
    };
    let name = e
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match s.convention() {
        Convention::Coreutils => super::complain(e),
        Convention::B3sum => eprintln!("{}: {name}: {io}", prog()),
        Convention::Xxhsum if matches!(e, ringread::Error::Open { .. }) && !is_dir_error(io) => {
            eprintln!("Error: Could not open '{name}': {}. ", super::reason(io));
        }
        Convention::Xxhsum => eprintln!("{}: {name}: {} ", prog(), super::reason(io)),
    }
}

/// The key `--keyed` reads from standard input, as b3sum does.
fn read_key() -> Result<[u8; 32], String> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(33);
    std::io::stdin()
        .lock()
        .take(33)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    match bytes.len() {
        32 => Ok(bytes.try_into().expect("32 bytes")),
        n if n < 32 => Err(format!("expected 32 key bytes from stdin, found {n}")),
        _ => Err("read more than 32 key bytes from stdin".into()),
    }
}

pub(crate) fn run(ctx: &Ctx, a: SumArgs) -> anyhow::Result<ExitCode> {
    let (s, inputs) = a.settings();
    if let Err(e) = validate(&s) {
        return Ok(usage_error(&s, &e, "ringread sum"));
    }
    if s.check && inputs.is_set() {
        anyhow::bail!("--check reads check lists: -r, --files-from and --files0-from do not apply");
    }
    if s.check && ctx.ranges.is_some() {
        anyhow::bail!("--check reads check lists whole: --range and --ranges-from do not apply");
    }
    run_settings(ctx, s, &inputs)
}

/// Runs `sum` with settings already checked.
pub(crate) fn run_settings(
    ctx: &Ctx,
    mut s: Settings,
    inputs: &InputArgs,
) -> anyhow::Result<ExitCode> {
    if s.check {
        return super::check::run(ctx, &s);
    }
    let mut spec = HashSpec::plain(s.algorithm());
    if s.keyed {
        match read_key() {
            Ok(key) => spec.blake3 = Blake3Mode::Keyed(key),
            Err(e) => {
                eprintln!("Error: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    } else if let Some(context) = &s.derive_key {
        spec.blake3 = Blake3Mode::derive_key(context);
    }
    if let Some(len) = s.length {
        spec.length = usize::try_from(len).unwrap_or(usize::MAX);
    }
    let files = std::mem::take(&mut s.files);
    let super::inputs::Gathered {
        names,
        regular,
        mut ok,
        ..
    } = ctx.names(files, inputs)?;
    let mut out = Output::new();
    let mut write = |name: &Path, hex: ringread::Result<String>| -> std::io::Result<()> {
        if s.keyed && name.as_os_str() == "-" {
            ok = false;
            out.flush()?;
            eprintln!("{}: Cannot open `-` in keyed mode", prog());
            return Ok(());
        }
        match hex {
            Ok(_) if s.bad_length => {
                ok = false;
                out.flush()?;
                eprintln!("{}: {}: Failed to parse length.", prog(), name.display());
                Ok(())
            }
            Ok(hex) => out.line(&format(&s, bytes_of(name), &hex)),
            Err(e) => {
                ok = false;
                out.flush()?;
                super::progress::suspend(|| complain(&s, &e));
                Ok(())
            }
        }
    };
    if ctx.can_read_many(&names) {
        // Many files in flight at once; lines in input order.
        let mut failed = None;
        let r = spec.read_many(
            ctx,
            &names,
            &regular,
            |_| spec.algo,
            |name, hex| {
                if failed.is_none() {
                    failed = write(name, hex).err();
                }
            },
        );
        if let Err(e) = r {
            out.flush()?;
            super::stop(e);
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
    } else {
        for name in names {
            let hex = if s.keyed && name.as_os_str() == "-" {
                Ok(String::new())
            } else {
                spec.read_one(ctx, &name)
            };
            write(&name, hex)?;
        }
    }
    out.flush()?;
    Ok(super::exit_code(ok))
}
