"""Fixtures of the black-box tiers (integration, attack); the helpers are
in tests/harness.py (importable as `harness`: pytest puts this directory
on sys.path for this file).

The binary under test is $SANDCELL_BIN (default build/sandcell).  Tests run
as root and, through tests/run-as-user.sh, as an unprivileged user; they
must pass both ways.
"""
import itertools
import pathlib
from typing import Callable, Iterator, Sequence

import pytest

import harness


@pytest.fixture
def sandcell(tmp_path: pathlib.Path) -> Callable[..., harness.Run]:
    """sandcell(code=..., file=..., args=[...], opts=[...], stdin=bytes) -> Run.

    Always asks for a report (kept in tmp_path as report-N.json) unless
    report=False; .report is the parsed JSON (every outcome has one, usage
    errors included; None only if it could not be written)."""
    counter = itertools.count(1)

    def run(code: str | None = None, file: str | pathlib.Path | None = None, args: Sequence[str] = (),
            opts: Sequence[str] = (), stdin: bytes = b"", timeout: float = 120,
            report: bool = True) -> harness.Run:
        rpath: pathlib.Path | bool = tmp_path / ("report-%d.json" % next(counter)) if report else False
        return harness.run_cli(code, file, args, opts, stdin=stdin, timeout=timeout, report=rpath)

    return run


@pytest.fixture
def host_postconditions() -> Iterator[None]:
    """Checks after a test that nothing escaped (threat model 4.6): no
    surviving sandbox process, no run cgroup left behind, no new host mount,
    runtime canaries byte-identical; for the runs the test made
    (harness.RUNS)."""
    before = harness.host_state()
    first = len(harness.RUNS)
    yield
    harness.check_runs_clean(before, harness.RUNS[first:])
