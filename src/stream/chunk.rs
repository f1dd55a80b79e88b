//! [`OwnedChunk`]: a chunk that owns its buffer until dropped.

use std::sync::Arc;

use super::slots::Shared;

/// A run of a file's bytes that owns the buffer they were read into. It is `Send + 'static`, derefs
/// to `&[u8]`, knows its offset in the file, and turns into [`bytes::Bytes`] without copying
/// ([`OwnedChunk::into_bytes`]). Its buffer goes back to its stream when the chunk, or the last
/// `Bytes` made from it, is dropped; until then the stream has one buffer fewer to read into.
///
/// It also implements [`bytes::Buf`], so it can be written out with `write_all_buf` and read through
/// [`tokio_util::io::StreamReader`]; [`offset`](OwnedChunk::offset) follows what has been consumed,
/// and advancing past the last byte gives the buffer back at once.
pub struct OwnedChunk {
    shared: Arc<Shared>,
    slot: usize,
    /// The slot's buffer (held by `shared` while the slot is lent to this chunk).
    buf: *const u8,
    offset: u64,
    start: usize,
    len: usize,
    /// Consumed to the end through [`bytes::Buf::advance`]: the buffer is back with its stream.
    released: bool,
}

// SAFETY: `buf` is only read, and only while the chunk holds its slot (see `bytes`); the buffer
// belongs to `shared`, which is Send + Sync. Nothing else in the chunk is tied to a thread.
unsafe impl Send for OwnedChunk {}
// SAFETY: as above: shared access only reads bytes nobody writes while the chunk lives.
unsafe impl Sync for OwnedChunk {}

impl OwnedChunk {
    pub(super) fn new(
        shared: Arc<Shared>,
        slot: usize,
        buf: *const u8,
        offset: u64,
        len: usize,
    ) -> Self {
        OwnedChunk {
            shared,
            slot,
            buf,
            offset,
            start: 0,
            len,
            released: false,
        }
    }

    /// Where the chunk's (remaining) bytes start in the file. For a pipe: the bytes read before them.
    pub fn offset(&self) -> u64 {
        self.offset + self.start as u64
    }

    /// The chunk's bytes.
    pub fn bytes(&self) -> &[u8] {
        if self.released {
            return &[];
        }
        // SAFETY: the slot is lent to this chunk (the stream marked it `Lent` when it made the chunk
        // and frees it, giving its buffer back to the pool, only in our `Drop` or when `released`
        // is set), so `buf` is alive and nobody writes it; `len` bytes of it (within the buffer)
        // were written by completed reads.
        unsafe { &std::slice::from_raw_parts(self.buf, self.len)[self.start..] }
    }

    /// As a [`bytes::Bytes`], without copying: the buffer goes back when the last clone is dropped.
    pub fn into_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self)
    }

    /// As a borrowed [`crate::Chunk`], to hand to a [`Processor`](crate::Processor).
    pub fn as_chunk(&self) -> crate::Chunk<'_> {
        crate::Chunk::new(self.offset(), self.bytes())
    }
}

impl std::ops::Deref for OwnedChunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl AsRef<[u8]> for OwnedChunk {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl From<OwnedChunk> for bytes::Bytes {
    fn from(c: OwnedChunk) -> bytes::Bytes {
        c.into_bytes()
    }
}

impl bytes::Buf for OwnedChunk {
    fn remaining(&self) -> usize {
        self.len - self.start
    }
    fn chunk(&self) -> &[u8] {
        self.bytes()
    }
    fn advance(&mut self, cnt: usize) {
        assert!(
            cnt <= self.remaining(),
            "advance past the end of an OwnedChunk"
        );
        self.start += cnt;
        if self.start == self.len && !self.released {
            // Nothing is left to read: give the buffer back now rather than at drop, because readers
            // such as `StreamReader` hold the spent chunk while they wait for the next one (with
            // `depth` 1 that wait would otherwise never end).
            self.released = true;
            self.shared.release(self.slot);
        }
    }
}

impl std::fmt::Debug for OwnedChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedChunk")
            .field("offset", &self.offset())
            .field("len", &(self.len - self.start))
            .finish()
    }
}

impl Drop for OwnedChunk {
    fn drop(&mut self) {
        if !self.released {
            self.shared.release(self.slot);
        }
    }
}
