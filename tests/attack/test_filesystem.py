"""Attack rows D1-D10 and C8 (G1 read confinement, G2 host integrity): the
inputs, runtime and synthetic files cannot be changed; only /tmp, /output
and /dev/shm are writable and none of them executable; nothing of the host
tree beyond the runtime is visible.

The host input files are made world-writable (0666, directory 0777) so
that file permissions alone would allow every write: only the sandbox's
layers (read-only bind, Landlock, seccomp) stand in the way, and the host
tree must be byte-identical afterwards.
"""
import errno
import os
import shutil

import pytest

from harness import case, probe, tree_digest

E = errno

CODE = r'''
import shutil, stat, subprocess, mmap
res = {}
def t(name, fn, *a, **k):
    res[name] = oserr(fn, *a, **k)
def openw(path, flags):
    fd = os.open(path, flags, 0o666)
    os.close(fd)
A = "/input/data/a.txt"
# ---- D1: inputs ----------------------------------------------------------
t("input-open-rw", openw, A, os.O_RDWR)
t("input-open-trunc", openw, A, os.O_WRONLY | os.O_TRUNC)
t("input-open-append", openw, A, os.O_WRONLY | os.O_APPEND)
t("input-single-file-open-rw", openw, "/input/single", os.O_RDWR)
t("input-create-in-dir", openw, "/input/data/new", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
t("input-create-in-input-root", openw, "/input/new", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
t("input-chmod", os.chmod, A, 0o777)
t("input-chown", os.chown, A, 1000, 1000)
t("input-utime", os.utime, A, (0, 0))
t("input-truncate", os.truncate, A, 0)
t("input-unlink", os.unlink, A)
t("input-rename-within", os.rename, A, "/input/data/b.txt")
t("input-rename-to-tmp", os.rename, A, "/tmp/a.txt")
t("input-rename-dir", os.rename, "/input/data/sub", "/input/data/sub2")
t("input-rmdir", os.rmdir, "/input/data/sub")
t("input-mkdir", os.mkdir, "/input/data/newdir")
t("input-symlink", os.symlink, "/etc/passwd", "/input/data/ln")
t("input-link-within", os.link, A, "/input/data/hard")
t("input-link-to-tmp", os.link, A, "/tmp/hard")
t("input-setxattr", os.setxattr, A, "user.x", b"1")
def mmap_shared_write():
    with open(A, "rb") as f:
        mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
t("input-mmap-shared-write", mmap_shared_write)
def dirty_pipe():
    # CVE-2022-0847 shape: prime a pipe's buffers, splice 1 byte of the
    # read-only file in, then write: a vulnerable kernel would write into
    # the page cache of the file.
    r, w = os.pipe()
    sz = 65536
    os.write(w, b"x" * sz)
    os.read(r, sz)
    fd = os.open(A, os.O_RDONLY)
    os.splice(fd, w, 1, offset_src=0)
    os.write(w, b"PWNED")
    os.close(fd)
t("input-dirty-pipe-splice", dirty_pipe)
# ---- D3/D7: runtime and synthetic files ------------------------------------
for name, path in [("root", "/"), ("usr", "/usr/lib"), ("etc", "/etc"), ("code", "/code"),
                   ("dot-sandcell", "/.sandcell"), ("dev", "/dev"), ("input-root", "/input"),
                   ("python-site-packages", "/usr/lib/python3/dist-packages")]:
    t("create-in-" + name, openw, path + "/planted", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
import sysconfig
t("usercustomize-in-stdlib", openw, sysconfig.get_paths()["stdlib"] + "/usercustomize.py",
  os.O_WRONLY | os.O_CREAT | os.O_EXCL)
t("overwrite-code", openw, "/code/__main__.py", os.O_WRONLY)
t("overwrite-sandcell-module", openw, "/.sandcell/sandcell.py", os.O_WRONLY)
t("overwrite-etc-passwd", openw, "/etc/passwd", os.O_WRONLY | os.O_APPEND)
t("unlink-etc-hosts", os.unlink, "/etc/hosts")
t("chmod-code", os.chmod, "/code/__main__.py", 0o666)
t("rename-code", os.rename, "/code/__main__.py", "/code/x.py")
t("overwrite-python-binary", openw, os.path.realpath("/usr/bin/python3"), os.O_WRONLY)
t("proc-self-exe-write-CVE-2019-5736", openw, "/proc/self/exe", os.O_WRONLY)
def reopen_exe_via_fd():
    fd = os.open("/proc/self/exe", os.O_PATH)
    openw("/proc/self/fd/%d" % fd, os.O_WRONLY)
t("proc-self-exe-opath-reopen-write", reopen_exe_via_fd)
t("proc-1-exe-write", openw, "/proc/1/exe", os.O_WRONLY)
t("dev-null-replace", os.unlink, "/dev/null")
# ---- D6: device nodes and FIFOs ----------------------------------------------
t("mknod-char-mem", os.mknod, "/tmp/mem", stat.S_IFCHR | 0o666, os.makedev(1, 1))
t("mknod-block", os.mknod, "/tmp/blk", stat.S_IFBLK | 0o666, os.makedev(8, 0))
t("mkfifo", os.mkfifo, "/tmp/fifo")
# ---- C8: nothing written is executable -------------------------------------
shutil.copy("/usr/bin/true", "/tmp/true")
os.chmod("/tmp/true", 0o755)
shutil.copy("/usr/bin/true", "/dev/shm/true")
os.chmod("/dev/shm/true", 0o755)
shutil.copy("/usr/bin/true", "/output/true")
os.chmod("/output/true", 0o755)
with open("/tmp/script", "w") as f:
    f.write("#!/usr/bin/python3\nprint('ran')\n")
os.chmod("/tmp/script", 0o755)
def run_it(argv, pass_fds=()):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   pass_fds=pass_fds)
t("exec-elf-tmp", run_it, ["/tmp/true"])
t("exec-elf-dev-shm", run_it, ["/dev/shm/true"])
t("exec-elf-output", run_it, ["/output/true"])
t("exec-elf-input", run_it, ["/input/data/true"])
t("exec-shebang-tmp", run_it, ["/tmp/script"])
def exec_via_proc_fd():
    fd = os.open("/tmp/true", os.O_RDONLY)
    run_it(["/proc/self/fd/%d" % fd], pass_fds=(fd,))
t("exec-via-proc-self-fd", exec_via_proc_fd)
def execv_tmp():
    try:
        os.execv("/tmp/true", ["true"])
    except OSError as e:
        return e.errno
res["exec-os-execv-tmp"] = in_child(execv_tmp)
def ldso():
    ld = [p for p in ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
          if os.path.exists(p)][0]
    p = subprocess.run([ld, "/tmp/true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p.returncode, p.stderr.decode(errors="replace")[-200:]
res["exec-via-ld.so-loader"] = ldso()
def mmap_exec():
    with open("/tmp/true", "rb") as f:
        mmap.mmap(f.fileno(), 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_EXEC)
t("mmap-prot-exec-tmp-file", mmap_exec)
so = [p for p in ("/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1") if os.path.exists(p)][0]
shutil.copy(so, "/tmp/evil.so")
try:
    ctypes.CDLL("/tmp/evil.so")
    res["ctypes-dlopen-tmp"] = "loaded"
except OSError as e:
    res["ctypes-dlopen-tmp"] = str(e)
# ---- D2: mount flags -----------------------------------------------------------
flags = {}
for p in ("/", "/usr", "/usr/bin", "/etc", "/etc/ld.so.cache", "/code", "/.sandcell", "/input",
          "/input/data", "/input/single", "/tmp", "/output", "/dev/shm", "/dev", "/dev/null", "/proc"):
    f = os.statvfs(p).f_flag
    flags[p] = sorted(n for n, b in (("ro", os.ST_RDONLY), ("nosuid", os.ST_NOSUID),
                                     ("nodev", os.ST_NODEV), ("noexec", os.ST_NOEXEC)) if f & b)
res["flags"] = flags
# ---- D10: .. escapes -----------------------------------------------------------
os.chdir("/tmp")
with open("../" * 64 + "etc/passwd") as f:
    res["dotdot-passwd"] = f.read()
res["dotdot-root-ino"] = os.stat("/..").st_ino == os.stat("/").st_ino
fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
res["openat-dotdot-ino"] = os.stat("..", dir_fd=fd).st_ino == os.stat("/").st_ino
os.chdir("/proc/self/root/../../..")
res["chdir-proc-root-dotdot"] = os.getcwd()
res["proc-self-root"] = os.readlink("/proc/self/root")
res["proc-1-root"] = oserr(os.listdir, "/proc/1/root/")
os.chdir("/tmp")
# ---- D4: try to create a file in every directory -------------------------------
writable, tried = [], 0
for dirpath, dirnames, filenames in os.walk("/"):
    if dirpath == "/":
        dirnames[:] = [d for d in dirnames if d != "proc"]
    tried += 1
    p = os.path.join(dirpath, ".sandcell-attack-probe")
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        continue
    os.close(fd)
    os.unlink(p)
    writable.append(dirpath)
res["writable"] = writable
res["dirs_tried"] = tried
# ---- D5: inventory of the whole tree (no link following) ------------------------
inv = {"n": 0, "special": [], "top": sorted(os.listdir("/")), "etc": sorted(os.listdir("/etc")),
       "dev": sorted(os.listdir("/dev")), "paths_sample": []}
roots = []
stack = ["/"]
while stack:
    d = stack.pop()
    try:
        it = list(os.scandir(d))
    except OSError:
        continue
    for e in it:
        if d == "/" and e.name == "proc":
            continue
        inv["n"] += 1
        if e.is_dir(follow_symlinks=False):
            stack.append(e.path)
        elif not e.is_file(follow_symlinks=False) and not e.is_symlink():
            st = os.lstat(e.path)
            inv["special"].append([e.path, stat.S_IFMT(st.st_mode)])
        for bad in ("/root", "/home", "/var", "/run", "/sys", "/work", "/srv", "/mnt", "/media",
                    "/boot", "/snap", "/opt", "/tmp/pytest-of-", HARNESS_TMP):
            if e.path == bad or e.path.startswith(bad + "/"):
                roots.append(e.path)
inv["host_paths"] = roots[:50]
res["inventory"] = inv
emit(res)
'''


@pytest.fixture(scope="module")
def fs(tmp_path_factory):
    base = tmp_path_factory.mktemp("fs-input")
    data = base / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_bytes(b"precious host input\n" * 100)
    (data / "sub" / "b.txt").write_bytes(b"nested\n")
    shutil.copy("/usr/bin/true", data / "true")
    single = base / "single"
    single.write_bytes(b"single-file input\n")
    for p in (data / "a.txt", data / "sub" / "b.txt", single):
        os.chmod(p, 0o666)
    os.chmod(data / "true", 0o777)
    for d in (base, data, data / "sub"):
        os.chmod(d, 0o777)
    before = tree_digest(str(base))
    # The harness's own temporary directory, wherever --basetemp or TMPDIR
    # put it (not necessarily /tmp/pytest-of-USER).
    harness_tmp = str(tmp_path_factory.getbasetemp())
    r, res = probe("HARNESS_TMP = %r\n" % harness_tmp + CODE,
                   opts=["--input", "data=%s" % data, "--input", "single=%s" % single])
    assert r.status == "ok", r
    res["_host_changed"] = tree_digest(str(base)) != before
    return res


INPUT_CASES = [
    ("input-open-rw", E.EROFS), ("input-open-trunc", E.EROFS), ("input-open-append", E.EROFS),
    ("input-single-file-open-rw", E.EROFS), ("input-create-in-dir", E.EROFS),
    ("input-create-in-input-root", E.EROFS), ("input-chmod", E.EROFS), ("input-chown", E.EROFS),
    ("input-utime", E.EROFS), ("input-truncate", E.EROFS), ("input-unlink", E.EROFS),
    ("input-rename-within", E.EROFS), ("input-rename-to-tmp", E.EXDEV),
    ("input-rename-dir", E.EROFS), ("input-rmdir", E.EROFS), ("input-mkdir", E.EROFS),
    ("input-symlink", E.EROFS), ("input-link-within", E.EROFS), ("input-link-to-tmp", E.EXDEV),
    ("input-setxattr", E.EPERM), ("input-mmap-shared-write", E.EACCES),
]


@pytest.mark.parametrize("name,expected", [case("G2", n, n, e) for n, e in INPUT_CASES])
def test_input_write_attempt_fails(host_postconditions, fs, name, expected):
    """D1: every way of changing a world-writable host input fails."""
    assert fs[name] == expected, errno.errorcode.get(fs[name], fs[name])


def test_G2_input_dirty_pipe_no_effect(host_postconditions, fs):
    """C10: splicing an input page into a primed pipe and writing to it is
    harmless (the splice itself is allowed; the host file must not change)."""
    assert fs["input-dirty-pipe-splice"] == 0
    assert not fs["_host_changed"]


def test_G2_host_inputs_byte_identical(host_postconditions, fs):
    """Content, mode, owner and mtime of every host input entry unchanged."""
    assert not fs["_host_changed"]


RO_CASES = [
    ("create-in-root", E.EROFS), ("create-in-usr", E.EROFS), ("create-in-etc", E.EROFS),
    ("create-in-code", E.EROFS), ("create-in-dot-sandcell", E.EROFS), ("create-in-dev", E.EROFS),
    ("create-in-input-root", E.EROFS), ("create-in-python-site-packages", E.EROFS),
    ("usercustomize-in-stdlib", E.EROFS), ("overwrite-code", E.EROFS),
    ("overwrite-sandcell-module", E.EROFS), ("overwrite-etc-passwd", E.EROFS),
    ("unlink-etc-hosts", E.EROFS), ("chmod-code", E.EROFS), ("rename-code", E.EROFS),
    # The runtime is a read-only overlay (EROFS); bound directly (the
    # shared-inodes ablation, or the init's exe outside it) the file
    # permission refuses first (EACCES).
    ("overwrite-python-binary", (E.EROFS, E.EACCES)),
    ("proc-self-exe-write-CVE-2019-5736", (E.EROFS, E.EACCES)),
    ("proc-self-exe-opath-reopen-write", (E.EROFS, E.EACCES)), ("proc-1-exe-write", E.EACCES),
    ("dev-null-replace", E.EROFS),
    ("mknod-char-mem", E.EPERM), ("mknod-block", E.EPERM), ("mkfifo", E.EPERM),
]


@pytest.mark.parametrize("name,expected", [case("G2", n, n, e) for n, e in RO_CASES])
def test_runtime_and_synthetic_files_immutable(host_postconditions, fs, name, expected):
    """D3/D6/D7: the root, runtime, code, module, /etc and /dev are
    read-only; nothing can persist into later runs; no device nodes."""
    allowed = expected if isinstance(expected, tuple) else (expected,)
    assert fs[name] in allowed, errno.errorcode.get(fs[name], fs[name])


EXEC_CASES = ["exec-elf-tmp", "exec-elf-dev-shm", "exec-elf-output", "exec-elf-input",
              "exec-shebang-tmp", "exec-via-proc-self-fd"]


@pytest.mark.parametrize("name", [case("G4", n, n) for n in EXEC_CASES])
def test_written_files_not_executable(host_postconditions, fs, name):
    """C8: noexec scratch and inputs, plus Landlock EXECUTE only on the
    runtime: EACCES."""
    assert fs[name] == E.EACCES, errno.errorcode.get(fs[name], fs[name])


def test_G4_execv_in_place_from_tmp(host_postconditions, fs):
    """os.execv of a scratch ELF (no subprocess machinery) fails with
    EACCES and the process goes on."""
    assert fs["exec-os-execv-tmp"] == {"exit": 0, "value": E.EACCES}


def test_G4_ldso_loader_cannot_map_scratch_binary(host_postconditions, fs):
    """Running the dynamic loader on a scratch binary needs PROT_EXEC on a
    noexec file: the loader must fail to map it."""
    rc, err = fs["exec-via-ld.so-loader"]
    assert rc != 0, err
    assert "failed to map segment" in err or "Operation not permitted" in err, err


def test_G4_mmap_prot_exec_scratch_file(host_postconditions, fs):
    assert fs["mmap-prot-exec-tmp-file"] == E.EPERM


def test_G4_ctypes_dlopen_scratch_library(host_postconditions, fs):
    """I7: ctypes.CDLL of a library copied to /tmp fails (noexec)."""
    assert "failed to map segment" in fs["ctypes-dlopen-tmp"], fs["ctypes-dlopen-tmp"]


MOUNT_FLAGS = [
    ("/", {"ro", "nosuid", "nodev"}), ("/usr", {"ro", "nosuid", "nodev"}),
    ("/usr/bin", {"ro", "nosuid", "nodev"}), ("/etc", {"ro", "nosuid", "nodev"}),
    ("/etc/ld.so.cache", {"ro", "nosuid", "nodev", "noexec"}),
    ("/code", {"ro", "nosuid", "nodev"}), ("/.sandcell", {"ro", "nosuid", "nodev"}),
    ("/input", {"ro", "nosuid", "nodev"}), ("/input/data", {"ro", "nosuid", "nodev", "noexec"}),
    ("/input/single", {"ro", "nosuid", "nodev", "noexec"}),
    ("/tmp", {"nosuid", "nodev", "noexec"}), ("/output", {"nosuid", "nodev", "noexec"}),
    ("/dev/shm", {"nosuid", "nodev", "noexec"}), ("/dev", {"ro", "nosuid", "noexec"}),
    ("/dev/null", {"nosuid", "noexec"}), ("/proc", {"nosuid", "nodev", "noexec"}),
]


@pytest.mark.parametrize("path,required", [case("G2", "statvfs" + p.replace("/", "-"), p, f)
                                           for p, f in MOUNT_FLAGS])
def test_mount_flags(host_postconditions, fs, path, required):
    """D2: statvfs flags; the scratch mounts are the only ones without ro."""
    got = set(fs["flags"][path])
    assert required <= got, got
    # /dev/null is a device: writable on a read-only mount too, and root
    # callers' runs have it on their own read-only /dev.
    if path in ("/tmp", "/output", "/dev/shm", "/proc"):
        assert "ro" not in got or path == "/proc"


def test_G2_only_scratch_dirs_writable(host_postconditions, fs):
    """D4: a file can be created in /tmp, /output, /dev/shm (and below
    them) and in no other directory of the whole tree."""
    assert fs["dirs_tried"] > 100
    scratch = ("/tmp", "/output", "/dev/shm")
    bad = [d for d in fs["writable"] if not any(d == s or d.startswith(s + "/") for s in scratch)]
    assert bad == []
    assert set(scratch) <= set(fs["writable"])


DOTDOT = [("dotdot-root-ino", True), ("openat-dotdot-ino", True),
          ("chdir-proc-root-dotdot", "/"), ("proc-self-root", "/"), ("proc-1-root", E.EACCES)]


@pytest.mark.parametrize("name,expected", [case("G1", n, n, e) for n, e in DOTDOT])
def test_dotdot_stays_inside(host_postconditions, fs, name, expected):
    """D10: '..' above the new root is the root itself."""
    assert fs[name] == expected


def test_G1_dotdot_chain_reads_synthetic_passwd(host_postconditions, fs):
    text = fs["dotdot-passwd"]
    assert "sandbox:x:1000:1000" in text
    with open("/etc/passwd") as f:
        host_users = {l.split(":")[0] for l in f if l.strip()} - {"root", "nobody"}
    seen = {l.split(":")[0] for l in text.splitlines() if l.strip()}
    assert not (seen & host_users), seen & host_users


TOP_ALLOWED = {"proc", "input", ".sandcell", "code", "output", "tmp", "dev", "etc", "usr",
               "bin", "sbin", "lib", "lib32", "lib64", "libx32"}
ETC_ALLOWED = {"passwd", "group", "hosts", "hostname", "nsswitch.conf", "resolv.conf", "localtime",
               "ld.so.cache", "alternatives", "matplotlibrc", "python3", "python3.11", "python3.12",
               "python3.13", "fonts", "mime.types"}


def test_G1_inventory_top_level_is_declared(host_postconditions, fs):
    """D5: the root holds only the declared entries."""
    assert set(fs["inventory"]["top"]) <= TOP_ALLOWED, set(fs["inventory"]["top"]) - TOP_ALLOWED


def test_G1_inventory_etc_is_synthetic(host_postconditions, fs):
    """D5: /etc is synthesized: no shadow, no host passwd, no ssh keys."""
    etc = set(fs["inventory"]["etc"])
    assert etc <= ETC_ALLOWED, etc - ETC_ALLOWED
    assert "shadow" not in etc


def test_G1_inventory_dev_is_minimal(host_postconditions, fs):
    assert set(fs["inventory"]["dev"]) == {"null", "zero", "full", "random", "urandom", "shm",
                                           "fd", "stdin", "stdout", "stderr"}


def test_G1_inventory_no_host_paths(host_postconditions, fs):
    """D5: walking everything below / (no link following, /proc aside)
    finds none of the host's /root, /home, /var, /run, /sys, /work, ...
    nor the harness's temporary directories."""
    inv = fs["inventory"]
    assert inv["n"] > 1000
    assert inv["host_paths"] == []


def test_G1_inventory_special_files_only_declared_devices(host_postconditions, fs):
    """D5/F3: no socket, FIFO or block device anywhere; character devices
    only the five declared ones."""
    chr_ok = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}
    for path, fmt in fs["inventory"]["special"]:
        assert fmt == 0o020000 and path in chr_ok, (path, oct(fmt))


def test_G1_hostile_input_symlinks_resolve_inside(host_postconditions, tmp_path):
    """An input directory holding absolute and ../ symlinks to host files
    (and to the host's view of /work) resolves them inside the sandbox's
    own root: the host targets are never reached."""
    d = tmp_path / "in"
    d.mkdir()
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST-SECRET")
    os.symlink(str(secret), d / "abs")
    os.symlink("../" * 12 + str(secret).lstrip("/"), d / "rel")
    os.symlink("/etc/shadow", d / "shadow")
    os.symlink(str(tmp_path), d / "dir")
    r, res = probe('''
res = {}
for n in ("abs", "rel", "shadow", "dir/host-secret.txt"):
    try:
        with open("/input/d/" + n) as f:
            res[n] = f.read()
    except OSError as e:
        res[n] = e.errno
emit(res)
''', opts=["--input", "d=%s" % d])
    assert r.status == "ok", r
    assert res == {"abs": E.ENOENT, "rel": E.ENOENT, "shadow": E.ENOENT,
                   "dir/host-secret.txt": E.ENOENT}
