"""Shared by the host-client tests (tests/client): the package under test
(python/sandcell of this tree), the CLI under test ($SANDCELL_BIN, default
build/sandcell), a warm server per module, and a `runner` fixture that runs
every parametrised test once cold and once warm.

Test modules import this by name (pytest puts tests/client on sys.path);
what is not about the client comes from tests/harness.py.
"""
from __future__ import annotations

import glob
import os
import sys
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

import harness

ROOT, IS_ROOT = harness.ROOT, harness.IS_ROOT
BIN = os.path.abspath(harness.BIN)
PY_DIR = os.path.join(ROOT, "python")
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


def cli_report(*args: str, stdin: bytes = b"") -> "tuple[harness.Run, Optional[Dict[str, Any]]]":
    """`sandcell run --report FILE ARGS` with the CLI itself (cold): the
    reference the client's typed results are compared with."""
    r = harness.run_cli(args=args, stdin=stdin, server=None)
    return r, r.report


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
def no_leftover_dirs(tmp_path: Any, monkeypatch: Any) -> Iterator[None]:
    """The test leaves no private run directory behind (beyond results it
    still holds, which it must close).  The client makes them with
    tempfile, here in a directory of this test's own, so other jobs'
    runs in the shared /tmp cannot be mistaken for this test's."""
    own = tmp_path / "client-tmp"
    own.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(own))
    before = set(run_dirs())
    yield
    left = set(run_dirs()) - before
    assert not left, "private run directories left behind: %s" % sorted(left)
