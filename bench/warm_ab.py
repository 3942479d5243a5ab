#!/usr/bin/python3
"""Warm servers of several builds side by side, with bare python3 in the
same run: how much each change to the warm path gains (bench/warm-steps.md).

    /usr/bin/python3 bench/warm_ab.py NAME=PATH/TO/sandcell [NAME=...]
    (NAME="PATH/TO/sandcell --write-ahead 8": that server with those options)

Each NAME gets its own `sandcell serve` (defaults) from that build.  Then,
interleaved round by round (so drift on the machine hits all alike), with a
0.1 s pause after each run (the template refills its spare then): a bare
`python3 -c pass`, and one run per server (one `sandcell run --server`
client process, start to exit); first ROUNDS rounds of trivial runs, then
ROUNDS of the pandas cell, which also times itself inside the run and
counts its minor faults.  The server's CPU per run is the template's own
and its reaped descendants' (worker, sandbox init, code) over each phase.
Then throughput with 8 clients, TPUT seconds per server in interleaved
slices, and the idle template's memory.  Run as root.
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)
from harness import WarmServer, descendants  # noqa: E402
import bench  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "25"))
TPUT = float(os.environ.get("TPUT", "9"))
SLICES = 3
PAUSE = 0.1
PANDAS = bench.CELLS["pandas"]
INCELL_CODE = ("import resource, time\n"
               "r0 = resource.getrusage(0).ru_minflt; t0 = time.perf_counter()\n" + PANDAS +
               "print('M', (time.perf_counter() - t0) * 1000, resource.getrusage(0).ru_minflt - r0)\n")


def load_avg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def tree_cpu(pid):
    """CPU seconds of pid and of its reaped children (utime, stime, cutime, cstime)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def out(msg):
    print(msg, flush=True)


def main():
    # NAME=BINARY, or NAME="BINARY --server-option ..." for the server
    specs = {n: v.split() for n, v in (a.split("=", 1) for a in sys.argv[1:])}
    bins = {n: v[0] for n, v in specs.items()}
    if not bins:
        sys.exit(__doc__)
    out("load average at start: %s" % load_avg())
    srvs = {}
    try:
        for n, b in bins.items():
            srvs[n] = WarmServer(specs[n][1:], binary=b)
        for n, s in srvs.items():
            bench.load(bins[n], s.sock, "pass", 2, 10, 30)
            bench.load(bins[n], s.sock, PANDAS, 2, 6, 30)
        names = list(srvs)
        bare = []
        lat = {n: {"trivial": [], "pandas": []} for n in names}
        cpu = {n: {} for n in names}
        inside = {n: [] for n in names}
        # Phase by cell, so that the server's CPU per run is one cell's.
        # A pause after each run: the template refills its spare then,
        # which would otherwise overlap the next server's run.
        for cell, code in (("trivial", "pass"), ("pandas", INCELL_CODE)):
            c0 = {n: tree_cpu(srvs[n].pid) for n in names}
            for _ in range(ROUNDS):
                bare.append(bench.timed([bench.PY, "-c", "pass"]))
                time.sleep(PAUSE)
                for n in names:
                    t0 = time.perf_counter()
                    r = subprocess.run([bins[n], "run", "--server", srvs[n].sock, "-c", code],
                                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
                    lat[n][cell].append(time.perf_counter() - t0)
                    m = [x for x in r.stdout.splitlines() if x.startswith("M ")]
                    if m:
                        inside[n].append((float(m[0].split()[1]), int(m[0].split()[2])))
                    time.sleep(PAUSE)
            time.sleep(1.5)  # the last workers are reaped by the templates' next turn
            for n in names:
                cpu[n][cell] = 1000 * (tree_cpu(srvs[n].pid) - c0[n]) / ROUNDS
        b50 = statistics.median(bare)
        out("bare python3 -c pass: p50 %.1f ms (%d runs)\n" % (1000 * b50, len(bare)))
        out("| | trivial p50 | / bare | pandas p50 | / bare | server CPU per trivial run | per pandas run "
            "| pandas cell inside the run | its minor faults |")
        out("|---|---|---|---|---|---|---|---|---|")
        for n in names:
            t, p = statistics.median(lat[n]["trivial"]), statistics.median(lat[n]["pandas"])
            out("| %s | %.1f ms | %.2f× | %.1f ms | %.2f× | %.1f ms | %.1f ms | %.2f ms | %d |" % (
                n, 1000 * t, t / b50, 1000 * p, p / b50, cpu[n]["trivial"], cpu[n]["pandas"],
                statistics.median(a for a, _ in inside[n]), statistics.median(f for _, f in inside[n])))
        out("\nload average: %s\n" % load_avg())
        # Throughput in interleaved slices, so that load drift hits all.
        done = {n: [0, 0.0] for n in names}
        for _ in range(SLICES):
            for n in names:
                t, wall, fails, _ = bench.load(bins[n], srvs[n].sock, "pass", 8, 100000, TPUT / SLICES)
                done[n][0] += len(t)
                done[n][1] += wall
                time.sleep(0.5)
        time.sleep(1)
        out("| | trivial runs/s, 8 clients | idle template RSS / in THP | idle PSS, template + spares |")
        out("|---|---|---|---|")
        for n in names:
            s = srvs[n]
            sm = bench.smaps(s.pid)
            pss = sm.get("Pss", 0) + sum(bench.smaps(q).get("Pss", 0) for q in descendants(s.pid))
            out("| %s | %.0f | %s / %s | %s |" % (n, done[n][0] / done[n][1], bench.mib(sm.get("Rss", 0)),
                                                 bench.mib(sm.get("AnonHugePages", 0)), bench.mib(pss)))
        out("\nload average at the end: %s" % load_avg())
    finally:
        for s in srvs.values():
            s.stop()


if __name__ == "__main__":
    main()
