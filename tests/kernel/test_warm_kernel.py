"""The sandcell kernel on a warm server (SANDCELL_KERNEL_SERVER,
docs/kernel.md): the test notebook executed by nbclient gives the outputs
the cold sandcell kernel gives, and its session ran on the server (pandas
is in sys.modules before the notebook imports it: the template's)."""
from __future__ import annotations

import json
import os
import pathlib
import sys

import nbformat

from kernel_util import notebook
from test_nbclient import execute, normalize

import harness

sys.path.insert(0, os.path.join(harness.ROOT, "python"))
os.environ.setdefault("SANDCELL_BIN", os.path.abspath(harness.BIN))
import sandcell  # noqa: E402


def test_notebook_on_a_warm_server(jupyter_path: str, tmp_path: pathlib.Path) -> None:
    path = notebook("analysis", tmp_path / "analysis")
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\n'pandas' in sys.modules"))
    nbformat.write(nb, str(path))
    with sandcell.Server(slots=1) as srv:
        spec_dir = pathlib.Path(jupyter_path) / "kernels" / "sandcell-warm"
        spec_dir.mkdir(parents=True, exist_ok=True)
        spec = json.loads((pathlib.Path(jupyter_path) / "kernels" / "sandcell" / "kernel.json").read_text())
        spec["env"]["SANDCELL_KERNEL_SERVER"] = srv.socket
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        warm = execute(path, "sandcell-warm")
    cold = execute(path, "sandcell")
    assert warm.cells[0].outputs[0]["data"]["text/plain"] == "True"
    assert cold.cells[0].outputs[0]["data"]["text/plain"] == "False"
    assert len(warm.cells) == len(cold.cells)
    for i, (a, b) in enumerate(zip(warm.cells[1:], cold.cells[1:]), 2):
        assert a.execution_count == b.execution_count == i
        assert normalize(a.outputs) == normalize(b.outputs), "cell %d: %s" % (i, a.source)
