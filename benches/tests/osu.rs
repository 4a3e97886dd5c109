//! The OSU-style programs run as real jobs through the launcher's library,
//! with tiny sizes and iteration counts, each with a deadline; their output
//! is checked for OSU's layout (header, column header, `%-10d%20.2f` rows)
//! and sane values (positive, finite, sizes doubling as asked), and their
//! `--csv` and `--plot` files for agreement with the table. The plot tool
//! is run on sample files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use launcher::{Job, Outcome, Output, Transport};

/// A job slower than this fails its test (they take well under a second).
const DEADLINE: Duration = Duration::from_secs(60);
/// Sizes every program is asked for: `-m 1:64`.
const SIZES: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("osu-{test}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn run(program: &str, args: &[&str], ranks: usize, transport: Transport) -> Outcome {
    Job::new(program)
        .args(args.iter().copied())
        .ranks(ranks)
        .transport(transport)
        .timeout(DEADLINE)
        .output(Output::Capture)
        .run()
        .unwrap_or_else(|e| panic!("{program} did not start: {e}"))
}

/// What one program must print.
struct Expected {
    title: &'static str,
    column_header: &'static str,
    sizes: &'static [usize],
    csv_header: &'static str,
}

const LATENCY: &str = "# Size            Latency (us)";
const BANDWIDTH: &str = "# Size        Bandwidth (MB/s)";
const AVERAGE: &str = "# Size         Avg Latency(us)";

/// Runs `program` with tiny sizes and counts, CSV and plot, and checks all
/// three outputs; returns the (size, value) rows.
fn check_program(
    program: &str,
    ranks: usize,
    transport: Transport,
    expected: &Expected,
) -> Vec<(usize, f64)> {
    let dir = scratch(&format!(
        "{}-{ranks}-{}",
        Path::new(program).file_name().unwrap().to_string_lossy(),
        transport.env_value()
    ));
    let (csv, svg) = (dir.join("out.csv"), dir.join("out.svg"));
    let args = [
        "-m",
        "1:64",
        "-i",
        "20",
        "-x",
        "2",
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ];
    let outcome = run(program, &args, ranks, transport);
    assert!(outcome.success(), "{program} failed:\n{}", outcome.report());
    for rank in 1..ranks {
        assert!(
            outcome.stdout[rank].is_empty(),
            "only rank 0 prints:\n{}",
            outcome.report()
        );
    }
    let lines = &outcome.stdout[0];
    let context = outcome.report();
    assert_eq!(
        lines[0],
        format!(
            "# OSU MPI-style {} Test (mpirt {})",
            expected.title,
            env!("CARGO_PKG_VERSION")
        ),
        "{context}"
    );
    assert_eq!(lines[1], expected.column_header, "{context}");
    let rows: Vec<(usize, f64)> = lines[2..]
        .iter()
        .map(|line| {
            // OSU's `%-10d%20.2f`: the size left in 10 columns, the value
            // right-aligned with two decimals ending at column 30.
            assert_eq!(line.len(), 30, "row {line:?} is not 10 + 20 wide");
            let (size, value) = line.split_at(10);
            assert!(!size.starts_with(' ') && !value.ends_with(' '), "{line:?}");
            let decimals = value.trim().split_once('.').map(|(_, d)| d.len());
            assert_eq!(decimals, Some(2), "{line:?} has not two decimals");
            let size: usize = size.trim().parse().expect("a size");
            let value: f64 = value.trim().parse().expect("a value");
            assert!(value.is_finite() && value > 0.0, "{line:?}: not positive");
            (size, value)
        })
        .collect();
    let sizes: Vec<usize> = rows.iter().map(|r| r.0).collect();
    assert_eq!(sizes, expected.sizes, "sizes double as -m asks\n{context}");
    assert!(sizes.windows(2).all(|w| w[0] < w[1]));

    let csv_text = fs::read_to_string(&csv).expect("the --csv file");
    let mut csv_lines = csv_text.lines();
    assert_eq!(csv_lines.next(), Some(expected.csv_header));
    for ((size, value), line) in rows.iter().zip(csv_lines.by_ref()) {
        let (s, v) = line.split_once(',').expect("size,value");
        assert_eq!(s.parse::<usize>().unwrap(), *size);
        let v: f64 = v.parse().unwrap();
        assert!((v - value).abs() <= 0.006, "csv {v} against table {value}");
    }
    assert_eq!(csv_lines.next(), None, "as many CSV lines as rows");
    let picture = fs::read_to_string(&svg).expect("the --plot file");
    assert!(picture.starts_with("<svg") && picture.trim_end().ends_with("</svg>"));
    assert!(picture.contains(&format!("mpirt {}", transport.env_value())));
    rows
}

const POINT_TO_POINT_SIZES: &[usize] = &SIZES;
/// Allreduce sums `f32`: its sizes start at 4 bytes.
const FLOAT_SIZES: &[usize] = &[4, 8, 16, 32, 64];

macro_rules! transport_suite {
    ($module:ident, $transport:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn osu_latency() {
                check_program(
                    env!("CARGO_BIN_EXE_osu_latency"),
                    2,
                    $transport,
                    &Expected {
                        title: "Latency",
                        column_header: LATENCY,
                        sizes: POINT_TO_POINT_SIZES,
                        csv_header: "size_bytes,latency_us",
                    },
                );
            }

            #[test]
            fn osu_bw() {
                check_program(
                    env!("CARGO_BIN_EXE_osu_bw"),
                    2,
                    $transport,
                    &Expected {
                        title: "Bandwidth",
                        column_header: BANDWIDTH,
                        sizes: POINT_TO_POINT_SIZES,
                        csv_header: "size_bytes,bandwidth_mb_s",
                    },
                );
            }

            #[test]
            fn osu_bibw() {
                check_program(
                    env!("CARGO_BIN_EXE_osu_bibw"),
                    2,
                    $transport,
                    &Expected {
                        title: "Bi-Directional Bandwidth",
                        column_header: BANDWIDTH,
                        sizes: POINT_TO_POINT_SIZES,
                        csv_header: "size_bytes,bandwidth_mb_s",
                    },
                );
            }

            #[test]
            fn osu_multi_lat_at_2_4_and_5_ranks() {
                for ranks in [2, 4, 5] {
                    check_program(
                        env!("CARGO_BIN_EXE_osu_multi_lat"),
                        ranks,
                        $transport,
                        &Expected {
                            title: "Multi Latency",
                            column_header: LATENCY,
                            sizes: POINT_TO_POINT_SIZES,
                            csv_header: "size_bytes,latency_us",
                        },
                    );
                }
            }

            #[test]
            fn osu_allreduce_at_2_and_3_ranks() {
                for ranks in [2, 3] {
                    check_program(
                        env!("CARGO_BIN_EXE_osu_allreduce"),
                        ranks,
                        $transport,
                        &Expected {
                            title: "Allreduce Latency",
                            column_header: AVERAGE,
                            sizes: FLOAT_SIZES,
                            csv_header: "size_bytes,avg_latency_us",
                        },
                    );
                }
            }

            #[test]
            fn osu_bcast_at_2_and_3_ranks() {
                for ranks in [2, 3] {
                    check_program(
                        env!("CARGO_BIN_EXE_osu_bcast"),
                        ranks,
                        $transport,
                        &Expected {
                            title: "Broadcast Latency",
                            column_header: AVERAGE,
                            sizes: POINT_TO_POINT_SIZES,
                            csv_header: "size_bytes,avg_latency_us",
                        },
                    );
                }
            }
        }
    };
}

transport_suite!(shm, Transport::Shm);
transport_suite!(tcp, Transport::Tcp);

#[test]
fn a_point_to_point_test_refuses_three_ranks() {
    let outcome = run(
        env!("CARGO_BIN_EXE_osu_latency"),
        &["-m", "8"],
        3,
        Transport::Auto,
    );
    assert!(!outcome.success());
    assert!(
        outcome.stderr[0]
            .iter()
            .any(|l| l.contains("needs exactly 2 ranks, not 3")),
        "{}",
        outcome.report()
    );
}

#[test]
fn a_bad_option_is_named() {
    let outcome = run(
        env!("CARGO_BIN_EXE_osu_bw"),
        &["-m", "lots"],
        2,
        Transport::Auto,
    );
    assert!(!outcome.success());
    assert!(
        outcome.stderr[0]
            .iter()
            .any(|l| l.contains("osu_bw: -m wants [MIN:]MAX")),
        "{}",
        outcome.report()
    );
    assert!(outcome.stderr[1].is_empty(), "only rank 0 complains");
}

/// Runs `mpirt-plot` with `args`.
fn mpirt_plot(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mpirt-plot"))
        .args(args)
        .output()
        .expect("mpirt-plot runs")
}

#[test]
fn mpirt_plot_overlays_csv_and_result_files_with_a_legend() {
    let dir = scratch("plot");
    let shm = dir.join("mpirt-shm.csv");
    let tcp = dir.join("tcp.csv");
    let mpich = dir.join("mpich.txt");
    let rows = |base: f64| -> String {
        let mut text = String::from("size_bytes,latency_us\n");
        for k in 0..=22 {
            text += &format!("{},{:.3}\n", 1u64 << k, base + (1u64 << k) as f64 / 5000.0);
        }
        text
    };
    fs::write(&shm, rows(0.3)).unwrap();
    fs::write(&tcp, rows(5.0)).unwrap();
    fs::write(
        &mpich,
        "RESULT lat       0 0.200 0.00\nRESULT lat       8 0.210 38.10\n\
         RESULT bw        8 0.100 80.00\nRESULT lat 4194304 663.000 6326.00\n",
    )
    .unwrap();
    let out = dir.join("latency.svg");
    let result = mpirt_plot(&[
        "-o",
        out.to_str().unwrap(),
        "--title",
        "osu_latency, 2 ranks",
        shm.to_str().unwrap(),
        &format!("mpirt tcp={}", tcp.display()),
        &format!("MPICH shm={}", mpich.display()),
    ]);
    assert!(result.status.success(), "{result:?}");
    let svg = fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.trim_end().ends_with("</svg>"));
    // The label from the file name, and the two given ones.
    for label in [
        "mpirt-shm",
        "mpirt tcp",
        "MPICH shm",
        "osu_latency, 2 ranks",
    ] {
        assert!(svg.contains(label), "no {label:?} in the picture");
    }
    assert!(svg.contains("Latency (us)") && svg.contains("Message size (bytes)"));
}

#[test]
fn mpirt_plot_refuses_what_it_cannot_draw() {
    let dir = scratch("plot-refusals");
    let latency = dir.join("lat.csv");
    let bandwidth = dir.join("bw.csv");
    fs::write(&latency, "size_bytes,latency_us\n1,0.5\n2,0.6\n").unwrap();
    fs::write(&bandwidth, "size_bytes,bandwidth_mb_s\n1,5\n2,10\n").unwrap();
    let out = dir.join("out.svg");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&[latency.to_str().unwrap()], "no output file"),
        (&["-o", out], "no input file"),
        (
            &[
                "-o",
                out,
                latency.to_str().unwrap(),
                bandwidth.to_str().unwrap(),
            ],
            "cannot draw Latency (us) and Bandwidth (MB/s) on one axis",
        ),
        (&["-o", out, "/no/such.csv"], "/no/such.csv"),
    ];
    for (args, message) in cases {
        let result = mpirt_plot(args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(!Path::new(out).exists());
}

/// `allreduce_bcast` prints pingpong.c's four RESULT lines at any rank count.
#[test]
fn allreduce_bcast_prints_result_lines_at_3_and_5_ranks() {
    for (ranks, transport) in [(3, Transport::Shm), (5, Transport::Tcp)] {
        let outcome = run(
            env!("CARGO_BIN_EXE_allreduce_bcast"),
            &["-x", "0.001"],
            ranks,
            transport,
        );
        assert!(outcome.success(), "{}", outcome.report());
        let lines: Vec<(String, usize, f64)> = outcome
            .stdout_text(0)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f[..] {
                    ["RESULT", test, bytes, avg, _, _] => {
                        Some((test.to_string(), bytes.parse().ok()?, avg.parse().ok()?))
                    }
                    _ => None,
                }
            })
            .collect();
        let shape: Vec<(&str, usize)> = lines.iter().map(|(t, b, _)| (t.as_str(), *b)).collect();
        assert_eq!(
            shape,
            [
                ("allreduce", 8),
                ("allreduce", 1 << 20),
                ("bcast", 8),
                ("bcast", 1 << 20)
            ],
            "{}",
            outcome.report()
        );
        assert!(
            lines.iter().all(|(_, _, us)| us.is_finite() && *us > 0.0),
            "{lines:?}"
        );
    }
}
