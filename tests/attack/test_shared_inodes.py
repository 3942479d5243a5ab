"""Locks, watches and futexes on shared inodes (G2, G5, G11).

The kernel keeps some state per inode rather than per open file: flock,
POSIX and OFD locks, leases, inotify and dnotify marks, the reader and
writer ends of a FIFO, the socket bound to a path.  A bind mount would show
the code the host's own inodes of the runtime, the inputs, the /etc
entries and the device nodes, and with them that state: a read lock taken
by the code blocks a host writer's lock, a watch reports the host's own
opens, a socket in an input directory connects to the host process behind
it, and two concurrent runs meet on the same inodes.

Each case takes the state inside a run that holds it, and checks *from the
host side* (or from a second, concurrent run) while it is held that
nothing of it shows there.  What stays shared is stated in docs/SECURITY.md
(Known limits) and pinned here too: futex words in pages of host files
(the page cache is shared), and, for unprivileged callers, the five device
nodes (only root can make the run its own).
"""
import errno
import fcntl
import json
import os
import socket
import struct
import sys
import textwrap

import pytest

from harness import (IS_ROOT, MARK, PRELUDE, SERVER, LiveRun, case, check_host_clean, host_mounts, host_uid_of,
                     probe)

E = errno
PY = os.path.realpath(sys.executable)            # the runtime's interpreter binary
OS_PY = os.path.realpath(os.__file__)            # a runtime module
ETC = "/etc/ld.so.cache"
F_OFD_GETLK, F_OFD_SETLK = 36, 37
F_SETLEASE, F_NOTIFY, F_SET_RW_HINT = 1024, 1026, 1036


def flock_struct(kind, start=0, length=0):
    # struct flock on x86_64: short type, short whence, off_t start, off_t len, pid_t pid.
    return struct.pack("hhqqi", kind, 0, start, length, 0)


HOLD = r'''
import fcntl, struct
def hold(obj):
    """Reports, then keeps everything until the host writes a line."""
    emit(obj)
    sys.stdin.readline()
def take_locks(path):
    """flock LOCK_EX, a POSIX read lock and an OFD read lock, each on its
    own read-only fd: all three are what a read-only fd allows."""
    got = {}
    fds = [os.open(path, os.O_RDONLY) for _ in range(3)]
    got["flock"] = oserr(fcntl.flock, fds[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
    got["posix"] = oserr(fcntl.lockf, fds[1], fcntl.LOCK_SH | fcntl.LOCK_NB)
    got["ofd"] = oserr(fcntl.fcntl, fds[2], 37, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0))
    return got, fds
'''


class Holder(LiveRun):
    """A run in the background that takes some state, reports it (one JSON
    line after MARK) and holds it until release(); stdin is the handshake,
    so nothing sleeps."""

    def __init__(self, code, opts=(), prefix=()):
        self.mounts = host_mounts()
        super().__init__(PRELUDE + HOLD + textwrap.dedent(code), opts=["--wall-time", "60"] + list(opts),
                         prefix=prefix)
        self.value = json.loads(self.first_line[len(MARK):]) if self.first_line.startswith(MARK) else None

    def release(self, data=b"\n"):
        """Lets the run go on; returns (last JSON it printed after the first
        line, report, stderr)."""
        fresh = self.run is None
        r = self.finish(data, timeout=60)
        if fresh:
            check_host_clean(self.mounts, r.pid, host_uid_of(r.report))
        lines = [ln for ln in r.stdout[len(self.first):].decode("utf-8", "replace").splitlines()
                 if ln.startswith(MARK)]
        return (json.loads(lines[-1][len(MARK):]) if lines else None, r.report, r.stderr)

    def __exit__(self, *exc):
        self.release()


def host_lock_view(path):
    """What a host process finds on path: can it take flock LOCK_EX, and
    does F_GETLK / F_OFD_GETLK report a lock that conflicts with a write
    lock?  (A read-only fd is enough to ask; the host's own locks are
    released before returning.)"""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fl = "free"
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as e:
            fl = errno.errorcode[e.errno]
        posix = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, flock_struct(fcntl.F_WRLCK)))[0]
        ofd = struct.unpack("hhqqi", fcntl.fcntl(fd, F_OFD_GETLK, flock_struct(fcntl.F_WRLCK)))[0]
    finally:
        os.close(fd)
    unl = fcntl.F_UNLCK
    return {"flock": fl, "posix": "free" if posix == unl else "locked",
            "ofd": "free" if ofd == unl else "locked"}


FREE = {"flock": "free", "posix": "free", "ofd": "free"}


@pytest.fixture
def inputs(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("a,b\n1,2\n")
    d = tmp_path / "tree"
    d.mkdir()
    (d / "inner.txt").write_text("inner\n")
    return {"file": str(f), "dir": str(d), "dirfile": str(d / "inner.txt")}


TARGETS = {
    # name: (path inside the sandbox, host path or input key)
    "runtime-binary": (PY, PY),
    "runtime-module": (OS_PY, OS_PY),
    "etc-entry": (ETC, ETC),
    "input-file": ("/input/f", "file"),
    "input-dir-file": ("/input/d/inner.txt", "dirfile"),
    "dev-null": ("/dev/null", "/dev/null"),
}


def _host_path(spec, inputs):
    return inputs.get(spec, spec)


@pytest.mark.parametrize("target", [case("G2", "host-locks-" + t, t) for t in TARGETS])
def test_run_locks_do_not_reach_host(host_postconditions, inputs, target):
    """While a run holds flock, POSIX and OFD locks on a file it can read,
    a host process still gets flock LOCK_EX and sees no conflicting lock.
    Root callers' runs have their own device nodes; an unprivileged
    caller's run gets the host's, and its locks on them do reach the host
    (docs/SECURITY.md, Known limits): pinned as such."""
    inner, spec = TARGETS[target]
    opts = ["--input", "f=" + inputs["file"], "--input", "d=" + inputs["dir"]]
    with Holder('''
got, fds = take_locks(%r)
hold(got)
''' % inner, opts) as h:
        assert h.value == {"flock": 0, "posix": 0, "ofd": 0}, (h.value, h.release())
        view = host_lock_view(_host_path(spec, inputs))
        _, rep, err = h.release()
    assert rep["status"] == "ok", (rep, err)
    if target == "dev-null" and not IS_ROOT:
        assert view == {"flock": "EAGAIN", "posix": "locked", "ofd": "locked"}, view
    else:
        assert view == FREE, view


INOTIFY = r'''
import ctypes
IN_ALL = 0xfff
lib = ctypes.CDLL(None, use_errno=True)
ifd = lib.inotify_init1(os.O_NONBLOCK)
wds = {}
for p in %(paths)r:
    wds[lib.inotify_add_watch(ifd, p.encode(), IN_ALL)] = p
def events():
    seen = []
    try:
        buf = os.read(ifd, 65536)
    except BlockingIOError:
        return seen
    off = 0
    while off < len(buf):
        wd, mask, _, ln = struct.unpack_from("iIII", buf, off)
        seen.append([wds.get(wd, wd), mask])
        off += 16 + ln
    return seen
'''


def test_G5_watches_do_not_see_host_activity(host_postconditions, inputs):
    """A run watching its inputs, the runtime, an /etc entry and /dev/null
    with inotify sees nothing of a host process that opens, reads and
    writes them (inotify delivers synchronously: the events of the host's
    calls are queued before they return)."""
    paths = ["/input/f", "/input/d", "/input/d/inner.txt", OS_PY, ETC, "/dev/null"]
    opts = ["--input", "f=" + inputs["file"], "--input", "d=" + inputs["dir"]]
    with Holder(INOTIFY % {"paths": paths} + '''
hold({"watches": sorted(wds.values()), "before": events()})
emit({"after": events()})
''', opts) as h:
        assert h.value is not None and h.value["watches"] == sorted(paths), (h.value, h.release())
        assert h.value["before"] == [], h.value
        for p in (inputs["file"], inputs["dirfile"], OS_PY, ETC):
            with open(p, "rb") as f:
                f.read()
        with open(inputs["file"], "a") as f:
            f.write("3,4\n")
        with open(os.path.join(inputs["dir"], "new.txt"), "w") as f:
            f.write("new")
        with open("/dev/null", "w") as f:
            f.write("x")
        res, rep, err = h.release()
    assert rep["status"] == "ok", (rep, err)
    seen = {p for p, _ in res["after"]}
    if IS_ROOT:
        assert seen == set(), res
    else:
        # The host's /dev/null (docs/SECURITY.md, Known limits).
        assert seen == {"/dev/null"}, res


def test_G2_inode_wide_fcntl_commands_denied(host_postconditions, inputs):
    """Leases (block other openers), dnotify (watches a directory) and
    write-life hints (change the inode) are refused by the filter, on
    every kind of file; the usual commands still work."""
    _, res = probe(r'''
import fcntl, struct
out = {}
for p in ("/input/f", "/input/d", "/tmp", "/dev/null", %r):
    fd = os.open(p, os.O_RDONLY)
    out[p] = {"lease": oserr(fcntl.fcntl, fd, 1024, fcntl.F_RDLCK),
              "getlease": oserr(fcntl.fcntl, fd, 1025),
              "notify": oserr(fcntl.fcntl, fd, 1026, 0x80000003),
              "rw-hint": oserr(fcntl.fcntl, fd, 1036, struct.pack("Q", 2)),
              "file-rw-hint": oserr(fcntl.fcntl, fd, 1038, struct.pack("Q", 2)),
              "getfl": oserr(fcntl.fcntl, fd, fcntl.F_GETFL),
              "dupfd-cloexec": oserr(fcntl.fcntl, fd, fcntl.F_DUPFD_CLOEXEC, 10)}
emit(out)
''' % OS_PY, opts=["--input", "f=" + inputs["file"], "--input", "d=" + inputs["dir"]])
    for p, got in res.items():
        assert got == {"lease": E.ENOSYS, "getlease": E.ENOSYS, "notify": E.ENOSYS,
                       "rw-hint": E.ENOSYS, "file-rw-hint": E.ENOSYS, "getfl": 0,
                       "dupfd-cloexec": 0}, (p, got)


def test_G5_fifo_and_socket_in_input_dir_are_inert(host_postconditions, tmp_path):
    """A host unix socket and a host FIFO that live in an input directory:
    the code can neither connect to the socket nor become a reader of the
    FIFO (the host's writer finds no reader)."""
    d = tmp_path / "ipc"
    d.mkdir()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(d / "sock"))
    os.chmod(d / "sock", 0o777)
    srv.listen(4)
    srv.setblocking(False)
    os.mkfifo(d / "fifo", 0o666)
    try:
        with Holder(r'''
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
res = {"connect": oserr(s.connect, "/input/ipc/sock")}
try:
    ffd = os.open("/input/ipc/fifo", os.O_RDONLY | os.O_NONBLOCK)
    res["fifo-open"] = 0
except OSError as e:
    res["fifo-open"] = e.errno
hold(res)
''', ["--input", "ipc=%s" % d]) as h:
            assert h.value is not None, h.release()
            try:
                w = os.open(d / "fifo", os.O_WRONLY | os.O_NONBLOCK)
                os.close(w)
                host_writer = "found a reader"
            except OSError as e:
                host_writer = errno.errorcode[e.errno]
            try:
                srv.accept()[0].close()
                accepted = True
            except BlockingIOError:
                accepted = False
            _, rep, err = h.release()
    finally:
        srv.close()
    assert rep["status"] == "ok", (rep, err)
    assert h.value["connect"] == E.ECONNREFUSED, h.value
    assert accepted is False
    assert h.value["fifo-open"] == 0, h.value  # an inode of the run's own
    assert host_writer == "ENXIO", host_writer


# ---------------------------------------------------------------- G11

CROSS_TARGETS = {"runtime-module": OS_PY, "etc-entry": ETC, "input-file": "/input/f",
                 "dev-null": "/dev/null"}


@pytest.mark.parametrize("target", [case("G11", "cross-run-locks-" + t, t) for t in CROSS_TARGETS])
def test_concurrent_runs_do_not_share_locks(host_postconditions, inputs, target):
    """Run A holds flock, POSIX and OFD locks on a file; a concurrent run B
    (same inputs) can take flock LOCK_EX on it and F_GETLK/F_OFD_GETLK show
    B no conflicting lock: no bit passes through lock state.  Unprivileged
    callers' runs share the host's device nodes (pinned)."""
    path = CROSS_TARGETS[target]
    opts = ["--input", "f=" + inputs["file"]]
    with Holder('''
got, fds = take_locks(%r)
hold(got)
''' % path, opts) as a:
        assert a.value == {"flock": 0, "posix": 0, "ofd": 0}, (a.value, a.release())
        _, b = probe(r'''
import fcntl, struct
fd = os.open(%r, os.O_RDONLY)
out = {"flock": oserr(fcntl.flock, fd, fcntl.LOCK_EX | fcntl.LOCK_NB)}
w = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
out["posix"] = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, w))[0]
out["ofd"] = struct.unpack("hhqqi", fcntl.fcntl(fd, 36, w))[0]
emit(out)
''' % path, opts=opts)
        _, rep, err = a.release()
    assert rep["status"] == "ok", (rep, err)
    if target == "dev-null" and not IS_ROOT:
        assert b == {"flock": E.EWOULDBLOCK, "posix": fcntl.F_RDLCK, "ofd": fcntl.F_RDLCK}, b
    else:
        assert b == {"flock": 0, "posix": fcntl.F_UNLCK, "ofd": fcntl.F_UNLCK}, b


def test_G11_concurrent_run_watch_sees_nothing_of_the_other(host_postconditions, inputs):
    """Run A watches a runtime module, an /etc entry and its input; run B
    opens and reads the same files: A's watch reports nothing."""
    paths = [OS_PY, ETC, "/input/f"]
    opts = ["--input", "f=" + inputs["file"]]
    with Holder(INOTIFY % {"paths": paths} + '''
hold({"watches": sorted(wds.values()), "before": events()})
emit({"after": events()})
''', opts) as a:
        assert a.value is not None and a.value["watches"] == sorted(paths), (a.value, a.release())
        _, b = probe('''
for p in %r:
    with open(p, "rb") as f:
        f.read()
emit("read")
''' % paths, opts=opts)
        res, rep, err = a.release()
    assert b == "read"
    assert rep["status"] == "ok", (rep, err)
    assert res["after"] == [], res


def _futex_prelude(path):
    return r'''
import mmap
SYS_futex, SYS_futex_waitv = 202, 449
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_fd = os.open(%r, os.O_RDONLY)
page = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_SHARED, _fd, 0)
def word(off):
    return ctypes.c_uint32.from_address(page + off).value
class waitv(ctypes.Structure):
    _fields_ = [("val", ctypes.c_uint64), ("uaddr", ctypes.c_uint64), ("flags", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32)]
class timespec(ctypes.Structure):
    _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]
def wait_either(deadline_s):
    """futex_waitv (shared, 32-bit) on the words at offsets 0 and 64; the
    index of the word that was woken, or None at the deadline."""
    ws = (waitv * 2)(waitv(word(0), page, 2, 0), waitv(word(64), page + 64, 2, 0))
    now = time.clock_gettime(time.CLOCK_MONOTONIC) + deadline_s
    ts = timespec(int(now), int((now %% 1) * 1e9))
    while True:
        r, e = sc(SYS_futex_waitv, ctypes.addressof(ws), 2, 0, ctypes.addressof(ts), time.CLOCK_MONOTONIC)
        if r >= 0:
            return r
        if e == errno.ETIMEDOUT:
            return None
        if e not in (errno.EINTR, errno.EAGAIN):
            raise OSError(e, "futex_waitv")
def wake(off):
    """FUTEX_WAKE (shared) of one waiter on the word at off: how many woke."""
    return sc(SYS_futex, page + off, 1, 1, 0, 0, 0)[0]
def wake_until_woken(off, deadline):
    """Wakes until a waiter was there to wake (it may not wait yet)."""
    while wake(off) != 1:
        if time.monotonic() > deadline:
            raise TimeoutError(off)
def wait_one(off, deadline_s):
    """FUTEX_WAIT (shared) on the word at off: True when woken."""
    ts = timespec(int(deadline_s), 0)
    while True:
        r, e = sc(SYS_futex, page + off, 0, word(off), ctypes.addressof(ts), 0, 0)
        if r == 0:
            return True
        if e == errno.ETIMEDOUT:
            return False
        if e not in (errno.EINTR, errno.EAGAIN):
            raise OSError(e, "futex wait")
import time
''' % path


BITS = [int(b) for b in "1011001110001111000010110111010010011100101101000110111001010001"]


def test_G11_futex_channel_through_a_shared_page_is_the_stated_limit(host_postconditions):
    """Known limit (docs/SECURITY.md): futex words in a page of a host file
    are keyed on the host's page, which every run that maps the file
    shares.  Two concurrent runs map the same runtime module: B sends 64
    bits to A by waking one of two words, A receives them with futex_waitv
    and acknowledges each on a third (FUTEX_WAKE reports whether a waiter
    woke, so neither side needs a clock).
    Pinned: the bits arrive, the words' values never change (the page is
    read-only to both), and requeueing a waiter elsewhere is refused."""
    pre = _futex_prelude(OS_PY)
    with Holder(pre + r'''
before = [word(0), word(64)]
hold({"ready": True})
t0 = time.monotonic()
bits = []
for _ in range(%d):
    bits.append(wait_either(20))
    if bits[-1] is None:
        break
    # Acknowledge on a third word: only then does B send the next bit,
    # so it never wakes this futex_waitv's other, not yet dequeued, word.
    wake_until_woken(128, time.monotonic() + 20)
emit({"bits": bits, "seconds": time.monotonic() - t0, "values": [before, [word(0), word(64)]]})
''' % len(BITS)) as a:
        assert a.value == {"ready": True}, a.release()
        a.send_stdin(b"\n")
        _, b = probe(pre + r'''
sent = 0
deadline = time.monotonic() + 30
for bit in %r:
    wake_until_woken(64 if bit else 0, deadline)
    if not wait_one(128, 20):
        break
    sent += 1
requeue = sc(SYS_futex, page, 4, 0, 1, page + 64, word(0))  # FUTEX_CMP_REQUEUE
requeue_plain = sc(SYS_futex, page, 3, 0, 1, page + 64, 0)   # FUTEX_REQUEUE
emit({"sent": sent, "requeue": err_of(requeue), "requeue-plain": err_of(requeue_plain)})
''' % BITS)
        res, rep, err = a.release(b"")
    assert rep["status"] == "ok", (rep, err)
    assert b["requeue"] == E.ENOSYS and b["requeue-plain"] == E.ENOSYS, b
    assert res["bits"] == BITS and b["sent"] == len(BITS), (res, b)
    assert res["values"][0] == res["values"][1], res
    rate = len(BITS) / res["seconds"]
    print("futex channel between two runs: %d bits in %.4f s (%.0f bit/s)" % (len(BITS), res["seconds"], rate))


def test_G6_mountinfo_names_no_input_path(host_postconditions, inputs):
    """With the inputs shown through overlays of their own, mountinfo names
    none of their host paths: a directory input is the root of its overlay
    ("/"), a file input the file's own name in the overlay of its parent
    directory; the overlays' layers are named by fd (/proc/self/fd/N)."""
    _, res = probe('emit(open("/proc/self/mountinfo").read())',
                   opts=["--input", "f=" + inputs["file"], "--input", "d=" + inputs["dir"]])
    rows = {l.split()[4]: l.split() for l in res.splitlines()}
    assert rows["/input/d"][3] == "/" and rows["/input/f"][3] == "/data.csv", rows
    for p in (inputs["file"], inputs["dir"], os.path.dirname(inputs["file"])):
        assert p not in res, p
    assert "pytest-of-" not in res


@pytest.mark.skipif(not IS_ROOT, reason="needs a mount namespace of the test's own (root)")
@pytest.mark.skipif(SERVER is not None, reason="the bind is made in the CLI's own mount namespace")
def test_G2_file_input_that_is_a_mount_point_is_bound_directly(host_postconditions, tmp_path):
    """Known limit: a file input that is itself a mount point (a file bound
    onto another, as containers do) cannot be looked up through an overlay
    of its directory (that would show the file underneath): it is bound
    directly, reads the right bytes, and its locks reach the host.  The
    bind is made in a private mount namespace the CLI runs in, so the
    host's mount table (which concurrent suites check) never changes."""
    real = tmp_path / "real.txt"
    real.write_text("the mounted file\n")
    spot = tmp_path / "spot.txt"
    spot.write_text("the file underneath\n")
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(real), str(spot)]
    with Holder('''
got, fds = take_locks("/input/f")
hold({"locks": got, "text": open("/input/f").read()})
''', ["--input", "f=%s" % spot], prefix=prefix) as h:
        assert h.value is not None, h.release()
        # The host sees the inode the bind showed the run: real.txt.
        view = host_lock_view(str(real))
        _, rep, err = h.release()
    assert rep["status"] == "ok", (rep, err)
    assert h.value == {"locks": {"flock": 0, "posix": 0, "ofd": 0}, "text": "the mounted file\n"}, h.value
    assert view == {"flock": "EAGAIN", "posix": "locked", "ofd": "locked"}, view
