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

python3 - "$OUT" "$SECS" "$RATE" "$RESPONDERS" "$code" "$(git -C "$ROOT" rev-parse --short HEAD)" <<'PY'
import csv, json, sys, collections
out, secs, rate, n, code, commit = sys.argv[1:]
rows = [r for r in csv.DictReader(open(f"{out}/rss.csv")) if r["rss_kib"]]
by = collections.defaultdict(list)
for r in rows:
    by[r["name"]].append((int(r["elapsed_s"]), int(r["rss_kib"])))
summary = json.load(open(f"{out}/summary.json"))
lines = [f"# Soak: {secs} s at {rate} probes/s to {n} loopback responders", "",
         f"Command: `SOAK_SECS={secs} scripts/soak.sh` at commit {commit}; prober exit code {code}.", "",
         "| process | RSS at first sample (KiB) | after 5 min (KiB) | last (KiB) | max (KiB) | growth after 5 min (KiB) |",
         "|---|---|---|---|---|---|"]
for name in sorted(by, key=lambda k: (k != "prober", len(k), k)):
    s = by[name]
    first = s[0][1]
    warm = next((v for t, v in s if t >= 300), s[-1][1])
    lines.append(f"| {name} | {first} | {warm} | {s[-1][1]} | {max(v for _, v in s)} | {s[-1][1] - warm} |")
lines += ["", "| responder | sent | received | lost | loss % | rtt p50 µs | rtt p99 µs |", "|---|---|---|---|---|---|---|"]
for r in summary["responders"]:
    lines.append(f"| {r['responder']} | {r['sent']} | {r['received']} | {r['lost']} | {r['loss_pct']} | {r['rtt_p50_us']} | {r['rtt_p99_us']} |")
lines += ["", f"Prober: {summary['sent']} probes, local drops {summary['local_drops']}, invalid {summary['invalid']}, "
          f"send lateness p99 {summary['send_lateness_p99_us']} µs.", "",
          "Responders' closing lines:", ""]
for i in range(1, int(n) + 1):
    last = [l for l in open(f"{out}/responder-{i}.log") if l.startswith("stopped:")]
    lines.append(f"- soak-{i}: {last[-1].strip() if last else '(no closing line)'}")
open(f"{out}/README.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
