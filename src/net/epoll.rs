//! The epoll way for streams: non-blocking `read(2)` driven by epoll (through `mio`, edge-triggered),
//! each readable stream drained until `EAGAIN` into one shared buffer. A cancel handle's `eventfd`
//! is registered beside the streams, so that cancelling wakes the wait. Nothing of ours is ever in
//! the kernel between calls (`read(2)` is synchronous), so a panic of the processor unwinds as is,
//! restoring the descriptors' flags on its way.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::{hand_over, read_error, Deliver, Stream, StreamOptions, POLLS};
use crate::buf::Arena;
use crate::error::{Error, Result};

/// Puts a descriptor in non-blocking mode for as long as it lives, then restores its flags (the
/// flags belong to the open file description, which others may share: a shell's pipe, say).
pub(super) struct NonBlocking {
    fd: RawFd,
    old: Option<libc::c_int>,
}

impl NonBlocking {
    pub(super) fn set(fd: RawFd) -> io::Result<NonBlocking> {
        // SAFETY: fcntl on a descriptor the caller keeps open for the guard's life.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK != 0 {
            return Ok(NonBlocking { fd, old: None });
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NonBlocking {
            fd,
            old: Some(flags),
        })
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        if let Some(flags) = self.old {
            // SAFETY: as in `set`; restoring the flags read there.
            unsafe { libc::fcntl(self.fd, libc::F_SETFL, flags) };
        }
    }
}

/// Reads every stream to its end (or error), one thread, one buffer.
pub(super) fn run(
    streams: &[Stream<'_>],
    opts: &StreamOptions,
    deliver: &mut Deliver<'_>,
) -> Result<Vec<Result<u64>>> {
    let (mut poll, guards, cancel_token) = register(streams, opts)?;
    let arena = Arena::new(1, opts.chunk_size)?;
    let mut offsets = vec![0u64; streams.len()];
    let mut done: Vec<Option<Result<u64>>> = (0..streams.len()).map(|_| None).collect();
    let mut open = streams.len();
    let mut events = Events::with_capacity(1024.min(streams.len().max(16)));
    // Edge-triggered: every stream is drained once first, in case data came before registration.
    let mut ready: Vec<usize> = (0..streams.len()).collect();
    while open > 0 {
        for i in ready.drain(..) {
            if done[i].is_some() {
                continue;
            }
            let s = &streams[i];
            done[i] = drain(i, s, &mut offsets[i], &arena, opts, deliver);
            if done[i].is_some() {
                open -= 1;
                let _ = poll.registry().deregister(&mut SourceFd(&s.fd));
            }
        }
        if open == 0 {
            break;
        }
        if opts.cancelled() {
            end_open(streams, &mut done, |s| Error::Interrupted {
                path: s.name.to_path_buf(),
            });
            break;
        }
        POLLS.fetch_add(1, Ordering::Relaxed);
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                end_open(streams, &mut done, |s| Error::Open {
                    path: s.name.to_path_buf(),
                    source: io::Error::new(e.kind(), e.to_string()),
                });
                break;
            }
        }
        // The cancel token is looked at through the flag, at the top of the loop.
        ready.extend(
            events
                .iter()
                .map(|e| e.token())
                .filter(|&t| t != cancel_token)
                .map(|t| t.0),
        );
    }
    drop(guards);
    Ok(done
        .into_iter()
        .zip(offsets)
        .map(|(d, o)| d.unwrap_or(Ok(o)))
        .collect())
}

/// Why stream `s` could not be set up: epoll refuses a regular file (`EPERM`), else the error.
fn setup_err(s: &Stream<'_>, source: io::Error) -> Error {
    if source.raw_os_error() == Some(libc::EPERM) {
        Error::InvalidOptions(format!(
            "{}: epoll cannot wait on a regular file (it is always ready); read it with \
             --backend auto, uring, sync or pread",
            s.name.display()
        ))
    } else {
        Error::Open {
            path: s.name.to_path_buf(),
            source,
        }
    }
}

/// Puts every stream in non-blocking mode (for as long as the guards live) and registers it with
/// a new epoll under its index, and the cancel handle's `eventfd` under the token it returns.
fn register(
    streams: &[Stream<'_>],
    opts: &StreamOptions,
) -> Result<(Poll, Vec<NonBlocking>, Token)> {
    let poll = Poll::new().map_err(|e| setup_err(&streams[0], e))?;
    let mut guards = Vec::with_capacity(streams.len());
    for (i, s) in streams.iter().enumerate() {
        guards.push(NonBlocking::set(s.fd).map_err(|e| setup_err(s, e))?);
        poll.registry()
            .register(&mut SourceFd(&s.fd), Token(i), Interest::READABLE)
            .map_err(|e| setup_err(s, e))?;
    }
    // The cancel handle's eventfd, under a token no stream has: readable once cancelled.
    let cancel_token = Token(streams.len());
    if let Some(cancel) = &opts.cancel {
        poll.registry()
            .register(
                &mut SourceFd(&cancel.event_fd()),
                cancel_token,
                Interest::READABLE,
            )
            .map_err(|e| setup_err(&streams[0], e))?;
    }
    Ok((poll, guards, cancel_token))
}

/// Reads stream `i` (`s`, `offset` bytes delivered so far) until `EAGAIN` or a cancel, handing
/// each read over. Its result if it ended (at its end, on an error, or stopped by its processor).
fn drain(
    i: usize,
    s: &Stream<'_>,
    offset: &mut u64,
    arena: &Arena,
    opts: &StreamOptions,
    deliver: &mut Deliver<'_>,
) -> Option<Result<u64>> {
    // A writer that never lets the stream run dry would keep us here: look at the flag.
    while !opts.cancelled() {
        // SAFETY: the arena's one slot is ours alone (no kernel request uses it) and holds
        // chunk_size bytes.
        let n = unsafe { libc::read(s.fd, arena.slot_ptr(0).cast(), opts.chunk_size) };
        if n < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return None,
                code => return Some(Err(read_error(s, *offset, code.unwrap_or(libc::EIO)))),
            }
        }
        if n == 0 {
            return Some(Ok(*offset));
        }
        // SAFETY: the kernel wrote n bytes into the slot, and nothing reads into it now.
        let data = unsafe { arena.slot(0, n as usize) };
        match hand_over(i, s, *offset, data, opts, deliver) {
            Ok((took, go)) => {
                *offset += took;
                if !go {
                    return Some(Ok(*offset));
                }
            }
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

/// Ends every open stream with the error `err` makes for it.
fn end_open(
    streams: &[Stream<'_>],
    done: &mut [Option<Result<u64>>],
    err: impl Fn(&Stream<'_>) -> Error,
) {
    for (s, d) in streams.iter().zip(done.iter_mut()) {
        if d.is_none() {
            *d = Some(Err(err(s)));
        }
    }
}
