#!/usr/bin/env bash
# bench_report.sh — how long `mcprobe report` takes and how big report.html gets for 100
# responders × 10 minutes at 10 probes/s, alone and merged from 8 folders. Not run in CI.
#
#   scripts/bench_report.sh                       # makes the folder: a 10-minute loopback demo run
#   REPORT_DIR=/tmp/big/run1 scripts/bench_report.sh   # or measures an existing report folder
#
# The folder comes from a real run: `mcprobe demo --responders 100 -d 10m -r 10` (100 responders on
# loopback, sends nothing off the machine). The 8 folders of the merge are copies of it whose
# meta.json names 8 different probers (prober-1 … prober-8) and run ids: the merge reads 8 full
# folders, only their provenance is edited. The peer, in the same run: HdrHistogram's Python
# implementation (`hdrh`) only decoding and adding up the same rtt.hlog, the one part of the work
# both do. Writes results/report-<date>.md (TAG=name to change the suffix).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MCPROBE=${MCPROBE:-$ROOT/target/release/mcprobe}
ROUNDS=${ROUNDS:-5}
TAG=${TAG:-$(date -u +%Y-%m-%d)}
OUT=$ROOT/results/report-$TAG.md
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

[[ -x $MCPROBE ]] || (cd "$ROOT" && cargo build --release)
DIR=${REPORT_DIR:-}
if [[ -z $DIR ]]; then
    DIR=$WORK/run
    echo "making the folder: 100 loopback responders, 10 minutes at 10 probes/s" >&2
    "$MCPROBE" demo --responders 100 -d 10m -r 10 --quiet --out "$DIR" >/dev/null
fi

# Median wall time in ms of ROUNDS runs of a command.
median_ms() {
    local times=()
    for _ in $(seq "$ROUNDS"); do
        local t0 t1
        t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p"
}

# The 8 folders of the merge.
for i in $(seq 8); do
    cp -r "$DIR" "$WORK/p$i"
    python3 "$ROOT/scripts/bench_report.py" as-prober "$WORK/p$i/meta.json" "$i"
done

responders=$(python3 "$ROOT/scripts/bench_report.py" multicast-rows "$DIR/summary.csv")
intervals=$(($(wc -l < "$DIR/intervals.csv") - 1))
hlog_kb=$(( $(stat -c %s "$DIR/rtt.hlog") / 1024 ))
one_ms=$(median_ms "$MCPROBE" report "$DIR" --out "$WORK/one")
one_kb=$(( $(stat -c %s "$WORK/one/report.html") / 1024 ))
merge_ms=$(median_ms "$MCPROBE" report "$WORK"/p{1..8} --out "$WORK/merged")
merge_kb=$(( $(stat -c %s "$WORK/merged/report.html") / 1024 ))
matrix_lines=$(($(wc -l < "$WORK/merged/matrix.csv") - 1))
# One timed run: it takes minutes.
t0=$(date +%s%N); peer_out=$(python3 "$ROOT/scripts/bench_report.py" read-hlog "$DIR/rtt.hlog"); t1=$(date +%s%N)
peer_ms=$(( (t1 - t0) / 1000000 ))
ratio=$(python3 -c "print(f'{$peer_ms / max($one_ms, 1):.0f}')")

mkdir -p "$ROOT/results"
cat > "$OUT" <<MD
# \`mcprobe report\`: time and size at 100 responders × 10 minutes

Made by \`scripts/bench_report.sh\`$( [[ -n ${REPORT_DIR:-} ]] && echo " with \`REPORT_DIR\` set to a folder from \`mcprobe demo --responders 100 -d 10m -r 10 --out DIR\`" ) on $(date -u '+%Y-%m-%d %H:%M UTC'),
commit $(cd "$ROOT" && git rev-parse --short HEAD), $(nproc) vCPUs, load average $(cut -d' ' -f1-3 /proc/loadavg).
Times are the median of $ROUNDS runs, wall clock, release build.

The folder: $responders responders, $intervals rows in intervals.csv, rtt.hlog $hlog_kb KiB.

| what | time | report.html | target |
|---|---|---|---|
| \`mcprobe report DIR\` (one run) | $one_ms ms | $one_kb KiB | < 1 s, < 2 MB |
| \`mcprobe report\` of 8 folders (matrix, $matrix_lines lines in matrix.csv) | $merge_ms ms | $merge_kb KiB | |
| peer: Python \`hdrh\` decoding and adding up the same rtt.hlog, nothing else (one run; tags, RTTs: $peer_out) | $peer_ms ms | | |

The Python HdrHistogram implementation takes **$ratio×** as long only to decode the interval log
as mcprobe takes for the whole report. (report reads the whole-run distributions from the .hgrm files, not the
log; tests/py/check_hdr.py checks that both hold the same figures.)

Command: \`${REPORT_DIR:+REPORT_DIR=$REPORT_DIR }ROUNDS=$ROUNDS scripts/bench_report.sh\`
MD
cat "$OUT"
