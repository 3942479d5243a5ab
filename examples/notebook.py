"""The README's demo: a three-cell notebook analysis, every cell sandboxed.

What a notebook platform's backend does with sandcell's host client: each
cell runs in a fresh sandbox as a notebook cell, its ordered outputs (text,
tables, figures, errors) come back as nbformat v4 outputs, and DataFrames
pass from one cell to the next as datasets (published by one cell, handed
in to the next), typed and exact, never pickled.  The notebook is written
as an .ipynb (validated with nbformat) and as a self-contained HTML page a
person can open; a summary of each run goes to summary.json.

    /usr/bin/python3 examples/notebook.py [OUTDIR]     (make demo: build/demo)
"""
from __future__ import annotations

import html
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import nbformat  # noqa: E402

import sandcell  # noqa: E402

CELLS = [
    # 1. Load and type the raw CSV (an input file), publish it as a dataset.
    '''import pandas as pd, sandcell
sales = pd.read_csv(sandcell.inputs["sales"], parse_dates=["date"])
sales["region"] = sales["region"].astype("category")
sales["revenue"] = sales["units"] * sales["unit_price"]
print(f"{len(sales)} rows, {sales.date.min():%d %b} to {sales.date.max():%d %b %Y}")
sandcell.datasets["sales"] = sales
sales.head()''',
    # 2. Analyse the typed dataset: a table, a figure, a published result.
    '''import matplotlib.pyplot as plt, sandcell
sales = sandcell.datasets["sales"]
by_region = (sales.groupby("region", observed=True)
             .agg(revenue=("revenue", "sum"), orders=("units", "size"))
             .sort_values("revenue", ascending=False))
sandcell.datasets["by_region"] = by_region
monthly = sales.set_index("date").resample("MS").revenue.sum()
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
by_region.revenue.plot.bar(ax=a, title="Revenue by region", color="#4c72b0")
a.tick_params(axis="x", labelrotation=0)
b.plot(monthly.index.strftime("%b"), monthly.values, marker="o", color="#dd8452")
b.set_title("Revenue by month")
plt.tight_layout(); plt.show()
top = sandcell.values["top"]
print(f"top {top} products:", ", ".join(sales.groupby("product").revenue.sum().nlargest(top).index))
by_region''',
    # 3. What a hostile cell meets: the sandbox's walls, then a real error.
    '''import os, socket
for what, attempt in [("read /etc/shadow", lambda: open("/etc/shadow").read()),
                      ("list the host's /home", lambda: os.listdir("/home")),
                      ("connect to 1.1.1.1:443", lambda: socket.create_connection(("1.1.1.1", 443), 2)),
                      ("write outside /tmp and /output", lambda: open("/usr/x", "w"))]:
    try:
        attempt()
        print(f"{what}: ALLOWED")
    except OSError as e:
        print(f"{what}: denied ({e.strerror})")
print("processes visible:", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
undefined_name + 1''',
]


def run_notebook(sales_csv: str) -> List[sandcell.Result]:
    results: List[sandcell.Result] = []
    datasets: Dict[str, Any] = {}
    for code in CELLS:
        res = sandcell.run(code, cell=True, inputs={"sales": sales_csv}, values={"top": 3},
                           datasets=datasets, limits={"memory": "1G", "wall_time": 60})
        if res.dataset_errors:
            raise SystemExit("a published dataset could not be read: %s" % res.dataset_errors)
        datasets.update(res.datasets)   # what a cell publishes, the next ones get
        results.append(res)
    return results


def to_notebook(results: List[sandcell.Result]) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (sandcell)",
                                 "language": "python"}
    for n, (code, res) in enumerate(zip(CELLS, results), 1):
        cell = nbformat.v4.new_code_cell(code, execution_count=n)
        cell.outputs = [nbformat.from_dict(o) for o in res.outputs]
        for o in cell.outputs:
            if o.output_type == "execute_result":
                o.execution_count = n
        cell.metadata["sandcell"] = {"status": res.status, "wall_ms": round((res.usage.wall_sec or 0) * 1000),
                                     "isolation": res.report.isolation.mode}
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def _output_html(o: Dict[str, Any]) -> str:
    """Outputs are the sandboxed code's content: text is escaped, images
    are data URIs, and HTML (a DataFrame's table) is shown only inside an
    iframe whose sandbox attribute allows no scripts, forms or navigation."""
    kind = o["output_type"]
    if kind == "stream":
        cls = "err" if o["name"] == "stderr" else "out"
        return '<pre class="%s">%s</pre>' % (cls, html.escape(o["text"]))
    if kind == "error":
        tb = "\n".join(o["traceback"])
        return '<pre class="err">%s</pre>' % html.escape(tb)
    data = o["data"]
    if "image/png" in data:
        return '<img alt="figure" src="data:image/png;base64,%s">' % data["image/png"].replace("\n", "")
    if "text/html" in data:
        doc = "<style>table{border-collapse:collapse;font:13px sans-serif}td,th{padding:2px 8px;" \
              "border-bottom:1px solid #ddd;text-align:right}</style>" + data["text/html"]
        return '<iframe sandbox="" referrerpolicy="no-referrer" style="border:0;width:100%%;" ' \
               'onload="" srcdoc="%s"></iframe>' % html.escape(doc, quote=True)
    return "<pre>%s</pre>" % html.escape(data.get("text/plain", ""))


def to_html(results: List[sandcell.Result]) -> str:
    parts = ['<!doctype html><meta charset="utf-8"><title>sandcell notebook demo</title>',
             # No script runs on this page: everything on it came out of a sandbox.
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
             'img-src data:; style-src \'unsafe-inline\'; frame-src \'self\' about:">',
             "<style>body{font:14px sans-serif;max-width:960px;margin:2em auto}"
             ".cell{border-left:3px solid #4c72b0;margin:1.5em 0;padding-left:1em}"
             "pre{margin:.3em 0;white-space:pre-wrap}pre.code{background:#f5f5f5;padding:.5em}"
             "pre.err{color:#a00}.meta{color:#666;font-size:12px}</style>",
             "<h1>A notebook whose every cell ran in sandcell</h1>"]
    for n, (code, res) in enumerate(zip(CELLS, results), 1):
        parts.append('<div class="cell"><div class="meta">In [%d] &middot; status %s &middot; %d ms '
                     "&middot; isolation %s</div>" % (n, html.escape(res.status),
                                                     round((res.usage.wall_sec or 0) * 1000),
                                                     html.escape(res.report.isolation.mode)))
        parts.append('<pre class="code">%s</pre>' % html.escape(code))
        parts.extend(_output_html(o) for o in res.outputs)
        parts.append("</div>")
    return "\n".join(parts) + "\n"


def show(results: List[sandcell.Result]) -> None:
    for n, res in enumerate(results, 1):
        print("\n--- In [%d]: status %s, %.0f ms, isolation %s ---" % (
            n, res.status, (res.usage.wall_sec or 0) * 1000, res.report.isolation.mode))
        for o in res.outputs:
            if o["output_type"] == "stream":
                sys.stdout.write(o["text"])
            elif o["output_type"] == "error":
                print("\n".join(o["traceback"]))
            else:
                kinds = sorted(o["data"])
                text = o["data"].get("text/plain", "")
                print("[%s: %s]" % (o["output_type"], ", ".join(kinds)))
                if "image/png" not in o["data"]:
                    print(text)
        if res.datasets:
            print("published:", ", ".join("%s (%d rows x %d columns)" % (k, len(v), v.shape[1])
                                          for k, v in res.datasets.items()))


def main() -> int:
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/demo")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    t0 = time.monotonic()
    results = run_notebook(os.path.join(HERE, "data", "sales.csv"))
    took = time.monotonic() - t0
    show(results)
    nb = to_notebook(results)
    with open(os.path.join(out, "notebook.ipynb"), "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    with open(os.path.join(out, "notebook.html"), "w", encoding="utf-8") as f:
        f.write(to_html(results))
    by_region = results[1].datasets["by_region"]
    by_region.to_csv(os.path.join(out, "by_region.csv"))
    summary = {"cells": [{"status": r.status, "exit_code": r.exit_code,
                          "isolation": r.report.isolation.mode,
                          "not_held": list(r.report.isolation.not_held),
                          "output_types": [o["output_type"] for o in r.outputs],
                          "datasets": sorted(r.datasets)} for r in results],
               "seconds": round(took, 3)}
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    for r in results:
        r.close()
    print("\n%d cells in %.1f s, each in its own sandbox. Open %s/notebook.html "
          "(or notebook.ipynb in Jupyter); by_region.csv is the published dataset." %
          (len(results), took, out))
    # Cells 1 and 2 must succeed with every layer held; cell 3 ends in the
    # NameError it was written to raise, after the sandbox denied the rest.
    want = [("ok", "execute_result"), ("ok", "execute_result"), ("exited", "error")]
    got = [(r.status, r.outputs[-1]["output_type"]) for r in results]
    full = all(r.report.isolation.mode == "full" for r in results)
    if got != want or not full:
        print("unexpected: %s, isolation full: %s" % (got, full), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
