"""Shared by the host-client tests (tests/client): the package under test
(python/sandcell of this tree), the CLI under test ($SANDCELL_BIN, default
build/sandcell), a warm server per module, and a `runner` fixture that runs
every parametrised test once cold and once warm.

Test modules import this by name (pytest puts tests/client on sys.path).
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("SANDCELL_BIN", os.path.join(ROOT, "build", "sandcell")))
PY_DIR = os.path.join(ROOT, "python")
IS_ROOT = os.geteuid() == 0
TEST_USER = "sandcell-test"

# The client finds its CLI through $SANDCELL_BIN first: the build under test.
os.environ["SANDCELL_BIN"] = BIN
if PY_DIR not in sys.path:
    sys.path.insert(0, PY_DIR)

import sandcell  # noqa: E402

assert os.path.dirname(os.path.dirname(os.path.abspath(sandcell.__file__))) == PY_DIR, \
    "tests/client must test this tree's python/sandcell, not " + sandcell.__file__


def run_dirs() -> List[str]:
    """The client's private per-run directories that exist now."""
    return sorted(glob.glob(os.path.join(tempfile.gettempdir(), "sandcell-run-*")))


def cli_report(*args: str, stdin: bytes = b"") -> "tuple[subprocess.CompletedProcess[bytes], Optional[Dict[str, Any]]]":
    """`sandcell run --report FILE ARGS` with the CLI itself: the reference
    the client's typed results are compared with."""
    with tempfile.TemporaryDirectory() as d:
        rpath = os.path.join(d, "report.json")
        p = subprocess.run([BIN, "run", "--report", rpath] + list(args), input=stdin,
                           capture_output=True, timeout=120)
        rep = None
        if os.path.exists(rpath) and os.path.getsize(rpath):
            with open(rpath, encoding="utf-8") as f:
                rep = json.load(f)
        return p, rep


@pytest.fixture(scope="module")
def server() -> Iterator[sandcell.Server]:
    with sandcell.Server(slots=2) as srv:
        yield srv


@pytest.fixture(params=["cold", "warm"])
def runner(request: Any) -> Callable[..., sandcell.Result]:
    """run(code, **kw): sandcell.run cold, or Server.run on the module's
    warm server; .mode says which."""
    if request.param == "cold":
        def run(code: str, **kw: Any) -> sandcell.Result:
            return sandcell.run(code, **kw)
    else:
        srv = request.getfixturevalue("server")

        def run(code: str, **kw: Any) -> sandcell.Result:
            return srv.run(code, **kw)
    run.mode = request.param  # type: ignore[attr-defined]
    return run


@pytest.fixture
def no_leftover_dirs() -> Iterator[None]:
    """The test leaves no private run directory behind (beyond results it
    still holds, which it must close)."""
    before = set(run_dirs())
    yield
    left = set(run_dirs()) - before
    assert not left, "private run directories left behind: %s" % sorted(left)
