//! Benchmarks of mpirt, in three forms:
//!
//! - OSU-style programs (`src/bin/osu_*.rs`), run under `mpirun`, printing
//!   the tables people know from the OSU micro-benchmarks, and optionally a
//!   CSV file and an SVG plot. What they share (options, message sizes,
//!   output) is [`osu`].
//! - `mpirt-plot`, which overlays the curves of several runs (CSV files, or
//!   the `RESULT` lines of `shared/anchors/pingpong.c` run under MPICH) in
//!   one SVG picture; the drawing is [`plot`], the files are [`series`].
//! - criterion benches (`benches/*.rs`, run by `cargo bench`): the I/O-free
//!   engine and wire format, and two-rank jobs whose rank 0 is the bench
//!   process itself, with `bench-partner` as rank 1 ([`partner`]).
#![deny(missing_docs)]

pub mod osu;
pub mod partner;
pub mod plot;
pub mod series;
