"""Attack rows F1-F8 and C9 (G5 no communication except the declared
channels, G6 process isolation, G8 termination): network, unix sockets to
host services, terminals, and signals aimed beyond the sandbox.
"""
import errno
import os
import secrets
import signal
import socket
import subprocess

import pytest

from harness import FD0_NOT_A_PIPE, case, probe, run, skip_in_session

E = errno

CODE = r'''
import socket, pty, signal
res = {}
def conn(family, typ, addr, timeout=2):
    s = socket.socket(family, typ)
    s.settimeout(timeout)
    try:
        if typ == socket.SOCK_DGRAM:
            s.sendto(b"x", addr)
        else:
            s.connect(addr)
    finally:
        s.close()
def t(name, fn, *a):
    res[name] = oserr(fn, *a)
# ---- F1: no network -----------------------------------------------------------
t("tcp-127.0.0.1", socket.create_connection, ("127.0.0.1", 22), 2)
t("tcp-1.1.1.1-443", socket.create_connection, ("1.1.1.1", 443), 2)
t("udp-8.8.8.8-53", conn, socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53))
t("tcp6-loopback", conn, socket.AF_INET6, socket.SOCK_STREAM, ("::1", 22))
t("tcp-bind-listen", lambda: socket.socket(socket.AF_INET).bind(("0.0.0.0", 8080)))
try:
    socket.getaddrinfo("example.com", 443)
    res["getaddrinfo"] = "resolved"
except socket.gaierror as e:
    res["getaddrinfo"] = "gaierror"
# ---- C9: socket families ----------------------------------------------------------
FAM = {"AF_INET-raw": (2, 3), "AF_INET6-dgram": (10, 2), "AF_NETLINK-route": (16, 3),
       "AF_NETLINK-netfilter": (16, 3), "AF_PACKET": (17, 3), "AF_ALG": (38, 5),
       "AF_VSOCK": (40, 1), "AF_KEY": (15, 3), "AF_BLUETOOTH": (31, 3), "AF_CAN": (29, 3),
       "AF_XDP": (44, 3), "AF_RDS": (21, 5), "AF_TIPC": (30, 5), "AF_SMC": (43, 1),
       "AF_PPPOX": (24, 1), "AF_LLC": (26, 2), "AF_NFC": (39, 2), "AF_MCTP": (45, 2)}
for name, (fam, typ) in FAM.items():
    proto = 12 if name == "AF_NETLINK-netfilter" else 0
    t("socket-" + name, lambda: socket.socket(fam, typ, proto).close())
# ---- F2/F3: unix sockets of the host -------------------------------------------------
HOST_ABSTRACT = sys.argv[1]
t("abstract-stream-host-listener", conn, socket.AF_UNIX, socket.SOCK_STREAM, "\0" + HOST_ABSTRACT)
t("abstract-dgram-host-listener", conn, socket.AF_UNIX, socket.SOCK_DGRAM, "\0" + HOST_ABSTRACT)
for p in ("/run/dbus/system_bus_socket", "/var/run/docker.sock", "/run/docker.sock",
          "/tmp/.X11-unix/X0", "/dev/log", "/run/systemd/private", "/run/user/0/bus"):
    t("unix:" + p, conn, socket.AF_UNIX, socket.SOCK_STREAM, p)
# positive control: abstract sockets inside the sandbox still work
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("\0inside-" + HOST_ABSTRACT)
srv.listen(1)
t("control-abstract-inside", conn, socket.AF_UNIX, socket.SOCK_STREAM, "\0inside-" + HOST_ABSTRACT)
srv.close()
# ---- F8: terminals ----------------------------------------------------------------
t("open-dev-tty", open, "/dev/tty", "rb")
t("openpty", os.openpty)
t("tcgetpgrp-stdin", os.tcgetpgrp, 0)
res["session"] = [os.getsid(0), os.getpgrp()]
# ---- F7/G6: signals and pidfds to host processes -------------------------------------
HOST_PID = int(sys.argv[2])
t("kill-host-pid", os.kill, HOST_PID, signal.SIGKILL)
res["pidfd_open-host-pid"] = err_of(sc(434, HOST_PID, 0))
emit(res)
'''


@pytest.fixture(scope="module")
def net():
    name = "sandcell-attack-" + secrets.token_hex(8)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind("\0" + name)
    srv.listen(8)
    dsrv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dsrv.bind("\0" + name + "-d")
    canary = subprocess.Popen(["sleep", "60"])
    try:
        # The harness's own pid is what an attacker would most like to hit.
        r, res = probe(CODE, args=[name, str(canary.pid)])
        srv.setblocking(False)
        try:
            srv.accept()
            res["_host_accepted"] = True
        except BlockingIOError:
            res["_host_accepted"] = False
        res["_canary_alive"] = canary.poll() is None
    finally:
        canary.kill()
        canary.wait()
        srv.close()
        dsrv.close()
    assert r.status == "ok", r
    return res


NET = [("tcp-127.0.0.1", E.EAFNOSUPPORT), ("tcp-1.1.1.1-443", E.EAFNOSUPPORT),
       ("udp-8.8.8.8-53", E.EAFNOSUPPORT), ("tcp6-loopback", E.EAFNOSUPPORT),
       ("tcp-bind-listen", E.EAFNOSUPPORT)]


@pytest.mark.parametrize("name,expected", [case("G5", n, n, e) for n, e in NET])
def test_no_network(host_postconditions, net, name, expected):
    """F1: IP sockets cannot even be created (family allowlist); the empty
    netns and Landlock TCP rules stand behind that."""
    assert net[name] == expected, errno.errorcode.get(net[name], net[name])


def test_G5_no_name_resolution(host_postconditions, net):
    assert net["getaddrinfo"] == "gaierror"


FAMILIES = ["AF_INET-raw", "AF_INET6-dgram", "AF_NETLINK-route", "AF_NETLINK-netfilter",
            "AF_PACKET", "AF_ALG", "AF_VSOCK", "AF_KEY", "AF_BLUETOOTH", "AF_CAN", "AF_XDP",
            "AF_RDS", "AF_TIPC", "AF_SMC", "AF_PPPOX", "AF_LLC", "AF_NFC", "AF_MCTP"]


@pytest.mark.parametrize("fam", [case("G4", "socket-" + f, f) for f in FAMILIES])
def test_socket_family_denied(host_postconditions, net, fam):
    """C9: every family but AF_UNIX gets the declared EAFNOSUPPORT."""
    got = net["socket-" + fam]
    assert got == E.EAFNOSUPPORT, errno.errorcode.get(got, got)


def test_G5_abstract_socket_of_host_unreachable(host_postconditions, net):
    """F2: a listener the harness holds in the host's abstract namespace
    cannot be reached (separate netns; Landlock scope from ABI 6), and it
    never saw a connection."""
    assert net["abstract-stream-host-listener"] == E.ECONNREFUSED
    assert net["abstract-dgram-host-listener"] == E.ECONNREFUSED
    assert net["_host_accepted"] is False


def test_G5_abstract_sockets_inside_still_work(host_postconditions, net):
    assert net["control-abstract-inside"] == 0


HOST_SOCKETS = ["/run/dbus/system_bus_socket", "/var/run/docker.sock", "/run/docker.sock",
                "/tmp/.X11-unix/X0", "/dev/log", "/run/systemd/private", "/run/user/0/bus"]


@pytest.mark.parametrize("path", [case("G5", "unix" + p.replace("/", "-"), p) for p in HOST_SOCKETS])
def test_host_unix_sockets_absent(host_postconditions, net, path):
    """F3: host service sockets are not in the mount tree."""
    assert net["unix:" + path] == E.ENOENT, errno.errorcode.get(net["unix:" + path])


@pytest.mark.parametrize("name,expected", [case("G5", "open-dev-tty", "open-dev-tty", E.ENOENT),
                                           case("G5", "openpty-no-ptmx", "openpty", E.ENOENT),
                                           case("G5", "no-controlling-tty", "tcgetpgrp-stdin", E.ENOTTY,
                                                marks=skip_in_session(FD0_NOT_A_PIPE))])
def test_no_terminal(host_postconditions, net, name, expected):
    """F8: no tty device, no pty master, no controlling terminal."""
    assert net[name] == expected, errno.errorcode.get(net[name], net[name])


def test_G6_own_session(host_postconditions, net):
    """setsid: the code's session and process group are the sandbox's own:
    the init's (a cold run: the code is its fork), or the code's own (a
    warm server: the code's process is forked into its spare from outside
    and calls setsid itself).  A session whose leader were outside the
    pid namespace (the caller's) would read as 0."""
    sid, pgrp = net["session"]
    assert sid == pgrp and 1 <= sid < 10, net["session"]


def test_G6_host_pid_not_signalable(host_postconditions, net):
    """F7: a host pid (the harness's own child) is not in the pid
    namespace: ESRCH for kill and pidfd_open; it is still alive."""
    assert net["kill-host-pid"] == E.ESRCH
    assert net["pidfd_open-host-pid"] == E.ESRCH
    assert net["_canary_alive"]


KILL_ALL = r'''
import signal, time
kids = []
for _ in range(3):
    p = os.fork()
    if p == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(p)
time.sleep(0.1)
os.kill(-1, signal.SIGKILL)
st = [os.waitpid(p, 0)[1] for p in kids]
emit([os.WTERMSIG(s) if os.WIFSIGNALED(s) else None for s in st])
'''


def _with_canary(code):
    canary = subprocess.Popen(["sleep", "60"])
    try:
        r = run(code)
        alive = canary.poll() is None
    finally:
        canary.kill()
        canary.wait()
    return r, alive


def test_G6_kill_minus_one_hits_only_the_sandbox(host_postconditions):
    """F5: kill(-1, SIGKILL) reaches every sandbox process but the caller
    and init; a host process of the same caller survives and the
    supervisor finishes normally."""
    r, alive = _with_canary(KILL_ALL)
    assert alive
    assert r.status == "ok", r
    assert r.result() == [signal.SIGKILL] * 3


def test_G8_kill_minus_one_then_self_reported(host_postconditions):
    r, alive = _with_canary(KILL_ALL + "os.kill(os.getpid(), 9)\n")
    assert alive
    assert r.status == "signaled" and r.script["signal"] == signal.SIGKILL, r


@pytest.mark.parametrize("code,sig", [
    case("G6", "killpg-0-SIGKILL", "os.killpg(0, 9)", 9),
    case("G6", "kill-0-SIGKILL", "os.kill(0, 9)", 9),
    case("G6", "killpg-0-SIGTERM", "os.killpg(0, 15)", 15),
])
def test_process_group_kill_stays_in_sandbox(host_postconditions, code, sig):
    """F6: the caller's process group is the sandbox session (setsid);
    killing it kills the code (reported "signaled" 9 by the supervisor,
    which survived) and nothing of the harness's group."""
    r, alive = _with_canary(code + "\nimport time; time.sleep(5)\n")
    assert alive
    assert r.status == "signaled" and r.script["signal"] == sig, r
    assert r.report["time"]["wall_sec"] < 4


def test_G6_setpriority_prio_user_stays_in_sandbox(host_postconditions):
    """setpriority(PRIO_USER, <own uid>, 19) renices only processes visible
    in the sandbox's pid namespace, never a host process of the same
    (unprivileged mode) host uid such as the harness or its children."""
    canary = subprocess.Popen(["sleep", "60"])
    try:
        before = os.getpriority(os.PRIO_PROCESS, canary.pid)
        me = os.getpriority(os.PRIO_PROCESS, 0)
        r = run("libc.setpriority(2, 1000, 19)\nlibc.setpriority(1, 0, 19)\n")
        assert r.status == "ok", r
        assert os.getpriority(os.PRIO_PROCESS, canary.pid) == before
        assert os.getpriority(os.PRIO_PROCESS, 0) == me
    finally:
        canary.kill()
        canary.wait()
