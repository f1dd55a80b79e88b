//! The report as a bar chart (SVG): median GiB/s per backend, one group per cache state, with the
//! slowest and fastest run as a whisker.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{CacheReport, MethodResult, Report};
use crate::error::{Error, Result};

const COLORS: [RGBColor; 8] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
    RGBColor(0x81, 0x72, 0xb3),
    RGBColor(0x93, 0x78, 0x60),
    RGBColor(0xda, 0x8b, 0xc3),
    RGBColor(0x8c, 0x8c, 0x8c),
];

/// The top of a panel's scale: the highest whisker, unless one way is so far ahead of the rest
/// (mmap with the null processor, a peer that is 20 times slower than the others) that the others
/// would be slivers; then 2.5 times the panel's median bar, and the bars above it are clipped
/// with their value written on them.
fn panel_cap(medians: &[f64], highest: f64) -> f64 {
    let mut v = medians.to_vec();
    v.sort_by(f64::total_cmp);
    let Some(&mid) = v.get(v.len() / 2) else {
        return highest;
    };
    let cap = (mid * 2.5).max(0.5);
    if highest > cap {
        cap
    } else {
        highest
    }
}

/// A bar's label: the way's name, or for a `--peers` process its command without the options
/// that every row of the panel shares (`$ ringread cat --chunk-size 262144 --depth 4` is
/// `ringread cat`; the table and the JSON keep the whole command).
fn label(name: &str) -> String {
    let name = name.strip_prefix("$ ").unwrap_or(name);
    name.split(" --").next().unwrap_or(name).to_string()
}

/// Writes the chart to `path`.
pub fn write_svg(report: &Report, path: &Path) -> Result<()> {
    draw(report, path).map_err(|e| Error::Open {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// A panel's chart: x the ways (one unit each), y GiB/s.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn draw(report: &Report, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, (chart_width(report), 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "ringread bench: {:.2} GiB, processor {:?}, {} runs: median GiB/s, whiskers min-max, \
         ^ bar clipped at the panel's cap",
        report.file.bytes as f64 / (1u64 << 30) as f64,
        report.processor,
        report.runs
    );
    let root = root.titled(&caption, ("sans-serif", 18))?;
    // One panel per cache state, each with its own scale: page-cache and device speeds differ 10x.
    let panels = report.results.len().max(1);
    for (area, r) in root.split_evenly((1, panels)).iter().zip(&report.results) {
        draw_panel(area, report, r)?;
    }
    root.present()?;
    Ok(())
}

/// The chart's width: a panel per cache state, each bar as wide as its label (about 6 px a
/// character at 10 px), 84 px at least.
fn chart_width(report: &Report) -> u32 {
    let panels = report.results.len().max(1);
    let per = report
        .results
        .iter()
        .map(|r| r.methods.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let longest = report
        .results
        .iter()
        .flat_map(|r| r.methods.iter().map(|m| label(&m.name).len()))
        .max()
        .unwrap_or(0);
    120 + (panels * per * (longest * 6).max(84)) as u32
}

/// One cache state's panel: its scale, its axes, and a bar for each way.
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    report: &Report,
    r: &CacheReport,
) -> DrawResult {
    let names: Vec<String> = r.methods.iter().map(|m| label(&m.name)).collect();
    let medians: Vec<f64> = r
        .methods
        .iter()
        .filter_map(|m| m.median_gib_per_s)
        .collect();
    let highest = r
        .methods
        .iter()
        .filter_map(|m| m.max_gib_per_s)
        .fold(0.5f64, f64::max);
    let cap = panel_cap(&medians, highest);
    let top = cap * 1.15;
    // A stream has no cache state: its panel is named after the source.
    let panel = match report.source {
        super::BenchSource::File | super::BenchSource::Tree | super::BenchSource::Store => {
            r.cache.name()
        }
        s => s.name(),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(panel, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..names.len() as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - (i as f64 + 0.5)).abs() < 0.26 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_label_style(("sans-serif", 10))
        .y_desc("GiB/s")
        .draw()?;
    for (i, m) in r.methods.iter().enumerate() {
        draw_bar(&mut chart, i, m, cap, top)?;
    }
    Ok(())
}

/// Way `m`'s bar at `i`: its median (cut at `cap`, below the panel's `top`), its whisker and its
/// value; "n/a" if it has no figures.
fn draw_bar(
    chart: &mut Chart<'_, '_>,
    i: usize,
    m: &MethodResult,
    cap: f64,
    top: f64,
) -> DrawResult {
    let color = COLORS[i % COLORS.len()];
    let (Some(med), Some(lo), Some(hi)) = (m.median_gib_per_s, m.min_gib_per_s, m.max_gib_per_s)
    else {
        chart.draw_series(std::iter::once(Text::new(
            "n/a",
            (i as f64 + 0.3, top * 0.02),
            ("sans-serif", 10).into_font(),
        )))?;
        return Ok(());
    };
    let x0 = i as f64 + 0.15;
    let clipped = med > cap;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(x0, 0.0), (x0 + 0.7, med.min(cap))],
        color.filled(),
    )))?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(x0 + 0.35, lo.min(cap)), (x0 + 0.35, hi.min(cap))],
        BLACK.stroke_width(1),
    )))?;
    // A bar past the panel's cap is cut there and says its value, marked with '^'.
    let label = if clipped {
        format!("^{med:.2}")
    } else {
        format!("{med:.2}")
    };
    chart.draw_series(std::iter::once(Text::new(
        label,
        (x0, med.min(cap) + top * 0.01),
        ("sans-serif", 10).into_font(),
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_far_ahead_is_capped_and_the_rest_keep_the_scale() {
        // mmap with the null processor beside ways near 10 GiB/s: capped at 2.5x the median bar.
        assert_eq!(panel_cap(&[9.0, 10.0, 11.0, 75.0], 80.0), 27.5);
        // Bars of the same order: the highest whisker is the top.
        assert_eq!(panel_cap(&[4.0, 5.0, 6.0], 7.0), 7.0);
        assert_eq!(panel_cap(&[], 3.0), 3.0);
    }

    #[test]
    fn a_peer_bar_is_labelled_by_its_command_without_options() {
        assert_eq!(
            label("$ ringread cat --chunk-size 262144 --depth 4"),
            "ringread cat"
        );
        assert_eq!(label("$ xxhsum -H3"), "xxhsum -H3");
        assert_eq!(label("uring-fixed"), "uring-fixed");
    }
}
