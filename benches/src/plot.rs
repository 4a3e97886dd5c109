//! Log-log SVG plots of [`Series`]: message size on the x axis, latency or
//! bandwidth on the y axis, one coloured line with markers per series and a
//! legend, drawn with `plotters`' SVG backend.
//!
//! The x axis is marked at powers of two with byte units (`1`, `4`, `16`,
//! ..., `1K`, ..., `4M`), as message sizes are; the y axis at 1, 2 and 5
//! times powers of ten (only powers of ten when the values span more than
//! four and a half decades). Sizes of 0 and values that are not positive have no
//! place on a log scale and are left out. Text is laid out by the SVG
//! viewer (no font files are read), so the picture is the same everywhere.

use std::fmt;
use std::fs;
use std::path::Path;

use plotters::prelude::*;

use crate::series::{Metric, Series};

/// Pixel size of the pictures.
const SIZE: (u32, u32) = (900, 560);

/// Line colours, in series order: the Okabe-Ito palette, which stays
/// distinguishable for colour-blind readers.
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Why a plot could not be drawn.
#[derive(Debug)]
pub enum PlotError {
    /// No series has a point that a log-log plot can show.
    NothingToDraw,
    /// The series do not measure the same thing.
    MixedMetrics(Metric, Metric),
    /// Drawing or writing the file failed.
    Draw(String),
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlotError::NothingToDraw => {
                write!(f, "no point with a positive size and value to draw")
            }
            PlotError::MixedMetrics(a, b) => write!(
                f,
                "cannot draw {} and {} on one axis",
                a.axis_title(),
                b.axis_title()
            ),
            PlotError::Draw(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PlotError {}

/// `1`, `512`, `4K`, `1M`: a power-of-two byte count as a short label.
pub fn size_label(bytes: f64) -> String {
    let bytes = bytes.round() as u64;
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}G", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

/// `0.05`, `2`, `1000`: a 1-2-5 value without trailing zeros.
fn value_label(value: f64) -> String {
    if value >= 1.0 {
        format!("{}", value.round())
    } else {
        let decimals = (-value.log10().floor()) as usize;
        format!("{value:.decimals$}")
    }
}

/// Powers of two from `low` to `high` (inclusive), as f64.
fn powers_of_two(low: f64, high: f64) -> Vec<f64> {
    let mut points = Vec::new();
    let mut p = 2f64.powf(low.log2().ceil());
    while p <= high {
        points.push(p);
        p *= 2.0;
    }
    points
}

/// Decade multiples `m * 10^k` (for each `m` of `multiples`) within the range.
fn decade_points(low: f64, high: f64, multiples: &[f64]) -> Vec<f64> {
    let mut points = Vec::new();
    let mut decade = 10f64.powf(low.log10().floor());
    while decade <= high {
        for m in multiples {
            let p = m * decade;
            if p >= low && p <= high {
                points.push(p);
            }
        }
        decade *= 10.0;
    }
    points
}

/// Draws `series` as an SVG document and returns its text.
pub fn render_svg(title: &str, series: &[Series]) -> Result<String, PlotError> {
    let metric = series.first().ok_or(PlotError::NothingToDraw)?.metric;
    if let Some(other) = series.iter().find(|s| s.metric != metric) {
        return Err(PlotError::MixedMetrics(metric, other.metric));
    }
    let curves: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| {
            let points = s
                .points
                .iter()
                .filter(|&&(size, value)| size > 0 && value > 0.0 && value.is_finite())
                .map(|&(size, value)| (size as f64, value))
                .collect();
            (s.label.as_str(), points)
        })
        .collect();
    let all = || curves.iter().flat_map(|(_, points)| points.iter());
    let fold = |pick: fn(&(f64, f64)) -> f64, f: fn(f64, f64) -> f64, start| {
        all().map(pick).fold(start, f)
    };
    let (min_x, max_x) = (
        fold(|p| p.0, f64::min, f64::INFINITY),
        fold(|p| p.0, f64::max, 0.0),
    );
    let (min_y, max_y) = (
        fold(|p| p.1, f64::min, f64::INFINITY),
        fold(|p| p.1, f64::max, 0.0),
    );
    if !min_x.is_finite() {
        return Err(PlotError::NothingToDraw);
    }
    let draw_error = |e: &dyn fmt::Display| PlotError::Draw(e.to_string());

    // Room around the data so that markers at the ends are not cut.
    let x_range = (min_x / 1.25)..(max_x.max(min_x * 2.0) * 1.25);
    let y_range = (min_y / 1.6)..(max_y.max(min_y * 2.0) * 1.6);
    let x_light = powers_of_two(x_range.start, x_range.end);
    let x_bold: Vec<f64> = if x_light.len() > 12 {
        // Every other power of two: 1, 4, 16, ... (or 2, 8, 32, ...).
        x_light.iter().copied().step_by(2).collect()
    } else {
        x_light.clone()
    };
    let decades = (y_range.end / y_range.start).log10();
    let y_bold = if decades > 4.5 {
        decade_points(y_range.start, y_range.end, &[1.0])
    } else {
        decade_points(y_range.start, y_range.end, &[1.0, 2.0, 5.0])
    };
    let y_light = decade_points(
        y_range.start,
        y_range.end,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    );

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(
                x_range
                    .log_scale()
                    .with_key_points(x_bold)
                    .with_light_points(x_light),
                y_range
                    .log_scale()
                    .with_key_points(y_bold)
                    .with_light_points(y_light),
            )
            .map_err(|e| draw_error(&e))?;
        chart
            .configure_mesh()
            .x_desc("Message size (bytes)")
            .y_desc(metric.axis_title())
            .x_label_formatter(&|v| size_label(*v))
            .y_label_formatter(&|v| value_label(*v))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .bold_line_style(RGBColor(200, 200, 200))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(|e| draw_error(&e))?;
        for (index, (label, points)) in curves.into_iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            let line = ShapeStyle::from(colour).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.clone(), line))
                .map_err(|e| draw_error(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, colour.filled())),
                )
                .map_err(|e| draw_error(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(160, 160, 160))
            .margin(12)
            .draw()
            .map_err(|e| draw_error(&e))?;
        root.present().map_err(|e| draw_error(&e))?;
    }
    Ok(svg)
}

/// Draws `series` into the SVG file `path`.
pub fn write_svg(path: &Path, title: &str, series: &[Series]) -> Result<(), PlotError> {
    let svg = render_svg(title, series)?;
    fs::write(path, svg).map_err(|e| PlotError::Draw(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(label: &str, scale: f64) -> Series {
        Series {
            label: label.into(),
            metric: Metric::Latency,
            points: (0..=22)
                .map(|k| (1 << k, scale * (1 << k) as f64))
                .collect(),
        }
    }

    #[test]
    fn labels() {
        assert_eq!(size_label(1.0), "1");
        assert_eq!(size_label(512.0), "512");
        assert_eq!(size_label(4096.0), "4K");
        assert_eq!(size_label(4194304.0), "4M");
        assert_eq!(value_label(0.05), "0.05");
        assert_eq!(value_label(0.2), "0.2");
        assert_eq!(value_label(1000.0), "1000");
        assert_eq!(powers_of_two(0.8, 9.0), vec![1.0, 2.0, 4.0, 8.0]);
        assert_eq!(decade_points(0.15, 30.0, &[1.0, 2.0, 5.0]).len(), 7);
    }

    #[test]
    fn an_svg_with_every_label() {
        let svg = render_svg("t", &[latency("mpirt shm", 0.01), latency("MPICH", 0.02)]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.contains("mpirt shm") && svg.contains("MPICH"));
        // plotters puts each text on a line of its own.
        assert!(svg.contains("Message size (bytes)") && svg.contains("\n4M\n"));
    }

    #[test]
    fn refuses_what_it_cannot_draw() {
        let mut bw = latency("bw", 1.0);
        bw.metric = Metric::Bandwidth;
        assert!(matches!(
            render_svg("t", &[latency("a", 1.0), bw]),
            Err(PlotError::MixedMetrics(..))
        ));
        let zero = Series {
            label: "z".into(),
            metric: Metric::Latency,
            points: vec![(0, 1.0)],
        };
        assert!(matches!(
            render_svg("t", &[zero]),
            Err(PlotError::NothingToDraw)
        ));
        assert!(matches!(
            render_svg("t", &[]),
            Err(PlotError::NothingToDraw)
        ));
    }
}
