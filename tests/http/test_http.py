"""POST /v1/runs, auth, limits, caps, health, readiness, metrics (docs/http.md)."""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import tempfile
import threading
import time

from http_util import (ALICE, BOB, CAROL, HTTP_BIN, metrics, multipart, request, run,
                      second_front, stream_bytes, wait_ready)

CODE = r"""
import os, sandcell, sys
print("in:", open(sandcell.inputs["data"]).read().strip())
print("ds:", open("/input/.datasets/table", "rb").read())
print("vals:", sandcell.values["k"], sys.argv[1:])
print("stdin:", sys.stdin.read().strip())
sys.stderr.buffer.write(b"\xff\xfe raw\n")
os.makedirs("/output/sub")
open("/output/sub/r.bin", "wb").write(bytes(range(256)))
sandcell.result({"n": 3})
"""


def test_run_round_trip(served):
    front, _, _ = served
    code, ev = run(front, {"code": CODE, "values": {"k": [1, 2]}, "args": ["-x"], "cell": False,
                           "limits": {"memory": "512M", "wall_time": 20}},
                   [("input:data", b"hello\n"), ("dataset:table", b"\x00\x01table"),
                    ("stdin", b"from stdin\n")])
    assert code == 200, ev
    assert ev[0]["ev"] == "run" and len(ev[0]["id"]) == 32
    assert ev[-1]["ev"] == "report"
    rep = ev[-1]["report"]
    assert rep["status"] == "ok", rep
    assert rep["result"] == {"n": 3}
    assert rep["limits"]["memory_bytes"] == 512 << 20
    out = stream_bytes(ev, "stdout").decode()
    assert "in: hello" in out and "ds: b'\\x00\\x01table'" in out
    assert "vals: [1, 2] ['-x']" in out and "stdin: from stdin" in out
    assert stream_bytes(ev, "stderr") == b"\xff\xfe raw\n"
    assert any("b64" in e for e in ev if e["ev"] == "stream")  # not UTF-8: base64
    files = [e for e in ev if e["ev"] == "file"]
    assert [f["path"] for f in files] == ["sub/r.bin"]
    data = base64.b64decode(files[0]["b64"])
    assert data == bytes(range(256))
    assert files[0]["sha256"] == hashlib.sha256(data).hexdigest() == rep["outputs"]["files"][0]["sha256"]


def test_cell_mode_default_and_json_body(served):
    front, _, _ = served
    code, ev = request(front, "POST", "/v1/runs", b'{"code": "1 + 41"}', "application/json", ALICE)
    assert code == 200, ev
    rep = ev[-1]["report"]
    assert rep["cell"]["mode"] == "cell"
    assert rep["cell"]["outputs"][-1]["data"]["text/plain"] == "42"


def test_auth(served):
    front, _, _ = served
    body, ctype = multipart({"code": "pass"})
    for tok in (None, "x" * 40, ALICE[:-1] + "b"):
        code, ans = request(front, "POST", "/v1/runs", body, ctype, tok)
        assert code == 401 and ans["status"] == "unauthorized", (tok, ans)
    assert request(front, "GET", "/metrics")[0] == 401
    assert request(front, "GET", "/healthz")[0] == 200  # no auth needed
    assert ALICE not in front.log()


def expect(front, code, status, files=(), req=None, raw=None, token=ALICE):
    body, ctype = multipart(req if req is not None else {"code": "pass"}, list(files), raw)
    got, ans = request(front, "POST", "/v1/runs", body, ctype, token)
    assert got == code and ans["status"] == status, (got, ans)
    return ans["message"]


def test_bad_requests(served):
    front, _, _ = served
    assert "unknown field" in expect(front, 400, "usage-error", req={"code": "pass", "output_dir": "/x"})
    assert "unknown field" in expect(front, 400, "usage-error", req={"code": "pass", "inputs": {}})
    expect(front, 400, "usage-error", raw=b'{"code": "pass", "code": "x"}')
    expect(front, 400, "usage-error", raw=b'{"code": ')
    expect(front, 400, "usage-error", raw=b'{"code": NaN}')
    expect(front, 400, "usage-error", req=[1])
    expect(front, 400, "usage-error", req={"args": []})
    expect(front, 400, "usage-error", req={"code": "pass", "limits": {"memory": "lots"}})
    expect(front, 400, "usage-error", req={"code": "pass", "limits": {"cell_wall_time": 3}})
    expect(front, 400, "usage-error", req={"code": "pass", "values": {"../x": 1}})
    for name in ("input:../etc", "input:/etc/passwd", "input:.hidden", "dataset:a/b", "input:",
                 "other", "input:" + "x" * 129):
        expect(front, 400, "usage-error", files=[(name, b"x")])
    expect(front, 400, "usage-error", files=[("input:a", b"1"), ("input:a", b"2")])
    # no request part at all
    body, ctype = multipart(None, [("input:a", b"1")])
    code, ans = request(front, "POST", "/v1/runs", body, ctype, ALICE)
    assert code == 400 and "request" in ans["message"]
    assert expect(front, 403, "forbidden", req={"code": "pass", "allow_reduced": True})
    # a name in both namespaces is fine
    body, ctype = multipart({"code": "pass"}, [("input:a", b"1"), ("dataset:a", b"2")])
    assert request(front, "POST", "/v1/runs", body, ctype, ALICE)[0] == 200


def test_http_level_refusals(served):
    front, _, _ = served
    assert request(front, "GET", "/v1/nothing", token=ALICE)[0] == 404
    assert request(front, "GET", "/v1/runs/" + "0" * 32 + "/cancel", token=ALICE)[0] == 405
    assert request(front, "POST", "/v1/runs/" + "0" * 32 + "/cancel", b"", token=ALICE)[0] == 404
    c = front.conn()
    c.request("GET", "/v1/runs", headers={"Authorization": "Bearer " + ALICE})
    r = c.getresponse()
    assert r.status == 405 and r.getheader("Allow") == "POST"
    r.read()
    code, ans = request(front, "POST", "/v1/runs", b"code=1", "application/x-www-form-urlencoded", ALICE)
    assert code == 415
    # no Content-Length and not chunked
    s = socket.create_connection(("127.0.0.1", front.port))
    s.sendall(b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALICE.encode() +
              b"\r\nContent-Type: application/json\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 411")
    s.close()


def test_caps(served):
    front, sock, tokens = served
    small = second_front(sock, tokens, "--max-body", "64K", "--max-file", "1K", "--max-parts", "3",
                         "--max-request", "2K")
    try:
        expect(small, 413, "usage-error", files=[("input:a", b"x" * 2000)])
        expect(small, 413, "usage-error", files=[("input:%d" % i, b"x") for i in range(5)])
        expect(small, 413, "usage-error", req={"code": "x" * 5000})
        # Content-Length over the cap: refused before the body is read
        s = socket.create_connection(("127.0.0.1", small.port))
        s.sendall(b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALICE.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 413")
        s.close()
        # chunked, over the cap as it arrives
        c = small.conn()
        c.putrequest("POST", "/v1/runs")
        c.putheader("Authorization", "Bearer " + ALICE)
        c.putheader("Content-Type", "application/json")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        try:
            for _ in range(40):
                c.send(b"1000\r\n" + b" " * 4096 + b"\r\n")
        except OSError:
            pass
        assert c.getresponse().status == 413
        assert metrics(small)['sandcell_http_rejected_total{reason="caps"}'] >= 4
    finally:
        small.stop()


def test_slow_body_gets_408(served):
    front, sock, tokens = served
    slow = second_front(sock, tokens, "--body-timeout", "1")
    try:
        s = socket.create_connection(("127.0.0.1", slow.port))
        s.sendall(b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALICE.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        answer = b""
        deadline = time.monotonic() + 10
        s.settimeout(0.3)
        while not answer and time.monotonic() < deadline:
            try:
                s.sendall(b" ")
                answer = s.recv(200)
            except socket.timeout:
                continue
            except OSError:
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer
        s.close()
    finally:
        slow.stop()


def in_flight(front):
    return metrics(front)["sandcell_http_runs_in_flight"]


def test_disconnect_cancels_the_run(served):
    front, _, _ = served
    before = metrics(front)['sandcell_http_runs_total{status="cancelled"}']
    body, ctype = multipart({"code": "import time\nprint('started', flush=True)\ntime.sleep(60)",
                             "cell": False})
    c = front.conn()
    c.request("POST", "/v1/runs", body, {"Content-Type": ctype, "Authorization": "Bearer " + ALICE})
    r = c.getresponse()
    assert r.status == 200
    assert b'"run"' in r.readline() and b"started" in r.readline()
    c.sock.close()
    c.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = metrics(front)
        if m['sandcell_http_runs_total{status="cancelled"}'] > before:
            break
        time.sleep(0.1)
    assert m['sandcell_http_runs_total{status="cancelled"}'] == before + 1
    assert m["sandcell_http_runs_in_flight"] == 0


def test_cancel_endpoint(served):
    front, _, _ = served
    body, ctype = multipart({"code": "import time\nprint('go', flush=True)\ntime.sleep(60)", "cell": False})
    c = front.conn()
    c.request("POST", "/v1/runs", body, {"Content-Type": ctype, "Authorization": "Bearer " + ALICE})
    r = c.getresponse()
    import json
    rid = json.loads(r.readline())["id"]
    r.readline()
    assert request(front, "POST", "/v1/runs/%s/cancel" % rid, b"", token=BOB)[0] == 404
    assert request(front, "POST", "/v1/runs/%s/cancel" % rid, b"", token=ALICE)[0] == 202
    rest = [json.loads(x) for x in r.read().splitlines()]
    assert rest[-1]["ev"] == "report" and rest[-1]["report"]["status"] == "cancelled"


def test_per_token_concurrency(served):
    front, _, _ = served
    results = []
    long_run = {"code": "import time\nprint('x', flush=True)\ntime.sleep(3)", "cell": False}
    t = threading.Thread(target=lambda: results.append(run(front, long_run, token=BOB)))
    t.start()
    deadline = time.monotonic() + 10
    while in_flight(front) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    c = front.conn()
    body, ctype = multipart({"code": "pass"})
    c.request("POST", "/v1/runs", body, {"Content-Type": ctype, "Authorization": "Bearer " + BOB})
    r = c.getresponse()
    assert r.status == 429 and r.getheader("Retry-After") == "1"
    r.read()
    assert run(front, {"code": "pass"}, token=ALICE)[0] == 200  # another tenant is not starved
    t.join()
    assert results[0][0] == 200


def test_per_token_rate(served):
    front, _, _ = served
    codes = [run(front, {"code": "pass"}, token=CAROL)[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    m = metrics(front)
    assert m['sandcell_http_rejected_total{reason="rate"}'] >= 1


def test_metrics_move(served):
    front, _, _ = served
    a = metrics(front)
    assert run(front, {"code": "raise SystemExit(3)", "cell": False})[0] == 200
    b = metrics(front)
    assert b['sandcell_http_runs_total{status="exited"}'] == a['sandcell_http_runs_total{status="exited"}'] + 1
    assert b["sandcell_http_run_duration_seconds_count"] == a["sandcell_http_run_duration_seconds_count"] + 1
    assert b['sandcell_http_run_duration_seconds_bucket{le="+Inf"}'] == b["sandcell_http_run_duration_seconds_count"]
    assert b["sandcell_http_ready"] == 1


def test_readyz_follows_the_warm_socket(served):
    _, _, tokens = served
    d = tempfile.mkdtemp(prefix="sandcell-http-ready.")
    path = os.path.join(d, "sock")
    fake = socket.socket(socket.AF_UNIX)
    fake.bind(path)
    fake.listen(64)
    front = second_front(path, tokens)
    try:
        wait_ready(front)
        fake.close()
        os.unlink(path)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            code, ans = request(front, "GET", "/readyz")
            if code == 503:
                break
            time.sleep(0.2)
        assert code == 503 and "warm server" in ans["reason"]
        # a run now: the warm server is unreachable, a retryable 503
        body, ctype = multipart({"code": "pass"})
        code, ans = request(front, "POST", "/v1/runs", body, ctype, ALICE)
        assert code == 503 and ans["status"] == "unreachable" and ans["report"]["status"] == "unreachable"
    finally:
        front.stop()
        os.rmdir(d)


def test_refuses_unsafe_start(served):
    _, sock, tokens = served
    import subprocess
    def start(*args):
        return subprocess.run([HTTP_BIN, "--socket", sock] + list(args), capture_output=True,
                              text=True, timeout=20)
    r = start("--listen", "0.0.0.0:0", "--token-file", tokens)
    assert r.returncode == 125 and "--allow-remote" in r.stderr
    r = start("--listen", "127.0.0.1:0")
    assert r.returncode == 125 and "--no-auth" in r.stderr
    r = start("--listen", "0.0.0.0:0", "--no-auth", "--allow-remote")
    assert r.returncode == 125
    os.chmod(tokens, 0o640)
    try:
        r = start("--listen", "127.0.0.1:0", "--token-file", tokens)
        assert r.returncode == 125 and "chmod 600" in r.stderr
    finally:
        os.chmod(tokens, 0o600)
    d = tempfile.mkdtemp()
    bad = os.path.join(d, "t")
    with open(bad, "w") as f:
        f.write("alice:short\n")
    os.chmod(bad, 0o600)
    r = start("--listen", "127.0.0.1:0", "--token-file", bad)
    assert r.returncode == 125 and "line 1" in r.stderr and "short" not in r.stderr
    os.unlink(bad)
    os.rmdir(d)


def warm_after(front, t, timeout=20):
    """/metrics once it shows a listing of the warm server taken after t
    (Unix time): the front end fetches one a second while it is watched."""
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(front)
        if m.get("sandcell_warm_listing_timestamp_seconds", 0) > t:
            return m
        assert time.monotonic() < deadline, "no listing of the warm server after %.3f" % t
        time.sleep(0.1)


def warm_at_rest(front):
    """The warm server's counts once the runs of earlier tests are reaped."""
    deadline = time.monotonic() + 20
    while True:
        m = warm_after(front, time.time())
        if m["sandcell_warm_runs_in_flight"] == 0:
            return m
        assert time.monotonic() < deadline, m


def test_silent_run_gets_its_id_at_once_and_cancels_by_id(served):
    import json
    front, _, _ = served
    m = warm_at_rest(front)
    assert m["sandcell_warm_spares"] >= 1, m   # --spares 1: refilled before the listing is answered
    assert m["sandcell_warm_queue_depth"] == 0 and m["sandcell_warm_sessions_live"] == 0, m
    body, ctype = multipart({"code": "import time\ntime.sleep(60)", "cell": False})
    c = front.conn(timeout=20)   # the headers must come long before the run's 60 s
    t0 = time.monotonic()
    c.request("POST", "/v1/runs", body, {"Content-Type": ctype, "Authorization": "Bearer " + ALICE})
    r = c.getresponse()
    assert r.status == 200
    rid = r.getheader("X-Sandcell-Run")
    assert json.loads(r.readline()) == {"ev": "run", "id": rid}
    assert time.monotonic() - t0 < 20
    # It is the warm server's run now: its own count says so.
    m = warm_after(front, time.time())
    assert m["sandcell_warm_runs_in_flight"] == 1 and m["sandcell_http_runs_in_flight"] == 1, m
    assert request(front, "POST", "/v1/runs/%s/cancel" % rid, b"", token=ALICE)[0] == 202
    rest = [json.loads(x) for x in r.read().splitlines()]
    assert [e["ev"] for e in rest] == ["report"], rest   # it never printed
    assert rest[-1]["report"]["status"] == "cancelled"
    assert warm_at_rest(front)["sandcell_warm_runs_in_flight"] == 0


def test_refusals_keep_their_code_with_the_early_id(served):
    """The headers go once the warm server's worker read the request; a
    busy server refuses before that, so its 503 is still a 503."""
    front, sock, tokens = served
    # A warm server with one slot and a queue timeout of 1 s, held by a run.
    d = tempfile.mkdtemp(prefix="sandcell-http-busy.")
    wsock = os.path.join(d, "sock")
    from http_util import BIN
    import subprocess
    warm = subprocess.Popen([BIN, "serve", "--socket", wsock, "--slots", "1", "--queue-timeout", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    front2 = None
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(wsock):
            assert warm.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        front2 = second_front(wsock, tokens)
        wait_ready(front2)
        body, ctype = multipart({"code": "import time\ntime.sleep(30)", "cell": False})
        c = front2.conn(timeout=30)
        c.request("POST", "/v1/runs", body, {"Content-Type": ctype, "Authorization": "Bearer " + BOB})
        r = c.getresponse()
        assert r.status == 200 and r.getheader("X-Sandcell-Run")
        code, ans = run(front2, {"code": "print(1)"}, token=ALICE)
        assert code == 503 and ans["status"] == "busy", (code, ans)
        c.close()
    finally:
        if front2 is not None:
            front2.stop()
        warm.terminate()
        warm.wait(30)
