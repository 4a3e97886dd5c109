#!/usr/bin/env bash
# Measures mpirt against MPICH on this machine, as the README's Performance
# section shows it: compare.py's table over shared memory and over TCP, the
# same over shared memory against Open MPI (vader) when `mpirun.openmpi` is
# installed, allreduce and broadcast at RANKS8 ranks (default 8) against
# MPICH (benches/anchors/collectives.c), and a plot of osu_latency (mpirt
# shm and tcp) with MPICH's ping-pong.
#
#   benches/perf-vs-mpich.sh [OUT_DIR]      (default: perf/)
#
# Settings: ROUNDS (compare.py's alternating runs, default 10), SCALE (the
# ping-pongs' -x, default 0.2), PROFILE (cargo profile, default perf: release
# with fat LTO, see Cargo.toml), CARGO_TARGET_DIR. Run it on a quiet
# machine: it prints the load average first.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-perf}
rounds=${ROUNDS:-10}
scale=${SCALE:-0.2}
profile=${PROFILE:-perf}
case $profile in
dev | test) dir=debug ;;
bench) dir=release ;;
*) dir=$profile ;;
esac
bin=${CARGO_TARGET_DIR:-target}/$dir
tests=lat,ssend,bw,allreduce

cargo build --profile "$profile"
mpich=$(../shared/anchors/build.sh)
mkdir -p "$out"
uptime | tee "$out/load.txt"

python3 ../shared/anchors/compare.py --rounds "$rounds" \
  --reference "mpirun.mpich -n 2 $mpich -t $tests -x $scale" \
  --ours "$bin/mpirun -n 2 --transport shm $bin/pingpong --result -t $tests -x $scale" |
  tee "$out/compare-shm.txt"
python3 ../shared/anchors/compare.py --rounds "$rounds" \
  --reference "mpirun.mpich -n 2 -genv MPIR_CVAR_NOLOCAL 1 -genv UCX_TLS tcp $mpich -t $tests -x $scale" \
  --ours "$bin/mpirun -n 2 --transport tcp $bin/pingpong --result -t $tests -x $scale" |
  tee "$out/compare-tcp.txt"

if command -v mpirun.openmpi >/dev/null; then
  ompi=$(../shared/anchors/build.sh /tmp/mpirt-anchors openmpi)
  python3 ../shared/anchors/compare.py --rounds "$rounds" \
    --reference "mpirun.openmpi --allow-run-as-root -np 2 --mca pml ob1 --mca btl self,vader $ompi -t $tests -x $scale" \
    --ours "$bin/mpirun -n 2 --transport shm $bin/pingpong --result -t $tests -x $scale" |
    tee "$out/compare-shm-openmpi.txt"
fi

# Collectives at more ranks than cores: MPICH's ranks busy-poll, so keep the
# iteration counts small (-x 0.05).
ranks8=${RANKS8:-8}
mpicc.mpich -O2 -o "$out/collectives.mpich" benches/anchors/collectives.c
python3 ../shared/anchors/compare.py --rounds 3 --timeout 600 \
  --reference "mpirun.mpich -n $ranks8 $out/collectives.mpich -x 0.05" \
  --ours "$bin/mpirun -n $ranks8 $bin/allreduce_bcast -x 0.05" |
  tee "$out/compare-collectives-$ranks8.txt"

"$bin/mpirun" -n 2 --transport shm "$bin/osu_latency" --csv "$out/mpirt-shm.csv"
"$bin/mpirun" -n 2 --transport tcp "$bin/osu_latency" --csv "$out/mpirt-tcp.csv"
mpirun.mpich -n 2 "$mpich" -t lat >"$out/mpich-shm.txt"
mpirun.mpich -n 2 -genv MPIR_CVAR_NOLOCAL 1 -genv UCX_TLS tcp "$mpich" -t lat >"$out/mpich-tcp.txt"
"$bin/mpirt-plot" -o "$out/latency.svg" --title "Ping-pong latency, 2 ranks on one host" \
  "mpirt shm=$out/mpirt-shm.csv" "MPICH shm=$out/mpich-shm.txt" \
  "mpirt tcp=$out/mpirt-tcp.csv" "MPICH tcp=$out/mpich-tcp.txt"
uptime | tee -a "$out/load.txt"

# The README's table: a few rows of the comparisons side by side (with
# the ratio to Open MPI when it ran).
python3 - "$out/compare-shm.txt" "$out/compare-tcp.txt" "$out/compare-shm-openmpi.txt" <<'PY' | tee "$out/table.md"
import os, sys
ROWS = [("lat", 8, "8 B"), ("lat", 1 << 20, "1 MiB"), ("lat", 4 << 20, "4 MiB"),
        ("ssend", 8, "8 B"), ("bw", 8, "8 B"), ("bw", 1 << 20, "1 MiB"),
        ("allreduce", 8, "8 B"), ("allreduce", 1 << 20, "1 MiB")]
def load(path):
    medians = {}
    if not os.path.exists(path):
        return medians
    for line in open(path):
        words = line.split()
        try:
            medians[(words[0], int(words[1]))] = (float(words[2]), float(words[3]))
        except (IndexError, ValueError):
            pass
    return medians
def us(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"
shm, tcp, ompi = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
print("| test | size | MPICH shm | mpirt shm | mpirt / MPICH | mpirt / Open MPI | MPICH tcp | mpirt tcp | mpirt / MPICH |")
print("|---|---|---|---|---|---|---|---|---|")
for test, size, name in ROWS:
    cells = []
    for medians, columns in ((shm, 3), (ompi, 1), (tcp, 3)):
        if (test, size) in medians:
            reference, ours = medians[(test, size)]
            ratio = f"{ours / reference:.2f}"
            cells += [us(reference), us(ours), ratio] if columns == 3 else [ratio]
        else:
            cells += ["-"] * columns
    print(f"| {test} | {name} | " + " | ".join(cells) + " |")
PY
echo "wrote $out/table.md, $out/compare-*.txt and $out/latency.svg"
