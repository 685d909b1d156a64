#!/usr/bin/env python3
"""mesh_bench.py - what `serve --mesh` costs one host as the mesh grows.

N `mcprobe serve --mesh` processes on loopback (group 239.77.9.1 joined on 127.0.0.1, TTL 1),
each a host of an N-host mesh at the default schedule (1 probe/s, 10 s windows), for WARM + SECS
seconds. Over the last SECS seconds, per process: CPU (utime + stime from /proc), peak RSS
(VmHWM), probes sent and acks received (from its /metrics), and acks it sent (the other hosts'
acks from it). Every process is stopped by its own timeout as well as at the end.

    scripts/mesh_bench.py [N ...]        # default: 8 32 128; WARM [15], SECS [60]; MCPROBE
    LAB=mbx scripts/mesh_bench.py 8 32   # in a namespace lab instead (root; scripts/lab.sh)

On loopback every host answers from 127.0.0.1, this machine's own address, so no host probes
another by unicast there: loopback rows are the multicast part alone. With LAB=PREFIX (3
letters, a lab of that prefix is brought up for each N and removed after), each process runs in
its own lab host (10.77.0.I on veth0, one bridge) and probes its peers by unicast too, as on a
real LAN; its /metrics is read with curl inside its namespace.

Prints one Markdown table row per N (mean over the N processes, and the worst one).
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MCPROBE = os.environ.get("MCPROBE", os.path.join(ROOT, "target/release/mcprobe"))
WARM = int(os.environ.get("WARM", "15"))
SECS = int(os.environ.get("SECS", "60"))
TICK = os.sysconf("SC_CLK_TCK")
LOGS = os.environ.get("LOGS", "/tmp/mesh-bench-logs")
LAB = os.environ.get("LAB")
LAB_SH = os.path.join(ROOT, "scripts/lab.sh")
LAB_HTTP = 9464
os.makedirs(LOGS, exist_ok=True)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def lab(*args):
    env = dict(os.environ, LAB_PREFIX=LAB)
    return subprocess.run([LAB_SH, *args], env=env, check=True, capture_output=True, text=True).stdout


def metrics(http):
    if LAB:
        i = http  # in the lab, host i+1 at 10.77.0.(i+1)
        out = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                f"{LAB}-h{i + 1}",
                "curl",
                "-s",
                "-m",
                "10",
                f"http://10.77.0.{i + 1}:{LAB_HTTP}/metrics",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10) as r:
        return r.read().decode()


def total(text, name, want=lambda labels: True):
    s = 0.0
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        if want(m.group(1)):
            s += float(m.group(2))
    return s


def answered_by_peer(text):
    """Acks each peer sent this host: probes charged minus lost, per peer, in one pass."""
    out = {}
    for m in re.finditer(r'^mcprobe_mesh_(probes|lost)_total\{[^}]*peer="([^"]*)"[^}]*\} (\S+)$', text, re.M):
        sign = 1.0 if m.group(1) == "probes" else -1.0
        out[m.group(2)] = out.get(m.group(2), 0.0) + sign * float(m.group(3))
    return out


def figures(texts):
    """Per host: probes sent, acks received and acks sent, from every host's metrics."""
    by_peer = [answered_by_peer(t) for t in texts]
    out = []
    for i, t in enumerate(texts):
        sent = total(t, "mcprobe_probes_sent_total")
        received = total(t, "mcprobe_acks_total")
        answered = sum(b.get(f"m{i}", 0.0) for j, b in enumerate(by_peer) if j != i)
        unicast = total(t, "mcprobe_probes_sent_total", lambda lab: 'path="unicast"' in lab)
        out.append((sent, received, answered, unicast))
    return out


def run(n):
    port = free_port(socket.SOCK_DGRAM)
    procs, https = [], []
    if LAB:
        subprocess.run([LAB_SH, "down"], env=dict(os.environ, LAB_PREFIX=LAB), capture_output=True)
        lab("up", str(n))
    try:
        for i in range(n):
            cmd = ["timeout", "-s", "INT", str(WARM + SECS + 300)]
            if LAB:
                http = i
                cmd += ["ip", "netns", "exec", f"{LAB}-h{i + 1}", MCPROBE, "serve", "--mesh", "--iface", "veth0"]
                cmd += ["--group", "239.77.9.1", "--port", str(port), "--listen", f"10.77.0.{i + 1}:{LAB_HTTP}"]
            else:
                http = free_port()
                cmd += [MCPROBE, "serve", "--mesh", "--iface", "127.0.0.1", "--group", "239.77.9.1"]
                cmd += ["--port", str(port), "--listen", f"127.0.0.1:{http}"]
            cmd += ["--name", f"m{i}", "--forget", "1m"]
            log = open(os.path.join(LOGS, f"m{i}.log"), "w")  # noqa: SIM115 (closed with the run)
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log))
            https.append(http)
        time.sleep(1)
        pids = [int(subprocess.check_output(["pgrep", "-P", str(p.pid)]).split()[0]) for p in procs]
        time.sleep(WARM)
        t0 = time.monotonic()
        c0 = [cpu_s(p) for p in pids]
        m0 = [metrics(h) for h in https]
        time.sleep(SECS)
        dt = time.monotonic() - t0
        c1 = [cpu_s(p) for p in pids]
        m1 = [metrics(h) for h in https]
        hwm = [hwm_kib(p) for p in pids]
        peers = [total(t, "mcprobe_mesh_peer_up", lambda lab: True) for t in m1]  # answering peers, summed
        f0, f1 = figures(m0), figures(m1)
        rows = []
        for i in range(n):
            a, b = f0[i], f1[i]
            rows.append(
                {
                    "cpu_pct": 100 * (c1[i] - c0[i]) / dt,
                    "rss_mib": hwm[i] / 1024,
                    "sent": (b[0] - a[0]) / dt,
                    "acks_in": (b[1] - a[1]) / dt,
                    "acks_out": (b[2] - a[2]) / dt,
                    "unicast": (b[3] - a[3]) / dt,
                    "peers": peers[i],
                }
            )
        return rows
    finally:
        for p in procs:
            try:
                p.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if LAB:
            lab("down")


def main():
    ns = [int(a) for a in sys.argv[1:]] or [8, 32, 128]
    where = f"lab {LAB} (10.77.0.0/24, veth0)" if LAB else "loopback (127.0.0.1)"
    print(f"WARM={WARM} SECS={SECS} {MCPROBE} on {where}")
    print(
        "| N | CPU % of a core, mean (max) | peak RSS MiB, mean (max) | probes sent/s (unicast) | acks received/s "
        "| acks sent/s | packets/s (probes in = acks out) | peers seen, min |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in ns:
        rows = run(n)

        def mean(k, rows=rows):
            return sum(r[k] for r in rows) / len(rows)

        def top(k, rows=rows):
            return max(r[k] for r in rows)

        pps = mean("sent") + mean("acks_in") + 2 * mean("acks_out")
        print(
            f"| {n} | {mean('cpu_pct'):.2f} ({top('cpu_pct'):.2f}) | {mean('rss_mib'):.1f} ({top('rss_mib'):.1f}) "
            f"| {mean('sent'):.2f} ({mean('unicast'):.2f}) | {mean('acks_in'):.1f} | {mean('acks_out'):.1f} | {pps:.0f} "
            f"| {min(r['peers'] for r in rows):.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
