"""The browser playground (docs/http.md, "Playground") in headless Chromium,
driven over the DevTools protocol (a websocket spoken with the standard
library): the token typed in, an input uploaded, code run; the page must
show the text, the DataFrame table (in a sandboxed iframe), the figure,
the error with its source line, the report's usage and limits, and no
script of the run's may have run.  The screenshot is kept in
build/playground.png."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from typing import Any, Dict

import pytest

import harness
from remote_util import TOKENS, Served, needs_http

CHROMIUM = shutil.which("chromium")
pytestmark = [needs_http, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]

CODE = """import pandas as pd, matplotlib.pyplot as plt, sandcell
print("rows:", open(sandcell.inputs["data.csv"]).read().count("\\n"))
df = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3, 19]})
display(df)
class Evil:
    def _repr_html_(self):
        return "<b>bold</b><script>parent.document.title = 'pwned'</script>"
display(Evil())
plt.plot([1, 2, 3], [1, 4, 9])
plt.show()
def broken():
    return 1 / 0
broken()
"""


class DevTools:
    """One page's DevTools websocket: call(method, **params) -> result."""

    def __init__(self, ws_url: str) -> None:
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", ws_url)
        assert m, ws_url
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n"
                           % (m.group(3), m.group(1), m.group(2), key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "DevTools closed the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self.ids = 0

    def _send(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                               bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                               bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "DevTools closed the connection"
            buf += chunk
        return buf

    def _recv(self) -> str:
        out = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            out += self._exact(n)
            if b0 & 0x80:
                return out.decode()

    def call(self, method: str, **params: Any) -> Dict[str, Any]:
        self.ids += 1
        self._send(json.dumps({"id": self.ids, "method": method, "params": params}))
        while True:
            msg = json.loads(self._recv())
            if msg.get("id") == self.ids:
                assert "error" not in msg, msg
                return msg["result"]

    def js(self, expr: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")


def page_socket(port: int) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=5) as r:
                for t in json.load(r):
                    if t.get("type") == "page":
                        return str(t["webSocketDebuggerUrl"])
        except OSError:
            pass
        time.sleep(0.2)  # polling Chromium's target list: nothing to wait on
    raise AssertionError("no DevTools page")


def test_playground_runs_code_and_renders_safely(served: Served, tmp_path):
    url = served.url + "/playground/"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    assert CHROMIUM is not None
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                             "--hide-scrollbars", "--window-size=1200,2400",
                             "--remote-debugging-port=0", "--user-data-dir=%s" % (tmp_path / "prof"),
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            m = re.search(rb"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "chromium printed no DevTools address"
        dt = DevTools(page_socket(port))
        dt.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while dt.js("location.href + ' ' + document.readyState") != url + " complete" \
                and time.monotonic() < deadline:
            time.sleep(0.1)  # the page's own load: polled through DevTools
        secret = TOKENS["main"][0]
        dt.js("const t = document.getElementById('token'); t.value = %s;"
              "t.dispatchEvent(new Event('input')); document.getElementById('code').value = %s; 1"
              % (json.dumps(secret), json.dumps(CODE)))
        doc = dt.call("DOM.getDocument")["root"]["nodeId"]
        node = dt.call("DOM.querySelector", nodeId=doc, selector="#inputs")["nodeId"]
        dt.call("DOM.setFileInputFiles", nodeId=node, files=[str(data)])
        dt.js("document.getElementById('run').click(); 1")
        status = ""
        deadline = time.monotonic() + 90
        while not status.startswith(("done", "refused", "error", "cut")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the run in the page: polled through DevTools
            status = dt.js("document.getElementById('status').textContent")
        assert status == "done: exited", (status, dt.js("document.getElementById('outputs').innerText"))
        got = dt.js("""(() => {
            const o = document.getElementById('outputs');
            return {text: o.innerText,
                    frames: [...o.querySelectorAll('iframe')].map(f => [f.getAttribute('sandbox'), f.srcdoc]),
                    imgs: [...o.querySelectorAll('img')].map(i => [i.naturalWidth, i.src.slice(0, 22)]),
                    errors: [...o.querySelectorAll('pre.error')].map(p => p.textContent),
                    report: document.getElementById('report').innerText,
                    title: document.title,
                    stored: sessionStorage.getItem('sandcell-token') === %s,
                    inUrl: location.href.includes(%s)};
        })()""" % (json.dumps(secret), json.dumps(secret)))
        time.sleep(1)  # let the figure and the iframes paint before the screenshot
        shot = base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    keep = os.path.join(harness.ROOT, "build", "playground.png")
    os.makedirs(os.path.dirname(keep), exist_ok=True)
    with open(keep, "wb") as f:
        f.write(shot)
    assert "rows: 3" in got["text"]
    assert [s for s, _ in got["frames"]] == ["", ""], "HTML outputs must be in sandbox=\"\" iframes"
    assert "Oslo" in got["frames"][0][1] and "<table" in got["frames"][0][1]
    assert got["imgs"] and got["imgs"][0][0] > 100 and got["imgs"][0][1] == "data:image/png;base64,"
    assert got["errors"] and "ZeroDivisionError" in got["errors"][0] and "return 1 / 0" in got["errors"][0]
    assert "peak memory" in got["report"] and "memory_bytes" in got["report"] and "wall (s)" in got["report"]
    assert got["title"] == "sandcell playground", "a script of the run's ran in the page"
    assert got["stored"] and not got["inUrl"]
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20000
