"""Notebook outputs (nbformat v4) from a finished run.

This module is the one place that turns a run into ``Result.outputs``.  A
cell-mode run (``cell=``, docs/report.md "Cell mode") has them in its
report, in order, checked by the host and again by the report parser:
they are used as they are.  A plain run has no ordered output record, only
its two captured streams, so its outputs are what exists: a ``stream``
output for stdout, then one for stderr (each only when non-empty), then
what the code sent with ``sandcell.display()``.  Their relative order is
lost: nothing here guesses it, and nothing is invented (no execute_result,
no error output: the traceback is the stderr text, the exception is
``report.code_error``).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List

from ._report import Report

__all__ = ["build_outputs"]


def _stream(name: str, data: bytes) -> Dict[str, Any]:
    # nbformat's stream text is str; the code's bytes are not necessarily
    # UTF-8, so undecodable bytes show as U+FFFD (the raw bytes stay in
    # Result.stdout / Result.stderr).
    return {"output_type": "stream", "name": name, "text": data.decode("utf-8", "replace")}


def build_outputs(report: Report, stdout: bytes, stderr: bytes) -> List[Dict[str, Any]]:
    """The run's outputs, in order, as nbformat v4 output dicts (copies)."""
    cell = report.cell
    if cell is not None and cell.mode == "cell":
        return [copy.deepcopy(dict(o)) for o in cell.outputs]
    outs: List[Dict[str, Any]] = []
    if stdout:
        outs.append(_stream("stdout", stdout))
    if stderr:
        outs.append(_stream("stderr", stderr))
    if cell is not None:
        outs += [copy.deepcopy(dict(o)) for o in cell.outputs]
    return outs
