"""Shared helpers for the attack tier (tests/attack/test_*.py).

Every attack test names the guarantee it checks (threat model section 1,
G1..G11) in its id: parametrized cases get "G4:..." ids through case(),
plain tests are called test_G<n>_...  so `pytest -v` shows the G-id.

Many small probes are grouped into one sandboxed run (probe()): the code
prints one JSON document after a marker line, each pytest case then asserts
one entry of it.  Module-scoped probe runs cannot use the function-scoped
host_postconditions fixture for their own run, so probe() checks the same
post-conditions (threat model 4.6) right after the run, and every test still
requests host_postconditions as well.
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SANDCELL_BIN", os.path.join(ROOT, "build", "sandcell"))
# Warm mode (tests/warm/run-warm.sh): runs go through this `sandcell serve`.
SERVER = os.environ.get("SANDCELL_SERVER") or None
IS_ROOT = os.geteuid() == 0
MARK = "@@SANDCELL-ATTACK@@"

# Documented statuses/exit codes (docs/report.md).
EXIT_DISK, EXIT_MEMORY, EXIT_CPU, EXIT_TIMEOUT, EXIT_USAGE, EXIT_SANDBOX = 121, 122, 123, 124, 125, 126
SIGSYS = 31


def case(gid, name, *values, **kw):
    """pytest.param whose id starts with the guarantee id, e.g. "G4:x32-getpid"."""
    return pytest.param(*values, id="%s:%s" % (gid, name), **kw)


class Run:
    def __init__(self, proc, report, cmd):
        self.proc = proc
        self.cmd = cmd
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.report = report

    @property
    def status(self):
        return self.report["status"] if self.report else None

    @property
    def script(self):
        return self.report["script"] if self.report else None

    @property
    def out(self):
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self):
        return self.stderr.decode("utf-8", "replace")

    def result(self):
        """The JSON the probe printed after MARK (last one wins)."""
        lines = [l for l in self.out.splitlines() if l.startswith(MARK)]
        assert lines, "probe printed no result: %r" % (self,)
        return json.loads(lines[-1][len(MARK):])

    def __repr__(self):
        return "Run(rc=%r, status=%r, stdout=%r, stderr=%r, error=%r)" % (
            self.rc, self.status, self.stdout[-3000:], self.stderr[-3000:],
            self.report and self.report.get("error"))


PRELUDE = r'''
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
MARK = %r
def sc(nr, *args):
    """Raw x86_64 syscall; returns (ret, errno).  Every argument is passed
    as a full 64-bit register value."""
    a = [ctypes.c_ulong(x & 0xffffffffffffffff) if isinstance(x, int) else x for x in args]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *a)
    return r, ctypes.get_errno()
def err_of(r):
    return r[1] if r[0] == -1 else 0
def oserr(fn, *a, **k):
    """0 if fn succeeded, else the errno of the OSError it raised."""
    try:
        fn(*a, **k)
        return 0
    except OSError as e:
        return e.errno if e.errno is not None else -1
def in_child(fn):
    """Runs fn() in a forked child; returns {"signal": n} if the child was
    killed, else {"exit": code, "value": what fn returned (JSON)}."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            v = fn()
        except BaseException as e:
            v = "exception: %%r" %% (e,)
        os.write(w, json.dumps(v).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        data += b
    os.close(r)
    _, st = os.waitpid(pid, 0)
    if os.WIFSIGNALED(st):
        return {"signal": os.WTERMSIG(st)}
    return {"exit": os.WEXITSTATUS(st), "value": json.loads(data) if data else None}
def emit(obj):
    sys.stdout.flush()
    print(MARK + json.dumps(obj), flush=True)
''' % (MARK,)


def sandbox_survivors(host_uid=None, sup_pid=None):
    """Host pids of processes that look like sandbox processes.

    Root mode: the run's dedicated host uid (>= 2000000000; any such uid
    without host_uid).  Unprivileged mode: the host uid is the caller's
    own and other suites of the same user may be running, so a process
    counts when it is still in one of this supervisor's run cgroups
    (cgroup.c names them run-PID-...); without sup_pid, any process of the
    caller's uid in a nested pid namespace counts."""
    found = []
    me = os.geteuid()
    tag = "/run-%d-" % sup_pid if sup_pid is not None else None
    for st in glob.glob("/proc/[0-9]*/status"):
        uid = None
        nested = False
        try:
            with open(st) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        uid = int(line.split()[1])
                    elif line.startswith("NSpid:"):
                        nested = len(line.split()) > 2
        except (OSError, ValueError):
            continue
        if uid is None:
            continue
        if IS_ROOT and (host_uid is None or host_uid >= 2000000000):
            hit = uid == host_uid if host_uid is not None else uid >= 2000000000
        elif tag is not None:
            try:
                with open(st[:-len("status")] + "cgroup") as f:
                    hit = uid == me and tag in f.read()
            except OSError:
                hit = False
        else:
            hit = uid == me and nested
        if hit:
            found.append(st.split("/")[2])
    return found


def run_cgroups(sup_pid=None):
    """Run cgroups left on the host; with sup_pid only those of the runs
    made by that supervisor process (cgroup.c names them run-PID-...)."""
    pat = "run-%d-*" % sup_pid if sup_pid is not None else "run-*"
    return sorted(set(glob.glob("/sys/fs/cgroup/*/sandcell*/" + pat) +
                      glob.glob("/sys/fs/cgroup/sandcell*/" + pat) +
                      glob.glob("/sys/fs/cgroup/*/sandcell*/*/" + pat)))


def host_mounts():
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(l.split()[3:5]) for l in f)


def _unescape_mountinfo(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return bytes(field, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")


def fs_root_path(path):
    """path as the kernel prints it in the root field of a mountinfo line:
    relative to the root of the filesystem it lives on, not to the caller's
    root.  On a tmpfs /tmp that is /pytest-of-root/... (no /tmp); below a
    bind mount or a pivot_root it is the path inside the bound tree.  Found
    from our own /proc/self/mountinfo (the same kernel rule, so the same
    answer as a sandbox's view of a bind of path): the mount that path
    resolves through is the last one listed at the longest mountpoint that
    prefixes it, and it must be on path's device."""
    path = os.path.realpath(path)
    dev = os.stat(path).st_dev
    best = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            root, mnt = _unescape_mountinfo(fields[3]), _unescape_mountinfo(fields[4])
            if not (path == mnt or path.startswith(mnt.rstrip("/") + "/")):
                continue
            if best is None or len(mnt) >= len(best[1]):
                best = (root, mnt, fields[2])
    assert best is not None, "no mount holds %s" % path
    root, mnt, majmin = best
    major, minor = (int(x) for x in majmin.split(":"))
    assert (os.major(dev), os.minor(dev)) == (major, minor), \
        "%s is on %d:%d, the mount found for it (%s) on %s" % (
            path, os.major(dev), os.minor(dev), mnt, majmin)
    rel = os.path.relpath(path, mnt)
    return os.path.normpath(os.path.join(root, rel)) if rel != "." else root


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(path):
    """Content, mode and mtime of every entry below path (no following)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rec = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_uid)
            if os.path.isfile(p) and not os.path.islink(p):
                rec += (sha256_file(p),)
            out[os.path.relpath(p, path)] = rec
    st = os.lstat(path)
    out["."] = (st.st_mode, st.st_mtime_ns)
    return out


def check_host_clean(mounts_before, sup_pid=None, host_uid=None):
    """Threat model 4.6, for runs made outside host_postconditions."""
    assert sandbox_survivors(host_uid, sup_pid) == [], "sandbox processes survived the run"
    assert run_cgroups(sup_pid) == [], "run cgroups left behind"
    assert host_mounts() == mounts_before, "host mount table changed"


def server_pid(path=None):
    """Pid of the warm server listening on path (default $SANDCELL_SERVER):
    SO_PEERCRED of a connection names the process that called listen()."""
    import socket
    import struct
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path or SERVER)
        pid, _, _ = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    finally:
        s.close()
    return pid


def sandcell_cmd(code=None, file=None, args=(), opts=(), report=None):
    cmd = [BIN, "run"] + (["--server", SERVER] if SERVER else [])
    if report:
        cmd += ["--report", report]
    cmd += list(opts)
    if code is not None:
        cmd += ["-c", code]
    else:
        cmd += [str(file)]
    cmd += list(args)
    return cmd


def load_report(path):
    if os.path.exists(path) and os.path.getsize(path):
        with open(path) as f:
            return json.load(f)
    return None


def register_run(sup_pid, host_uid):
    """Tells the shared host_postconditions fixture (tests/conftest.py, if
    it tracks runs) about a run made here, so its checks cover it too."""
    conf = sys.modules.get("conftest")
    if conf is not None and isinstance(getattr(conf, "RUNS", None), list):
        conf.RUNS.append((sup_pid, host_uid))


def run(code=None, file=None, args=(), opts=(), stdin=b"", timeout=120, env=None,
        prelude=True, check_host=True):
    """One sandboxed run with a report; checks the host post-conditions."""
    if code is not None and prelude:
        code = PRELUDE + "\n" + textwrap.dedent(code)
    elif code is not None:
        code = "import os, sys\n" + textwrap.dedent(code)
    mounts = host_mounts()
    fd, rpath = tempfile.mkstemp(prefix="sandcell-attack-report-", suffix=".json")
    os.close(fd)
    try:
        cmd = sandcell_cmd(code, file, args, opts, rpath)
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        try:
            out, err = p.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
        proc = subprocess.CompletedProcess(cmd, p.returncode, out, err)
        rep = load_report(rpath)
    finally:
        os.unlink(rpath)
    r = Run(proc, rep, cmd)
    r.pid = p.pid
    register_run(p.pid, rep["isolation"]["host_uid"] if rep and rep.get("isolation") else None)
    if check_host:
        check_host_clean(mounts, p.pid, rep["isolation"]["host_uid"] if rep else None)
    assert r.report is not None, r
    assert r.report["isolation"]["mode"] == "full", r
    return r


def probe(code, **kw):
    """Runs code (with PRELUDE) and returns (Run, the emitted JSON)."""
    r = run(code, **kw)
    return r, r.result()
