//! The async peers of `bench --tree`, each with up to [`TREE_IN_FLIGHT`] files at once, each file
//! read whole and fed to its processor in the task that read it:
//! [`TokioFsMany`] (`tokio::fs::read` on a multi-thread runtime, which runs each file's open, read
//! and close on its blocking pool) and [`TokioUringMany`] (open, `statx`, reads and close through
//! one tokio-uring runtime's ring, on one thread). Both runtimes are kept across runs.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_uring::buf::BoundedBuf;

use super::ways::{check_cancel, Digester, TreeWay};
use crate::bench::ways::open_error;
use crate::bench::ProcessorKind;
use crate::error::{Error, Result};
use crate::Cancel;

/// Files the async ways keep in flight at once.
pub const TREE_IN_FLIGHT: usize = 64;

/// One file's outcome in a task: its place, its bytes, its result.
type Done = Result<(usize, u64, String)>;

/// Runs `spawn(i)` for every file, at most `in_flight` at once, and gathers the outcomes.
async fn drive(
    set: &mut JoinSet<Done>,
    paths: &[PathBuf],
    in_flight: usize,
    cancel: Option<&Cancel>,
    out: &mut [String],
    mut spawn: impl FnMut(&mut JoinSet<Done>, usize),
) -> Result<u64> {
    let mut next = 0;
    let mut bytes = 0;
    loop {
        while set.len() < in_flight && next < paths.len() {
            check_cancel(cancel, &paths[next])?;
            spawn(set, next);
            next += 1;
        }
        let Some(joined) = set.join_next().await else {
            return Ok(bytes);
        };
        let (i, n, digest) =
            joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        bytes += n;
        out[i] = digest;
    }
}

/// `tokio::fs::read`, up to [`TREE_IN_FLIGHT`] files at once, on a multi-thread runtime (a worker
/// per CPU).
#[derive(Debug)]
pub(crate) struct TokioFsMany {
    rt: tokio::runtime::Runtime,
    cancel: Option<Cancel>,
}

impl TokioFsMany {
    pub(crate) fn new(cancel: Option<Cancel>) -> std::io::Result<TokioFsMany> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        Ok(TokioFsMany { rt, cancel })
    }
}

impl TreeWay for TokioFsMany {
    fn run(
        &mut self,
        paths: &Arc<[PathBuf]>,
        kind: ProcessorKind,
        out: &mut [String],
    ) -> Result<u64> {
        let cancel = self.cancel.clone();
        self.rt.block_on(async {
            let mut set = JoinSet::new();
            drive(
                &mut set,
                paths,
                TREE_IN_FLIGHT,
                cancel.as_ref(),
                out,
                |set, i| {
                    let paths = paths.clone();
                    set.spawn(async move {
                        let path = &paths[i];
                        let data = tokio::fs::read(path).await.map_err(open_error(path))?;
                        let mut d = Digester::new(kind);
                        d.whole(path, &data)?;
                        Ok((i, data.len() as u64, d.digest()))
                    });
                },
            )
            .await
        })
    }
}

/// tokio-uring: open, `statx`, `read_at` until the size is read, and close, all through its ring,
/// up to [`TREE_IN_FLIGHT`] files at once, as tasks of one runtime (one thread, one ring).
pub(crate) struct TokioUringMany {
    rt: tokio_uring::Runtime,
    cancel: Option<Cancel>,
}

impl std::fmt::Debug for TokioUringMany {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokioUringMany").finish_non_exhaustive()
    }
}

impl TokioUringMany {
    pub(crate) fn new(cancel: Option<Cancel>) -> std::io::Result<TokioUringMany> {
        Ok(TokioUringMany {
            rt: tokio_uring::Runtime::new(&tokio_uring::builder())?,
            cancel,
        })
    }
}

/// One file through tokio-uring.
async fn uring_read(paths: Arc<[PathBuf]>, i: usize, kind: ProcessorKind) -> Done {
    let path = &paths[i];
    let file = tokio_uring::fs::File::open(path)
        .await
        .map_err(open_error(path))?;
    let read = async {
        let size = file.statx().await.map_err(open_error(path))?.stx_size as usize;
        let mut buf = Vec::with_capacity(size.max(1));
        while buf.len() < size {
            let at = buf.len();
            let (res, slice) = file.read_at(buf.slice(at..), at as u64).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Read {
                        path: path.clone(),
                        offset: at as u64,
                        source,
                    })
                }
            }
        }
        Ok(buf)
    }
    .await;
    let closed = file.close().await.map_err(open_error(path));
    let data = read?;
    closed?;
    let mut d = Digester::new(kind);
    d.whole(path, &data)?;
    Ok((i, data.len() as u64, d.digest()))
}

impl TreeWay for TokioUringMany {
    fn run(
        &mut self,
        paths: &Arc<[PathBuf]>,
        kind: ProcessorKind,
        out: &mut [String],
    ) -> Result<u64> {
        let cancel = self.cancel.clone();
        self.rt.block_on(async {
            let mut set = JoinSet::new();
            drive(
                &mut set,
                paths,
                TREE_IN_FLIGHT,
                cancel.as_ref(),
                out,
                |set, i| {
                    set.spawn_local(uring_read(paths.clone(), i, kind));
                },
            )
            .await
        })
    }
}
