//! Every test of tests/stream.rs again, with the cached fast path off
//! (`ReadOptionsBuilder::cached_fast_path(false)`): each chunk read by the driver's threads.

#[path = "stream.rs"]
mod cases;
