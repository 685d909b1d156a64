"""Runs a command and writes the CPU time of each of its threads, by thread name, to a file:
`threadcpu.py OUTFILE CMD ARGS...` -> lines `NAME#K SECONDS` (threads of one name numbered
in start order; the main thread is main#0), then `total SECONDS` from wait4's rusage (user + system).

Per-thread time is the scheduler's own account (/proc/PID/task/TID/schedstat, ns), read every
10 ms while the command runs: a thread's last <= 10 ms before it exits can be missed, which the
total (rusage, complete) shows as `unaccounted`.  SIGINT and SIGTERM are passed on, as in
rusage.py.  Used by scripts/limits.sh (PARTS=threads) to split mcprobe's CPU per probe
between its sender, receiver and taps (issue 25)."""

import os
import signal
import sys
import time


def sample(pid, last):
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        last[tid] = (name, ns)


def main():
    out, cmd = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    last = {}
    while True:
        try:
            done, status, ru = os.wait4(pid, os.WNOHANG)
        except InterruptedError:
            continue
        if done:
            break
        sample(pid, last)
        time.sleep(0.01)
    # Unnamed threads share the process's name: told apart by start order (tids rise), as
    # NAME#0, NAME#1, ...
    by_name, seen = {}, {}
    for tid in sorted(last, key=int):
        name, ns = last[tid]
        if tid == str(pid):
            name = "main"  # named after the binary otherwise
        k = seen.get(name, 0)
        seen[name] = k + 1
        by_name[f"{name}#{k}"] = ns / 1e9
    total = ru.ru_utime + ru.ru_stime
    with open(out, "w") as f:
        for name, s in sorted(by_name.items()):
            f.write(f"{name} {s:.6f}\n")
        f.write(f"unaccounted {max(0.0, total - sum(by_name.values())):.6f}\n")
        f.write(f"total {total:.6f}\n")
    sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main()
