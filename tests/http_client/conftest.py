"""Fixtures of the remote-client tier (helpers: remote_util.py)."""
from __future__ import annotations

import subprocess
import tempfile
from typing import Iterator

import pytest

from remote_util import Canned, Served, sandcell


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


