"""Parser, report and plot of scripts/limits.sh.

Usage:
  limits.py cyclictest LOG                 -> "k=v ..." (p50/p99/max from its -h histogram)
  limits.py report CSV MD PNG              -> the ratio tables (markdown) and the trade-off plot
"""

import csv
import statistics
import sys


def cyclictest(argv):
    hist, stats = [], {}
    for line in open(argv[0], errors="replace"):
        p = line.split()
        if len(p) == 2 and p[0].isdigit() and p[1].isdigit():
            hist.append((int(p[0]), int(p[1])))
        elif line.startswith("# ") and ":" in line:
            k, _, v = line[2:].partition(":")
            stats[k.strip()] = v.strip()
    n_in = sum(c for _, c in hist)
    over = int(stats.get("Histogram Overflows", "0") or 0)
    n = n_in + over
    kv = {"ok": 1 if n else 0, "cycles": n, "overflows": over}

    def q(frac):
        want, seen = frac * n, 0
        for us, c in hist:
            seen += c
            if seen >= want:
                return us
        return None  # in the overflow: above the histogram's range

    if n:
        kv["p50_us"] = q(0.5)
        p99 = q(0.99)
        kv["p99_us"] = p99 if p99 is not None else f">{hist[-1][0]}"
        kv["min_us"] = int(stats.get("Min Latencies", "0"))
        kv["avg_us"] = int(stats.get("Avg Latencies", "0"))
        kv["max_us"] = int(stats.get("Max Latencies", "0"))
    print(" ".join(f"{k}={v}" for k, v in kv.items()))


def wakeups(argv):
    """Send lateness per wake-up, as cyclictest counts it, from probes.csv: `wakeups CSV RATE`.

    cyclictest takes one sample per wake-up and, after a late one, skips the deadlines already
    past; a prober sends every probe, so one 5 ms stall at 10 000/s makes 50 probes late (the
    catch-up sends).  Here a probe is a wake-up when its deadline was still ahead as the
    previous probe left (the sender had to wait for it); the others are catch-up sends.  The
    schedule is compare.py's: the line through the lower envelope of tx - seq/rate (tx is
    CLOCK_REALTIME, a few ppm off the prober's CLOCK_MONOTONIC on a VM)."""
    rate = float(argv[1])
    tx = {}
    for row in csv.DictReader(open(argv[0])):
        tx[int(row["seq"])] = int(row["tx_unix_ns"])
    seqs = sorted(tx)
    if len(seqs) < 3:
        print("wakeups=0")
        return
    t0 = tx[seqs[0]]
    off = [(q, (tx[q] - t0) / 1e3 - q * 1e6 / rate) for q in seqs]
    k = max(1, len(off) // 20)
    env = [min(off[i : i + k], key=lambda p: p[1]) for i in range(0, len(off), k)]

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
    if abs(b * rate) > 50:
        a, b = min(env[:2], key=lambda p: p[1])[1], 0.0
    # deadline and send time in µs from t0
    due = {q: a + b * q + q * 1e6 / rate for q in seqs}
    sent = {q: (tx[q] - t0) / 1e3 for q in seqs}
    wake, catch = [], 0
    for prev, q in zip(seqs, seqs[1:]):
        if q != prev + 1 or due[q] > sent[prev]:
            wake.append(max(0.0, sent[q] - due[q]))
        else:
            catch += 1
    wake.sort()
    n = len(wake)
    print(
        f"wakeups={n} catchup_sends={catch} wake_lateness_p50_us={wake[n // 2]:.2f} "
        f"wake_lateness_p99_us={wake[min(n - 1, int(n * 0.99))]:.2f} wake_lateness_max_us={wake[-1]:.2f}"
    )


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt(x, d=1, missing="—"):
    return missing if x is None else f"{x:.{d}f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def report(argv):
    rows = list(csv.DictReader(open(argv[0])))
    md, png = argv[1], argv[2]

    def runs(test):
        """{(tool, round, rate): {metric: value}}"""
        out = {}
        for r in rows:
            if r["test"] == test:
                out.setdefault((r["tool"], int(r["round"]), int(r["rate_pps"])), {})[r["metric"]] = r["value"]
        return out

    def env(tool, metric):
        return next(
            (r["value"] for r in rows if r["test"] == "env" and r["tool"] == tool and r["metric"] == metric), "?"
        )

    def f(x, d=1):
        return fmt(x, d, "n/a")

    def cpu_per(g, tool):
        """µs of CPU per probe (mcprobe: prober + responder per probe sent) or per datagram
        (iperf: client + server per datagram the receiver got)"""
        if tool.startswith("mcprobe"):
            a, b, n = num(g.get("prober_cpu_s")), num(g.get("responder_cpu_s")), num(g.get("sent"))
        else:
            a, b, n = num(g.get("client_cpu_s")), num(g.get("server_cpu_s")), num(g.get("received"))
        if None in (a, b, n) or not n:
            return None, None, None
        return (a + b) / n * 1e6, a / n * 1e6, b / n * 1e6

    bars = runs("bars")
    rounds = sorted({k[1] for k in bars})
    rates = sorted({k[2] for k in bars})
    L = [f"# mcprobe against this machine's limits — {rows[0]['tag']}\n"]
    L.append(
        f"mcprobe sha256 {env('mcprobe', 'sha256')}… (before: {env('mcprobe-base', 'sha256')}…), "
        f"{env('cyclictest', 'version')}, iperf {env('iperf', 'version')}; kernel {env('host', 'kernel')}, "
        f"{env('host', 'nproc')} vCPUs; load average {env('host', 'loadavg_start')} at start, "
        f"{env('host', 'loadavg_end')} at end (each run's own beside it below). Raw figures: the CSV of the same name.\n"
    )

    # --- lateness vs cyclictest
    L.append("## Send lateness vs cyclictest (same interval, same policy, same round)\n")
    L.append(
        "| rate /s | round | load | cyclictest p50 / p99 / max µs | mcprobe p50 / p99 / max µs | ratio p50 / p99 / max | before (base) p50 / p99 / max µs |"
    )
    L.append("|---:|---:|---:|---|---|---|---|")
    summary = {}
    for rate in rates:
        for rd in rounds:
            c, m, b = (
                bars.get(("cyclictest", rd, rate)),
                bars.get(("mcprobe", rd, rate)),
                bars.get(("mcprobe-base", rd, rate)),
            )
            if not c or not m:
                continue
            cv = [num(c.get(k)) for k in ("p50_us", "p99_us", "max_us")]
            mv = [num(m.get(k)) for k in ("send_lateness_p50_us", "send_lateness_p99_us", "raw_lateness_max_us")]
            bv = (
                [num(b.get(k)) for k in ("send_lateness_p50_us", "send_lateness_p99_us", "raw_lateness_max_us")]
                if b
                else []
            )
            rv = [ratio(x, y) for x, y in zip(mv, cv)]
            summary.setdefault(rate, []).append((rv, cv, mv))
            L.append(
                f"| {rate} | {rd} | {c.get('loadavg', '?')}/{m.get('loadavg', '?')} | {' / '.join(f(x) for x in cv)} | "
                f"{' / '.join(f(x, 2) for x in mv)} | {' / '.join(f(x, 3) for x in rv)} | {' / '.join(f(x, 2) for x in bv) or '—'} |"
            )
    L.append("")
    L.append("| rate /s | median ratio p50 | median ratio p99 | median ratio max | bar: p99 ratio ≤ 1.5 |")
    L.append("|---:|---:|---:|---:|---|")
    for rate, v in sorted(summary.items()):
        r50, r99, rmax = (med([x[0][i] for x in v]) for i in range(3))
        met = "n/a" if r99 is None else ("met" if r99 <= 1.5 else "not met")
        L.append(f"| {rate} | {f(r50, 3)} | {f(r99, 3)} | {f(rmax, 3)} | {met} ({len(v)} rounds) |")
    L.append(
        "\nmcprobe's p50/p99 are from its JSON (the sender's own lateness histogram), its max from the "
        "transmit times in probes.csv (compare.py's drift-corrected schedule); cyclictest's from its `-h` "
        "histogram (1 µs buckets to 20 ms) and its own max. cyclictest measures how late a thread wakes from "
        "an absolute-deadline sleep; mcprobe wakes early and waits the rest out awake, so its lateness is "
        "the machine's wake-up latency only when a wake-up is later than its margin (or it is preempted).\n"
    )

    # --- SCHED_FIFO
    fifo = [(rate, rd) for (t, rd, rate) in bars if t == "mcprobe-rt"]
    if fifo:
        L.append("## Under SCHED_FIFO (mcprobe probe --realtime; cyclictest --policy=fifo -p 50)\n")
        L.append(
            "| rate /s | round | load | cyclictest-fifo p50 / p99 / max µs | mcprobe --realtime p50 / p99 / max µs | mcprobe (OTHER) p99 µs | CPU/probe realtime vs other µs |"
        )
        L.append("|---:|---:|---:|---|---|---:|---|")
        rt = {}
        for rate, rd in sorted(fifo):
            c, m, o = (
                bars.get(("cyclictest-fifo", rd, rate), {}),
                bars[("mcprobe-rt", rd, rate)],
                bars.get(("mcprobe", rd, rate), {}),
            )
            cv = [num(c.get(k)) for k in ("p50_us", "p99_us", "max_us")]
            mv = [num(m.get(k)) for k in ("send_lateness_p50_us", "send_lateness_p99_us", "raw_lateness_max_us")]
            rt.setdefault(rate, []).append([ratio(x, y) for x, y in zip(mv, cv)])
            L.append(
                f"| {rate} | {rd} | {m.get('loadavg', '?')} | {' / '.join(f(x) for x in cv)} | {' / '.join(f(x, 2) for x in mv)} | "
                f"{f(num(o.get('send_lateness_p99_us')), 2)} | {f(cpu_per(m, 'mcprobe')[0])} vs {f(cpu_per(o, 'mcprobe')[0])} |"
            )
        L.append("")
        L.append(
            "| rate /s | median ratio p50 | median ratio p99 (--realtime ÷ cyclictest SCHED_FIFO) | median ratio max | bar: p99 ratio ≤ 1.5 |"
        )
        L.append("|---:|---:|---:|---:|---|")
        for rate, v in sorted(rt.items()):
            r50, r99, rmax = (med([x[i] for x in v]) for i in range(3))
            met = "n/a" if r99 is None else ("met" if r99 <= 1.5 else "not met")
            L.append(f"| {rate} | {f(r50, 3)} | {f(r99, 3)} | {f(rmax, 3)} | {met} ({len(v)} rounds) |")
        L.append("")

    # --- CPU vs iperf
    cpu_start = len(L)
    L.append("## CPU per probe vs iperf 2's CPU per datagram (same round)\n")
    L.append(
        "| rate /s | round | load | mcprobe µs/probe (prober + responder) | before (base) µs/probe | iperf µs/datagram (client + server) | ratio mcprobe/iperf |"
    )
    L.append("|---:|---:|---:|---|---|---|---:|")
    cpus = {}
    for rate in rates:
        for rd in rounds:
            m, i, b = (
                bars.get(("mcprobe", rd, rate)),
                bars.get(("iperf", rd, rate)),
                bars.get(("mcprobe-base", rd, rate)),
            )
            if not m or not i:
                continue
            mc, ic, bc = cpu_per(m, "mcprobe"), cpu_per(i, "iperf"), cpu_per(b or {}, "mcprobe")
            rr = ratio(mc[0], ic[0])
            cpus.setdefault(rate, []).append((rr, mc[0], ic[0], bc[0]))
            L.append(
                f"| {rate} | {rd} | {m.get('loadavg', '?')}/{i.get('loadavg', '?')} | {f(mc[0])} ({f(mc[1])} + {f(mc[2])}) | "
                f"{f(bc[0])} ({f(bc[1])} + {f(bc[2])}) | {f(ic[0])} ({f(ic[1])} + {f(ic[2])}) | {f(rr, 2)} |"
            )
    L.append("")
    L.append(
        "| rate /s | median mcprobe µs/probe | median before µs/probe | median iperf µs/datagram | median ratio | bar: ≤ 1.5 |"
    )
    L.append("|---:|---:|---:|---:|---:|---|")
    for rate, v in sorted(cpus.items()):
        rr = med([x[0] for x in v])
        met = "n/a" if rr is None else ("met" if rr <= 1.5 else "not met")
        L.append(
            f"| {rate} | {f(med([x[1] for x in v]))} | {f(med([x[3] for x in v]))} | {f(med([x[2] for x in v]))} | {f(rr, 2)} | {met} ({len(v)} rounds) |"
        )
    L.append(
        "\nCPU from `wait4`'s rusage (scripts/rusage.py; user + system, µs resolution) of each process over its "
        "whole life, start-up and shutdown included. mcprobe's per probe sent (a probe out, an ack back: four "
        "socket operations, plus writing probes.csv with --raw); iperf's per datagram received (one send, one receive).\n"
    )

    if not cpus:  # no iperf runs: no CPU comparison
        del L[cpu_start:]

    # --- curve
    curve = runs("curve")
    pts = {}
    for (tool, _rd, rate), g in list(curve.items()) + [
        ((t, rd, r), g) for (t, rd, r), g in bars.items() if t in ("mcprobe", "mcprobe-base") and rd == 1
    ]:
        pts.setdefault(tool, {})[rate] = g
    if pts:
        L.append("## Lateness/CPU trade-off over rates (before = mcprobe-base, after = mcprobe)\n")
        L.append(
            "| rate /s | load | before: lateness p50 / p99 µs | before: prober µs CPU/probe | before: prober CPU % of a core | after: lateness p50 / p99 µs | after: prober µs CPU/probe | after: prober CPU % of a core |"
        )
        L.append("|---:|---:|---|---:|---:|---|---:|---:|")
        allr = sorted(set(pts.get("mcprobe", {})) | set(pts.get("mcprobe-base", {})))

        def cell(g, rate):
            if not g:
                return "—", "—", "—"
            p = cpu_per(g, "mcprobe")[1]
            return (
                f"{f(num(g.get('send_lateness_p50_us')), 2)} / {f(num(g.get('send_lateness_p99_us')), 2)}",
                f(p),
                f(p * rate / 1e4 if p is not None else None),
            )

        for rate in allr:
            b, a = pts.get("mcprobe-base", {}).get(rate), pts.get("mcprobe", {}).get(rate)
            L.append(
                f"| {rate} | {(a or b or {}).get('loadavg', '?')} | {' | '.join(cell(b, rate))} | {' | '.join(cell(a, rate))} |"
            )
        L.append(f"\n![trade-off]({png.split('/')[-1]})\n")
        cyc = {r: num(g.get("p99_us")) for (t, rd, r), g in bars.items() if t == "cyclictest" and rd == 1}
        plot(pts, png, {r: v for r, v in cyc.items() if v is not None})

    # --- ceiling
    ceil = runs("ceiling")
    steps = runs("step")
    if ceil or steps:
        L.append("## Loss-free rate vs the kernel's ceiling and vs iperf 2\n")
        cr = []
        for (_t, rd, _r), g in sorted(ceil.items()):
            s, secs, rcv, span = (num(g.get(k)) for k in ("sent", "seconds", "received", "first_to_last_s"))
            rr = rcv / span if rcv and span else None
            cr.append(rr)
            L.append(
                f"- blaster round {rd} (load {g.get('loadavg', '?')}): sent {f(s / secs if s and secs else None, 0)}/s, received {f(rr, 0)}/s ({f(rcv, 0)} datagrams)"
            )
        ceiling = med(cr)

        def best(tool):
            b = None
            for rate in sorted({k[2] for k in steps if k[0] == tool}):
                g = steps[(tool, 1, rate)]
                if g.get("pass") == "1":
                    b = rate
                else:
                    break
            return b

        L.append("\n| tool | asked /s | load | achieved /s | sent | received | lost | pass |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for (tool, _rd, rate), g in sorted(steps.items()):
            L.append(
                f"| {tool} | {rate} | {g.get('loadavg', '?')} | {g.get('achieved_pps', '')} | {g.get('sent', '')} | {g.get('received', '')} | {g.get('lost', '')} | {'yes' if g.get('pass') == '1' else 'no'} |"
            )
        mb, ib = best("mcprobe"), best("iperf")
        L.append("")
        L.append("| figure | value | bar | met |")
        L.append("|---|---:|---|---|")
        L.append(f"| kernel ceiling (blaster, received/s, median of {len(cr)}) | {f(ceiling, 0)} | — | — |")
        L.append(f"| mcprobe loss-free rate (probes/s, each answered) | {mb or 'none'} | — | — |")
        L.append(f"| iperf 2 loss-free rate (datagrams/s) | {ib or 'none'} | — | — |")
        rc, ri = ratio(mb, ceiling), ratio(mb, ib)
        L.append(
            f"| mcprobe / ceiling | {f(rc, 2)} | ≥ 0.80 | {'n/a' if rc is None else 'met' if rc >= 0.8 else 'not met'} |"
        )
        L.append(
            f"| mcprobe / iperf | {f(ri, 2)} | ≥ 1.5 | {'n/a' if ri is None else 'met' if ri >= 1.5 else 'not met'} |"
        )
        L.append(
            "\nThe ceiling is one-way: 64-byte datagrams from h1 to a group h2 joined, `sendmmsg` batches of 64 as fast as "
            "the kernel takes them, h2 counting with `recvmmsg`. A probe is a round trip (a probe and an ack, a send and "
            "a receive on each host), so twice the datagrams of one blaster datagram on the same two vCPUs.\n"
        )
    open(md, "w").write("\n".join(L) + "\n")


def plot(pts, png, cyc):
    """CPU and send lateness p99 over the rates, the two builds (labels from BASE_LABEL and
    HEAD_LABEL in the environment), with cyclictest's p99 (`cyc`, rate -> µs) for reference."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for tool, style, label in (
        ("mcprobe-base", "o--", os.environ.get("BASE_LABEL", "before (MCPROBE_BASE)")),
        ("mcprobe", "s-", os.environ.get("HEAD_LABEL", "after (MCPROBE)")),
    ):
        g = pts.get(tool, {})
        rs = sorted(r for r in g if cpu_and_late(g[r]))
        if not rs:
            continue
        cpu = [num(g[r]["prober_cpu_s"]) / num(g[r]["sent"]) * 1e6 * r / 1e4 for r in rs]
        p99 = [max(num(g[r]["send_lateness_p99_us"]), 0.01) for r in rs]
        ax1.plot(rs, cpu, style, label=label)
        ax2.plot(rs, p99, style, label=label)
    if cyc:
        rs = sorted(cyc)
        ax2.plot(rs, [cyc[r] for r in rs], "^:", color="grey", label="cyclictest, same interval")
    ax1.set(xscale="log", xlabel="probes/s", ylabel="prober CPU, % of one core", title="CPU")
    ax2.set(xscale="log", yscale="log", xlabel="probes/s", ylabel="send lateness p99, µs", title="Lateness")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def cpu_and_late(g):
    return (
        num(g.get("prober_cpu_s")) is not None and num(g.get("sent")) and num(g.get("send_lateness_p99_us")) is not None
    )


def floor(runs, rounds, rates, g, cpu):
    """The paced round trip with no accounting (`blaster paced` against `blaster echo`) beside
    mcprobe, cyclictest and iperf 2, round by round: how far each bar is from what any tool that
    sends every probe on its deadline and answers it at once could reach on this machine."""

    f = fmt

    out = ["\n### The floor: a paced round trip with no accounting (blaster paced/echo), same rounds\n"]
    out.append(
        "Send lateness p99 per wake-up (µs) and CPU per probe or round trip (µs, both sides), "
        "beside cyclictest's p99 and iperf 2's CPU per datagram.\n"
    )
    out.append(
        "| rate /s | round | cyclictest p99 | floor p99 | mcprobe p99 | floor / cyclictest | mcprobe / cyclictest "
        "| floor CPU | mcprobe CPU | iperf CPU | floor / iperf | mcprobe / iperf | mcprobe / floor |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summ = {}
    for rate in rates:
        for rd in rounds:
            if ("bars", "blaster-paced", rd, rate) not in runs:
                continue
            cy = g("bars", "cyclictest", rd, rate, "p99_us")
            fl = g("bars", "blaster-paced", rd, rate, "wake_lateness_p99_us")
            mc = g("bars", "mcprobe", rd, rate, "wake_lateness_p99_us")
            fc, mcc, ic = cpu("blaster-paced", rd, rate), cpu("mcprobe", rd, rate), cpu("iperf", rd, rate)
            rs = [ratio(fl, cy), ratio(mc, cy), ratio(fc, ic), ratio(mcc, ic), ratio(mcc, fc)]
            summ.setdefault(rate, []).append(rs)
            out.append(
                f"| {rate} | {rd} | {f(cy, 0)} | {f(fl)} | {f(mc)} | {f(rs[0], 2)} | {f(rs[1], 2)} "
                f"| {f(fc)} | {f(mcc)} | {f(ic)} | {f(rs[2], 2)} | {f(rs[3], 2)} | {f(rs[4], 2)} |"
            )
    out.append("")
    out.append(
        "| rate /s | median: floor / cyclictest p99 | mcprobe / cyclictest p99 | floor / iperf CPU "
        "| mcprobe / iperf CPU | mcprobe / floor CPU | rounds |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|---:|")
    for rate, v in sorted(summ.items()):
        out.append(f"| {rate} | " + " | ".join(f(med([x[i] for x in v]), 2) for i in range(5)) + f" | {len(v)} |")
    return out


def pace(argv):
    """`pace CSV` -> markdown on stdout: lean (mcprobe, the default) and precise pacing against
    cyclictest and iperf 2, round by round, per-thread CPU where measured (THREADS=1), and the
    one-way and round-trip ceilings against the loss-free steps."""
    rows = list(csv.DictReader(open(argv[0])))
    runs = {}
    for r in rows:
        runs.setdefault((r["test"], r["tool"], int(r["round"]), int(r["rate_pps"])), {})[r["metric"]] = r["value"]

    def g(test, tool, rd, rate, k):
        return num(runs.get((test, tool, rd, rate), {}).get(k))

    f = fmt

    def cpu(tool, rd, rate):
        if tool.startswith("mcprobe") or tool == "blaster-paced":
            a, b, n = (g("bars", tool, rd, rate, k) for k in ("prober_cpu_s", "responder_cpu_s", "sent"))
        else:
            a, b, n = (g("bars", tool, rd, rate, k) for k in ("client_cpu_s", "server_cpu_s", "received"))
        return None if None in (a, b, n) or not n else (a + b) / n * 1e6

    bars = [k for k in runs if k[0] == "bars"]
    rounds = sorted({k[2] for k in bars})
    rates = sorted({k[3] for k in bars})
    out = []
    env = {r["metric"]: r["value"] for r in rows if r["test"] == "env"}
    out.append(f"load average {env.get('loadavg_start', '?')} at start, {env.get('loadavg_end', '?')} at end\n")
    out.append("### Send lateness (µs) vs cyclictest, same interval and policy, same round\n")
    out.append(
        "per probe: the prober's own histogram (every probe, catch-up sends after a stall included); "
        "per wake-up: only probes the sender waited for (`limits.py wakeups`), as cyclictest counts.\n"
    )
    out.append(
        "| rate /s | round | load | cyclictest p50 / p99 / max (cycles) | lean per probe p50 / p99 | lean per wake-up p50 / p99 / max (wake-ups) "
        "| precise per probe p50 / p99 | precise per wake-up p99 | p99 ratio to cyclictest: lean wake-up / lean probe / precise wake-up / precise probe |"
    )
    out.append("|---:|---:|---:|---|---|---|---|---|---|")
    summ = {}
    for rate in rates:
        for rd in rounds:
            if ("bars", "cyclictest", rd, rate) not in runs:
                continue
            c = lambda k, rd=rd, rate=rate: g("bars", "cyclictest", rd, rate, k)  # noqa: E731
            lm = lambda k, rd=rd, rate=rate: g("bars", "mcprobe", rd, rate, k)  # noqa: E731
            pm = lambda k, rd=rd, rate=rate: g("bars", "mcprobe-precise", rd, rate, k)  # noqa: E731
            rs = [
                ratio(lm("wake_lateness_p99_us"), c("p99_us")),
                ratio(lm("send_lateness_p99_us"), c("p99_us")),
                ratio(pm("wake_lateness_p99_us"), c("p99_us")),
                ratio(pm("send_lateness_p99_us"), c("p99_us")),
            ]
            summ.setdefault(rate, []).append(rs)
            load = runs[("bars", "cyclictest", rd, rate)].get("loadavg", "?")
            out.append(
                f"| {rate} | {rd} | {load} | {f(c('p50_us'), 0)} / {f(c('p99_us'), 0)} / {f(c('max_us'), 0)} ({f(c('cycles'), 0)}) "
                f"| {f(lm('send_lateness_p50_us'), 2)} / {f(lm('send_lateness_p99_us'))} "
                f"| {f(lm('wake_lateness_p50_us'), 2)} / {f(lm('wake_lateness_p99_us'))} / {f(lm('wake_lateness_max_us'), 0)} ({f(lm('wakeups'), 0)}) "
                f"| {f(pm('send_lateness_p50_us'), 2)} / {f(pm('send_lateness_p99_us'))} | {f(pm('wake_lateness_p99_us'))} "
                f"| {' / '.join(f(x, 2) for x in rs)} |"
            )
    out.append("")
    out.append(
        "| rate /s | median p99 ratio: lean per wake-up | lean per probe | precise per wake-up | precise per probe | rounds |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|")
    for rate, v in sorted(summ.items()):
        out.append(f"| {rate} | " + " | ".join(f(med([x[i] for x in v]), 2) for i in range(4)) + f" | {len(v)} |")

    if any(k[1] == "mcprobe-rt" for k in bars):
        out.append("\n### Under SCHED_FIFO: mcprobe --realtime (lean) vs cyclictest --policy=fifo -p 50\n")
        out.append(
            "| rate /s | round | load | cyclictest-fifo p50 / p99 / max | --realtime per probe p50 / p99 | per wake-up p99 | p99 ratio wake-up / probe |"
        )
        out.append("|---:|---:|---:|---|---|---|---|")
        for rate in rates:
            for rd in rounds:
                if ("bars", "mcprobe-rt", rd, rate) not in runs:
                    continue
                c = lambda k, rd=rd, rate=rate: g("bars", "cyclictest-fifo", rd, rate, k)  # noqa: E731
                m = lambda k, rd=rd, rate=rate: g("bars", "mcprobe-rt", rd, rate, k)  # noqa: E731
                out.append(
                    f"| {rate} | {rd} | {runs[('bars', 'mcprobe-rt', rd, rate)].get('loadavg', '?')} | {f(c('p50_us'), 0)} / {f(c('p99_us'), 0)} / {f(c('max_us'), 0)} "
                    f"| {f(m('send_lateness_p50_us'), 2)} / {f(m('send_lateness_p99_us'))} | {f(m('wake_lateness_p99_us'))} "
                    f"| {f(ratio(m('wake_lateness_p99_us'), c('p99_us')), 2)} / {f(ratio(m('send_lateness_p99_us'), c('p99_us')), 2)} |"
                )

    out.append("\n### CPU per probe (prober + responder, µs) vs iperf 2's per datagram (client + server), same round\n")
    out.append("| rate /s | round | load (lean) | lean | precise | iperf | lean / iperf | precise / iperf |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    cs = {}
    for rate in rates:
        for rd in rounds:
            lc, pc, ic = cpu("mcprobe", rd, rate), cpu("mcprobe-precise", rd, rate), cpu("iperf", rd, rate)
            if lc is None and pc is None:
                continue
            cs.setdefault(rate, []).append((ratio(lc, ic), ratio(pc, ic), lc, pc, ic))
            out.append(
                f"| {rate} | {rd} | {runs.get(('bars', 'mcprobe', rd, rate), {}).get('loadavg', '?')} | {f(lc)} | {f(pc)} | {f(ic)} "
                f"| {f(ratio(lc, ic), 2)} | {f(ratio(pc, ic), 2)} |"
            )
    out.append("")
    out.append(
        "| rate /s | median lean µs | median precise µs | median iperf µs | median lean / iperf | median precise / iperf |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|")
    for rate, v in sorted(cs.items()):
        out.append(
            f"| {rate} | {f(med([x[2] for x in v]))} | {f(med([x[3] for x in v]))} | {f(med([x[4] for x in v]))} "
            f"| {f(med([x[0] for x in v]), 2)} | {f(med([x[1] for x in v]), 2)} |"
        )

    if any(k[1] == "blaster-paced" for k in bars):
        out.extend(floor(runs, rounds, rates, g, cpu))

    thr = sorted({m for k, v in runs.items() if k[0] == "bars" for m in v if "_thr_" in m})
    if thr:
        out.append("\n### Where mcprobe's CPU goes (µs per probe, per thread; median of the rounds)\n")
        names = [t for t in thr if not t.endswith(("ctrl-c#0", "querier-watch#0"))]
        out.append("| rate /s | pacing | " + " | ".join(n.replace("_thr_", " ") for n in names) + " |")
        out.append("|---:|---|" + "---:|" * len(names))
        for rate in rates:
            for tool in ("mcprobe", "mcprobe-precise", "mcprobe-base"):
                vals = []
                for n in names:
                    per = [
                        ratio(g("bars", tool, rd, rate, n), g("bars", tool, rd, rate, "sent"))
                        for rd in rounds
                        if ("bars", tool, rd, rate) in runs
                    ]
                    m = med(per)
                    vals.append(None if m is None else m * 1e6)
                if any(x is not None for x in vals):
                    out.append(f"| {rate} | {tool} | " + " | ".join(f(x) for x in vals) + " |")

    ceil = {}
    for (test, tool, rd, _), v in runs.items():
        if test == "ceiling":
            if tool == "blaster" and num(v.get("received")) and num(v.get("seconds")):
                ceil.setdefault(tool, []).append((rd, v.get("loadavg"), num(v["received"]) / num(v["seconds"])))
            if tool == "blaster-echo" and num(v.get("echoed")) and num(v.get("seconds")):
                ceil.setdefault(tool, []).append((rd, v.get("loadavg"), num(v["echoed"]) / num(v["seconds"])))
    if ceil:
        out.append("\n### Ceilings and loss-free rates\n")
        for tool, v in sorted(ceil.items()):
            for rd, load, rate in sorted(v):
                out.append(f"- {tool} round {rd} (load {load}): {rate:.0f}/s")
        steps = {}
        for (test, tool, _, rate), v in runs.items():
            if test == "step":
                steps.setdefault(tool, []).append((rate, v))
        out.append("\n| tool | asked /s | load | achieved /s | sent | received | lost | pass |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---|")
        best = {}
        for tool, v in sorted(steps.items()):
            ok = True
            for rate, m in sorted(v, key=lambda x: x[0]):
                ps = m.get("pass") == "1"
                if ps and ok:
                    best[tool] = (rate, num(m.get("achieved_pps")))
                ok = ok and ps
                out.append(
                    f"| {tool} | {rate} | {m.get('loadavg', '?')} | {m.get('achieved_pps', '')} | {m.get('sent', '')} "
                    f"| {m.get('received', '')} | {m.get('lost', '')} | {'yes' if ps else 'no'} |"
                )
        one = med([x[2] for x in ceil.get("blaster", [])])
        rt = med([x[2] for x in ceil.get("blaster-echo", [])])
        out.append("\n| figure | value |")
        out.append("|---|---:|")
        out.append(f"| one-way ceiling (blaster send/recv, datagrams/s, median) | {f(one, 0)} |")
        out.append(f"| round-trip ceiling (blaster ping/echo, round trips/s, median) | {f(rt, 0)} |")
        for tool, (rate, _ach) in sorted(best.items()):
            out.append(f"| {tool} highest loss-free step (/s) | {rate} |")
            out.append(f"| {tool} / round-trip ceiling | {f(ratio(rate, rt), 2)} |")
            out.append(f"| {tool} / one-way ceiling | {f(ratio(rate, one), 2)} |")
        if "iperf" in best:
            for tool in best:
                if tool != "iperf":
                    out.append(f"| {tool} / iperf 2 | {f(ratio(best[tool][0], best['iperf'][0]), 2)} |")
    print("\n".join(out))


if __name__ == "__main__":
    {"cyclictest": cyclictest, "report": report, "wakeups": wakeups, "pace": pace}[sys.argv[1]](sys.argv[2:])
