"""The CLI's --quiet (what the cold client relies on): once the code may
have run, stderr holds the code's bytes and nothing of sandcell's own
(status lines, the reduced-mode warning), cold and over --server; what is
printed when nothing ran (usage errors, an unreachable server) stays."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

import client_util
import harness
from client_util import BIN

# The shared fixtures, by assignment (pytest finds them by name).
server, runner, no_leftover_dirs = client_util.server, client_util.runner, client_util.no_leftover_dirs

CODE = "import sys, time\nprint('code says', file=sys.stderr, flush=True)\ntime.sleep(30)\n"


def cli(*args: str, cwd: "str | None" = None) -> harness.Run:
    return harness.run_cmd([BIN, "run"] + list(args), stdin=None, cwd=cwd)


@pytest.mark.parametrize("warm", [False, True])
def test_quiet_leaves_stderr_to_the_code(server, tmp_path, warm):
    via = ["--server", server.socket] if warm else []
    loud = cli(*via, "--report", str(tmp_path / "a.json"), "--wall-time", "0.5", "-c", CODE)
    quiet = cli(*via, "--quiet", "--report", str(tmp_path / "b.json"), "--wall-time", "0.5", "-c", CODE)
    assert loud.rc == quiet.rc == 124
    assert loud.stderr == b"code says\nsandcell: timeout: wall-clock limit of 0.5 s reached; " \
                          b"the process tree was killed\n", loud.stderr
    assert quiet.stderr == b"code says\n"
    for name in ("a.json", "b.json"):
        assert json.loads((tmp_path / name).read_text())["status"] == "timeout"


def test_quiet_still_prints_what_ran_nothing(tmp_path):
    p = cli("--quiet", "--memory", "1M", "-c", "pass")
    assert p.rc == 125 and b"limits too small" in p.stderr
    p = cli("--quiet", "--server", str(tmp_path / "none.sock"), "-c", "pass")
    assert p.rc == 117 and b"unreachable: cannot reach the sandcell server" in p.stderr


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_quiet_drops_the_reduced_mode_warning(tmp_path):
    """Reduced mode for real (user namespaces taken away, as
    tests/integration/test_reduced_mode.py does): the warning goes, the
    report still lists what does not hold."""
    def run(*extra: str) -> harness.Run:
        return harness.run_cmd(harness.without_userns([BIN, "run", "--allow-reduced"] + list(extra) +
                                                      ["-c", "print('hi')"]), stdin=None, cwd=str(tmp_path))
    loud = run("--report", str(tmp_path / "a.json"))
    quiet = run("--quiet", "--report", str(tmp_path / "b.json"))
    if loud.rc != 0:
        pytest.skip("reduced mode does not run here: %r" % loud.stderr[-300:])
    assert b"REDUCED mode" in loud.stderr
    assert quiet.rc == 0 and quiet.stdout == b"hi\n" and quiet.stderr == b""
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["isolation"]["mode"] == "reduced" and rep["isolation"]["not_held"]


def test_help_lists_quiet():
    out = subprocess.run([BIN, "--help"], capture_output=True, check=True).stdout.decode()
    assert "\n  --quiet" in out
