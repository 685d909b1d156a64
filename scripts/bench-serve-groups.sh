#!/usr/bin/env bash
# What `serve --groups` costs (issue 22): serve probing 1000 groups at 1000 probes/s (one a second
# per group) with 5 responders each joined to all 1000, against its peer in the same run, serve
# probing one group at the same 1000 probes/s with the same 5 responders. Per case: serve's CPU
# (user + system over the run, from /proc), its peak RSS (VmHWM), the responders' CPU and peak
# RSS summed, the windows folded and the size of a scrape. Loopback only (--iface 127.0.0.1,
# TTL 1), HTTP on 127.0.0.1; every process bounded by `timeout`.
#
#   scripts/bench-serve-groups.sh [BINARY] [SECONDS]     (default target/release/mcprobe, 30)
set -euo pipefail

BIN=${1:-target/release/mcprobe}
SECS=${2:-30}
PORT=${PORT:-31555}
HTTP=${HTTP:-39855}
GROUPS_LIST=239.255.45.0-239.255.48.231 # 1000 groups
ONE=239.255.45.0
TICK=$(getconf CLK_TCK)

# The process `timeout` ($1) runs: the one measured.
child() { pgrep -P "$1"; }
# CPU seconds (user + system) of a live process.
cpu() { awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }

run_case() {
    local label=$1 serve_flag=$2 resp_flag=$3
    local pids=()
    for i in 1 2 3 4 5; do
        timeout $((SECS + 30)) "$BIN" respond --iface 127.0.0.1 --port "$PORT" --name "r$i" --quiet \
            $resp_flag >/dev/null 2>&1 &
        pids+=($!)
    done
    sleep 1
    timeout $((SECS + 20)) "$BIN" serve --iface 127.0.0.1 --port "$PORT" $serve_flag --rate 1000 \
        --window 5s --timeout 1s --listen "127.0.0.1:$HTTP" --quiet &
    local serve=$!
    sleep "$SECS"
    local scrape
    scrape=$(curl -s "127.0.0.1:$HTTP/metrics")
    local s_cpu s_hwm r_cpu=0 r_hwm=0
    s_cpu=$(cpu "$(child $serve)")
    s_hwm=$(hwm "$(child $serve)")
    for p in "${pids[@]}"; do
        r_cpu=$(echo "$r_cpu + $(cpu "$(child "$p")")" | bc)
        r_hwm=$((r_hwm + $(hwm "$(child "$p")")))
    done
    local windows reached
    windows=$(echo "$scrape" | awk '/^mcprobe_windows_total/ { print $2 }')
    reached=$(echo "$scrape" | awk '/^mcprobe_groups_reached/ { printf "%s ", $2 }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$s_cpu" "$(echo "scale=1; 100 * $s_cpu / $SECS" | bc)" \
        "$s_hwm" "$r_cpu" "$r_hwm" "$windows" "$(echo "$scrape" | wc -c) ${reached:+(reached: $reached)}"
    kill "$serve" "${pids[@]}" 2>/dev/null || true
    wait "$serve" "${pids[@]}" 2>/dev/null || true
    sleep 1
}

echo "$(date -u +%FT%TZ) $BIN, ${SECS} s each, $(nproc) vCPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo '| case | serve CPU s | serve CPU % | serve peak RSS kB | 5 responders CPU s | 5 responders peak RSS kB | windows | scrape bytes |'
echo '|---|---|---|---|---|---|---|---|'
run_case "1 group, 1000 probes/s" "--group $ONE" "--group $ONE"
run_case "1000 groups, 1000 probes/s (1/s/group)" "--groups $GROUPS_LIST" "--groups $GROUPS_LIST"
run_case "1 group, 1000 probes/s (again)" "--group $ONE" "--group $ONE"
run_case "1000 groups, 1000 probes/s (again)" "--groups $GROUPS_LIST" "--groups $GROUPS_LIST"
