#!/usr/bin/env bash
# compare.sh - mcprobe side by side with sockperf and iperf 2 on a namespace lab.
#
# Usage (root; builds mcprobe from this checkout unless MCPROBE is set):
#   scripts/compare.sh
#   MCPROBE=/path/to/mcprobe scripts/compare.sh
#
# Writes results/compare-<YYYY-MM-DD>.csv (every measured figure, long format) and
# results/compare-<YYYY-MM-DD>.md (the ratio table and the per-step tables); see
# results/README.md.  A second run on the same day overwrites them (set TAG to keep both).
#
# What it measures, all inside a 2-host lab (scripts/lab.sh, prefix $LAB_PREFIX):
#   1. RTT p50/p99 at RTT_RATE probes/s, RTT_SIZE-byte payload, one responder on h2,
#      prober on h1: mcprobe vs `sockperf ping-pong --full-rtt` (server replies unicast,
#      as mcprobe's acks do).  ROUNDS rounds, alternating which tool goes first; medians.
#   2. Highest loss-free rate, stepped (STEPS, STEP_SECONDS each): mcprobe probes/s to one
#      responder (each probe answered by a unicast ack) vs iperf 2 one-way UDP datagrams/s
#      of STEP_SIZE bytes to one multicast receiver with -w 4M (mcprobe's default --rcvbuf
#      is 4M too).  A step passes when nothing is lost and the sender achieved at least
#      ACHIEVED_MIN of the asked rate.
#   3. mcprobe send lateness p50/p99 at LATE_RATE probes/s (ROUNDS rounds): the figure
#      from its JSON and, independently, from the transmit times in its probes.csv; and, in
#      the same rounds, cyclictest's wake-up latency at the same interval (SCHED_OTHER, Debian
#      rt-tests; skipped when missing), as ratios p50/p99/max.
#
# Network safety: every process runs in the lab's host namespaces (which hold only lo and
# the lab veth), multicast is pinned to the lab interface with TTL 1, every run is bounded
# by a count or a duration and by `timeout`.  The lab is removed on exit (trap).
#
# Environment (defaults in brackets):
#   MCPROBE       mcprobe binary to measure [build this checkout: cargo build --release]
#   MCPROBE_REV   free text recorded as the binary's revision [git describe of this checkout]
#   LAB_PREFIX    lab prefix [cmp]            RESULTS_DIR  output folder [<repo>/results]
#   TAG           file name tag [UTC date]    ROUNDS       RTT and lateness rounds [3]
#   RTT_RATE [1000]  RTT_SIZE [64]  RTT_SECONDS [10]
#   STEPS ["10000 20000 30000 50000 70000 100000 120000 150000 200000"]  STEP_SECONDS [3]  STEP_SIZE [64]
#   (a tool's search stops after two failed steps in a row)
#   ACHIEVED_MIN [0.95]   LATE_RATE [10000]  LATE_SECONDS [5]
#   NO_INSTALL=1  never run apt-get (fail if sockperf/iperf are missing)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LAB="$HERE/lab.sh"
export LAB_PREFIX=${LAB_PREFIX:-cmp}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/results}
TAG=${TAG:-$(date -u +%Y-%m-%d)}
ROUNDS=${ROUNDS:-3}
RTT_RATE=${RTT_RATE:-1000}; RTT_SIZE=${RTT_SIZE:-64}; RTT_SECONDS=${RTT_SECONDS:-10}
STEPS=${STEPS:-"10000 20000 30000 50000 70000 100000 120000 150000 200000"}
STEP_SECONDS=${STEP_SECONDS:-3}; STEP_SIZE=${STEP_SIZE:-64}; ACHIEVED_MIN=${ACHIEVED_MIN:-0.95}
LATE_RATE=${LATE_RATE:-10000}; LATE_SECONDS=${LATE_SECONDS:-5}
PY=$(command -v /usr/bin/python3 || command -v python3)

# Groups and ports: one per tool, none of them a tool's default.
MC_GROUP=239.255.77.1; MC_PORT=24277
SP_GROUP=239.255.77.2; SP_PORT=24278
IP_GROUP=239.255.77.3; IP_PORT=24279

log() { printf '[compare %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
[[ -x $LAB ]] || die "missing $LAB"
[[ -n $PY ]] || die "needs python3"

# --- peers ----------------------------------------------------------------------------
missing=()
command -v sockperf >/dev/null || missing+=(sockperf)
command -v iperf >/dev/null || missing+=(iperf)
if (( ${#missing[@]} )); then
    [[ ${NO_INSTALL:-} == 1 ]] && die "missing ${missing[*]} (NO_INSTALL=1)"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[[ $(iperf -v 2>&1 || true) == "iperf version 2"* ]] || die "iperf is not iperf 2"

# --- mcprobe ----------------------------------------------------------------------------
if [[ -z ${MCPROBE:-} ]]; then
    log "building mcprobe in $ROOT"
    (cd "$ROOT" && cargo build --release --quiet)
    tdir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    MCPROBE="$tdir/release/mcprobe"
    MCPROBE_REV=${MCPROBE_REV:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)}
fi
[[ -x $MCPROBE ]] || die "MCPROBE=$MCPROBE is not an executable"
MCPROBE=$(readlink -f "$MCPROBE")
MCPROBE_REV=${MCPROBE_REV:-external}

# --- lab -------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/mcprobe-compare.XXXXXX)
BG=()   # background pids (each a `timeout` wrapping one lab process)
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

"$LAB" down >/dev/null 2>&1 || true
LAB_QUIET=1 "$LAB" up 2 >/dev/null
H1=$("$LAB" addr h1); H2=$("$LAB" addr h2); DEV=$("$LAB" dev h1)
# Safety check: the host namespaces must have nothing but lo and the lab interface, and no
# default route, so nothing we send can reach the root namespace's interfaces.
for h in h1 h2; do
    ifs=$("$LAB" exec "$h" ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')
    [[ $ifs == "$(printf '%s\n' lo "$DEV" | sort | tr '\n' ' ')" ]] || die "$h has unexpected interfaces: $ifs"
    [[ -z $("$LAB" exec "$h" ip route show default) ]] || die "$h has a default route"
done
log "lab $LAB_PREFIX up: prober h1 $H1, responder/server h2 $H2, dev $DEV"

in_h() { local h=$1 t=$2; shift 2; timeout -s INT -k 3 "$t" "$LAB" exec "$h" "$@"; }
bg_h() { # HOST SECONDS LOGFILE CMD... -> starts it in the background, pid in $BGPID
    local h=$1 t=$2 out=$3; shift 3
    timeout -s TERM -k 3 "$t" "$LAB" exec "$h" "$@" >"$out" 2>&1 &
    BGPID=$!; BG+=("$BGPID")
}
stop_bg() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
wait_for() { # FILE PATTERN: up to 5 s
    local i
    for i in $(seq 50); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    log "warning: '$2' not seen in $1"; cat "$1" >&2 || true; return 1
}

CSV="$WORK/out.csv"
echo "tag,test,tool,round,rate_pps,size_bytes,metric,value" >"$CSV"
emit() { echo "$TAG,$1,$2,$3,$4,$5,$6,$7" >>"$CSV"; }   # test tool round rate size metric value

# --- helpers: one run of each tool -------------------------------------------------------

# mcprobe: responder on h2, probe from h1.  Prints "key=value ..." from the JSON (and from
# probes.csv with raw=1: achieved rate and lateness computed from the transmit times).
mcprobe_run() { # RATE COUNT SIZE RAW(0|1)
    local rate=$1 count=$2 size=$3 raw=$4 secs rlog="$WORK/mc-resp.log" out="$WORK/mc-out" rc=0
    secs=$(( count / rate + 15 ))
    rm -rf "$out"
    bg_h h2 $(( secs + 5 )) "$rlog" "$MCPROBE" respond --iface "$DEV" --group "$MC_GROUP" --port "$MC_PORT" --name h2 --rate-limit 0
    local rpid=$BGPID
    wait_for "$rlog" listening || true
    local args=(probe --iface "$DEV" --group "$MC_GROUP" --port "$MC_PORT" --ttl 1 --rate "$rate"
        --count "$count" --size "$size" --timeout 1s --json --quiet)
    [[ $raw == 1 ]] && args+=(--out "$out" --raw)
    in_h h1 "$secs" "$MCPROBE" "${args[@]}" >"$WORK/mc.json" 2>"$WORK/mc.err" || rc=$?
    stop_bg "$rpid"
    # exit 1 only means a threshold was missed; none is given here, so anything else is odd
    [[ $rc == 0 || $rc == 1 ]] || { log "mcprobe probe exit $rc: $(head -c 300 "$WORK/mc.err")"; }
    "$PY" "$HERE/compare.py" probe "$WORK/mc.json" "$out/probes.csv" "$rate" "$raw"
}

sockperf_run() { # RATE SIZE SECONDS -> key=value
    local rate=$1 size=$2 secs=$3 slog="$WORK/sp-srv.log" clog="$WORK/sp-cli.log"
    bg_h h2 $(( secs + 15 )) "$slog" sockperf server -i "$SP_GROUP" -p "$SP_PORT" \
        --mc-rx-if "$H2" --mc-tx-if "$H2" --mc-ttl 1 --force-unicast-reply
    local spid=$BGPID
    wait_for "$slog" "block on socket" || true
    # sockperf stalls for good at the first lost reply: timeout turns that into a missing figure.
    in_h h1 $(( secs + 8 )) sockperf ping-pong -i "$SP_GROUP" -p "$SP_PORT" --mc-rx-if "$H1" --mc-tx-if "$H1" \
        --mc-ttl 1 --mps "$rate" -m "$size" --full-rtt -t "$secs" >"$clog" 2>&1 || true
    stop_bg "$spid"
    "$PY" "$HERE/compare.py" sockperf "$clog"
}

iperf_run() { # RATE SIZE SECONDS -> key=value
    local rate=$1 size=$2 secs=$3 slog="$WORK/ip-srv.log" clog="$WORK/ip-cli.log"
    bg_h h2 $(( secs + 10 )) "$slog" iperf -s -u -B "$IP_GROUP%$DEV" -p "$IP_PORT" -e -w 4M -t $(( secs + 4 ))
    local spid=$BGPID
    wait_for "$slog" "Server listening" || true
    sleep 0.3   # the join
    in_h h1 $(( secs + 8 )) iperf -c "$IP_GROUP%$DEV" -p "$IP_PORT" -u -T 1 -l "$size" -b "${rate}pps" \
        -t "$secs" -e >"$clog" 2>&1 || true
    sleep 1     # the receiver's report
    stop_bg "$spid"
    "$PY" "$HERE/compare.py" iperf "$slog" "$clog" "$secs"
}

get() { # KVSTRING KEY
    awk -v k="$2" '{ for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == k) { print substr($i, length(k) + 2); exit } } }' <<<"$1"
}

# --- 0: environment ---------------------------------------------------------------------
emit env host 0 0 0 nproc "$(nproc)"
emit env host 0 0 0 kernel "$(uname -r)"
emit env host 0 0 0 loadavg_1m_start "$(cut -d' ' -f1 /proc/loadavg)"
emit env host 0 0 0 other_cargo_rustc_procs "$(pgrep -c -x 'cargo|rustc' || true)"
emit env mcprobe 0 0 0 revision "$MCPROBE_REV"
emit env mcprobe 0 0 0 binary_sha256 "$(sha256sum "$MCPROBE" | cut -c1-16)"
emit env sockperf 0 0 0 version "$(sockperf --version 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'version [^ ]*' | head -n1 | cut -d' ' -f2)"
emit env iperf 0 0 0 version "$(iperf -v 2>&1 | awk '{print $3}')"

# --- 1: RTT -------------------------------------------------------------------------------
rtt_count=$(( RTT_RATE * RTT_SECONDS ))
for (( r = 1; r <= ROUNDS; r++ )); do
    order=(mcprobe sockperf); (( r % 2 == 0 )) && order=(sockperf mcprobe)
    for tool in "${order[@]}"; do
        log "rtt round $r/$ROUNDS: $tool at $RTT_RATE/s, $RTT_SIZE B, ${RTT_SECONDS}s"
        if [[ $tool == mcprobe ]]; then
            kv=$(mcprobe_run "$RTT_RATE" "$rtt_count" "$RTT_SIZE" 0)
            ms=(ok sent received lost rtt_min_us rtt_p50_us rtt_p99_us rtt_max_us send_lateness_p99_us)
        else
            kv=$(sockperf_run "$RTT_RATE" "$RTT_SIZE" "$RTT_SECONDS")
            ms=(ok sent received dropped rtt_min_us rtt_p50_us rtt_p99_us rtt_max_us)
        fi
        log "  $kv"
        for m in "${ms[@]}"; do emit rtt "$tool" "$r" "$RTT_RATE" "$RTT_SIZE" "$m" "$(get "$kv" "$m")"; done
    done
done

# --- 2: loss-free rate search ----------------------------------------------------------------
for tool in mcprobe iperf; do
    fails=0
    for rate in $STEPS; do
        if (( fails >= 2 )); then log "rate step: $tool at $rate/s skipped (two steps failed)"; continue; fi
        log "rate step: $tool at $rate/s, $STEP_SIZE B, ${STEP_SECONDS}s"
        if [[ $tool == mcprobe ]]; then
            kv=$(mcprobe_run "$rate" $(( rate * STEP_SECONDS )) "$STEP_SIZE" 1)
            ms=(ok sent received lost forward_lost return_lost unknown_lost late achieved_pps rtt_p50_us rtt_p99_us
                send_lateness_p99_us raw_lateness_p99_us raw_lateness_max_us)
        else
            kv=$(iperf_run "$rate" "$STEP_SIZE" "$STEP_SECONDS")
            ms=(ok sent received lost iperf_lost achieved_pps receiver_pps)
        fi
        pass=$(awk -v ok="$(get "$kv" ok)" -v lost="$(get "$kv" lost)" -v a="$(get "$kv" achieved_pps)" \
            -v r="$rate" -v m="$ACHIEVED_MIN" 'BEGIN { print (ok == 1 && lost == "0" && a != "" && a >= r * m) ? 1 : 0 }')
        log "  pass=$pass $kv"
        for m in "${ms[@]}"; do emit rate "$tool" 1 "$rate" "$STEP_SIZE" "$m" "$(get "$kv" "$m")"; done
        emit rate "$tool" 1 "$rate" "$STEP_SIZE" pass "$pass"
        if [[ $pass == 1 ]]; then fails=0; else fails=$(( fails + 1 )); fi
    done
done

# --- 3: send lateness ------------------------------------------------------------------------
# cyclictest in the same rounds (order alternating): the machine's own wake-up latency at the
# probe interval, under SCHED_OTHER as mcprobe runs (no -p: with one it switches to a realtime
# priority), a 1 µs histogram to 20 ms for its p50/p99.
cyclictest_run() { # RATE SECONDS -> key=value
    timeout -k 3 $(( $2 + 10 )) "$LAB" exec h1 cyclictest -q -t 1 --policy=other -i $(( 1000000 / $1 )) -D "$2" \
        -h 20000 >"$WORK/cyc.log" 2>&1 || true
    "$PY" "$HERE/limits.py" cyclictest "$WORK/cyc.log"
}
for (( r = 1; r <= ROUNDS; r++ )); do
    order=(mcprobe cyclictest); (( r % 2 == 0 )) && order=(cyclictest mcprobe)
    for tool in "${order[@]}"; do
        log "lateness round $r/$ROUNDS: $tool at $LATE_RATE/s, ${LATE_SECONDS}s"
        if [[ $tool == mcprobe ]]; then
            kv=$(mcprobe_run "$LATE_RATE" $(( LATE_RATE * LATE_SECONDS )) 64 1)
            ms=(ok lost achieved_pps clock_drift_ppm send_lateness_p50_us send_lateness_p99_us raw_lateness_p50_us raw_lateness_p99_us raw_lateness_max_us)
        else
            if ! command -v cyclictest >/dev/null; then log "  cyclictest missing (Debian rt-tests): skipped"; continue; fi
            kv=$(cyclictest_run "$LATE_RATE" "$LATE_SECONDS")
            ms=(ok p50_us p99_us max_us)
        fi
        log "  $kv"
        for m in "${ms[@]}"; do emit lateness "$tool" "$r" "$LATE_RATE" 64 "$m" "$(get "$kv" "$m")"; done
    done
done
emit env host 0 0 0 loadavg_1m_end "$(cut -d' ' -f1 /proc/loadavg)"

# --- report ------------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
cp "$CSV" "$RESULTS_DIR/compare-$TAG.csv"
"$PY" "$HERE/compare.py" report "$CSV" "$RESULTS_DIR/compare-$TAG.md" "$ACHIEVED_MIN"
log "wrote $RESULTS_DIR/compare-$TAG.csv and $RESULTS_DIR/compare-$TAG.md"
cat "$RESULTS_DIR/compare-$TAG.md"
