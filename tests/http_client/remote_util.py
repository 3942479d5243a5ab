"""Helpers of the remote-client tier (tests/http_client): the host package of this tree
(python/sandcell) against a real `sandcell serve --http` on loopback (port
0), with bearer tokens in 0600 files, and a canned HTTP server for the
answers a real one cannot be made to give on demand.

The tier is skipped, with the reason, only when build/sandcell-http is not built.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

import pytest

from harness import stop_group

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "client"))
from client_util import BIN, sandcell  # noqa: E402

HTTP_BIN = os.path.join(os.path.dirname(BIN), "sandcell-http")
#: Each module's pytestmark: the tier needs the front end built.
needs_http = pytest.mark.skipif(not os.access(HTTP_BIN, os.X_OK),
                                reason="%s is not built (make)" % HTTP_BIN)

#: name -> (secret, max concurrent, rate per minute)
TOKENS = {"main": ("m" * 40, 4, 600), "single": ("s" * 40, 1, 600), "slow": ("r" * 40, 4, 1)}


class Served:
    """`sandcell serve --http`: the URL, and a 0600 file per token."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.sock = os.path.join(tmp, "sock")
        server_tokens = os.path.join(tmp, "tokens")
        self.token_files: Dict[str, str] = {}
        with open(os.open(server_tokens, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            for name, (secret, conc, rate) in TOKENS.items():
                f.write("%s:%s:%d:%d\n" % (name, secret, conc, rate))
                path = os.path.join(tmp, name + ".token")
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as t:
                    t.write(secret + "\n")
                self.token_files[name] = path
        self.log_path = os.path.join(tmp, "log")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--socket", self.sock, "--slots", "3", "--spares", "1",
             "--http", "127.0.0.1:0", "--token-file", server_tokens],
            stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"), start_new_session=True)
        self.url = "http://127.0.0.1:%d" % wait_listening(self.proc, self.log_path)
        wait_ready(self.url, self.proc)

    def client(self, token: str = "main", **kw: object) -> sandcell.Remote:
        return sandcell.connect(self.url, token_file=self.token_files[token], **kw)  # type: ignore[arg-type]

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> None:
        stop_group(self.proc)


def wait_listening(proc: "subprocess.Popen[bytes]", log: str) -> int:
    """The port the front end printed (woken every 50 ms: it says nothing else)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(log) as f:
            m = re.search(r"listening on [^ ]+:(\d+) ", f.read())
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            break
        select.select([], [], [], 0.05)
    with open(log) as f:
        raise RuntimeError("sandcell-http did not listen: " + f.read())


def wait_ready(url: str, proc: "subprocess.Popen[bytes]") -> None:
    """/readyz says ready once the selftest passed (it runs at start)."""
    import urllib.request
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        select.select([], [], [], 0.2)
    raise RuntimeError("sandcell-http at %s did not get ready" % url)


# ---- a canned server: answers in a list, one per request, each request kept

Answer = Tuple[int, Dict[str, str], bytes]


class Canned:
    """Answers requests with the next canned (code, headers, body); a body
    of None closes the connection without an answer.  ``requests`` holds
    (method, path, headers, body) of each request."""

    def __init__(self) -> None:
        self.answers: List[Optional[Answer]] = []
        self.requests: List[Tuple[str, str, Dict[str, str], bytes]] = []
        canned = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                canned.requests.append((self.command, self.path, dict(self.headers), body))
                ans = canned.answers.pop(0) if canned.answers else (500, {}, b"")
                if ans is None:
                    self.close_connection = True
                    return
                code, headers, data = ans
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def refusal(self, code: int, status: str, message: str = "no", report: object = None,
                retry_after: Optional[int] = None) -> None:
        h = {"Content-Type": "application/json"}
        if retry_after is not None:
            h["Retry-After"] = str(retry_after)
        self.answers.append((code, h, json.dumps({"status": status, "message": message,
                                                  "report": report}).encode()))

    def events(self, events: List[object], raw: bytes = b"") -> None:
        body = b"".join(json.dumps(e).encode() + b"\n" for e in events) + raw
        self.answers.append((200, {"Content-Type": "application/x-ndjson"}, body))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def report_of(client: sandcell.Remote, code: str = "print('ok')") -> Dict[str, object]:
    """A genuine report (the raw JSON), for canned answers."""
    return dict(client.run(code).report.raw)

