"""DataFrames in and out of a run, as frame archives (docs/datasets.md).

In: each DataFrame is encoded on the host (``sandcell.frames.dump``) into
the run's private work directory and handed over as a *dataset*, a
read-only file the code reads through ``sandcell.datasets[NAME]``.  A path
to an existing archive is passed as it is (the sandbox checks it).

Out: what the code publishes with ``sandcell.datasets[NAME] = df`` is
collected like every output file, as ``datasets/NAME.scf``; here each such
file is checked against the report (size, SHA-256) and read with the
codec's hardened reader, which never unpickles or evaluates anything.
numpy and pandas are imported only when datasets are used.
"""
from __future__ import annotations

import importlib
import os
import re
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from ._errors import BadRequest, Error
from ._result import OutputFile

__all__ = ["datasets_in", "datasets_out", "DATASET_DIR", "SUFFIX"]

#: Where published datasets are collected, relative to the output directory.
DATASET_DIR = "datasets"
SUFFIX = ".scf"
_PUBLISHED = re.compile(r"datasets/([A-Za-z0-9_][A-Za-z0-9._-]*)\.scf\Z")


def datasets_in(datasets: Mapping[str, Any], workdir: str) -> List[Tuple[str, str]]:
    """``(name, host path)`` of each dataset: DataFrames written as archives
    in ``workdir`` (private to this run), paths of archives as given."""
    if not datasets:
        return []
    frames: Any = importlib.import_module(__package__ + ".frames")
    d = os.path.join(workdir, "datasets")
    os.mkdir(d, 0o700)
    out: List[Tuple[str, str]] = []
    for name, df in datasets.items():
        if isinstance(df, (str, os.PathLike)):
            p = os.fspath(df)
            if not isinstance(p, str) or not os.path.isfile(p):
                raise BadRequest("dataset %r: %r is not a frame archive file" % (name, df))
            out.append((name, os.path.realpath(p)))
            continue
        path = os.path.join(d, name + SUFFIX)
        try:
            frames.dump(df, path)
        except (TypeError, ValueError) as e:
            raise BadRequest("dataset %r: %s" % (name, e)) from None
        out.append((name, path))
    return out


def datasets_out(files: Sequence[OutputFile], limits: Any = None,
                 prefix: str = "") -> Tuple[Dict[str, Any], Dict[str, str]]:
    """The DataFrames published by the run, and why any that is listed
    could not be read (name -> message).  A file under datasets/ without
    the .scf suffix, or with a name the code could not have published, is
    an ordinary output file.  ``prefix``: where the run's /output is
    within the listed paths (a session's cell: "SEQ/")."""
    found = [(m.group(1), f) for f in files if f.path.startswith(prefix)
             for m in [_PUBLISHED.match(f.path[len(prefix):])] if m]
    if not found:
        return {}, {}
    frames: Any = importlib.import_module(__package__ + ".frames")
    lim = limits if limits is not None else frames.DEFAULT_LIMITS
    loaded: Dict[str, Any] = {}
    errors: Dict[str, str] = {}
    for name, f in found:
        try:
            loaded[name] = frames.load(f.read_bytes(), limits=lim)
        except (frames.FrameFormatError, Error, OSError) as e:
            errors[name] = "%s: %s" % (f.path, e)
    return loaded, errors
