"""Shared helpers for the proof tier (tests/proof): the declared policy as
an executable model, the dumped BPF program, and sandboxed / host runs of
the in-sandbox probes (sysprobe.py, argprobe.py).  Running sandcell and
checking the host are tests/harness.py's.

The declared policy comes from `sandcell policy --json` (src/lib/policy.c,
the argument sets of src/lib/seccomp.c); the filter from `sandcell policy
--dump-bpf`.  DeclaredModel turns the JSON into the verdict every
(arch, nr, args) must get, independently of libseccomp, so the tests can
compare the compiled program and the live kernel against it.
"""
import functools
import json
import os
import subprocess
import tempfile
from typing import Any, Sequence

import bpf_eval as B
import harness as H

HERE = os.path.dirname(os.path.abspath(__file__))

M64 = 0xffffffffffffffff


@functools.lru_cache(maxsize=None)
def policy():
    out = subprocess.run([H.BIN, "policy", "--json"], stdout=subprocess.PIPE, check=True).stdout
    return json.loads(out)


@functools.lru_cache(maxsize=None)
def bpf_bytes():
    fd, path = tempfile.mkstemp(prefix="sandcell-proof-", suffix=".bpf")
    os.close(fd)
    try:
        subprocess.run([H.BIN, "policy", "--dump-bpf", path], check=True)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def program():
    """A fresh (coverage-free) validated Program of the dumped filter."""
    return B.Program.from_bytes(bpf_bytes())


def ret_allow():
    return B.SECCOMP_RET_ALLOW


def ret_errno(e):
    return B.SECCOMP_RET_ERRNO | (e & B.SECCOMP_RET_DATA)


RET_KILL_PROCESS = B.SECCOMP_RET_KILL_PROCESS


class DeclaredModel:
    """The verdict the declared policy gives a seccomp_data, computed
    straight from `policy --json` (no BPF involved).

    Argument predicates (src/lib/seccomp.c), all on the full 64-bit value:
      ioctl        args[1] in ioctl_allowed_requests           else ERRNO(entry errno)
      prctl        args[0] in prctl_allowed_options            else ERRNO(entry errno)
      personality  args[0] in personality_allowed              else ERRNO(entry errno)
      socket, socketpair  args[0] in socket_allowed_domains    else ERRNO(entry errno)
      prlimit64    args[0] in prlimit64_allowed_pids            else ERRNO(entry errno)
      fcntl        args[1] in fcntl_allowed_commands            else ERRNO(entry errno)
      futex        args[1] in futex_allowed_ops                 else ERRNO(entry errno)
      clone        args[0] & clone_denied_flags == 0           else ERRNO(entry errno)
    """

    ARG_PREDICATES = {
        "ioctl": (1, "ioctl_allowed_requests"),
        "prctl": (0, "prctl_allowed_options"),
        "personality": (0, "personality_allowed"),
        "socket": (0, "socket_allowed_domains"),
        "socketpair": (0, "socket_allowed_domains"),
        "prlimit64": (0, "prlimit64_allowed_pids"),
        "fcntl": (1, "fcntl_allowed_commands"),
        "futex": (1, "futex_allowed_ops"),
    }

    def __init__(self, pol):
        self.pol = pol
        if pol["arch"] != "x86_64":
            raise ValueError("model only knows x86_64")
        if pol["foreign_arch_action"] != "kill_process":
            raise ValueError("unknown foreign_arch_action %r" % pol["foreign_arch_action"])
        self.default_errno = pol["default_errno"]
        self.by_nr = {}
        self.by_name = {}
        for e in pol["syscalls"]:
            self.by_name[e["name"]] = e
            if e["nr"] is not None:
                if e["nr"] in self.by_nr:
                    raise ValueError("two entries for nr %d" % e["nr"])
                self.by_nr[e["nr"]] = e
        a = pol["arguments"]
        self.sets = {k: frozenset(v & M64 for v in a[k]) for k in
                     ("ioctl_allowed_requests", "prctl_allowed_options", "personality_allowed",
                      "socket_allowed_domains", "prlimit64_allowed_pids",
                      "fcntl_allowed_commands", "futex_allowed_ops")}
        self.clone_denied = a["clone_denied_flags"] & M64
        for e in pol["syscalls"]:
            if e["verdict"] == "args" and e["name"] not in self.ARG_PREDICATES and e["name"] != "clone":
                raise ValueError("no model for the argument predicate of %s" % e["name"])

    def nr(self, name):
        return self.by_name[name]["nr"]

    def names_with(self, verdict):
        return sorted(e["name"] for e in self.pol["syscalls"] if e["verdict"] == verdict)

    def verdict(self, nr, args=(0,) * 6, arch=B.AUDIT_ARCH_X86_64):
        """The seccomp return value the declared policy gives."""
        nr &= 0xffffffff
        args = tuple(a & M64 for a in args) + (0,) * (6 - len(args))
        if arch != B.AUDIT_ARCH_X86_64:
            return RET_KILL_PROCESS
        if nr >= B.X32_SYSCALL_BIT and nr != 0xffffffff:
            # x32 (bit 30) and every other number >= 2^30 except -1 is
            # refused with the foreign-arch action: the supervisor adds only
            # the native arch (README: "i386 and x32 ABIs kill the process").
            # -1 is the kernel's "no syscall" and gets the default errno.
            return RET_KILL_PROCESS
        e = self.by_nr.get(nr)
        if e is None:
            return ret_errno(self.default_errno)
        if e["verdict"] == "allow":
            return ret_allow()
        if e["verdict"] == "errno":
            return ret_errno(e["errno"])
        if e["name"] == "clone":
            ok = args[0] & self.clone_denied == 0
        else:
            idx, key = self.ARG_PREDICATES[e["name"]]
            ok = args[idx] in self.sets[key]
        return ret_allow() if ok else ret_errno(e["errno"])


@functools.lru_cache(maxsize=None)
def model():
    return DeclaredModel(policy())


# ---------------------------------------------------------------- probe runs

def run_sandboxed(script: str, spec: dict[str, Any], mark: str, opts: Sequence[str] = (),
                  timeout: float = 170) -> Any:
    """One cold sandcell run of tests/proof/<script> with argv[1] = JSON
    spec; checks the host post-conditions (threat model 4.6) afterwards.
    Returns the JSON the probe printed after mark."""
    mounts = H.host_mounts()
    run = H.run_cli(file=os.path.join(HERE, script), args=[json.dumps(spec)],
                    opts=["--wall-time", "150", "--cpu-time", "150", "--pids", "256",
                          "--result-limit", "8M"] + list(opts),
                    stdin=None, timeout=timeout, server=None)
    H.check_host_clean(mounts, run.pid, H.host_uid_of(run.report))
    assert run.report is not None, run
    assert run.report["status"] == "ok", run
    assert run.report["isolation"]["mode"] == "full", run
    return run.result(mark)


def run_host(script: str, spec: dict[str, Any], mark: str, timeout: float = 120) -> Any:
    """The same probe unsandboxed (the host baseline), in a throwaway
    process with no stdin; the probe itself forks a child per call.
    Returns the JSON it printed after mark."""
    run = H.run_cmd([H.HOST_PYTHON, "-I", "-B", os.path.join(HERE, script),
                     json.dumps(dict(spec, host=True))], stdin=None, timeout=timeout, cwd="/")
    assert run.rc == 0, run
    return run.result(mark)
