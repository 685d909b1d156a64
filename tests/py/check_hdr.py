"""Checks a report folder's HdrHistogram files against summary.csv and intervals.csv with an
independent implementation: HdrHistogram's Python package (`hdrh`, PyPI `hdrhistogram`).

usage: check_hdr.py DIR     exit 0 when every check holds; prints what it checked.
"""

import csv
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

from hdrh.histogram import HdrHistogram

HEADER = "       Value     Percentile TotalCount 1/(1-Percentile)"
ROW = re.compile(r"^ *(\d+\.\d{3}) (\d\.\d{12}) +(\d+) +(\d+\.\d{2}|Infinity)$")
LAST = re.compile(r"^ *(\d+\.\d{3}) (1\.000000000000) +(\d+)$")
MEAN = re.compile(r"^#\[Mean    = +(\d+\.\d{3}), StdDeviation   = +(\d+\.\d{3})\]$")
MAX = re.compile(r"^#\[Max     = +(\d+\.\d{3}), Total count    = +(\d+)\]$")
BUCKETS = re.compile(r"^#\[Buckets = +(\d+), SubBuckets     = +(\d+)\]$")


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def tag_of(row):
    name = re.sub(r"[^A-Za-z0-9_-]", "_", row["responder"]) or "unnamed"
    return f"{name}.{row['responder_id'][:8]}.{row['path']}"


def nearest_rank(hist, q):
    """The value at quantile q by nearest rank (ceil(q*N), at least 1), as mcprobe defines it."""
    target = max(1, math.ceil(q * hist.get_total_count()))
    seen = 0
    for item in hist.get_recorded_iterator():
        seen += item.count_at_value_iterated_to
        if seen >= target:
            return hist.get_highest_equivalent_value(item.value_iterated_to)
    fail("rank beyond the histogram")


def inside(v, row):
    """A histogram value (µs) as summary.csv gives it: kept between the exact MIN and MAX, which
    mcprobe measures beside the 2-digit histogram (so no p99 reads above the max)."""
    return min(max(v, float(row["rtt_min_us"])), float(row["rtt_max_us"]))


def in_bucket(h, value_ns, exact_us, what):
    """The exact value lies in the histogram bucket of value_ns."""
    lo, hi = h.get_lowest_equivalent_value(value_ns) / 1000, h.get_highest_equivalent_value(value_ns) / 1000
    if not (lo - 0.0051 <= exact_us <= hi + 0.0051):
        fail(f"{what}: exact {exact_us} µs outside its histogram bucket {lo}..{hi} µs")


def close(a, b, tol, what):
    if abs(a - b) > tol:
        fail(f"{what}: {a} != {b} (tolerance {tol})")


def main(folder):
    d = Path(folder)
    summary = [r for r in csv.DictReader(open(d / "summary.csv")) if int(r["received"]) > 0]
    intervals = defaultdict(dict)
    for r in csv.DictReader(open(d / "intervals.csv")):
        intervals[r["responder_id"]][float(r["interval_start_s"])] = int(r["sent"]) - int(r["lost"])

    # rtt.hlog: tagged lines, read by hand (hdrh's log reader does not take Tag=), decoded by hdrh.
    lines = (d / "rtt.hlog").read_text().splitlines()
    if not lines[0].startswith("#[Histogram log format version"):
        fail("rtt.hlog: no format line")
    run_id = re.search(r"mcprobe run ([0-9a-f]{16})", (d / "rtt.hlog").read_text())
    meta_id = re.search(r'"run_id": "([0-9a-f]{16})"', (d / "meta.json").read_text())
    if not run_id or not meta_id or run_id.group(1) != meta_id.group(1):
        fail("rtt.hlog and meta.json do not carry the same run id")
    global RUN_ID
    RUN_ID = meta_id.group(1)
    merged, per_interval = {}, defaultdict(dict)
    for line in lines:
        if line.startswith("#") or line.startswith('"StartTimestamp"'):
            continue
        m = re.match(r"^Tag=([^, ]+),([\d.]+),([\d.]+),([\d.]+),(\S+)$", line)
        if not m:
            fail(f"rtt.hlog: malformed line {line[:60]!r}")
        tag, start, h = m.group(1), float(m.group(2)), HdrHistogram.decode(m.group(5))
        if h.get_total_count() and abs(h.get_max_value() / 1e6 - float(m.group(4))) > 0.0011:
            fail(f"rtt.hlog {tag} at {start}: max column {m.group(4)} ms, histogram {h.get_max_value()} ns")
        per_interval[tag][start] = h.get_total_count()
        # Intervals differ in range (mcprobe's histograms grow); hdrh's do not: add them up in
        # one wide enough for any RTT (to 60 s), with their lowest value and precision (hdrh adds
        # a histogram of another shape value by value, each at its bucket's low end).
        merged.setdefault(tag, HdrHistogram(h.lowest_trackable_value, 60 * 10**9, h.significant_figures)).add(h)
    checked = 0
    for row in summary:
        tag = tag_of(row)
        if tag not in merged:
            fail(f"rtt.hlog has no tag {tag}")
        h = merged[tag]
        if h.get_total_count() != int(row["received"]):
            fail(f"{tag}: {h.get_total_count()} RTTs in rtt.hlog, {row['received']} received in summary.csv")
        if row["path"] == "multicast":
            want = intervals[row["responder_id"]]
            got = per_interval[tag]
            for start, n in got.items():
                if want.get(start, 0) != n:
                    fail(f"{tag} interval {start}: {n} in rtt.hlog, {want.get(start)} in intervals.csv")
        for col, q in [("rtt_p50_us", 0.5), ("rtt_p90_us", 0.9), ("rtt_p99_us", 0.99), ("rtt_p999_us", 0.999)]:
            close(inside(nearest_rank(h, q) / 1000, row), float(row[col]), 0.0051, f"{tag} {col}")
            # hdrh's own percentile rounds the rank (int(x + 0.5)); where that agrees with
            # the nearest rank it must give the same value.
            n = h.get_total_count()
            if int(q * n + 0.5) == max(1, math.ceil(q * n)):
                close(
                    inside(h.get_value_at_percentile(q * 100) / 1000, row), float(row[col]), 0.0051, f"{tag} hdrh {col}"
                )
        in_bucket(h, h.get_max_value(), float(row["rtt_max_us"]), f"{tag} max")
        in_bucket(h, h.get_min_value(), float(row["rtt_min_us"]), f"{tag} min")
        close(h.get_mean_value() / 1000, float(row["rtt_mean_us"]), 0.002 * float(row["rtt_mean_us"]), f"{tag} mean")
        check_hgrm(d / f"rtt.{tag}.hgrm", row, h)
        checked += 1
    if checked == 0:
        fail("no responder to check")
    print(f"ok: {checked} responders, {sum(len(v) for v in per_interval.values())} interval histograms")


def check_hgrm(path, row, h):
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[0] != HEADER or lines[1] != "":
        fail(f"{path.name}: header {lines[0]!r}")
    if lines[-1] != "":
        fail(f"{path.name}: no final newline")
    # The last line ties the file to its run: mcprobe's own comment after HdrHistogram's footer.
    own = re.match(
        r"^#\[mcprobe run ([0-9a-f]{16}), responder .* \(([0-9a-f]{16})\), path (\w+), RTT in µs\]$", lines[-2]
    )
    if not own or own.group(1) != RUN_ID or own.group(2) != row["responder_id"] or own.group(3) != row["path"]:
        fail(f"{path.name}: last line {lines[-2]!r} does not name run {RUN_ID}")
    body, foot = lines[2:-5], lines[-5:-2]
    rows = []
    for line in body[:-1]:
        m = ROW.match(line)
        if not m:
            fail(f"{path.name}: row {line!r}")
        v, p, n = float(m.group(1)), float(m.group(2)), int(m.group(3))
        close(float(m.group(4)), 1 / (1 - p), 0.006, f"{path.name} 1/(1-p) of {line!r}")
        rows.append((v, p, n))
    m = LAST.match(body[-1])
    if not m:
        fail(f"{path.name}: last row {body[-1]!r}")
    rows.append((float(m.group(1)), 1.0, int(m.group(3))))
    for a, b in zip(rows, rows[1:]):
        if not (a[0] <= b[0] and a[1] < b[1] and a[2] <= b[2]):
            fail(f"{path.name}: rows not increasing at {a} {b}")
    mean, maxl, buckets = (MEAN.match(foot[0]), MAX.match(foot[1]), BUCKETS.match(foot[2]))
    if not (mean and maxl and buckets):
        fail(f"{path.name}: footer {foot}")
    total = int(row["received"])
    if int(maxl.group(2)) != total or rows[-1][2] != total:
        fail(f"{path.name}: total count {maxl.group(2)}, summary.csv received {total}")
    in_bucket(h, round(float(maxl.group(1)) * 1000), float(row["rtt_max_us"]), f"{path.name} max")
    close(float(mean.group(1)), float(row["rtt_mean_us"]), 0.0011, f"{path.name} mean")
    close(float(mean.group(2)), float(row["rtt_stddev_us"]), 0.0011, f"{path.name} stddev")
    # Every row's count is the number of RTTs at or below its value, per the decoded log.
    counts = {}
    seen = 0
    for item in h.get_recorded_iterator():
        seen += item.count_at_value_iterated_to
        counts[h.get_highest_equivalent_value(item.value_iterated_to)] = seen
    for v, _p, n in rows:
        if counts.get(round(v * 1000)) != n:
            fail(f"{path.name}: {n} RTTs up to {v} µs, the log says {counts.get(round(v * 1000))}")
    # Percentile rows against summary.csv: exact at the levels the rows hit, bracketing otherwise.
    for col, q in [("rtt_p50_us", 0.5), ("rtt_p90_us", 0.9), ("rtt_p99_us", 0.99), ("rtt_p999_us", 0.999)]:
        want = float(row[col])
        at = [inside(v, row) for v, p, n in rows if abs(p - q) < 1e-12]
        if at:
            close(at[0], want, 0.0051, f"{path.name} row {q}")
        below = [inside(v, row) for v, p, n in rows if p < q]
        above = [inside(v, row) for v, p, n in rows if p >= q]
        if below[-1] > want + 0.0051 or above[0] < want - 0.0051:
            fail(f"{path.name}: {col} {want} outside rows {below[-1]}..{above[0]}")


if __name__ == "__main__":
    main(sys.argv[1])
