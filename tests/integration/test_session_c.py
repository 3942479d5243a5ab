"""Sessions (`sandcell session`, docs/sessions.md), the C side: the CLI's
NDJSON protocol driven through pipes, with whatever session loop the build
embeds (src/py/_sandcell_session.py).  What is checked is the host's part:
events built from parsed records, streaming, refusals, per-cell limits,
idle, memory, close, the outbox, hostile channel records."""
import json
import os
import queue
import subprocess
import threading
import time

import pytest

from harness import BIN, register_run


class Session:
    """A `sandcell session` with its events read by a thread."""

    def __init__(self, opts=(), out_dir=None, report=None):
        self.cmd = [BIN, "session", "--quiet"] + list(opts)
        if out_dir is not None:
            self.cmd += ["--output", str(out_dir)]
        if report is not None:
            self.cmd += ["--report", str(report)]
        self.p = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.q = queue.Queue()
        self.events = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            # Every event is one JSON object on one line.
            self.q.put((time.monotonic(), json.loads(line)))
        self.q.put((time.monotonic(), None))

    def send_raw(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def next(self, timeout=60):
        at, ev = self.q.get(timeout=timeout)
        assert ev is not None, "the session ended early: %r" % (self.events,)
        self.events.append(ev)
        self.last_at = at
        return ev

    def until(self, pred, timeout=60):
        """Events up to and including the first one pred accepts."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next(max(0.1, deadline - time.monotonic()))
            seen.append(ev)
            if pred(ev):
                return seen

    def done(self, cid, timeout=60):
        return self.until(lambda e: e["ev"] == "done" and e["id"] == cid, timeout)

    def run(self, cid, code, timeout=60):
        self.send({"op": "run", "id": cid, "code": code})
        return self.done(cid, timeout)

    def close(self, timeout=60):
        """Close (stdin EOF): the events up to the end, the exit code."""
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        return self.finish(timeout)

    def finish(self, timeout=60):
        seen = self.until(lambda e: e["ev"] == "end", timeout)
        self.rc = self.p.wait(timeout=timeout)
        self.stderr = self.p.stderr.read()
        end = seen[-1]
        register_run(self.p.pid, (end.get("report") or {}).get("isolation", {}).get("host_uid"))
        return seen

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def session(host_postconditions):
    made = []

    def make(*a, **kw):
        s = Session(*a, **kw)
        made.append(s)
        first = s.next()
        assert first == {"ev": "ready"}, first
        return s

    yield make
    for s in made:
        s.kill()


def texts(events, cid, name="stdout"):
    return "".join(e["output"]["text"] for e in events
                   if e["ev"] == "output" and e["id"] == cid and e["output"]["output_type"] == "stream"
                   and e["output"]["name"] == name)


def test_state_persists_and_close_reports(session, tmp_path):
    rpath = tmp_path / "report.json"
    s = session(report=rpath)
    ev = s.run("c1", "x = 20\nprint('set')")
    assert texts(ev, "c1") == "set\n"
    assert ev[-1]["status"] == "ok" and ev[-1]["error"] is None and ev[-1]["files"] == []
    assert ev[-1]["usage"]["wall_sec"] >= 0 and ev[-1]["usage"]["cpu_sec"] is not None
    ev = s.run("c2", "import sandcell\nprint(x + 1)\nsandcell.result({'x': x})")
    assert texts(ev, "c2") == "21\n"
    assert ev[-1]["result"] == {"x": 20}
    assert ev[-1]["execution_count"] == 2
    end = s.close()[-1]
    assert s.rc == 0, (s.rc, s.stderr)
    assert end["status"] == "ok" and "closed" in end["reason"]
    rep = end["report"]
    assert rep["status"] == "ok" and rep["exit_code"] == 0
    assert rep["session"]["cells"] == 2
    assert rep["session"]["statuses"] == {"ok": 2, "error": 0, "interrupted": 0, "killed": 0}
    assert rep["session"]["ended_by"] == "close"
    assert rep["session"]["limits"] == {"cell_wall_sec": 600, "cell_cpu_sec": 600, "idle_sec": 3600}
    assert rep["limits"]["wall_sec"] == 86400 and rep["limits"]["cpu_sec"] == 3600
    with open(rpath) as f:
        assert json.load(f) == rep


def test_error_cell_then_session_goes_on(session):
    s = session()
    ev = s.run("bad", "1/0")
    done = ev[-1]
    assert done["status"] == "error"
    assert done["error"]["ename"] == "ZeroDivisionError"
    errs = [e["output"] for e in ev if e["ev"] == "output" and e["output"]["output_type"] == "error"]
    assert errs and errs[0]["ename"] == "ZeroDivisionError"
    assert s.run("good", "print('still here')")[-1]["status"] == "ok"
    end = s.close()[-1]
    assert end["report"]["session"]["statuses"]["error"] == 1


def test_outputs_stream_before_done(session):
    """The first print is an event about 2 s before the cell is done: the
    output was passed on when its record ended, not at the end."""
    s = session()
    s.send({"op": "run", "id": "slow", "code": "import time\nprint('first', flush=True)\n"
            "time.sleep(2)\nprint('second')"})
    ev = s.until(lambda e: e["ev"] == "output" and e["id"] == "slow")
    assert ev[-1]["output"]["text"].startswith("first")
    t_first = s.last_at
    rest = s.done("slow")
    assert not any(e["ev"] == "done" for e in ev)
    assert "second" in texts(rest, "slow")
    assert s.last_at - t_first >= 1.5, s.last_at - t_first
    s.close()


def refusal(s, data):
    s.send_raw(data)
    ev = s.next()
    assert ev["ev"] == "refused", ev
    return ev


def test_refusals(session):
    s = session()
    assert "JSON" in refusal(s, b"not json\n")["reason"]
    assert "unknown op" in refusal(s, b'{"op":"explode"}\n')["reason"]
    assert "duplicate" in refusal(s, b'{"op":"close","op":"close"}\n')["reason"].lower()
    assert "unknown key" in refusal(s, b'{"op":"interrupt","now":true}\n')["reason"]
    ev = refusal(s, b'{"op":"run","id":"bad id!","code":"1"}\n')
    assert ev["id"] is None and "id" in ev["reason"]
    assert refusal(s, b'{"op":"run","id":"' + b"a" * 65 + b'","code":"1"}\n')["id"] is None
    assert refusal(s, b'{"op":"run","id":"x","code":1}\n')["id"] == "x"
    assert refusal(s, b'[1]\n')["id"] is None
    ev = refusal(s, b'{"op":"input","id":"x","value":"v"}\n')
    assert "no input request" in ev["reason"]
    # A cell waiting for input: run while running, input for another id.
    s.send({"op": "run", "id": "ask", "code": "v = input('name? ')\nprint('got', v)"})
    req = s.until(lambda e: e["ev"] == "input_request")[-1]
    assert req == {"ev": "input_request", "id": "ask", "prompt": "name? ", "password": False}
    assert "running" in refusal(s, b'{"op":"run","id":"other","code":"1"}\n')["reason"]
    assert "no input request" in refusal(s, b'{"op":"input","id":"other","value":"v"}\n')["reason"]
    s.send({"op": "input", "id": "ask", "value": "ada"})
    ev = s.done("ask")
    assert texts(ev, "ask") == "got ada\n" and ev[-1]["status"] == "ok"
    assert "used" in refusal(s, b'{"op":"run","id":"ask","code":"1"}\n')["reason"]
    # An interrupt with no cell running is ignored; the session goes on.
    s.send({"op": "interrupt"})
    assert s.run("after", "print(1)")[-1]["status"] == "ok"
    end = s.close()[-1]
    assert end["status"] == "ok"


def test_long_line_refused(session):
    s = session()
    s.send_raw(b'{"op":"run","id":"big","code":"' + b"#" * (64 << 20) + b'"}\n')
    ev = s.next(timeout=120)
    assert ev["ev"] == "refused" and "64 MiB" in ev["reason"]
    assert s.run("small", "print(2)")[-1]["status"] == "ok"
    s.close()


def test_interrupt(session):
    s = session()
    s.send({"op": "run", "id": "spin", "code": "print('spinning', flush=True)\nwhile True: pass"})
    s.until(lambda e: e["ev"] == "output" and e["id"] == "spin")
    s.send({"op": "interrupt"})
    done = s.done("spin")[-1]
    assert done["status"] == "interrupted"
    assert s.run("next", "print('alive')")[-1]["status"] == "ok"
    end = s.close()[-1]
    assert end["report"]["session"]["statuses"]["interrupted"] == 1


def test_cell_ignoring_sigint_is_killed_after_grace(session):
    s = session(opts=["--cell-wall-time", "1"])
    t0 = time.monotonic()
    s.send({"op": "run", "id": "stubborn", "code": "import signal\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('x', flush=True)\nwhile True: pass"})
    ev = s.finish(timeout=60)
    elapsed = time.monotonic() - t0
    done = [e for e in ev if e["ev"] == "done"]
    assert len(done) == 1 and done[0]["id"] == "stubborn" and done[0]["status"] == "killed", done
    assert done[0]["execution_count"] is None
    stop = [e["output"] for e in ev if e["ev"] == "output" and e["output"]["output_type"] == "error"]
    assert stop and stop[-1]["ename"] == "SandcellStopped"
    end = ev[-1]
    assert end["status"] == "timeout" and s.rc == 124
    assert "cell stubborn" in end["reason"] and "wall-clock" in end["reason"]
    assert end["report"]["session"]["ended_by"] == "cell-wall-time"
    assert 5.5 <= elapsed < 30, elapsed
    # The done came before the end.
    assert ev.index(done[0]) < len(ev) - 1


def test_cell_cpu_limit_interrupts(session):
    s = session(opts=["--cell-cpu-time", "1"])
    done = s.run("burn", "while True: pass")[-1]
    assert done["status"] == "interrupted"
    assert done["usage"]["cpu_sec"] >= 1
    s.close()


def test_idle_timeout(session):
    s = session(opts=["--idle-timeout", "1"])
    assert s.run("one", "print(1)")[-1]["status"] == "ok"
    t0 = time.monotonic()
    end = s.finish(timeout=30)[-1]
    assert end["status"] == "timeout" and s.rc == 124
    assert "idle" in end["reason"]
    assert end["report"]["session"]["ended_by"] == "idle"
    assert time.monotonic() - t0 >= 0.9


def test_memory_stops_the_session(session):
    s = session(opts=["--memory", "96M"])
    s.send({"op": "run", "id": "hog", "code": "x = []\nwhile True: x.append(bytearray(8 << 20))"})
    ev = s.finish(timeout=60)
    done = [e for e in ev if e["ev"] == "done"]
    assert done and done[0]["status"] == "killed"
    end = ev[-1]
    assert end["status"] == "memory" and s.rc == 122, end["reason"]
    assert end["report"]["session"]["ended_by"] == "limit"


def test_cancel_by_signal(session):
    s = session()
    s.send({"op": "run", "id": "long", "code": "print('go', flush=True)\nimport time\ntime.sleep(60)"})
    s.until(lambda e: e["ev"] == "output" and e["id"] == "long")
    s.p.send_signal(2)
    ev = s.finish(timeout=30)
    assert [e["status"] for e in ev if e["ev"] == "done"] == ["killed"]
    assert ev[-1]["status"] == "cancelled" and s.rc == 119
    assert ev[-1]["report"]["session"]["ended_by"] == "cancelled"


def test_raw_fd_output_is_decoded(session):
    s = session()
    ev = s.run("raw", "import os\nos.write(1, b'raw\\xff\\n')\nos.write(2, b'err\\n')")
    assert texts(ev, "raw") == "raw\ufffd\n"
    assert texts(ev, "raw", "stderr") == "err\n"
    s.close()


def test_hostile_channel_records(session):
    s = session()
    code = "\n".join([
        "import os",
        "os.write(3, b'D {bad\\n')",
        "os.write(3, b'D {\"id\":\"other\",\"execution_count\":1,\"status\":\"ok\"}\\n')",
        "os.write(3, b'D {\"id\":\"h\",\"execution_count\":-1,\"status\":\"ok\"}\\n')",
        "os.write(3, b'D {\"id\":\"h\",\"execution_count\":1,\"status\":\"weird\"}\\n')",
        "os.write(3, b'D {\"id\":\"h\",\"execution_count\":1,\"status\":\"ok\",\"x\":1}\\n')",
        "os.write(3, b'D ' + b'x' * 100000 + b'\\n')",
        "os.write(3, b'I {\"id\":\"h\",\"prompt\":1,\"password\":false}\\n')",
        "os.write(3, b'I {\"id\":\"h\",\"prompt\":\"' + b'p' * (70 << 10) + b'\",\"password\":false}\\n')",
        "os.write(3, b'O {\"output_type\":\"evil\"}\\n')",
        "os.write(3, b'O ' + b'\\xff' * 10 + b'\\n')",
        "print('after')",
    ])
    ev = s.run("h", code)
    done = ev[-1]
    assert done["status"] == "ok" and done["id"] == "h"
    assert not any(e["ev"] == "input_request" for e in ev)
    assert texts(ev, "h") == "after\n"
    notes = texts(ev, "h", "stderr")
    assert notes.count("[sandcell: output") == 2, notes
    assert s.run("next", "print(3)")[-1]["status"] == "ok"
    end = s.close()[-1]
    problems = "\n".join(end["report"]["session"]["problems"])
    assert "done record was rejected" in problems
    assert "input request record was rejected" in problems
    assert "not the running cell" in problems
    assert end["status"] == "ok"


def test_per_cell_outbox(session, tmp_path):
    out = tmp_path / "out"
    s = session(out_dir=out)
    d1 = s.run("w1", "open('/output/a.txt', 'w').write('one')\nimport os\nos.mkdir('/output/d')\n"
               "open('/output/d/b.txt', 'w').write('two')")[-1]
    assert sorted(f["path"] for f in d1["files"]) == ["1/a.txt", "1/d/b.txt"]
    d2 = s.run("w2", "import os\nprint(os.listdir('/output'))\nos.symlink('/etc/passwd', '/output/l')")
    assert texts(d2, "w2") == "[]\n"
    assert d2[-1]["files"] == []
    d3 = s.run("w3", "print(1)")[-1]
    assert d3["files"] == []
    end = s.close()[-1]
    assert (out / "1" / "a.txt").read_text() == "one"
    assert (out / "1" / "d" / "b.txt").read_text() == "two"
    assert not (out / "2" / "l").exists() and not os.path.islink(out / "2" / "l")
    rep = end["report"]["outputs"]
    assert sorted(f["path"] for f in rep["files"]) == ["1/a.txt", "1/d/b.txt"]
    assert rep["skipped_total"] >= 1


def test_usage_errors_end_event(tmp_path):
    for args in (["-c", "1"], ["--stdin", "/dev/null"], ["--report", "-"], ["--cell-wall-time", "0"]):
        p = subprocess.run([BIN, "session"] + args, input=b"", capture_output=True, timeout=30)
        assert p.returncode == 125, (args, p)
        end = json.loads(p.stdout.splitlines()[-1])
        assert end["ev"] == "end" and end["status"] == "usage-error", end
    p = subprocess.run([BIN, "run", "--cell-wall-time", "1", "-c", "1"], capture_output=True, timeout=30)
    assert p.returncode == 125


# ------------------------------------------------ adding inputs and datasets

def added(s, cmd):
    """Sends an add and returns its answer (added or refused)."""
    s.send(cmd)
    return s.until(lambda e: e["ev"] in ("added", "refused"))[-1]


def test_add_between_cells_and_while_a_cell_runs(session, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("first\n")
    s = session()
    ev = s.run("c0", "import sandcell\nprint(sorted(sandcell.inputs))")
    assert texts(ev, "c0") == "[]\n"
    ans = added(s, {"op": "add", "kind": "input", "name": "a", "path": str(src)})
    assert ans == {"ev": "added", "kind": "input", "name": "a"}
    code = ("import os, sandcell\np = sandcell.inputs['a']\nst = os.stat(p)\n"
            "print(p, open(p).read().strip(), oct(st.st_mode & 0o777), st.st_uid == os.getuid())")
    ev = s.run("c1", code)
    # Written with the code's ids (the only ones mapped in its namespace).
    assert texts(ev, "c1") == "/tmp/.sandcell/inputs/a first 0o444 True\n", ev
    # While a cell runs (it waits for input(), so it is surely running):
    # the loop picks the add up at once, and an add replaces a copy.
    src.write_text("second\n")
    s.send({"op": "run", "id": "c2", "code": "input()\nprint(open(sandcell.inputs['a']).read().strip())"})
    s.until(lambda e: e["ev"] == "input_request")
    assert added(s, {"op": "add", "kind": "input", "name": "a", "path": str(src)})["ev"] == "added"
    s.send({"op": "input", "id": "c2", "value": ""})
    ev = s.done("c2")
    assert texts(ev, "c2") == "second\n", ev
    # The code cannot write the copy (0444, and chmod is refused).
    ev = s.run("c3", "open(sandcell.inputs['a'], 'a')")
    assert ev[-1]["status"] == "error" and ev[-1]["error"]["ename"] == "PermissionError"
    end = s.close()[-1]
    assert end["status"] == "ok" and end["report"]["session"]["files_added"] == 2


def test_add_refusals(session, tmp_path):
    src = tmp_path / "f"
    src.write_text("x")
    s = session()
    bad = [
        ({"op": "add", "kind": "input", "name": "m", "path": str(tmp_path / "missing")}, "open"),
        ({"op": "add", "kind": "input", "name": "d", "path": str(tmp_path)}, "not a regular file"),
        ({"op": "add", "kind": "input", "name": "../x", "path": str(src)}, "contains '/'"),
        ({"op": "add", "kind": "input", "name": ".x", "path": str(src)}, "starts with '.'"),
        ({"op": "add", "kind": "input", "name": "x", "path": "rel/f"}, "absolute"),
        ({"op": "add", "kind": "input", "name": "x", "path": str(src), "id": "c"}, "unknown key"),
        ({"op": "add", "kind": "file", "name": "x", "path": str(src)}, "\"kind\""),
        ({"op": "add", "kind": "input", "name": "x"}, "either"),
        ({"op": "add", "kind": "input", "name": "x", "refused": "no"}, "dataset request"),
        ({"op": "add", "kind": "dataset", "name": "x", "refused": "no"}, "no dataset request"),
        ({"op": "add", "kind": "dataset", "name": "x", "refused": "n" * 5000}, "4096"),
        ({"op": "add", "kind": "dataset", "name": "x", "path": str(src), "refused": "n"}, "either"),
    ]
    for cmd, needle in bad:
        ans = added(s, cmd)
        assert ans["ev"] == "refused" and needle in ans["reason"], (cmd, ans)
    ev = s.run("c", "import os\nprint(os.path.exists('/tmp/.sandcell/inputs'))")
    assert texts(ev, "c") == "False\n"
    assert s.close()[-1]["report"]["session"]["files_added"] == 0


@pytest.mark.parametrize("where", ["/tmp/.sandcell", "/tmp/.sandcell/datasets"])
def test_add_does_not_follow_planted_symlinks(session, tmp_path, where):
    """The code plants a symlink where the copy goes: the add is refused,
    and nothing is written through it (the target stays empty)."""
    src = tmp_path / "d.scf"
    src.write_bytes(b"data")
    s = session()
    code = ("import os\nos.makedirs('/tmp/target', exist_ok=True)\n"
            "os.makedirs(os.path.dirname(%r), exist_ok=True)\nos.symlink('/tmp/target', %r)"
            % (where, where))
    assert s.run("plant", code)[-1]["status"] == "ok"
    ans = added(s, {"op": "add", "kind": "dataset", "name": "d", "path": str(src)})
    assert ans["ev"] == "refused" and "symlink" in ans["reason"], ans
    ev = s.run("look", "import os\nprint(sorted(os.listdir('/tmp/target')))")
    assert texts(ev, "look") == "[]\n", ev
    s.close()


def test_add_over_a_non_file_is_refused(session, tmp_path):
    src = tmp_path / "f"
    src.write_text("x")
    s = session()
    assert s.run("plant", "import os\nos.makedirs('/tmp/.sandcell/inputs/f/sub')")[-1]["status"] == "ok"
    ans = added(s, {"op": "add", "kind": "input", "name": "f", "path": str(src)})
    assert ans["ev"] == "refused" and "not a regular file" in ans["reason"], ans
    ev = s.run("look", "import os\nprint(sorted(os.listdir('/tmp/.sandcell/inputs')))")
    assert texts(ev, "look") == "['f']\n", ev  # no temporary file left behind
    s.close()


def test_add_full_disk_is_refused_without_a_partial_file(session, tmp_path):
    src = tmp_path / "big"
    src.write_bytes(b"\0" * (3 << 20))
    s = session(["--disk", "4M"])
    # Most of the 4 MiB taken by the code first.
    assert s.run("fill", "open('/tmp/fill', 'wb').write(b'x' * (2 << 20))")[-1]["status"] == "ok"
    ans = added(s, {"op": "add", "kind": "dataset", "name": "big", "path": str(src)})
    assert ans["ev"] == "refused" and "full" in ans["reason"], ans
    ev = s.run("look", "import os\nprint(sorted(os.listdir('/tmp/.sandcell/datasets')))")
    assert texts(ev, "look") == "[]\n", ev
    # Larger than --disk at all: refused before a byte is copied.
    src.write_bytes(b"\0" * (5 << 20))
    ans = added(s, {"op": "add", "kind": "dataset", "name": "big", "path": str(src)})
    assert ans["ev"] == "refused" and "larger than" in ans["reason"], ans
    assert s.close()[-1]["status"] == "ok"


def test_dataset_request_answered_and_refused(session, tmp_path):
    import pandas as pd
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "py"))
    import sandcell_frames
    path = tmp_path / "sales.scf"
    path.write_bytes(sandcell_frames.dumps(pd.DataFrame({"a": [1, 2, 3]})))
    s = session()
    s.send({"op": "run", "id": "q", "code": "import sandcell\nprint(int(sandcell.datasets['sales'].a.sum()))"})
    req = s.until(lambda e: e["ev"] == "dataset_request")[-1]
    assert req == {"ev": "dataset_request", "id": "q", "name": "sales"}
    assert added(s, {"op": "add", "kind": "dataset", "name": "sales", "path": str(path)})["ev"] == "added"
    ev = s.done("q")
    assert texts(ev, "q") == "6\n" and ev[-1]["status"] == "ok", ev
    # Handed in now: no second request.
    ev = s.run("again", "print(len(sandcell.datasets['sales']))")
    assert texts(ev, "again") == "3\n" and not any(e["ev"] == "dataset_request" for e in ev)
    # Refused: KeyError in the cell with the host's text.
    s.send({"op": "run", "id": "r", "code": "sandcell.datasets['secret']"})
    assert s.until(lambda e: e["ev"] == "dataset_request")[-1]["name"] == "secret"
    s.send({"op": "add", "kind": "dataset", "name": "secret", "refused": "not for you"})
    ev = s.done("r")
    assert ev[-1]["status"] == "error" and ev[-1]["error"]["ename"] == "KeyError"
    assert "not for you" in ev[-1]["error"]["evalue"]
    # An answer whose copy fails reaches the cell as a refusal too.
    s.send({"op": "run", "id": "f", "code": "sandcell.datasets['gone']"})
    s.until(lambda e: e["ev"] == "dataset_request")
    ans = added(s, {"op": "add", "kind": "dataset", "name": "gone", "path": str(tmp_path / "nope")})
    assert ans["ev"] == "refused"
    ev = s.done("f")
    assert ev[-1]["error"]["ename"] == "KeyError" and "could not be copied" in ev[-1]["error"]["evalue"]
    end = s.close()[-1]
    assert end["report"]["session"]["dataset_requests"] == 3


def test_hostile_dataset_requests(session):
    """Forged Q records: bad JSON, bad names, extra keys, another cell's id,
    a second one while one is pending: dropped and listed."""
    s = session()
    code = "\n".join([
        "import os",
        "os.write(3, b'Q {bad\\n')",
        "os.write(3, b'Q {\"id\":\"h\",\"name\":\"../etc\"}\\n')",
        "os.write(3, b'Q {\"id\":\"h\",\"name\":\"a\",\"x\":1}\\n')",
        "os.write(3, b'Q {\"id\":\"other\",\"name\":\"a\"}\\n')",
        "os.write(3, b'Q ' + b'x' * 5000 + b'\\n')",
        "os.write(3, b'Q {\"id\":\"h\",\"name\":\"one\"}\\n')",
        "os.write(3, b'Q {\"id\":\"h\",\"name\":\"two\"}\\n')",
        "print('after')",
    ])
    ev = s.run("h", code)
    assert ev[-1]["status"] == "ok" and texts(ev, "h") == "after\n"
    reqs = [e for e in ev if e["ev"] == "dataset_request"]
    assert reqs == [{"ev": "dataset_request", "id": "h", "name": "one"}], reqs
    # The cell is over: nothing is pending any more.
    ans = added(s, {"op": "add", "kind": "dataset", "name": "one", "refused": "x"})
    assert ans["ev"] == "refused" and "no dataset request" in ans["reason"]
    end = s.close()[-1]
    problems = "\n".join(end["report"]["session"]["problems"])
    # Each rejection is listed as it happens (and again with the cell's id).
    assert problems.count("\na dataset request record was rejected") + \
        problems.startswith("a dataset request record was rejected") == 4, problems
    assert "not the running cell" in problems
    assert "a second dataset request" in problems


@pytest.mark.skipif(__import__("shutil").which("unshare") is None, reason="util-linux unshare missing")
def test_add_in_reduced_mode(tmp_path):
    """Reduced mode: the copy lands in the private directory's tmp/, and
    the loop is given that path.  (Commands are applied in order: the add
    before the cell that reads it.)"""
    from harness import without_userns
    src = tmp_path / "n.txt"
    src.write_text("reduced\n")
    lines = [{"op": "add", "kind": "input", "name": "n", "path": str(src)},
             {"op": "run", "id": "c", "code": "import sandcell\np = sandcell.inputs['n']\n"
                                              "print(p.endswith('/tmp/.sandcell/inputs/n'), open(p).read().strip())"}]
    p = subprocess.run(without_userns([BIN, "session", "--quiet", "--allow-reduced"]),
                       input="".join(json.dumps(x) + "\n" for x in lines).encode(),
                       capture_output=True, timeout=120)
    evs = [json.loads(x) for x in p.stdout.splitlines()]
    end = evs[-1]
    assert end["ev"] == "end" and end["report"]["isolation"]["mode"] == "reduced", evs
    assert {"ev": "added", "kind": "input", "name": "n"} in evs, evs
    assert texts(evs, "c") == "True reduced\n", evs
