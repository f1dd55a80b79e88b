//! [`ParquetReader`]: the parquet crate's [`AsyncFileReader`] on a driver's [`RangeFile`], so a
//! Parquet file's footer, page indexes and column chunks are read with every range of a call in
//! flight at once, into the driver's buffers, handed to the decoder without a copy.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use super::ahead::{ask_ahead_of, Strides};
use crate::error::Result;
use crate::file::open_read;
use crate::ranges::ByteRange;
use crate::source::Source;
use crate::stream::{Driver, RangeFile};

/// Column chunks that start within this many bytes of the end of the read before them share that
/// read (see [`RangeFile::read_ranges`]).
const MERGE_GAP: u64 = 16 << 10;

/// A Parquet file read through a ringread [`Driver`], for the parquet crate's async reader
/// (`ParquetRecordBatchStreamBuilder::new(reader)`): `get_bytes` is one read, `get_byte_ranges`
/// reads every range at once ([`RangeFile::read_ranges`]), and `get_metadata` reads the footer
/// (and, where asked, the page indexes) through those two.
///
/// ```no_run
/// use futures_util::TryStreamExt;
/// use parquet::arrow::ParquetRecordBatchStreamBuilder;
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let driver = ringread::stream::Driver::global()?;
/// let reader = ringread::store::ParquetReader::open(driver, "data.parquet")?;
/// let batches: Vec<_> = ParquetRecordBatchStreamBuilder::new(reader).await?.build()?.try_collect().await?;
/// # drop(batches); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ParquetReader {
    file: RangeFile,
    size: u64,
    /// The last `get_byte_ranges` calls, to ask the next one's ranges ahead.
    strides: Strides,
    footer_hint: Option<usize>,
    column_index: bool,
    offset_index: bool,
}

impl ParquetReader {
    /// Opens the Parquet file at `path` (on the calling thread) to be read through `driver`.
    pub fn open(driver: &Driver, path: impl AsRef<Path>) -> Result<ParquetReader> {
        let path = path.as_ref();
        let file = open_read(path)?;
        let size = file
            .metadata()
            .map_err(|source| crate::Error::Open {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        let file = driver.range_file(Source::file(file, path))?;
        Ok(ParquetReader::new(file, size))
    }

    /// A reader of `file`, a Parquet file of `size` bytes.
    pub fn new(file: RangeFile, size: u64) -> ParquetReader {
        ParquetReader {
            file,
            size,
            strides: Strides::default(),
            footer_hint: None,
            column_index: false,
            offset_index: false,
        }
    }

    /// Reads this many bytes from the end at first, to get the footer and the metadata with one
    /// read where they fit (as `ParquetObjectReader::with_footer_size_hint`).
    pub fn with_footer_size_hint(mut self, hint: usize) -> ParquetReader {
        self.footer_hint = Some(hint);
        self
    }

    /// Loads the column index (page statistics) with the metadata.
    pub fn with_preload_column_index(mut self, on: bool) -> ParquetReader {
        self.column_index = on;
        self
    }

    /// Loads the offset index (page locations) with the metadata.
    pub fn with_preload_offset_index(mut self, on: bool) -> ParquetReader {
        self.offset_index = on;
        self
    }

    /// The file read.
    pub fn file(&self) -> &RangeFile {
        &self.file
    }
}

/// ringread's error as the parquet crate's.
fn external(e: crate::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ParquetReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let asked = [ByteRange::new(
                range.start,
                range.end.saturating_sub(range.start),
            )];
            let mut got = self
                .file
                .read_ranges(&asked, None)
                .await
                .map_err(external)?;
            Ok(got.pop().unwrap_or_default())
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let asked: Vec<ByteRange> = ranges
                .iter()
                .map(|r| ByteRange::new(r.start, r.end.saturating_sub(r.start)))
                .collect();
            // A call that repeats the last one a step further on (the next row group's column
            // chunks): the step after is asked of the device while the caller decodes these.
            let ahead = self.strides.next("", &ranges, self.size);
            let got = self
                .file
                .read_ranges(&asked, Some(MERGE_GAP))
                .await
                .map_err(external)?;
            ask_ahead_of(&self.file, ahead);
            Ok(got)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let mut reader = ParquetMetaDataReader::new()
                .with_metadata_options(options.map(|o| o.metadata_options().clone()))
                .with_column_index_policy(PageIndexPolicy::from(self.column_index))
                .with_offset_index_policy(PageIndexPolicy::from(self.offset_index))
                .with_prefetch_hint(self.footer_hint);
            // The options' page index policies, where they ask for the indexes, win over this
            // reader's (as the parquet crate's own readers do).
            if let Some(o) = options {
                if o.column_index_policy() != PageIndexPolicy::Skip
                    || o.offset_index_policy() != PageIndexPolicy::Skip
                {
                    reader = reader
                        .with_column_index_policy(o.column_index_policy())
                        .with_offset_index_policy(o.offset_index_policy());
                }
            }
            let size = self.size;
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}
