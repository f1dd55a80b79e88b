//! The generated dataset: Parquet files of `rows` rows each, row groups of 50,000 rows, pages of at
//! most 5,000 rows with page statistics (so a filter on `ts`, which grows through the files,
//! prunes row groups and pages).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::Result;

/// Rows per batch written.
const BATCH: usize = 10_000;

/// Makes `files` Parquet files of `rows` rows each in `dir` (kept if there already, with the
/// same shape), and returns their paths.
pub fn make(dir: &Path, files: usize, rows: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("value", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, false),
    ]));
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(50_000))
        .set_data_page_row_count_limit(5_000)
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let mut paths = Vec::with_capacity(files);
    for f in 0..files {
        let path = dir.join(format!("part-{f:04}-{rows}.parquet"));
        if !path.exists() {
            let tmp = path.with_extension("tmp");
            let mut writer = ArrowWriter::try_new(
                std::fs::File::create(&tmp)?,
                schema.clone(),
                Some(props.clone()),
            )?;
            let first = (f * rows) as i64;
            for start in (0..rows).step_by(BATCH) {
                let n = BATCH.min(rows - start);
                writer.write(&batch(&schema, first + start as i64, n)?)?;
            }
            writer.close()?;
            std::fs::rename(&tmp, &path)?;
        }
        paths.push(path);
    }
    Ok(paths)
}

/// Rows `first..first + n`.
fn batch(schema: &Arc<Schema>, first: i64, n: usize) -> Result<RecordBatch> {
    let ids: Vec<i64> = (first..first + n as i64).collect();
    let mix = |id: i64| (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Int64Array::from_iter_values(ids.iter().map(|id| id * 10))),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|id| format!("c{:02}", id % 13)),
        )),
        Arc::new(Int64Array::from_iter_values(
            ids.iter().map(|&id| (mix(id) % 100_000) as i64),
        )),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|&id| {
            let len = 20 + (mix(id) % 50) as usize;
            "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "[..len]
                .to_string()
        }))),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
