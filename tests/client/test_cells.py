"""python3 -m sandcell.cells: a file of cells (.py with "# %%" markers, or
.ipynb) run in one session from the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat

from client_util import BIN, PY_DIR

CELLS = """# %%
import pandas as pd
df = pd.DataFrame({"a": [1, 2, 3]})
print("rows", len(df))
# %% a table
df.a.sum()
# %%
import matplotlib.pyplot as plt
plt.plot(df.a); plt.show()
# %%
name = input("name? ")
print("hi", name)
# %%
1 / 0
# %%
print("after the error")
"""


def cells(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=PY_DIR, SANDCELL_BIN=BIN)
    return subprocess.run([sys.executable, "-m", "sandcell.cells", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_py_file_of_cells(tmp_path):
    src = tmp_path / "cells.py"
    src.write_text(CELLS)
    out = tmp_path / "out.ipynb"
    p = cells(str(src), "-o", str(out), stdin="bob\n")
    assert p.returncode == 1, p.stderr          # cell 5 raised
    assert "rows 3\n" in p.stdout and "6\n" in p.stdout and "[display_data: image/png]" in p.stdout
    assert "hi bob" in p.stdout and "ZeroDivisionError" in p.stdout
    assert "after the error" not in p.stdout    # stops at the first error
    nb = nbformat.read(str(out), as_version=4)
    nbformat.validate(nb)
    assert [c.execution_count for c in nb.cells] == [1, 2, 3, 4, 5, None]
    assert [o.output_type for o in nb.cells[4].outputs] == ["error"]


def test_keep_going_and_an_ipynb(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell("x = 1\n1 / 0"),
                nbformat.v4.new_code_cell("print(x + 1)")]
    src = tmp_path / "in.ipynb"
    src.write_text(json.dumps(nb))
    p = cells(str(src), "--keep-going")
    assert p.returncode == 1 and "ZeroDivisionError" in p.stdout and "2\n" in p.stdout


def test_limits_and_bad_arguments(tmp_path):
    src = tmp_path / "c.py"
    src.write_text("# %%\nb = bytearray(1 << 30)\n# %%\nprint('never')\n")
    p = cells(str(src), "--limit", "memory=256M")
    assert p.returncode == 3 and "memory" in p.stderr and "never" not in p.stdout
    assert cells(str(tmp_path / "missing.py")).returncode == 2
    assert cells(str(src), "--limit", "nope=1").returncode == 2
