"""Attack rows A1-A3, A8, A10-A11: foreign syscall ABIs, every thread and
every descendant under the same filter.

Declared: a foreign arch (i386 via int 0x80) or an x32 number (bit 30 set)
kills the whole process with SIGSYS before dispatch (SCMP_ACT_KILL_PROCESS
as the bad-arch action).  Each probe runs in a forked child inside one
sandbox run so one kill does not end the others; three full runs check that
the supervisor reports the kill as status "signaled", signal 31.
"""
import errno

import pytest

from harness import SIGSYS, case, probe, run

SIGILL, SIGSEGV = 4, 11

RWX = r'''
import mmap, threading
_pages = []
def rwx(code):
    """Callable for machine code placed on a fresh RWX anonymous page."""
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    _pages.append(m)
    return ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
def int80(nr, ebx=0):
    # push rbx; mov eax, nr; mov ebx, arg; int 0x80; pop rbx; ret
    return rwx(b"\x53\xb8" + nr.to_bytes(4, "little") + b"\xbb" + ebx.to_bytes(4, "little")
               + b"\xcd\x80\x5b\xc3")
def sysenter(nr):
    # push rbx; mov eax, nr; sysenter; pop rbx; ret
    return rwx(b"\x53\xb8" + nr.to_bytes(4, "little") + b"\x0f\x34\x5b\xc3")
def raw_syscall(nr):
    # mov eax, nr; syscall; ret  (no libc involved)
    return rwx(b"\xb8" + nr.to_bytes(4, "little") + b"\x0f\x05\xc3")
X32 = 0x40000000
def in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]
'''

# (guarantee, name, expression run in a forked child, expected outcome)
KILL = {"signal": SIGSYS}
CHILD_CASES = [
    ("G4", "x32-read", "err_of(sc(X32 | 0, 0xffffffff, 0, 0))", KILL),
    ("G4", "x32-write", "err_of(sc(X32 | 1, 1, b'x', 1))", KILL),
    ("G4", "x32-getpid", "err_of(sc(X32 | 39))", KILL),
    ("G4", "x32-ptrace", "err_of(sc(X32 | 101, 0, 0, 0, 0))", KILL),
    ("G4", "x32-clone3", "err_of(sc(X32 | 435, 0, 0))", KILL),
    ("G4", "x32-only-rt_sigaction-512", "err_of(sc(X32 | 512, 0, 0, 0, 8))", KILL),
    ("G4", "x32-only-execve-520", "err_of(sc(X32 | 520, b'/bin/sh', 0, 0))", KILL),
    ("G4", "x32-nr-1023", "err_of(sc(X32 | 1023))", KILL),
    ("G4", "nr-0x7fffffff", "err_of(sc(0x7fffffff))", KILL),
    ("G4", "nr-0x80000000", "err_of(sc(0x80000000))", KILL),
    ("G4", "x32-raw-syscall-insn-getpid", "raw_syscall(X32 | 39)()", KILL),
    ("G4", "nr-minus-1", "err_of(sc(0xffffffffffffffff))", {"exit": 0, "value": errno.ENOSYS}),
    ("G4", "i386-int80-getpid", "int80(20)()", KILL),
    ("G4", "i386-int80-exit-42", "int80(1, 42)()", KILL),
    ("G4", "i386-int80-write", "int80(4, 1)()", KILL),
    ("G4", "i386-int80-execve", "int80(11)()", KILL),
    ("G4", "i386-int80-mount", "int80(21)()", KILL),
    ("G4", "i386-int80-setuid-0", "int80(23, 0)()", KILL),
    ("G4", "i386-int80-ptrace", "int80(26)()", KILL),
    ("G4", "i386-int80-socketcall", "int80(102, 1)()", KILL),
    ("G4", "i386-int80-unshare-newuser", "int80(310, 0x10000000)()", KILL),
    ("G4", "x32-from-thread", "in_thread(lambda: err_of(sc(X32 | 39)))", KILL),
    ("G4", "i386-int80-from-thread", "in_thread(lambda: int80(20)())", KILL),
    # Denials hold on every thread and in every descendant (A10).
    ("G4", "thread-ptrace-TRACEME", "in_thread(lambda: err_of(sc(101, 0, 0, 0, 0)))",
     {"exit": 0, "value": errno.EPERM}),
    ("G3", "thread-unshare-NEWUSER", "in_thread(lambda: err_of(sc(272, 0x10000000)))",
     {"exit": 0, "value": errno.EPERM}),
    ("G3", "forked-child-unshare-NEWUSER", "err_of(sc(272, 0x10000000))",
     {"exit": 0, "value": errno.EPERM}),
    ("G5", "forked-child-socket-AF_INET", "err_of(sc(41, 2, 1, 0))",
     {"exit": 0, "value": errno.EAFNOSUPPORT}),
    ("G4", "grandchild-io_uring_setup",
     "in_child(lambda: err_of(sc(425, 8, ctypes.create_string_buffer(120))))",
     {"exit": 0, "value": {"exit": 0, "value": errno.EPERM}}),
]

CODE = RWX + r'''
CASES = %r
res = {}
for gid, name, expr, _ in CASES:
    res[name] = in_child(lambda: eval(expr))
# sysenter: on AMD a #UD in long mode (SIGILL); on Intel it enters the
# 32-bit entry and the filter kills (SIGSYS).  Either way it never returns.
res["sysenter"] = in_child(lambda: sysenter(20)())
# 335 (uretprobe, 6.11) and 336 (uprobe, 6.18) are exempted from seccomp by
# the kernel; outside a uprobe trampoline they only SIGILL / fail.
res["uretprobe-335"] = in_child(lambda: err_of(sc(335)))
res["uprobe-336"] = in_child(lambda: err_of(sc(336)))
emit(res)
''' % ([tuple(c) for c in CHILD_CASES],)


@pytest.fixture(scope="module")
def results():
    r, res = probe(CODE)
    assert r.status == "ok", r
    return res


@pytest.mark.parametrize("name,expected", [case(g, n, n, e) for g, n, _, e in CHILD_CASES])
def test_abi_in_child(host_postconditions, results, name, expected):
    assert results[name] == expected


def test_G4_sysenter_never_returns(host_postconditions, results):
    """A3: sysenter from a 64-bit process is either #UD or a compat syscall
    that the filter kills; it must never run a syscall and return."""
    assert results["sysenter"] in ({"signal": SIGSYS}, {"signal": SIGILL}, {"signal": SIGSEGV})


@pytest.mark.parametrize("name,allowed", [
    case("G4", "uretprobe-335-kernel-exempt-is-inert", "uretprobe-335",
         ({"signal": SIGILL}, {"exit": 0, "value": errno.ENOSYS})),
    case("G4", "uprobe-336-kernel-exempt-is-inert", "uprobe-336",
         ({"exit": 0, "value": errno.ENXIO}, {"exit": 0, "value": errno.ENOSYS})),
])
def test_seccomp_exempt_syscalls_inert(host_postconditions, results, name, allowed):
    """The kernel passes uretprobe/uprobe through seccomp (6.11+/6.18+).
    Called outside a uprobe trampoline they must do nothing but SIGILL the
    caller or fail; they are not a second syscall path."""
    assert results[name] in allowed


FULL_RUNS = {
    "x32-main-thread": "libc.syscall(0x40000000 | 39)",
    "i386-int80-main-thread": RWX + "int80(20)()",
    "x32-secondary-thread-kills-process": RWX + r'''
t = threading.Thread(target=lambda: libc.syscall(0x40000000 | 39))
t.start()
t.join()
import time
time.sleep(5)
''',
}


@pytest.mark.parametrize("code", [case("G4", k, v) for k, v in FULL_RUNS.items()])
def test_foreign_abi_kills_whole_process(host_postconditions, code):
    """The supervisor reports the kill from host evidence: status
    "signaled", signal 31 (SIGSYS), exit code 128+31; nothing after the
    call runs."""
    r = run(code + "\nprint('SURVIVED', flush=True)\n")
    assert r.status == "signaled", r
    assert r.script["signal"] == SIGSYS, r
    assert r.script["signal_name"] == "SIGSYS", r
    assert r.report["exit_code"] == 128 + SIGSYS and r.rc == 128 + SIGSYS, r
    assert b"SURVIVED" not in r.stdout
    assert r.report["time"]["wall_sec"] < 4, r
