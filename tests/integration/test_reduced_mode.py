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

from harness import BIN, EXIT_SANDBOX, SERVER, alive, nb_validate, run_cmd, wait_gone, without_userns

UNSHARE = shutil.which("unshare")


def run_without_userns(args, tmp_path):
    return run_cmd(without_userns([BIN, "run"] + args), stdin=None, cwd=str(tmp_path))


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
    assert proc.rc == EXIT_SANDBOX, proc
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
    assert proc.rc == 0, proc
    assert proc.stdout.decode().strip() == "hello input"
    assert b"REDUCED mode" in proc.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["isolation"]["mode"] == "reduced"
    assert rep["isolation"]["namespaces"]["user"] is False
    assert rep["isolation"]["seccomp"] is True and rep["isolation"]["landlock"]["fs"] is True
    assert any("pid namespace" in s for s in rep["isolation"]["not_held"])
    # No per-run inodes without a mount namespace: said, not hidden.
    assert any(s.startswith("private inodes:") for s in rep["isolation"]["not_held"])
    assert (out / "out.txt").read_text() == "written"
    assert set(rep["result"]["denied"]) >= {"/etc/shadow", "write", "inet"}
    assert not os.path.exists("/var/tmp/sandcell-reduced-escape")
    # the private directory is gone after the run
    assert not [p for p in os.listdir(str(tmp_path)) if p.startswith("sandcell-")]


def test_reduced_run_dies_with_a_killed_supervisor(tmp_path):
    """G8 without a pid namespace: SIGKILL to the supervisor reaches the
    sandbox init as SIGTERM (its parent-death signal), and init kills the
    code and a setsid daemon of it before it exits."""
    code = ("import os, sys, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        print('DAEMON', os.getpid(), flush=True)\n"
            "        time.sleep(60)\n"
            "    os._exit(0)\n"
            "time.sleep(0.2)\n"
            "print('CODE', os.getpid(), flush=True)\n"
            "time.sleep(60)\n")
    p = subprocess.Popen(without_userns([BIN, "run", "--allow-reduced", "--wall-time", "60", "-c", code]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path))
    pids = {}
    while len(pids) < 2:
        line = p.stdout.readline().decode()
        assert line, p.communicate()
        kind, pid = line.split()
        pids[kind] = int(pid)
    assert all(alive(pid) for pid in pids.values()), pids
    p.kill()
    p.communicate(timeout=30)
    left = wait_gone(pids.values(), seconds=5)
    for pid in left:
        os.kill(pid, 9)
    assert left == [], "the run outlived its supervisor: %r" % pids


NO_CAPS_WRAPPER = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.geteuid(), os.getegid()
if libc.unshare(0x10000000) != 0:
    sys.exit("unshare: %d" % ctypes.get_errno())
open("/proc/self/setgroups", "w").write("deny")
open("/proc/self/uid_map", "w").write("1000 %d 1" % uid)
open("/proc/self/gid_map", "w").write("1000 %d 1" % gid)
open("/proc/sys/user/max_user_namespaces", "w").write("0")
os.setresgid(1000, 1000, 1000)
os.setresuid(1000, 1000, 1000)
os.execv(sys.argv[1], sys.argv[1:])
'''


def test_reduced_mode_without_any_capability(tmp_path):
    """An unprivileged caller with no capability at all (uid 1000 of its
    own user namespace, no nested namespaces allowed) still gets reduced
    mode: there is nothing to drop, so the bounding set and securebits
    (which need CAP_SETPCAP) are skipped, and no_new_privs keeps it so."""
    code = ("import os\n"
            "st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines()"
            " if ':\\t' in l)\n"
            "print(st['CapPrm'].strip(), st['CapEff'].strip(), st['NoNewPrivs'].strip())\n")
    proc = subprocess.run(["/usr/bin/python3", "-I", "-c", NO_CAPS_WRAPPER, BIN, "run",
                           "--allow-reduced", "--report", str(tmp_path / "r.json"), "-c", code],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                          cwd=str(tmp_path), env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc
    assert proc.stdout.split() == [b"0000000000000000", b"0000000000000000", b"1"], proc
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["isolation"]["mode"] == "reduced", rep
    assert rep["isolation"]["seccomp"] is True and rep["isolation"]["landlock"]["fs"] is True


def test_cell_mode_reduced(tmp_path):
    """Cell mode where the bootstrap and its modules sit in a private host
    directory: outputs, the structured error and the location work the same."""
    code = ("import matplotlib.pyplot as plt\nprint('p')\nplt.plot([1])\nplt.show()\n"
            "def f():\n    raise ValueError('v')\nf()\n")
    rpath = tmp_path / "r.json"
    proc = run_without_userns(["--allow-reduced", "--cell", "--report", str(rpath), "-c", code],
                              tmp_path)
    rep = json.loads(rpath.read_text())
    assert rep["isolation"]["mode"] == "reduced", rep
    assert proc.rc == 1 and rep["status"] == "exited", proc
    outs = rep["cell"]["outputs"]
    assert [o["output_type"] for o in outs] == ["stream", "display_data", "error"], outs
    assert rep["error"]["ename"] == "ValueError"
    tb = "\n".join(rep["error"]["traceback"])
    assert 'File "<cell>", line 7, in <module>' in tb and "raise ValueError('v')" in tb, tb
    assert ".sandcell" not in tb and "sandcell-" not in tb, tb
    nb_validate(outs)
