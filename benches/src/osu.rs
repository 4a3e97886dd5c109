//! What the OSU-style programs (`osu_latency`, `osu_bw`, `osu_bibw`,
//! `osu_multi_lat`, `osu_allreduce`, `osu_bcast`) share: their options,
//! message sizes, iteration counts and output, so that each program holds
//! only its timed loop.
//!
//! They behave as the OSU micro-benchmarks do (their `osu_util` and
//! `osu_latency.c` ... `osu_bcast.c`):
//! - options `-m [MIN:]MAX` (message sizes in bytes; `K`/`M` suffixes
//!   accepted), `-i ITERS` (timed iterations), `-x WARMUP` (untimed ones
//!   first), plus `--csv FILE` and `--plot FILE.svg` of this suite;
//! - sizes from MIN, doubling, up to MAX (0 is followed by 1): by default 1 B
//!   to 4 MiB point-to-point and up to 1 MiB for collectives;
//! - OSU's iteration counts, fewer above 8 KiB (`LARGE_MESSAGE_SIZE`). One
//!   difference: `-i` and `-x` here set the counts of every size, large ones
//!   too, so that a quick run is quick;
//! - rank 0 prints a header (`# OSU MPI-style Latency Test ...`), a column
//!   header (`# Size  Latency (us)`) and one line per size, formatted as
//!   OSU's `%-10d%20.2f`.

use std::path::PathBuf;

use mpirt::collective::SystemOperation;
use mpirt::topology::{Communicator, SimpleCommunicator};
use mpirt::traits::{CommunicatorCollectives, Root};

use crate::plot;
use crate::series::{Metric, Series};

/// Above this size OSU switches to its large-message iteration counts.
pub const LARGE_MESSAGE_SIZE: usize = 8192;
/// Messages in flight per iteration of the bandwidth tests (OSU's window).
pub const WINDOW_SIZE: usize = 64;
/// Width of the size column (OSU's `%-10d`).
const SIZE_WIDTH: usize = 10;
/// Width of the value column (OSU's `FIELD_WIDTH`).
const FIELD_WIDTH: usize = 20;

/// Iteration counts of one benchmark, as OSU sets them.
#[derive(Debug, Clone, Copy)]
pub struct Iterations {
    /// Timed iterations up to [`LARGE_MESSAGE_SIZE`].
    pub small: usize,
    /// Untimed warm-up iterations up to [`LARGE_MESSAGE_SIZE`].
    pub small_warmup: usize,
    /// Timed iterations above it.
    pub large: usize,
    /// Warm-up iterations above it.
    pub large_warmup: usize,
}

/// How many ranks a benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranks {
    /// Exactly this many (the point-to-point tests: 2).
    Exactly(usize),
    /// At least this many.
    AtLeast(usize),
}

/// One OSU-style program.
#[derive(Debug)]
pub struct Spec {
    /// The program's name (`osu_latency`).
    pub program: &'static str,
    /// What its header calls it: `Latency` gives `# OSU MPI-style Latency Test`.
    pub title: &'static str,
    /// What it measures.
    pub metric: Metric,
    /// Default smallest and largest message, bytes.
    pub default_sizes: (usize, usize),
    /// The smallest message it can time (4 for a test on `f32` elements).
    pub smallest: usize,
    /// Sizes are rounded down to a multiple of this (element size).
    pub granularity: usize,
    /// OSU's iteration counts.
    pub iterations: Iterations,
    /// The job sizes it runs at.
    pub ranks: Ranks,
}

/// Iteration counts of the point-to-point latency tests (osu_latency,
/// osu_multi_lat).
pub const LATENCY_ITERATIONS: Iterations = Iterations {
    small: 10_000,
    small_warmup: 100,
    large: 1_000,
    large_warmup: 10,
};

/// Iteration counts of the bandwidth tests (osu_bw, osu_bibw), each
/// iteration moving [`WINDOW_SIZE`] messages.
pub const BANDWIDTH_ITERATIONS: Iterations = Iterations {
    small: 100,
    small_warmup: 10,
    large: 20,
    large_warmup: 2,
};

/// Iteration counts of the collective tests (osu_allreduce, osu_bcast).
pub const COLLECTIVE_ITERATIONS: Iterations = Iterations {
    small: 1_000,
    small_warmup: 200,
    large: 100,
    large_warmup: 10,
};

/// The options of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Message sizes to time, ascending.
    pub sizes: Vec<usize>,
    /// `-i`: timed iterations of every size, instead of OSU's counts.
    pub iterations: Option<usize>,
    /// `-x`: warm-up iterations of every size, instead of OSU's counts.
    pub warmup: Option<usize>,
    /// `--csv`: where to write the measurements.
    pub csv: Option<PathBuf>,
    /// `--plot`: where to draw them.
    pub plot: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Run with these options.
    Run(Options),
    /// Print this usage text and stop.
    Help(String),
}

/// `4096`, `4K`, `4KiB`, `1M`: a byte count.
pub fn parse_bytes(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(scale)
}

/// The sizes OSU's loop visits: from `min`, doubling (0 is followed by 1),
/// up to `max`.
pub fn message_sizes(min: usize, max: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut size = min;
    while size <= max {
        sizes.push(size);
        size = if size == 0 { 1 } else { size * 2 };
    }
    sizes
}

impl Spec {
    /// The usage text.
    pub fn usage(&self) -> String {
        let (min, max) = self.default_sizes;
        format!(
            "usage: {program} [-m [MIN:]MAX] [-i ITERS] [-x WARMUP] [--csv FILE] [--plot FILE.svg]\n\
             \n\
             OSU MPI-style {title} Test, run under mpirun ({ranks}).\n\
             \n\
             \x20 -m [MIN:]MAX    message sizes in bytes, doubling from MIN (default {min}:{max})\n\
             \x20 -i ITERS        timed iterations per size (default {small}, {large} above {LARGE_MESSAGE_SIZE} bytes)\n\
             \x20 -x WARMUP       untimed iterations first (default {small_warmup}, {large_warmup} above {LARGE_MESSAGE_SIZE} bytes)\n\
             \x20 --csv FILE      also write `size_bytes,{csv}` lines to FILE\n\
             \x20 --plot FILE     also draw the curve (log-log) into the SVG file FILE\n",
            program = self.program,
            title = self.title,
            ranks = match self.ranks {
                Ranks::Exactly(n) => format!("exactly {n} ranks"),
                Ranks::AtLeast(n) => format!("{n} ranks or more"),
            },
            small = self.iterations.small,
            large = self.iterations.large,
            small_warmup = self.iterations.small_warmup,
            large_warmup = self.iterations.large_warmup,
            csv = self.metric.csv_name(),
        )
    }

    /// Parses the arguments after the program name.
    pub fn parse_args<I: IntoIterator<Item = String>>(&self, args: I) -> Result<Parsed, String> {
        let (mut min, mut max) = self.default_sizes;
        let mut options = Options {
            sizes: Vec::new(),
            iterations: None,
            warmup: None,
            csv: None,
            plot: None,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |what: &str| {
                args.next()
                    .ok_or_else(|| format!("{arg} needs {what} after it"))
            };
            let count = |text: String, what: &str| {
                text.parse::<usize>()
                    .map_err(|_| format!("{what} wants a number, not {text:?}"))
            };
            match arg.as_str() {
                "-m" | "--message-size" => {
                    let range = value("[MIN:]MAX")?;
                    let bad = || format!("-m wants [MIN:]MAX in bytes, not {range:?}");
                    match range.split_once(':') {
                        Some((low, high)) => {
                            min = parse_bytes(low).ok_or_else(bad)?;
                            if !high.is_empty() {
                                max = parse_bytes(high).ok_or_else(bad)?;
                            }
                        }
                        None => max = parse_bytes(&range).ok_or_else(bad)?,
                    }
                }
                "-i" | "--iterations" => {
                    let n = count(value("ITERS")?, "-i")?;
                    if n == 0 {
                        return Err("-i wants at least 1 iteration".into());
                    }
                    options.iterations = Some(n);
                }
                "-x" | "--warmup" => options.warmup = Some(count(value("WARMUP")?, "-x")?),
                "--csv" => options.csv = Some(PathBuf::from(value("FILE")?)),
                "--plot" => options.plot = Some(PathBuf::from(value("FILE.svg")?)),
                "-h" | "--help" => return Ok(Parsed::Help(self.usage())),
                other => return Err(format!("unknown option {other:?} (try --help)")),
            }
        }
        let min = min.max(self.smallest);
        options.sizes = message_sizes(min, max)
            .into_iter()
            .map(|s| s / self.granularity * self.granularity)
            .collect();
        options.sizes.dedup();
        if options.sizes.is_empty() {
            return Err(format!(
                "no message size between {min} and {max} bytes (the smallest this test times is {})",
                self.smallest
            ));
        }
        Ok(Parsed::Run(options))
    }

    /// Timed and warm-up iterations for `size`.
    pub fn rounds(&self, options: &Options, size: usize) -> (usize, usize) {
        let it = &self.iterations;
        let (iterations, warmup) = if size > LARGE_MESSAGE_SIZE {
            (it.large, it.large_warmup)
        } else {
            (it.small, it.small_warmup)
        };
        (
            options.iterations.unwrap_or(iterations),
            options.warmup.unwrap_or(warmup),
        )
    }

    /// Parses this process's arguments, starts mpirt and checks the job
    /// size. A bad command line or job size ends the job with status 2 once
    /// rank 0 has said why; `--help` prints the usage and exits with 0.
    pub fn start(&self) -> (mpirt::Universe, Options) {
        let parsed = self.parse_args(std::env::args().skip(1));
        if let Ok(Parsed::Help(text)) = &parsed {
            // Before initialization only the process manager's variable
            // tells which rank this is: one rank prints.
            if std::env::var("PMI_RANK").map_or(true, |r| r == "0") {
                print!("{text}");
            }
            std::process::exit(0);
        }
        let universe = mpirt::try_initialize().unwrap_or_else(|e| {
            eprintln!("{}: cannot start mpirt: {e}", self.program);
            std::process::exit(1);
        });
        let world = universe.world();
        let problem = match parsed {
            Ok(Parsed::Run(options)) => match self.check_ranks(world.size() as usize) {
                Ok(()) => return (universe, options),
                Err(message) => message,
            },
            Ok(Parsed::Help(_)) => unreachable!("handled above"),
            Err(message) => message,
        };
        if world.rank() == 0 {
            eprintln!("{}: {problem}", self.program);
        }
        // Every rank leaves only after rank 0 has spoken: the first rank to
        // exit with an error ends the job, and could silence rank 0.
        world.barrier();
        std::process::exit(2);
    }

    /// Whether a job of `size` ranks can run this test.
    fn check_ranks(&self, size: usize) -> Result<(), String> {
        let (fits, wanted) = match self.ranks {
            Ranks::Exactly(n) => (size == n, format!("exactly {n}")),
            Ranks::AtLeast(n) => (size >= n, format!("at least {n}")),
        };
        if fits {
            Ok(())
        } else {
            Err(format!(
                "this test needs {wanted} ranks, not {size} (mpirun -n 2 {})",
                self.program
            ))
        }
    }

    /// The header line: `# OSU MPI-style Latency Test (mpirt 0.1.0)`.
    pub fn header(&self) -> String {
        format!(
            "# OSU MPI-style {} Test (mpirt {})",
            self.title,
            env!("CARGO_PKG_VERSION")
        )
    }

    /// The column header: `# Size` and the metric, as OSU aligns them.
    pub fn column_header(&self) -> String {
        format!(
            "{:<SIZE_WIDTH$}{:>FIELD_WIDTH$}",
            "# Size",
            self.metric.column_title()
        )
    }
}

/// The average of every rank's `value`, at rank 0 (MPI_Reduce with
/// MPI_SUM, divided by the size, as OSU's collective tests report it);
/// other ranks get their own value back.
pub fn average_over_ranks(world: &SimpleCommunicator, value: f64) -> f64 {
    let root = world.process_at_rank(0);
    if world.rank() == 0 {
        let mut sum = 0.0f64;
        root.reduce_into_root(&value, &mut sum, SystemOperation::sum());
        sum / world.size() as f64
    } else {
        root.reduce_into(&value, SystemOperation::sum());
        value
    }
}

/// One line of the table, as OSU's `%-10d%20.2f`.
pub fn format_row(size: usize, value: f64) -> String {
    format!("{size:<SIZE_WIDTH$}{value:>FIELD_WIDTH$.2}")
}

/// The table rank 0 prints as it goes, and the files written at the end.
/// On other ranks it prints and writes nothing.
pub struct Report<'a> {
    spec: &'a Spec,
    options: &'a Options,
    /// Whether this rank prints and writes (rank 0).
    is_root: bool,
    /// The job's size, for the plot's title.
    ranks: usize,
    /// Rows printed so far.
    rows: Vec<(usize, f64)>,
}

impl<'a> Report<'a> {
    /// Prints the header lines if `world`'s rank is 0.
    pub fn new(spec: &'a Spec, options: &'a Options, world: &impl Communicator) -> Report<'a> {
        let is_root = world.rank() == 0;
        if is_root {
            println!("{}", spec.header());
            println!("{}", spec.column_header());
        }
        Report {
            spec,
            options,
            is_root,
            ranks: world.size() as usize,
            rows: Vec::new(),
        }
    }

    /// Prints one row (rank 0 only; other ranks may call it with anything).
    pub fn row(&mut self, size: usize, value: f64) {
        if self.is_root {
            println!("{}", format_row(size, value));
            self.rows.push((size, value));
        }
    }

    /// The legend label: `mpirt`, with the transport when one was forced.
    fn label() -> String {
        match std::env::var("MPIRT_TRANSPORT").as_deref() {
            Ok(t @ ("shm" | "tcp")) => format!("mpirt {t}"),
            _ => "mpirt".to_string(),
        }
    }

    /// Writes the CSV file and the plot, if asked for (call it after the
    /// universe is dropped). A file that cannot be written ends the process
    /// with status 1.
    pub fn finish(self) {
        if !self.is_root {
            return;
        }
        let series = Series {
            label: Self::label(),
            metric: self.spec.metric,
            points: self.rows,
        };
        let fail = |what: &std::path::Path, e: &dyn std::fmt::Display| -> ! {
            eprintln!(
                "{}: cannot write {}: {e}",
                self.spec.program,
                what.display()
            );
            std::process::exit(1);
        };
        if let Some(path) = &self.options.csv {
            series.write_csv(path).unwrap_or_else(|e| fail(path, &e));
        }
        if let Some(path) = &self.options.plot {
            let title = format!(
                "{}: OSU MPI-style {} Test, {} ranks",
                self.spec.program, self.spec.title, self.ranks
            );
            plot::write_svg(path, &title, &[series]).unwrap_or_else(|e| fail(path, &e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATENCY: Spec = Spec {
        program: "osu_latency",
        title: "Latency",
        metric: Metric::Latency,
        default_sizes: (1, 4 << 20),
        smallest: 0,
        granularity: 1,
        iterations: LATENCY_ITERATIONS,
        ranks: Ranks::Exactly(2),
    };

    fn parse(spec: &Spec, args: &[&str]) -> Result<Options, String> {
        match spec.parse_args(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(options) => Ok(options),
            Parsed::Help(_) => Err("help".into()),
        }
    }

    #[test]
    fn default_sizes_are_1_byte_to_4_mib() {
        let options = parse(&LATENCY, &[]).unwrap();
        assert_eq!(options.sizes.len(), 23);
        assert_eq!(options.sizes[0], 1);
        assert_eq!(*options.sizes.last().unwrap(), 4 << 20);
        assert_eq!(LATENCY.rounds(&options, 8192), (10_000, 100));
        assert_eq!(LATENCY.rounds(&options, 16384), (1_000, 10));
    }

    #[test]
    fn options_as_osu_reads_them() {
        let options = parse(&LATENCY, &["-m", "0:8", "-i", "5", "-x", "1"]).unwrap();
        assert_eq!(options.sizes, vec![0, 1, 2, 4, 8]);
        assert_eq!(LATENCY.rounds(&options, 1 << 20), (5, 1));
        assert_eq!(
            parse(&LATENCY, &["-m", "64"]).unwrap().sizes,
            vec![1, 2, 4, 8, 16, 32, 64]
        );
        assert_eq!(
            parse(&LATENCY, &["-m", "1M:"]).unwrap().sizes,
            vec![1 << 20, 2 << 20, 4 << 20]
        );
        assert_eq!(
            parse(&LATENCY, &["-m", "3:12"]).unwrap().sizes,
            vec![3, 6, 12]
        );
        let files = parse(&LATENCY, &["--csv", "a.csv", "--plot", "a.svg"]).unwrap();
        assert_eq!(files.csv, Some(PathBuf::from("a.csv")));
        assert_eq!(files.plot, Some(PathBuf::from("a.svg")));
        assert_eq!(parse(&LATENCY, &["-h"]), Err("help".into()));
        for bad in [
            &["-m", "x"][..],
            &["-i", "0"],
            &["-i"],
            &["-q"],
            &["-m", "9:4"],
        ] {
            assert!(parse(&LATENCY, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn element_sized_tests_round_sizes() {
        let allreduce = Spec {
            smallest: 4,
            granularity: 4,
            default_sizes: (4, 1 << 20),
            ..LATENCY
        };
        assert_eq!(
            parse(&allreduce, &["-m", "1:16"]).unwrap().sizes,
            vec![4, 8, 16]
        );
        assert_eq!(
            parse(&allreduce, &["-m", "6:24"]).unwrap().sizes,
            vec![4, 12, 24]
        );
        assert!(parse(&allreduce, &["-m", "0:2"]).is_err());
    }

    #[test]
    fn table_layout() {
        assert_eq!(
            LATENCY.header(),
            format!(
                "# OSU MPI-style Latency Test (mpirt {})",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(LATENCY.column_header(), "# Size            Latency (us)");
        assert_eq!(format_row(8, 0.4567), "8                         0.46");
    }
}
