"""Attack rows I1-I7, F10 and G14r: Python-level tricks are not boundaries
(the OS layers hold under every one of them), and nothing the code prints,
writes or exits with can change the supervisor's verdict.
"""
import errno
import json

import pytest

from harness import SERVER, case, probe, run, skip_in_session

E = errno

CONFINEMENT = r'''
import subprocess
res = {}
res["ctypes-getpid"] = libc.getpid() == os.getpid()
res["ctypes-raw-ptrace"] = err_of(sc(101, 0, 0, 0, 0))
res["os.system-id"] = subprocess.run("id -u", shell=True, stdout=subprocess.PIPE).stdout.decode().strip()
sh = subprocess.run(["/bin/sh", "-c", "grep -E '^(Seccomp|NoNewPrivs|CapEff|CapBnd):' /proc/self/status"],
                    stdout=subprocess.PIPE).stdout.decode()
res["sh-status"] = {l.split(":")[0]: l.split()[1] for l in sh.splitlines()}
res["sh-write-usr"] = subprocess.run(["/bin/sh", "-c", "echo x > /usr/planted"],
                                     stderr=subprocess.DEVNULL).returncode
res["sh-write-tmp"] = subprocess.run(["/bin/sh", "-c", "echo x > /tmp/ok"]).returncode
import shutil
bash = shutil.which("bash")
if bash:
    res["bash-dev-tcp"] = subprocess.run([bash, "-c", "exec 3<>/dev/tcp/1.1.1.1/80"],
                                         stderr=subprocess.PIPE).returncode
pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exec cat /proc/self/status > /tmp/spawned"], {})
os.waitpid(pid, 0)
res["posix_spawn-seccomp"] = [l.split()[1] for l in open("/tmp/spawned") if l.startswith("Seccomp:")]
res["writable-sys-path"] = [os.path.realpath(p or ".") for p in sys.path if os.access(p or ".", os.W_OK)]
res["sys.flags"] = [sys.flags.isolated, sys.flags.ignore_environment, sys.flags.no_user_site]
res["env-python-vars"] = sorted(k for k in os.environ if k.startswith("PYTHON") and k != "PYTHONDONTWRITEBYTECODE")
emit(res)
'''


@pytest.fixture(scope="module")
def conf():
    r, res = probe(CONFINEMENT)
    assert r.status == "ok", r
    return res


def test_G4_I1_ctypes_is_available_and_no_boundary(host_postconditions, conf):
    """ctypes works (a Python-level ban would not be a boundary); raw calls
    made through it meet the same filter (G4)."""
    assert conf["ctypes-getpid"] is True
    assert conf["ctypes-raw-ptrace"] == E.EPERM


@pytest.mark.parametrize("key,expected", [
    case("G3", "os.system-runs-as-sandbox-uid", "os.system-id", "1000"),
    case("G4", "shell-has-same-filter", "sh-status",
         {"Seccomp": "2", "NoNewPrivs": "1", "CapEff": "0000000000000000", "CapBnd": "0000000000000000"}),
    case("G2", "shell-cannot-write-runtime", "sh-write-usr", 2),
    case("G4", "posix_spawn-same-filter", "posix_spawn-seccomp", ["2"]),
])
def test_I2_subprocesses_same_confinement(host_postconditions, conf, key, expected):
    """I2: os.system / subprocess / posix_spawn of /bin/sh run under the
    very same confinement."""
    assert conf[key] == expected
    assert conf["sh-write-tmp"] == 0


def test_G5_bash_dev_tcp_fails(host_postconditions, conf):
    if "bash-dev-tcp" not in conf:
        pytest.skip("no bash in the runtime")
    assert conf["bash-dev-tcp"] != 0


def test_G2_writable_sys_path_only_scratch(host_postconditions, conf):
    """I5: the only writable sys.path entry is the scratch cwd ('' under
    -c); nothing writable can shadow the runtime for later runs."""
    assert set(conf["writable-sys-path"]) <= {"/tmp", "/output", "/dev/shm"}, conf["writable-sys-path"]


def test_G2_interpreter_isolated_from_environment(host_postconditions, conf):
    """I5: -I (isolated: -E -s) and no PYTHON* variable besides the fixed one."""
    assert conf["sys.flags"] == [1, 1, 1]
    assert conf["env-python-vars"] == []


FAKE_REPORT = json.dumps({"schema": 1, "status": "ok", "exit_code": 0, "reason": "",
                          "script": {"started": True, "exit_code": 0}})

VERDICTS = {
    "fake-report-json-on-stdout-then-exit-3": (
        "print(%r)\nimport sys; sys.stdout.flush(); sys.exit(3)" % FAKE_REPORT, "exited", 3),
    "fake-timeout-line-on-stderr-exit-0": (
        "import sys\nsys.stderr.write('sandcell: timeout: wall-clock limit of 1 s reached\\n')\n"
        "print('{\"status\": \"timeout\", \"exit_code\": 124}')", "ok", 0),
    "exit-124-is-not-a-timeout": ("import sys; sys.exit(124)", "exited", 124),
    "exit-137-is-not-a-sigkill": ("import sys; sys.exit(137)", "exited", 137),
    "exit-126-is-not-a-sandbox-error": ("import sys; sys.exit(126)", "exited", 126),
    "exit-122-is-not-memory": ("import sys; sys.exit(122)", "exited", 122),
    "exit-121-is-not-disk": ("import sys; sys.exit(121)", "exited", 121),
    "exit-123-is-not-cpu": ("import sys; sys.exit(123)", "exited", 123),
    "os._exit-159-is-not-sigsys": ("import os; os._exit(159)", "exited", 159),
}


@pytest.mark.parametrize("code,status,exit_code", [case("G9", k, *v) for k, v in VERDICTS.items()])
def test_verdict_not_spoofable(host_postconditions, code, status, exit_code):
    """G14r/I4: the verdict comes from host evidence.  Fake report lines on
    the streams change nothing; exiting with a code that collides with
    sandcell's own (121-126) or 128+signal is reported as "exited" with
    that code, never as a limit or signal."""
    r = run(code, prelude=False)
    assert r.status == status, r
    assert r.script["exit_code"] == exit_code
    assert r.script["signal"] is None
    assert r.report["exit_code"] == exit_code and r.rc == exit_code


def test_G9_result_channel_cannot_set_status(host_postconditions):
    """A result object that mimics report fields is only data."""
    r = run('''
import sandcell
sandcell.result({"status": "timeout", "exit_code": 124, "error": "x"})
''', prelude=False)
    assert r.status == "ok", r
    assert r.report["result"] == {"status": "timeout", "exit_code": 124, "error": "x"}
    assert r.report["error"] is None


@pytest.mark.skipif(bool(SERVER), reason="warm mode: json is already imported in the template, "
                    "so /tmp/json.py cannot shadow it (the garbage-on-result-fd case covers the guarantee)")
@skip_in_session("json is already imported by the session loop, so /tmp/json.py cannot shadow it")
def test_G9_shadowed_json_module_only_breaks_own_result(host_postconditions):
    """I4: planting /tmp/json.py (cwd is on sys.path under -c) shadows the
    module for this run only; the garbage it sends on the result channel
    is rejected by the host's strict parser, the verdict is unaffected."""
    r = run('''
with open("/tmp/json.py", "w") as f:
    f.write("def load(f):\\n    return {}\\n"
            "def dumps(*a, **k):\\n    return '{\\"status\\": \\"ok\\", \\"x\\": 1, \\"x\\": 2}'\\n")
import sandcell
sandcell.result({"real": 1})
''', prelude=False)
    assert r.status == "ok", r
    assert r.report["result"] is None
    assert r.report["result_error"]


@skip_in_session("a garbage record on fd 3 is listed in session.problems, not as result_error "
                 "(test_session_c.py::test_hostile_channel_records)")
def test_G9_garbage_on_result_fd(host_postconditions):
    r = run('''
os.write(3, b"\\xff\\xfe{{{ not json\\n" + b"[" * 100000 + b"\\n")
''', prelude=False)
    assert r.status == "ok", r
    assert r.report["result"] is None
    assert r.report["result_error"]


@skip_in_session("a session's stdin carries its commands, so no caller bytes are pumped to the code; a "
                 "cell closing its fds: test_sessions.py::test_G9_cell_closing_its_channel_and_stdin")
def test_G9_closed_streams_do_not_hang_supervisor(host_postconditions):
    """F10: the code closes stdin, stdout, stderr and the result fd early
    while the host still feeds 8 MiB of stdin; the supervisor finishes."""
    r = run('''
import time
for fd in (0, 1, 2, 3):
    os.close(fd)
time.sleep(0.2)
''', prelude=False, stdin=b"x" * (8 << 20))
    assert r.status == "ok", r
    assert r.report["time"]["wall_sec"] < 10


def test_G4_native_crash_without_ctypes_is_signaled(host_postconditions):
    """I6: a crash in native code (here faulthandler's deliberate SIGSEGV)
    is reported as "signaled" 11 from the wait status."""
    r = run("import faulthandler\nfaulthandler.disable()\nfaulthandler._sigsegv()", prelude=False)
    assert r.status == "signaled", r
    assert r.script["signal"] == 11


@skip_in_session("a session runs cells, not a script file: there is no script path or __file__")
def test_G6_file_mode_argv_has_no_host_path(host_postconditions, tmp_path):
    """E6: running a file: the code sees /code/<basename>, never the host
    directory it came from."""
    d = tmp_path / "secret-host-dir"
    d.mkdir()
    f = d / "job.py"
    f.write_text("import sys\nprint(repr((sys.argv, __file__, sys.path, open('/proc/self/cmdline','rb').read())))\n")
    r = run(file=f, args=["a1"])
    assert r.status == "ok", r
    assert "secret-host-dir" not in r.out and str(tmp_path) not in r.out
    assert "/code/job.py" in r.out


def test_G9_tampering_with_init_limits_does_not_change_verdict(host_postconditions):
    """The sandbox init (which reports the code's wait status) runs as the
    same uid, so prlimit on it is possible: lowering every one of its
    limits to 0 must not change or suppress the verdict."""
    r = run('''
import struct
for res in range(16):
    sc(302, 1, res, ctypes.create_string_buffer(struct.pack("QQ", 0, 0), 16), 0)
sys.stdout.flush()
os._exit(7)
''')
    assert r.status == "exited", r
    assert r.script["exit_code"] == 7 and r.rc == 7


def test_G9_signals_to_init_via_pidfd_ignored(host_postconditions):
    """pidfd_open(1) is allowed; SIGKILL/SIGSTOP/SIGTERM sent through it
    to the namespace init are dropped and the verdict is the code's own."""
    r = run('''
pfd = sc(434, 1, 0)[0]
for s in (9, 19, 15, 1):
    sc(424, pfd, s, 0, 0)
import time
time.sleep(0.2)
sys.exit(5)
''')
    assert r.status == "exited", r
    assert r.script["exit_code"] == 5


@skip_in_session("a session's stdin carries its commands: no caller bytes are pumped to the code")
def test_G9_unread_stdin_does_not_hang_supervisor(host_postconditions):
    """64 MiB offered on stdin to code that never reads it: the
    supervisor neither blocks nor buffers without bound."""
    r = run("import time\ntime.sleep(0.2)\n", prelude=False, stdin=b"y" * (64 << 20))
    assert r.status == "ok", r
    assert r.report["time"]["wall_sec"] < 10
