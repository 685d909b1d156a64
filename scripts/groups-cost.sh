#!/usr/bin/env bash
# groups-cost.sh - what many groups cost (issue 22): 1000 groups x 5 responders at 1 probe/s per
# group, against the same run on one group at the same total rate (the peer in the same run:
# whatever the groups add is the difference). Three cases: `one` group; `many` groups, each
# responder with a socket per group; `shared`, the same with the responders' open-file limit at
# 256 (prlimit), so they share sockets (20 memberships each). Per round and case: the prober's and each
# responder's CPU time (user + system, from wait4's rusage via scripts/rusage.py) and peak
# resident memory, the probes sent and the acks back. Rounds alternate the order of the cases.
#
# Usage (root; namespaces):  MCPROBE=target/release/mcprobe scripts/groups-cost.sh
# Environment [defaults]: LAB_PREFIX [gcost]  ROUNDS [3]  SECS [30]  RATE [1000] (total probes/s)
#   GROUPS_SPEC [239.1.0.0-239.1.3.231] (1000 groups)  RESPONDERS [5]  TAG [UTC date]
#   RESULTS_DIR [<repo>/results]
# Writes results/groups-cost-<TAG>.csv (long format) and prints a summary table (markdown).
#
# Network safety: every process runs in the lab's host namespaces (lo and the lab veth only,
# no default route, checked), TTL 1 on the lab interface, each run bounded by a count and by
# `timeout`. The lab is removed on exit.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LAB="$HERE/lab.sh"
export LAB_PREFIX=${LAB_PREFIX:-gcost}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/results}
TAG=${TAG:-$(date -u +%Y-%m-%d)}
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-30}; RATE=${RATE:-1000}; RESPONDERS=${RESPONDERS:-5}
GROUPS_SPEC=${GROUPS_SPEC:-239.1.0.0-239.1.3.231}
ONE_GROUP=239.1.0.0
PORT=24391
PY=$(command -v /usr/bin/python3 || command -v python3)
MCPROBE=$(readlink -f "${MCPROBE:?set MCPROBE to the binary to measure}")

log() { printf '[groups-cost %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"

WORK=$(mktemp -d /tmp/mcprobe-groups-cost.XXXXXX)
BG=()
cleanup() {
    local rc=$? p
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${BG[@]}"; do wait "$p" 2>/dev/null || true; done
    "$LAB" down >/dev/null 2>&1 || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
HOSTS=$(( RESPONDERS + 1 ))
"$LAB" down >/dev/null 2>&1 || true
LAB_QUIET=1 "$LAB" up "$HOSTS" >/dev/null
for i in $(seq 1 "$HOSTS"); do
    [[ -z $("$LAB" exec "h$i" ip route show default) ]] || die "h$i has a default route"
done
log "lab $LAB_PREFIX up: h1 prober, h2..h$HOSTS responders"

CSV="$RESULTS_DIR/groups-cost-$TAG.csv"
mkdir -p "$RESULTS_DIR"
echo "tag,round,case,role,host,metric,value" >"$CSV"
emit() { echo "$TAG,$1,$2,$3,$4,$5,$6" >>"$CSV"; }

# One case: RESPONDERS responders on h2.., the prober on h1, all under rusage.
run_case() { # ROUND CASE (one|many)
    local round=$1 case=$2 spec i pids=() count=$(( RATE * SECS ))
    local lim=()
    if [[ $case == one ]]; then spec=(--group "$ONE_GROUP"); else spec=(--groups "$GROUPS_SPEC"); fi
    [[ $case == shared ]] && lim=(prlimit --nofile=256:256)
    rm -f "$WORK"/*.ru "$WORK"/*.log
    for i in $(seq 2 "$HOSTS"); do
        timeout -s TERM -k 3 $(( SECS + 40 )) "$LAB" exec "h$i" "${lim[@]}" "$PY" "$HERE/rusage.py" "$WORK/h$i.ru" \
            "$MCPROBE" respond --iface veth0 --port "$PORT" --name "h$i" "${spec[@]}" >"$WORK/h$i.log" 2>&1 &
        pids+=($!); BG+=($!)
    done
    for i in $(seq 2 "$HOSTS"); do
        for _ in $(seq 100); do grep -q listening "$WORK/h$i.log" 2>/dev/null && break; sleep 0.1; done
        grep -q listening "$WORK/h$i.log" || die "responder h$i did not start: $(cat "$WORK/h$i.log")"
    done
    log "$case: $(grep -o 'on [0-9]* sockets' "$WORK/h2.log" || echo 'one socket')"

    timeout -s INT -k 3 $(( SECS + 30 )) "$LAB" exec h1 "$PY" "$HERE/rusage.py" "$WORK/h1.ru" \
        "$MCPROBE" probe --iface veth0 --port "$PORT" "${spec[@]}" --rate "$RATE" --count "$count" \
        --timeout 1s --quiet --json >"$WORK/probe.json" 2>"$WORK/probe.err" || true
    for i in $(seq 2 "$HOSTS"); do
        pkill -INT -f "rusage.py $WORK/h$i.ru" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for i in $(seq 1 "$HOSTS"); do
        local role=responder; [[ $i == 1 ]] && role=prober
        read -r u s rss <"$WORK/h$i.ru" || die "no rusage for h$i"
        emit "$round" "$case" "$role" "h$i" cpu_s "$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.6f", u+s}')"
        emit "$round" "$case" "$role" "h$i" maxrss_kib "$rss"
    done
    local sent acks
    sent=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$WORK/probe.json")
    acks=$("$PY" -c 'import json,sys; print(sum(r["received"] for r in json.load(open(sys.argv[1]))["responders"]))' "$WORK/probe.json")
    emit "$round" "$case" prober h1 sent "$sent"
    emit "$round" "$case" prober h1 acks "$acks"
    log "round $round $case: sent $sent, acks $acks, load $(cut -d' ' -f1 /proc/loadavg)"
}

for r in $(seq 1 "$ROUNDS"); do
    if (( r % 2 )); then order="one many shared"; else order="shared many one"; fi
    for c in $order; do run_case "$r" "$c"; done
done

"$PY" - "$CSV" "$RESPONDERS" "$GROUPS_SPEC" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def vals(case, role, metric):
    by_round = {}
    for r in rows:
        if r["case"] == case and r["role"] == role and r["metric"] == metric:
            by_round.setdefault(r["round"], []).append(float(r["value"]))
    return by_round
def med(case, role, metric, agg):
    return statistics.median(agg(v) for v in vals(case, role, metric).values())
sent = med("many", "prober", "sent", max)
n = len(vals("many", "prober", "sent"))
print(f"| figure (median of {n} rounds) | 1 group | {sys.argv[3]}, a socket per group | same, shared sockets | ratio many / one | ratio shared / one |")
print("|---|---:|---:|---:|---:|---:|")
for label, role, metric, agg, scale, unit in [
    ("prober CPU", "prober", "cpu_s", max, 1, "s"),
    ("prober peak RSS", "prober", "maxrss_kib", max, 1 / 1024, "MiB"),
    ("responder CPU (mean of the responders)", "responder", "cpu_s", statistics.mean, 1, "s"),
    ("responder peak RSS (largest)", "responder", "maxrss_kib", max, 1 / 1024, "MiB"),
    ("acks back", "prober", "acks", max, 1, ""),
]:
    a, b, c = (med(k, role, metric, agg) * scale for k in ("one", "many", "shared"))
    print(f"| {label} | {a:.3f} {unit} | {b:.3f} {unit} | {c:.3f} {unit} | {b / a:.2f} | {c / a:.2f} |")
for case in ("many", "shared"):
    for role in ("prober", "responder"):
        agg = max if role == "prober" else statistics.mean
        d_cpu = med(case, role, "cpu_s", agg) - med("one", role, "cpu_s", agg)
        d_rss = med(case, role, "maxrss_kib", max) - med("one", role, "maxrss_kib", max)
        print(f"\n{case}, {role}: the groups add {d_cpu:.3f} s of CPU over {sent:.0f} probes "
              f"({1e6 * d_cpu / sent:.2f} µs per probe) and {d_rss / 1024:.2f} MiB of peak memory")
EOF
log "wrote $CSV"
