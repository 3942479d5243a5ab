"""Argument sweep probe for the argument-filtered syscalls (threat model
4.3), pure Python + ctypes.  Runs inside the sandbox (`sandcell run
argprobe.py SPEC`) and, for a host baseline of the harmless parts,
unsandboxed (`python3 -I argprobe.py SPEC` with "host": true).

SPEC (JSON): {"sections": ["ioctl", "socket", "clone", "prctl", "personality"],
              "ioctls": [[name, request], ...], "host": false}

Sections (every call in a forked child with alarm(5); results are
[kind, value] as in sysprobe.py: ["ok", 0], ["errno", E], ["signal", S]):
  ioctl        ioctl(fd, req, 1) for fd 0, 1, 2 and req, req | 1<<32,
               req | 0xffffffff<<32.  Arg 3 is the bad pointer 1, so even a
               request that got through could not read or write anything.
               Host mode first replaces fds 0/1/2 of the child with fresh
               pipes (the sandbox's 0/1/2 are pipes too), so nothing ever
               reaches a terminal.
  socket       socket(domain, type | flags, 0) for domain 0..45, type in
               STREAM/DGRAM/RAW/SEQPACKET, flags in 0/NONBLOCK/CLOEXEC, and
               domain AF_UNIX | 1<<32 and AF_UNIX | 0xffffffff<<32; the same
               for socketpair with a bad pointer.  Any fd is closed at once.
               Host mode: AF_UNIX only.
  clone        raw clone(1<<bit | SIGCHLD, 0, 0, 0, 0) for every bit 0..63
               (bits 0..7 are the exit signal: 1<<bit alone), from machine
               code whose child calls exit(0) at once; the caller blocks
               every signal so an odd exit signal cannot stop or kill it.
               Not run on the host.
  prctl        prctl(option, 0, 0, 0, 0) for option 0..80.  Every option's
               effect, if any, is on the calling child only.
  personality  personality(v) for 0, 0xffffffff, PER_LINUX32,
               READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, 1<<32,
               0xffffffff | 1<<32 and -1 (64-bit).  Not run on the host.
"""
import ctypes
import json
import mmap
import os
import signal
import struct
import sys

MARK = "@@SANDCELL-ARGPROBE@@"
NR_IOCTL, NR_SOCKET, NR_SOCKETPAIR, NR_CLONE, NR_PRCTL, NR_PERSONALITY = 16, 41, 53, 56, 157, 135
SIGCHLD = 17
SOCK_TYPES = {"STREAM": 1, "DGRAM": 2, "RAW": 3, "SEQPACKET": 5}
SOCK_FLAGS = {"0": 0, "NONBLOCK": 0o4000, "CLOEXEC": 0o2000000}
PERSONALITY_VALUES = {
    "PER_LINUX": 0, "query-0xffffffff": 0xffffffff, "PER_LINUX32": 0x0008,
    "READ_IMPLIES_EXEC": 0x0400000, "ADDR_NO_RANDOMIZE": 0x0040000, "1<<32": 1 << 32,
    "0xffffffff|1<<32": 0xffffffff | 1 << 32, "-1": 0xffffffffffffffff,
}
M64 = 0xffffffffffffffff

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def sc(nr, *args):
    args = list(args) + [0] * (6 - len(args))
    a = [ctypes.c_long(x if x < (1 << 63) else x - (1 << 64)) for x in (v & M64 for v in args)]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *a)
    return r, ctypes.get_errno()


def res(r):
    if r[0] == -1:
        return ["errno", r[1]]
    return ["ok", 0]


def in_child(fn, timeout=5):
    """fn() in a forked child; its JSON result, or ["signal", S]/["exit", C]."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(timeout)
            v = fn()
        except BaseException as e:
            v = ["error", repr(e)]
        os.write(wfd, json.dumps(v).encode())
        os._exit(0)
    os.close(wfd)
    data = b""
    while True:
        b = os.read(rfd, 1 << 20)
        if not b:
            break
        data += b
    os.close(rfd)
    _, st = os.waitpid(pid, 0)
    if data:
        return json.loads(data)
    if os.WIFSIGNALED(st):
        return ["signal", os.WTERMSIG(st)]
    return ["exit", os.WEXITSTATUS(st)]


def fresh_std_pipes():
    a, b = os.pipe()
    c, d = os.pipe()
    e, f = os.pipe()
    os.dup2(a, 0)
    os.dup2(d, 1)
    os.dup2(f, 2)


def sweep_ioctl(spec, host):
    out = {}
    for name, req in spec["ioctls"]:
        def one(req=req):
            if host:
                fresh_std_pipes()
            r = {}
            for fd in (0, 1, 2):
                for tag, v in (("", req), ("|1<<32", req | 1 << 32), ("|hi", req | 0xffffffff << 32)):
                    r["%d:%s%s" % (fd, name, tag)] = res(sc(NR_IOCTL, fd, v, 1))
            return r
        got = in_child(one)
        if isinstance(got, dict):
            out.update(got)
        else:
            out["%s:child" % name] = got
    return out


def sweep_socket(host):
    def one():
        r = {}
        domains = [1] if host else list(range(46))
        for dom in domains:
            for tname, t in SOCK_TYPES.items():
                for fname, fl in SOCK_FLAGS.items():
                    got = sc(NR_SOCKET, dom, t | fl, 0)
                    if got[0] >= 0:
                        os.close(got[0])
                    r["socket:%d:%s:%s" % (dom, tname, fname)] = res(got)
        for tag, dom in (("1|1<<32", 1 | 1 << 32), ("1|hi", 1 | 0xffffffff << 32)):
            for tname, t in SOCK_TYPES.items():
                got = sc(NR_SOCKET, dom, t, 0)
                if got[0] >= 0:
                    os.close(got[0])
                r["socket:%s:%s:0" % (tag, tname)] = res(got)
        fds = ctypes.create_string_buffer(8)
        for tag, dom in (("1", 1), ("1|1<<32", 1 | 1 << 32), ("2", 2), ("16", 16), ("17", 17)):
            if host and dom & 0xffffffff != 1:
                continue
            got = sc(NR_SOCKETPAIR, dom, 1, 0, ctypes.addressof(fds))
            if got[0] == 0:
                a, b = struct.unpack("ii", fds.raw)
                os.close(a)
                os.close(b)
            r["socketpair:%s:STREAM" % tag] = res(got)
        return r
    return in_child(one, timeout=20)


_page = None


def clone_stub(flags):
    """mov rax,56; mov rdi,flags; xor esi,esi; xor edx,edx; xor r10d,r10d;
    xor r8d,r8d; syscall; test rax,rax; jnz ret; mov eax,60; xor edi,edi;
    syscall; ret -- the child touches neither memory nor the stack."""
    global _page
    if _page is None:
        _page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code = (b"\x48\xc7\xc0" + struct.pack("<i", NR_CLONE) + b"\x48\xbf" + struct.pack("<Q", flags) +
            b"\x31\xf6\x31\xd2\x45\x31\xd2\x45\x31\xc0\x0f\x05" +
            b"\x48\x85\xc0\x75\x09\xb8\x3c\x00\x00\x00\x31\xff\x0f\x05\xc3")
    _page.seek(0)
    _page.write(code)
    return ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(_page)))()


def sweep_clone():
    out = {}
    for bit in range(64):
        flags = (1 << bit) if bit < 8 else (1 << bit | SIGCHLD)

        def one(flags=flags):
            # raw rt_sigprocmask: glibc's wrapper would leave 32 and 33 unblocked
            mask = ctypes.c_uint64(M64)
            sc(14, 0, ctypes.addressof(mask), 0, 8)  # SIG_BLOCK every signal
            rax = clone_stub(flags)
            while True:
                try:
                    pid, _ = os.waitpid(-1, 0x40000000)  # __WALL
                except ChildProcessError:
                    break
            return ["errno", -rax] if -4096 < rax < 0 else ["ok", 0]
        out["%d" % bit] = [flags, in_child(one)]
    return out


def sweep_prctl():
    return {"%d" % opt: in_child(lambda opt=opt: res(sc(NR_PRCTL, opt, 0, 0, 0, 0))) for opt in range(81)}


def sweep_personality():
    return {name: in_child(lambda v=v: res(sc(NR_PERSONALITY, v))) for name, v in PERSONALITY_VALUES.items()}


def main():
    spec = json.loads(sys.argv[1])
    host = bool(spec.get("host"))
    out = {}
    if host:
        # The sandbox runs with no_new_privs; so does the baseline.
        libc.prctl(38, 1, 0, 0, 0)
    sections = spec.get("sections", ["ioctl", "socket", "clone", "prctl", "personality"])
    if "ioctl" in sections:
        out["ioctl"] = sweep_ioctl(spec, host)
    if "socket" in sections:
        out["socket"] = sweep_socket(host)
    if "clone" in sections and not host:
        out["clone"] = sweep_clone()
    if "prctl" in sections:
        out["prctl"] = sweep_prctl()
    if "personality" in sections and not host:
        out["personality"] = sweep_personality()
    out["fds"] = {str(fd): oct(os.fstat(fd).st_mode & 0o170000) for fd in (0, 1, 2)}
    sys.stdout.flush()
    print(MARK + json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
