"""The attack tier inside sessions (docs/sessions.md, SECURITY.md
"Sessions"): an escape split across cells, state a session plants for a
later one, an output flood while the cell is interrupted.  Each drives
`sandcell session` as a caller would and checks the host afterwards as
every attack test does (threat model 4.6)."""
from __future__ import annotations

import json
import subprocess
from typing import Any, Callable

import harness

RUNS: list[tuple[int, int | None]] = []


class Session:
    def __init__(self, *opts: str) -> None:
        self.p = subprocess.Popen([harness.BIN, "session", "--quiet", *opts], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.n = 0
        self.end: dict[str, Any] | None = None
        assert self.event()["ev"] == "ready"

    def event(self) -> dict[str, Any]:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        assert line, "the session's event stream ended without an end event"
        ev: dict[str, Any] = json.loads(line)
        if ev["ev"] == "end":
            self.end = ev
        return ev

    def send(self, obj: dict[str, Any]) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(json.dumps(obj).encode() + b"\n")
        self.p.stdin.flush()

    def run(self, code: str, on_output: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], str]:
        self.n += 1
        cid = "c%d" % self.n
        self.send({"op": "run", "id": cid, "code": code})
        text = []
        while True:
            ev = self.event()
            if ev["ev"] == "output" and ev["id"] == cid:
                if on_output:
                    on_output(ev)
                out = ev["output"]
                text.append(out.get("text") or out.get("data", {}).get("text/plain", ""))
            elif ev["ev"] == "done" and ev["id"] == cid:
                return ev, "".join(text)
            elif ev["ev"] == "end":
                raise AssertionError("the session ended: %r" % ev.get("reason"))

    def close(self) -> dict[str, Any]:
        if self.end is None:
            self.send({"op": "close"})
            while self.end is None:
                self.event()
        self.p.wait(timeout=60)
        report = self.end["report"]
        RUNS.append((self.p.pid, harness.host_uid_of(report)))
        return report


def test_escape_split_across_cells() -> None:
    """Cells prepare (fds, sockets, a child process, ctypes, a saved
    handle) and later cells use what they kept: nothing reaches the host."""
    before = harness.host_state()
    s = Session("--memory", "512M")
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
    rep = s.close()
    assert rep["status"] == "ok"
    harness.check_runs_clean(before, RUNS[-1:])


def test_a_session_leaves_nothing_for_a_later_one() -> None:
    """A cell plants files, shared memory, a double-forked daemon and an
    environment change; after close, a new session sees none of it and
    the host holds none of it."""
    before = harness.host_state()
    a = Session()
    a.run("import os, subprocess\n"
          "open('/tmp/planted', 'w').write('x')\n"
          "open('/dev/shm/planted', 'w').write('x')\n"
          "os.environ['PLANTED'] = '1'\n"
          "subprocess.Popen(['/bin/sh', '-c', '(sleep 600 &) ; exit 0'])")
    a.close()
    harness.check_runs_clean(before, RUNS[-1:])
    b = Session()
    _, out = b.run("import os\n"
                   "print(os.path.exists('/tmp/planted'), os.path.exists('/dev/shm/planted'),\n"
                   "      'PLANTED' in os.environ,\n"
                   "      sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    b.close()
    assert out.strip() == "False False False [1, 2]", out
    harness.check_runs_clean(before, RUNS[-1:])


def test_flood_while_interrupted_keeps_the_session() -> None:
    """A cell floods its output from the interpreter and from a child
    process writing to fd 1 while the host interrupts it: the events stay
    well-formed and capped, the cell ends interrupted, the next cell runs."""
    before = harness.host_state()
    s = Session("--cell-limit", "1M", "--stdout-limit", "1M")
    sent = []

    def interrupt_once(ev: dict[str, Any]) -> None:
        if not sent:
            sent.append(1)
            s.send({"op": "interrupt"})

    done, out = s.run("import subprocess\n"
                      "subprocess.Popen(['/bin/sh', '-c', 'yes flood'])\n"
                      "while True:\n"
                      "    print('x' * 1000)", on_output=interrupt_once)
    assert done["status"] == "interrupted", done
    assert len(out) < 4 << 20
    done, out = s.run("print('alive')")
    assert done["status"] == "ok" and "alive" in out
    rep = s.close()
    assert rep["status"] == "ok"
    harness.check_runs_clean(before, RUNS[-1:])
