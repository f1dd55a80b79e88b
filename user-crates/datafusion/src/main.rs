//! DataFusion and the parquet crate reading through ringread, as a service would use them.
//!
//! `cargo run --release` (what CI runs): generates a small Parquet dataset, then
//! 1. reads one file through `ringread::store::ParquetReader` with a projection and a row filter,
//!    and checks the batches equal the parquet crate's own (synchronous) reader's;
//! 2. runs the SQL queries below through a `SessionContext` whose `file://` store is
//!    `ringread::store::RingStore`, and checks each result equals DataFusion's default store's.
//!
//! Exit status 1 on any difference.
//!
//! `cargo run --release -- bench [DIR]`: the same work measured side by side, ringread's store
//! against object_store's `LocalFileSystem` (DataFusion's default), cold (each file's pages
//! dropped with `POSIX_FADV_DONTNEED` first) and warm: 10,000 random 4 KiB ranges of one file in
//! one `get_ranges`, 64 concurrent whole-object gets of 8 MiB files, and the queries. The data
//! goes to DIR (default `target/ringread-store-bench`), made once.

mod bench;
mod data;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::compute::kernels::cmp::gt;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowFilter,
};
use datafusion::parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::TryStreamExt;
use ringread::store::{ParquetReader, RingStore};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The queries: a full scan with an aggregate, a selective filter that prunes row groups and
/// pages (`ts` grows through the dataset), and a projection of several columns.
pub const QUERIES: [(&str, &str); 3] = [
    (
        "scan + aggregate",
        "SELECT category, COUNT(*) AS n, SUM(value) AS total, MIN(ts) AS first, MAX(ts) AS last \
         FROM t GROUP BY category ORDER BY category",
    ),
    (
        "selective filter",
        "SELECT id, value FROM t WHERE ts BETWEEN 1500000 AND 1501500 ORDER BY id",
    ),
    (
        "projection",
        "SELECT SUM(length(payload)) AS text, MAX(id) AS top, MIN(value) AS low, \
         COUNT(DISTINCT category) AS kinds FROM t WHERE value % 7 = 3",
    ),
];

/// A session whose `file://` store is `store` (`None`: DataFusion's default, `LocalFileSystem`),
/// with table `t` over the Parquet files in `dir`.
pub async fn session(dir: &Path, store: Option<Arc<RingStore>>) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    let ctx = SessionContext::new_with_config(config);
    if let Some(store) = store {
        // The one line that switches a DataFusion program to ringread:
        ctx.register_object_store(&url::Url::parse("file://")?, store);
    }
    let dir = format!("{}/", dir.canonicalize()?.display());
    ctx.register_parquet("t", &dir, ParquetReadOptions::default())
        .await?;
    Ok(ctx)
}

/// A query's result, as text.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<String> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(pretty_format_batches(&batches)?.to_string())
}

/// One file through `ParquetReader` (page index on, columns `id` and `value`, rows whose `ts` is
/// over `from`) against the parquet crate's synchronous reader of the same file.
async fn check_parquet_reader(path: &Path, from: i64) -> Result<usize> {
    let predicate = move |schema| {
        ArrowPredicateFn::new(schema, move |batch: RecordBatch| {
            gt(batch.column(0), &Int64Array::new_scalar(from))
        })
    };
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);

    let driver = ringread::stream::Driver::global()?;
    let reader = ParquetReader::open(driver, path)?;
    let builder =
        ParquetRecordBatchStreamBuilder::new_with_options(reader, options.clone()).await?;
    let meta = builder.metadata().clone();
    let schema = builder.parquet_schema();
    let columns = ProjectionMask::columns(schema, ["id", "value"]);
    let ts = ProjectionMask::columns(schema, ["ts"]);
    let filter = RowFilter::new(vec![Box::new(predicate(ts.clone()))]);
    let mine: Vec<RecordBatch> = builder
        .with_projection(columns.clone())
        .with_row_filter(filter)
        .build()?
        .try_collect()
        .await?;

    let file = std::fs::File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)?;
    if builder.metadata().num_row_groups() < 3
        || meta.num_row_groups() != builder.metadata().num_row_groups()
    {
        return Err(format!("{}: expected several row groups", path.display()).into());
    }
    let filter = RowFilter::new(vec![Box::new(predicate(ts))]);
    let theirs = builder
        .with_projection(columns)
        .with_row_filter(filter)
        .build()?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rows: usize = mine.iter().map(|b| b.num_rows()).sum();
    if rows == 0
        || pretty_format_batches(&mine)?.to_string() != pretty_format_batches(&theirs)?.to_string()
    {
        return Err(format!(
            "{}: ParquetReader's batches differ from parquet's reader's",
            path.display()
        )
        .into());
    }
    Ok(rows)
}

/// The check CI runs.
async fn check(dir: &Path) -> Result<()> {
    let files = data::make(dir, 4, 150_000)?;
    let rows = check_parquet_reader(&files[1], 2_900_000).await?;
    println!("ParquetReader: {rows} rows, same batches as the parquet crate's reader");
    let store = Arc::new(RingStore::new()?);
    let ours = session(dir, Some(store)).await?;
    let theirs = session(dir, None).await?;
    for (name, sql) in QUERIES {
        let a = query(&ours, sql).await?;
        let b = query(&theirs, sql).await?;
        if a != b {
            return Err(format!("{name}: RingStore gives\n{a}\nthe default store\n{b}").into());
        }
        let rows = a.lines().count().saturating_sub(4);
        println!("{name}: {rows} rows, equal to the default store's");
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => {
            let dir = args
                .get(1)
                .map_or("target/ringread-store-bench", |s| s.as_str());
            bench::run(Path::new(dir)).await
        }
        _ => {
            let dir =
                std::env::temp_dir().join(format!("ringread-datafusion-{}", std::process::id()));
            let r = check(&dir).await;
            let _ = std::fs::remove_dir_all(&dir);
            r
        }
    };
    if let Err(e) = result {
        eprintln!("ringread-datafusion-user: {e}");
        std::process::exit(1);
    }
}
