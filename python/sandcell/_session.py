"""``sandcell.Session``: one long-lived sandbox, cells sent one by one.

    with sandcell.Session(limits={"memory": "1G"}) as s:
        s.run("import pandas as pd; df = pd.DataFrame({'a': [1, 2]})")
        r = s.run("df.a.sum()", on_output=print)      # outputs as they come
        r.outputs, r.status, r.execution_count, r.error

A session is a ``sandcell session`` process (docs/sessions.md), or, with
``server=``, a worker of a warm server (docs/warm.md): the commands go to
its stdin and its events come back on its stdout, one JSON object per
line.  The events are the supervisor's, re-serialized from what
it parsed; they are still checked here (sizes, types) before use.  Cells
run one at a time; ``run`` from several threads waits its turn.
"""
from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar

from ._common import new_workdir, read_answer
from ._datasets import datasets_in, datasets_out
from ._errors import BadRequest, Busy, Error, ProtocolError, SandboxError, Unreachable
from ._links import ConnLink, ProcLink
from ._locate import find_cli
from ._report import CodeError, Report
from ._request import PathLike, make_spec
from ._result import OutputFile, TempDir
from ._systemd import decide, host_facts, scope_argv
from ._warm import build_request

__all__ = ["Session", "CellResult", "SessionEnded", "CellRun", "split_session_limits"]

#: One event line from the CLI (an output is capped at 32 MiB by the
#: supervisor; a line is a little more with its JSON wrapping).
EVENT_MAX = 64 << 20
_CLOSE_GRACE = 30.0
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")

_SESSION_LIMITS = {"cell_wall_time": "--cell-wall-time", "cell_cpu_time": "--cell-cpu-time",
                   "idle_timeout": "--idle-timeout"}
# Their keys in a warm server's request (docs/warm.md).
_REQUEST_KEYS = {"cell_wall_time": "cell_wall_sec", "cell_cpu_time": "cell_cpu_sec",
                 "idle_timeout": "idle_sec"}


class SessionEnded(Error):
    """The session is over (closed, idle, a limit, the sandbox died);
    ``report`` says why."""


@dataclass
class CellResult:
    """One cell of a session.  ``status``: "ok", "error", "interrupted",
    or "killed" (the session ended during the cell); ``outputs``: nbformat
    v4 outputs in order, an ``error`` output last after an exception;
    ``error``: the exception (ename, evalue, traceback); ``value``: what
    the cell passed to sandcell.result(); ``files`` and ``datasets``:
    what it left in /output, collected after the cell (in the session's
    private directory, removed by ``Session.close()``, unless the session
    has an ``output_dir``)."""
    id: str
    status: str
    execution_count: int
    outputs: List[Dict[str, Any]]
    error: Optional[CodeError]
    value: object
    files: Tuple[OutputFile, ...]
    datasets: Dict[str, Any]
    dataset_errors: Dict[str, str]
    wall_sec: Optional[float]
    cpu_sec: Optional[float]
    event: Mapping[str, object] = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _check_event(line: bytes) -> Dict[str, Any]:
    try:
        ev = json.loads(line)
    except ValueError as e:
        raise ProtocolError("session: an event is not JSON: %s" % e) from None
    if not isinstance(ev, dict) or not isinstance(ev.get("ev"), str):
        raise ProtocolError("session: an event is not an object with 'ev'")
    return ev


_H = TypeVar("_H", bound="_CellHost")


def split_session_limits(limits: Optional[Mapping[str, object]]) -> "tuple[Dict[str, object], Dict[str, float]]":
    """(the run limits, the session-only ones: cell_wall_time, cell_cpu_time,
    idle_timeout as positive seconds)."""
    lim = dict(limits or {})
    extra: Dict[str, float] = {}
    for key in _SESSION_LIMITS:
        if key in lim:
            v = lim.pop(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise BadRequest("limits: %s must be a positive number of seconds" % key)
            extra[key] = float(v)
    return lim, extra


class _CellHost:
    """What a local :class:`Session` and a remote one (sandcell-http,
    ``_remote_session.RemoteSession``) share: cells one at a time, their
    ids, the dataset callback, adds, interrupt.  A subclass provides
    ``_send`` (a session command), ``_next`` (the next event), ``_add``
    and ``close``, and sets ``output_dir`` and ``_tmp`` (a private
    directory: DataFrames sent with an add are written there)."""

    output_dir: str
    _tmp: TempDir

    def _init_host(self, on_dataset_request: Optional[Callable[[str], Any]]) -> None:
        self._lock = threading.Lock()
        self._ids = 0
        self._ended: Optional[Dict[str, Any]] = None
        self.report: Optional[Report] = None
        self._on_dataset_request = on_dataset_request
        self._adds = 0
        # Host copies of DataFrames sent with add, removed once answered.
        self._add_files: Dict[Tuple[str, str], str] = {}
        # A cell given up at its timeout= (interrupted, its done not read yet).
        self._abandoned: Optional[str] = None

    def _send(self, obj: Mapping[str, object]) -> None:
        raise NotImplementedError

    def _next(self, timeout: Optional[float]) -> Dict[str, Any]:
        raise NotImplementedError

    def _add(self, kind: str, name: str, value: Any) -> None:
        raise NotImplementedError

    def close(self) -> Optional[Report]:
        raise NotImplementedError

    # ---- public
    @property
    def alive(self) -> bool:
        return self._ended is None

    @property
    def ended_reason(self) -> str:
        if self._ended is None:
            return ""
        return "%s: %s" % (self._ended.get("status"), self._ended.get("reason", ""))

    def stream(self, code: str, *, on_input: Optional[Callable[[str, bool], str]] = None,
               timeout: Optional[float] = None, silent: bool = False) -> "CellRun":
        """Starts a cell and returns its :class:`CellRun`: iterate over it
        for the outputs as they come, then ``.result()``.  A ``silent``
        cell takes no execution count (Jupyter's silent execution)."""
        if not isinstance(code, str):
            raise BadRequest("code must be a str")
        self._take()
        try:
            self._ids += 1
            cid = ("_s%d" if silent else "c%d") % self._ids
            self._send({"op": "run", "id": cid, "code": code})
        except BaseException:
            self._lock.release()
            raise
        return CellRun(self, cid, on_input, timeout)

    def run(self, code: str, *, on_output: Optional[Callable[[Dict[str, Any]], None]] = None,
            on_input: Optional[Callable[[str, bool], str]] = None,
            timeout: Optional[float] = None, silent: bool = False) -> CellResult:
        """Runs one cell and returns its :class:`CellResult`.
        ``on_output(output)`` is called for each output as it comes;
        ``on_input(prompt, password)`` answers input() and getpass()
        (without it they read an empty line).  Ctrl-C (KeyboardInterrupt)
        interrupts the cell and waits for it to stop."""
        cr = self.stream(code, on_input=on_input, timeout=timeout, silent=silent)
        try:
            for out in cr:
                if on_output is not None:
                    on_output(out)
        except KeyboardInterrupt:
            self.interrupt()
            for _ in cr:
                pass
        return cr.result()

    def _take(self) -> None:
        """Takes the session for a cell or an add (the lock, released by
        the cell's end or by the add).  A cell given up at its timeout= is
        still running, interrupted: its events are read to its done first,
        or the session would refuse the next cell."""
        self._lock.acquire()
        try:
            cid, self._abandoned = self._abandoned, None
            while cid is not None and self._ended is None:
                ev = self._next(None)
                kind, mine = ev.get("ev"), ev.get("id") == cid
                if kind == "done" and mine:
                    break
                if kind == "input_request" and mine:
                    self._send({"op": "input", "id": cid, "value": ""})
                elif kind == "dataset_request" and mine:
                    self._send({"op": "add", "kind": "dataset", "name": str(ev.get("name")),
                                "refused": "the cell was given up (timeout)"})
                elif kind == "added" or (kind == "refused" and "name" in ev):
                    self._add_settled(ev)
        except BaseException:
            self._lock.release()
            raise

    # ---- adding inputs and datasets
    def _add_path(self, kind: str, name: str, value: Any) -> str:
        """The host path to send for an add: a DataFrame written as an
        archive in the session's private directory, a path as given."""
        # Checked here too: the name becomes part of a host file name.
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
            raise BadRequest("%s name %r: letters, digits, '.', '_', '-', at most 128 bytes, "
                             "not starting with '.' or '-'" % (kind, name))
        if isinstance(value, (str, os.PathLike)):
            p = os.fspath(value)
            if not isinstance(p, str) or not os.path.isfile(p):
                raise BadRequest("%s %r: %r is not a file" % (kind, name, value))
            return os.path.realpath(p)
        if kind != "dataset":
            raise BadRequest("input %r: a path, not %s" % (name, type(value).__name__))
        import importlib
        frames: Any = importlib.import_module(__package__ + ".frames")
        d = os.path.join(self._tmp.path, "added")
        os.makedirs(d, mode=0o700, exist_ok=True)
        self._adds += 1
        path = os.path.join(d, "%d-%s.scf" % (self._adds, name))
        try:
            frames.dump(value, path)
        except (TypeError, ValueError) as e:
            raise BadRequest("dataset %r: %s" % (name, e)) from None
        self._add_files[(kind, name)] = path
        return path

    def _add_settled(self, ev: Mapping[str, Any]) -> None:
        """An added or refused event of an add: its host copy goes."""
        path = self._add_files.pop((str(ev.get("kind")), str(ev.get("name"))), None)
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass

    def add_dataset(self, name: str, df_or_path: Any) -> None:
        """Hands a dataset to the session (a DataFrame, or the path of a
        frame archive): ``sandcell.datasets[name]`` in the next cells,
        replacing one of that name.  Waits for a running cell to end (do
        not call it from that cell's callbacks: ``on_dataset_request``
        answers a cell that asks).  BadRequest if the session refuses it
        (a bad name, over the disk limit...)."""
        self._add("dataset", name, df_or_path)

    def add_input(self, name: str, path: PathLike) -> None:
        """Copies a host file into the session: ``sandcell.inputs[name]``
        (a path under /tmp/.sandcell/inputs/) in the next cells."""
        self._add("input", name, path)

    def _answer_request(self, name: str) -> None:
        """A cell asked for a dataset: the callback's answer, sent as an add
        (its added/refused event is read by the cell's iteration)."""
        why = ""
        path = None
        if self._on_dataset_request is None:
            why = "the host has no on_dataset_request callback"
        else:
            try:
                value = self._on_dataset_request(name)
                if value is None:
                    why = "the host has no dataset %r" % (name,)
                else:
                    path = self._add_path("dataset", name, value)
            except Exception as e:   # the cell gets the reason, the host goes on
                why = "the host's callback failed: %s: %s" % (type(e).__name__, e)
        if path is not None:
            self._send({"op": "add", "kind": "dataset", "name": name, "path": path})
        else:
            self._send({"op": "add", "kind": "dataset", "name": name, "refused": why[:4000]})

    def interrupt(self) -> None:
        """KeyboardInterrupt in the running cell (nothing if none runs)."""
        if self._ended is None:
            try:
                self._send({"op": "interrupt"})
            except SessionEnded:
                pass

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



class Session(_CellHost):
    """A sandboxed interpreter whose state lasts from cell to cell.

    The arguments are :func:`sandcell.run`'s (``inputs``, ``datasets``,
    ``values``, ``limits``, ``output_dir``, ``python``, ``cgroup_parent``,
    ``allow_reduced``, ``binary``), and ``server``: the socket of a warm
    server (``sandcell serve``) to start the session from its template
    instead of cold (then ``python`` must be the server's; ``id`` is the
    session's id in the server's listing).  ``limits`` also takes
    ``cell_wall_time``, ``cell_cpu_time`` and ``idle_timeout`` (seconds),
    and its ``wall_time``/``cpu_time`` are the whole session's.

    ``on_dataset_request(name)`` answers a cell that reads
    ``sandcell.datasets[name]`` for a dataset the session does not have:
    it returns a DataFrame, the path of a frame archive, or None to refuse
    (the cell gets a KeyError; an exception in the callback refuses too,
    with its message).  It is called on the thread that runs the cell."""

    def __init__(self, *, inputs: Optional[Mapping[str, PathLike]] = None,
                 datasets: Optional[Mapping[str, Any]] = None,
                 values: Optional[Mapping[str, object]] = None,
                 limits: Optional[Mapping[str, object]] = None,
                 output_dir: Optional[PathLike] = None, python: Optional[str] = None,
                 cgroup_parent: Optional[str] = None, allow_reduced: bool = False,
                 binary: Optional[str] = None,
                 on_dataset_request: Optional[Callable[[str], Any]] = None,
                 server: Optional[PathLike] = None, _server_cgroup: Optional[str] = None) -> None:
        lim, secs = split_session_limits(limits)
        extra: List[str] = []
        session_limits: Dict[str, float] = {}
        for key, v in secs.items():
            extra += [_SESSION_LIMITS[key], repr(v)]
            session_limits[_REQUEST_KEYS[key]] = v
        spec = make_spec("", inputs=inputs, values=values, limits=lim, output_dir=output_dir,
                         python=python, cgroup_parent=cgroup_parent,
                         allow_reduced=allow_reduced, datasets=datasets)
        self._tmp = new_workdir()
        work = self._tmp.path
        self.output_dir = spec.output_dir or os.path.join(work, "output")
        self._own_output = spec.output_dir is None
        self._report_path = os.path.join(work, "report.json")
        self._events: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self._init_host(on_dataset_request)
        #: The session's id on a warm server (``sandcell sessions`` lists
        #: it); None for a cold session.
        self.id: Optional[str] = None
        self.server = os.path.abspath(os.fspath(server)) if server is not None else None
        self._stderr: Optional[IO[bytes]] = None
        try:
            ds = datasets_in(spec.datasets, work)
            if self.server is not None:
                req = build_request(spec, self.output_dir, ds, _server_cgroup)
                req.update(code="", code_name=None, cell=True, session=True)
                lims = dict(spec.request_limits)
                lims.update(session_limits)
                req["limits"] = lims
                self._link: Any = ConnLink(self.server, req, os.path.join(work, "stderr"))
            else:
                self._stderr = open(os.path.join(work, "stderr"), "wb")
                self._link = ProcLink(self._cold_argv(spec, ds, extra, binary), work, self._stderr)
        except BaseException:
            if self._stderr is not None:
                self._stderr.close()
            self._tmp.remove()
            raise
        self._reader = threading.Thread(target=self._read, name="sandcell-session", daemon=True)
        self._reader.start()
        first = self._next(None)
        if first.get("ev") == "session" and self.server is not None:
            sid = first.get("id")
            self.id = sid if isinstance(sid, str) else None
            first = self._next(None)
        if first.get("ev") != "ready":
            self._fail_start(first)

    def _cold_argv(self, spec: Any, ds: List[Tuple[str, str]], extra: List[str],
                   binary: Optional[str]) -> List[str]:
        cli = find_cli(binary)
        work = self._tmp.path
        argv = [cli, "session", "--quiet", "--report", self._report_path,
                "--output", self.output_dir]
        for name, path in spec.inputs:
            argv += ["--input", "%s=%s" % (name, path)]
        for name, path in ds:
            argv += ["--dataset", "%s=%s" % (name, path)]
        if spec.values_json is not None:
            vpath = os.path.join(work, "values.json")
            with open(vpath, "w", encoding="utf-8") as f:
                f.write(spec.values_json)
            argv += ["--values", vpath]
        argv += spec.cli_limits + extra
        if spec.python:
            argv += ["--python", spec.python]
        if spec.allow_reduced:
            argv.append("--allow-reduced")
        facts = host_facts(spec.cgroup_parent, os.environ)
        plan = decide(facts)
        if spec.cgroup_parent:
            argv[2:2] = ["--cgroup-parent", spec.cgroup_parent]
        elif plan.action == "parent" and plan.cgroup_parent:
            argv[2:2] = ["--cgroup-parent", plan.cgroup_parent]
        elif plan.action == "scope" and facts.systemd_run:
            argv = scope_argv(facts.systemd_run, argv)
        return argv

    # ---- events
    def _read(self) -> None:
        try:
            while True:
                line = self._link.stdout.readline(EVENT_MAX + 1)
                if not line:
                    break
                if len(line) > EVENT_MAX:
                    self._events.put({"ev": "_bad", "why": "an event over %d bytes" % EVENT_MAX})
                    break
                try:
                    self._events.put(_check_event(line))
                except ProtocolError as e:
                    self._events.put({"ev": "_bad", "why": str(e)})
                    break
        finally:
            self._events.put(None)

    def _next(self, timeout: Optional[float]) -> Dict[str, Any]:
        try:
            ev = self._events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no event from the session within %s s" % timeout) from None
        if ev is None:
            self._events.put(None)   # every later reader sees the end too
            return self._finish({"ev": "end", "status": "sandbox-error",
                                 "reason": "the session process ended without saying why"})
        if ev["ev"] == "_bad":
            self._kill()
            raise ProtocolError("session: " + ev["why"])
        if ev["ev"] == "end":
            return self._finish(ev)
        return ev

    def _finish(self, ev: Dict[str, Any]) -> Dict[str, Any]:
        if self._ended is None:
            self._ended = ev
            stdin, self._link.stdin = self._link.stdin, None
            if stdin is not None:
                try:
                    stdin.close()
                except OSError:
                    pass
            if not self._link.wait(_CLOSE_GRACE):
                self._link.kill()
            if self._stderr is not None:
                self._stderr.close()
            try:
                self._link.stdout.close()
            except OSError:
                pass
            doc = ev.get("report")
            try:
                if isinstance(doc, dict):
                    self.report = read_answer(json.dumps(doc).encode(), "report")[1]
                elif self._link.answer() is not None:
                    # A warm server's refusal: no end event, the answer
                    # is the report.
                    answer, self.report = read_answer(self._link.answer(), "server answer")
                    if answer is not None:
                        self._ended = {"ev": "end", "status": answer.get("status"),
                                       "reason": answer.get("reason")}
                elif os.path.exists(self._report_path):
                    with open(self._report_path, "rb") as f:
                        self.report = read_answer(f.read(), "report")[1]
            except ProtocolError:
                self.report = None
        return self._ended

    def _fail_start(self, ev: Dict[str, Any]) -> None:
        end = self._ended or ev
        why = end.get("reason") or self._stderr_text() or "the session did not start"
        self._tmp.remove()
        status = end.get("status")
        cls = {"usage-error": BadRequest, "busy": Busy, "unreachable": Unreachable}.get(
            str(status), SandboxError)
        raise cls("session: %s" % why, report=self.report)

    def _stderr_text(self) -> str:
        try:
            with open(os.path.join(self._tmp.path, "stderr"), "rb") as f:
                return f.read(65536).decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def _send(self, obj: Mapping[str, object]) -> None:
        stdin = self._link.stdin
        if self._ended is not None or stdin is None:
            raise SessionEnded("the session has ended: %s" % self.ended_reason, report=self.report)
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        try:
            stdin.write(data)
            stdin.flush()
        except (BrokenPipeError, ValueError):
            raise SessionEnded("the session has ended", report=self.report) from None

    def _add(self, kind: str, name: str, value: Any) -> None:
        if not isinstance(name, str):
            raise BadRequest("%s names are str" % kind)
        self._take()   # between cells: the events are ours to read
        try:
            path = self._add_path(kind, name, value)
            self._send({"op": "add", "kind": kind, "name": name, "path": path})
            while True:
                ev = self._next(None)
                if ev.get("ev") == "end":
                    raise SessionEnded("the session has ended: %s" % self.ended_reason,
                                       report=self.report)
                if ev.get("ev") in ("added", "refused") and ev.get("name") == name \
                        and ev.get("kind") == kind:
                    self._add_settled(ev)
                    if ev["ev"] == "refused":
                        raise BadRequest("session refused %s %r: %s" % (kind, name, ev.get("reason")))
                    return
                if ev.get("ev") == "refused" and "name" not in ev:
                    # The add line itself was refused (its name or path).
                    self._add_settled({"kind": kind, "name": name})
                    raise BadRequest("session refused %s %r: %s" % (kind, name, ev.get("reason")))
        finally:
            self._lock.release()

    def close(self) -> Optional[Report]:
        """Ends the session (the running cell is stopped) and returns the
        report; what was collected stays in output_dir."""
        if self._ended is None:
            try:
                self._send({"op": "close"})
            except SessionEnded:
                pass
            while self._ended is None:
                self._next(None)
        if self._own_output:
            self._tmp.remove()   # the cells' collected files with it
        return self.report

    def _kill(self) -> None:
        self._link.stop(_CLOSE_GRACE)


class CellRun:
    """A running cell: iterating gives its outputs as they come."""

    def __init__(self, session: _CellHost, cid: str, on_input: Optional[Callable[[str, bool], str]],
                 timeout: Optional[float]) -> None:
        self._s = session
        self.id = cid
        self._on_input = on_input
        self._deadline = time.monotonic() + timeout if timeout else None
        self.outputs: List[Dict[str, Any]] = []
        self._done: Optional[Dict[str, Any]] = None

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        try:
            while self._done is None:
                left = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
                try:
                    ev = self._s._next(left)
                except TimeoutError:
                    # Given up: the cell is interrupted and the session is
                    # free; the next cell or add reads this one to its end.
                    self._s._abandoned = self.id
                    self._s.interrupt()
                    raise
                kind = ev.get("ev")
                if kind == "output" and ev.get("id") in (self.id, None):
                    out = ev.get("output")
                    if isinstance(out, dict):
                        self.outputs.append(out)
                        yield out
                elif kind == "input_request" and ev.get("id") == self.id:
                    p = ev.get("prompt")
                    prompt = p if isinstance(p, str) else ""
                    answer = self._on_input(prompt, bool(ev.get("password"))) \
                        if self._on_input is not None else ""
                    self._s._send({"op": "input", "id": self.id, "value": str(answer)})
                elif kind == "dataset_request" and ev.get("id") == self.id:
                    n = ev.get("name")
                    if isinstance(n, str):
                        self._s._answer_request(n)
                elif kind == "added" or (kind == "refused" and "name" in ev):
                    # The answer to an add sent for this cell's request.
                    self._s._add_settled(ev)
                elif kind == "done" and ev.get("id") == self.id:
                    self._done = ev
                    if ev.get("status") == "killed":
                        # The session's end follows, with the cause.
                        while self._s._ended is None:
                            self._s._next(None)
                elif kind == "refused" and ev.get("id") == self.id:
                    raise BadRequest("session refused the cell: %s" % ev.get("reason"))
                elif kind == "end":
                    self._done = {"ev": "done", "id": self.id, "status": "killed",
                                  "execution_count": 0, "error": None, "reason": ev.get("reason")}
        finally:
            # Done, or the session is over (a broken stream raises): the
            # next cell, or an add, must not wait for this one.
            if (self._done is not None or self._s._ended is not None
                    or self._s._abandoned == self.id) and self._s._lock.locked():
                self._s._lock.release()

    def result(self) -> CellResult:
        for _ in self:
            pass
        ev = self._done or {}
        err = ev.get("error")
        error = None
        outputs = list(self.outputs)
        if isinstance(err, dict):
            tb = tuple(str(x) for x in err.get("traceback") or ())
            error = CodeError(ename=str(err.get("ename", "")), evalue=str(err.get("evalue", "")),
                              traceback=tb)
            # The supervisor sends the error output before done; a client
            # of an older one gets it made here.
            if not any(o.get("output_type") == "error" for o in outputs):
                outputs.append({"output_type": "error", "ename": error.ename,
                                "evalue": error.evalue, "traceback": list(tb)})
        from ._report import FileEntry
        listed = ev.get("files")
        entries = [FileEntry(path=str(f["path"]), size=int(f["size"]), sha256=str(f["sha256"]))
                   for f in (listed if isinstance(listed, list) else []) if isinstance(f, dict)]
        files = tuple(OutputFile.from_entry(e, self._s.output_dir, None) for e in entries)
        prefix = entries[0].path.split("/", 1)[0] + "/" if entries else ""
        datasets, derr = datasets_out(files, prefix=prefix)
        u = ev.get("usage")
        usage: Dict[str, Any] = u if isinstance(u, dict) else {}
        count = ev.get("execution_count")
        return CellResult(id=self.id, status=str(ev.get("status", "killed")),
                          execution_count=count if isinstance(count, int) else 0,
                          outputs=outputs, error=error, value=ev.get("result"), files=files,
                          datasets=datasets, dataset_errors=derr,
                          wall_sec=usage.get("wall_sec"), cpu_sec=usage.get("cpu_sec"), event=ev)
