"""``sandcell.connect``: the same API as :class:`sandcell.Server` and
:class:`sandcell.Session`, over HTTP to ``sandcell-http`` (docs/http.md).

    srv = sandcell.connect("http://127.0.0.1:8080", token_file="~/.sandcell-token")
    res = srv.run("print(6 * 7)", inputs={"sales": "sales.csv"})   # a Result, as locally
    with srv.session(limits={"memory": "1G"}) as s:                 # a Session's API
        s.run("x = 1"); s.run("x + 1").outputs

Inputs, stdin and datasets travel in the request (multipart, read from
the caller's files as they are sent); outputs come back as events and are
made into a Result exactly as a local run's are (a private directory,
OutputFile, datasets read with the hardened frames reader after the
SHA-256 check).

Retries (``retries=``, at most that many more attempts): a one-shot run
is sent again when

- nothing can have run: the server refused it as ``busy`` (429, 503) or
  ``unreachable`` (503), or the connection failed before the request
  reached the server whole (no connection, or broken while the body was
  sent: the server starts a run only once the whole body is in);
- or the server went away before the run's report came: a proxy in front
  answered 502/503/504 in its own words (HAProxy when the server it chose
  died or none is up), the connection closed with no answer, or the event
  stream ended without its report (docs/scaling.md, "When a server dies").
  The code may then have started on the server that went away; its
  sandbox went with it, and nothing of that attempt is returned (its
  stdout, files and output_dir entries are dropped), so the Result is one
  whole run, never two merged.  A sandbox has no network and nothing of a
  run outlives it, so the only cost of such a repeat is the compute.

Anything else (a refusal of the request itself, a report, a malformed
answer, Ctrl-C) is never retried.  Session starts retry only the first
kind; session cells, inputs and interrupts are never retried.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from ._common import complete, new_workdir
from ._datasets import datasets_in
from ._errors import BadRequest, Busy, Error, ProtocolError, Unreachable
from ._http import (EVENT_MAX, Endpoint, Events, Lost, NotSent, Part, ProxyError,
                    Response, backoff, check_str, read_token, refusal, write_file)
from ._report import Report, parse_report
from ._request import LIMIT_KEYS, PathLike, RunSpec, make_spec
from ._result import Result, TempDir

if TYPE_CHECKING:
    from ._remote_session import RemoteSession

__all__ = ["connect", "Remote", "SessionInfo", "CANCEL_GRACE"]

#: How long a cancelled run's report may take to come.
CANCEL_GRACE = 30.0
_HEX = frozenset("0123456789abcdef")


def check_id(v: object, what: str) -> str:
    """A run or session id: 32 lowercase hex digits (docs/http.md)."""
    if not isinstance(v, str) or len(v) != 32 or not set(v) <= _HEX:
        raise ProtocolError("%s: the id is not 32 lowercase hex digits" % what)
    return v


def request_limits(spec: RunSpec) -> Dict[str, Union[int, float]]:
    """The checked limits under their ``limits=`` names (the HTTP request's)."""
    return {key: spec.request_limits[rkey] for key, (_, rkey, _) in LIMIT_KEYS.items()
            if rkey in spec.request_limits}


def encode(obj: Mapping[str, object]) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except (ValueError, TypeError) as e:
        raise BadRequest("the request cannot be encoded as JSON: %s" % e) from None


def file_parts(spec: RunSpec, staging: str) -> List[Part]:
    """The inputs and datasets of spec as parts (DataFrames written as
    archives in staging first); an input directory is refused."""
    parts = []
    for name, path in spec.inputs:
        if not os.path.isfile(path):
            raise BadRequest("input %r: %s is not a file (over HTTP, inputs are files)"
                             % (name, path))
        parts.append(Part("input:" + name, path=path))
    for name, path in datasets_in(spec.datasets, staging):
        parts.append(Part("dataset:" + name, path=path))
    return parts


def prepare_output(path: str) -> None:
    """A caller's output_dir: new (made 0700) or an empty directory, as
    the CLI requires; nothing of the caller's is replaced."""
    try:
        os.makedirs(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path) or os.listdir(path):
            raise BadRequest("output_dir %s must be new or an empty directory" % path) from None


def _empty(path: str) -> None:
    """Removes what a cut attempt wrote in a caller's output_dir (it was
    new or empty when the run started: prepare_output), so that a retry
    starts from the same empty directory."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name in os.listdir(fd):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def check_retries(n: object) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise BadRequest("retries must be a non-negative int")
    return n


class _Retry(Exception):
    def __init__(self, error: Error) -> None:
        super().__init__(str(error))
        self.error = error


def send_retrying(send: Callable[[], Response], retries: int, what: str) -> Response:
    """send() until its answer is not a refusal that says nothing ran, at
    most retries more times (module docstring): the response, or the
    refusal raised."""
    attempt = 0
    while True:
        try:
            try:
                r = send()
            except NotSent as e:
                raise _Retry(e.error) from None
            if 200 <= r.status < 300:
                return r
            err = refusal(r, what)
            if isinstance(err, Busy) or (isinstance(err, Unreachable) and r.status == 503):
                raise _Retry(err)
            raise err
        except _Retry as rt:
            if attempt >= retries:
                raise rt.error from None
            time.sleep(backoff(attempt, rt.error.retry_after))
            attempt += 1


@dataclass
class _RunEvents:
    """What a one-shot run's stream said so far."""
    id: Optional[str] = None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    files: List["tuple[str, int, str]"] = field(default_factory=list)
    report: Optional[Dict[str, object]] = None


def _stream_bytes(ev: Mapping[str, object]) -> bytes:
    text, b64 = ev.get("text"), ev.get("b64")
    if isinstance(text, str) and b64 is None:
        return text.encode("utf-8")
    if isinstance(b64, str) and text is None:
        import base64
        try:
            return base64.b64decode(b64, validate=True)
        except ValueError:
            raise ProtocolError("run: a stream event's 'b64' is not base64") from None
    raise ProtocolError("run: a stream event needs exactly one of 'text' and 'b64' (strings)")


def consume_run(events: Events, st: _RunEvents, out_dir: Callable[[], str]) -> None:
    """Reads the run's events into st until the stream ends; out_dir()
    is where files go (made when the first one comes)."""
    while True:
        ev = events.next()
        if ev is None:
            return
        kind = ev["ev"]
        if st.report is not None:
            raise ProtocolError("run: an event after the report")
        if st.id is None and kind != "run":
            raise ProtocolError("run: the first event is not 'run'")
        if kind == "run":
            if st.id is not None:
                raise ProtocolError("run: a second 'run' event")
            st.id = check_id(ev.get("id"), "run")
        elif kind == "stream":
            name = ev.get("name")
            if name not in ("stdout", "stderr"):
                raise ProtocolError("run: a stream event names no stream")
            (st.stdout if name == "stdout" else st.stderr).extend(_stream_bytes(ev))
        elif kind == "file":
            st.files.append(write_file(ev, out_dir(), "run"))
        elif kind == "report":
            rep = ev.get("report")
            if not isinstance(rep, dict):
                raise ProtocolError("run: the report event holds no object")
            st.report = rep
        # Other events: a newer server's; nothing here depends on them.


def _no_files() -> str:
    # After a cancel, what comes is read for its report only.
    raise ProtocolError("run: a file after the cancel")


def check_files(received: Sequence["tuple[str, int, str]"], report: Report, what: str) -> None:
    """The files that came are exactly those the report lists, in order."""
    listed = [(f.path, f.size, f.sha256) for f in report.outputs.files] \
        if report.outputs.collected else []
    if list(received) != listed:
        raise ProtocolError("%s: the files sent (%d) are not those the report lists (%d)"
                            % (what, len(received), len(listed)))


@dataclass(frozen=True)
class SessionInfo:
    """One of this token's sessions on the server (``Remote.sessions()``)."""
    id: str
    state: str
    cells: int
    age_sec: float


def session_info(v: object) -> SessionInfo:
    if not isinstance(v, dict):
        raise ProtocolError("sessions: an entry is not an object")
    state = check_str(v, "state", "sessions")
    cells, age = v.get("cells"), v.get("age_sec")
    if state not in ("idle", "running", "ended") or not isinstance(cells, int) \
            or isinstance(cells, bool) or not isinstance(age, (int, float)) or isinstance(age, bool):
        raise ProtocolError("sessions: an entry has a bad state, cells or age_sec")
    return SessionInfo(id=check_id(v.get("session"), "sessions"), state=state, cells=cells,
                       age_sec=float(age))


class Remote:
    """A ``sandcell-http`` server: :meth:`run` as :meth:`sandcell.Server.run`,
    :meth:`session` as :class:`sandcell.Session`.  Made by :func:`connect`."""

    def __init__(self, url: str, *, token: Optional[str] = None,
                 token_file: Optional[PathLike] = None, timeout: float = 30.0,
                 retries: int = 0, max_event: int = EVENT_MAX) -> None:
        tok = read_token(token, os.path.expanduser(os.fspath(token_file))
                         if token_file is not None else None)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise BadRequest("timeout must be a positive number of seconds")
        self.url = url
        self.endpoint = Endpoint(url, tok, float(timeout))
        self.retries = check_retries(retries)
        self.max_event = max_event

    def __repr__(self) -> str:
        return "<sandcell.Remote %s>" % self.url

    def __enter__(self) -> "Remote":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection kept for the next call (a later call opens
        a new one)."""
        self.endpoint.close()

    # ---- one-shot runs
    def run(self, code: str, *, datasets: Optional[Mapping[str, Any]] = None,
            inputs: Optional[Mapping[str, PathLike]] = None,
            values: Optional[Mapping[str, object]] = None,
            limits: Optional[Mapping[str, object]] = None, args: Sequence[str] = (),
            stdin: Union[None, bytes, PathLike] = None, output_dir: Optional[PathLike] = None,
            cgroup_parent: Optional[str] = None, allow_reduced: bool = False,
            cell: Optional[bool] = None, retries: Optional[int] = None) -> Result:
        """A run on the server; :func:`sandcell.run`'s arguments (inputs are
        files; ``cgroup_parent`` names a host thing and is refused).
        ``retries`` (default: the client's) as the module says."""
        if cgroup_parent is not None:
            raise BadRequest("cgroup_parent: the server's cgroups are its own (not over HTTP)")
        spec = make_spec(code, args=args, inputs=inputs, values=values, limits=limits, stdin=stdin,
                         output_dir=output_dir, allow_reduced=allow_reduced, cell=cell,
                         datasets=datasets)
        n = self.retries if retries is None else check_retries(retries)
        req: Dict[str, object] = {"code": spec.code, "args": spec.args, "values": spec.values or {},
                                  "limits": request_limits(spec), "allow_reduced": spec.allow_reduced}
        if spec.cell is not None:
            req["cell"] = spec.cell
        # A private directory only for the archives of DataFrames sent as
        # datasets (each mkdir and rmdir is a journaled metadata change).
        staging = new_workdir() if spec.datasets else None
        try:
            parts = file_parts(spec, staging.path if staging is not None else "")
            if isinstance(spec.stdin, bytes):
                parts.append(Part("stdin", data=spec.stdin))
            elif spec.stdin is not None:
                parts.append(Part("stdin", path=spec.stdin))
            # Files to upload: multipart (docs/http.md); else the request
            # object alone is the JSON body, sent with the headers in one
            # write.
            body: Union[bytes, List[Part]] = encode(req)
            if parts:
                body = [Part("request", data=encode(req), content_type="application/json")] + parts
            attempt = 0
            while True:
                try:
                    return self._run_once(body, spec)
                except _Retry as rt:
                    err = rt.error
                if attempt >= n:
                    raise err
                time.sleep(backoff(attempt, err.retry_after))
                attempt += 1
        finally:
            if staging is not None:
                staging.remove()

    def _run_once(self, body: Union[bytes, Sequence[Part]], spec: RunSpec) -> Result:
        """One attempt: the Result, or _Retry when the module's policy sends
        the run again, or the error."""
        try:
            if isinstance(body, bytes):
                r = self.endpoint.request("POST", "/v1/runs", json_body=body)
            else:
                r = self.endpoint.request("POST", "/v1/runs", parts=body)
        except NotSent as e:
            raise _Retry(e.error) from None
        except Lost as e:
            raise _Retry(e) from None
        if not 200 <= r.status < 300:
            err = refusal(r, "run")
            if isinstance(err, (Busy, ProxyError)) or (isinstance(err, Unreachable)
                                                       and r.status == 503):
                raise _Retry(err)
            raise err
        try:
            return self._read_run(r, spec)
        except Lost as e:
            raise _Retry(e) from None

    def _read_run(self, r: Response, spec: RunSpec) -> Result:
        # The private directory (and its output directory) is made when
        # the first file comes: most runs send none.
        tmp: Optional[TempDir] = None
        interrupt: Optional[KeyboardInterrupt] = None
        st = _RunEvents()

        def out_root() -> str:
            nonlocal tmp
            if spec.output_dir is not None:
                return spec.output_dir
            if tmp is None:
                tmp = new_workdir()
                os.mkdir(os.path.join(tmp.path, "output"), 0o700)
            return os.path.join(tmp.path, "output")
        try:
            if spec.output_dir is not None:
                prepare_output(spec.output_dir)
            events = Events(r, "run", self.max_event)
            try:
                consume_run(events, st, out_root)
            except KeyboardInterrupt as e:
                interrupt = e
                self._cancel(st, events)
            finally:
                events.close()
            if st.report is None and interrupt is None:
                if spec.output_dir is not None:
                    _empty(spec.output_dir)   # this attempt's files: none of it is returned
                raise Lost("run: the event stream ended without the report (%s); "
                           "nothing says whether the run finished"
                           % (events.cut or "the server closed it"))
            report = parse_report(st.report) if st.report is not None else None
            if report is not None:
                check_files(st.files, report, "run")
        except BaseException:
            if tmp is not None:
                tmp.remove()
            raise
        out_dir = spec.output_dir if spec.output_dir is not None else \
            os.path.join(tmp.path, "output") if tmp is not None else None
        return complete(st.report, report, tmp=tmp, stdout=bytes(st.stdout),
                        stderr=bytes(st.stderr), output_dir=out_dir,
                        caller_output_dir=spec.output_dir is not None, interrupt=interrupt)

    def _cancel(self, st: _RunEvents, events: Events) -> None:
        """A KeyboardInterrupt while the run streams: cancel it by id and
        read on for its report (CANCEL_GRACE at most); without an id yet,
        closing the connection is the cancel.  A second interrupt gives up."""
        if st.id is None:
            return
        try:
            self.endpoint.call("POST", "/v1/runs/%s/cancel" % st.id, "cancel", ok=(202,))
            sock = events.r.conn.sock
            if sock is not None:
                sock.settimeout(CANCEL_GRACE)
            consume_run(events, st, _no_files)
        except (Error, OSError, socket.timeout):
            pass

    # ---- sessions
    def session(self, *, inputs: Optional[Mapping[str, PathLike]] = None,
                datasets: Optional[Mapping[str, Any]] = None,
                values: Optional[Mapping[str, object]] = None,
                limits: Optional[Mapping[str, object]] = None,
                output_dir: Optional[PathLike] = None, allow_reduced: bool = False,
                on_dataset_request: Optional[Callable[[str], Any]] = None,
                retries: Optional[int] = None) -> "RemoteSession":
        """A session held by the server, with :class:`sandcell.Session`'s API
        (its ``python``, ``cgroup_parent`` and ``binary`` are the server's)."""
        from ._remote_session import RemoteSession
        return RemoteSession(self, inputs=inputs, datasets=datasets, values=values, limits=limits,
                             output_dir=output_dir, allow_reduced=allow_reduced,
                             on_dataset_request=on_dataset_request,
                             retries=self.retries if retries is None else check_retries(retries))

    def sessions(self) -> List[SessionInfo]:
        """This token's live sessions on the server."""
        doc = self.endpoint.call("GET", "/v1/sessions", "sessions")
        lst = doc.get("sessions")
        if not isinstance(lst, list):
            raise ProtocolError("sessions: 'sessions' must be an array")
        return [session_info(v) for v in lst]


def connect(url: str, *, token: Optional[str] = None, token_file: Optional[PathLike] = None,
            timeout: float = 30.0, retries: int = 0) -> Remote:
    """A client of the ``sandcell-http`` at ``url`` (``http://HOST:PORT``,
    with a path prefix when a proxy serves it below one).  ``token`` or
    ``token_file`` (a file only its owner can read, holding the secret):
    the bearer token.  ``timeout``: seconds to connect, to send, and to
    wait for an answer that is not a run's or a cell's event stream (those
    wait as long as the run; TCP keepalive notices a peer that vanished).
    ``retries``: the default of ``run(retries=)`` (see the module).
    Nothing is sent until the first call."""
    return Remote(url, token=token, token_file=token_file, timeout=timeout, retries=retries)
