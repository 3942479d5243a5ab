#!/usr/bin/python3
"""HTTP (sandcell-http) against the local socket, side by side in one run.

    /usr/bin/python3 bench/http_latency.py [--runs 200] [--cells 200] [--sandcell build/sandcell]
                                   [--out bench/http_latency.md] [--baseline-python DIR]

One warm server (sandcell.Server, 2 spares) and one sandcell-http in front
of it on loopback (a token file, auth on, as deployed).  Measured, the
alternatives taking turns in every repetition:

1. a trivial one-shot run (`pass`, cell mode, the Python client's
   default), until its report is in hand:
   - HTTP, the Python client: sandcell.connect(url).run
   - HTTP, raw: one http.client POST /v1/runs (JSON body), the NDJSON
     read to its report (a kept-alive connection; no parsing beyond
     splitting lines)
   - local socket, the Python client: Server.run
   - local socket, the CLI: `sandcell run --server SOCK --cell -c pass`
     (includes the CLI's own start, about a millisecond)
2. a session cell (`1`) round trip in a live session: connect().session()
   and a raw POST .../cells on a kept-alive connection against
   Server.session() (all three sessions on the same warm server).

p50 and p90 of each; the goal (issue 11) is HTTP at most 1 ms more than
the local socket at p50.

--baseline-python DIR (a checkout's python/ directory, e.g. of main):
its Python client's connect().run is measured too, as one more
alternative taking turns with the others (the same server and front end),
to compare a change of the client side by side.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import http.client
import json
import os
import platform
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import sandcell  # noqa: E402

SECRET = "bench-" + "k" * 40


def quantile(xs: List[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def start_front(binary: str, sock: str, tmp: str) -> "tuple[subprocess.Popen[bytes], int]":
    tokens = os.path.join(tmp, "tokens")
    with open(os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write("bench:%s:64:1000000\n" % SECRET)
    log = os.path.join(tmp, "http.log")
    http_bin = os.path.join(os.path.dirname(binary), "sandcell-http")
    proc = subprocess.Popen([http_bin, "--socket", sock, "--listen", "127.0.0.1:0", "--token-file",
                             tokens, "--selftest-interval", "3600"], stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(log) as f:
            m = re.search(r"listening on [^ ]+:(\d+) ", f.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        select.select([], [], [], 0.05)
    raise SystemExit("sandcell-http did not start: " + open(log).read())


class Raw:
    """POST /v1/runs on one kept-alive connection, the stream read to its report."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.body = json.dumps({"code": "pass", "cell": True}).encode()
        self.headers = {"Authorization": "Bearer " + SECRET, "Content-Type": "application/json"}

    def __call__(self) -> None:
        self.conn.request("POST", "/v1/runs", body=self.body, headers=self.headers)
        r = self.conn.getresponse()
        last = b""
        for line in r:
            last = line
        if r.status != 200 or not last.startswith(b'{"ev":"report"') or b'"status":"ok"' not in last:
            raise SystemExit("raw run failed: %d %r" % (r.status, last[:300]))


class RawCell:
    """POST .../cells of a live session on one kept-alive connection, the
    stream read to its done: the front end's share of a cell over HTTP."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": "Bearer " + SECRET, "Content-Type": "application/json"}
        self.conn.request("POST", "/v1/sessions", body=b"{}", headers=self.headers)
        r = self.conn.getresponse()
        self.sid = json.loads(r.read())["session"]
        self.body = json.dumps({"code": "1"}).encode()

    def __call__(self) -> None:
        self.conn.request("POST", "/v1/sessions/%s/cells" % self.sid, body=self.body,
                          headers=self.headers)
        r = self.conn.getresponse()
        last = b""
        for line in r:
            last = line
        if r.status != 200 or not last.startswith(b'{"ev":"done"') or b'"status":"ok"' not in last:
            raise SystemExit("raw cell failed: %d %r" % (r.status, last[:300]))

    def close(self) -> None:
        self.conn.request("DELETE", "/v1/sessions/" + self.sid, headers=self.headers)
        self.conn.getresponse().read()
        self.conn.close()


def load_baseline(pydir: str) -> "object":
    """The sandcell package of another checkout, imported under the name
    sandcell_baseline (its relative imports stay within it)."""
    path = os.path.join(os.path.abspath(pydir), "sandcell", "__init__.py")
    spec = importlib.util.spec_from_file_location("sandcell_baseline", path,
                                                  submodule_search_locations=[os.path.dirname(path)])
    if spec is None or spec.loader is None:
        raise SystemExit("no sandcell package in %s" % pydir)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["sandcell_baseline"] = mod
    spec.loader.exec_module(mod)
    return mod


def measure(alts: Dict[str, Callable[[], None]], n: int) -> Dict[str, List[float]]:
    out: Dict[str, List[float]] = {k: [] for k in alts}
    for fn in alts.values():   # one warm-up each
        fn()
    for _ in range(n):
        for k, fn in alts.items():
            t = time.perf_counter()
            fn()
            out[k].append((time.perf_counter() - t) * 1000)
    return out


def check_ok(res: sandcell.Result) -> None:
    if res.status != "ok":
        raise SystemExit("run failed: %s" % res.status)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--sandcell", default=os.path.join(ROOT, "build", "sandcell"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--baseline-python", default=None)
    a = ap.parse_args()
    binary = os.path.abspath(a.sandcell)
    tmp = tempfile.mkdtemp(prefix="sandcell-bench-http.")
    srv = sandcell.Server(binary=binary, spares=2, slots=2, max_sessions=4)
    srv.start()
    front, port = start_front(binary, srv.socket, tmp)
    try:
        remote = sandcell.connect("http://127.0.0.1:%d" % port, token=SECRET)
        raw = Raw(port)
        cli = [binary, "run", "--server", srv.socket, "--cell", "-c", "pass"]
        alts = {"HTTP, Python client (connect().run)": lambda: check_ok(remote.run("pass"))}
        if a.baseline_python:
            old = load_baseline(a.baseline_python).connect(  # type: ignore[attr-defined]
                "http://127.0.0.1:%d" % port, token=SECRET)
            alts["HTTP, baseline Python client (%s)" % a.baseline_python] = \
                lambda: check_ok(old.run("pass"))
        runs = measure(dict(alts, **{
            "HTTP, raw http.client POST /v1/runs": raw,
            "local socket, Python client (Server.run)": lambda: check_ok(srv.run("pass")),
            "local socket, CLI (sandcell run --server)":
                lambda: subprocess.run(cli, check=True, stdout=subprocess.DEVNULL),
        }), a.runs)
        raw_cell = RawCell(port)
        with remote.session() as rs, srv.session() as ls:
            cells = measure({
                "HTTP session, Python client (connect().session().run)": lambda: rs.run("1"),
                "HTTP session, raw http.client POST .../cells": raw_cell,
                "local warm session, Python client (Server.session().run)": lambda: ls.run("1"),
            }, a.cells)
        raw_cell.close()
    finally:
        front.send_signal(signal.SIGTERM)
        front.wait(30)
        srv.stop()
        subprocess.run(["rm", "-rf", tmp])
    report(a, runs, cells)
    return 0


def report(a: argparse.Namespace, runs: Dict[str, List[float]], cells: Dict[str, List[float]]) -> None:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    lines = ["# HTTP (sandcell-http) against the local socket", "",
             "`/usr/bin/python3 bench/http_latency.py --runs %d --cells %d%s` on %s (%s, %d CPUs, Linux %s, "
             "Python %s); one warm server (2 spares) and one sandcell-http on loopback in front "
             "of it, the alternatives taking turns in every repetition."
             % (a.runs, a.cells, " --baseline-python " + a.baseline_python if a.baseline_python else "",
                datetime.date.today().isoformat(), cpu, os.cpu_count() or 0,
                platform.release(), platform.python_version()), "",
             "| | p50 | p90 | p50 minus the local Python client's |", "|---|---|---|---|"]
    base = statistics.median(runs["local socket, Python client (Server.run)"])
    for k, xs in runs.items():
        lines.append("| trivial run (`pass`): %s | %.2f ms | %.2f ms | %+.2f ms |"
                     % (k, statistics.median(xs), quantile(xs, 0.9), statistics.median(xs) - base))
    cbase = statistics.median(cells["local warm session, Python client (Server.session().run)"])
    for k, xs in cells.items():
        lines.append("| session cell (`1`) round trip: %s | %.2f ms | %.2f ms | %+.2f ms (vs the local session) |"
                     % (k, statistics.median(xs), quantile(xs, 0.9), statistics.median(xs) - cbase))
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    sys.exit(main())
