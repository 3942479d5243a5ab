"""`sandcell selftest`: the host check a user runs before trusting sandcell.

On this machine every check must pass, as root and as an unprivileged user
(tests/run-as-user.sh runs this file too), with at least one check for each
guarantee G1..G11, a PASS row per check in the table, and a --json document
that says the same.  The selftest's own runs must leave nothing behind.
"""
import json
import re
import time

from harness import BIN, EXIT_USAGE, register_run, run_cmd

GUARANTEES = ["G%d" % i for i in range(1, 12)]
ROW = re.compile(r"^(G\d+)\s*\|\s*(.+?)\s*\|\s*(PASS|FAIL)\s*\|\s*(.*)$")


def selftest(*args, timeout=120):
    """Runs `sandcell selftest ARGS`; registers its runs (all made by that
    one supervisor process) for the host_postconditions fixture."""
    t0 = time.monotonic()
    proc = run_cmd([BIN, "selftest"] + list(args), stdin=None, timeout=timeout)
    m = re.search(rb"sandbox host uid (\d+)", proc.stdout) or re.search(rb'"host_uid": (\d+)', proc.stdout)
    register_run(proc.pid, int(m.group(1)) if m else None)
    return proc, time.monotonic() - t0


def test_selftest_table_all_pass(host_postconditions):
    proc, secs = selftest()
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.rc == 0, (out, proc.stderr)
    rows = [m.groups() for m in map(ROW.match, out.splitlines()) if m]
    assert rows, out
    failed = [r for r in rows if r[2] != "PASS"]
    assert failed == [], failed
    seen = {r[0] for r in rows}
    assert seen == set(GUARANTEES), seen
    for gid in GUARANTEES:
        assert any(r[0] == gid and r[2] == "PASS" for r in rows), gid
    assert 15 <= len(rows) <= 40, len(rows)
    assert re.search(r"^%d checks: %d passed, 0 failed" % (len(rows), len(rows)), out, re.M), out
    # Small limits keep it quick (generous bound for sanitizer builds).
    assert secs < 60, secs


def test_selftest_json(host_postconditions):
    proc, _ = selftest("--json")
    assert proc.rc == 0, proc
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["exit_code"] == 0 and doc["error"] is None, doc
    assert doc["mode"] == "full", doc
    assert doc["failed"] == 0 and doc["passed"] == len(doc["checks"]) >= 15, doc
    for c in doc["checks"]:
        assert set(c) == {"guarantee", "check", "result", "detail"}, c
        assert c["result"] == "PASS", c
        assert c["detail"], c
    assert {c["guarantee"] for c in doc["checks"]} == set(GUARANTEES)


def test_selftest_usage_error():
    proc, _ = selftest("--no-such-option")
    assert proc.rc == EXIT_USAGE, proc
    assert b"selftest" in proc.stderr and proc.stdout == b""


def test_selftest_cannot_start_is_126():
    proc, _ = selftest("--json", "--python", "/nonexistent/python3")
    assert proc.rc == 126, proc
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 126 and doc["checks"] == [], doc
    assert "python3" in doc["error"], doc
    assert b"cannot start" in proc.stderr
