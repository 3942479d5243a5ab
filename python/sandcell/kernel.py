"""The sandcell Jupyter kernel: every cell of a notebook runs in one
sandcell session (docs/kernel.md).

    python3 -m sandcell.kernel install [--user | --prefix P]   # the kernelspec "sandcell"
    python3 -m sandcell.kernel -f CONNECTION_FILE               # what Jupyter starts

This process speaks Jupyter's messaging protocol through Debian's ipykernel
(its Kernel base class: the sockets, the message signing, the execute,
interrupt, shutdown and stdin machinery) and runs none of the notebook's
code: each cell goes to the session, and the session's outputs come back
as iopub messages, as they are produced.  The notebook's directory (the
kernel's working directory when Jupyter starts it) is shown read-only, and
the session works in a writable copy of it in the sandbox (_WORKDIR),
unless $SANDCELL_KERNEL_CWD names another ("none" switches it off).  Limits come from $SANDCELL_KERNEL_LIMITS (JSON,
the keys of sandcell.LIMIT_KEYS plus cell_wall_time, cell_cpu_time,
idle_timeout).  With $SANDCELL_URL the session is held by that
sandcell-http server instead (sandcell.connect, with the bearer token in
$SANDCELL_TOKEN_FILE); the notebook's directory is not sent there.
"""
# ipykernel and jupyter_client are only partly typed.
# mypy: disallow-untyped-calls=False
from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, Dict, List, Optional

if __name__ == "__main__":
    # This kernel offers no debugger (the code runs in the sandbox, out of
    # a host debugger's reach), and importing debugpy is a sixth of
    # ipykernel's start: ipykernel runs without it when it cannot import it.
    sys.modules.setdefault("debugpy", None)  # type: ignore[arg-type]
from ipykernel.kernelbase import Kernel
from IPython.core.error import StdinNotImplementedError  # type: ignore[import]

from ._errors import Error
from ._kernelspec import NAME, kernelspec
from ._session import CellResult, Session, _CellHost

__all__ = ["SandcellKernel", "main"]

_DEFAULT_LIMITS: Dict[str, object] = {"memory": "2G", "wall_time": 86400, "cpu_time": 86400,
                                      "cell_wall_time": 3600, "cell_cpu_time": 3600,
                                      "idle_timeout": 86400, "disk": "1G"}
# What the notebook's directory is called inside (an input: read-only).
_CWD_INPUT = "notebook"
# The working directory a session starts in: a writable directory of the
# sandbox's scratch with the notebook directory's entries in it, so that a
# notebook can write next to its files (to_csv, savefig, %%writefile then
# import) as it would in Jupyter, and the host's files are never written.
# Small files are copied (a cell may rewrite them), larger ones and
# subdirectories linked (read-only); past the budget the notebook's
# directory itself is the working directory, read-only.  A silent cell,
# everything local to one function that deletes itself.
_WORKDIR = """def __sandcell_workdir(src, dst, most, budget, each):
    import os, shutil
    names = sorted(os.listdir(src))
    if len(names) > most:
        os.chdir(src)
        return ("the notebook's directory has " + str(len(names)) + " entries: it is the "
                "working directory, read-only")
    os.mkdir(dst)
    for n in names:
        s, d = os.path.join(src, n), os.path.join(dst, n)
        try:
            st = os.stat(s)
        except OSError:
            st = None
        if st is not None and os.path.isfile(s) and st.st_size <= min(budget, each):
            shutil.copyfile(s, d)
            budget -= st.st_size
        else:
            os.symlink(s, d)
    os.chdir(dst)
    return None
try:
    import sandcell as __sc
    __sc.result(__sandcell_workdir(%r, %r, 10000, 64 << 20, 1 << 20))
finally:
    del __sandcell_workdir, __sc
"""
_HELPER_TIMEOUT = 10.0
_COMPLETE_MAX = 500
# Helper cells for completion and inspection: silent (no execution count),
# run in the session's namespace, everything local to one function that
# deletes itself.  The name at the cursor is a dotted identifier; only the
# part before its last dot is evaluated (rlcompleter's rule).
_COMPLETE = """def __sandcell_complete(code, pos):
    import re, rlcompleter, sandcell
    m = re.search(r"[A-Za-z_][A-Za-z0-9_.]*$", code[:pos])
    token = m.group(0) if m else ""
    c, out = rlcompleter.Completer(globals()), []
    while len(out) < %d:
        try:
            s = c.complete(token, len(out))
        except Exception:
            s = None
        if s is None:
            break
        out.append(s.rstrip("("))
    sandcell.result({"matches": out, "start": pos - len(token)})
__sandcell_complete(%%s, %%d)
del __sandcell_complete""" % _COMPLETE_MAX
_INSPECT = """def __sandcell_inspect(code, pos):
    import re, pydoc, sandcell
    left = re.search(r"[A-Za-z_][A-Za-z0-9_.]*$", code[:pos])
    right = re.match(r"[A-Za-z0-9_]*", code[pos:])
    name = (left.group(0) if left else "") + (right.group(0) if right else "")
    name = name.rstrip(".")
    if not name:
        return
    try:
        obj = eval(name, globals())
    except Exception:
        return
    sandcell.result({"text": pydoc.render_doc(obj, renderer=pydoc.plaintext)[:20000]})
__sandcell_inspect(%s, %d)
del __sandcell_inspect"""


def _limits() -> Dict[str, object]:
    lim = dict(_DEFAULT_LIMITS)
    text = os.environ.get("SANDCELL_KERNEL_LIMITS")
    if text:
        extra = json.loads(text)
        if not isinstance(extra, dict):
            raise ValueError("SANDCELL_KERNEL_LIMITS must be a JSON object")
        lim.update(extra)
    return lim


class SandcellKernel(Kernel):
    implementation = "sandcell"
    implementation_version = "0.1.0"
    banner = ("sandcell: this notebook's cells run in a sandboxed Python session "
              "(namespaces, Landlock, seccomp, cgroup limits)")
    language_info = {
        "name": "python",
        "version": "%d.%d.%d" % sys.version_info[:3],
        "mimetype": "text/x-python",
        "file_extension": ".py",
        "pygments_lexer": "ipython3",
        "codemirror_mode": {"name": "ipython", "version": 3},
        "nbconvert_exporter": "python",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._session: Optional[_CellHost] = None
        self._note: Optional[str] = None
        # The session starts while Jupyter finishes starting the kernel
        # and connects: the first cell need not wait for it.
        self._starting: Optional[threading.Thread] = None
        self._started: Optional[_CellHost] = None
        self._start_error: Optional[BaseException] = None
        self._starting = threading.Thread(target=self._prestart, name="sandcell-prestart",
                                          daemon=True)
        self._starting.start()

    def _prestart(self) -> None:
        try:
            self._started = self._start()
        except BaseException as e:  # reported by the first cell
            self._start_error = e

    # ---- the session
    def _start(self) -> _CellHost:
        url = os.environ.get("SANDCELL_URL")
        if url:
            # Over HTTP inputs are files: the notebook's directory stays here.
            from ._remote import connect
            return connect(url, token_file=os.environ.get("SANDCELL_TOKEN_FILE") or None) \
                .session(limits=_limits())
        cwd = os.environ.get("SANDCELL_KERNEL_CWD", os.getcwd())
        inputs = {} if cwd == "none" else {_CWD_INPUT: cwd}
        # A warm server's socket: sessions start from its template.
        server = os.environ.get("SANDCELL_KERNEL_SERVER") or None
        s = Session(inputs=inputs, limits=_limits(), server=server)
        if inputs:
            try:
                r = s.run(_WORKDIR % ("/input/" + _CWD_INPUT, "/tmp/" + _CWD_INPUT), silent=True)
            except BaseException:
                s.close()
                raise
            if r.ok and isinstance(r.value, str):
                self._note = r.value
            elif not r.ok:
                # The session works without it; say why files next to the
                # notebook cannot be read (e.g. a 0700 directory: the
                # sandbox's uid is not the caller's when root runs it).
                why = "%s: %s" % (r.error.ename, r.error.evalue) if r.error else r.status
                self._note = "the notebook's directory %s is not readable inside the sandbox " \
                    "(%s); the working directory is %s" % (cwd, why, "/")
        return s

    def _ensure(self) -> _CellHost:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
            self._session = self._started
            if self._start_error is not None:
                err, self._start_error = self._start_error, None
                raise Error("the session did not start: %s" % err)
        if self._session is None or not self._session.alive:
            note = None
            if self._session is not None:
                note = "the previous session ended (%s); a new one started: " \
                    "variables were lost" % self._session.ended_reason
            self._session = self._start()
            self._note = "; ".join(n for n in (note, self._note) if n) or None
        return self._session

    # ---- messages
    def _publish(self, out: Dict[str, Any]) -> None:
        kind = out.get("output_type")
        if kind == "stream":
            self.send_response(self.iopub_socket, "stream",
                               {"name": out.get("name", "stdout"), "text": out.get("text", "")})
        elif kind == "display_data":
            self.send_response(self.iopub_socket, "display_data",
                               {"data": out.get("data", {}), "metadata": out.get("metadata", {}),
                                "transient": {}})
        elif kind == "execute_result":
            self.send_response(self.iopub_socket, "execute_result",
                               {"execution_count": self.execution_count,
                                "data": out.get("data", {}), "metadata": out.get("metadata", {})})

    def _ask(self, allow_stdin: bool) -> Any:
        self._allow_stdin = allow_stdin   # what Kernel.raw_input checks

        def ask(prompt: str, password: bool) -> str:
            if not allow_stdin:
                return ""
            try:
                return str(self.getpass(prompt) if password else self.raw_input(prompt))
            except (StdinNotImplementedError, EOFError):
                return ""
        return ask

    def do_execute(self, code: str, silent: bool, store_history: bool = True,
                   user_expressions: Optional[Dict[str, Any]] = None,
                   allow_stdin: bool = False, *, cell_id: Any = None) -> Dict[str, Any]:
        try:
            s = self._ensure()
        except Exception as e:
            # Every request gets its reply: Jupyter waits for it.
            return self._error("SandboxError", str(e), [], silent)
        if self._note and not silent:
            self._publish({"output_type": "stream", "name": "stderr",
                           "text": "[sandcell: %s]\n" % self._note})
        self._note = None
        r: CellResult = s.run(code, on_output=None if silent else self._publish,
                              on_input=self._ask(allow_stdin), silent=silent)
        if r.error is not None:
            return self._error(r.error.ename, r.error.evalue, list(r.error.traceback), silent)
        if r.status == "killed":
            why = s.ended_reason or "the session ended"
            return self._error("SessionEnded", why,
                               ["sandcell: the session ended during this cell: %s" % why], silent)
        return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                "user_expressions": {}}

    def _error(self, ename: str, evalue: str, tb: List[str], silent: bool) -> Dict[str, Any]:
        content = {"ename": ename, "evalue": evalue, "traceback": tb}
        if not silent:
            self.send_response(self.iopub_socket, "error", content)
        return dict(content, status="error", execution_count=self.execution_count)

    def _ask_session(self, source: str) -> Any:
        """Runs a silent helper cell and returns what it published with
        sandcell.result() (None when the session cannot answer).  The
        helper runs in the sandbox, like the notebook's code; its value
        comes back parsed and capped as every result does."""
        try:
            s = self._ensure()
            r = s.run(source, silent=True, timeout=_HELPER_TIMEOUT)
        except (Error, TimeoutError):
            return None
        return r.value if r.ok else None

    def do_complete(self, code: str, cursor_pos: int) -> Dict[str, Any]:
        got = self._ask_session(_COMPLETE % (json.dumps(code), int(cursor_pos)))
        matches: List[str] = []
        start = cursor_pos
        if isinstance(got, dict) and isinstance(got.get("matches"), list) and \
                isinstance(got.get("start"), int) and 0 <= got["start"] <= cursor_pos:
            matches = [m for m in got["matches"] if isinstance(m, str)][:_COMPLETE_MAX]
            start = got["start"]
        return {"status": "ok", "matches": matches, "cursor_start": start,
                "cursor_end": cursor_pos, "metadata": {}}

    def do_inspect(self, code: str, cursor_pos: int, detail_level: int = 0,
                   omit_sections: Any = ()) -> Dict[str, Any]:
        got = self._ask_session(_INSPECT % (json.dumps(code), int(cursor_pos)))
        text = got.get("text") if isinstance(got, dict) else None
        if not isinstance(text, str) or not text:
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        return {"status": "ok", "found": True, "data": {"text/plain": text}, "metadata": {}}

    def do_shutdown(self, restart: bool) -> Dict[str, Any]:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
            self._session = self._started
        if self._session is not None:
            self._session.close()
            self._session = None
        return {"status": "ok", "restart": restart}


def install(argv: List[str]) -> int:
    import tempfile
    from jupyter_client.kernelspec import KernelSpecManager
    user = "--user" in argv
    prefix = argv[argv.index("--prefix") + 1] if "--prefix" in argv else None
    server = argv[argv.index("--server") + 1] if "--server" in argv else None
    spec = kernelspec()
    if server is not None:
        # Every notebook's session on that warm server (docs/kernel.md).
        spec["env"] = {"SANDCELL_KERNEL_SERVER": os.path.abspath(server)}
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        with open(os.path.join(d, "kernel.json"), "w") as f:
            json.dump(spec, f, indent=1)
        dest = KernelSpecManager().install_kernel_spec(d, NAME, user=user, prefix=prefix)
    print("installed the sandcell kernelspec in %s" % dest)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["install"]:
        return install(sys.argv[2:])
    from ipykernel.kernelapp import IPKernelApp
    IPKernelApp.launch_instance(kernel_class=SandcellKernel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
