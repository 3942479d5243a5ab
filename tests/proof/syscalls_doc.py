"""The live syscall sweep and its rendering as docs/syscalls.md.

Used by test_syscall_sweep.py (which fails when the committed document
differs from what the sweep produces) and by tools/gen-syscalls.py (which
writes it).  Everything rendered is deterministic: the declared policy, the
static name tables of syscall_names.py and the sandboxed observations
(no host baseline, no kernel version, no timings).
"""
import errno
import os
import re
import signal

import proof_lib as L
import syscall_names as N
import sysprobe

SWEEP_SPEC = {"x86_64": [[0, 1024]], "x32": [[0, 1024]], "i386": [[0, 512]], "concurrency": 32}

# The kernel runs these before seccomp (kernel/seccomp.c: __secure_computing
# skips uretprobe since 6.11 and uprobe since 6.18 on x86_64 when called
# natively), so the filter's verdict is not what the caller sees.  Outside
# a uprobe trampoline they only SIGILL the caller (uretprobe) or fail with
# ENXIO (uprobe); on older kernels the filter's ENOSYS shows.
KERNEL_EXEMPT = {
    335: ("uretprobe", (["signal", 4], ["errno", errno.ENOSYS])),
    336: ("uprobe", (["errno", errno.ENXIO], ["errno", errno.ENOSYS])),
}

_ERRNO_NAMES = dict(errno.errorcode)
_ERRNO_NAMES.update({errno.EAGAIN: "EAGAIN", errno.EDEADLK: "EDEADLK", errno.EOPNOTSUPP: "EOPNOTSUPP"})


def live_sweep():
    """One sandboxed run of sysprobe.py over every ABI; returns
    (results {"abi:nr": [kind, value]}, self-info of the probe)."""
    res = L.run_sandboxed("sysprobe.py", SWEEP_SPEC, sysprobe.MARK)
    return res["results"], res["self"]


def errno_name(e):
    return _ERRNO_NAMES.get(e, "errno %d" % e)


def signal_name(s):
    try:
        return signal.Signals(s).name
    except ValueError:
        return "signal %d" % s


def fmt_obs(obs):
    if obs is None:
        return ""
    kind, value = obs
    if kind == "ok":
        return "ok"
    if kind == "errno":
        return errno_name(value)
    if kind == "signal":
        return signal_name(value)
    if kind == "exit":
        return "exit(%d)" % value
    if kind == "timeout":
        return "timeout"
    return "%s %s" % (kind, value)


def fmt_declared(model, nr):
    e = model.by_nr.get(nr)
    if e is None:
        return "ENOSYS (default)"
    if e["verdict"] == "allow":
        return "allow"
    if e["verdict"] == "errno":
        return errno_name(e["errno"])
    return "args, else %s" % errno_name(e["errno"])


def _row(model, results, nr):
    x64_name = N.X86_64.get(nr, "")
    i386_name = N.I386.get(nr, "") if nr < 512 else ""
    name = x64_name
    if nr in KERNEL_EXEMPT:
        name += " \u2020"
    return [str(nr), name, fmt_declared(model, nr),
            fmt_obs(results.get("x86_64:%d" % nr)), fmt_obs(results.get("x32:%d" % nr)),
            i386_name, fmt_obs(results.get("i386:%d" % nr)) if nr < 512 else ""]


def kernel_series():
    """"Linux 6.18": the kernel the sweep ran on, major.minor only."""
    rel = os.uname().release
    m = re.match(r"(\d+)\.(\d+)", rel)
    return "Linux %s.%s" % (m.group(1), m.group(2)) if m else "Linux " + rel


KERNEL_LINE = re.compile(r"^- observed on: (.*)$", re.M)


def kernel_independent(text):
    """text with every cell that depends on the kernel version rather than
    on the filter masked: the kernel line, and the x86_64 observation of
    allowed and argument-filtered rows (the kernel's own answer to the
    harmless arguments, e.g. EINVAL on one release and EBADF on the next)
    and of the seccomp-exempt rows."""
    out = []
    for line in text.splitlines(True):
        if KERNEL_LINE.match(line):
            line = "- observed on: *\n"
        elif line.startswith("| ") and line.count(" | ") == 6:
            cells = line[2:-3].split(" | ")
            if cells[2] == "allow" or cells[2].startswith("args") or "\u2020" in cells[1]:
                cells[3] = "*"
            line = "| " + " | ".join(cells) + " |\n"
        out.append(line)
    return "".join(out)


def render(pol, results, kernel=None):
    model = L.DeclaredModel(pol)
    kernel = kernel or kernel_series()
    a = pol["arguments"]
    rows = [_row(model, results, nr) for nr in range(1024)]
    # Collapse runs of unnamed numbers with identical columns.
    out_rows = []
    i = 0
    while i < len(rows):
        j = i
        if not rows[i][1] and not rows[i][5]:
            while (j + 1 < len(rows) and not rows[j + 1][1] and not rows[j + 1][5]
                   and rows[j + 1][2:] == rows[i][2:]):
                j += 1
        r = list(rows[i])
        if j > i:
            r[0] = "%d\u2013%d" % (i, j)
        out_rows.append(r)
        i = j + 1

    def count(abi, n, obs):
        return sum(1 for nr in range(n) if results.get("%s:%d" % (abi, nr)) == obs)

    kinds = {}
    for e in pol["syscalls"]:
        kinds[e["verdict"]] = kinds.get(e["verdict"], 0) + 1
    def otherwise(name):
        return errno_name(model.by_name[name]["errno"])

    hexlist = lambda vs: ", ".join("%#x" % v for v in vs)  # noqa: E731
    lines = [
        "# Syscall verdicts: declared and observed",
        "",
        "<!-- Generated by tools/gen-syscalls.py from `sandcell policy --json` and a live",
        "     sweep (tests/proof/sysprobe.py).  Do not edit: tests/proof/test_syscall_sweep.py",
        "     fails when this file differs from what the sweep produces (on another",
        "     kernel series: in any cell that does not depend on the kernel). -->",
        "",
        "Every syscall number of the three x86 ABIs, as the seccomp filter declares it",
        "(`src/lib/policy.c`, argument sets in `src/lib/seccomp.c`) and as a probe",
        "running inside the sandbox observes it.  For each number the probe forks a",
        "child, arms `alarm(2)` and makes the call with harmless arguments (fd -1,",
        "pointer 1, length 0; signal 0 and a pid that cannot exist for the kill family;",
        "status 42 for exit/exit_group; a zeroed frame for rt_sigreturn; fork, vfork",
        "and clone(SIGCHLD) from machine code whose child exits at once).",
        "",
        "- **declared**: `allow`; an errno name (the filter returns it, the kernel never",
        "  sees the call); `ENOSYS (default)` for every number the table does not name;",
        "  `args, else E`: allowed only for the argument values below, E otherwise.",
        "- **x86_64**: what the call returned in the sandbox.  For allowed calls this is",
        "  the kernel's answer to the harmless arguments (EBADF, EFAULT, EINVAL, ...), and",
        "  the tests require it to equal the same probe run unsandboxed on the host.",
        "  For the argument-filtered calls the harmless arguments are outside the",
        "  allowed sets (except clone(SIGCHLD)), so the filter's errno shows.",
        "- **x32** (`nr | 0x40000000`, same `syscall` instruction) and **i386**",
        "  (`int 0x80` from an RWX page, i386 numbering): SIGSYS means the filter killed",
        "  the process before the kernel dispatched anything (SECCOMP_RET_KILL_PROCESS).",
        "- \u2020 exempted from seccomp by the kernel itself (uretprobe since 6.11, uprobe",
        "  since 6.18): outside a uprobe trampoline they only SIGILL the caller or fail",
        "  with ENXIO, so the declared ENOSYS does not show.",
        "",
        "Summary of this sweep:",
        "",
        "- observed on: %s x86_64 (the allowed rows show that kernel's answers; the" % kernel,
        "  check of this file compares them only on the same kernel series)",
        "- declared table: %d allowed, %d argument-filtered, %d denied with an errno;"
        % (kinds.get("allow", 0), kinds.get("args", 0), kinds.get("errno", 0)),
        "  all other numbers ENOSYS",
        "- x32: %d of 1024 numbers killed by SIGSYS" % count("x32", 1024, ["signal", 31]),
        "- i386: %d of 512 numbers killed by SIGSYS" % count("i386", 512, ["signal", 31]),
        "",
        "Argument predicates (64-bit compares: a value with bits set above bit 31",
        "never matches an allowed constant):",
        "",
        "| syscall | allowed | otherwise |",
        "|---|---|---|",
        "| ioctl | request (arg 1) in %s | %s |"
        % (hexlist(sorted(a["ioctl_allowed_requests"])), otherwise("ioctl")),
        "| prctl | option (arg 0) in %s | %s |"
        % (", ".join(str(v) for v in sorted(a["prctl_allowed_options"])),
           otherwise("prctl")),
        "| personality | persona (arg 0) in %s | %s |"
        % (hexlist(sorted(a["personality_allowed"])), otherwise("personality")),
        "| socket, socketpair | domain (arg 0) in %s (AF_UNIX) | %s |"
        % (", ".join(str(v) for v in a["socket_allowed_domains"]),
           otherwise("socket")),
        "| fcntl | command (arg 1) in %s (no leases, dnotify or write-life hints) | %s |"
        % (", ".join(str(v) for v in sorted(a["fcntl_allowed_commands"])), otherwise("fcntl")),
        "| futex | operation (arg 1) in %s (no requeue) | %s |"
        % (", ".join(str(v) for v in sorted(a["futex_allowed_ops"])), otherwise("futex")),
        "| clone | flags (arg 0) & %#x == 0 (no namespace flag) | %s |"
        % (a["clone_denied_flags"], otherwise("clone")),
        "",
        "| nr | x86_64 name | declared | x86_64 | x32 | i386 name | i386 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out_rows:
        lines.append("| " + " | ".join(c if c else "" for c in r) + " |")
    return "\n".join(lines) + "\n"
