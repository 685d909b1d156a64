"""Helpers of scripts/bench_report.sh: make copies of a report folder look like other probers,
and time HdrHistogram's Python implementation reading the same rtt.hlog."""

import csv
import json
import sys

from hdrh.histogram import HdrHistogram


def as_prober(meta_path: str, i: int) -> None:
    """Rewrites a copied folder's meta.json as if prober number `i` had written it."""
    with open(meta_path) as f:
        m = json.load(f)
    m["prober_host"] = f"prober-{i}"
    m["run_id"] = m["run_id"][:-1] + "0123456789abcdef"[i]
    with open(meta_path, "w") as f:
        json.dump(m, f, indent=2)


def multicast_rows(summary_path: str) -> None:
    """Prints how many multicast rows summary.csv has."""
    with open(summary_path) as f:
        print(sum(1 for r in csv.DictReader(f) if r["path"] == "multicast"))


def read_hlog(hlog_path: str) -> None:
    """Decodes every tagged line of rtt.hlog (its log reader does not take Tag= prefixes)."""
    sums: dict[str, HdrHistogram] = {}
    with open(hlog_path) as f:
        for line in f:
            if line.startswith("Tag="):
                tag = line[4 : line.index(",")]
                h = sums.setdefault(tag, HdrHistogram(1, 60 * 10**9, 3))
                h.add(HdrHistogram.decode(line.rsplit(",", 1)[1]))
    print(len(sums), sum(h.get_total_count() for h in sums.values()))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "as-prober":
        as_prober(args[0], int(args[1]))
    elif cmd == "multicast-rows":
        multicast_rows(args[0])
    elif cmd == "read-hlog":
        read_hlog(args[0])
    else:
        sys.exit(f"bench_report.py: unknown command {cmd}")
