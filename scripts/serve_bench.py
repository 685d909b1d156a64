"""Helpers of scripts/serve-bench.sh: scrape at a fixed rate, read serve's metrics, write reports.

Usage:
  serve_bench.py scrape PORT RATE SECS            scrape /metrics RATE times a second for SECS
  serve_bench.py metrics PORT                     key=value figures from one scrape
  serve_bench.py report MODE DIR COMMAND          DIR/README.md from DIR's CSVs
"""

import csv
import http.client
import statistics
import sys
import time


def fetch(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    return body


def scrape(port, rate, secs):
    port, rate, secs = int(port), float(rate), float(secs)
    start = time.monotonic()
    n, errors, took = 0, 0, []
    while time.monotonic() - start < secs:
        due = start + n / rate
        time.sleep(max(0.0, due - time.monotonic()))
        t = time.monotonic()
        try:
            fetch(port)
        except OSError:
            errors += 1
        took.append(time.monotonic() - t)
        n += 1
    took.sort()
    p99 = took[min(len(took) - 1, int(0.99 * len(took)))] * 1e3 if took else 0
    print(f"scrapes={n} errors={errors} scrape_p50_ms={statistics.median(took) * 1e3:.2f} scrape_p99_ms={p99:.2f}")


def parse(text):
    """(name, labels, value) per sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        out.append((name, labels.rstrip("}"), float(value)))
    return out


def lateness_quantile(samples, q):
    """Upper bound of the bucket holding quantile q of mcprobe_send_lateness_seconds."""
    buckets = []
    for name, labels, v in samples:
        if name == "mcprobe_send_lateness_seconds_bucket":
            le = labels.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), v))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= q * total:
            return le, total
    return None, total


def metrics(port):
    s = parse(fetch(int(port)))

    def total(name):
        return sum(v for n, _, v in s if n == name)

    p99, probes = lateness_quantile(s, 0.99)
    le20 = 0
    for name, labels, v in s:
        if name == "mcprobe_send_lateness_seconds_bucket" and 'le="+Inf"' not in labels:
            le = float(labels.split('le="')[1].split('"')[0])
            if abs(le - 2e-5) < 1e-9:
                le20 += v
    kv = {
        "series": sum(1 for n, _, _ in s if n == "mcprobe_acks_total"),
        "probes": int(total("mcprobe_probes_sent_total")),
        "acks": int(total("mcprobe_acks_total")),
        "lost": int(total("mcprobe_lost_total")),
        "local_drops": int(total("mcprobe_local_drops_total")),
        "restarts": int(total("mcprobe_responder_restarts_total")),
        "lateness_p99_bucket_s": p99,
        "lateness_probes": int(probes),
        "lateness_le_20us": int(le20),
    }
    print(" ".join(f"{k}={v}" for k, v in kv.items()))


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def report(mode, out, command):
    lines = [f"# serve benchmark: {mode}", "", f"Command: `{command}`", ""]
    if mode in ("cost", "restarts"):
        r = rows(f"{out}/samples.csv")
        t = [float(x["elapsed_s"]) for x in r]
        rss = [int(x["rss_kib"]) for x in r]
        ticks = [int(x["cpu_ticks"]) for x in r]
        warm = next((i for i, x in enumerate(t) if x >= 60), 0)
        cpu = (ticks[-1] - ticks[warm]) / 100 / (t[-1] - t[warm]) * 100 if t[-1] > t[warm] else float("nan")
        # RSS moves by a few MiB from one window to the next (allocator arenas): compare the median
        # of the first and the last third after warm-up rather than two single samples.
        after = rss[warm:]
        third = max(1, len(after) // 3)
        early, late = statistics.median(after[:third]), statistics.median(after[-third:])
        growth = (late - early) / early * 100
        series = [int(x["series"]) for x in r[warm:]]
        lines += [
            f"{len(r)} samples over {t[-1]:.0f} s. From the first sample after 60 s (warm-up) to the last:",
            "",
            "| figure | value |",
            "|---|---|",
            f"| CPU of serve, % of one core (utime+stime) | {cpu:.2f} |",
            f"| RSS at warm-up / last / max, KiB | {rss[warm]} / {rss[-1]} / {max(rss)} |",
            f"| RSS median, first / last third after warm-up, KiB | {early:.0f} / {late:.0f} |",
            f"| RSS growth (those medians) | {growth:+.2f} % |",
            f"| series (mcprobe_acks_total lines) min / max | {min(series)} / {max(series)} |",
            f"| last scrape | {r[-1]['figures']} |",
            "",
            "Samples: samples.csv (elapsed_s, cpu_ticks at 100 Hz, rss_kib, series, figures).",
        ]
    else:
        r = rows(f"{out}/rounds.csv")
        lines += [
            "| round | scrapes/s | lateness p99 (bucket upper bound, s) | probes | share ≤ 20 µs | local drops | lost "
            "| load avg 1 min | scraper |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for x in r:
            share = int(x["lateness_le_20us"]) / max(1, int(x["lateness_probes"]))
            lines.append(
                f"| {x['round']} | {x['scrapes_per_s']} | {x['lateness_p99_bucket_s']} | {x['lateness_probes']} | "
                f"{share:.4f} | {x['local_drops']} | {x['lost']} | {x['loadavg_1m']} | {x['scraper']} |"
            )
        lines += [
            "",
            "Rounds alternate without and with scrapes, each a fresh serve process. The lateness p99 is the upper",
            "bound of the exported histogram bucket that holds it (buckets 1-2-5 µs steps).",
        ]
    with open(f"{out}/README.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"scrape": scrape, "metrics": metrics, "report": report}[cmd](*args)
