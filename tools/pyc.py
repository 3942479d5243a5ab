#!/usr/bin/python3
"""Compiles the in-sandbox modules to bytecode the sandbox's interpreter
loads instead of compiling them at every cold start:

    python3 tools/pyc.py OUTDIR FILE.py...

writes OUTDIR/__pycache__/NAME.TAG.pyc (TAG: this interpreter's cache tag,
e.g. cpython-311) for each file, as checked-hash pycs (PEP 552): the
importer uses one only if the source next to it has the same hash, and an
interpreter with another tag never looks at it, so a stale or foreign pyc
costs a compile, never wrong code.  No timestamps: the output depends only
on the sources and the interpreter."""
import os
import py_compile
import sys


def main():
    out, files = sys.argv[1], sys.argv[2:]
    cache = os.path.join(out, "__pycache__")
    os.makedirs(cache, exist_ok=True)
    for name in os.listdir(cache):  # what a removed module left
        os.unlink(os.path.join(cache, name))
    tag = sys.implementation.cache_tag
    for f in files:
        mod = os.path.basename(f)[:-3]
        py_compile.compile(f, cfile=os.path.join(cache, "%s.%s.pyc" % (mod, tag)),
                           dfile="/.sandcell/%s.py" % mod, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)


if __name__ == "__main__":
    main()
