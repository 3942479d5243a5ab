#!/usr/bin/python3
"""Throughput of trivial one-shot runs over HTTP: through HAProxy in front
of two servers versus one server directly, side by side in one run.

    /usr/bin/python3 bench/scaleout.py [--runs 60] [--rounds 3] [--threads 1,4]
                                       [--sandcell build/sandcell] [--out bench/scaleout.md]

Two `sandcell serve --http` servers (default slots: 2 x nproc each) and
HAProxy with the shipped deploy/haproxy/sandcell.cfg (ports substituted,
tests/scaleout/cluster.py), all on 127.0.0.1.  Each round sends --runs
runs of `pass` from each client thread count, first through HAProxy, then
to the first server directly (the order alternates between rounds); every
client thread has its own sandcell.connect() and sends its runs back to
back.  Bounded: rounds x thread counts x 2 x --runs runs in all.  Run as
root, on a quiet machine.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "scaleout"))


def batch(url: str, token_file: str, threads: int, runs: int) -> Tuple[float, List[float]]:
    """runs runs from each of threads threads: (wall seconds, latencies)."""
    import sandcell
    lat: List[float] = []
    errors: List[str] = []
    lock = threading.Lock()
    clients = [sandcell.connect(url, token_file=token_file, retries=5) for _ in range(threads)]
    start = threading.Barrier(threads + 1)

    def worker(c: "sandcell.Remote") -> None:
        start.wait()
        for _ in range(runs):
            t0 = time.monotonic()
            try:
                res = c.run("pass")
                ok = res.ok
            except sandcell.Error as e:
                ok = False
                with lock:
                    errors.append(str(e))
            dt = time.monotonic() - t0
            with lock:
                if ok:
                    lat.append(dt)
    ts = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    if errors:
        raise SystemExit("bench: %d runs failed, first: %s" % (len(errors), errors[0]))
    return wall, lat


def pct(xs: List[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60, help="runs per client thread per batch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,4")
    ap.add_argument("--sandcell", default=os.path.join(ROOT, "build", "sandcell"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "scaleout.md"))
    a = ap.parse_args()
    os.environ["SANDCELL_BIN"] = os.path.abspath(a.sandcell)
    from cluster import Cluster   # reads SANDCELL_BIN
    threads = [int(t) for t in a.threads.split(",")]
    load0 = os.getloadavg()
    tmp = tempfile.mkdtemp(prefix="sandcell-bench-scaleout.")
    c = Cluster(tmp, n=2, slots=2 * (os.cpu_count() or 1))
    direct = "http://127.0.0.1:%d" % c.servers[0].port
    # (mode, threads) -> [(wall, latencies)] per round
    res: Dict[Tuple[str, int], List[Tuple[float, List[float]]]] = {}
    try:
        # Warm-up: both servers' templates and HAProxy's connections.
        batch(c.url, c.token_file, 2, 5)
        batch(direct, c.token_file, 1, 5)
        for r in range(a.rounds):
            order = [("haproxy", c.url), ("direct", direct)]
            if r % 2:
                order.reverse()
            for t in threads:
                for mode, url in order:
                    res.setdefault((mode, t), []).append(batch(url, c.token_file, t, a.runs))
                    print("round %d, %s, %d thread(s): %.1f runs/s" % (
                        r + 1, mode, t, t * a.runs / res[(mode, t)][-1][0]), file=sys.stderr)
    finally:
        codes = c.stop()
        subprocess.run(["rm", "-rf", tmp])
    if codes.get("haproxy") != 0:
        raise SystemExit("bench: haproxy exited %r" % codes)

    rows = []
    for t in threads:
        for mode, label in (("direct", "one server, directly"),
                            ("haproxy", "HAProxy, two servers")):
            walls = [w for w, _ in res[(mode, t)]]
            lat = [x for _, ls in res[(mode, t)] for x in ls]
            tput = statistics.median(t * a.runs / w for w in walls)
            rows.append("| %s | %d | %d | %.1f runs/s | %.1f ms | %.1f ms |" % (
                label, t, len(lat), tput, pct(lat, 50) * 1000, pct(lat, 99) * 1000))
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = "?"
    hv = subprocess.run(["/usr/sbin/haproxy", "-v"], capture_output=True, text=True).stdout
    md = """# Scale-out throughput: HAProxy + two servers vs one server

Reproduce (as root, from the repository root; about a minute here):

```sh
/usr/bin/python3 bench/scaleout.py --runs {runs} --rounds {rounds} --threads {threads}
```

| machine | |
|---|---|
| date | {date} |
| nproc | {nproc} |
| kernel | {kernel} |
| haproxy | {haproxy} |
| load average at start (1/5/15 min) | {load} |
| sandcell | {bin} ({rev}) |

Trivial one-shot runs (`pass`, cell mode, default limits) sent by the
Python client (`sandcell.connect(...).run`, one client per thread, each
thread's runs back to back) over HTTP on 127.0.0.1: to one `sandcell serve
--http` directly, and through HAProxy (deploy/haproxy/sandcell.cfg,
leastconn) to two such servers, each with the default `--slots` ({slots}).
Each round measures every row once (the two modes alternate first); the
throughput is the median over {rounds} rounds of (threads x {runs} runs) /
wall time; latency is one run's `run()` call, p50 and p99 over all rounds.

| path | client threads | runs | throughput | p50 | p99 |
|---|---|---|---|---|---|
{rows}

All servers, HAProxy and the clients share this machine's {nproc} cores,
so a second server adds no CPU: what the rows compare is the cost of the
proxy hop and of two servers competing for the same cores, not the gain
of scaling out, which needs servers on their own machines (docs/scaling.md,
"Sizing": runs per core, from bench/results.md and this table).
""".format(runs=a.runs, rounds=a.rounds, threads=a.threads,
           date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), nproc=os.cpu_count(),
           kernel=platform.release(), haproxy=hv.split("\n")[0].replace("HAProxy version ", ""),
           load=" / ".join("%.2f" % x for x in load0), bin=a.sandcell, rev=rev,
           slots=2 * (os.cpu_count() or 1), rows="\n".join(rows))
    with open(a.out, "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
