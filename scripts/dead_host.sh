#!/usr/bin/env bash
# dead_host.sh - does a host that is down in --hosts disturb the prober? (issue 14 item 1)
#
# In a 3-host namespace lab (scripts/lab.sh), h2 and h3 run responders; h1 probes at 1000
# probes/s for 3 s, alternately with --hosts h2,h3 (clean) and h2,h3,10.77.0.9 (.9 does not
# exist), REPS times each, and prints one markdown row per run: elapsed time, send lateness
# and the healthy hosts' loss. The clean runs are the peer: compare the two kinds in one table.
#
# usage: sudo scripts/dead_host.sh [BIN] [REPS]     (BIN defaults to target/debug/mcprobe)
# Needs root and jq. Sends only inside the lab's namespaces; every run is bounded (--count).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$(realpath "${1:-$HERE/../target/debug/mcprobe}")
REPS=${2:-5}
export LAB_PREFIX=${LAB_PREFIX:-mdh$$}
lab() { "$HERE/lab.sh" "$@"; }
command -v jq >/dev/null || { echo "dead_host.sh: needs jq" >&2; exit 1; }

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    lab down >/dev/null 2>&1 || true
}
trap cleanup EXIT
lab down >/dev/null 2>&1 || true
lab up 3 >/dev/null 2>&1
for h in h2 h3; do
    ip netns exec "$LAB_PREFIX-$h" "$BIN" respond --iface veth0 --port 24242 --name "$h" >/dev/null 2>&1 &
    pids+=($!)
done
sleep 1

echo "| run | hosts | elapsed s | lateness p50 µs | lateness p99 µs | healthy rows lost |"
echo "|---|---|---|---|---|---|"
for i in $(seq 1 "$REPS"); do
    for hosts in 10.77.0.2,10.77.0.3 10.77.0.2,10.77.0.3,10.77.0.9; do
        json=$(timeout 120 ip netns exec "$LAB_PREFIX-h1" "$BIN" probe --iface veth0 --port 24242 \
            --rate 1000 --count 3000 --timeout 1s --hosts "$hosts" --quiet --json || true)
        echo "$json" | jq -r --arg i "$i" --arg hosts "$hosts" '
            "| \($i) | \($hosts) | \(.elapsed_s * 100 | round / 100) | \(.send_lateness_p50_us) | \(.send_lateness_p99_us) | \(
              [.responders[] | select(.expected_host == "10.77.0.2" or .expected_host == "10.77.0.3") | .lost] | add) |"'
    done
done
