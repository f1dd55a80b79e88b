//! Command-line parsing (clap) and what is printed; each command in its own file.

mod bench;
mod cat;
mod check;
mod completions;
mod count;
mod hashing;
mod inputs;
mod multicall;
mod progress;
mod ranges;
mod sum;

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use clap::{Args, CommandFactory, Parser, Subcommand};
use ringread::processor::Algorithm;
use ringread::{Backend, Cancel, Notice, Processor, ReadOptions, Reader, Summary};

/// Reads files through io_uring as fast as the machine allows, and hashes, counts or copies them.
#[derive(Debug, Parser)]
#[command(name = "ringread", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    progress: progress::ProgressArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print or check checksums (output byte-identical to sha256sum, b3sum, xxhsum).
    Sum(sum::SumArgs),
    /// Write files to standard output, in order ("-" is standard input).
    Cat(cat::CatArgs),
    /// Print newline and byte counts, as `wc -lc` does.
    Count(count::CountArgs),
    /// Compare every way of reading side by side: throughput, CPU, system calls, memory.
    Bench(bench::BenchArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell)
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), or write every page into a directory
    Man(completions::ManArgs),
}

/// How to read; the same for every command.
#[derive(Debug, Args)]
struct ReadArgs {
    /// Bytes per read: 4K, 64KiB, 1M, 1MiB... [default: 256K; 1M for sum -a blake3 and with --direct]
    #[arg(help_heading = "Reading options", long, global = true, value_name = "SIZE", value_parser = parse_size_arg)]
    chunk_size: Option<u64>,
    /// Reads in flight at once, all threads together [default: 4, or 16 with --direct]
    #[arg(
        help_heading = "Reading options",
        long,
        global = true,
        value_name = "N"
    )]
    depth: Option<usize>,
    /// Bypass the page cache (O_DIRECT); falls back to buffered reads, saying why, where refused
    #[arg(help_heading = "Reading options", long, global = true)]
    direct: bool,
    /// Read through the page cache without growing it (RWF_DONTCACHE): what was cached stays
    /// cached, what the reads bring in is dropped after use; where a file system refuses it,
    /// O_DIRECT or dropping pages behind the reads, saying why
    #[arg(
        help_heading = "Reading options",
        long,
        global = true,
        conflicts_with = "direct"
    )]
    dontcache: bool,
    /// Do not register buffers with the kernel (plain READ instead of READ_FIXED)
    #[arg(help_heading = "Reading options", long, global = true)]
    no_register: bool,
    /// Let a kernel thread poll the submission queue (costs a CPU)
    #[arg(help_heading = "Reading options", long, global = true)]
    sqpoll: bool,
    /// auto: io_uring, else pread(2) lanes saying why; uring: io_uring or fail; sync: read(2) into
    /// one buffer; pread: pread(2) on every CPU; epoll: non-blocking read(2) driven by epoll (pipes
    /// and sockets only)
    #[arg(help_heading = "Reading options", long, global = true, value_name = "NAME", default_value = "auto",
          value_parser = ["auto", "uring", "sync", "pread", "epoll"])]
    backend: String,
    /// Read from a TCP connection to HOST:PORT instead of files (sum, count, cat)
    #[arg(
        help_heading = "Reading options",
        long,
        global = true,
        value_name = "HOST:PORT",
        conflicts_with = "listen"
    )]
    connect: Option<String>,
    /// Accept one TCP connection on HOST:PORT and read from it instead of files (sum, count, cat);
    /// the address listened on is said on standard error
    #[arg(
        help_heading = "Reading options",
        long,
        global = true,
        value_name = "HOST:PORT"
    )]
    listen: Option<String>,
    /// Reading threads [default: the CPUs this process may use; 1 with --direct or --sqpoll]
    #[arg(
        help_heading = "Reading options",
        long,
        global = true,
        value_name = "N"
    )]
    threads: Option<usize>,
    /// Read at most this much of each file (4K, 1M, 1GiB...), then stop as at its end: for endless
    /// sources such as /dev/zero
    #[arg(help_heading = "Reading options", long, global = true, value_name = "SIZE", value_parser = parse_size_arg)]
    max_bytes: Option<u64>,
    /// Never process a cached file in place (sum, count): copy it out of the page cache as any
    /// other file. By default a file at least 90% cached is hashed or counted from a mapping of
    /// the page cache, without a copy; a file cut short meanwhile gives an error naming the offset,
    /// never a SIGBUS (b3sum's --no-mmap)
    #[arg(help_heading = "Reading options", long, global = true)]
    no_mmap: bool,
    /// Say on standard error how each file was read, and why
    #[arg(help_heading = "Reading options", short, long, global = true)]
    verbose: bool,
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("'{s}' is not a size ({e}); try 4K, 64KiB, 1M"))
}

impl ReadArgs {
    /// The reading options; `in_place`: whether the command's result counts only when a read
    /// succeeds (a digest or a count, not a copy), so cached files may be processed in place;
    /// `chunk`: the command's bytes per read where `--chunk-size` is not given (and the reads
    /// go through the page cache).
    fn options(&self, in_place: bool, chunk: Option<usize>) -> anyhow::Result<ReadOptions> {
        let mut b = ReadOptions::builder()
            .in_place(in_place && !self.no_mmap)
            .direct(self.direct)
            .dontcache(self.dontcache)
            .register_buffers(!self.no_register)
            .sqpoll(self.sqpoll)
            .backend(self.backend.parse::<Backend>()?);
        if let Some(c) = self.chunk_size {
            b = b.chunk_size(usize::try_from(c).unwrap_or(usize::MAX));
        } else if let (Some(c), false) = (chunk, self.direct) {
            b = b.chunk_size(c);
        }
        if let Some(d) = self.depth {
            b = b.depth(d);
        }
        if let Some(t) = self.threads {
            b = b.threads(t);
        }
        if let Some(m) = self.max_bytes {
            b = b.max_bytes(m);
        }
        Ok(b.build()?)
    }
}

/// The name messages start with: `ringread`, or the tool ringread was invoked as (`sha256sum`).
static PROGRAM: OnceLock<String> = OnceLock::new();

/// The name messages start with (`ringread: ...`, or `sha256sum: ...` when invoked by that name).
pub fn prog() -> &'static str {
    PROGRAM.get().map_or("ringread", String::as_str)
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(tool) = multicall::tool_of(&args) {
        let _ = PROGRAM.set(tool.name().to_owned());
        return multicall::run(tool, &args[1..]);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return Ok(ExitCode::from(code));
        }
    };
    // Like cat: a closed pipe ends the process quietly.
    // SAFETY: setting a signal's disposition to the default has no memory-safety requirement.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    catch_interrupts()?;

    let silent = matches!(&cli.command, Command::Sum(a) if a.silent());
    let mut progress = cli.progress.mode(silent);
    let cat_to_terminal = matches!(cli.command, Command::Cat(_))
        && std::io::IsTerminal::is_terminal(&std::io::stdout());
    if cat_to_terminal && progress == progress::Mode::Terminal {
        // The file's bytes go to the terminal the bar is on: no bar unless asked for.
        progress = progress::Mode::Off;
    }
    match cli.command {
        Command::Bench(a) => return bench::run(&cli.read, a, progress),
        Command::Completions(a) => return completions::completions(Cli::command(), a),
        Command::Man(a) => return completions::man(Cli::command(), a),
        _ => {}
    }
    let mut cli = cli;
    if let Command::Sum(a) = &cli.command {
        // b3sum's --num-threads is ringread's --threads.
        cli.read.threads = cli.read.threads.or(a.num_threads);
    }
    // In place only where it was measured to win (`Algorithm::in_place_pays`; counting lines:
    // 0.90x of the copying time, docs/BENCHMARKS.md).
    let in_place = match &cli.command {
        Command::Sum(a) => a.algorithm().in_place_pays(),
        Command::Count(_) => true,
        _ => false,
    };
    let chunk = match &cli.command {
        Command::Sum(a) => a.algorithm().preferred_chunk_size(),
        _ => None,
    };
    let opts = cli.read.options(in_place, chunk)?;
    let max_bytes = cli.read.max_bytes;
    let mut ctx = Ctx::new(opts, cli.read.verbose)?;
    ctx.net = net_input(&cli.read)?;
    ctx.progress = progress::Progress::new(progress, max_bytes);
    ctx.ranges = match &cli.command {
        Command::Cat(a) => a.ranges.gather()?.map(|(r, o)| (r.into(), o)),
        Command::Sum(a) => a.ranges.gather()?.map(|(r, o)| (r.into(), o)),
        Command::Count(a) => a.ranges.gather()?.map(|(r, o)| (r.into(), o)),
        Command::Bench(_) | Command::Completions(_) | Command::Man(_) => None,
    };
    let code = match cli.command {
        Command::Bench(_) | Command::Completions(_) | Command::Man(_) => {
            unreachable!("handled above")
        }
        Command::Sum(a) => sum::run(&ctx, a),
        Command::Cat(a) => cat::run(&ctx, a),
        Command::Count(a) => count::run(&ctx, a),
    }?;
    Ok(if interrupted() {
        ExitCode::from(INTERRUPTED_EXIT)
    } else {
        code
    })
}

/// The exit status after SIGINT, as shells report a process killed by it (128 + 2).
const INTERRUPTED_EXIT: u8 = 130;

static INTERRUPT: OnceLock<Cancel> = OnceLock::new();
/// Set by the signal handler, read after the handle has done its work.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The handle SIGINT and SIGTERM cancel, for library calls that take one.
pub(crate) fn interrupt_handle() -> Option<Cancel> {
    INTERRUPT.get().cloned()
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

extern "C" fn on_interrupt(_: libc::c_int) {
    // An atomic store and a write(2) to an eventfd: async-signal-safe. Every reader watching the
    // handle wakes (even one asleep in io_uring_enter or in a read of a silent pipe), reaps or
    // cancels its reads and returns.
    INTERRUPTED.store(true, Ordering::Relaxed);
    // The handle is set before the handler is installed, so this is a plain atomic load.
    if let Some(c) = INTERRUPT.get() {
        c.cancel();
    }
}

/// SIGINT and SIGTERM stop reading cleanly (reads in flight reaped or cancelled), then the process
/// exits with status 130.
fn catch_interrupts() -> anyhow::Result<()> {
    let cancel = Cancel::new()?;
    let _ = INTERRUPT.set(cancel);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only stores to atomics and writes to an
        // eventfd; sa_mask empty; no SA_RESTART, so a blocking call returns with EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_interrupt as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    Ok(())
}

/// The TCP connection `--connect` or `--listen` asks for, named by its peer's address as given.
fn net_input(read: &ReadArgs) -> anyhow::Result<Option<(PathBuf, File)>> {
    use anyhow::Context as _;
    let sock = if let Some(addr) = &read.connect {
        let s = std::net::TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
        (addr.clone(), s)
    } else if let Some(addr) = &read.listen {
        let l = std::net::TcpListener::bind(addr).with_context(|| format!("listen on {addr}"))?;
        eprintln!("ringread: listening on {}", l.local_addr()?);
        let (s, peer) = l.accept().with_context(|| format!("accept on {addr}"))?;
        (peer.to_string(), s)
    } else {
        return Ok(None);
    };
    Ok(Some((
        PathBuf::from(sock.0),
        File::from(std::os::fd::OwnedFd::from(sock.1)),
    )))
}

/// What every command shares: the reader, what has been said on standard error, and the progress
/// shown there.
pub(crate) struct Ctx {
    reader: Reader,
    verbose: bool,
    /// Whether fallbacks are said on standard error (not when ringread stands in for a peer tool,
    /// whose standard error scripts expect to be its own).
    pub(crate) notices: bool,
    said: std::cell::RefCell<HashSet<String>>,
    /// The connection of `--connect`/`--listen`: read in place of files.
    net: Option<(PathBuf, File)>,
    /// The bar of what is being read (every read goes through [`Ctx::many`] or
    /// [`Ctx::read_split`], which report to it).
    progress: progress::Progress,
    /// `--range`/`--ranges-from`: [`Ctx::read_split`] reads these ranges of each file, not all of it.
    /// Shared by every file's `Source` without a copy.
    pub(crate) ranges: Option<(
        std::sync::Arc<[ringread::ranges::ByteRange]>,
        ringread::ranges::RangeOptions,
    )>,
}

impl Ctx {
    pub(crate) fn new(opts: ReadOptions, verbose: bool) -> anyhow::Result<Ctx> {
        let backend = opts.backend();
        let mut reader = Reader::new(opts);
        if let Some(cancel) = INTERRUPT.get() {
            reader.set_cancel(cancel.clone());
        }
        if backend == Backend::Uring {
            if let Err(reason) = reader.uring_status() {
                anyhow::bail!("io_uring is unavailable: {reason}");
            }
        }
        Ok(Ctx {
            reader,
            verbose,
            notices: true,
            said: Default::default(),
            net: None,
            progress: progress::Progress::new(progress::Mode::Off, None),
            ranges: None,
        })
    }

    /// What to read: the connection of `--connect`/`--listen`, else the files given, else standard
    /// input.
    pub(crate) fn inputs(&self, files: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
        match &self.net {
            Some(_) if !files.is_empty() => {
                anyhow::bail!("--connect and --listen read the connection; give no FILE with them")
            }
            Some((name, _)) => Ok(vec![name.clone()]),
            None => Ok(files_or_stdin(files)),
        }
    }

    /// What to read, with `-r`, `--files-from` and `--files0-from` expanded; `ok` is `false` if a
    /// directory could not be walked or a list had a bad name (each said on standard error).
    pub(crate) fn names(
        &self,
        files: Vec<PathBuf>,
        a: &inputs::InputArgs,
    ) -> anyhow::Result<inputs::Gathered> {
        if !a.is_set() {
            let names = self.inputs(files)?;
            self.progress.expect(&names, self.net.is_none());
            return Ok(inputs::Gathered {
                names,
                regular: Vec::new(),
                ok: true,
                skipped: 0,
                streamed: false,
            });
        }
        if self.net.is_some() {
            anyhow::bail!("--connect and --listen read the connection; give no FILE with them");
        }
        let gathered = inputs::gather(
            files,
            a,
            &mut |line| {
                if self.verbose {
                    eprintln!("{}: {line}", prog());
                }
            },
            &mut |line| eprintln!("{}: {line}", prog()),
        )?;
        self.progress.expect(&gathered.names, true);
        Ok(gathered)
    }

    /// Whether `names` can be read many at a time ([`Ctx::many`]): named files only, no standard
    /// input or connection.
    pub(crate) fn can_read_many(&self, names: &[PathBuf]) -> bool {
        self.net.is_none() && names.len() > 1 && names.iter().all(|n| n.as_os_str() != "-")
    }

    /// Reads `names` many at a time, each into a processor `make(index)` gives, and hands each to `done`
    /// in order with what was read (reported under -v like every read). `regular[i]`: a walk found
    /// name `i` a regular file (`Gathered::regular`; empty for none). When reading cannot go on
    /// (an interrupt, a ring that failed), returns why: the caller flushes what it has written
    /// (what was decided is not lost) and calls [`stop`].
    pub(crate) fn many<Pr, C>(
        &self,
        names: &[PathBuf],
        regular: &[bool],
        mut make: impl FnMut(usize) -> (Pr, C),
        mut done: impl FnMut(&Path, Result<C, (ringread::Error, C)>),
    ) -> Result<(), ringread::Error>
    where
        Pr: ringread::processor::Prepare + Send,
        C: ringread::processor::Combine<Pr::Part> + Send,
    {
        self.progress.expect(names, true);
        // Under -v: each file's residency, measured as its reading starts.
        let cached = std::cell::RefCell::new(std::collections::HashMap::new());
        let inputs = names.iter().enumerate().map(|(i, n)| {
            if regular.get(i) == Some(&true) {
                ringread::Input::regular(n)
            } else {
                ringread::Input::path(n)
            }
        });
        let r = self.reader.read_each_split(
            ringread::Source::inputs(inputs),
            |i, path| {
                if self.verbose {
                    cached.borrow_mut().insert(i, cached_share(path));
                }
                let (prep, proc) = make(i);
                (progress::Counted(prep), proc)
            },
            |f: ringread::Finished<C>| {
                match f.result {
                    Ok(summary) => {
                        let share = cached.borrow_mut().remove(&f.index).flatten();
                        self.report(&f.path, &summary, share);
                        done(&f.path, Ok(f.processor));
                    }
                    Err(e) => done(&f.path, Err((e, f.processor))),
                }
                self.progress.file_done();
            },
        );
        if r.is_err() {
            self.progress.end();
        }
        r
    }

    /// Reads the `--range`s of every file of `names` in one call, reads of all of them in flight
    /// together, each file into the processor `make(index)` gives; hands each to `done` in order,
    /// as [`Ctx::many`] does. `None` when no range was asked for.
    pub(crate) fn ranges_many<P: Processor + Send>(
        &self,
        names: &[PathBuf],
        mut make: impl FnMut(usize) -> P,
        mut done: impl FnMut(&Path, Result<P, (ringread::Error, P)>),
    ) -> Option<Result<(), ringread::Error>> {
        let (ranges, opts) = self.ranges.as_ref()?;
        // The bar counts the bytes handed over; the files' sizes are no total for ranges.
        self.progress.expect(names, false);
        let source = ringread::Source::paths(names)
            .ranges(std::sync::Arc::clone(ranges))
            .range_options(*opts);
        let r = self.reader.read_each(
            source,
            |i, _| progress::Counted(make(i)),
            |f: ringread::Finished<progress::Counted<P>>| {
                match f.result {
                    Ok(summary) => {
                        self.report(&f.path, &summary, None);
                        done(&f.path, Ok(f.processor.0));
                    }
                    Err(e) => done(&f.path, Err((e, f.processor.0))),
                }
                self.progress.file_done();
            },
        );
        if r.is_err() {
            self.progress.end();
        }
        Some(r)
    }

    /// Whether the input is the connection of `--connect`/`--listen` (a stream, as a pipe is).
    pub(crate) fn reads_connection(&self) -> bool {
        self.net.is_some()
    }

    /// Reads `name` ("-" is standard input) into `proc`, reporting how under `-v`.
    fn read<P: Processor + Send>(&self, name: &Path, proc: &mut P) -> ringread::Result<Summary> {
        self.read_split(name, &ringread::processor::Whole, proc)
    }

    /// Reads `name` with a processor in two halves (see `ringread::processor::Prepare`).
    pub(crate) fn read_split<Pr, C>(
        &self,
        name: &Path,
        prep: &Pr,
        proc: &mut C,
    ) -> ringread::Result<Summary>
    where
        Pr: ringread::processor::Prepare,
        C: ringread::processor::Combine<Pr::Part> + Send,
    {
        if interrupted() {
            progress::hide();
            std::process::exit(INTERRUPTED_EXIT.into());
        }
        let share = if self.verbose && name.as_os_str() != "-" && !self.reads_connection() {
            cached_share(name)
        } else {
            None
        };
        let sock = self.net.as_ref().filter(|(n, _)| n == name);
        self.progress
            .expect_one(name, sock.is_none() && self.ranges.is_none());
        let prep = &progress::Counted(prep);
        let result = self.open_then(name, |file| {
            // Standard input or a connection: a duplicate of its descriptor, which shares its
            // position (what is read is gone from it, as with read(2)).
            let source = match file.map(File::try_clone).transpose() {
                Ok(Some(file)) => ringread::Source::file(file, name),
                Ok(None) => ringread::Source::path(name),
                Err(source) => {
                    let path = name.to_path_buf();
                    return Err(ringread::Error::Open { path, source });
                }
            };
            let source = match &self.ranges {
                Some((ranges, opts)) => source
                    .ranges(std::sync::Arc::clone(ranges))
                    .range_options(*opts),
                None => source,
            };
            self.reader.read_split(source, prep, proc)
        });
        self.progress.file_done();
        let summary = match result {
            Ok(s) => s,
            // Interrupted: the reads are reaped; leave quietly, as a process killed by SIGINT would.
            Err(ringread::Error::Interrupted { .. }) => {
                progress::hide();
                std::process::exit(INTERRUPTED_EXIT.into())
            }
            Err(e) => return Err(e),
        };
        self.report(name, &summary, share);
        Ok(summary)
    }

    /// Calls `read` with the already open file `name` stands for (the connection, or standard input
    /// for "-"), or `None` for a path to open.
    fn open_then<T>(&self, name: &Path, read: impl FnOnce(Option<&File>) -> T) -> T {
        if let Some((_, sock)) = self.net.as_ref().filter(|(n, _)| n == name) {
            read(Some(sock))
        } else if name.as_os_str() == "-" {
            // SAFETY: fd 0 is open for the life of the process; ManuallyDrop keeps it open after.
            let stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
            read(Some(&stdin))
        } else {
            read(None)
        }
    }

    /// Says the reading's notices, and under -v how `name` was read (with the share of it that was
    /// in the page cache before, if known).
    fn report(&self, name: &Path, s: &Summary, cached: Option<f64>) {
        for n in &s.notices {
            let always = !matches!(n, Notice::RegisteredFewer { .. } | Notice::Tuned { .. });
            if (always && self.notices) || self.verbose {
                self.say_once(format!("{}: {n}", prog()));
            }
        }
        if self.verbose {
            let cached = cached.map_or(String::new(), |c| format!(", {:.1}% cached", 100.0 * c));
            progress::suspend(|| {
                eprintln!(
                    "{}: {}: {} bytes by {}{cached}",
                    prog(),
                    name.display(),
                    s.bytes,
                    s.route
                )
            });
        }
    }

    fn say_once(&self, line: String) {
        if self.said.borrow_mut().insert(line.clone()) {
            progress::suspend(|| eprintln!("{line}"));
        }
    }
}

/// The share of a regular file in the page cache (`ringread::residency`), for -v; `None` for
/// anything else or if it cannot be told.
fn cached_share(path: &Path) -> Option<f64> {
    // Stat first: opening a FIFO would wait for (and then disturb) its writer.
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let f = File::open(path).ok()?;
    ringread::residency::of_file(&f).ok().map(|r| r.fraction())
}

/// Prints `ringread: <error>` (or the invoked tool's name) for one file, the file's name quoted as coreutils quotes it.
pub(crate) fn complain(e: &ringread::Error) {
    let text = e.to_string();
    let line = match e.path() {
        Some(path) => match text.strip_prefix(&path.display().to_string()) {
            Some(rest) => format!("{}: {}{rest}", prog(), quotef(path.as_os_str())),
            None => format!("{}: {text}", prog()),
        },
        None => format!("{}: {text}", prog()),
    };
    progress::suspend(|| eprintln!("{line}"));
}

/// A file name as coreutils shows it in messages (`quotef`): as is when it holds only characters a
/// shell leaves alone, otherwise in single quotes (a quote inside written `'\''`). Control
/// characters and bytes that are not UTF-8 are written outside the quotes as `$'\n'`, `$'\377'`,
/// so that a message stays on one line: `'a'$'\n''b'` for a name with a newline.
pub(crate) fn quotef(name: &std::ffi::OsStr) -> String {
    let bytes = name.as_bytes();
    let safe = |b: &u8| b.is_ascii_alphanumeric() || b"%+,-./:=@_^".contains(b);
    if !bytes.is_empty() && bytes.iter().all(safe) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    /// Writes byte `b` escaped, opening a `$'...'` group unless one is open.
    fn escape(out: &mut String, escaping: &mut bool, b: u8) {
        if !*escaping {
            out.push_str("'$'");
            *escaping = true;
        }
        match b {
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    let mut out = String::from("'");
    // Whether a `$'...'` group of escapes is open (else a plain quoted run is).
    let mut escaping = false;
    for piece in bytes.utf8_chunks() {
        for c in piece.valid().chars() {
            if c.is_control() {
                let mut utf8 = [0; 4];
                for &b in c.encode_utf8(&mut utf8).as_bytes() {
                    escape(&mut out, &mut escaping, b);
                }
                continue;
            }
            let reopen = std::mem::take(&mut escaping);
            match c {
                // Out of the quotes (or the escapes), an escaped quote, and back in.
                '\'' => out.push_str("'\\''"),
                c => {
                    if reopen {
                        out.push_str("''");
                    }
                    out.push(c);
                }
            }
        }
        for &b in piece.invalid() {
            escape(&mut out, &mut escaping, b);
        }
    }
    out.push('\'');
    out
}

/// Standard output as an unbuffered writer (chunks are already large).
pub(crate) fn stdout_raw() -> ManuallyDrop<File> {
    // SAFETY: fd 1 is open for the life of the process; ManuallyDrop never closes it.
    ManuallyDrop::new(unsafe { File::from_raw_fd(1) })
}

/// A path's bytes.
pub(crate) fn bytes_of(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// The default algorithm of `ringread sum`.
pub(crate) const DEFAULT_ALGORITHM: Algorithm = Algorithm::Blake3;

/// Ends the process for an error that stopped reading many files: exit status 130 for an interrupt;
/// otherwise (the ring itself failed) the reason, and 1. What was not handed back is not reported.
pub(crate) fn stop(e: ringread::Error) -> ! {
    progress::hide();
    if let ringread::Error::Interrupted { .. } = e {
        std::process::exit(INTERRUPTED_EXIT.into());
    }
    complain(&e);
    std::process::exit(1);
}

/// Standard output in large blocks: flushed when full and at the end, and line by line when it is
/// a terminal (a person watching sees each line as it is done).
pub(crate) struct Output {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    terminal: bool,
}

impl Output {
    pub(crate) fn new() -> Output {
        use std::io::IsTerminal;
        let stdout = std::io::stdout();
        Output {
            terminal: stdout.is_terminal(),
            out: std::io::BufWriter::with_capacity(1 << 16, stdout.lock()),
        }
    }

    /// Writes one line (it ends in `\n`); on a terminal, with the progress bar hidden meanwhile.
    pub(crate) fn line(&mut self, line: &[u8]) -> io::Result<()> {
        use std::io::Write;
        if !self.terminal {
            return self.out.write_all(line);
        }
        progress::suspend(|| {
            self.out.write_all(line)?;
            self.out.flush()
        })
    }

    /// Everything written so far goes out (before a message on standard error, and at the end).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        use std::io::Write;
        self.out.flush()
    }
}

/// The files to read: those given, or standard input.
pub(crate) fn files_or_stdin(files: Vec<std::path::PathBuf>) -> Vec<std::path::PathBuf> {
    if files.is_empty() {
        vec!["-".into()]
    } else {
        files
    }
}

/// An io::Error's words without Rust's "(os error N)".
pub(crate) fn reason(e: &io::Error) -> String {
    ringread::error::Reason(e).to_string()
}

/// Exit status 0 when everything went well, 1 otherwise (as coreutils).
pub(crate) fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
