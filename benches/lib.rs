//! Benchmarks of mpirt live in `benches/` (criterion, run by `cargo bench`).
//! This library is empty on purpose: cargo needs a target to hang them on.
