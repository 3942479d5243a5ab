"""The sandcell kernel through jupyter_client, as a frontend drives it:
interrupt (KeyboardInterrupt where the cell was, the session and its
variables survive), input_request, restart (state gone), a session stopped
by a limit (the next cell gets a new one, with a note)."""
from __future__ import annotations

import queue
from typing import Any, Iterator

import pytest
from jupyter_client.manager import start_new_kernel


@pytest.fixture
def kernel(jupyter_path: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("SANDCELL_KERNEL_LIMITS", '{"memory": "512M"}')
    nbdir = tmp_path / "nb"
    nbdir.mkdir(mode=0o755)
    km, kc = start_new_kernel(kernel_name="sandcell", startup_timeout=120, cwd=str(nbdir))
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def outputs_of(kc: Any, msg_id: str, timeout: float = 120) -> list[dict[str, Any]]:
    outs = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            return outs
        if kind in ("stream", "display_data", "execute_result", "error"):
            outs.append(dict(msg["content"], msg_type=kind))


def test_interrupt_keeps_the_session(kernel: Any) -> None:
    km, kc = kernel
    r = kc.execute_interactive("x = 41", timeout=120)
    assert r["content"]["status"] == "ok", r["content"]
    # stop_on_error=False: ipykernel's base class would otherwise abort
    # requests that arrive just after the error reply (Jupyter's rule, not
    # the session's).
    msg_id = kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(120)",
                        stop_on_error=False)
    first = kc.get_iopub_msg(timeout=120)
    while first["msg_type"] != "stream":
        first = kc.get_iopub_msg(timeout=120)
    assert first["content"]["text"] == "sleeping\n"     # streamed before the interrupt
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert any("time.sleep(120)" in line for line in reply["content"]["traceback"])
    r = kc.execute_interactive("x + 1", timeout=120)
    assert r["content"]["status"] == "ok"


def test_input_request(kernel: Any) -> None:
    km, kc = kernel
    msg_id = kc.execute("name = input('who? ')\nprint('hello', name)", allow_stdin=True)
    req = kc.get_stdin_msg(timeout=120)
    assert req["msg_type"] == "input_request" and req["content"]["prompt"] == "who? "
    kc.input("bob")
    outs = outputs_of(kc, msg_id)
    assert [o.get("text") for o in outs if o["msg_type"] == "stream"] == ["hello bob\n"]


def test_restart_loses_state(kernel: Any) -> None:
    km, kc = kernel
    kc.execute_interactive("y = 1", timeout=120)
    km.restart_kernel(now=True)
    kc.wait_for_ready(timeout=120)
    r = kc.execute_interactive("y", timeout=120)
    assert r["content"]["status"] == "error" and r["content"]["ename"] == "NameError"


def test_a_session_stopped_by_memory_is_replaced(kernel: Any) -> None:
    km, kc = kernel
    kc.execute_interactive("z = 5", timeout=120)
    r = kc.execute_interactive("b = bytearray(1 << 30)", timeout=120)
    assert r["content"]["status"] == "error" and r["content"]["ename"] == "SessionEnded"
    assert "memory" in r["content"]["evalue"]
    msg_id = kc.execute("'z' in dir()")
    outs = outputs_of(kc, msg_id)
    note = [o["text"] for o in outs if o["msg_type"] == "stream" and o["name"] == "stderr"]
    assert note and "variables were lost" in note[0]
    assert [o["data"]["text/plain"] for o in outs if o["msg_type"] == "execute_result"] == ["False"]


def test_an_unreadable_notebook_directory_is_said(jupyter_path: str, tmp_path: Any) -> None:
    """A 0700 directory of another uid: the session still runs, and the
    first cell says why files next to the notebook cannot be read."""
    import os
    nbdir = tmp_path / "private"
    nbdir.mkdir(mode=0o700)
    if os.geteuid() != 0:
        pytest.skip("as the caller's own uid the sandbox can read its 0700 directory")
    km, kc = start_new_kernel(kernel_name="sandcell", startup_timeout=120, cwd=str(nbdir))
    try:
        msg_id = kc.execute("1 + 1")
        outs = outputs_of(kc, msg_id)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    note = [o["text"] for o in outs if o["msg_type"] == "stream" and o["name"] == "stderr"]
    assert note and "not readable inside the sandbox" in note[0] and "PermissionError" in note[0]
    assert [o["data"]["text/plain"] for o in outs if o["msg_type"] == "execute_result"] == ["2"]


def test_no_stdin_frontend_reads_an_empty_line(kernel: Any) -> None:
    km, kc = kernel
    msg_id = kc.execute("repr(input('x? '))", allow_stdin=False)
    outs = outputs_of(kc, msg_id)
    assert [o["data"]["text/plain"] for o in outs if o["msg_type"] == "execute_result"] == ['"\'\'"']
    with pytest.raises(queue.Empty):
        kc.get_stdin_msg(timeout=0.5)


def test_completion_and_inspection_come_from_the_session(kernel: Any) -> None:
    km, kc = kernel
    kc.execute_interactive("import collections\nmy_counter = collections.Counter('aab')", timeout=120)
    kc.complete("my_co", 5)
    rep = kc.get_shell_msg(timeout=60)["content"]
    assert rep["status"] == "ok" and "my_counter" in rep["matches"] and rep["cursor_start"] == 0
    code = "x = my_counter.most_"
    kc.complete(code, len(code))
    rep = kc.get_shell_msg(timeout=60)["content"]
    assert "my_counter.most_common" in rep["matches"] and rep["cursor_start"] == 4
    kc.inspect("my_counter.most_common(", 22)
    rep = kc.get_shell_msg(timeout=60)["content"]
    assert rep["found"] and "most_common" in rep["data"]["text/plain"]
    kc.inspect("nothing_here", 5)
    assert kc.get_shell_msg(timeout=60)["content"]["found"] is False
    # The helpers leave nothing in the namespace and take no execution count.
    msg_id = kc.execute("sorted(n for n in dir() if 'sandcell' in n)")
    outs = outputs_of(kc, msg_id)
    assert [(o["execution_count"], o["data"]["text/plain"]) for o in outs
            if o["msg_type"] == "execute_result"] == [(2, "[]")]
