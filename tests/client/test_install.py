"""`make install` and `make uninstall`: what lands where (DESTDIR staging),
and a real install into a prefix that works on its own: the installed
package imports, finds the installed CLI (not this tree's), runs cold and
warm; the installed library links; uninstall removes it all."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from client_util import BIN, ROOT

PY = "/usr/bin/python3"


def make(*args: str, env: "dict[str, str] | None" = None) -> "subprocess.CompletedProcess[str]":
    p = subprocess.run(["make", "--no-print-directory", "-C", ROOT] + list(args), capture_output=True,
                       text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def pydir(prefix: str) -> str:
    return subprocess.run([PY, "-I", os.path.join(ROOT, "tools", "pydir.py"), prefix],
                          capture_output=True, text=True, check=True).stdout.strip()


def files_under(root: str) -> "set[str]":
    out = set()
    for d, _dirs, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root)
            if "__pycache__" not in rel:
                out.add("/" + rel)
    return out


def expected(prefix: str) -> "set[str]":
    site = pydir(prefix)
    pkg = sorted(n for n in os.listdir(os.path.join(ROOT, "python", "sandcell"))
                 if n.endswith(".py") or n == "py.typed")
    return {prefix + "/bin/sandcell", prefix + "/bin/sandcell-warm", prefix + "/bin/sandcell-http",
            prefix + "/lib/libsandcell.a", prefix + "/lib/pkgconfig/sandcell.pc",
            prefix + "/include/sandcell.h", prefix + "/share/man/man1/sandcell.1",
            prefix + "/share/jupyter/kernels/sandcell/kernel.json"} | \
        {site + "/sandcell/" + n for n in pkg}


def test_pydir_is_where_debian_python_imports():
    """/usr/local gets the versioned directory Debian's python3 has on
    sys.path (there is no /usr/local/lib/python3/dist-packages on it),
    /usr the version-free one."""
    path = subprocess.run([PY, "-I", "-c", "import sys; print('\\n'.join(sys.path))"],
                          capture_output=True, text=True, check=True).stdout.split()
    v = "python%d.%d" % sys.version_info[:2] if sys.executable == PY else None
    local = pydir("/usr/local")
    assert local in path and local.startswith("/usr/local/lib/python3.")
    if v:
        assert local == "/usr/local/lib/%s/dist-packages" % v
    assert pydir("/usr") == "/usr/lib/python3/dist-packages" and pydir("/usr") in path
    assert pydir("/opt/sc") == "/opt/sc/lib/python3/dist-packages"


def test_install_destdir(tmp_path):
    dest = str(tmp_path / "stage")
    make("install", "DESTDIR=" + dest)
    assert files_under(dest) == expected("/usr/local"), files_under(dest) ^ expected("/usr/local")
    site = dest + pydir("/usr/local")
    # The installed package names the installed binaries (without DESTDIR).
    with open(site + "/sandcell/_install.py") as f:
        assert "BINDIR: Optional[str] = '/usr/local/bin'" in f.read()
    assert os.stat(dest + "/usr/local/bin/sandcell").st_mode & 0o777 == 0o755
    assert os.stat(dest + "/usr/local/include/sandcell.h").st_mode & 0o777 == 0o644
    make("uninstall", "DESTDIR=" + dest)
    assert files_under(dest) == set()


def test_real_install_into_a_prefix_works_alone(tmp_path):
    prefix = str(tmp_path / "prefix")
    make("install", "PREFIX=" + prefix)
    site = pydir(prefix)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": site, "HOME": str(tmp_path)}
    code = ("import sandcell, sandcell._locate as L\n"
            "print(sandcell.__file__)\n"
            "print(L.find_cli())\n"
            "r = sandcell.run('import sandcell, sys; print(1); print(sandcell.__file__)')\n"
            "print(r.status, r.stdout)\n"
            "with sandcell.Server(slots=1, spares=0) as s:\n"
            "    print(s.run('print(2)').stdout)\n")
    p = subprocess.run([PY, "-I", "-c", "import sys; sys.path.insert(0, %r)\n" % site + code],
                       capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == site + "/sandcell/__init__.py"
    assert lines[1] == prefix + "/bin/sandcell"
    # In the sandbox, `import sandcell` is the sandbox's module, never a
    # host package that the runtime's site directories may hold.
    assert lines[2] == "ok b'1\\n/.sandcell/sandcell.py\\n'"
    assert lines[3] == "b'2\\n'"
    # The C library and header link a program through pkg-config.
    prog = tmp_path / "t.c"
    prog.write_text('#include <sandcell.h>\n#include <stdio.h>\n'
                    'int main(void) { struct sandcell_config c; sandcell_config_init(&c);\n'
                    ' printf("%s\\n", sandcell_status_name(SANDCELL_TIMEOUT)); return 0; }\n')
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "sandcell"], capture_output=True, text=True,
                        env={"PKG_CONFIG_PATH": prefix + "/lib/pkgconfig", "PATH": "/usr/bin:/bin"},
                        check=True).stdout.split()
    subprocess.run(["cc", "-o", str(tmp_path / "t"), str(prog)] + pc, check=True)
    assert subprocess.run([str(tmp_path / "t")], capture_output=True, text=True,
                          check=True).stdout == "timeout\n"
    with open(prefix + "/share/man/man1/sandcell.1", "rb") as a, \
            open(os.path.join(ROOT, "man", "sandcell.1"), "rb") as b:
        assert a.read() == b.read()
    make("uninstall", "PREFIX=" + prefix)
    assert files_under(prefix) == set()


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff (groff-base)")
def test_man_page_is_clean():
    """groff renders it without a warning, and it names every run option
    the CLI's --help names."""
    page = os.path.join(ROOT, "man", "sandcell.1")
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    text = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", page], capture_output=True, text=True,
                          check=True).stdout
    helptext = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    opts = set(re.findall(r"(--[a-z][a-z-]+)", helptext))
    missing = sorted(o for o in opts if o not in text)
    assert not missing, missing
