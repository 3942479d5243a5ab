"""The HTTP front end (docs/http.md) against a real warm server: the
module's `sandcell serve --http` (helpers in http_util.py, a module name
of its own: tests/http_client has a conftest too)."""
from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Iterator, Tuple

import pytest

from http_util import BIN, Front, wait_ready, write_tokens


@pytest.fixture(scope="module")
def served() -> Iterator[Tuple[Front, str, str]]:
    """`sandcell serve --http`: (front end, warm socket, token file)."""
    tmp = tempfile.mkdtemp(prefix="sandcell-http-test.")
    tokens = os.path.join(tmp, "tokens")
    write_tokens(tokens)
    sock = os.path.join(tmp, "sock")
    front = Front([BIN, "serve", "--socket", sock, "--slots", "3", "--spares", "1",
                   "--http", "127.0.0.1:0", "--token-file", tokens], os.path.join(tmp, "log"))
    try:
        wait_ready(front)
        yield front, sock, tokens
    finally:
        rc = front.stop()
        assert rc == 0, front.log()
        assert not os.path.exists(sock), "the warm server did not stop with the front end"
        subprocess.run(["rm", "-rf", tmp])
