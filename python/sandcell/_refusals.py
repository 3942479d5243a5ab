"""From what came back to the exception the caller sees, in one place.

SEAM (refusals): today's CLI and server do not yet say every refusal in
words of its own: an unreachable server is exit 126 without a report, and
over the socket a busy server, a bad request and a broken sandbox are all
``sandbox-error`` (a short, report-shaped answer).  :func:`classify` maps
today's signals as well as they allow; when the CLI and the server gain
distinct statuses (cancelled, busy, ...), this function and
``_report.STATUSES`` are what changes.
"""
from __future__ import annotations

import errno
from typing import Mapping, Optional

from ._errors import BadRequest, Busy, Cancelled, Error, ProtocolError, SandboxError, Unreachable
from ._report import Report

__all__ = ["classify", "connect_error"]

EXIT_USAGE = 125
EXIT_SANDBOX = 126

# The server's refusal reasons (src/server/warm.c send_refusal) by prefix.
_BUSY = ("server busy",)
_GONE = ("server shutting down", "permission denied: only the server's own uid")
_BAD = ("request:", "protocol:", "this server's template is")

# connect() errors that mean "no server there" rather than "bad address".
_UNREACHABLE_ERRNOS = {errno.ENOENT, errno.ECONNREFUSED, errno.EACCES, errno.EPERM,
                       errno.ENOTSOCK, errno.ECONNRESET, errno.EPIPE, errno.ENOTDIR,
                       errno.EPROTOTYPE, errno.EAGAIN}


def connect_error(path: str, e: OSError) -> Error:
    """A failed connect() to a server socket."""
    if e.errno in _UNREACHABLE_ERRNOS:
        return Unreachable("no sandcell server at %s: %s" % (path, e.strerror or e))
    return BadRequest("server socket %s: %s" % (path, e.strerror or e))


def classify(answer: Optional[Mapping[str, object]], report: Optional[Report], *,
             exit_code: Optional[int] = None, message: str = "") -> Optional[Error]:
    """The exception for this outcome, or None when it is a result.

    ``answer`` is the JSON object that came back (None if nothing did),
    ``report`` the same parsed as a full report (None if it is not one),
    ``exit_code`` the CLI's exit status (cold runs) and ``message`` the
    CLI's own words on stderr when there is no report (nothing ran, so
    stderr holds no output of the code)."""
    if answer is None:
        if exit_code == EXIT_USAGE:
            return BadRequest(message or "sandcell refused the request (usage error)",
                              exit_code=exit_code)
        if exit_code is not None and exit_code < 0:
            return SandboxError("the sandcell CLI was killed by signal %d without a report%s"
                                % (-exit_code, ": " + message if message else ""),
                                exit_code=exit_code)
        return SandboxError(message or "no report came back (exit status %r)" % (exit_code,),
                            exit_code=exit_code)
    status = answer.get("status")
    reason = answer.get("reason")
    reason = reason if isinstance(reason, str) else ""
    code = answer.get("exit_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else exit_code
    if status == "usage-error":
        return BadRequest(reason or "invalid request", answer=answer, exit_code=code)
    if status == "cancelled":
        return Cancelled(reason or "the run was cancelled", report=report, answer=answer,
                         exit_code=code)
    if status == "sandbox-error":
        err = answer.get("error")
        text = err if isinstance(err, str) and err else reason
        if report is None:
            # A short refusal from the server: only the words tell them apart.
            if text.startswith(_BUSY):
                return Busy(text, answer=answer, exit_code=code)
            if text.startswith(_GONE):
                return Unreachable(text, answer=answer, exit_code=code)
            if text.startswith(_BAD):
                return BadRequest(text, answer=answer, exit_code=code)
        return SandboxError(text or "sandbox error", report=report, answer=answer, exit_code=code)
    if report is None:
        return ProtocolError("an answer with status %r but not a full report" % (status,),
                             answer=answer, exit_code=code)
    return None
