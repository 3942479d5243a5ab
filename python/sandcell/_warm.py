"""Warm runs: the server's protocol spoken directly (docs/warm.md).

One connection per run: a frame (4-byte little-endian length, then the
JSON request) with the run's stdin, stdout and stderr as SCM_RIGHTS on the
header, then one frame back holding the report.  stdout and stderr are two
files in the run's private directory; the server's supervisor writes the
code's (capped) streams into them and they are read once the answer is in.

A KeyboardInterrupt while the run is in flight cancels it: the client
shuts its side of the connection down for writing, the server kills the
run, collects /output so far and still answers with the report, and
Cancelled is raised from the interrupt with that report and Result.
"""
from __future__ import annotations

import json
import os
import select
import socket
import struct
from typing import Dict, Mapping, Optional, Sequence

from ._common import complete, new_workdir, read_answer, read_capped
from ._datasets import datasets_in
from ._errors import BadRequest, ProtocolError, SandboxError
from ._refusals import connect_error
from ._report import REPORT_MAX, parse_json
from ._request import DEFAULT_PYTHON, RunSpec
from ._result import Result

__all__ = ["run_warm", "build_request", "list_sessions", "REQUEST_MAX"]

# The supervisor caps each stream (stdout_limit); this only bounds a
# stream file that is not what the supervisor wrote.
_STREAM_MAX = 1 << 36

#: The server's cap on a request (SC_REQUEST_MAX).
REQUEST_MAX = 80 << 20
_HDR = struct.Struct("<I")


def build_request(spec: RunSpec, output_dir: str, dataset_inputs: "list[tuple[str, str]]",
                  cgroup_parent: Optional[str]) -> Dict[str, object]:
    req: Dict[str, object] = {
        "v": 1,
        "code": spec.code,
        # As a cold run of the file cell.py: the same tracebacks and argv.
        "code_name": "cell.py",
        "args": list(spec.args),
        "inputs": [{"name": n, "path": p} for n, p in spec.inputs] +
                  [{"name": n, "path": p, "dataset": True} for n, p in dataset_inputs],
        "values": spec.values,
        "output_dir": output_dir,
        "python": spec.python or DEFAULT_PYTHON,
        "cgroup_parent": spec.cgroup_parent or cgroup_parent,
        "allow_reduced": spec.allow_reduced,
        "limits": dict(spec.request_limits),
    }
    if spec.cell:
        req["cell"] = True          # only when the server has it (resolve_cell)
    return req


def recv_exact(s: socket.socket, n: int, wait: Optional[float] = None) -> Optional[bytes]:
    """n bytes, or None if the peer closed first; with wait, TimeoutError
    when no byte came for wait seconds."""
    buf = bytearray()
    while len(buf) < n:
        if wait is not None and not select.select([s], [], [], wait)[0]:
            raise TimeoutError
        try:
            chunk = s.recv(min(n - len(buf), 1 << 20))
        except ConnectionResetError:
            # A peer that closes with our request unread resets the
            # connection: no answer, as an orderly close would be.
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _open_stdin(spec: RunSpec, work: str) -> int:
    if spec.stdin is None:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    if isinstance(spec.stdin, bytes):
        p = os.path.join(work, "stdin")
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        _write_all(fd, spec.stdin)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    return os.open(spec.stdin, os.O_RDONLY | os.O_CLOEXEC)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


#: How long a cancelled run's server may take to kill it, collect and answer.
CANCEL_GRACE = 30.0


def _answer(s: socket.socket) -> Optional[bytes]:
    head = recv_exact(s, _HDR.size)
    if head is None:
        return None
    (size,) = _HDR.unpack(head)
    if size > REPORT_MAX:
        raise SandboxError("the server announced a %d-byte answer, over the limit" % size)
    return recv_exact(s, size)


def encode_request(req: Mapping[str, object]) -> bytes:
    """A request as the server reads it: JSON, UTF-8, within its cap."""
    try:
        body = json.dumps(req, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except (ValueError, UnicodeEncodeError) as e:
        raise BadRequest("the request cannot be encoded as JSON: %s" % e) from None
    if len(body) > REQUEST_MAX:
        raise BadRequest("the request is %d bytes, over the server's limit of %d"
                         % (len(body), REQUEST_MAX))
    return body


def connect(sock_path: str) -> socket.socket:
    """A connection to the warm server, or the refusal's error."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(sock_path)
    except OSError as e:
        s.close()
        raise connect_error(sock_path, e) from None
    return s


def send_request(s: socket.socket, body: bytes, fds: Sequence[int]) -> None:
    """The frame, with fds (SCM_RIGHTS) on its first bytes."""
    hdr = _HDR.pack(len(body))
    try:
        sent = socket.send_fds(s, [hdr], list(fds)) if fds else s.send(hdr)
        s.sendall(hdr[sent:] + body)
    except (BrokenPipeError, ConnectionResetError):
        # The server refused early (e.g. not our uid) and hung up: its
        # answer, if any, is still readable.
        pass


def _exchange(sock_path: str, body: bytes,
              fds: "list[int]") -> "tuple[Optional[bytes], Optional[KeyboardInterrupt]]":
    """Sends the request: (the answer's bytes, None if the server hung up
    without one; the KeyboardInterrupt that cancelled the run, or None).
    Interrupted while sending, nothing runs and the interrupt goes on."""
    s = connect(sock_path)
    try:
        send_request(s, body, fds)
        try:
            return _answer(s), None
        except KeyboardInterrupt as e:
            # The protocol's cancel (docs/warm.md): our side shut down for
            # writing; the run's report still comes.
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            s.settimeout(CANCEL_GRACE)
            try:
                return _answer(s), e
            except (socket.timeout, OSError):
                return None, e
    finally:
        # Closing early (any other exception, a second Ctrl-C) cancels the
        # run too, without waiting for its report.
        s.close()


def run_warm(spec: RunSpec, sock_path: str, cgroup_parent: Optional[str] = None) -> Result:
    """spec.cell is resolved by the caller against the server's features."""
    tmp = new_workdir()
    work = tmp.path
    fds: "list[int]" = []
    try:
        extra = datasets_in(spec.datasets, work)
        out_dir = spec.output_dir or os.path.join(work, "output")
        body = encode_request(build_request(spec, out_dir, extra, cgroup_parent))
        fds.append(_open_stdin(spec, work))
        for name in ("stdout", "stderr"):
            fds.append(os.open(os.path.join(work, name),
                               os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        data, interrupt = _exchange(sock_path, body, fds)
        for fd in fds:
            os.close(fd)
        fds = []
        if data is None and interrupt is None:
            raise SandboxError("the server at %s closed the connection without an answer"
                               % sock_path)
        answer, report = read_answer(data, "server answer")
        stdout = read_capped(os.path.join(work, "stdout"), _STREAM_MAX)
        stderr = read_capped(os.path.join(work, "stderr"), _STREAM_MAX)
    except BaseException:
        for fd in fds:
            os.close(fd)
        tmp.remove()
        raise
    return complete(answer, report, tmp=tmp, stdout=stdout, stderr=stderr, output_dir=out_dir,
                    caller_output_dir=spec.output_dir is not None, interrupt=interrupt)


def list_sessions(sock_path: str, timeout: float = 30.0) -> Dict[str, object]:
    """The server's listing (docs/warm.md, "Sessions"): the request
    ``{"v": 1, "op": "sessions"}`` without fds, a JSON document back."""
    body = b'{"v":1,"op":"sessions"}'
    s = connect(sock_path)
    try:
        s.settimeout(timeout)
        send_request(s, body, ())
        data = _answer(s)
    finally:
        s.close()
    if data is None:
        raise SandboxError("the server at %s closed the connection without an answer" % sock_path)
    try:
        doc = parse_json(data, "the server's listing")
    except ProtocolError as e:
        raise SandboxError(str(e)) from None
    if isinstance(doc, dict) and isinstance(doc.get("sessions"), list):
        return doc
    # A refusal is a report.
    answer, report = read_answer(data, "server answer")
    raise SandboxError("the server refused the listing: %s" % (
        answer.get("reason") if answer else "no answer"), report=report)
