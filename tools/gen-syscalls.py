#!/usr/bin/env python3
"""Writes docs/syscalls.md: every syscall number of the x86_64, x32 and
i386 ABIs with its declared seccomp verdict and what a probe inside the
sandbox observed (tests/proof/sysprobe.py, one sandboxed run).

    /usr/bin/python3 tools/gen-syscalls.py            # rewrite docs/syscalls.md
    /usr/bin/python3 tools/gen-syscalls.py --check    # exit 1 if it is stale
    /usr/bin/python3 tools/gen-syscalls.py -o FILE    # write elsewhere

The binary is $SANDCELL_BIN (default build/sandcell).  Needs what a
sandcell run needs (root, or a delegated cgroup via $SANDCELL_CGROUP_PARENT).
"""
import argparse
import difflib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests", "proof"), os.path.join(ROOT, "tests")]

import proof_lib  # noqa: E402
import syscalls_doc  # noqa: E402

DOC = os.path.join(ROOT, "docs", "syscalls.md")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with docs/syscalls.md, write nothing")
    ap.add_argument("-o", "--output", default=DOC)
    opts = ap.parse_args()
    results, _ = syscalls_doc.live_sweep()
    text = syscalls_doc.render(proof_lib.policy(), results)
    if opts.check:
        try:
            with open(opts.output, encoding="utf-8") as f:
                old = f.read()
        except FileNotFoundError:
            old = ""
        if old != text:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                       opts.output, "live sweep"))
            print("%s is stale: run tools/gen-syscalls.py" % opts.output, file=sys.stderr)
            return 1
        return 0
    with open(opts.output, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %s" % opts.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
