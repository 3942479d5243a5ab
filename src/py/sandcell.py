"""The sandbox side of sandcell's narrow interface.

    import sandcell
    sandcell.values["threshold"]      # JSON values handed in by the caller
    sandcell.inputs["data"]           # path of the read-only input "data"
    sandcell.output                   # directory whose files are collected
    sandcell.result({"rows": 10})     # publish one JSON result (last call wins)

Everything here is plain Python running inside the sandbox: it is a
convenience, not a security boundary.  The host parses what result() sends
strictly, with size and depth caps.
"""
import json as _json
import os as _os
import types as _types

__all__ = ["values", "inputs", "output", "result"]

_VALUES_PATH = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "values.json")
_RESULT_FD = int(_os.environ.get("SANDCELL_RESULT_FD", "3"))


# Types are in comments: they cost nothing at run time and parse on any
# interpreter --python may name (checked by mypy --strict in make lint).
def _load_values():
    # type: () -> dict[str, object]
    try:
        with open(_VALUES_PATH, encoding="utf-8") as f:
            loaded = _json.load(f)  # type: dict[str, object]
            return loaded
    except FileNotFoundError:
        return {}


def _list_inputs():
    # type: () -> dict[str, str]
    root = _os.environ.get("SANDCELL_INPUT_DIR", "/input")
    try:
        return {name: _os.path.join(root, name) for name in sorted(_os.listdir(root))}
    except OSError:
        return {}


values = _types.MappingProxyType(_load_values())
inputs = _types.MappingProxyType(_list_inputs())
output = _os.environ.get("SANDCELL_OUTPUT_DIR", "/output")


def result(value):
    # type: (object) -> None
    """Publishes value (anything json.dumps accepts, no NaN) as the run's
    result.  Calling it again replaces the earlier result."""
    data = _json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    view = memoryview(data.encode("utf-8") + b"\n")
    while view:
        n = _os.write(_RESULT_FD, view)
        view = view[n:]
