//! The tokio way for streams: what an async user writes today. A socket becomes a
//! `tokio::net::TcpStream`, a pipe a `tokio::net::unix::pipe::Receiver`, read in a loop on a
//! current-thread runtime (tokio drives both with epoll through mio). Many streams are many futures
//! polled together on that one thread, each with its own buffer, as a task per connection would be.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::epoll::NonBlocking;
use super::{hand_over, read_error, Deliver, Stream, StreamOptions};
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
        let futs: Vec<_> = streams
            .iter()
            .enumerate()
            .map(|(i, s)| Box::pin(one(i, *s, opts, &deliver)))
            .collect();
        JoinAll::new(futs).await
    });
    drop(guards);
    Ok(results)
}

/// One stream: a duplicate of its descriptor handed to tokio (the caller's stays open), read to
/// its end.
async fn one(
    i: usize,
    s: Stream<'_>,
    opts: &StreamOptions,
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
            pump(i, stream, s, opts, deliver).await
        }
        StreamKind::Pipe => {
            let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(owned).map_err(open_err)?;
            pump(i, rx, s, opts, deliver).await
        }
    }
}

async fn pump<R: AsyncRead + Unpin>(
    i: usize,
    mut r: R,
    s: Stream<'_>,
    opts: &StreamOptions,
    deliver: &RefCell<&mut Deliver<'_>>,
) -> Result<u64> {
    let mut buf = vec![0u8; opts.chunk_size];
    let mut offset = 0u64;
    loop {
        if opts.interrupted() {
            return Err(Error::Interrupted {
                path: s.name.to_path_buf(),
            });
        }
        let n = match r.read(&mut buf).await {
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
