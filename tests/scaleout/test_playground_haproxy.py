"""The browser playground through HAProxy in front of three servers
(issue 11: "a browser can run cells and sessions through HAProxy in front
of several servers").  Three `sandcell serve --http` and HAProxy with the
shipped deploy/haproxy/sandcell.cfg on loopback (cluster.py); headless
Chromium loads the page THROUGH HAProxy and runs the playground's session
scenario (tests/http_client/playground_driver.py: state across cells, a
table, a figure, an error, input() answered, an interrupted cell,
Restart, Close), then one-shot runs.

What must hold besides what the page shows: the page's files come through
HAProxy unchanged with their headers (no caching, the CSP); every call of
a session (its cells, its input answer, its interrupt, its DELETE) went
to the one server that holds it, by HAProxy's stick table on the
X-Sandcell-Session answers (HAProxy's log names the server of each
request, and that server's log says it started the session; the page
knows no server); the token is never in HAProxy's log.  The screenshot of
the session is kept in build/playground-session.png."""
from __future__ import annotations

import http.client
import os
import re
import sys
import time
from typing import Dict, Iterator, List, Tuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "http_client"))

from cluster import HAPROXY, HTTP_BIN, ROOT, TOKEN, Cluster, running_cluster  # noqa: E402
from playground_driver import (CHROMIUM, Browser, oneshot_cancel, oneshot_scenario,  # noqa: E402
                               session_scenario)

pytestmark = [
    pytest.mark.skipif(not os.access(HTTP_BIN, os.X_OK), reason="%s is not built (make)" % HTTP_BIN),
    pytest.mark.skipif(not os.access(HAPROXY, os.X_OK),
                       reason="haproxy is not installed (tools/install-deps.sh)"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

PLAYGROUND = os.path.join(ROOT, "src", "http", "playground")
#: One request of HAProxy's httplog: the server it went to, the status,
#: the method and the path.
LOG_LINE = re.compile(r' sandcell_in sandcell/(\S+) \S+ (\d+) .* "([A-Z]+) (\S+) HTTP/1\.1"$')


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster("sandcell-playground-haproxy.") as c:
        yield c


def fetch(cluster: Cluster, method: str, path: str) -> Tuple[int, Dict[str, str], bytes]:
    port = int(cluster.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def requests(cluster: Cluster) -> List[Tuple[str, int, str, str]]:
    """(server, status, method, path) of every request HAProxy logged."""
    out = []
    for line in cluster.log().splitlines():
        m = LOG_LINE.search(line)
        if m:
            out.append((m.group(1), int(m.group(2)), m.group(3), m.group(4)))
    return out


def test_static_files_through_haproxy(cluster: Cluster) -> None:
    """The page's files pass HAProxy byte for byte, with the headers the
    server sets: nothing cached or rewritten on the way."""
    code, hdr, _ = fetch(cluster, "GET", "/")
    assert code == 308 and hdr["location"] == "/playground/", (code, hdr)
    for path, name, ctype in (("/playground/", "index.html", "text/html"),
                              ("/playground/playground.js", "playground.js", "text/javascript"),
                              ("/playground/playground.css", "playground.css", "text/css")):
        with open(os.path.join(PLAYGROUND, name), "rb") as f:
            want = f.read()
        for _ in range(2):   # twice: the second answer must not be a cached or shortened one
            code, hdr, body = fetch(cluster, "GET", path)
            assert code == 200 and body == want, (path, code, len(body), len(want))
            assert hdr["content-type"].startswith(ctype), hdr
            assert hdr["cache-control"] == "no-cache" and "age" not in hdr and "set-cookie" not in hdr, hdr
            assert hdr["content-security-policy"].startswith("default-src 'self';"), hdr
            assert hdr["x-content-type-options"] == "nosniff" and hdr["x-frame-options"] == "DENY", hdr
        code, hdr, body = fetch(cluster, "HEAD", path)
        assert code == 200 and body == b"" and int(hdr["content-length"]) == len(want), (path, hdr)
    code, _, _ = fetch(cluster, "POST", "/playground/")
    assert code == 405
    # The files were served by the servers behind (HAProxy has no cache).
    served = [(s, st) for s, st, m, p in requests(cluster) if p.startswith("/playground/") and m == "GET"]
    assert len(served) >= 6 and all(s.startswith("s") and st == 200 for s, st in served), served


def test_playground_session_through_haproxy(cluster: Cluster, tmp_path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    url = cluster.url + "/playground/"
    b = Browser(str(tmp_path))
    try:
        done = session_scenario(b, url, TOKEN, str(data))
        shot = b.screenshot(os.path.join(ROOT, "build", "playground-session.png"))
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20000
        oneshot_scenario(b, TOKEN, str(data))
        b.screenshot(os.path.join(ROOT, "build", "playground-haproxy-run.png"))
        cancelled = oneshot_cancel(b, balanced=True)
    finally:
        b.close()
    first, second = done["sessions"]

    # HAProxy writes a request's log line when its stream ends: wait
    # (bounded) for the lines of the second session's DELETE and of both runs.
    def logged() -> bool:
        r = requests(cluster)
        return any(m == "DELETE" and second in p for _, _, m, p in r) \
            and len([p for _, _, m, p in r if m == "POST" and p == "/v1/runs"]) >= 2
    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.05)  # HAProxy's log file: nothing to block on
    reqs = requests(cluster)
    log = cluster.log()
    assert TOKEN not in log and "Bearer" not in log, "HAProxy logged the token"

    # Every call of each session went to one server, the one that started it.
    calls = {}
    for sid, cells in ((first, 7), (second, 1)):
        mine = [(s, st, m, p) for s, st, m, p in reqs if sid in p]
        servers = {s for s, _, _, _ in mine}
        assert len(servers) == 1, (sid, mine)
        where = servers.pop()
        kinds = sorted("%s %s" % (m, p.split(sid)[1] or "/") for _, _, m, p in mine)
        want = sorted(["POST /cells"] * cells + ["DELETE /"] +
                      (["POST /input", "POST /interrupt"] if sid == first else []))
        assert kinds == want, (sid, kinds)
        assert all(st in (200, 202) for _, st, _, _ in mine), mine
        holder = [s for s in cluster.servers if "session %s... started" % sid[:8] in s.log()]
        assert [s.name for s in holder] == [where], (sid, where, [s.name for s in holder])
        calls[sid] = where
    starts = [(s, st) for s, st, m, p in reqs if m == "POST" and p == "/v1/sessions"]
    assert sorted(s for s, _ in starts) == sorted(calls.values()) and all(st == 201 for _, st in starts), \
        (starts, calls)
    print("playground through HAProxy: session %s... on %s, session %s... on %s; cancel: %s"
          % (first[:8], calls[first], second[:8], calls[second], cancelled))

    # One-shot runs went through HAProxy too; the cancelled one is not left
    # running behind, whichever server the cancel reached.
    runs = [(s, st) for s, st, m, p in reqs if m == "POST" and p == "/v1/runs"]
    assert len(runs) == 2 and all(st == 200 for _, st in runs), (runs, log[-3000:])
    deadline = time.monotonic() + 30
    while sum(s.metric("sandcell_http_runs_in_flight") for s in cluster.servers) != 0 \
            and time.monotonic() < deadline:
        time.sleep(0.1)  # the servers' gauge: nothing to block on
    assert sum(s.metric("sandcell_http_runs_in_flight") for s in cluster.servers) == 0
    # No session is left on any server: the page closed both.
    for s in cluster.servers:
        assert s.metric("sandcell_http_sessions_live") == 0, s.name
