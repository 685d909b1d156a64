#!/usr/bin/env bash
# soak.sh — mcprobe for an hour at 100 probes/s against 10 responders on loopback, with the
# resident memory (VmRSS) of every process sampled every 30 s. Not run in CI.
#
#   scripts/soak.sh                   # 1 h; results in results/soak-<date>/
#   SOAK_SECS=120 scripts/soak.sh     # a short rehearsal
#
# Writes into results/soak-<date>/: rss.csv (elapsed_s,role,name,pid,rss_kib), the prober's
# summary.json, summary.csv and intervals.csv, each responder's closing line, and README.md with
# the figures. Sends only on loopback (the group is joined on 127.0.0.1, TTL 1), and stops by
# itself after SOAK_SECS.
set -euo pipefail

SECS=${SOAK_SECS:-3600}
RESPONDERS=${SOAK_RESPONDERS:-10}
RATE=${SOAK_RATE:-100}
SAMPLE=${SOAK_SAMPLE:-30}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/scripts
OUT=${SOAK_OUT:-$ROOT/results/soak-$(date -u +%Y-%m-%d)}

cd "$ROOT"
cargo build --release --quiet
BIN=$ROOT/target/release/mcprobe
mkdir -p "$OUT"
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

for i in $(seq 1 "$RESPONDERS"); do
    "$BIN" respond --iface 127.0.0.1 --port "$PORT" --name "soak-$i" >"$OUT/responder-$i.log" 2>&1 &
    pids+=($!)
done
for i in $(seq 1 "$RESPONDERS"); do
    for _ in $(seq 1 100); do grep -q listening "$OUT/responder-$i.log" 2>/dev/null && break; sleep 0.1; done
done

"$BIN" probe --iface 127.0.0.1 --port "$PORT" --rate "$RATE" --duration "${SECS}s" --out "$OUT" --quiet --json \
    >"$OUT/summary.json" 2>"$OUT/prober.stderr" &
prober=$!

echo "elapsed_s,role,name,pid,rss_kib" >"$OUT/rss.csv"
start=$(date +%s)
sample() {
    local now=$(( $(date +%s) - start ))
    echo "$now,prober,prober,$prober,$(awk '/^VmRSS/ {print $2}' /proc/$prober/status 2>/dev/null || echo)" >>"$OUT/rss.csv"
    local i=1
    for p in "${pids[@]}"; do
        echo "$now,responder,soak-$i,$p,$(awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo)" >>"$OUT/rss.csv"
        i=$((i + 1))
    done
}
while kill -0 "$prober" 2>/dev/null; do
    sample
    # Sleep in short steps so the loop ends promptly with the prober.
    for _ in $(seq 1 "$SAMPLE"); do kill -0 "$prober" 2>/dev/null || break; sleep 1; done
done
wait "$prober" && code=0 || code=$?
for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

python3 "$HERE/soak_report.py" "$OUT" "$SECS" "$RATE" "$RESPONDERS" "$code" "$(git -C "$ROOT" rev-parse --short HEAD)"
