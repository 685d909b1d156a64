"""Wake-ups and CPU per datagram, per side, for mcprobe and iperf 2, beside the CPU of a bare
timer wake-up (cyclictest) at the same interval: where issue 25's "CPU per probe at
10 000/s" goes on this machine.

    LAB_PREFIX=wk MCPROBE=target/release/mcprobe ROUNDS=3 RATES="1000 10000" \\
        python3 scripts/wakeups.py > results/wakeups-DATE.csv

Needs root, a lab up (`LAB_PREFIX=wk scripts/lab.sh up 2`), iperf (2) and cyclictest (rt-tests).
Every datagram stays inside the lab: mcprobe and iperf run in its namespaces (h1 sends to h2
over veth0; never `iperf -c GROUP%lo` on the host: iperf 2.1.8 ignores the %dev and sends
through the default route). Each tool runs 3 s per rate and round, in turns.

Per process, every 20 ms: each thread's CPU (/proc/PID/task/TID/schedstat, ns) and its
voluntary context switches (one per sleep that ended in a wake-up), the last sample kept.
Output (CSV): round, tool, rate, side (send: prober or iperf client; recv: responder or iperf
server; alone: cyclictest), cpu_us_per_dgram (all threads), busiest_thread,
busiest_cpu_us_per_dgram, busiest_wakeups_per_dgram. cyclictest's CPU is its rusage (user +
system) per wake-up; it runs with --laptop, so idle states stay on as for the other tools.
"""

import os
import subprocess
import sys
import time

PREFIX = os.environ["LAB_PREFIX"]
MCPROBE = os.environ.get("MCPROBE", "target/release/mcprobe")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
RATES = [int(r) for r in os.environ.get("RATES", "1000 10000").split()]
SECS = 3


def in_host(h, cmd, out=subprocess.DEVNULL):
    return subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}-{h}", *cmd], stdout=out, stderr=subprocess.STDOUT)


def sample(pid, acc):
    """Adds each thread's (name, cpu ns, voluntary switches) to `acc`, by task path."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        t = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{t}/comm") as f:
                name = f.read().strip()
            with open(f"{t}/schedstat") as f:
                cpu_ns = int(f.read().split()[0])
            with open(f"{t}/status") as f:
                status = f.read()
            vol = int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
            acc[t] = (name, cpu_ns, vol)
        except (OSError, IndexError, ValueError):
            pass


def watch(main, other):
    """Samples both processes until `main` exits; then `other` once more."""
    a, b = {}, {}
    while main.poll() is None:
        sample(main.pid, a)
        sample(other.pid, b)
        time.sleep(0.02)
    sample(other.pid, b)
    return a, b


def rows(rnd, tool, rate, sides):
    n = rate * SECS
    for side, threads in sides:
        total = sum(t[1] for t in threads.values()) / 1e3 / n
        name, cpu, vol = max(threads.values(), key=lambda t: t[1], default=("-", 0, 0))
        print(f"{rnd},{tool},{rate},{side},{total:.1f},{name},{cpu / 1e3 / n:.1f},{vol / n:.2f}", flush=True)


def mcprobe(rnd, rate):
    common = ["--iface", "veth0", "--group", "239.255.42.97", "--port", "24998"]
    resp = in_host("h2", [MCPROBE, "respond", *common, "--querier-wait", "1h"])
    time.sleep(0.5)
    n = str(rate * SECS)
    probe = in_host(
        "h1", [MCPROBE, "probe", *common, "--rate", str(rate), "--count", n, "--quiet", "--timeout", "200ms"]
    )
    a, b = watch(probe, resp)
    resp.terminate()
    resp.wait()
    rows(rnd, "mcprobe", rate, [("send", a), ("recv", b)])


def iperf(rnd, rate):
    group = ["-p", "25110", "-u", "-e"]
    srv = in_host("h2", ["iperf", "-s", "-B", "239.255.42.96", *group, "-w", "4M", "-t", str(SECS + 3)])
    time.sleep(0.5)
    cli = in_host(
        "h1", ["iperf", "-c", "239.255.42.96", *group, "-T", "1", "-l", "64", "-b", f"{rate}pps", "-t", str(SECS)]
    )
    a, b = watch(cli, srv)
    time.sleep(0.3)
    sample(srv.pid, b)
    srv.terminate()
    srv.wait()
    rows(rnd, "iperf", rate, [("send", a), ("recv", b)])


def cyclictest(rnd, rate):
    n = rate * SECS
    before = os.times()
    cmd = ["cyclictest", "--laptop", "-i", str(1_000_000 // rate), "-l", str(n), "-q", "-t", "1"]
    subprocess.run(cmd, capture_output=True, check=True)
    after = os.times()
    cpu_us = (after.children_user - before.children_user + after.children_system - before.children_system) * 1e6
    print(f"{rnd},cyclictest,{rate},alone,{cpu_us / n:.1f},cyclictest,{cpu_us / n:.1f},1.00", flush=True)


def main():
    print("round,tool,rate,side,cpu_us_per_dgram,busiest_thread,busiest_cpu_us_per_dgram,busiest_wakeups_per_dgram")
    tools = [mcprobe, iperf, cyclictest]
    for rnd in range(1, ROUNDS + 1):
        for rate in RATES:
            # Alternate the order between rounds: the VM's noise drifts.
            for tool in tools if rnd % 2 else tools[::-1]:
                tool(rnd, rate)


if __name__ == "__main__":
    sys.exit(main())
