//! The tokio way for streams: what an async user writes today. A socket becomes a
//! `tokio::net::TcpStream`, a pipe a `tokio::net::unix::pipe::Receiver`, read in a loop on a
//! current-thread runtime (tokio drives both with epoll through mio).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::epoll::NonBlocking;
use super::{hand_over, read_error, Deliver, Stream, StreamOptions};
use crate::error::{Error, Result};
use crate::ring::StreamKind;

/// Reads one stream to its end with tokio.
pub(super) fn run(s: Stream<'_>, opts: &StreamOptions, deliver: &mut Deliver<'_>) -> Result<u64> {
    let open_err = |source: io::Error| Error::Open {
        path: s.name.to_path_buf(),
        source,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(open_err)?;
    // tokio takes ownership of a descriptor: give it a duplicate, so the caller's stays open. The
    // duplicate shares the file description, whose flags tokio makes non-blocking: restored after.
    let _restore = NonBlocking::set(s.fd).map_err(open_err)?;
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor the caller keeps open; it returns a new one.
    let dup = unsafe { libc::fcntl(s.fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(open_err(io::Error::last_os_error()));
    }
    // SAFETY: `dup` was just made and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    rt.block_on(async {
        match s.kind {
            StreamKind::Socket => {
                let std = std::net::TcpStream::from(owned);
                let stream = tokio::net::TcpStream::from_std(std).map_err(open_err)?;
                pump(stream, s, opts, deliver).await
            }
            StreamKind::Pipe => {
                let rx =
                    tokio::net::unix::pipe::Receiver::from_owned_fd(owned).map_err(open_err)?;
                pump(rx, s, opts, deliver).await
            }
        }
    })
}

async fn pump<R: AsyncRead + Unpin>(
    mut r: R,
    s: Stream<'_>,
    opts: &StreamOptions,
    deliver: &mut Deliver<'_>,
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
        let (took, go) = hand_over(0, &s, offset, &buf[..n], opts, deliver)?;
        offset += took;
        if !go {
            return Ok(offset);
        }
    }
}
