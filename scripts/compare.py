"""Parsers and the report of scripts/compare.sh (run by it; one subcommand per step).

Usage: compare.py probe|sockperf|iperf|report ARGS...  (see compare.sh for the arguments)
"""

import csv
import json
import re
import statistics
import sys


def probe(argv):
    jf, pf, rate, raw = argv[0], argv[1], int(argv[2]), argv[3] == "1"
    try:
        j = json.load(open(jf))
    except Exception:
        print("ok=0")
        sys.exit(0)
    r = j["responders"][0] if len(j["responders"]) == 1 else {}
    kv = {
        "ok": 1 if len(j["responders"]) == 1 else 0,
        "responders": len(j["responders"]),
        "sent": j["sent"],
        "send_lateness_p50_us": j["send_lateness_p50_us"],
        "send_lateness_p99_us": j["send_lateness_p99_us"],
    }
    for k in (
        "received",
        "lost",
        "loss_pct",
        "forward_lost",
        "return_lost",
        "unknown_lost",
        "late",
        "limited",
        "rtt_min_us",
        "rtt_p50_us",
        "rtt_p99_us",
        "rtt_max_us",
    ):
        kv[k] = r.get(k, "")
    # A benchmark counts every unanswered probe, rate-limited ones included (the responder runs with
    # --rate-limit 0, so there should be none).
    if r:
        kv["lost"] = r["sent"] - r["received"]
    # The rate the probes left at, as the prober measured it (without --raw there is no probes.csv).
    if j.get("sent_per_s") is not None:
        kv["achieved_pps"] = j["sent_per_s"]
    if raw:
        tx = {}
        for row in csv.DictReader(open(pf)):
            tx[int(row["seq"])] = int(row["tx_unix_ns"])
        seqs = sorted(tx)
        if len(seqs) > 1:
            t0, t1 = tx[seqs[0]], tx[seqs[-1]]
            kv["achieved_pps"] = round((len(seqs) - 1) / ((t1 - t0) / 1e9), 1)
            # Lateness vs the schedule: offset(seq) = tx - seq/rate.  tx_unix_ns is CLOCK_REALTIME,
            # which on VMs can run a few ppm off CLOCK_MONOTONIC (the prober's schedule clock), so
            # the schedule is the line through the lower envelope of the offsets (the minimum of
            # each of 20 chunks), not just the first probe's time.
            off = [(s, (tx[s] - t0) / 1e3 - s * 1e6 / rate) for s in seqs]
            k = max(1, len(off) // 20)
            env = [min(off[i : i + k], key=lambda p: p[1]) for i in range(0, len(off), k)]

            # the lower envelope: fit, then refit without the chunks whose minimum is well above it
            def fit(pts):
                n = len(pts)
                mx = sum(p[0] for p in pts) / n
                my = sum(p[1] for p in pts) / n
                sxx = sum((p[0] - mx) ** 2 for p in pts)
                b = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else 0.0
                return my - b * mx, b

            a, b = fit(env)
            good = [p for p in env if p[1] - (a + b * p[0]) <= 2.0] or env
            a, b = fit(good)
            if abs(b * rate) > 50:  # no clock drifts that much: the sender fell behind; no correction
                a, b = min(env[:2], key=lambda p: p[1])[1], 0.0
            late = sorted(max(0.0, o - (a + b * s)) for s, o in off)
            n = len(late)
            kv["clock_drift_ppm"] = round(b * rate, 2)  # us per 1e6 us
            kv["raw_lateness_p50_us"] = round(late[n // 2], 2)
            kv["raw_lateness_p99_us"] = round(late[min(n - 1, int(n * 0.99))], 2)
            kv["raw_lateness_max_us"] = round(late[-1], 2)
    print(" ".join(f"{k}={v}" for k, v in kv.items()))


def sockperf(argv):
    t = re.sub(r"\x1b\[[0-9;]*m", "", open(argv[0], errors="replace").read())
    kv = {}
    m = re.search(r"percentile 50\.000 =\s*([\d.]+)", t)
    kv["rtt_p50_us"] = m.group(1) if m else ""
    m = re.search(r"percentile 99\.000 =\s*([\d.]+)", t)
    kv["rtt_p99_us"] = m.group(1) if m else ""
    m = re.search(r"<MIN> observation =\s*([\d.]+)", t)
    kv["rtt_min_us"] = m.group(1) if m else ""
    m = re.search(r"<MAX> observation =\s*([\d.]+)", t)
    kv["rtt_max_us"] = m.group(1) if m else ""
    m = re.search(r"\[Valid Duration\].*SentMessages=(\d+); ReceivedMessages=(\d+)", t)
    if m:
        kv["sent"], kv["received"] = m.group(1), m.group(2)
    m = re.search(r"# dropped messages = (\d+)", t)
    kv["dropped"] = m.group(1) if m else ""
    kv["ok"] = 1 if kv["rtt_p50_us"] else 0
    print(" ".join(f"{k}={v}" for k, v in kv.items()))


def iperf(argv):
    srv, cli, _secs = (
        open(argv[0]).read(),
        open(argv[1]).read(),
        float(argv[2]),
    )
    kv = {"ok": 0}
    # client: "... Write/Err  PPS" -> data datagrams written, and its achieved rate.  (Its "Sent N
    # datagrams" also counts the end-of-test datagrams, so it is not used.)
    mc = re.search(r"sec\s.*?\s(\d+)/(\d+)\s+(\d+) pps", cli)
    # receiver's final line: "... Lost/Total (..%) ... N pps"
    rows = re.findall(r"sec\s.*?\s(\d+)/(\d+)\s+\(([\d.e+-]+)%\).*?(\d+) pps", srv)
    if mc and rows:
        writes, achieved = int(mc.group(1)), int(mc.group(3))
        lost, total, _, pps = (int(x) if i != 2 else x for i, x in enumerate(rows[-1]))
        # iperf counts loss from sequence gaps; datagrams lost after the last one received are not
        # in its Lost/Total, so also count what the receiver's Total falls short of the writes.
        tail = max(0, writes - total)
        kv.update(
            ok=1,
            sent=writes,
            received=total - lost,
            lost=lost + tail,
            iperf_lost=lost,
            achieved_pps=achieved,
            receiver_pps=pps,
        )
    print(" ".join(f"{k}={v}" for k, v in kv.items()))


def report(argv):
    rows = list(csv.DictReader(open(argv[0])))
    md, amin = argv[1], float(argv[2])

    def vals(test, tool, metric, rate=None):
        out = []
        for r in rows:
            if (
                r["test"] == test
                and r["tool"] == tool
                and r["metric"] == metric
                and (rate is None or r["rate_pps"] == str(rate))
            ):
                try:
                    out.append(float(r["value"]))
                except ValueError:
                    pass
        return out

    def env(tool, metric):
        return next(
            (r["value"] for r in rows if r["test"] == "env" and r["tool"] == tool and r["metric"] == metric),
            "?",
        )

    def med(v):
        return statistics.median(v) if v else None

    def f(x, d=1):
        return "n/a" if x is None else f"{x:.{d}f}"

    def ratio(a, b):
        return None if a is None or b in (None, 0) else a / b

    tag = rows[0]["tag"]
    rtt = [r for r in rows if r["test"] == "rtt"]
    rrate, rsize = rtt[0]["rate_pps"], rtt[0]["size_bytes"]
    mp50, mp99 = (
        med(vals("rtt", "mcprobe", "rtt_p50_us")),
        med(vals("rtt", "mcprobe", "rtt_p99_us")),
    )
    sp50, sp99 = (
        med(vals("rtt", "sockperf", "rtt_p50_us")),
        med(vals("rtt", "sockperf", "rtt_p99_us")),
    )

    def steps(tool):
        return sorted({int(r["rate_pps"]) for r in rows if r["test"] == "rate" and r["tool"] == tool})

    def best(tool):
        """highest step that passed with every lower step passing too, and the best achieved rate there"""
        b = None
        for s in steps(tool):
            if vals("rate", tool, "ok", s) != [1.0]:
                continue  # the tool failed to run: no verdict
            if vals("rate", tool, "pass", s) == [1.0]:
                b = s
            else:
                break
        return b

    mb, ib = best("mcprobe"), best("iperf")

    def zl(tool):
        """highest achieved rate among the steps with zero loss (the sender may have fallen short)"""
        a = [
            vals("rate", tool, "achieved_pps", s)[0]
            for s in steps(tool)
            if vals("rate", tool, "lost", s) == [0.0] and vals("rate", tool, "achieved_pps", s)
        ]
        return max(a) if a else None

    mz, iz = zl("mcprobe"), zl("iperf")
    lat99 = med(vals("lateness", "mcprobe", "send_lateness_p99_us"))
    rlat99 = med(vals("lateness", "mcprobe", "raw_lateness_p99_us"))
    lrate = next((r["rate_pps"] for r in rows if r["test"] == "lateness"), "?")

    def verdict(x, op, t):
        if x is None:
            return "n/a"
        return "yes" if (x <= t if op == "<=" else x >= t) else "no"

    r50, r99, rr = ratio(mp50, sp50), ratio(mp99, sp99), ratio(mb, ib)
    L = []
    L.append(f"# mcprobe vs sockperf / iperf 2 — {tag}\n")
    L.append(
        f"mcprobe {env('mcprobe', 'revision')} (sha256 {env('mcprobe', 'binary_sha256')}…), sockperf {env('sockperf', 'version')}, "
        f"iperf {env('iperf', 'version')}; kernel {env('host', 'kernel')}, {env('host', 'nproc')} vCPUs shared by prober and responder; "
        f"load average {env('host', 'loadavg_1m_start')} at start, {env('host', 'loadavg_1m_end')} at end; "
        f"cargo/rustc processes running at start: {env('host', 'other_cargo_rustc_procs')}.\n"
    )
    L.append(
        "Two-host namespace lab (scripts/lab.sh): prober/client/sender on h1, responder/server/receiver on h2, "
        "TTL 1, pinned to the lab veth. Raw figures: the CSV of the same name.\n"
    )
    L.append("## Ratios\n")
    L.append("| metric | mcprobe | peer | ratio mcprobe/peer | target | met |")
    L.append("|---|---:|---:|---:|---|---|")
    n = len(vals("rtt", "mcprobe", "rtt_p50_us"))
    L.append(
        f"| RTT p50, µs ({rrate}/s, {rsize} B, median of {n} rounds) | {f(mp50)} | {f(sp50)} (sockperf) | {f(r50, 2)} | ≤ 1.0 (stretch 0.8) | {verdict(r50, '<=', 1.0)}{' (stretch met)' if r50 is not None and r50 <= 0.8 else ''} |"
    )
    L.append(f"| RTT p99, µs (same runs) | {f(mp99)} | {f(sp99)} (sockperf) | {f(r99, 2)} | — | — |")
    L.append(
        f"| highest loss-free rate, pkt/s (steps {', '.join(str(s) for s in steps('mcprobe'))}) | {mb if mb else 'none'} probes/s | {ib if ib else 'none'} datagrams/s (iperf) | {f(rr, 2)} | ≥ 1.0 | {verdict(rr, '>=', 1.0)} |"
    )
    L.append(
        f"| highest achieved rate of any zero-loss step, pkt/s | {f(mz, 0)} probes/s | {f(iz, 0)} datagrams/s (iperf) | {f(ratio(mz, iz), 2)} | — | — |"
    )
    L.append(
        f"| send lateness p99, µs, at {lrate}/s (mcprobe JSON, median of rounds) | {f(lat99, 2)} | — | — | ≤ 5 µs | {verdict(lat99, '<=', 5.0)} |"
    )
    L.append(
        f"| send lateness p99, µs, at {lrate}/s (from probes.csv transmit times) | {f(rlat99, 2)} | — | — | ≤ 5 µs | {verdict(rlat99, '<=', 5.0)} |"
    )
    # mcprobe's lateness against cyclictest's wake-up latency, round by round (same interval)
    lr = []
    for rd in sorted({int(r["round"]) for r in rows if r["test"] == "lateness"}):

        def one(tool, metric, rd=rd):
            v = [
                r["value"]
                for r in rows
                if r["test"] == "lateness" and r["tool"] == tool and r["round"] == str(rd) and r["metric"] == metric
            ]
            try:
                return float(v[0])
            except (IndexError, ValueError):
                return None

        lr.append(
            [
                ratio(one("mcprobe", a), one("cyclictest", b))
                for a, b in (
                    ("send_lateness_p50_us", "p50_us"),
                    ("send_lateness_p99_us", "p99_us"),
                    ("raw_lateness_max_us", "max_us"),
                )
            ]
        )
    c99 = med(vals("lateness", "cyclictest", "p99_us"))
    if c99 is not None:
        q = [med([x[i] for x in lr if x[i] is not None]) for i in range(3)]
        L.append(
            f"| send lateness p50 / p99 / max ÷ cyclictest's (SCHED_OTHER, same interval, median of per-round ratios) | "
            f"{f(lat99, 2)} (p99) | {f(c99, 1)} (cyclictest p99) | {f(q[0], 3)} / {f(q[1], 3)} / {f(q[2], 3)} | p99 ≤ 1.5 | "
            f"{verdict(q[1], '<=', 1.5)} |"
        )
    L.append("")
    L.append(
        "What the rate figures mean: mcprobe's is probes per second to one responder, where every probe is answered "
        "by a unicast ack (two datagrams on the wire, a send and a receive on each host, all on the same vCPUs); "
        "iperf's is one-way multicast datagrams per second, nothing returned. A step passes when nothing was lost "
        f"(mcprobe: `lost` = 0, which includes late acks; iperf: client's sent = receiver's count) and the sender "
        f"achieved ≥ {amin:.0%} of the asked rate. The loss-free rate is the highest step with it and every lower step passing "
        "(a step where the tool produced no figures, marked error, is skipped).\n"
    )
    L.append(
        "RTT is not measured at the same points: mcprobe takes the ack's kernel receive timestamp (SO_TIMESTAMPNS) "
        "minus the probe's transmit time; sockperf --full-rtt measures from before its send to after its recvfrom "
        "returns, so it also includes the prober's wake-up. sockperf's server replies unicast (--force-unicast-reply), "
        "as mcprobe's responder does; sockperf drops its first 400 ms as warm-up, mcprobe counts every probe.\n"
    )
    L.append("## RTT rounds\n")
    L.append("| round | tool | sent | received | min µs | p50 µs | p99 µs | max µs |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|")
    rounds = sorted({int(r["round"]) for r in rtt})
    for rd in rounds:
        for tool in ("mcprobe", "sockperf"):
            g = {r["metric"]: r["value"] for r in rtt if r["tool"] == tool and r["round"] == str(rd)}
            if g:
                L.append(
                    f"| {rd} | {tool} | {g.get('sent', '')} | {g.get('received', '')} | {g.get('rtt_min_us', '')} | {g.get('rtt_p50_us', '')} | {g.get('rtt_p99_us', '')} | {g.get('rtt_max_us', '')} |"
                )
    L.append("\n## Rate steps\n")
    L.append(
        "| tool | asked /s | achieved /s | sent | received | lost | mcprobe fwd/ret/unknown/late | RTT p50 µs | RTT p99 µs | pass |"
    )
    L.append("|---|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for tool in ("mcprobe", "iperf"):
        for s in steps(tool):
            g = {
                r["metric"]: r["value"]
                for r in rows
                if r["test"] == "rate" and r["tool"] == tool and r["rate_pps"] == str(s)
            }
            split = (
                "/".join(g.get(k, "") for k in ("forward_lost", "return_lost", "unknown_lost", "late"))
                if tool == "mcprobe"
                else "—"
            )
            L.append(
                f"| {tool} | {s} | {g.get('achieved_pps', '')} | {g.get('sent', '')} | {g.get('received', '')} | {g.get('lost', '')} | {split} | "
                f"{g.get('rtt_p50_us', '—') or '—'} | {g.get('rtt_p99_us', '—') or '—'} | {'error (no figures)' if g.get('ok') != '1' else 'yes' if g.get('pass') == '1' else 'no'} |"
            )
    L.append("\n## Send lateness rounds (mcprobe)\n")
    L.append(
        "| round | achieved /s | lost | JSON p50 µs | JSON p99 µs | probes.csv p50 µs | probes.csv p99 µs | probes.csv max µs |"
    )
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for rd in sorted({int(r["round"]) for r in rows if r["test"] == "lateness"}):
        g = {
            r["metric"]: r["value"]
            for r in rows
            if r["test"] == "lateness" and r["tool"] == "mcprobe" and r["round"] == str(rd)
        }
        L.append(
            f"| {rd} | {g.get('achieved_pps', '')} | {g.get('lost', '')} | {g.get('send_lateness_p50_us', '')} | {g.get('send_lateness_p99_us', '')} | "
            f"{g.get('raw_lateness_p50_us', '')} | {g.get('raw_lateness_p99_us', '')} | {g.get('raw_lateness_max_us', '')} |"
        )
    if c99 is not None:
        L.append("\n## cyclictest rounds (same interval, SCHED_OTHER)\n")
        L.append("| round | p50 µs | p99 µs | max µs |")
        L.append("|---|---:|---:|---:|")
        for rd in sorted({int(r["round"]) for r in rows if r["test"] == "lateness" and r["tool"] == "cyclictest"}):
            g = {
                r["metric"]: r["value"]
                for r in rows
                if r["test"] == "lateness" and r["tool"] == "cyclictest" and r["round"] == str(rd)
            }
            L.append(f"| {rd} | {g.get('p50_us', '')} | {g.get('p99_us', '')} | {g.get('max_us', '')} |")
    L.append(
        "\nprobes.csv lateness: each probe's transmit time (`tx_unix_ns`) "
        "measured against the line through the lower envelope of (transmit time − seq / rate), which removes "
        "CLOCK_REALTIME's drift against the monotonic clock mcprobe schedules on (`clock_drift_ppm` in the CSV); "
        "an independent check of the JSON figure."
    )
    open(md, "w").write("\n".join(L) + "\n")


if __name__ == "__main__":
    {"probe": probe, "sockperf": sockperf, "iperf": iperf, "report": report}[sys.argv[1]](sys.argv[2:])
