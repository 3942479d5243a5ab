"""The sandbox side of sandcell's narrow interface.

    import sandcell
    sandcell.values["threshold"]      # JSON values handed in by the caller
    sandcell.inputs["data"]           # path of the read-only input "data"
    sandcell.output                   # directory whose files are collected
    sandcell.result({"rows": 10})     # publish one value (last call wins)
    sandcell.display(df)              # one notebook output (a MIME bundle)

result() and display() accept any object and never raise on a value:
numpy and pandas objects, NaN and infinities, datetimes, Decimals and bytes
are mapped to JSON by the documented mapping (docs/values.md); an object
with no mapping becomes {"$repr": "<its repr>"}.

Run with `sandcell run --cell`, the code executes as a notebook cell: the
value of its last expression becomes an `execute_result`, print() output
becomes ordered `stream` outputs, matplotlib figures (plt.show() and any
left open) become images, and display() is a builtin, as in Jupyter.  The
outputs land in the report's `cell.outputs` (docs/report.md).

Everything here is plain Python running inside the sandbox: it is a
convenience, not a security boundary.  The host parses what it sends
strictly, with size and depth caps.
"""
import json as _json
import os as _os
import sys as _sys
import types as _types

__all__ = ["values", "inputs", "output", "result", "display", "set_figure_formats",
           "HTML", "Markdown", "SVG", "Image", "JSON"]

_VALUES_PATH = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "values.json")


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
    # No input name starts with '.': such entries are sandcell's own
    # (.datasets holds the datasets), not inputs.
    try:
        return {name: _os.path.join(root, name) for name in sorted(_os.listdir(root))
                if not name.startswith(".")}
    except OSError:
        return {}


values = _types.MappingProxyType(_load_values())
inputs = _types.MappingProxyType(_list_inputs())
output = _os.environ.get("SANDCELL_OUTPUT_DIR", "/output")


def _io():
    # type: () -> _types.ModuleType
    """The implementation, loaded on first use: this module is imported by
    most code, and compiled anew by every run (python3 -B)."""
    mod = _sys.modules.get("_sandcell_io")
    if mod is not None:
        return mod
    import _sandcell_io
    return _sandcell_io


def result(value):
    # type: (object) -> None
    """Publishes value as the run's result (the report's `result`).  Any
    object is accepted and mapped to JSON as docs/values.md says (NaN,
    numpy, pandas, datetimes, Decimal, bytes...; anything else as a tagged
    repr): no value makes it raise.  Calling it again replaces the
    earlier result."""
    _io().result(value)


def display(*objs, **kwargs):
    # type: (object, object) -> None
    """Shows each object as one output (`display_data`): its rich reprs
    (_repr_html_, _repr_png_, _repr_svg_, _repr_markdown_, _repr_json_,
    _repr_latex_, _repr_mimebundle_ ...) plus text/plain, as Jupyter does.
    DataFrames give text/html and text/plain, matplotlib figures image/png.

    raw=True: each object is already a bundle {mime: data}.
    metadata={...}: the output's metadata.

    Works in every mode (the outputs land in the report's cell.outputs);
    in --cell mode it is also a builtin.  Never raises on an object: a
    repr method that fails is skipped, with a note on stderr."""
    _io().display(*objs, **kwargs)


def set_figure_formats(*formats):
    # type: (str) -> None
    """Formats of the matplotlib figures cell mode captures: "png" (the
    default) and/or "svg", e.g. set_figure_formats("png", "svg")."""
    _io().set_figure_formats(*formats)


class _Shown(object):
    """An object that displays as one MIME type."""
    _mime = "text/plain"

    def __init__(self, data):
        # type: (object) -> None
        self.data = data

    def _repr_mimebundle_(self, include=None, exclude=None):
        # type: (object, object) -> dict[str, object]
        return {self._mime: self.data}

    def __repr__(self):
        # type: () -> str
        return "<%s object>" % type(self).__name__


class HTML(_Shown):
    """display(HTML("<b>bold</b>")): text/html."""
    _mime = "text/html"


class Markdown(_Shown):
    """display(Markdown("*em*")): text/markdown."""
    _mime = "text/markdown"


class SVG(_Shown):
    """display(SVG("<svg ...>")): image/svg+xml."""
    _mime = "image/svg+xml"


class JSON(_Shown):
    """display(JSON({"a": 1})): application/json (values as docs/values.md maps them)."""
    _mime = "application/json"


class Image(_Shown):
    """display(Image(png_bytes)) or Image(jpeg_bytes, format="jpeg"), or
    Image(filename="plot.png")."""

    def __init__(self, data=None, format="png", filename=None):
        # type: (bytes | None, str, str | None) -> None
        if filename is not None:
            with open(filename, "rb") as f:
                data = f.read()
            if filename.lower().endswith((".jpg", ".jpeg")):
                format = "jpeg"
        super().__init__(data)
        self._mime = "image/" + format
