"""Several `sandcell serve --http` servers and HAProxy in front of them, on
loopback, for tests/scaleout and bench/scaleout.py (docs/scaling.md).

Each server is its own `sandcell serve --socket DIR/sock --http
127.0.0.1:0` (a warm server of its own, its port read from its log line);
HAProxy runs in the foreground (`-db`) as our child with a config made
from the shipped deploy/haproxy/sandcell.cfg: its `bind` becomes a
listening socket we made (`fd@N`, so no port is guessed) and its three
`server` lines the servers' ports.  Everything listens on 127.0.0.1 only.
"""
from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import time
import urllib.request
import contextlib
import shutil
import tempfile
from typing import Callable, Dict, Iterator, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SANDCELL_BIN", os.path.join(ROOT, "build", "sandcell"))
HTTP_BIN = os.path.join(os.path.dirname(BIN), "sandcell-http")
HAPROXY_CFG = os.path.join(ROOT, "deploy", "haproxy", "sandcell.cfg")
HAPROXY = "/usr/sbin/haproxy"

#: The one bearer token of the cluster: every server has it, with limits
#: far above what the load sends (the load is bounded by its own count).
TOKEN_NAME = "load"
TOKEN = "L0ad-" + "k" * 43


def _wait(cond: Callable[[], bool], what: str, timeout: float, step: float = 0.05) -> None:
    """Polls cond() every step seconds until true; raises after timeout.
    (Nothing to block on: the processes tell readiness only by answering.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        select.select([], [], [], step)
    raise RuntimeError("timed out after %.0f s: %s" % (timeout, what))


def write_private(path: str, text: str) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text)


class Server:
    """One `sandcell serve --http 127.0.0.1:0` (front end + warm server)."""

    def __init__(self, tmp: str, name: str, tokens: str, slots: int) -> None:
        self.name = name
        self.dir = os.path.join(tmp, name)
        os.mkdir(self.dir, 0o700)
        self.log_path = os.path.join(self.dir, "log")
        # A process group of its own: the kill at the end reaches whatever
        # of it is left, and nothing else.
        self.proc = subprocess.Popen(
            [BIN, "serve", "--socket", os.path.join(self.dir, "sock"), "--slots", str(slots),
             "--spares", "1", "--http", "127.0.0.1:0", "--token-file", tokens],
            stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"), start_new_session=True)
        self.port = 0

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_listening(self) -> None:
        def port() -> bool:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+) ", self.log())
            if m:
                self.port = int(m.group(1))
                return True
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (self.name, self.log()))
            return False
        _wait(port, "%s to listen" % self.name, 30)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.port, timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def metric(self, name: str) -> float:
        """One unlabelled value of the server's /metrics (asked directly)."""
        req = urllib.request.Request("http://127.0.0.1:%d/metrics" % self.port,
                                     headers={"Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read().decode()
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        if not m:
            raise RuntimeError("%s: no metric %s" % (self.name, name))
        return float(m.group(1))

    def warm_pid(self) -> int:
        """The warm server: the front end's child (`sandcell serve --http`
        execs sandcell-http, which starts sandcell-warm)."""
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            kids = [int(p) for p in f.read().split()]
        for pid in kids:
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "sandcell-warm":
                        return pid
            except OSError:
                pass
        raise RuntimeError("%s: no sandcell-warm child among %r" % (self.name, kids))

    def kill(self) -> None:
        """SIGKILL the front end and its warm server, as a crash would."""
        warm = self.warm_pid()
        os.kill(self.proc.pid, signal.SIGKILL)
        os.kill(warm, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)   # anything of its group left
        except ProcessLookupError:
            pass
        self.proc.wait()


def haproxy_config(listen_fd: int, ports: List[int]) -> str:
    """The shipped config with its bind and its three servers replaced;
    each replacement must match exactly once, so a change of the shipped
    file that the tests would no longer cover fails here."""
    with open(HAPROXY_CFG) as f:
        cfg = f.read()
    subs = [(r"(?m)^    bind 127\.0\.0\.1:8080$", "    bind fd@%d" % listen_fd)]
    for i, port in enumerate(ports, 1):
        subs.append((r"(?m)^    server s%d 127\.0\.0\.1:808%d$" % (i, i),
                     "    server s%d 127.0.0.1:%d" % (i, port)))
    for pat, rep in subs:
        cfg, n = re.subn(pat, rep, cfg)
        if n != 1:
            raise RuntimeError("deploy/haproxy/sandcell.cfg: %r matched %d times" % (pat, n))
    return cfg


class Cluster:
    """n servers; with haproxy=True, HAProxy in front (self.url), else
    self.url is the first server's."""

    def __init__(self, tmp: str, n: int = 3, slots: int = 2, haproxy: bool = True) -> None:
        self.tmp = tmp
        tokens = os.path.join(tmp, "tokens")
        write_private(tokens, "%s:%s:256:1000000\n" % (TOKEN_NAME, TOKEN))
        self.token_file = os.path.join(tmp, "client.token")
        write_private(self.token_file, TOKEN + "\n")
        self.servers: List[Server] = []
        self.haproxy: Optional["subprocess.Popen[bytes]"] = None
        self.haproxy_log = os.path.join(tmp, "haproxy.log")
        try:
            for i in range(n):
                self.servers.append(Server(tmp, "s%d" % (i + 1), tokens, slots))
            for s in self.servers:
                s.wait_listening()
            for s in self.servers:
                _wait(s.ready, "%s /readyz" % s.name, 120, 0.2)
            if haproxy:
                self._start_haproxy()
            else:
                self.url = "http://127.0.0.1:%d" % self.servers[0].port
        except BaseException:
            self.stop()
            raise

    def _start_haproxy(self) -> None:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(128)
        port = lsock.getsockname()[1]
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(lsock.fileno(), [s.port for s in self.servers]))
        self.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", cfg], pass_fds=[lsock.fileno()],
                                        stdout=open(self.haproxy_log, "w"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        lsock.close()
        self.url = "http://127.0.0.1:%d" % port

        def up() -> bool:
            if self.haproxy is not None and self.haproxy.poll() is not None:
                raise RuntimeError("haproxy exited: " + self.log())
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False
        _wait(up, "haproxy to serve /readyz", 30, 0.1)

    def log(self) -> str:
        with open(self.haproxy_log, errors="replace") as f:
            return f.read()

    def stop(self) -> Dict[str, int]:
        """Stops everything; HAProxy's exit status, for the caller to check."""
        out: Dict[str, int] = {}
        if self.haproxy is not None:
            if self.haproxy.poll() is None:
                # SIGUSR1: a soft stop (listeners closed, exit 0 once the
                # connections left are done); SIGTERM would exit by signal.
                self.haproxy.send_signal(signal.SIGUSR1)
                try:
                    self.haproxy.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(self.haproxy.pid, signal.SIGKILL)
            out["haproxy"] = self.haproxy.wait()
        for s in self.servers:
            s.stop()
        return out


@contextlib.contextmanager
def running_cluster(prefix: str, n: int = 3, slots: int = 2) -> Iterator[Cluster]:
    """A Cluster in a private directory, stopped and removed afterwards;
    HAProxy must have exited cleanly."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    c = Cluster(tmp, n=n, slots=slots)
    try:
        yield c
    finally:
        codes = c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        assert codes.get("haproxy") == 0, codes
