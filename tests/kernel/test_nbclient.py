"""The sandcell kernel against the ordinary ipykernel: the same notebooks
(numpy, pandas, matplotlib, state across cells, a data file next to the
notebook, an exception) executed headlessly by nbclient with each kernel
give the same outputs cell by cell, apart from the differences
docs/kernel.md lists (normalized here, each named)."""
from __future__ import annotations

import copy
import pathlib
import re
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from kernel_util import notebook

ADDR = re.compile(r"0x[0-9a-f]{6,}")


def execute(path: pathlib.Path, kernel: str) -> Any:
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(copy.deepcopy(nb), kernel_name=kernel, timeout=180,
                            allow_errors=True, resources={"metadata": {"path": str(path.parent)}})
    return client.execute()


def normalize(outputs: list[dict[str, Any]]) -> list[Any]:
    """What must agree.  Documented differences: stream chunks may split
    differently (merged here); tracebacks are formatted differently
    (ipykernel colors them and names cells "Cell In[n]"): ename and
    evalue must agree; figures are PNGs of the same figure from two
    backends (compared by type); memory addresses differ; shell escapes'
    lines end in \r\n in ipykernel (a pty), in \n here; IPython prints a
    UsageError on stderr, sandcell makes it the cell's error output."""
    norm: list[Any] = []
    for o in outputs:
        kind = o["output_type"]
        if kind == "stream":
            # ipykernel runs `!cmd` on a pty: its lines end in \r\n.
            text = o["text"].replace("\r\n", "\n")
            # IPython prints a UsageError (a magic that does not exist) on
            # stderr; here it is the cell's error output.
            if o["name"] == "stderr" and text.startswith("UsageError: "):
                norm.append(("error", "UsageError", text[len("UsageError: "):].rstrip("\n")))
                continue
            if norm and norm[-1][0] == "stream" and norm[-1][1] == o["name"]:
                norm[-1] = ("stream", o["name"], norm[-1][2] + text)
            else:
                norm.append(("stream", o["name"], text))
        elif kind == "error":
            norm.append(("error", o["ename"], o["evalue"]))
        else:
            data = {}
            for mime, v in o["data"].items():
                if mime.startswith("image/"):
                    data[mime] = "<image>"
                else:
                    data[mime] = ADDR.sub("0x?", v if isinstance(v, str) else str(v))
            norm.append((kind, o.get("execution_count"), data))
    return norm


@pytest.mark.parametrize("name", ["analysis", "magics"])
def test_outputs_match_ipykernel(jupyter_path: str, tmp_path: pathlib.Path, name: str) -> None:
    path = notebook(name, tmp_path / name)
    ours = execute(path, "sandcell")
    ref = execute(path, "python3")
    assert len(ours.cells) == len(ref.cells)
    for i, (a, b) in enumerate(zip(ours.cells, ref.cells), 1):
        assert a.execution_count == b.execution_count == i
        assert normalize(a.outputs) == normalize(b.outputs), "cell %d: %s" % (i, a.source)
    nbformat.validate(ours)
    # Tracebacks name the cell by Jupyter's execution count.
    for c in ours.cells:
        for o in c.outputs:
            if o["output_type"] == "error":
                assert '"<cell %d>"' % c.execution_count in "\n".join(o["traceback"])
    # The figure is there, as a PNG.
    pngs = [o for c in ours.cells for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1
