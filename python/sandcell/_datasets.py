"""DataFrames in and out of a run.

SEAM (datasets): the codec (``sandcell_frames``: ``dump(df, path)`` /
``load(path)``, typed, columnar, pickle-free) is not part of this sandcell
yet.  When it is, :func:`datasets_in` writes each frame into a private
directory that the run mounts read-only as one more input, and
:func:`datasets_out` loads the frames the code wrote under /output with the
codec's hardened reader.  Until then a run that passes ``datasets=`` is
refused (BadRequest) rather than run without them, and no run publishes
any.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._errors import BadRequest
from ._report import Report

__all__ = ["datasets_in", "datasets_out"]


def datasets_in(datasets: Mapping[str, Any], workdir: str) -> List[Tuple[str, str]]:
    """Extra inputs ``(name, host path)`` carrying ``datasets`` into the run."""
    del workdir
    if datasets:
        raise BadRequest("datasets= needs the dataset codec (sandcell_frames), which this "
                         "sandcell does not have yet; pass the data as an input file instead")
    return []


def datasets_out(report: Report, output_dir: Optional[str]) -> Dict[str, Any]:
    """The DataFrames the run published, by name."""
    del report, output_dir
    return {}
