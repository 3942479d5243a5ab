"""The JSON report (docs/report.md, schema 2): keys, order, types, the
isolation section, and `--report -`."""
import glob
import json
import os
import subprocess
import textwrap

import pytest

from harness import BIN, EXIT_SANDBOX, EXIT_UNREACHABLE, EXIT_USAGE, IS_ROOT, nb_validate

NUM = (int, float)
STR_OR_NONE = (str, type(None))

TOP_LEVEL = [
    ("schema", int), ("sandcell_version", str), ("status", str), ("reason", str),
    ("exit_code", int), ("script", dict), ("time", dict), ("memory", dict), ("streams", dict),
    ("result", object), ("result_error", STR_OR_NONE), ("cell", dict), ("outputs", dict),
    ("truncations", list), ("limits", dict), ("isolation", dict),
    ("error", (str, dict, type(None))), ("stopped_at", (dict, type(None))), ("left_behind", list),
]
STATUSES = {"sandbox-error", "memory", "cpu-time", "timeout", "disk", "output-limit",
            "signaled", "exited", "ok", "usage-error", "busy", "unreachable", "cancelled"}
# Outcomes where no code ran (or a cancel), with their exit codes
# (docs/report.md, "Exit codes").
REFUSALS = {"usage-error": 125, "busy": 118, "unreachable": 117, "sandbox-error": 126,
            "cancelled": 119}
LIMIT_KEYS = ["wall_sec", "cpu_sec", "memory_bytes", "pids", "disk_bytes", "disk_inodes",
              "open_files", "stream_bytes", "output_files", "output_bytes", "output_depth",
              "result_bytes", "cell_bytes", "cell_outputs", "cell_output_bytes"]


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_schema(rep):
    """Every documented key, in the documented order, with its type."""
    assert list(rep)[:len(TOP_LEVEL)] == [k for k, _ in TOP_LEVEL], list(rep)
    for key, typ in TOP_LEVEL:
        assert isinstance(rep[key], typ), (key, rep[key])
    assert rep["schema"] == 2
    assert rep["status"] in STATUSES
    assert is_int(rep["exit_code"])
    assert all(isinstance(c, str) and c for c in rep["left_behind"]), rep["left_behind"]

    s = rep["script"]
    assert list(s) == ["started", "exit_code", "signal", "signal_name"]
    assert isinstance(s["started"], bool)
    assert s["exit_code"] is None or is_int(s["exit_code"])
    assert s["signal"] is None or is_int(s["signal"])
    assert isinstance(s["signal_name"], STR_OR_NONE)

    assert list(rep["time"]) == ["wall_sec", "cpu_sec"]
    for k in ("wall_sec", "cpu_sec"):
        v = rep["time"][k]
        assert v is None or (isinstance(v, NUM) and not isinstance(v, bool) and v >= 0), (k, v)
    assert list(rep["memory"]) == ["peak_bytes"]
    assert is_int(rep["memory"]["peak_bytes"]) and rep["memory"]["peak_bytes"] >= 0

    assert list(rep["streams"]) == ["stdout", "stderr"]
    for name in ("stdout", "stderr"):
        st = rep["streams"][name]
        assert list(st) == ["bytes", "truncated"]
        assert is_int(st["bytes"]) and st["bytes"] >= 0
        assert isinstance(st["truncated"], bool)

    o = rep["outputs"]
    assert list(o) == ["collected", "files", "skipped", "skipped_total", "bytes", "limit_hit"]
    assert isinstance(o["collected"], bool) and isinstance(o["limit_hit"], bool)
    assert is_int(o["bytes"])
    assert is_int(o["skipped_total"]) and o["skipped_total"] >= len(o["skipped"]), o
    assert len(o["skipped"]) <= 1000
    for f in o["files"]:
        assert list(f) == ["path", "size", "sha256"]
        assert isinstance(f["path"], str) and is_int(f["size"])
        assert len(f["sha256"]) == 64 and f["sha256"] == f["sha256"].lower()
        int(f["sha256"], 16)
    for sk in o["skipped"]:
        assert list(sk) == ["path", "reason"]
        assert isinstance(sk["path"], str) and isinstance(sk["reason"], str) and sk["reason"]

    c = rep["cell"]
    assert list(c) == ["mode", "outputs", "bytes", "dropped", "problems"]
    assert c["mode"] in ("cell", "script")
    assert is_int(c["bytes"]) and is_int(c["dropped"]) and c["bytes"] >= 0
    assert all(isinstance(p, str) and p for p in c["problems"])
    nb_validate(c["outputs"])  # nbformat's own schema
    if isinstance(rep["error"], dict):
        assert list(rep["error"]) == ["ename", "evalue", "traceback"]
        assert isinstance(rep["error"]["ename"], str) and isinstance(rep["error"]["evalue"], str)
        assert all(isinstance(x, str) for x in rep["error"]["traceback"])
    elif isinstance(rep["error"], str):
        assert rep["status"] == "sandbox-error", rep
    if rep["stopped_at"] is not None:
        assert list(rep["stopped_at"]) == ["traceback", "reported_by"]
        assert rep["stopped_at"]["reported_by"] == "code"
        assert all(isinstance(x, str) for x in rep["stopped_at"]["traceback"])

    order = ["stdout", "stderr", "result", "cell", "outputs"]
    assert all(t in order for t in rep["truncations"])
    assert rep["truncations"] == sorted(rep["truncations"], key=order.index)

    lim = rep["limits"]
    assert list(lim) == LIMIT_KEYS
    for k in LIMIT_KEYS:
        if k.endswith("_sec"):
            assert isinstance(lim[k], float), (k, lim[k])
        else:
            assert is_int(lim[k]) and lim[k] > 0, (k, lim[k])

    iso = rep["isolation"]
    assert list(iso) == ["mode", "namespaces", "seccomp", "no_new_privs", "capabilities_dropped",
                         "landlock", "cgroup", "host_uid", "not_held"]
    assert iso["mode"] in ("full", "reduced", "none")
    assert list(iso["namespaces"]) == ["user", "pid", "mount", "net", "ipc", "uts", "cgroup"]
    assert all(isinstance(v, bool) for v in iso["namespaces"].values())
    for k in ("seccomp", "no_new_privs", "capabilities_dropped"):
        assert isinstance(iso[k], bool)
    assert list(iso["landlock"]) == ["abi", "fs", "net", "scope_abstract_unix", "scope_signal"]
    assert is_int(iso["landlock"]["abi"])
    assert list(iso["cgroup"]) == ["version", "memory", "pids", "cpu", "swap"]
    assert iso["cgroup"]["version"] in ("v2", "v1", "hybrid", "none")
    assert iso["cgroup"]["swap"] in ("limited", "no-swap", "unlimited", "none")
    assert is_int(iso["host_uid"])
    assert all(isinstance(x, str) for x in iso["not_held"])

    if rep["status"] in REFUSALS:
        assert rep["exit_code"] == REFUSALS[rep["status"]], rep
        assert rep["reason"], rep
        # error: a sandbox error's message, null for the others.
        assert (rep["error"] is not None) == (rep["status"] == "sandbox-error"), rep


def check_refusal(rep, status):
    """A report of a request refused before any code ran: every key of
    any report, nothing claimed that did not happen."""
    check_schema(rep)
    assert rep["status"] == status, rep
    assert rep["script"] == {"started": False, "exit_code": None, "signal": None,
                             "signal_name": None}, rep
    assert rep["outputs"] == {"collected": False, "files": [], "skipped": [], "skipped_total": 0,
                              "bytes": 0, "limit_hit": False}, rep
    assert rep["result"] is None and rep["truncations"] == [], rep
    iso = rep["isolation"]
    assert iso["mode"] == "none" and iso["not_held"] == [], iso
    assert not any(iso["namespaces"].values()) and not iso["seccomp"], iso


def test_schema_ok_run(sandcell, tmp_path):
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out)], code=textwrap.dedent("""
        import os, sandcell
        os.symlink("/etc/passwd", "/output/link")
        open("/output/a.txt", "w").write("a")
        sandcell.result({"k": [1, 2]})
        print("hello")
    """))
    rep = run.report
    check_schema(rep)
    assert rep["status"] == "ok" and rep["exit_code"] == 0 == run.rc
    assert rep["script"] == {"started": True, "exit_code": 0, "signal": None, "signal_name": None}
    assert rep["sandcell_version"]
    assert rep["error"] is None and rep["result_error"] is None
    assert rep["streams"]["stdout"] == {"bytes": 6, "truncated": False}
    assert rep["streams"]["stderr"] == {"bytes": 0, "truncated": False}
    assert rep["truncations"] == []
    assert rep["outputs"]["files"][0]["path"] == "a.txt"
    assert rep["outputs"]["skipped"] == [{"path": "link", "reason": "symlink"}]
    assert rep["time"]["wall_sec"] > 0 and rep["time"]["cpu_sec"] >= 0
    assert rep["memory"]["peak_bytes"] > 0


@pytest.mark.parametrize("opts,code,status", [
    ([], "import sys; sys.exit(4)", "exited"),
    ([], "import os; os.kill(os.getpid(), 15)", "signaled"),
    (["--wall-time", "0.5"], "while True: pass", "timeout"),
    (["--result-limit", "1K"], "import sandcell; sandcell.result('x' * 3000)", "output-limit"),
], ids=["exited", "signaled", "timeout", "output-limit"])
def test_schema_other_statuses(sandcell, opts, code, status):
    run = sandcell(opts=opts, code=code, timeout=60)
    check_schema(run.report)
    assert run.status == status, run
    assert run.report["exit_code"] == run.rc
    assert run.report["reason"], run.report


def test_isolation_full(sandcell):
    run = sandcell(code="pass")
    iso = run.report["isolation"]
    assert iso["mode"] == "full"
    assert iso["namespaces"] == {k: True for k in ("user", "pid", "mount", "net", "ipc", "uts",
                                                    "cgroup")}
    assert iso["seccomp"] is True
    assert iso["no_new_privs"] is True
    assert iso["capabilities_dropped"] is True
    assert iso["landlock"]["abi"] >= 1
    assert iso["landlock"]["fs"] is True
    assert iso["cgroup"]["version"] in ("v2", "v1", "hybrid")
    assert iso["cgroup"]["memory"] is True and iso["cgroup"]["pids"] is True
    assert iso["not_held"] == []
    if IS_ROOT:
        assert iso["host_uid"] != 0
    else:
        assert iso["host_uid"] == os.geteuid()


def _host_swap_expectation(version):
    """What isolation.cgroup.swap must say on this host, from the host's
    own files: swap accounting present where the memory controller is."""
    if version == "v2":
        accounted = bool(glob.glob("/sys/fs/cgroup/*/memory.swap.max"))
    else:  # v1 or hybrid: this CI's memory controller is on v1
        accounted = os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") or \
            bool(glob.glob("/sys/fs/cgroup/unified/*/memory.swap.max"))
    if accounted:
        return "limited"
    with open("/proc/swaps") as f:
        return "unlimited" if len(f.read().splitlines()) > 1 else "no-swap"


def test_swap_claim_matches_the_host(sandcell):
    """G7's swap bound is checked at run time: the report says whether
    --memory also bounds swap here, and a host where it cannot (swap on,
    no accounting) refuses to run."""
    run = sandcell(code="pass")
    if run.rc == 126:
        assert "swap accounting" in run.report["error"], run
        return
    cg = run.report["isolation"]["cgroup"]
    assert cg["swap"] == _host_swap_expectation(cg["version"]), run.report["isolation"]
    assert cg["swap"] in ("limited", "no-swap"), cg


def test_isolation_as_seen_from_inside(sandcell):
    """The report's claims match what the code observes."""
    run = sandcell(code=textwrap.dedent("""
        import json, os, socket
        status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines()
                      if ":\\t" in l)
        print(json.dumps({
            "pid": os.getpid(), "hostname": socket.gethostname(),
            "seccomp": status.get("Seccomp", "").strip(),
            "nnp": status.get("NoNewPrivs", "").strip(),
            "capeff": status.get("CapEff", "").strip(),
            "capbnd": status.get("CapBnd", "").strip(),
            "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        }))
    """))
    assert run.rc == 0, run
    got = json.loads(run.out)
    assert got["seccomp"] == "2"
    assert got["nnp"] == "1"
    assert int(got["capeff"], 16) == 0 and int(got["capbnd"], 16) == 0
    assert got["hostname"] != os.uname().nodename  # a uts namespace of its own
    # A fresh pid namespace: only sandcell's init and the code are there.
    assert got["pid"] <= 3 and len(got["procs"]) <= 3, got


def test_report_to_stdout_after_code_output(tmp_path):
    proc = subprocess.run([BIN, "run", "--report", "-", "-c",
                           "import sys\nprint('line one')\nprint('{not the report}')\n"
                           "sys.stdout.write('x' * 70000 + '\\n')"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc
    out = proc.stdout.decode()
    code_out = "line one\n{not the report}\n" + "x" * 70000 + "\n"
    assert out.startswith(code_out)
    rep = json.loads(out[len(code_out):])
    check_schema(rep)
    assert rep["status"] == "ok"
    assert rep["streams"]["stdout"]["bytes"] == len(code_out)


def test_report_to_stdout_on_limit_stop(tmp_path):
    proc = subprocess.run([BIN, "run", "--report", "-", "--wall-time", "0.5", "-c",
                           "print('before', flush=True)\nwhile True: pass"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 124, proc
    out = proc.stdout.decode()
    assert out.startswith("before\n")
    rep = json.loads(out[len("before\n"):])
    assert rep["status"] == "timeout"


def test_report_file_unwritable(tmp_path):
    bad = tmp_path / "no-such-dir" / "r.json"
    proc = subprocess.run([BIN, "run", "--report", str(bad), "-c", "print('ran')"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 126, proc
    assert b"report" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_report_file_is_complete_json_with_newline(sandcell, tmp_path):
    run = sandcell(code="print('x')")
    reports = sorted(tmp_path.glob("report-*.json"))
    assert reports, "no report file"
    text = reports[-1].read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == run.report


# ---- every outcome has a full report: refusals (docs/report.md, "Statuses") ----

def test_schema_usage_error(sandcell):
    """A request sandcell refuses (limits too small to start python) gets a
    full report, cold and warm alike, with the limits as requested."""
    run = sandcell(opts=["--memory", "1M"], code="print('ran')")
    assert run.rc == EXIT_USAGE, run
    check_refusal(run.report, "usage-error")
    assert "limits too small" in run.report["reason"], run.report
    assert run.report["limits"]["memory_bytes"] == 1 << 20
    assert run.stdout == b""


@pytest.mark.parametrize("argv", [
    ["--frobnicate", "--report", "{r}", "-c", "pass"],
    ["--wall-time", "abc", "--rep={r}", "-c", "pass"],
    ["--report", "{r}", "--value", "v=[", "-c", "pass"],
    ["--report", "{r}"],
], ids=["unknown-option-before", "bad-value-abbreviated-report", "bad-json-after", "no-code"])
def test_schema_usage_error_on_the_command_line(tmp_path, argv):
    """A command-line mistake anywhere, before or after --report (also
    abbreviated), still gets the report asked for."""
    r = tmp_path / "r.json"
    proc = subprocess.run([BIN, "run"] + [a.format(r=r) for a in argv], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == EXIT_USAGE, proc
    rep = json.loads(r.read_text())
    check_refusal(rep, "usage-error")
    # The report's reason is the message on stderr.
    assert ("sandcell: %s\n" % rep["reason"]).encode() in proc.stderr, (rep, proc.stderr)


def test_schema_unreachable_server(tmp_path):
    """No server at the socket: exit 117 and a full report (not 126 and
    nothing)."""
    r = tmp_path / "r.json"
    proc = subprocess.run([BIN, "run", "--server", str(tmp_path / "none.sock"), "--report", str(r),
                           "--wall-time", "7", "-c", "pass"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == EXIT_UNREACHABLE, proc
    rep = json.loads(r.read_text())
    check_refusal(rep, "unreachable")
    assert "cannot reach the sandcell server" in rep["reason"], rep
    assert rep["limits"]["wall_sec"] == 7.0
    assert b"sandcell: unreachable: cannot reach" in proc.stderr, proc


def test_schema_sandbox_error(sandcell, tmp_path):
    """A layer that cannot be set up (a cgroup parent below a file)."""
    run = sandcell(opts=["--cgroup-parent", "cgroup.procs/x"], code="print('ran')")
    assert run.rc == EXIT_SANDBOX, run
    check_refusal(run.report, "sandbox-error")
    assert "cgroup" in run.report["error"], run.report
    assert run.stdout == b""


def test_usage_error_report_to_stdout():
    """`--report -`: the report of a usage error goes to stdout too."""
    proc = subprocess.run([BIN, "run", "--report", "-", "--pids", "2", "-c", "pass"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)
    assert proc.returncode == EXIT_USAGE, proc
    check_refusal(json.loads(proc.stdout), "usage-error")

