"""sandcell.connect(...).run: one-shot runs over HTTP with the API and the
Result of a local server's runs; every refusal of docs/http.md's table
mapped to its class; retries where nothing can have run or its server went away; whatever
the server sends parsed strictly."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import threading

import pandas as pd
import pytest

from client_util import run_dirs
from remote_util import Canned, Served, needs_http, sandcell

pytestmark = needs_http


def test_round_trip_with_input_dataset_and_files(client, tmp_path):
    csv = tmp_path / "sales.csv"
    csv.write_text("region,units\nn,3\ns,4\nn,5\n")
    df = pd.DataFrame({"x": [1.5, 2.5], "tag": ["a", "b"]})
    before = set(run_dirs())
    res = client.run(
        "import pandas as pd, sandcell, sys\n"
        "df = pd.read_csv(sandcell.inputs['sales'])\n"
        "print(df.units.sum())\n"
        "print('warn', file=sys.stderr)\n"
        "open('/output/clean.csv', 'w').write(df.to_csv(index=False))\n"
        "import os; os.mkdir('/output/sub'); open('/output/sub/b.bin', 'wb').write(bytes(range(256)))\n"
        "sandcell.datasets['doubled'] = sandcell.datasets['frame'].assign(x=lambda d: d.x * 2)\n"
        "sandcell.result({'top': sandcell.values['top'], 'rows': len(df)})\n"
        "sandcell.datasets['frame'].shape",
        inputs={"sales": str(csv)}, datasets={"frame": df}, values={"top": 3},
        limits={"memory": "512M", "wall_time": 30}, stdin=b"unused")
    assert res.status == "ok" and res.ok and res.exit_code == 0
    assert res.value == {"top": 3, "rows": 3}
    assert res.stdout == b"12\n" and res.stderr == b"warn\n"
    kinds = [(o["output_type"], o.get("name")) for o in res.outputs]
    assert kinds == [("stream", "stdout"), ("stream", "stderr"), ("execute_result", None)]
    assert res.outputs[2]["data"]["text/plain"] == "(2, 2)"
    assert sorted(f.path for f in res.files) == ["clean.csv", "datasets/doubled.scf", "sub/b.bin"]
    assert res.file("sub/b.bin").read_bytes() == bytes(range(256))
    assert res.file("clean.csv").read_text().startswith("region,units")
    assert list(res.datasets["doubled"].x) == [3.0, 5.0] and res.dataset_errors == {}
    # The files are in a private 0700 directory on this host, removed by close().
    assert stat.S_IMODE(os.stat(os.path.dirname(res.output_dir)).st_mode) == 0o700
    assert res.report.limits["memory_bytes"] == 512 << 20 and res.report.limits["wall_sec"] == 30
    assert res.usage.output_files == 3 and res.usage.wall_sec > 0
    res.close()
    assert set(run_dirs()) == before, "a private run directory was left behind"


def test_output_dir_and_plain_mode(client, tmp_path):
    out = tmp_path / "out"
    res = client.run("open('/output/a.txt', 'w').write('A')\n1/0", output_dir=str(out), cell=False)
    assert res.status == "exited" and res.exit_code == 1
    assert (out / "a.txt").read_text() == "A" and res.output_dir == str(out)
    assert res.report.code_error.ename == "ZeroDivisionError"
    assert b"ZeroDivisionError" in res.stderr and [o["name"] for o in res.outputs] == ["stderr"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(sandcell.BadRequest, match="new or an empty"):
        client.run("1", output_dir=str(tmp_path / "full"))
    assert (tmp_path / "full" / "x").read_text() == "mine"


def test_outcomes_are_results(client):
    r = client.run("import time\nwhile True: pass", limits={"wall_time": 1, "cpu_time": 1})
    assert r.status in ("timeout", "cpu-time") and not r.ok
    r = client.run("import sys; sys.stdout.buffer.write(b'\\xff' + 'é'.encode())")
    assert r.stdout == b"\xff\xc3\xa9"


def test_bad_requests_are_refused_before_sending(client, tmp_path):
    with pytest.raises(sandcell.BadRequest, match="unknown key"):
        client.run("1", limits={"nope": 1})
    with pytest.raises(sandcell.BadRequest, match="inputs are files"):
        client.run("1", inputs={"d": str(tmp_path)})
    with pytest.raises(sandcell.BadRequest, match="cgroup"):
        client.run("1", cgroup_parent="/x")


def test_refusals_of_a_real_server(served: Served, client, tmp_path):
    # 400 from the warm server, with its report
    with pytest.raises(sandcell.BadRequest) as e:
        client.run("1", limits={"memory": "1M"})
    assert e.value.report is not None and e.value.report.status == "usage-error"
    assert e.value.answer["status"] == "usage-error"
    # 401: a token the server does not know
    with pytest.raises(sandcell.BadRequest) as e:
        sandcell.connect(served.url, token="x" * 40).run("1")
    assert e.value.answer["status"] == "unauthorized" and not e.value.retryable
    # 403: allow_reduced on a server without --allow-reduced
    with pytest.raises(sandcell.BadRequest) as e:
        client.run("1", allow_reduced=True)
    assert e.value.answer["status"] == "forbidden"
    # 404: a path the API does not have
    with pytest.raises(sandcell.BadRequest) as e:
        client.endpoint.call("GET", "/v1/nothing", "probe")
    assert e.value.answer["status"] == "not-found"
    # Unreachable: nothing listens there
    with pytest.raises(sandcell.Unreachable):
        sandcell.connect("http://127.0.0.1:9", token="x" * 40).run("1")


def test_rate_limit_is_busy_with_retry_after(served: Served):
    slow = served.client("slow")           # one run a minute
    slow.run("1")
    with pytest.raises(sandcell.Busy) as e:
        slow.run("1")
    assert e.value.retryable and e.value.retry_after is not None and e.value.retry_after > 1
    assert e.value.answer["status"] == "busy"


def test_retry_on_a_retryable_refusal(served: Served):
    """A token with one run at a time: a second run while the first runs
    is refused (429, Retry-After) and, with retries=, sent again until it
    is taken; without retries it raises Busy."""
    single = served.client("single")
    first = {}
    # The first run retries too: the loop below may hold the slot when it
    # arrives (then the first is the one refused, and would never run).
    t = threading.Thread(target=lambda: first.update(
        res=single.run("import time; time.sleep(4)", retries=20)))
    t.start()
    refused = None
    while t.is_alive() and refused is None:
        try:
            single.run("1", retries=0)
        except sandcell.Busy as e:
            refused = e
    assert refused is not None and refused.retry_after is not None, "never refused as busy"
    res = single.run("print('second')", retries=20)
    assert res.ok and res.stdout == b"second\n"
    t.join()
    assert first["res"].ok


# ---- what the server says, and how strictly it is read (a canned server)

REFUSAL_TABLE = [
    (400, "usage-error", sandcell.BadRequest), (401, "unauthorized", sandcell.BadRequest),
    (403, "forbidden", sandcell.BadRequest), (404, "not-found", sandcell.BadRequest),
    (405, "usage-error", sandcell.BadRequest), (408, "usage-error", sandcell.BadRequest),
    (409, "usage-error", sandcell.BadRequest), (410, "session-ended", sandcell.SessionEnded),
    (411, "usage-error", sandcell.BadRequest), (413, "usage-error", sandcell.BadRequest),
    (415, "usage-error", sandcell.BadRequest), (429, "busy", sandcell.Busy),
    (500, "sandbox-error", sandcell.SandboxError), (503, "busy", sandcell.Busy),
    (503, "unreachable", sandcell.Unreachable),
]


@pytest.mark.parametrize("code,status,cls", REFUSAL_TABLE)
def test_every_row_of_the_refusal_table(canned: Canned, code, status, cls):
    canned.refusal(code, status, "why %d" % code, retry_after=7)
    with pytest.raises(cls) as e:
        sandcell.connect(canned.url, token="t" * 32).run("1")
    assert type(e.value) is cls and "why %d" % code in str(e.value)
    assert e.value.retry_after == 7.0 and e.value.retryable == (status == "busy")


@pytest.mark.parametrize("code,status", [(400, "busy"), (200, "usage-error"), (503, "usage-error"),
                                         (418, "teapot")])
def test_a_refusal_outside_the_table_is_a_protocol_error(canned: Canned, code, status):
    canned.refusal(code, status)
    with pytest.raises(sandcell.ProtocolError):
        sandcell.connect(canned.url).run("1")


def test_request_on_the_wire(canned: Canned, tmp_path):
    """multipart with the request object and the file's bytes; the token
    as a bearer header; no host path anywhere in the request."""
    f = tmp_path / "data.bin"
    f.write_bytes(b"\x00payload\xff")
    canned.refusal(400, "usage-error")
    with pytest.raises(sandcell.BadRequest):
        sandcell.connect(canned.url, token="t" * 32).run(
            "print(1)", inputs={"data": str(f)}, values={"k": [1]}, limits={"memory": "1G"},
            args=["a"], stdin=b"in", cell=False)
    method, path, headers, body = canned.requests[0]
    assert (method, path) == ("POST", "/v1/runs")
    assert headers["Authorization"] == "Bearer " + "t" * 32
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert int(headers["Content-Length"]) == len(body)
    assert b'name="input:data"' in body and b"\x00payload\xff" in body and b'name="stdin"' in body
    assert str(tmp_path).encode() not in body
    req = json.loads(body.split(b'name="request"')[1].split(b"\r\n\r\n", 1)[1].split(b"\r\n--")[0])
    assert req == {"code": "print(1)", "args": ["a"], "values": {"k": [1]},
                   "limits": {"memory": 1 << 30}, "allow_reduced": False, "cell": False}


def test_retries_what_did_not_run_and_nothing_else(canned: Canned, client):
    rep = dict(client.run("print('hi')").report.raw)
    ok = [{"ev": "run", "id": "a" * 32}, {"ev": "stream", "name": "stdout", "text": "hi\n"},
          {"ev": "report", "report": rep}]
    c = sandcell.connect(canned.url, retries=3)
    canned.refusal(429, "busy", retry_after=0)
    canned.refusal(503, "unreachable", retry_after=0)
    canned.events(ok)
    assert c.run("print('hi')").stdout == b"hi\n" and len(canned.requests) == 3
    # The default is no retry.
    canned.requests.clear()
    canned.refusal(503, "busy", retry_after=0)
    with pytest.raises(sandcell.Busy):
        sandcell.connect(canned.url).run("1")
    # Retries run out: the last refusal is raised.
    canned.requests.clear()
    for _ in range(3):
        canned.refusal(429, "busy", retry_after=0)
    with pytest.raises(sandcell.Busy):
        c.run("1", retries=2)
    assert len(canned.requests) == 3
    # Sent whole, then the connection closed without an answer, or the
    # stream was cut before its report: without retries, raised as it is
    # (sent once; nothing says whether it ran).
    canned.requests.clear()
    canned.answers.append(None)
    with pytest.raises(sandcell.SandboxError, match="hung up"):
        sandcell.connect(canned.url).run("1")
    assert len(canned.requests) == 1
    canned.requests.clear()
    canned.events(ok[:2])
    with pytest.raises(sandcell.SandboxError, match="without the report"):
        sandcell.connect(canned.url).run("1")
    assert len(canned.requests) == 1
    # Never a BadRequest.
    canned.requests.clear()
    canned.refusal(400, "usage-error")
    with pytest.raises(sandcell.BadRequest):
        c.run("1")
    assert len(canned.requests) == 1


def test_a_server_that_went_away_is_retried_and_nothing_of_it_returned(canned: Canned, client,
                                                                       tmp_path, monkeypatch):
    """docs/scaling.md, "When a server dies": with retries, a run whose
    server went away before its report (no answer, a cut stream, a proxy's
    502/503/504 in its own words) is sent again; the Result is the last
    attempt alone (stdout once, no file of the cut attempt, in output_dir
    too).  Every wait is the backoff's."""
    rep = dict(client.run("print('hi')").report.raw)
    ok = [{"ev": "run", "id": "a" * 32}, {"ev": "stream", "name": "stdout", "text": "hi\n"},
          {"ev": "report", "report": rep}]
    waits = []
    monkeypatch.setattr(sandcell._remote, "backoff", lambda n, w: waits.append((n, w)) or 0.0)
    c = sandcell.connect(canned.url, retries=5)
    canned.answers.append(None)                                           # hung up
    canned.events(ok[:2] + [_file_event("cut.txt", b"partial")])          # cut after a file
    canned.answers.append((502, {"Content-Type": "text/html"}, b"<h1>502 Bad Gateway</h1>"))
    canned.answers.append((503, {"Content-Type": "text/html"}, b"<h1>503</h1>"))
    canned.answers.append((504, {}, b""))
    canned.events(ok)
    out = tmp_path / "out"
    res = c.run("print('hi')", output_dir=str(out))
    assert res.stdout == b"hi\n" and res.ok and len(canned.requests) == 6
    assert os.listdir(out) == [], "a file of the cut attempt was left or returned"
    assert [n for n, _ in waits] == [0, 1, 2, 3, 4]
    # Retries run out: the last error is raised, with what it was.
    canned.requests.clear()
    canned.answers.append(None)
    canned.answers.append((502, {"Content-Type": "text/html"}, b"bad gateway"))
    with pytest.raises(sandcell.Unreachable, match="HTTP 502 from a proxy"):
        c.run("1", retries=1)
    assert len(canned.requests) == 2
    # A 500 of sandcell's own, a malformed stream or a proxy's 500: never.
    for answer in [(500, {"Content-Type": "application/json"},
                    b'{"status":"sandbox-error","message":"m","report":null}'),
                   (500, {"Content-Type": "text/html"}, b"oops"),
                   (200, {"Content-Type": "application/x-ndjson"}, b'{"ev":"stream"}\n')]:
        canned.requests.clear()
        canned.answers.append(answer)
        with pytest.raises((sandcell.SandboxError, sandcell.ProtocolError)):
            c.run("1")
        assert len(canned.requests) == 1


def _file_event(path, data, **over):
    ev = {"ev": "file", "path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
          "b64": base64.b64encode(data).decode()}
    ev.update(over)
    return ev


@pytest.mark.parametrize("bad", ["dup", "nan", "b64", "sha", "path", "notfirst", "after", "extra",
                                 "stream", "unlisted"])
def test_hostile_event_streams_are_protocol_errors(canned: Canned, client, bad):
    good = dict(client.run("open('/output/f', 'w').write('x')").report.raw)
    run = {"ev": "run", "id": "b" * 32}
    fev = _file_event("f", b"x")
    rep = {"ev": "report", "report": good}
    events, raw = {
        "dup": ([run], b'{"ev":"stream","ev":"stream","name":"stdout","text":"a"}\n'),
        "nan": ([run], b'{"ev":"stream","name":"stdout","text":"a","n":NaN}\n'),
        "b64": ([run, _file_event("f", b"x", b64="!!!")], b""),
        "sha": ([run, _file_event("f", b"x", sha256="0" * 64)], b""),
        "path": ([run, _file_event("../f", b"x"), rep], b""),
        "notfirst": ([fev, run, rep], b""),
        "after": ([run, fev, rep, {"ev": "stream", "name": "stdout", "text": "late"}], b""),
        "extra": ([run, fev, _file_event("g", b"y"), rep], b""),
        "stream": ([run, {"ev": "stream", "name": "stdout", "text": "a", "b64": "YQ=="}, fev, rep], b""),
        "unlisted": ([run, rep], b""),
    }[bad]
    canned.events(events, raw)
    before = set(run_dirs())
    with pytest.raises(sandcell.ProtocolError):
        sandcell.connect(canned.url).run("1")
    assert set(run_dirs()) == before


def test_token_file_must_be_private(tmp_path, served: Served):
    p = tmp_path / "tok"
    p.write_text("m" * 40 + "\n")
    os.chmod(p, 0o644)
    with pytest.raises(sandcell.BadRequest, match="chmod 600"):
        sandcell.connect(served.url, token_file=str(p))
    os.chmod(p, 0o600)
    assert sandcell.connect(served.url, token_file=str(p)).run("print(2)").stdout == b"2\n"
    with pytest.raises(sandcell.BadRequest, match="32 to 256"):
        sandcell.connect(served.url, token="short")
    with pytest.raises(sandcell.BadRequest, match="http://HOST:PORT"):
        sandcell.connect("ftp://x")


@pytest.mark.parametrize("cell", [False, True])
def test_tracebacks_are_those_of_a_local_warm_run(served: Served, client, cell):
    """One-shot runs over HTTP run as the file cell.py, as the local
    client's warm runs do: the same traceback, line for line."""
    code = "def f():\n    return 1 / 0\nf()"
    remote = client.run(code, cell=cell)
    local = sandcell.run(code, server=served.sock, cell=cell)
    assert remote.report.code_error is not None and local.report.code_error is not None
    assert remote.report.code_error.traceback == local.report.code_error.traceback
    tb = "\n".join(remote.report.code_error.traceback)
    assert "return 1 / 0" in tb and "cell.py" in tb, tb


def test_a_run_without_files_is_one_json_body_in_one_write(canned: Canned, monkeypatch):
    from sandcell import _http
    writes = []
    send = _http._Conn.send

    def record(self, data):
        writes.append(bytes(data))
        return send(self, data)
    monkeypatch.setattr(_http._Conn, "send", record)
    canned.refusal(400, "usage-error")
    with pytest.raises(sandcell.BadRequest):
        sandcell.connect(canned.url, token="t" * 32).run("print(1)", values={"k": 1})
    assert len(writes) == 1 and writes[0].startswith(b"POST /v1/runs HTTP/1.1\r\n"), writes
    method, path, headers, body = canned.requests[0]
    assert writes[0].endswith(b"\r\n\r\n" + body)
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body) == {"code": "print(1)", "args": [], "values": {"k": 1}, "limits": {},
                                "allow_reduced": False}


def _counting(client, monkeypatch):
    """The client's new connections and private directories, counted."""
    from sandcell import _remote
    made = {"conn": 0, "dir": 0}
    connect, workdir = client.endpoint._connect, _remote.new_workdir

    def count_connect():
        made["conn"] += 1
        return connect()

    def count_workdir():
        made["dir"] += 1
        return workdir()
    monkeypatch.setattr(client.endpoint, "_connect", count_connect)
    monkeypatch.setattr(_remote, "new_workdir", count_workdir)
    return made


def test_runs_share_one_kept_alive_connection_and_make_no_directory_they_need_not(
        client, monkeypatch, tmp_path):
    made = _counting(client, monkeypatch)
    for _ in range(3):
        assert client.run("print('x')").stdout == b"x\n"
    assert made == {"conn": 1, "dir": 0}
    # A run that sends files back gets its private directory; an upload
    # and a refusal (a JSON answer read to its end) keep the connection.
    f = tmp_path / "in.txt"
    f.write_text("up")
    res = client.run("import sandcell\nopen('/output/o.txt', 'w').write(open(sandcell.inputs['i']).read())",
                     inputs={"i": str(f)})
    assert res.files[0].read_bytes() == b"up" and made == {"conn": 1, "dir": 1}
    with pytest.raises(sandcell.BadRequest):
        client.run("1", allow_reduced=True)   # 403: the server has no --allow-reduced
    assert client.run("1").status == "ok" and made["conn"] == 1
    client.close()
    assert client.run("1").status == "ok" and made["conn"] == 2


def test_a_kept_connection_the_server_closed_is_not_reused(served: Served, monkeypatch):
    """The front end closes a connection idle past its --idle-timeout: the
    next run sees it closed (readable while idle) and opens another, so
    even without retries it runs."""
    import select
    import signal
    import subprocess
    import time
    from remote_util import HTTP_BIN, wait_listening
    log = os.path.join(served.tmp, "idle.log")
    proc = subprocess.Popen([HTTP_BIN, "--socket", served.sock, "--listen", "127.0.0.1:0",
                             "--token-file", os.path.join(served.tmp, "tokens"), "--idle-timeout", "1",
                             "--selftest-interval", "3600"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), start_new_session=True)
    try:
        c = sandcell.connect("http://127.0.0.1:%d" % wait_listening(proc, log),
                             token_file=served.token_files["main"], retries=0)
        made = _counting(c, monkeypatch)
        assert c.run("1").status == "ok"
        kept = c.endpoint._idle[0].sock
        p = select.poll()
        p.register(kept, select.POLLIN)
        deadline = time.monotonic() + 20
        while not p.poll(50):
            assert time.monotonic() < deadline, "the front end did not close the idle connection"
        assert c.run("1").status == "ok" and made["conn"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_closing_a_response_twice_leaves_the_kept_connection_alone(client):
    assert client.run("1").status == "ok"
    # A refusal's JSON answer read to its end: the connection goes back
    # to the Endpoint (403: the server has no --allow-reduced).
    r = client.endpoint.request("POST", "/v1/runs", json_body=b'{"code":"1","allow_reduced":true}',
                                read_timeout=30)
    assert r.status == 403
    r.read_json("run")
    kept = client.endpoint._idle[0]
    r.close()                        # again: a no-op
    assert kept.sock is not None and client.endpoint._idle[0] is kept
    assert client.run("1").status == "ok"
