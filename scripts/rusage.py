"""Runs a command and writes its CPU time (user and system seconds, µs resolution, from wait4's
rusage) and its peak resident memory (KiB) to a file: `rusage.py OUTFILE CMD ARGS...`.  SIGINT and SIGTERM are passed on to the
command, so `kill -INT` on this wrapper stops the command the way Ctrl-C would.  Its exit status
is the command's.  Used by scripts/limits.sh (GNU time rounds to 10 ms, too coarse at 10/s)."""

import os
import signal
import sys


def main():
    out, cmd = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    while True:
        try:
            _, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    with open(out, "w") as f:
        f.write(f"{ru.ru_utime:.6f} {ru.ru_stime:.6f} {ru.ru_maxrss}\n")
    sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main()
