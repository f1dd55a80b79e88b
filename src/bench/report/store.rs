//! The human table of `bench --store`.

use std::fmt;

use super::{opt, write_machine, MethodResult};
use crate::bench::{CacheMode, Report};

/// The human table of a `--store` report.
pub(crate) fn write_table(r: &Report, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write_machine(&r.machine, f)?;
    if let Some(s) = &r.store {
        writeln!(
            f,
            "store data: {}: {} ({:.2} GiB), {} objects of {:.2} MiB{}; {} timed runs per store, \
             alternating",
            s.dir,
            s.ranges_file,
            s.ranges_file_bytes as f64 / (1u64 << 30) as f64,
            s.objects,
            s.object_bytes as f64 / (1u64 << 20) as f64,
            if s.temporary {
                " (generated, removed afterwards)"
            } else if s.files_made > 0 {
                " (generated now, kept)"
            } else {
                " (there already)"
            },
            r.runs
        )?;
        writeln!(f, "ringread's store: {}", s.ring_store)?;
    }
    for c in &r.results {
        writeln!(f)?;
        write!(
            f,
            "cache {}: {}",
            c.cache.name(),
            c.preparation.as_deref().unwrap_or("-")
        )?;
        if c.cache == CacheMode::Cold {
            write!(
                f,
                " (at most {} of the work's bytes resident)",
                c.residency_before
                    .map_or("?".into(), |x| format!("{:.1}%", x * 100.0))
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<36} {:>18} {:>12} {:>9} {:>16} {:>16}  checksum",
            "work",
            "LocalFileSystem ms",
            "RingStore ms",
            "Local/Ring",
            "LocalFileSystem",
            "RingStore"
        )?;
        for (w, pair) in c.methods.chunks(2).enumerate() {
            let [local, ring] = pair else { continue };
            let (what, rate): (String, &dyn Fn(&MethodResult) -> String) = if w == 0 {
                (
                    format!(
                        "get_ranges: {} x {} B random",
                        r.store.as_ref().map_or(0, |s| s.ranges),
                        c.chunk_size
                    ),
                    &|m: &MethodResult| format!("{} IOPS", opt(m.median_iops, 0)),
                )
            } else {
                (
                    format!(
                        "get+bytes: {} x {:.1} MiB at once",
                        c.depth,
                        r.store.as_ref().map_or(0, |s| s.object_bytes) as f64 / (1u64 << 20) as f64
                    ),
                    &|m: &MethodResult| format!("{} GiB/s", opt(m.median_gib_per_s, 2)),
                )
            };
            let same = if local.checksum == ring.checksum {
                local.checksum.clone().unwrap_or_default() + " (equal)"
            } else {
                "DIFFER".into()
            };
            writeln!(
                f,
                "{what:<36} {:>18} {:>12} {:>9} {:>16} {:>16}  {same}",
                opt(local.median_ms, 1),
                opt(ring.median_ms, 1),
                ring.ratio_to_local
                    .map_or("-".into(), |x| format!("{x:.2}x")),
                rate(local),
                rate(ring),
            )?;
        }
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
