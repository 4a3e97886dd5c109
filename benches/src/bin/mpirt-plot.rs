//! mpirt-plot: overlays the curves of several benchmark runs in one log-log
//! SVG picture with a legend, e.g. mpirt over shared memory, mpirt over TCP
//! and MPICH:
//!
//! ```text
//! mpirt-plot -o latency.svg --title "osu_latency, 2 ranks" \
//!     "mpirt shm=shm.csv" "mpirt tcp=tcp.csv" "MPICH shm=mpich.txt"
//! ```
//!
//! Each input is a CSV file written by an OSU-style program's `--csv`, or
//! the output of `shared/anchors/pingpong.c` (its `RESULT` lines; `--test`
//! picks which test, `lat` by default). A curve's label is the text before
//! `=`, or else the file's name without its extension.
use std::path::{Path, PathBuf};
use std::process::exit;

use mpirt_benches::plot;
use mpirt_benches::series::Series;

const USAGE: &str =
    "usage: mpirt-plot -o OUT.svg [--title TITLE] [--test lat|ssend|bw|allreduce] [LABEL=]FILE...

Draws the curves of several benchmark runs (CSV files from the OSU-style
programs' --csv, or RESULT lines of shared/anchors/pingpong.c) in one
log-log SVG picture with a legend. LABEL defaults to the file's name.
";

/// One input: its legend label and file.
fn input(arg: &str) -> (String, PathBuf) {
    if let Some((label, path)) = arg.split_once('=') {
        if !Path::new(arg).exists() {
            return (label.to_string(), PathBuf::from(path));
        }
    }
    let path = PathBuf::from(arg);
    let label = path
        .file_stem()
        .map_or_else(|| arg.to_string(), |s| s.to_string_lossy().into_owned());
    (label, path)
}

fn fail(message: &str) -> ! {
    eprintln!("mpirt-plot: {message}");
    exit(2);
}

fn main() {
    let mut output = None;
    let mut title = None;
    let mut test = "lat".to_string();
    let mut inputs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .unwrap_or_else(|| fail(&format!("{arg} needs {what} after it")))
        };
        match arg.as_str() {
            "-o" | "--output" => output = Some(PathBuf::from(value("a file"))),
            "--title" => title = Some(value("a title")),
            "--test" => test = value("a test name"),
            "-h" | "--help" => {
                print!("{USAGE}");
                return;
            }
            flag if flag.starts_with('-') && flag.len() > 1 => {
                fail(&format!("unknown option {flag:?} (try --help)"))
            }
            _ => inputs.push(input(&arg)),
        }
    }
    let Some(output) = output else {
        fail("no output file (-o OUT.svg); try --help")
    };
    if inputs.is_empty() {
        fail("no input file; try --help");
    }
    let series: Vec<Series> = inputs
        .iter()
        .map(|(label, path)| {
            Series::read(label, path, &test)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())))
        })
        .collect();
    let title = title.unwrap_or_else(|| series[0].metric.axis_title().to_string());
    if let Err(e) = plot::write_svg(&output, &title, &series) {
        fail(&format!("{}: {e}", output.display()));
    }
}
