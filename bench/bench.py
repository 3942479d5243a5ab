#!/usr/bin/python3
"""sandcell benchmarks: cold (sandcell vs bare python3 vs bubblewrap) and
warm (`sandcell serve`: latency, throughput, memory).  Writes a markdown
report (bench/results.md by default).  Run through bench/run.sh.

Everything is measured from outside, end to end: a client process's start
to its exit, as a caller would see it.  Runs of the compared tools are
interleaved (round robin) so that drift on the machine hits all alike.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import sys
import subprocess
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import WarmServer, children, descendants, proc_uid  # noqa: E402  (the tests' warm server and process tree)

PY = "/usr/bin/python3"
with open("/proc/loadavg") as _f:
    LOAD_AT_START = " / ".join(_f.read().split()[:3])

CELLS = {
    "pass": "pass",
    "pandas": ("import numpy, pandas\n"
               "df = pandas.DataFrame({'a': numpy.arange(1000) % 10, 'b': numpy.arange(1000.0)})\n"
               "print(df.groupby('a').b.sum().sum())\n"),
    "savefig": ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                "fig, ax = plt.subplots()\nax.plot(range(100), [i * i for i in range(100)])\n"
                "fig.savefig('/tmp/plot.png')\n"),
}
# The warm "pandas cell": what a notebook cell does once the imports are paid.
WARM_CELLS = {
    "trivial": "pass",
    "pandas": CELLS["pandas"],
}

BWRAP = ["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib",
         "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
         "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
         "--ro-bind", "/etc/alternatives", "/etc/alternatives",
         "--ro-bind-try", "/etc/fonts", "/etc/fonts",
         "--ro-bind-try", "/etc/matplotlibrc", "/etc/matplotlibrc",
         "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
         "--setenv", "HOME", "/tmp", "--setenv", "MPLCONFIGDIR", "/tmp/.matplotlib",
         "--unshare-all", "--die-with-parent"]


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def timed(cmd, env=None, cwd=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=env, cwd=cwd)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("%r failed (%d): %s" % (cmd[:4], p.returncode, p.stderr[-500:]))
    return dt


# --------------------------------------------------------------------- cold

def cold(sandcell, reps, log):
    tmp = tempfile.mkdtemp(prefix="sandcell-bench-bare-")
    bare_env = dict(os.environ, MPLBACKEND="Agg")
    tools = {
        "python3": lambda code: timed([PY, "-c", code.replace("/tmp/plot.png", tmp + "/plot.png")],
                                      env=bare_env),
        "bwrap": lambda code: timed(BWRAP + [PY, "-c", code]),
        "sandcell": lambda code: timed([sandcell, "run", "-c", code]),
    }
    res = {}
    for cell, code in CELLS.items():
        n = reps[cell]
        times = {t: [] for t in tools}
        for t, f in tools.items():  # warm-up: page cache, font caches of the host
            f(code)
        for _ in range(n):
            for t, f in tools.items():
                times[t].append(f(code))
        res[cell] = times
        log("cold %-8s %s" % (cell, "  ".join("%s %.1f ms" % (t, 1000 * statistics.median(v))
                                            for t, v in times.items())))
    shutil.rmtree(tmp, ignore_errors=True)
    return res


# --------------------------------------------------------------------- warm

def busy_cpu_sec():
    """CPU time the whole machine spent busy so far (/proc/stat: all but idle
    and iowait), in seconds."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def load(sandcell, sock, code, clients, total, max_sec):
    """clients threads, each launching `sandcell run --server` back to back,
    until total runs or max_sec.  Returns (latencies, wall, failures, busy
    CPU seconds of the whole machine meanwhile)."""
    lat, fails = [], [0]
    lock = threading.Lock()
    left = [total]
    deadline = time.monotonic() + max_sec
    cmd = [sandcell, "run", "--server", sock, "-c", code]

    def worker():
        while True:
            with lock:
                if left[0] <= 0 or time.monotonic() > deadline:
                    return
                left[0] -= 1
            t0 = time.perf_counter()
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            dt = time.perf_counter() - t0
            with lock:
                if p.returncode == 0:
                    lat.append(dt)
                else:
                    fails[0] += 1

    t0 = time.perf_counter()
    c0 = busy_cpu_sec()
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, time.perf_counter() - t0, fails[0], busy_cpu_sec() - c0


def smaps(pid):
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if v.strip().endswith("kB"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def memory(sandcell, srv, log):
    """Idle template, and one live pandas run: PSS and private bytes of the
    run's processes (its spare's supervisor and init, the code) while it
    sleeps, and the report's peak (pages charged to the run's cgroup)."""
    time.sleep(0.5)
    idle = smaps(srv.pid)
    # The idle server is the template, the spare factory and its spares
    # (--spares: each a supervisor, an init, an opener and the code's
    # process): PSS splits their shared pages among them, so it is summed.
    spares = descendants(srv.pid)
    idle_pss = idle.get("Pss", 0) + sum(smaps(q).get("Pss", 0) for q in spares)
    code = CELLS["pandas"] + "import sys, time\nprint('READY', flush=True)\ntime.sleep(2)\n"
    rpath = os.path.join(srv.dir, "mem-report.json")
    p = subprocess.Popen([sandcell, "run", "--server", srv.sock, "--report", rpath, "-c", code],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while True:
        line = p.stdout.readline()
        if not line or line.startswith(b"READY"):
            break
    time.sleep(0.2)
    # The run: the code's process is the template's child that took the
    # sandbox uid (an idle spare's still has the server's); with its
    # descendants, its sandbox's init and the init's parent, the supervisor.
    run = []
    for c in children(srv.pid):
        if proc_uid(c) in (None, os.geteuid()):
            continue
        run = [c] + descendants(c)
        ns = os.readlink("/proc/%d/ns/pid" % c)
        for q in descendants(srv.pid):
            try:
                with open("/proc/%d/status" % q) as f:
                    st = dict(ln.split(":", 1) for ln in f if ":" in ln)
                if os.readlink("/proc/%d/ns/pid" % q) == ns and st["NSpid"].split()[-1] == "1":
                    run += [q, int(st["PPid"])]
            except (OSError, KeyError):
                pass
        break
    procs = {q: smaps(q) for q in run}
    p.communicate(timeout=60)
    with open(rpath) as f:
        rep = json.load(f)
    priv = sum(m.get("Private_Clean", 0) + m.get("Private_Dirty", 0) for m in procs.values())
    pss = sum(m.get("Pss", 0) for m in procs.values())
    # The same cell cold, for the report's peak.
    rcold = os.path.join(srv.dir, "cold-report.json")
    subprocess.run([sandcell, "run", "--report", rcold, "-c", CELLS["pandas"]],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(rcold) as f:
        cold_peak = json.load(f)["memory"]["peak_bytes"]
    res = {"idle_rss": idle.get("Rss", 0), "idle_pss": idle_pss, "idle_spares": len(spares),
           "idle_anon": idle.get("Anonymous", 0), "idle_huge": idle.get("AnonHugePages", 0),
           "run_procs": len(procs), "run_pss": pss, "run_private": priv,
           "run_peak": rep["memory"]["peak_bytes"], "cold_peak": cold_peak}
    log("memory %s" % res)
    return res


def profile(sandcell, srv, log, seconds=5):
    """Where a warm run's CPU goes: perf record -a -g while 8 clients run
    trivial cells; shares of all samples under a few kernel paths."""
    if shutil.which("perf") is None:
        return None
    data = os.path.join(srv.dir, "perf.data")
    stop = threading.Event()

    def loadgen():
        while not stop.is_set():
            subprocess.run([sandcell, "run", "--server", srv.sock, "-c", "pass"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ts = [threading.Thread(target=loadgen) for _ in range(8)]
    for t in ts:
        t.start()
    time.sleep(1)
    # A large buffer: a lost fork event would drop a process from the tree.
    rec = subprocess.run(["perf", "record", "-a", "-g", "-m", "4096", "-o", data, "--", "sleep", str(seconds)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop.set()
    for t in ts:
        t.join()
    if rec.returncode != 0:
        return None
    # Only the server's samples: the template and every process below it
    # (fork events give the tree), not the clients' or other jobs' on the
    # machine; a sample counts for a path if the path is in its call chain.
    script = subprocess.run(["perf", "script", "-i", data, "--show-task-events", "-F", "pid,tid,ip,sym"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    want = {"copy_process": "fork/clone: copy_process (page tables of the template copied)",
            "exit_mmap": "exit: exit_mmap (page tables and pages torn down)",
            "exc_page_fault": "page faults (mostly copy-on-write of template pages)",
            "path_mount": "mounts (path_mount)"}
    tree, hits, total, cur = {srv.pid}, dict.fromkeys(want, 0), 0, None
    for line in script.splitlines():
        m = re.search(r"PERF_RECORD_FORK\((\d+):\d+\):\((\d+):\d+\)", line)
        if m:
            if int(m.group(2)) in tree:
                tree.add(int(m.group(1)))
            continue
        if not line.strip():
            if cur is not None:
                total += 1
                for k in want:
                    hits[k] += k in cur
            cur = None
        elif re.match(r"^\s*(\d+)/\d+\s*$", line):  # a sample: "pid/tid", then its call chain
            cur = set() if int(line.split("/")[0]) in tree else None
        elif cur is not None and len(line.split()) >= 2:
            cur.add(line.split()[1])
    lost = re.findall(r"PERF_RECORD_LOST", script)
    if total == 0 or lost:
        log("profile: %d samples of the server, %d lost-event records: not reported" % (total, len(lost)))
        return None
    out = [(want[k], 100.0 * hits[k] / total) for k in want]
    log("profile %s (%d samples of the server)" % ({k: round(100.0 * v / total, 1) for k, v in hits.items()},
                                                   total))
    return out


def warm(sandcell, levels, budget, log):
    srv = WarmServer(binary=sandcell)
    res = {"ready_sec": srv.ready_sec, "slots": 2 * (os.cpu_count() or 1), "cells": {}}
    try:
        for name, code in WARM_CELLS.items():
            load(sandcell, srv.sock, code, 2, 10, 30)  # warm-up
            res["cells"][name] = {}
            for c in levels:
                lat, wall, fails, cpu = load(sandcell, srv.sock, code, c, budget[name][0] * c,
                                             budget[name][1])
                res["cells"][name][c] = {"n": len(lat), "fails": fails, "p50": pct(lat, 50),
                                         "p99": pct(lat, 99), "mean": statistics.mean(lat),
                                         "rps": len(lat) / wall, "cpu": cpu / max(1, len(lat) + fails)}
                r = res["cells"][name][c]
                log("warm %-8s c=%-3d n=%-4d p50 %.1f ms  p99 %.1f ms  %.0f runs/s  cpu %.1f ms/run  fails %d" % (
                    name, c, r["n"], 1000 * r["p50"], 1000 * r["p99"], r["rps"], 1000 * r["cpu"], fails))
        res["memory"] = memory(sandcell, srv, log)
        res["profile"] = profile(sandcell, srv, log)
    finally:
        srv.stop()
    return res


# ------------------------------------------------- hybrid cgroup migration

UNIFIED = "/sys/fs/cgroup/unified"


def _remount_unified(opts):
    """cgroup2 reconfigure: b"favordynmods" sets it, b"" clears it."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(None, UNIFIED.encode(), None, 32, opts) != 0:  # MS_REMOUNT
        raise OSError(ctypes.get_errno(), "remount %s" % UNIFIED)


def migration(sandcell, reps, log):
    """Hybrid hosts only (v1 memory/pids): a task moved into a cgroup by
    another (its pid written to cgroup.procs) waits for an RCU grace period
    unless the kernel keeps the cgroup threadgroup lock in its slow-reader
    mode (cgroup2's `favordynmods`, which makes fork and exit a little
    slower host-wide).  The sandbox init joins its v1 cgroups itself, one
    thread moving itself (tasks), which takes no threadgroup lock: this
    measures cold `pass` and warm trivial latency both ways, runs
    interleaved with a pause between them (back-to-back runs hide the grace
    period), to show that the setting no longer matters, and restores the
    mount as it was.  v2-only hosts never move a task: the sandbox is
    cloned into its cgroup (clone3 CLONE_INTO_CGROUP)."""
    if os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup/memory/") or \
            not os.path.exists(UNIFIED + "/cgroup.procs"):
        log("migration: not a hybrid host run as root, skipped")
        return None
    with open("/proc/self/mountinfo") as f:
        was_on = any(l.split()[4] == UNIFIED and "favordynmods" in l for l in f)
    srv = WarmServer(binary=sandcell)
    res = {"off": {"cold": [], "warm": []}, "on": {"cold": [], "warm": []}}
    try:
        load(sandcell, srv.sock, "pass", 1, 10, 30)
        for i in range(reps):
            for mode in ("off", "on"):
                _remount_unified(b"favordynmods" if mode == "on" else b"")
                time.sleep(0.1)
                res[mode]["warm"].append(timed([sandcell, "run", "--server", srv.sock, "-c", "pass"]))
                time.sleep(0.1)
                res[mode]["cold"].append(timed([sandcell, "run", "-c", "pass"]))
    finally:
        _remount_unified(b"favordynmods" if was_on else b"")
        srv.stop()
    for mode in ("off", "on"):
        log("migration favordynmods %-3s cold p50 %.1f ms  warm p50 %.1f ms" % (
            mode, 1000 * pct(res[mode]["cold"], 50), 1000 * pct(res[mode]["warm"], 50)))
    return res


# ------------------------------------------------------------------- report

def ms(x):
    return "%.1f ms" % (1000 * x)


def mib(x):
    return "%.1f MiB" % (x / 1048576.0)


def facts(sandcell):
    def first(cmd):
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cg = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else (
        "hybrid (v1 memory/pids + v2)" if os.path.isdir("/sys/fs/cgroup/unified") else "v1")
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rev = first(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "src"], stdout=subprocess.PIPE,
                           text=True).stdout.strip()
    return [("date", datetime.datetime.now().strftime("%Y-%m-%d %H:%M")),
            ("nproc", str(os.cpu_count())), ("cpu", cpu),
            ("memory", "%d MiB" % (int(mem) // 1024)),
            ("kernel", platform.release()), ("cgroups", cg),
            ("python", first([PY, "--version"])),
            ("numpy / pandas / matplotlib", first([PY, "-c", "import numpy, pandas, matplotlib; "
                                                   "print(numpy.__version__, pandas.__version__, "
                                                   "matplotlib.__version__, sep=' / ')"])),
            ("bubblewrap", first(["bwrap", "--version"])),
            ("load average at start (1/5/15 min)", LOAD_AT_START),
            ("sandcell", "%s (%s)%s" % (sandcell, rev, " + uncommitted src/ changes" if dirty else ""))]


def report(path, args, cold_res, warm_res, took, mig=None):
    L = []
    L.append("# sandcell benchmarks\n")
    L.append("Reproduce (as root, from the repository root; about %d s here):\n" % round(took))
    L.append("```sh\nsh bench/run.sh%s%s\n```\n" % (" --quick" if args.quick else "",
                                                 " --migration" if args.migration else ""))
    L.append("| machine | |\n|---|---|")
    for k, v in facts(args.sandcell):
        L.append("| %s | %s |" % (k, v))
    L.append("")
    L.append("All times are end to end: from starting the process (`python3`, `bwrap ... "
             "python3`, `sandcell run`, `sandcell run --server`) to its exit, measured by a "
             "Python driver (`bench/bench.py`); the tools' runs are interleaved.\n")
    if cold_res:
        L.append("## Cold runs\n")
        L.append("bwrap: `%s /usr/bin/python3 -c CODE` (the suggested line plus the few /etc "
                 "entries numpy and matplotlib need, as sandcell binds them); sandcell: `sandcell run -c CODE` (full "
                 "isolation, default limits). `pandas` = `import numpy, pandas` + a groupby on "
                 "1000 rows; `savefig` = a matplotlib line plot saved as PNG. sandcell and bwrap "
                 "start with an empty matplotlib cache directory every run (a fresh tmpfs), bare "
                 "python3 uses the host's.\n" % " ".join(BWRAP))
        L.append("| cell | runs | python3 mean / median | bwrap mean / median | sandcell mean / median "
                 "| bwrap / python3 | sandcell / python3 |")
        L.append("|---|---|---|---|---|---|---|")
        for cell, t in cold_res.items():
            b, w, s = t["python3"], t["bwrap"], t["sandcell"]
            mb, mw, mS = statistics.median(b), statistics.median(w), statistics.median(s)
            L.append("| %s | %d | %s / %s | %s / %s | %s / %s | %.2f× | %.2f× |" % (
                cell, len(b), ms(statistics.mean(b)), ms(mb), ms(statistics.mean(w)), ms(mw),
                ms(statistics.mean(s)), ms(mS), mw / mb, mS / mb))
        L.append("")
        L.append("Where a cold run's time goes, step by step, and what each change to the cold "
                 "path gained (builds side by side, `bench/cold_ab.py`): [cold-steps.md](cold-steps.md).\n")
    if warm_res:
        L.append("## Warm runs (`sandcell serve`, default slots = 2 × nproc = %d)\n" % warm_res["slots"])
        L.append("Template ready %.1f s after start. Latency = one `sandcell run --server SOCK -c CODE` "
                 "client process, start to exit; C clients run back to back in parallel. "
                 "`trivial` = `pass`; `pandas` = the cold pandas cell (imports already in the "
                 "template).\n" % warm_res["ready_sec"])
        total = sum(r["n"] + r["fails"] for by_c in warm_res["cells"].values() for r in by_c.values())
        L.append("The server runs with its defaults, so the template re-executes itself every 1000 "
                 "runs (`--respawn-runs`): %d runs here, %s. A respawn holds new requests for the "
                 "~1 s the new template needs to import its modules, which shows in p99.\n" % (
                     total, "so about %d respawn(s) during the measurements" % (total // 1000)
                     if total >= 1000 else "so no respawn during the measurements"))
        L.append("`CPU per run`: the whole machine's busy CPU time during the measurement "
                 "(/proc/stat), divided by the runs: the server, the spares being built, "
                 "the client processes and this driver.\n")
        L.append("| cell | clients | runs | p50 | p99 | mean | throughput | CPU per run |")
        L.append("|---|---|---|---|---|---|---|---|")
        for name, by_c in warm_res["cells"].items():
            for c, r in by_c.items():
                L.append("| %s | %d | %d%s | %s | %s | %s | %.0f runs/s | %s |" % (
                    name, c, r["n"], " (%d failed)" % r["fails"] if r["fails"] else "", ms(r["p50"]),
                    ms(r["p99"]), ms(r["mean"]), r["rps"], ms(r["cpu"])))
        L.append("")
        m = warm_res["memory"]
        L.append("### Memory\n")
        L.append("| | |\n|---|---|")
        L.append("| idle server: template RSS / PSS of the template, the spare factory and its spares (%d processes) | %s / %s |" % (
            m.get("idle_spares", 0), mib(m["idle_rss"]), mib(m["idle_pss"])))
        if "idle_huge" in m:
            L.append("| template: anonymous memory / of it in transparent huge pages | %s / %s |" % (
                mib(m["idle_anon"]), mib(m["idle_huge"])))
        L.append("| one live pandas run (%d processes: code, supervisor, init): PSS / private | %s / %s |" % (
            m["run_procs"], mib(m["run_pss"]), mib(m["run_private"])))
        L.append("| same run, report `memory.peak_bytes` (charged to the run's cgroup) | %s |" % mib(m["run_peak"]))
        L.append("| same cell cold, report `memory.peak_bytes` | %s |" % mib(m["cold_peak"]))
        L.append("")
    if warm_res and warm_res.get("profile"):
        L.append("### Where a warm run's time goes\n")
        L.append("`perf record -a -g` for 5 s while 8 clients run trivial cells back to back; of "
                 "the samples of the server (the template and every process below it: the spare "
                 "factory, the spares' supervisors and inits, the code processes, any workers), the "
                 "share (inclusive) under each kernel path. A run served by a spare copies the "
                 "template's address space once (its code's process, forked while the server is "
                 "idle) and tears that copy down once; the supervisor and the init are small C "
                 "processes. Roles, and a run's timeline: `bench/timeline.py`.\n")
        L.append("| path | share of samples |\n|---|---|")
        for what, share in warm_res["profile"]:
            L.append("| %s | %.1f %% |" % (what, share))
        L.append("")
    if mig:
        L.append("## Hybrid cgroups: the cost of moving a task into v1\n")
        L.append("This host keeps memory and pids on cgroup v1, which has no `CLONE_INTO_CGROUP`. "
                 "A task moved by another (a write of its pid to `cgroup.procs`) first waits for an "
                 "RCU grace period, unless the kernel keeps the cgroup threadgroup lock in its "
                 "slow-reader mode: cgroup2's `favordynmods` mount option, a host-wide setting "
                 "sandcell does not change (it makes every fork and exit a little slower). The "
                 "sandbox init joins its v1 cgroups itself instead (its single thread writes 0 to "
                 "each `tasks` file the supervisor opened), which takes no threadgroup lock, so the "
                 "setting should make no difference. `--migration` measured both, %d runs each, "
                 "interleaved, one run every ~0.1 s, and restored the mount. On a v2-only host no "
                 "task is ever moved: the sandbox is cloned straight into its cgroup (`clone3` "
                 "`CLONE_INTO_CGROUP`).\n" % len(mig["off"]["cold"]))
        L.append("| `favordynmods` on `%s` | cold `pass` p50 / mean | warm trivial p50 / mean |" % UNIFIED)
        L.append("|---|---|---|")
        for mode in ("off", "on"):
            c, w = mig[mode]["cold"], mig[mode]["warm"]
            L.append("| %s%s | %s / %s | %s / %s |" % (
                mode, " (this host's setting)" if mode == "off" else "", ms(pct(c, 50)),
                ms(statistics.mean(c)), ms(pct(w, 50)), ms(statistics.mean(w))))
        L.append("")
    if cold_res and warm_res:
        L.append("## Targets (issue 10)\n")
        L.append("Ratios to the bare `python3 -c pass` of this same run.\n")
        L.append("| target | measured | verdict |\n|---|---|---|")
        wp = warm_res["cells"]["pandas"].get(1)
        wt = warm_res["cells"]["trivial"].get(1)
        w8 = warm_res["cells"]["trivial"].get(8)
        cb = statistics.median(cold_res["pass"]["python3"])
        cs = statistics.median(cold_res["pass"]["sandcell"])

        def verdict(ok, factor):
            return "met" if ok else "missed by %.1f×" % factor
        if wt:
            L.append("| warm trivial run p50 ≤ 0.15× bare python3 | %s (1 client) = %.2f× %s | %s |" % (
                ms(wt["p50"]), wt["p50"] / cb, ms(cb), verdict(wt["p50"] <= 0.15 * cb, wt["p50"] / (0.15 * cb))))
        if wp:
            L.append("| warm pandas cell p50 ≤ 10 ms | %s (1 client) | %s |" % (
                ms(wp["p50"]), verdict(wp["p50"] <= 0.010, wp["p50"] / 0.010)))
            L.append("| warm pandas cell p50 ≤ 0.5× bare python3 | %.2f× | %s |" % (
                wp["p50"] / cb, verdict(wp["p50"] <= 0.5 * cb, wp["p50"] / (0.5 * cb))))
        if w8:
            L.append("| ≥ 250 trivial runs/s with 8 clients | %.0f runs/s | %s |" % (
                w8["rps"], verdict(w8["rps"] >= 250, 250 / w8["rps"] if w8["rps"] else float("inf"))))
        L.append("| cold `pass` ≤ 1.10× bare python3 | %.2f× (%s vs %s median) | %s |" % (
            cs / cb, ms(cs), ms(cb), verdict(cs / cb <= 1.10, cs / cb / 1.10)))
        m = warm_res.get("memory")
        if m:
            L.append("| idle server with its spares ≤ 150 MiB PSS | %s | %s |" % (
                mib(m["idle_pss"]), verdict(m["idle_pss"] <= 150 << 20, m["idle_pss"] / float(150 << 20))))
        L.append("")
    with open("/proc/loadavg") as f:
        L.append("Load average at the end (1/5/15 min): %s.\n" % " / ".join(f.read().split()[:3]))
    with open(path, "w") as f:
        f.write("\n".join(L))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sandcell", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.md"))
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test)")
    ap.add_argument("--only", choices=["cold", "warm"])
    ap.add_argument("--migration", action="store_true",
                    help="hybrid hosts, as root: also measure with cgroup2 favordynmods (restored after)")
    args = ap.parse_args()
    q = args.quick
    reps = {"pass": 5 if q else 30, "pandas": 3 if q else 10, "savefig": 3 if q else 8}
    levels = [1, 2, 8, 32]
    # runs per client, and a time cap per level (seconds)
    budget = {"trivial": (20 if q else 150, 5 if q else 15), "pandas": (10 if q else 60, 5 if q else 15)}
    t0 = time.monotonic()

    def log(msg):
        print("bench: " + msg, flush=True)
    cold_res = cold(args.sandcell, reps, log) if args.only != "warm" else None
    warm_res = warm(args.sandcell, levels, budget, log) if args.only != "cold" else None
    mig = migration(args.sandcell, 10 if q else 40, log) if args.migration else None
    report(args.out, args, cold_res, warm_res, time.monotonic() - t0, mig)
    log("wrote %s in %.0f s" % (args.out, time.monotonic() - t0))


if __name__ == "__main__":
    main()
