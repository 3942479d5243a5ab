#!/usr/bin/python3
"""Sessions and the Jupyter kernel against ipykernel, side by side in one run.

    /usr/bin/python3 bench/sessions.py [--cells 200] [--starts 10] [--notebooks 3]
                                       [--sandcell build/sandcell] [--out bench/sessions.md]

1. a trivial cell (`1`) round trip: in a live sandcell session
   (sandcell.Session.run), through the sandcell kernel, and through the
   ordinary ipykernel (both by jupyter_client, execute_interactive);
2. start until the first cell ran: a sandcell session, cold
   (sandcell.Session()) and from a warm server's template
   (Server.session()), and the sandcell kernel vs ipykernel (jupyter_client's
   start_new_kernel); then the same with a first cell that imports pandas
   and sums a column (the sessions and ipykernel);
3. a 20-cell pandas notebook end to end (nbclient: kernel start, every
   cell, shutdown) with the sandcell kernel and with ipykernel.

Medians; the alternatives take turns in each repetition.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import nbformat  # noqa: E402
from jupyter_client.manager import start_new_kernel  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

import sandcell  # noqa: E402

NOTEBOOK = [
    "import numpy as np\nimport pandas as pd",
    "rng = np.random.default_rng(0)\nn = 20000",
    "df = pd.DataFrame({'g': rng.integers(0, 50, n), 'x': rng.normal(size=n), 'y': rng.normal(size=n)})",
    "df.head()",
    "df.describe()",
    "df['z'] = df.x * 2 + df.y",
    "agg = df.groupby('g').agg(x=('x', 'mean'), y=('y', 'sum'), n=('z', 'size'))",
    "agg.head(10)",
    "corr = df[['x', 'y', 'z']].corr()\ncorr",
    "df['bucket'] = pd.cut(df.x, 5)",
    "df.bucket.value_counts().sort_index()",
    "pivot = df.pivot_table(index='g', columns='bucket', values='y', aggfunc='count')",
    "pivot.iloc[:5]",
    "top = agg.sort_values('y', ascending=False).head(5)\ntop",
    "s = df.set_index('g').sort_index()",
    "len(s.loc[3:7])",
    "df['r'] = df.z.rolling(100).mean()",
    "df.r.dropna().tail()",
    "m = df.merge(agg, left_on='g', right_index=True, suffixes=('', '_g'))\nm.shape",
    "print(round(float(m.x_g.sum()), 6))",
]


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def p50(xs: List[float]) -> float:
    return statistics.median(xs)


def jupyter_path(tmp: str, binary: str) -> None:
    d = os.path.join(tmp, "kernels", "sandcell")
    os.makedirs(d)
    with open(os.path.join(d, "kernel.json"), "w") as f:
        json.dump({"argv": ["/usr/bin/python3", "-m", "sandcell.kernel", "-f", "{connection_file}"],
                   "display_name": "Python 3 (sandcell)", "language": "python",
                   "env": {"PYTHONPATH": os.path.join(ROOT, "python"), "SANDCELL_BIN": binary}}, f)
    os.environ["JUPYTER_PATH"] = tmp


def kernel_cells(name: str, n: int) -> List[float]:
    km, kc = start_new_kernel(kernel_name=name, startup_timeout=120)
    try:
        kc.execute_interactive("1", timeout=60)   # warm-up: the session's first cell
        out = []
        for _ in range(n):
            out.append(timed(lambda: kc.execute_interactive("1", timeout=60)))
        return out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


PANDAS_CELL = "import pandas as pd\npd.DataFrame({'a': [1, 2]}).a.sum()"


def session_cells(n: int, server: Any = None) -> List[float]:
    with (server.session() if server is not None else sandcell.Session()) as s:
        s.run("1")
        return [timed(lambda: s.run("1")) for _ in range(n)]


def kernel_start(name: str, code: str = "1") -> float:
    t = time.perf_counter()
    km, kc = start_new_kernel(kernel_name=name, startup_timeout=120)
    kc.execute_interactive(code, timeout=60)
    took = time.perf_counter() - t
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    return took


def session_start(server: Any = None, code: str = "1") -> float:
    t = time.perf_counter()
    s = server.session() if server is not None else sandcell.Session()
    r = s.run(code)
    took = time.perf_counter() - t
    assert r.ok, r
    s.close()
    return took


def notebook_run(name: str, tmp: str) -> float:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in NOTEBOOK]
    client = NotebookClient(nb, kernel_name=name, timeout=300, resources={"metadata": {"path": tmp}})
    t = time.perf_counter()
    client.execute()
    took = time.perf_counter() - t
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    return took


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs, Linux %s, Python %s" % (cpu, os.cpu_count() or 0, platform.release(),
                                                   platform.python_version())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--starts", type=int, default=10)
    ap.add_argument("--notebooks", type=int, default=3)
    ap.add_argument("--sandcell", default=os.path.join(ROOT, "build", "sandcell"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    binary = os.path.abspath(args.sandcell)
    os.environ["SANDCELL_BIN"] = binary
    tmp = tempfile.mkdtemp(prefix="sandcell-bench-sessions-")
    os.chmod(tmp, 0o755)
    jupyter_path(tmp, binary)

    srv = sandcell.Server(slots=2).start()
    try:
        cell: Dict[str, List[float]] = {"cold": session_cells(args.cells),
                                        "warm": session_cells(args.cells, srv),
                                        "sandcell kernel": kernel_cells("sandcell", args.cells),
                                        "ipykernel": kernel_cells("python3", args.cells)}
        start: Dict[str, List[float]] = {k: [] for k in cell}
        pstart: Dict[str, List[float]] = {"cold": [], "warm": [], "ipykernel": []}
        for _ in range(args.starts):
            start["cold"].append(session_start())
            start["warm"].append(session_start(srv))
            start["sandcell kernel"].append(kernel_start("sandcell"))
            start["ipykernel"].append(kernel_start("python3"))
            pstart["cold"].append(session_start(code=PANDAS_CELL))
            pstart["warm"].append(session_start(srv, PANDAS_CELL))
            pstart["ipykernel"].append(kernel_start("python3", PANDAS_CELL))
    finally:
        srv.stop()
    nb: Dict[str, List[float]] = {"sandcell kernel": [], "ipykernel": []}
    for _ in range(args.notebooks):
        nb["sandcell kernel"].append(notebook_run("sandcell", tmp))
        nb["ipykernel"].append(notebook_run("python3", tmp))

    ms = lambda x: "%.1f ms" % (x * 1000)  # noqa: E731
    ref_c, ref_s, ref_n = p50(cell["ipykernel"]), p50(start["ipykernel"]), p50(nb["ipykernel"])
    lines = ["# Sessions and the Jupyter kernel vs ipykernel", "",
             "`/usr/bin/python3 bench/sessions.py %s` on %s (%s); medians, the alternatives taking turns."
             % (" ".join(sys.argv[1:]), datetime.date.today().isoformat(), machine()), "",
             "| | sandcell session, cold (Python API) | sandcell session, warm (Server.session) "
             "| sandcell kernel | ipykernel (unsandboxed) | sandcell kernel / ipykernel | goal |",
             "|---|---|---|---|---|---|---|",
             "| trivial cell round trip (%d) | %s | %s | %s | %s | %.2fx | no slower |" % (
                 args.cells, ms(p50(cell["cold"])), ms(p50(cell["warm"])), ms(p50(cell["sandcell kernel"])),
                 ms(ref_c), p50(cell["sandcell kernel"]) / ref_c),
             "| start, until a first cell (`1`) ran (%d) | %s | %s | %s | %s | %.2fx | faster |" % (
                 args.starts, ms(p50(start["cold"])), ms(p50(start["warm"])),
                 ms(p50(start["sandcell kernel"])), ms(ref_s), p50(start["sandcell kernel"]) / ref_s),
             "| start, until a first pandas cell ran (%d) | %s | %s | | %s | | |" % (
                 args.starts, ms(p50(pstart["cold"])), ms(p50(pstart["warm"])), ms(p50(pstart["ipykernel"]))),
             "| 20-cell pandas notebook, nbclient end to end (%d) | | | %s | %s | %.2fx | within 1.2x |" % (
                 args.notebooks, ms(p50(nb["sandcell kernel"])), ms(ref_n), p50(nb["sandcell kernel"]) / ref_n),
             "",
             "The pandas cell is `%s`.  A warm one-shot run (`sandcell run --server`) of `pass` "
             "takes about as long as the warm session's start (bench/results.md)." % PANDAS_CELL.replace("\n", "; "),
             ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
