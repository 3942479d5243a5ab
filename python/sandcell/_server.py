"""``sandcell.Server``: a warm server for the lifetime of a ``with`` block."""
from __future__ import annotations

import os
import select
import shutil
import signal
import socket as _socket
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ._common import stop_process
from ._errors import BadRequest, SandboxError
from ._locate import Features, features, find_cli
from ._request import DEFAULT_PYTHON, PathLike, make_spec
from ._result import Result
from ._session import Session
from ._systemd import decide, host_facts, scope_argv

__all__ = ["Server"]

_LOG_MAX = 64 << 10


def _answers(path: str) -> bool:
    """True once something accepts connections at path."""
    if not os.path.exists(path):
        return False
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _finalize(proc: "subprocess.Popen[bytes]", private: Optional[str], grace: float) -> None:
    stop_process(proc, signal.SIGTERM, grace)
    if private:
        shutil.rmtree(private, True)


class Server:
    """Starts ``sandcell serve`` and stops it again::

        with sandcell.Server(slots=2) as srv:
            res = srv.run("import pandas as pd; print(pd.__version__)")

    ``socket=None`` puts the socket in a private directory (mode 0700) that
    is removed on stop.  The other arguments are ``sandcell serve``'s options
    (None: the server's default).  :meth:`start` returns once the socket
    accepts connections (a template with numpy, pandas and matplotlib takes
    about a second), or raises SandboxError with the server's log if it
    exits or ``start_timeout`` passes first.  :meth:`stop` sends SIGTERM
    (the server refuses what is queued, lets runs in flight finish and
    removes its socket), waits ``stop_timeout`` seconds, then kills it.

    An unprivileged caller on a systemd host without a delegated cgroup
    gets the server started in a transient delegated user scope, and its
    runs created in it (see docs/client.md)."""

    def __init__(self, socket: Optional[PathLike] = None, *, slots: Optional[int] = None,
                 queue: Optional[int] = None, queue_timeout: Optional[float] = None,
                 spares: Optional[int] = None, preload: Optional[Sequence[str]] = None,
                 respawn_runs: Optional[int] = None, respawn_seconds: Optional[float] = None,
                 python: Optional[str] = None, binary: Optional[str] = None,
                 max_sessions: Optional[int] = None,
                 start_timeout: float = 120.0, stop_timeout: float = 10.0) -> None:
        self._requested = os.path.abspath(os.fspath(socket)) if socket is not None else None
        self._opts: List[str] = []
        for opt, v in (("--slots", slots), ("--queue", queue), ("--queue-timeout", queue_timeout),
                       ("--spares", spares), ("--respawn-runs", respawn_runs),
                       ("--respawn-seconds", respawn_seconds), ("--python", python),
                       ("--max-sessions", max_sessions)):
            if v is not None:
                self._opts += [opt, str(v)]
        if preload is not None:
            self._opts += ["--preload", ",".join(preload)]
        self.python = python or DEFAULT_PYTHON
        self._binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: Optional["subprocess.Popen[bytes]"] = None
        self._private: Optional[str] = None
        self._socket: Optional[str] = None
        self._log = bytearray()
        self._log_lock = threading.Lock()
        self._cgroup_parent: Optional[str] = None
        self._features: Optional[Features] = None
        self._finalizer: Optional[weakref.finalize] = None

    # ---- lifecycle ----

    @property
    def socket(self) -> str:
        if self._socket is None:
            raise SandboxError("the server is not started")
        return self._socket

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log(self) -> str:
        """What the server wrote on stderr so far (the last 64 KiB)."""
        with self._log_lock:
            return self._log.decode("utf-8", "replace")

    def _add_log(self, data: bytes) -> None:
        with self._log_lock:
            self._log += data
            del self._log[:-_LOG_MAX]

    def start(self) -> "Server":
        if self._proc is not None:
            raise SandboxError("the server is already started")
        cli = find_cli(self._binary)
        self._features = features(cli)
        if self._requested is None:
            self._private = tempfile.mkdtemp(prefix="sandcell-server-")
            self._socket = os.path.join(self._private, "sock")
        else:
            self._socket = self._requested
        argv = [cli, "serve", "--socket", self._socket] + self._opts
        facts = host_facts(None, os.environ)
        plan = decide(facts)
        scoped = plan.action == "scope" and facts.systemd_run is not None
        if scoped and facts.systemd_run:
            argv = scope_argv(facts.systemd_run, argv)
        elif plan.action == "parent":
            self._cgroup_parent = plan.cgroup_parent
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, close_fds=True)
        except OSError as e:
            self._cleanup_dir()
            raise SandboxError("cannot start %s: %s" % (argv[0], e)) from None
        self._finalizer = weakref.finalize(self, _finalize, self._proc, self._private,
                                           self.stop_timeout)
        try:
            self._wait_ready()
            if scoped:
                self._cgroup_parent = self._scope_of(self._proc.pid)
        except BaseException:
            self.stop()
            raise
        assert self._proc.stderr is not None
        threading.Thread(target=self._drain, args=(self._proc.stderr,), daemon=True,
                         name="sandcell-server-log").start()
        return self

    def _wait_ready(self) -> None:
        """Until the socket accepts a connection.  Woken by the server's
        output (it says when it listens) or its exit; the wait is capped
        at half a second between checks so that readiness does not depend
        on the log's wording."""
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        err_fd = proc.stderr.fileno()
        # Non-blocking while we wait: the server's children may hold the
        # pipe open after it died, so no read may wait for its end.
        os.set_blocking(err_fd, False)
        pidfd = os.pidfd_open(proc.pid)
        deadline = time.monotonic() + self.start_timeout
        try:
            while True:
                if _answers(self.socket):
                    return
                if proc.poll() is not None:
                    self._read_available(err_fd)
                    # 125 is the server's usage error: an option of ours.
                    cls = BadRequest if proc.returncode == 125 else SandboxError
                    raise cls("sandcell serve exited with status %s before it listened: %s"
                              % (proc.returncode, self.log.strip()[-2000:]),
                              exit_code=proc.returncode)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SandboxError("sandcell serve did not listen within %g s: %s"
                                       % (self.start_timeout, self.log.strip()[-2000:]))
                ready, _, _ = select.select([err_fd, pidfd], [], [], min(left, 0.5))
                if err_fd in ready:
                    self._read_available(err_fd)
        finally:
            os.close(pidfd)

    def _read_available(self, fd: int) -> None:
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                self._add_log(chunk)
        except BlockingIOError:
            return

    @staticmethod
    def _scope_of(pid: int) -> str:
        """The delegated scope the server runs in: the parent of its leaf."""
        try:
            with open("/proc/%d/cgroup" % pid, encoding="utf-8") as f:
                for line in f:
                    if line.startswith("0::"):
                        return os.path.dirname(line[3:].strip().rstrip("/"))
        except OSError as e:
            raise SandboxError("cannot read the server's cgroup: %s" % e) from None
        raise SandboxError("the server has no cgroup v2 path")

    def _drain(self, pipe: Any) -> None:
        try:
            os.set_blocking(pipe.fileno(), True)
            while True:
                chunk = os.read(pipe.fileno(), 65536)
                if not chunk:
                    break
                self._add_log(chunk)
        except (OSError, ValueError):
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def _cleanup_dir(self) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, True)
            self._private = None

    def stop(self) -> None:
        """Stops the server (idempotent)."""
        proc = self._proc
        if proc is not None:
            stop_process(proc, signal.SIGTERM, self.stop_timeout)
            if self._finalizer is not None:
                self._finalizer.detach()
        # A killed server could not remove a socket at a path of the
        # caller's: remove it, if it is still a socket.
        if self._requested is not None and proc is not None:
            try:
                if stat.S_ISSOCK(os.lstat(self._requested).st_mode):
                    os.unlink(self._requested)
            except OSError:
                pass
        self._cleanup_dir()
        self._proc = None

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- runs ----

    def run(self, code: str, *, datasets: Optional[Mapping[str, Any]] = None,
            inputs: Optional[Mapping[str, PathLike]] = None,
            values: Optional[Mapping[str, object]] = None,
            limits: Optional[Mapping[str, object]] = None, args: Sequence[str] = (),
            stdin: Union[None, bytes, PathLike] = None, output_dir: Optional[PathLike] = None,
            cgroup_parent: Optional[str] = None, allow_reduced: bool = False,
            cell: Optional[bool] = None) -> Result:
        """A warm run on this server; the same arguments as :func:`sandcell.run`
        (the interpreter is the server's)."""
        from ._api import resolve_cell
        from ._warm import run_warm
        if not self.running:
            raise SandboxError("the server is not running%s" % (
                ": " + self.log.strip()[-2000:] if self._proc is not None else ""))
        spec = make_spec(code, args=args, inputs=inputs, values=values, limits=limits, stdin=stdin,
                         output_dir=output_dir, python=self.python, cgroup_parent=cgroup_parent,
                         allow_reduced=allow_reduced, cell=cell, datasets=datasets)
        assert self._features is not None
        spec.cell = resolve_cell(spec.cell, self._features)
        return run_warm(spec, self.socket, cgroup_parent=self._cgroup_parent)

    # ---- sessions ----

    def _check_running(self) -> None:
        if not self.running:
            raise SandboxError("the server is not running%s" % (
                ": " + self.log.strip()[-2000:] if self._proc is not None else ""))

    def session(self, **kwargs: Any) -> Session:
        """A :class:`sandcell.Session` started from this server's template
        (the same arguments as ``Session``; the interpreter is the
        server's)::

            with srv.session(limits={"cell_wall_time": 60}) as s:
                s.run("x = 1"); s.run("x + 1", on_output=print)

        Busy when the server has --max-sessions sessions live."""
        self._check_running()
        if "server" in kwargs or "binary" in kwargs:
            raise BadRequest("server and binary are the Server's")
        kwargs.setdefault("python", self.python)
        return Session(server=self.socket, _server_cgroup=self._cgroup_parent, **kwargs)

    def sessions(self) -> List[Dict[str, Any]]:
        """The server's live sessions, one dict each: ``id``, ``pid`` (the
        session's worker), ``started`` (UTC), ``age_sec``, ``state``
        ("idle" or "running"), ``state_sec``, ``cells`` (started so far)
        and ``limits``.  Counters the supervisors keep, nothing from
        inside a sandbox."""
        from ._warm import list_sessions
        self._check_running()
        listed = list_sessions(self.socket)["sessions"]
        return [x for x in listed if isinstance(x, dict)] if isinstance(listed, list) else []
