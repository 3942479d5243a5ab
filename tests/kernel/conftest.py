"""Fixtures of the kernel tier: a Jupyter data directory holding the
sandcell kernelspec of this tree (python/ and build/sandcell), and the
test notebooks, written from their cells."""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import sys
from typing import Iterator

import nbformat
import pytest

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
import harness  # noqa: E402

PYTHON_DIR = os.path.join(harness.ROOT, "python")


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """$JUPYTER_PATH with kernels/sandcell for this tree."""
    base = tmp_path_factory.mktemp("jupyter")
    spec_dir = base / "kernels" / "sandcell"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [harness.HOST_PYTHON, "-m", "sandcell.kernel", "-f", "{connection_file}"],
            "display_name": "Python 3 (sandcell)", "language": "python", "interrupt_mode": "signal",
            "env": {"PYTHONPATH": PYTHON_DIR, "SANDCELL_BIN": os.path.abspath(harness.BIN)}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(base)
    yield str(base)
    if old is None:
        del os.environ["JUPYTER_PATH"]
    else:
        os.environ["JUPYTER_PATH"] = old


def notebook(cells_module: str, dest: pathlib.Path) -> pathlib.Path:
    """Writes the .ipynb of notebooks/<name>.py's CELLS into dest (with the
    notebook's data files beside it) and returns its path."""
    src = HERE / "notebooks" / (cells_module + ".py")
    spec = importlib.util.spec_from_file_location(cells_module, src)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in mod.CELLS]
    dest.mkdir(parents=True, exist_ok=True)
    for f in (HERE / "notebooks").iterdir():
        if not f.name.endswith(".py"):
            (dest / f.name).write_bytes(f.read_bytes())
    path = dest / (cells_module + ".ipynb")
    nbformat.write(nb, str(path))
    return path
