"""Prints the directory under PREFIX that this interpreter imports packages
from, for `make install` (run with Debian's /usr/bin/python3):

    /usr/bin/python3 -I tools/pydir.py /usr/local   ->  /usr/local/lib/python3.11/dist-packages
    /usr/bin/python3 -I tools/pydir.py /usr         ->  /usr/lib/python3/dist-packages

Debian's site module puts PREFIX/lib/python3/dist-packages (version-free)
on sys.path for /usr only, and PREFIX/lib/python3.X/dist-packages for
/usr/local, so the answer is read from site.getsitepackages() rather than
written down: the version-free directory when this interpreter imports it,
else the versioned one.  A prefix it does not import from at all gets
PREFIX/lib/python3/dist-packages and a note on stderr: PYTHONPATH must
name it.
"""
import os
import site
import sys


def main() -> int:
    if len(sys.argv) != 2 or not os.path.isabs(sys.argv[1]):
        print("usage: pydir.py ABSOLUTE_PREFIX", file=sys.stderr)
        return 2
    prefix = os.path.normpath(sys.argv[1])
    under = [d for d in site.getsitepackages()
             if os.path.dirname(os.path.dirname(os.path.dirname(os.path.normpath(d)))) == prefix
             and os.path.basename(d) in ("dist-packages", "site-packages")]
    under.sort(key=lambda d: os.path.basename(os.path.dirname(d)) != "python3")
    if under:
        print(under[0])
        return 0
    fallback = os.path.join(prefix, "lib", "python3", "dist-packages")
    print("pydir: %s is not on %s's import path; set PYTHONPATH=%s to import sandcell"
          % (fallback, sys.executable, fallback), file=sys.stderr)
    print(fallback)
    return 0


if __name__ == "__main__":
    sys.exit(main())
