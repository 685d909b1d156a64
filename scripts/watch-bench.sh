#!/usr/bin/env bash
# watch-bench.sh - what `mcprobe watch` costs: streams x packet rate through one watch.
#
# In a network namespace of its own whose only interface is lo (nothing can leave the host),
# examples/watch_sender.rs sends numbered datagrams (1316 bytes, --seq u32be@0) round robin to
# S groups at a total rate R for 4 s; one `mcprobe watch --seq u32be@0` receives them all.
# Per cell: datagrams sent and received, lost by the sequence numbers, the kernel's own drops
# (socket buffer full), and the watch's CPU time (user+sys) per received datagram and as a
# share of one vCPU. The peer, measured in the same run under the same load: `sockperf sr`
# joined to the same groups (epoll, one recvfrom per datagram, no analysis: it discards
# datagrams without its own header, so it is a floor, what merely receiving costs). The sender
# shares the vCPUs: compare cells of one run, and the ratio, not runs.
#
# usage: scripts/watch-bench.sh [OUT.md]   (root; builds the release binary and the sender)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/watch-bench.md}
STREAMS=${STREAMS:-"1 10 100"}
RATES=${RATES:-"10000 50000 100000 200000"}
SECS=4
[[ $(id -u) == 0 ]] || { echo "watch-bench.sh: needs root (a network namespace)" >&2; exit 2; }
cargo build --release --quiet --bin mcprobe --example watch_sender
BIN=$PWD/target/release/mcprobe
SENDER=$PWD/target/release/examples/watch_sender
NS=mcwb$$
TMP=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip route add 224.0.0.0/4 dev lo

{
    echo "# mcprobe watch: streams x packet rate ($(date -u +%Y-%m-%d), $(nproc) vCPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "Command: \`scripts/watch-bench.sh\` (mcprobe $(git rev-parse --short HEAD)). One watch, S groups on lo in a"
    echo "namespace, datagrams of 1316 bytes numbered per group, sent round robin for ${SECS} s at R per second"
    echo "in total (the sender stops at ${SECS} s: \"sent\" is what it reached on the shared vCPUs). CPU: the"
    echo "watch's user+sys time over its whole run (joins and the idle seconds around the sending"
    echo "included); %vCPU over the ${SECS} s of sending. received < sent with nothing lost: the kernel"
    echo "dropped the tail when the socket buffer was full at the end, or the sender's loopback delivery"
    echo "outran the receiver; see the kernel drops column."
    echo
    echo "| streams | rate asked (datagrams/s) | sent | received | lost (seq) | kernel drops | watch CPU (s) | CPU per datagram (µs) | %vCPU | sockperf sr CPU (s) | watch / sockperf |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} > "$TMP/out.md"
for s in $STREAMS; do
    for r in $RATES; do
        : > "$TMP/w.err"
        ip netns exec "$NS" bash -c "TIMEFORMAT='%U %S'; { time '$BIN' watch --iface lo --groups 239.255.50.1-239.255.50.$s:5000 \
            --seq u32be@0 --duration $((SECS + 3))s --json > '$TMP/w.json' 2> '$TMP/w.err'; } 2> '$TMP/time'" &
        w=$!
        # Send only once every group is joined: a datagram before that is missed unseen.
        for _ in $(seq 100); do grep -q '^watching' "$TMP/w.err" && break; sleep 0.1; done
        sent=$(ip netns exec "$NS" "$SENDER" "$s" "$r" "$SECS" | awk '{print $2}')
        wait "$w" || true
        read -r user sys < "$TMP/time"
        # The peer: the same load into sockperf's server, for as long.
        for i in $(seq 1 "$s"); do echo "U:239.255.50.$i:5000"; done > "$TMP/feed"
        ip netns exec "$NS" bash -c "TIMEFORMAT='%U %S'; { time timeout -s INT $((SECS + 2)) sockperf sr -f '$TMP/feed' \
            --mc-rx-if 127.0.0.1 > /dev/null 2>&1; } 2> '$TMP/ptime'" &
        p=$!
        sleep 0.7
        ip netns exec "$NS" "$SENDER" "$s" "$r" "$SECS" > /dev/null
        wait "$p" || true
        read -r puser psys < "$TMP/ptime"
        python3 - "$TMP/w.json" "$s" "$r" "$sent" "$user" "$sys" "$SECS" "$puser" "$psys" >> "$TMP/out.md" <<'PY'
import json, sys
path, s, r, sent, user, sys_t, secs, puser, psys = sys.argv[1:]
rep = json.load(open(path))
st = [x for x in rep["streams"] if x["packets"]]
got = sum(x["packets"] for x in st)
lost = sum(x["lost"] or 0 for x in st)
drops = sum(x["local_drops"] or 0 for x in rep["streams"])
cpu = float(user) + float(sys_t)
per = cpu / got * 1e6 if got else float("nan")
peer = float(puser) + float(psys)
# sockperf's server gives up on more groups than one socket may join (it idles): no figure then.
peer_s, ratio = (f"{peer:.2f}", f"{cpu / peer:.2f}") if peer >= 0.05 else ("–", "–")
print(
    f"| {s} | {int(r):,} | {int(sent):,} | {got:,} | {lost:,} | {drops:,} | {cpu:.2f} | {per:.2f} "
    f"| {100 * cpu / float(secs):.0f} | {peer_s} | {ratio} |"
)
PY
        tail -1 "$TMP/out.md" >&2
    done
done
cp "$TMP/out.md" "$OUT"
echo "wrote $OUT" >&2
