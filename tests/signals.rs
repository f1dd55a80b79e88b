//! SIGINT and SIGTERM stop a read cleanly: reads in flight are reaped (or cancelled and reaped), and
//! the process exits with status 130, quietly. Also the library's interrupt flag.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringread::{processor::from_fn, Backend, Cancel, Chunk, Error, ReadOptions, Reader, Source};

/// Waits until the child has installed its SIGINT handler (bit 2 of SigCgt in /proc/PID/status), so
/// the signal cannot arrive before ringread is ready for it.
fn wait_for_handler(child: &Child) {
    let status = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&status).unwrap_or_default();
        let caught = text
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (libc::SIGINT - 1)) != 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ringread never installed its handler"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `sig` and waits for the exit, failing (not hanging) if it does not come.
fn signal_and_wait(mut child: Child, sig: i32) -> std::process::Output {
    // SAFETY: kill on a child we own.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ringread did not stop after signal {sig}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn sigint_while_waiting_on_a_silent_pipe_exits_130() {
    for backend in ["uring", "sync"] {
        // We hold the pipe's write end open and write nothing: the read can only end by cancellation.
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringread"))
            .args(["--backend", backend, "count"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"some bytes\n").unwrap();
        wait_for_handler(&child);
        std::thread::sleep(Duration::from_millis(50)); // let it block in the read
        let out = signal_and_wait(child, libc::SIGINT);
        drop(stdin);
        assert_eq!(out.status.code(), Some(130), "{backend}: {out:?}");
        assert!(
            out.stdout.is_empty(),
            "{backend}: no count for an interrupted read"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn sigterm_during_a_long_file_read_exits_130() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    // 64 GiB of holes: far longer to read than the test waits, and no disk space used.
    let path = dir.path().join("sparse");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    for args in [
        &["sum", "-a", "sha256"][..],
        &["--direct", "count"],
        &["cat"],
    ] {
        let child = Command::new(env!("CARGO_BIN_EXE_ringread"))
            .args(args)
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_handler(&child);
        let out = signal_and_wait(child, libc::SIGTERM);
        assert_eq!(out.status.code(), Some(130), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn the_library_stops_on_its_cancel_handle() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![7u8; 8 << 20]).unwrap();
    for direct in [false, true] {
        let flag = Cancel::new().unwrap();
        let opts = ReadOptions::builder()
            .chunk_size(64 << 10)
            .depth(8)
            .direct(direct)
            .build()
            .unwrap();
        let mut reader = Reader::new(opts);
        reader.set_cancel(flag.clone());
        let mut seen = 0u64;
        let mut p = from_fn(|c: &Chunk<'_>| {
            seen += c.len() as u64;
            if seen >= 1 << 20 {
                flag.cancel();
            }
            Ok(true)
        });
        match reader.read(&path, &mut p) {
            Err(Error::Interrupted { path: p }) => assert_eq!(p, path),
            other => panic!("expected Interrupted, got {other:?}"),
        }
        assert!(seen < 8 << 20, "reading went on after the flag was set");
        // The reader is usable again once the handle is reset.
        flag.reset();
        let mut n = ringread::processor::ByteCount::default();
        assert_eq!(reader.read(&path, &mut n).unwrap().bytes, 8 << 20);
    }
}

/// A FIFO opened read-write never sees its end: a read of it waits for data forever. A cancel handle
/// used from another thread stops it within a second on every backend (io_uring: the lane's poll on
/// the handle's eventfd wakes io_uring_enter and the read is cancelled; sync and pread: poll(2) on
/// both), and the reader reads again afterwards.
#[test]
fn a_cancel_from_another_thread_stops_a_blocked_fifo_read() {
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for backend in [Backend::Auto, Backend::Uring, Backend::Sync, Backend::Pread] {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let cancel = Cancel::new().unwrap();
        let opts = ReadOptions::builder().backend(backend).build().unwrap();
        let mut reader = Reader::new(opts);
        reader.set_cancel(cancel.clone());
        let canceller = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let at = std::time::Instant::now();
                cancel.cancel();
                at
            })
        };
        let mut n = ringread::processor::ByteCount::default();
        let res = reader.read(Source::file(file.try_clone().unwrap(), "fifo"), &mut n);
        let stopped = std::time::Instant::now();
        let cancelled_at = canceller.join().unwrap();
        assert!(
            matches!(res, Err(Error::Interrupted { .. })),
            "{backend:?}: {res:?}"
        );
        let took = stopped.duration_since(cancelled_at);
        assert!(
            took < std::time::Duration::from_secs(1),
            "{backend:?}: {took:?}"
        );
        // Data written now is read once the handle is reset (nothing of the first read is left).
        cancel.reset();
        (&file).write_all(b"after").unwrap();
        let opts = ReadOptions::builder()
            .backend(backend)
            .max_bytes(5)
            .build()
            .unwrap();
        let again = Reader::new(opts);
        let mut n = ringread::processor::ByteCount::default();
        assert_eq!(
            again
                .read(Source::file(file, "fifo"), &mut n)
                .unwrap()
                .bytes,
            5,
            "{backend:?}"
        );
    }
}

/// A FIFO with no writer among many files (`read_each`, every backend). The open of a FIFO never
/// waits in `open(2)`: with a `Cancel`, the call returns `Error::Interrupted` once it is
/// cancelled, while the FIFO still has no writer (the writer here comes only after the call
/// returned, or after 20 s if it hangs, which the test then reports). Without one, the files
/// before the FIFO are handed back while it waits for its writer, and once the writer comes, the
/// FIFO's bytes and the files after it.
#[test]
fn a_fifo_with_no_writer_among_many_files_answers_a_cancel_and_holds_nothing_before_it() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut paths = Vec::new();
    let mut want = Vec::new();
    for i in 0..40usize {
        let p = dir.path().join(format!("f{i}"));
        if i == 17 {
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            want.push(b"from the writer".to_vec());
        } else {
            let data = vec![i as u8; i * 1000 + 1];
            std::fs::write(&p, &data).unwrap();
            want.push(data);
        }
        paths.push(p);
    }
    let fifo = paths[17].clone();
    // Opens the FIFO for writing once `go` is set (or after 20 s), says so, and writes `data`.
    let writer = |go: Arc<AtomicBool>, came: Arc<AtomicBool>, data: &'static [u8]| {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(20);
            while !go.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            came.store(true, Ordering::SeqCst);
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            w.write_all(data).unwrap();
        })
    };
    for backend in [Backend::Auto, Backend::Uring, Backend::Pread, Backend::Sync] {
        // With a Cancel: interrupted while the FIFO has no writer.
        let cancel = Cancel::new().unwrap();
        let mut reader = Reader::new(ReadOptions::builder().backend(backend).build().unwrap());
        reader.set_cancel(cancel.clone());
        let (go, came) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let w = writer(go.clone(), came.clone(), b"late");
        let canceller = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                cancel.cancel();
            })
        };
        let res = reader.read_each(
            Source::paths(paths.clone()),
            |_, _| ringread::processor::ByteCount::default(),
            |_| {},
        );
        let writer_came_first = came.load(Ordering::SeqCst);
        go.store(true, Ordering::SeqCst);
        canceller.join().unwrap();
        // Open the FIFO read-write (which never waits), so that the writer's open, if it still
        // waits for a reader, returns and its thread ends.
        let rw = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        w.join().unwrap();
        drop(rw);
        assert!(
            matches!(res, Err(Error::Interrupted { .. })),
            "{backend:?}: {res:?}"
        );
        assert!(
            !writer_came_first,
            "{backend:?}: the Cancel was answered only once a writer came"
        );

        // Without one: the files before the FIFO come back while it has no writer; then all.
        let reader = Reader::new(ReadOptions::builder().backend(backend).build().unwrap());
        let (go, came) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let w = writer(go.clone(), came.clone(), b"from the writer");
        let before_writer = AtomicUsize::new(0);
        let mut got: Vec<Vec<u8>> = Vec::new();
        reader
            .read_each(
                Source::paths(paths.clone()),
                |_, _| ringread::processor::CopyTo::new(Vec::new()),
                |f| {
                    if !came.load(Ordering::SeqCst) {
                        before_writer.fetch_add(1, Ordering::SeqCst);
                    }
                    if f.index == 16 {
                        go.store(true, Ordering::SeqCst);
                    }
                    got.push(f.result.map(|_| f.processor.into_inner()).unwrap());
                },
            )
            .unwrap();
        w.join().unwrap();
        assert_eq!(
            before_writer.load(Ordering::SeqCst),
            17,
            "{backend:?}: the files before the FIFO waited for its writer"
        );
        assert!(got == want, "{backend:?}: bytes differ");
    }
}
