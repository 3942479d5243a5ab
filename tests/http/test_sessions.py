"""Sessions over HTTP (docs/http.md, *Sessions*), server side: every
session endpoint and its refusals, with http.client only."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import select
import signal
import subprocess
import time

from http_util import (ALICE, BIN, BOB, Front, metrics, multipart, request, run, second_front,
                      wait_ready)


def start(front: Front, req=None, files=(), token: str = ALICE):
    """POST /v1/sessions: (code, body, X-Sandcell-Session)."""
    if files:
        body, ctype = multipart(req or {}, list(files))
    else:
        body, ctype = json.dumps(req or {}).encode(), "application/json"
    c = front.conn(120)
    c.request("POST", "/v1/sessions", body=body,
              headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    r = c.getresponse()
    doc = json.loads(r.read())
    c.close()
    return r.status, doc, r.getheader("X-Sandcell-Session")


class Cell:
    """A cell's NDJSON stream, read line by line as it comes."""

    def __init__(self, front: Front, sid: str, obj, token: str = ALICE) -> None:
        self.conn = front.conn(60)
        self.conn.request("POST", "/v1/sessions/%s/cells" % sid, body=json.dumps(obj).encode(),
                          headers={"Authorization": "Bearer " + token,
                                   "Content-Type": "application/json"})
        self.r = self.conn.getresponse()
        self.status = self.r.status
        self.header = self.r.getheader("X-Sandcell-Session")
        self.events = []

    def next(self):
        line = self.r.readline()
        if not line:
            return None
        ev = json.loads(line)
        self.events.append(ev)
        return ev

    def until(self, kind):
        while True:
            ev = self.next()
            assert ev is not None, "stream ended before %s: %r" % (kind, self.events)
            if ev["ev"] == kind:
                return ev

    def rest(self):
        while self.next() is not None:
            pass
        self.conn.close()
        return self.events


def cell(front, sid, code, token=ALICE, **kw):
    c = Cell(front, sid, dict(code=code, **kw), token)
    if c.status != 200:
        doc = json.loads(c.r.read())
        c.conn.close()
        return c.status, doc
    return c.status, c.rest()


def call(front, method, sid, tail="", obj=None, token=ALICE, files=None):
    body, ctype = None, None
    if obj is not None:
        body, ctype = json.dumps(obj).encode(), "application/json"
    if files is not None:
        body, ctype = multipart(None, files)
    return request(front, method, "/v1/sessions/%s%s" % (sid, tail), body, ctype, token)


def wait_state(front, sid, state, timeout=60.0, token=ALICE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, doc = call(front, "GET", sid, token=token)
        assert code == 200, doc
        if doc["state"] == state:
            return doc
        select.select([], [], [], 0.1)
    raise AssertionError("session %s never %s: %r" % (sid, state, doc))


def test_session_round_trip(served):
    front, _, _ = served
    before = metrics(front)
    code, doc, header = start(front, {"values": {"k": 5}, "limits": {"memory": "512M",
                                                                      "cell_wall_time": 30}},
                              [("input:data", b"hello\n"), ("dataset:blob", b"\x00\x01")])
    assert code == 201 and doc["ready"] is True, doc
    sid = doc["session"]
    assert len(sid) == 32 and int(sid, 16) >= 0 and header == sid
    assert metrics(front)["sandcell_http_sessions_live"] == before["sandcell_http_sessions_live"] + 1
    code, ev = cell(front, sid, "import sandcell\nx = sandcell.values['k']\n"
                    "print(open(sandcell.inputs['data']).read().strip(), x)")
    assert code == 200 and ev[-1]["ev"] == "done" and ev[-1]["id"] == "c1", ev
    assert ev[-1]["status"] == "ok" and ev[0] == {"ev": "output", "id": "c1", "output": {
        "output_type": "stream", "name": "stdout", "text": "hello 5\n"}}
    code, ev = cell(front, sid, "x * 2", id="mine")
    assert ev[-1]["id"] == "mine" and ev[0]["output"]["data"]["text/plain"] == "10"
    code, ev = cell(front, sid, "open('/output/f.bin', 'wb').write(bytes(range(256)))", silent=True)
    assert ev[-1]["ev"] == "done" and ev[-1]["id"] == "_c3" and ev[-1]["status"] == "ok"
    files = [e for e in ev if e["ev"] == "file"]
    assert [f["path"] for f in files] == ["3/f.bin"] == [f["path"] for f in ev[-1]["files"]]
    data = base64.b64decode(files[0]["b64"])
    assert data == bytes(range(256)) and files[0]["sha256"] == hashlib.sha256(data).hexdigest()
    code, info = call(front, "GET", sid)
    assert code == 200 and info["state"] == "idle" and info["cells"] == 3 and info["age_sec"] > 0
    code, lst = request(front, "GET", "/v1/sessions", token=ALICE)
    assert sid in [s["session"] for s in lst["sessions"]]
    m = metrics(front)
    assert m['sandcell_http_cells_total{status="ok"}'] >= 3
    c = front.conn()
    c.request("DELETE", "/v1/sessions/" + sid, headers={"Authorization": "Bearer " + ALICE})
    r = c.getresponse()
    end = json.loads(r.read())
    assert r.status == 200 and r.getheader("X-Sandcell-Session") == sid, end
    assert end["status"] == "ok" and end["report"]["status"] == "ok"
    # A session's budgets, not a one-shot run's (docs/sessions.md): the
    # request set only the per-cell wall clock.
    lim = end["report"]["limits"]
    assert (lim["wall_sec"], lim["cpu_sec"]) == (86400, 3600), lim
    assert call(front, "GET", sid)[0] == 404 and cell(front, sid, "1")[0] == 404
    assert metrics(front)["sandcell_http_sessions_live"] == before["sandcell_http_sessions_live"]


def test_another_tokens_session_is_404(served):
    front, _, _ = served
    code, doc, _ = start(front)
    sid = doc["session"]
    for method, tail, obj in [("GET", "", None), ("DELETE", "", None), ("POST", "/cells", {"code": "1"}),
                              ("POST", "/interrupt", None), ("POST", "/input", {"id": "c1", "value": ""})]:
        code, body = call(front, method, sid, tail, obj, token=BOB)
        assert code == 404 and body["status"] == "not-found", (method, tail, body)
    assert sid not in [s["session"] for s in request(front, "GET", "/v1/sessions", token=BOB)[1]["sessions"]]
    assert call(front, "DELETE", sid)[0] == 200


def test_busy_input_and_interrupt(served):
    front, _, _ = served
    sid = start(front)[1]["session"]
    c = Cell(front, sid, {"code": "print('q')\nans = input('go? ')\nprint('got', ans)", "id": "in1"})
    assert c.status == 200 and c.header == sid
    req = c.until("input_request")
    assert req == {"ev": "input_request", "id": "in1", "prompt": "go? ", "password": False}
    code, body = cell(front, sid, "1")
    assert code == 409 and body["status"] == "usage-error", body
    assert call(front, "POST", sid, "/input", {"id": "other", "value": "x"})[0] == 409
    assert call(front, "POST", sid, "/input", {"id": "in1", "value": "yes"})[0] == 202
    assert call(front, "POST", sid, "/input", {"id": "in1", "value": "again"})[0] == 409
    ev = c.rest()
    assert ev[-1]["status"] == "ok" and ev[-2]["output"]["text"] == "got yes\n", ev
    c = Cell(front, sid, {"code": "import time\nprint('loop', flush=True)\nwhile True:\n"
                                  "    time.sleep(0.01)"})
    c.until("output")
    assert call(front, "POST", sid, "/interrupt")[0] == 202
    done = c.until("done")
    assert done["status"] == "interrupted" and done["error"]["ename"] == "KeyboardInterrupt"
    c.rest()
    assert call(front, "POST", sid, "/interrupt")[0] == 202  # between cells: ignored
    assert cell(front, sid, "'alive'")[1][0]["output"]["data"]["text/plain"] == "'alive'"
    assert call(front, "DELETE", sid)[0] == 200


def test_a_closed_cell_stream_leaves_the_session_running(served):
    front, _, _ = served
    sid = start(front)[1]["session"]
    c = Cell(front, sid, {"code": "import time\nprint('a', flush=True)\ntime.sleep(1)\ny = 7"})
    c.until("output")
    c.conn.close()
    wait_state(front, sid, "idle")
    code, ev = cell(front, sid, "y")
    assert ev[0]["output"]["data"]["text/plain"] == "7", ev
    assert call(front, "DELETE", sid)[0] == 200


def test_adds_and_an_on_demand_refusal(served):
    front, _, _ = served
    sid = start(front)[1]["session"]
    code, doc = call(front, "POST", sid, "/inputs", files=[("input:notes", b"note text")])
    assert code == 200 and doc == {"added": ["notes"], "refused": []}, doc
    code, doc = call(front, "POST", sid, "/datasets", files=[("dataset:d1", b"x" * 10)])
    assert code == 200 and doc["added"] == ["d1"]
    for files in ([("dataset:d2", b"x")], [("input:../x", b"x")]):
        assert call(front, "POST", sid, "/inputs", files=files)[0] == 400
    assert call(front, "POST", sid, "/inputs", obj={"name": "x", "refused": "no"})[0] == 400
    code, ev = cell(front, sid, "import sandcell\nprint(open(sandcell.inputs['notes']).read())")
    assert ev[0]["output"]["text"] == "note text\n", ev
    assert call(front, "POST", sid, "/datasets", obj={"name": "lazy", "refused": "no"})[0] == 409
    c = Cell(front, sid, {"code": "import sandcell\ntry:\n    sandcell.datasets['lazy']\n"
                                  "except KeyError as e:\n    print('refused:', e)"})
    req = c.until("dataset_request")
    assert req["name"] == "lazy"
    code, doc = call(front, "POST", sid, "/datasets", obj={"name": "lazy", "refused": "not here"})
    assert code == 200 and doc == {"added": [], "refused": [{"name": "lazy", "reason": "not here"}]}
    ev = c.rest()
    assert "not here" in ev[-2]["output"]["text"] and ev[-1]["status"] == "ok", ev
    assert call(front, "DELETE", sid)[0] == 200


def test_a_session_that_ended_answers_410_once(served):
    front, _, _ = served
    sid = start(front, {"limits": {"memory": "256M"}})[1]["session"]
    code, ev = cell(front, sid, "x = bytearray(1 << 30)")
    assert [e["ev"] for e in ev[-2:]] == ["done", "end"] and ev[-2]["status"] == "killed", ev
    assert ev[-1]["status"] == "memory"
    code, body = cell(front, sid, "1")
    assert code == 410 and body["status"] == "session-ended", body
    assert body["report"]["status"] == "memory"
    assert cell(front, sid, "1")[0] == 404, "told once, then forgotten"


def test_idle_sessions_end_by_their_idle_timeout(served):
    front, _, _ = served
    sid = start(front, {"limits": {"idle_timeout": 1}})[1]["session"]
    wait_state(front, sid, "ended", timeout=30)
    code, body = call(front, "DELETE", sid)
    assert code == 410 and body["report"]["session"]["ended_by"] == "idle", body


def test_a_session_holds_its_tokens_slot(served):
    front, _, _ = served
    sid = start(front, token=BOB)[1]["session"]
    code, doc, _ = start(front, token=BOB)
    assert code == 429 and doc["status"] == "busy", doc
    assert run(front, {"code": "1"}, token=BOB)[0] == 429
    assert call(front, "DELETE", sid, token=BOB)[0] == 200
    assert run(front, {"code": "1"}, token=BOB)[0] == 200


def test_max_sessions_is_503(served):
    front, sock, tokens = served
    f2 = second_front(sock, tokens, "--max-sessions", "1")
    try:
        wait_ready(f2)
        sid = start(f2)[1]["session"]
        c = f2.conn()
        c.request("POST", "/v1/sessions", body=b"{}", headers={
            "Authorization": "Bearer " + ALICE, "Content-Type": "application/json"})
        r = c.getresponse()
        doc = json.loads(r.read())
        assert r.status == 503 and doc["status"] == "busy" and r.getheader("Retry-After"), doc
        assert metrics(f2)['sandcell_http_rejected_total{reason="sessions"}'] >= 1
        assert call(f2, "DELETE", sid)[0] == 200
        assert start(f2)[0] == 201
    finally:
        assert f2.stop() == 0


def test_strict_bodies(served):
    front, _, _ = served
    for req in ({"code": "1"}, {"cell": True}, {"limits": {"bogus": 1}}, {"values": []}):
        code, doc, _ = start(front, req)
        assert code == 400 and doc["status"] == "usage-error", (req, doc)
    code, doc, _ = start(front, {}, [("stdin", b"x")])
    assert code == 400, doc
    sid = start(front)[1]["session"]
    for obj in ({"code": "1", "extra": 1}, {"code": 1}, {"code": "1", "id": "bad id"},
                {"code": "1", "id": "_x"}, {"code": "1", "id": "x", "silent": True}):
        code, body = call(front, "POST", sid, "/cells", obj)
        assert code == 400 and body["status"] == "usage-error", (obj, body)
    code, body = request(front, "POST", "/v1/sessions/%s/cells" % sid, b'{"code":"1","code":"2"}',
                         "application/json", ALICE)
    assert code == 400 and "duplicate" in body["message"], body
    code, body = request(front, "POST", "/v1/sessions/%s/cells" % sid, *multipart({"code": "1"}),
                         token=ALICE)
    assert code == 415, body
    assert call(front, "POST", sid, "/input", {"id": "c1"})[0] == 400
    assert request(front, "GET", "/v1/sessions/%s/cells" % sid, token=ALICE)[0] == 405
    assert request(front, "GET", "/v1/sessions/%s" % ("A" * 32), token=ALICE)[0] == 404
    assert call(front, "DELETE", sid)[0] == 200


def test_a_stopping_front_end_ends_its_sessions(served):
    front, sock, tokens = served
    f2 = second_front(sock, tokens)
    try:
        wait_ready(f2)
        assert start(f2)[0] == 201
        listing = subprocess.run([BIN, "sessions", "--server", sock], capture_output=True, text=True)
        assert len(json.loads(listing.stdout)["sessions"]) >= 1
    finally:
        t0 = time.monotonic()
        f2.proc.send_signal(signal.SIGTERM)
        assert f2.proc.wait(30) == 0 and time.monotonic() - t0 < 10
    deadline = time.monotonic() + 30
    while json.loads(subprocess.run([BIN, "sessions", "--server", sock], capture_output=True,
                                    text=True).stdout)["sessions"]:
        assert time.monotonic() < deadline, "the warm server still holds the session"
        select.select([], [], [], 0.1)
    assert os.path.exists(sock)
