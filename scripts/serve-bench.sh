#!/usr/bin/env bash
# serve-bench.sh - what `mcprobe serve` costs, whether scrapes disturb it, and whether restarts
# grow it. Loopback only (groups joined on 127.0.0.1, TTL 1), every process bounded in time.
#
#   scripts/serve-bench.sh cost        # COST_SECS [600] at COST_RATE [10] probes/s to COST_RESPONDERS [100]
#   scripts/serve-bench.sh isolation   # ISO_ROUNDS [3] pairs of ISO_SECS [30, a multiple of 5] at ISO_RATE [1000] probes/s,
#                                      #   without and with ISO_SCRAPES [50] scrapes/s
#   scripts/serve-bench.sh restarts    # RST_SECS [3600], RST_RESPONDERS [10] each restarted every RST_EVERY [60] s
#
# Writes results/serve-<mode>-<UTC date>/ (CSV samples and README.md with the figures and the
# command). Uses target/release/mcprobe (built if missing; MCPROBE overrides).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MODE=${1:?usage: serve-bench.sh cost|isolation|restarts}
[[ -n ${MCPROBE:-} ]] || { (cd "$ROOT" && cargo build --release --quiet); MCPROBE=$ROOT/target/release/mcprobe; }
OUT=${OUT:-$ROOT/results/serve-$MODE-$(date -u +%Y-%m-%d)}
mkdir -p "$OUT"
COMMAND="$(env | grep -E '^(COST|ISO|RST)_' | tr '\n' ' ')scripts/serve-bench.sh $MODE"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pids=()
loops=()
cleanup() {
    # Restart loops first (they would start their responder again), then what they run.
    for p in "${loops[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${loops[@]}"; do pkill -INT -P "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

responder() { # PORT NAME SECONDS (its output must not hold the caller's $(...) open)
    timeout -s INT "$3" "$MCPROBE" respond --iface 127.0.0.1 --port "$1" --name "$2" --quiet >/dev/null 2>&1 &
    echo $!
}

serve() { # PORT HTTP SECONDS RATE [WINDOW]
    timeout -s INT "$3" "$MCPROBE" serve --iface 127.0.0.1 --port "$1" --listen "127.0.0.1:$2" --rate "$4" --quiet \
        --window "${5:-10s}" \
        >"$OUT/serve.log" 2>&1 &
    SERVE=$!   # the timeout process: signals sent to it reach serve
    pids+=("$SERVE")   # so that an early exit below still stops it
    sleep 0.2
    # serve itself (timeout's only child, whatever the binary is called), whose CPU and RSS are sampled
    SERVE_PID=$(pgrep -P "$SERVE") || { echo "serve did not start: $(cat "$OUT/serve.log")" >&2; exit 1; }
    for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $2))" 2>/dev/null && return; sleep 0.1; done
    echo "serve did not come up: $(cat "$OUT/serve.log")" >&2; exit 1
}

sample_loop() { # PID HTTP SECONDS EVERY -> samples.csv
    echo "elapsed_s,cpu_ticks,rss_kib,series,figures" >"$OUT/samples.csv"
    local start=$SECONDS
    while kill -0 "$1" 2>/dev/null && (( SECONDS - start < $3 )); do
        local ticks rss figs
        ticks=$(awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null) || break
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null) || break
        figs=$(python3 "$HERE/serve_bench.py" metrics "$2" 2>/dev/null) || figs=""
        echo "$(( SECONDS - start )),$ticks,$rss,$(sed -n 's/.*series=\([0-9]*\).*/\1/p' <<<"$figs"),$figs" >>"$OUT/samples.csv"
        sleep "$4"
    done
}

case $MODE in
cost)
    SECS=${COST_SECS:-600}; N=${COST_RESPONDERS:-100}; RATE=${COST_RATE:-10}
    port=$(free_port); http=$(free_port)
    for i in $(seq "$N"); do pids+=("$(responder "$port" "r$i" $(( SECS + 30 )))"); done
    sleep 2
    serve "$port" "$http" $(( SECS + 20 )) "$RATE"; pids+=("$SERVE")
    # Prometheus' default: one scrape every 15 s, beside the sampler's own every 10 s.
    timeout "$SECS" python3 "$HERE/serve_bench.py" scrape "$http" 0.0667 "$SECS" >"$OUT/scraper.txt" &
    pids+=($!)
    sample_loop "$SERVE_PID" "$http" "$SECS" 10
    ;;
isolation)
    SECS=${ISO_SECS:-30}; RATE=${ISO_RATE:-1000}; ROUNDS=${ISO_ROUNDS:-3}; SCRAPES=${ISO_SCRAPES:-50}
    port=$(free_port)
    for i in 1 2 3; do pids+=("$(responder "$port" "r$i" $(( (SECS + 10) * ROUNDS * 2 + 30 )))"); done
    sleep 1
    echo "round,scrapes_per_s,lateness_p99_bucket_s,lateness_probes,lateness_le_20us,local_drops,lost,loadavg_1m,scraper" >"$OUT/rounds.csv"
    for r in $(seq "$ROUNDS"); do
        for s in 0 "$SCRAPES"; do
            http=$(free_port)
            # Windows of 5 s: read the figures 1.5 s after the last window inside the round ended
            # (its timeout is 1 s), before the next one, which saw no scrapes, ends.
            serve "$port" "$http" $(( SECS + 10 )) "$RATE" 5s
            scr="none"
            if [[ $s != 0 ]]; then scr=$(python3 "$HERE/serve_bench.py" scrape "$http" "$s" "$SECS"); else sleep "$SECS"; fi
            sleep 1.5
            figs=$(python3 "$HERE/serve_bench.py" metrics "$http")
            kill -INT "$SERVE"; wait "$SERVE" || true
            get() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$figs"; }
            echo "$r,$s,$(get lateness_p99_bucket_s),$(get lateness_probes),$(get lateness_le_20us),$(get local_drops),$(get lost),$(cut -d" " -f1 /proc/loadavg),$scr" >>"$OUT/rounds.csv"
        done
    done
    ;;
restarts)
    SECS=${RST_SECS:-3600}; N=${RST_RESPONDERS:-10}; EVERY=${RST_EVERY:-60}
    port=$(free_port); http=$(free_port)
    serve "$port" "$http" $(( SECS + 20 )) 10; pids+=("$SERVE")
    # Each responder lives EVERY seconds and is started again under the same name, staggered.
    for i in $(seq "$N"); do
        ( end=$(( SECONDS + SECS )); sleep $(( (i - 1) * EVERY / N ))
          while (( SECONDS < end )); do
              timeout -s INT "$EVERY" "$MCPROBE" respond --iface 127.0.0.1 --port "$port" --name "r$i" --quiet || true
          done ) &
        loops+=($!)
    done
    sample_loop "$SERVE_PID" "$http" "$SECS" 10
    ;;
*) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
python3 "$HERE/serve_bench.py" report "$MODE" "$OUT" "$COMMAND"
