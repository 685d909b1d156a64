#!/usr/bin/env bash
# cpu-per-probe.sh - CPU time per probe on each side (prober and responder) at a fixed rate.
#
# Usage (root; namespaces): MCPROBE=/path/to/mcprobe scripts/cpu-per-probe.sh [LABEL]
#   RATE [10000]  SECONDS_RUN [10]  SIZE [64]  ROUNDS [3]  LAB_PREFIX [cpu]
#
# A 2-host lab (scripts/lab.sh): responder on h2, prober on h1, pinned to the lab veth, TTL 1,
# bounded by --count and by `timeout`. Each process runs under GNU time, which reports its user
# and system CPU seconds (10 ms resolution: at the defaults each side uses ~0.5-2 s); the
# responder is stopped with SIGINT once the prober is done. Prints one line per round:
#   LABEL round sent received prober_user_s prober_sys_s responder_user_s responder_sys_s
#   prober_us_per_probe responder_us_per_probe
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB="$HERE/lab.sh"
export LAB_PREFIX=${LAB_PREFIX:-cpu}
LABEL=${1:-mcprobe}
RATE=${RATE:-10000}; SECONDS_RUN=${SECONDS_RUN:-10}; SIZE=${SIZE:-64}; ROUNDS=${ROUNDS:-3}
MCPROBE=$(readlink -f "${MCPROBE:?set MCPROBE to the binary to measure}")
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/mcprobe-cpu.XXXXXX)
cleanup() { "$LAB" down >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
"$LAB" down >/dev/null 2>&1 || true
LAB_QUIET=1 "$LAB" up 2 >/dev/null
DEV=$("$LAB" dev h1)
COUNT=$(( RATE * SECONDS_RUN ))
for r in $(seq "$ROUNDS"); do
    timeout -s TERM -k 3 $(( SECONDS_RUN + 30 )) "$LAB" exec h2 /usr/bin/time -f "%U %S" -o "$WORK/resp.time" \
        "$MCPROBE" respond --iface "$DEV" --group 239.255.77.9 --port 24299 --name h2 --rate-limit 0 \
        >"$WORK/resp.log" 2>&1 &
    tpid=$!
    for _ in $(seq 50); do grep -q listening "$WORK/resp.log" 2>/dev/null && break; sleep 0.1; done
    timeout -s INT -k 3 $(( SECONDS_RUN + 20 )) "$LAB" exec h1 /usr/bin/time -f "%U %S" -o "$WORK/probe.time" \
        "$MCPROBE" probe --iface "$DEV" --group 239.255.77.9 --port 24299 --ttl 1 --rate "$RATE" \
        --count "$COUNT" --size "$SIZE" --timeout 1s --json --quiet >"$WORK/probe.json" 2>"$WORK/probe.err" || true
    # The responder is the child of the `time` that `timeout` runs (lab.sh execs into it).
    tm=$(pgrep -P "$tpid" || true)
    rp=$(pgrep -P "$tm" || true)
    [[ -n $rp ]] && kill -INT "$rp"
    wait "$tpid" || true
    read -r pu ps <"$WORK/probe.time"; read -r ru rs < <(tail -n1 "$WORK/resp.time")
    python3 - "$WORK/probe.json" "$LABEL" "$r" "$pu" "$ps" "$ru" "$rs" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
label, r, pu, ps, ru, rs = sys.argv[2], sys.argv[3], *map(float, sys.argv[4:8])
sent = j["sent"]; recv = sum(x["received"] for x in j["responders"])
print(label, r, sent, recv, pu, ps, ru, rs, round((pu + ps) / sent * 1e6, 2), round((ru + rs) / max(recv, 1) * 1e6, 2))
EOF
done
