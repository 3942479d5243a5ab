"""Attack rows H1-H12 (G9 safe output handling): a hostile /output tree.

The host collector must copy only regular files beneath the output
directory, follow no symlink of any kind, never open FIFOs, sockets or
devices, bound what it reads by what it actually reads (not st_size), give
every copy a fixed mode and the collector's ownership, and escape names in
the report.
"""
import errno
import os
import stat
import time

import pytest

from harness import EXIT_USAGE, LiveRun, case, probe, run, run_cli, skip_in_session

E = errno

HOSTILE = r'''
import socket, stat, time
os.chdir("/output")
res = {}
with open("plain.txt", "w") as f:
    f.write("hello")
LINKS = {"abs-link": "/etc/shadow", "rel-link": "../../../../../../etc/passwd",
         "root-dir-link": "/", "proc-self-root-link": "/proc/self/root/etc/passwd",
         "proc-1-root-link": "/proc/1/root", "proc-self-fd-link": "/proc/self/fd/0",
         "loop-a": "loop-b", "loop-b": "loop-a", "dangling": "/nonexistent/x",
         "input-link": "/input/data/a.txt", "tmp-link": "/tmp/secret.txt"}
with open("/tmp/secret.txt", "w") as f:
    f.write("scratch-secret")
for name, target in LINKS.items():
    os.symlink(target, name)
os.mkdir("sub")
os.symlink("..", "sub/up")
os.symlink("/etc", "sub/etc")
with open("sub/inner.txt", "w") as f:
    f.write("inner")
res["hardlink-input"] = oserr(os.link, "/input/data/a.txt", "hard-input")
res["hardlink-runtime"] = oserr(os.link, os.path.realpath("/usr/bin/python3"), "hard-python")
res["hardlink-etc"] = oserr(os.link, "/etc/passwd", "hard-passwd")
os.link("plain.txt", "plain-hardlink")
res["mkfifo"] = oserr(os.mkfifo, "fifo")
res["mknod-fifo"] = oserr(os.mknod, "fifo2", stat.S_IFIFO | 0o666)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("/output/sock")
s.listen(1)
with open("suid.bin", "w") as f:
    f.write("x")
os.chmod("suid.bin", 0o6777)
with open("private.txt", "w") as f:
    f.write("p")
os.chmod("private.txt", 0o000)
os.mkdir("locked-dir")
with open("locked-dir/f", "w") as f:
    f.write("l")
os.chmod("locked-dir", 0o000)
res["setxattr"] = oserr(os.setxattr, "plain.txt", "user.evil", b"1")
NAMES = {"newline": b"new\nline", "esc": b"esc\x1b[2Jclear", "osc52": b"osc\x1b]52;c;SGVsbG8=\x07",
         "invalid-utf8": b"invalid-\xff\xfe-utf8", "bidi": "bidi\u202eevil.txt".encode(),
         "del": b"del\x7fx", "c1": "c1\u0085x".encode()}
for k, n in NAMES.items():
    fd = os.open(b"/output/" + n, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, k.encode())
    os.close(fd)
for n in ("-rf", "--help", "   ", ".hidden"):
    with open(n, "w") as f:
        f.write(n)
# H9: a daemon that keeps swapping a regular file and a symlink to /etc
with open("flip.txt", "w") as f:
    f.write("SAFE")
os.symlink("/etc/passwd", "flip-link")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            sc(316, -100, b"/output/flip.txt", -100, b"/output/flip-link", 2)  # RENAME_EXCHANGE
    os._exit(0)
time.sleep(0.2)
emit(res)
'''

SYMLINKS = ["abs-link", "rel-link", "root-dir-link", "proc-self-root-link", "proc-1-root-link",
            "proc-self-fd-link", "loop-a", "loop-b", "dangling", "input-link", "tmp-link",
            "sub/up", "sub/etc"]
UNSAFE = ["newline", "esc", "osc52", "invalid-utf8", "bidi", "del", "c1"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile-out")
    indir = base / "in"
    indir.mkdir()
    (indir / "a.txt").write_text("input")
    out = base / "out"
    r, res = probe(HOSTILE, opts=["--input", "data=%s" % indir, "--output", str(out)])
    res["_run"] = r
    res["_out"] = out
    res["_skipped"] = {s["path"]: s["reason"] for s in r.report["outputs"]["skipped"]}
    res["_files"] = {f["path"]: f for f in r.report["outputs"]["files"]}
    host = {}
    for dirpath, dirnames, filenames in os.walk(out):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            host[os.path.relpath(p, out)] = os.lstat(p)
    res["_host"] = host
    return res


def test_G9_run_finishes_ok(host_postconditions, hostile):
    r = hostile["_run"]
    assert r.status == "ok", r
    assert r.report["outputs"]["collected"] is True
    assert r.report["time"]["wall_sec"] < 10


@pytest.mark.parametrize("name", [case("G9", "symlink-" + n.replace("/", "-"), n) for n in SYMLINKS])
def test_symlink_not_followed(host_postconditions, hostile, name):
    """H1/H2: every symlink (absolute, relative ../ chains, to /, through
    /proc magic links, loops, dangling, to inputs or scratch, inside
    subdirectories) is recorded as skipped and nothing is created for it
    on the host."""
    assert hostile["_skipped"].get(name) == "symlink"
    assert name not in hostile["_host"]


def test_G9_host_tree_has_only_regular_files_and_dirs(host_postconditions, hostile):
    """H4/H5: the host copy holds only regular files (0644) and
    directories (0755), owned by the collector."""
    assert hostile["_host"], "nothing collected"
    for p, st in hostile["_host"].items():
        assert stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode), p
        assert stat.S_IMODE(st.st_mode) == (0o755 if stat.S_ISDIR(st.st_mode) else 0o644), p
        assert st.st_uid == os.geteuid(), p


def test_G9_no_host_content_pulled_in(host_postconditions, hostile):
    """No collected file carries host or scratch content reached through a
    link: every file's content is one the code wrote in /output."""
    with open("/etc/passwd", "rb") as f:
        passwd = f.read()
    for p, st in hostile["_host"].items():
        if stat.S_ISREG(st.st_mode):
            data = (hostile["_out"] / p).read_bytes()
            assert data != passwd and b"root:x:0:0" not in data, p
            assert data != b"scratch-secret" and data != b"input", p


@skip_in_session("a session collects each cell's /output while the sandbox lives (docs/sessions.md, Outbox): "
                 "the daemon may still flip the names; that no symlink is followed holds (test_symlink_not_followed)")
def test_G9_flipping_symlink_daemon_is_dead_before_collection(host_postconditions, hostile):
    """H9: a daemon swapping a file with a symlink to /etc/passwd
    (RENAME_EXCHANGE) is dead before collection: whichever name holds the
    regular file is copied with its own content, the other is skipped."""
    files = {p for p in ("flip.txt", "flip-link") if p in hostile["_files"]}
    skipped = {p for p in ("flip.txt", "flip-link") if hostile["_skipped"].get(p) == "symlink"}
    assert len(files) == 1 and len(skipped) == 1, (files, skipped)
    assert (hostile["_out"] / files.pop()).read_bytes() == b"SAFE"


@pytest.mark.parametrize("key,expected", [
    case("G9", "hardlink-input-EXDEV", "hardlink-input", E.EXDEV),
    case("G9", "hardlink-runtime-EXDEV", "hardlink-runtime", E.EXDEV),
    case("G9", "hardlink-etc-EXDEV", "hardlink-etc", E.EXDEV),
    case("G9", "mkfifo-EPERM", "mkfifo", E.EPERM),
    case("G9", "mknod-fifo-EPERM", "mknod-fifo", E.EPERM),
    case("G9", "setxattr-EPERM", "setxattr", E.EPERM),
])
def test_hostile_entry_creation(host_postconditions, hostile, key, expected):
    """H3/H4/H5: hard links to files outside scratch cross a mount (EXDEV);
    FIFOs and xattrs are denied by the filter."""
    assert hostile[key] == expected, errno.errorcode.get(hostile[key], hostile[key])


def test_G9_socket_skipped(host_postconditions, hostile):
    """H4: a bound unix socket is skipped, never opened."""
    assert hostile["_skipped"].get("sock") == "socket"
    assert "sock" not in hostile["_host"]


def test_G9_setuid_mode_not_copied(host_postconditions, hostile):
    """H5: chmod 6777 inside gives a plain 0644 copy."""
    st = hostile["_host"]["suid.bin"]
    assert stat.S_IMODE(st.st_mode) == 0o644


def test_G9_internal_hardlink_is_plain_copy(host_postconditions, hostile):
    """A hard link inside /output is two independent regular files."""
    a, b = hostile["_host"]["plain.txt"], hostile["_host"]["plain-hardlink"]
    assert a.st_ino != b.st_ino and a.st_nlink == 1 and b.st_nlink == 1


def test_G9_unreadable_entries_do_not_break_collection(host_postconditions, hostile):
    """Mode 000 files and directories are skipped or copied, never fatal."""
    for p in ("private.txt", "locked-dir"):
        assert p in hostile["_skipped"] or p in hostile["_host"], p


@pytest.mark.parametrize("kind", [case("G9", "name-" + k, k) for k in UNSAFE])
def test_unsafe_name_skipped_and_escaped(host_postconditions, hostile, kind):
    """H8/H12: names with control bytes, ESC/OSC sequences, invalid UTF-8
    or bidi overrides are not created on the host and appear in the report
    only escaped (no raw control byte anywhere in the report)."""
    unsafe = [p for p, reason in hostile["_skipped"].items() if reason == "unsafe name"]
    prefix = {"newline": "new", "esc": "esc", "osc52": "osc", "invalid-utf8": "invalid-",
              "bidi": "bidi", "del": "del", "c1": "c1"}[kind]
    mine = [p for p in unsafe if p.startswith(prefix)]
    assert len(mine) == 1, unsafe
    shown = mine[0]
    assert "\\x" in shown
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e
                   for c in shown), repr(shown)
    for p in hostile["_host"]:
        assert not p.startswith(prefix), p


def test_G9_report_has_no_raw_control_bytes(host_postconditions, hostile):
    import json
    text = json.dumps(hostile["_run"].report, ensure_ascii=False)
    assert not any(ord(c) < 0x20 and c not in "\n" for c in text)
    assert "\x1b" not in text and "\u202e" not in text


@pytest.mark.parametrize("name", [case("G9", "odd-but-safe-name" + n.replace(" ", "_"), n)
                                  for n in ("-rf", "--help", "   ", ".hidden")])
def test_odd_but_safe_names_copied_verbatim(host_postconditions, hostile, name):
    """H8: a leading dash or only spaces is harmless without a shell: the
    file is copied under exactly that name."""
    assert (hostile["_out"] / name).read_text() == name


def test_G9_many_tiny_files_capped(host_postconditions, tmp_path):
    """H7: 10^4 files; only --output-files are copied, the rest recorded as
    a limit (skip records are capped too), status output-limit."""
    out = tmp_path / "out"
    t0 = time.monotonic()
    r = run('''
os.mkdir("/output/many")
for i in range(10000):
    with open("/output/many/%05d" % i, "w") as f:
        f.write("x")
''', opts=["--output", str(out), "--output-files", "500"], prelude=False)
    assert r.status == "output-limit", r
    o = r.report["outputs"]
    assert len(o["files"]) == 500
    assert len(os.listdir(out / "many")) == 500
    assert o["limit_hit"] is True
    # Kept and listed: the first in name order (not the last created);
    # the listing is capped, the count is not.
    assert [f["path"] for f in o["files"]] == ["many/%05d" % i for i in range(500)]
    assert [s["path"] for s in o["skipped"]] == ["many/%05d" % i for i in range(500, 1500)]
    assert o["skipped_total"] == 9500
    assert "outputs" in r.report["truncations"]
    assert time.monotonic() - t0 < 30


def test_G9_deep_nesting_capped(host_postconditions, tmp_path):
    """H6: 200 nested directories: copied only to the depth cap, the rest
    recorded as a limit; no crash or hang."""
    out = tmp_path / "out"
    r = run('''
p = "/output"
for i in range(200):
    p += "/d"
    os.mkdir(p)
with open(p + "/bottom.txt", "w") as f:
    f.write("deep")
''', opts=["--output", str(out)], prelude=False)
    assert r.status == "output-limit", r
    assert any(s["reason"] == "depth limit" for s in r.report["outputs"]["skipped"])
    depth = max(len(os.path.relpath(d, out).split(os.sep)) for d, _, _ in os.walk(out))
    assert depth <= r.report["limits"]["output_depth"]
    assert not any("bottom.txt" in f["path"] for f in r.report["outputs"]["files"])


def test_G9_long_path_capped(host_postconditions, tmp_path):
    """H6: 255-byte names nested until the path is far beyond the cap."""
    out = tmp_path / "out"
    r = run('''
os.chdir("/output")
for i in range(12):
    n = ("%02d" % i) * 127 + "x"
    os.mkdir(n)
    os.chdir(n)
with open("f", "w") as f:
    f.write("x")
''', opts=["--output", str(out)], prelude=False)
    assert r.status == "output-limit", r
    assert any(s["reason"] in ("path too long", "depth limit") for s in r.report["outputs"]["skipped"])
    for d, _, files in os.walk(out):
        assert len(os.path.relpath(d, out)) <= 1024 + 256


def test_G9_sparse_and_large_files_capped_by_bytes_read(host_postconditions, tmp_path):
    """H7/G6r: a 1 TiB sparse file cannot even be made (RLIMIT_FSIZE); a
    sparse file larger than the byte cap is skipped without being read;
    a dense file over the cap is skipped; small files still come through."""
    out = tmp_path / "out"
    t0 = time.monotonic()
    r, res = probe('''
res = {}
open("/output/tib", "wb").close()
res["tib"] = oserr(os.truncate, "/output/tib", 1 << 40)
os.unlink("/output/tib")
with open("/output/sparse", "wb") as f:
    f.truncate(60 << 20)
with open("/output/dense", "wb") as f:
    f.write(b"y" * (2 << 20))
with open("/output/small", "wb") as f:
    f.write(b"z" * 100)
emit(res)
''', opts=["--output", str(out), "--disk", "64M", "--output-bytes", "1M"])
    assert res["tib"] == E.EFBIG
    assert r.status == "output-limit", r
    skipped = {s["path"]: s["reason"] for s in r.report["outputs"]["skipped"]}
    assert skipped.get("sparse") == "byte limit"
    assert skipped.get("dense") == "byte limit"
    assert not (out / "sparse").exists() and not (out / "dense").exists()
    assert (out / "small").read_bytes() == b"z" * 100
    assert r.report["outputs"]["bytes"] <= 1 << 20
    assert time.monotonic() - t0 < 20


def _hard_link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:  # another file system: the symlink cases still stand
        dst.write_text(src.read_text())


@pytest.mark.parametrize("plant", [case("G2", "output-dir-not-empty-" + k, k)
                                   for k in ("symlink", "hardlink", "file")])
def test_output_dir_with_host_entries_refused(host_postconditions, tmp_path, plant):
    """G2/G9: an --output directory that holds anything (a symlink or a
    hard link to a host file the code would like to overwrite) is refused
    before anything runs; the host file keeps its bytes."""
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    if plant == "symlink":
        os.symlink(victim, out / "x.txt")
    elif plant == "hardlink":
        _hard_link_or_copy(victim, out / "x.txt")
    else:
        (out / "x.txt").write_text("host's own")
    r = run_cli("open('/output/x.txt', 'w').write('pwned')", opts=["--output", str(out)], stdin=None,
                timeout=60)
    assert r.rc == EXIT_USAGE, r
    assert r.status == "usage-error" and r.report["script"]["started"] is False, r
    assert victim.read_text() == "precious"
    assert os.listdir(out) == ["x.txt"]


@skip_in_session("a session collects a cell into DIR/SEQ/, made when the cell ends: names planted in DIR "
                 "meet nothing (test_sessions.py::test_G9_planted_outbox_directory_is_not_written_through)")
def test_G2_names_planted_during_the_run_are_never_written(host_postconditions, tmp_path):
    """G2/G9: host entries that appear in the output directory while the
    run goes on (a symlink and a hard link to a host file, a directory, a
    FIFO) are neither replaced, written through, merged into nor opened:
    each is skipped ("exists"), and the host file keeps its bytes."""
    out = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    code = (
        "import os, sys\n"
        "for n in ('sym.txt', 'hard.txt', 'fifo.txt', 'ok.txt'):\n"
        "    open('/output/' + n, 'w').write('pwned')\n"
        "os.mkdir('/output/dir')\n"
        "open('/output/dir/x', 'w').write('pwned')\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n")
    live = LiveRun(code, opts=["--output", str(out)])
    assert live.first == b"ready\n", live.finish()
    os.symlink(victim, out / "sym.txt")
    _hard_link_or_copy(victim, out / "hard.txt")
    os.mkfifo(out / "fifo.txt")
    (out / "dir").mkdir()
    r = live.finish()
    assert r.status == "ok", r
    o = r.report["outputs"]
    assert {s["path"]: s["reason"] for s in o["skipped"]} == \
        {"sym.txt": "exists", "hard.txt": "exists", "fifo.txt": "exists", "dir": "exists"}, o
    assert [f["path"] for f in o["files"]] == ["ok.txt"]
    assert victim.read_text() == "precious"
    assert os.path.islink(out / "sym.txt") and stat.S_ISFIFO(os.lstat(out / "fifo.txt").st_mode)
    assert os.listdir(out / "dir") == []
