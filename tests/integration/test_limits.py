"""Resource limits: each one stops (or caps) the code with the documented
status, exit code and reason, the report echoes the configured limit, and
the host is left clean (host_postconditions)."""
import textwrap

import pytest

from harness import EXIT_CPU, EXIT_DISK, EXIT_MEMORY, EXIT_TIMEOUT, assert_limit_stop, host_files, \
    last_json_line, sha256_file

MiB = 1 << 20


# ---------------------------------------------------------------- wall time

@pytest.mark.parametrize("code", ["while True: pass", "import time; time.sleep(100)"],
                         ids=["busy", "sleep"])
def test_wall_time(sandcell, host_postconditions, code):
    run = sandcell(opts=["--wall-time", "1"], code=code, timeout=60)
    assert_limit_stop(run, "timeout", EXIT_TIMEOUT, ["wall"])
    assert run.report["limits"]["wall_sec"] == 1.0
    wall = run.report["time"]["wall_sec"]
    assert 0.9 <= wall < 10, wall
    assert run.report["script"]["exit_code"] is None


def test_wall_time_fraction(sandcell, host_postconditions):
    run = sandcell(opts=["--wall-time", "0.5"], code="while True: pass", timeout=60)
    assert_limit_stop(run, "timeout", EXIT_TIMEOUT, ["wall"])
    assert run.report["limits"]["wall_sec"] == 0.5
    assert run.report["time"]["wall_sec"] < 10


def test_timeout_script_object_names_the_kill(sandcell, host_postconditions):
    """docs/report.md's own timeout example: the script object says the
    code was killed by SIGKILL ("signal": 9, "signal_name": "SIGKILL")."""
    run = sandcell(opts=["--wall-time", "1"], code="import time; time.sleep(100)", timeout=60)
    assert run.status == "timeout", run
    assert run.report["script"] == {"started": True, "exit_code": None, "signal": 9,
                                    "signal_name": "SIGKILL"}, run.report["script"]


def test_wall_time_kills_whole_tree(sandcell, host_postconditions):
    """Children (and grandchildren in a new session) go down with the run."""
    run = sandcell(opts=["--wall-time", "1"], timeout=60, code=textwrap.dedent("""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"],
                         start_new_session=True)
        time.sleep(1000)
    """))
    assert_limit_stop(run, "timeout", EXIT_TIMEOUT, ["wall"])


# ----------------------------------------------------------------- CPU time

def test_cpu_time(sandcell, host_postconditions):
    run = sandcell(opts=["--cpu-time", "1"], code="while True: pass", timeout=60)
    assert_limit_stop(run, "cpu-time", EXIT_CPU, ["cpu"])
    assert run.report["limits"]["cpu_sec"] == 1.0
    assert run.report["time"]["cpu_sec"] >= 0.9, run.report["time"]
    assert run.report["time"]["wall_sec"] < 10


def test_cpu_time_counts_the_whole_tree(sandcell, host_postconditions, tmp_path):
    """Two busy processes share one CPU budget: neither alone reaches the
    limit before the run as a whole does."""
    script = tmp_path / "burn.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing

        def burn(_):
            while True:
                pass

        if __name__ == "__main__":
            procs = [multiprocessing.Process(target=burn, args=(i,)) for i in range(2)]
            for p in procs: p.start()
            burn(None)
    """))
    run = sandcell(opts=["--cpu-time", "1.5", "--wall-time", "30"], file=script, timeout=60)
    assert_limit_stop(run, "cpu-time", EXIT_CPU, ["cpu"])
    assert run.report["time"]["cpu_sec"] >= 1.4, run.report["time"]
    # Three burners on at most two cores: the budget is spent in well
    # under the per-process time it would take one of them alone.
    assert run.report["time"]["wall_sec"] < 10


# ------------------------------------------------------------------- memory

MEMORY_HOG = textwrap.dedent("""
    b = bytearray(500 * 1024 * 1024)
    for i in range(0, len(b), 4096):
        b[i] = 1
    print("survived")
""")


def test_memory(sandcell, host_postconditions):
    run = sandcell(opts=["--memory", "100M"], code=MEMORY_HOG, timeout=60)
    assert_limit_stop(run, "memory", EXIT_MEMORY, ["memory"])
    assert run.report["limits"]["memory_bytes"] == 100 * MiB
    assert "survived" not in run.out
    peak = run.report["memory"]["peak_bytes"]
    assert 0 < peak <= 100 * MiB + MiB, peak


def test_child_oom_then_clean_exit_is_memory(sandcell, host_postconditions):
    """An OOM kill anywhere in the run's cgroup is the cause, even when the
    script itself then exits 0 (docs/report.md: memory before ok)."""
    run = sandcell(opts=["--memory", "64M"], timeout=60, code=textwrap.dedent("""
        import subprocess, sys
        hog = "b = bytearray(300 << 20)\\nfor i in range(0, len(b), 4096): b[i] = 1"
        p = subprocess.run([sys.executable, "-c", hog])
        print("worker", p.returncode, flush=True)
    """))
    assert_limit_stop(run, "memory", EXIT_MEMORY, ["memory"])


def test_child_oom_then_hang(sandcell, host_postconditions):
    """A worker is OOM-killed while its parent would hang until the wall
    clock.  One OOM kill ends the whole run (cgroup v2 memory.oom.group; on
    v1 the supervisor does the same), so the status is memory, not timeout,
    whether or not the parent got to print first."""
    run = sandcell(opts=["--memory", "64M", "--wall-time", "20"], timeout=60, code=textwrap.dedent("""
        import subprocess, sys, time
        hog = "b = bytearray(300 << 20)\\nfor i in range(0, len(b), 4096): b[i] = 1"
        p = subprocess.run([sys.executable, "-c", hog])
        print("worker", p.returncode, flush=True)
        time.sleep(100)
    """))
    assert run.out in ("", "worker -9\n"), run
    assert_limit_stop(run, "memory", EXIT_MEMORY, ["memory"])
    assert run.report["time"]["wall_sec"] < 15, run


# --------------------------------------------------------------------- pids

def test_pids_fork_bomb_is_capped(sandcell, host_postconditions):
    code = textwrap.dedent("""
        import errno, json, os
        r, w = os.pipe()
        kids, eagain, other = [], 0, []
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    eagain += 1
                    continue
                other.append(e.errno)
                break
            if pid == 0:
                os.close(w)
                os.read(r, 1)       # hold the pid until the parent lets go
                os._exit(0)
            kids.append(pid)
        os.close(w)                 # every child now sees EOF and exits
        for k in kids:
            os.waitpid(k, 0)
        print(json.dumps({"kids": len(kids), "eagain": eagain, "other": other}))
    """)
    run = sandcell(opts=["--pids", "16"], code=code, timeout=60)
    assert run.rc == 0, run
    assert run.status in ("ok", "exited"), run
    assert run.report["limits"]["pids"] == 16
    got = last_json_line(run.out)
    assert got["other"] == []
    assert got["eagain"] > 0, got
    # 16 tasks in all, the code itself and sandcell's init among them.
    assert 1 <= got["kids"] < 16, got
    # The host is fine: it can still start a run right after.
    after = sandcell(code="print('still alive')")
    assert after.rc == 0 and after.out == "still alive\n", after


# --------------------------------------------------------------------- disk

def test_disk_many_files_enospc(sandcell, host_postconditions):
    run = sandcell(opts=["--disk", "8M"], timeout=60, code=textwrap.dedent("""
        import errno, sys
        written = 0
        try:
            for i in range(50):
                with open("/tmp/chunk%02d" % i, "wb") as f:
                    f.write(b"x" * (1 << 20))
                written += 1
        except OSError as e:
            print("errno", errno.errorcode[e.errno], written, flush=True)
            raise
    """))
    assert_limit_stop(run, "disk", EXIT_DISK, ["disk"])
    assert run.report["limits"]["disk_bytes"] == 8 * MiB
    words = run.out.split()
    assert words[:2] == ["errno", "ENOSPC"], run
    assert int(words[2]) <= 8
    assert "OSError" in run.err


def test_disk_one_big_file_in_output(sandcell, host_postconditions, tmp_path):
    out = tmp_path / "out"
    run = sandcell(opts=["--disk", "8M", "--output", str(out)], timeout=60, code=textwrap.dedent("""
        import errno
        try:
            with open("/output/big.bin", "wb") as f:
                for i in range(50):
                    f.write(b"y" * (1 << 20))
        except OSError as e:
            print(errno.errorcode[e.errno], flush=True)
            raise SystemExit(1)
    """))
    assert_limit_stop(run, "disk", EXIT_DISK, ["disk"])
    assert run.out.strip() in ("ENOSPC", "EFBIG"), run
    # What was written is still collected, within the byte cap.
    for f in run.report["outputs"]["files"]:
        assert f["size"] <= 8 * MiB


# -------------------------------------------------------------------- files

@pytest.mark.parametrize("limit", [32, 100])
def test_open_files_limit(sandcell, limit):
    run = sandcell(opts=["--files", str(limit)], code=textwrap.dedent("""
        import errno, json
        fs = []
        try:
            while True:
                fs.append(open("/dev/null"))
        except OSError as e:
            print(json.dumps({"errno": errno.errorcode[e.errno], "opened": len(fs)}))
    """))
    assert run.rc == 0, run
    assert run.status == "ok", run
    assert run.report["limits"]["open_files"] == limit
    got = last_json_line(run.out)
    assert got["errno"] == "EMFILE"
    assert limit - 10 <= got["opened"] < limit, got


# ------------------------------------------------------------------ streams

@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_stream_limit_truncates_with_marker(sandcell, stream):
    run = sandcell(opts=["--stdout-limit", "1K"], code=textwrap.dedent("""
        import sys
        sys.%s.write("z" * 100000)
        sys.%s.flush()
    """ % (stream, stream)))
    assert run.rc == 0, run
    assert run.status == "ok", run
    data = run.stdout if stream == "stdout" else run.stderr
    marker = "[sandcell: %s truncated" % stream
    text = data.decode()
    assert marker in text, text[-300:]
    head = text.split(marker)[0]
    assert head.rstrip("\n") == "z" * 1024
    assert len(data) < 1024 + 200
    assert run.report["streams"][stream]["truncated"] is True
    other = "stderr" if stream == "stdout" else "stdout"
    assert run.report["streams"][other]["truncated"] is False
    assert run.report["truncations"] == [stream]
    assert run.report["limits"]["stream_bytes"] == 1024


def test_stream_limit_exact_fit_is_not_truncated(sandcell):
    run = sandcell(opts=["--stdout-limit", "1K"],
                   code="import sys; sys.stdout.write('a' * 1024)")
    assert run.rc == 0, run
    assert run.stdout == b"a" * 1024
    assert run.report["streams"]["stdout"] == {"bytes": 1024, "truncated": False}
    assert run.report["truncations"] == []


def test_stream_bytes_counts_what_was_passed_on(sandcell):
    """docs/report.md: streams.*.bytes is the number of bytes passed on to
    the caller, at most limits.stream_bytes."""
    run = sandcell(opts=["--stdout-limit", "1K"], code="print('q' * 100000)")
    assert run.status == "ok", run
    assert run.report["streams"]["stdout"]["truncated"] is True
    assert run.report["streams"]["stdout"]["bytes"] <= run.report["limits"]["stream_bytes"], \
        run.report["streams"]


# ------------------------------------------------------------------- result

def test_result_limit(sandcell):
    run = sandcell(opts=["--result-limit", "1K"],
                   code="import sandcell; sandcell.result({'blob': 'x' * 5000}); print('done')")
    assert run.rc == 0, run
    assert run.status == "output-limit", run
    assert run.report["exit_code"] == 0
    assert run.report["result"] is None
    assert run.report["result_error"], run.report
    assert "limit" in run.report["result_error"]
    assert "result" in run.report["truncations"]
    assert run.report["limits"]["result_bytes"] == 1024
    assert run.report["reason"]
    assert run.out == "done\n"


def test_result_within_limit(sandcell):
    run = sandcell(opts=["--result-limit", "1K"],
                   code="import sandcell; sandcell.result({'blob': 'x' * 900})")
    assert run.status == "ok", run
    assert run.report["result"] == {"blob": "x" * 900}


# ------------------------------------------- outputs survive a limit stop

PARTIAL = textwrap.dedent("""
    import os
    os.makedirs("/output/sub", exist_ok=True)
    with open("/output/partial.txt", "w") as f:
        f.write("written before the stop\\n")
    with open("/output/sub/more.txt", "w") as f:
        f.write("more\\n")
""")


@pytest.mark.parametrize("kind", ["timeout", "memory"])
def test_outputs_written_before_a_stop_are_collected(sandcell, host_postconditions, tmp_path, kind):
    out = tmp_path / "out"
    if kind == "timeout":
        opts, tail, status, rc = ["--wall-time", "1"], "while True: pass\n", "timeout", EXIT_TIMEOUT
    else:
        opts, tail, status, rc = ["--memory", "100M"], MEMORY_HOG, "memory", EXIT_MEMORY
    run = sandcell(opts=opts + ["--output", str(out)], code=PARTIAL + tail, timeout=60)
    assert run.status == status, run
    assert run.rc == rc
    assert host_files(out) == ["partial.txt", "sub/more.txt"]
    assert (out / "partial.txt").read_text() == "written before the stop\n"
    files = {f["path"]: f for f in run.report["outputs"]["files"]}
    assert set(files) == {"partial.txt", "sub/more.txt"}
    assert files["partial.txt"]["sha256"] == sha256_file(out / "partial.txt")
    assert run.report["outputs"]["collected"] is True


# ------------------------------------------------------------ limits echo

def test_report_echoes_all_limit_options(sandcell):
    run = sandcell(opts=["--wall-time", "20.5", "--cpu-time", "7", "--memory", "300M",
                         "--pids", "40", "--disk", "64M", "--files", "200",
                         "--stdout-limit", "3K", "--result-limit", "2K",
                         "--output-files", "9", "--output-bytes", "5M"],
                   code="print('limits')")
    assert run.status == "ok", run
    lim = run.report["limits"]
    assert lim["wall_sec"] == 20.5
    assert lim["cpu_sec"] == 7.0
    assert lim["memory_bytes"] == 300 * MiB
    assert lim["pids"] == 40
    assert lim["disk_bytes"] == 64 * MiB
    assert lim["open_files"] == 200
    assert lim["stream_bytes"] == 3 * 1024
    assert lim["result_bytes"] == 2 * 1024
    assert lim["output_files"] == 9
    assert lim["output_bytes"] == 5 * MiB


def test_report_default_limits(sandcell):
    run = sandcell(code="pass")
    lim = run.report["limits"]
    # The defaults printed by `sandcell --help`.
    assert (lim["wall_sec"], lim["cpu_sec"], lim["memory_bytes"], lim["pids"], lim["disk_bytes"],
            lim["open_files"], lim["stream_bytes"], lim["result_bytes"], lim["output_files"],
            lim["output_bytes"]) == (30.0, 30.0, 1 << 30, 128, 512 * MiB, 256, 8 * MiB, MiB,
                                     1000, 512 * MiB)


def test_limits_apply_inside(sandcell):
    """The configured limits are what the code itself observes."""
    run = sandcell(opts=["--files", "100", "--disk", "16M"], code=textwrap.dedent("""
        import json, os, resource
        st = os.statvfs("/tmp")
        print(json.dumps({"nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
                          "tmp_bytes": st.f_blocks * st.f_frsize}))
    """))
    assert run.status == "ok", run
    got = last_json_line(run.out)
    assert got["nofile"] == [100, 100]
    assert got["tmp_bytes"] == 16 * MiB
