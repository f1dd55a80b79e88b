//! The human table of `bench --tree`.

use std::fmt::{self, Write as _};

use super::{mib, opt};
use crate::bench::{CacheMode, Report};

const GIB: f64 = (1u64 << 30) as f64;

const HEADER: [&str; 9] = [
    "way",
    "files/s",
    "min-max",
    "GiB/s",
    "CPU s",
    "calls/file",
    "peak RSS",
    "vs 1-by-1",
    "checksum",
];

/// Writes the report of a `--tree` benchmark.
pub(crate) fn write_table(r: &Report, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    super::write_machine(&r.machine, f)?;
    if let Some(t) = &r.tree {
        writeln!(
            f,
            "tree: {}: {} files, {:.2} GiB{}; processor: {:?}; {} timed runs per way, alternating",
            t.dir,
            t.files,
            t.bytes as f64 / GIB,
            if t.generated.is_some() {
                " (generated, removed afterwards)"
            } else {
                ""
            },
            r.processor,
            r.runs
        )?;
    }
    for c in &r.results {
        writeln!(f)?;
        let cold = c.cache == CacheMode::Cold;
        write!(
            f,
            "cache {}: {}",
            c.cache.name(),
            c.preparation.as_deref().unwrap_or("-")
        )?;
        if cold {
            write!(
                f,
                " (at most {} of the sampled files resident)",
                c.residency_before
                    .map_or("?".into(), |x| format!("{:.1}%", x * 100.0))
            )?;
        }
        writeln!(f)?;
        let w = c.methods.iter().map(|m| m.name.len()).fold(11, usize::max);
        let mut t = String::new();
        let h = HEADER;
        writeln!(
            t,
            "{:<w$} {:>9} {:>15} {:>6} {:>7} {:>10} {:>8} {:>10}  {}",
            h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
        )?;
        for m in &c.methods {
            if let Some(why) = &m.skipped {
                writeln!(t, "{:<w$} skipped: {why}", m.name)?;
                continue;
            }
            writeln!(
                t,
                "{:<w$} {:>9} {:>15} {:>6} {:>7} {:>10} {:>8} {:>10}  {}",
                m.name,
                opt(m.files_per_s, 0),
                format!(
                    "{}-{}",
                    opt(m.min_files_per_s, 0),
                    opt(m.max_files_per_s, 0)
                ),
                opt(m.median_gib_per_s, 2),
                opt(m.cpu_seconds, 3),
                opt(m.syscalls_per_file, 2),
                mib(m.peak_rss_bytes),
                m.ratio_to_one_by_one
                    .map_or("-".into(), |x| format!("{x:.2}x")),
                m.checksum.as_deref().unwrap_or("-"),
            )?;
        }
        f.write_str(&t)?;
    }
    writeln!(f)?;
    for (i, note) in r.notes.iter().enumerate() {
        if i > 0 {
            writeln!(f)?;
        }
        write!(f, "{note}")?;
    }
    Ok(())
}
