"""Attack rows E1-E8 (G1 read confinement, G6 process and secret
isolation): inherited fds, /proc and /sys, mount and cgroup metadata, the
sandbox init's memory, environment and argv, and the pid namespace.

The supervisor runs with a secret canary in its environment and is given
host paths (an input directory, an output directory) whose names must not
be learnable from inside.
"""
import errno
import os
import secrets

import pytest

from harness import SERVER, VIA_SESSION, case, fs_root_path, probe

E = errno
CANARY = "sandcell-canary-" + secrets.token_hex(8)

CODE = r'''
import stat, socket
res = {}
def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()
def t(name, fn, *a):
    res[name] = oserr(fn, *a)
# ---- E1/E2: descriptors ------------------------------------------------------
open_fds = {}
for n in range(1024):
    try:
        st = os.fstat(n)
    except OSError:
        continue
    kind = ("fifo" if stat.S_ISFIFO(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else
            "sock" if stat.S_ISSOCK(st.st_mode) else "reg" if stat.S_ISREG(st.st_mode) else "other")
    open_fds[n] = [kind, os.readlink("/proc/self/fd/%d" % n)]
res["fds"] = open_fds
bad = []
for n in range(4, 1024):
    for p in ("/proc/self/fd/%d" % n, "/proc/self/fd/%d/../.." % n, "/proc/1/fd/%d" % n):
        try:
            os.chdir(p)
            bad.append(p)
        except OSError:
            pass
res["fd-chdir-escapes"] = bad
os.chdir("/tmp")
# ---- E3/E8: kernel interfaces -------------------------------------------------
for p in ("/proc/kallsyms", "/proc/kcore", "/proc/sys/kernel/core_pattern", "/proc/config.gz",
          "/proc/modules", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
          "/proc/sys/user/max_user_namespaces", "/dev/kmsg", "/dev/mem", "/dev/tty",
          "/dev/userfaultfd", "/dev/kvm", "/dev/fuse", "/dev/net/tun", "/sys/kernel/notes"):
    t("read:" + p, read, p)
t("write:/proc/sysrq-trigger", lambda: open("/proc/sysrq-trigger", "w").write("b"))
t("list:/sys", os.listdir, "/sys")
t("list:/proc/sys", os.listdir, "/proc/sys")
t("list:/sys/fs/cgroup", os.listdir, "/sys/fs/cgroup")
t("write:/proc/self/attr/current", lambda: open("/proc/self/attr/current", "w").write("x"))
t("write:/proc/self/oom_score_adj-lower", lambda: open("/proc/self/oom_score_adj", "w").write("-1000"))
t("write:/proc/1/oom_score_adj", lambda: open("/proc/1/oom_score_adj", "w").write("1000"))
# ---- E4: mount and cgroup metadata --------------------------------------------
res["mountinfo"] = read("/proc/self/mountinfo", "r")
res["cgroup"] = read("/proc/self/cgroup", "r")
# ---- E5: the sandbox init ---------------------------------------------------------
for p in ("environ", "maps", "mem", "auxv", "stack", "syscall", "pagemap"):
    t("init:" + p, read, "/proc/1/" + p)
t("init:fd", os.listdir, "/proc/1/fd")
t("init:cwd", os.readlink, "/proc/1/cwd")
t("init:exe", os.readlink, "/proc/1/exe")
try:
    res["init-cmdline"] = read("/proc/1/cmdline").decode("utf-8", "replace")
except OSError as e:
    res["init-cmdline"] = e.errno
# ---- E6: environment, argv, identity ----------------------------------------------------
res["environ"] = dict(os.environ)
try:
    res["proc-environ"] = read("/proc/self/environ").decode("utf-8", "replace")
except PermissionError:
    # warm mode: the code is not dumpable (docs/warm.md), its own
    # /proc/self/environ is closed to it too
    res["proc-environ"] = None
res["argv"] = sys.argv
res["proc-cmdline"] = read("/proc/self/cmdline").decode("utf-8", "replace")
res["hostname"] = [socket.gethostname(), os.uname().nodename, read("/etc/hostname", "r").strip()]
# ---- E7: pid namespace --------------------------------------------------------------
child = os.fork()
if child == 0:
    import time
    time.sleep(30)
    os._exit(0)
res["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
res["self"] = [os.getpid(), os.getppid(), child]
res["tasks"] = sorted(int(t) for t in os.listdir("/proc/self/task"))  # a session's loop has threads
alive = []
for p in range(1, 65536):
    try:
        os.kill(p, 0)
        alive.append(p)
    except ProcessLookupError:
        pass
    except PermissionError:
        alive.append(p)
res["kill0-alive"] = alive
res["kill-init"] = oserr(os.kill, 1, 9)
os.kill(child, 9)
os.waitpid(child, 0)
res["init-name"] = read("/proc/1/comm", "r").strip()
emit(res)
'''

DECLARED_ENV = {
    "HOME": "/tmp", "TMPDIR": "/tmp", "USER": "sandbox", "LOGNAME": "sandbox",
    "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
    "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/.matplotlib", "XDG_CACHE_HOME": "/tmp/.cache",
    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
    "SANDCELL": "1", "SANDCELL_RESULT_FD": "3",
}
# Tuning knobs that carry no secret and pass through when set (spawn.c).
PASSTHROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@pytest.fixture(scope="module")
def leaks(tmp_path_factory):
    base = tmp_path_factory.mktemp("leak-host-dir")
    indir = base / ("input-" + CANARY)
    indir.mkdir()
    (indir / "f").write_text("x")
    outdir = base / ("output-" + CANARY)
    env = dict(os.environ)
    env["SANDCELL_ATTACK_SECRET"] = CANARY
    env["AWS_SECRET_ACCESS_KEY"] = CANARY
    r, res = probe(CODE, opts=["--input", "data=%s" % indir, "--output", str(outdir)], env=env)
    assert r.status == "ok", r
    res["_host_paths"] = [str(indir), str(outdir), str(base)]
    # How the kernel would print each of them in a mountinfo root field
    # (relative to its filesystem); the output directory exists by now.
    res["_fs_root_paths"] = {p: fs_root_path(p) for p in res["_host_paths"]}
    return res


def test_G1_only_declared_fds_open(host_postconditions, leaks):
    """E1: exactly fds 0-3, all pipes (stdin, stdout, stderr, result); no
    directory or socket fd of the supervisor (CVE-2024-21626 class)."""
    fds = {int(k): v for k, v in leaks["fds"].items()}
    if VIA_SESSION:
        # The loop moved its command pipe to fd 4 and put /dev/null on 0.
        assert fds.pop(0) == ["other", "/dev/null"], fds
        assert sorted(fds) == [1, 2, 3, 4], fds
    else:
        assert sorted(fds) == [0, 1, 2, 3], fds
    for n, (kind, target) in fds.items():
        assert kind == "fifo" and target.startswith("pipe:["), (n, kind, target)


def test_G1_fd_magic_links_lead_nowhere(host_postconditions, leaks):
    """E2: chdir through /proc/self/fd/N (and ../..) for every N >= 4."""
    assert leaks["fd-chdir-escapes"] == []


ABSENT = ["/proc/kallsyms", "/proc/kcore", "/proc/sys/kernel/core_pattern", "/proc/config.gz",
          "/proc/modules", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
          "/proc/sys/user/max_user_namespaces", "/dev/kmsg", "/dev/mem", "/dev/tty",
          "/dev/userfaultfd", "/dev/kvm", "/dev/fuse", "/dev/net/tun", "/sys/kernel/notes"]


@pytest.mark.parametrize("key", [case("G6" if "proc" in p else "G1", "absent" + p.replace("/", "-"),
                                      "read:" + p) for p in ABSENT] +
                         [case("G2", "sysrq-trigger-write", "write:/proc/sysrq-trigger"),
                          case("G1", "list-sys", "list:/sys"),
                          case("G6", "list-proc-sys", "list:/proc/sys"),
                          case("G7", "list-sys-fs-cgroup", "list:/sys/fs/cgroup")])
def test_kernel_interfaces_absent(host_postconditions, leaks, key):
    """E3/E8: procfs subset=pid and no sysfs: the kernel interfaces are
    simply not there."""
    assert leaks[key] == E.ENOENT, errno.errorcode.get(leaks[key], leaks[key])


@pytest.mark.parametrize("key,expected", [
    case("G6", "write-proc-self-attr-current", "write:/proc/self/attr/current", (E.EINVAL, E.EACCES, E.ENOENT, E.EPERM)),
    case("G7", "lower-own-oom_score_adj", "write:/proc/self/oom_score_adj-lower", (E.EACCES,)),
    case("G6", "write-init-oom_score_adj", "write:/proc/1/oom_score_adj", (E.EACCES,)),
])
def test_proc_writes_denied(host_postconditions, leaks, key, expected):
    assert leaks[key] in expected, errno.errorcode.get(leaks[key], leaks[key])


MOUNTPOINTS = {"/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/dev", "/proc",
               "/tmp", "/output", "/dev/shm", "/input/data",
               "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}


def test_G1_mountinfo_lists_only_sandbox_mounts(host_postconditions, leaks):
    points = {l.split()[4] for l in leaks["mountinfo"].splitlines()}
    extra = {p for p in points if p not in MOUNTPOINTS and not p.startswith("/etc/")}
    assert extra == set(), extra


@pytest.mark.parametrize("needle", [case("G6", "input-host-path-only", "input"),
                                    case("G6", "no-other-job-paths", "base"),
                                    case("G6", "no-work-root-home", "fixed")])
def test_mountinfo_leaks_no_host_paths(host_postconditions, leaks, needle):
    """E4: the root and source fields of /proc/self/mountinfo name no host
    job path: inputs are shown through overlays of their own (root "/",
    docs/SECURITY.md, "Known limits").  A host path would appear in the
    form the kernel prints a bind's root in, relative to the root of the
    filesystem it is on (/tmp/x/in on a disk, /x/in on a tmpfs /tmp), so
    each path is looked for in that form as well as in full: neither the
    input, nor the output directory, nor the job's other paths appear."""
    mi = leaks["mountinfo"]
    indir, outdir, base = leaks["_host_paths"]
    forms = {p: {p, leaks["_fs_root_paths"][p]} for p in (indir, outdir, base)}
    if needle == "input":
        for form in forms[indir] | forms[outdir]:
            assert form not in mi, form
        assert CANARY not in mi
    elif needle == "base":
        for form in forms[base]:
            assert form not in mi, form
        assert "pytest-of-" not in mi and "leak-host-dir" not in mi
    else:
        cwd = os.getcwd()
        for p in {"/work", "/root", "/home", cwd, fs_root_path(cwd)} - {"/"}:
            assert (" %s " % p) not in mi and (" %s/" % p) not in mi, p


def test_G6_cgroup_file_shows_only_namespace_root(host_postconditions, leaks):
    """E4: /proc/self/cgroup shows '/' everywhere (cgroup namespace), no
    host cgroup path of the supervisor or the run."""
    for line in leaks["cgroup"].splitlines():
        assert line.rsplit(":", 1)[1] == "/", line


@pytest.mark.parametrize("key", [case("G6", "init-" + p, "init:" + p) for p in
                                 ("environ", "maps", "mem", "auxv", "stack", "syscall", "pagemap",
                                  "fd", "cwd", "exe")])
def test_init_helper_unreadable(host_postconditions, leaks, key):
    """E5: the in-sandbox init is the forked supervisor (same memory, same
    environment): non-dumpable, so its memory, environ and fds are
    unreadable."""
    assert leaks[key] == E.EACCES, errno.errorcode.get(leaks[key], leaks[key])


def test_G6_init_cmdline_reveals_no_supervisor_argv(host_postconditions, leaks):
    """E5/G6: the code cannot read the supervisor's argv.  /proc/1/cmdline
    of the init (a fork of the supervisor, no exec) must be unreadable or
    hold nothing of the host command line: host input/output paths, the
    report path, the binary's path."""
    cmd = leaks["init-cmdline"]
    if cmd == E.EACCES:
        return
    for p in leaks["_host_paths"]:
        assert p not in cmd, "host path %r readable in /proc/1/cmdline: %r" % (p, cmd[:300])
    assert "--report" not in cmd and "--input" not in cmd, cmd[:300]


def test_G6_environment_is_the_declared_one(host_postconditions, leaks):
    """E6: exactly the fixed environment; the supervisor's secrets do not
    reach the code (os.environ or /proc/self/environ)."""
    expected = dict(DECLARED_ENV)
    if VIA_SESSION:
        expected["MPLBACKEND"] = "module://_sandcell_mpl"  # a session is cell mode (as run --cell)
    expected.update({k: os.environ[k] for k in PASSTHROUGH if k in os.environ})
    assert leaks["environ"] == expected
    assert CANARY not in (leaks["proc-environ"] or "")


def test_G6_argv_and_cmdline_hold_no_host_path(host_postconditions, leaks):
    assert leaks["argv"] == ["-c"]
    for p in leaks["_host_paths"]:
        assert p not in leaks["proc-cmdline"]
    assert CANARY not in leaks["proc-cmdline"]


def test_G6_hostname_is_the_sandboxes(host_postconditions, leaks):
    assert leaks["hostname"] == ["sandcell"] * 3


def test_G6_proc_lists_only_sandbox_pids(host_postconditions, leaks):
    """E7: /proc holds init (1), the code and its child; ppid of the code
    is the sandbox init (cold), or outside the namespace, which reads as 0
    (a warm server: the template forked the code's process into its spare,
    docs/warm.md)."""
    pid, ppid, child = leaks["self"]
    assert ppid == (0 if SERVER else 1)
    assert leaks["pids"] == sorted({1, pid, child})
    # The init is a fork of the supervisor: on a warm server, sandcell-warm.
    assert leaks["init-name"] == ("sandcell-warm" if SERVER else "sandcell")


def test_G6_kill0_scan_finds_only_sandbox_pids(host_postconditions, leaks):
    """F7: kill(p, 0) for every p < 65536 finds only the sandbox's pids."""
    pid, _, child = leaks["self"]
    assert leaks["kill0-alive"] == sorted({1, pid, child} | set(leaks["tasks"]))


def test_G6_kill_init_from_inside_is_ignored(host_postconditions, leaks):
    """F7: SIGKILL to the namespace init from inside is dropped (the run
    went on and finished ok); on a warm server it is refused outright: the
    code's Landlock domain is its own, not the init's, and Landlock scopes
    signals to the sender's domain."""
    assert leaks["kill-init"] == (E.EPERM if SERVER else 0)
