"""G6 in warm mode: a run's address space holds nothing of the request, of
the server or of the host.

A warm run is a fork of a long-lived template, not an exec, so whatever
the template, the worker that read the request and the sandbox init had in
memory is in the code's memory too, unless it was never there or was wiped
before the code started.  docs/SECURITY.md (G6) calls secret: the
supervisor's environment, arguments and fds, and host paths other than the
inputs' contents: the output directory, the report path, the caller's other
paths, the host name.  Warm mode adds the request itself (its JSON text and
every parsed copy) and other runs' requests.

The first test scans the run's own memory: every readable mapping that can
hold data (anonymous, heap, stack, and the writable data of the binaries;
read-only file mappings are the files' own bytes), for needles that were
placed only in the request, the server's command line and cwd, other runs'
requests, or the host (a host name set in a uts namespace of the server's
own, so it is distinctive).  The code never holds a needle: it gets the
first half of each and the SHA-256 of the whole, and hashes what follows
each occurrence of a half.

The second test compares what modules report about their environment
(host name, matplotlib's directories, the temp dir, cwd, user, ...) in a
warm run with a cold run of the same code: a value the template computed
on the host and cached at import would differ.
"""
import hashlib
import json
import os
import secrets
import subprocess

import pytest

import harness
from harness import BIN, IS_ROOT, WarmServer, run_cgroup_prefix

SCAN = r'''
import ctypes, hashlib, json, sys
# A mapping listed below must stay mapped while it is read: glibc may not
# trim the heap, and the chunks read go to mappings of their own.
libc = ctypes.CDLL(None)
libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
libc.mallopt(-3, 64 << 10)  # M_MMAP_THRESHOLD (fixed: no dynamic raise)
NEEDLES = json.loads(%s)
BAD = ("[vvar]", "[vvar_vclock]", "[vsyscall]")
def regions():
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            f5 = line.split()
            lo, hi = (int(x, 16) for x in f5[0].split("-"))
            perms, name = f5[1], (f5[5] if len(f5) > 5 else "anon")
            if perms[0] != "r" or name in BAD:
                continue
            if name.startswith("/") and perms[1] != "w":
                continue  # a file's own bytes (code, rodata)
            out.append((lo, hi, name))
    return out
variants = [(label, bytes.fromhex(half), whole_len, bytes.fromhex(digest))
            for label, half, whole_len, digest in NEEDLES]
hits = {}
STEP = 1 << 20
for lo, hi, name in regions():
    a = lo
    while a < hi:
        n = min(STEP + 4096, hi - a)
        chunk = ctypes.string_at(a, n)
        for label, half, whole_len, digest in variants:
            i = chunk.find(half)
            while i >= 0:
                if hashlib.sha256(chunk[i:i + whole_len]).digest() == digest:
                    hits.setdefault(label, []).append("%%s+%%x" %% (name, a + i - lo))
                i = chunk.find(half, i + 1)
        del chunk
        a += STEP
print(json.dumps({"hits": hits, "regions": len(regions())}))
'''


def _half_and_hash(needles):
    """[label, first half (hex), length, SHA-256 of the whole (hex)] for
    each needle, as ASCII and as UTF-32 (C's wchar_t, which CPython's
    configuration uses): the code never holds a whole needle."""
    out = []
    for label, text in needles:
        for enc in ("ascii", "utf-32-le"):
            b, h = text.encode(enc), text[: len(text) // 2].encode(enc)
            out.append([label, h.hex(), len(b), hashlib.sha256(b).hexdigest()])
    return json.dumps(out)


def _uts_server(tmp_path, hostname, opts):
    """A harness.WarmServer started with a cwd of its own
    (the cwd is a host path too) and, given a hostname (needs root), in a
    uts namespace of its own with that name, so that the host's name is
    distinctive."""
    cwd = tmp_path / ("server-cwd-" + secrets.token_hex(6))
    cwd.mkdir()
    wrapper = tmp_path / "serve-in-uts.sh"
    if hostname:
        wrapper.write_text('#!/bin/sh\ncd "%s" || exit 1\nexec unshare -u -- /usr/bin/python3 -c '
                           '"import os, socket, sys; socket.sethostname(sys.argv[1]); '
                           'os.execv(sys.argv[2], sys.argv[2:])" "%s" "%s" "$@"\n'
                           % (cwd, hostname, BIN))
    else:
        wrapper.write_text('#!/bin/sh\ncd "%s" || exit 1\nexec "%s" "$@"\n' % (cwd, BIN))
    wrapper.chmod(0o755)
    return WarmServer(list(opts), binary=str(wrapper)), cwd


@pytest.mark.skipif(harness.ASAN, reason=harness.ASAN_SKIP["dump"])
def test_G6_warm_memory_holds_no_request_server_or_host_data(tmp_path):
    """One run scans its whole readable memory for: its own request
    (output dir, input host path, script host path, a value, the JSON
    text), its report path (never sent), its cgroup's host path, the
    server's argv (socket path), cwd and environment, a value and an output
    dir of an earlier run and of a run in flight at the same time, the
    template's temp dir (if it has one) and, as root, the host name.  None
    may be there."""
    tok = {k: secrets.token_hex(8) for k in (
        "out", "in", "code", "report", "value", "env", "earlier", "earlier_out",
        "concurrent", "concurrent_out", "host")}
    hostname = ("sc-host-" + tok["host"]) if IS_ROOT else None
    env_secret = "sandcell-env-secret-" + tok["env"]
    os.environ["SANDCELL_LEAK_TEST_SECRET"] = env_secret
    try:
        srv, cwd = _uts_server(tmp_path, hostname, ["--slots", "3"])
    finally:
        del os.environ["SANDCELL_LEAK_TEST_SECRET"]
    try:
        # an earlier run, finished before the scan
        earlier = srv.run("import sandcell; print(sandcell.values['v'])",
                          opts=["--value", "v=" + json.dumps("earlier-" + tok["earlier"]),
                                "--output", str(tmp_path / ("out-" + tok["earlier_out"]))])
        assert earlier.status == "ok" and tok["earlier"] in earlier.out, earlier
        # a run in flight during the scan (its client is killed at the end)
        conc = srv.popen("import sandcell, sys, time\nprint(sandcell.values['v'], flush=True)\n"
                         "time.sleep(120)\n",
                         opts=["--value", "v=" + json.dumps("concurrent-" + tok["concurrent"]),
                               "--output", str(tmp_path / ("out-" + tok["concurrent_out"]))])
        assert tok["concurrent"].encode() in conc.stdout.readline()

        indir = tmp_path / ("in-" + tok["in"])
        indir.mkdir()
        (indir / "data.csv").write_text("a,b\n1,2\n")
        codedir = tmp_path / ("code-" + tok["code"])
        codedir.mkdir()
        templates = [os.path.basename(d) for d in srv.new_template_dirs()] or ["sandcell-template-"]
        needles = [
            ("output dir", "out-" + tok["out"]),
            ("input host path", "in-" + tok["in"]),
            ("script host path", "code-" + tok["code"]),
            ("report path", "report-" + tok["report"]),
            ("own value", "own-" + tok["value"]),
            ("request JSON", '"output_dir":'),
            ("server socket path", os.path.basename(srv.dir)),
            ("server cwd", cwd.name),
            ("server environment", env_secret),
            ("earlier run's value", "earlier-" + tok["earlier"]),
            ("earlier run's output dir", "out-" + tok["earlier_out"]),
            ("concurrent run's value", "concurrent-" + tok["concurrent"]),
            ("concurrent run's output dir", "out-" + tok["concurrent_out"]),
            # the run's cgroup directory on the host: <parent>/run-<pid>-...
            ("run's cgroup path", os.environ.get("SANDCELL_CGROUP_PARENT", "sandcell")
             .strip("/").split("/")[-1] + "/" + run_cgroup_prefix()),
        ] + [("template temp dir", t) for t in templates]
        if hostname:
            needles.append(("host name", hostname))
        script = codedir / "scan.py"
        script.write_text(SCAN % repr(_half_and_hash(needles)))
        report = tmp_path / ("report-" + tok["report"] + ".json")
        cmd = [BIN, "run", "--server", srv.sock, "--report", str(report),
               "--input", "data=%s" % (indir / "data.csv"),
               "--value", "own=" + json.dumps("own-" + tok["value"]),
               "--output", str(tmp_path / ("out-" + tok["out"])),
               "--memory", "2G", "--wall-time", "120", "--cpu-time", "120", str(script)]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
        finally:
            conc.kill()
            conc.communicate()
        assert p.returncode == 0, p
        res = json.loads(p.stdout.decode().strip().splitlines()[-1])
        assert res["regions"] > 10, res
        assert res["hits"] == {}, json.dumps(res["hits"], indent=1, sort_keys=True)
    finally:
        srv.stop()


PROBE = r'''
import gc, getpass, json, locale, os, platform, runpy, socket, sys, sysconfig, tempfile, time
import matplotlib, matplotlib.font_manager as fm, matplotlib.pyplot, numpy, pandas
r = {
    "platform.node": platform.node(),
    "platform.uname": list(platform.uname()),
    "socket.gethostname": socket.gethostname(),
    "os.uname.nodename": os.uname().nodename,
    "matplotlib.get_configdir": matplotlib.get_configdir(),
    "matplotlib.get_cachedir": matplotlib.get_cachedir(),
    "matplotlib.font_cache": str(getattr(fm, "_get_font_cache_path", lambda: None)()),
    "matplotlib.matplotlib_fname": matplotlib.matplotlib_fname(),
    "tempfile.gettempdir": tempfile.gettempdir(),
    "tempfile.tempdir": tempfile.tempdir,
    "os.getcwd": os.getcwd(),
    "getpass.getuser": getpass.getuser(),
    "expanduser": os.path.expanduser("~"),
    "locale": list(locale.getlocale()),
    "time.tzname": list(time.tzname),
    "sys.path": [p for p in sys.path if p not in ("/code", "", "/.sandcell")],
    "sys.executable": sys.executable,
    "sys.prefix": sys.prefix,
    "environ": sorted(os.environ.items()),
    "sysconfig.platform": sysconfig.get_platform(),
    "sys.flags": list(sys.flags),
    "fs encoding": [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()],
    "preferred encoding": locale.getpreferredencoding(False),
    "LC_CTYPE": locale.setlocale(locale.LC_CTYPE),
    "matplotlib.backend": matplotlib.get_backend(),
    "ids": [os.getuid(), os.getgid(), os.getgroups()],
}
# Every absolute path held by a container the collector knows (module
# dicts, caches, configuration), or by a tuple in one (a cached uname
# result).  gc.freeze() in the template hides its objects from
# get_objects(); tuples of code constants (tracked in the template, not in
# a cold run) are not looked at.
gc.unfreeze()
paths = set()
def take(x):
    if isinstance(x, bytes):
        x = x.decode("utf-8", "replace")
    if isinstance(x, str) and x.startswith("/") and len(x) < 400 and "\n" not in x:
        paths.add(x)
for o in gc.get_objects():
    if isinstance(o, dict):
        vals = [*o.keys(), *o.values()]
    elif isinstance(o, (list, set, frozenset)):
        vals = list(o)
    else:
        continue
    for x in vals:
        for y in (x if isinstance(x, tuple) else (x,)):
            take(y)
r["paths"] = sorted(paths)
r["paths missing here"] = sorted(p for p in paths if not os.path.exists(p))
print(json.dumps(r))
'''


def test_G6_warm_module_caches_match_a_cold_run(tmp_path):
    """What the preloaded modules report about their environment is what a
    cold run of the same code reports: nothing the template computed on
    the host at import time (host name, its temp dir as matplotlib's
    config and cache dir, ...) shows through."""
    hostname = ("sc-host-" + secrets.token_hex(6)) if IS_ROOT else None
    srv, _ = _uts_server(tmp_path, hostname, ["--slots", "1"])
    try:
        warm = srv.run(PROBE)
    finally:
        srv.stop()
    cold = subprocess.run([BIN, "run", "-c", PROBE], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=120)
    assert warm.status == "ok", warm
    assert cold.returncode == 0, cold
    w = warm.json()
    c = json.loads(cold.stdout.decode().strip().splitlines()[-1])
    # A path the warm run holds that does not exist in its sandbox and
    # that the cold run never computed was seen on the host (the
    # template's temp dir, the server's cwd, ...).  Paths both hold or
    # that exist here (the runtime, /tmp/.matplotlib in the cold run's
    # scratch) are the sandbox's.
    host_paths = sorted(set(w.pop("paths missing here")) - set(c.pop("paths")))
    assert host_paths == [], host_paths
    w.pop("paths")
    c.pop("paths missing here")
    diff = {k: (w.get(k), c.get(k)) for k in set(w) | set(c) if w.get(k) != c.get(k)}
    assert diff == {}, json.dumps(diff, indent=1, sort_keys=True)
    if hostname:
        assert hostname not in json.dumps(w)
