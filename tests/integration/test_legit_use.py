"""Legitimate workloads: what a data-science script expects to work does.

Black-box: every check goes through the CLI, its exit code, its streams,
the JSON report and the files it leaves in --output.
"""
import hashlib
import json
import os
import textwrap

import pytest

from harness import PNG_MAGIC, host_files, last_json_line, sha256_file


def ok(run):
    assert run.rc == 0, run
    assert run.status == "ok", run
    assert isinstance(run.report["reason"], str)
    assert run.report["error"] is None, run
    return run


# ---------------------------------------------------------------- libraries

def test_numpy_computation(sandcell):
    run = ok(sandcell(code=textwrap.dedent("""
        import json, numpy as np
        rng = np.random.default_rng(12345)
        a = rng.standard_normal((200, 200))
        inv = np.linalg.inv(a @ a.T + 200 * np.eye(200))
        ident = (a @ a.T + 200 * np.eye(200)) @ inv
        print(json.dumps({"close": bool(np.allclose(ident, np.eye(200))),
                          "sum": int(np.arange(1000).sum()),
                          "dot": float(np.dot([1.5, 2.0], [2.0, 4.0]))}))
    """)))
    assert last_json_line(run.out) == {"close": True, "sum": 499500, "dot": 11.0}


def test_pandas_groupby_read_csv_from_input_file(sandcell, tmp_path):
    csv = tmp_path / "sales.csv"
    csv.write_text("region,amount\nnorth,10\nsouth,5\nnorth,7\neast,1\nsouth,2\n")
    run = ok(sandcell(opts=["--input", "sales=%s" % csv], code=textwrap.dedent("""
        import pandas as pd, sandcell
        df = pd.read_csv(sandcell.inputs["sales"])
        g = df.groupby("region")["amount"].agg(["sum", "count"]).sort_index()
        sandcell.result({"path": sandcell.inputs["sales"],
                         "sum": {k: int(v) for k, v in g["sum"].items()},
                         "count": {k: int(v) for k, v in g["count"].items()},
                         "rows": len(df)})
    """)))
    assert run.report["result"] == {
        "path": "/input/sales",
        "sum": {"east": 1, "north": 17, "south": 7},
        "count": {"east": 1, "north": 2, "south": 2},
        "rows": 5,
    }


def test_matplotlib_savefig_collected_with_sha256(sandcell, tmp_path):
    out = tmp_path / "out"
    run = ok(sandcell(opts=["--output", str(out)], code=textwrap.dedent("""
        import os
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
        ax.plot([0, 1, 2, 3], [1, 4, 9, 16])
        os.makedirs("/output/plots", exist_ok=True)
        fig.savefig("/output/plots/fig.png")
        print(plt.get_backend())
    """)))
    png = out / "plots" / "fig.png"
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert run.out.strip().lower() == "agg"
    files = {f["path"]: f for f in run.report["outputs"]["files"]}
    assert set(files) == {"plots/fig.png"}
    assert files["plots/fig.png"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert files["plots/fig.png"]["size"] == len(data)
    assert run.report["outputs"]["collected"] is True
    assert run.report["outputs"]["bytes"] == len(data)


# ------------------------------------------------------ concurrency and exec

def test_eight_threads_do_work(sandcell):
    run = ok(sandcell(code=textwrap.dedent("""
        import hashlib, json, threading
        results = {}
        barrier = threading.Barrier(8)  # all eight alive at once, or it breaks
        def work(i):
            barrier.wait(timeout=60)
            h = hashlib.sha256()
            for k in range(2000):
                h.update(b"%d-%d" % (i, k))
            results[i] = (h.hexdigest(), sum(range(i * 10000)))
        ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in ts: t.start()
        for t in ts: t.join()
        print(json.dumps({"n": len(results), "sums": [results[i][1] for i in range(8)],
                          "broken": barrier.broken}))
    """)))
    got = last_json_line(run.out)
    assert got == {"n": 8, "sums": [sum(range(i * 10000)) for i in range(8)], "broken": False}


def test_id_change_with_threads_alive_is_refused_not_fatal(sandcell):
    """os.setuid/setgid/setgroups in a threaded process: glibc first signals
    every thread (SIGSETXID) to apply the change everywhere.  The calls must
    fail with EPERM like any id change in the sandbox, and the process must
    live; a warm run, whose glibc state comes from a threaded template,
    once died of signal 33 here."""
    run = ok(sandcell(code=textwrap.dedent("""
        import errno, json, os, threading
        ev = threading.Event()
        ts = [threading.Thread(target=ev.wait) for _ in range(8)]
        for t in ts: t.start()
        out = {}
        for name, call in (("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0)),
                           ("setgroups", lambda: os.setgroups([0])),
                           ("seteuid", lambda: os.seteuid(os.geteuid()))):
            try:
                call()
                out[name] = "ok"
            except OSError as e:
                out[name] = errno.errorcode[e.errno]
        ev.set()
        for t in ts: t.join()
        print(json.dumps(out))
    """)))
    got = last_json_line(run.out)
    # every id change is refused, even to the uid it already has
    assert got == {"setuid": "EPERM", "setgid": "EPERM", "setgroups": "EPERM", "seteuid": "EPERM"}, got


def test_multiprocessing_pool_map(sandcell, tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent("""
        import json, multiprocessing, os

        def square(x):
            return (x * x, os.getpid())

        if __name__ == "__main__":
            with multiprocessing.Pool(4) as pool:
                res = pool.map(square, range(40))
            print(json.dumps({"values": [v for v, _ in res],
                              "workers": len({p for _, p in res} - {os.getpid()})}))
    """))
    run = ok(sandcell(file=script))
    got = last_json_line(run.out)
    assert got["values"] == [x * x for x in range(40)]
    assert got["workers"] >= 1


def test_multiprocessing_primitives(sandcell, tmp_path):
    """Lock, Value, Queue, Event, Semaphore, Condition and a Manager: POSIX
    semaphores in /dev/shm (shared futexes), pipes and unix sockets."""
    script = tmp_path / "prims.py"
    script.write_text(textwrap.dedent("""
        import json, multiprocessing as mp

        def work(lock, val, q, ev, sem, cond, shared, i):
            with sem:
                for _ in range(100):
                    with lock:
                        val.value += 1
            q.put(i)
            shared[i] = i * i
            ev.wait(30)
            with cond:
                cond.notify_all()

        if __name__ == "__main__":
            lock, val, q = mp.Lock(), mp.Value("i", 0, lock=False), mp.Queue()
            ev, sem, cond = mp.Event(), mp.Semaphore(2), mp.Condition()
            with mp.Manager() as m:
                shared = m.dict()
                ps = [mp.Process(target=work, args=(lock, val, q, ev, sem, cond, shared, i))
                      for i in range(4)]
                for p in ps:
                    p.start()
                got = sorted(q.get(timeout=30) for _ in ps)
                ev.set()
                for p in ps:
                    p.join(30)
                print(json.dumps({"value": val.value, "queue": got, "shared": dict(shared),
                                  "exit": [p.exitcode for p in ps]}))
    """))
    run = ok(sandcell(file=script))
    got = last_json_line(run.out)
    assert got == {"value": 400, "queue": [0, 1, 2, 3],
                   "shared": {"0": 0, "1": 1, "2": 4, "3": 9}, "exit": [0, 0, 0, 0]}, got


def test_sqlite_with_locking_on_scratch(sandcell):
    """sqlite3 databases on /tmp in rollback-journal and WAL mode, two
    connections contending (POSIX record locks), a second process."""
    run = ok(sandcell(code=textwrap.dedent("""
        import json, multiprocessing as mp, sqlite3

        def writer(path):
            c = sqlite3.connect(path, timeout=30)
            with c:
                c.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100, 200)])
            c.close()

        if __name__ == "__main__":
            out = {}
            for mode in ("delete", "wal"):
                path = "/tmp/db-%s.sqlite" % mode
                a = sqlite3.connect(path, timeout=30)
                out[mode + "-mode"] = a.execute("PRAGMA journal_mode=%s" % mode).fetchone()[0]
                with a:
                    a.execute("CREATE TABLE t (x INTEGER)")
                    a.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
                b = sqlite3.connect(path, timeout=0)
                a.execute("BEGIN EXCLUSIVE")
                try:
                    b.execute("INSERT INTO t VALUES (-1)")
                    out[mode + "-busy"] = False
                except sqlite3.OperationalError as e:
                    out[mode + "-busy"] = "locked" in str(e)
                a.rollback()
                p = mp.get_context("fork").Process(target=writer, args=(path,))
                p.start()
                p.join(30)
                out[mode + "-rows"] = a.execute("SELECT count(*), sum(x) FROM t").fetchone()
                a.close()
                b.close()
            print(json.dumps(out))
    """)))
    got = last_json_line(run.out)
    assert got == {"delete-mode": "delete", "delete-busy": True, "delete-rows": [200, 19900],
                   "wal-mode": "wal", "wal-busy": True, "wal-rows": [200, 19900]}, got


def test_file_locks_on_scratch(sandcell):
    """flock, POSIX and OFD locks between two processes on a /tmp file."""
    run = ok(sandcell(code=textwrap.dedent("""
        import fcntl, json, os, struct
        path = "/tmp/lockfile"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 10, 1, 0))
        r, w = os.pipe()
        if os.fork() == 0:
            res = {}
            f2 = os.open(path, os.O_RDWR)
            for name, fn in (("flock", lambda: fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)),
                             ("posix", lambda: fcntl.lockf(f2, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)),
                             ("ofd", lambda: fcntl.fcntl(f2, fcntl.F_OFD_SETLK,
                                 struct.pack("hhqqi", fcntl.F_WRLCK, 0, 10, 1, 0)))):
                try:
                    fn()
                    res[name] = "taken"
                except OSError as e:
                    res[name] = e.errno
            got = fcntl.fcntl(f2, fcntl.F_GETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 1, 0))
            res["getlk-type"] = struct.unpack("hhqqi", got)[0]
            os.write(w, json.dumps(res).encode())
            os._exit(0)
        os.close(w)
        res = json.loads(os.read(r, 4096))
        os.wait()
        print(json.dumps(res))
    """)))
    got = last_json_line(run.out)
    assert got == {"flock": 11, "posix": 11, "ofd": 11, "getlk-type": 1}, got


def test_subprocess_runs_python_itself(sandcell):
    run = ok(sandcell(code=textwrap.dedent("""
        import subprocess, sys
        p = subprocess.run([sys.executable, "-c", "import sys; print(6 * 7); sys.exit(3)"],
                           capture_output=True, text=True)
        print("child", p.returncode, p.stdout.strip())
    """)))
    assert run.out.strip() == "child 3 42"


# ------------------------------------------------------------------- inputs

def test_file_and_directory_inputs(sandcell, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello input\n")
    d = tmp_path / "tree"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("A")
    (d / "sub" / "b.txt").write_text("BB")
    run = ok(sandcell(opts=["--input", "notes=%s" % f, "--input", "tree=%s" % d],
                      code=textwrap.dedent("""
        import json, os, sandcell
        tree = {}
        for root, dirs, files in os.walk("/input/tree"):
            for n in files:
                p = os.path.join(root, n)
                tree[os.path.relpath(p, "/input/tree")] = open(p).read()
        writes = {}
        for p in ("/input/notes", "/input/tree/new.txt", "/input/tree/a.txt"):
            try:
                open(p, "a").close()
                writes[p] = "written"
            except OSError as e:
                writes[p] = e.errno
        print(json.dumps({"inputs": dict(sandcell.inputs),
                          "notes": open("/input/notes").read(),
                          "tree": tree, "writes": writes}))
    """)))
    got = last_json_line(run.out)
    assert got["inputs"] == {"notes": "/input/notes", "tree": "/input/tree"}
    assert got["notes"] == "hello input\n"
    assert got["tree"] == {"a.txt": "A", "sub/b.txt": "BB"}
    # Inputs are read-only: no write reaches the host files.
    assert all(v != "written" for v in got["writes"].values()), got["writes"]
    assert sorted(os.listdir(d)) == ["a.txt", "sub"]
    assert f.read_text() == "hello input\n"


def test_file_input_in_a_private_directory(sandcell, tmp_path):
    """A world-readable file inside a directory only its owner may search
    (a root caller's /root/data.csv): the code reads it, as with a bind."""
    d = tmp_path / "private"
    d.mkdir(mode=0o700)
    f = d / "data.csv"
    f.write_text("x,y\n1,2\n")
    f.chmod(0o644)
    run = ok(sandcell(opts=["--input", "data=%s" % f],
                      code="print(open('/input/data').read(), end='')"))
    assert run.out == "x,y\n1,2\n"


# ------------------------------------------------------------------ outputs

def test_nested_outputs_collected(sandcell, tmp_path):
    out = tmp_path / "out"
    run = ok(sandcell(opts=["--output", str(out)], code=textwrap.dedent("""
        import os
        os.makedirs("/output/a/b/c", exist_ok=True)
        os.makedirs("/output/empty", exist_ok=True)
        open("/output/top.txt", "w").write("top")
        open("/output/a/one.txt", "w").write("1")
        open("/output/a/b/c/deep.bin", "wb").write(bytes(range(256)) * 4)
    """)))
    assert host_files(out) == ["a/b/c/deep.bin", "a/one.txt", "top.txt"]
    assert (out / "a" / "b" / "c" / "deep.bin").read_bytes() == bytes(range(256)) * 4
    files = {f["path"]: f for f in run.report["outputs"]["files"]}
    assert set(files) == {"a/b/c/deep.bin", "a/one.txt", "top.txt"}
    for rel, f in files.items():
        host = out / rel
        assert f["size"] == host.stat().st_size
        assert f["sha256"] == sha256_file(host)
        # The supervisor, not the sandbox, owns what lands on the host.
        assert host.stat().st_uid == os.geteuid()
        assert host.stat().st_mode & 0o7777 == 0o644
    assert run.report["outputs"]["bytes"] == 3 + 1 + 1024
    assert run.report["outputs"]["skipped"] == []
    assert run.report["outputs"]["limit_hit"] is False


def test_no_output_dir_means_not_collected(sandcell):
    run = ok(sandcell(code="open('/output/x.txt', 'w').write('x')"))
    assert run.report["outputs"]["collected"] is False
    assert run.report["outputs"]["files"] == []


# ------------------------------------------------------------------- values

def test_values_from_value_and_values_file(sandcell, tmp_path):
    vf = tmp_path / "values.json"
    vf.write_text(json.dumps({"config": {"layers": [1, {"deep": [None, True, 2.5]}],
                                         "name": "caf\u00e9"},
                              "threshold": 0.75}))
    run = ok(sandcell(opts=["--value", 'n=42', "--value", 'tags=["a", "b"]',
                            "--value", 'obj={"x": {"y": [1, 2, {"z": null}]}}',
                            "--values", str(vf)],
                      code=textwrap.dedent("""
        import json, sandcell
        print(json.dumps(dict(sandcell.values), sort_keys=True))
        try:
            sandcell.values["new"] = 1
            print("mutable")
        except TypeError:
            print("read-only")
    """)))
    lines = run.out.splitlines()
    assert json.loads(lines[0]) == {
        "n": 42, "tags": ["a", "b"], "obj": {"x": {"y": [1, 2, {"z": None}]}},
        "config": {"layers": [1, {"deep": [None, True, 2.5]}], "name": "caf\u00e9"},
        "threshold": 0.75,
    }
    assert lines[1] == "read-only"


def test_no_values_is_empty_mapping(sandcell):
    run = ok(sandcell(code="import sandcell; print(len(sandcell.values), dict(sandcell.inputs))"))
    assert run.out.strip() == "0 {}"


# ------------------------------------------------------------------- result

def test_result_nested_json_lands_in_report(sandcell):
    run = ok(sandcell(code=textwrap.dedent("""
        import sandcell
        sandcell.result({"rows": 10, "stats": {"mean": 1.5, "hist": [0, 1, [2, {"k": None}]]},
                         "ok": True, "label": "na\u00efve \u2713"})
    """)))
    assert run.report["result"] == {"rows": 10, "stats": {"mean": 1.5, "hist": [0, 1, [2, {"k": None}]]},
                                    "ok": True, "label": "na\u00efve \u2713"}
    assert run.report["result_error"] is None


def test_result_called_twice_last_wins(sandcell):
    run = ok(sandcell(code=textwrap.dedent("""
        import sandcell
        sandcell.result({"first": [1, 2, 3], "big": "x" * 1000})
        sandcell.result(["second", {"n": 2}])
    """)))
    assert run.report["result"] == ["second", {"n": 2}]
    assert run.report["result_error"] is None


def test_result_incomplete_trailing_record_is_ignored(sandcell):
    """The last *complete* record wins: a record cut off when the code
    ended does not replace it."""
    run = ok(sandcell(code=textwrap.dedent("""
        import os, sandcell
        sandcell.result({"complete": True})
        os.write(int(os.environ.get("SANDCELL_RESULT_FD", "3")), b'{"partial": ')
    """)))
    assert run.report["result"] == {"complete": True}
    assert run.report["result_error"] is None


@pytest.mark.parametrize("record", [b"{bad json}\n", b'{"a": 1, "a": 2}\n', b"[NaN]\n"],
                         ids=["malformed", "duplicate-key", "nan"])
def test_result_rejected_record(sandcell, record):
    run = ok(sandcell(code=textwrap.dedent("""
        import os
        os.write(int(os.environ.get("SANDCELL_RESULT_FD", "3")), %r)
    """ % record)))
    assert run.report["result"] is None
    assert isinstance(run.report["result_error"], str) and run.report["result_error"]


def test_no_result_is_null(sandcell):
    run = ok(sandcell(code="print('nothing published')"))
    assert run.report["result"] is None
    assert run.report["result_error"] is None


# -------------------------------------------------------------------- stdin

def test_stdin_passthrough(sandcell):
    data = b"line one\nline two\n\xff\x00binary\n" * 1000
    run = ok(sandcell(stdin=data, code=textwrap.dedent("""
        import hashlib, sys
        b = sys.stdin.buffer.read()
        print(len(b), hashlib.sha256(b).hexdigest())
    """)))
    assert run.out.split() == [str(len(data)), hashlib.sha256(data).hexdigest()]


def test_stdin_from_file(sandcell, tmp_path):
    data = os.urandom(3 << 20)  # several pipe buffers' worth
    f = tmp_path / "stdin.bin"
    f.write_bytes(data)
    run = ok(sandcell(opts=["--stdin", str(f)], stdin=b"not this",
                      code=textwrap.dedent("""
        import hashlib, sys
        b = sys.stdin.buffer.read()
        print(len(b), hashlib.sha256(b).hexdigest())
    """)))
    assert run.out.split() == [str(len(data)), hashlib.sha256(data).hexdigest()]


def test_code_that_ignores_stdin_still_finishes(sandcell, tmp_path):
    f = tmp_path / "stdin.bin"
    f.write_bytes(b"z" * (4 << 20))
    run = ok(sandcell(opts=["--stdin", str(f)], code="print('did not read stdin')", timeout=60))
    assert run.out == "did not read stdin\n"


# ------------------------------------------------------- argv, file and -c

def test_argv_with_inline_code(sandcell):
    run = ok(sandcell(code="import json, sys; print(json.dumps(sys.argv))",
                      args=["alpha", "two words", "--flag", ""]))
    assert json.loads(run.out) == ["-c", "alpha", "two words", "--flag", ""]


def test_script_file_argv_and_file(sandcell, tmp_path):
    script = tmp_path / "analysis.py"
    script.write_text(textwrap.dedent("""
        import json, os, sys
        print(json.dumps({"argv": sys.argv, "file": __file__, "name": __name__,
                          "exists": os.path.exists(__file__)}))
    """))
    run = ok(sandcell(file=script, args=["x", "--opt=1", "-v"]))
    got = last_json_line(run.out)
    assert got["argv"][1:] == ["x", "--opt=1", "-v"]
    assert os.path.basename(got["argv"][0]) == "analysis.py"
    assert got["file"] == got["argv"][0]
    assert got["name"] == "__main__"
    assert got["exists"] is True
    # The host path of the script is not what the sandbox sees.
    assert str(tmp_path) not in run.out


def test_inline_code_name_is_main(sandcell):
    run = ok(sandcell(code="print(__name__, '__file__' in globals())"))
    assert run.out == "__main__ False\n"


# ------------------------------------------------------- exit and signals

def test_exit_code_passthrough(sandcell):
    run = sandcell(code="import sys; print('bye'); sys.exit(7)")
    assert run.rc == 7, run
    assert run.status == "exited"
    assert run.report["exit_code"] == 7
    assert run.report["script"]["exit_code"] == 7
    assert run.report["script"]["signal"] is None
    assert run.out == "bye\n"
    assert "7" in run.report["reason"]


def test_unhandled_exception_exits_1(sandcell):
    run = sandcell(code="raise RuntimeError('kaput')")
    assert run.rc == 1, run
    assert run.status == "exited"
    assert run.report["script"]["exit_code"] == 1


def test_self_signal_sigterm(sandcell):
    run = sandcell(code="import os, signal; print('x', flush=True); os.kill(os.getpid(), signal.SIGTERM)")
    assert run.rc == 128 + 15, run
    assert run.status == "signaled"
    s = run.report["script"]
    assert s == {"started": True, "exit_code": None, "signal": 15, "signal_name": "SIGTERM"}
    assert run.report["exit_code"] == 143
    assert run.out == "x\n"


def test_self_signal_sigkill_is_not_a_limit(sandcell):
    run = sandcell(code="import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert run.rc == 128 + 9, run
    assert run.status == "signaled"
    assert run.report["script"]["signal_name"] == "SIGKILL"


# --------------------------------------------------------------- tracebacks

def test_traceback_shows_only_user_frames_script(sandcell, tmp_path):
    script = tmp_path / "fails.py"
    script.write_text(textwrap.dedent("""\
        def inner():
            raise ValueError("boom from user code")

        def outer():
            inner()

        outer()
    """))
    run = sandcell(file=script)
    assert run.rc == 1, run
    err = run.err
    assert err.startswith("Traceback (most recent call last):\n"), err
    assert "ValueError: boom from user code" in err
    frames = [l.strip() for l in err.splitlines() if l.strip().startswith("File ")]
    assert len(frames) == 3, err
    assert all("fails.py" in f for f in frames), err
    assert [f.split(" in ")[-1] for f in frames] == ["<module>", "outer", "inner"]
    assert "raise ValueError" in err  # the source line is shown
    assert "_sandcell_boot" not in err and "/.sandcell" not in err
    assert run.out == ""


def test_traceback_shows_only_user_frames_inline(sandcell):
    """-c code is "<cell>", and its source lines are shown as a file's are."""
    run = sandcell(code="x = 1\n1 / 0\n")
    assert run.rc == 1, run
    frames = [l.strip() for l in run.err.splitlines() if l.strip().startswith("File ")]
    assert frames == ['File "<cell>", line 2, in <module>'], run.err
    assert "    1 / 0\n" in run.err, run.err
    assert run.err.rstrip().endswith("ZeroDivisionError: division by zero")


def test_syntax_error_shows_no_sandcell_frames(sandcell):
    """python3 -c 'def (:' prints only the SyntaxError; the bootstrap that
    compiles the user's code must not appear in what the user sees."""
    run = sandcell(code="def (:\n")
    assert run.rc == 1, run
    assert "SyntaxError" in run.err
    assert "_sandcell_boot" not in run.err and "/.sandcell" not in run.err, run.err



def test_bootstrap_modules_ship_as_checked_bytecode(sandcell):
    """The sandbox's own modules come with pycs next to them (the
    interpreter then skips compiling them at every cold start): one per
    module but the bootstrap script, each a checked-hash pyc (PEP 552) for
    this interpreter whose hash is its source's, so a stale one would be
    recompiled, never run."""
    run = ok(sandcell(code=textwrap.dedent("""
        import importlib.util, json, os, sandcell, sys
        here = os.path.dirname(sandcell.__file__)
        cache = os.path.join(here, "__pycache__")
        out = {}
        for name in sorted(os.listdir(cache)):
            mod, tag, ext = name.rsplit(".", 2)
            with open(os.path.join(cache, name), "rb") as f:
                pyc = f.read()
            with open(os.path.join(here, mod + ".py"), "rb") as f:
                src = f.read()
            out[mod] = [tag == sys.implementation.cache_tag and ext == "pyc",
                        pyc[:4] == importlib.util.MAGIC_NUMBER,
                        int.from_bytes(pyc[4:8], "little") == 3,
                        pyc[8:16] == importlib.util.source_hash(src)]
        print(json.dumps(out))
    """)))
    got = last_json_line(run.out)
    assert sorted(got) == sorted(["sandcell", "sandcell_frames", "_sandcell_main", "_sandcell_io",
                                  "_sandcell_cell", "_sandcell_mpl", "_sandcell_session",
                                  "_sandcell_magic"]), got
    assert all(v == [True, True, True, True] for v in got.values()), got


# --------------------------------------------------------------- environment

def test_cwd_home_and_tmp(sandcell):
    run = ok(sandcell(code=textwrap.dedent("""
        import json, os, tempfile
        open("rel.txt", "w").write("x")
        print(json.dumps({"cwd": os.getcwd(), "home": os.environ.get("HOME"),
                          "expand": os.path.expanduser("~"), "tmpdir": tempfile.gettempdir(),
                          "rel": os.path.exists("/tmp/rel.txt"), "uid": os.getuid()}))
    """)))
    got = last_json_line(run.out)
    assert got == {"cwd": "/tmp", "home": "/tmp", "expand": "/tmp", "tmpdir": "/tmp",
                   "rel": True, "uid": got["uid"]}
    assert got["uid"] != 0


EXPECTED_ENV_KEYS = {
    "HOME", "TMPDIR", "USER", "LOGNAME", "PATH", "LANG", "LC_ALL", "TZ", "MPLBACKEND",
    "MPLCONFIGDIR", "XDG_CACHE_HOME", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
    "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "PYTHONDONTWRITEBYTECODE", "SANDCELL",
}


def test_environment_is_fixed_no_host_leak(sandcell, monkeypatch):
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    plain = ok(sandcell(code=code))
    monkeypatch.setenv("FOO_SECRET", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sandcell-canary-4f1d")
    monkeypatch.setenv("PYTHONPATH", "/sandcell-canary-path")
    monkeypatch.setenv("HOME", "/sandcell-canary-home")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    leaky = ok(sandcell(code=code))
    env = json.loads(leaky.out)
    assert "FOO_SECRET" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "PYTHONPATH" not in env
    assert "sandcell-canary" not in leaky.out
    assert env["HOME"] == "/tmp"
    # The same fixed environment whatever the caller's environment was.
    assert env == json.loads(plain.out)
    assert EXPECTED_ENV_KEYS <= set(env), EXPECTED_ENV_KEYS - set(env)
    # Anything beyond the documented set is sandcell's own plumbing.
    assert all(k.startswith("SANDCELL") for k in set(env) - EXPECTED_ENV_KEYS), env


# ------------------------------------------------------------- independence

def test_runs_are_independent(sandcell):
    first = ok(sandcell(code=textwrap.dedent("""
        import os
        open("/tmp/left-behind.txt", "w").write("from run 1")
        os.makedirs("/dev/shm/x", exist_ok=True)
        open("/output/also.txt", "w").write("x")
        print(sorted(os.listdir("/tmp")))
    """)))
    assert "left-behind.txt" in first.out
    second = ok(sandcell(code=textwrap.dedent("""
        import json, os
        print(json.dumps({"tmp": os.path.exists("/tmp/left-behind.txt"),
                          "shm": os.listdir("/dev/shm"), "output": os.listdir("/output")}))
    """)))
    assert last_json_line(second.out) == {"tmp": False, "shm": [], "output": []}
