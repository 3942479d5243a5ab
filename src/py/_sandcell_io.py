"""The in-sandbox side of sandcell's channel (not a public module): the
mapping of Python values to JSON (docs/values.md), MIME bundles as
IPython builds them, and the record writer (docs/report.md, "The
channel").  sandcell.result() and display() load it on first use, so
`import sandcell` stays cheap; cell mode (_sandcell_cell) uses it too.
A convenience, not a boundary: the host parses every record strictly.
"""
import json as _json
import os as _os
import sys as _sys
import types as _types

MYPY = False  # true for mypy only: the import below costs time at run time
if MYPY:
    from typing import Callable
del MYPY

_RESULT_FD = int(_os.environ.get("SANDCELL_RESULT_FD", "3"))

# ---------------------------------------------------------------- values
#
# The mapping from Python values to JSON (docs/values.md).  Plain JSON
# stays plain; everything JSON cannot say is a *tag*: an object with exactly
# one key that starts with "$".  The host accepts only the tags listed
# there, each with its one documented payload form.

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1
# JSON depth a mapped value may reach; a deeper part becomes a $repr.  The
# host refuses records deeper than 64 and a value sits up to 3 levels down.
_MAX_DEPTH = 48
_REPR_MAX = 10000
# Attoseconds per numpy time unit: durations are formatted exactly from
# integers, whatever their unit.
_UNIT_AS = {"W": 604800 * 10 ** 18, "D": 86400 * 10 ** 18, "h": 3600 * 10 ** 18,
            "m": 60 * 10 ** 18, "s": 10 ** 18, "ms": 10 ** 15, "us": 10 ** 12,
            "ns": 10 ** 9, "ps": 10 ** 6, "fs": 10 ** 3, "as": 1}


def _text(s):
    # type: (str) -> str
    """s as it can cross in UTF-8: a lone surrogate (from a surrogateescape
    decode) becomes the text \\udcXX."""
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _float(x):
    # type: (float) -> object
    if x != x:
        return {"$float": "NaN"}
    if x in (float("inf"), float("-inf")):
        return {"$float": "Infinity" if x > 0 else "-Infinity"}
    return x


def _int(i):
    # type: (int) -> object
    if _INT_MIN <= i <= _INT_MAX:
        return i
    try:
        return {"$int": str(i)}
    except ValueError:  # more digits than sys.get_int_max_str_digits()
        return {"$repr": "<int of %d bits>" % i.bit_length()}


def _duration(attos):
    # type: (int) -> str
    """ISO 8601 duration of an exact number of attoseconds, one canonical
    form: [-]P<d>DT<h>H<m>M<s>[.<fraction>]S."""
    sign = "-" if attos < 0 else ""
    attos = abs(attos)
    secs, frac = divmod(attos, 10 ** 18)
    days, secs = divmod(secs, 86400)
    hours, secs = divmod(secs, 3600)
    mins, secs = divmod(secs, 60)
    text = "%sP%dDT%dH%dM%d" % (sign, days, hours, mins, secs)
    if frac:
        text += "." + ("%018d" % frac).rstrip("0")
    return text + "S"


def _repr(v):
    # type: (object) -> dict[str, object]
    try:
        r = repr(v)
        if type(r) is not str:
            raise TypeError
    except Exception:
        try:
            name = type(v).__qualname__
        except Exception:
            name = "object"
        r = "<unrepresentable %s>" % name
    if len(r) > _REPR_MAX:
        r = r[:_REPR_MAX] + "...[%d characters cut]" % (len(r) - _REPR_MAX)
    return {"$repr": _text(r)}


def _b64(data):
    # type: (bytes) -> str
    import binascii
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _nest(flat, shape):
    # type: (list[object], list[int]) -> object
    """flat (row-major) as nested lists of the given shape."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _numpy(v, np, depth, seen):
    # type: (object, _types.ModuleType, int, set[int]) -> object
    if isinstance(v, np.ndarray):
        shape = [int(n) for n in v.shape]
        if depth + 3 + len(shape) > _MAX_DEPTH:
            return _repr(v)
        kind = v.dtype.kind
        if kind in "Mm":
            flat = [_numpy(x, np, depth + 3, seen) for x in v.ravel()]
            data = _nest(flat, shape)  # type: object
        else:
            data = _jsonable(v.tolist(), depth + 2, seen)
        return {"$ndarray": {"dtype": str(v.dtype), "shape": shape, "data": data}}
    # Before the integers: numpy's timedelta64 is a signedinteger.
    if isinstance(v, np.datetime64):
        return {"$datetime": str(np.datetime_as_string(v))}
    if isinstance(v, np.timedelta64):
        if np.isnat(v):
            return {"$timedelta": "NaT"}
        unit, count = np.datetime_data(v.dtype)
        if unit not in _UNIT_AS:  # years and months have no fixed length
            return _repr(v)
        return {"$timedelta": _duration(int(v.astype("int64")) * count * _UNIT_AS[unit])}
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return _int(int(v))
    if isinstance(v, np.floating):
        return _float(float(v))
    if isinstance(v, np.complexfloating):
        return {"$complex": [_float(float(v.real)), _float(float(v.imag))]}
    if isinstance(v, np.str_):
        return _text(str(v))
    if isinstance(v, np.bytes_):
        return {"$bytes": _b64(bytes(v))}
    return _repr(v)


def _pandas(v, pd, depth, seen):
    # type: (object, _types.ModuleType, int, set[int]) -> object
    """A mapped value, or None if v is not one of pandas' own types."""
    if v is pd.NaT:
        return {"$datetime": "NaT"}
    if v is pd.NA:
        return {"$na": None}
    if isinstance(v, pd.Timestamp):
        return {"$datetime": v.isoformat()}
    if isinstance(v, pd.Timedelta):
        return {"$timedelta": _duration(int(v.value) * 10 ** 9)}
    if isinstance(v, pd.DataFrame):
        return {"$dataframe": {
            "columns": _jsonable(list(v.columns), depth + 2, seen),
            "index": _jsonable(list(v.index), depth + 2, seen),
            "dtypes": [str(t) for t in v.dtypes],
            "data": [_jsonable(list(row), depth + 3, seen)
                     for row in v.itertuples(index=False, name=None)]}}
    if isinstance(v, pd.Series):
        return {"$series": {
            "name": _jsonable(v.name, depth + 2, seen),
            "dtype": str(v.dtype),
            "index": _jsonable(list(v.index), depth + 2, seen),
            "data": _jsonable(v.tolist(), depth + 2, seen)}}
    if isinstance(v, pd.Index):
        return _jsonable(list(v), depth, seen)
    return None


def _jsonable(v, depth=0, seen=None):
    # type: (object, int, set[int] | None) -> object
    """v as plain JSON-ready data (dict with str keys, list, str, int,
    float, bool, None), following docs/values.md.  Never raises on a value."""
    if seen is None:
        seen = set()
    t = type(v)
    if v is None or t is bool:
        return v
    if t is str:
        return _text(v)  # type: ignore[arg-type]
    if t is int:
        return _int(v)  # type: ignore[arg-type]
    if t is float:
        return _float(v)  # type: ignore[arg-type]
    if depth >= _MAX_DEPTH:
        return {"$repr": "<nested deeper than %d levels>" % _MAX_DEPTH}
    try:
        return _jsonable_slow(v, depth, seen)
    except Exception:
        return _repr(v)


def _jsonable_slow(v, depth, seen):
    # type: (object, int, set[int]) -> object
    if isinstance(v, (list, tuple, dict, set, frozenset)):
        if id(v) in seen:
            return {"$repr": "<cycle: %s>" % type(v).__name__}
        seen.add(id(v))
        try:
            if isinstance(v, dict):
                items = list(dict.items(v))
                if all(type(k) is str for k, _ in items) and not (
                        len(items) == 1 and items[0][0].startswith("$")):
                    obj = {_text(k): _jsonable(x, depth + 1, seen) for k, x in items}
                    if len(obj) == len(items):  # no two keys became one text
                        return obj
                return {"$map": [[_jsonable(k, depth + 3, seen), _jsonable(x, depth + 3, seen)]
                                 for k, x in items]}
            if isinstance(v, (set, frozenset)):
                return {"$set": [_jsonable(x, depth + 2, seen) for x in v]}
            return [_jsonable(x, depth + 1, seen) for x in v]
        finally:
            seen.discard(id(v))
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return _int(int(v))
    if isinstance(v, float):
        return _float(float(v))
    if isinstance(v, str):
        return _text(str.__str__(v))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": _b64(bytes(v))}
    if isinstance(v, complex):
        return {"$complex": [_float(v.real), _float(v.imag)]}
    np = _sys.modules.get("numpy")
    if np is not None and isinstance(v, (np.ndarray, np.generic)):
        return _numpy(v, np, depth, seen)
    pd = _sys.modules.get("pandas")
    if pd is not None and type(v).__module__.startswith("pandas"):
        mapped = _pandas(v, pd, depth, seen)
        if mapped is not None:
            return mapped
    dt = _sys.modules.get("datetime")
    if dt is not None:
        if isinstance(v, dt.datetime):
            return {"$datetime": v.isoformat()}
        if isinstance(v, dt.date):
            return {"$date": v.isoformat()}
        if isinstance(v, dt.time):
            return {"$time": v.isoformat()}
        if isinstance(v, dt.timedelta):
            return {"$timedelta": _duration(
                ((v.days * 86400 + v.seconds) * 10 ** 6 + v.microseconds) * 10 ** 12)}
    dec = _sys.modules.get("decimal")
    if dec is not None and isinstance(v, dec.Decimal):
        return {"$decimal": str(v)}
    return _repr(v)


def _dumps(v):
    # type: (object) -> str
    """Compact JSON text of an already mapped value."""
    return _json.dumps(v, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _encode(value):
    # type: (object) -> str
    try:
        return _dumps(_jsonable(value))
    except Exception:
        # Only a broken json module gets here (the mapping never raises).
        return _dumps(_repr(value))


# --------------------------------------------------------------- channel
#
# One pipe, newline-framed records (docs/report.md, "The channel"):
#   <JSON value>      the result (what result() writes, as always)
#   O <JSON object>   one output (nbformat v4 stream/display_data/execute_result)
#   E <JSON object>   the uncaught exception
#   W <JSON object>   where the code was when the supervisor asked
# Records from several threads never interleave (one lock); a signal
# handler that interrupts a write defers its record until the write ends.

try:
    import _thread
    _lock = _thread.allocate_lock()
    _ident = _thread.get_ident
except ImportError:  # an interpreter built without threads
    _lock = None  # type: ignore[assignment]

    def _ident():
        # type: () -> int
        return 1

_writing = 0            # thread ident of the record write in progress
_deferred = []          # type: list[bytes]
# This module is imported by the bootstrap, in the main thread: the only
# one that runs Python signal handlers (a session's interrupt).
_main = _ident()
_holding = 0            # the main thread is inside _critical (depth)
_held_interrupt = None  # type: Callable[[], bool] | None
_pending = []           # type: list[str]
_pending_name = ""      # the stream _pending belongs to
_pending_len = 0
_STREAM_CHUNK = 8192    # buffered stream text is sent once it grows past this


def _write_all(data):
    # type: (bytes) -> None
    view = memoryview(data)
    while view:
        n = _os.write(_RESULT_FD, view)
        view = view[n:]


def _critical(make, swallow=True):
    # type: (Callable[[], bytes], bool) -> None
    """Runs make() and writes what it returns (then any deferred record)
    with the lock held.  An OSError (the code closed the channel) is
    swallowed when swallow is set."""
    global _writing
    main = _hold()
    try:
        if _lock is not None:
            _lock.acquire()
        try:
            _writing = _ident()
            try:
                line = make()
                if line:
                    _write_all(line)
                while _deferred:
                    _write_all(_deferred.pop(0))
            except OSError:
                if not swallow:
                    raise
            finally:
                _writing = 0
        finally:
            if _lock is not None:
                _lock.release()
        if _deferred:  # a handler ran between the last check and _writing = 0
            _critical(lambda: b"")
    finally:
        _unhold(main)


def _hold():
    # type: () -> bool
    """Starts a step of ours that takes locks (a record write, the session
    loop's stream plumbing): a session interrupt that comes meanwhile
    waits for its end (interrupt_or_hold).  True in the main thread, the
    only one an interrupt is raised in; pass it to _unhold()."""
    global _holding
    if _ident() != _main:
        return False
    _holding += 1
    return True


def _unhold(main):
    # type: (bool) -> None
    """Ends a step started with _hold(): an interrupt that came during it
    lands now, if still wanted (the cell may have ended meanwhile)."""
    global _holding, _held_interrupt
    if not main:
        return
    _holding -= 1
    if not _holding and _held_interrupt is not None:
        wanted, _held_interrupt = _held_interrupt, None
        if wanted():
            raise KeyboardInterrupt


def interrupt_or_hold(still_wanted):
    # type: (Callable[[], bool]) -> None
    """A session's SIGINT handler, in a running cell: KeyboardInterrupt
    now, or, inside a step of ours (_hold), as that step ends if
    still_wanted() then.  Raised inside one it would leave a lock held
    (the channel's: every later record, the cell's done among them, would
    wait forever) or a record half written."""
    global _held_interrupt
    if _holding:
        _held_interrupt = still_wanted
        return
    raise KeyboardInterrupt


def _take_pending():
    # type: () -> bytes
    """The buffered stream text as one record (lock held)."""
    global _pending, _pending_len
    if not _pending:
        return b""
    text = "".join(_pending)
    _pending, _pending_len = [], 0
    rec = {"output_type": "stream", "name": _pending_name, "text": _text(text)}
    return b"O " + _dumps(rec).encode("utf-8") + b"\n"


def _emit_output(rec):
    # type: (dict[str, object]) -> None
    """Sends one output after the stream text written before it."""
    line = b"O " + _dumps(rec).encode("utf-8") + b"\n"
    _critical(lambda: _take_pending() + line)


def _stream_locked(name, text):
    # type: (str, str) -> bytes
    global _pending_name, _pending_len
    line = b""
    if _pending and name != _pending_name:
        line = _take_pending()
    _pending_name = name
    _pending.append(text)
    _pending_len += len(text)
    if _pending_len >= _STREAM_CHUNK:
        line += _take_pending()
    return line


def _stream(name, text):
    # type: (str, str) -> None
    """Buffers text written to sys.stdout/sys.stderr in cell mode."""
    if text:
        _critical(lambda: _stream_locked(name, text))


def _flush_streams():
    # type: () -> None
    if _pending:
        _critical(_take_pending)


def _emit_record(kind, rec):
    # type: (bytes, dict[str, object]) -> None
    line = kind + b" " + _dumps(rec).encode("utf-8") + b"\n"
    _critical(lambda: _take_pending() + line)


def _emit_from_signal(kind, rec):
    # type: (bytes, dict[str, object]) -> None
    """For a signal handler.  It may have interrupted a record write of its
    own thread: then its record waits for that write to end.  If another
    thread is writing, it starts on a fresh line (that thread's record may
    be cut, which costs only that record: the host skips empty lines)."""
    line = kind + b" " + _dumps(rec).encode("utf-8") + b"\n"
    if _writing == _ident():
        _deferred.append(line)
        return
    if _lock is None or _lock.acquire(False):
        try:
            _write_all(_take_pending() + line)
        except OSError:
            pass
        finally:
            if _lock is not None:
                _lock.release()
        return
    try:
        _write_all(b"\n" + line)
    except OSError:
        pass


def result(value):
    # type: (object) -> None
    """sandcell.result(): the value as one result record."""
    line = _encode(value).encode("utf-8") + b"\n"
    _critical(lambda: line, False)


# ------------------------------------------------------------ display

_REPR_METHODS = (
    ("_repr_html_", "text/html"), ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"), ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"), ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"), ("_repr_javascript_", "application/javascript"),
    ("_repr_pdf_", "application/pdf"),
)
_figure_formats = ["png"]


def _mime_kind(mime):
    # type: (str) -> str
    """"json", "binary" (base64 text) or "text": the same rule as the host."""
    if mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json")):
        return "json"
    if (mime.startswith("image/") and not mime.endswith("+xml")) or mime == "application/pdf":
        return "binary"
    return "text"


def _mime_ok(mime):
    # type: (object) -> bool
    """A MIME type the host accepts (channel.c, mime_ok): type/subtype, each
    a letter or digit, then [A-Za-z0-9!#$&^_.+-]."""
    if not isinstance(mime, str) or not 3 <= len(mime) <= 127 or mime.count("/") != 1:
        return False
    a, b = mime.split("/")
    return bool(a) and bool(b) and a[0].isascii() and a[0].isalnum() and \
        b[0].isascii() and b[0].isalnum() and all(
            c.isascii() and (c.isalnum() or c in "/!#$&^_.+-") for c in mime)


def _note(msg):
    # type: (str) -> None
    try:
        _sys.stderr.write("[sandcell: %s]\n" % msg)
    except Exception:
        pass


def _mime_value(mime, data):
    # type: (str, object) -> object
    """data as the bundle carries it, or None if it cannot be."""
    kind = _mime_kind(mime)
    if kind == "json":
        if isinstance(data, (str, bytes)):
            try:
                data = _json.loads(data)
            except ValueError:
                return None
        return _jsonable(data, 3)
    if kind == "binary":
        import binascii
        if isinstance(data, (bytes, bytearray, memoryview)):
            return _b64(bytes(data))
        if isinstance(data, str):  # already base64: made canonical
            try:
                raw = binascii.a2b_base64("".join(data.split()).encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                return None
            return _b64(raw)
        return None
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("utf-8", "replace")
    if isinstance(data, str):
        return _text(data)
    return None


def _real_method(obj, name):
    # type: (object, str) -> object
    """obj's method name, unless obj answers every attribute (a proxy or a
    mock would claim every repr) or is a class (unbound methods)."""
    try:
        if getattr(obj, "_ipython_canary_method_should_not_exist_", None) is not None:
            return None
        if isinstance(obj, type):
            return None
        m = getattr(obj, name, None)
    except Exception:
        return None
    return m if callable(m) else None


def _figure_bundle(fig):
    # type: (object) -> tuple[dict[str, object], dict[str, object]]
    import io
    data = {}  # type: dict[str, object]
    for fmt in _figure_formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, bbox_inches="tight")  # type: ignore[attr-defined]
        raw = buf.getvalue()
        if fmt == "svg":
            data["image/svg+xml"] = raw.decode("utf-8", "replace")
        else:
            data["image/png"] = _b64(raw)
    data["text/plain"] = _repr(fig)["$repr"]
    return data, {}


def _bundle(obj):
    # type: (object) -> tuple[dict[str, object], dict[str, object]]
    """The MIME bundle of obj, as IPython's display formatter builds it:
    _repr_mimebundle_, then each _repr_*_ method, then text/plain.  A
    method that raises or returns something unusable is skipped, with a
    note on stderr."""
    data = {}  # type: dict[str, object]
    meta = {}  # type: dict[str, object]
    mpl_figure = _sys.modules.get("matplotlib.figure")
    if mpl_figure is not None and isinstance(obj, mpl_figure.Figure):
        try:
            return _figure_bundle(obj)
        except Exception as e:
            _note("drawing the figure failed: %s" % _repr(e)["$repr"])
    got = []  # type: list[tuple[str, object, object]]
    m = _real_method(obj, "_repr_mimebundle_")
    if m is not None:
        try:
            r = m(include=None, exclude=None)  # type: ignore[operator]
            md = {}  # type: object
            if isinstance(r, tuple) and len(r) == 2:
                r, md = r
            if isinstance(r, dict):
                for k, v in r.items():
                    got.append((k, v, md.get(k) if isinstance(md, dict) else None))
        except Exception as e:
            _note("_repr_mimebundle_ of %s raised %s" % (type(obj).__name__, _repr(e)["$repr"]))
    for name, mime in _REPR_METHODS:
        if any(g[0] == mime for g in got):
            continue
        m = _real_method(obj, name)
        if m is None:
            continue
        try:
            r = m()  # type: ignore[operator]
        except Exception as e:
            _note("%s of %s raised %s" % (name, type(obj).__name__, _repr(e)["$repr"]))
            continue
        md = None
        if isinstance(r, tuple) and len(r) == 2:
            r, md = r
        if r is not None:
            got.append((mime, r, md))
    for mime, v, md in got:
        if not _mime_ok(mime):
            _note("skipped an output of unusable MIME type %s" % _repr(mime)["$repr"])
            continue
        value = _mime_value(mime, v)
        if value is None:
            _note("skipped %s: not %s" % (mime, {"json": "JSON", "binary": "bytes or base64",
                                                   "text": "text"}[_mime_kind(mime)]))
            continue
        data[mime] = value
        if md is not None:
            meta[mime] = _jsonable(md, 3)
    if "text/plain" not in data:
        data["text/plain"] = _repr(obj)["$repr"]
    return data, meta


def display(*objs, **kwargs):
    # type: (object, object) -> None
    """sandcell.display()."""
    raw = bool(kwargs.get("raw", False))
    metadata = kwargs.get("metadata")
    for obj in objs:
        try:
            if raw and isinstance(obj, dict):
                data = {}  # type: dict[str, object]
                for k, v in obj.items():
                    value = _mime_value(k, v) if _mime_ok(k) else None
                    if value is None:
                        _note("skipped %s in a raw bundle" % _repr(k)["$repr"])
                    else:
                        data[k] = value
                meta = {}  # type: dict[str, object]
            else:
                data, meta = _bundle(obj)
            if isinstance(metadata, dict):
                mapped = _jsonable(metadata, 2)
                if isinstance(mapped, dict):
                    meta.update(mapped)
            _emit_output({"output_type": "display_data", "data": data, "metadata": meta})
            _mark_shown(obj)
        except Exception as e:
            _note("display() failed: %s" % _repr(e)["$repr"])


def _mark_shown(obj):
    # type: (object) -> None
    """A figure shown by display() is not shown again at the cell's end."""
    mpl_figure = _sys.modules.get("matplotlib.figure")
    if mpl_figure is not None and isinstance(obj, mpl_figure.Figure):
        try:
            obj._sandcell_shown = True
        except Exception:
            pass


def set_figure_formats(*formats):
    # type: (str) -> None
    """sandcell.set_figure_formats()."""
    chosen = [f for f in formats if f in ("png", "svg")]
    if not chosen or len(chosen) != len(formats):
        raise ValueError("figure formats are 'png' and 'svg'")
    _figure_formats[:] = list(dict.fromkeys(chosen))
