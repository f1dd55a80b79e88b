//! Plain synchronous reads: `pread(2)` (or `read(2)` for streams) into one buffer, on the calling
//! thread. The fallback where io_uring is refused, with the same chunks in the same order.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Source;
use crate::buf::{Arena, Chunk};
use crate::error::{Error, Result};
use crate::processor::{Combine, Prepare};

/// Reads `src` to its end in chunks of `chunk` bytes. Returns the bytes delivered.
pub(crate) fn read<Pr: Prepare, C: Combine<Pr::Part>>(
    src: &Source<'_>,
    chunk: usize,
    prep: &Pr,
    proc: &mut C,
    interrupt: Option<&AtomicBool>,
) -> Result<u64> {
    let interrupted = || interrupt.is_some_and(|f| f.load(Ordering::Relaxed));
    let arena = Arena::new(1, chunk)?;
    let buf = arena.slot_ptr(0);
    let mut offset = src.start;
    loop {
        if interrupted() {
            return Err(Error::Interrupted {
                path: src.path.to_path_buf(),
            });
        }
        // --max-bytes: read no further than the limit.
        let room = src.limit.saturating_sub(offset - src.start);
        if room == 0 {
            return Ok(offset - src.start);
        }
        let chunk = chunk.min(usize::try_from(room).unwrap_or(usize::MAX));
        let mut filled = 0usize;
        let mut eof = false;
        let mut failed = None;
        while filled < chunk {
            let fd = match src.direct_fd {
                Some(dfd)
                    if filled % src.align == 0
                        && (chunk - filled) % src.align == 0
                        && offset % src.align as u64 == 0 =>
                {
                    dfd
                }
                _ => src.fd,
            };
            let at = offset + filled as u64;
            // SAFETY: buf + filled .. buf + chunk lies inside the arena's only slot, which nothing
            // else reads or writes during the call.
            let n = unsafe {
                let dst = buf.add(filled).cast();
                if src.positional {
                    libc::pread(fd, dst, chunk - filled, at as libc::off_t)
                } else {
                    libc::read(fd, dst, chunk - filled)
                }
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) if interrupted() => {
                        return Err(Error::Interrupted {
                            path: src.path.to_path_buf(),
                        })
                    }
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => {
                        wait_readable(src.fd);
                        continue;
                    }
                    _ => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if n == 0 {
                eof = true;
                break;
            }
            filled += n as usize;
            if !src.positional {
                break; // a stream hands over what it has
            }
        }
        if filled as u64 >= room {
            eof = true; // the --max-bytes limit
        }
        if filled > 0 {
            // SAFETY: the kernel wrote `filled` bytes into the slot; no read is in flight.
            let data = unsafe { arena.slot(0, filled) };
            let chunk = Chunk::new(offset, data);
            let part = prep.prepare(&chunk);
            let go_on = proc
                .combine(&chunk, part)
                .map_err(|source| Error::Process {
                    path: src.path.to_path_buf(),
                    offset,
                    source,
                })?;
            offset += filled as u64;
            if !go_on {
                return Ok(offset - src.start);
            }
        }
        if let Some(source) = failed {
            return Err(Error::Read {
                path: src.path.to_path_buf(),
                offset,
                source,
            });
        }
        if eof {
            return Ok(offset - src.start);
        }
    }
}

/// Waits until a non-blocking descriptor has data (or has hung up).
fn wait_readable(fd: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, -1) };
}
