"""From what came back to the exception the caller sees, in one place.

Every outcome comes back as a full report (docs/report.md) whose status
says what happened: the statuses of a run that happened make a Result;
the refusals (``usage-error``, ``busy``, ``unreachable``,
``sandbox-error``) and ``cancelled`` make the exception of that name.
Without a report (the CLI died, or could not write it) only its exit
status and its own words on stderr are left.
"""
from __future__ import annotations

import errno
from typing import Dict, Mapping, Optional, Type

from ._errors import BadRequest, Busy, Cancelled, Error, SandboxError, Unreachable
from ._report import Report

__all__ = ["classify", "connect_error", "EXIT_CODES"]

#: The CLI's own exit codes (include/sandcell.h) by status.
EXIT_CODES = {"unreachable": 117, "busy": 118, "cancelled": 119, "usage-error": 125,
              "sandbox-error": 126}

_BY_STATUS: Dict[str, Type[Error]] = {
    "usage-error": BadRequest, "busy": Busy, "unreachable": Unreachable,
    "sandbox-error": SandboxError, "cancelled": Cancelled}

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
    ``report`` the same parsed as a full report, ``exit_code`` the CLI's
    exit status (cold runs) and ``message`` the CLI's own words on stderr
    when there is no report."""
    if report is None:
        # Nothing readable came back: the exit status is all there is.
        if exit_code is not None and exit_code < 0:
            return SandboxError("the sandcell CLI was killed by signal %d without a report%s"
                                % (-exit_code, ": " + message if message else ""),
                                exit_code=exit_code)
        for status, code in EXIT_CODES.items():
            if exit_code == code:
                return _BY_STATUS[status](message or "sandcell exited with status %d (%s) "
                                          "without a report" % (code, status), answer=answer,
                                          exit_code=exit_code)
        return SandboxError(message or "no report came back (exit status %r)" % (exit_code,),
                            answer=answer, exit_code=exit_code)
    cls = _BY_STATUS.get(report.status)
    if cls is None:
        return None
    text = report.reason
    if report.status == "sandbox-error" and report.error:
        text = report.error
    return cls(text or report.status, report=report, answer=answer, exit_code=report.exit_code)
