"""Fixtures of the kernel tier: a Jupyter data directory holding the
sandcell kernelspec of this tree (python/ and build/sandcell)."""
from __future__ import annotations

import json
import os
import pathlib
import sys
from typing import Iterator

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
