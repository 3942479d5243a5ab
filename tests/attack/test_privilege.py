"""Attack rows A10 and B7-B8 (G3 no privilege): credentials, capabilities,
no_new_privs and seccomp mode of every task the code can create, the user
namespace mapping, and setuid binaries of the runtime.
"""
import os
import stat

import pytest

from harness import IS_ROOT, SANDBOX_UID_MIN, case, probe

SETUID_CANDIDATES = ["mount", "umount", "su", "passwd", "chsh", "chfn", "gpasswd", "newgrp"]
SETUID_BINS = [b for b in SETUID_CANDIDATES
               if os.path.exists("/usr/bin/" + b) and os.stat("/usr/bin/" + b).st_mode & stat.S_ISUID]

CODE = r'''
import threading, time, fcntl, subprocess
FIELDS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
          "NoNewPrivs", "Seccomp")
def status(path):
    d = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in FIELDS:
                d[k] = " ".join(v.split())
    return d
res = {}
ev = threading.Event()
threads = [threading.Thread(target=ev.wait) for _ in range(20)]
for t in threads:
    t.start()
tasks = os.listdir("/proc/self/task")
res["n_tasks"] = len(tasks)
res["tasks"] = [status("/proc/self/task/%%s/status" %% t) for t in tasks]
res["child"] = in_child(lambda: status("/proc/self/status"))["value"]
# an exec'd grandchild (fork + execve of the runtime's python)
out = subprocess.run(["/usr/bin/python3", "-I", "-c",
                      "print(open('/proc/self/status').read())"],
                     stdout=subprocess.PIPE, check=True).stdout.decode()
res["exec_child"] = {k: " ".join(v.split()) for k, _, v in
                     (l.partition(":") for l in out.splitlines()) if k in FIELDS}
ev.set()
for t in threads:
    t.join()
PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP, PR_CAPBSET_READ = 39, 21, 23
res["prctl_nnp"] = sc(157, PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)[0]
res["prctl_seccomp"] = sc(157, PR_GET_SECCOMP, 0, 0, 0, 0)[0]
res["bounding"] = [c for c in range(64) if sc(157, PR_CAPBSET_READ, c, 0, 0, 0)[0] == 1]
with open("/proc/self/uid_map") as f:
    res["uid_map"] = f.read().split()
with open("/proc/self/gid_map") as f:
    res["gid_map"] = f.read().split()
res["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()]
res["setgroups_py"] = oserr(os.setgroups, [0])
res["setuid_py"] = oserr(os.setuid, 0)
res["seteuid_py"] = oserr(os.seteuid, 0)

# B8: exec each setuid-root binary of the runtime; while it is blocked
# writing its --help text into a full pipe, read its credentials.
res["usr_nosuid"] = bool(os.statvfs("/usr/bin").f_flag & os.ST_NOSUID)
setuid = {}
for b in %r:
    path = "/usr/bin/" + b
    st = os.stat(path)
    rec = {"setuid_bit": bool(st.st_mode & 0o4000), "owner": st.st_uid}
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETFL, os.O_NONBLOCK)
    try:
        while True:
            os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    fcntl.fcntl(w, fcntl.F_SETFL, 0)
    p = subprocess.Popen([path, "--help"], stdout=w, stderr=w, stdin=subprocess.DEVNULL)
    os.close(w)
    deadline = time.time() + 5
    snap = None
    while time.time() < deadline:
        try:
            with open("/proc/%%d/stat" %% p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            comm = open("/proc/%%d/comm" %% p.pid).read().strip()
        except OSError:
            break
        if comm == b[:15] and fields[0] == "S":
            snap = status("/proc/%%d/status" %% p.pid)
            break
        time.sleep(0.01)
    rec["snap"] = snap
    p.kill()
    p.wait()
    os.close(r)
    setuid[b] = rec
res["setuid"] = setuid
emit(res)
''' % (SETUID_BINS,)


@pytest.fixture(scope="module")
def results():
    r, res = probe(CODE)
    assert r.status == "ok", r
    res["_report"] = r.report
    return res


ZERO = "0000000000000000"
# Supplementary groups: a root caller clears them before the code runs.  An
# unprivileged caller cannot (setgroups is denied in its user namespace
# before the gid map is written), so its own groups stay, seen through the
# map: its own gid as 1000, every other one as the overflow gid 65534.
if IS_ROOT:
    GROUPS = []
else:
    GROUPS = sorted({1000 if g == os.getegid() else 65534 for g in os.getgroups()})
EXPECT = {
    "CapInh": ZERO, "CapPrm": ZERO, "CapEff": ZERO, "CapBnd": ZERO, "CapAmb": ZERO,
    "NoNewPrivs": "1", "Seccomp": "2", "Uid": "1000 1000 1000 1000",
    "Gid": "1000 1000 1000 1000", "Groups": " ".join(str(g) for g in GROUPS),
}


def norm(st):
    """Groups as a sorted set (unmapped groups all read as 65534)."""
    if st is None:
        return None
    st = dict(st)
    st["Groups"] = " ".join(str(g) for g in sorted({int(g) for g in st.get("Groups", "").split()}))
    return st


@pytest.mark.parametrize("field", [case("G3" if f not in ("Seccomp",) else "G4",
                                        "all-21-tasks-" + f, f) for f in EXPECT])
def test_every_thread_has_no_privilege(host_postconditions, results, field):
    """A10: the main thread and 20 more, each read from /proc/self/task."""
    assert results["n_tasks"] >= 21
    assert [norm(t)[field] for t in results["tasks"]] == [EXPECT[field]] * results["n_tasks"]


@pytest.mark.parametrize("who", [case("G3", "forked-child", "child"),
                                 case("G3", "execd-grandchild", "exec_child")])
def test_descendants_have_no_privilege(host_postconditions, results, who):
    assert norm(results[who]) == EXPECT


def test_G3_prctl_reports_nnp_and_filter(host_postconditions, results):
    assert results["prctl_nnp"] == 1
    assert results["prctl_seccomp"] == 2
    assert results["bounding"] == []


def test_G3_user_namespace_maps_one_unprivileged_id(host_postconditions, results):
    """Only uid/gid 1000 is mapped, onto a host id that is not the
    supervisor's when it runs as root (a dedicated >= 2e9 id), and is the
    caller's own id otherwise (the only one it may map)."""
    host_uid = results["_report"]["isolation"]["host_uid"]
    assert results["uid_map"] == ["1000", str(host_uid), "1"]
    assert results["gid_map"][0] == "1000" and results["gid_map"][2] == "1"
    assert results["ids"][:4] == [1000, 1000, 1000, 1000]
    assert sorted(set(results["ids"][4])) == GROUPS
    if IS_ROOT:
        assert host_uid >= SANDBOX_UID_MIN and host_uid != os.geteuid()
        assert int(results["gid_map"][1]) >= SANDBOX_UID_MIN
    else:
        assert host_uid == os.geteuid()
        assert int(results["gid_map"][1]) == os.getegid()


@pytest.mark.parametrize("key", [case("G3", "os.setgroups-0", "setgroups_py"),
                                 case("G3", "os.setuid-0", "setuid_py"),
                                 case("G3", "os.seteuid-0", "seteuid_py")])
def test_python_level_id_changes_denied(host_postconditions, results, key):
    assert results[key] == 1  # EPERM


@pytest.mark.skipif(not SETUID_BINS, reason="no setuid binary on this host")
@pytest.mark.parametrize("binary", [case("G3", "setuid-exec-" + b, b) for b in SETUID_BINS])
def test_setuid_exec_gains_nothing(host_postconditions, results, binary):
    """B8: the runtime's setuid-root binaries keep their bit inside, yet
    running one gives no uid, gid or capability (nosuid + NNP + userns)."""
    assert results["usr_nosuid"]
    rec = results["setuid"][binary]
    assert rec["setuid_bit"], rec
    assert rec["snap"] is not None, "could not observe %s while it ran: %r" % (binary, rec)
    assert norm(rec["snap"]) == EXPECT, rec
