//! What a tokio-uring user writes: a `FixedBufPool` of registered buffers and `read_fixed_at` with
//! several reads in flight, awaited in file order.
//!
//! The buffers are 4096-aligned (tokio-uring's own are `Vec`s, which `O_DIRECT` refuses), so the same
//! code serves buffered and direct reads.

use std::collections::VecDeque;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tokio_uring::buf::fixed::FixedBufPool;
use tokio_uring::buf::{BoundedBuf, IoBuf, IoBufMut};

use super::owned::AlignedBuf;
use super::{open_error, ReadMethod};
use crate::buf::Chunk;
use crate::error::{Error, Result};
use crate::processor::Processor;

/// `depth` reads of `chunk_size` bytes in flight through tokio-uring 0.5.
#[derive(Debug, Clone)]
pub struct TokioUring {
    /// Bytes per read.
    pub chunk_size: usize,
    /// Reads in flight (and registered buffers).
    pub depth: usize,
    /// Open with `O_DIRECT`.
    pub direct: bool,
}

// The buffers are 4096-aligned, which tokio-uring can register.
// SAFETY: the pointer is the arena's single slot, which stays put (a heap allocation) for as long
// as the value lives; bytes_init never exceeds bytes_total.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.arena.slot_ptr(0)
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
    fn bytes_total(&self) -> usize {
        self.cap
    }
}

// SAFETY: as for IoBuf; set_init only records what the kernel reported writing.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.arena.slot_ptr(0)
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.init = self.init.max(pos);
    }
}

impl ReadMethod for TokioUring {
    fn name(&self) -> String {
        "tokio-uring".into()
    }

    fn read(&self, path: &Path, proc: &mut (dyn Processor + Send)) -> Result<u64> {
        let chunk = self.chunk_size;
        let depth = self.depth.max(1);
        let direct = self.direct;
        let path_buf = path.to_path_buf();
        let fail = |offset, source| Error::Process {
            path: path.into(),
            offset,
            source,
        };
        let bufs = AlignedBuf::many(depth, chunk)?;
        proc.begin().map_err(|e| fail(0, e))?;
        let p = &mut *proc;
        let result: Result<u64> = tokio_uring::start(async move {
            let mut std_opts = std::fs::OpenOptions::new();
            std_opts.read(true);
            if direct {
                std_opts.custom_flags(libc::O_DIRECT);
            }
            let std_file = std_opts.open(&path_buf).map_err(open_error(&path_buf))?;
            let file = std::rc::Rc::new(tokio_uring::fs::File::from_std(std_file));
            let pool = std::rc::Rc::new(FixedBufPool::new(bufs));
            pool.register().map_err(|source| Error::Ring {
                path: path_buf.clone(),
                op: "register buffers",
                source,
            })?;
            let mut in_flight = VecDeque::new();
            let mut next = 0u64;
            let mut offset = 0u64;
            let mut eof = false;
            let spawn_read = |k: u64, pool: &std::rc::Rc<FixedBufPool<AlignedBuf>>| {
                let file = file.clone();
                let pool = pool.clone();
                tokio_uring::spawn(async move {
                    let mut buf = pool.next(chunk).await;
                    let pos = k * chunk as u64;
                    let mut filled = 0usize;
                    loop {
                        let (res, b) = file
                            .read_fixed_at(buf.slice(filled..), pos + filled as u64)
                            .await;
                        buf = b.into_inner();
                        match res {
                            Ok(0) => break,
                            Ok(n) => {
                                filled += n;
                                if filled == chunk || (direct && filled % 4096 != 0) {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return (Err(e), buf, filled),
                        }
                    }
                    (Ok(()), buf, filled)
                })
            };
            while in_flight.len() < depth {
                in_flight.push_back(spawn_read(next, &pool));
                next += 1;
            }
            while let Some(h) = in_flight.pop_front() {
                let (res, buf, filled) = h.await.expect("a read task panicked");
                if eof {
                    continue;
                }
                if filled > 0 {
                    let go_on = p
                        .process(&Chunk::new(offset, &buf[..filled]))
                        .map_err(|e| fail(offset, e))?;
                    offset += filled as u64;
                    if !go_on {
                        eof = true;
                    }
                }
                if let Err(source) = res {
                    return Err(Error::Read {
                        path: path_buf.clone(),
                        offset,
                        source,
                    });
                }
                drop(buf);
                if filled < chunk {
                    eof = true;
                } else if !eof {
                    in_flight.push_back(spawn_read(next, &pool));
                    next += 1;
                }
            }
            Ok(offset)
        });
        let bytes = result?;
        proc.finish().map_err(|e| fail(bytes, e))?;
        Ok(bytes)
    }
}
