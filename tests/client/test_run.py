"""sandcell.run and Server.run: every argument and every Result field, cold
and warm (the `runner` fixture runs each test both ways), checked against
what the CLI's own report says."""
from __future__ import annotations

import gc
import hashlib
import json
import os

import pytest

import client_util
from client_util import BIN, cli_report, run_dirs, sandcell

# The shared fixtures, by assignment (pytest finds them by name).
server, runner, no_leftover_dirs = client_util.server, client_util.runner, client_util.no_leftover_dirs

PRINTS = """
import sys
print("out line")
print("err line", file=sys.stderr)
"""


def test_ok_run_outputs_usage_value(runner, no_leftover_dirs):
    res = runner(PRINTS + "import sandcell\nsandcell.result({'n': 3, 'xs': [1.5, None]})\n")
    assert isinstance(res, sandcell.Result)
    assert res.status == "ok" and res.ok and res.exit_code == 0
    assert res.stdout == b"out line\n" and res.stderr == b"err line\n"
    # Without cell mode: the two streams, stdout first (their interleaving
    # is not recorded), as nbformat v4 stream outputs.
    assert res.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "out line\n"},
        {"output_type": "stream", "name": "stderr", "text": "err line\n"},
    ]
    assert res.value == {"n": 3, "xs": [1.5, None]}
    assert res.report.result == res.value and res.report.result_error is None
    u = res.usage
    assert u.stdout_bytes == 9 and u.stderr_bytes == 9
    assert u.wall_sec is not None and 0 < u.wall_sec < 30
    assert u.cpu_sec is not None and u.cpu_sec >= 0
    assert u.peak_memory_bytes > 0 and u.output_files == 0 and u.output_bytes == 0
    assert res.files == () and res.datasets == {}
    assert res.report.isolation.mode == "full", res.report.isolation
    res.close()


def test_empty_streams_give_no_outputs(runner, no_leftover_dirs):
    res = runner("x = 1")
    assert res.status == "ok" and res.outputs == [] and res.stdout == b"" and res.value is None


def test_report_fields_match_the_cli(runner, tmp_path, no_leftover_dirs):
    """The typed report says what the CLI's report says for the same run."""
    code = "import sys\nprint('a' * 10)\nsys.exit(3)\n"
    src = tmp_path / "cell.py"
    src.write_text(code)
    p, ref = cli_report("--stdin", os.devnull, "--memory", "256M", str(src))
    res = runner(code, limits={"memory": "256M"})
    assert ref is not None and p.rc == 3
    r = res.report
    assert (res.status, res.exit_code) == (ref["status"], ref["exit_code"]) == ("exited", 3)
    assert r.schema == ref["schema"] and r.sandcell_version == ref["sandcell_version"]
    assert r.reason == ref["reason"]
    assert r.script.started is True and r.script.exit_code == ref["script"]["exit_code"] == 3
    assert r.script.signal is None and r.script.signal_name is None
    assert r.streams.stdout.bytes == ref["streams"]["stdout"]["bytes"] == 11
    assert r.streams.stdout.truncated is False
    assert dict(r.limits) == ref["limits"], (r.limits, ref["limits"])
    assert r.isolation.mode == ref["isolation"]["mode"]
    assert r.isolation.not_held == tuple(ref["isolation"]["not_held"])
    assert set(r.raw) == set(ref), "the raw report has the CLI's keys"
    assert r.error is None and r.left_behind == () and r.truncations == ()


def test_inputs_values_args_stdin(runner, tmp_path, no_leftover_dirs):
    (tmp_path / "notes.txt").write_text("hello notes")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a.csv").write_text("x\n1\n")
    code = """
import sys, os, json, sandcell
print(open(sandcell.inputs["notes"]).read())
print(sorted(os.listdir(sandcell.inputs["data"])))
print(json.dumps(dict(sandcell.values), sort_keys=True))
print(sys.argv[1:])
print(sys.stdin.read())
"""
    res = runner(code, inputs={"notes": tmp_path / "notes.txt", "data": str(d)},
                 values={"k": 3, "name": "é", "nested": {"a": [1, 2]}},
                 args=["one", "two"], stdin=b"from stdin")
    assert res.status == "ok", res
    assert res.stdout.decode().splitlines() == [
        "hello notes", "['a.csv']",
        json.dumps({"k": 3, "name": "é", "nested": {"a": [1, 2]}}, sort_keys=True),
        "['one', 'two']", "from stdin"]


def test_stdin_from_a_file_and_empty_by_default(runner, tmp_path, no_leftover_dirs):
    f = tmp_path / "in.txt"
    f.write_bytes(b"file stdin")
    assert runner("import sys; print(sys.stdin.read())", stdin=f).stdout == b"file stdin\n"
    assert runner("import sys; print(repr(sys.stdin.read()))").stdout == b"''\n"


def test_limits_are_applied(runner, no_leftover_dirs):
    res = runner("import time; time.sleep(30)", limits={"wall_time": 0.5, "memory": "300M",
                                                         "pids": 32, "cpu_time": "5"})
    assert res.status == "timeout" and res.exit_code == 124
    lim = res.report.limits
    assert lim["wall_sec"] == 0.5 and lim["memory_bytes"] == 300 << 20
    assert lim["pids"] == 32 and lim["cpu_sec"] == 5.0
    # The CLI's own status line is not in the code's stderr (--quiet).
    assert res.stderr == b""
    # A cell stopped by sandcell ends with an error output naming the stop.
    assert [(o["output_type"], o["ename"]) for o in res.outputs] == [("error", "SandcellStopped")]
    assert res.outputs[0]["evalue"] == res.report.reason
    assert "wall-clock" in res.report.reason


def test_limits_cold_and_warm_agree(server, no_leftover_dirs):
    """Every limit key reaches the run with the same value both ways,
    including the CLI's clamp of output_bytes to disk (the client says it
    for the server)."""
    every = {"wall_time": 7.25, "cpu_time": 6, "memory": "200M", "pids": 40, "disk": "1G",
             "files": 100, "stdout_limit": "64K", "result_limit": 4096, "output_files": 7,
             "output_bytes": "2G"}
    assert set(every) == set(sandcell.LIMIT_KEYS)
    for lim in (every, {"disk": "1M"}, {"disk": "1G"}, {}):
        cold = sandcell.run("pass", limits=lim).report.limits
        warm = server.run("pass", limits=lim).report.limits
        assert dict(cold) == dict(warm), (lim, cold, warm)
    assert cold["wall_sec"] == 30.0  # the defaults, when nothing is given


def test_output_files_are_readable_and_checked(runner, no_leftover_dirs):
    code = """
import os
os.makedirs("/output/sub/deeper")
open("/output/a.txt", "w").write("alpha")
open("/output/sub/deeper/b.bin", "wb").write(bytes(range(256)) * 4)
"""
    res = runner(code)
    assert res.status == "ok"
    by_path = {f.path: f for f in res.files}
    assert set(by_path) == {"a.txt", "sub/deeper/b.bin"}
    a, b = by_path["a.txt"], by_path["sub/deeper/b.bin"]
    assert a.read_text() == "alpha" and a.size == 5
    assert a.sha256 == hashlib.sha256(b"alpha").hexdigest()
    assert b.read_bytes() == bytes(range(256)) * 4 and b.size == 1024
    assert res.file("a.txt") is a
    with pytest.raises(KeyError):
        res.file("nope")
    assert res.usage.output_files == 2 and res.usage.output_bytes == 1029
    assert res.output_dir is not None and os.path.isfile(os.path.join(res.output_dir, "a.txt"))
    assert [(e.path, e.size, e.sha256) for e in res.report.outputs.files] == \
        [(f.path, f.size, f.sha256) for f in res.files]
    # A file changed on the host after the run no longer matches the report.
    with open(a.host_path, "w") as fh:
        fh.write("ALPHA")
    with pytest.raises(sandcell.ProtocolError, match="does not match the report"):
        a.read_bytes()
    # A symlink planted in its place is not followed.
    os.unlink(a.host_path)
    os.symlink("/etc/passwd", a.host_path)
    with pytest.raises(OSError):
        a.read_bytes()
    res.close()
    assert not os.path.exists(res.output_dir)


def test_odd_file_names(runner, no_leftover_dirs):
    """Names the collector copies are listed exactly and readable; the ones
    it refuses are listed as skipped, escaped for display."""
    code = r"""
import os
for n in ["a\\b", "é", "x y", "-dash", ".hidden", "new\nline"]:
    open("/output/" + n, "w").write(n)
open(b"/output/bad\xff", "w").write("x")
os.symlink("/etc/passwd", "/output/link")
"""
    with runner(code) as res:
        assert res.status == "ok", res
        got = {f.path: f.read_text() for f in res.files}
        assert got == {n: n for n in ["a\\b", "é", "x y", "-dash", ".hidden"]}, got
        skipped = {s.path: s.reason for s in res.report.outputs.skipped}
        assert skipped == {"link": "symlink", "bad\\xff": "unsafe name",
                           "new\\x0aline": "unsafe name"}, skipped


def test_private_directory_lives_as_long_as_the_result(runner, no_leftover_dirs):
    before = set(run_dirs())
    res = runner("open('/output/x', 'w').write('x')")
    mine = set(run_dirs()) - before
    assert len(mine) == 1, mine
    d = mine.pop()
    # Only the collected files stay, not the report or the streams.
    assert os.listdir(d) == ["output"]
    f = res.files[0]
    del res
    gc.collect()
    assert os.path.isdir(d), "a file keeps its directory alive"
    assert f.read_bytes() == b"x"
    del f
    gc.collect()
    assert not os.path.exists(d)
    # Without collected files nothing stays at all.
    runner("print(1)")
    assert set(run_dirs()) == before
    with runner("open('/output/y', 'w').write('y')") as res2:
        assert res2.files[0].read_bytes() == b"y"
    assert set(run_dirs()) == before


def test_output_dir_of_the_caller_is_kept(runner, tmp_path, no_leftover_dirs):
    out = tmp_path / "out"
    res = runner("open('/output/r.txt', 'w').write('kept')", output_dir=out)
    assert res.output_dir == str(out)
    assert res.files[0].host_path == str(out / "r.txt")
    res.close()
    assert (out / "r.txt").read_text() == "kept"


def test_failing_code_is_a_result_not_an_exception(runner, no_leftover_dirs):
    for cell in (None, False):
        res = runner("def f():\n    raise ValueError('boom')\nf()\n", cell=cell)
        assert res.status == "exited" and res.exit_code == 1
        text = res.stderr.decode()
        assert "ValueError: boom" in text and 'File "/code/cell.py", line 3' in text
        err = res.report.code_error
        assert (err.ename, err.evalue) == ("ValueError", "boom")
        assert "\n".join(err.traceback) + "\n" == text
        if cell is None:  # a cell: the error output (the traceback is not a stream)
            assert res.outputs == [{"output_type": "error", "ename": "ValueError", "evalue": "boom",
                                    "traceback": list(err.traceback)}]
        else:
            assert res.outputs == [{"output_type": "stream", "name": "stderr", "text": text}]
    # Exit codes sandcell itself uses are still the code's own here.
    for code in (125, 126):
        r = runner("import sys; sys.exit(%d)" % code)
        assert (r.status, r.exit_code) == ("exited", code)


def test_signaled_and_memory_statuses(runner, no_leftover_dirs):
    r = runner("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert r.status == "signaled" and r.exit_code == 128 + 11
    assert r.report.script.signal == 11 and r.report.script.signal_name == "SIGSEGV"
    r = runner("x = bytearray(400 << 20)", limits={"memory": "64M"})
    assert r.status == "memory" and r.exit_code == 122


def test_non_utf8_output(runner, no_leftover_dirs):
    """A plain run's streams are decoded with U+FFFD for what is not UTF-8;
    in a cell, bytes written below sys.stdout are in the stream only."""
    res = runner("import sys; sys.stdout.buffer.write(b'ok \\xff\\n')", cell=False)
    assert res.stdout == b"ok \xff\n"
    assert res.outputs[0]["text"] == "ok \ufffd\n"
    res = runner("import sys; n = sys.stdout.buffer.write(b'ok \\xff\\n')")
    assert res.stdout == b"ok \xff\n" and res.outputs == []


def test_large_code_runs(runner, no_leftover_dirs):
    """More than an argv string may hold (128 KiB): the code goes as a file."""
    code = "x = 0\n" + "x += 1\n" * 40000 + "print(x)\n"
    assert len(code) > 200000
    assert runner(code).stdout == b"40000\n"


def test_cell_mode_is_asked_only_when_supported(runner, no_leftover_dirs):
    feats = sandcell._locate.features(BIN)
    if feats.cell:
        assert runner("1 + 1", cell=True).status == "ok"
    else:
        with pytest.raises(sandcell.BadRequest, match="no cell mode"):
            runner("1 + 1", cell=True)
        # Auto (None) and False run as a plain script; no output is invented.
        assert runner("1 + 1").outputs == [] and runner("1 + 1", cell=False).outputs == []


def test_cell_mode_outputs_error_and_location(runner, no_leftover_dirs):
    """The default where the CLI has --cell: the report's ordered outputs,
    the code's exception typed, where a stopped run was."""
    res = runner("print('a')\nimport sandcell\nsandcell.display(sandcell.HTML('<b>x</b>'))\n"
                 "sandcell.result(float('nan'))\n1 + 1\n")
    assert res.status == "ok" and res.report.cell.mode == "cell", res.report
    assert res.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "a\n"},
        {"output_type": "display_data", "data": {"text/html": "<b>x</b>", "text/plain": "<HTML object>"},
         "metadata": {}},
        {"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {},
         "execution_count": None},
    ]
    assert res.value == {"$float": "NaN"}  # docs/values.md's tag, as plain JSON data
    assert res.report.code_error is None and res.report.stopped_at is None

    res = runner("def f():\n    raise KeyError('k')\nf()\n")
    assert res.status == "exited" and res.exit_code == 1
    err = res.report.code_error
    assert err.ename == "KeyError" and err.evalue == "'k'" and res.report.error is None
    assert err.traceback[-1] == "KeyError: 'k'" and "raise KeyError('k')" in "\n".join(err.traceback)
    assert res.outputs[-1] == {"output_type": "error", "ename": "KeyError", "evalue": "'k'",
                               "traceback": list(err.traceback)}

    res = runner("import time\ndef wait():\n    while True:\n        time.sleep(0.01)\nwait()\n",
                 limits={"wall_time": 2})
    assert res.status == "timeout"
    assert any("in wait" in line for line in res.report.stopped_at), res.report.stopped_at
    assert res.outputs[-1]["ename"] == "SandcellStopped"

    # cell=False: the plain run's outputs, the exception still typed.
    res = runner("print('p')\nraise ValueError('v')\n", cell=False)
    assert res.report.cell.mode == "script" and res.report.code_error.ename == "ValueError"
    assert [o["name"] for o in res.outputs] == ["stdout", "stderr"]


def test_run_with_server_argument(server, no_leftover_dirs):
    """sandcell.run(server=...) takes a socket path or a Server."""
    r1 = sandcell.run("print('via path')", server=server.socket)
    r2 = sandcell.run("print('via server')", server=server)
    assert r1.stdout == b"via path\n" and r2.stdout == b"via server\n"
    with pytest.raises(sandcell.BadRequest, match="interpreter"):
        sandcell.run("pass", server=server, python="/usr/bin/python3.11")
