"""Fixtures of the remote-client tier (helpers: remote_util.py)."""
from __future__ import annotations

import subprocess
import tempfile
from typing import Iterator

import pytest

from remote_util import Canned, Served, sandcell


@pytest.fixture(scope="session", autouse=True)
def private_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The client's run directories in a $TMPDIR of this session's own:
    the tests count them, and other jobs on the machine make and remove
    their own sandcell-run-* in the shared /tmp."""
    tmp_path_factory.getbasetemp()   # pytest's own, in the real $TMPDIR, first
    d = tempfile.mkdtemp(prefix="sandcell-remote-tmp.")
    old = tempfile.tempdir
    tempfile.tempdir = d
    try:
        yield d
    finally:
        tempfile.tempdir = old
        subprocess.run(["rm", "-rf", d])


@pytest.fixture(scope="session")
def served() -> Iterator[Served]:
    tmp = tempfile.mkdtemp(prefix="sandcell-remote-test.")
    s = Served(tmp)
    try:
        yield s
    finally:
        s.stop()
        subprocess.run(["rm", "-rf", tmp])


@pytest.fixture
def client(served: Served) -> sandcell.Remote:
    return served.client()


@pytest.fixture
def canned() -> Iterator[Canned]:
    c = Canned()
    yield c
    c.close()


