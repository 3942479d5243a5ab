"""What cold and warm runs share: the private work directory, and turning
what came back into a Result or an exception."""
from __future__ import annotations

import os
import select
import subprocess
import tempfile
from typing import Mapping, Optional

from ._datasets import datasets_out
from ._errors import Cancelled, Error
from ._outputs import build_outputs
from ._refusals import classify
from ._report import Report, parse_json, parse_report
from ._result import OutputFile, Result, TempDir, Usage

__all__ = ["new_workdir", "read_answer", "complete", "read_capped", "wait_exit", "stop_process"]


def new_workdir() -> TempDir:
    """A private directory for one run (mode 0700, in $TMPDIR)."""
    return TempDir(tempfile.mkdtemp(prefix="sandcell-run-"))


def wait_exit(proc: "subprocess.Popen[bytes]", timeout: float) -> bool:
    """Waits up to timeout seconds for proc to exit, woken by the exit
    itself (a pidfd), and reaps it; False if it is still running."""
    if proc.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        proc.wait()
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], max(timeout, 0.0))
    finally:
        os.close(pidfd)
    if ready:
        proc.wait()
        return True
    return proc.poll() is not None


def stop_process(proc: "subprocess.Popen[bytes]", sig: int, grace: float) -> None:
    """Sends sig, waits up to grace seconds, then SIGKILL; always reaps."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    if not wait_exit(proc, grace):
        proc.kill()
        proc.wait()


def read_capped(path: str, cap: int) -> bytes:
    """At most cap bytes of a file (read in chunks: read(n) allocates n)."""
    out = bytearray()
    with open(path, "rb") as f:
        while len(out) < cap:
            chunk = f.read(min(cap - len(out), 1 << 20))
            if not chunk:
                break
            out += chunk
    return bytes(out)


def read_answer(data: Optional[bytes], what: str) -> "tuple[Optional[Mapping[str, object]], Optional[Report]]":
    """Parses a report or a server's answer, always a full report: (the
    JSON object, the report).  Anything malformed raises ProtocolError."""
    if data is None:
        return None, None
    doc = parse_json(data, what)
    return doc, parse_report(doc)


def complete(answer: Optional[Mapping[str, object]], report: Optional[Report], *,
             tmp: Optional[TempDir],
             stdout: bytes, stderr: bytes, output_dir: Optional[str], caller_output_dir: bool,
             exit_code: Optional[int] = None, message: str = "",
             interrupt: Optional[BaseException] = None) -> Result:
    """The Result of a run, or the exception for a refusal.  The private
    directory is removed unless it holds collected files.

    A cancelled run raises Cancelled carrying the Result of what it did.
    ``interrupt`` is the KeyboardInterrupt that made us cancel the run:
    then it is Cancelled (raised from it) whatever came back, with the
    report and, for a run that started, its Result.  ``tmp`` None: no
    private directory was made (nothing came back to keep in one)."""
    err: Optional[Error] = None
    try:
        err = classify(answer, report, exit_code=exit_code, message=message)
        if interrupt is not None and not isinstance(err, Cancelled):
            why = str(err) if err is not None else \
                "the run had already ended: %s" % report.status if report is not None else \
                "no report came back"
            err = Cancelled("interrupted (%s); %s" % (type(interrupt).__name__, why), report=report,
                            answer=answer, exit_code=report.exit_code if report else exit_code)
        if err is not None and (report is None or not isinstance(err, Cancelled) or
                                not report.script.started):
            raise err from interrupt
        assert report is not None  # classify() returns an error otherwise
        keep = tmp if report.outputs.files and not caller_output_dir else None
        root = output_dir if report.outputs.collected else None
        files = tuple(OutputFile.from_entry(e, root, keep) for e in report.outputs.files) \
            if root is not None else ()
        datasets, dataset_errors = datasets_out(files)
        outputs = build_outputs(report, stdout, stderr)
    except BaseException:
        if tmp is not None:
            tmp.remove()
        raise
    if keep is None:
        if tmp is not None:
            tmp.remove()
    else:
        # Only the collected files stay: the rest was ours.
        for name in os.listdir(keep.path):
            p = os.path.join(keep.path, name)
            if p != output_dir and os.path.isfile(p):
                os.unlink(p)
    res = Result(status=report.status, exit_code=report.exit_code, outputs=outputs,
                 datasets=datasets, dataset_errors=dataset_errors, files=files, report=report, usage=Usage.from_report(report),
                 stdout=stdout, stderr=stderr, value=report.result,
                 output_dir=root if files else (output_dir if caller_output_dir else None),
                 _tmp=keep)
    if isinstance(err, Cancelled):
        err.result = res
        if interrupt is not None:
            raise err from interrupt
        raise err
    return res
