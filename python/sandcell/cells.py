"""Run a file of cells in one sandcell session, from the command line.

    python3 -m sandcell.cells analysis.py            # cells separated by "# %%" lines
    python3 -m sandcell.cells analysis.ipynb -o executed.ipynb
    python3 -m sandcell.cells cells.py --limit memory=1G --limit cell_wall_time=60 --input sales=sales.csv

Each cell runs in turn in one session (state carries over); its outputs are
printed as they come (text as is, rich outputs by their type), an error
shows its traceback and, unless --keep-going, ends the run.  With -o the
cells and their outputs are written as a notebook (nbformat v4; needs
Debian's python3-nbformat).  Exit status: 0 when every cell ran, 1 when a
cell failed, 2 for bad arguments, 3 when the session ended early.
"""
# nbformat is only partly typed.
# mypy: disallow-untyped-calls=False
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Dict, List, Optional, TextIO

from ._errors import Error
from ._session import CellResult, Session

__all__ = ["read_cells", "main"]

_MARK = re.compile(r"^# ?%%.*$", re.M)


def read_cells(path: str) -> List[str]:
    """The code cells of a .ipynb (nbformat v4 JSON), or of a .py split at
    lines starting with "# %%" (the percent format of Jupytext, VS Code,
    Spyder).  Empty cells are dropped."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".ipynb"):
        nb = json.loads(text)
        cells = []
        for c in nb.get("cells", []):
            if c.get("cell_type") == "code":
                src = c.get("source", "")
                cells.append("".join(src) if isinstance(src, list) else str(src))
    else:
        cells = _MARK.split(text)
    return [c.strip("\n") for c in cells if c.strip()]


def _show(out: Dict[str, Any], stream: TextIO) -> None:
    kind = out.get("output_type")
    if kind == "stream":
        stream.write(str(out.get("text", "")))
    elif kind == "error":
        stream.write("\n".join(str(t) for t in out.get("traceback", [])) + "\n")
    else:
        data = out.get("data") or {}
        rich = sorted(m for m in data if m != "text/plain")
        if "text/plain" in data and not any(m.startswith("image/") for m in rich):
            stream.write(str(data["text/plain"]) + "\n")
        if rich:
            stream.write("[%s: %s]\n" % (kind, ", ".join(rich)))
    stream.flush()


def _notebook(cells: List[str], results: List[Optional[CellResult]], path: str) -> None:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "sandcell", "display_name": "Python 3 (sandcell)",
                                 "language": "python"}
    for code, r in zip(cells, results):
        cell = nbformat.v4.new_code_cell(code)
        if r is not None:
            cell.execution_count = r.execution_count or None
            cell.outputs = [nbformat.from_dict(o) for o in r.outputs]
        nb.cells.append(cell)
    nbformat.validate(nb)
    with open(path, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)


def _pairs(items: List[str], what: str) -> Dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit("sandcell.cells: %s %r: NAME=VALUE expected" % (what, item))
        out[name] = value
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m sandcell.cells",
                                 description="Run a file of cells in one sandcell session.")
    ap.add_argument("file", help=".py with '# %%%%' cell markers, or .ipynb")
    ap.add_argument("-o", "--output-notebook", help="write the executed cells as this .ipynb")
    ap.add_argument("--output-dir", help="collect each cell's /output below this directory")
    ap.add_argument("--input", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--limit", action="append", default=[], metavar="KEY=VALUE",
                    help="a key of sandcell.LIMIT_KEYS, or cell_wall_time, cell_cpu_time, idle_timeout")
    ap.add_argument("--keep-going", action="store_true", help="run the next cells after an error")
    args = ap.parse_args(argv)
    try:
        cells = read_cells(args.file)
    except (OSError, ValueError) as e:
        print("sandcell.cells: %s: %s" % (args.file, e), file=sys.stderr)
        return 2
    limits: Dict[str, object] = {}
    for k, v in _pairs(args.limit, "--limit").items():
        limits[k] = float(v) if re.fullmatch(r"[0-9]+(\.[0-9]+)?", v) and \
            k in ("wall_time", "cpu_time", "cell_wall_time", "cell_cpu_time", "idle_timeout") else v
    results: List[Optional[CellResult]] = [None] * len(cells)
    status = 0
    try:
        with Session(inputs=_pairs(args.input, "--input"), limits=limits,
                     output_dir=args.output_dir) as s:
            for i, code in enumerate(cells):
                print("--- cell %d" % (i + 1), flush=True)
                r = s.run(code, on_output=lambda o: _show(o, sys.stdout),
                          on_input=lambda prompt, pw: input(prompt))
                results[i] = r
                if r.status == "killed":
                    print("sandcell.cells: the session ended: %s" % s.ended_reason, file=sys.stderr)
                    status = 3
                    break
                if not r.ok:
                    status = 1
                    if not args.keep_going:
                        break
    except Error as e:
        print("sandcell.cells: %s" % e, file=sys.stderr)
        return 2 if type(e).__name__ == "BadRequest" else 3
    if args.output_notebook:
        _notebook(cells, results, os.path.abspath(args.output_notebook))
    return status


if __name__ == "__main__":
    sys.exit(main())
