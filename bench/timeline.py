#!/usr/bin/python3
"""Where a warm run's time and CPU go, by process role (bench/warm-steps.md,
*A run's timeline*).

    /usr/bin/python3 bench/timeline.py [--sandcell build/sandcell] [--runs 60] [--code pass]

One warm server (defaults).  First `perf record -e sched:...` while one
client runs RUNS trivial runs back to back: for each run, from the
client's exec to its exit, when the code's process began to exit, how long
its exit took (its copy of the template torn down), how long until the
template ran after it, and from then to the client's exit.  Then `perf
record -a -g` over 6 s of the same load: CPU per run for each role, with
the kernel paths that cost most.  Roles come from the process tree that
fork events give: the template (the server's pid); the spare factory (its
child present at start) and below it a spare's supervisor, its init, the
init's opener; the template's helpers (CLONE_VM children) and the code
processes they fork.  Run as root, on a quiet machine; perf must be
installed (linux-perf).
"""
import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from harness import WarmServer  # noqa: E402

FORK = re.compile(r"PERF_RECORD_FORK\((\d+):\d+\):\((\d+):\d+\)")


def client(sandcell, sock, code):
    subprocess.run([sandcell, "run", "--server", sock, "-c", code], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Tree:
    """Roles of the server's processes, from parent links."""

    def __init__(self, template, factory, codes):
        # The code processes of spares ready at start: the template's
        # children without children of their own (their helper is gone).
        self.template = template
        self.parent = {factory: template, -1: template}
        self.parent.update((c, -1) for c in codes)
        self.first = {factory}

    def role(self, pid):
        chain, p = [], pid
        while p in self.parent and p != self.template:
            chain.append(p)
            p = self.parent[p]
        if p != self.template:
            return None
        if not chain:
            return "template"
        top = chain[-1]
        if top in self.first:
            return {1: "factory", 2: "supervisor", 3: "init", 4: "opener"}.get(len(chain), "init's child")
        return {1: "helper", 2: "code"}.get(len(chain), "code's child")


def children(pid):
    return [int(x) for t in os.listdir("/proc/%d/task" % pid)
            for x in open("/proc/%d/task/%s/children" % (pid, t)).read().split()]


def perf(args, seconds=None):
    cmd = ["perf", "record", "-m", "8192", "-o", args[0]] + args[1:]
    if seconds is not None:
        return subprocess.run(cmd + ["--", "sleep", str(seconds)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def script(data, fields, tasks=False):
    cmd = ["perf", "script", "-i", data, "-F", fields] + (["--show-task-events"] if tasks else [])
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout


def timeline(srv, tree, a, data):
    rec = perf([data, "-a", "-e", "sched:sched_switch", "-e", "sched:sched_process_fork",
                "-e", "sched:sched_process_exec", "-e", "sched:sched_process_exit"])
    time.sleep(1.5)
    for _ in range(a.runs):
        client(a.sandcell, srv.sock, a.code)
    rec.send_signal(2)
    rec.wait()
    ev = []
    for line in script(data, "comm,pid,time,event,trace").splitlines():
        m = re.match(r"^\s*(\S.*?)\s+(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)$", line)
        if m:
            ev.append((float(m.group(3)), int(m.group(2)), m.group(4), m.group(5)))
    oncpu, running, execs, exits = collections.defaultdict(list), {}, [], {}
    for t, pid, name, tr in ev:
        if name == "sched:sched_process_fork":
            f = re.search(r" pid=(\d+) child_comm=\S+ child_pid=(\d+)", tr)
            tree.parent[int(f.group(2))] = int(f.group(1))
        elif name == "sched:sched_process_exec" and "sandcell" in tr:
            execs.append((t, pid))
        elif name == "sched:sched_process_exit":
            exits.setdefault(pid, t)
        elif name == "sched:sched_switch":
            s = re.search(r"prev_pid=(\d+) .*next_pid=(\d+)", tr)
            if s:
                prev, nxt = int(s.group(1)), int(s.group(2))
                if prev in running:
                    oncpu[prev].append((running.pop(prev), t))
                running[nxt] = t
    rows = []
    for t0, cpid in execs[2:]:
        t1 = exits.get(cpid)
        codes = [(t, p) for p, t in exits.items() if t1 and t0 < t < t1 and tree.role(p) == "code"]
        if not codes:
            continue
        ce, cp = min(codes)
        cend = max(b for _, b in oncpu[cp])
        trel = min([s for s, _ in oncpu[tree.template] if s >= cend] or [t1])
        tacc = min([s for s, _ in oncpu[tree.template] if s >= t0] or [t1])
        rows.append([(t1 - t0), (tacc - t0), (ce - tacc), (cend - ce), (trel - cend), (t1 - trel)])
    names = ["client exec to client exit", "client exec until the template runs (the request sent)",
             "then until the code's exit begins", "the code's exit (teardown)",
             "then until the template runs", "then until the client's exit"]
    print("## timeline: %d back-to-back runs of %r, one client" % (len(rows), a.code))
    print("| | p50 | mean | p90 |\n|---|---|---|---|")
    for i, n in enumerate(names):
        v = sorted(r[i] * 1000 for r in rows)
        print("| %s | %.2f ms | %.2f ms | %.2f ms |" % (n, v[len(v) // 2], statistics.mean(v), v[int(len(v) * .9)]))


def cpu(srv, tree, a, data, seconds=6):
    stop, count = threading.Event(), [0]

    def load():
        while not stop.is_set():
            client(a.sandcell, srv.sock, a.code)
            count[0] += 1
    th = threading.Thread(target=load)
    th.start()
    time.sleep(1)
    c0 = count[0]
    perf([data, "-a", "-g", "-F", "4999"], seconds)
    runs = count[0] - c0
    stop.set()
    th.join()
    self_, incl, by = collections.defaultdict(collections.Counter), collections.defaultdict(collections.Counter), \
        collections.Counter()
    cur = None

    def flush(c):
        if c is None:
            return
        role = "idle" if c[0] == 0 else tree.role(c[0]) or "other"
        by[role] += 1
        if c[1]:
            self_[role][c[1][0]] += 1
        for s in set(c[1]):
            incl[role][s] += 1
    for line in script(data, "pid,tid,ip,sym", tasks=True).splitlines():
        f = FORK.search(line)
        if f:
            tree.parent.setdefault(int(f.group(1)), int(f.group(2)))
        elif not line.strip():
            flush(cur)
            cur = None
        elif re.match(r"^\s*\d+/\d+\s*$", line):
            cur = (int(line.split("/")[0]), [])
        elif cur is not None and len(line.split()) >= 2:
            cur[1].append(line.split()[1])
    flush(cur)
    ms = 1000.0 / 4999 / max(1, runs)
    print("\n## CPU per run by role: %d runs in %d s, one client (`other`: the clients, the driver, "
          "kernel threads)" % (runs, seconds))
    print("| role | CPU per run | most of it (inclusive) |\n|---|---|---|")
    skip = {"[unknown]", "entry_SYSCALL_64_after_hwframe", "do_syscall_64", "x64_sys_call", "syscall"}
    for role, n in by.most_common():
        top = [(s, k) for s, k in incl[role].most_common(40) if s not in skip][:4]
        print("| %s | %.2f ms | %s |" % (role, n * ms, ", ".join("%s %.2f" % (s, k * ms) for s, k in top)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sandcell", default=os.path.join(os.path.dirname(HERE), "build", "sandcell"))
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--code", default="pass")
    ap.add_argument("--serve-opt", action="append", default=[], help="an option of sandcell serve (repeat)")
    a = ap.parse_args()
    srv = WarmServer(a.serve_opt, binary=os.path.abspath(a.sandcell))
    try:
        for _ in range(20):
            client(a.sandcell, srv.sock, a.code)
        kids = children(srv.pid)
        factory = [k for k in kids if children(k)][0]
        codes = [k for k in kids if k != factory]
        timeline(srv, Tree(srv.pid, factory, codes), a, os.path.join(srv.dir, "sched.data"))
        cpu(srv, Tree(srv.pid, factory, codes), a, os.path.join(srv.dir, "cpu.data"))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
