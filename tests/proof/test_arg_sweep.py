"""Argument sweeps for the argument-filtered syscalls, from inside the
sandbox (threat model 4.3), against the declared sets of
`sandcell policy --json`.

One sandboxed run of argprobe.py tries: ioctl on fds 0/1/2 with every
TIOC*/FIO*/TC* request (ioctl_consts.py), each also with 1<<32 and with
0xffffffff<<32 added; socket for domains 0..45 x 4 types x 3 flag sets and
AF_UNIX with garbage above bit 31; clone with each of the 64 flag bits
alone; prctl options 0..80; a set of personality values.  A host run of
the same probe (unsandboxed, harmless parts only: ioctl on fresh pipes,
AF_UNIX sockets, prctl in throwaway children) shows what the kernel itself
answers, so a denial can be told apart from the kernel's own error: the
filter's ENOSYS / EAFNOSUPPORT is proven to come from the filter where the
kernel would have answered anything else.
"""
import os
import shutil
import subprocess

import pytest

import argprobe
import ioctl_consts
import proof_lib as L
from harness import VIA_SESSION

# Session mode: fd 0 is /dev/null (the loop moved its command pipe away),
# where Landlock refuses device ioctls first; the pipes are 1 and 2.
PIPE_FDS = (1, 2) if VIA_SESSION else (0, 1, 2)

ENOSYS, EAFNOSUPPORT, EPERM = 38, 97, 1
M64 = L.M64
SPEC = {"ioctls": ioctl_consts.REQUESTS}


@pytest.fixture(scope="module")
def sandbox():
    return L.run_sandboxed("argprobe.py", SPEC, argprobe.MARK)


@pytest.fixture(scope="module")
def host():
    return L.run_host("argprobe.py", dict(SPEC, sections=["ioctl", "socket", "prctl"]),
                      argprobe.MARK)


@pytest.fixture(scope="module")
def model():
    return L.model()


def test_std_fds_are_pipes(sandbox):
    """The sandbox's 0/1/2 are pipes (stdin is pumped, never the host fd),
    like the fresh pipes of the host baseline, so the two are comparable."""
    assert sandbox["fds"] == {"0": "0o20000" if VIA_SESSION else "0o10000", "1": "0o10000", "2": "0o10000"}


def _variants(req):
    return (("", req), ("|1<<32", req | 1 << 32), ("|hi", req | 0xffffffff << 32))


def test_ioctl_requests(sandbox, host, model):
    allowed = model.sets["ioctl_allowed_requests"]
    bad = []
    passed = set()
    for name, req in ioctl_consts.REQUESTS:
        for tag, value in _variants(req):
            for fd in PIPE_FDS:
                key = "%d:%s%s" % (fd, name, tag)
                got, kern = sandbox["ioctl"].get(key), host["ioctl"].get(key)
                if value & M64 in allowed:
                    passed.add(name)
                    if got != kern or got == ["errno", ENOSYS]:
                        bad.append("%s: allowed, sandbox %s, kernel %s" % (key, got, kern))
                else:
                    # the kernel truncates cmd to 32 bits and never says ENOSYS here
                    if got != ["errno", ENOSYS] or kern == ["errno", ENOSYS]:
                        bad.append("%s: denied, sandbox %s, kernel %s" % (key, got, kern))
    assert not bad, "\n".join(bad)
    # every allowed constant is a known request (TIOCINQ is FIONREAD)
    by_value = {}
    for name, req in ioctl_consts.REQUESTS:
        by_value.setdefault(req, []).append(name)
    assert all(v in by_value for v in allowed), sorted(set(allowed) - set(by_value))
    assert {"TIOCSTI", "TIOCLINUX", "TIOCSETD", "TIOCCONS", "TIOCSCTTY"}.isdisjoint(passed)


def test_ioctl_tiocsti_with_high_bits_is_denied(sandbox, host):
    """CVE-2019-10063: TIOCSTI | 1<<32 is TIOCSTI to the kernel (host:
    ENOTTY on a pipe), ENOSYS from the filter in the sandbox."""
    for fd in (0, 1, 2):
        for tag in ("", "|1<<32", "|hi"):
            key = "%d:TIOCSTI%s" % (fd, tag)
            assert sandbox["ioctl"][key] == ["errno", ENOSYS], key
            assert host["ioctl"][key] == ["errno", 25], key  # ENOTTY: it reached the kernel


def test_socket_only_af_unix(sandbox, host):
    s = sandbox["socket"]
    bad = []
    for key, got in s.items():
        parts = key.split(":")
        if parts[0] == "socket" and parts[1] == "1":
            if got != host["socket"][key] or got == ["errno", EAFNOSUPPORT]:
                bad.append("%s: sandbox %s, kernel %s" % (key, got, host["socket"][key]))
        elif parts[0] == "socket":
            if got != ["errno", EAFNOSUPPORT]:
                bad.append("%s: %s, declared EAFNOSUPPORT" % (key, got))
    assert not bad, "\n".join(bad)
    assert len([k for k in s if k.startswith("socket:")]) == 46 * 4 * 3 + 2 * 4
    # AF_UNIX with garbage above bit 31 is AF_UNIX to the kernel (host: a
    # socket), but never matches the 64-bit compare
    for tag in ("1|1<<32", "1|hi"):
        for t in argprobe.SOCK_TYPES:
            key = "socket:%s:%s:0" % (tag, t)
            assert s[key] == ["errno", EAFNOSUPPORT], key
            assert host["socket"][key] == ["ok", 0], key
    assert s["socketpair:1:STREAM"] == ["ok", 0] == host["socket"]["socketpair:1:STREAM"]
    for tag in ("1|1<<32", "2", "16", "17"):
        assert s["socketpair:%s:STREAM" % tag] == ["errno", EAFNOSUPPORT], tag
    assert host["socket"]["socketpair:1|1<<32:STREAM"] == ["ok", 0]


def test_clone_flag_bits(sandbox, model):
    denied = model.clone_denied
    bad = []
    for bit in range(64):
        flags, got = sandbox["clone"][str(bit)]
        assert flags & (1 << bit)
        if 1 << bit & denied:
            if got != ["errno", EPERM]:
                bad.append("bit %d (%#x): %s, declared EPERM" % (bit, flags, got))
        # allowed: the kernel's own answer, never a denial
        elif got not in (["ok", 0], ["errno", 22], ["errno", 14]):
            bad.append("bit %d (%#x): %s, declared allow" % (bit, flags, got))
    assert not bad, "\n".join(bad)
    # CLONE_NEWUSER needs no privilege from the kernel (it would succeed, or
    # ENOSPC with max_user_namespaces=0): EPERM is the filter's.
    assert sandbox["clone"]["28"][1] == ["errno", EPERM]


def test_prctl_options(sandbox, host, model):
    allowed = model.sets["prctl_allowed_options"]
    bad = []
    for opt in range(81):
        got, kern = sandbox["prctl"][str(opt)], host["prctl"][str(opt)]
        if opt in allowed:
            if got != kern or got == ["errno", ENOSYS]:
                bad.append("option %d: allowed, sandbox %s, kernel %s" % (opt, got, kern))
        elif got != ["errno", ENOSYS] or kern == ["errno", ENOSYS]:
            bad.append("option %d: denied, sandbox %s, kernel %s" % (opt, got, kern))
    assert not bad, "\n".join(bad)


def test_personality_values(sandbox, model):
    """personality never fails in the kernel, so any errno is the filter's."""
    allowed = model.sets["personality_allowed"]
    bad = []
    for name, value in argprobe.PERSONALITY_VALUES.items():
        got = sandbox["personality"][name]
        exp = ["ok", 0] if value & M64 in allowed else ["errno", ENOSYS]
        if got != exp:
            bad.append("%s (%#x): %s, declared %s" % (name, value, got, exp))
    assert not bad, "\n".join(bad)
    assert sandbox["personality"]["PER_LINUX32"] == ["errno", ENOSYS]
    assert sandbox["personality"]["READ_IMPLIES_EXEC"] == ["errno", ENOSYS]
    assert sandbox["personality"]["ADDR_NO_RANDOMIZE"] == ["errno", ENOSYS]


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_ioctl_table_matches_uapi_headers(tmp_path):
    names = [n for n, _ in ioctl_consts.REQUESTS]
    src = ["#include <linux/serial.h>", "#include <asm/ioctls.h>", "#include <asm/sockios.h>",
           "#include <asm/termbits.h>", "#include <stdio.h>", "int main(void) {"]
    src += ['printf("%%s %%#lx\\n", "%s", (unsigned long)(%s));' % (n, n) for n in names]
    src += ["return 0; }"]
    (tmp_path / "ioc.c").write_text("\n".join(src) + "\n")
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-o", str(tmp_path / "ioc"), str(tmp_path / "ioc.c")], check=True)
    out = subprocess.run([str(tmp_path / "ioc")], stdout=subprocess.PIPE, check=True).stdout.decode()
    got = {l.split()[0]: int(l.split()[1], 16) for l in out.splitlines()}
    assert got == dict(ioctl_consts.REQUESTS)
    # and no request of the headers is missing from the table
    import re
    declared = set()
    for h in ("/usr/include/asm-generic/ioctls.h", "/usr/include/asm-generic/sockios.h"):
        if os.path.exists(h):
            with open(h) as f:
                declared |= set(re.findall(r"^#\s*define\s+((?:TIOC|FIO|TC)\w+)", f.read(), re.M))
    declared = {n for n in declared if not n.startswith("TIOCPKT_") and n != "TIOCSER_TEMT"}
    assert declared <= set(names), sorted(declared - set(names))
