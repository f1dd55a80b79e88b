//! The tokio way for streams: what an async user writes today. A socket becomes a
//! `tokio::net::TcpStream`, a pipe a `tokio::net::unix::pipe::Receiver`, read in a loop on a
//! current-thread runtime (tokio drives both with epoll through mio). Many streams are many futures
//! polled together on that one thread, each with its own buffer, as a task per connection would be.
//!
//! A cancel handle's `eventfd` is registered once with the runtime ([`AsyncFd`]) and every read
//! races it, so cancelling wakes a read waiting for data. The reads are readiness-driven (nothing
//! of ours is in the kernel between polls), so a panic of the processor unwinds as is: the runtime
//! and the descriptors go with it, their flags restored.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, Interest};

use super::epoll::NonBlocking;
use super::{hand_over, read_error, Deliver, Stream, StreamOptions};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::ring::StreamKind;

/// Reads every stream to its end (or error) with tokio, all on one current-thread runtime.
pub(super) fn run(
    streams: &[Stream<'_>],
    opts: &StreamOptions,
    deliver: &mut Deliver<'_>,
) -> Result<Vec<Result<u64>>> {
    let Some(first) = streams.first() else {
        return Ok(Vec::new());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| Error::Open {
            path: first.name.to_path_buf(),
            source,
        })?;
    // tokio makes the descriptions non-blocking: their flags are restored when these go.
    let mut guards = Vec::with_capacity(streams.len());
    for s in streams {
        guards.push(NonBlocking::set(s.fd).map_err(|source| Error::Open {
            path: s.name.to_path_buf(),
            source,
        })?);
    }
    let deliver = RefCell::new(deliver);
    let results = rt.block_on(async {
        // One registration of the cancel handle's eventfd for all streams (a descriptor can be
        // registered with an epoll instance once).
        let cancel = match &opts.cancel {
            Some(c) => {
                // SAFETY: `EventFd` holds a clone of the handle, which keeps its eventfd open (and
                // the same description) for as long as the AsyncFd lives, and always returns it.
                let fd = unsafe {
                    AsyncFd::register_with_interest(EventFd(c.clone()), Interest::READABLE)
                };
                Some(fd.map_err(|e| Error::Open {
                    path: first.name.to_path_buf(),
                    source: e.into(),
                })?)
            }
            None => None,
        };
        let futs: Vec<_> = streams
            .iter()
            .enumerate()
            .map(|(i, s)| Box::pin(one(i, *s, opts, cancel.as_ref(), &deliver)))
            .collect();
        Ok::<_, Error>(JoinAll::new(futs).await)
    })?;
    drop(guards);
    Ok(results)
}

/// A cancel handle, seen as its `eventfd` (which the handle keeps open while this lives).
struct EventFd(Cancel);

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.event_fd()
    }
}

/// One stream: a duplicate of its descriptor handed to tokio (the caller's stays open), read to
/// its end.
async fn one(
    i: usize,
    s: Stream<'_>,
    opts: &StreamOptions,
    cancel: Option<&AsyncFd<EventFd>>,
    deliver: &RefCell<&mut Deliver<'_>>,
) -> Result<u64> {
    let open_err = |source: io::Error| Error::Open {
        path: s.name.to_path_buf(),
        source,
    };
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor the caller keeps open; it returns a new one.
    let dup = unsafe { libc::fcntl(s.fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(open_err(io::Error::last_os_error()));
    }
    // SAFETY: `dup` was just made and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    match s.kind {
        StreamKind::Socket => {
            let std = std::net::TcpStream::from(owned);
            let stream = tokio::net::TcpStream::from_std(std).map_err(open_err)?;
            pump(i, stream, s, opts, cancel, deliver).await
        }
        StreamKind::Pipe => {
            let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(owned).map_err(open_err)?;
            pump(i, rx, s, opts, cancel, deliver).await
        }
    }
}

async fn pump<R: AsyncRead + Unpin>(
    i: usize,
    mut r: R,
    s: Stream<'_>,
    opts: &StreamOptions,
    cancel: Option<&AsyncFd<EventFd>>,
    deliver: &RefCell<&mut Deliver<'_>>,
) -> Result<u64> {
    let mut buf = vec![0u8; opts.chunk_size];
    let mut offset = 0u64;
    let interrupted = || Error::Interrupted {
        path: s.name.to_path_buf(),
    };
    loop {
        if opts.cancelled() {
            return Err(interrupted());
        }
        // The read, raced with the cancel handle: readable once cancelled, and it stays readable
        // (its readiness is never cleared), so every stream's race sees it.
        let read = {
            let mut read = std::pin::pin!(r.read(&mut buf));
            std::future::poll_fn(|cx| {
                if let Some(c) = cancel {
                    if matches!(c.poll_read_ready(cx), Poll::Ready(Ok(_))) {
                        return Poll::Ready(None);
                    }
                }
                read.as_mut().poll(cx).map(Some)
            })
            .await
        };
        let Some(read) = read else {
            return Err(interrupted());
        };
        let n = match read {
            Ok(0) => return Ok(offset),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(read_error(
                    &s,
                    offset,
                    e.raw_os_error().unwrap_or(libc::EIO),
                ))
            }
        };
        // The borrow ends before the next await: one future at a time runs on this thread.
        let (took, go) = hand_over(i, &s, offset, &buf[..n], opts, &mut **deliver.borrow_mut())?;
        offset += took;
        if !go {
            return Ok(offset);
        }
    }
}

/// Polls every future until all are done; their outputs in order.
struct JoinAll<F: Future> {
    futs: Vec<Option<Pin<Box<F>>>>,
    out: Vec<Option<F::Output>>,
}

impl<F: Future> JoinAll<F> {
    fn new(futs: Vec<Pin<Box<F>>>) -> Self {
        let out = futs.iter().map(|_| None).collect();
        JoinAll {
            futs: futs.into_iter().map(Some).collect(),
            out,
        }
    }
}

// The futures are boxed and the outputs are never pinned: moving a JoinAll moves nothing pinned.
impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut pending = false;
        for (slot, out) in this.futs.iter_mut().zip(this.out.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(this.out.iter_mut().filter_map(Option::take).collect())
    }
}
