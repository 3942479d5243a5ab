"""sandcell.Session: state from cell to cell, outputs streamed as they are
produced, input(), interrupt, per-cell files and datasets, a session that
a limit ends, close and its report (docs/sessions.md)."""
from __future__ import annotations

import os
import threading
import time

import pandas as pd
import pytest

import client_util
from client_util import sandcell

server = client_util.server


@pytest.fixture(params=["cold", "warm"])
def session(request):
    """Each test once with a cold session, once with one started from the
    module's warm server (Server.session)."""
    if request.param == "cold":
        s = sandcell.Session(limits={"memory": "1G", "cell_wall_time": 60})
    else:
        s = request.getfixturevalue("server").session(limits={"memory": "1G", "cell_wall_time": 60})
    with s:
        yield s


def test_state_carries_and_counts(session):
    r1 = session.run("import math\nx = 41\nprint('set')")
    r2 = session.run("x + 1")
    assert r1.ok and r1.execution_count == 1
    assert r1.outputs == [{"output_type": "stream", "name": "stdout", "text": "set\n"}]
    assert r2.execution_count == 2 and r2.outputs[0]["data"]["text/plain"] == "42"
    assert r2.outputs[0]["execution_count"] == 2
    silent = session.run("y = x", silent=True)
    assert silent.ok and session.run("y").execution_count == 3


def test_errors_are_results_and_the_session_goes_on(session):
    r = session.run("def f():\n    return 1 / 0\nf()")
    assert r.status == "error" and r.error.ename == "ZeroDivisionError"
    assert r.outputs[-1]["output_type"] == "error"
    tb = "\n".join(r.error.traceback)
    assert '"<cell 1>", line 3' in tb and "return 1 / 0" in tb and "_sandcell" not in tb
    assert session.run("'still here'").ok


def test_outputs_stream_before_the_cell_ends(session):
    """The first line arrives while the cell still waits for its input:
    the callback answers only after it has seen the line."""
    seen = []
    def on_output(o):
        seen.append(o["text"])
    def on_input(prompt, password):
        return "yes" if seen == ["first\n"] else "too late"
    r = session.run("print('first')\nans = input('go? ')\nprint(ans)",
                    on_output=on_output, on_input=on_input)
    assert r.ok and seen == ["first\n", "yes\n"]


def test_progress_lines_without_newline_arrive(session):
    """A carriage-return progress line is sent at once, not at the cell's end."""
    got = []
    cr = session.stream("import sys, time\nfor i in range(3):\n    sys.stdout.write('\\r%d%%' % (i * 50))\n"
                        "    sys.stdout.flush() if i == 99 else None\n    time.sleep(0.5)")
    t0 = time.monotonic()
    for o in cr:
        got.append((o["text"], time.monotonic() - t0))
    assert [t for t, _ in got] == ["\r0%", "\r50%", "\r100%"]
    assert got[-1][1] - got[0][1] >= 0.9   # each came when written


def test_interrupt(session):
    session.run("x = 1")
    cr = session.stream("import time\nprint('loop', flush=True)\nwhile True:\n    time.sleep(0.01)")
    for o in cr:
        session.interrupt()
    r = cr.result()
    assert r.status == "interrupted" and r.error.ename == "KeyboardInterrupt"
    # The interrupt follows the first output: it may still land in print.
    tb = "\n".join(r.error.traceback)
    assert '"<cell 2>"' in tb and ("time.sleep(0.01)" in tb or "print('loop'" in tb)
    assert session.run("x").outputs[0]["data"]["text/plain"] == "1"


def test_timeout_gives_the_cell_up_and_the_session_goes_on(session):
    """run(timeout=) raises TimeoutError and interrupts the cell; the next
    cell (and an add) then runs instead of waiting for the lock forever."""
    session.run("n = 5")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        session.run("import time\nwhile True:\n    time.sleep(0.01)", timeout=0.5)
    r = session.run("n + 1", timeout=30)
    assert r.ok and r.outputs[0]["data"]["text/plain"] == "6"
    assert time.monotonic() - t0 < 20
    with pytest.raises(TimeoutError):
        session.run("while True:\n    time.sleep(0.01)", timeout=0.3)
    session.add_input("notes", __file__)
    assert session.run("import sandcell\nopen(sandcell.inputs['notes']).read(3)").ok


def test_keyboardinterrupt_in_run_interrupts_the_cell(session):
    """Ctrl-C in the host thread while run() waits: the cell is interrupted,
    run() returns its result, the session lives."""
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), 2))
    timer.start()
    try:
        r = session.run("import time\ntime.sleep(60)")
    finally:
        timer.cancel()
    assert r.status == "interrupted"
    assert session.run("1").ok


def test_files_and_datasets_per_cell(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3]})
    with sandcell.Session(datasets={"sales": df}, output_dir=tmp_path / "out") as s:
        r1 = s.run("import sandcell\nd = sandcell.datasets['sales']\n"
                   "open('/output/one.txt', 'w').write('1')\nsandcell.datasets['double'] = d * 2")
        r2 = s.run("import os\nprint(os.listdir('/output'))\nopen('/output/two.txt', 'w').write('2')")
    assert sorted(f.path for f in r1.files) == ["1/datasets/double.scf", "1/one.txt"]
    pd.testing.assert_frame_equal(r1.datasets["double"], df * 2)
    assert r2.outputs[0]["text"] == "[]\n"       # the outbox was emptied after cell 1
    assert [f.path for f in r2.files] == ["2/two.txt"] and r2.files[0].read_text() == "2"


def test_memory_ends_the_session(session):
    session.run("x = 1")
    r = session.run("b = bytearray(2 << 30)")
    assert r.status == "killed"
    assert not session.alive and "memory" in session.ended_reason
    with pytest.raises(sandcell.SessionEnded):
        session.run("x")
    assert session.report is not None and session.report.status == "memory"


def test_close_returns_the_report_and_removes_the_private_directory():
    s = sandcell.Session()
    s.run("print(1)")
    work = s._tmp.path
    rep = s.close()
    assert rep is not None and rep.status == "ok" and not s.alive
    assert not os.path.exists(work)
    assert s.close() is rep


def test_bad_limits_are_refused():
    with pytest.raises(sandcell.BadRequest):
        sandcell.Session(limits={"cell_wall_time": -1})
    with pytest.raises(sandcell.BadRequest):
        sandcell.Session(limits={"nope": 1})


def test_a_print_loop_keeps_every_line_in_few_outputs(session):
    """20,000 prints: every line arrives, batched into a few outputs (far
    under the per-cell output cap), in order."""
    r = session.run("for i in range(20000):\n    print(i)")
    text = "".join(o["text"] for o in r.outputs)
    assert text == "".join("%d\n" % i for i in range(20000))
    assert len(r.outputs) < 200


# ------------------------------------------------ adding inputs and datasets

def test_add_dataset_and_input_between_cells(tmp_path):
    df = pd.DataFrame({"k": ["a", "b", None], "v": [1.5, float("nan"), 3.0]},
                      index=pd.Index([10, 20, 30], name="i"))
    src = tmp_path / "notes.txt"
    src.write_text("hello\n")
    with sandcell.Session() as s:
        assert s.run("import sandcell\nprint(sorted(sandcell.datasets), sorted(sandcell.inputs))"
                     ).outputs[0]["text"] == "[] []\n"
        s.add_dataset("sales", df)
        s.add_input("notes", src)
        r = s.run("d = sandcell.datasets['sales']\nsandcell.datasets['back'] = d\n"
                  "print(open(sandcell.inputs['notes']).read().strip(), list(d.columns))")
        assert r.ok and r.outputs[0]["text"] == "hello ['k', 'v']\n", r.outputs
        # The typed format both ways: the frame comes back exactly.
        pd.testing.assert_frame_equal(r.datasets["back"], df)
        # Replacing a dataset drops the cell's cached load.
        s.add_dataset("sales", df.iloc[:1])
        assert s.run("len(sandcell.datasets['sales'])").outputs[0]["data"]["text/plain"] == "1"
        # The host copies of added DataFrames are gone once answered.
        assert not os.listdir(os.path.join(s._tmp.path, "added"))
        with pytest.raises(sandcell.BadRequest, match="starts with|letters"):
            s.add_dataset("../x", df)
        with pytest.raises(sandcell.BadRequest, match="not a file"):
            s.add_input("gone", tmp_path / "missing")
        assert s.run("1").ok
        rep = s.close()
    assert rep.status == "ok"


def test_dataset_on_demand_cold(tmp_path):
    """A dataset nobody handed in: the cell asks, the callback answers with
    a DataFrame (or a path), the cell gets it exactly; None refuses."""
    df = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3, tz="UTC"),
                       "c": pd.Categorical(["x", "y", "x"])})
    archive = tmp_path / "other.scf"
    from sandcell import frames
    frames.dump(pd.DataFrame({"n": [7]}), str(archive))
    asked = []

    def on_request(name):
        asked.append(name)
        if name == "events":
            return df
        if name == "other":
            return archive
        if name == "boom":
            raise RuntimeError("the warehouse is down")
        return None

    with sandcell.Session(on_dataset_request=on_request) as s:
        r = s.run("import sandcell\ne = sandcell.datasets['events']\nsandcell.datasets['copy'] = e\n"
                  "print(int(sandcell.datasets['other'].n[0]))")
        assert r.ok, r.error
        assert r.outputs[0]["text"] == "7\n"
        pd.testing.assert_frame_equal(r.datasets["copy"], df)
        # Handed in now: no second request.
        assert s.run("len(sandcell.datasets['events'])").ok and asked == ["events", "other"]
        r = s.run("sandcell.datasets['secret']")
        assert r.status == "error" and r.error.ename == "KeyError"
        assert "the host has no dataset 'secret'" in r.error.evalue
        r = s.run("sandcell.datasets.get('boom', 'fallback')")
        assert r.ok and r.outputs[0]["data"]["text/plain"] == "'fallback'"
        r = s.run("sandcell.datasets['boom']")
        assert r.error.ename == "KeyError" and "the warehouse is down" in r.error.evalue
        assert s.run("'alive'").ok
        rep = s.close()
    assert rep.raw["session"]["dataset_requests"] == 5


def test_dataset_request_without_a_callback_is_refused(session):
    r = session.run("import sandcell\nsandcell.datasets['nothing']")
    assert r.error.ename == "KeyError" and "no on_dataset_request callback" in r.error.evalue


# ---- on a warm server

def test_warm_session_from_the_template_and_listed(server):
    with server.session(limits={"cell_wall_time": 30}) as s:
        assert s.server == server.socket and s.id is not None and len(s.id) == 16
        # pandas is there before any import: the template's interpreter
        r = s.run("import sys\n'pandas' in sys.modules")
        assert r.ok and r.outputs[0]["data"]["text/plain"] == "True", r
        s.run("x = 1")
        listed = {x["id"]: x for x in server.sessions()}
        assert listed[s.id]["cells"] == 2 and listed[s.id]["limits"]["cell_wall_sec"] == 30.0
    assert s.report is not None and s.report.status == "ok"
    assert s.id not in [x["id"] for x in server.sessions()]
    # Session(server=) is the same thing
    with sandcell.Session(server=server.socket) as s2:
        assert s2.run("6 * 7").outputs[0]["data"]["text/plain"] == "42"


def test_warm_session_busy_past_max_sessions():
    with sandcell.Server(slots=1, max_sessions=1, spares=0) as srv:
        with srv.session() as s:
            with pytest.raises(sandcell.Busy, match="max-sessions"):
                srv.session()
            # a one-shot run is not starved by the live session
            assert srv.run("print(1)").stdout == b"1\n"
            assert s.run("1").ok


def test_warm_session_unreachable(tmp_path):
    with pytest.raises(sandcell.Unreachable):
        sandcell.Session(server=str(tmp_path / "nothing"))
