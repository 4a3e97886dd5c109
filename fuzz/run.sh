#!/usr/bin/env bash
# Runs every cargo-fuzz target (or those named) for SECONDS each, one at a
# time at the lowest priority, and prints one results row per target:
# target, seconds, executions, corpus size, findings (crash files).
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 600 s, all targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). A stable compiler works with
# RUSTC_BOOTSTRAP=1 (set here), which unlocks the sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(wire_header handshake pmi_line pmi_server card)
fi
export RUSTC_BOOTSTRAP=1
nice -n 19 cargo fuzz build -O
mkdir -p logs
echo "| target | seconds | executions | corpus size | findings |"
echo "|---|---|---|---|---|"
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="logs/$target.log"
    status=0
    nice -n 19 cargo fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -max_len=8192 >"$log" 2>&1 || status=$?
    executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    corpus=$(find "corpus/$target" -type f | wc -l)
    findings=$(find "artifacts/$target" -type f | wc -l)
    echo "| $target | $seconds | ${executions:-?} | $corpus | $findings$([ "$status" -ne 0 ] && echo " (exit $status, see fuzz/$log)") |"
done
