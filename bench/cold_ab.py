#!/usr/bin/python3
"""Cold `sandcell run -c pass` of several builds side by side, next to a bare
`python3 -c pass` and bubblewrap of the same run (bench.py's bwrap line),
and where a cold run's time goes, phase by phase (issue 10, item 4):

    /usr/bin/python3 bench/cold_ab.py [--runs N] [--cells pass,pandas,savefig] [--phases N] NAME=PATH/sandcell...

Latency: every tool's runs interleaved round robin, start to exit as a
caller sees it; medians, and each one's ratio to bare python3's median.
The cells are bench.py's (--runs for `pass`, a third as many for the
others, at least 4).
Phases (--phases N runs per build, 0 to skip, as root): one `perf record`
of kernel tracepoints per run (exec, fork, exit, clone3, pivot_root,
seccomp, waitid; nothing is sampled), cut into the steps of a cold run:

  start -> clone3        exec of the CLI, config, cgroup creation, uid claim, pipes
  clone3                 the namespaces (the network namespace costs most)
  clone3 -> pivot_root   uid/gid maps, hostname, loopback, the mount plan
  pivot_root -> seccomp  old root detached, cgroups joined, the other layers
  seccomp -> python      fork of the code, exec of python3
  python                 python3 exec to exit_group (interpreter start, bootstrap, code, exit)
  python exit -> reaped  the init reaps the code, exits; namespaces torn down
  reaped -> exit         report, cgroups removed, the CLI exits
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BWRAP, CELLS, PY  # noqa: E402

EVENTS = ["sched:sched_process_exec", "syscalls:sys_enter_clone3", "syscalls:sys_exit_clone3",
          "syscalls:sys_enter_pivot_root", "syscalls:sys_enter_seccomp",
          "syscalls:sys_enter_exit_group", "syscalls:sys_exit_waitid"]
STEPS = ["start -> clone3", "clone3", "clone3 -> pivot_root", "pivot_root -> seccomp",
         "seccomp -> python", "python", "python exit -> reaped", "reaped -> exit", "total"]


def timed(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=env)
    if p.returncode != 0:
        raise RuntimeError("%r failed (%d): %s" % (cmd[:3], p.returncode, p.stderr[-300:]))
    return time.perf_counter() - t0


def phases(binary, data):
    """One run under perf: the time of each step, in seconds."""
    cmd = ["perf", "record", "-q", "-o", data]
    for e in EVENTS:
        cmd += ["-e", e]
    subprocess.run(cmd + ["--", binary, "run", "-c", "pass"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,time,event"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True).stdout
    ev = []
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+(\d+)\s+([\d.]+):\s+(\S+):", line)
        if m:
            ev.append((m.group(1), int(m.group(2)), float(m.group(3)), m.group(4)))
    sup = ev[0][1]

    def first(comm, pid, name):
        for c, p, t, e in ev:
            if e.endswith(name) and (comm is None or c == comm) and (pid is None or p == pid):
                return t
        raise RuntimeError("no %s in the trace" % name)

    def last(pid, name):
        return [t for c, p, t, e in ev if p == pid and e.endswith(name)][-1]
    marks = [ev[0][2], first(None, sup, "sys_enter_clone3"), first(None, sup, "sys_exit_clone3"),
             first(None, None, "sys_enter_pivot_root"), first(None, None, "sys_enter_seccomp"),
             first("python3", None, "sched_process_exec"), first("python3", None, "sys_enter_exit_group"),
             last(sup, "sys_exit_waitid"), last(sup, "sys_enter_exit_group")]
    return [b - a for a, b in zip(marks, marks[1:])] + [marks[-1] - marks[0]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--phases", type=int, default=15)
    ap.add_argument("--cells", default="pass")
    ap.add_argument("builds", nargs="+", metavar="NAME=PATH")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    names = ["python3", "bwrap"] + [n for n, _ in builds]
    tmp = tempfile.mkdtemp(prefix="sandcell-cold-ab-")
    bare_env = dict(os.environ, MPLBACKEND="Agg")  # as bench.py's bare runs
    with open("/proc/loadavg") as f:
        load0 = " / ".join(f.read().split()[:3])
    times = {}
    for cell in args.cells.split(","):
        code = CELLS[cell]
        tools = [("python3", [PY, "-c", code.replace("/tmp/plot.png", tmp + "/plot.png")], bare_env),
                 ("bwrap", BWRAP + [PY, "-c", code], None)]
        tools += [(n, [p, "run", "-c", code], None) for n, p in builds]
        times[cell] = {n: [] for n in names}
        for n, c, env in tools:  # warm-up
            timed(c, env)
        for _ in range(args.runs if cell == "pass" else max(4, args.runs // 3)):
            for n, c, env in tools:
                times[cell][n].append(timed(c, env))
    shutil.rmtree(tmp)
    steps = {n: [] for n, _ in builds}
    if args.phases:
        data = os.path.join(tempfile.mkdtemp(prefix="sandcell-cold-ab-"), "perf.data")
        for _ in range(args.phases):
            for n, p in builds:
                steps[n].append(phases(p, data))
        shutil.rmtree(os.path.dirname(data))
    with open("/proc/loadavg") as f:
        load1 = " / ".join(f.read().split()[:3])
    print("load average (1/5/15 min) %s at the start, %s at the end; runs interleaved\n" % (load0, load1))
    print("| cell | runs | " + " | ".join(names[1:]) + " |")
    print("|---|---|" + "---|" * (len(names) - 1))
    for cell, t in times.items():
        base = statistics.median(t["python3"])
        print("| %s | %d | %s |" % (cell, len(t["python3"]), " | ".join(
            "%.2f×" % (statistics.median(t[n]) / base) for n in names[1:])))
    print("\nMedians (mean):\n")
    print("| cell | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for cell, t in times.items():
        print("| %s | %s |" % (cell, " | ".join("%.1f ms (%.1f)" % (1000 * statistics.median(t[n]),
                                                                    1000 * statistics.mean(t[n])) for n in names)))
    if args.phases:
        print("\nMedian of %d traced runs per build, ms (min in parentheses):\n" % args.phases)
        print("| step | " + " | ".join(n for n, _ in builds) + " |")
        print("|---|" + "---|" * len(builds))
        for i, s in enumerate(STEPS):
            print("| %s | %s |" % (s, " | ".join(
                "%.1f (%.1f)" % (1000 * statistics.median(x[i] for x in steps[n]),
                                 1000 * min(x[i] for x in steps[n])) for n, _ in builds)))


if __name__ == "__main__":
    main()
