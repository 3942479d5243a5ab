"""Reduced mode (--allow-reduced) must not let the code change host files
it cannot write: Landlock denies writing their contents, and changing
their mode, times or owner is a write too.  The report's not_held list
names what reduced mode gives up; write confinement is not among it.

Same technique as test_reduced_mode.py: user namespaces are made
unavailable by setting max_user_namespaces to 0 inside a user namespace
of our own."""
import json
import os
import shutil
import textwrap

import pytest

from harness import BIN, SERVER, run_cmd, without_userns

UNSHARE = shutil.which("unshare")
pytestmark = [
    pytest.mark.skipif(UNSHARE is None, reason="util-linux unshare missing"),
    # Reduced mode is made by taking user namespaces away from the caller
    # (unshare); a warm server is another process, reached over a socket,
    # whose namespaces the test cannot take away: these cold runs say
    # nothing about warm mode.
    pytest.mark.skipif(bool(SERVER), reason="warm mode: reduced mode needs the supervisor inside "
                       "unshare, and the warm server is not"),
]


def run_reduced(args, tmp_path):
    return run_cmd(without_userns([BIN, "run", "--allow-reduced"] + args), stdin=None, cwd=str(tmp_path))


def test_reduced_mode_cannot_change_host_file_metadata(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    os.utime(victim, (1000000000, 1000000000))
    before = os.stat(victim)
    code = textwrap.dedent("""
        import json, os, sandcell
        p = sandcell.values["victim"]
        res = {}
        for name, fn in [("write", lambda: open(p, "a").write("x")),
                         ("chmod", lambda: os.chmod(p, 0o600)),
                         ("utime", lambda: os.utime(p, (0, 0))),
                         ("chown", lambda: os.chown(p, os.getuid(), os.getgid()))]:
            try:
                fn()
                res[name] = "changed"
            except OSError as e:
                res[name] = e.errno
        print(json.dumps(res))
    """)
    proc = run_reduced(["--report", str(tmp_path / "r.json"), "--value",
                        "victim=%s" % json.dumps(str(victim)), "-c", code], tmp_path)
    assert proc.rc == 0, proc
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["isolation"]["mode"] == "reduced"
    got = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    after = os.stat(victim)
    assert victim.read_text() == "precious\n"
    assert got["write"] != "changed", got
    assert (after.st_mode, after.st_mtime) == (before.st_mode, before.st_mtime), got
    assert got == {k: v for k, v in got.items() if v != "changed"}, got
