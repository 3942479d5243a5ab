"""Notebook outputs (nbformat v4) from a finished run.

SEAM (cell mode): this module is the one place that turns a run into
``Result.outputs``.  Until cell mode exists, a run has no ordered output
record, only its two captured streams, so the outputs are what exists: a
``stream`` output for stdout, then one for stderr (each only when
non-empty).  Their relative order is lost: nothing here guesses it, and
nothing is invented (no execute_result, no error output).  Cell mode
replaces :func:`build_outputs` to read the report's ordered outputs (with a
structured error), parsed as strictly as the rest of the report.
"""
from __future__ import annotations

from typing import Any, Dict, List

from ._report import Report

__all__ = ["build_outputs"]


def _stream(name: str, data: bytes) -> Dict[str, Any]:
    # nbformat's stream text is str; the code's bytes are not necessarily
    # UTF-8, so undecodable bytes show as U+FFFD (the raw bytes stay in
    # Result.stdout / Result.stderr).
    return {"output_type": "stream", "name": name, "text": data.decode("utf-8", "replace")}


def build_outputs(report: Report, stdout: bytes, stderr: bytes) -> List[Dict[str, Any]]:
    """The run's outputs, in order, as nbformat v4 output dicts."""
    del report  # cell mode reads its ordered outputs from here
    outs: List[Dict[str, Any]] = []
    if stdout:
        outs.append(_stream("stdout", stdout))
    if stderr:
        outs.append(_stream("stderr", stderr))
    return outs
