#!/usr/bin/env bash
# groups_capacity.sh - how a Linux bridge with snooping behaves when its group table is full
# (the facts behind `mcprobe max-groups`; results/groups-capacity-lab-2026-12-02.md).
# Root; builds its own 3-host lab (LAB_PREFIX, default gcap) and takes it down after.
#
#   groups_capacity.sh hash LIMIT K   bridge mcast_hash_max LIMIT; h2 joins K groups
#   groups_capacity.sh port LIMIT K   port p2 mcast_max_groups LIMIT (Linux >= 6.3); h2 joins K
#   groups_capacity.sh ramp LIMIT     mcast_hash_max LIMIT; h2 joins one group every 0.5 s while
#                                     the bridge's table and snooping flag are sampled
#
# h1 sends 3 datagrams to each group (TTL 1, bounded); h2 counts what its sockets get and,
# with an AF_PACKET socket, what reaches its interface; h3 joins nothing and counts the same:
# anything h3 sees is flooding. With tracefs mounted (TRACEFS, default /sys/kernel/tracing)
# the bridge's br_mdb_full tracepoint is counted too.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LAB_PREFIX=${LAB_PREFIX:-gcap} LAB_QUIET=1
L=$HERE/../lab.sh
M=$HERE/mgroups.py
T=${TRACEFS:-/sys/kernel/tracing}
P=$LAB_PREFIX
OUT=$(mktemp -d)
MODE=${1:-} LIM=${2:-} K=${3:-0}
[[ $MODE =~ ^(hash|port|ramp)$ && $LIM =~ ^[0-9]+$ && $K =~ ^[0-9]+$ ]] || { sed -n 5,9p "$0" >&2; exit 2; }
trap '"$L" down; rm -rf "$OUT"' EXIT
mdb() { bridge -n "$P-br" mdb show; }
snooping() { ip -n "$P-br" -d link show br0 | grep -o 'mcast_snooping [0-9]' | cut -d' ' -f2; }
trace_on() { [[ -w $T/events/bridge/br_mdb_full/enable ]] && { echo 1 >"$T/events/bridge/br_mdb_full/enable"; : >"$T/trace"; }; true; }
trace_count() { if [[ -r $T/trace ]]; then grep -c br_mdb_full "$T/trace" || true; else echo "n/a (no tracefs at $T)"; fi; }

"$L" down; "$L" up 3 --querier
case $MODE in
    hash|ramp) ip -n "$P-br" link set br0 type bridge mcast_hash_max "$LIM" ;;
    port) ip netns exec "$P-br" python3 "$M" port-max-groups --dev p2 --max "$LIM" >/dev/null ;;
esac
sleep 3
echo "before joins: bridge table $(mdb | wc -l) entries ($(mdb | grep -c 'grp ff' || true) IPv6)"
trace_on

if [[ $MODE == ramp ]]; then
    ip netns exec "$P-h2" timeout $((LIM + 30)) python3 "$M" join --ifaddr 10.77.0.2 --count $((LIM + 4)) --ramp 1 \
        --ramp-period 0.5 --hold 1 >/dev/null 2>"$OUT/ramp" &
    for _ in $(seq 1 $((LIM + 10))); do
        echo "joined=$(tail -n1 "$OUT/ramp" | grep -o 'joined=[0-9]*' | cut -d= -f2) table=$(mdb | wc -l)" \
             "ipv4=$(mdb | grep -c 'grp 2' || true) snooping=$(snooping)"
        sleep 0.5
    done | awk '{ if ($0 != prev) print; prev = $0 }' | grep -B2 -A2 'snooping=0' | head -n 6
    wait
    sleep 1
    echo "after the joiner exited: mcast_snooping $(snooping); br_mdb_full events: $(trace_count)"
    exit 0
fi

ip netns exec "$P-h2" timeout 40 python3 "$M" join --ifaddr 10.77.0.2 --count "$K" --hold 12 --sniff >"$OUT/h2" 2>/dev/null &
ip netns exec "$P-h3" timeout 40 python3 "$M" join --ifaddr 10.77.0.3 --count 0 --hold 12 --sniff >"$OUT/h3" 2>/dev/null &
sleep 4
echo "after joins: bridge table $(mdb | wc -l) entries, IPv4 $(mdb | grep -c 'grp 2' || true), mcast_snooping $(snooping)"
[[ $MODE == port ]] && echo "port p2: $(ip netns exec "$P-br" python3 "$M" port-max-groups --dev p2)"
ip netns exec "$P-h1" python3 "$M" send --ifaddr 10.77.0.1 --count "$K" --each 3 --gap 0.2 >/dev/null
wait
python3 - "$OUT/h2" "$OUT/h3" "$K" <<'PY'
import json, sys
h2, h3 = (json.load(open(p)) for p in sys.argv[1:3])
k = int(sys.argv[3])
print("h2 joined %d of %d (join errors %s): its sockets got %d groups (%d datagrams), its interface %d groups"
      % (h2["joined"], k, h2["join_errors"] or "none", h2["received_groups"], h2["received"], h2["sniffed_groups"]))
print("h3 joined none: its interface got %d groups (%d datagrams)" % (h3["sniffed_groups"], h3["sniffed"]))
PY
echo "br_mdb_full events: $(trace_count)"
