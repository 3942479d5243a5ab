"""The exceptions: every refusal is a sandcell.Error subclass that says what
the caller can do (retry, fix the request, give up), carries the report or
answer when there is one, and leaves nothing behind.  Hostile or broken
reports and answers are clean ProtocolErrors: nothing in them is imported,
evaluated or unpickled."""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import client_util
from client_util import BIN, IS_ROOT, PY_DIR, TEST_USER, cli_report, sandcell

# The shared fixtures, by assignment (pytest finds them by name).
server, runner, no_leftover_dirs = client_util.server, client_util.runner, client_util.no_leftover_dirs
from sandcell import _common, _refusals, _report

ERRORS = (sandcell.Busy, sandcell.BadRequest, sandcell.SandboxError, sandcell.Unreachable,
          sandcell.Cancelled, sandcell.ProtocolError)


def test_taxonomy():
    for cls in ERRORS:
        assert issubclass(cls, sandcell.Error)
        e = cls("why")
        assert str(e) == "why" and e.report is None and e.answer is None
    assert sandcell.Busy.retryable is True
    assert not any(c.retryable for c in ERRORS if c is not sandcell.Busy)
    assert len(set(ERRORS)) == 6


# ---- requests refused before anything runs (both paths) ----

@pytest.mark.parametrize("kw, match", [
    ({"limits": {"nope": 1}}, "unknown key 'nope'"),
    ({"limits": {"memory": "1.5G"}}, "not a size"),
    ({"limits": {"memory": -1}}, "out of range"),
    ({"limits": {"memory": True}}, "expected bytes"),
    ({"limits": {"wall_time": 0}}, r"not in \(0"),
    ({"limits": {"wall_time": float("nan")}}, r"not in \(0"),
    ({"limits": {"wall_time": "1e3"}}, "not a duration"),
    ({"limits": {"pids": "12x"}}, "not a whole number"),
    ({"inputs": {"a": "/nonexistent/file"}}, "no such file"),
    ({"inputs": {"../a": "/etc/hostname"}}, "names are"),
    ({"inputs": {"-a": "/etc/hostname"}}, "names are"),
    ({"values": {"a b": 1}}, "names are"),
    ({"values": {"x": float("nan")}}, "plain JSON"),
    ({"values": {"x": object()}}, "plain JSON"),
    ({"values": {"x": [[[[1]]]] * 1}}, None),   # fine: shallow
    ({"args": "one string"}, "sequence of strings"),
    ({"stdin": "/nonexistent"}, "not a file"),
])
def test_bad_requests_refused_up_front(runner, no_leftover_dirs, kw, match):
    if match is None:
        assert runner("pass", **kw).status == "ok"
        return
    with pytest.raises(sandcell.BadRequest, match=match):
        runner("pass", **kw)


def test_values_nested_too_deep(runner, no_leftover_dirs):
    v: object = 1
    for _ in range(70):
        v = [v]
    with pytest.raises(sandcell.BadRequest, match="deeper"):
        runner("pass", values={"v": v})


def test_bad_requests_refused_by_sandcell(runner, tmp_path, no_leftover_dirs):
    """What only the CLI or the server checks comes back as BadRequest too,
    with the full report (status usage-error, exit code 125), cold and warm
    alike."""
    with pytest.raises(sandcell.BadRequest, match="limits too small") as ei:
        runner("pass", limits={"memory": "1M"})
    e = ei.value
    assert e.report is not None and e.report.status == "usage-error", e.report
    assert e.exit_code == 125 and e.report.exit_code == 125
    assert e.report.script.started is False and e.report.limits["memory_bytes"] == 1 << 20
    f = tmp_path / "file"
    f.write_text("not a directory")
    with pytest.raises(sandcell.BadRequest, match="output directory"):
        runner("pass", output_dir=f / "sub")


def test_nonempty_output_dir_is_a_bad_request(runner, tmp_path, no_leftover_dirs):
    """output_dir= must be new or empty (docs/report.md, "Output
    collection"): nothing of the caller's is ever replaced."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("mine")
    with pytest.raises(sandcell.BadRequest, match="not empty") as ei:
        runner("open('/output/mine.txt', 'w').write('theirs')", output_dir=out)
    assert ei.value.report.status == "usage-error"
    assert (out / "mine.txt").read_text() == "mine" and os.listdir(out) == ["mine.txt"]


def test_sandbox_error_carries_the_report(runner, no_leftover_dirs):
    """A layer that cannot be set up (here: a cgroup parent below a file)."""
    with pytest.raises(sandcell.SandboxError, match="cgroup") as ei:
        runner("print('never')", cgroup_parent="cgroup.procs/x")
    e = ei.value
    assert e.report is not None and e.report.status == "sandbox-error"
    assert e.report.script.started is False and e.exit_code == 126
    assert e.report.isolation.mode == "none"


def test_unreachable(tmp_path, no_leftover_dirs):
    with pytest.raises(sandcell.Unreachable, match="no sandcell server"):
        sandcell.run("pass", server=tmp_path / "no.sock")
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(sandcell.Unreachable):
        sandcell.run("pass", server=plain)
    # A socket nobody listens on (a dead server's).
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "dead.sock"))
    s.close()
    with pytest.raises(sandcell.Unreachable):
        sandcell.run("pass", server=tmp_path / "dead.sock")


def test_busy_is_retryable(tmp_path, no_leftover_dirs):
    """--slots 1: a run holds the slot (it waits on its stdin, a pipe of
    ours, after saying so on its stdout, another pipe); the next request
    queues past --queue-timeout and is refused as busy.  Then the slot is
    released and the same request succeeds."""
    from sandcell._request import make_spec
    from sandcell._warm import build_request
    with sandcell.Server(slots=1, spares=0, queue_timeout=0.3) as srv:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        req = build_request(make_spec("import sys\nprint('holding', flush=True)\nsys.stdin.read()\n"),
                            str(tmp_path / "out"), [], None)
        body = json.dumps(req).encode()
        holder = socket.socket(socket.AF_UNIX)
        holder.connect(srv.socket)
        socket.send_fds(holder, [struct.pack("<I", len(body))], [in_r, out_w, out_w])
        holder.sendall(body)
        os.close(in_r)
        os.close(out_w)
        assert os.read(out_r, 100) == b"holding\n"
        with pytest.raises(sandcell.Busy) as ei:
            srv.run("print('second')")
        assert ei.value.retryable and "busy" in str(ei.value)
        assert ei.value.report is not None and ei.value.report.status == "busy"
        assert ei.value.exit_code == 118 and ei.value.report.script.started is False
        os.close(in_w)     # the holder's stdin ends: it finishes
        head = holder.recv(4, socket.MSG_WAITALL)
        (n,) = struct.unpack("<I", head)
        assert json.loads(holder.recv(n, socket.MSG_WAITALL))["status"] == "ok"
        holder.close()
        os.close(out_r)
        assert srv.run("print('second')").stdout == b"second\n"


def _interrupted(run, after: float):
    """run() with a KeyboardInterrupt raised in it after `after` seconds."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, after)
        return run()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_interrupt_cancels_with_report_and_result(runner, no_leftover_dirs):
    """Ctrl-C (KeyboardInterrupt) while a run is in flight: the run is
    cancelled (cold: the CLI gets SIGTERM; warm: the connection is
    half-closed), and Cancelled is raised from the interrupt, carrying the
    report (status cancelled) and the Result so far: the stream printed,
    the file written before the interrupt."""
    code = ("import time\nopen('/output/part.txt', 'w').write('so far')\n"
            "print('working', flush=True)\ntime.sleep(60)\n")
    t0 = time.monotonic()
    with pytest.raises(sandcell.Cancelled) as ei:
        _interrupted(lambda: runner(code, limits={"wall_time": 60}), 1.5)
    assert time.monotonic() - t0 < 30
    e = ei.value
    assert isinstance(e.__cause__, KeyboardInterrupt)
    assert e.report is not None and e.report.status == "cancelled" and e.exit_code == 119, e.report
    assert e.report.script.started is True
    res = e.result
    assert res is not None and res.status == "cancelled"
    assert res.stdout == b"working\n"
    assert [f.path for f in res.files] == ["part.txt"] and res.files[0].read_text() == "so far"
    res.close()
    assert runner("print('after')").stdout == b"after\n"


def test_interrupt_before_the_code_starts(runner, no_leftover_dirs):
    """An interrupt so early that the code may not have started: still
    Cancelled from it; a report when one came back, and nothing left."""
    with pytest.raises(sandcell.Cancelled) as ei:
        _interrupted(lambda: runner("import time\ntime.sleep(60)\n", limits={"wall_time": 60}), 0.05)
    assert isinstance(ei.value.__cause__, KeyboardInterrupt)
    if ei.value.result is not None:
        ei.value.result.close()


def test_cancelled_without_interrupt(tmp_path, no_leftover_dirs):
    """A run cancelled by someone else (SIGTERM to the CLI from outside)
    is Cancelled too, not a Result, with its report and Result."""
    wrapper = tmp_path / "sandcell"
    # The real CLI, signalled once the code's first line is in its stdout
    # file (the client runs the CLI in its private directory).
    wrapper.write_text('#!/bin/sh\n'
                       '[ "$1" = --help ] && exec %s --help\n'
                       '%s "$@" & pid=$!\n'
                       'until grep -q started stdout 2>/dev/null; do sleep 0.05; done\n'
                       'kill -TERM $pid\n'
                       'wait $pid\n' % (BIN, BIN))
    wrapper.chmod(0o755)
    with pytest.raises(sandcell.Cancelled) as ei:
        sandcell.run("import time\nprint('started', flush=True)\ntime.sleep(60)\n",
                     binary=str(wrapper), limits={"wall_time": 60})
    e = ei.value
    assert e.__cause__ is None and e.exit_code == 119
    assert e.report.status == "cancelled" and e.result.stdout == b"started\n"
    e.result.close()


# ---- classify(): the report's status, one mapping ----

@pytest.mark.parametrize("status, cls", [
    ("usage-error", sandcell.BadRequest),
    ("busy", sandcell.Busy),
    ("unreachable", sandcell.Unreachable),
    ("sandbox-error", sandcell.SandboxError),
    ("cancelled", sandcell.Cancelled),
    ("ok", None), ("exited", None), ("timeout", None), ("output-limit", None),
])
def test_classify_by_status(status, cls):
    rep = full_report(status=status, reason="why " + status,
                      error="the error" if status == "sandbox-error" else None)
    answer, r = parse(rep)
    e = _refusals.classify(answer, r)
    if cls is None:
        assert e is None
        return
    assert type(e) is cls and e.report is r and e.answer == answer
    assert str(e) == ("the error" if status == "sandbox-error" else "why " + status)


def test_classify_without_a_report():
    """The CLI died or could not write its report: its exit status says
    what it can."""
    for code, cls in [(117, sandcell.Unreachable), (118, sandcell.Busy), (119, sandcell.Cancelled),
                      (125, sandcell.BadRequest), (126, sandcell.SandboxError), (1, sandcell.SandboxError)]:
        e = _refusals.classify(None, None, exit_code=code, message="m")
        assert type(e) is cls and str(e) == "m" and e.exit_code == code, (code, e)
    e = _refusals.classify(None, None, exit_code=-9)
    assert type(e) is sandcell.SandboxError and "signal 9" in str(e)


def test_short_answers_are_protocol_errors():
    """Every answer is a full report now; the old short refusals are not."""
    for short in ({"status": "usage-error", "reason": "bad", "exit_code": 125},
                  {"status": "sandbox-error", "reason": "server busy", "exit_code": 126,
                   "error": "server busy"}):
        with pytest.raises(sandcell.ProtocolError, match="missing key"):
            parse(short)


# ---- hostile and broken reports: parsed as data, refused cleanly ----

@functools.lru_cache(maxsize=None)
def _reference_report() -> str:
    p, rep = cli_report("-c", "pass")
    assert rep is not None, p
    return json.dumps(rep)


def full_report(**over: object) -> dict:
    """A real report of the CLI under test (a fresh copy), changed by over."""
    rep = json.loads(_reference_report())
    rep.update(over)
    return rep


def parse(doc: object) -> object:
    return _common.read_answer(json.dumps(doc).encode(), "report")


def test_extra_keys_are_data_never_code():
    """Keys meant to make a careless client build or run something are
    ignored data: no module named in them gets imported."""
    canary = "sandcell_canary_module_xyz"
    assert canary not in sys.modules
    hostile = full_report(**{
        "py/object": canary + ".Evil", "__class__": canary, "__reduce__": [canary, []],
        "$type": canary, "!!python/object": canary,
        "result": {"py/object": canary + ".X", "__import__": canary},
    })
    answer, rep = parse(hostile)
    assert canary not in sys.modules
    assert rep.result == {"py/object": canary + ".X", "__import__": canary}
    assert rep.raw["py/object"] == canary + ".Evil"


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r.update(status=["ok"]), "status must be a string"),
    (lambda r: r.update(status="weird"), "unknown status"),
    (lambda r: r.update(exit_code="0"), "exit_code must be an integer"),
    (lambda r: r.update(exit_code=True), "exit_code must be an integer"),
    (lambda r: r.update(schema=3), "schema 3"),
    (lambda r: r.update(error=[1]), "error must be a string, an object or null"),
    (lambda r: r.update(error={"ename": "E", "evalue": 1, "traceback": []}), "error.evalue"),
    (lambda r: r["cell"].update(outputs=[{"output_type": "raw"}]), "output_type"),
    (lambda r: r["cell"].update(mode="notebook"), "cell.mode"),
    (lambda r: r.update(stopped_at={"traceback": "x"}), "stopped_at.traceback"),
    (lambda r: r.pop("script"), "missing key 'script'"),
    (lambda r: r["script"].update(started="yes"), "started must be a boolean"),
    (lambda r: r["time"].update(wall_sec="1"), "wall_sec must be a number"),
    (lambda r: r["streams"]["stdout"].update(bytes=None), "bytes must be an integer"),
    (lambda r: r["outputs"].update(files={}), "files must be an array"),
    (lambda r: r["outputs"].update(files=[{"path": "a", "size": 1, "sha256": "zz"}]), "sha256"),
    (lambda r: r["outputs"].update(files=[{"path": "a", "size": -1, "sha256": "0" * 64}]), "negative"),
    (lambda r: r.update(truncations=[1]), "truncations"),
    (lambda r: r["limits"].update(pids="128"), "limits.pids"),
    (lambda r: r["isolation"].update(not_held="none"), "not_held must be an array"),
])
def test_wrong_types_are_protocol_errors(mutate, match):
    rep = full_report()
    mutate(rep)
    with pytest.raises(sandcell.ProtocolError, match=match):
        parse(rep)


@pytest.mark.parametrize("data, match", [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"status": "ok", "status": "ok"}', "duplicate key"),
    (b'{"x": NaN}', "NaN is not JSON"),
    (b'{"x": Infinity}', "Infinity is not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"a":' * 100000 + b"1" + b"}" * 100000, "not valid JSON"),
])
def test_malformed_json_is_a_protocol_error(data, match):
    with pytest.raises(sandcell.ProtocolError, match=match):
        _common.read_answer(data, "report")


def test_oversized_report_is_refused():
    with pytest.raises(sandcell.ProtocolError, match="over the limit"):
        _report.parse_json(b" " * (_report.REPORT_MAX + 1), "report")


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "a//b", "./a", "a/.",
                                  "..", "", "a/", "a\0b"])
def test_unsafe_output_paths_are_refused(tmp_path, path):
    rep = full_report()
    rep["outputs"].update(collected=True, files=[{"path": path, "size": 0, "sha256": "0" * 64}])
    answer, r = parse(rep)
    tmp = sandcell._result.TempDir(str(tmp_path / "w"))
    os.mkdir(tmp.path)
    with pytest.raises(sandcell.ProtocolError, match="safe relative path"):
        _common.complete(answer, r, tmp=tmp, stdout=b"", stderr=b"", output_dir=str(tmp_path),
                         caller_output_dir=True)
    assert not os.path.exists(tmp.path)


# ---- a CLI or a server that misbehaves ----

FAKE_CLI = """#!/bin/sh
# A stand-in for the sandcell CLI: MODE selects the misbehaviour.
if [ "$1" = --help ]; then
	echo "  --quiet     ..."
	exit 0
fi
report=
while [ $# -gt 0 ]; do
	case $1 in --report) report=$2; shift ;; esac
	shift
done
case "$MODE" in
hostile) printf '%s' '{"schema": 1, "status": "ok", "__reduce__": ["os.system", ["touch /tmp/pwned"]]}' > "$report"; exit 0 ;;
usage) echo "sandcell: --frobnicate: no such thing" >&2; echo "Try 'sandcell --help'." >&2; exit 125 ;;
crash) kill -9 $$ ;;
silent) exit 126 ;;
esac
"""


@pytest.fixture
def fake_cli(tmp_path):
    p = tmp_path / "fake-sandcell"
    p.write_text(FAKE_CLI)
    p.chmod(0o755)
    return str(p)


@pytest.mark.parametrize("mode, cls, match", [
    ("hostile", sandcell.ProtocolError, "missing key"),
    ("usage", sandcell.BadRequest, "^--frobnicate: no such thing$"),
    ("crash", sandcell.SandboxError, "signal 9"),
    ("silent", sandcell.SandboxError, "status 126 .* without a report"),
])
def test_misbehaving_cli(fake_cli, monkeypatch, no_leftover_dirs, mode, cls, match):
    monkeypatch.setenv("MODE", mode)
    with pytest.raises(cls, match=match):
        sandcell.run("pass", binary=fake_cli)
    assert not os.path.exists("/tmp/pwned")


def test_cli_without_quiet_is_refused(tmp_path, no_leftover_dirs):
    p = tmp_path / "old-sandcell"
    p.write_text("#!/bin/sh\necho '  --report FILE'\n")
    p.chmod(0o755)
    with pytest.raises(sandcell.SandboxError, match="no --quiet"):
        sandcell.run("pass", binary=str(p))


def serve_once(path, answer: bytes, raw: bool = False):
    """A fake server: accepts one connection, reads the request, answers."""
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(path)
    ls.listen(1)

    def main():
        conn, _ = ls.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 4, 8)
        for fd in fds:
            os.close(fd)
        conn.sendall(answer if raw else struct.pack("<I", len(answer)) + answer)
        conn.close()
        ls.close()
    t = threading.Thread(target=main, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("answer, raw, cls, match", [
    (b'{"status": "ok", "exit_code": 0}', False, sandcell.ProtocolError, "missing key"),
    (b'{"status": "sandbox-error", "reason": "server busy: queued", "exit_code": 126}', False,
     sandcell.ProtocolError, "missing key"),
    (b"\x00\x00\x00\x7f", True, sandcell.SandboxError, "over the limit"),
    (b"\x05\x00\x00\x00ab", True, sandcell.SandboxError, "without an answer"),
    (b"", True, sandcell.SandboxError, "without an answer"),
    (b'{"py/object": "os.system"}', False, sandcell.ProtocolError, "missing key"),
])
def test_misbehaving_server(tmp_path, no_leftover_dirs, answer, raw, cls, match):
    path = str(tmp_path / "fake.sock")
    t = serve_once(path, answer, raw)
    with pytest.raises(cls, match=match):
        sandcell.run("pass", server=path)
    t.join(10)


@pytest.mark.parametrize("status, cls", [("busy", sandcell.Busy), ("unreachable", sandcell.Unreachable),
                                         ("usage-error", sandcell.BadRequest)])
def test_server_refusals_by_status(tmp_path, no_leftover_dirs, status, cls):
    """A server's refusal is a full report; its status picks the class."""
    path = str(tmp_path / "fake.sock")
    rep = full_report(status=status, reason="refused: " + status)
    t = serve_once(path, json.dumps(rep).encode())
    with pytest.raises(cls, match="refused: " + status) as ei:
        sandcell.run("pass", server=path)
    assert ei.value.report is not None and ei.value.report.status == status
    t.join(10)


# ---- an unprivileged caller without a delegated cgroup ----

@pytest.mark.skipif(not IS_ROOT, reason="switches to the test user")
def test_unprivileged_without_delegation_says_what_to_delegate():
    """As an unprivileged user with no delegated cgroup (and no systemd
    user manager on this host), the run is refused as a SandboxError whose
    message says exactly what to delegate."""
    if subprocess.run(["id", TEST_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER], check=True)
    # pytest's tmp_path is root's alone: a directory the user can enter.
    work = tempfile.mkdtemp(prefix="sandcell-client-user-")
    try:
        os.chmod(work, 0o755)
        shutil.copy(BIN, os.path.join(work, "sandcell"))
        shutil.copytree(PY_DIR, os.path.join(work, "python"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chown", "-R", TEST_USER, work], check=True)
        code = ("import sys; sys.path.insert(0, %r); import sandcell\n"
                "try:\n    sandcell.run('print(1)')\n"
                "except sandcell.SandboxError as e:\n    print('SandboxError:', e)\n"
                ) % os.path.join(work, "python")
        p = subprocess.run(["setpriv", "--reuid", TEST_USER, "--regid", TEST_USER, "--init-groups",
                            "--reset-env", "--", "env", "SANDCELL_BIN=%s/sandcell" % work,
                            "/usr/bin/python3", "-c", code], capture_output=True, timeout=120, cwd=work)
    finally:
        shutil.rmtree(work)
    out = p.stdout.decode()
    assert out.startswith("SandboxError: cgroup"), (out, p.stderr)
    # The words of src/lib/cgroup.c's hint for this host's hierarchy.
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    want = (["memory and pids", "cgroup.subtree_control", "leaf", "--cgroup-parent",
             "systemd-run --user --scope -p Delegate=yes"] if v2 else
            ["memory, pids and cpuacct hierarchies", "--cgroup-parent"])
    for w in want + ["--allow-reduced"]:
        assert w in out, (w, out)
