"""The server image (deploy/Containerfile), run with podman as
docs/container.md says: without the runtime rights the sandbox needs, the
container refuses to serve (the selftest stops it, fail closed); with
them, the selftest passes, /readyz says ready, and a run over HTTP reports
full isolation.  tools/container-check.sh builds the image and runs this.
"""
import json
import os
import secrets
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

IMAGE = os.environ.get("SANDCELL_CONTAINER_IMAGE", "")
PODMAN = ["podman"] + shlex.split(os.environ.get("SANDCELL_PODMAN_OPTS", ""))
# What the sandbox needs from the container runtime (docs/container.md):
# CAP_SYS_ADMIN (namespaces, mounts, the warm template's respawn), /proc
# and /proc/sys not masked (a new procfs and the user namespace's limits),
# a writable cgroup filesystem (the run's cgroup).
RIGHTS = ["--cap-add", "SYS_ADMIN", "--security-opt", "unmask=ALL",
          "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]

pytestmark = pytest.mark.skipif(not IMAGE, reason="run by tools/container-check.sh (make container-check)")


def podman_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(PODMAN[:1] + ["run"] + PODMAN[1:] + list(args), capture_output=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tokens(tmp_path):
    secret = secrets.token_urlsafe(32)
    f = tmp_path / "tokens"
    f.write_text("ci:%s\n" % secret)
    f.chmod(0o600)
    return str(f), secret


def test_without_the_runtime_rights_the_container_does_not_serve(tokens):
    path, _ = tokens
    p = podman_run("--rm", "--network", "host", "-v", path + ":/etc/sandcell/tokens:ro", IMAGE,
                   "--http", "127.0.0.1:%d" % free_port(), "--token-file", "/etc/sandcell/tokens")
    assert p.returncode == 126, p
    assert b"cannot start on this host" in p.stderr, p.stderr[-2000:]


def wait_ready(base: str, name: str, deadline: float) -> dict:
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                return json.load(r)
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        state = subprocess.run(["podman", "inspect", "--format", "{{.State.Running}}", name],
                               capture_output=True, text=True).stdout.strip()
        if state != "true":
            logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True)
            pytest.fail("the container stopped: %s" % (logs.stdout + logs.stderr)[-3000:])
        time.sleep(0.5)  # polling a server that is starting, not hiding a race
    pytest.fail("not ready in time: %s" % last)


def test_with_the_runtime_rights_it_serves_fully_isolated_runs(tokens):
    path, secret = tokens
    port = free_port()
    name = "sandcell-check-%d" % os.getpid()
    p = podman_run("-d", "--name", name, "--network", "host", *RIGHTS,
                   "-v", path + ":/etc/sandcell/tokens:ro", IMAGE,
                   "--http", "127.0.0.1:%d" % port, "--token-file", "/etc/sandcell/tokens")
    assert p.returncode == 0, p
    try:
        base = "http://127.0.0.1:%d" % port
        assert wait_ready(base, name, time.monotonic() + 180)["ready"] is True
        body = json.dumps({"code": "import pandas as pd\nprint(pd.DataFrame({'a': [20, 22]}).a.sum())",
                           "cell": False}).encode()
        req = urllib.request.Request(base + "/v1/runs", data=body, method="POST", headers={
            "Authorization": "Bearer " + secret, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            events = [json.loads(line) for line in r.read().splitlines()]
        report = events[-1]["report"]
        out = "".join(e.get("text", "") for e in events if e.get("ev") == "stream" and e["name"] == "stdout")
        assert report["status"] == "ok" and out == "42\n", events
        iso = report["isolation"]
        assert iso["mode"] == "full" and iso["not_held"] == [], iso
        assert all(iso["namespaces"].values()) and iso["seccomp"] and iso["landlock"]["fs"], iso
        assert iso["cgroup"]["memory"] and iso["cgroup"]["pids"], iso
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "5", name], capture_output=True)
