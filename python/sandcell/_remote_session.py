"""A session held by ``sandcell-http`` (docs/http.md, *Sessions*), with
the API of :class:`sandcell.Session`: what both share (cells one at a
time, ids, the dataset callback, adds, interrupt, ``CellRun`` and
``CellResult``) is ``_session._CellHost``; this file maps its commands
onto HTTP calls and reads each cell's NDJSON stream into the same events.

Each cell is one ``POST .../cells`` whose stream a thread reads into a
queue (so that ``timeout=`` and ``interrupt()`` from another thread work
as locally); ``file`` events are checked and written below
``output_dir`` (``SEQ/path``, as a local session's outbox) before the
cell's ``done``, which must list no file that did not come.
"""
from __future__ import annotations

import os
import queue
import shutil
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional

from ._common import new_workdir
from ._errors import BadRequest, Error, ProtocolError
from ._http import Events, Lost, NotSent, Part, ProxyError, refusal, write_file
from ._remote import (Remote, check_id, encode, file_parts, prepare_output, request_limits,
                      send_retrying)
from ._report import Report, parse_report
from ._request import PathLike, make_spec
from ._session import SessionEnded, _CellHost, split_session_limits

__all__ = ["RemoteSession"]

#: How long the server may take to answer a session's start (a sandbox set up).
START_TIMEOUT = 300.0


class RemoteSession(_CellHost):
    """A session on a ``sandcell-http`` server (``Remote.session()``):
    :class:`sandcell.Session`'s methods and attributes, plus ``id``."""

    def __init__(self, remote: Remote, *, inputs: Optional[Mapping[str, PathLike]] = None,
                 datasets: Optional[Mapping[str, Any]] = None,
                 values: Optional[Mapping[str, object]] = None,
                 limits: Optional[Mapping[str, object]] = None,
                 output_dir: Optional[PathLike] = None, allow_reduced: bool = False,
                 on_dataset_request: Optional[Callable[[str], Any]] = None,
                 retries: int = 0) -> None:
        lim, secs = split_session_limits(limits)
        spec = make_spec("", inputs=inputs, values=values, limits=lim, output_dir=output_dir,
                         allow_reduced=allow_reduced, datasets=datasets)
        self._ep = remote.endpoint
        self._max_event = remote.max_event
        self._init_host(on_dataset_request)
        self._q: "Optional[queue.Queue[Optional[Dict[str, Any]]]]" = None
        self._received: List["tuple[str, int, str]"] = []
        self._closed = False
        self._tmp = new_workdir()
        self._own_output = spec.output_dir is None
        self.output_dir = spec.output_dir or os.path.join(self._tmp.path, "output")
        try:
            if spec.output_dir is not None:
                prepare_output(self.output_dir)
            else:
                os.mkdir(self.output_dir, 0o700)
            limits_req: Dict[str, object] = dict(request_limits(spec))
            limits_req.update(secs)
            req = {"values": spec.values or {}, "limits": limits_req,
                   "allow_reduced": spec.allow_reduced}
            parts = [Part("request", data=encode(req), content_type="application/json")]
            parts += file_parts(spec, self._tmp.path)
            r = send_retrying(lambda: self._ep.request("POST", "/v1/sessions", parts=parts,
                                                       read_timeout=START_TIMEOUT),
                              retries, "session")
            if r.status != 201:
                r.close()
                raise ProtocolError("session: HTTP %d, not 201, for a new session" % r.status)
            doc = r.read_json("session")
            self.id = check_id(doc.get("session"), "session")
            if doc.get("ready") is not True:
                raise ProtocolError("session: the answer does not say it is ready")
        except BaseException:
            self._tmp.remove()
            raise
        # The DataFrames sent at start are on the server now.
        shutil.rmtree(os.path.join(self._tmp.path, "datasets"), True)

    def __repr__(self) -> str:
        return "<sandcell.RemoteSession %s>" % self.id

    # ---- the end
    def _finish(self, ev: Dict[str, Any]) -> Dict[str, Any]:
        if self._ended is None:
            self._ended = ev
            doc = ev.get("report")
            try:
                self.report = parse_report(doc) if isinstance(doc, dict) else None
            except ProtocolError:
                self.report = None
        return self._ended

    def _ended_by(self, err: SessionEnded) -> None:
        self.report = err.report
        self._finish({"ev": "end", "status": err.report.status if err.report else "ended",
                      "reason": str(err)})
        self.report = err.report

    def _gone(self, err: Error) -> Error:
        """err, or SessionEnded when it says that the server holding this
        session is gone, and the session with it (docs/scaling.md): a proxy
        in front answered 502/503/504 itself (the server it pins the session
        to is down), another server answered 404 (it never held this id),
        or the connection broke after the call was sent.  A session lives in
        one server's memory: nothing can bring it back."""
        if isinstance(err, ProxyError):
            why = "HTTP %d from the proxy: the server that held it is down" % err.status
        elif isinstance(err, Lost):
            why = "the server hung up: it went away"
        elif isinstance(err, BadRequest) and err.answer is not None \
                and err.answer.get("status") == "not-found":
            why = "the server that answered does not know it (the server that held it " \
                  "stopped, or it was closed)"
        else:
            return err
        ended = SessionEnded("session %s ended: %s" % (self.id, why))
        self._ended_by(ended)
        return ended

    def _call(self, method: str, what: str, *, json_obj: Optional[Mapping[str, object]] = None,
              parts: Optional[List[Part]] = None, ok: "tuple[int, ...]" = (200,)) -> Dict[str, object]:
        """A call on this session: a 410 ends it (SessionEnded raised), as
        does a sign that its server is gone (_gone)."""
        path = "/v1/sessions/%s%s" % (self.id, "/" + what if what else "")
        try:
            return self._ep.call(method, path, "session " + (what or method.lower()),
                                 json_body=encode(json_obj) if json_obj is not None else None,
                                 parts=parts, ok=ok)
        except SessionEnded as e:
            self._ended_by(e)
            raise
        except Error as e:
            gone = self._gone(e)
            if gone is e:
                raise
            raise gone from None

    # ---- commands (what a local session writes on the CLI's stdin)
    def _send(self, obj: Mapping[str, object]) -> None:
        if self._ended is not None:
            raise SessionEnded("the session has ended: %s" % self.ended_reason, report=self.report)
        op = obj.get("op")
        if op == "run":
            self._start_cell(str(obj["id"]), str(obj["code"]))
        elif op == "interrupt":
            self._call("POST", "interrupt", ok=(202,))
        elif op == "input":
            self._call("POST", "input", json_obj={"id": obj["id"], "value": obj["value"]},
                       ok=(202,))
        elif op == "add" and "refused" in obj:
            self._call("POST", "datasets", json_obj={"name": obj["name"], "refused": obj["refused"]})
        elif op == "add":
            # The answer to a cell's dataset_request: a refusal of the add
            # is told to the cell by the server.
            kind, name = str(obj["kind"]), str(obj["name"])
            try:
                self._post_add(kind, name, str(obj["path"]))
            finally:
                self._add_settled({"kind": kind, "name": name})
        else:
            raise BadRequest("session: no command %r over HTTP" % (op,))

    def _start_cell(self, cid: str, code: str) -> None:
        body = encode({"code": code, "id": cid, "silent": cid.startswith("_")})
        try:
            r = self._ep.request("POST", "/v1/sessions/%s/cells" % self.id, json_body=body)
        except NotSent as e:
            raise e.error from None
        except Lost as e:
            raise self._gone(e) from None
        if r.status != 200:
            err = refusal(r, "cell")
            if isinstance(err, SessionEnded):
                self._ended_by(err)
                raise err
            raise self._gone(err)
        events = Events(r, "cell", self._max_event)
        q: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self._q = q
        self._received = []
        threading.Thread(target=self._read, args=(events, q), name="sandcell-remote-cell",
                         daemon=True).start()

    @staticmethod
    def _read(events: Events, q: "queue.Queue[Optional[Dict[str, Any]]]") -> None:
        try:
            while True:
                ev = events.next()
                if ev is None:
                    if events.cut:
                        q.put({"ev": "_cut", "why": events.cut})
                    break
                q.put(ev)
                if ev["ev"] == "end":
                    break
        except Error as e:
            q.put({"ev": "_bad", "why": str(e)})
        finally:
            events.close()
            q.put(None)

    def _next(self, timeout: Optional[float]) -> Dict[str, Any]:
        q = self._q
        if q is None:
            raise ProtocolError("session: no cell is running")
        while True:
            try:
                ev = q.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError("no event from the session within %s s" % timeout) from None
            if ev is None or ev["ev"] == "_cut":
                q.put(None)
                # The cell's state on the server is unknown from here.
                return self._finish({"ev": "end", "status": "sandbox-error", "reason":
                                     "the cell's event stream ended early (%s): the server "
                                     "or the connection to it went away"
                                     % (ev["why"] if ev else "no done event")})
            kind = ev["ev"]
            if kind == "_bad":
                self._finish({"ev": "end", "status": "sandbox-error", "reason": ev["why"]})
                raise ProtocolError(ev["why"])
            if kind == "file":
                self._received.append(write_file(ev, self.output_dir, "cell"))
                continue
            if kind == "done":
                self._check_done_files(ev)
            if kind == "end":
                return self._finish(ev)
            return ev

    def _check_done_files(self, ev: Mapping[str, Any]) -> None:
        listed = ev.get("files")
        if listed is None:
            return
        if not isinstance(listed, list) or not all(isinstance(f, dict) for f in listed):
            raise ProtocolError("cell: done's 'files' must be an array of objects")
        got = set(self._received)
        for f in listed:
            if (f.get("path"), f.get("size"), f.get("sha256")) not in got:
                raise ProtocolError("cell: done lists a file that was not sent")

    # ---- adds
    def _post_add(self, kind: str, name: str, path: str) -> Optional[str]:
        """Sends one file; why the server refused it, or None when added."""
        what = "inputs" if kind == "input" else "datasets"
        doc = self._call("POST", what, parts=[Part("%s:%s" % (kind, name), path=path)])
        added, refused = doc.get("added"), doc.get("refused")
        if not isinstance(added, list) or not isinstance(refused, list):
            raise ProtocolError("session add: 'added' and 'refused' must be arrays")
        for r in refused:
            if isinstance(r, dict) and r.get("name") == name:
                return str(r.get("reason", ""))
        if name not in added:
            raise ProtocolError("session add: %r is neither added nor refused" % name)
        return None

    def _add(self, kind: str, name: str, value: Any) -> None:
        if not isinstance(name, str):
            raise BadRequest("%s names are str" % kind)
        self._take()   # between cells, as a local session's adds
        try:
            if self._ended is not None:
                raise SessionEnded("the session has ended: %s" % self.ended_reason,
                                   report=self.report)
            path = self._add_path(kind, name, value)
            try:
                why = self._post_add(kind, name, path)
            finally:
                self._add_settled({"kind": kind, "name": name})
        finally:
            self._lock.release()
        if why is not None:
            raise BadRequest("session refused %s %r: %s" % (kind, name, why))

    # ---- close
    def close(self) -> Optional[Report]:
        """Ends the session on the server (its running cell is stopped)
        and returns the report; collected files stay in output_dir."""
        if not self._closed:
            self._closed = True
            try:
                doc = self._call("DELETE", "")
                rep = doc.get("report")
                self._finish({"ev": "end", "status": doc.get("status"), "reason": doc.get("reason"),
                              "report": rep})
                if self.report is None and isinstance(rep, dict):
                    self.report = parse_report(rep)
            except SessionEnded:
                pass   # it had ended on its own: _call kept its report
            except Error:
                if self._ended is None:
                    raise
                # Ended already (seen in a cell's stream, or the stream was
                # cut): the DELETE only frees the server's side.
        if self._own_output:
            self._tmp.remove()
        return self.report
