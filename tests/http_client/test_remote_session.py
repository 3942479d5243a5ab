"""connect(...).session(): a session held by sandcell-http with the API of
sandcell.Session (docs/http.md, *Sessions*): state from cell to cell,
outputs streamed in order, input(), interrupt from another thread, adds,
datasets on demand, per-cell files, the end report, SessionEnded."""
from __future__ import annotations

import json
import os
import threading

import pandas as pd
import pytest

from remote_util import Served, needs_http, sandcell

pytestmark = needs_http


@pytest.fixture
def session(client):
    with client.session(limits={"memory": "1G", "cell_wall_time": 60}) as s:
        yield s


def test_state_streaming_and_input(session, client):
    r1 = session.run("x = 41\nprint('set')")
    assert r1.ok and r1.execution_count == 1
    assert r1.outputs == [{"output_type": "stream", "name": "stdout", "text": "set\n"}]
    r2 = session.run("x + 1")
    assert r2.execution_count == 2 and r2.outputs[0]["data"]["text/plain"] == "42"
    assert session.run("y = x", silent=True).ok and session.run("y").execution_count == 3
    seen = []

    def on_input(prompt, password):
        # The first line has arrived while the cell waits for this answer.
        return "yes" if seen == ["first\n"] and prompt == "go? " else "too late"
    r = session.run("print('first')\nans = input('go? ')\nprint(ans)",
                    on_output=lambda o: seen.append(o["text"]), on_input=on_input)
    assert r.ok and seen == ["first\n", "yes\n"]
    cr = session.stream("for i in range(2): print(i)")
    assert "".join(o["text"] for o in cr) == "0\n1\n" and cr.result().ok
    infos = client.sessions()
    assert session.id in [i.id for i in infos]
    assert next(i for i in infos if i.id == session.id).state in ("idle", "running")


def test_errors_and_interrupt_from_another_thread(session):
    r = session.run("def f():\n    return 1 / 0\nf()")
    assert r.status == "error" and r.error.ename == "ZeroDivisionError"
    assert r.outputs[-1]["output_type"] == "error"

    # Once, on the cell's first line: the traceback of the interrupt is an
    # output too, and an interrupt sent on it could land in the next cell.
    def on_output(o):
        if o.get("output_type") == "stream":
            threading.Thread(target=session.interrupt).start()
    r = session.run("import time\nprint('waiting', flush=True)\ntime.sleep(60)", on_output=on_output)
    assert r.status == "interrupted" and r.error.ename == "KeyboardInterrupt"
    assert session.run("'alive'").outputs[0]["data"]["text/plain"] == "'alive'"


def test_adds_datasets_on_demand_and_files(client, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    asked = []

    def lookup(name):
        asked.append(name)
        return pd.DataFrame({"v": [1, 2, 3]}) if name == "lazy" else None
    with client.session(datasets={"start": pd.DataFrame({"a": [1]})},
                        on_dataset_request=lookup) as s:
        assert s.run("import sandcell\nsandcell.datasets['start'].a.sum()").outputs[0]["data"]["text/plain"] == "1"
        s.add_input("notes", str(notes))
        s.add_dataset("more", pd.DataFrame({"b": [4, 5]}))
        r = s.run("import sandcell\nprint(open(sandcell.inputs['notes']).read())\n"
                  "int(sandcell.datasets['more'].b.sum())")
        assert r.ok and r.outputs[0]["text"] == "hello\n"
        assert r.outputs[1]["data"]["text/plain"] == "9"
        r = s.run("int(sandcell.datasets['lazy'].v.sum())")
        assert r.ok and r.outputs[-1]["data"]["text/plain"] == "6" and asked == ["lazy"]
        r = s.run("sandcell.datasets['absent']")
        assert r.status == "error" and r.error.ename == "KeyError" and asked[-1] == "absent"
        with pytest.raises(sandcell.BadRequest):
            s.add_input("bad/name", str(notes))
        r = s.run("open('/output/a.txt', 'w').write('A')\n"
                  "sandcell.datasets['pub'] = sandcell.datasets['more'] * 2")
        assert r.ok and sorted(f.path.split("/", 1)[1] for f in r.files) == ["a.txt", "datasets/pub.scf"]
        assert [f for f in r.files if f.path.endswith("a.txt")][0].read_text() == "A"
        assert list(r.datasets["pub"].b) == [8, 10]
        out_dir = s.output_dir
    report = s.report
    assert report is not None and report.status == "ok"
    assert not s.alive
    assert not os.path.exists(out_dir), "the session's private directory stays after close"


def test_session_ended_by_a_limit(client):
    s = client.session(limits={"memory": "256M", "cell_wall_time": 60})
    r = s.run("x = bytearray(1 << 30)")
    assert r.status == "killed" and not s.alive
    with pytest.raises(sandcell.SessionEnded) as e:
        s.run("1")
    assert e.value.report is not None and e.value.report.status == "memory"
    assert s.close() is not None and s.close().status == "memory"


def test_close_answers_with_the_report_and_later_calls_end(served: Served):
    c = served.client()
    s = c.session()
    s.run("1")
    rep = s.close()
    assert rep is not None and rep.status == "ok"
    with pytest.raises(sandcell.SessionEnded):
        s.run("2")
    assert s.id not in [i.id for i in c.sessions()]


@pytest.mark.parametrize("gone", ["proxy503", "proxy502", "notfound", "hungup"])
def test_a_session_whose_server_is_gone_has_ended(canned, gone):
    """docs/scaling.md: a session lives in one server; a call that meets a
    proxy's own 502/503 (the server it pins the session to is down), a 404
    from another server (it never held the id) or a hang-up raises
    SessionEnded saying so, the session is not alive, and later calls
    raise SessionEnded without sending anything."""
    sid = "5e" * 16
    canned.answers.append((201, {"Content-Type": "application/json", "X-Sandcell-Session": sid},
                           json.dumps({"session": sid, "ready": True}).encode()))
    s = sandcell.connect(canned.url, retries=3).session()
    assert s.id == sid
    if gone == "proxy503":
        canned.answers.append((503, {"Content-Type": "text/html"}, b"<h1>503</h1>"))
        why = "HTTP 503 from the proxy"
    elif gone == "proxy502":
        canned.answers.append((502, {"Content-Type": "text/html"}, b"<h1>502</h1>"))
        why = "HTTP 502 from the proxy"
    elif gone == "notfound":
        canned.refusal(404, "not-found", "no such session")
        why = "does not know it"
    else:
        canned.answers.append(None)
        why = "hung up"
    with pytest.raises(sandcell.SessionEnded, match="session %s ended: .*%s" % (sid, why)):
        s.run("1")
    assert not s.alive and why in s.ended_reason
    sent = len(canned.requests)
    assert sent == 2, "a session cell was retried"
    with pytest.raises(sandcell.SessionEnded):
        s.run("2")
    with pytest.raises(sandcell.SessionEnded):
        s.add_input("x", __file__)
    assert len(canned.requests) == sent
    s.close()   # the DELETE may fail: the session had ended already
