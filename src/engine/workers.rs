//! The threads a reader keeps for its lanes: started on first need, parked between files (blocked on
//! a channel), ended when the reader is dropped. Lane 0 always runs on the caller's thread, so a
//! file of one chunk — or a reader with one lane — starts no thread at all.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

/// A job for a kept thread, its borrows erased (see [`Workers::scope`]).
type Job = Box<dyn FnOnce() + Send + 'static>;

struct Worker {
    jobs: Sender<Job>,
    handle: JoinHandle<()>,
}

/// Kept threads, one per lane past the first.
#[derive(Default)]
pub(crate) struct Workers {
    threads: Vec<Worker>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// Waits, when dropped, until every job sent out has reported back: the borrows a job holds stay
/// valid for as long as it may run, even when the caller's own work unwinds.
struct Pending<'a> {
    done: &'a Receiver<(usize, bool)>,
    left: usize,
    results: Vec<bool>,
}

impl Pending<'_> {
    fn wait(&mut self) {
        while self.left > 0 {
            match self.done.recv() {
                Ok((j, clean)) => {
                    self.results[j] = clean;
                    self.left -= 1;
                }
                // Every sender is gone: no job can still be running (each holds one until it ends).
                Err(_) => self.left = 0,
            }
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.wait();
    }
}

impl Workers {
    /// How many threads are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.threads.len()
    }

    fn worker(&mut self, j: usize) -> io::Result<&Worker> {
        while self.threads.len() <= j {
            let (jobs, rx) = channel::<Job>();
            let handle = std::thread::Builder::new()
                .name(format!("ringread-lane{}", self.threads.len() + 1))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
            self.threads.push(Worker { jobs, handle });
        }
        Ok(&self.threads[j])
    }

    /// Runs `others[j]` on kept thread `j` and `first` on the calling thread, and returns when all
    /// have returned: `first`'s result, then the others' in order. A thread that cannot be started
    /// runs nothing: `on_spawn_error` hears of it before `first` runs, and that job's result is
    /// `false`, as is a job's that panicked.
    pub(crate) fn scope<'s, F, G>(
        &mut self,
        others: Vec<F>,
        first: G,
        on_spawn_error: impl FnOnce(io::Error),
    ) -> Vec<bool>
    where
        F: FnOnce() -> bool + Send + 's,
        G: FnOnce() -> bool,
    {
        let (done_tx, done_rx) = channel::<(usize, bool)>();
        let mut pending = Pending {
            done: &done_rx,
            left: 0,
            results: vec![false; others.len() + 1],
        };
        let mut spawn_error = None;
        for (j, f) in others.into_iter().enumerate() {
            let worker = match self.worker(j) {
                Ok(w) => w,
                Err(e) => {
                    spawn_error = Some(e);
                    break;
                }
            };
            let done = done_tx.clone();
            let job: Box<dyn FnOnce() + Send + 's> = Box::new(move || {
                let clean = catch_unwind(AssertUnwindSafe(f)).unwrap_or(false);
                let _ = done.send((j + 1, clean));
            });
            // SAFETY: only the lifetime changes (the layout of a boxed trait object does not depend
            // on it). The job borrows data that lives for 's, which outlasts this call; this call
            // does not return, and does not finish unwinding, before `pending` has seen the job
            // report back (its Drop waits), and a job reports back only as its last act. A job
            // dropped unrun drops its sender, which `pending` also notices.
            let job: Job =
                unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 's>, Job>(job) };
            if worker.jobs.send(job).is_ok() {
                pending.left += 1;
            }
        }
        drop(done_tx);
        if let Some(e) = spawn_error {
            on_spawn_error(e);
        }
        let clean = first();
        pending.wait();
        pending.results[0] = clean;
        std::mem::take(&mut pending.results)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in self.threads.drain(..) {
            drop(w.jobs); // the thread's recv fails, and it ends
            let _ = w.handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_kept_across_scopes_and_borrows_are_waited_for() {
        let mut w = Workers::default();
        for round in 0..20 {
            let mut seen = vec![0u64; 3];
            let (a, rest) = seen.split_at_mut(1);
            let (b, c) = rest.split_at_mut(1);
            let jobs: Vec<Box<dyn FnOnce() -> bool + Send>> = vec![
                Box::new(|| {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    b[0] = round + 1;
                    true
                }),
                Box::new(|| {
                    c[0] = round + 2;
                    round % 2 == 0
                }),
            ];
            let r = w.scope(
                jobs,
                || {
                    a[0] = round;
                    true
                },
                |_| panic!("spawn"),
            );
            assert_eq!(r, vec![true, true, round % 2 == 0]);
            assert_eq!(seen, vec![round, round + 1, round + 2]);
        }
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn a_panicking_job_reports_false_and_the_thread_survives() {
        let mut w = Workers::default();
        let jobs: Vec<Box<dyn FnOnce() -> bool + Send>> = vec![Box::new(|| panic!("in a lane"))];
        assert_eq!(w.scope(jobs, || true, |_| {}), vec![true, false]);
        let jobs: Vec<Box<dyn FnOnce() -> bool + Send>> = vec![Box::new(|| true)];
        assert_eq!(w.scope(jobs, || true, |_| {}), vec![true, true]);
        assert_eq!(w.len(), 1);
    }
}
