"""Reduced mode: where user namespaces are unavailable, sandcell refuses by
default and, with --allow-reduced, runs under Landlock, seccomp and rlimits
only, saying so in the report and on stderr.

User namespaces are made unavailable for real: inside a user namespace of
our own, /proc/sys/user/max_user_namespaces is set to 0, which forbids any
nested one (the mechanism of bubblewrap's --disable-userns)."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import BIN, EXIT_SANDBOX, SERVER

UNSHARE = shutil.which("unshare")


def run_without_userns(args, tmp_path):
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
    proc = subprocess.run([UNSHARE, "--user", "--map-root-user", "sh", "-c", script, "sh", BIN, "run"] + args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, cwd=str(tmp_path))
    return proc


pytestmark = [
    pytest.mark.skipif(UNSHARE is None, reason="util-linux unshare missing"),
    # Reduced mode is made by taking user namespaces away from the caller
    # (unshare); a warm server is another process, reached over a socket,
    # whose namespaces the test cannot take away: these cold runs say
    # nothing about warm mode.
    pytest.mark.skipif(bool(SERVER), reason="warm mode: reduced mode needs the supervisor inside "
                       "unshare, and the warm server is not"),
]


def test_refuses_without_allow_reduced(tmp_path):
    proc = run_without_userns(["--report", str(tmp_path / "r.json"), "-c", "open('/tmp/ran','w')"], tmp_path)
    assert proc.returncode == EXIT_SANDBOX, proc
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["status"] == "sandbox-error"
    assert rep["script"]["started"] is False
    assert b"allow-reduced" in proc.stderr


def test_allow_reduced_runs_and_reports(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("hello input\n")
    code = (
        "import os, sandcell\n"
        "print(open(sandcell.inputs['d']).read().strip())\n"
        "open(os.path.join(sandcell.output, 'out.txt'), 'w').write('written')\n"
        "denied = []\n"
        "for p in ['/etc/shadow', '/root', os.path.expanduser('~root')]:\n"
        "    try:\n"
        "        os.listdir(p) if os.path.isdir(p) else open(p).read()\n"
        "    except OSError:\n"
        "        denied.append(p)\n"
        "try:\n"
        "    open('/var/tmp/sandcell-reduced-escape', 'w')\n"
        "except OSError:\n"
        "    denied.append('write')\n"
        "import socket\n"
        "try:\n"
        "    socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "except OSError:\n"
        "    denied.append('inet')\n"
        "sandcell.result({'denied': denied})\n")
    out = tmp_path / "out"
    proc = run_without_userns(["--allow-reduced", "--input", "d=%s" % data, "--output", str(out),
                               "--report", str(tmp_path / "r.json"), "-c", code], tmp_path)
    assert proc.returncode == 0, proc
    assert proc.stdout.decode().strip() == "hello input"
    assert b"REDUCED mode" in proc.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["isolation"]["mode"] == "reduced"
    assert rep["isolation"]["namespaces"]["user"] is False
    assert rep["isolation"]["seccomp"] is True and rep["isolation"]["landlock"]["fs"] is True
    assert any("pid namespace" in s for s in rep["isolation"]["not_held"])
    assert (out / "out.txt").read_text() == "written"
    assert set(rep["result"]["denied"]) >= {"/etc/shadow", "write", "inet"}
    assert not os.path.exists("/var/tmp/sandcell-reduced-escape")
    # the private directory is gone after the run
    assert not [p for p in os.listdir(str(tmp_path)) if p.startswith("sandcell-")]
