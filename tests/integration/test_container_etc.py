"""A container's /etc: every container runtime (podman, Docker,
Kubernetes) bind-mounts /etc/hosts, /etc/hostname and /etc/resolv.conf
into it.  Inside the sandbox's user namespace those mounts are locked, and
the kernel refuses the overlay of /etc that gives a run its private /etc
inodes (a private clone of /etc would uncover what lies beneath them).
sandcell must still run with full isolation there: directories get
overlays of their own, plain files are copied into the run's root, and a
file that cannot be copied safely stops the run before the code starts.

The test builds that /etc in a private mount namespace of the host.
"""
import json
import os
import shutil

import pytest

from harness import BIN, IS_ROOT, SERVER, host_uid_of, load_report, register_run, run_cmd

pytestmark = [
    pytest.mark.skipif(not IS_ROOT, reason="binding over /etc needs root"),
    pytest.mark.skipif(bool(SERVER), reason="the /etc view is the supervisor's: a cold run"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare"),
]

PROBE = r'''
import json, os
def ident(p):
    st = os.stat(p)
    return [st.st_dev, st.st_ino]
info = {
    "hostname": open("/etc/hostname").read(),
    "ld_cache": open("/etc/ld.so.cache", "rb").read().hex()[:64],
    "ld_cache_id": ident("/etc/ld.so.cache"),
    "mime_size": os.path.getsize("/etc/mime.types") if os.path.exists("/etc/mime.types") else None,
    "writable": os.access("/etc/ld.so.cache", os.W_OK),
    "mounts": [l.split()[4] for l in open("/proc/self/mountinfo")],
}
try:
    open("/etc/ld.so.cache", "ab")
    info["opened_for_write"] = True
except OSError:
    info["opened_for_write"] = False
import numpy, matplotlib.pyplot
print(json.dumps(info))
'''


def run_in_container_etc(tmp_path, binds, code):
    """Runs code with each (host file, /etc path) of binds mounted over it."""
    rpath = tmp_path / "report.json"
    script = " && ".join('mount --bind "%s" "%s"' % b for b in binds) + ' && exec "$@"'
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", BIN, "run",
           "--report", str(rpath), "-c", code]
    p = run_cmd(cmd, stdin=None)
    rep = load_report(rpath)
    register_run(p.pid, host_uid_of(rep))
    return p, rep


def fake(tmp_path, name, text, mode=0o644):
    f = tmp_path / name
    f.write_text(text)
    f.chmod(mode)
    return str(f)


def test_etc_with_runtime_binds_runs_fully_isolated(tmp_path, host_postconditions):
    binds = [(fake(tmp_path, "hostname", "container-host-7f3a\n"), "/etc/hostname"),
             (fake(tmp_path, "hosts", "10.9.8.7 secret-backend\n"), "/etc/hosts"),
             (fake(tmp_path, "resolv", "nameserver 10.9.8.53\n"), "/etc/resolv.conf")]
    p, rep = run_in_container_etc(tmp_path, binds, PROBE)
    assert p.rc == 0, (p, rep)
    assert rep["isolation"]["mode"] == "full" and rep["isolation"]["not_held"] == [], rep
    info = json.loads(p.stdout.decode().strip().splitlines()[-1])
    # The sandbox's own /etc, never the container's bound files.
    assert info["hostname"] == "sandcell\n", info
    with open("/etc/ld.so.cache", "rb") as f:
        assert info["ld_cache"] == f.read().hex()[:64]
    host = os.stat("/etc/ld.so.cache")
    # A private inode: not the host's file (a lock or watch on it reaches
    # no host process), and read-only.
    assert info["ld_cache_id"] != [host.st_dev, host.st_ino], info
    assert info["writable"] is False and info["opened_for_write"] is False, info
    if os.path.exists("/etc/mime.types"):
        assert info["mime_size"] == os.path.getsize("/etc/mime.types"), info
    # The copies are files of the run's root, not mounts of host files.
    assert "/etc/ld.so.cache" not in info["mounts"], info


def test_etc_file_that_cannot_be_copied_stops_the_run(tmp_path, host_postconditions):
    if not os.path.exists("/etc/mime.types"):
        pytest.skip("no /etc/mime.types on this host")
    binds = [(fake(tmp_path, "hostname", "container-host\n"), "/etc/hostname"),
             # a file only its owner may read: a bind would not show it to
             # the code, so a copy must not either
             (fake(tmp_path, "mime", "secret/type x\n", 0o600), "/etc/mime.types")]
    p, rep = run_in_container_etc(tmp_path, binds, "print('the code ran')")
    assert p.rc == 126, (p, rep)
    assert b"the code ran" not in p.stdout
    assert rep["status"] == "sandbox-error" and rep["script"]["started"] is False, rep
    assert "/etc/mime.types" in rep["error"], rep
