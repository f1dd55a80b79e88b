//! A pool of threads doing `pread(2)` of chunks, reassembled in file order on the calling thread:
//! what a program without io_uring writes to keep several reads in flight.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use super::{open_error, ReadMethod};
use crate::buf::{Arena, Chunk};
use crate::error::{Error, Result};
use crate::options::ALIGN;
use crate::processor::Processor;

/// `threads` threads, `depth` buffers of `chunk_size` bytes, optionally `O_DIRECT`.
#[derive(Debug, Clone)]
pub struct PreadPool {
    /// Reading threads.
    pub threads: usize,
    /// Buffers (reads in flight at most).
    pub depth: usize,
    /// Bytes per read.
    pub chunk_size: usize,
    /// Read with `O_DIRECT` (the unaligned tail through a buffered descriptor).
    pub direct: bool,
}

/// A read chunk on its way to the consumer: chunk number, buffer slot, bytes, error.
type Done = (u64, usize, usize, Option<std::io::Error>);

impl ReadMethod for PreadPool {
    fn name(&self) -> String {
        "pread-pool".into()
    }

    fn read(&self, path: &Path, proc: &mut (dyn Processor + Send)) -> Result<u64> {
        let file = File::open(path).map_err(open_error(path))?;
        let direct = if self.direct {
            Some(
                File::options()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(path)
                    .map_err(open_error(path))?,
            )
        } else {
            None
        };
        let depth = self.depth.max(1);
        let chunk = self.chunk_size;
        let arena = Arena::new(depth, chunk)?;
        let (free_tx, free_rx) = sync_channel::<usize>(depth);
        for i in 0..depth {
            free_tx.send(i).expect("the channel holds depth slots");
        }
        let free_rx = Arc::new(Mutex::new(free_rx));
        let (done_tx, done_rx) = sync_channel::<Done>(depth);
        let next = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let base = arena.slot_ptr(0) as usize;
        let stride = if depth > 1 {
            arena.slot_ptr(1) as usize - base
        } else {
            0
        };
        let fd = file.as_raw_fd();
        let dfd = direct.as_ref().map(|f| f.as_raw_fd());

        proc.begin().map_err(|source| Error::Process {
            path: path.into(),
            offset: 0,
            source,
        })?;
        let result = std::thread::scope(|s| {
            for _ in 0..self.threads.max(1) {
                let (free_rx, done_tx, next, stop) =
                    (free_rx.clone(), done_tx.clone(), &next, &stop);
                s.spawn(move || loop {
                    let slot = match free_rx.lock().map(|rx| rx.recv()) {
                        Ok(Ok(slot)) => slot,
                        _ => return,
                    };
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let buf = (base + slot * stride) as *mut u8;
                    let (n, err) = pread_full(fd, dfd, buf, chunk, k * chunk as u64);
                    if done_tx.send((k, slot, n, err)).is_err() {
                        return;
                    }
                });
            }
            drop(done_tx);
            let r = consume(path, &arena, depth, chunk, &done_rx, &free_tx, proc);
            stop.store(true, Ordering::Relaxed);
            // Wake every worker so none waits on a buffer forever, then let them see the channel close.
            for _ in 0..self.threads.max(1) {
                let _ = free_tx.try_send(usize::MAX);
            }
            drop(free_tx);
            // Drain completions so that no worker blocks on a full channel.
            while done_rx.recv().is_ok() {}
            r
        });
        let bytes = result?;
        proc.finish().map_err(|source| Error::Process {
            path: path.into(),
            offset: bytes,
            source,
        })?;
        Ok(bytes)
    }
}

fn consume(
    path: &Path,
    arena: &Arena,
    depth: usize,
    chunk: usize,
    done_rx: &Receiver<Done>,
    free_tx: &std::sync::mpsc::SyncSender<usize>,
    proc: &mut (dyn Processor + Send),
) -> Result<u64> {
    let mut window: Vec<Option<Done>> = (0..depth).map(|_| None).collect();
    let mut want = 0u64;
    let mut bytes = 0u64;
    loop {
        while window[(want % depth as u64) as usize].is_none() {
            let d = done_rx.recv().expect("workers outlive the consumer");
            let i = (d.0 % depth as u64) as usize;
            window[i] = Some(d);
        }
        let (_, slot, n, err) = window[(want % depth as u64) as usize]
            .take()
            .expect("present");
        if n > 0 {
            // SAFETY: the worker finished writing n bytes into this slot before sending it, and
            // the slot goes back to the free list only after this borrow ends.
            let data = unsafe { arena.slot(slot, n) };
            let go_on =
                proc.process(&Chunk::new(bytes, data))
                    .map_err(|source| Error::Process {
                        path: path.into(),
                        offset: bytes,
                        source,
                    })?;
            bytes += n as u64;
            if !go_on {
                return Ok(bytes);
            }
        }
        if let Some(source) = err {
            return Err(Error::Read {
                path: path.into(),
                offset: bytes,
                source,
            });
        }
        if n < chunk {
            return Ok(bytes);
        }
        let _ = free_tx.send(slot);
        want += 1;
    }
}

/// Reads until `len` bytes or the end of the file; returns the bytes read and any error.
fn pread_full(
    fd: i32,
    dfd: Option<i32>,
    buf: *mut u8,
    len: usize,
    offset: u64,
) -> (usize, Option<std::io::Error>) {
    let mut filled = 0;
    while filled < len {
        let fd = match dfd {
            Some(d) if filled % ALIGN == 0 => d,
            _ => fd,
        };
        // SAFETY: buf .. buf + len is a slot this thread took from the free list; nothing else
        // touches it until it is sent to the consumer.
        let n = unsafe {
            libc::pread(
                fd,
                buf.add(filled).cast(),
                len - filled,
                (offset + filled as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return (filled, Some(e));
        }
        if n == 0 {
            break;
        }
        filled += n as usize;
    }
    (filled, None)
}
