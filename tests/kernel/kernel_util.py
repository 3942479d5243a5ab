"""Helpers of the kernel tier: the test notebooks, written from their cells."""
from __future__ import annotations

import importlib.util
import pathlib

import nbformat

HERE = pathlib.Path(__file__).parent


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
        # The data files beside the cells (not the cells, not __pycache__).
        if f.is_file() and not f.name.endswith((".py", ".pyc")):
            (dest / f.name).write_bytes(f.read_bytes())
    path = dest / (cells_module + ".ipynb")
    nbformat.write(nb, str(path))
    return path
