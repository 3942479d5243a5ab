"""The attack tier inside sessions (docs/sessions.md, SECURITY.md
"Sessions"): attacks split across cells (state one cell prepares, a later
one uses: threads, daemons, handlers, fds), forged records of the session
protocol, state a session plants for a later or a concurrent one, output
floods while a cell is interrupted, interrupt storms and commands racing a
cell's edges, a cell that takes its own channel away.  Each drives
`sandcell session` as a caller would and checks the host afterwards as
every attack test does (threat model 4.6: the host_postconditions
fixture).  `make session-check` runs the rest of the attack tier through
sessions too (tests/harness.py, session mode)."""
from __future__ import annotations

import fcntl
import json
import os
import queue
import secrets
import subprocess
import threading
import time
from typing import Any, Callable, Iterator

import pytest

import harness

EVENTS = {"ready", "output", "input_request", "done", "dataset_request", "added", "refused", "end"}


class Session:
    """A `sandcell session` whose events a thread reads: every line must
    be one JSON object with a documented "ev" (a forged line would not)."""

    def __init__(self, *opts: str, commands: bytes = b"") -> None:
        self.p = subprocess.Popen([harness.BIN, "session", "--quiet", *opts], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.log: list[dict[str, Any]] = []  # every event, in order
        self.bad: list[bytes] = []           # lines that were not events
        self.end: dict[str, Any] | None = None
        self.n = 0
        threading.Thread(target=self._read, daemon=True).start()
        if commands:
            self.send_raw(commands)
        assert self.event()["ev"] == "ready"

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            try:
                ev = json.loads(line)
                assert isinstance(ev, dict) and ev.get("ev") in EVENTS
            except (ValueError, AssertionError):
                self.bad.append(line)
                continue
            self.q.put(ev)
        self.q.put(None)

    def event(self, timeout: float = 60) -> dict[str, Any]:
        ev = self.q.get(timeout=timeout)
        assert ev is not None, "the event stream ended without an end event: %r" % self.log[-5:]
        self.log.append(ev)
        if ev["ev"] == "end":
            self.end = ev
        return ev

    def until(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 60) -> list[dict[str, Any]]:
        seen, deadline = [], time.monotonic() + timeout
        while True:
            ev = self.event(max(0.1, deadline - time.monotonic()))
            seen.append(ev)
            if pred(ev):
                return seen
            assert ev["ev"] != "end", "the session ended: %r" % ev["reason"]

    def send_raw(self, data: bytes) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def send(self, obj: dict[str, Any]) -> None:
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def start(self, code: str) -> str:
        self.n += 1
        cid = "c%d" % self.n
        self.send({"op": "run", "id": cid, "code": code})
        return cid

    def done(self, cid: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
        """Waits for cid's done: (done, the cell's stream text)."""
        evs = self.until(lambda e: e["ev"] == "done" and e["id"] == cid, timeout)
        return evs[-1], text(evs, cid)

    def run(self, code: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
        return self.done(self.start(code), timeout)

    def finish(self, timeout: float = 60) -> dict[str, Any]:
        """Waits for the end: its report (the run registered for the
        host post-conditions)."""
        while self.end is None:
            self.event(timeout)
        self.p.wait(timeout=timeout)
        assert self.bad == [], self.bad[:5]
        report: dict[str, Any] = self.end["report"]
        harness.register_run(self.p.pid, harness.host_uid_of(report))
        return report

    def close(self, timeout: float = 60) -> dict[str, Any]:
        if self.end is None:
            self.send({"op": "close"})
        return self.finish(timeout)


def text(evs: list[dict[str, Any]], cid: str | None, name: str | None = None) -> str:
    """The stream text of cid's output events among evs."""
    return "".join(e["output"]["text"] for e in evs if e["ev"] == "output" and e["id"] == cid
                   and e["output"]["output_type"] == "stream" and name in (None, e["output"]["name"]))


@pytest.fixture
def session(host_postconditions: None) -> Iterator[Callable[..., Session]]:
    made: list[Session] = []

    def make(*opts: str, **kw: Any) -> Session:
        s = Session(*opts, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        if s.p.poll() is None:
            s.p.kill()
            s.p.wait()


# ------------------------------------------------- attacks split across cells

def test_G1_G3_escape_split_across_cells(session: Callable[..., Session]) -> None:
    """Cells prepare (fds, sockets, a child process, ctypes, a saved
    handle) and later cells use what they kept: nothing reaches the host."""
    s = session("--memory", "512M")
    s.run("import os, socket, ctypes, subprocess\n"
          "libc = ctypes.CDLL(None, use_errno=True)\n"
          "keep = [os.open('/', os.O_PATH), os.open('/proc/self/ns/mnt', os.O_RDONLY)]\n"
          "u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
          "child = subprocess.Popen(['/usr/bin/python3', '-c', 'import time; time.sleep(600)'])")
    _, out = s.run(
        "results = {}\n"
        "def attempt(name, f):\n"
        "    try:\n"
        "        f(); results[name] = 'ALLOWED'\n"
        "    except OSError as e:\n"
        "        results[name] = 'denied'\n"
        "attempt('shadow via /proc/1/root', lambda: open('/proc/%d/root/etc/shadow' % child.pid).read())\n"
        "attempt('host /etc/shadow', lambda: open('/etc/shadow').read())\n"
        "def other_root():\n"
        "    if sorted(os.listdir('/proc/self/fd/%d/../..' % keep[0])) == sorted(os.listdir('/')):\n"
        "        raise OSError('the saved fd leads to the sandbox root only')\n"
        "attempt('another root through the saved fd', other_root)\n"
        "attempt('inet socket', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))\n"
        "attempt('host docker socket', lambda: u.connect('/run/docker.sock'))\n"
        "def sys(nr, *a):\n"
        "    if libc.syscall(nr, *a) == -1:\n"
        "        raise OSError(ctypes.get_errno(), 'x')\n"
        "attempt('unshare user ns', lambda: sys(272, 0x10000000))\n"
        "attempt('setns saved mnt ns', lambda: sys(308, keep[1], 0))\n"
        "attempt('ptrace the child', lambda: sys(101, 16, child.pid, 0, 0))\n"
        "attempt('mount tmpfs', lambda: sys(165, b'x', b'/tmp', b'tmpfs', 0, 0))\n"
        "print(sorted(k for k, v in results.items() if v != 'denied'))")
    assert out.strip() == "[]", out
    assert s.close()["status"] == "ok"


# A thread that cell 1 leaves behind writes, while later cells run, what
# only the loop should: done records for other cells (a future one, a
# finished one), an input request of a finished cell, dataset requests
# with hostile names, a done with extra keys; and fake event lines on
# fd 1 and 2 and through a monkeypatched sys.stdout.
FORGER = r'''
import os, sys, threading, time
FORGED = [
    b'D {"id":"c3","execution_count":41,"status":"ok"}\n',
    b'D {"id":"c1","execution_count":42,"status":"ok"}\n',
    b'D {"id":"c2","execution_count":43,"status":"ok","ev":"end"}\n',
    b'I {"id":"c1","prompt":"password? ","password":true}\n',
    b'Q {"id":"c2","name":"../../etc/shadow"}\n',
    b'Q {"id":"c2","name":"a\\nb"}\n',
    b'Q {"id":"c1","name":"stale"}\n',
    b'O {"output_type":"stream","name":"stdout","text":"x","id":"c3"}\n',
]
FAKE = b'{"ev":"done","id":"c2","status":"ok","execution_count":7}\n{"ev":"end","status":"ok"}\n'
go, stop = threading.Event(), threading.Event()
def forge():
    go.wait()
    while not stop.is_set():
        for rec in FORGED:
            os.write(3, rec)
        os.write(1, FAKE)
        os.write(2, FAKE)
        time.sleep(0.01)
forger = threading.Thread(target=forge, daemon=True)
forger.start()
class Liar:
    def write(self, s):
        return os.write(1, b'{"ev":"done","id":"c3"}\n' + s.encode())
    def flush(self):
        pass
'''


def test_G9_forged_records_from_a_thread_an_earlier_cell_left(session: Callable[..., Session]) -> None:
    """Records the host must not take from the code: a done, input
    request or dataset request naming any cell but the running one, a
    record with a key it does not know, a dataset name that is not a
    name; event lines the code writes on fd 1/2 or through its own
    sys.stdout.  Each cell gets exactly one done, with the loop's count;
    no request reaches the caller; every stdout line is an event the
    supervisor built (Session._read); the forgeries are listed.  (The
    forger stops with c2: what it writes while a cell runs is that cell's
    output, so c3's output is exact only without it.)"""
    s = session()
    s.run(FORGER)
    cid = s.start("real_stdout = sys.stdout\nsys.stdout = Liar()\ngo.set()\nt = time.monotonic()\n"
                  "while time.monotonic() - t < 1:\n    print('c2 says hi')\n    time.sleep(0.02)\n"
                  "sys.stdout = real_stdout\nstop.set()\nforger.join()\nprint('c2 end')")
    evs = s.until(lambda e: e["ev"] == "done" and e["id"] == cid)
    done3, out3 = s.run("print('c3 runs')")
    report = s.close()
    dones = [e for e in s.log if e["ev"] == "done"]
    assert [(d["id"], d["status"], d["execution_count"]) for d in dones] == \
        [("c1", "ok", 1), ("c2", "ok", 2), ("c3", "ok", 3)], dones
    assert out3 == "c3 runs\n"
    assert not [e for e in s.log if e["ev"] in ("input_request", "dataset_request")]
    # c2's last line is c2's: no forged record ended it early (raw fd
    # bytes of the forger may still follow it, attributed to c2).
    assert "c2 end\n" in text(evs, "c2", "stdout")
    # The fake event lines are output text of the cell that ran (fd 1/2
    # and the Liar's writes), never events.
    assert '{"ev":"done","id":"c2"' in text(evs, "c2", "stdout")
    assert '{"ev":"end"' in text(evs, "c2", "stderr")
    assert report["status"] == "ok" and report["session"]["cells"] == 3
    problems = "\n".join(report["session"]["problems"])
    assert "which is not the running cell, was dropped" in problems, problems
    assert "record was rejected" in problems, problems


def test_G9_a_cell_forging_its_own_done_cannot_change_its_count(session: Callable[..., Session]) -> None:
    """A record can end the code's own running cell early (the code is
    that cell), but the execution count is the host's: it counts the
    cells it started, whatever the record says."""
    s = session()
    s.run("x = 1")
    done, _ = s.run("import os\nos.write(3, b'D {\"id\":\"c2\",\"execution_count\":99,\"status\":\"ok\"}\\n')\n"
                    "import time\ntime.sleep(0.2)")
    assert done["execution_count"] == 2, done
    done, out = s.run("print('c3')")
    assert done["execution_count"] == 3 and out == "c3\n", (done, out)
    s.send({"op": "run", "id": "_quiet", "code": "z = 3"})
    done, _ = s.done("_quiet")
    assert done["execution_count"] == 0, done
    done, _ = s.run("print('c5')")
    assert done["execution_count"] == 4, done
    assert s.close()["session"]["cells"] == 5


def test_G8_sigint_ignored_since_an_earlier_cell_ends_at_the_cell_limit(session: Callable[..., Session]) -> None:
    """Cell 1 leaves SIGINT ignored; cell 2 spins: the caller's interrupts
    do nothing, the cell wall limit's interrupt neither, so the kill
    comes 5 s later and ends the session (timeout, cell-wall-time)."""
    s = session("--cell-wall-time", "1")
    s.run("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)")
    t0 = time.monotonic()
    cid = s.start("print('spin', flush=True)\nwhile True: pass")
    s.until(lambda e: e["ev"] == "output" and e["id"] == cid)
    for _ in range(20):
        s.send({"op": "interrupt"})
    report = s.finish()
    elapsed = time.monotonic() - t0
    done = [e for e in s.log if e["ev"] == "done" and e["id"] == cid]
    assert done and done[0]["status"] == "killed", s.log[-3:]
    assert report["status"] == "timeout" and report["session"]["ended_by"] == "cell-wall-time", report
    assert 5.5 <= elapsed < 30, elapsed


# -------------------------------------------- state planted for other sessions

PLANT = r'''
import fcntl, os, socket, subprocess, sys
tok = %(tok)r
for p in ("/tmp/" + tok, "/output/" + tok, "/dev/shm/" + tok, "/tmp/__pycache__/" + tok + ".cpython-311.pyc"):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "w").write("planted")
site = os.path.expanduser("~/.local/lib/python3.11/site-packages")
os.makedirs(site, exist_ok=True)
for n, body in (("sitecustomize.py", "open('/tmp/ran-' + %(tok)r, 'w')"),
                ("usercustomize.py", "open('/tmp/ran-' + %(tok)r, 'w')"),
                (tok + ".pth", "import os; open('/tmp/ran-' + %(tok)r, 'w')")):
    open(os.path.join(site, n), "w").write(body)
os.environ[tok] = "1"
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("\0" + tok)
srv.listen(1)
lock = open(os.__file__, "rb")
fcntl.flock(lock, fcntl.LOCK_EX)
if os.fork() == 0:  # a double-forked daemon named after the token
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", [tok, "600"])
    os._exit(0)
os.wait()
print("planted", flush=True)
'''

LOOK = r'''
import errno, fcntl, json, os, socket, sys
tok = %(tok)r
seen = [p for p in ("/tmp/" + tok, "/output/" + tok, "/dev/shm/" + tok,
                    "/tmp/__pycache__/" + tok + ".cpython-311.pyc", "/tmp/ran-" + tok,
                    os.path.expanduser("~/.local/lib/python3.11/site-packages"))
        if os.path.exists(p)]
seen += [k for k in os.environ if k == tok]
seen += [m for m in ("usercustomize",) if m in sys.modules]  # Debian has a sitecustomize of its own
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    c.connect("\0" + tok)
    seen.append("abstract socket")
except OSError as e:
    if e.errno != errno.ECONNREFUSED:
        seen.append("connect: %%s" %% e)
try:
    fcntl.flock(open(os.__file__, "rb"), fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    seen.append("runtime file locked")
tasks = set(int(t) for t in os.listdir("/proc/self/task"))
seen += ["pid %%s" %% p for p in os.listdir("/proc") if p.isdigit() and int(p) not in tasks | {1}]
print(json.dumps(seen))
'''


def test_G11_state_planted_in_a_session_reaches_no_other(session: Callable[..., Session]) -> None:
    """Session A plants files (/tmp, /output, /dev/shm, $HOME's site
    directory with sitecustomize, usercustomize and a .pth, a
    __pycache__), an environment variable, a listening abstract socket,
    a flock on a runtime file and a daemon.  Session B, while A lives,
    and session C, after A closed, see none of it; neither does the host
    (the lock is on A's own overlay inode: the host takes the same lock)."""
    tok = "sandcell-plant-" + secrets.token_hex(6)
    a = session()
    done, out = a.run(PLANT % {"tok": tok})
    assert done["status"] == "ok" and out == "planted\n", (done, out)
    runtime_os = os.path.join("/usr/lib/python3.11", "os.py")
    with open(runtime_os, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # not A's lock: no BlockingIOError
        fcntl.flock(f, fcntl.LOCK_UN)
    b = session()
    _, seen = b.run(LOOK % {"tok": tok})
    assert json.loads(seen) == [], seen
    assert b.close()["status"] == "ok"
    assert a.close()["status"] == "ok"
    c = session()
    _, seen = c.run(LOOK % {"tok": tok})
    assert json.loads(seen) == [], seen
    assert c.close()["status"] == "ok"
    assert not [p for p in ("/tmp/" + tok, "/dev/shm/" + tok, "/tmp/ran-" + tok) if os.path.exists(p)]
    assert not [p for p in os.listdir("/proc") if p.isdigit() and tok.encode() in _cmdline(p)]
    with open("/proc/net/unix") as f:
        assert ("@" + tok) not in f.read()


def _cmdline(pid: str) -> bytes:
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_G11_concurrent_sessions_are_apart(session: Callable[..., Session]) -> None:
    """Two live sessions: neither sees the other's processes, scratch or
    abstract socket, nor can signal the other's interpreter."""
    tok = "sandcell-apart-" + secrets.token_hex(6)
    a = session()
    _, out = a.run("import os, socket\nsrv = socket.socket(socket.AF_UNIX)\nsrv.bind('\\0' + %r)\n"
                   "srv.listen(1)\nopen('/tmp/' + %r, 'w').write('a')\nprint(os.getpid())" % (tok, tok))
    apid = int(out)
    b = session()
    _, out = b.run("import errno, json, os, socket\nc = socket.socket(socket.AF_UNIX)\n"
                   "seen = [c.connect_ex('\\0' + %r) == 0, os.path.exists('/tmp/' + %r)]\n"
                   "tasks = {int(t) for t in os.listdir('/proc/self/task')} | {1}\n"
                   "seen.append(sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in tasks))\n"
                   "print(json.dumps(seen))" % (tok, tok))
    assert json.loads(out) == [False, False, []], out
    # The same pid number in B is B's own interpreter (both are pid 2):
    # killing "apid" from B can only hit B itself, which is what happens.
    assert apid == 2
    done, _ = a.run("print('a alive')")
    assert done["status"] == "ok"
    assert a.close()["status"] == "ok" and b.close()["status"] == "ok"


# --------------------------------------------- floods, interrupts and races

def test_G7_flood_from_an_earlier_cells_thread_while_interrupted(session: Callable[..., Session]) -> None:
    """Cell 1 leaves a thread that floods stdout, stderr and display
    outputs and a child that floods fd 2; cell 2 spins and is
    interrupted at its first output.  The interrupt lands, the caps hold
    (per cell: outputs and bytes; session: the raw streams), what the
    thread wrote between cells is dropped and counted, and the session
    answers the next cell at once."""
    s = session("--cell-outputs", "40", "--cell-limit", "256K", "--stdout-limit", "1M")
    s.run("import os, subprocess, sys, threading, sandcell\n"
          "subprocess.Popen(['/bin/sh', '-c', 'yes flood-on-fd-2 >&2'])\n"
          "def flood():\n"
          "    while True:\n"
          "        print('o' * 1000)\n"
          "        print('e' * 1000, file=sys.stderr)\n"
          "        sandcell.display({'text/html': '<b>' + 'x' * 5000 + '</b>'}, raw=True)\n"
          "threading.Thread(target=flood, daemon=True).start()")
    time.sleep(0.5)  # the flood runs between cells: none of it is a cell's
    t0 = time.monotonic()
    # Its own line, not the thread's first output: an interrupt that comes
    # before the loop runs the cell is dropped (docs/sessions.md).
    cid = s.start("print('spinning', file=sys.__stdout__, flush=True)\nwhile True: pass")
    evs = s.until(lambda e: e["ev"] == "output" and e["id"] == cid and "spinning" in e["output"].get("text", ""))
    s.send({"op": "interrupt"})
    evs += s.until(lambda e: e["ev"] == "done" and e["id"] == cid)
    assert evs[-1]["status"] == "interrupted", evs[-1]
    assert time.monotonic() - t0 < 20
    mine = [e["output"] for e in evs if e["ev"] == "output" and e["id"] == cid]
    raw = [e["output"] for e in evs if e["ev"] == "output" and e["id"] is None]
    assert len(json.dumps(mine)) < (256 << 10) + (2 << 20) + (64 << 10), len(json.dumps(mine))
    assert sum(len(o.get("text", "")) for o in raw) < 2 << 20
    t1 = time.monotonic()
    # The thread floods this cell too (its outputs are the running cell's):
    # the cell's own word comes as its result, which has a cap of its own.
    done, _ = s.run("sandcell.result('alive')")
    assert done["status"] == "ok" and done["result"] == "alive", done
    assert time.monotonic() - t1 < 10
    report = s.close()
    assert report["status"] == "ok"
    assert report["session"]["outputs_between_cells"] > 0
    assert report["streams"]["stderr"]["truncated"] is True


def test_G9_interrupt_storm_during_output_never_wedges_the_session(session: Callable[..., Session]) -> None:
    """Storms of interrupts at a cell that writes outputs all the time:
    each cell ends interrupted, within seconds, and the next one runs.
    (An interrupt raised inside the loop's record write used to leave
    the channel's lock held: the cell's done never came.)  A storm's
    last interrupt may still be on its way through the sandbox's init
    when the next cell starts and end that one instead (docs/sessions.md,
    interrupts at a cell's edge): such a cell ends interrupted early,
    which is all this test needs of it too."""
    s = session("--cell-wall-time", "30")
    for _ in range(60):
        cid = s.start("import sys\nwhile True:\n    print('x' * 10)\n    sys.stdout.flush()")
        seen: list[dict[str, Any]] = []
        evs = s.until(lambda e: e["id"] == cid and (e["ev"] == "done" or len(seen.append(e) or seen) == 20))
        if evs[-1]["ev"] != "done":
            for _ in range(40):
                s.send({"op": "interrupt"})
        done = evs[-1] if evs[-1]["ev"] == "done" else s.done(cid, timeout=15)[0]
        assert done["status"] == "interrupted", (done, [e for e in s.log if e["ev"] != "output"][-6:])
    assert s.close()["status"] == "ok"


def test_G9_interrupt_racing_the_session_start_keeps_it(session: Callable[..., Session]) -> None:
    """A run and an interrupt sent together as the session starts (the
    interpreter may still be starting when the interrupt comes): the
    session lives and runs the next cell; the interrupt ends the first
    cell at most."""
    for _ in range(3):
        s = session(commands=b'{"op":"run","id":"a","code":"x = 1"}\n{"op":"interrupt"}\n')
        done_a, _ = s.done("a")
        s.send({"op": "run", "id": "b", "code": "print('alive')"})
        done_b, out = s.done("b")
        assert done_a["status"] in ("ok", "interrupted") and done_b["status"] == "ok", s.log
        assert out == "alive\n"
        assert s.close()["status"] == "ok"


def test_G9_interrupts_and_answers_racing_a_cells_edges(session: Callable[..., Session]) -> None:
    """Interrupts between cells are ignored; a cell that swallows a storm
    of them ends by itself and the next cell sees none; an input answer
    with no request is refused and never reaches a later input(); an
    answer raced against an interrupt of the waiting cell is not what the
    next cell's input() gets."""
    s = session()
    for _ in range(100):
        s.send({"op": "interrupt"})
    done, out = s.run("print('between cells: ignored')")
    assert done["status"] == "ok", done
    # The cell takes the interrupts with a handler of its own (a
    # KeyboardInterrupt could land outside any try), then gives SIGINT back.
    cid = s.start("import signal, time\nn = []\nloops = signal.signal(signal.SIGINT, lambda *a: n.append(1))\n"
                  "print('go', flush=True)\nt = time.monotonic()\nwhile time.monotonic() - t < 1:\n"
                  "    time.sleep(0.001)\nsignal.signal(signal.SIGINT, loops)\nprint('swallowed', len(n) > 0)")
    s.until(lambda e: e["ev"] == "output" and e["id"] == cid)
    for _ in range(50):
        s.send({"op": "interrupt"})
    done, out = s.done(cid)
    assert done["status"] == "ok" and "swallowed True" in out, (done, out)
    done, _ = s.run("import time\ntime.sleep(0.5)")
    assert done["status"] == "ok", done  # nothing left pending from the storm
    s.send({"op": "input", "id": "c3", "value": "stale"})
    assert s.until(lambda e: e["ev"] == "refused")[-1]["reason"].startswith("no input request")
    cid = s.start("v = input('first? ')")
    s.until(lambda e: e["ev"] == "input_request" and e["id"] == cid)
    s.send({"op": "interrupt"})
    s.send({"op": "input", "id": cid, "value": "raced"})
    s.done(cid)
    cid = s.start("print('got', input('second? '))")
    s.until(lambda e: e["ev"] == "input_request" and e["id"] == cid)
    s.send({"op": "input", "id": cid, "value": "fresh"})
    done, out = s.done(cid)
    assert out == "got fresh\n", (done, out)
    assert s.close()["status"] == "ok"


def test_G9_interrupt_landing_in_the_interpreters_exit_is_ignored(session: Callable[..., Session]) -> None:
    """An interrupt that reaches the interpreter while it exits at the
    session's close (the sandbox's init relays the host's interrupts, late
    under load) does not kill it: the close stays "ok".  The object's
    finalizer sends it at the point Python has already let go of its
    handlers."""
    s = session()
    # (Its own references: the module's names may be gone by then.)
    done, _ = s.run("import os, signal\nclass Late:\n"
                    "    def __del__(self, kill=os.kill, pid=os.getpid(), sig=signal.SIGINT):\n"
                    "        kill(pid, sig)\nlate = Late()")
    assert done["status"] == "ok", done
    report = s.close()
    assert report["status"] == "ok", report


def test_G9_cell_closing_its_channel_and_stdin(session: Callable[..., Session]) -> None:
    """A cell that puts /dev/null over the loop's command pipe ends the
    loop's input: the session ends once that cell is done, the
    interpreter's own exit, a clear cause.  A cell that closes its
    channel (fd 3) can no longer say it is done: it runs until its cell
    limit, and the session ends there (timeout, cell-wall-time); the
    host never waits longer."""
    s = session()
    done, out = s.run("import os, stat\n"
                      "def fifo(n):\n"
                      "    try:\n        return stat.S_ISFIFO(os.fstat(n).st_mode)\n"
                      "    except OSError:\n        return False\n"
                      "fds = [n for n in range(4, 64) if fifo(n)]\n"
                      "print(fds)\nos.dup2(os.open('/dev/null', os.O_RDONLY), fds[0])")
    assert out == "[4]\n", (done, out)
    # The loop's reader was already waiting in read() on the pipe: the
    # one command that read returns still arrives, then EOF.
    s.run("print('read before the EOF')")
    # The session may have ended already (its CLI gone, the pipe closed):
    # then the command is refused by the pipe, and never runs either.
    # Written unbuffered, so that nothing is left to flush at the end.
    assert s.p.stdin is not None
    try:
        os.write(s.p.stdin.fileno(), b'{"op": "run", "id": "c3", "code": "print(\'never runs\')"}\n')
    except BrokenPipeError:
        pass
    report = s.finish()
    assert report["session"]["ended_by"] == "interpreter-exited", report["session"]
    assert report["status"] == "ok" and report["exit_code"] == 0, report["reason"]
    assert "never runs" not in text(s.log, "c3")

    s = session("--cell-wall-time", "2")
    t0 = time.monotonic()
    cid = s.start("import os\nos.close(3)\nprint('closed')\nimport time\ntime.sleep(600)")
    report = s.finish()
    assert time.monotonic() - t0 < 2 + 5 + 10
    assert [e["status"] for e in s.log if e["ev"] == "done" and e["id"] == cid] == ["killed"]
    assert report["status"] == "timeout" and report["session"]["ended_by"] == "cell-wall-time", report


def test_G9_output_of_a_process_that_outlives_its_cell(session: Callable[..., Session]) -> None:
    """What sandcell guarantees for bytes written after their cell is
    done (docs/sessions.md): a daemon's fd writes are output events of
    the cell running when the host reads them, or of no cell (id null)
    between cells; a thread's Python-level prints between cells are
    dropped and counted; the host never names a finished cell, or one
    not started yet, for them."""
    s = session()
    s.run("import os, sys, threading, time\n"
          "if os.fork() == 0:\n"
          "    os.setsid()\n"
          "    while True:\n"
          "        os.write(1, b'tick\\n')\n"
          "        time.sleep(0.01)\n"
          "def chatter():\n"
          "    while True:\n"
          "        print('thread', flush=True)\n"
          "        time.sleep(0.01)\n"
          "threading.Thread(target=chatter, daemon=True).start()")
    time.sleep(0.5)
    s.run("import time\ntime.sleep(0.5)")
    time.sleep(0.3)
    report = s.close()
    at = {e["id"]: i for i, e in enumerate(s.log) if e["ev"] == "done"}
    for i, e in enumerate(s.log):
        if e["ev"] == "output" and e["id"] is not None:
            # c1's before its done; c2's after c1's done, before its own.
            assert i < at[e["id"]] and (e["id"] == "c1" or i > at["c1"]), (i, e, at)
    nulls = [e["output"]["text"] for e in s.log if e["ev"] == "output" and e["id"] is None]
    assert nulls and set("".join(nulls)) <= set("tick\n"), nulls[:3]
    assert report["session"]["outputs_between_cells"] > 0
    assert "tick" in text(s.log, "c2") and "thread" in text(s.log, "c2")


def test_G9_planted_outbox_directory_is_not_written_through(session: Callable[..., Session],
                                                            tmp_path: Any) -> None:
    """The host's outbox directory for a cell (DIR/SEQ) already taken, by
    a symlink to a victim directory or a directory of someone else's:
    the cell's files are not written through or merged into it; the
    problem is listed, and the files stay in /output for the next cell's
    outbox."""
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    s = session("--output", str(out))
    os.symlink(victim, out / "1")
    (out / "2").mkdir()
    d1, _ = s.run("open('/output/x', 'w').write('pwned')")
    d2, _ = s.run("open('/output/y', 'w').write('pwned')")
    d3, _ = s.run("open('/output/z', 'w').write('ok')")
    report = s.close()
    assert d1["files"] == [] and d2["files"] == [], (d1, d2)
    assert sorted(f["path"] for f in d3["files"]) == ["3/x", "3/y", "3/z"]
    assert os.listdir(victim) == [] and os.listdir(out / "2") == []
    assert sum("cannot make the output directory" in p for p in report["session"]["problems"]) == 2, \
        report["session"]["problems"]
