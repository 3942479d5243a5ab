"""Finding the sandcell CLI and what it supports."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from . import _install
from ._errors import SandboxError

__all__ = ["find_cli", "Features", "features"]


def _executable(p: str) -> bool:
    return os.path.isfile(p) and os.access(p, os.X_OK)


def find_cli(explicit: Optional[str] = None) -> str:
    """The CLI to run: ``explicit``, else ``$SANDCELL_BIN``, else the one
    installed with this package (its BINDIR), else the source tree's
    ``build/sandcell`` when this package is ``python/sandcell`` there, else
    ``sandcell`` on PATH."""
    candidates = []
    if explicit:
        candidates.append(("binary=", explicit))
    env = os.environ.get("SANDCELL_BIN")
    if env:
        candidates.append(("$SANDCELL_BIN", env))
    for label, p in candidates:
        if not _executable(p):
            raise SandboxError("%s %s: not an executable file" % (label, p))
        return os.path.abspath(p)
    if _install.BINDIR:
        p = os.path.join(_install.BINDIR, "sandcell")
        if _executable(p):
            return p
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.join(os.path.dirname(os.path.dirname(here)), "build", "sandcell")
    if os.path.basename(os.path.dirname(here)) == "python" and _executable(tree):
        return tree
    found = shutil.which("sandcell")
    if found:
        return os.path.abspath(found)
    raise SandboxError("cannot find the sandcell CLI: set $SANDCELL_BIN, pass binary=, or "
                       "install it (make install)")


@dataclass(frozen=True)
class Features:
    """What a CLI (and the server binary beside it) supports, read from its
    ``--help``: the client passes a flag only when the binary lists it."""
    quiet: bool
    #: Cell mode: the ``--cell`` flag / request field (docs/report.md).
    cell: bool
    #: Datasets: the ``--dataset`` option / the inputs' ``dataset`` field.
    dataset: bool = False


_cache: Dict[Tuple[str, int, int], Features] = {}
_lock = threading.Lock()


def _has_option(help_text: str, opt: str) -> bool:
    return re.search(r"(?m)^\s+%s\b" % re.escape(opt), help_text) is not None


def features(cli: str) -> Features:
    st = os.stat(cli)
    key = (cli, st.st_mtime_ns, st.st_size)
    with _lock:
        if key in _cache:
            return _cache[key]
    try:
        p = subprocess.run([cli, "--help"], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxError("%s --help: %s" % (cli, e)) from None
    text = p.stdout.decode("utf-8", "replace")
    f = Features(quiet=_has_option(text, "--quiet"), cell=_has_option(text, "--cell"),
                 dataset=_has_option(text, "--dataset"))
    with _lock:
        _cache[key] = f
    return f
