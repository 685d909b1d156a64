#!/usr/bin/env bash
# serve-watch-bench.sh - what serve's [[watch]] entries cost, against `mcprobe watch` on the same
# streams in the same run.
#
# In a network namespace of its own whose only interface is lo (nothing can leave the host),
# examples/watch_sender.rs sends numbered datagrams (1316 bytes, u32 big-endian at byte 0) round
# robin to S groups at R datagrams/s each for SECS seconds. Receiving them all at once: `mcprobe
# serve` with one [[watch]] entry of the S groups (format "seq u32be@0", HTTP on 127.0.0.1 in the
# namespace, scraped once at the end) and `mcprobe watch --seq u32be@0` on the same groups. Per
# run: each one's CPU time (user+sys, from /proc/PID/stat) over 5 idle seconds before the sending
# and over the sending, as a share of one vCPU; its resident memory (VmRSS) at the end of the
# sending and its peak (VmHWM); and the datagrams each counted and lost, against what was sent.
# The sender shares the 2 vCPUs with both: compare the two columns of one run.
#
# usage: scripts/serve-watch-bench.sh [OUT.md]   (root; builds the release binary and the sender)
#        STREAMS=8 RATE=1000 SECS=30 RUNS=3 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/serve-watch.md}
S=${STREAMS:-8}
R=${RATE:-1000}
SECS=${SECS:-30}
RUNS=${RUNS:-3}
IDLE=5
[[ $(id -u) == 0 ]] || { echo "serve-watch-bench.sh: needs root (a network namespace)" >&2; exit 2; }
cargo build --release --quiet --bin mcprobe --example watch_sender
BIN=$PWD/target/release/mcprobe
SENDER=$PWD/target/release/examples/watch_sender
NS=mcsw$$
TMP=$(mktemp -d)
HZ=$(getconf CLK_TCK)
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip route add 224.0.0.0/4 dev lo

GROUPS_SPEC="239.255.50.1-239.255.50.$S:5000"
cat > "$TMP/serve.toml" <<EOF
[[watch]]
name = "bench"
iface = "lo"
groups = ["$GROUPS_SPEC"]
format = "seq u32be@0"
EOF

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
cpu_pct() { awk -v a="$1" -v b="$2" -v s="$3" -v hz="$HZ" 'BEGIN {printf "%.1f", (b - a) / hz / s * 100}'; }

{
    echo "# serve [[watch]] against mcprobe watch: $S streams x $R datagrams/s ($(date -u +%Y-%m-%d), $(nproc) vCPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "Command: \`STREAMS=$S RATE=$R SECS=$SECS RUNS=$RUNS scripts/serve-watch-bench.sh\` (mcprobe $(git rev-parse --short HEAD), release build)."
    echo "In a namespace whose only interface is lo: examples/watch_sender.rs sends 1316-byte datagrams"
    echo "numbered per group (u32be@0) round robin to $GROUPS_SPEC, $R/s per group, for $SECS s."
    echo "Both receive every datagram at once: \`mcprobe serve --config serve.toml\` with one [[watch]]"
    echo "entry of the $S groups (format \"seq u32be@0\") and \`mcprobe watch --iface lo --groups $GROUPS_SPEC"
    echo "--seq u32be@0 --json\`. CPU: user+sys from /proc/PID/stat over the $SECS s of sending (idle: over $IDLE s"
    echo "before it), as % of one vCPU; RSS: VmRSS at the end of the sending, peak VmHWM. Counted and lost:"
    echo "serve's mcprobe_watch_packets_total and mcprobe_watch_lost_total summed over the streams, scraped"
    echo "after the sending; watch's JSON report."
    echo
    echo "| run | sent | serve counted / lost | watch counted / lost | serve idle %CPU | watch idle %CPU | serve %CPU | watch %CPU | serve / watch CPU | serve RSS / peak (MiB) | watch RSS / peak (MiB) |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} > "$TMP/out.md"

for run in $(seq 1 "$RUNS"); do
    ip netns exec "$NS" "$BIN" serve --config "$TMP/serve.toml" --listen 127.0.0.1:9479 --quiet 2> "$TMP/s.err" &
    sp=$!
    for _ in $(seq 100); do
        n=$(ip netns exec "$NS" curl -s 127.0.0.1:9479/metrics 2>/dev/null | grep -c '^mcprobe_watch_group_silence_seconds{' || true)
        [[ $n == "$S" ]] && break
        sleep 0.1
    done
    ip netns exec "$NS" "$BIN" watch --iface lo --groups "$GROUPS_SPEC" --seq u32be@0 \
        --duration $((IDLE + SECS + 4))s --json > "$TMP/w.json" 2> "$TMP/w.err" &
    wp=$!
    for _ in $(seq 100); do grep -q '^watching' "$TMP/w.err" && break; sleep 0.1; done
    s0=$(ticks "$sp"); w0=$(ticks "$wp")
    sleep "$IDLE"
    s1=$(ticks "$sp"); w1=$(ticks "$wp")
    t1=$(date +%s.%N)
    sent=$(ip netns exec "$NS" "$SENDER" "$S" $((S * R)) "$SECS" | awk '{print $2}')
    t2=$(date +%s.%N)
    s2=$(ticks "$sp"); w2=$(ticks "$wp")
    srss=$(kib "$sp" VmRSS); shwm=$(kib "$sp" VmHWM); wrss=$(kib "$wp" VmRSS); whwm=$(kib "$wp" VmHWM)
    el=$(awk -v a="$t1" -v b="$t2" 'BEGIN {print b - a}')
    sleep 2
    ip netns exec "$NS" curl -s 127.0.0.1:9479/metrics > "$TMP/m.txt"
    kill -TERM "$sp"; wait "$sp" || true
    wait "$wp" || true
    scount=$(awk '/^mcprobe_watch_packets_total\{/ {s += $2} END {print s + 0}' "$TMP/m.txt")
    slost=$(awk '/^mcprobe_watch_lost_total\{/ {s += $2} END {print s + 0}' "$TMP/m.txt")
    read -r wcount wlost < <(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); \
print(sum(s['packets'] for s in r['streams']), sum(s.get('lost') or 0 for s in r['streams']))" "$TMP/w.json")
    sc=$(cpu_pct "$s1" "$s2" "$el"); wc=$(cpu_pct "$w1" "$w2" "$el")
    si=$(cpu_pct "$s0" "$s1" "$IDLE"); wi=$(cpu_pct "$w0" "$w1" "$IDLE")
    ratio=$(awk -v a="$((s2 - s1))" -v b="$((w2 - w1))" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')
    mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
    echo "| $run | $sent | $scount / $slost | $wcount / $wlost | $si | $wi | $sc | $wc | $ratio | $(mib "$srss") / $(mib "$shwm") | $(mib "$wrss") / $(mib "$whwm") |" >> "$TMP/out.md"
    echo "run $run: sent $sent, serve $scount/$slost ${sc}%, watch $wcount/$wlost ${wc}%" >&2
done
cp "$TMP/out.md" "$OUT"
cat "$OUT"
