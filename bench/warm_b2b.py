#!/usr/bin/python3
"""Back-to-back warm latency of several builds, in alternating blocks
(bench/warm-steps.md).

    BLOCKS=30 /usr/bin/python3 bench/warm_b2b.py NAME=PATH/TO/sandcell [NAME=...]

Each NAME gets its own `sandcell serve` (defaults).  Then BLOCKS rounds; in
each, every server in turn (the order reversed every other round) serves
30 runs of CODE (default `pass`) back to back from one client process at
a time, after a 0.3 s pause, so that each run overlaps the refill of the
spare the one before used, as in `bench/run.sh`'s one-client row (which
`bench/warm_ab.py` avoids with its pause after each run).  Prints p25,
p50, p75, p90 and the mean per build.  Run as root.
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from harness import WarmServer  # noqa: E402

BLOCKS = int(os.environ.get("BLOCKS", "15"))
CODE = os.environ.get("CODE", "pass")


def one(binary, sock):
    subprocess.run([binary, "run", "--server", sock, "-c", CODE], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    builds = [a.split("=", 1) for a in sys.argv[1:]]
    if not builds or any(len(b) != 2 for b in builds):
        sys.exit(__doc__)
    # NAME=BINARY, or NAME="BINARY --server-option ..." for the server
    builds = [(n, b.split()) for n, b in builds]
    servers = [(n, v[0], WarmServer(v[1:], binary=os.path.abspath(v[0]))) for n, v in builds]
    lat = {n: [] for n, _ in builds}
    try:
        for _, b, s in servers:
            for _ in range(20):
                one(b, s.sock)
        for r in range(BLOCKS):
            for n, b, s in (servers if r % 2 == 0 else servers[::-1]):
                time.sleep(0.3)
                for _ in range(30):
                    t0 = time.perf_counter()
                    one(b, s.sock)
                    lat[n].append(time.perf_counter() - t0)
    finally:
        for _, _, s in servers:
            s.stop()
    for n, v in lat.items():
        v.sort()
        q = [1000 * v[int(len(v) * f)] for f in (.25, .5, .75, .9)]
        print("%-10s n=%d p25 %.2f  p50 %.2f  p75 %.2f  p90 %.2f  mean %.2f ms" % (
            n, len(v), q[0], q[1], q[2], q[3], 1000 * statistics.mean(v)))


if __name__ == "__main__":
    main()
