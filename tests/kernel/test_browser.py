"""What a person sees: a notebook executed in the sandcell kernel, opened
in Jupyter Notebook (Debian's jupyter-notebook, on loopback) in headless
Chromium.  The page must show the kernel's name, the cells' text output
and the plot; the screenshot is kept in build/kernel-browser.png."""
from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

import nbformat
import pytest
from nbclient import NotebookClient

import harness
from kernel_util import notebook

CHROMIUM = shutil.which("chromium")
JUPYTER = shutil.which("jupyter-notebook")
pytestmark = pytest.mark.skipif(CHROMIUM is None or JUPYTER is None,
                                reason="chromium or jupyter-notebook is not installed (make deps)")
# matplotlib's first colour (#1f77b4): the histogram's bars.
BAR = (31, 119, 180)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError("jupyter-notebook exited with %s" % proc.returncode)
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)  # polling for readiness, nothing to wait on
    raise AssertionError("jupyter-notebook did not answer at %s" % url)


def chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--window-size=1280,2600",
                           "--virtual-time-budget=20000", *args],
                          capture_output=True, timeout=120)


def test_notebook_in_the_browser(jupyter_path: str, tmp_path: pathlib.Path) -> None:
    path = notebook("analysis", tmp_path / "nb")
    nb = NotebookClient(nbformat.read(str(path), as_version=4), kernel_name="sandcell",
                        timeout=180, allow_errors=True,
                        resources={"metadata": {"path": str(path.parent)}}).execute()
    nb.metadata["kernelspec"] = {"name": "sandcell", "display_name": "Python 3 (sandcell)",
                                 "language": "python"}
    nbformat.write(nb, str(path))

    port, token = free_port(), os.urandom(12).hex()
    assert JUPYTER is not None
    argv = [JUPYTER, "--no-browser", "--ip=127.0.0.1", "--port=%d" % port, "--port-retries=0",
            "--NotebookApp.token=" + token, "--notebook-dir=" + str(path.parent)]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    env = dict(os.environ, HOME=str(tmp_path), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "wb"),
                              env=env, start_new_session=True)
    try:
        base = "http://127.0.0.1:%d" % port
        wait_up("%s/api/status?token=%s" % (base, token), server)
        url = "%s/notebooks/%s?token=%s" % (base, path.name, token)
        dom = chromium("--dump-dom", url).stdout.decode("utf-8", "replace")
        shot = tmp_path / "shot.png"
        chromium("--screenshot=%s" % shot, url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert "Python 3 (sandcell)" in dom, "the kernel's name is not on the page"
    assert "step 2" in dom and "ZeroDivisionError" in dom, "the cells' outputs are not on the page"
    assert shot.exists(), "no screenshot"
    keep = pathlib.Path(harness.ROOT) / "build" / "kernel-browser.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(shot, keep)
    from PIL import Image
    img = Image.open(shot).convert("RGB")
    bars = sum(1 for px in img.getdata() if all(abs(a - b) <= 12 for a, b in zip(px, BAR)))
    assert bars > 2000, "the plot is not visible in the screenshot (%d bar pixels)" % bars
