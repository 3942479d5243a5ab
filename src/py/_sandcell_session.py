"""The session loop inside the sandbox (not a public module).

The bootstrap runs main() for MODE "session".  Commands come on fd 0, one
JSON object per line, written by the supervisor (docs/sessions.md):

    {"op": "run", "id": ID, "code": TEXT}       run a notebook cell
    {"op": "input", "id": ID, "value": TEXT}    the answer to an input request
    {"op": "add", "kind": "dataset" or "input", "name": NAME, "path": PATH}
                                                a file the host copied in
    {"op": "add", "kind": "dataset", "name": NAME, "refused": TEXT}
                                                the host's refusal of a request
    {"op": "interrupt", "id": ID}               interrupt cell ID

Each cell runs in the one __main__ namespace as a notebook cell (its last
expression, displays, figures and streams become outputs, as one-shot cell
mode does), with execution counts 1, 2, ... (a cell whose id starts with
"_" is silent: no count, as Jupyter's silent execution); the loop then sends
`D {"id", "execution_count", "status"}` on the channel.  The host's
interrupt names its cell: the command thread sends SIGINT to the main
thread if that cell is running (or the loop does as it starts it), and
the SIGINT raises KeyboardInterrupt in the running cell; an interrupt
for a cell that is over does nothing, however late it comes, and SIGINT
between cells is ignored.  input() and getpass() send `I {"id", "prompt",
"password"}` and wait for the host's answer.  Reading sandcell.datasets[NAME]
for a dataset that is not there sends `Q {"id", "name"}` and waits for the
host's add (or its refusal: KeyError).  Commands are read by a thread of
their own, which applies each add at once (sandcell.inputs and
sandcell.datasets change even while a cell computes) and queues the rest.  Python-level writes to
sys.stdout/sys.stderr become stream outputs only (streamed: at a line end,
or within 0.1 s; a few outputs a second when printed faster); fd-level writes (C extensions) reach the host
through the run's stdout/stderr pipes.

A convenience, not a boundary: the host parses every record strictly.
"""
import builtins
import json
import os
import queue
import signal
import sys
import threading
import time

import _sandcell_cell as cell
import _sandcell_io as sio

MYPY = False  # true for mypy only
if MYPY:
    from typing import IO, Callable
del MYPY

_FLUSH_SEC = 0.1
_BATCH_SEC = 0.05
_LINE_MAX = 64 << 20


def _block_signals():
    # type: () -> None
    """For the loop's own threads: a signal sent to the process then goes
    to the code's threads only, as in a script (one the code blocks in its
    main thread stays pending instead of hitting a thread of ours with its
    default action)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())


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
        _block_signals()
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
        main = sio._hold()  # wake.set() takes a lock an interrupt must not leave held
        try:
            n = super().write(s)
            now = time.monotonic()
            if ("\n" in s or "\r" in s) and now - _StreamTee.last >= _BATCH_SEC:
                _StreamTee.last = now
                sio._flush_streams()
            elif s and self.flusher is not None:
                self.flusher.wake.set()
        finally:
            sio._unhold(main)
        return n


class _Commands(object):
    """The supervisor's commands, read by a thread: adds are applied as
    they come (and answer a dataset request that waits for them), the
    others wait in a queue for the loop (run) or input() (input)."""

    def __init__(self, f):
        # type: (IO[bytes]) -> None
        self._f = f
        self._q = queue.Queue()  # type: queue.Queue[dict[str, object] | None]
        self._cond = threading.Condition()
        self._waiting = set()  # type: set[str]
        self._answers = {}  # type: dict[str, tuple[bool, str]]
        self._ask_lock = threading.Lock()
        self._eof = False
        self.on_interrupt = None  # type: Callable[[object], None] | None

    def start(self):
        # type: () -> None
        threading.Thread(target=self._read, name="sandcell-commands", daemon=True).start()

    def _read(self):
        # type: () -> None
        _block_signals()
        try:
            while True:
                line = self._f.readline(_LINE_MAX)
                if not line:
                    return
                try:
                    cmd = json.loads(line)
                except ValueError:
                    continue  # the supervisor writes only valid lines
                if not isinstance(cmd, dict):
                    continue
                if cmd.get("op") == "add":
                    self._add(cmd)
                elif cmd.get("op") == "interrupt":
                    if self.on_interrupt is not None:
                        self.on_interrupt(cmd.get("id"))
                else:
                    self._q.put(cmd)
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            self._q.put(None)

    def _add(self, cmd):
        # type: (dict[str, object]) -> None
        import sandcell
        kind, name, path = cmd.get("kind"), cmd.get("name"), cmd.get("path")
        if not isinstance(name, str):
            return
        if isinstance(path, str):
            if kind == "dataset":
                sandcell.datasets._add(name, path)
            elif kind == "input":
                sandcell._add_input(name, path)
        with self._cond:
            if kind == "dataset" and name in self._waiting:
                refused = cmd.get("refused")
                self._answers[name] = (isinstance(path, str),
                                       refused if isinstance(refused, str) else "")
                self._cond.notify_all()

    def next(self):
        # type: () -> dict[str, object] | None
        """The next run or input command; None at the end."""
        cmd = self._q.get()
        if cmd is None:
            self._q.put(None)  # every later reader sees the end too
        return cmd

    def ask_dataset(self, cell_id, name):
        # type: (str, str) -> None
        """Asks the host for a dataset and waits for its add: returns once
        it is registered, KeyError with the host's reason if refused."""
        with self._ask_lock:  # one request at a time (the host drops a second)
            with self._cond:
                if self._eof:
                    raise KeyError("no dataset %r (the session's input ended)" % (name,))
                self._waiting.add(name)
            try:
                sys.stdout.flush()
                sio._emit_record(b"Q", {"id": cell_id, "name": name})
                with self._cond:
                    while name not in self._answers and not self._eof:
                        self._cond.wait()
                    answer = self._answers.pop(name, None)
            finally:
                with self._cond:
                    self._waiting.discard(name)
                    self._answers.pop(name, None)
        if answer is None:
            raise KeyError("no dataset %r (the session's input ended)" % (name,))
        if not answer[0]:
            raise KeyError("no dataset %r: the host refused: %s" % (name, answer[1] or "no reason given"))


class Session(object):
    def __init__(self, commands):
        # type: (_Commands) -> None
        self.commands = commands
        self.count = 0
        self.current = ""
        self.in_cell = False
        self.g = sys.modules["__main__"].__dict__
        self.main = threading.get_ident()  # the loop runs in the main thread
        self.wanted = None  # type: object  # the id of the last interrupt asked for

    def interrupt(self, cid):
        # type: (object) -> None
        """The host's interrupt of cell cid (in the command thread): SIGINT
        to the main thread if cid runs now; run() sends it if cid starts
        later.  Signalled from in here, by the loop that knows which cell
        runs, no interrupt meant for a cell can land in the next one."""
        self.wanted = cid
        if self.in_cell and self.current == cid:
            signal.pthread_kill(self.main, signal.SIGINT)

    def on_sigint(self, signum, frame):
        # type: (int, object) -> None
        """The host's interrupt: KeyboardInterrupt in a running cell (also
        while it waits in input()); between cells it is ignored."""
        if self.in_cell:
            sio.interrupt_or_hold(lambda: self.in_cell)

    def ask_dataset(self, name):
        # type: (str) -> None
        """sandcell.datasets[name] for one the session does not have: the
        host is asked, from a running cell only (between cells nobody would
        answer)."""
        if not self.in_cell:
            raise KeyError("no dataset %r (datasets are asked for on demand only while a cell "
                           "runs)" % (name,))
        self.commands.ask_dataset(self.current, name)

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
            if self.wanted == self.current:
                signal.pthread_kill(self.main, signal.SIGINT)
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
        self.done(status)

    def done(self, status):
        # type: (str) -> None
        silent = self.current.startswith("_")
        sio._emit_record(b"D", {"id": self.current, "execution_count": 0 if silent else self.count,
                                "status": status})

    def loop(self):
        # type: () -> None
        while True:
            try:
                cmd = self.commands.next()
                if cmd is None:
                    return
                if cmd.get("op") == "run":
                    self.run(cmd)
            except KeyboardInterrupt:
                # One more interrupt of a storm, landed after the cell's
                # code ended but before run() marked it over (in its own
                # epilogue): the cell was interrupted, and no further
                # interrupt is raised once in_cell is cleared (the first
                # thing here: nothing before it lets a handler run).  Its
                # done record had not gone: it goes now.
                self.in_cell = False
                self.done("interrupted")


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
    import sandcell
    sandcell.datasets._ask = session.ask_dataset


def main():
    # type: () -> None
    commands = _Commands(os.fdopen(os.dup(0), "rb"))
    try:
        os.close(0)
        os.open(os.devnull, os.O_RDONLY)  # fd 0 again, for the code
    except OSError:
        pass
    session = Session(commands)
    commands.on_interrupt = session.interrupt
    signal.signal(signal.SIGINT, session.on_sigint)
    _install(session)
    commands.start()
    try:
        session.loop()
    finally:
        # A late interrupt (one the host sent to the last cell, relayed by
        # the sandbox's init after the cell was over) may still come while
        # the interpreter exits, and Python's exit puts a signal whose
        # Python handler was set back to SIG_DFL: it would kill the
        # session at its close.  Ignored, it stays ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
