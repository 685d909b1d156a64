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


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


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
        return "n/a" if x is None else f"{x:.{d}f}"

    def med(v):
        v = [x for x in v if x is not None]
        return statistics.median(v) if v else None

    def ratio(a, b):
        return None if a is None or b in (None, 0) else a / b

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
        plot(pts, png)

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


def plot(pts, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for tool, style, label in (
        ("mcprobe-base", "o--", "before (fixed 80 µs margin)"),
        ("mcprobe", "s-", "after (adaptive margin)"),
    ):
        g = pts.get(tool, {})
        rs = sorted(r for r in g if cpu_and_late(g[r]))
        if not rs:
            continue
        cpu = [num(g[r]["prober_cpu_s"]) / num(g[r]["sent"]) * 1e6 * r / 1e4 for r in rs]
        p99 = [max(num(g[r]["send_lateness_p99_us"]), 0.01) for r in rs]
        ax1.plot(rs, cpu, style, label=label)
        ax2.plot(rs, p99, style, label=label)
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


if __name__ == "__main__":
    {"cyclictest": cyclictest, "report": report}[sys.argv[1]](sys.argv[2:])
