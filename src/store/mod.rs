//! ringread where Rust's data services already read: an [`object_store::ObjectStore`] for local
//! files (`RingStore`, feature `object-store`) and the parquet crate's `AsyncFileReader`
//! (`ParquetReader`, feature `parquet`), both reading through a [`Driver`](crate::stream::Driver): many reads in
//! flight on its rings, its buffers handed out as [`Bytes`](bytes::Bytes) without a copy, cancel
//! on drop, and the driver's fallback to `pread(2)` where io_uring is refused (said by
//! `RingStore::notice`).
//!
//! DataFusion reads local files through whatever store is registered for `file://`; one line
//! switches a program (and each executor of a distributed one) to ringread:
//!
//! ```ignore
//! ctx.register_object_store(&url::Url::parse("file://")?, Arc::new(RingStore::new()?));
//! ```

#[cfg(any(feature = "object-store", feature = "parquet"))]
mod ahead;
#[cfg(feature = "object-store")]
mod object;
#[cfg(feature = "parquet")]
mod parquet;

#[cfg(feature = "object-store")]
pub use object::{RingStore, DEFAULT_MERGE_GAP};
#[cfg(feature = "parquet")]
pub use parquet::ParquetReader;
