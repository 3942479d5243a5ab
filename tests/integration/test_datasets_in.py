"""Datasets handed in (--dataset NAME=FILE, the request's "dataset": true):
each is a read-only regular file at $SANDCELL_INPUT_DIR/.datasets/NAME
(/input/.datasets/NAME in full mode) with the host file's bytes, shown the
way inputs are (a per-run read-only overlay, nosuid, nodev, noexec), never
listed in sandcell.inputs; a dataset and an input may share a name; a
bad name, a directory, a missing file or a name given twice is a usage
error.  Cold and in reduced mode here; through a warm server of the
test's own in tests/warm/test_warm_datasets.py (and this whole module
through one with tests/warm/run-warm.sh).  The bytes are opaque to
sandcell (docs/datasets.md is the format the Python side reads), so
arbitrary bytes stand in for an archive."""
import hashlib
import json
import os
import shutil
import stat

import pytest

from harness import BIN, EXIT_USAGE, SERVER, load_report, run_cmd, without_userns
from .test_usage_errors import check_usage_error

# Every byte value, so that nothing on the way may treat the file as text.
BLOB = bytes(range(256)) * 64 + b"PK\x05\x06" + b"\x00" * 18

# Prints one JSON line: what the code sees of its inputs and datasets, and
# how each way of changing a dataset failed (errno name, or "ok" if it did
# not: the test fails then).
PROBE = r'''
import errno, hashlib, json, os, sandcell
root = os.environ.get("SANDCELL_INPUT_DIR", "/input")
ddir = os.path.join(root, ".datasets")
names = sorted(os.listdir(ddir)) if os.path.isdir(ddir) else None
seen = {}
for n in names or []:
    p = os.path.join(ddir, n)
    st = os.stat(p)
    with open(p, "rb") as f:
        seen[n] = {"sha": hashlib.sha256(f.read()).hexdigest(), "reg": os.path.isfile(p),
                   "mode": st.st_mode & 0o7777}
def attempt(fn, *a):
    try:
        fn(*a)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    return "ok"
changes = {}
for n in names or []:
    p = os.path.join(ddir, n)
    changes[n] = {
        "open-rw": attempt(lambda: os.close(os.open(p, os.O_RDWR))),
        "open-trunc": attempt(lambda: os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))),
        "append": attempt(lambda: os.close(os.open(p, os.O_WRONLY | os.O_APPEND))),
        "truncate": attempt(os.truncate, p, 0),
        "unlink": attempt(os.unlink, p),
        "rename": attempt(os.rename, p, p + ".moved"),
        "chmod": attempt(os.chmod, p, 0o777),
        "utime": attempt(os.utime, p, (0, 0)),
        "create-beside": attempt(lambda: os.close(os.open(os.path.join(ddir, "new"),
                                                          os.O_WRONLY | os.O_CREAT | os.O_EXCL))),
        "symlink-beside": attempt(os.symlink, "/etc/passwd", os.path.join(ddir, "ln")),
        "mkdir-beside": attempt(os.mkdir, os.path.join(ddir, "d")),
    }
if names is not None:
    changes[".datasets"] = {"rmdir": attempt(os.rmdir, ddir),
                            "rename": attempt(os.rename, ddir, os.path.join(root, "x"))}
mounts = {}
try:
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[4].startswith(ddir + "/"):
            mounts[f[4][len(ddir) + 1:]] = f[5].split(",")
except OSError:
    pass
print(json.dumps({"names": names, "seen": seen, "changes": changes, "mounts": mounts,
                  "inputs": sorted(sandcell.inputs), "root_list": sorted(os.listdir(root))}))
'''

REFUSED = {"EROFS", "EACCES", "EPERM"}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def probe_of(run):
    assert run.rc == 0, run
    return json.loads(run.out.strip().splitlines()[-1])


def check_read_only(got, names, full_mode=True):
    """Every change refused with EROFS/EACCES/EPERM; in full mode each
    dataset is its own read-only, nosuid, nodev, noexec mount."""
    assert got["names"] == sorted(names), got
    for n in names:
        for what, how in got["changes"][n].items():
            assert how in REFUSED, (n, what, how)
        assert got["seen"][n]["reg"] is True, got
    for what, how in got["changes"][".datasets"].items():
        assert how in REFUSED, (".datasets", what, how)
    if full_mode:
        assert sorted(got["mounts"]) == sorted(names), got["mounts"]
        for n, opts in got["mounts"].items():
            for o in ("ro", "nosuid", "nodev", "noexec"):
                assert o in opts, (n, opts)


def make_datasets(tmp_path):
    a = tmp_path / "sales.scf"
    a.write_bytes(BLOB)
    b = tmp_path / "other.scf"
    b.write_bytes(b"second dataset\n")
    # Writable by anyone on the host: only the sandbox may not change it.
    os.chmod(a, 0o666)
    return a, b


def check_host_unchanged(path, data, mode):
    st = os.stat(path)
    assert path.read_bytes() == data
    assert stat.S_IMODE(st.st_mode) == mode
    assert not os.path.exists(str(path) + ".moved")


# ------------------------------------------------------------------ cold

def test_dataset_appears_read_only_with_the_same_bytes(sandcell, tmp_path):
    a, b = make_datasets(tmp_path)
    run = sandcell(opts=["--dataset", "sales=%s" % a, "--dataset", "other=%s" % b], code=PROBE)
    got = probe_of(run)
    assert got["seen"]["sales"]["sha"] == sha(BLOB)
    assert got["seen"]["other"]["sha"] == sha(b"second dataset\n")
    check_read_only(got, ["sales", "other"])
    # Datasets are not inputs: sandcell.inputs does not list them (nor
    # the .datasets directory), the input directory holds only .datasets.
    assert got["inputs"] == [] and got["root_list"] == [".datasets"], got
    check_host_unchanged(a, BLOB, 0o666)


def test_dataset_and_input_may_share_a_name(sandcell, tmp_path):
    a, _ = make_datasets(tmp_path)
    csv = tmp_path / "sales.csv"
    csv.write_text("region,amount\nnorth,3\n")
    code = PROBE + ("print(open(sandcell.inputs['sales']).read(), end='')\n"
                    "print(sandcell.inputs['sales'])\n")
    run = sandcell(opts=["--input", "sales=%s" % csv, "--dataset", "sales=%s" % a], code=code)
    assert run.rc == 0, run
    lines = run.out.splitlines()
    got = json.loads(lines[0])
    assert got["seen"]["sales"]["sha"] == sha(BLOB)
    assert got["inputs"] == ["sales"] and got["root_list"] == [".datasets", "sales"], got
    assert lines[1:] == ["region,amount", "north,3", "/input/sales"], run


def test_no_datasets_no_directory(sandcell, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("x")
    got = probe_of(sandcell(opts=["--input", "in=%s" % f], code=PROBE))
    assert got["names"] is None and got["root_list"] == ["in"] and got["inputs"] == ["in"], got


def test_dataset_relative_path(sandcell, tmp_path):
    """A relative FILE is the caller's (cwd) file, as for --input."""
    a, _ = make_datasets(tmp_path)
    run = run_cmd([BIN, "run"] + (["--server", SERVER] if SERVER else []) +
                  ["--dataset", "sales=sales.scf", "-c", PROBE], stdin=None, cwd=str(tmp_path))
    assert probe_of(run)["seen"]["sales"]["sha"] == sha(BLOB)


def usage_cases(tmp_path):
    a, _ = make_datasets(tmp_path)
    d = tmp_path / "adir"
    d.mkdir()
    missing = tmp_path / "missing.scf"
    return {
        "twice": (["--dataset", "x=%s" % a, "--dataset", "x=%s" % a], ["dataset 'x' given twice"]),
        "directory": (["--dataset", "x=%s" % d], ["dataset 'x'", str(d), "not a regular file"]),
        "missing": (["--dataset", "x=%s" % missing], ["dataset 'x'", str(missing)]),
        "hidden-name": (["--dataset", ".x=%s" % a], ["--dataset", "'.'"]),
        "slash-name": (["--dataset", "a/b=%s" % a], ["--dataset", "'/'"]),
        "dotdot-name": (["--dataset", "..=%s" % a], ["--dataset", ".."]),
        "empty-name": (["--dataset", "=%s" % a], ["--dataset"]),
        "no-eq": (["--dataset", "x"], ["--dataset"]),
    }


USAGE = ["twice", "directory", "missing", "hidden-name", "slash-name", "dotdot-name", "empty-name",
         "no-eq"]


@pytest.mark.parametrize("case", USAGE)
def test_dataset_usage_errors(sandcell, tmp_path, case):
    opts, words = usage_cases(tmp_path)[case]
    run = sandcell(opts=opts, code="open('/tmp/x', 'w'); print('ran')")
    check_usage_error(run, *words)


def test_help_names_dataset():
    run = run_cmd([BIN, "--help"], stdin=None)
    assert run.rc == 0 and "--dataset NAME=FILE" in run.out and "/input/.datasets/NAME" in run.out


# --------------------------------------------------------------- reduced

@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare missing")
@pytest.mark.skipif(bool(SERVER), reason="reduced mode is forced on a cold supervisor (unshare)")
def test_reduced_mode_dataset(tmp_path):
    """Without user namespaces (tests/integration/test_reduced_mode.py):
    input/.datasets/NAME in the private directory, readable, and every
    change refused (Landlock, seccomp); a relative FILE works too."""
    a, b = make_datasets(tmp_path)
    csv = tmp_path / "in.csv"
    csv.write_text("k\n1\n")
    rpath = tmp_path / "r.json"
    run = run_cmd(without_userns([BIN, "run", "--allow-reduced", "--quiet", "--report", str(rpath),
                                  "--dataset", "sales=sales.scf", "--dataset", "other=%s" % b,
                                  "--input", "sales=%s" % csv, "-c", PROBE]),
                  stdin=None, cwd=str(tmp_path))
    rep = load_report(rpath)
    assert rep and rep["isolation"]["mode"] == "reduced", (run, rep)
    got = probe_of(run)
    assert got["seen"]["sales"]["sha"] == sha(BLOB)
    assert got["seen"]["other"]["sha"] == sha(b"second dataset\n")
    check_read_only(got, ["sales", "other"], full_mode=False)
    assert got["inputs"] == ["sales"] and got["root_list"] == [".datasets", "sales"], got
    check_host_unchanged(a, BLOB, 0o666)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare missing")
@pytest.mark.skipif(bool(SERVER), reason="reduced mode is forced on a cold supervisor (unshare)")
def test_reduced_mode_dataset_directory_refused(tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    run = run_cmd(without_userns([BIN, "run", "--allow-reduced", "--dataset", "x=%s" % d,
                                  "-c", "print('ran')"]), stdin=None, cwd=str(tmp_path))
    assert run.rc == EXIT_USAGE and "not a regular file" in run.err and b"ran" not in run.stdout, run
