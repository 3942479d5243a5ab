"""Syscall sweep probe (threat model 4.3), pure Python + ctypes.

Runs inside the sandbox (`sandcell run sysprobe.py SPEC`) and, for the host
baseline, unsandboxed (`python3 -I sysprobe.py SPEC`).  SPEC is a JSON
object:

    {"x86_64": [[lo, hi], ...], "x32": [[lo, hi], ...], "i386": [[lo, hi], ...],
     "concurrency": 32}

(half-open ranges of syscall numbers; x32 numbers are given without the
0x40000000 bit).  For every (abi, nr) it forks a child that arms alarm(2),
makes the call with harmless arguments (bubblewrap try-syscall style: fd -1,
pointer 1, length 0, i.e. args (-1, 1, 0, 0, 0, 0); (-1, 0, 0, ...) for x32
and i386), writes what the call returned through a pipe and _exits.  The
parent classifies each child:

    ["ok", 0]          the call returned >= 0
    ["errno", E]       the call returned -1 / -E
    ["signal", S]      the child was killed by signal S (31 = SIGSYS: seccomp kill)
    ["exit", C]        the child exited with C without reporting (exit, exit_group)
    ["timeout", S]     alarm(2) fired (S = 14) or the parent's watchdog killed it (S = 9)
    ["error", text]    the probe itself failed, or the child reported twice
                       (the call returned in two processes: it forked)

Special cases (x86_64 only; other ABIs are expected to be killed before
dispatch, so their arguments never matter):
  exit, exit_group       called with status 42: expect ["exit", 42]
  rt_sigreturn           with rsp on a zeroed frame: the kernel restores a
                         zero context and the child dies of SIGSEGV
  pause                  a 0.2 s interval timer with a no-op SIGALRM handler
                         interrupts it: ["errno", EINTR] means it blocked
  fork, vfork, clone     from machine code whose child branch calls exit(0)
                         at once without touching memory (vfork shares the
                         stack); clone gets flags SIGCHLD only
  kill, tkill, tgkill    signal 0 and a pid that cannot exist
  rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal   signal 0
No call can act on anything outside the child: every fd is -1, every
pointer is 1 or -1 (EFAULT), every pid is -1 or out of range, every signal
is 0.  The test only runs numbers the declared policy allows on the host.

Output: one line, MARK followed by JSON {"results": {"abi:nr": [kind, value]},
"self": {...}} on stdout.
"""
import ctypes
import json
import mmap
import os
import signal
import struct
import sys
import time

MARK = "@@SANDCELL-SYSPROBE@@"
X32_BIT = 0x40000000
SIGALRM, SIGKILL = 14, 9
WATCHDOG_SEC = 6.0

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.restype = ctypes.c_int

# x86_64 numbers of the special cases (arch/x86/entry/syscalls/syscall_64.tbl)
NR = dict(rt_sigreturn=15, pause=34, clone=56, fork=57, vfork=58, exit=60, kill=62,
          rt_sigqueueinfo=129, tkill=200, exit_group=231, tgkill=234, rt_tgsigqueueinfo=297,
          pidfd_send_signal=424)
NO_SUCH_PID = 0x3ffffffe  # above PID_MAX_LIMIT (4194304): ESRCH, never a process
SIGCHLD = 17

_page = _page_addr = _stack = _stack_addr = None


def _init_pages():
    """The RWX code page and a zeroed scratch stack, made once in the parent
    (children get copy-on-write copies).  Not at import: the tests import
    this module for args_used() only."""
    global _page, _page_addr, _stack, _stack_addr
    _page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    _page_addr = ctypes.addressof(ctypes.c_char.from_buffer(_page))
    _stack = mmap.mmap(-1, 65536, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    _stack_addr = ctypes.addressof(ctypes.c_char.from_buffer(_stack))


def _q(v):
    return struct.pack("<Q", v & 0xffffffffffffffff)


def _code(code):
    """Places machine code on the RWX page (each child has its own COW copy)
    and returns a callable returning rax."""
    _page.seek(0)
    _page.write(code)
    return ctypes.CFUNCTYPE(ctypes.c_long)(_page_addr)


def raw_syscall(nr, args=(0, 0, 0, 0, 0, 0), child_exits=False):
    """`syscall` instruction with all six argument registers set; returns
    the raw rax (-errno on failure).  child_exits: if rax == 0 (the child
    of fork/vfork/clone) call exit(0) immediately, using registers only."""
    a = list(args) + [0] * (6 - len(args))
    code = (b"\x48\xb8" + _q(nr) + b"\x48\xbf" + _q(a[0]) + b"\x48\xbe" + _q(a[1]) +
            b"\x48\xba" + _q(a[2]) + b"\x49\xba" + _q(a[3]) + b"\x49\xb8" + _q(a[4]) +
            b"\x49\xb9" + _q(a[5]) + b"\x0f\x05")
    if child_exits:
        # test rax,rax; jnz +9; mov eax,60; xor edi,edi; syscall
        code += b"\x48\x85\xc0\x75\x09\xb8\x3c\x00\x00\x00\x31\xff\x0f\x05"
    code += b"\xc3"
    return _code(code)()


def int80(nr, ebx=0xffffffff, ecx=0, edx=0):
    """i386 `int 0x80` from the 64-bit process (compat entry, arch I386)."""
    code = (b"\x53" + b"\xb8" + struct.pack("<I", nr) + b"\xbb" + struct.pack("<I", ebx) +
            b"\xb9" + struct.pack("<I", ecx) + b"\xba" + struct.pack("<I", edx) +
            b"\x31\xf6\x31\xff" + b"\xcd\x80" + b"\x5b\xc3")
    return _code(code)()


def rt_sigreturn_zero_frame():
    """rt_sigreturn with rsp pointing into a zeroed buffer: the kernel reads
    an all-zero rt_sigframe (rip 0), so the child faults deterministically.
    If the call returns instead (a filter errno), rsp is restored from a slot."""
    slot = _stack_addr + 65536 - 64
    frame = _stack_addr + 16384
    code = (b"\x48\xb8" + _q(slot) + b"\x48\x89\x20" +       # mov rax, slot; mov [rax], rsp
            b"\x48\xbc" + _q(frame) +                         # mov rsp, frame
            b"\xb8\x0f\x00\x00\x00\x0f\x05" +                 # mov eax, 15; syscall
            b"\x48\xb9" + _q(slot) + b"\x48\x8b\x21\xc3")     # mov rcx, slot; mov rsp, [rcx]; ret
    return _code(code)()


def sc(nr, *args):
    """libc syscall(); returns (ret, errno)."""
    args = list(args) + [0] * (6 - len(args))  # never leave registers to chance
    a = [ctypes.c_long(x if x < (1 << 63) else x - (1 << 64)) for x in args]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *a)
    return r, ctypes.get_errno()


def raw_result(rax):
    if -4096 < rax < 0:
        return ["errno", -rax]
    return ["ok", 0]


def libc_result(r):
    ret, err = r
    if ret == -1:
        return ["errno", err]
    return ["ok", 0]


def reap_all():
    """Reaps what fork/vfork/clone created (also with a non-SIGCHLD exit signal)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0x40000000)  # __WALL
        except ChildProcessError:
            return
        if pid == 0:
            return


HARMLESS = (-1, 1, 0, 0, 0, 0)
# x32 and i386 calls must be killed before dispatch.  Should a broken filter
# let them through, they run without the x86_64 special cases, so they get
# (-1, 0, ...): kill(-1, 0) only probes, where (-1, 1) would be SIGHUP to
# every process of the sandbox, the probe included.
FOREIGN = (-1, 0, 0, 0, 0, 0)


def args_used(abi, nr):
    """The six argument values call(abi, nr) passes (as the filter sees
    them, 64-bit), so the tests can compute the declared verdict."""
    m = 0xffffffffffffffff
    if abi != "x86_64":
        return tuple(a & m for a in FOREIGN)
    special = {
        NR["exit"]: (42,), NR["exit_group"]: (42,), NR["rt_sigreturn"]: (), NR["pause"]: (),
        NR["fork"]: (), NR["vfork"]: (), NR["clone"]: (SIGCHLD,),
        NR["kill"]: (NO_SUCH_PID, 0), NR["tkill"]: (NO_SUCH_PID, 0),
        NR["tgkill"]: (NO_SUCH_PID, NO_SUCH_PID, 0), NR["rt_sigqueueinfo"]: (NO_SUCH_PID, 0, 1),
        NR["rt_tgsigqueueinfo"]: (NO_SUCH_PID, NO_SUCH_PID, 0, 1),
        NR["pidfd_send_signal"]: (-1, 0, 0, 0),
    }
    a = special.get(nr, HARMLESS)
    return tuple(x & m for x in a) + (0,) * (6 - len(a))


def call(abi, nr):
    if abi == "x32":
        return libc_result(sc(nr | X32_BIT, *FOREIGN))
    if abi == "i386":
        return raw_result(int80(nr))
    if nr in (NR["exit"], NR["exit_group"]):
        return libc_result(sc(nr, 42))
    if nr == NR["rt_sigreturn"]:
        return raw_result(rt_sigreturn_zero_frame())
    if nr == NR["pause"]:
        signal.signal(signal.SIGALRM, lambda *a: None)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        return libc_result(sc(nr))
    if nr in (NR["fork"], NR["vfork"]):
        r = raw_syscall(nr, (0, 0, 0, 0, 0, 0), child_exits=True)
        reap_all()
        return raw_result(r)
    if nr == NR["clone"]:
        r = raw_syscall(nr, (SIGCHLD, 0, 0, 0, 0, 0), child_exits=True)
        reap_all()
        return raw_result(r)
    if nr == NR["kill"]:
        return libc_result(sc(nr, NO_SUCH_PID, 0))
    if nr == NR["tkill"]:
        return libc_result(sc(nr, NO_SUCH_PID, 0))
    if nr == NR["tgkill"]:
        return libc_result(sc(nr, NO_SUCH_PID, NO_SUCH_PID, 0))
    if nr in (NR["rt_sigqueueinfo"],):
        return libc_result(sc(nr, NO_SUCH_PID, 0, 1))
    if nr in (NR["rt_tgsigqueueinfo"],):
        return libc_result(sc(nr, NO_SUCH_PID, NO_SUCH_PID, 0, 1))
    if nr == NR["pidfd_send_signal"]:
        return libc_result(sc(nr, -1, 0, 0, 0))
    return libc_result(sc(nr, *HARMLESS))


def child_main(abi, nr, wfd, host):
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(2)
    if host:
        # The sandbox runs with no_new_privs; so does the baseline child.
        libc.prctl(38, 1, 0, 0, 0)
    try:
        res = call(abi, nr)
    except BaseException as e:  # never report a Python failure as a verdict
        res = ["error", repr(e)]
    os.write(wfd, json.dumps(res).encode())
    os._exit(0)


def expand(ranges):
    out = []
    for r in ranges:
        if isinstance(r, int):
            out.append(r)
        else:
            out.extend(range(r[0], r[1]))
    return out


def self_info():
    info = {"pid": os.getpid()}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Seccomp", "Seccomp_filters", "NoNewPrivs", "CapEff", "Uid"):
                    info[k] = v.strip()
    except OSError as e:
        info["status_error"] = repr(e)
    for fd in (0, 1, 2):
        try:
            info["fd%d" % fd] = oct(os.fstat(fd).st_mode)
        except OSError as e:
            info["fd%d" % fd] = "error %d" % e.errno
    return info


def main():
    spec = json.loads(sys.argv[1])
    _init_pages()
    host = bool(spec.get("host"))
    jobs = [(abi, nr) for abi in ("x86_64", "x32", "i386") for nr in expand(spec.get(abi, []))]
    limit = int(spec.get("concurrency", 32))
    results = {}
    running = {}  # pid -> (key, rfd, start)

    def collect(pid, status):
        key, rfd, _ = running.pop(pid)
        try:
            data = os.read(rfd, 65536)
        except BlockingIOError:
            data = b""
        os.close(rfd)
        if data:
            docs, text, dec = [], data.decode("utf-8", "replace"), json.JSONDecoder()
            while text:
                try:
                    doc, end = dec.raw_decode(text)
                except ValueError:
                    docs.append(["error", "garbled report %r" % text[:80]])
                    break
                docs.append(doc)
                text = text[end:]
            # more than one report: the call returned twice (it forked)
            res = docs[0] if len(docs) == 1 else ["error", "reported %d times: %r" % (len(docs), docs[:4])]
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            res = ["timeout", sig] if sig in (SIGALRM, SIGKILL) else ["signal", sig]
        elif os.WIFEXITED(status):
            res = ["exit", os.WEXITSTATUS(status)]
        else:
            res = ["error", "status %#x" % status]
        results[key] = res

    def watchdog(*_):
        now = time.monotonic()
        for pid, (_, _, start) in list(running.items()):
            if now - start > WATCHDOG_SEC:
                try:
                    os.kill(pid, SIGKILL)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGALRM, watchdog)
    signal.setitimer(signal.ITIMER_REAL, 1.0, 1.0)

    def wait_one():
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid in running:
                collect(pid, status)
                return
            # CLONE_PARENT-style strays are reaped and ignored.

    for abi, nr in jobs:
        while len(running) >= limit:
            wait_one()
        r, w = os.pipe()
        os.set_blocking(r, False)
        pid = os.fork()
        if pid == 0:
            os.close(r)
            child_main(abi, nr, w, host)
        os.close(w)
        running[pid] = ("%s:%d" % (abi, nr), r, time.monotonic())
    while running:
        wait_one()
    signal.setitimer(signal.ITIMER_REAL, 0)
    sys.stdout.flush()
    print(MARK + json.dumps({"results": results, "self": self_info()}, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
