//! latency.png: p50/p95/p99 per scenario as horizontal bars on a log scale.
//!
//! Pure Rust: plotters' bitmap backend and PNG encoder, text through ab_glyph with a TrueType font
//! read at run time (fonts-dejavu-core), so building needs no system -dev library.

use crate::stats::Percentiles;
use crate::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::OnceLock;

/// Where Debian's fonts-dejavu-core puts its sans face (scripts/bench installs it).
pub const FONT_CANDIDATES: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];
const FAMILY: &str = "sans-serif";

/// Which percentile a series shows.
type Pick = fn(&Percentiles) -> f64;

/// One bar group.
pub struct Bars {
    pub label: String,
    pub latency: Percentiles,
}

pub fn latency_png(path: &Path, groups: &[Bars]) -> Result<()> {
    register_font()?;
    let groups: Vec<&Bars> = groups.iter().filter(|g| g.latency.p99_ms > 0.0).collect();
    if groups.is_empty() {
        return Err("no latencies to plot".into());
    }
    let n = groups.len();
    let height = 140 + 46 * n as u32;
    let root = BitMapBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;

    let smallest = groups
        .iter()
        .map(|g| g.latency.p50_ms)
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min);
    let largest = groups.iter().map(|g| g.latency.p99_ms).fold(0.0, f64::max);
    let (lo, hi) = (smallest / 2.0, largest * 3.0);
    // Category i occupies y in [i, i + 1), the first group at the top. The category names are
    // drawn by hand left of the axis: plotters' key-point axes have no f64 label formatter.
    // Room for the longest category name at 15 px (about 8.5 px a character).
    let longest = groups
        .iter()
        .map(|g| g.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_width = (longest as u32 * 17 / 2 + 24).max(120);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency per scenario: p50 / p95 / p99 (ms, log scale)",
            (FAMILY, 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(label_width)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .x_desc("milliseconds")
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 14))
        .draw()?;
    let name_style =
        TextStyle::from((FAMILY, 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, g) in groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(lo, (n - 1 - i) as f64 + 0.5));
        root.draw(&Text::new(g.label.clone(), (x - 10, y), &name_style))?;
    }

    let series: [(&str, RGBColor, Pick); 3] = [
        ("p50", RGBColor(86, 180, 233), |p| p.p50_ms),
        ("p95", RGBColor(230, 159, 0), |p| p.p95_ms),
        ("p99", RGBColor(213, 94, 0), |p| p.p99_ms),
    ];
    for (k, (name, colour, value)) in series.into_iter().enumerate() {
        let bars = groups.iter().enumerate().map(|(i, g)| {
            // Top-down order: group 0 at the highest y band; p50 above p95 above p99.
            let band = (n - 1 - i) as f64;
            let y1 = band + 0.85 - k as f64 * 0.25;
            Rectangle::new(
                [(lo, y1 - 0.22), (value(&g.latency).max(lo), y1)],
                colour.filled(),
            )
        });
        chart
            .draw_series(bars)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
    }
    chart.draw_series(groups.iter().enumerate().map(|(i, g)| {
        let band = (n - 1 - i) as f64;
        Text::new(
            format!("{:.1}", g.latency.p99_ms),
            (g.latency.p99_ms.max(lo) * 1.08, band + 0.15),
            (FAMILY, 12),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn register_font() -> Result<()> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let path = FONT_CANDIDATES
            .iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                format!(
                    "no font for the plot: install fonts-dejavu-core (looked for {})",
                    FONT_CANDIDATES.join(", ")
                )
            })?;
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
            .map_err(|_| format!("{path} is not a usable TrueType font"))
    })
    .clone()
    .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_is_drawn_when_a_font_is_installed() {
        if !FONT_CANDIDATES.iter().any(|p| Path::new(p).exists()) {
            eprintln!("skipped: no DejaVu font installed");
            return;
        }
        let path = std::env::temp_dir().join(format!("bench-plot-{}.png", std::process::id()));
        let p = |a, b, c| Percentiles {
            p50_ms: a,
            p95_ms: b,
            p99_ms: c,
            max_ms: c,
            ..Percentiles::default()
        };
        latency_png(
            &path,
            &[
                Bars {
                    label: "book".into(),
                    latency: p(3.0, 6.0, 9.0),
                },
                Bars {
                    label: "herd 5000".into(),
                    latency: p(300.0, 600.0, 700.0),
                },
            ],
        )
        .unwrap();
        let png = std::fs::read(&path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let _ = std::fs::remove_file(path);
    }
}
