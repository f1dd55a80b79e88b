//! The report as a bar chart (SVG): median GiB/s per backend, one group per cache state, with the
//! slowest and fastest run as a whisker.

use std::path::Path;

use plotters::prelude::*;

use super::Report;
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

/// Writes the chart to `path`.
pub fn write_svg(report: &Report, path: &Path) -> Result<()> {
    draw(report, path).map_err(|e| Error::Open {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

fn draw(report: &Report, path: &Path) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let names: Vec<String> = report
        .results
        .first()
        .map(|r| r.methods.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    let groups = report.results.len().max(1);
    let per = names.len().max(1) + 1;
    let top = report
        .results
        .iter()
        .flat_map(|r| r.methods.iter().filter_map(|m| m.max_gib_per_s))
        .fold(1.0f64, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (200 + 110 * groups as u32 * per as u32 / 2, 520))
        .into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "ringread bench: {:.2} GiB, processor {:?}, {} runs (median, whiskers min-max)",
        report.file.bytes as f64 / (1u64 << 30) as f64,
        report.processor,
        report.runs
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..(groups * per) as f64, 0f64..top)?;
    let caches: Vec<&str> = report.results.iter().map(|r| r.cache.name()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2)
        .x_label_formatter(&|x| {
            let g = (*x / per as f64) as usize;
            let mid = (g * per) as f64 + (per - 1) as f64 / 2.0;
            if (x - mid).abs() < 0.6 {
                caches.get(g).map_or(String::new(), |s| s.to_string())
            } else {
                String::new()
            }
        })
        .y_desc("GiB/s")
        .draw()?;
    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut bars = Vec::new();
        let mut whiskers = Vec::new();
        for (g, r) in report.results.iter().enumerate() {
            if let Some(m) = r.methods.iter().find(|m| &m.name == name) {
                if let (Some(med), Some(lo), Some(hi)) =
                    (m.median_gib_per_s, m.min_gib_per_s, m.max_gib_per_s)
                {
                    let x0 = (g * per + i) as f64 + 0.1;
                    bars.push(Rectangle::new([(x0, 0.0), (x0 + 0.8, med)], color.filled()));
                    whiskers.push(PathElement::new(
                        vec![(x0 + 0.4, lo), (x0 + 0.4, hi)],
                        BLACK.stroke_width(1),
                    ));
                }
            }
        }
        chart
            .draw_series(bars)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart.draw_series(whiskers)?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
