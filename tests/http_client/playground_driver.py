"""Headless Chromium driving the playground (docs/http.md, "Playground")
over the DevTools protocol, a websocket spoken with the standard library;
and the scenarios the playground's tests run through it, against one
server directly (tests/http_client/test_playground.py) or through HAProxy
in front of three (tests/scaleout/test_playground_haproxy.py).

Polling here is through DevTools (the page's state has nothing to block
on from outside), every loop bounded by a deadline.
"""
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
from typing import Any, Callable, Dict, List, Optional

CHROMIUM = shutil.which("chromium")


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
                return dict(msg["result"])

    def js(self, expr: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def wait(self, expr: str, what: str, timeout: float = 60) -> Any:
        """Polls the expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.js(expr)
            if v:
                return v
            time.sleep(0.1)  # the page's state: polled through DevTools
        raise AssertionError("timed out: %s; outputs: %s" % (what, self.js(
            "document.getElementById('outputs').innerText + ' | ' + "
            "document.getElementById('status').textContent")))


class Browser:
    """Headless Chromium with a profile of its own under tmp; one page."""

    def __init__(self, tmp: str) -> None:
        assert CHROMIUM is not None
        self.proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                                      "--hide-scrollbars", "--window-size=1200,1600",
                                      "--remote-debugging-port=0",
                                      "--user-data-dir=%s" % os.path.join(tmp, "chromium-profile"),
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert self.proc.stderr is not None
            port = None
            for line in self.proc.stderr:
                m = re.search(rb"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                if m:
                    port = int(m.group(1))
                    break
            assert port, "chromium printed no DevTools address"
            self.dt = DevTools(self._page_socket(port))
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _page_socket(port: int) -> str:
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

    def open(self, url: str, token: str) -> None:
        """Loads the page and types the token into it."""
        self.dt.call("Page.navigate", url=url)
        self.dt.wait("location.href === %s && document.readyState === 'complete'" % json.dumps(url),
                     "the page to load", 30)
        self.dt.js("(() => { const t = document.getElementById('token'); t.value = %s;"
                   "t.dispatchEvent(new Event('input')); return 1; })()" % json.dumps(token))

    def set_files(self, selector: str, files: List[str]) -> None:
        doc = self.dt.call("DOM.getDocument")["root"]["nodeId"]
        node = self.dt.call("DOM.querySelector", nodeId=doc, selector=selector)["nodeId"]
        self.dt.call("DOM.setFileInputFiles", nodeId=node, files=files)

    def screenshot(self, path: str) -> bytes:
        """The whole page (beyond the window), kept in path."""
        time.sleep(1)  # let the figures and the iframes paint before the screenshot
        size = self.dt.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = base64.b64decode(self.dt.call(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})["data"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(shot)
        return shot

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---- the scenarios --------------------------------------------------------

#: A one-shot run: an input read, a table, an HTML output with a script
#: that must not run, a figure, an error with its source line.
RUN_CODE = """import pandas as pd, matplotlib.pyplot as plt, sandcell
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

#: What the outputs of the page hold: text, iframes, images, errors.
OUTPUTS_JS = """((root) => ({
    text: root.innerText,
    frames: [...root.querySelectorAll('iframe')].map(f => [f.getAttribute('sandbox'), f.srcdoc]),
    imgs: [...root.querySelectorAll('img')].map(i => [i.naturalWidth, i.src.slice(0, 22)]),
    errors: [...root.querySelectorAll('pre.error')].map(p => p.textContent)}))(%s)"""


def check_safe_page(dt: DevTools, token: str) -> None:
    """No script of the sandbox's ran; the token is in this tab's storage, not the URL."""
    assert dt.js("document.title") == "sandcell playground", "a script of the run's ran in the page"
    assert dt.js("sessionStorage.getItem('sandcell-token')") == token
    assert token not in dt.js("location.href")


def run_cell(dt: DevTools, code: str, timeout: float = 90) -> Dict[str, Any]:
    """Types code into the box, clicks Run cell, waits for the cell's end;
    the cell's prompt, footer and outputs."""
    n = dt.js("document.querySelectorAll('#outputs .cell').length")
    dt.js("document.getElementById('code').value = %s; document.getElementById('run').click(); 1"
          % json.dumps(code))
    return finish_cell(dt, n + 1, timeout)


def last_cell(n: int) -> str:
    return "document.querySelectorAll('#outputs .cell')[%d]" % (n - 1)


def finish_cell(dt: DevTools, n: int, timeout: float = 90) -> Dict[str, Any]:
    dt.wait("(() => { const c = %s; return c && c.querySelector('.prompt').textContent !== '[*]'"
            " && !document.getElementById('run').disabled; })()" % last_cell(n),
            "cell %d to end" % n, timeout)
    got = dt.js(OUTPUTS_JS % (last_cell(n) + ".querySelector('.cell-outputs')"))
    got["prompt"] = dt.js(last_cell(n) + ".querySelector('.prompt').textContent")
    got["foot"] = dt.js(last_cell(n) + ".querySelector('.cell-foot').textContent")
    return dict(got)


def session_id(dt: DevTools) -> Optional[str]:
    m = re.match(r"session ([0-9a-f]{32}) ", dt.js("document.getElementById('session').textContent"))
    return m.group(1) if m else None


def report_text(dt: DevTools) -> str:
    return str(dt.js("document.getElementById('report').innerText"))


def session_scenario(b: Browser, url: str, token: str, data_csv: str) -> Dict[str, Any]:
    """The default mode, a session: state across cells, a table, a figure,
    an error, input() answered, an interrupted cell, Restart, Close.
    Returns the ids of the two sessions it made, in order."""
    dt = b.dt
    b.open(url, token)
    assert dt.js("document.querySelector('input[name=mode]:checked').value") == "session"
    assert session_id(dt) is None
    b.set_files("#inputs", [data_csv])

    c = run_cell(dt, 'import sandcell\nprint("rows:", open(sandcell.inputs["data.csv"]).read()'
                     '.count("\\n"))\nx = 1')
    assert c["prompt"] == "[1]" and "rows: 3" in c["text"] and c["foot"].startswith("ok"), c
    first = session_id(dt)
    assert first, "no session shown after the first cell"

    c = run_cell(dt, "x + 1")
    assert c["prompt"] == "[2]" and c["text"].strip() == "2", c

    c = run_cell(dt, 'import pandas as pd, matplotlib.pyplot as plt\n'
                     'df = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3, 19]})\n'
                     'display(df)\n'
                     'class Evil:\n'
                     '    def _repr_html_(self):\n'
                     '        return "<b>bold</b><script>parent.document.title = \'pwned\'</script>"\n'
                     'display(Evil())\n'
                     'plt.plot([1, 2, 3], [1, 4, 9])\nplt.show()')
    assert c["prompt"] == "[3]", c
    assert [s for s, _ in c["frames"]] == ["", ""], "HTML outputs must be in sandbox=\"\" iframes"
    assert "Oslo" in c["frames"][0][1] and "<table" in c["frames"][0][1]
    assert c["imgs"] and c["imgs"][0][0] > 100 and c["imgs"][0][1] == "data:image/png;base64,", c["imgs"]

    c = run_cell(dt, "def broken():\n    return 1 / 0\nbroken()")
    assert c["prompt"] == "[4]" and c["foot"].startswith("error"), c
    assert c["errors"] and "ZeroDivisionError" in c["errors"][0] and "return 1 / 0" in c["errors"][0], c

    # input(): a box appears in the cell; the answer goes to the cell.
    n = dt.js("document.querySelectorAll('#outputs .cell').length") + 1
    dt.js("document.getElementById('code').value = %s; document.getElementById('run').click(); 1"
          % json.dumps('name = input("your name? ")\nprint("hello,", name)'))
    dt.wait(last_cell(n) + ".querySelector('input.input-answer') !== null", "the input box")
    assert "your name?" in dt.js(last_cell(n) + ".querySelector('.input-box').textContent")
    dt.js("(() => { const c = %s; c.querySelector('input.input-answer').value = 'Ada';"
          "c.querySelector('.input-box button').click(); return 1; })()" % last_cell(n))
    c = finish_cell(dt, n)
    assert c["prompt"] == "[5]" and "your name? Ada" in c["text"] and "hello, Ada" in c["text"], c

    # Interrupt: the running cell gets KeyboardInterrupt, the session lives.
    n += 1
    dt.js("document.getElementById('code').value = %s; document.getElementById('run').click(); 1"
          % json.dumps('import time\nprint("sleeping", flush=True)\ntime.sleep(120)'))
    dt.wait("(%s.innerText || '').includes('sleeping')" % last_cell(n), "the cell to print")
    assert not dt.js("document.getElementById('interrupt').disabled")
    dt.js("document.getElementById('interrupt').click(); 1")
    c = finish_cell(dt, n, 30)
    assert c["prompt"] == "[6]" and c["foot"].startswith("interrupted"), c
    assert c["errors"] and "KeyboardInterrupt" in c["errors"][0], c
    c = run_cell(dt, "x + 1")
    assert c["prompt"] == "[7]" and c["text"].strip() == "2", c
    assert session_id(dt) == first
    check_safe_page(dt, token)

    # Restart: the session's end report, then a new session without x.
    dt.js("document.getElementById('restart').click(); 1")
    dt.wait("(document.getElementById('session').textContent.match(/^session ([0-9a-f]{32}) /) || [])[1]"
            " !== %s && !document.getElementById('run').disabled && %s" % (
                json.dumps(first), "document.getElementById('session').textContent.startsWith('session ')"),
            "the restart")
    second = session_id(dt)
    assert second and second != first
    ended = dt.js("[...document.querySelectorAll('#outputs p.ended')].map(p => p.textContent)")
    assert len(ended) == 1 and ended[0].startswith("session restarted: ok") \
        and "ended by close" in ended[0], ended
    rep = report_text(dt)
    for want in ("ended by", "close", "cells", "peak memory", "wall (s)", "memory_bytes", "cell_wall_sec"):
        assert want in rep, (want, rep)
    # The session's budgets are a session's (a day, an hour), the cell's
    # the page's field: not the one-shot defaults.
    assert re.search(r"^wall_sec\s+86400$", rep, re.M) and re.search(r"^cpu_sec\s+3600$", rep, re.M), rep
    assert re.search(r"^cell_wall_sec\s+30$", rep, re.M), rep
    c = run_cell(dt, "x")
    assert c["prompt"] == "[1]" and c["errors"] and "NameError" in c["errors"][0], c

    # Close: the end report, no session; the next cell would start one.
    dt.js("document.getElementById('close').click(); 1")
    dt.wait("document.getElementById('session').textContent.startsWith('no session')", "the close")
    ended = dt.js("[...document.querySelectorAll('#outputs p.ended')].map(p => p.textContent)")
    assert len(ended) == 2 and ended[1].startswith("session closed: ok") and "ended by close" in ended[1], ended
    rep = report_text(dt)
    assert "Session" in rep and "peak memory" in rep and "memory_bytes" in rep, rep
    assert dt.js("document.getElementById('close').disabled")
    check_safe_page(dt, token)
    return {"sessions": [first, second]}


def oneshot_scenario(b: Browser, token: str, data_csv: str) -> Dict[str, Any]:
    """One-shot mode on the page already open: RUN_CODE as one run."""
    dt = b.dt
    dt.js("document.querySelector('input[name=mode][value=run]').click(); 1")
    dt.wait("document.body.dataset.mode === 'run' && document.getElementById('run').textContent === 'Run'",
            "one-shot mode")
    b.set_files("#inputs", [data_csv])
    dt.js("document.getElementById('code').value = %s; document.getElementById('run').click(); 1"
          % json.dumps(RUN_CODE))
    status = dt.wait("(() => { const s = document.getElementById('status').textContent;"
                     " return /^(done|refused|error|cut|cancelled)/.test(s) ? s : ''; })()",
                     "the run", 90)
    assert status == "done: exited", (status, dt.js("document.getElementById('outputs').innerText"))
    got = dt.js(OUTPUTS_JS % "document.getElementById('outputs')")
    got["report"] = report_text(dt)
    assert "rows: 3" in got["text"]
    assert [s for s, _ in got["frames"]] == ["", ""], "HTML outputs must be in sandbox=\"\" iframes"
    assert "Oslo" in got["frames"][0][1] and "<table" in got["frames"][0][1]
    assert got["imgs"] and got["imgs"][0][0] > 100 and got["imgs"][0][1] == "data:image/png;base64,"
    assert got["errors"] and "ZeroDivisionError" in got["errors"][0] and "return 1 / 0" in got["errors"][0]
    assert "peak memory" in got["report"] and "memory_bytes" in got["report"] and "wall (s)" in got["report"]
    check_safe_page(dt, token)
    return dict(got)


def oneshot_cancel(b: Browser, balanced: bool = False) -> str:
    """One-shot mode: a run that sleeps, cancelled with Interrupt; the
    page's final status.  Directly, the cancel by id reaches the run's
    server and the report (cancelled) comes back.  balanced: behind
    HAProxy the cancel by id is balanced like any request and may reach
    another server (404, docs/scaling.md); the page then closes the run's
    connection, which cancels it behind, and no report comes."""
    dt = b.dt
    dt.js("document.getElementById('code').value = %s; document.getElementById('run').click(); 1"
          % json.dumps('import time\nprint("started", flush=True)\ntime.sleep(120)'))
    dt.wait("document.getElementById('outputs').innerText.includes('started')", "the run to print")
    dt.js("document.getElementById('interrupt').click(); 1")
    status = dt.wait("(() => { const s = document.getElementById('status').textContent;"
                     " return /^(done|refused|error|cut|cancelled)/.test(s) ? s : ''; })()",
                     "the cancel", 30)
    assert status == "done: cancelled" or balanced and status == "cancelled", \
        (status, dt.js("document.getElementById('outputs').innerText"))
    return str(status)


def session_ends_scenario(b: Browser, has_ended: Callable[[str], bool]) -> str:
    """A session that ends on its own between cells (a thread the cell
    left behind passes the memory limit): the next cell is answered 410
    with the end report, and the page says why the session ended and
    shows its usage and limits.  has_ended(id): the server says so (the
    page has nothing to show before its next call)."""
    dt = b.dt
    dt.js("document.querySelector('input[name=mode][value=session]').click(); 1")
    dt.wait("document.body.dataset.mode === 'session' && !document.getElementById('run').disabled",
            "session mode")
    c = run_cell(dt, "import threading, time\n"
                     "def hog():\n"
                     "    time.sleep(0.5)\n"
                     "    global big\n"
                     "    big = bytearray(2 << 30)\n"
                     "threading.Thread(target=hog).start()")
    assert c["prompt"] == "[1]" and c["foot"].startswith("ok"), c
    sid = session_id(dt)
    assert sid
    deadline = time.monotonic() + 60
    while not has_ended(sid) and time.monotonic() < deadline:
        time.sleep(0.1)  # the server's state of the session: polled
    assert has_ended(sid), "the session did not end"
    c = run_cell(dt, "1 + 1")
    assert c["prompt"] == "[ ]" and c["text"] == "", c
    ended = dt.js("[...document.querySelectorAll('#outputs p.ended')].map(p => p.textContent)")
    assert ended and ended[-1].startswith("session ended: memory") and "ended by limit" in ended[-1], ended
    rep = report_text(dt)
    assert re.search(r"^status\s+memory$", rep, re.M) and "peak memory" in rep and "memory_bytes" in rep, rep
    assert session_id(dt) is None and dt.js("document.getElementById('close').disabled")
    return sid
