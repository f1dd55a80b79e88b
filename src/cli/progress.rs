//! The progress bar on standard error (indicatif): bytes, rate and ETA of a read, files done of
//! the total, and the file being read.
//!
//! Reading reports through one atomic counter: [`Counted`] wraps a processor's `Prepare` half and
//! adds each chunk's length as a reading thread prepares it (one relaxed add per chunk, never per
//! byte). A ticker thread per job (the files one command reads together) turns the counter into
//! the bar ten times a second; the job's total is the sum of its files' sizes, stat'ed on that
//! thread while reading goes on.
//!
//! On a terminal the bar appears once a job has run for a second, so a quick read shows nothing.
//! When standard error is not a terminal nothing is drawn unless `--progress` asks, and then each
//! update is a line of its own (once a second). `--no-progress`, and `sum -c --quiet`/`--status`,
//! silence it. Standard output is never touched: lines written to it while a bar is on the same
//! terminal are written with the bar hidden ([`suspend`]).

use std::cell::RefCell;
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use ringread::processor::Prepare;
use ringread::Chunk;

/// `--progress` and `--no-progress`, for every command.
#[derive(Debug, Args)]
pub(crate) struct ProgressArgs {
    /// Show progress on standard error at once, even when it is not a terminal (then a line a
    /// second) [default: on a terminal, for reads that last more than a second]
    #[arg(help_heading = "Progress", long, global = true)]
    progress: bool,
    /// Never show progress (wins over --progress; `sum -c --quiet` and `--status` imply it)
    #[arg(help_heading = "Progress", long, global = true)]
    no_progress: bool,
}

impl ProgressArgs {
    /// Where and when to draw; `silent` is a command's own wish for silence (`sum -c --quiet`).
    pub(crate) fn mode(&self, silent: bool) -> Mode {
        let terminal = io::stderr().is_terminal();
        if self.no_progress || silent {
            Mode::Off
        } else if self.progress {
            Mode::Forced { terminal }
        } else if terminal {
            Mode::Terminal
        } else {
            Mode::Off
        }
    }
}

/// Where and when progress is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Never.
    Off,
    /// On the terminal standard error is, once a job has run for [`DELAY`].
    Terminal,
    /// At once (`--progress`): on the terminal, or as lines into a file or pipe.
    Forced {
        /// Whether standard error is a terminal.
        terminal: bool,
    },
}

/// How long a job runs before its bar appears on a terminal: a quick read shows nothing.
const DELAY: Duration = Duration::from_secs(1);

/// Bytes prepared by every read of this process so far.
static BYTES: AtomicU64 = AtomicU64::new(0);

/// The bar on the screen, if one is: what [`suspend`] hides while something else is written.
static VISIBLE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn visible() -> MutexGuard<'static, Option<ProgressBar>> {
    VISIBLE.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// Whether this thread is inside [`suspend`] (which may be called again from within).
    static SUSPENDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (which writes to the terminal) with the bar hidden, then draws the bar again. Within
/// `f`, another `suspend` just runs its own.
pub(crate) fn suspend<R>(f: impl FnOnce() -> R) -> R {
    if SUSPENDED.with(|s| s.get()) {
        return f();
    }
    let bar = visible().clone();
    match bar {
        Some(b) => b.suspend(|| {
            SUSPENDED.with(|s| s.set(true));
            let r = f();
            SUSPENDED.with(|s| s.set(false));
            r
        }),
        None => f(),
    }
}

/// Takes the bar off the screen for good: the process is about to exit.
pub(crate) fn hide() {
    if let Some(bar) = visible().take() {
        bar.finish_and_clear();
    }
}

/// A `Prepare` that counts each chunk's bytes for the bar, then does `P`'s work.
pub(crate) struct Counted<P>(pub P);

impl<P: Prepare> Prepare for Counted<P> {
    type Part = P::Part;
    fn prepare(&self, chunk: &Chunk<'_>) -> P::Part {
        BYTES.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.0.prepare(chunk)
    }
}

impl<P: ringread::Processor> ringread::Processor for Counted<P> {
    fn begin(&mut self) -> std::io::Result<()> {
        self.0.begin()
    }
    fn process(&mut self, chunk: &Chunk<'_>) -> std::io::Result<bool> {
        BYTES.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.0.process(chunk)
    }
    fn finish(&mut self) -> std::io::Result<()> {
        self.0.finish()
    }
}

/// The progress of one command: its jobs, one after another.
pub(crate) struct Progress {
    mode: Mode,
    /// `--max-bytes`: no file counts for more.
    max_bytes: Option<u64>,
    job: RefCell<Option<Job>>,
}

/// Files read together, and the thread that draws their bar.
struct Job {
    files: usize,
    done: Arc<AtomicU64>,
    stop: Option<Sender<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Progress drawn as `mode` says; `max_bytes` caps each file's size.
    pub(crate) fn new(mode: Mode, max_bytes: Option<u64>) -> Progress {
        Progress {
            mode,
            max_bytes,
            job: RefCell::new(None),
        }
    }

    /// The files `names` are about to be read in this order (`sized`: whether their sizes can be
    /// known ahead; not a connection's). Within a job that still expects as many, nothing changes;
    /// otherwise a new job begins.
    pub(crate) fn expect(&self, names: &[PathBuf], sized: bool) {
        if self.mode != Mode::Off && !self.covers(names.len()) {
            self.start(names.to_vec(), sized);
        }
    }

    /// [`Progress::expect`] of one file.
    pub(crate) fn expect_one(&self, name: &Path, sized: bool) {
        if self.mode != Mode::Off && !self.covers(1) {
            self.start(vec![name.to_path_buf()], sized);
        }
    }

    /// One more file of the job is done (read, or failed); the last ends the job.
    pub(crate) fn file_done(&self) {
        let finished = match self.job.borrow().as_ref() {
            Some(job) => job.done.fetch_add(1, Ordering::Relaxed) + 1 >= job.files as u64,
            None => false,
        };
        if finished {
            self.end();
        }
    }

    /// Ends the job: its bar is cleared (or, in a file or pipe, its last line written).
    pub(crate) fn end(&self) {
        let job = self.job.borrow_mut().take();
        if let Some(mut job) = job {
            job.stop.take();
            if let Some(t) = job.ticker.take() {
                let _ = t.join();
            }
        }
    }

    fn covers(&self, files: usize) -> bool {
        self.job.borrow().as_ref().is_some_and(|job| {
            let left = (job.files as u64).saturating_sub(job.done.load(Ordering::Relaxed));
            left >= files as u64
        })
    }

    fn start(&self, names: Vec<PathBuf>, sized: bool) {
        self.end();
        let done = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = mpsc::channel();
        let plan = Plan {
            mode: self.mode,
            names,
            sized,
            max_bytes: self.max_bytes,
            done: done.clone(),
            base: BYTES.load(Ordering::Relaxed),
            start: Instant::now(),
        };
        let files = plan.names.len();
        let ticker = std::thread::Builder::new()
            .name("ringread-progress".into())
            .spawn(move || plan.run(stopped))
            .ok();
        *self.job.borrow_mut() = Some(Job {
            files,
            done,
            stop: Some(stop),
            ticker,
        });
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.end();
    }
}

/// What a ticker draws.
struct Plan {
    mode: Mode,
    /// The job's files, in the order they are read.
    names: Vec<PathBuf>,
    /// Whether their sizes can be known ahead (not a connection's).
    sized: bool,
    /// `--max-bytes`: no file counts for more.
    max_bytes: Option<u64>,
    /// The files done so far.
    done: Arc<AtomicU64>,
    /// [`BYTES`] when the job began.
    base: u64,
    start: Instant,
}

impl Plan {
    /// The bytes the files hold (a file that cannot be stat'ed fails at once: 0), or `None` if one
    /// is a stream of unknown length, or the job ends first.
    fn total(&self, stop: &Receiver<()>) -> Option<u64> {
        if !self.sized {
            return None;
        }
        let mut total = 0u64;
        for (i, name) in self.names.iter().enumerate() {
            if i % 1024 == 1023 && matches!(stop.try_recv(), Err(TryRecvError::Disconnected)) {
                return None;
            }
            let meta = if name.as_os_str() == "-" {
                // A copy of the descriptor, closed after: standard input itself stays as it is.
                io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .and_then(|fd| std::fs::File::from(fd).metadata())
            } else {
                std::fs::metadata(name)
            };
            let size = match meta {
                Ok(m) if m.is_file() => m.len(),
                Ok(m) if m.is_dir() => 0,
                Ok(_) => self.max_bytes?,
                Err(_) => 0,
            };
            total += self.max_bytes.map_or(size, |max| size.min(max));
        }
        Some(total)
    }

    /// Draws the bar until the job ends (`stop` hangs up).
    fn run(self, stop: Receiver<()>) {
        let (terminal, delay) = match self.mode {
            Mode::Off => return,
            Mode::Terminal => (true, DELAY),
            Mode::Forced { terminal } => (terminal, Duration::ZERO),
        };
        let ended = |r: Result<(), RecvTimeoutError>| r != Err(RecvTimeoutError::Timeout);
        // A forced bar is drawn even for a job that is over before it starts: at least its last
        // state.
        if !delay.is_zero() && ended(stop.recv_timeout(delay)) {
            return;
        }
        let total = self.total(&stop);
        let lines = (!terminal).then(Lines::default);
        let (target, emit) = draw_target(lines.as_ref());
        // Brought up to date before it is drawn, and its rate counted from there: not from the
        // bytes read before the bar appeared.
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden())
            .with_style(style(total.is_some(), self.names.len() > 1))
            .with_elapsed(self.start.elapsed());
        let mut shown = usize::MAX;
        self.update(&bar, &mut shown);
        bar.reset_eta();
        // Visible before its first drawing, so that what is written meanwhile hides it.
        *visible() = Some(bar.clone());
        bar.set_draw_target(target);
        bar.tick();
        emit();
        let every = if terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        while !ended(stop.recv_timeout(every)) {
            self.update(&bar, &mut shown);
            emit();
        }
        // The bar may have been taken off by [`hide`] already.
        if visible().take().is_none() {
            return;
        }
        self.update(&bar, &mut shown);
        if terminal {
            bar.finish_and_clear();
        } else {
            bar.finish();
            emit();
        }
    }

    /// Brings the bar up to date: bytes, files done, and the file being read (the first not done;
    /// `shown` is the one it shows).
    fn update(&self, bar: &ProgressBar, shown: &mut usize) {
        let files = self.names.len();
        let done = (self.done.load(Ordering::Relaxed) as usize).min(files);
        if files > 1 {
            bar.set_prefix(format!("{done}/{files} files "));
        }
        let current = done.min(files.saturating_sub(1));
        if current != *shown {
            *shown = current;
            if let Some(name) = self.names.get(current) {
                bar.set_message(name.display().to_string());
            }
        }
        bar.set_position(BYTES.load(Ordering::Relaxed).saturating_sub(self.base));
    }
}

/// Where a bar draws: the terminal (standard error), or `lines` for a file or pipe; and what writes
/// out its last drawing there (nothing for a terminal, which the bar draws on itself).
fn draw_target(lines: Option<&Lines>) -> (ProgressDrawTarget, impl Fn()) {
    let target = match lines {
        None => ProgressDrawTarget::stderr(),
        Some(l) => ProgressDrawTarget::term_like(Box::new(l.clone())),
    };
    let lines = lines.cloned();
    (target, move || {
        if let Some(l) = &lines {
            l.emit();
        }
    })
}

/// The bar's look: with a total, bytes of the total, rate, ETA and a bar; without one, bytes,
/// rate and the time so far.
fn style(total: bool, many: bool) -> ProgressStyle {
    let files = if many { "{prefix}" } else { "" };
    let template = if total {
        format!(
            "{files}{{wide_msg}} {{binary_bytes}}/{{binary_total_bytes}} \
             {{binary_bytes_per_sec}} ETA {{eta}} [{{bar:20}}]"
        )
    } else {
        format!("{files}{{wide_msg}} {{binary_bytes}} {{binary_bytes_per_sec}} {{elapsed}}")
    };
    ProgressStyle::with_template(&template)
        .expect("a valid template")
        .progress_chars("=> ")
}

/// Standard error as a file or pipe: the bar is drawn into a buffer, and [`Lines::emit`] writes
/// its last drawing as a line of its own (no cursor movement or clearing), unless it is the line
/// written last; so a file gets one line per tick, however many times the bar redrew.
#[derive(Debug, Default, Clone)]
struct Lines(Arc<Mutex<Drawn>>);

#[derive(Debug, Default)]
struct Drawn {
    /// The drawing under way.
    building: String,
    /// The last whole drawing.
    last: String,
    /// What was written last.
    emitted: String,
}

impl Lines {
    fn drawn(&self) -> MutexGuard<'_, Drawn> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the last drawing, if it is new.
    fn emit(&self) {
        let mut d = self.drawn();
        if d.last.is_empty() || d.last == d.emitted {
            return;
        }
        let _ = io::stderr().write_all(d.last.as_bytes());
        d.emitted = d.last.clone();
    }
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.write_str(s)?;
        self.write_str("")
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        let mut d = self.drawn();
        let text = s.trim_end_matches(' ');
        if text.is_empty() {
            // The spaces a terminal's line is filled with: the line ends here.
            if !d.building.is_empty() && !d.building.ends_with('\n') {
                d.building.push('\n');
            }
        } else {
            d.building.push_str(text);
        }
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        // The end of a drawing.
        let mut d = self.drawn();
        d.last = std::mem::take(&mut d.building);
        if !d.last.is_empty() && !d.last.ends_with('\n') {
            d.last.push('\n');
        }
        Ok(())
    }
}

/// Standard error for `bench`'s lines, with a bar of its timed runs under them while progress is
/// on (the lines go above it); without progress, the lines as they are.
pub(crate) struct BenchLog {
    bar: Option<ProgressBar>,
    /// Whether the bar is on a terminal (cleared at the end) rather than lines in a file or pipe.
    terminal: bool,
    /// For a file or pipe: what writes out the bar's last drawing.
    emit: Box<dyn Fn()>,
    pending: Vec<u8>,
}

impl BenchLog {
    /// A log whose bar expects `runs` timed runs.
    pub(crate) fn new(mode: Mode, runs: u64) -> BenchLog {
        let lines = match mode {
            Mode::Off => {
                return BenchLog {
                    bar: None,
                    terminal: false,
                    emit: Box::new(|| {}),
                    pending: Vec::new(),
                }
            }
            Mode::Terminal | Mode::Forced { terminal: true } => None,
            Mode::Forced { terminal: false } => Some(Lines::default()),
        };
        let (target, emit) = draw_target(lines.as_ref());
        let style = ProgressStyle::with_template(
            "bench: {pos}/{len} timed runs [{bar:25}] {elapsed} ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(runs), target).with_style(style);
        bar.tick();
        emit();
        BenchLog {
            bar: Some(bar),
            terminal: lines.is_none(),
            emit: Box::new(emit),
            pending: Vec::new(),
        }
    }

    fn line(&self, bar: &ProgressBar, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        if is_run_line(&text) {
            if bar.position() + 1 > bar.length().unwrap_or(0) {
                bar.inc_length(1);
            }
            bar.inc(1);
        }
        bar.println(text.trim_end_matches('\n'));
        (self.emit)();
    }
}

/// Whether `line` reports a timed run (`warm run 2/5: uring ...`).
fn is_run_line(line: &str) -> bool {
    line.split_once(" run ").is_some_and(|(_, rest)| {
        rest.split_once(':').is_some_and(|(n, _)| {
            n.split_once('/').is_some_and(|(i, of)| {
                !i.is_empty()
                    && !of.is_empty()
                    && i.bytes().all(|b| b.is_ascii_digit())
                    && of.bytes().all(|b| b.is_ascii_digit())
            })
        })
    })
}

impl Write for BenchLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(bar) = &self.bar else {
            return io::stderr().write(buf);
        };
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.line(bar, &line);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl Drop for BenchLog {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            if !self.pending.is_empty() {
                let rest = std::mem::take(&mut self.pending);
                self.line(&bar, &rest);
            }
            if self.terminal {
                bar.finish_and_clear();
            } else {
                bar.finish();
                (self.emit)();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_run_line;

    #[test]
    fn run_lines() {
        assert!(is_run_line("warm run 2/5: uring           3.10 GiB/s"));
        assert!(is_run_line("pipe run 10/10: epoll  1.00 GiB/s"));
        assert!(!is_run_line("warm: checking what uring reads ..."));
        assert!(!is_run_line("generating a 1073741824 byte random file ..."));
        assert!(!is_run_line("a run /5: x"));
    }
}
