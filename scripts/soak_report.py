"""The report of scripts/soak.sh: RSS over time per process, and the prober's summary.

Usage: soak_report.py OUT SECS RATE RESPONDERS EXIT_CODE COMMIT
"""

import collections
import csv
import json
import sys


def main(argv):
    out, secs, rate, n, code, commit = argv
    rows = [r for r in csv.DictReader(open(f"{out}/rss.csv")) if r["rss_kib"]]
    by = collections.defaultdict(list)
    for r in rows:
        by[r["name"]].append((int(r["elapsed_s"]), int(r["rss_kib"])))
    summary = json.load(open(f"{out}/summary.json"))
    lines = [
        f"# Soak: {secs} s at {rate} probes/s to {n} loopback responders",
        "",
        f"Command: `SOAK_SECS={secs} scripts/soak.sh` at commit {commit}; prober exit code {code}.",
        "",
        "| process | RSS at first sample (KiB) | after 5 min (KiB) | last (KiB) | max (KiB) | growth after 5 min (KiB) |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(by, key=lambda k: (k != "prober", len(k), k)):
        s = by[name]
        first = s[0][1]
        warm = next((v for t, v in s if t >= 300), s[-1][1])
        lines.append(f"| {name} | {first} | {warm} | {s[-1][1]} | {max(v for _, v in s)} | {s[-1][1] - warm} |")
    lines += [
        "",
        "| responder | sent | received | lost | loss % | rtt p50 µs | rtt p99 µs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["responders"]:
        lines.append(
            f"| {r['responder']} | {r['sent']} | {r['received']} | {r['lost']} | {r['loss_pct']} | {r['rtt_p50_us']} | {r['rtt_p99_us']} |"
        )
    lines += [
        "",
        f"Prober: {summary['sent']} probes, local drops {summary['local_drops']}, invalid {summary['invalid']}, "
        f"send lateness p99 {summary['send_lateness_p99_us']} µs.",
        "",
        "Responders' closing lines:",
        "",
    ]
    for i in range(1, int(n) + 1):
        last = [line for line in open(f"{out}/responder-{i}.log") if line.startswith("stopped:")]
        lines.append(f"- soak-{i}: {last[-1].strip() if last else '(no closing line)'}")
    open(f"{out}/README.md", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
