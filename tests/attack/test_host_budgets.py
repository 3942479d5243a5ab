"""Host-wide kernel budgets and run identity (G7, G8, G11).

The kernel keeps some budgets per user: inotify instances and watches,
queued signals, message-queue bytes, locked memory, namespaces.  It charges
what a process in a user namespace allocates at every level up to the
namespace's owner in the host namespace.  Each case here makes a run take
all it can of one budget and hold it, and then checks *from the host side*,
while the run still holds it, that host processes (root, or the
unprivileged caller) and a second run can still allocate from it.

Run identity: as root each live run has a host uid no other live run has
(an OFD lock on its byte of /run/sandcell/ids.lock, held by the sandbox
init), and the sandbox dies with a killed supervisor.
"""
import fcntl
import json
import os
import signal
import struct
import subprocess
import textwrap

import pytest

from harness import (IS_ROOT, MARK, PRELUDE, SANDBOX_UID_MIN as ID_BASE, SANDBOX_UID_SPAN as ID_SPAN, SERVER,
                     LiveRun, case, descendants, probe, sandbox_survivors, wait_gone)

ID_LOCK = "/run/sandcell/ids.lock"

HOLD = r'''
def hold(obj):
    """Reports what the run holds, then keeps it until the host says."""
    emit(obj)
    sys.stdin.readline()
'''


class Holder(LiveRun):
    """A run in the background that takes a budget, reports it, and holds
    it until release(); stdin is the handshake, so nothing sleeps."""

    def __init__(self, code, opts=()):
        super().__init__(PRELUDE + HOLD + textwrap.dedent(code), opts=["--wall-time", "60"] + list(opts))
        self.value = json.loads(self.first_line[len(MARK):]) if self.first_line.startswith(MARK) else None

    def release(self):
        """Lets the run end; returns (report, stderr)."""
        r = self.finish(b"go\n")
        return r.report, r.stderr


def host_python(code):
    """Runs code in a fresh host python3 as the caller; returns its stdout."""
    p = subprocess.run(["/usr/bin/python3", "-I", "-c", textwrap.dedent(code)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p
    return p.stdout.decode().strip()


HOST_INOTIFY = r'''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
w = libc.inotify_add_watch(fd, b"/", 0x100) if fd >= 0 else -1
print(fd >= 0, w >= 0, ctypes.get_errno())
'''

HOST_SIGQUEUE = r'''
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
class sigval(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]
r = libc.sigqueue(os.getpid(), int(signal.SIGRTMIN), sigval(1))
t = ctypes.c_void_p()
r2 = libc.timer_create(1, None, ctypes.byref(t))
print(r == 0, r2 == 0, ctypes.get_errno())
'''

BUDGETS = {
    # Every inotify instance the run can open (RLIMIT_NOFILE allows ~250).
    "inotify-instances": (r'''
fds = []
while len(fds) < 1000:
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    fds.append(fd)
hold({"held": len(fds), "errno": ctypes.get_errno()})
''', HOST_INOTIFY),
    # Watches: the same 1500 files watched from as many instances as the
    # run can open; before owner separation this reached root's
    # max_user_watches.
    "inotify-watches": (r'''
for i in range(1500):
    open("/tmp/w%d" % i, "w").close()
names = [("/tmp/w%d" % i).encode() for i in range(1500)]
n, fds, e = 0, [], 0
while len(fds) < 240 and not e:
    fd = libc.inotify_init1(0)
    if fd < 0:
        e = ctypes.get_errno()
        break
    fds.append(fd)
    for nm in names:
        if libc.inotify_add_watch(fd, nm, 0x2) < 0:
            e = ctypes.get_errno()
            break
        n += 1
hold({"held": n, "errno": e})
''', HOST_INOTIFY),
    # Queued real-time signals (and a POSIX timer, which preallocates one).
    "queued-signals": (r'''
import signal
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
class sigval(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]
n = 0
while n < 200000:
    if libc.sigqueue(os.getpid(), int(signal.SIGRTMIN), sigval(1)) != 0:
        break
    n += 1
hold({"held": n, "errno": ctypes.get_errno()})
''', HOST_SIGQUEUE),
}


@pytest.mark.parametrize("name", [case("G7", "host-budget-" + k, k) for k in BUDGETS])
def test_run_cannot_drain_a_host_budget(host_postconditions, name):
    """While a run holds all it can of a per-user budget, a host process of
    the caller's uid and a second run can still allocate from it."""
    code, host_check = BUDGETS[name]
    with Holder(code) as h:
        assert h.value is not None, h.release()
        assert h.value["held"] > 0, h.value
        host = host_python(host_check)
        other, res = probe(code.replace("hold(", "emit("))
        rep, err = h.release()
    assert host.split()[:2] == ["True", "True"], (name, host, h.value)
    assert other.status == "ok", other
    assert res["held"] > 0, res
    assert rep is not None and rep["status"] == "ok", (rep, err)


def test_G7_per_namespace_budgets_are_tight(host_postconditions):
    """The run's own share is small: a run can hold at most 16 inotify
    instances and 1024 watches, and 128 queued signals (RLIMIT_SIGPENDING),
    whatever the host's per-user defaults are."""
    _, res = probe(r'''
fds = [libc.inotify_init1(0) for _ in range(64)]
ok = [f for f in fds if f >= 0]
watches = 0
for i in range(1100):
    open("/tmp/f%d" % i, "w").close()
    if libc.inotify_add_watch(ok[0], ("/tmp/f%d" % i).encode(), 2) < 0:
        break
    watches += 1
import resource
emit({"instances": len(ok), "watches": watches,
      "sigpending": resource.getrlimit(resource.RLIMIT_SIGPENDING)})
''')
    assert res["instances"] == 16, res
    assert res["watches"] == 1024, res
    assert res["sigpending"] == [128, 128], res


def _flock(kind, start, length):
    # struct flock on x86_64: short type, short whence, off_t start, off_t len, pid_t pid.
    return struct.pack("hh4xqqi4x", kind, os.SEEK_SET, start, length, 0)


def _lock_holder(uid):
    """The lock state of uid's byte in the id lock file, seen from the host."""
    fd = os.open(ID_LOCK, os.O_RDWR)
    try:
        got = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(fcntl.F_WRLCK, uid - ID_BASE, 1))
        return struct.unpack("hh4xqqi4x", got)[0] != fcntl.F_UNLCK
    finally:
        os.close(fd)


def _host_uid(holder):
    """The run's host uid, from its own uid_map ("1000 HOSTUID 1")."""
    return int(holder.value["uid_map"].split()[1])


UID_MAP = 'hold({"uid_map": open("/proc/self/uid_map").read()})\n'


@pytest.mark.skipif(not IS_ROOT, reason="dedicated host uids are for root callers")
def test_G11_host_uid_avoids_ids_held_elsewhere(host_postconditions):
    """A run never takes an id another live run (of any CLI or server on
    the host) holds: with every id locked but 64, the run gets one of
    those 64.  (The old scheme, 2e9 + pid % 65536, ignored other runs.)"""
    free = set(range(1000, 65536, 1024))
    held = set()
    os.makedirs(os.path.dirname(ID_LOCK), mode=0o700, exist_ok=True)
    fd = os.open(ID_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for slot in range(ID_SPAN):
            if slot in free:
                continue
            try:
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK, slot, 1))
            except BlockingIOError:
                held.add(slot)  # a concurrent run holds it: just as unavailable
        r, res = probe('emit({"uid_map": open("/proc/self/uid_map").read()})')
    finally:
        os.close(fd)
    uid = int(res["uid_map"].split()[1])
    # A warm server's spares claim their ids while they are built, before
    # this test locked the rest: the run may have its spare's, which no
    # other run held (test_G11_concurrent_runs_hold_distinct_ids).
    assert uid - ID_BASE in (free | held if SERVER else free), (uid, r)
    assert r.report["isolation"]["host_uid"] == uid


@pytest.mark.skipif(not IS_ROOT, reason="dedicated host uids are for root callers")
def test_G11_concurrent_runs_hold_distinct_ids(host_postconditions):
    """Three live runs (a warm server may have only four slots): three
    host uids, each locked while its run lives and
    free once it has ended."""
    holders = [Holder(UID_MAP) for _ in range(3)]
    try:
        assert all(h.value for h in holders), [h.release() for h in holders]
        uids = [_host_uid(h) for h in holders]
        assert len(set(uids)) == 3, uids
        assert all(_lock_holder(u) for u in uids), uids
    finally:
        reps = [h.release() for h in holders]
    assert [rep["isolation"]["host_uid"] for rep, _ in reps] == uids
    assert not any(_lock_holder(u) for u in uids), uids


NS_GET_OWNER_UID = 0xB704


@pytest.mark.skipif(not IS_ROOT, reason="dedicated host uids are for root callers")
def test_G7_user_namespace_owned_by_the_run_uid(host_postconditions):
    """The kernel charges per-user budgets up to the namespace's owner: the
    run's user namespace is owned by its dedicated uid, not by root (read
    from the host with NS_GET_OWNER_UID on the sandbox's /proc/PID/ns/user)."""
    with Holder(UID_MAP) as h:
        assert h.value, h.release()
        uid = _host_uid(h)
        pids = sandbox_survivors(uid)
        owners = set()
        for pid in pids:
            fd = os.open("/proc/%s/ns/user" % pid, os.O_RDONLY)
            try:
                buf = bytearray(4)
                fcntl.ioctl(fd, NS_GET_OWNER_UID, buf)
                owners.add(struct.unpack("I", buf)[0])
            finally:
                os.close(fd)
        h.release()
    assert pids and owners == {uid}, (uid, owners)


@pytest.mark.skipif(SERVER is not None, reason="kills the CLI supervisor (cold runs)")
def test_G8_sandbox_dies_with_a_killed_supervisor(host_postconditions):
    """SIGKILL to the supervisor: the sandbox init has the parent-death
    signal armed after its last id change (which clears it), so the whole
    run dies at once instead of living on unsupervised; as root its id is
    free again once the sandbox is gone."""
    h = Holder(UID_MAP + "import time\ntime.sleep(50)\n")
    assert h.value, h.release()
    uid = _host_uid(h)
    run_pids = descendants(h.p.pid)
    assert run_pids, "no sandbox processes found below the supervisor"
    h.kill()
    left = wait_gone(run_pids, seconds=5)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "the sandbox outlived its supervisor"
    if IS_ROOT:
        assert not _lock_holder(uid)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
