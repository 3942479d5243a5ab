"""sandcell.Server: start, readiness, stop, failures; and the wire protocol
the warm client speaks (a request header sent in pieces, docs/warm.md)."""
from __future__ import annotations

import json
import os
import socket
import struct
import time

import pytest

import client_util
from client_util import sandcell

# The shared fixtures, by assignment (pytest finds them by name).
server, runner, no_leftover_dirs = client_util.server, client_util.runner, client_util.no_leftover_dirs
from sandcell._request import make_spec
from sandcell._warm import build_request


def test_lifecycle_private_socket(no_leftover_dirs):
    srv = sandcell.Server(slots=1, spares=0)
    assert not srv.running and srv.pid is None
    with pytest.raises(sandcell.SandboxError, match="not started"):
        srv.socket
    with srv:
        assert srv.running and srv.pid is not None
        sock = srv.socket
        d = os.path.dirname(sock)
        assert os.stat(d).st_mode & 0o777 == 0o700
        assert os.stat(sock).st_mode & 0o777 == 0o600
        # start() returned: it answers at once.
        assert srv.run("print(6 * 7)").stdout == b"42\n"
        assert "ready on" in srv.log
        with pytest.raises(sandcell.SandboxError, match="already started"):
            srv.start()
    assert not srv.running
    assert not os.path.exists(sock) and not os.path.exists(d)
    with pytest.raises(sandcell.SandboxError, match="not running"):
        srv.run("pass")
    srv.stop()  # idempotent


def test_socket_path_of_the_caller(tmp_path, no_leftover_dirs):
    path = tmp_path / "my.sock"
    with sandcell.Server(path, slots=1, spares=0) as srv:
        assert srv.socket == str(path)
        assert sandcell.run("print('x')", server=path).stdout == b"x\n"
    assert not path.exists()
    assert tmp_path.exists()


def test_a_server_that_cannot_start_says_why(no_leftover_dirs):
    t0 = time.monotonic()
    with pytest.raises(sandcell.BadRequest, match="exited with status 125.*bad value") as ei:
        sandcell.Server(slots=0).start()
    assert time.monotonic() - t0 < 30, "the exit is noticed, not waited out"
    assert "sandcell serve" in str(ei.value)
    with pytest.raises(sandcell.SandboxError, match="preloading nonexistent_module_q"):
        sandcell.Server(preload=["nonexistent_module_q"]).start()


def test_stop_kills_a_server_that_does_not_stop(tmp_path, no_leftover_dirs):
    """A binary that ignores SIGTERM is killed after stop_timeout."""
    fake = tmp_path / "stubborn"
    fake.write_text("#!/usr/bin/python3\nimport signal, socket, sys\n"
                    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                    "if sys.argv[1] == '--help':\n    print('  --quiet'); sys.exit(0)\n"
                    "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[3]); s.listen(8)\n"
                    "sys.stderr.write('listening\\n'); sys.stderr.flush()\n"
                    "signal.pause()\n")
    fake.chmod(0o755)
    srv = sandcell.Server(binary=str(fake), stop_timeout=0.5).start()
    pid = srv.pid
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 20
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "listening" in srv.log


def test_start_times_out(tmp_path, no_leftover_dirs):
    fake = tmp_path / "mute"
    fake.write_text("#!/usr/bin/python3\nimport signal, sys\n"
                    "if sys.argv[1] == '--help':\n    print('  --quiet'); sys.exit(0)\n"
                    "signal.pause()\n")
    fake.chmod(0o755)
    with pytest.raises(sandcell.SandboxError, match="did not listen within 1 s"):
        sandcell.Server(binary=str(fake), start_timeout=1, stop_timeout=1).start()


def _request_bytes(out_dir: str) -> bytes:
    req = build_request(make_spec("print('pieces')"), out_dir, [], None)
    return json.dumps(req).encode()


@pytest.mark.parametrize("cuts", [(1,), (1, 2, 3), (2,), (3,), (4,)])
def test_header_in_pieces_with_fds_on_the_first(server, tmp_path, cuts):
    """docs/warm.md: the fds may come with any of the header's bytes and the
    header in several writes (the server once refused a short first
    read as a truncated header)."""
    body = _request_bytes(str(tmp_path / "out"))
    frame = struct.pack("<I", len(body)) + body
    out_r, out_w = os.pipe()
    nul = os.open(os.devnull, os.O_RDONLY)
    s = socket.socket(socket.AF_UNIX)
    s.connect(server.socket)
    edges = (0,) + cuts + (len(frame),)
    socket.send_fds(s, [frame[:edges[1]]], [nul, out_w, out_w])
    for a, b in zip(edges[1:], edges[2:]):
        s.sendall(frame[a:b])
    os.close(out_w)
    head = s.recv(4, socket.MSG_WAITALL)
    (n,) = struct.unpack("<I", head)
    rep = json.loads(s.recv(n, socket.MSG_WAITALL))
    s.close()
    assert rep["status"] == "ok", rep
    assert os.read(out_r, 100) == b"pieces\n"
    os.close(out_r)
    os.close(nul)
