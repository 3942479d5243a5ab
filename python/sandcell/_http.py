"""The HTTP transport to ``sandcell-http`` (docs/http.md): connections,
the bearer token, multipart uploads streamed from files, refusals turned
into exceptions, NDJSON event streams read with caps, and output files
materialised on the host.

Standard library only (http.client).  Nothing the server sends is
trusted: answers and events are parsed with :func:`_report.parse_json`
(no duplicate keys, no NaN, a size cap), every field read is type-checked,
lines and totals are capped, and a file is written only after its size
and SHA-256 match what its event says.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import os
import secrets
import select
import socket
import stat
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Type, Union

from ._errors import BadRequest, Busy, Error, ProtocolError, SandboxError, Unreachable
from ._report import REPORT_MAX, Report, parse_json, parse_report
from ._result import _safe_relpath
from ._session import SessionEnded

__all__ = ["Endpoint", "Part", "Response", "Events", "read_token", "write_file", "check_str",
           "EVENT_MAX", "RETRY_WAIT_MAX", "ProxyError", "Lost", "PROXY_CODES"]

#: One NDJSON event line: a ``file`` event carries its content in base64
#: (the server's --max-output, 64 MiB by default, is 86 MiB of base64).
EVENT_MAX = 96 << 20
#: All the bytes of one response (streams, files, report).
RESPONSE_MAX = 2 << 30
#: A refusal's JSON body (it may hold a full report).
_ANSWER_MAX = REPORT_MAX + (64 << 10)
#: The longest wait a Retry-After may impose on a retry.
RETRY_WAIT_MAX = 60.0
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=-")
_CHUNK = 1 << 16
#: A connection idle longer than this is not used again: the front end
#: (--idle-timeout, 30 s) and HAProxy (timeout http-keep-alive, 10 s) close
#: idle connections later than that, so a kept connection is never one
#: they are closing as the next request goes out.
IDLE_REUSE_MAX = 5.0

# docs/http.md, "Errors and HTTP codes": a refusal's status, the class the
# caller sees, and the HTTP codes that status may come with.  Anything
# else is a server this client does not understand: ProtocolError.
_REFUSALS: Mapping[str, Tuple[Type[Error], "frozenset[int]"]] = {
    "usage-error": (BadRequest, frozenset({400, 405, 408, 409, 411, 413, 415})),
    "unauthorized": (BadRequest, frozenset({401})),
    "forbidden": (BadRequest, frozenset({403})),
    "not-found": (BadRequest, frozenset({404})),
    "session-ended": (SessionEnded, frozenset({410})),
    "busy": (Busy, frozenset({429, 503})),
    "sandbox-error": (SandboxError, frozenset({500})),
    "unreachable": (Unreachable, frozenset({503})),
}


def read_token(token: Optional[str], token_file: Optional[str]) -> Optional[str]:
    """The bearer secret: given, or the first line of a file that only its
    owner may read (as ssh insists for keys: a token is a credential)."""
    if token is not None and token_file is not None:
        raise BadRequest("connect: token= or token_file=, not both")
    if token_file is not None:
        try:
            fd = os.open(token_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError as e:
            raise BadRequest("token_file %s: %s" % (token_file, e.strerror)) from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BadRequest("token_file %s: not a regular file" % token_file)
            if st.st_mode & 0o077:
                raise BadRequest("token_file %s: readable or writable by group or others "
                                 "(chmod 600 it)" % token_file)
            data = f.read(4096)
        lines = [ln.strip() for ln in data.decode("ascii", "replace").splitlines()]
        token = next((ln for ln in lines if ln and not ln.startswith("#")), "")
    if token is None:
        return None
    if not isinstance(token, str) or not 32 <= len(token) <= 256 or not set(token) <= _TOKEN_CHARS:
        # Never echoed: it is a secret, even a malformed one.
        raise BadRequest("token: 32 to 256 characters of [A-Za-z0-9._~+/=-]")
    return token


def check_str(o: Mapping[str, object], key: str, what: str) -> str:
    v = o.get(key)
    if not isinstance(v, str):
        raise ProtocolError("%s: %r must be a string" % (what, key))
    return v


@dataclass
class Part:
    """One part of a multipart body: bytes, or a host file sent as it is
    read (never a path the server opens)."""
    name: str
    data: Optional[bytes] = None
    path: Optional[str] = None
    content_type: str = "application/octet-stream"


class _Body:
    """A multipart/form-data body whose files are opened (and sized) first,
    so that Content-Length is exact and a file that changes while it is
    sent is noticed."""

    def __init__(self, parts: Sequence[Part]) -> None:
        self.boundary = "sandcell-" + secrets.token_hex(16)
        self._items: List[Union[bytes, Tuple[int, int, str]]] = []
        self._fds: List[int] = []
        self.length = 0
        try:
            for p in parts:
                fname = '; filename="%s"' % p.name.split(":", 1)[-1] if p.path is not None else ""
                head = ('--%s\r\nContent-Disposition: form-data; name="%s"%s\r\n'
                        'Content-Type: %s\r\n\r\n' % (self.boundary, p.name, fname, p.content_type))
                self._add(head.encode("ascii"))
                if p.path is not None:
                    self._add_file(p)
                else:
                    self._add(p.data or b"")
                self._add(b"\r\n")
            self._add(("--%s--\r\n" % self.boundary).encode("ascii"))
        except BaseException:
            self.close()
            raise

    def _add(self, b: bytes) -> None:
        self._items.append(b)
        self.length += len(b)

    def _add_file(self, p: Part) -> None:
        assert p.path is not None
        try:
            fd = os.open(p.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError as e:
            raise BadRequest("%s: %s: %s" % (p.name, p.path, e.strerror)) from None
        self._fds.append(fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadRequest("%s: %s is not a regular file (over HTTP, inputs are files)"
                             % (p.name, p.path))
        self._items.append((fd, st.st_size, p.name))
        self.length += st.st_size

    def chunks(self) -> Iterator[bytes]:
        for it in self._items:
            if isinstance(it, bytes):
                yield it
                continue
            fd, left, name = it
            os.lseek(fd, 0, os.SEEK_SET)
            while left > 0:
                b = os.read(fd, min(left, _CHUNK))
                if not b:
                    raise BadRequest("%s: the file shrank while it was sent" % name)
                left -= len(b)
                yield b

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


class _OneWrite:
    """http.client sends the headers and a bytes body in two writes; with
    TCP_NODELAY they leave as two segments and wake the server twice.
    Small bodies (a JSON request, a command) go with the headers here."""

    _buffer: List[bytes]

    def _send_output(self, message_body: object = None, encode_chunked: bool = False) -> None:
        if isinstance(message_body, bytes) and not encode_chunked and len(message_body) <= _CHUNK:
            self._buffer.extend((b"", b""))
            msg = b"\r\n".join(self._buffer) + message_body
            del self._buffer[:]
            self.send(msg)  # type: ignore[attr-defined]
            return
        super()._send_output(message_body, encode_chunked)  # type: ignore[misc]


class _Conn(_OneWrite, http.client.HTTPConnection):
    pass


class _TLSConn(_OneWrite, http.client.HTTPSConnection):
    pass


class _Broken(Exception):
    """The request did not go out whole and no answer came."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class NotSent(Exception):
    """The request did not reach the server whole: nothing can have run.
    ``error`` is what to raise when it is not retried."""

    def __init__(self, error: Error) -> None:
        super().__init__(str(error))
        self.error = error


class ProxyError(Unreachable):
    """A proxy in front (HAProxy, docs/scaling.md) answered 502, 503 or 504
    in its own words (not sandcell-http's JSON): no server was up, or the
    one it chose died or did not answer.  ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Lost(SandboxError):
    """The request reached the other end whole, then the connection broke
    before the whole answer came (no answer, or an event stream without
    its end): the server may have started on it."""


#: What a proxy answers in its own words when the server behind is gone.
PROXY_CODES = (502, 503, 504)


class Response:
    """A response whose headers arrived.  close() hands its connection back
    to release (its Endpoint keeps it for the next request) when the
    response was read to its end and the server keeps the connection;
    otherwise the connection is closed."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
                 release: Optional[Callable[[http.client.HTTPConnection,
                                             http.client.HTTPResponse], None]] = None) -> None:
        self.conn = conn
        self.resp = resp
        self.status = resp.status
        self._release = release
        self._closed = False

    def header(self, name: str) -> Optional[str]:
        return self.resp.getheader(name)

    def read_json(self, what: str) -> Dict[str, object]:
        """The whole body, a JSON object (a success answer)."""
        ctype = (self.header("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise ProtocolError("%s: HTTP %d with Content-Type %r, not application/json"
                                % (what, self.status, ctype[:64]))
        data = self.resp.read(_ANSWER_MAX + 1)
        self.close()
        return parse_json(data, what, _ANSWER_MAX)

    def close(self) -> None:
        # Once: a second close must not close a connection that went back
        # to the Endpoint and now serves another request.
        if self._closed:
            return
        self._closed = True
        if self._release is not None:
            self._release(self.conn, self.resp)
        else:
            self.conn.close()


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After as delta-seconds (the only form the front end sends)."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(int(value.strip())), 3600.0)


def refusal(r: Response, what: str) -> Error:
    """The exception for a non-2xx answer (docs/http.md's table)."""
    ctype = (r.header("Content-Type") or "").split(";")[0].strip()
    wait = _retry_after(r.header("Retry-After"))
    if ctype != "application/json":
        r.close()
        # A proxy in front (HAProxy's 503 when no server is up) answers in
        # its own words: nothing reached a sandcell server.
        if r.status in PROXY_CODES:
            err: Error = ProxyError("%s: HTTP %d from a proxy (not a sandcell answer)"
                                    % (what, r.status), r.status)
            err.retry_after = wait
            return err
        return ProtocolError("%s: HTTP %d without a JSON body" % (what, r.status))
    doc = r.read_json(what)
    status = check_str(doc, "status", what)
    message = check_str(doc, "message", what)
    rep = doc.get("report")
    if rep is not None and not isinstance(rep, dict):
        raise ProtocolError("%s: 'report' must be an object or null" % what)
    report: Optional[Report] = parse_report(rep) if rep is not None else None
    entry = _REFUSALS.get(status)
    if entry is None or r.status not in entry[1]:
        return ProtocolError("%s: HTTP %d with status %r is not in the API (docs/http.md)"
                             % (what, r.status, status[:64]), answer=doc, report=report)
    err = entry[0]("%s: %s" % (what, message), report=report, answer=doc,
                   exit_code=report.exit_code if report else None)
    err.retry_after = wait
    return err


class Endpoint:
    """Where the server is and how to reach it: ``http://host:port/prefix``.

    It keeps one idle connection (HTTP/1.1 keep-alive) for the next
    request, whichever thread makes it; a request that finds none (or one
    idle too long, or one the server closed: readable while idle) opens a
    new one.  A kept connection changes nothing in what a failure means
    (the retries of docs/client.md): it is only taken when nothing is
    pending on it, and the same rules tell a request not sent whole from
    one the server received."""

    def __init__(self, url: str, token: Optional[str], timeout: float) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment \
                or u.username is not None or u.password is not None:
            raise BadRequest("url %r: http://HOST:PORT[/PREFIX] (no user, query or fragment)"
                             % url)
        try:
            self.port = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            raise BadRequest("url %r: bad port" % url) from None
        self.url = url
        self.https = u.scheme == "https"
        self.host = u.hostname
        self.prefix = u.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle: Optional[Tuple[http.client.HTTPConnection, float]] = None

    def _take(self) -> Optional[http.client.HTTPConnection]:
        """The kept connection, if it may carry another request."""
        with self._lock:
            idle, self._idle = self._idle, None
        if idle is None:
            return None
        conn, since = idle
        sock = conn.sock
        if sock is not None and time.monotonic() - since <= IDLE_REUSE_MAX:
            # Readable while idle: the server closed it (EOF), or sent
            # what no request asked for; either way it is not reused.
            p = select.poll()
            p.register(sock, select.POLLIN)
            if not p.poll(0):
                sock.settimeout(self.timeout)
                return conn
        conn.close()
        return None

    def _release(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        """Keeps conn for the next request if resp was read to its end and
        the server did not say it closes; else closes it."""
        if conn.sock is None or not resp.isclosed() or resp.will_close:
            conn.close()
            return
        with self._lock:
            old, self._idle = self._idle, (conn, time.monotonic())
        if old is not None:
            old[0].close()

    def close(self) -> None:
        """Closes the kept connection (a later request opens a new one)."""
        with self._lock:
            idle, self._idle = self._idle, None
        if idle is not None:
            idle[0].close()

    def _connect(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.https:
            conn = _TLSConn(self.host, self.port, timeout=self.timeout)
        else:
            conn = _Conn(self.host, self.port, timeout=self.timeout)
        try:
            conn.connect()
        except OSError as e:
            conn.close()
            raise NotSent(Unreachable("no sandcell-http at %s: %s" % (self.url, e))) from None
        assert conn.sock is not None
        # A peer that vanished (a host down, a cut link) is noticed within
        # a minute while we wait for a quiet run's events.
        s: socket.socket = conn.sock
        # Headers and body go out in separate writes (a multipart body in
        # many): with Nagle's algorithm each small write after the first
        # waits for the server's delayed ACK (bench/http_latency.md).
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, v in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, opt):
                s.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), v)
        return conn

    def request(self, method: str, path: str, *, json_body: Optional[bytes] = None,
                parts: Optional[Sequence[Part]] = None,
                read_timeout: Optional[float] = None) -> Response:
        """Sends one request; returns once the response's headers are in.
        Raises NotSent when the request did not reach the server whole."""
        body = _Body(parts) if parts is not None else None
        try:
            # A kept connection is taken only when the server has not
            # closed it (_take): what a failure means is then the same as
            # on a new one.
            conn = self._take() or self._connect()
            try:
                resp = self._exchange(conn, method, path, json_body, body, read_timeout)
            except _Broken as b:
                conn.close()
                raise NotSent(Unreachable("%s %s: the connection broke while the request "
                                          "was sent: %s" % (method, path, b.error))) from None
            except BaseException:
                conn.close()
                raise
            return Response(conn, resp, self._release)
        finally:
            if body is not None:
                body.close()

    def _exchange(self, conn: http.client.HTTPConnection, method: str, path: str,
                  json_body: Optional[bytes], body: Optional[_Body],
                  read_timeout: Optional[float]) -> http.client.HTTPResponse:
        """One request on conn, its response's headers read.  _Broken: the
        request did not go out whole and no answer came; Lost: it did,
        and the server hung up without an answer."""
        conn.putrequest(method, self.prefix + path, skip_accept_encoding=True)
        if self.token is not None:
            conn.putheader("Authorization", "Bearer " + self.token)
        if body is not None:
            conn.putheader("Content-Type", "multipart/form-data; boundary=" + body.boundary)
            conn.putheader("Content-Length", str(body.length))
        elif json_body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(json_body)))
        elif method in ("POST", "PUT"):
            conn.putheader("Content-Length", "0")
        sent_error: Optional[OSError] = None
        try:
            # A JSON body goes out with the headers, in one write (_Conn).
            conn.endheaders(json_body if body is None else None)
            if body is not None:
                for chunk in body.chunks():
                    conn.send(chunk)
        except OSError as e:
            # The server may have refused early (a cap) and hung up: its
            # answer, if any, is still readable.
            sent_error = e
        if conn.sock is not None:
            conn.sock.settimeout(read_timeout)
        try:
            return conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            if sent_error is not None:
                raise _Broken(sent_error) from None
            raise Lost("%s %s: the server hung up without an answer (%s)"
                       % (method, path, e)) from None

    def call(self, method: str, path: str, what: str, *, json_body: Optional[bytes] = None,
             parts: Optional[Sequence[Part]] = None, ok: Tuple[int, ...] = (200,)) -> Dict[str, object]:
        """A request with a JSON answer: the answer, or the refusal raised."""
        try:
            r = self.request(method, path, json_body=json_body, parts=parts,
                             read_timeout=self.timeout)
        except NotSent as e:
            raise e.error from None
        if r.status not in ok:
            raise refusal(r, what)
        try:
            return r.read_json(what)
        except (OSError, http.client.HTTPException) as e:
            raise SandboxError("%s: the answer was cut: %s" % (what, e)) from None


class Events:
    """The NDJSON lines of a streamed response, each a JSON object with a
    string ``ev``; None at the end of the stream (or a cut line)."""

    def __init__(self, r: Response, what: str, max_event: int = EVENT_MAX,
                 max_total: int = RESPONSE_MAX) -> None:
        ctype = (r.header("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/x-ndjson":
            r.close()
            raise ProtocolError("%s: HTTP %d with Content-Type %r, not application/x-ndjson"
                                % (what, r.status, ctype[:64]))
        self.r = r
        self.what = what
        self.max_event = max_event
        self.left = max_total
        self.cut: Optional[str] = None

    def next(self) -> Optional[Dict[str, object]]:
        try:
            line = self.r.resp.readline(self.max_event + 2)
        except (OSError, http.client.HTTPException, ValueError) as e:
            # ValueError: http.client's chunked reader on a closed response.
            self.cut = str(e) or type(e).__name__
            return None
        if not line.endswith(b"\n"):
            if line:
                if len(line) > self.max_event:
                    raise ProtocolError("%s: an event over %d bytes" % (self.what, self.max_event))
                self.cut = "the stream ended in the middle of an event"
            return None
        self.left -= len(line)
        if self.left < 0:
            raise ProtocolError("%s: the response is over %d bytes" % (self.what, RESPONSE_MAX))
        ev = parse_json(line, self.what + " event", self.max_event + 1)
        if not isinstance(ev.get("ev"), str):
            raise ProtocolError("%s: an event without a string 'ev'" % self.what)
        return ev

    def close(self) -> None:
        self.r.close()


def _open_dir(root_fd: int, parts: Sequence[str]) -> int:
    """The directory of a file's path below root, made (0700) as needed,
    never through a symlink."""
    fd = os.dup(root_fd)
    try:
        for p in parts:
            try:
                os.mkdir(p, 0o700, dir_fd=fd)
            except FileExistsError:
                pass
            nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_file(ev: Mapping[str, object], root: str, what: str) -> Tuple[str, int, str]:
    """A ``file`` event, checked and written below root: (path, size, sha256)."""
    path = check_str(ev, "path", what)
    size = ev.get("size")
    sha = check_str(ev, "sha256", what)
    b64 = check_str(ev, "b64", what)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError("%s: file %r: 'size' must be a non-negative integer" % (what, path[:200]))
    parts = _safe_relpath(path)
    try:
        data = base64.b64decode(b64, validate=True)
    except ValueError:
        raise ProtocolError("%s: file %r: 'b64' is not base64" % (what, path[:200])) from None
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
        raise ProtocolError("%s: file %r does not match its size and SHA-256" % (what, path[:200]))
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dfd = _open_dir(root_fd, parts[:-1])
    finally:
        os.close(root_fd)
    try:
        try:
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dfd)
        except FileExistsError:
            raise ProtocolError("%s: file %r sent twice" % (what, path[:200])) from None
    finally:
        os.close(dfd)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path, size, sha


def backoff(attempt: int, wait: Optional[float]) -> float:
    """Seconds before retry number attempt+1: the server's Retry-After when
    it gave one, else 0.5 s doubling, capped."""
    if wait is not None:
        return min(wait, RETRY_WAIT_MAX)
    return float(min(0.5 * (2 ** attempt), RETRY_WAIT_MAX))
