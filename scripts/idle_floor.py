#!/usr/bin/env python3
"""idle_floor.py - what an idle mcprobe process costs, and how long Ctrl-C takes to end it,
for two builds side by side (issues 25 and 26).

Modes, each on loopback only (--iface 127.0.0.1, group 239.77.8.x, TTL 1, nothing probing it
from outside):
  respond   `mcprobe respond`: no probes at all, its whole cost is its wake-ups;
  mesh1     `mcprobe serve --mesh`, a one-host mesh: it probes the group at the default schedule
            (1 probe/s, 10 s windows) and its own responder answers.
For every round, mode and build (order alternating by round): start, WARM s, then over SECS s
the CPU (utime + stime from /proc/PID/stat, exited threads included, clock-tick resolution; and
the ns run time of the live threads from /proc/PID/task/*/schedstat) and the context switches of
the live threads (voluntary ones are wake-ups); then SIGINT and the time until the process has
exited. Each process is also bounded by `timeout`.

    scripts/idle_floor.py BEFORE AFTER     # env: ROUNDS [3] WARM [3] SECS [30] MODES ["respond mesh1"]

Prints CSV rows (tag,mode,build,round,metric,value) to stdout and a summary to stderr.
"""

import os
import signal
import socket
import subprocess
import sys
import time

ROUNDS = int(os.environ.get("ROUNDS", "3"))
WARM = float(os.environ.get("WARM", "3"))
SECS = float(os.environ.get("SECS", "30"))
MODES = os.environ.get("MODES", "respond mesh1").split()
TICK = os.sysconf("SC_CLK_TCK")


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stat_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tasks(pid):
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []


def sched_ns(pid):
    total = 0
    for t in tasks(pid):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def switches(pid):
    vol = invol = 0
    for t in tasks(pid):
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return vol, invol


def command(binary, mode, i):
    bound = str(int(WARM + SECS + 60))
    if mode == "respond":
        port = free_port(socket.SOCK_DGRAM)
        return [
            "timeout",
            "-s",
            "INT",
            bound,
            binary,
            "respond",
            "--iface",
            "127.0.0.1",
            "--group",
            f"239.77.8.{1 + i % 200}",
            "--port",
            str(port),
        ]
    if mode == "mesh1":
        port, http = free_port(socket.SOCK_DGRAM), free_port()
        return [
            "timeout",
            "-s",
            "INT",
            bound,
            binary,
            "serve",
            "--mesh",
            "--iface",
            "127.0.0.1",
            "--group",
            f"239.77.8.{1 + i % 200}",
            "--port",
            str(port),
            "--name",
            "idle",
            "--listen",
            f"127.0.0.1:{http}",
            "--forget",
            "1m",
        ]
    raise SystemExit(f"unknown mode {mode}")


def child_of(timeout_pid):
    """The mcprobe process under `timeout`."""
    for _ in range(100):
        try:
            out = subprocess.run(["pgrep", "-P", str(timeout_pid)], capture_output=True, text=True).stdout.split()
        except FileNotFoundError:
            out = []
        if out:
            return int(out[0])
        time.sleep(0.05)
    raise SystemExit("mcprobe did not start")


def one(binary, mode, i):
    p = subprocess.Popen(command(binary, mode, i), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pid = child_of(p.pid)
    time.sleep(WARM)
    c0, s0, (v0, n0), t0 = stat_cpu_s(pid), sched_ns(pid), switches(pid), time.monotonic()
    time.sleep(SECS)
    c1, s1, (v1, n1), t1 = stat_cpu_s(pid), sched_ns(pid), switches(pid), time.monotonic()
    load = open("/proc/loadavg").read().split()[0]
    span = t1 - t0
    # Ctrl-C: SIGINT to mcprobe itself, then the time until it is gone (it is timeout's child:
    # reaped by timeout, which then exits).
    k = time.monotonic()
    os.kill(pid, signal.SIGINT)
    p.wait(timeout=30)
    stop_ms = (time.monotonic() - k) * 1000
    err = p.stderr.read().decode(errors="replace")
    return {
        "cpu_pct": 100 * (c1 - c0) / span,
        "sched_pct": 100 * (s1 - s0) / 1e9 / span,
        "wakeups_per_s": (v1 - v0) / span,
        "invol_per_s": (n1 - n0) / span,
        "stop_ms": stop_ms,
        "load1": float(load),
        "exit": p.returncode,
    }, err


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    builds = {"before": os.path.abspath(sys.argv[1]), "after": os.path.abspath(sys.argv[2])}
    tag = os.environ.get("TAG", time.strftime("%Y-%m-%d", time.gmtime()))
    print("tag,mode,build,round,metric,value")
    rows = {}
    i = 0
    for r in range(1, ROUNDS + 1):
        order = ["before", "after"] if r % 2 else ["after", "before"]
        for mode in MODES:
            for b in order:
                i += 1
                fig, err = one(builds[b], mode, i)
                for k, v in fig.items():
                    print(
                        f"{tag},{mode},{b},{r},{k},{v:.4f}" if isinstance(v, float) else f"{tag},{mode},{b},{r},{k},{v}"
                    )
                sys.stdout.flush()
                rows.setdefault((mode, b), []).append(fig)
                print(
                    f"[idle] round {r} {mode} {b}: "
                    + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in fig.items()),
                    file=sys.stderr,
                )
                if fig["exit"] not in (0, 130):
                    print(f"[idle] {mode} {b} exited {fig['exit']}: {err[-500:]}", file=sys.stderr)


if __name__ == "__main__":
    main()
