"""The session loop inside the sandbox (not a public module).

The bootstrap runs main() for MODE "session".  Commands come on fd 0, one
JSON object per line, written by the supervisor (docs/sessions.md):

    {"op": "run", "id": ID, "code": TEXT}       run a notebook cell
    {"op": "input", "id": ID, "value": TEXT}    the answer to an input request

Each cell runs in the one __main__ namespace as a notebook cell (its last
expression, displays, figures and streams become outputs, as one-shot cell
mode does), with execution counts 1, 2, ... (a cell whose id starts with
"_" is silent: no count, as Jupyter's silent execution); the loop then sends
`D {"id", "execution_count", "status"}` on the channel.  SIGINT (the
host's interrupt) raises KeyboardInterrupt in the running cell; between
cells it is ignored.  input() and getpass() send `I {"id", "prompt",
"password"}` and wait for the host's answer.  Python-level writes to
sys.stdout/sys.stderr become stream outputs only (streamed: at a line end,
or within 0.1 s; a few outputs a second when printed faster); fd-level writes (C extensions) reach the host
through the run's stdout/stderr pipes.

A convenience, not a boundary: the host parses every record strictly.
"""
import builtins
import json
import os
import signal
import sys
import threading
import time

import _sandcell_cell as cell
import _sandcell_io as sio

MYPY = False  # true for mypy only
if MYPY:
    from typing import IO
del MYPY

_FLUSH_SEC = 0.1
_BATCH_SEC = 0.05
_LINE_MAX = 64 << 20


class _Null(object):
    """The real stream under the Tee: Python-level text is sent as stream
    outputs only, so it is not also carried by the fd pipe."""

    def __init__(self, real):
        # type: (object) -> None
        self._real = real

    def write(self, s):
        # type: (str) -> int
        return len(s)

    def flush(self):
        # type: () -> None
        pass

    def __getattr__(self, name):
        # type: (str) -> object
        return getattr(self._real, name)


class _Flusher(threading.Thread):
    """Sends buffered stream text that no line end has sent within
    _FLUSH_SEC (a progress line without a newline, print(end=""))."""

    def __init__(self):
        # type: () -> None
        super().__init__(name="sandcell-flush", daemon=True)
        self.wake = threading.Event()

    def run(self):
        # type: () -> None
        while True:
            self.wake.wait()
            self.wake.clear()
            time.sleep(_FLUSH_SEC)
            try:
                sio._flush_streams()
            except Exception:
                pass


class _StreamTee(cell.Tee):
    """The cell Tee, streamed: a line end (or a carriage return, which
    progress bars rewrite) sends what is buffered, at most every
    _BATCH_SEC; text written faster waits for the flusher (within
    _FLUSH_SEC), so a loop of prints makes a few outputs a second, not
    one per line (a cell's outputs are capped in number)."""
    flusher = None  # type: _Flusher | None
    last = 0.0

    def write(self, s):
        # type: (str) -> int
        n = super().write(s)
        now = time.monotonic()
        if ("\n" in s or "\r" in s) and now - _StreamTee.last >= _BATCH_SEC:
            _StreamTee.last = now
            sio._flush_streams()
        elif s and self.flusher is not None:
            self.flusher.wake.set()
        return n


class _Commands(object):
    def __init__(self, f):
        # type: (IO[bytes]) -> None
        self._f = f

    def next(self):
        # type: () -> dict[str, object] | None
        """The next command; None at the end."""
        while True:
            line = self._f.readline(_LINE_MAX)
            if not line:
                return None
            try:
                cmd = json.loads(line)
            except ValueError:
                continue  # the supervisor writes only valid lines
            if isinstance(cmd, dict):
                return cmd


class Session(object):
    def __init__(self, commands):
        # type: (_Commands) -> None
        self.commands = commands
        self.count = 0
        self.current = ""
        self.in_cell = False
        self.g = sys.modules["__main__"].__dict__

    def on_sigint(self, signum, frame):
        # type: (int, object) -> None
        """The host's interrupt: KeyboardInterrupt in a running cell (also
        while it waits in input()); between cells it is ignored."""
        if self.in_cell:
            raise KeyboardInterrupt

    def ask(self, prompt, password):
        # type: (object, bool) -> str
        """input() and getpass(): the host answers (or the cell is
        stopped); EOFError when the session has no more input."""
        sys.stdout.flush()
        sio._emit_record(b"I", {"id": self.current, "prompt": sio._text(str(prompt)),
                                "password": password})
        while True:
            cmd = self.commands.next()
            if cmd is None:
                raise EOFError("the session's input ended")
            if cmd.get("op") == "input" and cmd.get("id") == self.current:
                value = cmd.get("value")
                return value if isinstance(value, str) else ""

    def run(self, cmd):
        # type: (dict[str, object]) -> None
        cid = cmd.get("id")
        code = cmd.get("code")
        self.current = cid if isinstance(cid, str) else ""
        # An id starting with "_" is a silent cell (Jupyter's silent
        # execution, a client's own set-up): it takes no execution count.
        silent = self.current.startswith("_")
        if not silent:
            self.count += 1
        source = (code if isinstance(code, str) else "").encode("utf-8", "surrogatepass")
        filename = "<silent cell>" if silent else "<cell %d>" % self.count
        status = "ok"
        self.in_cell = True
        try:
            rc = cell.execute(source, filename, self.g, None if silent else self.count)
            status = "ok" if rc == 0 else ("interrupted" if rc == 2 else "error")
        except SystemExit as e:
            # exit() ends the cell; the session goes on (Jupyter's kernel
            # would restart).
            status = "error" if e.code not in (None, 0) else "ok"
        except KeyboardInterrupt:
            # Past the code, in the cell's own epilogue.
            status = "interrupted"
        finally:
            self.in_cell = False
        sio._emit_record(b"D", {"id": self.current, "execution_count": 0 if silent else self.count,
                                "status": status})

    def loop(self):
        # type: () -> None
        while True:
            cmd = self.commands.next()
            if cmd is None:
                return
            if cmd.get("op") == "run":
                self.run(cmd)


def _install(session):
    # type: (Session) -> None
    cell._install()
    flusher = _Flusher()
    flusher.start()
    _StreamTee.flusher = flusher
    for name in ("stdout", "stderr"):
        tee = getattr(sys, name)
        real = tee._real if isinstance(tee, cell.Tee) else tee
        setattr(sys, name, _StreamTee(name, _Null(real)))
    # The code reads no stdin: fd 0 is the session's command pipe.
    import io
    sys.stdin = io.StringIO("")

    def input(prompt=""):
        # type: (object) -> str
        return session.ask(prompt, False)

    def getpass(prompt="Password: ", stream=None):
        # type: (object, object) -> str
        return session.ask(prompt, True)

    builtins.input = input
    import getpass as gp
    gp.getpass = getpass


def main():
    # type: () -> None
    commands = _Commands(os.fdopen(os.dup(0), "rb"))
    try:
        os.close(0)
        os.open(os.devnull, os.O_RDONLY)  # fd 0 again, for the code
    except OSError:
        pass
    session = Session(commands)
    signal.signal(signal.SIGINT, session.on_sigint)
    _install(session)
    session.loop()
