"""sandcell for the host: run untrusted Python sandboxed, from Python.

    import sandcell
    res = sandcell.run("print(1 + 1)", limits={"memory": "512M", "wall_time": 10})
    res.status      # "ok", "exited", "timeout", "memory", ... (the report's status)
    res.outputs     # nbformat v4 outputs, in order
    res.files       # collected /output files (path, size, sha256, read_bytes())
    res.datasets    # DataFrames the code published: sandcell.datasets["x"] = df
    res.report      # the whole report, typed; res.usage: time, memory, bytes

    with sandcell.Server() as srv:          # a warm server for the block
        srv.run("import pandas as pd; print(pd.__version__)")

    srv = sandcell.connect("http://127.0.0.1:8080", token_file="token")   # sandcell-http
    srv.run("print(6 * 7)"); srv.session()  # the same API over HTTP

Standard library only (numpy and pandas when datasets are used).  Nothing
that comes back from a sandbox is unpickled or evaluated: reports are JSON,
parsed strictly.  docs/client.md is the reference.
"""
from ._api import run
from ._errors import BadRequest, Busy, Cancelled, Error, ProtocolError, SandboxError, Unreachable
from ._report import Report
from ._request import LIMIT_KEYS
from ._result import OutputFile, Result, Usage
from ._remote import Remote, SessionInfo, connect
from ._server import Server
from ._session import CellResult, Session, SessionEnded

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # sandcell.frames (the frame archive codec, docs/datasets.md) needs numpy
    # and pandas: imported when first used, not with the package.
    if name == "frames":
        import importlib
        return importlib.import_module(__name__ + ".frames")
    raise AttributeError("module 'sandcell' has no attribute %r" % name)

__all__ = ["run", "connect", "Remote", "SessionInfo", "Server", "Session", "CellResult", "SessionEnded", "Result", "Report", "Usage", "OutputFile", "LIMIT_KEYS",
           "Error", "Busy", "BadRequest", "SandboxError", "Unreachable", "Cancelled",
           "ProtocolError", "__version__"]
