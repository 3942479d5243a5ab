"""Dynamic syscall sweep from inside the sandbox (threat model 4.3).

One sandboxed run of sysprobe.py calls every x86_64 number 0..1023, every
x32 number (nr | 0x40000000) 0..1023 and every i386 number 0..511 (int 0x80
from an RWX page), each in its own forked child with harmless arguments,
and reports what happened.  Compared with the declared policy
(`sandcell policy --json`, through proof_lib.DeclaredModel and the exact
arguments sysprobe passes):

  * denied (errno) and unlisted numbers return exactly the declared errno;
  * allowed numbers return what the same probe returns unsandboxed on the
    host (the host baseline), so an allowed call is never answered by the
    filter and a kernel that lacks a syscall shows the same ENOSYS on both
    sides.  Only numbers the declared policy allows for the probe's
    arguments run on the host (each in a throwaway child with
    no_new_privs): denied numbers are never called unsandboxed, and
    HOST_NEVER (reboot, kexec_*, *_module, swapoff, mount, vhangup, ...)
    would not be even if a policy change allowed them; for those only the
    sandboxed verdict is required;
  * uretprobe and uprobe, which the kernel exempts from seccomp, are inert;
  * every x32 and every i386 number kills the process with SIGSYS (SIGSEGV
    instead only if the host kernel has the i386 ABI disabled);
  * docs/syscalls.md is exactly what this sweep renders (on another kernel
    series: in every cell the kernel version cannot change).
"""
import os
import re

import pytest

import harness as H
import proof_lib as L
import syscall_names as N
import syscalls_doc as D
import sysprobe

SIGSYS_KILL = ["signal", H.SIGSYS]


@pytest.fixture(scope="module")
def sweep():
    results, info = D.live_sweep()
    return {"results": results, "self": info}


@pytest.fixture(scope="module")
def model():
    return L.model()


def declared(model, nr):
    return model.verdict(nr, sysprobe.args_used("x86_64", nr))


def allowed_nrs(model):
    return [nr for nr in range(1024) if declared(model, nr) == L.ret_allow()]


# Never called on the host, whatever the declared policy says: calls whose
# effect reaches beyond the calling child (host-wide state, the terminal,
# the disks) even with junk arguments, or that would if the junk happened
# to be valid.  None of them is allowed today; if one ever is, only its
# sandboxed verdict is checked.
HOST_NEVER = {
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "mount", "umount2", "pivot_root", "chroot", "syslog", "iopl",
    "ioperm", "quotactl", "quotactl_fd", "vhangup", "sync", "syncfs", "ptrace",
    "process_vm_writev", "bpf", "perf_event_open", "fanotify_init", "open_by_handle_at",
}


def baseline_nrs(model):
    return [nr for nr in allowed_nrs(model) if N.X86_64.get(nr) not in HOST_NEVER]


@pytest.fixture(scope="module")
def baseline(model):
    return L.run_host("sysprobe.py", {"x86_64": baseline_nrs(model), "concurrency": 32},
                      sysprobe.MARK)["results"]


def test_probe_ran_under_one_filter(sweep):
    """The probe itself is filtered (Seccomp 2), with exactly one filter
    (so the static proof of that one program is the whole story), no
    capabilities and no_new_privs."""
    info = sweep["self"]
    assert info["Seccomp"] == "2", info
    assert info["Seccomp_filters"] == "1", info
    assert info["NoNewPrivs"] == "1", info
    assert int(info["CapEff"], 16) == 0, info


def test_sweep_is_complete(sweep):
    res = sweep["results"]
    expected = {"x86_64:%d" % n for n in range(1024)} | {"x32:%d" % n for n in range(1024)} | \
        {"i386:%d" % n for n in range(512)}
    assert set(res) == expected
    errors = {k: v for k, v in res.items() if v[0] in ("error", "timeout")}
    # pause is interrupted by its own timer; nothing may hang or fail in Python
    assert not errors, errors


def test_x86_64_denied_and_unlisted_return_declared_errno(sweep, model):
    bad = []
    for nr in range(1024):
        exp = declared(model, nr)
        if exp == L.ret_allow() or nr in D.KERNEL_EXEMPT:
            continue
        want = ["errno", exp & 0xffff]
        got = sweep["results"]["x86_64:%d" % nr]
        if got != want:
            bad.append("%d %s: declared %s, observed %s" % (nr, N.X86_64.get(nr, "?"),
                                                           D.fmt_obs(want), D.fmt_obs(got)))
    assert not bad, "\n".join(bad)


def test_x86_64_allowed_match_host_baseline(sweep, model, baseline):
    bad = []
    for nr in allowed_nrs(model):
        key = "x86_64:%d" % nr
        got = sweep["results"][key]
        if key not in baseline:  # HOST_NEVER: the sandboxed verdict only
            if got == SIGSYS_KILL or got[0] in ("error", "timeout"):
                bad.append("%d %s: sandbox %s" % (nr, N.X86_64.get(nr, "?"), D.fmt_obs(got)))
            continue
        host = baseline[key]
        if got != host or got == SIGSYS_KILL:
            bad.append("%d %s: sandbox %s, host %s" % (nr, N.X86_64.get(nr, "?"), D.fmt_obs(got),
                                                       D.fmt_obs(host)))
    assert not bad, "\n".join(bad)


def test_x86_64_allowed_are_reached(sweep, model):
    """Positive controls: calls the harmless arguments let succeed."""
    res = sweep["results"]
    for name in ("getpid", "getppid", "gettid", "sched_yield", "umask", "fork", "vfork", "clone"):
        assert res["x86_64:%d" % model.nr(name)] == ["ok", 0], name
    for name in ("exit", "exit_group"):
        assert res["x86_64:%d" % model.nr(name)] == ["exit", 42], name
    assert res["x86_64:%d" % model.nr("rt_sigreturn")] == ["signal", 11]
    assert res["x86_64:%d" % model.nr("pause")] == ["errno", 4]  # EINTR: it blocked


@pytest.mark.parametrize("nr", sorted(D.KERNEL_EXEMPT))
def test_kernel_exempt_syscalls_are_inert(sweep, nr):
    """uretprobe/uprobe bypass seccomp in the kernel (6.11+/6.18+).  They
    are not in the declared table (declared ENOSYS); called outside a uprobe
    trampoline they must only SIGILL the caller or fail."""
    name, allowed = D.KERNEL_EXEMPT[nr]
    assert N.X86_64[nr] == name
    assert sweep["results"]["x86_64:%d" % nr] in allowed


def test_x32_every_number_killed(sweep):
    bad = {n: v for n in range(1024) if (v := sweep["results"]["x32:%d" % n]) != SIGSYS_KILL}
    assert not bad, bad


@pytest.fixture(scope="module")
def host_ia32():
    """Whether this kernel runs i386 syscalls at all: int 0x80 getpid (20)
    on the host.  With ia32_emulation=0 it raises SIGSEGV before any
    syscall entry, and then so must every i386 call in the sandbox."""
    return L.run_host("sysprobe.py", {"i386": [20]}, sysprobe.MARK)["results"]["i386:20"]


def test_i386_every_number_killed(sweep, host_ia32):
    expected = SIGSYS_KILL
    if host_ia32 == ["signal", 11]:
        expected = ["signal", 11]  # the i386 ABI is disabled in the kernel
    else:
        assert host_ia32 == ["ok", 0], host_ia32
    bad = {n: v for n in range(512) if (v := sweep["results"]["i386:%d" % n]) != expected}
    assert not bad, bad


def _header(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"#define __NR_(\w+)\s+(?:\(__X32_SYSCALL_BIT \+ )?(\d+)\)?", line)
                if m:
                    out[int(m.group(2))] = m.group(1)
    except FileNotFoundError:
        pytest.skip("%s not installed (linux-libc-dev)" % path)
    return out


@pytest.mark.parametrize("table,header", [
    ("X86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    ("I386", "/usr/include/x86_64-linux-gnu/asm/unistd_32.h"),
])
def test_static_names_agree_with_uapi_headers(table, header):
    hdr = _header(header)
    static = getattr(N, table)
    diff = {nr: (static.get(nr), name) for nr, name in hdr.items() if static.get(nr) != name}
    assert not diff, diff


def test_static_names_agree_with_policy_json(model):
    diff = {e["name"]: (e["nr"], N.X86_64.get(e["nr"])) for e in model.pol["syscalls"]
            if N.X86_64.get(e["nr"]) != e["name"]}
    assert not diff, diff


DOC = os.path.join(H.ROOT, "docs", "syscalls.md")


def test_docs_syscalls_md_matches_live_sweep(sweep):
    """CI check: the committed table is what the sweep produces now.
    Regenerate with `/usr/bin/python3 tools/gen-syscalls.py`.  On the
    kernel series the file was generated on, every byte must match; on
    another one, every cell that does not depend on the kernel version
    (declared verdicts, every filter errno, x32 and i386) must."""
    if not os.path.exists(DOC):
        pytest.skip("docs/syscalls.md is not in this tree (copy docs/ next to tests/)")
    with open(DOC, encoding="utf-8") as f:
        committed = f.read()
    live = D.render(L.policy(), sweep["results"])
    m = D.KERNEL_LINE.search(committed)
    same_kernel = m is not None and m.group(1).startswith(D.kernel_series() + " ")
    if not same_kernel:
        committed, live = D.kernel_independent(committed), D.kernel_independent(live)
    if committed != live:
        import difflib
        diff = "".join(difflib.unified_diff(committed.splitlines(True), live.splitlines(True),
                                            "docs/syscalls.md", "live sweep", n=0))
        pytest.fail("docs/syscalls.md is stale%s; run tools/gen-syscalls.py\n"
                    % ("" if same_kernel else " (kernel-independent cells)") + diff[:6000])


def test_docs_kernel_independent_view_masks_only_kernel_cells(sweep):
    """The relaxed comparison (another kernel series) masks only the
    kernel's own answers: every row the filter decides on its own (errno
    and default rows), and the x32 and i386 columns, stay compared."""
    live = D.render(L.policy(), sweep["results"])
    masked = D.kernel_independent(live)
    rows = [l[2:-2].split(" | ") for l in masked.splitlines() if l.startswith("| ") and l.count(" | ") == 6]
    rows = [r for r in rows if r[0] not in ("nr", "---")]
    assert len(rows) > 400
    for r in rows:
        kernel_cell = r[2] == "allow" or r[2].startswith("args") or "\u2020" in r[1]
        assert (r[3] == "*") == kernel_cell, r
        assert "*" not in (r[4], r[6]), r
    # a changed kernel answer passes the relaxed check, a changed filter verdict does not
    other = D.render(L.policy(), sweep["results"], kernel="Linux 1.0")
    read_row = next(l for l in other.splitlines() if l.startswith("| 0 | read |"))
    ptrace_row = next(l for l in other.splitlines() if l.startswith("| 101 | ptrace |"))
    changed_kernel = other.replace(read_row, read_row.replace("EBADF", "EINVAL"))
    changed_filter = other.replace(ptrace_row, ptrace_row.replace("| EPERM | EPERM |", "| EPERM | ok |"))
    assert D.kernel_independent(changed_kernel) == D.kernel_independent(live)
    assert D.kernel_independent(changed_filter) != D.kernel_independent(live)
