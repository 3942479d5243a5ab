"""Sessions on the warm server (docs/warm.md, "Sessions"): a session
request starts from the template and runs through the same supervisor as
a cold session; the template counts sessions apart from one-shot slots
(--max-sessions), lists them, and respawns without waiting for them.

Driven with the CLI (`sandcell session --server`, the integration tier's
Session helper) and raw protocol frames; the Python client's side is in
tests/client/test_session.py."""
import json
import os
import socket
import struct
import subprocess
import time

import pytest

from harness import BIN, EXIT_BUSY, EXIT_USAGE, LiveRun, WarmServer, children, proc_state
from integration.test_session_c import Session, texts

LISTING_KEYS = {"id", "pid", "started", "age_sec", "state", "state_sec", "cells", "limits"}
LIMIT_KEYS = {"wall_sec", "cpu_sec", "memory_bytes", "cell_wall_sec", "cell_cpu_sec", "idle_sec"}


@pytest.fixture(scope="module")
def server():
    made = {}

    def get(*opts):
        s = made.get(opts)
        if s is None or not s.alive():
            s = made[opts] = WarmServer(opts)
        return s

    yield get
    for s in made.values():
        s.stop()


@pytest.fixture
def wsession(host_postconditions):
    """wsession(srv, opts...) -> a started warm session (its id in .sid)."""
    made = []

    def make(srv, *opts):
        s = Session(opts=["--server", srv.sock] + list(opts))
        made.append(s)
        first = s.next()
        assert first["ev"] == "session" and len(first["id"]) == 16, first
        s.sid = first["id"]
        assert s.next() == {"ev": "ready"}
        return s

    yield make
    for s in made:
        s.kill()


def listing(srv):
    p = subprocess.run([BIN, "sessions", "--server", srv.sock], capture_output=True, timeout=60)
    assert p.returncode == 0, p
    doc = json.loads(p.stdout)
    for x in doc["sessions"]:
        assert set(x) == LISTING_KEYS and set(x["limits"]) == LIMIT_KEYS, x
    return doc


def out(s, cid, code):
    return texts(s.run(cid, code), cid)


def end_of(s):
    end = s.close()[-1]
    assert end["ev"] == "end", end
    return end


def test_state_carries_and_the_interpreter_is_the_templates(server, wsession):
    srv = server("--slots", "2")
    s = wsession(srv)
    # pandas is in sys.modules before any import: the template's
    # interpreter, not a cold one.
    assert out(s, "c1", "import sys\nprint('pandas' in sys.modules, 'numpy' in sys.modules)\nx = 21") \
        == "True True\n"
    done = s.run("c2", "x * 2")
    res = [e for e in done if e["ev"] == "output" and e["output"]["output_type"] == "execute_result"]
    assert res and res[0]["output"]["data"]["text/plain"] == "42", done
    assert done[-1]["status"] == "ok" and done[-1]["execution_count"] == 2
    # matplotlib goes through sandcell's figure backend, as in a cold session
    fig = s.run("c3", "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()")
    assert any("image/png" in e["output"].get("data", {}) for e in fig if e["ev"] == "output"), fig
    end = end_of(s)
    assert end["status"] == "ok" and s.rc == 0
    assert end["report"]["session"]["cells"] == 3
    assert end["report"]["isolation"]["mode"] == "full"


PROBE = r'''
import json, os
st = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
ns = {n: os.readlink("/proc/self/ns/" + n) for n in ("user", "pid", "mnt", "net", "ipc", "uts", "cgroup")}
print(json.dumps({"seccomp": st["Seccomp"].strip(), "nnp": st["NoNewPrivs"].strip(),
                  "capeff": st["CapEff"].strip(), "capbnd": st["CapBnd"].strip(),
                  "capamb": st["CapAmb"].strip(), "ns": ns, "uid": os.getuid(),
                  "hostname": os.uname().nodename}))
'''


def test_isolation_holds_in_a_warm_session_cell(server, wsession):
    """Every proof a cold session gets: seccomp filter mode, no_new_privs,
    no capability, namespaces of its own; and the report says Landlock
    and seccomp are in force."""
    s = wsession(server("--slots", "2"))
    got = json.loads(out(s, "p", PROBE))
    assert got["seccomp"] == "2" and got["nnp"] == "1", got
    assert int(got["capeff"], 16) == 0 and int(got["capbnd"], 16) == 0 and int(got["capamb"], 16) == 0
    for n, link in got["ns"].items():
        assert link != os.readlink("/proc/self/ns/" + n), (n, link)
    assert got["uid"] == 1000 and got["hostname"] == "sandcell"
    # after a cell that ran: still the same (nothing is relaxed between cells)
    again = json.loads(out(s, "p2", PROBE))
    assert again == got
    iso = end_of(s)["report"]["isolation"]
    assert iso["seccomp"] and iso["no_new_privs"] and iso["capabilities_dropped"]
    assert iso["landlock"]["fs"] and all(iso["namespaces"].values()), iso
    assert iso["not_held"] == []


MARK = r'''
import os, subprocess, sys
secret_{n} = "{n}"
open("/tmp/secret_{n}", "w").write("{n}")
os.makedirs("/dev/shm", exist_ok=True)
open("/dev/shm/secret_{n}", "w").write("{n}")
p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "MARKER_{n}"])
print(os.getpid())
'''

LOOK = r'''
import os
seen = []
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            seen.append(open("/proc/%s/cmdline" % d, "rb").read())
        except OSError:
            pass
print(sorted(k for k in globals() if k.startswith("secret_")),
      [f for f in os.listdir("/tmp") if f.startswith("secret_")],
      [f for f in os.listdir("/dev/shm") if f.startswith("secret_")] if os.path.isdir("/dev/shm") else [],
      any(b"MARKER_{other}" in c for c in seen), any(b"MARKER_{n}" in c for c in seen))
'''


def test_two_concurrent_sessions_cannot_see_each_other(server, wsession):
    srv = server("--slots", "2")
    a, b = wsession(srv), wsession(srv)
    out(a, "m", MARK.format(n="a"))
    out(b, "m", MARK.format(n="b"))
    # each sees its own variable, file, shm file and process, none of the other's
    assert out(a, "l", LOOK.format(n="a", other="b")) == \
        "['secret_a'] ['secret_a'] ['secret_a'] False True\n"
    assert out(b, "l", LOOK.format(n="b", other="a")) == \
        "['secret_b'] ['secret_b'] ['secret_b'] False True\n"
    for s in (a, b):
        end_of(s)


def test_nothing_of_a_finished_session_reaches_a_later_one(server, wsession):
    srv = server("--slots", "1", "--spares", "1")
    a = wsession(srv)
    out(a, "m", MARK.format(n="a"))
    (pid,) = [x["pid"] for x in listing(srv)["sessions"] if x["id"] == a.sid]
    end_of(a)
    # a's session slot is free once its worker is reaped (its end event
    # comes before): until then --max-sessions 1 refuses b as busy.
    deadline = time.monotonic() + 30
    while proc_state(pid) is not None:
        assert time.monotonic() < deadline, "the ended session's worker was not reaped"
        time.sleep(0.05)
    b = wsession(srv)
    assert out(b, "l", LOOK.format(n="b", other="a")) == "[] [] [] False False\n"
    end_of(b)


def test_idle_timeout_ends_a_warm_session_and_the_listing_drops_it(server, wsession):
    srv = server("--slots", "2")
    s = wsession(srv, "--idle-timeout", "1")
    ids = [x["id"] for x in listing(srv)["sessions"]]
    assert s.sid in ids
    end = s.finish(timeout=60)[-1]
    assert end["status"] == "timeout" and end["report"]["session"]["ended_by"] == "idle", end
    assert s.rc == 124
    deadline = time.monotonic() + 30
    while s.sid in [x["id"] for x in listing(srv)["sessions"]]:
        assert time.monotonic() < deadline, "an ended session is still listed"
        time.sleep(0.05)


def test_listing_shows_live_sessions_with_supervisor_counters(server, wsession):
    srv = server("--slots", "2", "--max-sessions", "3")
    a = wsession(srv, "--cell-wall-time", "30", "--memory", "512M")
    b = wsession(srv)
    doc = listing(srv)
    assert doc["max_sessions"] == 3 and doc["slots"] == 2
    by_id = {x["id"]: x for x in doc["sessions"]}
    assert set(by_id) == {a.sid, b.sid}, doc
    assert by_id[a.sid]["limits"]["cell_wall_sec"] == 30.0
    assert by_id[a.sid]["limits"]["memory_bytes"] == 512 << 20
    assert by_id[b.sid]["limits"] == {"wall_sec": 86400.0, "cpu_sec": 3600.0, "memory_bytes": 1 << 30,
                                      "cell_wall_sec": 600.0, "cell_cpu_sec": 600.0, "idle_sec": 3600.0}
    # the pids are the server's workers, alive
    kids = set(children(srv.pid))
    for x in doc["sessions"]:
        assert x["pid"] in kids and proc_state(x["pid"]) not in (None, "Z"), x
        assert x["state"] == "idle" and x["cells"] == 0
    # a running cell shows, and its count
    a.send({"op": "run", "id": "slow", "code": "import time; time.sleep(2)"})
    deadline = time.monotonic() + 30
    while True:
        st = {x["id"]: x for x in listing(srv)["sessions"]}[a.sid]
        if st["state"] == "running":
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.05)
    assert st["cells"] == 1
    a.done("slow")
    out(a, "x", "1")
    deadline = time.monotonic() + 30
    while (st := {x["id"]: x for x in listing(srv)["sessions"]}[a.sid])["cells"] != 2 \
            or st["state"] != "idle":
        assert time.monotonic() < deadline, st
        time.sleep(0.05)
    end_of(a)
    deadline = time.monotonic() + 30
    while [x["id"] for x in listing(srv)["sessions"]] != [b.sid]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    end_of(b)


# A run prints where libc's printf is: one template generation's layout.
LAYOUT = "import ctypes\nprint(ctypes.cast(ctypes.CDLL(None).printf, ctypes.c_void_p).value)"


def test_respawn_neither_waits_for_nor_kills_a_session(server, wsession):
    """With --respawn-runs 2 and a session live: the runs after the limit
    are served (the old template waited for every worker, so they queued
    until --queue-timeout), the template's layout changes, and the session
    keeps its state and its place in the listing."""
    srv = server("--slots", "1", "--respawn-runs", "2", "--queue-timeout", "20")
    s = wsession(srv)           # request 1
    out(s, "a", "x = 20")
    layouts = []
    for i in range(3):          # request 2, then (respawned) 3 and 4
        r = srv.run(LAYOUT, timeout=120)
        assert r.status == "ok", r
        layouts.append(r.out)
    assert layouts[0] != layouts[1] == layouts[2], "the template did not respawn: %r" % layouts
    assert out(s, "b", "print(x + 1)") == "21\n"
    st = {x["id"]: x for x in listing(srv)["sessions"]}
    assert st[s.sid]["cells"] == 2, st
    end = end_of(s)
    assert end["status"] == "ok" and s.rc == 0


def test_max_sessions_refuses_busy_and_leaves_slots_to_runs(server, wsession):
    srv = server("--slots", "1", "--max-sessions", "1")
    a = wsession(srv)
    p = subprocess.run([BIN, "session", "--server", srv.sock], input=b"", capture_output=True, timeout=60)
    assert p.returncode == EXIT_BUSY, p
    end = json.loads(p.stdout.splitlines()[-1])
    assert end["ev"] == "end" and end["status"] == "busy" and "--max-sessions 1" in end["reason"], end
    assert end["report"]["status"] == "busy"
    # the live session holds no one-shot slot
    r = srv.run("print('run')")
    assert r.status == "ok" and r.out == "run\n", r
    end_of(a)


def test_hanging_up_ends_the_session(server, wsession):
    srv = server("--slots", "2")
    s = wsession(srv)
    out(s, "a", "x = 1")
    worker = {x["id"]: x for x in listing(srv)["sessions"]}[s.sid]["pid"]
    s.kill()    # the CLI dies: the connection and the command pipe close
    deadline = time.monotonic() + 30
    while s.sid in [x["id"] for x in listing(srv)["sessions"]]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The listing drops a session once its worker says it ended (table.c,
    # "ended"); the worker's exit follows that message.
    while proc_state(worker) not in (None, "Z"):
        assert time.monotonic() < deadline, proc_state(worker)
        time.sleep(0.05)


# ---- the protocol, raw

def _frame(srv, req, fds=()):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(60)
    c.connect(srv.sock)
    body = json.dumps(req).encode()
    hdr = struct.pack("<I", len(body))
    if fds:
        socket.send_fds(c, [hdr], list(fds))
        c.sendall(body)
    else:
        c.sendall(hdr + body)
    head = c.recv(4, socket.MSG_WAITALL)
    (n,) = struct.unpack("<I", head)
    data = b""
    while len(data) < n:
        chunk = c.recv(n - len(data))
        assert chunk
        data += chunk
    c.close()
    return json.loads(data)


def _session_request(**over):
    req = {"v": 1, "code": "", "code_name": None, "args": [], "inputs": [], "values": None,
           "output_dir": None, "python": "/usr/bin/python3",
           "cgroup_parent": os.environ.get("SANDCELL_CGROUP_PARENT"),
           "allow_reduced": False, "session": True, "limits": {}}
    req.update(over)
    return req


@pytest.mark.parametrize("over,word", [
    ({"code": "print(1)"}, "session takes no code"),
    ({"args": ["x"]}, "session takes no code"),
    ({"code_name": "x.py"}, "session takes no code"),
    ({"session": 1}, "'session' must be a boolean"),
    ({"session": False, "limits": {"idle_sec": 5}}, "unknown limit"),
    ({"limits": {"idle_sec": 0}}, "time limits"),
    ({"limits": {"cell_wall_sec": "5"}}, "time limits"),
    ({"limits": {"idle": 5}}, "unknown limit"),
    ({"detach": True}, "unknown field"),
])
def test_session_requests_are_parsed_strictly(server, over, word, tmp_path):
    srv = server("--slots", "2")
    fds = [os.open(os.devnull, os.O_RDONLY), os.open(os.devnull, os.O_WRONLY), os.open(os.devnull, os.O_WRONLY)]
    try:
        ans = _frame(srv, _session_request(**over), fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert ans["status"] == "usage-error" and ans["exit_code"] == EXIT_USAGE, ans
    assert word in ans["reason"], ans


@pytest.mark.parametrize("req,fds", [
    ({"v": 1, "op": "sessions", "x": 1}, 0),
    ({"v": 2, "op": "sessions"}, 0),
    ({"v": 1, "op": "list"}, 0),
    ({"v": 1, "op": "sessions"}, 3),
])
def test_listing_requests_are_parsed_strictly(server, req, fds):
    srv = server("--slots", "2")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(fds)]
    try:
        ans = _frame(srv, req, held)
    finally:
        for fd in held:
            os.close(fd)
    assert ans["status"] == "usage-error", ans


def test_warm_session_starts_faster_than_a_cold_one(server, wsession):
    """Not a benchmark (bench/sessions.py is): the numbers are printed,
    and only a generous sanity bound is asserted."""
    srv = server("--slots", "2")

    def start(opts):
        # Until a first cell ran: "ready" is the interpreter started, which
        # in a cold session is before the loop has booted.
        t0 = time.monotonic()
        s = Session(opts=opts)
        s.run("c1", "pass")
        t = time.monotonic() - t0
        s.close()
        return t

    warm = min(start(["--server", srv.sock]) for _ in range(3))
    cold = min(start([]) for _ in range(3))
    print("session start until a first cell ran: warm %.1f ms, cold %.1f ms" % (warm * 1e3, cold * 1e3))
    assert warm < 10


def _raw_listing(srv):
    """A listing request sent on a raw connection; its answer is read
    later (_read_listing)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(srv.sock)
    body = b'{"v":1,"op":"sessions"}'
    s.sendall(struct.pack("<I", len(body)) + body)
    return s


def _read_listing(s):
    def exact(n):
        b = b""
        while len(b) < n:
            got = s.recv(n - len(b))
            assert got, "the server hung up"
            b += got
        return b
    (n,) = struct.unpack("<I", exact(4))
    doc = json.loads(exact(n))
    s.close()
    return doc


def _accepted(pid, s):
    """Whether the server (pid) has accepted the connection s: the peer
    of s (ss -x: inode of each end) is one of its open fds."""
    ino = str(os.fstat(s.fileno()).st_ino)
    out = subprocess.run(["ss", "-xaH"], capture_output=True, text=True, check=True).stdout
    peers = [f[-1] for f in (line.split() for line in out.splitlines()) if len(f) >= 8 and f[5] == ino]
    if not peers:
        return False
    want = "socket:[%s]" % peers[0]
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) == want:
                return True
        except OSError:
            pass
    return False


def test_listing_counts_spares_runs_and_queued_clients(server):
    srv = server("--slots", "1", "--spares", "2")
    # At rest: nothing runs or waits.  The spares are built after the
    # server says it is ready (it serves through workers meanwhile); once
    # built, a listing (read by a spare, answered by a worker) leaves them
    # ready.
    deadline = time.monotonic() + 30
    while (doc := listing(srv))["spares"] < 2:
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)
    assert doc["runs"] == 0 and doc["queued"] == 0 and doc["sessions_live"] == 0, doc
    assert doc["spares"] == 2, doc
    assert listing(srv)["spares"] == 2
    a = LiveRun("print('up', flush=True); import sys; sys.stdin.read()", server=srv.sock)
    try:
        assert a.first_line == "up\n", a.first_line
        # The one slot is a's: the listing waits in the queue, and so does
        # b behind it (connected after it: the backlog is FIFO).
        lst = _raw_listing(srv)
        b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        b.connect(srv.sock)
        deadline = time.monotonic() + 30
        while not _accepted(srv.pid, b):
            assert time.monotonic() < deadline, "the server never accepted the second client"
            time.sleep(0.02)
    finally:
        run = a.finish()
    assert run.rc == 0, run
    # a ended: the listing took the slot, b still waits.
    doc = _read_listing(lst)
    assert doc["runs"] == 0 and doc["queued"] == 1 and doc["sessions_live"] == 0, doc
    b.close()


def test_listing_counts_a_run_in_flight(server, wsession):
    srv = server("--slots", "2", "--max-sessions", "3")
    s = wsession(srv)
    a = LiveRun("print('up', flush=True); import sys; sys.stdin.read()", server=srv.sock)
    try:
        doc = listing(srv)
    finally:
        a.finish()
    assert doc["runs"] == 1 and doc["queued"] == 0, doc
    assert doc["sessions_live"] == 1 == len(doc["sessions"]) and doc["sessions"][0]["id"] == s.sid, doc
    assert 0 <= doc["spares"] <= 2, doc
