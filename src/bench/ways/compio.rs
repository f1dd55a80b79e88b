//! What a compio user writes (compio 0.19): `compio::fs::File` and `AsyncReadAt::read_at` with owned
//! buffers, one task (`compio::runtime::spawn`) per read, `depth` of them in flight, awaited in file
//! order.
//!
//! compio's own buffers are `Vec<u8>`s; these are 4096-aligned (compio's `IoBufMut` on an aligned
//! allocation) so that the same code reads with `O_DIRECT`. compio registers no buffers and has no
//! read-ahead of its own: each read is one `IORING_OP_READ` into the task's buffer.

use std::io;
use std::path::Path;

use compio::buf::{BufResult, IntoInner, IoBuf, IoBufMut, SetLen};
use compio::io::AsyncReadAt;

use super::owned::{chunk_done, framed, in_order, runtime_error, AlignedBuf};
use super::{open_error, ReadMethod};
use crate::error::Result;
use crate::processor::Processor;

/// `depth` positional reads of `chunk_size` bytes in flight through compio's runtime.
#[derive(Debug, Clone)]
pub struct Compio {
    /// Bytes per read.
    pub chunk_size: usize,
    /// Reads in flight (and buffers).
    pub depth: usize,
    /// Open with `O_DIRECT`.
    pub direct: bool,
}

impl IoBuf for AlignedBuf {
    fn as_init(&self) -> &[u8] {
        self
    }
}

impl SetLen for AlignedBuf {
    unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.cap);
        self.init = len;
    }
}

impl IoBufMut for AlignedBuf {
    fn as_uninit(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        // SAFETY: the arena's single slot holds `cap` bytes (at least) and this buffer owns it; a
        // `MaybeUninit<u8>` view makes no claim about their contents.
        unsafe { std::slice::from_raw_parts_mut(self.arena.slot_ptr(0).cast(), self.cap) }
    }
}

/// Reads chunk `k` into `buf` (more than one read if the kernel returns fewer bytes).
async fn read_chunk(
    file: compio::fs::File,
    mut buf: AlignedBuf,
    pos: u64,
    direct: bool,
) -> io::Result<AlignedBuf> {
    buf.init = 0;
    loop {
        let filled = buf.init;
        let BufResult(res, slice) = file.read_at(buf.slice(filled..), pos + filled as u64).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return Ok(buf),
            Ok(_) if chunk_done(buf.init, buf.cap, direct) => return Ok(buf),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl ReadMethod for Compio {
    fn name(&self) -> String {
        "compio".into()
    }

    fn notice(&self) -> Option<String> {
        Some(
            "compio 0.19: File::read_at with owned buffers, one task per read; a runtime per read \
             of a file (its tasks are !Send, so the runtime lives on the calling thread); no \
             registered buffers (compio has none for files)"
                .into(),
        )
    }

    fn read(&self, path: &Path, proc: &mut (dyn Processor + Send)) -> Result<u64> {
        let (chunk, depth, direct) = (self.chunk_size, self.depth.max(1), self.direct);
        let mut spare = AlignedBuf::many(depth, chunk)?;
        let rt = compio::runtime::Runtime::new().map_err(runtime_error(path, "compio runtime"))?;
        framed(path, proc, |proc| {
            rt.block_on(async {
                let mut opts = compio::fs::OpenOptions::new();
                opts.read(true);
                if direct {
                    opts.custom_flags(libc::O_DIRECT);
                }
                let file = opts.open(path).await.map_err(open_error(path))?;
                in_order(path, chunk, depth, proc, |k, buf| {
                    let buf = buf
                        .or_else(|| spare.pop())
                        .expect("one buffer per read in flight");
                    let task = compio::runtime::spawn(read_chunk(
                        file.clone(),
                        buf,
                        k * chunk as u64,
                        direct,
                    ));
                    async move { task.await.map_err(io::Error::from)? }
                })
                .await
            })
        })
    }
}
