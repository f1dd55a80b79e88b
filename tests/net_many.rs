//! 1,000 concurrent TCP connections on 127.0.0.1 read by one thread with `ringread::net::read_many`:
//! every connection's bytes arrive whole and in order at its own processor, and the reader's memory
//! stays bounded by its buffer pool, not by the connections or the data.
//!
//! In a test binary of its own so that no other test allocates in the process while peak memory
//! is measured; the cases run one after the other.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;

use ringread::net::{read_many, StreamMethod, StreamOptions};
use ringread::{Chunk, Processor};

const CONNECTIONS: usize = 1000;
/// Bytes per connection: about 96 KiB each, 94 MiB in all.
const PER_CONNECTION: usize = 96 * 1024;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn pattern() -> Vec<u8> {
    let mut s = 0x1234_5678_9abc_def1u64;
    (0..(1 << 20))
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect()
}

/// Connection `i`'s bytes: `len(i)` bytes of the pattern from offset `i * 4099`, wrapping.
fn len(i: usize) -> usize {
    PER_CONNECTION + i * 7
}

fn expected(p: &[u8], i: usize) -> impl Iterator<Item = &u8> {
    p.iter().cycle().skip(i * 4099 % p.len()).take(len(i))
}

/// Checks each byte against what connection `i` sent, as it comes, holding no copy.
struct Verify<'p> {
    want: std::iter::Take<std::iter::Skip<std::iter::Cycle<std::slice::Iter<'p, u8>>>>,
    at: u64,
    bad: Option<String>,
}

impl Processor for Verify<'_> {
    fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
        if self.bad.is_none() && c.offset() != self.at {
            self.bad = Some(format!("chunk at {} after {}", c.offset(), self.at));
        }
        for (k, b) in c.iter().enumerate() {
            if self.bad.is_none() && self.want.next() != Some(b) {
                self.bad = Some(format!("byte {} differs", self.at + k as u64));
            }
        }
        self.at += c.len() as u64;
        Ok(true)
    }
}

fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a struct that lives across the calls.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        let need = (2 * CONNECTIONS + 64) as u64;
        if r.rlim_max < need {
            // Root (CI) may raise the hard limit too; others keep theirs and are told below.
            let raised = libc::rlimit {
                rlim_cur: need,
                rlim_max: need,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                r = raised;
            }
        }
        r.rlim_cur = r.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
        assert!(
            r.rlim_cur >= (2 * CONNECTIONS + 64) as u64,
            "RLIMIT_NOFILE hard limit {} is below the {} descriptors this test needs",
            r.rlim_max,
            2 * CONNECTIONS + 64
        );
    }
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn thousand_connections(method: StreamMethod) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    raise_nofile();
    let p = pattern();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(false).unwrap();
    let addr = l.local_addr().unwrap();
    let mut writers = Vec::with_capacity(CONNECTIONS);
    let mut readers = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        writers.push(TcpStream::connect(addr).unwrap());
        readers.push(l.accept().unwrap().0);
    }
    let mut procs: Vec<Verify<'_>> = (0..CONNECTIONS)
        .map(|i| Verify {
            want: p.iter().cycle().skip(i * 4099 % p.len()).take(len(i)),
            at: 0,
            bad: None,
        })
        .collect();
    let opts = StreamOptions::new(method)
        .chunk_size(16 * 1024)
        .buffers(256);
    let fds: Vec<_> = readers.iter().map(|r| r.as_fd()).collect();

    // The peak from here on is the reader's (and the writers' small pieces).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM (Linux 4.0+)");
    let before = status_kib("VmRSS:");
    let results = std::thread::scope(|s| {
        // Four writer threads, each sending its connections' bytes round-robin in 8 KiB pieces,
        // then closing them.
        let mut groups: Vec<Vec<(usize, TcpStream)>> = (0..4).map(|_| Vec::new()).collect();
        for (i, w) in writers.drain(..).enumerate() {
            groups[i % 4].push((i, w));
        }
        for group in groups {
            let p = &p;
            s.spawn(move || {
                let mut sent = vec![0usize; group.len()];
                let mut piece = Vec::with_capacity(8192);
                let mut open: Vec<(usize, usize, TcpStream)> = group
                    .into_iter()
                    .enumerate()
                    .map(|(k, (i, w))| (k, i, w))
                    .collect();
                while !open.is_empty() {
                    open.retain_mut(|(k, i, w)| {
                        let n = 8192.min(len(*i) - sent[*k]);
                        piece.clear();
                        piece.extend(expected(p, *i).skip(sent[*k]).take(n));
                        w.write_all(&piece).unwrap();
                        sent[*k] += n;
                        sent[*k] < len(*i)
                    });
                }
            });
        }
        let results = read_many(&fds, &mut procs, &opts);
        let failed = results
            .as_ref()
            .map_or(true, |v| v.iter().any(|r| r.is_err()));
        if failed {
            // Unblock the writers (a reset answers their next bytes), so the failure is reported
            // instead of the scope waiting for them forever.
            for r in &readers {
                // SAFETY: shutdown on a socket we hold open.
                unsafe { libc::shutdown(r.as_raw_fd(), libc::SHUT_RDWR) };
            }
        }
        results.unwrap()
    });
    let peak = status_kib("VmHWM:");
    let total: usize = (0..CONNECTIONS).map(len).sum();
    for (i, (r, v)) in results.iter().zip(&procs).enumerate() {
        match r {
            Ok(n) => assert_eq!(*n as usize, len(i), "{method}: connection {i}: bytes"),
            Err(e) => panic!("{method}: connection {i}: {e}"),
        }
        assert!(v.bad.is_none(), "{method}: connection {i}: {:?}", v.bad);
        assert_eq!(v.at as usize, len(i), "{method}: connection {i}");
    }
    // The pool is 256 x 16 KiB = 4 MiB (tokio: a 16 KiB buffer per connection, 16 MiB); the data
    // 97 MiB. Allow the writers' pieces, thread stacks, the result vectors and allocator slack, but
    // far less than the data.
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "{method}: {CONNECTIONS} connections, {} MiB read, peak RSS grew {grew_mib} MiB",
        total >> 20
    );
    assert!(
        grew_mib < 32,
        "{method}: peak RSS grew {grew_mib} MiB reading {} MiB over {CONNECTIONS} connections",
        total >> 20
    );
}

#[test]
fn thousand_connections_io_uring_multishot() {
    thousand_connections(StreamMethod::UringMultishot);
}

#[test]
fn thousand_connections_io_uring_single_shot() {
    thousand_connections(StreamMethod::UringSingle);
}

#[test]
fn thousand_connections_tokio() {
    thousand_connections(StreamMethod::Tokio);
}

#[test]
fn thousand_connections_epoll() {
    thousand_connections(StreamMethod::Epoll);
}
