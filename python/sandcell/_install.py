"""Where `make install` put the binaries.  In the source tree this is None;
`make install` rewrites this file with its BINDIR (without DESTDIR)."""
from typing import Optional

BINDIR: Optional[str] = None
