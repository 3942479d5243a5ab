"""Writes sandcell/_install.py for `make install`: where the binaries went
(BINDIR without DESTDIR), so the installed package runs its own CLI."""
import sys

if len(sys.argv) != 2 or not sys.argv[1].startswith("/"):
    sys.exit("usage: install-paths.py ABSOLUTE_BINDIR")
print('"""Written by `make install`: where the binaries are."""')
print("from typing import Optional")
print()
print("BINDIR: Optional[str] = %r" % sys.argv[1])
