"""The browser playground (docs/http.md, "Playground") in headless Chromium,
driven over the DevTools protocol (playground_driver.py), against one
`sandcell serve --http` directly.

Session mode (the page's default): a session started with an uploaded
input, cells run in it with state kept (`x = 1`, then `x + 1` shows 2),
their outputs in order with execution counts: text, a DataFrame table and
an HTML output in sandboxed iframes (whose script must not run), a
figure, an error with its source line, input() answered in the page, a
cell interrupted (the session lives on), Restart (the end report, then a
session without the old state), Close (the end report's usage and
limits).  One-shot mode: a run with the same kinds of output and its
report, and a run cancelled with Interrupt.  Back in session mode, a
session that ends on its own between cells (memory): the next cell is
answered 410 and the page shows why it ended and its end report.  The screenshots are kept in
build/playground-session-direct.png and build/playground.png.  The same
session, through HAProxy in front of three servers:
tests/scaleout/test_playground_haproxy.py."""
from __future__ import annotations

import os
import urllib.request

import pytest

import harness
from playground_driver import (CHROMIUM, Browser, oneshot_cancel, oneshot_scenario, session_ends_scenario,
                               session_scenario)
from remote_util import TOKENS, Served, needs_http

pytestmark = [needs_http, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]


def test_playground_sessions_and_runs_render_safely(served: Served, tmp_path):
    url = served.url + "/playground/"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    secret = TOKENS["main"][0]
    b = Browser(str(tmp_path))
    try:
        done = session_scenario(b, url, secret, str(data))
        shot = b.screenshot(os.path.join(harness.ROOT, "build", "playground-session-direct.png"))
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20000
        oneshot_scenario(b, secret, str(data))
        shot = b.screenshot(os.path.join(harness.ROOT, "build", "playground.png"))
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20000
        oneshot_cancel(b)
        client = served.client()
        gone = session_ends_scenario(b, lambda sid: any(s.id == sid and s.state == "ended"
                                                        for s in client.sessions()))
        b.screenshot(os.path.join(harness.ROOT, "build", "playground-session-ended.png"))
    finally:
        b.close()
    # The page closed its sessions; the one that ended was forgotten
    # after its 410: none is left on the server.
    assert [s.id for s in client.sessions() if s.id in done["sessions"] + [gone]] == []
