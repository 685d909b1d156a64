#!/usr/bin/env bash
# loopback_rate.sh - one multicast-only probe run on loopback (2 responders, no rate limit),
# summarised in one line: elapsed, send lateness p99, local drops, each responder's loss and RTT.
# Run it alternately for two binaries to compare them in the same minutes.
# usage: scripts/loopback_rate.sh BIN PORT     (RATE, COUNT: default 10000/s, 30000)
# Sends only on 127.0.0.1 (--iface), bounded by --count. Needs jq.
set -euo pipefail
BIN=$1; PORT=$2
pids=()
for n in a b; do $BIN respond --iface 127.0.0.1 --port $PORT --name $n --rate-limit 0 >/dev/null 2>&1 & pids+=($!); done
sleep 0.7
$BIN probe --iface 127.0.0.1 --port $PORT --rate ${RATE:-10000} --count ${COUNT:-30000} --timeout 1s --quiet --json | jq -r '"elapsed \(.elapsed_s) late_p99 \(.send_lateness_p99_us) local_drops \(.local_drops) " + ([.responders[] | "\(.responder) lost \(.lost) p50 \(.rtt_p50_us) p99 \(.rtt_p99_us)"] | join("; "))'
kill ${pids[@]}
