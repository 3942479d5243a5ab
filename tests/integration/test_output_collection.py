"""Collection of /output into --output: caps, special files, and what the
report says about every entry that was or was not copied; the --output
rule (a new or empty directory, nothing on the host ever replaced); what a
cap keeps is the same whatever order the code created its files in."""
import os
import random
import textwrap

import pytest

from harness import EXIT_USAGE, LiveRun, host_files, sha256_file
from .test_report_schema import check_refusal


def skipped(run):
    return {s["path"]: s["reason"] for s in run.report["outputs"]["skipped"]}


def assert_files_match_host(run, out):
    """Every file the report lists is on the host with that size and hash,
    and nothing else is."""
    files = run.report["outputs"]["files"]
    assert sorted(f["path"] for f in files) == host_files(out)
    for f in files:
        assert f["size"] == (out / f["path"]).stat().st_size
        assert f["sha256"] == sha256_file(out / f["path"])
    assert run.report["outputs"]["bytes"] == sum(f["size"] for f in files)


def test_output_files_cap(sandcell, tmp_path):
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out), "--output-files", "5"], code=textwrap.dedent("""
        for i in range(20):
            with open("/output/f%02d.txt" % i, "w") as f:
                f.write("file %d\\n" % i)
        print("wrote 20")
    """))
    assert run.rc == 0, run
    assert run.status == "output-limit", run
    assert run.report["exit_code"] == 0
    assert run.out == "wrote 20\n"
    o = run.report["outputs"]
    assert o["collected"] is True
    assert o["limit_hit"] is True
    assert len(o["files"]) == 5
    assert len(host_files(out)) == 5
    assert_files_match_host(run, out)
    sk = skipped(run)
    assert len(sk) == 15 and o["skipped_total"] == 15
    assert set(sk.values()) == {"file limit"}
    # The first five in name order are kept, the rest listed in order.
    assert [f["path"] for f in o["files"]] == ["f%02d.txt" % i for i in range(5)]
    assert [s["path"] for s in o["skipped"]] == ["f%02d.txt" % i for i in range(5, 20)]
    assert "outputs" in run.report["truncations"]
    assert run.report["limits"]["output_files"] == 5
    assert run.report["reason"]
    assert "sandcell: output-limit" in run.err


def test_output_bytes_cap(sandcell, tmp_path):
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out), "--output-bytes", "10K"], code=textwrap.dedent("""
        for i in range(5):
            with open("/output/blob%d.bin" % i, "wb") as f:
                f.write(bytes([i]) * 4096)
    """))
    assert run.rc == 0, run
    assert run.status == "output-limit", run
    o = run.report["outputs"]
    assert o["limit_hit"] is True
    assert o["bytes"] <= 10 * 1024
    assert len(o["files"]) == 2
    assert_files_match_host(run, out)
    sk = skipped(run)
    assert len(sk) == 3 and set(sk.values()) == {"byte limit"}
    assert "outputs" in run.report["truncations"]
    assert run.report["limits"]["output_bytes"] == 10 * 1024


def test_oversized_file_is_not_partially_copied(sandcell, tmp_path):
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out), "--output-bytes", "1K"], code=textwrap.dedent("""
        open("/output/small.txt", "w").write("small")
        open("/output/huge.bin", "wb").write(b"h" * 5000)
    """))
    assert run.status == "output-limit", run
    assert skipped(run).get("huge.bin") == "byte limit"
    assert host_files(out) == ["small.txt"]
    assert_files_match_host(run, out)


def test_symlink_to_host_file_is_skipped(sandcell, tmp_path):
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out)], code=textwrap.dedent("""
        import os
        os.symlink("/etc/passwd", "/output/passwd")
        os.symlink("/etc", "/output/etcdir")
        os.makedirs("/output/sub")
        os.symlink("../../../../etc/passwd", "/output/sub/rel")
        open("/output/real.txt", "w").write("real")
    """))
    assert run.rc == 0, run
    assert run.status == "ok", run  # skipping a symlink is not a cap
    sk = skipped(run)
    assert sk == {"passwd": "symlink", "etcdir": "symlink", "sub/rel": "symlink"}
    assert run.report["outputs"]["limit_hit"] is False
    for name in ("passwd", "etcdir", "sub/rel"):
        assert not os.path.lexists(out / name), name
    assert host_files(out) == ["real.txt"]
    assert_files_match_host(run, out)


def test_fifo_in_output_does_not_hang(sandcell, tmp_path):
    """A FIFO in /output is never opened by the collector.  Creating one
    may itself be refused by the sandbox (mknod is a special-file
    syscall); either way the run ends and no FIFO reaches the host."""
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out)], timeout=60, code=textwrap.dedent("""
        import errno, os
        try:
            os.mkfifo("/output/pipe")
            print("created")
        except OSError as e:
            print("refused", errno.errorcode[e.errno])
        open("/output/after.txt", "w").write("after")
    """))
    assert run.rc == 0, run
    assert run.status == "ok", run
    assert not os.path.lexists(out / "pipe")
    assert host_files(out) == ["after.txt"]
    if run.out == "created\n":
        assert skipped(run) == {"pipe": "fifo"}
    else:
        assert run.out == "refused EPERM\n", run
        assert skipped(run) == {}


def test_unix_socket_in_output_is_skipped(sandcell, tmp_path):
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out)], timeout=60, code=textwrap.dedent("""
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("/output/sock")
        s.listen(1)
        open("/output/data.txt", "w").write("data")
    """))
    assert run.rc == 0, run
    assert skipped(run) == {"sock": "socket"}
    assert not os.path.lexists(out / "sock")
    assert host_files(out) == ["data.txt"]


def test_unsafe_names_are_skipped(sandcell, tmp_path):
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out)], code=textwrap.dedent("""
        open("/output/bad\\nname.txt", "w").write("x")
        open(b"/output/\\xff\\xfe.bin", "w").write("x")
        open("/output/ok-name_1.txt", "w").write("x")
    """))
    assert run.rc == 0, run
    reasons = list(skipped(run).values())
    assert reasons == ["unsafe name", "unsafe name"], run.report["outputs"]
    # Shown escaped, never as raw control bytes.
    for p in skipped(run):
        assert "\n" not in p and "\\x" in p
    assert host_files(out) == ["ok-name_1.txt"]


def test_depth_cap(sandcell, tmp_path):
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out)], code=textwrap.dedent("""
        import os
        p = "/output" + "/d" * 40
        os.makedirs(p)
        open(p + "/deep.txt", "w").write("deep")
        open("/output/shallow.txt", "w").write("shallow")
    """))
    assert run.rc == 0, run
    assert run.status == "output-limit", run
    assert "depth limit" in skipped(run).values()
    assert run.report["outputs"]["limit_hit"] is True
    assert "shallow.txt" in host_files(out)
    assert not any(p.endswith("deep.txt") for p in host_files(out))


@pytest.mark.parametrize("plant", ["file", "symlink", "dir", "dotfile"])
def test_nonempty_output_dir_is_refused(sandcell, tmp_path, plant):
    """--output must name a new or empty directory: anything in it (even a
    symlink to a host file, even a dot file) refuses the run up front, a
    usage error; nothing runs and the host entry stays as it was."""
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    if plant == "file":
        (out / "result.txt").write_text("old contents")
    elif plant == "symlink":
        os.symlink(victim, out / "result.txt")
    elif plant == "dir":
        (out / "result.txt").mkdir()
    else:
        (out / ".keep").write_text("")
    run = sandcell(opts=["--output", str(out)],
                   code="open('/output/result.txt', 'w').write('overwritten?'); print('ran')")
    assert run.rc == EXIT_USAGE, run
    check_refusal(run.report, "usage-error")
    assert "not empty" in run.report["reason"], run.report
    assert run.stdout == b""
    assert victim.read_text() == "precious"
    if plant == "file":
        assert (out / "result.txt").read_text() == "old contents"
    elif plant == "symlink":
        assert os.path.islink(out / "result.txt")
    assert len(os.listdir(out)) == 1


def test_empty_existing_output_dir_is_used(sandcell, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run = sandcell(opts=["--output", str(out)], code="open('/output/r.txt', 'w').write('new')")
    assert run.rc == 0 and run.status == "ok", run
    assert (out / "r.txt").read_text() == "new"
    assert_files_match_host(run, out)


def test_names_taken_on_the_host_during_the_run_are_skipped(tmp_path):
    """Something on the host writes into the (empty) output directory
    while the run goes on: a name it took is never replaced, written
    through or merged into; the entry is skipped, reason "exists", the
    rest is collected, the status is the run's own."""
    out = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    live = LiveRun(textwrap.dedent("""
        import os, sys
        for name in ("r.txt", "link.txt", "fresh.txt"):
            open("/output/" + name, "w").write("from the run")
        os.makedirs("/output/d")
        open("/output/d/x", "w").write("from the run")
        print("ready", flush=True)
        sys.stdin.read()
    """), opts=["--output", str(out)])
    assert live.first == b"ready\n", live.finish()
    (out / "r.txt").write_text("host's own")
    os.symlink(victim, out / "link.txt")
    (out / "d").mkdir()
    (out / "d" / "keep").write_text("host's own")
    r = live.finish()
    assert r.rc == 0 and r.status == "ok", r
    o = r.report["outputs"]
    assert {s["path"]: s["reason"] for s in o["skipped"]} == \
        {"r.txt": "exists", "link.txt": "exists", "d": "exists"}, o
    assert o["limit_hit"] is False
    assert [f["path"] for f in o["files"]] == ["fresh.txt"], o
    assert (out / "r.txt").read_text() == "host's own"
    assert os.path.islink(out / "link.txt") and victim.read_text() == "precious"
    assert os.listdir(out / "d") == ["keep"]
    assert (out / "fresh.txt").read_text() == "from the run"


# Depth first, each directory in byte order of its names.
ORDERED = ["0.txt", "A.txt", "B/1.txt", "B/2.txt", "B/C/deep.txt", "Z.txt", "_.txt", "a.txt",
           "b/x.txt", "\u00e9t\u00e9.txt"]


@pytest.mark.parametrize("order", ["forward", "reverse", "shuffled"])
@pytest.mark.parametrize("cap", [1, 4, 7])
def test_cap_keeps_the_first_in_name_order(sandcell, tmp_path, order, cap):
    """When the file cap stops collection, the files kept are the first in
    the walk's order (depth first, names in byte order), whatever order the
    code created them in; the rest are listed, in that order."""
    names = list(ORDERED)
    if order == "reverse":
        names.reverse()
    elif order == "shuffled":
        random.Random(cap).shuffle(names)
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out), "--output-files", str(cap)], code=textwrap.dedent("""
        import os
        for p in %r:
            os.makedirs(os.path.dirname("/output/" + p), exist_ok=True)
            open("/output/" + p, "w").write(p)
    """ % names))
    assert run.rc == 0 and run.status == "output-limit", run
    o = run.report["outputs"]
    assert [f["path"] for f in o["files"]] == ORDERED[:cap], o
    assert [s["path"] for s in o["skipped"]] == ORDERED[cap:], o
    assert o["skipped_total"] == len(ORDERED) - cap
    assert host_files(out) == sorted(ORDERED[:cap])
    assert_files_match_host(run, out)


def test_byte_cap_keeps_what_fits_in_name_order(sandcell, tmp_path):
    """The byte cap goes through the same order: each file that still fits
    is kept, one that does not is skipped (a later, smaller one may fit)."""
    out = tmp_path / "out"
    sizes = {"e": 100, "d": 600, "c": 300, "b": 500, "a": 200}
    run = sandcell(opts=["--output", str(out), "--output-bytes", "1000"], code=textwrap.dedent("""
        for n, size in %r.items():
            open("/output/" + n, "wb").write(b"x" * size)
    """ % sizes))
    assert run.status == "output-limit", run
    o = run.report["outputs"]
    # a 200, b 700, c 1000, d over, e over.
    assert [f["path"] for f in o["files"]] == ["a", "b", "c"], o
    assert skipped(run) == {"d": "byte limit", "e": "byte limit"}
    assert o["bytes"] == 1000


def test_exited_beats_output_limit(sandcell, tmp_path):
    """docs/report.md precedence: exited (7) before output-limit (8); the
    cut is still reported in outputs and truncations."""
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out), "--output-files", "1"], code=textwrap.dedent("""
        import sys
        for i in range(3):
            open("/output/f%d" % i, "w").write("x")
        sys.exit(3)
    """))
    assert run.rc == 3, run
    assert run.status == "exited", run
    assert run.report["outputs"]["limit_hit"] is True
    assert "outputs" in run.report["truncations"]
    assert len(host_files(out)) == 1
    assert list(skipped(run).values()) == ["file limit", "file limit"]


def test_signaled_beats_result_limit(sandcell):
    """docs/report.md precedence: signaled (6) before output-limit (8)."""
    run = sandcell(opts=["--result-limit", "1K"], code=textwrap.dedent("""
        import os, signal, sandcell
        sandcell.result("x" * 4000)
        os.kill(os.getpid(), signal.SIGTERM)
    """))
    assert run.rc == 128 + 15, run
    assert run.status == "signaled", run
    assert run.report["truncations"] == ["result"]
    assert run.report["result"] is None and run.report["result_error"]
