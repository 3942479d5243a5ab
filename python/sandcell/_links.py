"""How a Session reaches its supervisor: a ``sandcell session`` process
(cold), or a warm server's worker over its socket (docs/warm.md,
"Sessions").  Either way commands go down one pipe and events come up
another, one JSON object per line; the link only moves the bytes."""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
from typing import IO, List, Mapping, Optional

from ._common import wait_exit
from ._errors import SandboxError
from ._report import REPORT_MAX
from ._warm import connect, encode_request, recv_exact, send_request

__all__ = ["ProcLink", "ConnLink"]

_HDR = struct.Struct("<I")


class ProcLink:
    """A ``sandcell session`` child process: its stdin and stdout."""

    def __init__(self, argv: List[str], cwd: str, stderr: IO[bytes]) -> None:
        # A process group of its own: a terminal's Ctrl-C, or Jupyter
        # interrupting the kernel's group, reaches this process, which
        # interrupts the cell; the CLI would end the whole session.
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=stderr, close_fds=True, cwd=cwd,
                                      start_new_session=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self.stdin: Optional[IO[bytes]] = self._proc.stdin
        self.stdout: IO[bytes] = self._proc.stdout

    def wait(self, grace: float) -> bool:
        return wait_exit(self._proc, grace)

    def kill(self) -> None:
        self._proc.kill()
        self._proc.wait()

    def stop(self, grace: float) -> None:
        """Ends the session: the CLI kills it and writes its report."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            if not wait_exit(self._proc, grace):
                self.kill()

    def answer(self) -> Optional[bytes]:
        return None     # the report comes in the end event or the report file


class ConnLink:
    """A session on a warm server: one connection carries the request
    (with the command pipe's read end, the event pipe's write end and a
    stderr file as SCM_RIGHTS) and, at the end, the report.  Closing or
    half-closing the connection ends the session (the protocol's cancel)."""

    def __init__(self, sock_path: str, request: Mapping[str, object], stderr_path: str) -> None:
        body = encode_request(request)
        theirs: List[int] = []
        ours: List[int] = []
        self._sock = connect(sock_path)
        try:
            cmd_r, cmd_w = os.pipe2(os.O_CLOEXEC)
            theirs.append(cmd_r)
            ours.append(cmd_w)
            ev_r, ev_w = os.pipe2(os.O_CLOEXEC)
            ours.append(ev_r)
            theirs.append(ev_w)
            theirs.append(os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                  0o600))
            send_request(self._sock, body, theirs)
        except BaseException:
            for fd in ours:
                os.close(fd)
            for fd in theirs:
                os.close(fd)
            self._sock.close()
            raise
        for fd in theirs:
            os.close(fd)
        self.stdin: Optional[IO[bytes]] = os.fdopen(cmd_w, "wb")
        self.stdout: IO[bytes] = os.fdopen(ev_r, "rb")
        self._answer: Optional[bytes] = None
        self._done = False

    def wait(self, grace: float) -> bool:
        """Reads the answer (the report); False if none came in grace s."""
        if self._done:
            return True
        try:
            head = recv_exact(self._sock, _HDR.size, grace)
            if head is not None:
                (size,) = _HDR.unpack(head)
                if size > REPORT_MAX:
                    raise SandboxError("the server announced a %d-byte answer, over the limit" % size)
                self._answer = recv_exact(self._sock, size, grace)
        except TimeoutError:
            return False
        except OSError:
            pass
        self._done = True
        self._sock.close()
        return True

    def kill(self) -> None:
        """Hangs up: the server kills the session."""
        self._done = True
        self._sock.close()

    def stop(self, grace: float) -> None:
        """Cancels the session (half-close), waits for its report."""
        if self._done:
            return
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if not self.wait(grace):
            self.kill()

    def answer(self) -> Optional[bytes]:
        return self._answer
