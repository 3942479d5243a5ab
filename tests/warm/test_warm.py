"""The warm server (`sandcell serve`): what only warm mode can get wrong.

Each test starts its own server(s) through the `server` factory (one
template per options set, stopped at the end of the module): run
independence from the shared template, slots and queue timeout, a client
that goes away mid-run, a hostile peer on the socket (framing, fds, JSON),
another uid, and respawn (the template's ASLR layout and hash secret are
shared by every run of one template generation, and only by those).

The black-box tiers also run against a warm server: tests/warm/run-warm.sh.
"""
import errno
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib

import pytest

import harness
from harness import BIN, EXIT_BUSY, EXIT_CANCELLED, EXIT_UNREACHABLE, EXIT_USAGE, IS_ROOT, WarmServer, \
    children, descendants, nb_validate, pids_in_run_cgroups, pids_of_uids, proc_state, proc_uid, run_cgroups, \
    run_cli, wait_gone
from integration.test_report_schema import check_refusal, check_schema


@pytest.fixture(scope="module")
def server():
    """server(opts...) -> a running harness.WarmServer with those options (one per
    distinct option list; all stopped at the end of the module)."""
    made = {}

    def get(*opts, **kw):
        key = (opts, tuple(sorted(kw.items())))
        s = made.get(key)
        if s is None or not s.alive():
            s = made[key] = WarmServer(opts, **kw)
        return s

    yield get
    for s in made.values():
        s.stop()


# ----------------------------------------------------------------- independence

RUN_A = r'''
import json, os, random, sys, threading, time
import numpy, pandas
first = [random.random(), float(numpy.random.rand())]
numpy.some_attr = "planted"
json.x = "planted"
sys.modules["pandas"].options.display.max_rows = 7
pandas.set_option("display.precision", 2)
sys.planted = True
os.environ["SANDCELL_PLANTED"] = "1"
os.putenv("SANDCELL_PLANTED_C", "1")
with open("/tmp/planted", "w") as f:
    f.write("x")
with open("/output/planted", "w") as f:
    f.write("x")
random.seed(42)
numpy.random.seed(42)
seeded = [random.random(), float(numpy.random.rand())]
t = threading.Thread(target=time.sleep, args=(300,), daemon=True)
t.start()
import gc
gc.disable()
print(json.dumps({"first": first, "seeded": seeded, "threads": threading.active_count()}))
'''

RUN_B = r'''
import json, os, random, sys, threading, gc
import numpy, pandas
print(json.dumps({
    "first": [random.random(), float(numpy.random.rand())],
    "numpy_attr": hasattr(numpy, "some_attr"),
    "json_x": hasattr(json, "x"),
    "sys_planted": hasattr(sys, "planted"),
    "max_rows": pandas.get_option("display.max_rows"),
    "precision": pandas.get_option("display.precision"),
    "environ": sorted(k for k in os.environ if k.startswith("SANDCELL_PLANTED")),
    "getenv_c": os.getenv("SANDCELL_PLANTED_C"),
    "tmp": os.listdir("/tmp"),
    "output": os.listdir("/output"),
    "threads": threading.active_count(),
    "tasks": os.listdir("/proc/self/task"),
    "gc": gc.isenabled(),
}))
'''


def test_runs_are_independent_of_each_other_and_reseeded(server):
    """Run A changes module state (numpy, json, pandas options, sys), the
    environment, /tmp and /output, seeds both RNGs and leaves a daemon
    thread behind; runs B and B' from the same template see none of it,
    and every run starts from its own random state."""
    srv = server("--slots", "2")
    a = srv.run(RUN_A)
    assert a.status == "ok" and a.rc == 0, a
    assert a.report["time"]["wall_sec"] < 10, "a daemon thread must not hold the run: %r" % a
    b1 = srv.run(RUN_B)
    b2 = srv.run(RUN_B)
    for b in (b1, b2):
        assert b.status == "ok", b
        r = b.json()
        assert r["numpy_attr"] is False and r["json_x"] is False and r["sys_planted"] is False, r
        assert r["max_rows"] == 60 and r["precision"] == 6, r
        assert r["environ"] == [] and r["getenv_c"] is None, r
        assert r["tmp"] == [] and r["output"] == [], r
        assert r["threads"] == 1 and len(r["tasks"]) == 1, r
        assert r["gc"] is True, r
    ra, rb1, rb2 = a.json(), b1.json(), b2.json()
    # Reseeded per run: no two runs start from the same state (the
    # template's, or A's seed 42).
    firsts = [tuple(ra["first"]), tuple(rb1["first"]), tuple(rb2["first"])]
    assert len(set(x[0] for x in firsts)) == 3, firsts
    assert len(set(x[1] for x in firsts)) == 3, firsts
    for x in firsts:
        assert list(x) != ra["seeded"], firsts


def test_run_sees_a_fresh_interpreter_namespace(server):
    """__main__ holds nothing of the template or the bootstrap."""
    srv = server("--slots", "2")
    r = srv.run('''
import json, sys
print(json.dumps({"argv": sys.argv, "name": __name__,
                  "main": sorted(k for k in globals() if k not in ("json", "sys"))}))
''')
    assert r.status == "ok", r
    res = r.json()
    assert res["argv"] == ["-c"] and res["name"] == "__main__", res
    assert res["main"] == ["__builtins__", "__doc__", "__loader__", "__name__", "__package__",
                           "__spec__"], res


# ------------------------------------------------------------------ host secrets

MEMORY_DUMP = r"""
import ctypes, json, os, zlib
res = {}
def grab(p):
    try:
        with open(p, "rb") as f:
            return f.read().decode("latin-1")
    except OSError as e:
        return "ERR %d" % e.errno
for p in ("/proc/self/cmdline", "/proc/self/environ", "/proc/1/cmdline", "/proc/1/environ"):
    res[p] = grab(p)
st = open("/proc/self/stat").read()
v = [int(x) for x in st[st.rindex(")") + 2:].split()[45:49]]
res["argv-area"] = ctypes.string_at(v[0], v[1] - v[0]).decode("latin-1")
res["env-area"] = ctypes.string_at(v[2], v[3] - v[2]).decode("latin-1")
regions = []
for line in open("/proc/self/maps").read().splitlines():
    f = line.split()
    lo, hi = (int(x, 16) for x in f[0].split("-"))
    name = f[5] if len(f) > 5 else "anon"
    if not f[1].startswith("r") or name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
        continue
    if not name.startswith(("[", "anon")):
        continue  # file mappings: the binaries and libraries
    regions.append((lo, hi, name))
with open("/output/memory.z", "wb") as out:
    for lo, hi, name in regions:
        for a in range(lo, hi, 16 << 20):
            chunk = zlib.compress(ctypes.string_at(a, min(hi, a + (16 << 20)) - a), 1)
            out.write(json.dumps([name, a, len(chunk)]).encode() + b"\n" + chunk)
res["regions"] = len(regions)
print(json.dumps(res))
"""


def _dump_hits(path, needle):
    """Regions of a run's memory dump (MEMORY_DUMP) that hold needle."""
    hits = []
    with open(path, "rb") as f:
        while True:
            head = f.readline()
            if not head:
                break
            name, addr, n = json.loads(head)
            data = zlib.decompress(f.read(n))
            if needle in data:
                hits.append("%s@%x" % (name, addr))
    return hits


@pytest.mark.skipif(harness.ASAN, reason=harness.ASAN_SKIP["dump"])
def test_server_argv_and_environment_unreachable_from_runs(tmp_path):
    """The template is a host process started with the operator's argv and
    environment.  A run shares its memory (fork, no exec), so the
    environment (where operators keep secrets) may be nowhere in it: not in
    /proc/self/environ, not in the original env area (/proc/self/stat
    fields 50-51), not anywhere in the run's stack, heap or anonymous
    memory (dumped to /output and searched on the host, so the code itself
    never holds the secret).  The command line (host paths: the socket)
    may not be in /proc/self/cmdline or the original argv area."""
    secret = "sandcell-secret-" + secrets.token_hex(8)
    pathtag = "sandcell-path-" + secrets.token_hex(8)
    d = tempfile.mkdtemp(prefix="sandcell-warm-%s-" % pathtag)
    env = dict(os.environ)
    env["AWS_SECRET_ACCESS_KEY"] = secret
    env["SANDCELL_TEST_SECRET"] = secret
    srv = WarmServer(["--slots", "1"], env=env, sockdir=d)
    try:
        out = tmp_path / "out"
        r = srv.run(MEMORY_DUMP, opts=["--output", str(out), "--disk", "2G", "--memory", "2G",
                                       "--output-bytes", "2G", "--wall-time", "60"], timeout=120)
        assert r.status == "ok", r
        res = r.json()
        assert res["regions"] > 0
        leaks = {k: [w for w in ("secret", "pathtag") if {"secret": secret, "pathtag": pathtag}[w] in v]
                 for k, v in res.items() if isinstance(v, str)}
        assert leaks == {"/proc/self/cmdline": [], "/proc/self/environ": [], "/proc/1/cmdline": [],
                         "/proc/1/environ": [], "argv-area": [], "env-area": []}, leaks
        assert _dump_hits(str(out / "memory.z"), secret.encode()) == []
    finally:
        srv.stop()


def test_run_fds_and_process_state_as_after_exec(server):
    """What execve gives a cold run, the in-process start must give too:
    only fds 0-3 open (no control socket or pipe of the sandbox init),
    SIGXFSZ and SIGPIPE
    ignored as python3 does at startup (so a write past --disk raises
    EFBIG instead of killing the code), no other signal ignored."""
    srv = server("--slots", "2")
    r = srv.run(r'''
import ctypes, json, os, signal
fds = sorted(n for n in range(1024) if not ctypes.CDLL(None).fcntl(n, 1) < 0)
ign = int([l for l in open("/proc/self/status") if l.startswith("SigIgn:")][0].split()[1], 16)
def readable(p):
    try:
        open(p, "rb").read(1)
        return True
    except OSError:
        return False
print(json.dumps({"fds": fds, "dumpable": ctypes.CDLL(None).prctl(3, 0, 0, 0, 0),
                  "environ": readable("/proc/self/environ"), "auxv": readable("/proc/self/auxv"),
                  "ignored": sorted(s for s in range(1, 65) if ign & (1 << (s - 1)))}))
''')
    assert r.status == "ok", r
    res = r.json()
    assert res["fds"] == [0, 1, 2, 3], res
    # The one documented difference (docs/warm.md): no execve resets the
    # non-dumpable flag of the sandbox init, so the code's own /proc files
    # stay closed to it.  Less access, never more.
    assert res["dumpable"] == 0 and not res["environ"] and not res["auxv"], res
    assert res["ignored"] == sorted([signal.SIGPIPE, signal.SIGXFSZ]), res


def test_write_past_disk_limit_raises_efbig(server):
    srv = server("--slots", "2")
    r = srv.run('''
import errno
try:
    with open("/tmp/big", "wb") as f:
        f.truncate(64 << 20)
        f.seek((64 << 20) - 1)
        f.write(b"x")
    print("no error")
except OSError as e:
    print("errno", errno.errorcode[e.errno])
''', opts=["--disk", "8M"])
    assert r.out.strip() in ("errno EFBIG", "errno ENOSPC"), r
    assert r.status == "ok", r


# -------------------------------------------------------------------- concurrency

def _overlap(intervals):
    ev = sorted([(s, 1) for s, e in intervals] + [(e, -1) for s, e in intervals],
                key=lambda x: (x[0], x[1]))
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


def test_slots_bound_concurrent_runs(server, tmp_path):
    """8 concurrent clients on --slots 2: all succeed, never more than 2
    runs at once (start/end timestamps written to /output by each run),
    and 2 do run at once."""
    srv = server("--slots", "2")
    code = '''
import json, time
t0 = time.time()
time.sleep(0.4)
with open("/output/t.json", "w") as f:
    json.dump([t0, time.time()], f)
'''
    procs = []
    for i in range(8):
        out = tmp_path / ("out-%d" % i)
        procs.append((out, srv.popen(code, opts=["--output", str(out)])))
    intervals = []
    for out, p in procs:
        o, e = p.communicate(timeout=120)
        assert p.returncode == 0, (o, e)
        intervals.append(tuple(json.loads((out / "t.json").read_text())))
    assert _overlap(intervals) <= 2, intervals
    assert _overlap(intervals) == 2, intervals


def test_queue_timeout_answers_server_busy(server):
    """--slots 1 --queue-timeout 0.5: while a long run holds the slot, a
    second request waits 0.5 s in the queue, then is refused as busy
    (exit 118, a full report, "server busy"); the long run is unaffected."""
    srv = server("--slots", "1", "--queue-timeout", "0.5")
    long = srv.popen('''
print("READY", flush=True)
import time
time.sleep(4)
print("done")
''')
    assert long.stdout.readline() == b"READY\n"
    t0 = time.monotonic()
    busy = srv.run("print('should not run')")
    waited = time.monotonic() - t0
    assert busy.rc == EXIT_BUSY, busy
    check_refusal(busy.report, "busy")
    assert "server busy" in busy.report["reason"], busy
    assert "server busy" in busy.err, busy
    assert busy.stdout == b"", busy
    assert 0.4 <= waited < 3, waited
    out, err = long.communicate(timeout=60)
    assert long.returncode == 0 and out == b"done\n", (out, err)
    assert srv.run("print('after')").out == "after\n"


def test_client_disconnect_kills_the_run(server):
    """A client killed while its code sleeps: the run is killed (no
    process of it survives, its cgroup goes away) and the server keeps
    serving."""
    srv = server("--slots", "2")
    before = set(descendants(srv.pid))
    p = srv.popen('''
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print("READY", flush=True)
time.sleep(300)
''')
    assert p.stdout.readline() == b"READY\n"
    # The run: the spare whose code's process has a child (the sleeper):
    # its supervisor, its init, the code and that child.
    run_pids = []
    for code, init, sup in _spares(srv):
        below = descendants(code)
        if below and not set(below) & before:
            run_pids = [sup, init, code] + below
    assert len(run_pids) >= 4, run_pids
    uids = {proc_uid(q) for q in run_pids} - {None, 0, os.geteuid()}
    # the supervisor's cgroups are the run's, and hold the init, the code
    # and its child
    cgroups = run_cgroups(run_pids[0])
    assert cgroups and set(run_pids[1:]) <= set(pids_in_run_cgroups([run_pids[0]])), (cgroups, run_pids)
    p.kill()
    p.communicate()
    assert wait_gone(run_pids) == [], "run processes survived the client"
    if IS_ROOT:
        assert uids and pids_of_uids(uids) == [], uids
    assert [c for c in cgroups if os.path.isdir(c)] == [] and run_cgroups(run_pids[0]) == []
    assert srv.alive()
    r = srv.run("print('still serving')")
    assert r.status == "ok" and r.out == "still serving\n", r


CANCEL_CODE = """
import os, sys, time
open("/output/before.txt", "w").write("before")
print("READY", flush=True)
time.sleep(60)
open("/output/after.txt", "w").write("after")
"""


@pytest.mark.parametrize("how", ["half-close", "extra-byte"])
def test_client_cancel_still_gets_the_report(server, tmp_path, how):
    """The protocol's cancel (docs/warm.md): after its request, the client
    shuts its side down for writing (or sends anything more); the server
    kills the run, collects /output so far and answers with the report,
    status cancelled, exit_code 119."""
    srv = server("--slots", "2")
    out = tmp_path / "out"
    r, w = os.pipe()
    devnull = os.open("/dev/null", os.O_RDONLY)
    s = _connect(srv, timeout=60)
    try:
        _send(s, json.dumps(_request(code=CANCEL_CODE, output_dir=str(out),
                                     limits={"wall_sec": 60.0})).encode(), [devnull, w, w])
        os.close(w)
        w = -1
        assert os.read(r, 100) == b"READY\n"
        t0 = time.monotonic()
        if how == "half-close":
            s.shutdown(socket.SHUT_WR)
        else:
            s.sendall(b"x")
        ans = _read_answer(s)
    finally:
        s.close()
        if w >= 0:
            os.close(w)
        os.close(devnull)
        os.close(r)
    assert time.monotonic() - t0 < 20
    check_schema(ans)
    assert ans["status"] == "cancelled" and ans["exit_code"] == EXIT_CANCELLED, ans
    assert ans["script"]["started"] is True and ans["script"]["signal_name"] == "SIGKILL", ans
    assert [f["path"] for f in ans["outputs"]["files"]] == ["before.txt"], ans["outputs"]
    assert (out / "before.txt").read_text() == "before" and not (out / "after.txt").exists()
    assert srv.run("print('still serving')").out == "still serving\n"


def test_cancel_while_queued(server, tmp_path):
    """A request cancelled while it waits for a slot is cancelled as soon
    as it gets one, before its sandbox exists: a full report, nothing of
    its code run."""
    srv = server("--slots", "1", "--queue-timeout", "20")
    long = subprocess.Popen(srv.cmdline("import sys\nprint('READY', flush=True)\nsys.stdin.read()\n"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert long.stdout.readline() == b"READY\n"
    r, w = os.pipe()
    devnull = os.open("/dev/null", os.O_RDONLY)
    s = _connect(srv, timeout=60)
    try:
        _send(s, json.dumps(_request(code="print('queued ran')")).encode(), [devnull, w, w])
        s.shutdown(socket.SHUT_WR)
        os.close(w)
        w = -1
        long.communicate(b"", timeout=60)      # the slot frees up
        ans = _read_answer(s)
    finally:
        s.close()
        if w >= 0:
            os.close(w)
        os.close(devnull)
    ran = os.read(r, 4096)
    os.close(r)
    check_schema(ans)
    assert ans["status"] == "cancelled" and ans["exit_code"] == EXIT_CANCELLED, ans
    assert ans["script"]["started"] is False, ans
    assert b"queued ran" not in ran


# ----------------------------------------------------------- hostile protocol

def _connect(srv, timeout=20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(srv.sock)
    return s


def _read_answer(s):
    """Returns the decoded answer, None for a closed connection."""
    hdr = b""
    try:
        while len(hdr) < 4:
            chunk = s.recv(4 - len(hdr))
            if not chunk:
                return None
            hdr += chunk
        n = struct.unpack("<I", hdr)[0]
        assert n < (1 << 20), n
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            assert chunk, "answer truncated"
            body += chunk
    except ConnectionResetError:
        return None
    return json.loads(body)


def _send(s, payload, fds=(), length=None):
    hdr = struct.pack("<I", len(payload) if length is None else length)
    if fds:
        s.sendmsg([hdr], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("%di" % len(fds), *fds))])
    else:
        s.sendall(hdr)
    if payload:
        s.sendall(payload)


def _request(**over):
    """A raw request as the CLI would send it; its cgroup parent is the
    client's (an unprivileged server's delegated one)."""
    req = {"v": 1, "code": "print('hostile ran')", "code_name": None, "args": [], "inputs": [],
           "values": None, "output_dir": None, "python": "/usr/bin/python3",
           "cgroup_parent": os.environ.get("SANDCELL_CGROUP_PARENT"), "allow_reduced": False,
           "limits": {"wall_sec": 10.0, "cpu_sec": 10.0}}
    req.update(over)
    return {k: v for k, v in req.items() if v is not _DROP}


_DROP = object()


MALFORMED = {
    # name: (payload bytes, announced length or None, with fds, half-close after)
    "garbage-length": (b"\xde\xad\xbe\xef" * 4, 0xefbeadde, True, True),
    "oversized-81MiB": (b"{}", 81 << 20, True, True),
    "truncated-then-close": (b'{"v": 1, "co', 200, True, True),
    "header-only-2-bytes": (None, None, False, True),
    "valid-without-fds": (json.dumps(_request()).encode(), None, False, False),
    "invalid-json": (b'{"v": 1, "code": "x",,}', None, True, False),
    "not-an-object": (b'[1, 2, 3]', None, True, False),
    "trailing-bytes": (json.dumps(_request()).encode() + b" {}", None, True, False),
    "duplicate-key": (b'{"v": 1, "v": 1}', None, True, False),
    "nul-in-json": (b'{"v": 1,\x00 "code": "x"}', None, True, False),
    "unknown-field": (json.dumps(_request(extra=1)).encode(), None, True, False),
    "unknown-limit": (json.dumps(_request(limits={"wall_sec": 1.0, "bogus": 1})).encode(), None, True, False),
    "wrong-version": (json.dumps(_request(v=2)).encode(), None, True, False),
    "missing-code": (json.dumps(_request(code=_DROP)).encode(), None, True, False),
    "code-not-string": (json.dumps(_request(code=5)).encode(), None, True, False),
    "args-not-strings": (json.dumps(_request(args=[1])).encode(), None, True, False),
    "input-relative-path": (json.dumps(_request(inputs=[{"name": "x", "path": "etc/passwd"}])).encode(), None, True, False),
    "input-bad-name": (json.dumps(_request(inputs=[{"name": "../x", "path": "/etc/passwd"}])).encode(), None, True, False),
    "dataset-not-boolean": (json.dumps(_request(inputs=[{"name": "x", "path": "/etc/passwd", "dataset": "yes"}])).encode(), None, True, False),
    "dataset-extra-key": (json.dumps(_request(inputs=[{"name": "x", "path": "/etc/passwd", "dataset": True, "mode": "rw"}])).encode(), None, True, False),
    "dataset-directory": (json.dumps(_request(inputs=[{"name": "x", "path": "/etc", "dataset": True}])).encode(), None, True, False),
    "values-not-object": (json.dumps(_request(values=[1])).encode(), None, True, False),
    "output-relative": (json.dumps(_request(output_dir="out")).encode(), None, True, False),
    "limit-negative": (json.dumps(_request(limits={"memory_bytes": -1})).encode(), None, True, False),
    "limit-string": (json.dumps(_request(limits={"memory_bytes": "1G"})).encode(), None, True, False),
    "wall-nan-like": (json.dumps(_request(limits={"wall_sec": 1e308})).encode(), None, True, False),
    "deep-nesting": (b'{"v": 1, "values": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}", None, True, False),
    "python-mismatch": (json.dumps(_request(python="/bin/sh")).encode(), None, True, False),
    "allow-reduced-string": (json.dumps(_request(allow_reduced="yes")).encode(), None, True, False),
    "empty-frame": (b"", 0, True, False),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_request_gets_clear_answer(server, name):
    """Each hostile request gets a full report refusing it as a usage error
    (exit_code 125, the CLI's for the same mistake, a reason) or a closed
    connection; never a run, a crash or a hang.  The server serves a
    normal run afterwards."""
    srv = server("--slots", "2")
    payload, length, with_fds, half_close = MALFORMED[name]
    r, w = os.pipe()
    s = _connect(srv)
    t0 = time.monotonic()
    try:
        fds = [r, w, w] if with_fds else []
        try:  # the server may answer and close before reading everything
            if payload is None:
                s.sendall(b"\x10\x00")
            else:
                _send(s, payload, fds, length)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        ans = _read_answer(s)
    finally:
        s.close()
        os.close(w)
    took = time.monotonic() - t0
    ran = os.read(r, 4096)
    os.close(r)
    assert b"hostile ran" not in ran
    assert took < 15, took
    if ans is not None:
        check_refusal(ans, "usage-error")
    assert srv.alive(), srv.log_text()
    ok = srv.run("print('fine')")
    assert ok.status == "ok" and ok.out == "fine\n", ok


def test_request_with_extra_fds_is_refused(server):
    """The protocol says exactly three fds (stdin, stdout, stderr)."""
    srv = server("--slots", "2")
    r, w = os.pipe()
    s = _connect(srv)
    try:
        _send(s, json.dumps(_request()).encode(), [r, w, w, w])
        ans = _read_answer(s)
    finally:
        s.close()
        os.close(w)
    ran = os.read(r, 4096)
    os.close(r)
    assert ans is not None and ans["exit_code"] == EXIT_USAGE, ans
    check_refusal(ans, "usage-error")
    assert b"hostile ran" not in ran


def test_idle_and_slow_clients_do_not_wedge_the_server(server):
    """Connections that never send a frame (more than the slots) are
    dropped after the request timeout; the server then serves runs."""
    srv = server("--slots", "2")
    idle = [_connect(srv) for _ in range(4)]
    try:
        t0 = time.monotonic()
        ok = srv.run("print('through')", timeout=60)
        assert ok.status == "ok", ok
        assert time.monotonic() - t0 < 40
    finally:
        for s in idle:
            s.close()


def test_well_formed_raw_request_runs(server):
    """The raw-socket client above is right: a correct request runs."""
    srv = server("--slots", "2")
    r, w = os.pipe()
    devnull = os.open("/dev/null", os.O_RDONLY)
    s = _connect(srv)
    try:
        _send(s, json.dumps(_request()).encode(), [devnull, w, w])
        ans = _read_answer(s)
    finally:
        s.close()
        os.close(w)
        os.close(devnull)
    out = os.read(r, 4096)
    os.close(r)
    assert ans["status"] == "ok" and ans["exit_code"] == 0, ans
    assert out == b"hostile ran\n"


# ------------------------------------------------------------------------ peers

@pytest.mark.skipif(not IS_ROOT, reason="needs root to connect as another uid")
def test_other_uid_is_refused(server):
    """The socket is 0600; even with the file opened up (chmod 0666 on our
    own test server), a peer of another uid gets a refusal, not a run."""
    d = tempfile.mkdtemp(prefix="sandcell-warm-uid-")
    os.chmod(d, 0o755)
    srv = WarmServer(["--slots", "1"], sockdir=d)
    client = r'''
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect": e.errno})); sys.exit(0)
req = %r.encode()
try:  # the server may have answered and closed already
    s.sendmsg([struct.pack("<I", len(req))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
              struct.pack("3i", 0, 1, 2))])
    s.sendall(req)
except OSError:
    pass
data = b""
while True:
    try:
        b = s.recv(65536)
    except OSError:
        break
    if not b:
        break
    data += b
print(json.dumps({"answer": json.loads(data[4:]) if len(data) > 4 else None}))
''' % json.dumps(_request(code="print('other uid ran')"))
    try:
        assert os.stat(srv.sock).st_mode & 0o777 == 0o600
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
               client, srv.sock]
        first = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert json.loads(first.stdout) == {"connect": 13}, first
        os.chmod(srv.sock, 0o666)
        second = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert b"other uid ran" not in second.stdout, second
        ans = json.loads(second.stdout.splitlines()[-1])["answer"]
        assert ans is not None and ans["exit_code"] == EXIT_UNREACHABLE, second
        check_refusal(ans, "unreachable")
        assert "permission denied" in ans["reason"], ans
        assert srv.alive()
        assert srv.run("print('owner')").out == "owner\n"
    finally:
        srv.stop()


# ---------------------------------------------------------------------- respawn

LAYOUT = r'''
import ctypes, json, numpy
libc = ctypes.CDLL(None)
print(json.dumps({"printf": ctypes.cast(libc.printf, ctypes.c_void_p).value,
                  "numpy": id(numpy), "object": id(object),
                  "hash": hash("sandcell"), "ok": int(numpy.arange(4).sum())}))
'''


def test_respawn_gives_a_new_layout(server):
    """ASLR trade-off: every run of one template generation shares the
    template's layout (library addresses, object ids, str hash secret);
    with --respawn-runs 3 the template re-executes itself after 3 runs, so
    runs 4-6 share a new layout and none of the old one.  The server keeps
    its pid and socket and serves throughout."""
    srv = server("--slots", "1", "--respawn-runs", "3")
    gens = []
    for i in range(7):
        r = srv.run(LAYOUT, timeout=120)
        assert r.status == "ok", (i, r)
        gens.append(r.json())
        assert srv.alive()
    first, second = gens[0:3], gens[3:6]
    for key in ("printf", "numpy", "object", "hash"):
        assert len({g[key] for g in first}) == 1, (key, first)
        assert len({g[key] for g in second}) == 1, (key, second)
        assert first[0][key] != second[0][key], (key, first[0], second[0])
    # run 7 is the third generation's first
    assert gens[6]["printf"] != second[0]["printf"]
    assert srv.alive()


def test_respawn_leaves_no_template_directories():
    """Each template generation makes a private HOME in /tmp for its
    caches; none may pile up across respawns or outlive the server."""
    srv = WarmServer(["--slots", "1", "--respawn-runs", "1"])
    try:
        for _ in range(3):
            assert srv.run("pass", timeout=120).status == "ok"
        time.sleep(0.5)
        during = srv.new_template_dirs()
    finally:
        srv.stop()
    after = srv.new_template_dirs()
    assert len(during) <= 1, during
    assert after == [], after


# ---------------------------------------------------------------- spares

def _spares(srv):
    """The server's sandboxes, as (code, init, supervisor) triples: the
    code's process is a child of the template in a pid namespace of its
    own, born in a run cgroup its spare's supervisor named, whose child
    is the sandbox's pid 1 (the init; docs/warm.md, "Isolated spares").
    Idle and busy ones alike.  Only what /proc shows anyone (status and
    cgroup files) is read: an unprivileged server's busy code process is
    not dumpable, so its namespace links cannot be read."""
    depth = len(harness._proc_field(srv.pid, "NSpid") or [])
    found = []
    for code in children(srv.pid):
        if len(harness._proc_field(code, "NSpid") or []) <= depth or proc_state(code) in (None, "Z"):
            continue
        try:
            with open("/proc/%d/cgroup" % code) as f:
                sups = {harness.run_cgroup_supervisor(ln.rstrip("\n").split(":", 2)[2]) for ln in f}
        except OSError:
            continue
        for sup in sups - {None}:
            inits = [p for p in children(sup)
                     if (harness._proc_field(p, "NSpid") or [])[-1:] == ["1"]
                     and len(harness._proc_field(p, "NSpid") or []) > depth]
            found += [(code, init, sup) for init in inits[:1]]
    return found


def _wait_spares(srv, n, seconds=30, other_than=None):
    """The spares' code processes once there are exactly n (and, with
    other_than, once they are not that set any more)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        codes = {c for c, _, _ in _spares(srv)}
        if len(codes) == n and (other_than is None or codes != set(other_than)):
            return codes
        time.sleep(0.02)
    raise AssertionError("spares: %r, wanted %d" % (_spares(srv), n))


def test_spares_serve_requests_and_are_refilled(server):
    """--spares N keeps N sandboxes built ahead of time, each with the
    code's process forked into it: a request is served by one of them (it
    is gone afterwards) and the factory builds a replacement."""
    srv = server("--slots", "2", "--spares", "2")
    before = _wait_spares(srv, 2)
    r = srv.run("import os; print('served', os.getppid())")
    # the code's parent is the template, outside its pid namespace
    assert r.status == "ok" and r.out == "served 0\n", r
    after = _wait_spares(srv, 2, other_than=before)
    assert len(before - after) == 1, (before, after)
    _no_zombie_stays(srv)


def _no_zombie_stays(srv):
    """No child of the template stays a zombie: the last run's code
    process may wait a moment for the template to reap it (its
    supervisor answers as soon as it exited), then it is gone."""
    zombies = [k for k in children(srv.pid) if proc_state(k) == "Z"]
    deadline = time.monotonic() + 10
    while [k for k in zombies if proc_state(k) == "Z"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [k for k in zombies if proc_state(k) == "Z"] == [], zombies


WAIT_FOR_GO = "import sys\nprint('READY', flush=True)\nsys.stdin.readline()\nprint('done')\n"


def test_the_pool_is_refilled_after_the_run_in_flight(server):
    """While a run is the only one in flight, nothing is queued and a
    spare is still ready for the next request, no sandbox is built beside
    it for a second (building one takes CPU from the run; a trivial run
    ends well before): nothing new shows in the first half second after
    the request was sent, though a spare is built in milliseconds.  A
    longer run does not keep the pool short: the replacement is built
    while it still runs."""
    srv = server("--slots", "2", "--spares", "2")
    before = _wait_spares(srv, 2)
    sent = time.monotonic()
    p = subprocess.Popen([BIN, "run", "--server", srv.sock, "-c", WAIT_FOR_GO],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"READY\n"
        while time.monotonic() < sent + 0.5:
            during = {c for c, _, _ in _spares(srv)}
            assert during <= before, (before, during)
            time.sleep(0.02)
        during = _wait_spares(srv, 3)
        assert len(during - before) == 1, (before, during)
        out, err = p.communicate(b"go\n", timeout=60)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 0 and out == b"done\n", (out, err)
    after = _wait_spares(srv, 2, other_than=before)
    assert after <= during, (during, after)


def test_a_short_runs_spare_is_replaced_once_it_is_answered(server):
    """The deferred refill ends with the run's answer (its supervisor gone),
    not at the one-second bound: after a trivial run the replacement is
    ready well before that; and the template keeps no descriptor of the
    runs it served (the channels it watched until their supervisors
    went)."""
    srv = server("--slots", "2", "--spares", "2")
    before = _wait_spares(srv, 2)
    fds = len(os.listdir("/proc/%d/fd" % srv.pid))
    for _ in range(3):
        sent = time.monotonic()
        r = srv.run("pass")
        assert r.status == "ok", r
        after = _wait_spares(srv, 2, other_than=before)
        assert time.monotonic() - sent < 0.8, time.monotonic() - sent
        before = after
    assert len(os.listdir("/proc/%d/fd" % srv.pid)) == fds


def test_a_spares_code_starts_alone_in_its_pid_namespace(server):
    """The spare's opener (pid 2, which holds a copy of the caller's mount
    view for the inputs) is reaped before the init says it is confined, so
    the code's first line sees only the init and itself, with inputs or
    without."""
    srv = server("--slots", "2", "--spares", "2")
    _wait_spares(srv, 2)
    code = ("import json, os\n"
            "print(json.dumps([sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),"
            " os.getpid(), os.getppid()]))\n")
    spares = 0
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data.txt")
        with open(data, "w") as f:
            f.write("x")
        for i in range(24):
            r = srv.run(code, opts=["--input", "data=" + data] if i % 2 else [])
            assert r.status == "ok", r
            pids, me, parent = json.loads(r.out)
            if parent == 0:  # served by a spare: its parent is the template
                spares += 1
                assert pids == [1, me], r.out
    assert spares >= 12, spares


def _fd_links(pid):
    """What pid's descriptors point to (readlink of /proc/PID/fd/*), as far
    as they can still be read."""
    out = []
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for n in names:
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, n)))
        except OSError:
            pass
    return out


def _mnt_fds(pid):
    """The mount namespaces pid holds as descriptors (nsfs links)."""
    return [link for link in _fd_links(pid) if link.startswith("mnt:[")]


def test_a_spares_mount_namespaces_are_held_by_its_supervisor(server):
    """A spare's two mount namespaces (the opener's copy of the caller's
    view, and the sandbox's own, the init's) are torn down only after the
    answer: the spare's supervisor holds both as descriptors from IDLE on,
    so neither the opener's exit nor the init's on the request's path
    frees a mount.  Each supervisor holds exactly those two, no other
    process of the server holds any (not the template, the factory, an
    init or a code process), and that stays so after runs with inputs and
    without."""
    srv = server("--slots", "2", "--spares", "2")
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data.txt")
        with open(data, "w") as f:
            f.write("x")
        for i in range(4):
            _wait_spares(srv, 2)
            spares = _spares(srv)
            sups = {sup for _, _, sup in spares}
            for code, init, sup in spares:
                held = sorted(_mnt_fds(sup))
                sandbox = os.readlink("/proc/%d/ns/mnt" % init)
                assert len(held) == 2 and sandbox in held, (sup, held, sandbox)
                # (an idle code process is confined, not dumpable: only
                # root reads its links)
                if os.geteuid() == 0:
                    assert os.readlink("/proc/%d/ns/mnt" % code) == sandbox
                opener = [h for h in held if h != sandbox]
                others = {os.readlink("/proc/%d/ns/mnt" % p) for p in (srv.pid, sup)}
                assert len(opener) == 1 and opener[0] not in others, (held, others)
            for p in [srv.pid] + descendants(srv.pid):
                if p not in sups:
                    assert _mnt_fds(p) == [], (p, proc_state(p))
            r = srv.run("print(open('/input/data').read())" if i % 2 else "pass",
                        opts=["--input", "data=" + data] if i % 2 else [])
            assert r.status == "ok", r


def test_a_request_a_spare_does_not_run_leaves_it_ready(server):
    """A session (handed to a worker) and a malformed request (refused)
    reach only the spare's supervisor: the same sandboxes stay ready, and
    the next run is served by one of them."""
    srv = server("--slots", "2", "--spares", "2")
    before = _wait_spares(srv, 2)
    p = subprocess.run([BIN, "session", "--server", srv.sock, "--quiet"],
                       input=b'{"op":"run","id":"a","code":"print(1)"}\n', capture_output=True, timeout=120)
    assert p.returncode == 0, p
    s = _connect(srv)
    try:
        _send(s, b"{not json", [])
        ans = _read_answer(s)
    finally:
        s.close()
    assert ans is not None and ans["status"] == "usage-error", ans
    assert _wait_spares(srv, 2) == before
    r = srv.run("import os; print(os.getppid())")
    assert r.status == "ok" and r.out == "0\n", r
    assert len(before - _wait_spares(srv, 2, other_than=before)) == 1


def test_no_spares_forks_on_demand(server):
    srv = server("--slots", "1", "--spares", "0")
    assert _wait_spares(srv, 0) == set()
    r = srv.run("print(6 * 7)")
    assert r.status == "ok" and r.out == "42\n", r
    assert _wait_spares(srv, 0) == set()


# A cell whose copy-on-write faults the pages written in advance take: a
# groupby of the kind the warm-up runs, on other data.
FAULTS_CELL = """
import resource, numpy, pandas
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
df = pandas.DataFrame({"k": numpy.arange(700) % 7, "v": numpy.linspace(0, 1, 700)})
s = df.groupby("k").v.agg(["mean", "max"]).sum().sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _written_ahead(srv):
    """The pages the server's idle spares write in advance, from its log."""
    import re
    m = re.search(r"(\d+) pages written in advance", srv.log_text())
    assert m, srv.log_text()
    return int(m.group(1))


def _private_dirty_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        return sum(int(ln.split()[1]) for ln in f if ln.startswith("Private_Dirty:"))


def _kernel_at_least(major, minor):
    v = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    return v >= (major, minor)


@pytest.mark.skipif(not _kernel_at_least(5, 14), reason="MADV_POPULATE_WRITE is Linux 5.14")
@pytest.mark.skipif(harness.ASAN, reason=harness.ASAN_SKIP["pagemap"])
def test_an_idle_spare_writes_likely_pages_in_advance(server):
    """With --write-ahead, the template learns which of its pages a run is
    likely to write (docs/warm.md, "Copy-on-write in advance"); an idle
    spare's code process writes them before its GO, so a cell of the
    usual kind takes far fewer copy-on-write faults than without (the
    default), and the run's result is the same."""
    if os.geteuid() != 0:
        pytest.skip("an idle code process is confined (not dumpable): only root reads its smaps")
    off = server("--slots", "1", "--spares", "1")
    on = server("--slots", "1", "--spares", "1", "--write-ahead", "16")
    assert _written_ahead(off) == 0
    n = _written_ahead(on)
    assert 256 <= n <= 16 * 256, n
    faults = {}
    for name, srv in (("off", off), ("on", on)):
        code = _wait_spares(srv, 1).pop()
        if name == "on":
            # written in advance = private to the idle code process
            deadline = time.monotonic() + 30
            while _private_dirty_kib(code) < n * 4 * 0.9:
                assert time.monotonic() < deadline, (_private_dirty_kib(code), n)
                time.sleep(0.05)
        r = srv.run(FAULTS_CELL)
        assert r.status == "ok", r
        faults[name] = int(r.out)
    assert faults["on"] * 3 < faults["off"], faults


# The run's own minor faults so far, as its first statement.
MINFLT_CELL = 'print(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[7])'


def _idle_minflt(code, seconds=30):
    """An idle code process's minor faults once its idle work is over:
    asleep (waiting for its GO) and the count still the same 0.1 s later."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        fields = harness._stat_fields(code)
        assert fields, "the idle code process %d is gone" % code
        now = (fields[0], int(fields[7]))
        if now[0] == "S" and now == last:
            return now[1]
        last = now
        time.sleep(0.1)
    raise AssertionError("the idle code process %d never settled: %r" % (code, last))


@pytest.mark.skipif(harness.ASAN, reason=harness.ASAN_SKIP["faults"])
def test_an_idle_spare_rehearses_the_bootstrap(server):
    """An idle spare's code process runs the bootstrap's own steps on an
    empty program before any request (docs/warm.md, "Copy-on-write in
    advance"), so the pages a run's bootstrap writes are copied already:
    from the GO to the code's first statement a run takes about 110
    copy-on-write faults here, where it took about 280 without."""
    srv = server("--slots", "1", "--spares", "1")
    for _ in range(2):
        code = _wait_spares(srv, 1).pop()
        idle = _idle_minflt(code)
        r = srv.run(MINFLT_CELL)
        assert r.status == "ok", r
        assert int(r.out) - idle < 180, (idle, r.out)


PROBE_START = r"""
import json, os, signal, sys
def name(h):
    return str(h) if h in (signal.SIG_DFL, signal.SIG_IGN) else getattr(h, "__qualname__", repr(h))
print(json.dumps({"argv": sys.argv, "path": sys.path, "main": sorted(globals()),
                  "signals": {s.name: name(signal.getsignal(s)) for s in signal.valid_signals()
                              if isinstance(s, signal.Signals)},
                  "fds": sorted(os.listdir("/proc/self/fd")), "cwd": os.getcwd(),
                  "tools": "_sandcell_cell" in sys.modules}, sort_keys=True))
"""


def test_a_rehearsed_spare_starts_its_code_as_a_cold_run_does(server):
    """The rehearsal puts back what it changed: the code of a spare's run
    sees the same argv, sys.path, globals, signal handlers, open fds and
    working directory as a cold run's, and no helper module loaded."""
    srv = server("--slots", "1", "--spares", "1")
    _idle_minflt(_wait_spares(srv, 1).pop())
    warm = srv.run(PROBE_START)
    cold = run_cli(PROBE_START)
    assert warm.status == "ok" and cold.status == "ok", (warm, cold)
    assert warm.json() == cold.json()


def test_a_small_memory_limit_goes_to_a_worker(server):
    """Pages written in advance are charged to the spare's run: a run whose
    memory limit is under four times --write-ahead (16 here) is served by a worker
    (the code's parent is then the sandbox init, pid 1), and one at that
    size by a spare (its parent, the template, is outside: 0)."""
    srv = server("--slots", "1", "--spares", "1", "--write-ahead", "16")
    _wait_spares(srv, 1)
    small = srv.run("import os; print(os.getppid())", opts=["--memory", "20M"])
    assert small.status == "ok" and small.out == "1\n", small
    _wait_spares(srv, 1)
    big = srv.run("import os; print(os.getppid())", opts=["--memory", "64M"])
    assert big.status == "ok" and big.out == "0\n", big


def test_respawn_drops_the_old_generations_spares(server):
    """Spares hold copies of one template generation: a respawn ends them
    (code, init and supervisor; a new layout needs new spares) and leaves
    no zombie behind."""
    srv = server("--slots", "1", "--spares", "2", "--respawn-runs", "1")
    _wait_spares(srv, 2)
    old = {p for t in _spares(srv) for p in t}
    assert len(old) == 6, old
    assert srv.run("pass", timeout=120).status == "ok"
    assert wait_gone(old, seconds=60) == [], "the old generation's spares outlived the respawn"
    _wait_spares(srv, 2)
    new = {p for t in _spares(srv) for p in t}
    assert not old & new, (old, new)
    assert srv.run("pass", timeout=120).status == "ok"


def _cgroup_paths(pid):
    """{hierarchy: path} of a process: "memory", "pids", and "" for v2."""
    with open("/proc/%d/cgroup" % pid) as f:
        return {ln.split(":")[1]: ln.rstrip("\n").split(":", 2)[2] for ln in f}


def test_respawned_spares_keep_the_cgroup_parent(tmp_path):
    """$SANDCELL_CGROUP_PARENT (an unprivileged server's delegated cgroup)
    holds in every template generation: the environment is cleared at
    startup, and a respawned template that forgot it would build its spares
    elsewhere (refused there when unprivileged) and send every run to a
    worker.  Each generation's spares are in run cgroups below the parent."""
    parent = os.environ.get("SANDCELL_CGROUP_PARENT")
    made = []
    if not parent:
        if not IS_ROOT:
            pytest.skip("needs a delegated cgroup parent ($SANDCELL_CGROUP_PARENT) or root")
        parent = "/sandcell-warm-parent-%d" % os.getpid()
        for h in harness.cgroup_mounts():
            os.mkdir(h + parent)
            made.append(h + parent)
    env = dict(os.environ, SANDCELL_CGROUP_PARENT=parent)
    srv = WarmServer(["--slots", "1", "--spares", "2", "--respawn-runs", "1"], env=env)
    try:
        codes = None
        for gen in range(3):
            codes = _wait_spares(srv, 2, other_than=codes)
            for code in codes:
                cg = _cgroup_paths(code)
                held = {h: cg[h] for h in ("memory", "pids", "") if cg.get(h, "/") != "/"}
                assert held and all(v.startswith(parent + "/" + harness.run_cgroup_prefix()) for v in held.values()), \
                    (gen, code, cg, srv.log_text())
            r = harness.run_cli("print('ok')", server=srv.sock, env=env, timeout=120)
            assert r.report["status"] == "ok", r
    finally:
        srv.stop()
        # The spares' supervisors outlive the server briefly: each removes
        # its run cgroups once the spare's processes are gone.
        deadline = time.monotonic() + 30
        for d in made:
            for sub in os.listdir(d):
                while os.path.isdir(os.path.join(d, sub)):
                    try:
                        os.rmdir(os.path.join(d, sub))
                    except FileNotFoundError:
                        break
                    except OSError as e:
                        if e.errno != errno.EBUSY or time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
            os.rmdir(d)


def _socket_holders(path):
    """The pids holding the listening unix socket bound at path."""
    with open("/proc/net/unix") as f:
        inodes = {ln.split()[6] for ln in f.read().splitlines()[1:]
                  if len(ln.split()) >= 8 and ln.split()[7] == path}
    links = {"socket:[%s]" % i for i in inodes}
    return {p for p in harness._all_pids() if links & set(_fd_links(p))}


def test_only_the_template_holds_the_listening_socket(server):
    """Only the template accepts, in every generation: the spare factory,
    the spares' supervisors and inits, their code processes and workers
    hold no descriptor of the listening socket, also after respawns (the
    new template inherits the socket across its exec; the factory it forks
    before its interpreter starts must not keep it)."""
    srv = server("--slots", "1", "--spares", "2", "--respawn-runs", "1")
    for i in range(3):
        _wait_spares(srv, 2)
        assert _socket_holders(srv.sock) == {srv.pid}, (i, _socket_holders(srv.sock), descendants(srv.pid))
        assert srv.run("pass", timeout=120).status == "ok"


def test_runs_across_respawns_all_get_their_answer(server):
    """A connection handed to a spare just before the template re-executes
    is that spare's to answer: its supervisor must not take the factory's
    end closing (the old template's) for "idle, end".  Eight clients, a
    respawn every 10 runs: every run is answered, none is reset."""
    srv = server("--spares", "2", "--respawn-runs", "10")
    left, lock, bad = [160], threading.Lock(), []

    def client() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            p = subprocess.run(srv.cmdline("pass"), stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
            if p.returncode != 0:
                with lock:
                    bad.append((p.returncode, p.stderr[-300:]))

    ts = [threading.Thread(target=client) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert bad == [], bad


@pytest.mark.parametrize("which", ["code", "init", "supervisor"])
def test_a_spare_killed_while_idle_is_replaced(server, which):
    """A spare that dies while it waits (any of its processes killed from
    outside, as an OOM kill or an operator would) goes whole and is
    replaced: no zombie, the next requests are served, and nothing of a
    run is left behind."""
    srv = server("--slots", "2", "--spares", "2")
    _wait_spares(srv, 2)
    spare = _spares(srv)[0]
    victim = spare[("code", "init", "supervisor").index(which)]
    os.kill(victim, signal.SIGKILL)
    assert wait_gone(list(spare)) == [], "the killed spare did not go whole"
    after = _wait_spares(srv, 2, other_than={c for c, _, _ in _spares(srv)} | {spare[0]})
    assert spare[0] not in after, (spare, after)
    for i in range(3):
        r = srv.run("print(%d)" % i)
        assert r.status == "ok" and r.out == "%d\n" % i, r
    _no_zombie_stays(srv)
    assert pids_in_run_cgroups([spare[2]]) == []


NS_NAMES = ("user", "mnt", "pid", "pid_for_children", "net", "ipc", "uts", "cgroup")

NS_OF_RUN = r'''
import json, os
print(json.dumps({n: os.readlink("/proc/self/ns/" + n) for n in %r}))
''' % (NS_NAMES,)


def _ns_links(pid):
    return {n: os.readlink("/proc/%d/ns/%s" % (pid, n)) for n in NS_NAMES}


def test_the_template_never_stays_in_a_sandbox_namespace(server):
    """Every run gets fresh namespaces; the template itself, and what it
    forks that is not a run (the factory, workers), stay in the namespaces
    the template started with (checked after one-shot runs, a run that
    fails, a run killed at its limit, and a session) and share none with
    any run or spare; two spares share none either."""
    srv = server("--slots", "2", "--spares", "2")
    assert srv.run("pass").status == "ok"
    start = _ns_links(srv.pid)
    # Two runs at once (each holds its namespaces for 3 s), so their
    # namespaces must differ (a freed namespace's inode number can come
    # back in a later run).
    pair: list = [None, None]

    def one(i):
        pair[i] = srv.run(NS_OF_RUN + "import time\ntime.sleep(3)\n", timeout=120)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status == "ok" for r in pair), pair
    runs = [json.loads(r.out) for r in pair]
    for n in NS_NAMES:
        assert runs[0][n] != runs[1][n], (n, runs)
    assert srv.run("raise SystemExit(3)").status == "exited"
    assert srv.run("while True: pass", opts=["--wall-time", "1"]).status == "timeout"
    p = subprocess.run([BIN, "session", "--server", srv.sock, "--quiet"], input=json.dumps(
        {"op": "run", "id": "a", "code": NS_OF_RUN}).encode() + b"\n", capture_output=True, timeout=120)
    evs = [json.loads(line) for line in p.stdout.splitlines()]
    text = "".join(e["output"]["text"] for e in evs if e["ev"] == "output")
    runs.append(json.loads(text))
    assert _ns_links(srv.pid) == start
    # The template's other children (the factory, workers) are in its
    # namespaces (as root); each spare's code process is in its sandbox's
    # alone.  An unprivileged template makes a user, mount and UTS
    # namespace for its own view after the factory was forked, and the
    # factory a mount namespace of its own (template.c): there only the
    # sharing with runs and spares is checked.  An idle code process is
    # confined (not dumpable): as a user, its sandbox's links are read
    # through its init.
    _wait_spares(srv, 2)
    spares = _spares(srv)
    codes = [c for c, _, _ in spares]
    others = [_ns_links(k) for k in children(srv.pid) if k not in codes and proc_state(k) not in (None, "Z")]
    assert others, "the factory is a child of the template"
    if os.geteuid() == 0:
        assert all(o == start for o in others), (others, start)
    links = [_ns_links(c if os.geteuid() == 0 else i) for c, i, _ in spares]
    for n in NS_NAMES:
        ours = [start[n]] + [o[n] for o in others]
        assert not set(ours) & {x[n] for x in runs + links}, (n, ours, runs, links)
        assert links[0][n] != links[1][n], (n, links)


SANDBOX_VIEW = r'''
import json, os, re
status = dict(l.split(":", 1) for l in open("/proc/self/status"))
# A mount's line without what differs from run to run: mount and device
# numbers, the overlays' fd numbers, the tmpfs root's size (the code's),
# the owner ids (the run's host uid).
def norm(line):
    f = line.split()
    sep = f.index("-")
    opts = re.sub(r"/proc/self/fd/\d+", "FD", f[sep + 3])
    opts = re.sub(r"(uid|gid)=\d+", r"\1=ID", opts)
    if f[4] == "/":
        opts = re.sub(r"size=\d+k", "size=N", opts)
    return " ".join([f[3], f[4], f[5], f[sep + 1], opts])
print(json.dumps({
    "mounts": [norm(l) for l in open("/proc/self/mountinfo")],
    "status": {k: status[k].strip() for k in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "CapAmb",
                                               "NoNewPrivs", "Seccomp", "Seccomp_filters")},
    "fds": sorted(int(n) for n in os.listdir("/proc/self/fd")),
    "env": sorted(os.environ),
    "cwd": os.getcwd(),
    "hostname": os.uname().nodename,
}))
'''


@pytest.mark.parametrize("with_inputs", [False, True], ids=["plain", "inputs"])
def test_a_spares_run_is_confined_as_a_cold_run(server, tmp_path, with_inputs):
    """The proof, per spare (docs/SECURITY.md, Warm runs): a run served by
    a spare sees the same mount table as a cold run (same mounts, in the
    same order, with the same options: only ids, fd numbers and the root's
    size differ), and runs with the same ids, capabilities (none),
    no_new_privs, seccomp filter count, fds, environment, cwd and host
    name; and it is in a Landlock domain of its own.  With inputs (a file,
    a directory) and a scratch size other than the server's default, which
    a spare's init applies after its pivot: the same table still."""
    srv = server("--slots", "2", "--spares", "2")
    _wait_spares(srv, 2)
    opts: list[str] = []
    if with_inputs:
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "a.txt").write_text("a")
        (tmp_path / "f.txt").write_text("f")
        opts = ["--input", "f=%s" % (tmp_path / "f.txt"), "--input", "d=%s" % (tmp_path / "d"),
                "--disk", "64M"]
    warm = srv.run(SANDBOX_VIEW, opts=opts)
    cold = run_cli(SANDBOX_VIEW, opts=opts, server=None)
    assert warm.status == "ok" and cold.status == "ok", (warm, cold)
    w, c = json.loads(warm.out), json.loads(cold.out)
    assert w == c, (w, c)
    if with_inputs:
        assert any(m.startswith("/f.txt /input/f ro,nosuid,nodev,noexec") for m in w["mounts"]), w
        assert any(m.startswith("/ /input/d ro,nosuid,nodev,noexec") for m in w["mounts"]), w
        assert any(m.startswith("/tmp /tmp ") and "size=65536k" in m for m in w["mounts"]), w
    assert w["status"]["CapEff"] == "0000000000000000" and w["status"]["NoNewPrivs"] == "1"
    assert w["status"]["Seccomp"] == "2", w["status"]
    # Landlock: the init runs as the same uid (1000), so only a signal
    # scope can refuse this; a cold run's code shares the init's domain.
    probe = "import os\ntry:\n    os.kill(1, 0)\n    print(0)\nexcept OSError as e:\n    print(e.errno)\n"
    assert srv.run(probe).out == "1\n"
    assert run_cli(probe, server=None).out == "0\n"


def test_an_idle_spare_is_confined_before_any_request(server):
    """Issue 10's proof per spare, from the host (/proc status, which
    anyone may read): before any request exists, an idle spare's code
    process already runs as the sandbox's uid with no capability,
    no_new_privs and its seccomp filter (Landlock is taken just before
    seccomp, and fails closed: contain.c, sc_code_confine), keeping no fd
    but the server's stdio and its channel; the run it then serves ran as
    that uid."""
    srv = server("--slots", "2", "--spares", "1")
    code = _wait_spares(srv, 1).pop()
    st = {k: harness._proc_field(code, k) for k in
          ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters")}
    zero = ["0000000000000000"]
    assert st["CapInh"] == st["CapPrm"] == st["CapEff"] == st["CapAmb"] == zero, st
    assert st["NoNewPrivs"] == ["1"] and st["Seccomp"] == ["2"] and st["Seccomp_filters"] == ["1"], st
    uid = st["Uid"] or ["?"]
    assert len(set(uid)) == 1 and len(set(st["Gid"] or ["?"])) == 1, st
    if os.geteuid() == 0:
        assert int(uid[0]) != 0, st
        # Its fds (root may list those of a process that is not dumpable).
        assert len(os.listdir("/proc/%d/fd" % code)) <= 4, os.listdir("/proc/%d/fd" % code)
    r = srv.run("print('ran')")
    assert r.status == "ok" and r.out == "ran\n", r
    assert r.report["isolation"]["host_uid"] == int(uid[0]), (r.report["isolation"], st)


@pytest.mark.parametrize("opt,value", [("--spares", "17"), ("--spares", "-1"), ("--spares", "x"),
                                       ("--write-ahead", "257"), ("--write-ahead", "-1"),
                                       ("--write-ahead", "1M")])
def test_bad_spares_value_is_a_usage_error(opt, value, tmp_path):
    p = subprocess.run([BIN, "serve", "--socket", str(tmp_path / "s"), opt, value],
                       capture_output=True, timeout=30)
    assert p.returncode == 125, p
    assert b"bad value" in p.stderr, p.stderr


# ------------------------------------------------------------ cell mode

CELLS = {
    "outputs": """
import sys, sandcell
import matplotlib.pyplot as plt, pandas as pd
print("out"); print("err", file=sys.stderr)
df = pd.DataFrame({"a": [1, 2], "b": [0.5, float("nan")]})
display(df)
plt.plot(df.a); plt.show()
plt.figure(); plt.bar(["x", "y"], [1, 2])
sandcell.result({"sum": df.a.sum(), "b": df.b})
df.a.sum()
""",
    "exception": """
def f(x):
    return 1 / x
print("before")
f(0)
""",
    "timeout": """
import time
def wait():
    while True:
        time.sleep(0.01)
wait()
""",
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_reports_match_cold(server, name):
    """A warm cell gives the cold report: the same outputs (figures byte
    for byte), error, location, result and status."""
    srv = server("--slots", "2")
    opts = ["--cell", "--wall-time", "3" if name == "timeout" else "60"]
    code = textwrap.dedent(CELLS[name])
    warm, cold = srv.run(code, opts=opts), run_cli(code, opts=opts, stdin=None, server=None)
    for k in ("status", "exit_code", "result", "result_error", "cell", "error", "stopped_at",
              "truncations"):
        assert warm.report[k] == cold.report[k], (k, warm.report[k], cold.report[k])
    assert warm.stdout == cold.stdout and warm.stderr == cold.stderr
    outs = warm.report["cell"]["outputs"]
    nb_validate(outs)
    assert outs and warm.report["cell"]["problems"] == []
    want = {"outputs": ["stream", "stream", "display_data", "display_data", "execute_result",
                        "display_data"],
            "exception": ["stream", "error"], "timeout": ["error"]}[name]
    assert [o["output_type"] for o in outs] == want, outs
