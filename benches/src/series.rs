//! A measured curve (message size against latency or bandwidth) and the two
//! file formats it is read from or written to:
//!
//! - CSV, as the OSU-style programs write it with `--csv`: a header naming
//!   the metric, then one `size,value` line per message size:
//!   ```text
//!   size_bytes,latency_us
//!   1,0.41
//!   2,0.40
//!   ```
//!   Lines starting with `#` are comments.
//! - `RESULT` lines, as `shared/anchors/pingpong.c` prints them (under MPICH
//!   or Open MPI) and `examples/pingpong --result` does:
//!   `RESULT <test> <bytes> <us> <MB/s>`. One test is picked from them
//!   (`lat`, `ssend`, `bw` or `allreduce`); `bw` is read as bandwidth, the
//!   others as latency. Other lines are ignored.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

/// What a curve measures: the y axis of a plot and the second CSV column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// One-way latency of a ping-pong, microseconds (osu_latency, osu_multi_lat).
    Latency,
    /// Megabytes (10^6 bytes) per second (osu_bw, osu_bibw).
    Bandwidth,
    /// Average over ranks of the time of one collective call, microseconds
    /// (osu_allreduce, osu_bcast).
    AverageLatency,
}

impl Metric {
    /// The column title of the OSU table (`# Size  Latency (us)`).
    pub fn column_title(self) -> &'static str {
        match self {
            Metric::Latency => "Latency (us)",
            Metric::Bandwidth => "Bandwidth (MB/s)",
            Metric::AverageLatency => "Avg Latency(us)",
        }
    }

    /// The name of the value column in CSV files.
    pub fn csv_name(self) -> &'static str {
        match self {
            Metric::Latency => "latency_us",
            Metric::Bandwidth => "bandwidth_mb_s",
            Metric::AverageLatency => "avg_latency_us",
        }
    }

    /// The metric a CSV value column names.
    pub fn from_csv_name(name: &str) -> Option<Metric> {
        [Metric::Latency, Metric::Bandwidth, Metric::AverageLatency]
            .into_iter()
            .find(|m| m.csv_name() == name.trim())
    }

    /// The y-axis title of a plot.
    pub fn axis_title(self) -> &'static str {
        match self {
            Metric::Latency => "Latency (us)",
            Metric::Bandwidth => "Bandwidth (MB/s)",
            Metric::AverageLatency => "Average latency (us)",
        }
    }

    /// Whether a higher value is better (for the legend's placement and for
    /// readers).
    pub fn higher_is_better(self) -> bool {
        self == Metric::Bandwidth
    }
}

/// One measured curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend label.
    pub label: String,
    /// What the values are.
    pub metric: Metric,
    /// (message size in bytes, value), in the order measured.
    pub points: Vec<(usize, f64)>,
}

/// Why a file could not be read as a [`Series`].
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be read.
    Io(io::Error),
    /// A line is neither a comment, a header nor `size,value`.
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// The file holds no point (or none of the chosen `RESULT` test).
    Empty,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::BadLine { line, text } => {
                write!(
                    f,
                    "line {line} is not `size,value` nor a RESULT line: {text:?}"
                )
            }
            ReadError::Empty => write!(f, "no measurements in it"),
        }
    }
}

impl std::error::Error for ReadError {}

impl Series {
    /// The CSV text of this series.
    pub fn to_csv(&self) -> String {
        let mut text = format!("size_bytes,{}\n", self.metric.csv_name());
        for (size, value) in &self.points {
            text += &format!("{size},{value:.3}\n");
        }
        text
    }

    /// Writes [`Series::to_csv`] to `path`.
    pub fn write_csv(&self, path: &Path) -> io::Result<()> {
        fs::write(path, self.to_csv())
    }

    /// Parses CSV or `RESULT` lines (see the module doc): a text with any
    /// `RESULT` line is read as the output of `pingpong.c`, where
    /// `result_test` picks the test and other lines are ignored; any other
    /// text as CSV, where a file without a header is taken as latency.
    pub fn parse(label: &str, text: &str, result_test: &str) -> Result<Series, ReadError> {
        let is_result = |line: &str| line.split_whitespace().next() == Some("RESULT");
        let (metric, points) = if text.lines().any(is_result) {
            Self::parse_result_lines(
                text.lines().enumerate().filter(|(_, l)| is_result(l)),
                result_test,
            )?
        } else {
            Self::parse_csv(text)?
        };
        if points.is_empty() {
            return Err(ReadError::Empty);
        }
        Ok(Series {
            label: label.to_string(),
            metric,
            points,
        })
    }

    /// `RESULT <test> <bytes> <us> <MB/s>` lines of `result_test`; the
    /// others are skipped.
    fn parse_result_lines<'t>(
        lines: impl Iterator<Item = (usize, &'t str)>,
        result_test: &str,
    ) -> Result<(Metric, Vec<(usize, f64)>), ReadError> {
        let (metric, column) = if result_test == "bw" {
            (Metric::Bandwidth, 4)
        } else {
            (Metric::Latency, 3)
        };
        let mut points = Vec::new();
        for (index, line) in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.get(1) != Some(&result_test) {
                continue;
            }
            let bad = || ReadError::BadLine {
                line: index + 1,
                text: line.to_string(),
            };
            let size = words.get(2).and_then(|w| w.parse().ok()).ok_or_else(bad)?;
            let value = words
                .get(column)
                .and_then(|w| w.parse().ok())
                .ok_or_else(bad)?;
            points.push((size, value));
        }
        Ok((metric, points))
    }

    /// A header naming the metric (optional: latency), then `size,value`.
    fn parse_csv(text: &str) -> Result<(Metric, Vec<(usize, f64)>), ReadError> {
        let mut metric = None;
        let mut points = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || ReadError::BadLine {
                line: index + 1,
                text: line.to_string(),
            };
            let mut fields = line.split(',');
            let (Some(first), Some(second)) = (fields.next(), fields.next()) else {
                return Err(bad());
            };
            match (first.trim().parse(), second.trim().parse()) {
                (Ok(size), Ok(value)) => points.push((size, value)),
                _ if points.is_empty() && metric.is_none() => {
                    metric = Some(Metric::from_csv_name(second).ok_or_else(bad)?)
                }
                _ => return Err(bad()),
            }
        }
        Ok((metric.unwrap_or(Metric::Latency), points))
    }

    /// Reads `path` as [`Series::parse`] does.
    pub fn read(label: &str, path: &Path, result_test: &str) -> Result<Series, ReadError> {
        let text = fs::read_to_string(path).map_err(ReadError::Io)?;
        Series::parse(label, &text, result_test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let series = Series {
            label: "x".into(),
            metric: Metric::Bandwidth,
            points: vec![(1, 2.5), (2, 5.25)],
        };
        let text = series.to_csv();
        assert_eq!(text, "size_bytes,bandwidth_mb_s\n1,2.500\n2,5.250\n");
        assert_eq!(Series::parse("x", &text, "lat").unwrap(), series);
    }

    #[test]
    fn result_lines_pick_one_test() {
        let text = "hello\nRESULT lat       0 0.300 0.00\nRESULT lat 8 0.350 22.86\n\
                    RESULT bw 8 0.100 80.00\nRESULT allreduce 8 0.5 0.4 0.6\n";
        let lat = Series::parse("mpich", text, "lat").unwrap();
        assert_eq!(lat.metric, Metric::Latency);
        assert_eq!(lat.points, vec![(0, 0.3), (8, 0.35)]);
        let bw = Series::parse("mpich", text, "bw").unwrap();
        assert_eq!(bw.metric, Metric::Bandwidth);
        assert_eq!(bw.points, vec![(8, 80.0)]);
        assert!(matches!(
            Series::parse("mpich", text, "ssend"),
            Err(ReadError::Empty)
        ));
    }

    #[test]
    fn a_broken_line_is_named() {
        let err = Series::parse("x", "size_bytes,latency_us\n1,0.5\nabc\n", "lat").unwrap_err();
        assert!(matches!(err, ReadError::BadLine { line: 3, .. }), "{err}");
        let err = Series::parse("x", "size,what\n1,2\n", "lat").unwrap_err();
        assert!(matches!(err, ReadError::BadLine { line: 1, .. }), "{err}");
    }
}
