"""The sandbox side of sandcell's narrow interface.

    import sandcell
    sandcell.values["threshold"]      # JSON values handed in by the caller
    sandcell.inputs["data"]           # path of the read-only input "data"
    sandcell.output                   # directory whose files are collected
    sandcell.result({"rows": 10})     # publish one value (last call wins)
    sandcell.display(df)              # one notebook output (a MIME bundle)
    sandcell.datasets["sales"]        # a DataFrame handed in by the caller
    sandcell.datasets["by_region"] = df   # publish a DataFrame to the caller
                                      # (in a session, a name not handed in is
                                      # asked of the host: docs/sessions.md)

result() and display() accept any object and never raise on a value:
numpy and pandas objects, NaN and infinities, datetimes, Decimals and bytes
are mapped to JSON by the documented mapping (docs/values.md); an object
with no mapping becomes {"$repr": "<its repr>"}.

Run with `sandcell run --cell`, the code executes as a notebook cell: the
value of its last expression becomes an `execute_result`, print() output
becomes ordered `stream` outputs, matplotlib figures (plt.show() and any
left open) become images, and display() is a builtin, as in Jupyter.  The
outputs land in the report's `cell.outputs` (docs/report.md).

sandcell.datasets (class Datasets below) carries pandas DataFrames in and
out as typed, columnar frame archives (docs/datasets.md): dtypes, NaN/NaT,
categoricals, time zones and the index come back exactly.

Everything here is plain Python running inside the sandbox: it is a
convenience, not a security boundary.  The host parses what it sends
strictly, with size and depth caps.
"""
import json as _json
import os as _os
import sys as _sys
import types as _types

MYPY = False  # true for mypy only
if MYPY:
    from typing import Callable
del MYPY

__all__ = ["values", "inputs", "output", "datasets", "Datasets", "result", "display", "set_figure_formats",
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


_INPUT_DIR = _os.environ.get("SANDCELL_INPUT_DIR", "/input")


def _list_dir(root):
    # type: (str) -> dict[str, str]
    # Input names never start with '.' (the host refuses them): what does
    # is sandcell's, like .datasets.
    try:
        return {name: _os.path.join(root, name) for name in sorted(_os.listdir(root))
                if not name.startswith(".")}
    except OSError:
        return {}


values = _types.MappingProxyType(_load_values())
# Read-only for the code; a session's loop adds what the host adds
# between cells (_add_input).
_inputs = _list_dir(_INPUT_DIR)
inputs = _types.MappingProxyType(_inputs)
output = _os.environ.get("SANDCELL_OUTPUT_DIR", "/output")

# Names as the host checks them (src/lib/parse.c, check_name).
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_NAME_MAX = 128


class Datasets(object):
    """sandcell.datasets: pandas DataFrames in and out of the run.

        df = sandcell.datasets["sales"]        # handed in by the caller
        sandcell.datasets["by_region"] = out   # published to the caller
        "sales" in sandcell.datasets, list(sandcell.datasets), len(...)
        del sandcell.datasets["by_region"]     # withdraws a publication

    A dataset crosses the boundary as a frame archive (docs/datasets.md):
    typed and columnar, so dtypes, NaN/NaT, categoricals, time zones and
    the index come back exactly.  One handed in is read (and checked) on
    first access, then the same object is returned.  Publishing writes the
    archive at once to /output/datasets/NAME.scf, so it counts against the
    run's disk and output limits and is kept even if the run is stopped
    later; changing the DataFrame afterwards changes nothing published
    (assign it again).  A DataFrame the format cannot carry raises
    TypeError or ValueError naming the column, and nothing is written.
    Names: letters, digits, '.', '_', '-', not starting with '.' or '-'."""

    def __init__(self, given_dir, out_dir):
        # type: (str, str) -> None
        self._given = _list_dir(given_dir)
        self._out_dir = out_dir
        self._loaded = {}  # type: dict[str, object]
        self._published = {}  # type: dict[str, object]
        # In a session: asks the host for a dataset it does not have
        # (returns once the host's add registered it, or KeyError).
        self._ask = None  # type: Callable[[str], None] | None

    def _add(self, name, path):
        # type: (str, str) -> None
        """A session's loop: the host handed in (or replaced) a dataset."""
        self._given[name] = path
        self._loaded.pop(name, None)

    @staticmethod
    def _check(name):
        # type: (object) -> str
        if not isinstance(name, str):
            raise TypeError("dataset names are str, not %s" % type(name).__name__)
        if not name or len(name.encode("utf-8")) > _NAME_MAX or name in (".", "..") or \
                name[0] in ".-" or not _NAME_CHARS.issuperset(name):
            raise ValueError("dataset name %r: letters, digits, '.', '_', '-' only, at most "
                             "%d bytes, not starting with '.' or '-'" % (name, _NAME_MAX))
        return name

    def __getitem__(self, name):
        # type: (str) -> object
        if name in self._published:
            return self._published[name]
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._given and self._ask is not None and isinstance(name, str):
            try:
                self._check(name)
            except ValueError:
                pass
            else:
                self._ask(name)  # KeyError with the host's reason if it refuses
        if name not in self._given:
            raise KeyError("no dataset %r (handed in: %s)" % (
                name, ", ".join(sorted(self._given)) or "none"))
        path = self._given[name]
        import sandcell_frames
        df = sandcell_frames.load(path)
        if self._given.get(name) is path:  # not replaced by an add meanwhile
            self._loaded[name] = df
        return df

    def __setitem__(self, name, df):
        # type: (str, object) -> None
        self._check(name)
        import sandcell_frames
        data = sandcell_frames.dumps(df)  # checks everything before a byte is written
        d = _os.path.join(self._out_dir, "datasets")
        _os.makedirs(d, exist_ok=True)
        path = _os.path.join(d, name + sandcell_frames.MEDIA_SUFFIX)
        tmp = _os.path.join(d, "." + name + ".tmp")
        # Written aside and renamed: a run stopped mid-write leaves the
        # earlier version or nothing, never a torn archive under the name.
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            _os.replace(tmp, path)
        except BaseException:
            try:
                _os.unlink(tmp)
            except OSError:
                pass
            raise
        self._published[name] = df

    def __delitem__(self, name):
        # type: (str) -> None
        if name not in self._published:
            raise KeyError("dataset %r was not published by this run" % (name,))
        import sandcell_frames
        _os.unlink(_os.path.join(self._out_dir, "datasets", name + sandcell_frames.MEDIA_SUFFIX))
        del self._published[name]

    def __contains__(self, name):
        # type: (object) -> bool
        return name in self._published or name in self._given

    def __iter__(self):
        # type: () -> object
        return iter(self.keys())

    def __len__(self):
        # type: () -> int
        return len(self.keys())

    def keys(self):
        # type: () -> list[str]
        return sorted(set(self._given) | set(self._published))

    def given(self):
        # type: () -> list[str]
        """Names of the datasets the caller handed in."""
        return sorted(self._given)

    def published(self):
        # type: () -> list[str]
        """Names of the datasets this run has published."""
        return sorted(self._published)

    def get(self, name, default=None):
        # type: (str, object) -> object
        """self[name] (in a session, one not handed in is asked for), or
        default."""
        try:
            return self[name]
        except KeyError:
            return default

    def __repr__(self):
        # type: () -> str
        return "<sandcell.datasets given=%r published=%r>" % (self.given(), self.published())


datasets = Datasets(_os.path.join(_INPUT_DIR, ".datasets"), output)


def _add_input(name, path):
    # type: (str, str) -> None
    """A session's loop: the host added (or replaced) an input."""
    _inputs[name] = path


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
