"""Helpers of the HTTP front end's tests (docs/http.md), against a real warm server.

One `sandcell serve --http` per module (the warm server and the front end
together, as an operator starts them); tests that need other caps start a
second `sandcell-http` against the same warm socket.  Only the standard
library talks HTTP here (http.client), loopback only.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import select
import subprocess
import tempfile
import time
import uuid
from typing import Dict, List, Optional, Tuple

from harness import stop_group


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SANDCELL_BIN", os.path.join(ROOT, "build", "sandcell"))
HTTP_BIN = os.path.join(os.path.dirname(BIN), "sandcell-http")

ALICE = "alice-" + "a" * 40          # max_concurrent 2, 600/min
BOB = "bob-" + "b" * 40              # max_concurrent 1, 600/min
CAROL = "carol-" + "c" * 40          # 2 per minute


def write_tokens(path: str) -> None:
    with open(path, "w") as f:
        f.write("# test tokens\nalice:%s:2:600\nbob:%s:1:600\ncarol:%s:4:2\n" % (ALICE, BOB, CAROL))
    os.chmod(path, 0o600)


class Front:
    """A running front end: its port, its process, its log."""

    def __init__(self, argv: List[str], log: str) -> None:
        self.log_path = log
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                                     start_new_session=True)
        self.port = self._wait_port()

    def _wait_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"listening on [^ ]+:(\d+) ", self.log())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError("sandcell-http exited: " + self.log())
            select.select([], [], [], 0.05)
        raise RuntimeError("sandcell-http did not listen: " + self.log())

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def conn(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def stop(self) -> int:
        return stop_group(self.proc)


def wait_ready(front: Front, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, body = request(front, "GET", "/readyz")
        if code == 200:
            return
        select.select([], [], [], 0.2)
    raise RuntimeError("not ready: %r %s" % (body, front.log()))


def multipart(request_obj: Optional[object], files: List[Tuple[str, bytes]] = (),
              raw_request: Optional[bytes] = None) -> Tuple[bytes, str]:
    boundary = "b" + uuid.uuid4().hex
    out = []
    parts: List[Tuple[str, bytes]] = []
    if raw_request is not None:
        parts.append(("request", raw_request))
    elif request_obj is not None:
        parts.append(("request", json.dumps(request_obj).encode()))
    parts += list(files)
    for name, data in parts:
        out.append(b"--" + boundary.encode() + b"\r\n")
        fn = '; filename="x"' if name != "request" else ""
        out.append(('Content-Disposition: form-data; name="%s"%s\r\n' % (name, fn)).encode())
        out.append(b"Content-Type: application/octet-stream\r\n\r\n")
        out.append(data + b"\r\n")
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def request(front: Front, method: str, path: str, body: Optional[bytes] = None,
            ctype: Optional[str] = None, token: Optional[str] = None,
            headers: Optional[Dict[str, str]] = None) -> Tuple[int, object]:
    c = front.conn()
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if ctype:
        h["Content-Type"] = ctype
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    ct = r.getheader("Content-Type") or ""
    if "ndjson" in ct:
        return r.status, [json.loads(line) for line in data.splitlines()]
    if "json" in ct:
        return r.status, json.loads(data)
    return r.status, data.decode()


def run(front: Front, req: object, files: List[Tuple[str, bytes]] = (), token: str = ALICE
        ) -> Tuple[int, object]:
    body, ctype = multipart(req, files)
    return request(front, "POST", "/v1/runs", body, ctype, token)


def stream_bytes(events: List[dict], name: str) -> bytes:
    import base64
    out = b""
    for e in events:
        if e["ev"] == "stream" and e["name"] == name:
            out += e["text"].encode() if "text" in e else base64.b64decode(e["b64"])
    return out


def metrics(front: Front, token: str = ALICE) -> Dict[str, float]:
    code, text = request(front, "GET", "/metrics", token=token)
    assert code == 200
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.fullmatch(r'([a-z_]+(?:\{[a-z]+="[^"]*"\})?) (-?[0-9.e+]+|\+Inf)', line)
        assert m, "not Prometheus text: %r" % line
        out[m.group(1)] = float(m.group(2))
    return out


def second_front(sock: str, tokens: str, *extra: str) -> Front:
    fd, log = tempfile.mkstemp(prefix="sandcell-http-log.")
    os.close(fd)
    return Front([HTTP_BIN, "--socket", sock, "--listen", "127.0.0.1:0", "--token-file", tokens,
                  "--selftest-interval", "3600"] + list(extra), log)
