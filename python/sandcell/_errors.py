"""The exceptions the host client raises.

A run that *happened* never raises: the code failing, timing out or running
out of memory is a :class:`~sandcell.Result` whose ``status`` says so.  An
exception means there is no result to look at, and its class says what the
caller can do about it:

=================  ==========================================================
``Busy``           the server refused for lack of capacity: retry later
                   (``retryable`` is True)
``BadRequest``     the request itself is wrong (unknown limit, missing input,
                   bad name or value): fix it; the CLI's usage error, 125
``SandboxError``   an isolation layer could not be set up, or the run's
                   supervisor failed: nothing more to do from the caller's
                   side than report it (the CLI's 126)
``Unreachable``    no server answers at that address (or it is going away,
                   or it serves another user)
``Cancelled``      the run was cancelled before it finished (its report and
                   partial result come with it)
``ProtocolError``  the CLI or server answered something this client cannot
                   read (a version mismatch or a bug; never the code's doing)
=================  ==========================================================

All are subclasses of :class:`Error`; each carries ``report`` (the parsed
report when a full one came back, else ``None``) and ``answer`` (the raw JSON
object that came back, else ``None``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional

if TYPE_CHECKING:
    from ._report import Report
    from ._result import Result

__all__ = ["Error", "Busy", "BadRequest", "SandboxError", "Unreachable", "Cancelled",
           "ProtocolError"]


class Error(Exception):
    """Base class: the run produced no result."""

    #: True when the same request may succeed if sent again later.
    retryable = False
    #: Seconds the server asked to wait before trying again (its HTTP
    #: ``Retry-After``; sandcell-http only), else None.
    retry_after: Optional[float] = None

    def __init__(self, message: str, *, report: Optional["Report"] = None,
                 answer: Optional[Mapping[str, object]] = None,
                 exit_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.report = report
        self.answer = answer
        #: The CLI's exit status (cold runs), or the answer's ``exit_code``.
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class Busy(Error):
    """The server is at capacity (queue full or queued too long); retryable."""

    retryable = True


class BadRequest(Error):
    """The request is invalid; nothing ran.  The CLI's exit code 125."""


class SandboxError(Error):
    """An isolation layer could not be set up or the supervisor failed; the
    code did not start (see ``report.script.started`` when there is one)."""


class Unreachable(Error):
    """No sandcell server answered at the given socket."""


class Cancelled(Error):
    """The run was cancelled before it finished: a ``KeyboardInterrupt``
    while it ran (raised from it), or a cancel the CLI or the server got.

    ``report`` is its report (status ``cancelled``, or the run's own when
    it had ended before the cancel reached it), and ``result`` the
    :class:`~sandcell.Result` of what it did until then: streams so far,
    the files collected from /output.  Both are None when no report came
    back."""

    def __init__(self, message: str, *, report: Optional["Report"] = None,
                 answer: Optional[Mapping[str, object]] = None,
                 exit_code: Optional[int] = None, result: Optional["Result"] = None) -> None:
        super().__init__(message, report=report, answer=answer, exit_code=exit_code)
        self.result = result


class ProtocolError(Error):
    """The CLI's report or the server's answer is malformed: wrong JSON
    types, a missing key, oversized, or not JSON at all."""
