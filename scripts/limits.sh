#!/usr/bin/env bash
# limits.sh - mcprobe against this machine's own limits, every figure a ratio to a peer
# measured in the same run (issue 25):
#   1. send lateness p50/p99/max at 1 000 and 10 000/s vs cyclictest's wake-up latency at the same
#      interval and policy (SCHED_OTHER, as mcprobe runs), ROUNDS rounds, tool order alternating;
#      also both under SCHED_FIFO (mcprobe probe --realtime / cyclictest --policy=fifo -p 50);
#   2. CPU per probe (prober + responder, rusage via scripts/rusage.py, µs resolution) vs iperf 2's
#      CPU per datagram (client + server) at 10, 1 000 and 10 000/s, in the same rounds;
#   3. the lateness/CPU curve over CURVE_RATES for MCPROBE and MCPROBE_BASE (before/after);
#   4. the kernel's UDP ceilings (examples/blaster.rs): one-way (bare sendmmsg/recvmmsg,
#      unpaced) and round trip (h2 echoes every datagram, h1 keeps BL_WINDOW unanswered), vs
#      mcprobe's and iperf's highest loss-free rate (stepped, as compare.sh does). mcprobe's
#      steps run without --raw (a row per probe written during the run took ~4 % of both CPUs
#      at 150 000/s: the bar is about probing); the rate achieved is the JSON's sent_per_s. Its
#      prober and responder ask for a STEP_RCVBUF buffer (as root, granted past rmem_max): a paced sender
#      has no window, so a VM stall of the responder is absorbed by its socket buffer or lost.
#
# Usage (root; namespaces):
#   MCPROBE=new/mcprobe MCPROBE_BASE=old/mcprobe BLASTER=target/release/examples/blaster \
#     scripts/limits.sh
# Environment [defaults]: LAB_PREFIX [lim]  TAG [UTC date]  RESULTS_DIR [<repo>/results]
#   ROUNDS [3]  BAR_RATES ["10 1000 10000"]  SECS_SLOW [20] (at 10/s)  SECS [5]
#   CURVE_RATES ["100 3000 30000 100000 200000"]  CURVE_SECS [3]
#   STEPS ["10000 20000 30000 50000 70000 100000 120000 150000 200000"]  STEP_SECONDS [3]  ACHIEVED_MIN [0.95]
#   (with BLASTER, the bars also run `blaster-paced`: the paced round trip with no accounting,
#   the floor for lateness and CPU per probe: examples/blaster.rs paced/echo)
#   CEIL_ROUNDS [3]  FIFO [1] (0: skip the SCHED_FIFO runs)  PARTS ["bars curve ceiling"]
#   ONLY [all] (bars: only these tools, e.g. "cyclictest-fifo mcprobe-rt"; more tools:
#   mcprobe-precise = MCPROBE --pacing precise, mcprobe-rt-precise = with --realtime)  EXTRA_TOOLS [] (bars: added to each round's tools)
#   STEP_RCVBUF [32M]  THREADS [0]  BL_WINDOW [256]  STEP_TOOLS ["mcprobe iperf"] (also: mcprobe-precise, mcprobe-base, mcprobe-trains = respond --ack-trains)
# Writes results/limits-<TAG>.csv (long format, every run's load average beside it); the report
# and plot come from scripts/limits.py.
#
# Network safety: every sender runs in the lab's host namespaces (lo and the lab veth only, no
# default route, checked), multicast with TTL 1 on the lab interface, each run bounded by a
# count or a duration and by `timeout`.  The lab is removed on exit.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LAB="$HERE/lab.sh"
export LAB_PREFIX=${LAB_PREFIX:-lim}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/results}
TAG=${TAG:-$(date -u +%Y-%m-%d)}
ROUNDS=${ROUNDS:-3}; BAR_RATES=${BAR_RATES:-"10 1000 10000"}; SECS_SLOW=${SECS_SLOW:-20}; SECS=${SECS:-5}
CURVE_RATES=${CURVE_RATES:-"100 3000 30000 100000 200000"}; CURVE_SECS=${CURVE_SECS:-3}
STEPS=${STEPS:-"10000 20000 30000 50000 70000 100000 120000 150000 200000"}; STEP_SECONDS=${STEP_SECONDS:-3}
ACHIEVED_MIN=${ACHIEVED_MIN:-0.95}; STEP_RCVBUF=${STEP_RCVBUF:-32M}; CEIL_ROUNDS=${CEIL_ROUNDS:-3}; FIFO=${FIFO:-1}; BL_WINDOW=${BL_WINDOW:-256}
STEP_TOOLS=${STEP_TOOLS-"mcprobe iperf"}
PARTS=${PARTS:-"bars curve ceiling"}
# THREADS=1: mcprobe's processes run under threadcpu.py (CPU per thread, by name) instead of
# rusage.py; its 10 ms polling costs ~1-2 % of a core, so the bars are measured without it.
THREADS=${THREADS:-0}; CPU_WRAP=rusage.py; [[ $THREADS == 1 ]] && CPU_WRAP=threadcpu.py
PY=$(command -v /usr/bin/python3 || command -v python3)
MCPROBE=$(readlink -f "${MCPROBE:?set MCPROBE to the binary to measure}")
MCPROBE_BASE=${MCPROBE_BASE:+$(readlink -f "$MCPROBE_BASE")}
BLASTER=${BLASTER:+$(readlink -f "$BLASTER")}
GROUP=239.255.78.1; PORT=24377; IP_GROUP=239.255.78.3; IP_PORT=24379; BL_GROUP=239.255.78.5; BL_PORT=24381

log() { printf '[limits %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
for t in cyclictest iperf; do command -v $t >/dev/null || die "missing $t (Debian: rt-tests, iperf)"; done

WORK=$(mktemp -d /tmp/mcprobe-limits.XXXXXX)
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
"$LAB" down >/dev/null 2>&1 || true
LAB_QUIET=1 "$LAB" up 2 >/dev/null
H1=$("$LAB" addr h1); H2=$("$LAB" addr h2); DEV=$("$LAB" dev h1)
for h in h1 h2; do
    ifs=$("$LAB" exec "$h" ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')
    [[ $ifs == "$(printf '%s\n' lo "$DEV" | sort | tr '\n' ' ')" ]] || die "$h has unexpected interfaces: $ifs"
    [[ -z $("$LAB" exec "$h" ip route show default) ]] || die "$h has a default route"
done
log "lab $LAB_PREFIX up: h1 $H1, h2 $H2"

CSV="$WORK/out.csv"
echo "tag,test,tool,round,rate_pps,metric,value" >"$CSV"
emit() { echo "$TAG,$1,$2,$3,$4,$5,$6" >>"$CSV"; }    # test tool round rate metric value
emit_kv() { # test tool round rate "k=v ..."
    local kv
    for kv in $5; do emit "$1" "$2" "$3" "$4" "${kv%%=*}" "${kv#*=}"; done
}
load() { cut -d' ' -f1 /proc/loadavg; }
cpu() { # rusage.py's "user system rss", or threadcpu.py's "total S" line
    if grep -q '^total ' "$1" 2>/dev/null; then awk '$1 == "total" { printf "%.6f", $2 }' "$1"
    else awk '{ printf "%.6f", $1 + $2 }' "$1" 2>/dev/null || echo ""; fi
}
threads() { # PREFIX FILE -> "PREFIX_NAME=S ..." per thread (THREADS=1 only)
    [[ $CPU_WRAP == threadcpu.py ]] || return 0
    awk -v p="$1" '$1 != "total" { gsub(/[^A-Za-z0-9#_-]/, "_", $1); printf " %s_thr_%s=%s", p, $1, $2 }' "$2" 2>/dev/null || true
}
wait_for() { local i; for i in $(seq 50); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
bg_h() { # HOST SECONDS LOGFILE CMD... -> pid of the command's rusage wrapper in $WRAP, timeout's in $BGPID
    local h=$1 t=$2 out=$3; shift 3
    timeout -s TERM -k 3 "$t" "$LAB" exec "$h" "$@" >"$out" 2>&1 &
    BGPID=$!; BG+=("$BGPID")
    sleep 0.2; WRAP=$(pgrep -P "$BGPID" || true)
}
stop_bg() { # TIMEOUT_PID WRAPPER_PID
    [[ -n ${2:-} ]] && kill -INT "$2" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# One mcprobe run: responder on h2, prober on h1, both under rusage.  Prints "k=v ...".
mc_run() { # BIN RATE SECONDS [EXTRA PROBE ARGS...]
    local bin=$1 rate=$2 secs=$3; shift 3
    local count=$(( rate * secs )) out="$WORK/mc-out" rc=0 raw=()
    # Every probe's row (--raw) for the lateness per wake-up; not in the ceiling steps, where
    # writing 150 000 rows a second would be measured instead of the probing (sent_per_s in the
    # JSON gives the rate achieved).
    [[ ${MC_RAW:-1} == 1 ]] && raw=(--out "$out" --raw)
    MC_RAW=${MC_RAW:-1}
    rm -rf "$out" "$WORK"/*.ru
    bg_h h2 $(( secs + 25 )) "$WORK/resp.log" "$PY" "$HERE/$CPU_WRAP" "$WORK/resp.ru" \
        "$bin" respond --iface "$DEV" --group "$GROUP" --port "$PORT" --name h2 --rate-limit 0 --rcvbuf "${MC_RCVBUF:-4M}" ${MC_RESP_EXTRA:-}
    local tpid=$BGPID wpid=$WRAP
    wait_for "$WORK/resp.log" listening || log "warning: responder not listening"
    timeout -s INT -k 3 $(( secs + 20 )) "$LAB" exec h1 "$PY" "$HERE/$CPU_WRAP" "$WORK/probe.ru" \
        "$bin" probe --iface "$DEV" --group "$GROUP" --port "$PORT" --ttl 1 --rate "$rate" --count "$count" \
        --size 64 --timeout 1s --json --quiet --rcvbuf "${MC_RCVBUF:-4M}" "${raw[@]}" "$@" >"$WORK/mc.json" 2>"$WORK/mc.err" || rc=$?
    stop_bg "$tpid" "$wpid"
    [[ $rc == 0 || $rc == 1 ]] || log "mcprobe probe exit $rc: $(head -c 300 "$WORK/mc.err")"
    echo "$("$PY" "$HERE/compare.py" probe "$WORK/mc.json" "$out/probes.csv" "$rate" "$MC_RAW") $("$PY" "$HERE/limits.py" wakeups "$out/probes.csv" "$rate" 2>/dev/null) prober_cpu_s=$(cpu "$WORK/probe.ru") responder_cpu_s=$(cpu "$WORK/resp.ru")$(threads prober "$WORK/probe.ru")$(threads responder "$WORK/resp.ru")"
}

# One iperf 2 run: multicast receiver on h2, sender on h1, both under rusage.
ip_run() { # RATE SECONDS
    local rate=$1 secs=$2
    rm -f "$WORK"/*.ru
    bg_h h2 $(( secs + 15 )) "$WORK/ip-srv.log" "$PY" "$HERE/rusage.py" "$WORK/srv.ru" \
        iperf -s -u -B "$IP_GROUP%$DEV" -p "$IP_PORT" -e -w 4M -t $(( secs + 4 ))
    local tpid=$BGPID
    wait_for "$WORK/ip-srv.log" "Server listening" || log "warning: iperf server not listening"
    sleep 0.3
    timeout -s INT -k 3 $(( secs + 10 )) "$LAB" exec h1 "$PY" "$HERE/rusage.py" "$WORK/cli.ru" \
        iperf -c "$IP_GROUP%$DEV" -p "$IP_PORT" -u -T 1 -l 64 -b "${rate}pps" -t "$secs" -e \
        >"$WORK/ip-cli.log" 2>&1 || true
    wait "$tpid" 2>/dev/null || true   # the server ends by itself (-t) and prints its report
    echo "$("$PY" "$HERE/compare.py" iperf "$WORK/ip-srv.log" "$WORK/ip-cli.log" "$secs") client_cpu_s=$(cpu "$WORK/cli.ru") server_cpu_s=$(cpu "$WORK/srv.ru")"
}

# cyclictest: one thread, the probe interval, SCHED_OTHER (no -p: with one it says "defaulting
# realtime priority") or FIFO 50, a µs histogram to 20 ms.
cyc_run() { # RATE SECONDS other|fifo
    local interval=$(( 1000000 / $1 )) pol=(--policy=other)
    [[ $3 == fifo ]] && pol=(--policy=fifo -p 50)
    timeout -k 3 $(( $2 + 10 )) "$LAB" exec h1 cyclictest -q -t 1 "${pol[@]}" -i "$interval" -D "$2" -h 20000 \
        >"$WORK/cyc.log" 2>&1 || true
    "$PY" "$HERE/limits.py" cyclictest "$WORK/cyc.log"
}

blast_run() { # SECONDS
    bg_h h2 $(( $1 + 8 )) "$WORK/bl-recv.log" "$BLASTER" recv "$BL_GROUP" "$BL_PORT" "$H2" $(( $1 + 2 ))
    local tpid=$BGPID
    wait_for "$WORK/bl-recv.log" listening || log "warning: blaster receiver not listening"
    timeout -k 3 $(( $1 + 5 )) "$LAB" exec h1 "$BLASTER" send "$BL_GROUP" "$BL_PORT" "$H1" "$1" >"$WORK/bl-send.log" 2>&1 || true
    wait "$tpid" 2>/dev/null || true
    echo "$(cat "$WORK/bl-send.log") $(grep received "$WORK/bl-recv.log")"
}

# The paced round trip's floor: h2 echoes (as above), h1 sends one datagram per deadline as
# mcprobe's default pacing does and counts the echoes on a second thread, both under CPU_WRAP:
# what a probe costs and how late it leaves with no accounting at all.
blast_paced_run() { # RATE SECONDS
    rm -f "$WORK"/*.ru
    bg_h h2 $(( $2 + 10 )) "$WORK/bl-echo.log" "$PY" "$HERE/$CPU_WRAP" "$WORK/echo.ru" \
        "$BLASTER" echo "$BL_GROUP" "$BL_PORT" "$H2" $(( $2 + 3 ))
    local tpid=$BGPID wpid=$WRAP
    wait_for "$WORK/bl-echo.log" listening || log "warning: blaster echo not listening"
    timeout -k 3 $(( $2 + 6 )) "$LAB" exec h1 "$PY" "$HERE/$CPU_WRAP" "$WORK/paced.ru" \
        "$BLASTER" paced "$BL_GROUP" "$BL_PORT" "$H1" "$2" "$1" >"$WORK/bl-paced.log" 2>&1 || true
    stop_bg "$tpid" "$wpid"
    echo "$(grep sent= "$WORK/bl-paced.log") prober_cpu_s=$(cpu "$WORK/paced.ru") responder_cpu_s=$(cpu "$WORK/echo.ru")"
}

# The round trip: h2 echoes every datagram back (recvmmsg + sendmmsg), h1 keeps a window of
# BL_WINDOW unanswered datagrams out and counts the echoes (examples/blaster.rs echo/ping).
blast_echo_run() { # SECONDS
    bg_h h2 $(( $1 + 8 )) "$WORK/bl-echo.log" "$BLASTER" echo "$BL_GROUP" "$BL_PORT" "$H2" $(( $1 + 2 ))
    local tpid=$BGPID
    wait_for "$WORK/bl-echo.log" listening || log "warning: blaster echo not listening"
    timeout -k 3 $(( $1 + 5 )) "$LAB" exec h1 "$BLASTER" ping "$BL_GROUP" "$BL_PORT" "$H1" "$1" "$BL_WINDOW" \
        >"$WORK/bl-ping.log" 2>&1 || true
    wait "$tpid" 2>/dev/null || true
    echo "$(cat "$WORK/bl-ping.log") $(grep echoed= "$WORK/bl-echo.log" | sed 's/echoed=/echoer_echoed=/')"
}

emit env host 0 0 nproc "$(nproc)"
emit env host 0 0 kernel "$(uname -r)"
emit env host 0 0 loadavg_start "$(load)"
emit env mcprobe 0 0 sha256 "$(sha256sum "$MCPROBE" | cut -c1-16)"
[[ -n $MCPROBE_BASE ]] && emit env mcprobe-base 0 0 sha256 "$(sha256sum "$MCPROBE_BASE" | cut -c1-16)"
emit env cyclictest 0 0 version "$(cyclictest --help 2>&1 | head -n1 | tr -d ',')"
emit env iperf 0 0 version "$(iperf -v 2>&1 | awk '{print $3}')"

one() { # TEST ROUND RATE SECONDS TOOL
    local test=$1 r=$2 rate=$3 secs=$4 tool=$5 kv l
    l=$(load)
    case $tool in
        mcprobe) kv=$(mc_run "$MCPROBE" "$rate" "$secs") ;;
        mcprobe-base) kv=$(mc_run "$MCPROBE_BASE" "$rate" "$secs") ;;
        mcprobe-trains) kv=$(MC_RESP_EXTRA=--ack-trains mc_run "$MCPROBE" "$rate" "$secs") ;;
        mcprobe-rt) kv=$(mc_run "$MCPROBE" "$rate" "$secs" --realtime) ;;
        mcprobe-precise) kv=$(mc_run "$MCPROBE" "$rate" "$secs" --pacing precise) ;;
        mcprobe-rt-precise) kv=$(mc_run "$MCPROBE" "$rate" "$secs" --realtime --pacing precise) ;;
        iperf) kv=$(ip_run "$rate" "$secs") ;;
        blaster-paced) kv=$(blast_paced_run "$rate" "$secs") ;;
        cyclictest) kv=$(cyc_run "$rate" "$secs" other) ;;
        cyclictest-fifo) kv=$(cyc_run "$rate" "$secs" fifo) ;;
    esac
    log "  $test r$r $tool $rate/s load $l: $kv"
    emit "$test" "$tool" "$r" "$rate" loadavg "$l"
    emit_kv "$test" "$tool" "$r" "$rate" "$kv"
}

# --- 1+2: lateness vs cyclictest, CPU vs iperf ----------------------------------------------
if [[ " $PARTS " == *" bars "* ]]; then
    for (( r = 1; r <= ROUNDS; r++ )); do
        for rate in $BAR_RATES; do
            secs=$SECS; (( rate < 1000 )) && secs=$SECS_SLOW
            tools=(cyclictest mcprobe iperf)
            [[ -n $MCPROBE_BASE ]] && tools+=(mcprobe-base)
            [[ -n $BLASTER ]] && tools+=(blaster-paced)
            # shellcheck disable=SC2206
            [[ -n ${EXTRA_TOOLS:-} ]] && tools+=($EXTRA_TOOLS)
            (( rate >= 1000 && FIFO == 1 )) && tools+=(cyclictest-fifo mcprobe-rt)
            (( rate < 1000 )) && tools=("${tools[@]/cyclictest}")
            if (( r % 2 == 0 )); then
                rev=(); for (( i = ${#tools[@]} - 1; i >= 0; i-- )); do rev+=("${tools[i]}"); done; tools=("${rev[@]}")
            fi
            for tool in "${tools[@]}"; do
                [[ -z $tool ]] && continue
                [[ -n ${ONLY:-} && " $ONLY " != *" $tool "* ]] && continue
                log "bars round $r/$ROUNDS: $tool at $rate/s, ${secs}s"
                one bars "$r" "$rate" "$secs" "$tool"
            done
        done
    done
fi

# --- 3: the lateness/CPU curve, before and after ------------------------------------------------
if [[ " $PARTS " == *" curve "* ]]; then
    for rate in $CURVE_RATES; do
        tools=(mcprobe); [[ -n $MCPROBE_BASE ]] && tools+=(mcprobe-base)
        for tool in "${tools[@]}"; do
            log "curve: $tool at $rate/s, ${CURVE_SECS}s"
            one curve 1 "$rate" "$CURVE_SECS" "$tool"
        done
    done
fi

# --- 4: the kernel's ceiling and the loss-free rates ---------------------------------------------
if [[ " $PARTS " == *" ceiling "* ]]; then
    if [[ -n $BLASTER ]]; then
        for (( r = 1; r <= CEIL_ROUNDS; r++ )); do
            l=$(load); kv=$(blast_run "$STEP_SECONDS")
            log "  ceiling r$r blaster load $l: $kv"
            emit ceiling blaster "$r" 0 loadavg "$l"; emit_kv ceiling blaster "$r" 0 "$kv"
            l=$(load); kv=$(blast_echo_run "$STEP_SECONDS")
            log "  ceiling r$r blaster-echo load $l: $kv"
            emit ceiling blaster-echo "$r" 0 loadavg "$l"; emit_kv ceiling blaster-echo "$r" 0 "$kv"
        done
    fi
    for tool in $STEP_TOOLS; do
        fails=0
        for rate in $STEPS; do
            (( fails >= 2 )) && continue
            log "step: $tool at $rate/s, ${STEP_SECONDS}s"
            MC_RAW=0 MC_RCVBUF=$STEP_RCVBUF one step 1 "$rate" "$STEP_SECONDS" "$tool"
            pass=$(awk -F, -v t="$tool" -v r="$rate" -v m="$ACHIEVED_MIN" '
                $2 == "step" && $3 == t && $5 == r { v[$6] = $7 }
                END { print (v["ok"] == 1 && v["lost"] == "0" && v["achieved_pps"] != "" && v["achieved_pps"] >= r * m) ? 1 : 0 }' "$CSV")
            emit step "$tool" 1 "$rate" pass "$pass"
            if [[ $pass == 1 ]]; then fails=0; else fails=$(( fails + 1 )); fi
        done
    done
fi

emit env host 0 0 loadavg_end "$(load)"
mkdir -p "$RESULTS_DIR"
cp "$CSV" "$RESULTS_DIR/limits-$TAG.csv"
log "wrote $RESULTS_DIR/limits-$TAG.csv"
