"""Static proof of the seccomp filter (threat model 4.2).

The program under test is the one `sandcell policy --dump-bpf` writes (the
same compile step as the run path, src/lib/seccomp.c); as root it is also
read back from a live sandbox with PTRACE_SECCOMP_GET_FILTER and must be
byte-identical.  It is evaluated with tests/proof/bpf_eval.py, a classic-BPF
interpreter written from the kernel's semantics (no libseccomp), over the
domain of threat model 4.2 / gVisor secfuzz seeds:

  arch in {X86_64, I386, AARCH64, 0, 0xffffffff}
  nr   in [0, 1024) + [0x40000000, 0x40000400) + {0x3fffffff, 0x7fffffff, 0x80000000, 0xffffffff}
  args all 0 / all 0xffffffffffffffff / low halves set / high halves set,
  plus, for every constant k of an argument predicate, {k-1, k, k+1,
  k|1<<32, k|0xffffffff<<32, ~k} (gVisor UsefulTestCases, minijail +-1)
  and every clone flag bit alone.

Each verdict must equal the declared one (proof_lib.DeclaredModel, built
from `sandcell policy --json` alone), and every instruction of the program
must be executed by some input (secfuzz EnforceFullCoverage) unless it is
provably unreachable.
"""
import ctypes
import os
import subprocess
import time

import pytest

import bpf_eval as B
import harness as H
import proof_lib as L

M64 = L.M64
FOREIGN_ARCHES = {"i386": B.AUDIT_ARCH_I386, "aarch64": B.AUDIT_ARCH_AARCH64, "zero": 0,
                  "ones": 0xffffffff}
NATIVE_NRS = range(1024)
X32_NRS = range(0x40000000, 0x40000400)
EDGE_NRS = (0x3fffffff, 0x7fffffff, 0x80000000, 0xffffffff)
ARG_PATTERNS = {
    "zero": (0,) * 6,
    "ones": (M64,) * 6,
    "low-halves": (0xffffffff,) * 6,
    "high-halves": (0xffffffff00000000,) * 6,
}
NEVER_ALLOW = ("ptrace", "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl",
               "add_key", "request_key", "userfaultfd", "perf_event_open", "mount", "umount2",
               "fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount",
               "mount_setattr", "unshare", "setns", "clone3", "kexec_load", "kexec_file_load",
               "init_module", "finit_module", "delete_module", "pivot_root", "chroot")
# The argument predicates: syscall -> (argument index, allowed values key).
PREDICATES = {"ioctl": (1, "ioctl_allowed_requests"), "prctl": (0, "prctl_allowed_options"),
              "socket": (0, "socket_allowed_domains"), "socketpair": (0, "socket_allowed_domains"),
              "personality": (0, "personality_allowed"),
              "fcntl": (1, "fcntl_allowed_commands"), "futex": (1, "futex_allowed_ops")}


def useful_values(k):
    """gVisor UsefulTestCases + minijail +-1 biases for one constant."""
    return sorted({(k - 1) & M64, k & M64, (k + 1) & M64, (k | 1 << 32) & M64,
                   (k | 0xffffffff << 32) & M64, ~k & M64})


def all_constants():
    a = L.policy()["arguments"]
    ks = set()
    for key in ("ioctl_allowed_requests", "prctl_allowed_options", "socket_allowed_domains",
                "personality_allowed", "fcntl_allowed_commands", "futex_allowed_ops"):
        ks.update(a[key])
    ks.add(a["clone_denied_flags"])
    ks.update(1 << b for b in range(64))
    return sorted(ks)


def with_arg(idx, value, other):
    args = [other] * 6
    args[idx] = value
    return tuple(args)


def evaluate(prog, nr, args=(0,) * 6, arch=B.AUDIT_ARCH_X86_64):
    return prog.run(B.SeccompData(nr=nr, arch=arch, args=args))


def mismatch_report(bad, limit=40):
    lines = ["%-40s bpf=%-14s declared=%s" % (what, B.action_name(got), B.action_name(exp))
             for what, got, exp in bad[:limit]]
    if len(bad) > limit:
        lines.append("... %d more" % (len(bad) - limit))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def prog():
    return L.program()


@pytest.fixture(scope="module")
def model():
    return L.model()


def test_filter_is_valid_for_the_kernel(prog):
    """bpf_eval's validator applies the kernel's checks (seccomp opcode
    allowlist, load bounds, jump bounds, RET last, scratch init)."""
    assert 1 <= len(prog) <= B.BPF_MAXINSNS


def test_a_first_instruction_loads_arch(prog):
    first = prog.insns[0]
    assert first.code == B.BPF_LD | B.BPF_W | B.BPF_ABS and first.k == 4, B.disasm(prog.insns[:3])


def test_only_nr_arch_and_args_0_1_are_read(prog):
    """The verdict can depend only on nr, arch, args[0] and args[1] (both
    halves): instruction_pointer and args[2..5] are never loaded, so the
    domain above is complete in those dimensions."""
    offsets = {i.k for i in prog.insns if i.code == B.BPF_LD | B.BPF_W | B.BPF_ABS}
    assert offsets <= {0, 4, 16, 20, 24, 28}, sorted(offsets)


def test_only_allow_errno_kill_actions(prog):
    """No RET defers to a user-space agent or tracer (USER_NOTIF, TRACE) or
    merely logs (LOG); no RET A (the verdict is always a constant)."""
    rets = set()
    for i in prog.insns:
        if i.code & 0x07 == B.BPF_RET:
            assert i.code == B.BPF_RET | B.BPF_K, i
            rets.add(B.split_ret(i.k)[0])
    assert rets <= {B.SECCOMP_RET_ALLOW, B.SECCOMP_RET_ERRNO, B.SECCOMP_RET_KILL_PROCESS}, rets


@pytest.mark.parametrize("arch_name", sorted(FOREIGN_ARCHES))
def test_b_foreign_arch_always_killed(prog, arch_name):
    arch = FOREIGN_ARCHES[arch_name]
    bad = []
    for nr in list(NATIVE_NRS) + list(X32_NRS) + list(EDGE_NRS):
        for pname, args in ARG_PATTERNS.items():
            got = evaluate(prog, nr, args, arch)
            if got != B.SECCOMP_RET_KILL_PROCESS:
                bad.append(("arch=%#x nr=%#x %s" % (arch, nr, pname), got, B.SECCOMP_RET_KILL_PROCESS))
    assert not bad, mismatch_report(bad)


def test_c_x32_and_high_numbers_never_allowed(prog, model, record_property):
    """x86_64 arch with nr >= 2^30: never ALLOW.  Recorded: the x32 range
    [0x40000000, 0x40000400) and 0x7fffffff/0x80000000 are KILL_PROCESS
    (libseccomp's native-arch check sends every nr >= 0x40000000 except -1
    to the bad-arch action); 0x3fffffff (below the x32 bit) and 0xffffffff
    (-1, the kernel's "no syscall") get the default ERRNO(ENOSYS)."""
    bad = []
    for nr in list(X32_NRS) + list(EDGE_NRS):
        for pname, args in ARG_PATTERNS.items():
            got = evaluate(prog, nr, args)
            if B.split_ret(got)[0] == B.SECCOMP_RET_ALLOW or got != model.verdict(nr, args):
                bad.append(("nr=%#x %s" % (nr, pname), got, model.verdict(nr, args)))
    assert not bad, mismatch_report(bad)
    x32 = {B.action_name(evaluate(prog, nr)) for nr in X32_NRS}
    record_property("x32_verdicts", sorted(x32))
    record_property("edge_verdicts", {"%#x" % nr: B.action_name(evaluate(prog, nr)) for nr in EDGE_NRS})
    assert x32 == {"KILL_PROCESS"}, "declared: x32 is refused by killing the process"
    assert B.action_name(evaluate(prog, 0x3fffffff)) == "ERRNO(38)"
    assert B.action_name(evaluate(prog, 0xffffffff)) == "ERRNO(38)"


def test_d_every_native_nr_gets_the_declared_verdict(prog, model):
    bad = []
    for nr in NATIVE_NRS:
        for pname, args in ARG_PATTERNS.items():
            got, exp = evaluate(prog, nr, args), model.verdict(nr, args)
            if got != exp:
                bad.append(("nr=%d %s" % (nr, pname), got, exp))
    assert not bad, mismatch_report(bad)


def test_d_declared_table_is_well_formed(model):
    """Every named entry resolved to a number below 1024 (so the sweep of
    [0, 1024) sees all of them), allow entries carry no errno, errno
    entries carry one, and the default is ENOSYS."""
    assert model.default_errno == 38
    for e in model.pol["syscalls"]:
        assert e["nr"] is not None and 0 <= e["nr"] < 1024, e
        if e["verdict"] == "allow":
            assert e["errno"] == 0, e
        else:
            assert 0 < e["errno"] < 4096, e


@pytest.mark.parametrize("name", sorted(PREDICATES))
def test_e_argument_predicates_compare_64_bits(prog, model, name):
    idx, key = PREDICATES[name]
    nr = model.nr(name)
    allowed = set(model.sets[key])
    deny = L.ret_errno(model.by_name[name]["errno"])
    bad = []
    for k in sorted(allowed):
        for v in useful_values(k):
            for other in (0, M64):
                args = with_arg(idx, v, other)
                got = evaluate(prog, nr, args)
                exp = L.ret_allow() if v in allowed else deny
                if got != exp or got != model.verdict(nr, args):
                    bad.append(("%s arg%d=%#x other=%#x" % (name, idx, v, other), got, exp))
        # the CVE-2019-10063 shape: an allowed constant with garbage above
        for v in (k | 1 << 32, k | 0xffffffff << 32):
            if evaluate(prog, nr, with_arg(idx, v & M64, 0)) == L.ret_allow():
                bad.append(("%s %#x allowed on its low half only" % (name, v), L.ret_allow(), deny))
    assert not bad, mismatch_report(bad)


def test_e_socket_domains_0_to_45(prog, model):
    bad = []
    for name in ("socket", "socketpair"):
        nr = model.nr(name)
        for dom in range(46):
            for v in (dom, dom | 1 << 32):
                got = evaluate(prog, nr, (v, 1, 0, 0, 0, 0))
                exp = L.ret_allow() if v == 1 else L.ret_errno(97)
                if got != exp:
                    bad.append(("%s domain=%#x" % (name, v), got, exp))
    assert not bad, mismatch_report(bad)


def test_e_clone_each_flag_bit(prog, model):
    nr = model.nr("clone")
    denied = model.clone_denied
    assert denied == 0x7e020000, "CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET"
    bad = []
    for b in range(64):
        bit = 1 << b
        for flags in (bit, bit | 17, bit | 1 << 32 | 17, bit | 0xffffffff00000000):
            for other in (0, M64):
                got = evaluate(prog, nr, with_arg(0, flags, other))
                exp = L.ret_errno(1) if flags & denied else L.ret_allow()
                if got != exp:
                    bad.append(("clone flags=%#x other=%#x" % (flags, other), got, exp))
    # every pair of namespace bits, too
    ns_bits = [1 << b for b in range(64) if denied >> b & 1]
    for x in ns_bits:
        for y in ns_bits:
            got = evaluate(prog, nr, (x | y | 17,))
            if got != L.ret_errno(1):
                bad.append(("clone flags=%#x" % (x | y | 17), got, L.ret_errno(1)))
    assert not bad, mismatch_report(bad)


def test_f_never_allow_set(prog, model):
    missing = [n for n in NEVER_ALLOW if n not in model.by_name]
    assert not missing, "never-allow syscalls absent from the declared table: %s" % missing
    not_errno = [n for n in NEVER_ALLOW if model.by_name[n]["verdict"] != "errno"]
    assert not not_errno, "never-allow syscalls not declared as a plain errno: %s" % not_errno
    values = sorted({v for k in all_constants() for v in useful_values(k)} | {0, M64, 0xffffffff})
    bad = []
    for name in NEVER_ALLOW:
        nr = model.nr(name)
        exp = L.ret_errno(model.by_name[name]["errno"])
        for pname, args in ARG_PATTERNS.items():
            got = evaluate(prog, nr, args)
            if got != exp:
                bad.append(("%s %s" % (name, pname), got, exp))
        for v in values:
            for idx in range(6):
                got = evaluate(prog, nr, with_arg(idx, v, 0))
                if B.split_ret(got)[0] == B.SECCOMP_RET_ALLOW or got != exp:
                    bad.append(("%s arg%d=%#x" % (name, idx, v), got, exp))
        for nr2 in (nr | B.X32_SYSCALL_BIT,):
            got = evaluate(prog, nr2)
            if got != B.SECCOMP_RET_KILL_PROCESS:
                bad.append(("x32 %s" % name, got, B.SECCOMP_RET_KILL_PROCESS))
    assert not bad, mismatch_report(bad)


def full_domain(model):
    """Every input the tests above evaluate, and nothing else."""
    arches = [B.AUDIT_ARCH_X86_64] + list(FOREIGN_ARCHES.values())
    for arch in arches:
        for nr in list(NATIVE_NRS) + list(X32_NRS) + list(EDGE_NRS):
            for args in ARG_PATTERNS.values():
                yield B.SeccompData(nr=nr, arch=arch, args=args)
    for name, (idx, key) in PREDICATES.items():
        for k in model.sets[key]:
            for v in useful_values(k):
                for other in (0, M64):
                    yield B.SeccompData(nr=model.nr(name), args=with_arg(idx, v, other))
    for b in range(64):
        yield B.SeccompData(nr=model.nr("clone"), args=(1 << b | 17,))


def reachable(insns):
    seen, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc in seen:
            continue
        seen.add(pc)
        todo.extend(B._successors(pc, insns[pc], len(insns)))
    return seen


def test_g_every_instruction_covered(model, record_property):
    """secfuzz EnforceFullCoverage: the domain executes every instruction.
    The only exception allowed is an instruction no jump reaches at all
    (libseccomp appends a trailing RET for the bad-arch action after the
    last rule); such dead code must be a RET, so it cannot change a verdict."""
    p = L.program()
    for d in full_domain(model):
        p.run(d)
    dead = sorted(set(range(len(p))) - reachable(p.insns))
    uncovered = sorted(set(range(len(p))) - p.coverage - set(dead))
    record_property("instructions", len(p))
    record_property("unreachable", dead)
    listing = B.disasm(p.insns).splitlines()
    assert not uncovered, "reachable but never executed:\n" + "\n".join(listing[pc] for pc in uncovered)
    for pc in dead:
        assert p.insns[pc].code & 0x07 == B.BPF_RET, "dead non-RET instruction:\n" + listing[pc]


# ----------------------------------------------------------------------------
# The dump is the filter actually installed (root: PTRACE_SECCOMP_GET_FILTER).

PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_SECCOMP_GET_FILTER = 17, 0x4206, 0x4207, 0x420c
WALL = 0x40000000


def _read_filter(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_SEIZE, pid, None, None) != 0:
        raise OSError(ctypes.get_errno(), "PTRACE_SEIZE %d" % pid)
    try:
        libc.ptrace(PTRACE_INTERRUPT, pid, None, None)
        os.waitpid(pid, WALL)
        n = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, None, None)
        if n < 0:
            raise OSError(ctypes.get_errno(), "PTRACE_SECCOMP_GET_FILTER %d" % pid)
        buf = ctypes.create_string_buffer(8 * n)
        assert libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, None, buf) == n
        # index 1: there must be no second (older) filter
        second = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, ctypes.c_void_p(1), None)
        second_errno = ctypes.get_errno()
        return buf.raw, (second, second_errno)
    finally:
        libc.ptrace(PTRACE_DETACH, pid, None, None)


@pytest.mark.skipif(not H.IS_ROOT, reason="PTRACE_SECCOMP_GET_FILTER needs CAP_SYS_ADMIN")
def test_dump_equals_installed_filter():
    proc = subprocess.Popen([H.BIN, "run", "--wall-time", "30", "-c",
                             "import sys; print('ready', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        got = {}
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            for pid in H.descendants(proc.pid):
                try:
                    with open("/proc/%d/status" % pid) as f:
                        status = dict(l.split(":", 1) for l in f if ":" in l)
                except OSError:
                    continue
                if status.get("Seccomp", "").strip() == "2":
                    got[pid] = (_read_filter(pid), status["NSpid"].split())
            if not got:
                time.sleep(0.1)
        # the sandbox's init (pid 1 inside) and the interpreter (pid 2)
        assert sorted(v[1][-1] for v in got.values()) == ["1", "2"], got
        for pid, ((raw, (second, second_errno)), _) in got.items():
            assert raw == L.bpf_bytes(), "installed filter of pid %d differs from --dump-bpf" % pid
            assert second == -1 and second_errno == 2, "pid %d has a second seccomp filter" % pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
