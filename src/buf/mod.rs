//! Buffers: the aligned arena the kernel reads into, and the [`Chunk`] a processor sees.
//!
//! An `Arena` is one allocation, aligned to [`ALIGN`], cut into equal slots of
//! one chunk each. Each reading thread owns one arena; the slots are what is registered with the kernel.
//! A processor only ever borrows a slot's filled bytes through a [`Chunk`], for the length of one call,
//! so it can never hold on to memory the ring will write again.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::options::ALIGN;

/// The size of a transparent huge page on x86-64 and most arm64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// A run of file bytes handed to a processor, in file order: its offset in the file and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    offset: u64,
    data: &'a [u8],
    input: usize,
}

impl<'a> Chunk<'a> {
    /// A chunk of `data` that starts at byte `offset` of its file.
    pub fn new(offset: u64, data: &'a [u8]) -> Self {
        Chunk {
            offset,
            data,
            input: 0,
        }
    }
    /// The same chunk, of input `input` of a call that reads several
    /// ([`Reader::read_each`](crate::Reader::read_each)).
    pub(crate) fn of_input(self, input: usize) -> Self {
        Chunk { input, ..self }
    }
    /// Where the chunk starts in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Which input the chunk is of, in a call that reads several at once
    /// ([`Reader::read_each`](crate::Reader::read_each): the input's position in
    /// the list); 0 in a call that reads one file.
    pub fn input(&self) -> usize {
        self.input
    }
    /// The chunk's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }
    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// Whether the chunk holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl std::ops::Deref for Chunk<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

/// One aligned allocation of `slots` buffers of `slot_len` bytes each.
pub(crate) struct Arena {
    ptr: NonNull<u8>,
    layout: Layout,
    slot_len: usize,
    slots: usize,
}

// SAFETY: the arena owns its memory outright (like a Box<[u8]>); moving it to another thread moves
// that ownership. Who may write into a slot while the kernel owns it is governed by the reader.
unsafe impl Send for Arena {}

impl Arena {
    /// Allocates `slots` buffers of `slot_len` bytes, each starting on an [`ALIGN`] boundary.
    pub(crate) fn new(slots: usize, slot_len: usize) -> Result<Arena> {
        let stride = slot_len.div_ceil(ALIGN) * ALIGN;
        let bytes = stride
            .checked_mul(slots)
            .ok_or(Error::OutOfMemory { bytes: usize::MAX })?;
        // Arenas of 2 MiB or more sit on 2 MiB boundaries and ask for transparent huge pages: the
        // kernel then pins (for registration or each O_DIRECT read) a few huge pages instead of
        // hundreds of small ones.
        let huge = bytes >= HUGE_PAGE;
        let align = if huge { HUGE_PAGE } else { ALIGN };
        let layout = Layout::from_size_align(bytes.max(ALIGN), align)
            .map_err(|_| Error::OutOfMemory { bytes })?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(raw).ok_or(Error::OutOfMemory { bytes })?;
        if huge {
            // SAFETY: the range is the allocation just made; MADV_HUGEPAGE is advice only and
            // changes no contents. Failure (THP off) is harmless.
            unsafe { libc::madvise(raw.cast(), layout.size(), libc::MADV_HUGEPAGE) };
        }
        Ok(Arena {
            ptr,
            layout,
            slot_len: stride,
            slots,
        })
    }

    /// The number of slots.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// The bytes of one slot (its stride: the chunk size rounded up to [`ALIGN`]).
    pub(crate) fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// The start of slot `i`. Writing through it is the caller's business (the kernel does).
    pub(crate) fn slot_ptr(&self, i: usize) -> *mut u8 {
        assert!(i < self.slots, "slot {i} out of {}", self.slots);
        // SAFETY: i < slots, so the offset stays inside the allocation.
        unsafe { self.ptr.as_ptr().add(i * self.slot_len) }
    }

    /// The first `len` bytes of slot `i`.
    ///
    /// # Safety
    /// No read into this slot may be in flight, and `len` bytes of it must have been written
    /// (by the kernel) since it was allocated.
    pub(crate) unsafe fn slot(&self, i: usize, len: usize) -> &[u8] {
        assert!(len <= self.slot_len);
        // SAFETY: in bounds (asserted); initialised and not written concurrently (the caller's promise).
        unsafe { std::slice::from_raw_parts(self.slot_ptr(i), len) }
    }

    /// `iovec`s describing every slot, for `IORING_REGISTER_BUFFERS`.
    pub(crate) fn iovecs(&self, count: usize) -> Vec<libc::iovec> {
        (0..count.min(self.slots))
            .map(|i| libc::iovec {
                iov_base: self.slot_ptr(i).cast(),
                iov_len: self.slot_len,
            })
            .collect()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout. The reader never drops an arena while a
        // read into it is in flight: it reaps every read first, or leaks the arena if it cannot.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_and_disjoint() {
        let a = Arena::new(3, 5000).unwrap();
        assert_eq!(a.slot_len(), 8192);
        for i in 0..3 {
            assert_eq!(a.slot_ptr(i) as usize % ALIGN, 0);
        }
        assert_eq!(a.slot_ptr(1) as usize - a.slot_ptr(0) as usize, 8192);
        assert_eq!(a.iovecs(2).len(), 2);
    }

    #[test]
    fn impossible_allocation_is_an_error_not_an_abort() {
        assert!(matches!(
            Arena::new(usize::MAX / 8192, 8192),
            Err(Error::OutOfMemory { .. })
        ));
    }
}
