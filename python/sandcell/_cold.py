"""Cold runs: one ``sandcell run`` process per run.

The CLI gets everything through files in a private directory (mode 0700):
the code (``cell.py``), the values, stdin bytes; it writes the report
there and collects /output there (unless the caller gave ``output_dir=``).
Its stdout and stderr go to two files there: with ``--quiet`` the CLI
prints nothing of its own once the code may have run, so they hold the
code's streams and nothing else.  When no report comes back (the CLI
could not write it, or died), stderr holds the CLI's own message for the
exception.

A KeyboardInterrupt while the CLI runs cancels the run: the CLI gets
SIGTERM, kills the run, collects /output so far and writes the report,
and Cancelled is raised from the interrupt with that report and Result.
"""
from __future__ import annotations

import os
import signal
import subprocess
from typing import List, Optional

from ._common import complete, new_workdir, read_answer, read_capped, wait_exit
from ._datasets import datasets_in
from ._errors import SandboxError
from ._locate import Features
from ._report import REPORT_MAX
from ._request import RunSpec
from ._result import Result
from ._systemd import decide, host_facts, scope_argv

__all__ = ["run_cold", "cli_argv"]

# The supervisor caps each stream (stdout_limit); this only bounds a
# stream file that is not what the supervisor wrote.
_STREAM_MAX = 1 << 36
_MESSAGE_MAX = 64 << 10


def cli_argv(cli: str, spec: RunSpec, feats: Features, work: str, out_dir: str,
             dataset_inputs: List["tuple[str, str]"]) -> List[str]:
    """The ``sandcell run`` command line for spec (files already in work)."""
    argv = [cli, "run", "--quiet", "--report", os.path.join(work, "report.json"),
            "--output", out_dir]
    if spec.stdin is None:
        argv += ["--stdin", os.devnull]
    elif isinstance(spec.stdin, bytes):
        argv += ["--stdin", os.path.join(work, "stdin")]
    else:
        argv += ["--stdin", spec.stdin]
    for name, path in spec.inputs:
        argv += ["--input", "%s=%s" % (name, path)]
    for name, path in dataset_inputs:
        argv += ["--dataset", "%s=%s" % (name, path)]
    if spec.values_json is not None:
        argv += ["--values", os.path.join(work, "values.json")]
    argv += spec.cli_limits
    if spec.python:
        argv += ["--python", spec.python]
    if spec.cgroup_parent:
        argv += ["--cgroup-parent", spec.cgroup_parent]
    if spec.allow_reduced:
        argv.append("--allow-reduced")
    if spec.cell:
        argv.append("--cell")       # only when feats.cell (resolve_cell)
    # The code as a file: tracebacks name /code/cell.py and show its lines,
    # as a warm run's do, and no argv length limit applies.
    argv.append(os.path.join(work, "cell.py"))
    return argv + spec.args


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def run_cold(spec: RunSpec, cli: str, feats: Features) -> Result:
    if not feats.quiet:
        raise SandboxError("%s has no --quiet: its own lines would mix with the code's stderr; "
                           "use the sandcell CLI this package came with" % cli)
    tmp = new_workdir()
    work = tmp.path
    try:
        extra = datasets_in(spec.datasets, work)
        out_dir = spec.output_dir or os.path.join(work, "output")
        _write(os.path.join(work, "cell.py"), spec.code.encode("utf-8"))
        if spec.values_json is not None:
            _write(os.path.join(work, "values.json"), spec.values_json.encode("utf-8"))
        if isinstance(spec.stdin, bytes):
            _write(os.path.join(work, "stdin"), spec.stdin)
        argv = cli_argv(cli, spec, feats, work, out_dir, extra)
        facts = host_facts(spec.cgroup_parent, os.environ)
        plan = decide(facts)
        if plan.action == "parent" and plan.cgroup_parent:
            argv[2:2] = ["--cgroup-parent", plan.cgroup_parent]
        elif plan.action == "scope" and facts.systemd_run:
            argv = scope_argv(facts.systemd_run, argv)
        rc, interrupt = _spawn(argv, work)
        rpath = os.path.join(work, "report.json")
        data = read_capped(rpath, REPORT_MAX + 1) if os.path.exists(rpath) and \
            os.path.getsize(rpath) > 0 else None
        stdout = read_capped(os.path.join(work, "stdout"), _STREAM_MAX)
        stderr = read_capped(os.path.join(work, "stderr"), _STREAM_MAX)
        answer, report = read_answer(data, "report")
    except BaseException:
        tmp.remove()
        raise
    message = ""
    if answer is None:
        # Nothing ran: stderr is the CLI's (or systemd-run's) own message.
        message = _cli_message(stderr)
    return complete(answer, report, tmp=tmp, stdout=stdout, stderr=stderr, output_dir=out_dir,
                    caller_output_dir=spec.output_dir is not None, exit_code=rc, message=message,
                    interrupt=interrupt)


def _cli_message(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr[:_MESSAGE_MAX].decode("utf-8", "replace").splitlines()]
    lines = [ln[len("sandcell: "):] if ln.startswith("sandcell: ") else ln for ln in lines
             if ln and ln != "Try 'sandcell --help'."]
    return "; ".join(lines)


#: How long a cancelled CLI may take to kill the run, collect and report.
CANCEL_GRACE = 30.0


def _spawn(argv: List[str], work: str) -> "tuple[int, Optional[KeyboardInterrupt]]":
    """Runs the CLI to completion: (its exit status, the KeyboardInterrupt
    that cancelled it or None).  A KeyboardInterrupt (Ctrl-C in a notebook
    backend) sends it SIGTERM: it cancels the run and writes the report,
    within CANCEL_GRACE seconds or it is killed.  Any other interruption,
    or a second one, kills it; the CLI is always reaped."""
    with open(os.path.join(work, "stdout"), "wb") as out, \
            open(os.path.join(work, "stderr"), "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                close_fds=True, cwd=work)
        try:
            try:
                return proc.wait(), None
            except KeyboardInterrupt as e:
                proc.send_signal(signal.SIGTERM)
                if not wait_exit(proc, CANCEL_GRACE):
                    proc.kill()
                return proc.wait(), e
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise
