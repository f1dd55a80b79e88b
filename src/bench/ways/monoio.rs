//! What a monoio user writes (monoio 0.2): `monoio::fs::File::read_at` with owned buffers, one task
//! (`monoio::spawn`) per read, `depth` of them in flight, awaited in file order, on a runtime of
//! the io_uring driver.
//!
//! monoio is thread-per-core: its runtime, files and tasks are `!Send`, so the runtime lives on the
//! calling thread and reads on that one core only. It registers no buffers (its issue #38, open
//! since 2021); the buffers are 4096-aligned so that the same code reads with `O_DIRECT`.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut};

use super::owned::{chunk_done, framed, in_order, runtime_error, AlignedBuf};
use super::{open_error, ReadMethod};
use crate::error::Result;
use crate::processor::Processor;

/// `depth` reads of `chunk_size` bytes in flight through monoio's io_uring runtime.
#[derive(Debug, Clone)]
pub struct Monoio {
    /// Bytes per read.
    pub chunk_size: usize,
    /// Reads in flight (and buffers).
    pub depth: usize,
    /// Open with `O_DIRECT`.
    pub direct: bool,
}

// SAFETY: the pointer is the arena's single slot, a heap allocation that stays put while the value
// lives (moving the value moves no bytes); `bytes_init` never exceeds the slot's `cap` bytes.
unsafe impl IoBuf for AlignedBuf {
    fn read_ptr(&self) -> *const u8 {
        self.arena.slot_ptr(0)
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
}

// SAFETY: as for `IoBuf`; `set_init` records only what the kernel reported writing.
unsafe impl IoBufMut for AlignedBuf {
    fn write_ptr(&mut self) -> *mut u8 {
        self.arena.slot_ptr(0)
    }
    fn bytes_total(&mut self) -> usize {
        self.cap
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.init = pos;
    }
}

/// Reads chunk `k` into `buf` (more than one read if the kernel returns fewer bytes).
async fn read_chunk(
    file: Rc<monoio::fs::File>,
    mut buf: AlignedBuf,
    pos: u64,
    direct: bool,
) -> io::Result<AlignedBuf> {
    buf.init = 0;
    loop {
        let filled = buf.init;
        let cap = buf.cap;
        let (res, slice) = file
            .read_at(buf.slice_mut(filled..cap), pos + filled as u64)
            .await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return Ok(buf),
            Ok(_) if chunk_done(buf.init, cap, direct) => return Ok(buf),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl ReadMethod for Monoio {
    fn name(&self) -> String {
        "monoio".into()
    }

    fn notice(&self) -> Option<String> {
        Some(
            "monoio 0.2: File::read_at with owned buffers, one task per read; its runtime and \
             files are !Send (thread-per-core), so it reads on the calling thread alone, one \
             runtime per read of a file; no registered buffers (monoio has none)"
                .into(),
        )
    }

    fn read(&self, path: &Path, proc: &mut (dyn Processor + Send)) -> Result<u64> {
        let (chunk, depth, direct) = (self.chunk_size, self.depth.max(1), self.direct);
        let mut spare = AlignedBuf::many(depth, chunk)?;
        let entries = u32::try_from(depth.next_power_of_two().max(8)).unwrap_or(4096);
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(entries)
            .build()
            .map_err(runtime_error(path, "monoio runtime"))?;
        framed(path, proc, |proc| {
            rt.block_on(async {
                let mut opts = monoio::fs::OpenOptions::new();
                opts.read(true);
                if direct {
                    opts.custom_flags(libc::O_DIRECT);
                }
                let file = Rc::new(opts.open(path).await.map_err(open_error(path))?);
                in_order(path, chunk, depth, proc, |k, buf| {
                    let buf = buf
                        .or_else(|| spare.pop())
                        .expect("one buffer per read in flight");
                    monoio::spawn(read_chunk(file.clone(), buf, k * chunk as u64, direct))
                })
                .await
            })
        })
    }
}
