"""The Jupyter kernel with a remote server: $SANDCELL_URL and
$SANDCELL_TOKEN_FILE in the kernelspec's env make its session one held by
sandcell-http; one notebook executed by nbclient (docs/kernel.md)."""
from __future__ import annotations

import json
import os

import pytest

import harness
from remote_util import Served, needs_http

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytestmark = needs_http


def test_notebook_runs_on_the_remote_server(served: Served, tmp_path, monkeypatch):
    spec_dir = tmp_path / "jupyter" / "kernels" / "sandcell-remote"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [harness.HOST_PYTHON, "-m", "sandcell.kernel", "-f", "{connection_file}"],
            "display_name": "sandcell (remote)", "language": "python", "interrupt_mode": "signal",
            "env": {"PYTHONPATH": os.path.join(harness.ROOT, "python"),
                    # No local CLI: everything must go through the URL.
                    "SANDCELL_BIN": "/nonexistent/sandcell",
                    "SANDCELL_URL": served.url, "SANDCELL_TOKEN_FILE": served.token_files["main"]}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os\nx = 6\nprint('pid', os.getpid())"),
        nbformat.v4.new_code_cell("x * 7"),
        nbformat.v4.new_code_cell("1 / 0"),
    ])
    before = {i.id for i in served.client().sessions()}
    out = nbclient.NotebookClient(nb, kernel_name="sandcell-remote", timeout=120,
                                  allow_errors=True).execute()
    c0, c1, c2 = (c.outputs for c in out.cells)
    assert c0[0]["text"].startswith("pid ")
    assert c1[0]["data"]["text/plain"] == "42"
    assert c2[0]["output_type"] == "error" and c2[0]["ename"] == "ZeroDivisionError"
    # The kernel closed its session on shutdown.
    assert {i.id for i in served.client().sessions()} <= before
