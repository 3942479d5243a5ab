"""Fail-closed fault injection (threat model 4.5 item 5, attack X3, G10).

Every system call of the sandbox setup is made to fail in turn with strace
(`-f -e inject=SYSCALL:error=ERRNO:when=N`), and each time:

  * the code never starts: the marker it would print and the marker file it
    would write into /output appear nowhere, and the report says
    script.started false;
  * the run ends with exit status 126, status "sandbox-error" and an error
    message that names the failing step;
  * nothing is left behind: no process of the run (its cgroups, its host
    uid), no run cgroup directory, the host mount table unchanged.

The list of faults is generated, not written by hand: one clean run under
`strace -f` records every system call of the supervisor (from its first
look at the interpreter on) and of the sandbox's init, up to the moment
the interpreter is exec'd; each occurrence of a setup system call becomes
one case (SYSCALL, N), N counted per process the way strace counts it.
Long runs of the same kind of call (the 64 PR_CAPBSET_DROP, one
landlock_add_rule per path) are sampled at their first, middle and last
call; every mount call is injected, and one N past the last shows that no
mount is left.

strace counts `when=N` per traced process, and a new process starts from
zero, so a case (S, N) fails the N-th S of *every* process that makes that
many.  Each case is therefore judged on what actually happened, read back
from the strace log: which calls were failed, in which process, before or
after the code started.  A case whose injected calls all came after the
code started (e.g. the interpreter's own N-th openat) is not a setup fault
and is only counted.  An init call whose index an earlier call of the
supervisor also has is failed there first (the supervisor's Landlock probe
shadows the init's landlock_create_ruleset, its stream pipes the init's
pipe2, its clone the init's fork...): test_unreachable_steps_are_known
requires every missed call to be explained that way.

A few setup calls are allowed to fail without stopping the run because the
setup is designed to do without them (TOLERATED, each with its reason: an
optional /etc file not bound, libseccomp probing for a feature the filter
does not use...).  Whenever the code runs at all, it prints what it sees of
its own confinement (uid, capabilities, no_new_privs, seccomp, Landlock,
network, read-only mounts, the init's command line) and that must be
intact; a code that ran after any other failed setup call is a fail-open.
"""
import collections
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import harness as H

STRACE = shutil.which("strace")
pytestmark = [pytest.mark.skipif(STRACE is None, reason="strace is not installed (apt-get install strace)"),
              H.skip_in_session("the faults are injected into `sandcell run` under strace, not through the "
                                "harness's run helper: the same cases as the cold tier (a session's set-up is "
                                "that same code)")]

MARK = "SANDCELL-FAULT-INJECTION-CODE-RAN"
EVIDENCE = "SANDCELL-FAULT-INJECTION-EVIDENCE "
# The code leaves its marker, then prints what it can see of its own
# confinement: a case where it runs at all is judged on this evidence.
CODE = r"""
open('/output/%s', 'w').write('ran')
print('%s', flush=True)
import ctypes, json, os, socket
st = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)
def denied(fn):
    try:
        fn()
        return False
    except OSError:
        return True
ev = {
    'uid': os.getuid(),
    'capeff': int(st['CapEff'], 16), 'capbnd': int(st['CapBnd'], 16),
    'nnp': st['NoNewPrivs'].strip(), 'seccomp': st['Seccomp'].strip(),
    'pids': len([d for d in os.listdir('/proc') if d.isdigit()]),
    'shadow': os.path.exists('/etc/shadow') or os.path.exists('/home'),
    'landlock': denied(lambda: open('/proc/self/comm', 'w').close()),
    'inet': denied(lambda: socket.socket(socket.AF_INET).close()),
    'unshare': ctypes.CDLL(None).unshare(0x10000000) != 0,
    # the init's argv is the supervisor's command line (it holds this code)
    'argv_hidden': b'FAULT-INJECTION' not in open('/proc/1/cmdline', 'rb').read(),
    # every mount but the scratch, /proc and the device nodes read-only, all nosuid
    'rw_mounts': [l.split()[4] for l in open('/proc/self/mountinfo')
                  if ('ro' not in l.split()[5].split(',') and l.split()[4] not in
                      ('/tmp', '/output', '/dev/shm', '/proc', '/dev/null', '/dev/zero', '/dev/full',
                       '/dev/random', '/dev/urandom'))
                  or 'nosuid' not in l.split()[5].split(',')],
}
print('%s' + json.dumps(ev), flush=True)
""" % (MARK, MARK, EVIDENCE)
INTACT = {"uid": 1000, "capeff": 0, "capbnd": 0, "nnp": "1", "seccomp": "2", "shadow": False,
          "landlock": True, "inet": True, "unshare": True, "argv_hidden": True, "rw_mounts": []}

# Setup calls whose failure the setup survives by design, each for a stated
# reason; a case that fails only these may run the code, with its
# confinement intact (the evidence above).  (role, call pattern, text
# pattern, the step the call belongs to (the last of STEP_MARKS made by the
# same process before it, or None for any), reason).
CGROUP_ACCOUNTING = r"cpu\.stat|cpuacct\.usage|memory\.(peak|max_usage_in_bytes|events|oom_control)"
TOLERATED = [
    ("supervisor", "openat|read", r"cgroup\.controllers", None,
     "a controller list that cannot be read counts as empty: v1 fallback (hybrid) or a refusal (v2)"),
    ("supervisor", "openat|write", r"cgroup\.subtree_control", None,
     "a controller that cannot be enabled is absent: v1 fallback (hybrid) or a refusal (v2)"),
    ("supervisor", "openat|write", r"memory\.swappiness", None,
     "best effort; swap is bounded by memsw/swap.max"),
    ("supervisor", "openat|read", CGROUP_ACCOUNTING, None,
     "accounting read while supervising: the next poll reads it again"),
    ("supervisor", "newfstatat", r'"/(usr|bin|sbin|lib|lib64|lib32)", .*AT_SYMLINK_NOFOLLOW', None,
     "runtime_dirs(): a top-level runtime dir that cannot be examined is not bound (less access)"),
    ("init", "openat|read", r".", "close_range",
     "/proc/sys/kernel/cap_last_cap (the first file the capability step opens): unknown, every "
     "capability up to 63 is dropped"),
    ("init", "fstatfs", r".", None,
     "locked_flags(): without them the read-only remount fails (EPERM) or holds as asked"),
    ("init", "newfstatat", r"AT_EMPTY_PATH", "landlock_create_ruleset",
     "Landlock add_path(): a path that cannot be stat'ed gets directory rights; on a file the "
     "kernel refuses the rule"),
    ("supervisor", "openat", r'"/sys/fs/cgroup/[^"]*", O_RDONLY\|O_NONBLOCK\|O_CLOEXEC\|O_DIRECTORY', None,
     "collect_stale(): a cgroup parent that cannot be listed keeps dead supervisors' empty run "
     "cgroups until a later run (best-effort cleanup, no isolation step)"),
    ("supervisor", "newfstatat", r'\(\d+</sys/fs/cgroup/[^>]*>, "", .*AT_EMPTY_PATH', None,
     "collect_stale(): opendir's fstat of a cgroup parent; as above"),
    ("supervisor", "newfstatat", r'\(\d+</sys/fs/cgroup/[^>]*>, "' + H.run_cgroup_prefix(), None,
     "collect_stale(): the age of a dead supervisor's run cgroup; one that cannot be examined is "
     "left for a later run, as above (it runs after the run's own cgroups are removed)"),
    ("supervisor", "poll", r".", None,
     "a supervision poll: one that fails stops the run (sandbox-error); the supervisor polls while "
     "the init sets up, and the init may already have started the code under every layer"),
    ("supervisor", "clone3", r".", None,
     "clone3 into the run cgroup failing falls back to clone plus a cgroup attach: same isolation"),
    ("supervisor", "openat", "/" + H.run_cgroup_prefix() + r"[^\"]*\", O_RDONLY\|O_CLOEXEC\|O_PATH\|O_DIRECTORY", None,
     "the v2 run cgroup cannot be opened for clone3: clone plus a cgroup attach instead"),
    ("init", "fsconfig", r"FSCONFIG_CMD_CREATE", None,
     "an overlay the kernel refuses to create (EINVAL): for /etc, as in a container whose runtime "
     "bound files into it, the plain /etc files are copied into the run's root instead (private "
     "inodes still: tests/integration/test_container_etc.py); every other overlay fails closed"),
    ("supervisor", "seccomp", r"SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_\w+, NULL|"
                              r"SECCOMP_GET_NOTIF_SIZES|SECCOMP_GET_ACTION_AVAIL, 0, \[SECCOMP_RET_LOG", None,
     "libseccomp probing for features (TSYNC, LOG, notify...) the filter does not use"),
]
STEP_MARKS = {"mount", "pivot_root", "close_range", "capset", "landlock_create_ruleset",
              "landlock_restrict_self", "seccomp"}

# The setup system calls injected, each with the errno it fails with and
# the words one of which the error message must contain (the failing step).
# Errnos are never ENOENT/EEXIST: those are the answers the setup treats as
# benign on purpose ("this optional file does not exist").
STEPS = {
    "clone": ("EAGAIN", r"namespaces|fork"),
    "openat": ("EACCES", r"userns|uid_map|gid_map|setgroups|cgroup|mounts|runtime|input|landlock|"
                         r"interpreter|output directory|caps|rlimit|seccomp|command line"),
    "write": ("EIO", r"userns|cgroup|mounts|seccomp"),
    "mkdir": ("EACCES", r"cgroup|mounts|output directory|userns"),
    "mount": ("EPERM", r"mounts"),
    "umount2": ("EPERM", r"mounts"),
    "pivot_root": ("EPERM", r"pivot_root"),
    "chdir": ("EACCES", r"chdir|mounts"),
    # The private inodes (mounts.c): overlays and the run's /dev, made
    # with the new mount API.  EPERM is not used for fsopen and mknodat:
    # there it is the benign answer "not privileged", and the run gets the
    # host's device nodes, as any unprivileged caller's does.
    "fsopen": ("EMFILE", r"mounts"),
    "fsconfig": ("EINVAL", r"mounts"),
    "fsmount": ("EMFILE", r"mounts"),
    "move_mount": ("EPERM", r"mounts"),
    "mknodat": ("ENOSPC", r"mounts"),
    "fchmodat": ("EPERM", r"mounts"),
    "symlinkat": ("EPERM", r"mounts"),
    "mkdirat": ("EACCES", r"mounts"),
    "statx": ("EIO", None),
    # readlink is not injected: the supervisor's realpath() of the
    # interpreter makes the first four, so when=N fails one of those
    # (a usage error, exit 125) before the init's (usr-merge links, file
    # inputs' paths), which fail closed like the rest of mounts.c.
    "symlink": ("EPERM", r"mounts"),
    "fchmod": ("EPERM", r"mounts"),
    "sethostname": ("EPERM", r"sethostname"),
    "setdomainname": ("EPERM", r"sethostname"),
    "socket": ("EMFILE", r"net"),
    "ioctl": ("EPERM", r"net"),
    "setgroups": ("EPERM", r"setgroups"),
    "setresgid": ("EPERM", r"sandbox uid|userns"),
    "setresuid": ("EPERM", r"sandbox uid|userns"),
    "unshare": ("EPERM", r"CLONE_NEWCGROUP"),
    "prctl": ("EPERM", r"prctl|caps|dumpable"),
    "capset": ("EPERM", r"capset"),
    "setsid": ("EPERM", r"setsid"),
    "fcntl": ("EMFILE", r"fds|pipes|userns"),
    "dup2": ("EBADF", r"fds"),
    "close_range": ("EINVAL", r"close_range"),
    "prlimit64": ("EPERM", r"rlimit"),
    "landlock_create_ruleset": ("EOPNOTSUPP", r"landlock"),
    "landlock_add_rule": ("EINVAL", r"landlock"),
    "landlock_restrict_self": ("EPERM", r"landlock"),
    "seccomp": ("EINVAL", r"seccomp"),
    "memfd_create": ("EMFILE", r"memfd"),
    "pipe2": ("EMFILE", r"pipe"),
    "socketpair": ("EMFILE", r"pipe"),
    "sendmsg": ("EPIPE", r"handshake|sending|setup failed"),
    "execve": ("EACCES", r"exec"),
    # Calls that only carry data between steps: any error message will do.
    "read": ("EIO", None),
    "recvfrom": ("EIO", None),
    "recvmsg": ("EIO", None),
    "sendto": ("EPIPE", None),
    "poll": ("ENOMEM", None),
    "fstatfs": ("EIO", None),
    "newfstatat": ("EIO", None),
    "chmod": ("EPERM", None),
    "rmdir": ("EBUSY", None),
}
# In the supervisor, openat, read and write are setup steps only on these
# files (its others are the dynamic loader's, libc's and its streams').
SUPERVISOR_FILES = re.compile(r"/proc/\d+/(uid_map|gid_map|setgroups)|/sys/fs/cgroup|/proc/self/cgroup")
# Calls sampled (first, middle, last of a run of the same kind) rather than
# injected one by one.
SAMPLED = {"prctl", "landlock_add_rule", "symlink", "fchmod", "newfstatat", "fstatfs"}

ENTRY = re.compile(r"^(\d+)\s+(\w+)\((.*)$")
RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$")
INJECTED = "(INJECTED)"


class Call:
    __slots__ = ("idx", "pid", "name", "n", "text", "injected", "ret")

    def __init__(self, idx, pid, name, n, text):
        self.idx, self.pid, self.name, self.n, self.text = idx, pid, name, n, text
        self.injected = INJECTED in text
        self.ret = text.rsplit(" = ", 1)[1] if " = " in text else None

    def __repr__(self):
        return "%d:%s#%d %s" % (self.pid, self.name, self.n, self.text[:160])


class Trace:
    """A strace -f -o log: each call at its entry (with its result folded in
    from a <... resumed> line), numbered per process and system call the
    way strace's when=N counts, and the roles of the processes."""

    def __init__(self, path, python):
        counts = collections.Counter()
        open_calls = {}
        self.calls = []
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        for i, line in enumerate(lines):
            m = ENTRY.match(line)
            if m:
                pid, name = int(m.group(1)), m.group(2)
                # strace neither injects nor counts the exec it starts the
                # command with (still its own code then): the first line.
                if not (i == 0 and name == "execve"):
                    counts[(pid, name)] += 1
                c = Call(i, pid, name, counts[(pid, name)], line)
                self.calls.append(c)
                if line.endswith("<unfinished ...>"):
                    open_calls[pid] = c
                continue
            m = RESUMED.match(line)
            if m and int(m.group(1)) in open_calls:
                c = open_calls.pop(int(m.group(1)))
                c.text += " ..." + m.group(3)
                c.injected = INJECTED in c.text
                c.ret = c.text.rsplit(" = ", 1)[1] if " = " in c.text else None
        self.supervisor = self.calls[0].pid if self.calls else None
        # The supervisor's first look at the interpreter (validate()) opens
        # the window; the interpreter's successful exec closes it.
        self.anchor = next((c.idx for c in self.calls if c.pid == self.supervisor and
                            c.name == "access" and '"%s"' % python in c.text), None)
        self.init = None
        for c in self.calls:
            if c.pid == self.supervisor and c.name in ("clone", "clone3") and "CLONE_NEWUSER" in c.text and \
                    c.ret and c.ret.split()[0].isdigit():
                self.init = int(c.ret.split()[0])
                break
        self.code_start = None
        self.interpreter = None
        # (The only exec in the sandbox.  Its path may show as a pointer:
        # an unprivileged strace cannot read a non-dumpable tracee whose
        # memory belongs to the host user namespace, the sandbox init's.)
        for c in self.calls:
            if (c.name == "execve" and c.pid != self.supervisor and c.ret is not None and
                    c.ret.startswith("0")):
                self.code_start, self.interpreter = c.idx, c.pid
                break

    def in_setup(self, c):
        """Is this call part of the sandbox setup (before the code ran)?"""
        if self.anchor is None:
            return False
        if self.code_start is not None and c.idx > self.code_start:
            return False
        if c.pid == self.supervisor:
            return c.idx > self.anchor
        if c.pid == self.interpreter:
            return c.name == "execve"
        return True

    def step_of(self, c):
        """The last STEP_MARKS call the same process made before c."""
        last = None
        for d in self.calls:
            if d.idx >= c.idx:
                break
            if d.pid == c.pid and d.name in STEP_MARKS:
                last = d.name
        return last

    def role(self, c):
        if c.pid == self.supervisor:
            return "supervisor"
        if c.pid == self.init:
            return "init"
        if c.name == "execve":
            return "exec"
        if c.pid == self.interpreter:
            return "interpreter"
        return "child"

    def injected(self):
        return [c for c in self.calls if c.injected]


def strace_run(tmp, inject=None, trace=None):
    """One `sandcell run` under strace -f; returns (proc, Trace, outdir)."""
    out = tempfile.mkdtemp(prefix="fi-out-", dir=tmp)
    log = os.path.join(tmp, "strace.log")
    cmd = [STRACE, "-f", "-qq", "-y", "-s", "160", "-o", log]
    if trace:
        cmd += ["-e", "trace=" + ",".join(sorted(trace))]
    if inject:
        name, n = inject
        cmd += ["-e", "inject=%s:error=%s:when=%d" % (name, STEPS[name][0], n)]
    cmd += [H.BIN, "run", "--report", "-", "--output", out, "--wall-time", "20", "-c", CODE]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=90)
    return proc, Trace(log, H.HOST_PYTHON), out


def report_of(stdout):
    """The JSON report (--report -) that follows whatever the code printed."""
    text = stdout.decode("utf-8", "replace")
    start = text.find("\n{")
    start = 0 if text.startswith("{") else start + 1 if start >= 0 else -1
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except ValueError:
        return None


def _signature(c):
    """Calls of one kind: same process, call and first argument."""
    args = c.text.split("(", 1)[1] if "(" in c.text else ""
    first = re.split(r"[,)]", args, 1)[0]
    if c.name in ("landlock_add_rule", "symlink", "fchmod", "newfstatat", "fstatfs"):
        first = ""
    return (c.pid, c.name, first)


def generate_cases(trace):
    """(syscall, N) for every setup call of the clean run, sampling long
    runs of one kind, plus one mount index past the last mount."""
    setup = [c for c in trace.calls if trace.in_setup(c) and c.name in STEPS and not c.injected]
    chosen = []
    groups = collections.OrderedDict()
    for c in setup:
        if c.pid == trace.supervisor and c.name in ("openat", "write", "read") and \
                not SUPERVISOR_FILES.search(c.text):
            continue
        if c.name in SAMPLED:
            groups.setdefault(_signature(c), []).append(c)
        else:
            chosen.append(c)
    for calls in groups.values():
        picks = {0, len(calls) // 2, len(calls) - 1}
        chosen += [calls[i] for i in sorted(picks)]
    cases = sorted({(c.name, c.n) for c in chosen})
    mounts = [c.n for c in setup if c.name == "mount"]
    if mounts:
        cases.append(("mount", max(mounts) + 1))
    return cases, chosen


def leftovers(trace):
    """What a run left on the host: processes and cgroups of its supervisor,
    processes of its host uid (root callers)."""
    sup = trace.supervisor
    found = []
    if sup is None:
        return found
    found += ["cgroup " + c for c in H.run_cgroups(sup)]
    found += ["process %s in a run cgroup" % p for p in H.pids_in_run_cgroups([sup])]
    # Every process the trace saw, by host pid: none may still live in a
    # nested pid namespace (the supervisor itself has exited).
    for pid in sorted({c.pid for c in trace.calls} - {sup}):
        try:
            with open("/proc/%d/status" % pid) as f:
                nspid = [l for l in f if l.startswith("NSpid:")]
        except OSError:
            continue
        if nspid and len(nspid[0].split()) > 2:
            found.append("process %d of the run (%s)" % (pid, nspid[0].strip()))
    if H.IS_ROOT:
        # The run's host uid, from the supervisor's uid_map write.
        m = next((re.search(r'uid_map>, "1000 (\d+) 1', c.text) for c in trace.calls
                  if c.pid == sup and c.name == "write" and "uid_map>" in c.text), None)
        if m:
            uid = int(m.group(1))
            found += ["process %d with the run's host uid %d" % (p, uid) for p in H.pids_of_uids([uid])]
    return found


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The clean run under strace: it must behave exactly like a plain run."""
    tmp = str(tmp_path_factory.mktemp("fi-clean"))
    mounts = H.host_mounts()
    proc, trace, out = strace_run(tmp)
    rep = report_of(proc.stdout)
    assert proc.returncode == 0 and rep and rep["status"] == "ok", (proc.returncode, proc.stdout[-3000:],
                                                                     proc.stderr[-3000:])
    assert MARK.encode() in proc.stdout and os.path.exists(os.path.join(out, MARK))
    assert rep["isolation"]["mode"] == "full", rep
    assert trace.anchor is not None and trace.code_start is not None, "roles not found in the trace"
    assert leftovers(trace) == [] and H.host_mounts() == mounts
    return trace


@pytest.fixture(scope="module")
def outcomes(clean, tmp_path_factory):
    """Every generated fault, injected once: [(case, verdict dict)]."""
    cases, _ = generate_cases(clean)
    results = []
    trace_set = set(STEPS) | STEP_MARKS | {"access", "execve", "clone", "clone3"}
    for case in cases:
        tmp = str(tmp_path_factory.mktemp("fi"))
        mounts = H.host_mounts()
        proc, trace, out = strace_run(tmp, inject=case, trace=trace_set)
        results.append((case, judge(case, proc, trace, out, mounts)))
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def tolerated(trace, c):
    """The stated reason if this injected call is one the setup survives."""
    for role, names, pat, step, why in TOLERATED:
        if trace.role(c) == role and re.fullmatch(names, c.name) and re.search(pat, c.text) and \
                (step is None or trace.step_of(c) == step):
            return why
    return None


def evidence(stdout):
    for line in stdout.decode("utf-8", "replace").splitlines():
        if line.startswith(EVIDENCE):
            return json.loads(line[len(EVIDENCE):])
    return None


def judge(case, proc, trace, out, mounts_before):
    """What one injected fault did, and what is wrong with it ("problems")."""
    rep = report_of(proc.stdout)
    hits = trace.injected()
    setup_hits = [c for c in hits if trace.in_setup(c)]
    ran = (MARK.encode() in proc.stdout or os.path.exists(os.path.join(out, MARK)) or
           bool(rep and rep["script"]["started"]))
    v = {
        "rc": proc.returncode,
        "status": rep and rep["status"],
        "error": (rep and rep["error"]) or proc.stderr.decode("utf-8", "replace").strip()[-300:],
        "started": bool(rep and rep["script"]["started"]),
        "ran": ran,
        "hits": ["%s %s#%d" % (trace.role(c), c.name, c.n) for c in hits],
        "hit_keys": {(trace.role(c), c.name, c.n) for c in setup_hits},
        "setup_hit": bool(setup_hits),
        "tolerated": [],
        "problems": [],
    }
    problems = v["problems"]
    left = leftovers(trace)
    if left:
        problems.append("left behind: " + "; ".join(left))
    if H.host_mounts() != mounts_before:
        problems.append("host mount table changed")
    if not setup_hits:
        return v  # not a setup fault (e.g. the interpreter's own call)
    if ran:
        survived = [(c, tolerated(trace, c)) for c in setup_hits]
        ignored = ["%s %s#%d: %s" % (trace.role(c), c.name, c.n, c.text.split(" ", 1)[1][:200])
                   for c, why in survived if why is None]
        if ignored:
            problems.append("FAIL-OPEN: the code ran although this setup call failed: " + " | ".join(ignored))
        v["tolerated"] = ["%s %s#%d (%s)" % (trace.role(c), c.name, c.n, why) for c, why in survived if why]
        ev = evidence(proc.stdout)
        if ev is not None:
            broken = {k: ev.get(k) for k, want in INTACT.items() if ev.get(k) != want}
            if ev.get("pids", 99) > 3:
                broken["pids"] = ev.get("pids")
            if broken:
                problems.append("FAIL-OPEN: the code ran with confinement broken: %r" % broken)
        elif not any(trace.role(c) == "interpreter" for c in hits) and \
                not (v["status"] == "sandbox-error" and all(
                    trace.role(c) == "supervisor" and c.name == "poll" for c in setup_hits)):
            # (A failed supervision poll kills the code as it starts: it
            # may never print; the init's own setup faults are what show
            # whether a layer can fail open.)
            problems.append("the code started but printed no evidence")
        if rep is None or rep["isolation"]["mode"] != "full":
            problems.append("the run was not in full mode")
        return v
    if rep is not None and rep["script"]["started"] is not False:
        problems.append("report: script.started is %r" % rep["script"]["started"])
    usage = [c for c in setup_hits if c.pid == trace.supervisor and c.name in ("mkdir", "openat") and
             out in c.text]
    if usage and proc.returncode == 125 and (rep is None or rep["status"] == "usage-error"):
        return v  # the output directory could not be opened: a usage error, nothing ran
    if proc.returncode != 126:
        problems.append("exit status %d, not 126" % proc.returncode)
    words = STEPS[case[0]][1] or "."
    if rep is None:
        # strace counts calls per process: the same when=N can also hit
        # the supervisor's write of the report to stdout.  Then stderr
        # must still name the failed step.
        report_write = [c for c in hits if c.pid == trace.supervisor and c.name == "write" and
                        re.search(r"write\(1<", c.text)]
        err = proc.stderr.decode("utf-8", "replace")
        if not (report_write and re.search(words, err, re.I)):
            problems.append("no report")
        return v
    if rep["status"] != "sandbox-error" or rep["exit_code"] != 126:
        problems.append("status %s exit_code %s" % (rep["status"], rep["exit_code"]))
    if rep["isolation"]["mode"] != "none" or rep["isolation"]["seccomp"]:
        problems.append("isolation claims layers although no code ran: %r" % rep["isolation"])
    if not rep["error"] or not re.search(words, rep["error"], re.I):
        problems.append("error does not name the step (%s): %r" % (words, rep["error"]))
    return v


def test_clean_run_under_strace(clean):
    """strace -f follows the clone; namespaces, Landlock and seccomp still
    work, and the trace shows every role."""
    roles = collections.Counter(clean.role(c) for c in clean.calls if clean.in_setup(c))
    assert roles["supervisor"] > 10 and roles["init"] > 50 and roles["exec"] == 1, roles


def test_cases_cover_every_setup_step(clean):
    cases, _ = generate_cases(clean)
    names = {n for n, _ in cases}
    must = {"clone", "openat", "write", "mkdir", "mount", "umount2", "pivot_root", "sethostname",
            "setresuid", "unshare", "prctl", "capset", "landlock_add_rule", "landlock_restrict_self",
            "landlock_create_ruleset", "seccomp", "close_range", "prlimit64", "execve", "pipe2",
            "socketpair"}
    assert must <= names, must - names
    # The filter is generated at build time (tools/gen-bpf.c): no run
    # compiles it, so libseccomp's memfd export is no setup step any more.
    assert "memfd_create" not in names
    mounts = sorted(n for s, n in cases if s == "mount")
    assert mounts == list(range(1, len(mounts) + 1)), mounts


def test_every_injected_setup_fault_fails_closed(outcomes):
    bad = [(case, v) for case, v in outcomes if v["problems"]]
    assert not bad, "\n".join("%s#%d: %s  [rc %s, status %s, hits %s, error %r]" % (
        case[0], case[1], "; ".join(v["problems"]), v["rc"], v["status"], v["hits"], v["error"])
        for case, v in bad)


def test_faults_reach_the_setup(outcomes):
    """Nearly every generated case fails a setup call (the rest happen to
    fall after the code started, e.g. in the interpreter)."""
    reached = [case for case, v in outcomes if v["setup_hit"]]
    assert len(reached) >= 0.9 * len(outcomes), [case for case, v in outcomes if not v["setup_hit"]]
    # The last mount index is past the setup: nothing is left to fail.
    last = max((case for case, v in outcomes if case[0] == "mount"), key=lambda c: c[1])
    assert not dict(outcomes)[last]["setup_hit"], dict(outcomes)[last]


def shadowed(trace, c):
    """The call of another process that has c's per-process index and can
    come first: a case (S, N) fails that one first (the supervisor's
    dynamic loader, its Landlock probe, its pipes and clone...).  Once the
    init runs, the supervisor works concurrently with it (it attaches the
    cgroups while the init mounts), so any of its calls after the clone
    may come first in one run and second in another."""
    clone = next((d.idx for d in trace.calls if d.pid == trace.supervisor and d.name in ("clone", "clone3")),
                 None)
    return next((d for d in trace.calls if d.pid != c.pid and d.name == c.name and d.n == c.n and
                 (d.idx < c.idx or (d.pid == trace.supervisor and clone is not None and d.idx > clone))),
                None)


def test_unreachable_steps_are_known(clean, outcomes):
    """Every chosen setup call is failed by some case, or an earlier call
    of another process with the same index (which strace fails first)
    explains why counting cannot reach it.  Those are exercised as the
    same kind of step at other indices."""
    _, chosen = generate_cases(clean)
    hit = set().union(*(v["hit_keys"] for _, v in outcomes))
    # The supervisor's calls once the init runs (its polls) vary in number
    # from run to run; the rest of the setup is deterministic.
    clone = next(c.idx for c in clean.calls if c.pid == clean.supervisor and c.name in ("clone", "clone3"))
    chosen = [c for c in chosen if clean.role(c) != "supervisor" or c.idx < clone]
    missed = [c for c in chosen if (clean.role(c), c.name, c.n) not in hit]
    unexplained = [c for c in missed if shadowed(clean, c) is None]
    assert not unexplained, unexplained


if __name__ == "__main__":
    import sys
    tmp = tempfile.mkdtemp()
    proc, tr, out = strace_run(tmp)
    cases, _ = generate_cases(tr)
    print(len(cases), "cases")
    for case in cases:
        if len(sys.argv) > 1 and case[0] not in sys.argv[1:]:
            continue
        m = H.host_mounts()
        d = tempfile.mkdtemp(dir=tmp)
        pr, t, o = strace_run(d, inject=case, trace=set(STEPS) | STEP_MARKS | {"access", "execve", "clone", "clone3"})
        v = judge(case, pr, t, o, m)
        print("%-28s rc=%-3s %-14s setup=%d ran=%d %s | %s | %s %s" % (
            "%s#%d" % case, v["rc"], v["status"], v["setup_hit"], v["ran"], v["hits"],
            (v["error"] or "")[:110], v["problems"], v["tolerated"]))
    shutil.rmtree(tmp, ignore_errors=True)
