//! The async stream interface ([`crate::stream`]) as a benchmark way: a tokio multi-threaded runtime
//! and a [`Driver`](crate::stream::Driver) kept across reads (as a long-lived program keeps them),
//! one task taking the file's [`OwnedChunk`](crate::stream::OwnedChunk)s in order and handing each to
//! the processor.

use std::path::Path;

use super::ReadMethod;
use crate::error::{Error, Result};
use crate::options::ReadOptions;
use crate::processor::Processor;
use crate::stream::Driver;

/// ringread's stream interface in a tokio runtime.
#[derive(Debug)]
pub struct AsyncStreamMethod {
    rt: tokio::runtime::Runtime,
    driver: Driver,
    opts: ReadOptions,
}

impl AsyncStreamMethod {
    /// A runtime (one worker per CPU) and a driver with `opts.threads()` threads (one per CPU when
    /// not given), reading with these options.
    pub fn new(opts: ReadOptions) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Ring {
                path: "tokio runtime".into(),
                op: "setup",
                source,
            })?;
        let driver = match opts.threads() {
            Some(t) => Driver::with_threads(t)?,
            None => Driver::new()?,
        };
        // The threads are the driver's; a stream refuses options that would set the engine's.
        let mut stream_opts = ReadOptions::builder()
            .chunk_size(opts.chunk_size())
            .depth(opts.depth())
            .direct(opts.direct())
            .dontcache(opts.dontcache())
            .register_buffers(opts.register_buffers())
            .cached_fast_path(opts.cached_fast_path());
        if let Some(m) = opts.max_bytes() {
            stream_opts = stream_opts.max_bytes(m);
        }
        Ok(AsyncStreamMethod {
            rt,
            driver,
            opts: stream_opts.build()?,
        })
    }
}

impl ReadMethod for AsyncStreamMethod {
    fn name(&self) -> String {
        if self.opts.cached_fast_path() {
            "stream".into()
        } else {
            "stream-driver".into()
        }
    }

    fn read(&self, path: &Path, proc: &mut (dyn Processor + Send)) -> Result<u64> {
        let mut stream = self.driver.open(path, &self.opts)?;
        let fail = |offset, source| Error::Process {
            path: path.into(),
            offset,
            source,
        };
        proc.begin().map_err(|e| fail(0, e))?;
        let bytes = self.rt.block_on(async {
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next_chunk().await {
                let chunk = chunk?;
                bytes += chunk.len() as u64;
                if !proc
                    .process(&chunk.as_chunk())
                    .map_err(|e| fail(chunk.offset(), e))?
                {
                    break;
                }
            }
            Ok::<_, Error>(bytes)
        })?;
        proc.finish().map_err(|e| fail(bytes, e))?;
        Ok(bytes)
    }

    fn notice(&self) -> Option<String> {
        self.driver.notice().map(|n| n.to_string())
    }
}
