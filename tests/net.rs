//! Streams (pipes and TCP sockets on 127.0.0.1) through every way of `ringread::net`: the peer
//! closing mid-stream, a reset, a slow producer, EAGAIN storms on non-blocking descriptors, and the
//! command line reading pipes and a connection. Traffic stays on loopback, bounded in size and time.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use ringread::net::{read_many, read_stream, StreamMethod, StreamOptions};
use ringread::{Cancel, Chunk, Error, Processor};

mod common;

/// Every way that reads one stream.
const METHODS: [StreamMethod; 5] = [
    StreamMethod::UringMultishot,
    StreamMethod::UringSingle,
    StreamMethod::Epoll,
    StreamMethod::Tokio,
    StreamMethod::Sync,
];

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Records what it is given and checks it is contiguous.
#[derive(Default)]
struct Record {
    bytes: Vec<u8>,
    gaps: Vec<String>,
}

impl Processor for Record {
    fn process(&mut self, c: &Chunk<'_>) -> io::Result<bool> {
        if c.offset() != self.bytes.len() as u64 {
            self.gaps.push(format!(
                "chunk at {} after {}",
                c.offset(),
                self.bytes.len()
            ));
        }
        if c.is_empty() {
            self.gaps.push(format!("empty chunk at {}", c.offset()));
        }
        self.bytes.extend_from_slice(c);
        Ok(true)
    }
}

/// A connected pair on 127.0.0.1: (reader's end, writer's end).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let w = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (r, _) = l.accept().unwrap();
    (r, w)
}

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both were just made and are owned by nobody else.
    unsafe {
        (
            OwnedFd::from_raw_fd(fds[0]),
            std::fs::File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

fn set_nonblocking(fd: &impl AsRawFd) {
    // SAFETY: fcntl on a descriptor the caller holds open.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        assert!(fl >= 0);
        assert_eq!(
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK),
            0
        );
    }
}

fn is_nonblocking(fd: &impl AsRawFd) -> bool {
    // SAFETY: fcntl on a descriptor the caller holds open.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// Reads `r` with `method` while `write` runs on another thread; returns the result and record.
fn read_while<F, W>(
    r: &impl AsFd,
    method: StreamMethod,
    chunk: usize,
    w: W,
    write: F,
) -> (ringread::Result<u64>, Record)
where
    W: Send,
    F: FnOnce(W) + Send,
{
    let opts = StreamOptions::new(method).chunk_size(chunk).buffers(8);
    let mut rec = Record::default();
    let result = std::thread::scope(|s| {
        let t = s.spawn(move || write(w));
        let result = read_stream(r.as_fd(), "peer", &opts, &mut rec).map(|s| s.bytes);
        if result.is_err() {
            // Let a writer still writing finish, so that the failure is reported, not a hang.
            drain(r);
        }
        t.join().unwrap();
        result
    });
    (result, rec)
}

/// Reads and drops whatever is left until the end (or an error).
fn drain(r: &impl AsFd) {
    let fd = r.as_fd().as_raw_fd();
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: reads into a buffer we own, of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            continue;
        }
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd that lives across the call.
            unsafe { libc::poll(&mut p, 1, 1000) };
            continue;
        }
        return;
    }
}

fn check_all(method: StreamMethod, sent: &[u8], result: ringread::Result<u64>, rec: &Record) {
    let n = result.unwrap_or_else(|e| panic!("{method}: {e}"));
    assert_eq!(n, sent.len() as u64, "{method}: bytes reported");
    assert!(rec.gaps.is_empty(), "{method}: {:?}", rec.gaps);
    assert!(
        rec.bytes == sent,
        "{method}: {} bytes delivered differ from the {} sent",
        rec.bytes.len(),
        sent.len()
    );
}

#[test]
fn tcp_peer_closes_mid_stream() {
    let _g = common::shared();
    let sent = data(3 * 1024 * 1024 + 333, 1);
    for method in METHODS {
        let (r, w) = tcp_pair();
        let (result, rec) = read_while(&r, method, 64 * 1024, w, |mut w| {
            w.write_all(&sent).unwrap();
            // Closed in the middle of what a reader would expect: it sees the bytes, then the end.
            drop(w);
        });
        check_all(method, &sent, result, &rec);
    }
}

#[test]
fn pipe_writer_closes_mid_stream() {
    let _g = common::shared();
    let sent = data(2 * 1024 * 1024 + 7, 2);
    for method in METHODS {
        let (r, w) = pipe();
        let (result, rec) = read_while(&r, method, 64 * 1024, w, |mut w| {
            w.write_all(&sent).unwrap();
        });
        check_all(method, &sent, result, &rec);
    }
}

#[test]
fn tcp_reset_is_a_clear_error_after_the_bytes_before_it() {
    let _g = common::shared();
    let sent = data(512 * 1024, 3);
    for method in METHODS {
        let (r, w) = tcp_pair();
        let (result, rec) = read_while(&r, method, 16 * 1024, w, |mut w| {
            w.write_all(&sent).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt with a linger struct that lives across the call.
            let rc = unsafe {
                libc::setsockopt(
                    w.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0);
            drop(w); // SO_LINGER 0: close sends a reset
        });
        assert!(rec.gaps.is_empty(), "{method}: {:?}", rec.gaps);
        assert!(
            sent.starts_with(&rec.bytes),
            "{method}: the bytes delivered are not what was sent"
        );
        match result {
            Err(Error::Read {
                path,
                offset,
                source,
            }) => {
                assert_eq!(path.to_str(), Some("peer"), "{method}");
                assert_eq!(offset, rec.bytes.len() as u64, "{method}: offset");
                assert_eq!(
                    source.raw_os_error(),
                    Some(libc::ECONNRESET),
                    "{method}: {source}"
                );
                let shown = Error::Read {
                    path,
                    offset,
                    source,
                }
                .to_string();
                assert!(
                    shown.starts_with("peer: read error at offset ")
                        && shown.ends_with("Connection reset by peer"),
                    "{method}: {shown}"
                );
            }
            other => panic!("{method}: expected a reset error, got {other:?}"),
        }
    }
}

#[test]
fn slow_producer_every_byte_in_order() {
    let _g = common::shared();
    let sent = data(40_000, 4);
    for method in METHODS {
        for tcp in [true, false] {
            let write = |mut w: Box<dyn Write + Send>| {
                let mut at = 0;
                let mut step = 1;
                while at < sent.len() {
                    let n = step.min(sent.len() - at);
                    w.write_all(&sent[at..at + n]).unwrap();
                    at += n;
                    step = step * 3 % 1999 + 1;
                    std::thread::sleep(Duration::from_micros(300));
                }
            };
            let (result, rec) = if tcp {
                let (r, w) = tcp_pair();
                w.set_nodelay(true).unwrap();
                read_while(
                    &r,
                    method,
                    4096,
                    Box::new(w) as Box<dyn Write + Send>,
                    write,
                )
            } else {
                let (r, w) = pipe();
                read_while(
                    &r,
                    method,
                    4096,
                    Box::new(w) as Box<dyn Write + Send>,
                    write,
                )
            };
            check_all(method, &sent, result, &rec);
        }
    }
}

/// Non-blocking descriptors and a producer that trickles single bytes: every read but a few says
/// EAGAIN. Every way must wait rather than fail or spin to an error, and deliver every byte.
#[test]
fn eagain_storm_on_non_blocking_descriptors() {
    let _g = common::shared();
    let sent = data(3000, 5);
    for method in METHODS {
        for tcp in [true, false] {
            let write = |mut w: Box<dyn Write + Send>| {
                for (i, b) in sent.iter().enumerate() {
                    w.write_all(std::slice::from_ref(b)).unwrap();
                    if i % 64 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    } else {
                        std::thread::yield_now();
                    }
                }
            };
            let (result, rec) = if tcp {
                let (r, w) = tcp_pair();
                w.set_nodelay(true).unwrap();
                set_nonblocking(&r);
                let got = read_while(
                    &r,
                    method,
                    1024,
                    Box::new(w) as Box<dyn Write + Send>,
                    write,
                );
                assert!(is_nonblocking(&r), "{method}: flags of the caller changed");
                got
            } else {
                let (r, w) = pipe();
                set_nonblocking(&r);
                let got = read_while(
                    &r,
                    method,
                    1024,
                    Box::new(w) as Box<dyn Write + Send>,
                    write,
                );
                assert!(is_nonblocking(&r), "{method}: flags of the caller changed");
                got
            };
            check_all(method, &sent, result, &rec);
        }
    }
}

#[test]
fn a_regular_file_is_refused_with_a_reason() {
    let _g = common::shared();
    let f = std::fs::File::open(env!("CARGO_MANIFEST_DIR").to_string() + "/Cargo.toml").unwrap();
    for method in METHODS {
        let opts = StreamOptions::new(method);
        let mut rec = Record::default();
        match read_stream(f.as_fd(), "Cargo.toml", &opts, &mut rec) {
            Err(Error::InvalidOptions(why)) => {
                assert!(
                    why.contains("Cargo.toml") && why.contains("regular file"),
                    "{why}"
                )
            }
            other => panic!("{method}: {other:?}"),
        }
    }
}

#[test]
fn read_many_refuses_sync_and_mismatched_lists_and_takes_none() {
    let _g = common::shared();
    let (r, _w) = tcp_pair();
    let mut procs = vec![Record::default()];
    let opts = StreamOptions::new(StreamMethod::Sync);
    assert!(matches!(
        read_many(&[r.as_fd()], &mut procs, &opts),
        Err(Error::InvalidOptions(_))
    ));
    let opts = StreamOptions::new(StreamMethod::Epoll);
    assert!(matches!(
        read_many(&[r.as_fd(), r.as_fd()], &mut procs, &opts),
        Err(Error::InvalidOptions(_))
    ));
    for m in [
        StreamMethod::Epoll,
        StreamMethod::UringMultishot,
        StreamMethod::Tokio,
    ] {
        let none: &mut [Record] = &mut [];
        let got = read_many(&[], none, &StreamOptions::new(m)).unwrap();
        assert!(got.is_empty(), "{m}");
    }
}

/// A processor that stops after the first chunk: the stream ends there with no error, and the
/// io_uring request still armed is cancelled and reaped (the call returns).
#[test]
fn a_processor_that_stops_ends_the_stream() {
    let _g = common::shared();
    for method in METHODS {
        let (r, w) = tcp_pair();
        let opts = StreamOptions::new(method).chunk_size(1024);
        let mut seen = 0usize;
        let mut stop = ringread::processor::from_fn(|c: &Chunk<'_>| {
            seen += c.len();
            Ok(false)
        });
        let got = std::thread::scope(|s| {
            let t = s.spawn(move || {
                let mut w = w;
                let _ = w.write_all(&[7u8; 4096]);
                // Keep the connection open until the reader is done: only the processor ends it.
                std::thread::sleep(Duration::from_millis(200));
            });
            let got = read_stream(r.as_fd(), "peer", &opts, &mut stop);
            t.join().unwrap();
            got
        })
        .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(got.bytes as usize, seen, "{method}");
        assert!(seen > 0 && seen <= 1024, "{method}: {seen}");
    }
}

#[test]
fn max_bytes_stops_each_stream() {
    let _g = common::shared();
    let sent = data(100_000, 6);
    for method in METHODS {
        let (r, w) = pipe();
        let opts = StreamOptions::new(method)
            .chunk_size(4096)
            .max_bytes(Some(10_000));
        let mut rec = Record::default();
        let got = std::thread::scope(|s| {
            let sent = &sent;
            let t = s.spawn(move || {
                let mut w = w;
                let _ = w.write_all(sent); // the reader may close first: EPIPE is fine
            });
            let got = read_stream(r.as_fd(), "pipe", &opts, &mut rec);
            drop(r);
            t.join().unwrap();
            got
        })
        .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(got.bytes, 10_000, "{method}");
        assert_eq!(rec.bytes, sent[..10_000], "{method}");
    }
}

// ---- the command line on pipes and a connection ----

fn run_with_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
        .args(args)
        .write_stdin(input.to_vec())
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "a panic reached the user: {err}");
    out
}

fn newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

#[test]
fn cli_count_sum_cat_on_a_pipe_match_wc_and_sha256sum() {
    let _g = common::shared();
    let mut input = data(3 * 1024 * 1024 + 5, 7);
    input.extend_from_slice(b"\nlast line without newline");
    let lines = newlines(&input);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&input))
    };
    for backend in ["auto", "uring", "epoll", "sync"] {
        let out = run_with_stdin(&["count", "--backend", backend, "-v", "-"], &input);
        assert!(out.status.success(), "{backend}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        let (l, b) = (lines.to_string(), input.len().to_string());
        assert_eq!(words, [l.as_str(), b.as_str(), "-"], "{backend}");
        let err = String::from_utf8_lossy(&out.stderr);
        let engine = match backend {
            "epoll" => "by epoll",
            "sync" => "by read(2)",
            _ => "by io_uring",
        };
        assert!(err.contains(engine), "{backend}: {err}");

        let out = run_with_stdin(&["sum", "-a", "sha256", "--backend", backend, "-"], &input);
        assert!(out.status.success(), "{backend}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{sha}  -\n"),
            "{backend}"
        );

        let out = run_with_stdin(&["cat", "--backend", backend, "-"], &input);
        assert!(out.status.success(), "{backend}");
        assert!(out.stdout == input, "{backend}: cat changed the bytes");
    }
}

#[test]
fn cli_epoll_refuses_a_regular_file_clearly() {
    let _g = common::shared();
    let out = run_with_stdin(
        &[
            "count",
            "--backend",
            "epoll",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Cargo.toml") && err.contains("epoll cannot wait on a regular file"),
        "{err}"
    );
}

#[test]
fn cli_connect_reads_a_tcp_connection() {
    let _g = common::shared();
    let input = data(2 * 1024 * 1024 + 1, 8);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&input))
    };
    for backend in ["auto", "epoll"] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let out = std::thread::scope(|s| {
            s.spawn(|| {
                let (mut c, _) = l.accept().unwrap();
                c.write_all(&input).unwrap();
            });
            assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
                .args([
                    "sum",
                    "-a",
                    "sha256",
                    "--backend",
                    backend,
                    "--connect",
                    &addr,
                ])
                .timeout(Duration::from_secs(60))
                .output()
                .unwrap()
        });
        assert!(out.status.success(), "{backend}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{sha}  {addr}\n"),
            "{backend}"
        );
    }
    // count: wc's layout for a stream (minimum width 7), named by the address.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let (mut c, _) = l.accept().unwrap();
            c.write_all(&input).unwrap();
        });
        assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
            .args(["count", "--connect", &addr])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{:>7} {:>7} {addr}\n", newlines(&input), input.len())
    );
}

#[test]
fn cli_listen_accepts_one_connection_and_reads_it() {
    let _g = common::shared();
    use std::io::{BufRead, BufReader};
    let input = data(1024 * 1024 + 3, 9);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringread"))
        .args(["count", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("ringread: listening on ")
        .unwrap_or_else(|| panic!("no address said: {first:?}"))
        .to_string();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.write_all(&input).unwrap();
    drop(c);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        words[..2],
        [newlines(&input).to_string(), input.len().to_string()],
        "{text}"
    );
}

#[test]
fn cli_bench_pipe_and_tcp_compare_every_way_on_the_same_bytes() {
    let _g = common::shared();
    for source in ["pipe", "tcp"] {
        let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_ringread"))
            .args([
                "bench", "--source", source, "--size", "3M", "--runs", "2", "--json", "-",
            ])
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap();
        assert!(out.status.success(), "{source}: {out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["source"], source);
        assert_eq!(report["file"]["bytes"], 3 * 1024 * 1024);
        let methods = report["results"][0]["methods"].as_array().unwrap();
        let names: Vec<&str> = methods
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ringread::bench::STREAM_METHODS,
            "{source}: every way, in order"
        );
        let sums: Vec<&str> = methods
            .iter()
            .map(|m| m["checksum"].as_str().unwrap())
            .collect();
        assert!(sums.iter().all(|s| *s == sums[0]), "{source}: {sums:?}");
        for m in methods {
            let samples = m["samples"].as_array().unwrap();
            assert_eq!(samples.len(), 2, "{source}: {}", m["name"]);
            assert!(samples.iter().all(|s| s["bytes"] == 3 * 1024 * 1024));
            assert!(m["cpu_ratio_to_epoll"].as_f64().is_some(), "{}", m["name"]);
        }
        let table = String::from_utf8_lossy(&out.stderr);
        assert!(table.contains("CPU per GiB against epoll"), "{table}");
    }
    let out = run_with_stdin(&["bench", "--source", "tcp", "Cargo.toml"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give no FILE"));
}

/// A cancel from the processor itself stops every way with `Error::Interrupted` naming the stream
/// (a writer trickles a byte every 5 ms), with nothing left in the kernel.
#[test]
fn cancel_from_the_processor_stops_every_way() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _g = common::shared();
    for method in METHODS {
        let cancel = Cancel::new().unwrap();
        let stop = AtomicBool::new(false);
        let (r, w) = tcp_pair();
        w.set_nodelay(true).unwrap();
        let opts = StreamOptions::new(method).cancel(Some(cancel.clone()));
        let busy = ringread::net::rings_dropped_busy();
        let mut seen = 0u64;
        let mut count = ringread::processor::from_fn(|c: &Chunk<'_>| {
            seen += c.len() as u64;
            if seen >= 3 {
                cancel.cancel();
            }
            Ok(true)
        });
        let got = std::thread::scope(|s| {
            s.spawn(|| {
                let mut w = &w;
                while !stop.load(Ordering::Relaxed) {
                    if w.write_all(b"x").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            let got = read_stream(r.as_fd(), "peer", &opts, &mut count);
            stop.store(true, Ordering::Relaxed);
            got
        });
        match got {
            Err(Error::Interrupted { path }) => assert_eq!(path.to_str(), Some("peer")),
            other => panic!("{method}: expected Interrupted, got {other:?}"),
        }
        assert_eq!(ringread::net::rings_dropped_busy(), busy, "{method}");
    }
}

/// A FIFO in a fresh directory, opened read-write: it never reports an end, and holds no data.
fn silent_fifo() -> (tempfile::TempDir, std::fs::File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    (dir, f)
}

/// Another thread cancels a read blocked on a FIFO that never gets data: every way returns
/// `Error::Interrupted` within a second of the cancel, not before it, with no ring left busy.
#[test]
fn cancel_from_another_thread_stops_a_read_of_a_silent_fifo() {
    use std::sync::mpsc;
    use std::time::Instant;
    let _g = common::shared();
    for method in METHODS {
        let (dir, fifo) = silent_fifo();
        let cancel = Cancel::new().unwrap();
        let opts = StreamOptions::new(method).cancel(Some(cancel.clone()));
        let busy = ringread::net::rings_dropped_busy();
        let (tx, rx) = mpsc::channel();
        // Not scoped: if the cancel is missed, the test fails after a second instead of hanging.
        let t = std::thread::spawn(move || {
            let mut count = ringread::processor::ByteCount::default();
            let got = read_stream(fifo.as_fd(), "fifo", &opts, &mut count);
            let _ = tx.send((got, Instant::now()));
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            rx.try_recv().is_err(),
            "{method}: the read ended before the cancel"
        );
        let at = Instant::now();
        cancel.cancel();
        let (got, ended) = rx
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_else(|_| panic!("{method}: still reading 1 s after the cancel"));
        // Its descriptors closed before the lock on them is let go.
        t.join().unwrap();
        assert!(
            ended.duration_since(at) < Duration::from_secs(1),
            "{method}"
        );
        match got {
            Err(Error::Interrupted { path }) => assert_eq!(path.to_str(), Some("fifo"), "{method}"),
            other => panic!("{method}: expected Interrupted, got {other:?}"),
        }
        assert_eq!(ringread::net::rings_dropped_busy(), busy, "{method}");
        drop(dir);
    }
}

/// The payload of the test processors' panics.
#[derive(Debug, PartialEq)]
struct Boom(usize);

/// Counts chunks, and panics with `Boom(at)` on chunk number `at` (1-based) if `at` is set.
struct PanicAt {
    at: Option<usize>,
    chunks: usize,
}

impl Processor for PanicAt {
    fn process(&mut self, _: &Chunk<'_>) -> io::Result<bool> {
        self.chunks += 1;
        if Some(self.chunks) == self.at {
            std::panic::panic_any(Boom(self.chunks));
        }
        Ok(true)
    }
}

/// Writes to `w` until `stop` is set or the reader goes away.
fn write_until(mut w: impl Write, stop: &std::sync::atomic::AtomicBool) {
    let block = data(16 * 1024, 9);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if w.write_all(&block).is_err() {
            break;
        }
    }
}

/// The descriptors of this process that are io_uring instances.
fn rings_open() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("io_uring"))
        .count()
}

/// The panic's payload must be the processor's `Boom(2)`.
fn assert_boom(what: &str, got: std::thread::Result<impl std::fmt::Debug>) {
    match got {
        Err(payload) => assert_eq!(
            payload.downcast_ref::<Boom>(),
            Some(&Boom(2)),
            "{what}: the panic that reached the caller is not the processor's"
        ),
        Ok(r) => panic!("{what}: expected the processor's panic, got {r:?}"),
    }
}

/// A processor that panics on its second chunk while the writer keeps writing (a pipe for every
/// way, a socket for the io_uring ones): the panic reaches the caller with its payload, only after
/// every request was reaped (no ring dropped busy), and no descriptor is left behind.
#[test]
fn a_panicking_processor_reaches_the_caller_after_everything_is_reaped() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _g = common::exclusive();
    let cases = METHODS.iter().map(|&m| (m, false)).chain([
        (StreamMethod::UringMultishot, true),
        (StreamMethod::UringSingle, true),
    ]);
    for (method, socket) in cases {
        let what = format!("{method} on a {}", if socket { "socket" } else { "pipe" });
        let (r, w): (OwnedFd, Box<dyn Write + Send>) = if socket {
            let (r, w) = tcp_pair();
            (r.into(), Box::new(w))
        } else {
            let (r, w) = pipe();
            (r, Box::new(w))
        };
        let stop = AtomicBool::new(false);
        let busy = ringread::net::rings_dropped_busy();
        let (fds, rings) = (common::open_fds(), rings_open());
        let opts = StreamOptions::new(method).chunk_size(4096).buffers(8);
        let got = std::thread::scope(|s| {
            s.spawn(|| write_until(w, &stop));
            let got = std::panic::catch_unwind(|| {
                let mut p = PanicAt {
                    at: Some(2),
                    chunks: 0,
                };
                read_stream(r.as_fd(), "peer", &opts, &mut p)
            });
            // Looked at while the stream is still open; asserted once the writer is stopped.
            let after = (
                ringread::net::rings_dropped_busy(),
                rings_open(),
                common::open_fds(),
            );
            stop.store(true, Ordering::Relaxed);
            drop(r);
            (got, after)
        });
        let (got, (busy_after, rings_after, fds_after)) = got;
        assert_boom(&what, got);
        assert_eq!(busy_after, busy, "{what}: a ring was dropped busy");
        assert_eq!(rings_after, rings, "{what}: a ring's descriptor is left");
        assert_eq!(fds_after, fds, "{what}: a descriptor is left");
    }
}

/// `read_many` with one processor of four panicking on its second chunk while every writer keeps
/// writing: the panic reaches the caller, every request reaped first, no descriptor left behind.
#[test]
fn read_many_with_a_panicking_processor_reaps_everything_first() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _g = common::exclusive();
    for method in [
        StreamMethod::UringMultishot,
        StreamMethod::UringSingle,
        StreamMethod::Epoll,
        StreamMethod::Tokio,
    ] {
        let (readers, writers): (Vec<OwnedFd>, Vec<std::fs::File>) = (0..4).map(|_| pipe()).unzip();
        let stop = AtomicBool::new(false);
        let busy = ringread::net::rings_dropped_busy();
        let (fds, rings) = (common::open_fds(), rings_open());
        let opts = StreamOptions::new(method).chunk_size(4096).buffers(8);
        let got = std::thread::scope(|s| {
            for w in writers {
                let stop = &stop;
                s.spawn(move || write_until(w, stop));
            }
            let got = std::panic::catch_unwind(|| {
                let fds: Vec<_> = readers.iter().map(|r| r.as_fd()).collect();
                let mut procs: Vec<PanicAt> = (0..4)
                    .map(|i| PanicAt {
                        at: (i == 2).then_some(2),
                        chunks: 0,
                    })
                    .collect();
                read_many(&fds, &mut procs, &opts)
            });
            // Looked at while the stream is still open; asserted once the writer is stopped.
            let after = (
                ringread::net::rings_dropped_busy(),
                rings_open(),
                common::open_fds(),
            );
            stop.store(true, Ordering::Relaxed);
            drop(readers);
            (got, after)
        });
        let (got, (busy_after, rings_after, fds_after)) = got;
        assert_boom(&method.to_string(), got);
        assert_eq!(busy_after, busy, "{method}: a ring was dropped busy");
        assert_eq!(rings_after, rings, "{method}: a ring's descriptor is left");
        assert_eq!(fds_after, fds, "{method}: a descriptor is left");
    }
}

/// Another thread cancels `read_many` waiting on three silent FIFOs: every stream ends with
/// `Error::Interrupted` naming it, within a second of the cancel, with no ring left busy.
#[test]
fn cancel_from_another_thread_stops_read_many_on_silent_fifos() {
    use std::sync::mpsc;
    use std::time::Instant;
    let _g = common::shared();
    for method in [
        StreamMethod::UringMultishot,
        StreamMethod::UringSingle,
        StreamMethod::Epoll,
        StreamMethod::Tokio,
    ] {
        let fifos: Vec<_> = (0..3).map(|_| silent_fifo()).collect();
        let cancel = Cancel::new().unwrap();
        let opts = StreamOptions::new(method).cancel(Some(cancel.clone()));
        let busy = ringread::net::rings_dropped_busy();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let fds: Vec<_> = fifos.iter().map(|(_, f)| f.as_fd()).collect();
            let mut procs: Vec<_> = (0..3)
                .map(|_| ringread::processor::ByteCount::default())
                .collect();
            let got = read_many(&fds, &mut procs, &opts);
            let _ = tx.send((got, Instant::now()));
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            rx.try_recv().is_err(),
            "{method}: the read ended before the cancel"
        );
        let at = Instant::now();
        cancel.cancel();
        let (got, ended) = rx
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_else(|_| panic!("{method}: still reading 1 s after the cancel"));
        // Its descriptors closed before the lock on them is let go.
        t.join().unwrap();
        assert!(
            ended.duration_since(at) < Duration::from_secs(1),
            "{method}"
        );
        let results = got.unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(results.len(), 3, "{method}");
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Err(Error::Interrupted { path }) => {
                    assert_eq!(path.to_str(), Some(&*format!("stream {i}")), "{method}")
                }
                other => panic!("{method}: stream {i}: expected Interrupted, got {other:?}"),
            }
        }
        assert_eq!(ringread::net::rings_dropped_busy(), busy, "{method}");
    }
}

/// Out-of-range stream options are refused before any I/O, as `ReadOptionsBuilder` refuses its own,
/// instead of being clamped silently.
#[test]
fn out_of_range_stream_options_are_refused() {
    let _g = common::shared();
    let (r, _w) = common::pipe(0);
    for opts in [
        StreamOptions::new(StreamMethod::Sync).chunk_size(0),
        StreamOptions::new(StreamMethod::UringMultishot).buffers(0),
        StreamOptions::new(StreamMethod::UringMultishot).buffers(1 << 20),
        StreamOptions::new(StreamMethod::UringSingle).batch(65),
    ] {
        let mut n = ringread::processor::ByteCount::default();
        match read_stream(r.as_fd(), "pipe", &opts, &mut n) {
            Err(Error::InvalidOptions(m)) => assert!(m.contains("between 1 and"), "{m}"),
            other => panic!("{opts:?}: {other:?}"),
        }
    }
}
