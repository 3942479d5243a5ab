"""Attack rows X1, D8 (G11 run independence): nothing persists from one
run into the next, and concurrent runs neither see nor affect each other.
"""
import errno
import os
import secrets

import pytest

from harness import IS_ROOT, PRELUDE, SANDBOX_UID_MIN, SERVER, VIA_SESSION, LiveRun, case, check_host_clean, children, \
    host_mounts, host_uid_of, run, server_pid

E = errno
TOKEN = "sandcell-x-" + secrets.token_hex(6)
PLANT = ["/tmp/" + TOKEN, "/dev/shm/" + TOKEN, "/output/" + TOKEN, "/tmp/.cache/" + TOKEN,
         "/tmp/__pycache__/" + TOKEN]


@pytest.fixture(scope="module")
def two_runs():
    first = run('''
for p in %r:
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write("planted")
emit(sorted(p for p in %r if os.path.exists(p)))
''' % (PLANT, PLANT))
    second = run('''
emit({"exists": [p for p in %r if os.path.exists(p)],
      "tmp": os.listdir("/tmp"), "shm": os.listdir("/dev/shm"), "output": os.listdir("/output")})
''' % (PLANT,))
    return first, second


def test_G11_plants_were_made(host_postconditions, two_runs):
    assert two_runs[0].result() == sorted(PLANT)


@pytest.mark.parametrize("path", [case("G11", "no-persist" + p.replace("/", "-").replace(TOKEN, "x"), p)
                                  for p in PLANT])
def test_planted_file_absent_in_next_run(host_postconditions, two_runs, path):
    """D8: files planted in /tmp, /dev/shm, /output, caches are gone in the
    next run (fresh tmpfs per run)."""
    assert path not in two_runs[1].result()["exists"]


def test_G11_next_run_starts_empty(host_postconditions, two_runs):
    res = two_runs[1].result()
    assert res["tmp"] == [] and res["shm"] == [] and res["output"] == []


def test_G2_planted_files_not_on_host(host_postconditions, two_runs):
    """The sandbox's /tmp and /dev/shm are not the host's."""
    for p in PLANT:
        assert not os.path.exists(p), p


A_BODY = r'''
import socket, time, select
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("\0" + %(tok)r)
srv.listen(4)
with open("/tmp/" + %(tok)r, "w") as f:
    f.write("A")
print("READY", os.getpid(), flush=True)
select.select([sys.stdin], [], [], 20)
srv.setblocking(False)
try:
    srv.accept()
    accepted = True
except BlockingIOError:
    accepted = False
emit({"accepted": accepted, "marker": open("/tmp/" + %(tok)r).read(), "pids": sorted(
    int(p) for p in os.listdir("/proc") if p.isdigit())})
'''

B_CODE = r'''
import socket
res = {"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "me": os.getpid()}
alive = []
for p in range(1, 4096):
    try:
        os.kill(p, 0)
        alive.append(p)
    except ProcessLookupError:
        pass
    except PermissionError:
        alive.append(p)
res["alive"] = alive
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
res["connect-A"] = oserr(s.connect, "\0" + %(tok)r)
res["marker-A"] = os.path.exists("/tmp/" + %(tok)r)
res["kill-A-host-pid"] = oserr(os.kill, %(apid)d, 9)
res["pidfd-A-host-pid"] = err_of(sc(434, %(apid)d, 0))
res["abstract-names"] = [l.split()[-1] for l in open("/proc/net/unix").read().splitlines()[1:]
                         if l.split()[-1].startswith("@")] if os.path.exists("/proc/net/unix") else []
emit(res)
'''


@pytest.fixture(scope="module")
def concurrent():
    if VIA_SESSION:
        pytest.skip("session mode: run A blocks in select() on its stdin fd, which a cell does not have "
                    "(concurrent sessions: test_sessions.py::test_G11_concurrent_sessions_are_apart)")
    tok = "sandcell-x-run-a-" + secrets.token_hex(6)
    mounts = host_mounts()
    with LiveRun(PRELUDE + A_BODY % {"tok": tok}) as a:
        assert a.first_line.startswith("READY"), a.finish()
        # Run A's code as the host sees it: supervisor -> init -> code.  On
        # a warm server the supervisor is the server's worker, not the
        # client: server -> worker -> init -> code (A is the only run).
        if SERVER:
            inits = [i for w in children(server_pid()) for i in children(w)]
        else:
            inits = children(a.p.pid)
        apid = children(inits[0])[0] if inits and children(inits[0]) else 0
        assert apid > 0
        b = run(B_CODE % {"tok": tok, "apid": apid})
        ra = a.finish(b"", timeout=60)
    check_host_clean(mounts, ra.pid, host_uid_of(ra.report))
    assert ra.status == "ok", ra
    return {"a": ra.result(), "a_report": ra.report, "b": b.result(), "b_report": b.report}


def test_G11_concurrent_run_sees_only_its_own_pids(host_postconditions, concurrent):
    """X1: run B's /proc and a kill(p, 0) scan show only B's own init and
    code, never run A's processes."""
    b = concurrent["b"]
    assert b["pids"] == sorted({1, b["me"]})
    assert b["alive"] == sorted({1, b["me"]})


def test_G11_concurrent_run_cannot_reach_other_abstract_socket(host_postconditions, concurrent):
    assert concurrent["b"]["connect-A"] == E.ECONNREFUSED
    assert concurrent["a"]["accepted"] is False


def test_G11_concurrent_run_cannot_see_other_scratch(host_postconditions, concurrent):
    assert concurrent["b"]["marker-A"] is False
    assert concurrent["a"]["marker"] == "A"


def test_G11_concurrent_run_cannot_signal_other(host_postconditions, concurrent):
    """B aims SIGKILL and pidfd_open at A's code by its host pid: that pid
    does not exist in B's namespace (ESRCH) and A finishes normally."""
    assert concurrent["b"]["kill-A-host-pid"] == E.ESRCH
    assert concurrent["b"]["pidfd-A-host-pid"] == E.ESRCH
    assert concurrent["a_report"]["status"] == "ok"


def test_G11_concurrent_runs_have_distinct_host_uids(host_postconditions, concurrent):
    """As root each run gets its own host uid, so a process of one run
    could not signal or ptrace the other even outside the namespaces."""
    ua = concurrent["a_report"]["isolation"]["host_uid"]
    ub = concurrent["b_report"]["isolation"]["host_uid"]
    if IS_ROOT:
        assert ua != ub and ua >= SANDBOX_UID_MIN and ub >= SANDBOX_UID_MIN
    else:
        assert ua == ub == os.geteuid()
