"""The one test harness of every Python tier (integration, attack, proof,
warm) and of bench/bench.py: running the CLI cold or through a warm server,
the run's report, the host post-conditions of threat model 4.6 (no
surviving process, no run cgroup, no new mount, runtime files unchanged),
process trees, a `sandcell serve` of a test's own, and the attack tier's
probe runs.

Test modules import it by name: pytest puts tests/ on sys.path for
tests/conftest.py (tests/ is not a package).  Tools outside tests/ add
tests/ to sys.path themselves.

The binary under test is $SANDCELL_BIN (default build/sandcell); with
$SANDCELL_SERVER set (tests/warm/run-warm.sh) runs go through that warm
server unless a caller asks for a cold one (server=None).  With
$SANDCELL_VIA=session (make session-check) every cold run goes through a
`sandcell session` instead: the code is one cell (see SessionRun).

    python3 tests/harness.py run-cgroups|orphan-cgroups   # tests/warm/run-warm.sh
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Any, Iterable, NamedTuple, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SANDCELL_BIN", os.path.join(ROOT, "build", "sandcell"))
# Warm mode (tests/warm/run-warm.sh): runs go through this `sandcell serve`.
SERVER = os.environ.get("SANDCELL_SERVER") or None
# Session mode (make session-check): cold runs go through `sandcell session`.
VIA_SESSION = os.environ.get("SANDCELL_VIA") == "session"
IS_ROOT = os.geteuid() == 0
# Set by make asan-check, whose warm server (template included) is built
# with AddressSanitizer: the few warm tests its runtime cannot host skip
# themselves, each saying why (ASAN_SKIP).
ASAN = os.environ.get("SANDCELL_ASAN") == "1"
ASAN_SKIP = {
    "dump": "under AddressSanitizer: the test reads every mapped byte, which ASan's redzones refuse",
    "heap": "under AddressSanitizer: its allocator, not glibc's tuned malloc, holds the heap",
    "pagemap": "under AddressSanitizer: learning reads the pagemap of every mapping, ASan's terabytes of shadow included",
    "faults": "under AddressSanitizer: its shadow memory and allocator take page faults of their own, "
              "so a count is not the production build's",
}
HOST_PYTHON = "/usr/bin/python3"


# Documented exit codes (include/sandcell.h, docs/report.md).
EXIT_DISK, EXIT_MEMORY, EXIT_CPU, EXIT_TIMEOUT, EXIT_USAGE, EXIT_SANDBOX = 121, 122, 123, 124, 125, 126
EXIT_UNREACHABLE, EXIT_BUSY, EXIT_CANCELLED = 117, 118, 119
SIGSYS = 31
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MARK = "@@SANDCELL-ATTACK@@"

# A root caller's run gets a host uid of its own in [MIN, MIN + SPAN)
# (src/lib/userns.c SC_HOST_ID_BASE, SC_HOST_ID_SPAN); the report names it.
# tests/integration/test_harness.py fails if the range changes.
SANDBOX_UID_MIN, SANDBOX_UID_SPAN = 2000000000, 65536


# ------------------------------------------------------------------- runs

class Run:
    """One finished `sandcell run` (or any command): exit status, bytes of
    stdout/stderr, the parsed report (None when none was written)."""

    def __init__(self, cmd: list[str], rc: int, stdout: bytes, stderr: bytes,
                 report: dict[str, Any] | None, pid: int) -> None:
        self.cmd, self.rc, self.stdout, self.stderr = cmd, rc, stdout, stderr
        self.report, self.pid = report, pid

    @property
    def status(self) -> str | None:
        return self.report["status"] if self.report else None

    @property
    def script(self) -> dict[str, Any] | None:
        return self.report["script"] if self.report else None

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def result(self, mark: str = MARK) -> Any:
        """The JSON the probe printed after mark (the last one wins)."""
        lines = [ln for ln in self.out.splitlines() if ln.startswith(mark)]
        assert lines, "probe printed no result: %r" % (self,)
        return json.loads(lines[-1][len(mark):])

    def json(self) -> Any:
        """The last stdout line that parses as JSON."""
        return last_json_line(self.out)

    def __repr__(self) -> str:
        return "Run(rc=%r, status=%r, stdout=%r, stderr=%r, error=%r)" % (
            self.rc, self.status, self.stdout[-3000:], self.stderr[-3000:],
            self.report and self.report.get("error"))


def stop_group(proc: "subprocess.Popen[bytes]", grace: float = 30) -> int:
    """SIGTERM to a server started in its own process group, SIGKILL to
    the group if it has not exited within grace s; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def last_json_line(text: str) -> Any:
    """The last line of text that parses as JSON (what the code printed)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise AssertionError("no JSON line in %r" % text[-2000:])


def load_report(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The report at path; None if none was written (or it is empty)."""
    if os.path.exists(path) and os.path.getsize(path):
        with open(path) as f:
            report: dict[str, Any] = json.load(f)
            return report
    return None


def sandcell_cmd(code: str | None = None, file: str | os.PathLike[str] | None = None,
                 args: Sequence[str] = (), opts: Sequence[str] = (), report: str | None = None,
                 server: str | None = SERVER) -> list[str]:
    """argv of `sandcell run`: through server when one is given."""
    cmd = [BIN, "run"] + (["--server", server] if server else [])
    if report:
        cmd += ["--report", report]
    cmd += list(opts)
    if code is not None:
        cmd += ["-c", code]
    elif file is not None:
        cmd += [str(file)]
    return cmd + list(args)


# Every run made through this harness (or registered): (supervisor pid,
# host uid or None).  host_postconditions (tests/conftest.py) checks the
# runs of its test only, so suites running at the same time on one host
# do not see each other's live sandboxes.
RUNS: list[tuple[int, int | None]] = []


def register_run(supervisor: int, host_uid: int | None) -> None:
    """Makes host_postconditions check a run made outside run_cli()."""
    RUNS.append((supervisor, host_uid))


def host_uid_of(report: dict[str, Any] | None) -> int | None:
    return report["isolation"]["host_uid"] if report and report.get("isolation") else None


def run_cmd(cmd: list[str], stdin: bytes | None = b"", timeout: float = 120,
            env: dict[str, str] | None = None, cwd: str | None = None) -> Run:
    """Runs cmd to its end (killed after timeout, then TimeoutExpired);
    stdin=None gives it /dev/null."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    try:
        out, err = p.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    return Run(cmd, p.returncode, out, err, None, p.pid)


def without_userns(cmd: list[str]) -> list[str]:
    """cmd run where user namespaces are unavailable for real: in a user
    namespace of our own whose max_user_namespaces is 0, which forbids any
    nested one (bubblewrap's --disable-userns).  Needs util-linux unshare."""
    return ["unshare", "--user", "--map-root-user", "sh", "-c",
            'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh"] + cmd


# --------------------------------------------------------- session mode
# With SANDCELL_VIA=session a cold run becomes a session: `sandcell session`
# with the run's options (and a run's default wall and CPU time, 30 s,
# where the test gives none), the code sent as one cell, then close.  Two
# things of a script are kept by a silent set-up cell first (the loop's
# own functions wrapped, in the sandbox, so a test harness convenience,
# never a boundary): sys.argv, and the script's end: after the cell's done
# record, an uncaught exception or sys.exit(n) makes the interpreter exit
# with 1 or n, as `python3 script.py` would, so the verdict the host
# reaches is the session's end for that exit status.  What the tests read
# is translated from the events: stdout and stderr are the cell's stream
# outputs (Python's and fd 1/2's, traceback included) followed by the
# CLI's own stderr, the exit status and report are the session's, with the
# cell's `result` and (asked for with --cell) its outputs put where a run
# reports them.  A test whose meaning cannot carry over is skipped there
# with skip_in_session(reason).

SESSION_SETUP = r"""
def _sandcell_harness(argv, stdin_from_host):
    import os, sys, _sandcell_cell as cell, _sandcell_session as loop
    sys.argv[:] = argv
    end = []
    execute, run = cell.execute, loop.Session.run

    def script_execute(source, filename, g, count=None):
        try:
            rc = execute(source, filename, g, count)
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                end.append(e.code or 0)
            else:
                print(e.code, file=sys.stderr)
                end.append(1)
            return 0 if end[0] == 0 else 1
        if rc == 1:
            end.append(1)
        return rc

    def script_run(self, cmd):
        run(self, cmd)
        if end and not self.current.startswith("_"):
            os._exit(end[0])

    class HostStdin(object):
        # A LiveRun's stdin: what the test sends (send_stdin() or
        # finish()) is the answer to one input request, then EOF.
        answer = None
        def read(self, n=-1):
            if self.answer is None:
                self.answer = input()
            data, self.answer = self.answer, ""
            return data
        readline = read

    cell.execute, loop.Session.run = script_execute, script_run
    if stdin_from_host:
        sys.stdin = HostStdin()
_sandcell_harness(%r, %r)
del _sandcell_harness
"""


class SessionRun:
    """One run translated into a session (see above): started by
    __init__, which sends the set-up and the code cells; first_line()
    reads the events up to the cell's first line of stdout; finish()
    answers the cell's stdin, closes and builds the Run."""

    def __init__(self, code: str | None, file: str | os.PathLike[str] | None, args: Sequence[str],
                 opts: Sequence[str], rpath: str | None, env: dict[str, str] | None = None,
                 stdin_from_host: bool = False, prefix: Sequence[str] = ()) -> None:
        if code is None:
            with open(str(file), encoding="utf-8", errors="surrogateescape") as f:
                code = f.read()
        argv = [str(file) if file is not None else "-c"] + list(args)
        self.cmd = list(prefix) + [BIN, "session"] + (["--report", rpath] if rpath else []) + \
            ["--wall-time", "30", "--cpu-time", "30"] + [o for o in opts if o != "--cell"]
        self.cell_mode = "--cell" in opts
        self.out_dir = next((opts[i + 1] for i, o in enumerate(opts[:-1]) if o == "--output"), None)
        self.p = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.err = b""
        self.t_err = threading.Thread(target=self._read_err, daemon=True)
        self.t_err.start()
        self.out: list[bytes] = []
        self.err_out: list[bytes] = []
        self.outputs: list[Any] = []
        self.done: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.input_asked = self.answered = False
        self.code = code
        # The cell is sent once the set-up cell is done (one at a time).
        self._send({"op": "run", "id": "_script", "code": SESSION_SETUP % (argv, stdin_from_host)})

    def _read_err(self) -> None:
        assert self.p.stderr is not None
        self.err = self.p.stderr.read()

    def _send(self, cmd: dict[str, Any]) -> None:
        assert self.p.stdin is not None
        try:
            self.p.stdin.write(json.dumps(cmd).encode() + b"\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            pass  # the session ended: its end event says why

    def event(self) -> bool:
        """Reads one event; False at the end of the stream."""
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            return False
        ev = json.loads(line)
        if ev["ev"] == "output" and ev["id"] in ("cell", None):
            o = ev["output"]
            if ev["id"] == "cell":
                self.outputs.append(o)
            if o["output_type"] == "stream":
                (self.out if o["name"] == "stdout" else self.err_out).append(o["text"].encode())
            elif o["output_type"] == "error":  # a run prints the traceback on stderr
                self.err_out.append("\n".join(o["traceback"] + [""]).encode())
        elif ev["ev"] == "done" and ev["id"] == "cell":
            self.done = ev
            self._send({"op": "close"})
        elif ev["ev"] == "done":
            assert ev["status"] == "ok", "the session's set-up cell failed: %r" % (ev,)
            self._send({"op": "run", "id": "cell", "code": self.code})
        elif ev["ev"] == "input_request":
            self.input_asked = True
        elif ev["ev"] == "end":
            self.end = ev
        return True

    def first_line(self) -> bytes:
        """The cell's stdout up to its first line end (what LiveRun reads)."""
        while b"\n" not in b"".join(self.out) and self.event():
            pass
        text = b"".join(self.out)
        return text[:text.index(b"\n") + 1] if b"\n" in text else text

    def answer(self, stdin: bytes) -> None:
        """The cell's stdin, once it asks for it (HostStdin)."""
        while not self.input_asked and self.event():
            pass
        if self.input_asked and not self.answered:
            self.answered = True
            self._send({"op": "input", "id": "cell", "value": stdin.decode("utf-8", "replace")})

    def finish(self, stdin: bytes = b"", timeout: float = 120) -> Run:
        """Answers the cell's stdin, reads to the end; the Run."""
        timer = threading.Timer(timeout, self.p.kill)
        timer.start()
        try:
            while self.event():
                if self.input_asked and not self.answered:
                    self.answer(stdin)
            self.p.wait()
        finally:
            timer.cancel()
        self.t_err.join()
        if self.end is None:
            raise subprocess.TimeoutExpired(self.cmd, timeout)
        report = self.end["report"]
        if report is not None and self.done is not None:
            report["result"], report["error"] = self.done["result"], report["error"] or self.done["error"]
            if self.cell_mode:
                report["cell"]["outputs"] = self.outputs
        if report is not None and self.out_dir:
            self._flatten_outbox(report)
        return Run(self.cmd, self.p.returncode, b"".join(self.out),
                   b"".join(self.err_out) + self.err, report, self.p.pid)

    def _flatten_outbox(self, report: dict[str, Any]) -> None:
        """The cell's outbox, DIR/2/ (the set-up cell is the first),
        where a run puts its files: in DIR, the paths without "2/"."""
        box = os.path.join(str(self.out_dir), "2")
        for name in os.listdir(box) if os.path.isdir(box) else []:
            os.rename(os.path.join(box, name), os.path.join(str(self.out_dir), name))
        if os.path.isdir(box):
            os.rmdir(box)
        for entry in report["outputs"]["files"] + report["outputs"]["skipped"]:
            entry["path"] = entry["path"][2:] if entry["path"].startswith("2/") else entry["path"]

    def kill(self) -> None:
        self.p.kill()
        self.p.wait()
        self.t_err.join()


def skip_in_session(reason: str) -> Any:
    """Marks a test whose meaning does not carry over to session mode."""
    import pytest  # here: bench/bench.py uses this module without pytest
    return pytest.mark.skipif(VIA_SESSION, reason="session mode: " + reason)


# For the cases that need fd 0 to be a pipe, as a run's stdin is.
FD0_NOT_A_PIPE = ("fd 0 is /dev/null in a session (the loop moved its command pipe away): Landlock "
                  "refuses ioctls on device files (EACCES) before the tty layer would answer")


def run_cli(code: str | None = None, file: str | os.PathLike[str] | None = None,
            args: Sequence[str] = (), opts: Sequence[str] = (), stdin: bytes | None = b"",
            timeout: float = 120, env: dict[str, str] | None = None,
            report: bool | str | os.PathLike[str] = True, server: str | None = SERVER) -> Run:
    """One `sandcell run`, cold or through server, with a report (kept at
    report when that is a path; report=False asks for none).  The run is
    registered for host_postconditions; nothing is asserted."""
    if report is True:
        fd, rpath = tempfile.mkstemp(prefix="sandcell-test-report-", suffix=".json")
        os.close(fd)
    else:
        rpath = str(report) if report else ""
    try:
        if VIA_SESSION and server is None:
            assert not stdin, "session mode: the code's stdin is the session's (skip_in_session)"
            r = SessionRun(code, file, args, opts, rpath or None, env).finish(timeout=timeout)
        else:
            r = run_cmd(sandcell_cmd(code, file, args, opts, rpath or None, server), stdin, timeout, env)
            r.report = load_report(rpath) if rpath else None
    finally:
        if report is True:
            os.unlink(rpath)
    register_run(r.pid, host_uid_of(r.report))
    return r


class LiveRun:
    """A `sandcell run` in the background whose code talks to the test:
    started, its first line of stdout read (the code saying it is ready, or
    what it holds); finish() then feeds stdin and waits (and registers the
    run for host_postconditions), or kill() kills the supervisor."""

    def __init__(self, code: str, opts: Sequence[str] = (), server: str | None = SERVER,
                 prefix: Sequence[str] = ()) -> None:
        """prefix: a command that execs the rest (so the supervisor keeps
        the pid), e.g. to run it in a namespace of the test's own."""
        fd, self.rpath = tempfile.mkstemp(prefix="sandcell-live-report-", suffix=".json")
        os.close(fd)
        # Session mode: the code's stdin is one input() answered at finish().
        self.session = SessionRun(code, None, (), opts, self.rpath, stdin_from_host=True, prefix=prefix) \
            if VIA_SESSION and server is None else None
        if self.session:
            self.cmd, self.p = self.session.cmd, self.session.p
            self.first = self.session.first_line()
        else:
            self.cmd = list(prefix) + sandcell_cmd(code, opts=opts, report=self.rpath, server=server)
            self.p = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
            assert self.p.stdout is not None
            self.first = self.p.stdout.readline()
        self.first_line = self.first.decode("utf-8", "replace")
        self.run: Run | None = None

    def finish(self, stdin: bytes = b"", timeout: float = 90) -> Run:
        """Feeds stdin, waits for the end; the Run's stdout includes the
        first line."""
        if self.run is None and self.session:
            self.run = self.session.finish(stdin, timeout)
            os.unlink(self.rpath)
            register_run(self.p.pid, host_uid_of(self.run.report))
        if self.run is None:
            try:
                out, err = self.p.communicate(stdin, timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
            self.run = Run(self.cmd, self.p.returncode, self.first + out, err, load_report(self.rpath),
                           self.p.pid)
            os.unlink(self.rpath)
            register_run(self.p.pid, host_uid_of(self.run.report))
        return self.run

    def send_stdin(self, data: bytes) -> None:
        """Gives the code data on its stdin while it runs (session mode:
        the answer to its one read, see SessionRun.answer)."""
        if self.session:
            self.session.answer(data)
        else:
            assert self.p.stdin is not None
            self.p.stdin.write(data)
            self.p.stdin.flush()

    def kill(self) -> None:
        """SIGKILL to the supervisor (a no-op once the run has ended).  Not
        registered: a killed supervisor's cgroups stay until the next run
        under the same parent removes them (docs/report.md, Cleanup)."""
        if self.run is None and self.session:
            self.session.kill()
            self.run = Run(self.cmd, self.p.returncode, self.first, self.session.err, None, self.p.pid)
            os.unlink(self.rpath)
        if self.run is None:
            self.p.kill()
            out, err = self.p.communicate(timeout=30)
            self.run = Run(self.cmd, self.p.returncode, self.first + out, err, None, self.p.pid)
            os.unlink(self.rpath)

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


# ------------------------------------------------------------- host state

def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def host_files(root: str | os.PathLike[str]) -> list[str]:
    """Every regular file below root, as relative '/'-separated paths."""
    out = []
    for d, _dirs, files in os.walk(root):
        for name in files:
            out.append(os.path.relpath(os.path.join(d, name), root).replace(os.sep, "/"))
    return sorted(out)


def tree_digest(path: str) -> dict[str, tuple[Any, ...]]:
    """Content, mode and mtime of every entry below path (no following)."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rec: tuple[Any, ...] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_uid)
            if os.path.isfile(p) and not os.path.islink(p):
                rec += (sha256_file(p),)
            out[os.path.relpath(p, path)] = rec
    st = os.lstat(path)
    out["."] = (st.st_mode, st.st_mtime_ns)
    return out


def host_mounts() -> list[str]:
    """The host mount table (mount point and root of each mount)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(ln.split()[3:5]) for ln in f)


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return bytes(field, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")


def fs_root_path(path: str) -> str:
    """path as the kernel prints it in the root field of a mountinfo line:
    relative to the root of the filesystem it lives on, not to the caller's
    root.  On a tmpfs /tmp that is /pytest-of-root/... (no /tmp); below a
    bind mount or a pivot_root it is the path inside the bound tree.  Found
    from our own /proc/self/mountinfo (the same kernel rule, so the same
    answer as a sandbox's view of a bind of path): the mount that path
    resolves through is the last one listed at the longest mountpoint that
    prefixes it, and it must be on path's device."""
    path = os.path.realpath(path)
    dev = os.stat(path).st_dev
    best = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            root, mnt = _unescape_mountinfo(fields[3]), _unescape_mountinfo(fields[4])
            if not (path == mnt or path.startswith(mnt.rstrip("/") + "/")):
                continue
            if best is None or len(mnt) >= len(best[1]):
                best = (root, mnt, fields[2])
    assert best is not None, "no mount holds %s" % path
    root, mnt, majmin = best
    major, minor = (int(x) for x in majmin.split(":"))
    assert (os.major(dev), os.minor(dev)) == (major, minor), \
        "%s is on %d:%d, the mount found for it (%s) on %s" % (
            path, os.major(dev), os.minor(dev), mnt, majmin)
    rel = os.path.relpath(path, mnt)
    return os.path.normpath(os.path.join(root, rel)) if rel != "." else root


RUNTIME_CANARIES = [os.path.realpath(sys.executable), "/usr/lib/python3/dist-packages/numpy/__init__.py",
                    "/etc/passwd"]


def _mount_diff(before: list[str]) -> str:
    now = host_mounts()
    return "new %r, gone %r" % (sorted(set(now) - set(before)), sorted(set(before) - set(now)))


class HostState(NamedTuple):
    mounts: list[str]
    canaries: dict[str, str]


def host_state() -> HostState:
    """What the post-conditions compare: mounts and runtime file digests."""
    return HostState(host_mounts(), {p: sha256_file(p) for p in RUNTIME_CANARIES if os.path.exists(p)})


def cgroup_mounts() -> list[str]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy."""
    with open("/proc/self/mountinfo") as f:
        return sorted({ln.split()[4] for ln in f
                       if ln.split(" - ", 1)[1].split()[0] in ("cgroup", "cgroup2")})


def run_cgroup_prefix(supervisor: int | None = None) -> str:
    """The start of a run cgroup's name: src/lib/cgroup.c make_run_dir()
    names them run-<supervisor pid>-<seq>-<nsec> (docs/report.md, Cleanup).
    The only place the tests know it; tests/integration/test_harness.py
    fails if cgroup.c's naming changes."""
    return "run-" if supervisor is None else "run-%d-" % supervisor


def run_cgroup_name(supervisor: int, seq: int, nsec: int) -> str:
    """The name cgroup.c gives the seq-th run cgroup of a supervisor."""
    return "%s%d-%d" % (run_cgroup_prefix(supervisor), seq, nsec)


def run_cgroup_supervisor(path: str) -> int | None:
    """The supervisor pid a run cgroup is named after (None: not a run's)."""
    name = os.path.basename(path.rstrip("/"))
    head, _, rest = name[len(run_cgroup_prefix(None)):].partition("-")
    return int(head) if name.startswith(run_cgroup_prefix(None)) and head.isdigit() and rest else None


def run_cgroups(supervisor: int | None = None, depth: int = 4) -> list[str]:
    """Run cgroups on the host, up to depth levels below a hierarchy's
    root; with supervisor only those of the runs that process made."""
    prefix = run_cgroup_prefix(supervisor)
    found = []
    for top in cgroup_mounts():
        for d, dirs, _files in os.walk(top):
            level = d[len(top):].count("/")
            runs = [n for n in dirs if n.startswith(run_cgroup_prefix(None))]
            found += [os.path.join(d, n) for n in runs if n.startswith(prefix)]
            # a run cgroup has no children; other trees only to depth
            dirs[:] = [n for n in dirs if n not in runs] if level < depth - 1 else []
    return sorted(found)


def orphan_run_cgroups() -> list[str]:
    """Run cgroups whose supervisor is gone: left behind (what the next run
    under the same parent would remove)."""
    sups = {c: run_cgroup_supervisor(c) for c in run_cgroups()}
    return [c for c, s in sups.items() if s is not None and not os.path.exists("/proc/%d" % s)]


def _proc_field(pid: int, key: str) -> list[str] | None:
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split()[1:]
    except (OSError, ValueError):
        pass
    return None


def pids_of_uids(uids: Iterable[int]) -> list[int]:
    """Live processes whose real uid is one of uids."""
    want = set(uids)
    found = []
    for pid in _all_pids() if want else []:
        uid = _proc_field(pid, "Uid")
        if uid and int(uid[0]) in want:
            found.append(pid)
    return found


def pids_in_run_cgroups(supervisors: Iterable[int]) -> list[int]:
    """Live processes in one of the run cgroups of those supervisors."""
    tags = ["/" + run_cgroup_prefix(s) for s in supervisors]
    found = []
    for pid in _all_pids() if tags else []:
        try:
            with open("/proc/%d/cgroup" % pid) as f:
                text = f.read()
        except OSError:
            continue
        if any(t in text for t in tags):
            found.append(pid)
    return found


def sandbox_survivors(host_uid: int | None = None, sup_pid: int | None = None) -> list[int]:
    """Host pids of processes of one run: as root, those of its dedicated
    host uid; those in its supervisor's run cgroups (an unprivileged run
    shares the caller's uid)."""
    return _survivors([(sup_pid, host_uid)])


def _survivors(runs: Sequence[tuple[int | None, int | None]]) -> list[int]:
    uids = [u for _, u in runs if u is not None and u >= SANDBOX_UID_MIN]
    sups = [s for s, _ in runs if s is not None]
    return sorted(set(pids_of_uids(uids)) | set(pids_in_run_cgroups(sups)))


def check_host_clean(mounts_before: list[str], sup_pid: int, host_uid: int | None = None) -> None:
    """Threat model 4.6 after one run (supervisor sup_pid, host uid from its
    report): nothing of it survives, no run cgroup of it is left, the host
    mount table is unchanged."""
    assert sandbox_survivors(host_uid, sup_pid) == [], "sandbox processes survived the run"
    assert run_cgroups(sup_pid) == [], "run cgroups left behind"
    assert host_mounts() == mounts_before, "host mount table changed: " + _mount_diff(mounts_before)


def check_runs_clean(before: HostState, runs: Sequence[tuple[int, int | None]]) -> None:
    """check_host_clean() for a test's runs (a run without a known host uid
    is looked for by its cgroups only), then runtime files byte-identical."""
    sups = {s for s, _ in runs}
    assert _survivors(runs) == [], "sandbox processes survived the run"
    assert [c for c in run_cgroups() if run_cgroup_supervisor(c) in sups] == [], "run cgroups left behind"
    assert host_mounts() == before.mounts, "host mount table changed: " + _mount_diff(before.mounts)
    for p, h in before.canaries.items():
        assert sha256_file(p) == h, "runtime file changed: " + p


# -------------------------------------------------------------- processes

def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, ..."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children(ppid: int) -> list[int]:
    return sorted(p for p in _all_pids() if (_stat_fields(p) or ["", "0"])[1] == str(ppid))


def descendants(pid: int) -> list[int]:
    """Every process below pid (one snapshot of /proc)."""
    kids: dict[int, list[int]] = {}
    for p in _all_pids():
        f = _stat_fields(p)
        if f:
            kids.setdefault(int(f[1]), []).append(p)
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def proc_state(pid: int) -> str | None:
    """The state letter of pid (None: no such process)."""
    f = _stat_fields(pid)
    return f[0] if f else None


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z")


def proc_uid(pid: int) -> int | None:
    uid = _proc_field(pid, "Uid")
    return int(uid[0]) if uid else None


def wait_gone(pids: Iterable[int], seconds: float = 10) -> list[int]:
    """Waits until none of pids is alive; returns those still alive."""
    pids = list(pids)
    deadline = time.monotonic() + seconds
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


# ------------------------------------------------------------ warm server

def server_pid(path: str | None = None) -> int:
    """Pid of the warm server listening on path (default $SANDCELL_SERVER):
    SO_PEERCRED of a connection names the process that called listen()."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path or SERVER or "")
        pid: int = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    finally:
        s.close()
    return pid


def template_dirs() -> list[str]:
    """The warm templates' private HOME directories in /tmp."""
    return [os.path.join("/tmp", n) for n in os.listdir("/tmp") if n.startswith("sandcell-template-")]


def sanitizer_reports(log: str) -> list[str]:
    """The lines of a server log that open an ASan or UBSan report."""
    return [ln for ln in log.splitlines() if "ERROR: AddressSanitizer" in ln or "runtime error:" in ln]


class WarmServer:
    """One `sandcell serve` on a private socket, ready when constructed
    (binary: the server's; clients are BIN)."""

    READY_TIMEOUT = 60

    def __init__(self, opts: Sequence[str] = (), env: dict[str, str] | None = None,
                 sockdir: str | None = None, sockname: str = "sock", binary: str = BIN) -> None:
        self.dir = sockdir or tempfile.mkdtemp(prefix="sandcell-warm-test-")
        self.sock = os.path.join(self.dir, sockname)
        self.log = open(os.path.join(self.dir, "server.log"), "w+b")
        self.cmd = [binary, "serve", "--socket", self.sock] + list(opts)
        self.templates_before = set(template_dirs())
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        while "ready on" not in self.log_text():
            assert self.proc.poll() is None, "server died: %s" % self.log_text()
            assert time.monotonic() - t0 < self.READY_TIMEOUT, "server not ready: %s" % self.log_text()
            time.sleep(0.05)
        self.ready_sec = time.monotonic() - t0
        # sandcell serve execs sandcell-warm: same pid.
        self.pid = self.proc.pid

    def log_text(self) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cmdline(self, code: str | None = None, file: str | None = None, opts: Sequence[str] = (),
                report: str | None = None, args: Sequence[str] = ()) -> list[str]:
        return sandcell_cmd(code, file, args, opts, report, self.sock)

    def popen(self, code: str, opts: Sequence[str] = (), report: str | None = None,
              **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmdline(textwrap.dedent(code), opts=opts, report=report),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kw)

    def run(self, code: str, opts: Sequence[str] = (), timeout: float = 60) -> Run:
        return run_cli(textwrap.dedent(code), opts=opts, stdin=None, timeout=timeout, server=self.sock)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Under the sanitizers, a report from a process no test watches (a
        # spare's supervisor, the factory, the template) is in the log.
        text = self.log_text() if ASAN else ""
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not sanitizer_reports(text), "the server's log has sanitizer reports:\n" + text[-20000:]

    def new_template_dirs(self) -> list[str]:
        return sorted(set(template_dirs()) - self.templates_before)


# ------------------------------------------------------- the attack tier
# Every attack test names the guarantee it checks (threat model section 1,
# G1..G11) in its id: parametrized cases get "G4:..." ids through case(),
# plain tests are called test_G<n>_...  Many small probes share one run
# (probe()): the code prints one JSON document after MARK, each case then
# asserts one entry of it.

def case(gid: str, name: str, *values: Any, **kw: Any) -> Any:
    """pytest.param whose id starts with the guarantee id, e.g. "G4:x32-getpid"."""
    import pytest  # here: bench/bench.py uses this module without pytest
    return pytest.param(*values, id="%s:%s" % (gid, name), **kw)


PRELUDE = r'''
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
MARK = %r
def sc(nr, *args):
    """Raw x86_64 syscall; returns (ret, errno).  Every argument is passed
    as a full 64-bit register value."""
    a = [ctypes.c_ulong(x & 0xffffffffffffffff) if isinstance(x, int) else x for x in args]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *a)
    return r, ctypes.get_errno()
def err_of(r):
    return r[1] if r[0] == -1 else 0
def oserr(fn, *a, **k):
    """0 if fn succeeded, else the errno of the OSError it raised."""
    try:
        fn(*a, **k)
        return 0
    except OSError as e:
        return e.errno if e.errno is not None else -1
def in_child(fn):
    """Runs fn() in a forked child; returns {"signal": n} if the child was
    killed, else {"exit": code, "value": what fn returned (JSON)}."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            v = fn()
        except BaseException as e:
            v = "exception: %%r" %% (e,)
        os.write(w, json.dumps(v).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        data += b
    os.close(r)
    _, st = os.waitpid(pid, 0)
    if os.WIFSIGNALED(st):
        return {"signal": os.WTERMSIG(st)}
    return {"exit": os.WEXITSTATUS(st), "value": json.loads(data) if data else None}
def emit(obj):
    sys.stdout.flush()
    print(MARK + json.dumps(obj), flush=True)
''' % (MARK,)


def run(code: str | None = None, file: str | None = None, args: Sequence[str] = (),
        opts: Sequence[str] = (), stdin: bytes = b"", timeout: float = 120,
        env: dict[str, str] | None = None, prelude: bool = True, check_host: bool = True) -> Run:
    """One sandboxed run of code (after PRELUDE) with a report; checks the
    host post-conditions right away (module-scoped runs cannot use the
    host_postconditions fixture) and that the run was in full mode."""
    if code is not None:
        code = (PRELUDE if prelude else "import os, sys") + "\n" + textwrap.dedent(code)
    mounts = host_mounts()
    r = run_cli(code, file, args, opts, stdin=stdin, timeout=timeout, env=env)
    if check_host:
        check_host_clean(mounts, r.pid, host_uid_of(r.report))
    assert r.report is not None, r
    assert r.report["isolation"]["mode"] == "full", r
    return r


def probe(code: str, **kw: Any) -> tuple[Run, Any]:
    """Runs code (with PRELUDE) and returns (Run, the emitted JSON)."""
    r = run(code, **kw)
    return r, r.result()


# ------------------------------------------------------------ assertions

def assert_limit_stop(run: Run, status: str, rc: int, reason_words: Iterable[str]) -> None:
    """A run stopped by a limit: documented status, exit code, a reason
    naming the limit in the report and the one-line cause on stderr."""
    assert run.report is not None, run
    assert run.status == status, run
    assert run.rc == rc, run
    assert run.report["exit_code"] == rc, run
    reason = run.report["reason"]
    assert isinstance(reason, str) and reason, run
    for w in reason_words:
        assert w in reason.lower(), (w, reason)
    assert ("sandcell: %s" % status) in run.err, run
    assert run.report["script"]["started"] is True, run
    # No sandbox error; the code's own exception (e.g. the OSError of a
    # full disk, then exit 1) may be reported as an object.
    assert run.report["error"] is None or isinstance(run.report["error"], dict), run


def nb_validate(outputs: list[Any]) -> Any:
    """Validates cell outputs with nbformat's own schema (Debian's
    python3-nbformat): a v4 notebook whose one code cell holds them.
    Returns the notebook; raises nbformat.ValidationError."""
    import importlib
    # Here: only the cell-mode tests need it.  nbformat has no types.
    nbformat: Any = importlib.import_module("nbformat")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


if __name__ == "__main__":
    if sys.argv[1:2] == ["sanitizer-reports"] and len(sys.argv) == 3:
        with open(sys.argv[2], encoding="utf-8", errors="replace") as f:
            found = sanitizer_reports(f.read())
    elif sys.argv[1:] in (["run-cgroups"], ["orphan-cgroups"]):
        found = run_cgroups() if sys.argv[1] == "run-cgroups" else orphan_run_cgroups()
    else:
        sys.exit("usage: harness.py run-cgroups|orphan-cgroups|sanitizer-reports LOG")
    print("\n".join(found), end="\n" if found else "")
