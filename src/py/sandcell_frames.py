"""sandcell frames: a typed, columnar, pickle-free DataFrame codec.

    import sandcell_frames as sf
    sf.dump(df, "/output/by_region.scf")          # or a binary file object
    df = sf.load("/output/by_region.scf")         # or bytes; FrameFormatError if invalid

The archive is a ZIP file whose members are all STORED (never compressed):
``schema.json`` (the frame's shape and the description of every column and
index), then ``0.npy``, ``1.npy``, ... (one flat array per buffer, numpy's
.npy format, little-endian, 64-byte aligned).  docs/datasets.md is the
specification; this module is its reference implementation.

Why this shape: the host reads what a sandbox wrote, so the reader must not
run anything the bytes choose.  Nothing here unpickles (there is no object
dtype in the format: text is UTF-8 bytes + offsets), nothing is evaluated
except numpy's own literal-only .npy header parser on a header of at most
1024 bytes, every size and offset in the file is checked against the bytes
actually present and against the caller's limits before any allocation that
depends on it, and the reader accepts exactly one canonical layout so that
there is no second way to say the same thing.  Every rejection is a
FrameFormatError.

The writer refuses what the format cannot carry exactly (TypeError naming
the column: e.g. an object column holding a Python object that is not a
str), instead of converting it.  What is carried with a documented loss is
listed in docs/datasets.md ("Lossy").

Only the standard library, numpy and pandas (Debian 12: numpy 1.24,
pandas 1.5) are used, so the same file runs inside the sandbox and on the
host.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
import math
import os
import re
import stat
import struct
import zlib
import importlib
from typing import Any, BinaryIO, Callable, Union

import numpy as np
import numpy.lib.format
import pandas as pd  # type: ignore[import]  # pandas 1.5 ships no type information
from numpy.typing import NDArray

# numpy's .npy reader and writer are declared without types: called as Any.
_npy: Any = numpy.lib.format
Array = NDArray[Any]
Desc = dict[str, Any]  # a JSON object of the schema

__all__ = ["FrameFormatError", "Limits", "DEFAULT_LIMITS", "dump", "dumps", "load",
           "FORMAT", "VERSION", "MEDIA_SUFFIX"]

FORMAT = "sandcell-frame"
VERSION = 1
MEDIA_SUFFIX = ".scf"

SCHEMA_NAME = "schema.json"
ALIGN = 64                      # every member's data starts at a multiple of this
_ZIP_MAX = 0xFFFFFFFF           # no ZIP64: one archive is < 4 GiB in version 1
_ZIP_MAX_MEMBERS = 0xFFFF
_NPY_HEADER_MAX = 1024          # ours are 128 bytes; numpy's own cap is 10000
_LABEL_INT_MIN, _LABEL_INT_MAX = -(1 << 63), (1 << 64) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_NAT = np.iinfo(np.int64).min
_TWO_DAYS_NS = 2 * 86_400 * 10**9  # more than any UTC offset there has been
_EDGE_MAX = 10_000

# ZIP record layouts (APPNOTE 6.3.x, little-endian, the fields we use).
_LOCAL = struct.Struct("<IHHHHHIIIHH")          # 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
_EOCD = struct.Struct("<IHHHHIIH")              # 22 bytes
_SIG_LOCAL, _SIG_CENTRAL, _SIG_EOCD = 0x04034B50, 0x02014B50, 0x06054B50
_ZIP_VERSION = 20               # 2.0: STORED, no ZIP64, no encryption
_DOS_DATE, _DOS_TIME = 0x0021, 0  # 1980-01-01 00:00: archives are reproducible
_PAD_ID = 0xD935                # the alignment-padding extra field (as zipalign)


class FrameFormatError(ValueError):
    """The input is not a valid sandcell frame archive, or it exceeds the
    reader's limits.  The only exception load() raises for bad bytes."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Caps checked by both sides: the writer refuses (ValueError) to write
    what a reader with the same limits would refuse (max_json_depth aside: a
    frame's schema nests about 8 deep), the reader refuses
    (FrameFormatError) before allocating anything that depends on the value."""
    max_bytes: int = 1 << 30          # the whole archive
    max_rows: int = 100_000_000
    max_columns: int = 10_000
    max_buffers: int = 65_000         # .npy members (the ZIP format caps at 65534)
    max_json_bytes: int = 16 << 20    # schema.json
    max_json_depth: int = 32
    max_label_chars: int = 1024       # one str label, index name, tz or freq

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if type(v) is not int or v < 1:
                raise ValueError(f"Limits.{f.name} must be a positive int, not {v!r}")
        if self.max_buffers > _ZIP_MAX_MEMBERS - 1:
            raise ValueError(f"Limits.max_buffers must be <= {_ZIP_MAX_MEMBERS - 1}")


DEFAULT_LIMITS = Limits()

# ---------------------------------------------------------------------------
# The closed lists: kinds and the physical dtype of each buffer.

_INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_FLOAT_DTYPES = ("float16", "float32", "float64")
_MASKED = {  # pandas extension dtype name -> numpy dtype of the values buffer
    "Int8": "int8", "Int16": "int16", "Int32": "int32", "Int64": "int64",
    "UInt8": "uint8", "UInt16": "uint16", "UInt32": "uint32", "UInt64": "uint64",
    "Float32": "float32", "Float64": "float64", "boolean": "bool",
}
_CODE_DTYPES = ("int8", "int16", "int32", "int64")
_UNITS = ("s", "ms", "us", "ns")
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# Missing-value codes of the text kinds' "nulls" buffer.
_PRESENT, _NONE, _NAN, _NA = 0, 1, 2, 3
_KINDS = ("int", "float", "bool", "masked", "text", "string", "categorical",
          "datetime", "timedelta", "labels")
# Where a values description sits decides which kinds it may have.
_ROLE_KINDS = {
    "data": frozenset(_KINDS) - {"labels"},
    "index": frozenset(_KINDS),
    "level": frozenset(_KINDS),
    "categories": frozenset({"int", "float", "bool", "masked", "text", "string", "datetime", "timedelta"}),
}
_TZ_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*\Z")
_TZ_OFFSET = re.compile(r"([+-])([0-9]{2}):([0-9]{2})\Z")
_FREQ = re.compile(r"-?[A-Za-z0-9]+(-[A-Za-z0-9]+)?\Z")
_HEXFLOAT = re.compile(r"-?(0x[0-9a-f]+(\.[0-9a-f]*)?p[+-][0-9]+|inf|nan)\Z")
# A calendar frequency (business days, month starts...) is checked by
# generating the dates one by one (pandas does, up to 130 us each for custom
# business hours), so it is only carried on indexes this long or shorter.
_FREQ_GENERATE_MAX = 10_000
_NPY_HEADER_CHARS = re.compile(rb"[ -~\n]*\Z")  # printable ASCII and the final newline
_NPY_CANONICAL = re.compile(rb"\{'descr': '([<|][bfiu][1248])', 'fortran_order': False, "
                            rb"'shape': \(([1-9][0-9]{0,18}|0),\), \} *\n\Z")


def _le(name: str) -> np.dtype[Any]:
    """The little-endian numpy dtype for a format dtype name."""
    return np.dtype(name).newbyteorder("<")


# ---------------------------------------------------------------------------
# Writing

class _Writer:
    """Collects the buffers of one archive while the schema is built."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.buffers: list[Array] = []

    def add(self, arr: Array) -> int:
        """Registers one 1-D buffer (copied to little-endian, contiguous
        layout only if it is not already) and returns its id."""
        arr = np.asarray(arr)
        if arr.ndim != 1 or arr.dtype.hasobject:
            raise ValueError("internal: buffers are 1-D and never hold objects")
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        arr = np.ascontiguousarray(arr)
        if len(self.buffers) >= self.limits.max_buffers:
            raise ValueError(f"the frame needs more than max_buffers={self.limits.max_buffers} buffers")
        self.buffers.append(arr)
        return len(self.buffers) - 1


def _where_col(i: int, label: Any) -> str:
    return f"column {i} ({label!r})"


def _check_str(s: str, where: str, limits: Limits | None) -> str:
    if limits is not None and len(s) > limits.max_label_chars:
        raise ValueError(f"{where}: label of {len(s)} characters exceeds max_label_chars={limits.max_label_chars}")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: {s[:40]!r} is not valid Unicode (lone surrogate)") from None
    return s


def _enc_label(v: Any, where: str, limits: Limits) -> Any:
    """A label (index name, labels-kind value) as tagged JSON: None, bool,
    int, str as themselves, a float as {"float": hex} (exact, and JSON has no
    NaN).  numpy scalars count as their Python type."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        i = int(v)
        if not _LABEL_INT_MIN <= i <= _LABEL_INT_MAX:
            raise ValueError(f"{where}: int label {i} is outside [-2**63, 2**64)")
        return i
    if isinstance(v, (float, np.floating)):
        if isinstance(v, np.floating) and v.dtype.itemsize > 8:
            raise TypeError(f"{where}: label {v!r} is a long double (not exact as a float)")
        return {"float": float(v).hex()}
    if isinstance(v, str):
        return _check_str(str(v), where, limits)
    raise TypeError(f"{where}: label {v!r} of type {type(v).__name__} is not supported "
                    "(labels and names are str, int, float, bool or None)")


def _tz_name(tz: Any, where: str) -> str:
    """The portable name of a time zone: an IANA name, "UTC", or a fixed
    offset "+HH:MM".  Zones without one (dateutil files, ...) are refused."""
    name = getattr(tz, "zone", None) or getattr(tz, "key", None)  # pytz, zoneinfo
    if isinstance(name, str):
        if name == "UTC" or _tz_known(name):
            return name
        raise TypeError(f"{where}: time zone {name!r} is not an IANA name known here")
    try:
        off = tz.utcoffset(None)
        dst = tz.dst(None)
    except Exception:  # a tzinfo subclass may raise anything: it is refused
        off = dst = None
    if isinstance(off, _dt.timedelta) and dst in (None, _dt.timedelta(0)):
        secs = int(off.total_seconds())
        if secs == 0:
            return "UTC"
        if secs % 60 == 0 and abs(secs) < 86400 and off == _dt.timedelta(seconds=secs):
            m = abs(secs) // 60
            return "%s%02d:%02d" % ("-" if secs < 0 else "+", m // 60, m % 60)
    raise TypeError(f"{where}: time zone {tz!r} has no IANA name or whole-minute fixed offset; "
                    "convert it, e.g. with .dt.tz_convert('Europe/Berlin')")


def _datetime_unit(dtype: Any, where: str) -> str:
    unit = np.datetime_data(dtype)[0] if isinstance(dtype, np.dtype) else getattr(dtype, "unit", "ns")
    if unit not in _UNITS:
        raise TypeError(f"{where}: datetime unit {unit!r} is not supported (s, ms, us, ns)")
    return unit


def _enc_text(w: _Writer, arr: Array, where: str, kind: str) -> Desc:
    """Object (or StringDtype) values that are str or missing, as UTF-8 bytes,
    int64 offsets (rows + 1) and a uint8 nulls code per row."""
    arr = np.asarray(arr, dtype=object)
    n = len(arr)
    nulls = np.zeros(n, dtype=np.uint8)
    # All str (the common case) is one C pass; only otherwise look for
    # missing values and for what is neither.
    if n and pd.api.types.infer_dtype(arr, skipna=False) != "string":
        if pd.api.types.infer_dtype(arr, skipna=True) not in ("string", "empty"):
            for i, v in enumerate(arr):
                if not isinstance(v, str) and not _is_missing(v):
                    raise TypeError(f"{where}: row {i} holds {type(v).__name__} {_short(v)}; object columns "
                                    "may hold only str and missing values (None, NaN, pd.NA): convert the "
                                    "column first (e.g. .astype(str) or a numeric dtype)")
        missing = np.flatnonzero(pd.isna(arr))
        for i in missing.tolist():
            nulls[i] = _null_code(arr[i], where, i)
        if kind == "string" and np.any((nulls != _PRESENT) & (nulls != _NA)):
            raise TypeError(f"{where}: a StringDtype column holds a missing value other than pd.NA")
        arr = arr.copy()
        arr[missing] = ""
    data, offsets = _utf8_join(arr.tolist(), where)
    return {"kind": kind, "data": w.add(data), "offsets": w.add(offsets), "nulls": w.add(nulls)}


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _null_code(v: Any, where: str, i: int) -> int:
    if v is None:
        return _NONE
    if v is pd.NA:
        return _NA
    if isinstance(v, float) and math.isnan(v):
        return _NAN
    raise TypeError(f"{where}: row {i} holds {_short(v)} ({type(v).__name__}); the missing values "
                    "a text column may hold are None, NaN and pd.NA")


def _utf8_join(arr: list[str], where: str) -> tuple[Array, Array]:
    """All strings of arr (no missing values left) as one UTF-8 byte array
    and n + 1 byte offsets.  The fast path joins with NUL separators in C and
    finds them with numpy; strings that contain NUL take the slow path."""
    n = len(arr)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n == 0:
        return np.zeros(0, np.uint8), offsets
    joined = "\x00".join(arr)
    try:
        raw = joined.encode("utf-8")
    except UnicodeEncodeError:
        for i, s in enumerate(arr):
            _check_str(s, f"{where}: row {i}", None)
        raise
    u8 = np.frombuffer(raw, dtype=np.uint8)
    seps = np.flatnonzero(u8 == 0)
    if len(seps) == n - 1:  # no string holds a NUL: the separators are exactly these
        offsets[1:n] = seps - np.arange(n - 1, dtype=np.int64)
        data = u8[u8 != 0] if n > 1 else u8.copy()
    else:
        parts = [s.encode("utf-8") for s in arr]
        np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=n), out=offsets[1:])
        data = np.frombuffer(b"".join(parts), dtype=np.uint8)
    offsets[n] = len(data)
    return data, offsets


def _enc_labels(arr: Any, where: str, limits: Limits) -> Desc:
    return {"kind": "labels",
            "labels": [_enc_label(v, f"{where} row {i}", limits) for i, v in enumerate(np.asarray(arr, dtype=object))]}


def _enc_values(w: _Writer, obj: Any, where: str, role: str) -> Desc:
    """One values description (plus its buffers) for a Series or an Index,
    of a kind a reader accepts where it sits (role)."""
    desc = _enc_values_any(w, obj, where, role)
    if desc["kind"] not in _ROLE_KINDS[role]:
        raise TypeError(f"{where}: {obj.dtype} values are not supported as {role}")
    return desc


def _enc_values_any(w: _Writer, obj: Any, where: str, role: str) -> Desc:
    dtype = obj.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if role == "categories":
            raise TypeError(f"{where}: categories that are themselves categorical are not supported")
        cat = obj.array if isinstance(obj, (pd.Series, pd.Index)) else obj
        codes = np.asarray(cat.codes)
        return {"kind": "categorical", "ordered": bool(dtype.ordered), "codes": w.add(codes),
                "categories": _enc_values(w, cat.categories, f"{where} categories", "categories")}
    if isinstance(dtype, pd.DatetimeTZDtype):
        arr = obj.array if isinstance(obj, (pd.Series, pd.Index)) else obj
        i8 = np.asarray(arr.asi8, dtype=np.int64)
        if _local_out_of_range(i8, dtype):
            raise ValueError(f"{where}: a value's local time in {dtype.tz} is outside pandas' range "
                             "(pandas holds it but cannot show or take it out)")
        return {"kind": "datetime", "unit": _datetime_unit(dtype, where), "tz": _tz_name(dtype.tz, where),
                "values": w.add(i8)}
    if isinstance(dtype, pd.StringDtype):
        if dtype.storage != "python":
            raise TypeError(f"{where}: StringDtype storage {dtype.storage!r} is not supported (python only)")
        arr = obj.array if isinstance(obj, (pd.Series, pd.Index)) else obj
        return _enc_text(w, arr.to_numpy(dtype=object), where, "string")
    if dtype.name in _MASKED and not isinstance(dtype, np.dtype):
        arr = obj.array if isinstance(obj, (pd.Series, pd.Index)) else obj
        base = _MASKED[dtype.name]
        mask = np.asarray(arr.isna(), dtype=bool)
        fill = False if base == "bool" else 0
        with np.errstate(invalid="ignore"):  # a signalling NaN is copied bit for bit, numpy just warns
            values = arr.to_numpy(dtype=base, na_value=fill)
        return {"kind": "masked", "dtype": dtype.name, "values": w.add(values), "mask": w.add(mask)}
    if not isinstance(dtype, np.dtype):
        raise TypeError(f"{where}: dtype {dtype} is not supported by the sandcell frame format "
                        "(see docs/datasets.md for the list)")
    arr = obj.to_numpy(copy=False) if isinstance(obj, (pd.Series, pd.Index)) else np.asarray(obj)
    k = dtype.kind
    if k in "iu" and dtype.name in _INT_DTYPES:
        return {"kind": "int", "dtype": dtype.name, "values": w.add(arr)}
    if k == "f" and dtype.name in _FLOAT_DTYPES:
        return {"kind": "float", "dtype": dtype.name, "values": w.add(arr)}
    if k == "b":
        return {"kind": "bool", "values": w.add(arr)}
    if k in "Mm":
        kind = "datetime" if k == "M" else "timedelta"
        desc: Desc = {"kind": kind, "unit": _datetime_unit(dtype, where)}
        if kind == "datetime":
            desc["tz"] = None
        desc["values"] = w.add(arr.view(np.int64))
        return desc
    if k == "O":
        mixed = len(arr) and pd.api.types.infer_dtype(arr, skipna=True) not in ("string", "empty")
        if mixed and role in ("index", "level"):
            return _enc_labels(arr, where, w.limits)
        return _enc_text(w, arr, where, "text")
    raise TypeError(f"{where}: dtype {dtype} is not supported by the sandcell frame format "
                    "(see docs/datasets.md for the list)")


def _freq_of(idx: pd.Index) -> str | None:
    """The frequency alias of a DatetimeIndex/TimedeltaIndex, when it has a
    plain one that parses back to the same offset and a reader will check it
    (_check_freq), else None: the frequency is dropped."""
    freq = getattr(idx, "freq", None)
    if freq is None:
        return None
    if not isinstance(freq, pd.offsets.Tick) and len(idx) > _FREQ_GENERATE_MAX:
        return None
    s = getattr(idx, "freqstr", None)
    if not isinstance(s, str) or len(s) > 32 or not _FREQ.match(s):
        return None
    try:
        return s if pd.tseries.frequencies.to_offset(s) == freq else None
    except ValueError:
        return None


def _enc_index(w: _Writer, idx: pd.Index, where: str) -> Desc:
    lim = w.limits
    if isinstance(idx, pd.RangeIndex):
        return {"kind": "range", "start": int(idx.start), "stop": int(idx.stop), "step": int(idx.step),
                "name": _enc_label(idx.name, f"{where} name", lim)}
    if isinstance(idx, pd.MultiIndex):
        levels = []
        for i, (lev, codes) in enumerate(zip(idx.levels, idx.codes)):
            freq = _freq_of(lev) if isinstance(lev, (pd.DatetimeIndex, pd.TimedeltaIndex)) else None
            levels.append({"values": _enc_values(w, lev, f"{where} level {i}", "level"),
                           "codes": w.add(np.asarray(codes)), "freq": freq})
        return {"kind": "multi", "names": [_enc_label(n, f"{where} level name", lim) for n in idx.names],
                "levels": levels}
    if isinstance(idx, (pd.PeriodIndex, pd.IntervalIndex)):
        raise TypeError(f"{where}: {type(idx).__name__} is not supported")
    freq = _freq_of(idx) if isinstance(idx, (pd.DatetimeIndex, pd.TimedeltaIndex)) else None
    return {"kind": "index", "name": _enc_label(idx.name, f"{where} name", lim), "freq": freq,
            "values": _enc_values(w, idx, where, "index")}


def _schema(df: pd.DataFrame, w: _Writer) -> Desc:
    lim = w.limits
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"dump() takes a pandas DataFrame, not {type(df).__name__}")
    rows, cols = df.shape
    if rows > lim.max_rows:
        raise ValueError(f"the frame has {rows} rows, more than max_rows={lim.max_rows}")
    if cols > lim.max_columns:
        raise ValueError(f"the frame has {cols} columns, more than max_columns={lim.max_columns}")
    schema: Desc = {"format": FORMAT, "version": VERSION, "rows": rows,
                    "index": _enc_index(w, df.index, "index"),
                    "columns": _enc_index(w, df.columns, "columns"), "data": []}
    for i in range(cols):
        ser = df.iloc[:, i]
        schema["data"].append(_enc_values(w, ser, _where_col(i, df.columns[i]), "data"))
    return schema


def _npy_header(arr: Array) -> bytes:
    f = io.BytesIO()
    _npy.write_array_header_1_0(f, _npy.header_data_from_array_1_0(arr))
    return f.getvalue()


def _pad_extra(offset: int, name_len: int) -> bytes:
    """The local header's extra field that makes the member's data start at
    a multiple of ALIGN: one record (id 0xD935, the alignment as uint16,
    zeros), as short as possible."""
    base = offset + _LOCAL.size + name_len + 6
    pad = (-base) % ALIGN
    return struct.pack("<HHH", _PAD_ID, 2 + pad, ALIGN) + bytes(pad)


def _members(schema_bytes: bytes, buffers: list[Array]) -> list[tuple[bytes, list[Any]]]:
    out: list[tuple[bytes, list[Any]]] = [(SCHEMA_NAME.encode(), [schema_bytes])]
    for i, arr in enumerate(buffers):
        out.append((f"{i}.npy".encode(), [_npy_header(arr), arr.view(np.uint8)]))
    return out


@dataclasses.dataclass
class _Entry:
    """One member's place in the archive being written."""
    name: bytes
    parts: list[Any]  # bytes-like buffers, written one after the other
    size: int
    extra: bytes      # the local header's alignment padding
    offset: int       # of the local header
    crc: int = 0


def _plan(members: list[tuple[bytes, list[Any]]], max_bytes: int) -> tuple[list[_Entry], int, int]:
    """The layout of docs/datasets.md for these members, the central
    directory's offset and its size.  The total size is checked before any
    CRC is computed."""
    entries = []
    offset = 0
    for name, parts in members:
        size = sum(memoryview(p).nbytes for p in parts)
        extra = _pad_extra(offset, len(name))
        entries.append(_Entry(name, parts, size, extra, offset))
        offset += _LOCAL.size + len(name) + len(extra) + size
    cd_size = sum(_CENTRAL.size + len(e.name) for e in entries)
    total = offset + cd_size + _EOCD.size
    cap = min(max_bytes, _ZIP_MAX)
    if total > cap:
        raise ValueError(f"the archive would be {total} bytes, more than "
                         + (f"max_bytes={max_bytes}" if cap == max_bytes else "the 4 GiB of format version 1"))
    for e in entries:
        for p in e.parts:
            e.crc = zlib.crc32(p, e.crc)
    return entries, offset, cd_size


def _parts(entries: list[_Entry], cd_off: int, cd_size: int) -> list[Any]:
    """The archive as a list of byte buffers, in order (no copy of the data)."""
    out: list[Any] = []
    for e in entries:
        out.append(_LOCAL.pack(_SIG_LOCAL, _ZIP_VERSION, 0, 0, _DOS_TIME, _DOS_DATE, e.crc, e.size, e.size,
                               len(e.name), len(e.extra)) + e.name + e.extra)
        out.extend(e.parts)
    for e in entries:
        out.append(_CENTRAL.pack(_SIG_CENTRAL, _ZIP_VERSION, _ZIP_VERSION, 0, 0, _DOS_TIME, _DOS_DATE, e.crc,
                                 e.size, e.size, len(e.name), 0, 0, 0, 0, 0, e.offset) + e.name)
    out.append(_EOCD.pack(_SIG_EOCD, 0, 0, len(entries), len(entries), cd_size, cd_off, 0))
    return out


def _encode(df: pd.DataFrame, limits: Limits) -> list[Any]:
    """The whole archive for df as a list of buffers, after every check:
    nothing is written before this returns."""
    w = _Writer(limits)
    schema = _schema(df, w)
    raw = json.dumps(schema, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    if len(raw) > limits.max_json_bytes:
        raise ValueError(f"schema.json would be {len(raw)} bytes, more than max_json_bytes={limits.max_json_bytes}")
    return _parts(*_plan(_members(raw, w.buffers), limits.max_bytes))


def dump(df: pd.DataFrame, dest: Union[str, "os.PathLike[str]", BinaryIO], *, limits: Limits = DEFAULT_LIMITS) -> int:
    """Writes df to dest (a path, created or truncated, or a binary file
    object: nothing is seeked) and returns the archive's size in bytes.

    Raises TypeError for content the format does not carry (naming the
    column), ValueError for content beyond the limits or not representable
    (e.g. a lone surrogate in a str).  Nothing is written in either case:
    the whole layout is planned and checked before the first write."""
    parts = _encode(df, limits)
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as f:
            return _write_all(f, parts)
    return _write_all(dest, parts)


def _write_all(f: BinaryIO, parts: list[Any]) -> int:
    total = 0
    for p in parts:
        view = memoryview(p).cast("B")
        while view:  # a raw file object may write less than asked
            k = f.write(view)
            if k is None:
                raise BlockingIOError("dump() needs a blocking file object")
            total += k
            view = view[k:]
    return total


def dumps(df: pd.DataFrame, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """dump() into bytes (one allocation of the exact size)."""
    return b"".join(_encode(df, limits))


# ---------------------------------------------------------------------------
# Reading.  Every check raises FrameFormatError through _bad().

def _bad(msg: str) -> FrameFormatError:
    return FrameFormatError(msg)


def _read_source(src: Any, limits: Limits) -> bytes:
    """The archive's bytes, at most max_bytes of them, without trusting a
    file's reported size (it is only used to refuse early)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        size = memoryview(src).nbytes
        if size > limits.max_bytes:
            raise _bad(f"archive of {size} bytes exceeds max_bytes={limits.max_bytes}")
        # bytes are used as they are; a bytearray or memoryview is copied so
        # that the caller cannot change it while it is being checked and used.
        return src if isinstance(src, bytes) else memoryview(src).tobytes()
    if isinstance(src, (str, os.PathLike)):
        # O_NONBLOCK: opening a FIFO must not hang; it is refused just below.
        try:
            fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise _bad(f"cannot open {os.fsdecode(src)!r}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _bad(f"{os.fsdecode(src)!r} is not a regular file")
            if st.st_size > limits.max_bytes:
                raise _bad(f"archive of {st.st_size} bytes exceeds max_bytes={limits.max_bytes}")
        except BaseException:
            os.close(fd)
            raise
        with open(fd, "rb", buffering=0, closefd=True) as f:
            return _read_capped(f, limits.max_bytes)
    if hasattr(src, "read"):
        return _read_capped(src, limits.max_bytes)
    raise TypeError(f"load() takes a path, bytes or a binary file object, not {type(src).__name__}")


def _read_capped(f: Any, cap: int) -> bytes:
    chunks = []
    total = 0
    while True:
        chunk = f.read(min(cap + 1 - total, 1 << 24))
        if not chunk:
            break
        if not isinstance(chunk, (bytes, bytearray)):
            raise TypeError("load() needs a binary file object")
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            raise _bad(f"archive exceeds max_bytes={cap}")
    return b"".join(chunks)


@dataclasses.dataclass
class _Member:
    name: str
    start: int  # of the data, in the archive
    size: int


def _parse_zip(data: bytes, limits: Limits) -> list[_Member]:
    """The archive's members, checked against the one layout the format
    allows: members back to back from offset 0, each STORED with its data
    aligned, named schema.json, 0.npy, 1.npy, ... in that order, then the
    central directory, then the end record with no comment."""
    n = len(data)
    if n < _EOCD.size:
        raise _bad("not a sandcell frame archive: too short for a ZIP end record")
    sig, disk, cd_disk, cnt_disk, cnt, cd_size, cd_off, comment = _EOCD.unpack_from(data, n - _EOCD.size)
    if sig != _SIG_EOCD:
        raise _bad("not a sandcell frame archive: no ZIP end record at the end (a comment or trailing data?)")
    if disk or cd_disk or cnt_disk != cnt or comment:
        raise _bad("ZIP end record: multi-disk archive or comment")
    if cnt < 1 or cnt - 1 > limits.max_buffers:
        raise _bad(f"ZIP holds {cnt} members; a frame has schema.json and at most "
                   f"max_buffers={limits.max_buffers} buffers")
    if cd_off + cd_size != n - _EOCD.size:
        raise _bad("ZIP central directory does not end where the end record starts")
    if cd_size != sum(_CENTRAL.size + len(_member_name(i)) for i in range(cnt)):
        raise _bad("ZIP central directory size does not match its member names")
    members = []
    pos = cd_off
    expect_local = 0
    for i in range(cnt):
        name = _member_name(i)
        (sig, _made, need, flags, method, _t, _d, crc, csize, usize, nlen, xlen, clen, dstart, _iattr,
         _eattr, local) = _CENTRAL.unpack_from(data, pos)
        if sig != _SIG_CENTRAL:
            raise _bad(f"ZIP central directory entry {i}: bad signature")
        if data[pos + _CENTRAL.size:pos + _CENTRAL.size + nlen] != name.encode() or nlen != len(name):
            raise _bad(f"ZIP member {i} must be named {name!r}")
        if need > _ZIP_VERSION or flags or method or xlen or clen or dstart:
            raise _bad(f"ZIP member {name!r}: flags, compression, encryption, extra data or a comment "
                       "(members must be STORED and plain)")
        if csize != usize:
            raise _bad(f"ZIP member {name!r}: compressed and uncompressed sizes differ")
        if local != expect_local:
            raise _bad(f"ZIP member {name!r}: not where the previous member ends (gap or overlap)")
        start = _check_local(data, local, name, crc, usize, cd_off)
        members.append(_Member(name, start, usize))
        expect_local = start + usize
        pos += _CENTRAL.size + nlen
    if expect_local != cd_off:
        raise _bad("ZIP: data between the last member and the central directory")
    return members


def _member_name(i: int) -> str:
    return SCHEMA_NAME if i == 0 else f"{i - 1}.npy"


def _check_local(data: bytes, off: int, name: str, crc: int, size: int, limit: int) -> int:
    """Checks one local header against its central entry; returns where
    the member's data starts."""
    if off + _LOCAL.size > limit:
        raise _bad(f"ZIP member {name!r}: local header out of bounds")
    sig, need, flags, method, _t, _d, lcrc, csize, usize, nlen, xlen = _LOCAL.unpack_from(data, off)
    if sig != _SIG_LOCAL:
        raise _bad(f"ZIP member {name!r}: bad local header signature")
    if need > _ZIP_VERSION or flags or method or (lcrc, csize, usize) != (crc, size, size):
        raise _bad(f"ZIP member {name!r}: local header disagrees with the central directory")
    p = off + _LOCAL.size
    if nlen != len(name) or data[p:p + nlen] != name.encode():
        raise _bad(f"ZIP member {name!r}: local header names another member")
    p += nlen
    if xlen != len(_pad_extra(off, nlen)) or p + xlen > limit:
        raise _bad(f"ZIP member {name!r}: extra field is not the alignment padding")
    pid, plen, palign = struct.unpack_from("<HHH", data, p)
    if pid != _PAD_ID or plen != xlen - 4 or palign != ALIGN or any(data[p + 6:p + xlen]):
        raise _bad(f"ZIP member {name!r}: extra field is not the alignment padding")
    start = int(p + xlen)
    if start % ALIGN:
        raise _bad(f"ZIP member {name!r}: data is not {ALIGN}-byte aligned")
    if start + size > limit:
        raise _bad(f"ZIP member {name!r}: data runs past the central directory")
    if zlib.crc32(memoryview(data)[start:start + size]) != crc:
        raise _bad(f"ZIP member {name!r}: CRC-32 mismatch (corrupt archive)")
    return start


def _no_dup_keys(pairs: list[tuple[str, Any]]) -> Desc:
    d = {}
    for k, v in pairs:
        if k in d:
            raise _bad(f"schema.json: duplicate key {k!r}")
        d[k] = v
    return d


def _no_float(s: str) -> Any:
    raise _bad(f"schema.json: JSON number {s[:20]!r} has a fraction or exponent (floats are hex strings)")


def _no_constant(s: str) -> Any:
    raise _bad(f"schema.json: {s} is not JSON")


def _json_int(s: str) -> int:
    if len(s) > 21:
        raise _bad("schema.json: integer too long")
    return int(s)


def _parse_schema(raw: memoryview, limits: Limits) -> Any:
    if len(raw) > limits.max_json_bytes:
        raise _bad(f"schema.json of {len(raw)} bytes exceeds max_json_bytes={limits.max_json_bytes}")
    try:
        text = bytes(raw).decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_no_dup_keys, parse_float=_no_float,
                         parse_int=_json_int, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise _bad("schema.json is not UTF-8") from None
    except RecursionError:
        raise _bad("schema.json nests too deeply") from None
    except json.JSONDecodeError as e:
        raise _bad(f"schema.json is not JSON: {e}") from None
    _check_depth(doc, limits.max_json_depth)
    return doc


def _check_depth(doc: Any, limit: int) -> None:
    stack = [(doc, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            if d > limit:
                raise _bad(f"schema.json nests deeper than max_json_depth={limit}")
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))


def _obj(v: Any, where: str, keys: tuple[str, ...]) -> Desc:
    """v must be a JSON object with exactly these keys."""
    if not isinstance(v, dict):
        raise _bad(f"{where}: expected an object")
    if set(v) != set(keys):
        extra, missing = sorted(set(v) - set(keys)), sorted(set(keys) - set(v))
        raise _bad(f"{where}: keys {sorted(v)} (missing {missing}, unknown {extra})")
    return v


def _int(v: Any, where: str, lo: int, hi: int) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise _bad(f"{where}: expected an integer in [{lo}, {hi}], got {_short(v)}")
    return v


def _choice(v: Any, where: str, allowed: tuple[str, ...]) -> str:
    if type(v) is not str or v not in allowed:
        raise _bad(f"{where}: {_short(v)} is not one of {list(allowed)}")
    return v


def _bool(v: Any, where: str) -> bool:
    if type(v) is not bool:
        raise _bad(f"{where}: expected true or false")
    return v


def _dec_str(v: Any, where: str, limits: Limits) -> str:
    if type(v) is not str:
        raise _bad(f"{where}: expected a string")
    if len(v) > limits.max_label_chars:
        raise _bad(f"{where}: string of {len(v)} characters exceeds max_label_chars={limits.max_label_chars}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(f"{where}: string holds a lone surrogate") from None
    return v


def _dec_label(v: Any, where: str, limits: Limits) -> Any:
    if v is None or type(v) is bool:
        return v
    if type(v) is int:
        return _int(v, where, _LABEL_INT_MIN, _LABEL_INT_MAX)
    if type(v) is str:
        return _dec_str(v, where, limits)
    if type(v) is dict and len(v) == 1 and type(v.get("float")) is str:
        h = v["float"]
        if len(h) > 40 or not _HEXFLOAT.match(h):
            raise _bad(f"{where}: {_short(h)} is not a hex float")
        x = float.fromhex(h)
        return np.nan if x != x else x  # pandas' own NaN object: label lookups compare by identity
    raise _bad(f"{where}: a label is null, true, false, an integer, a string or {{\"float\": hex}}")


class _Reader:
    """The state of one load: the archive, its members, the limits, and
    which buffers the schema has used (each exactly once)."""

    def __init__(self, data: bytes, members: list[_Member], limits: Limits) -> None:
        self.data = data
        self.view = memoryview(data)
        self.members = members[1:]
        self.used = [False] * len(self.members)
        self.limits = limits

    def buffer(self, ref: Any, where: str, dtypes: tuple[str, ...], length: int | None) -> Array:
        """The read-only array of buffer ref: its .npy header parsed by numpy
        (at most _NPY_HEADER_MAX bytes, version 1.0), its dtype one of
        dtypes, 1-D, C order, with exactly `length` items when length is
        given, and its size exactly the member's size."""
        i = _int(ref, where, 0, len(self.members) - 1 if self.members else -1)
        if self.used[i]:
            raise _bad(f"{where}: buffer {i} is used twice")
        self.used[i] = True
        m = self.members[i]
        head = self.view[m.start:m.start + min(m.size, _NPY_HEADER_MAX + 10)]
        shape, fortran, dtype, hlen = _npy_header_of(bytes(head), f"{where} ({m.name})")
        if (m.start + hlen) % ALIGN:
            raise _bad(f"{where} ({m.name}): array data is not {ALIGN}-byte aligned")
        allowed = {_le(d).str: _le(d) for d in dtypes}
        if dtype.str not in allowed or dtype.fields is not None or dtype.subdtype is not None:
            raise _bad(f"{where} ({m.name}): dtype {dtype.str!r}, expected one of {sorted(allowed)}")
        if fortran or len(shape) != 1:
            raise _bad(f"{where} ({m.name}): shape {shape}, expected a 1-D array in C order")
        count = shape[0]
        if length is not None and count != length:
            raise _bad(f"{where} ({m.name}): {count} items, expected {length}")
        if count < 0 or hlen + count * dtype.itemsize != m.size:
            raise _bad(f"{where} ({m.name}): {count} items of {dtype.itemsize} bytes do not fill the member "
                       f"of {m.size} bytes")
        return np.frombuffer(self.data, dtype=allowed[dtype.str], count=count, offset=m.start + hlen)


def _npy_header_of(head: bytes, where: str) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """Parses a .npy 1.0 header with numpy's own (literal-only) parser."""
    if len(head) < 10 or head[:8] != b"\x93NUMPY\x01\x00":
        raise _bad(f"{where}: not a .npy version 1.0 array")
    hlen = 10 + struct.unpack_from("<H", head, 8)[0]
    if hlen > _NPY_HEADER_MAX or hlen > len(head):
        raise _bad(f"{where}: .npy header longer than {_NPY_HEADER_MAX} bytes or than the member")
    if not _NPY_HEADER_CHARS.match(head[10:hlen]):
        raise _bad(f"{where}: .npy header holds bytes other than printable ASCII")
    m = _NPY_CANONICAL.match(head[10:hlen])
    if m:
        # The header numpy's writer makes for a 1-D array: byte for byte
        # what _npy_header() writes for this dtype and count, so what
        # numpy's parser would return is known.  (numpy's parser runs the
        # header through Python's tokenizer first: ~1 ms per buffer.)
        descr, count = m.group(1).decode(), int(m.group(2))
        if head[:hlen] == _npy_header_for(descr, count):
            return (count,), False, np.dtype(descr), hlen
    f = io.BytesIO(head[:hlen])
    try:
        _npy.read_magic(f)
        shape, fortran, dtype = _npy.read_array_header_1_0(f, max_header_size=_NPY_HEADER_MAX)
    except Exception as e:  # numpy's parser of hostile bytes: anything it raises means invalid
        raise _bad(f"{where}: bad .npy header ({type(e).__name__}: {str(e)[:120]})") from None
    return shape, fortran, dtype, hlen


def _npy_header_for(descr: str, count: int) -> bytes:
    f = io.BytesIO()
    _npy.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": (count,)})
    return f.getvalue()


def _strict_bool(arr: Array, where: str) -> Array:
    """A bool buffer must hold only the bytes 0 and 1."""
    if len(arr) and arr.view(np.uint8).max() > 1:
        raise _bad(f"{where}: bool buffer holds a byte other than 0 and 1")
    return arr


def _to_ns(values: Array, unit: str, where: str) -> Array:
    """int64 ticks of `unit` as int64 nanoseconds (pandas 1.5 holds only
    ns); NaT stays NaT, anything that would overflow is refused."""
    f = _UNIT_NS[unit]
    if f == 1:
        return values
    nat = values == _NAT
    lim = _I64_MAX // f
    if np.any(((values > lim) | (values < -lim)) & ~nat):
        raise _bad(f"{where}: a {unit} value is out of the nanosecond range")
    out = values * f
    out[nat] = _NAT
    return out


def _tz_known(name: str) -> bool:
    try:
        # pandas 1.5 turns tz names into pytz zones: ask its (static) list.
        return name in importlib.import_module("pytz").all_timezones_set
    except ImportError:
        return name in _zoneinfo_names()


_ZONEINFO_NAMES: frozenset[str] | None = None


def _zoneinfo_names() -> frozenset[str]:
    global _ZONEINFO_NAMES
    if _ZONEINFO_NAMES is None:
        import zoneinfo
        _ZONEINFO_NAMES = frozenset(zoneinfo.available_timezones())
    return _ZONEINFO_NAMES


def _dec_tz(v: Any, where: str, limits: Limits) -> Any:
    if v is None:
        return None
    name = _dec_str(v, where, limits)
    m = _TZ_OFFSET.match(name)
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        if int(m.group(3)) >= 60 or minutes >= 24 * 60 or minutes == 0:
            raise _bad(f"{where}: {name!r} is not a valid non-zero UTC offset")
        return _dt.timezone(_dt.timedelta(minutes=-minutes if m.group(1) == "-" else minutes))
    if len(name) > 64 or not _TZ_NAME.match(name) or ".." in name or not (name == "UTC" or _tz_known(name)):
        raise _bad(f"{where}: {_short(name)} is not a known IANA time zone")
    return name


def _check_unique_present(kind: str, values: Any, where: str) -> None:
    """Category and MultiIndex level values: no missing value and no
    duplicate.  Checked by sorting, not hashing: pandas' own check hashes,
    and its integer hash tables are quadratic on crafted keys."""
    if kind in ("text", "string"):
        data, nulls = values
        if np.any(nulls):
            raise _bad(f"{where}: holds a missing value")
        s = sorted(data.tolist())
        if any(a == b for a, b in zip(s, s[1:])):
            raise _bad(f"{where}: holds a duplicate value")
        return
    if kind == "labels":
        nums = sorted(v for v in values if v is not None and not isinstance(v, str))
        strs = sorted(v for v in values if isinstance(v, str))
        if any(v is None for v in values) or any(v != v for v in nums):
            raise _bad(f"{where}: holds a missing value")
        if any(a == b for s in (nums, strs) for a, b in zip(s, s[1:])):
            raise _bad(f"{where}: holds a duplicate value")
        return
    if kind == "masked":
        vals, mask = values
        if np.any(mask):
            raise _bad(f"{where}: holds a missing value")
        arr = vals
    elif kind == "categorical":
        arr = values
        if np.any(arr == -1):
            raise _bad(f"{where}: holds a missing value")
    else:
        arr = values
        if kind == "float" and np.any(np.isnan(arr)):
            raise _bad(f"{where}: holds a missing value")
        if kind in ("datetime", "timedelta") and np.any(arr == _NAT):
            raise _bad(f"{where}: holds a missing value")
    ordered = np.sort(arr, kind="stable")  # stable = radix/timsort for ints: O(n log n) at worst
    if len(ordered) > 1 and np.any(ordered[1:] == ordered[:-1]):
        raise _bad(f"{where}: holds a duplicate value")


def _known_unique(idx: pd.Index) -> pd.Index:
    """Marks an index whose values _check_unique_present() has checked as
    unique, so that pandas does not check again.  pandas checks category
    uniqueness by hashing (in every Categorical constructor, fast path
    included), and its integer hash tables are quadratic on crafted keys:
    200,000 colliding int64 categories took 157 s.  Index.is_unique is a
    cached property; seeding its cache is the one hook that keeps the public
    constructors.  tests/frames/test_hostile.py fails if a pandas release
    stops honouring it."""
    cache = getattr(idx, "_cache", None)
    if isinstance(cache, dict):
        cache["is_unique"] = True
    return idx


class _Decoded:
    """A decoded values description: `array` for pandas, plus what the
    uniqueness check needs (`check`)."""

    def __init__(self, kind: str, array: Any, check: Any) -> None:
        self.kind = kind
        self.array = array
        self.check = check


def _dec_values(r: _Reader, desc: Any, where: str, role: str, length: int | None) -> _Decoded:
    if not isinstance(desc, dict):
        raise _bad(f"{where}: expected a values object")
    kind = _choice(desc.get("kind"), f"{where}.kind", _KINDS)
    if kind not in _ROLE_KINDS[role]:
        raise _bad(f"{where}: kind {kind!r} is not allowed for {role} values")
    return _DECODERS[kind](r, desc, where, length)


def _dec_int(r: _Reader, d: Desc, where: str, n: int | None) -> _Decoded:
    _obj(d, where, ("kind", "dtype", "values"))
    dt = _choice(d["dtype"], f"{where}.dtype", _INT_DTYPES)
    v = r.buffer(d["values"], f"{where}.values", (dt,), n)
    return _Decoded("int", v, v)


def _dec_float(r: _Reader, d: Desc, where: str, n: int | None) -> _Decoded:
    _obj(d, where, ("kind", "dtype", "values"))
    dt = _choice(d["dtype"], f"{where}.dtype", _FLOAT_DTYPES)
    v = r.buffer(d["values"], f"{where}.values", (dt,), n)
    return _Decoded("float", v, v)


def _dec_bool(r: _Reader, d: Desc, where: str, n: int | None) -> _Decoded:
    _obj(d, where, ("kind", "values"))
    v = _strict_bool(r.buffer(d["values"], f"{where}.values", ("bool",), n), where)
    return _Decoded("bool", v, v)


def _dec_masked(r: _Reader, d: Desc, where: str, n: int | None) -> _Decoded:
    _obj(d, where, ("kind", "dtype", "values", "mask"))
    name = _choice(d["dtype"], f"{where}.dtype", tuple(_MASKED))
    base = _MASKED[name]
    v = r.buffer(d["values"], f"{where}.values", (base,), n)
    if base == "bool":
        _strict_bool(v, f"{where}.values")
    mask = _strict_bool(r.buffer(d["mask"], f"{where}.mask", ("bool",), len(v)), f"{where}.mask")
    cls = (pd.arrays.BooleanArray if base == "bool" else
           pd.arrays.FloatingArray if base.startswith("float") else pd.arrays.IntegerArray)
    return _Decoded("masked", cls(v.copy(), mask.copy()), (v, mask))


def _dec_text_kind(r: _Reader, d: Desc, where: str, n: int | None) -> _Decoded:
    _obj(d, where, ("kind", "data", "offsets", "nulls"))
    kind: str = d["kind"]  # "text" or "string": _dec_values chose this decoder by it
    nulls = r.buffer(d["nulls"], f"{where}.nulls", ("uint8",), n)
    rows = len(nulls)
    offsets = r.buffer(d["offsets"], f"{where}.offsets", ("int64",), rows + 1)
    data = r.buffer(d["data"], f"{where}.data", ("uint8",), None)
    allowed = (_PRESENT, _NA) if kind == "string" else (_PRESENT, _NONE, _NAN, _NA)
    if rows and (nulls.max() > _NA or (kind == "string" and np.any((nulls != _PRESENT) & (nulls != _NA)))):
        raise _bad(f"{where}.nulls: a code other than {list(allowed)}")
    if offsets[0] != 0 or offsets[-1] != len(data):
        raise _bad(f"{where}.offsets: must start at 0 and end at the data's length {len(data)}")
    lengths = np.diff(offsets)
    if np.any(lengths < 0):
        raise _bad(f"{where}.offsets: not monotonic")
    if np.any(lengths[nulls != _PRESENT]):
        raise _bad(f"{where}: a missing row has a non-empty string")
    strs = _utf8_split(data, offsets, rows, where)
    obj = strs
    if np.any(nulls):
        obj = strs.copy()
        obj[nulls == _NONE] = None
        obj[nulls == _NAN] = np.nan
        obj[nulls == _NA] = pd.NA
    if kind == "string":
        arr: Any = pd.arrays.StringArray(obj)
    else:
        arr = obj
    return _Decoded(kind, arr, (strs, nulls))


def _utf8_split(data: Array, offsets: Array, n: int, where: str) -> Array:
    """n Python str from UTF-8 bytes and checked offsets, as an object array.
    Each string must be valid UTF-8 on its own.  Fast path: insert a NUL
    between the strings, decode once (which also catches an offset inside a
    multi-byte sequence) and split in C.  Data holding NUL bytes takes the
    per-string path."""
    out = np.empty(n, dtype=object)
    if n == 0:
        return out
    try:
        if not len(data) or not np.any(data == 0):
            total = len(data) + n - 1
            buf = np.zeros(total, dtype=np.uint8)
            keep = np.ones(total, dtype=bool)
            keep[offsets[1:n] + np.arange(n - 1, dtype=np.int64)] = False
            buf[keep] = data
            parts = buf.tobytes().decode("utf-8").split("\x00")
        else:
            raw = data.tobytes()
            o = offsets.tolist()
            parts = [raw[o[i]:o[i + 1]].decode("utf-8") for i in range(n)]
    except UnicodeDecodeError as e:
        raise _bad(f"{where}: invalid UTF-8 ({e.reason})") from None
    if len(parts) != n:
        raise _bad(f"{where}: internal split mismatch")  # cannot happen: the separators are ours
    out[:] = parts
    return out


def _dec_categorical(r: _Reader, d: Desc, where: str, n: int | None) -> _Decoded:
    _obj(d, where, ("kind", "ordered", "codes", "categories"))
    ordered = _bool(d["ordered"], f"{where}.ordered")
    codes = r.buffer(d["codes"], f"{where}.codes", _CODE_DTYPES, n)
    cats = _dec_values(r, d["categories"], f"{where}.categories", "categories", None)
    _check_unique_present(cats.kind, cats.check, f"{where}.categories")
    k = _known_unique(_index_of(cats, None, None, f"{where}.categories"))
    if len(codes) and (codes.min() < -1 or codes.max() >= len(k)):
        raise _bad(f"{where}.codes: a code outside [-1, {len(k)})")
    cat = pd.Categorical.from_codes(codes.copy(), dtype=pd.CategoricalDtype(k, ordered))
    return _Decoded("categorical", cat, codes)


def _dec_datetime(r: _Reader, d: Desc, where: str, n: int | None) -> _Decoded:
    _obj(d, where, ("kind", "unit", "tz", "values"))
    unit = _choice(d["unit"], f"{where}.unit", _UNITS)
    tz = _dec_tz(d["tz"], f"{where}.tz", r.limits)
    v = r.buffer(d["values"], f"{where}.values", ("int64",), n)
    i8 = _to_ns(v, unit, where).astype(np.int64, copy=True)
    if tz is None:
        return _Decoded("datetime", i8.view("M8[ns]"), v)
    dtype = pd.DatetimeTZDtype("ns", tz)
    if _local_out_of_range(i8, dtype):
        raise _bad(f"{where}: a value's local time in {tz} is outside datetime64[ns]")
    return _Decoded("datetime", pd.arrays.DatetimeArray(i8.view("M8[ns]"), dtype=dtype), v)


def _local_out_of_range(i8: Array, dtype: Any) -> bool:
    """Whether a UTC instant of a tz-aware column has a local time outside
    datetime64[ns] (within a day or two of 1677-09-21 or 2262-04-11).
    pandas stores such a value but raises OutOfBoundsDatetime when it
    shows or boxes it (and its vectorised tz_localize(None) wraps around
    silently), so the format refuses it on both sides.  Only values near
    the ends are checked, one by one with pandas' own boxing: elsewhere
    every UTC offset fits.  More than _EDGE_MAX of them count as out of
    range rather than cost a Python call each."""
    edge = (i8 != _NAT) & ((i8 < _NAT + _TWO_DAYS_NS) | (i8 > _I64_MAX - _TWO_DAYS_NS))
    n = int(np.count_nonzero(edge))
    if n == 0:
        return False
    if n > _EDGE_MAX:
        return True
    for v in i8[edge].tolist():
        try:
            pd.Timestamp(v, tz=dtype.tz)
        except (ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
            return True
    return False


def _dec_timedelta(r: _Reader, d: Desc, where: str, n: int | None) -> _Decoded:
    _obj(d, where, ("kind", "unit", "values"))
    unit = _choice(d["unit"], f"{where}.unit", _UNITS)
    v = r.buffer(d["values"], f"{where}.values", ("int64",), n)
    return _Decoded("timedelta", _to_ns(v, unit, where).astype(np.int64, copy=True).view("m8[ns]"), v)


def _dec_labels(r: _Reader, d: Desc, where: str, n: int | None) -> _Decoded:
    _obj(d, where, ("kind", "labels"))
    labels = d["labels"]
    if not isinstance(labels, list) or (n is not None and len(labels) != n):
        raise _bad(f"{where}.labels: expected a list of {n} labels")
    vals = [_dec_label(v, f"{where}.labels[{i}]", r.limits) for i, v in enumerate(labels)]
    arr = np.empty(len(vals), dtype=object)
    arr[:] = vals
    return _Decoded("labels", arr, vals)


_DECODERS: dict[str, Callable[[_Reader, Desc, str, int | None], _Decoded]] = {
    "int": _dec_int, "float": _dec_float, "bool": _dec_bool, "masked": _dec_masked,
    "text": _dec_text_kind, "string": _dec_text_kind, "categorical": _dec_categorical,
    "datetime": _dec_datetime, "timedelta": _dec_timedelta, "labels": _dec_labels,
}


def _owned(a: Any) -> Any:
    """A numpy view into the archive becomes an array of its own: pandas
    does not always copy (a lone int64 column stays a view), and a loaded
    frame must be writable and must not pin the whole archive in memory."""
    return a.copy() if isinstance(a, np.ndarray) and a.base is not None and not a.flags.writeable else a


def _check_freq(idx: pd.Index, freq: Any, where: str) -> None:
    """idx (built without a frequency) must equal what pandas generates for
    freq from its first value.  pandas checks that too when it is given the
    frequency, but first infers one from the values, and that inference
    hashes their differences into an int64 table: crafted values make it
    quadratic.  On values checked here the differences take one or a few
    values, so pandas' own check is then cheap."""
    n = len(idx)
    if n == 0:
        return
    if not isinstance(freq, pd.offsets.Tick) and n > _FREQ_GENERATE_MAX:
        raise _bad(f"{where}: a calendar frequency on more than {_FREQ_GENERATE_MAX} values is not carried")
    if np.any(idx.isna()):
        raise _bad(f"{where}: an index with a frequency holds NaT")
    try:
        if isinstance(idx, pd.DatetimeIndex):
            expected = pd.date_range(start=idx[0], periods=n, freq=freq)
        else:
            expected = pd.timedelta_range(start=idx[0], periods=n, freq=freq)
    except (ValueError, TypeError, OverflowError) as e:
        raise _bad(f"{where}: the frequency does not fit the values ({type(e).__name__})") from None
    if len(expected) != n or not np.array_equal(expected.asi8, idx.asi8):
        raise _bad(f"{where}: the values do not follow the frequency {freq.freqstr!r}")


def _index_of(dec: _Decoded, name: Any, freq: Any, where: str) -> pd.Index:
    arr = _owned(dec.array)
    if dec.kind == "categorical":
        return pd.CategoricalIndex(arr, name=name)
    if dec.kind in ("datetime", "timedelta"):
        cls = pd.DatetimeIndex if dec.kind == "datetime" else pd.TimedeltaIndex
        idx = cls(arr, name=name)
        if freq is None:
            return idx
        _check_freq(idx, freq, where)
        return cls(arr, name=name, freq=freq)
    if dec.kind in ("text", "labels"):
        return pd.Index(arr, dtype=object, name=name)
    return pd.Index(arr, name=name, dtype=arr.dtype)


def _dec_freq(v: Any, where: str, kind: str) -> Any:
    if v is None:
        return None
    if kind not in ("datetime", "timedelta"):
        raise _bad(f"{where}: only datetime and timedelta indexes have a frequency")
    if type(v) is not str or len(v) > 32 or not _FREQ.match(v):
        raise _bad(f"{where}: {_short(v)} is not a frequency alias")
    try:
        return pd.tseries.frequencies.to_offset(v)
    except (ValueError, TypeError, OverflowError):
        raise _bad(f"{where}: {_short(v)} is not a frequency alias") from None


def _dec_index(r: _Reader, desc: Any, where: str, length: int) -> pd.Index:
    if not isinstance(desc, dict):
        raise _bad(f"{where}: expected an index object")
    kind = _choice(desc.get("kind"), f"{where}.kind", ("range", "index", "multi"))
    lim = r.limits
    if kind == "range":
        _obj(desc, where, ("kind", "start", "stop", "step", "name"))
        start = _int(desc["start"], f"{where}.start", _I64_MIN, _I64_MAX)
        stop = _int(desc["stop"], f"{where}.stop", _I64_MIN, _I64_MAX)
        step = _int(desc["step"], f"{where}.step", _I64_MIN, _I64_MAX)
        if step == 0 or len(range(start, stop, step)) != length:
            raise _bad(f"{where}: range({start}, {stop}, {step}) does not have {length} items")
        return pd.RangeIndex(start, stop, step, name=_dec_label(desc["name"], f"{where}.name", lim))
    if kind == "index":
        _obj(desc, where, ("kind", "name", "freq", "values"))
        name = _dec_label(desc["name"], f"{where}.name", lim)
        dec = _dec_values(r, desc["values"], f"{where}.values", "index", length)
        freq = _dec_freq(desc["freq"], f"{where}.freq", dec.kind)
        return _index_of(dec, name, freq, where)
    _obj(desc, where, ("kind", "names", "levels"))
    levels_d, names_d = desc["levels"], desc["names"]
    if not isinstance(levels_d, list) or not isinstance(names_d, list) or not levels_d \
            or len(names_d) != len(levels_d):
        raise _bad(f"{where}: levels and names must be lists of the same, non-zero length")
    names = [_dec_label(v, f"{where}.names[{i}]", lim) for i, v in enumerate(names_d)]
    levels, codes = [], []
    for i, lv in enumerate(levels_d):
        lw = f"{where}.levels[{i}]"
        _obj(lv, lw, ("values", "codes", "freq"))
        dec = _dec_values(r, lv["values"], f"{lw}.values", "level", None)
        _check_unique_present(dec.kind, dec.check, f"{lw}.values")
        lev = _known_unique(_index_of(dec, None, _dec_freq(lv["freq"], f"{lw}.freq", dec.kind), lw))
        c = r.buffer(lv["codes"], f"{lw}.codes", _CODE_DTYPES, length)
        if length and (c.min() < -1 or c.max() >= len(lev)):
            raise _bad(f"{lw}.codes: a code outside [-1, {len(lev)})")
        levels.append(lev)
        codes.append(c.copy())
    # verify_integrity=False: the checks above are the ones it would make
    # (code ranges, lengths, unique levels), done without hashing.
    return pd.MultiIndex(levels=levels, codes=codes, names=names, verify_integrity=False)


def _frame(r: _Reader, doc: Any) -> pd.DataFrame:
    lim = r.limits
    _obj(doc, "schema", ("format", "version", "rows", "index", "columns", "data"))
    if doc["format"] != FORMAT:
        raise _bad(f"schema.format is {_short(doc['format'])}, not {FORMAT!r}")
    if type(doc["version"]) is not int or doc["version"] != VERSION:
        raise _bad(f"schema.version {_short(doc['version'])} is not supported (this reader: {VERSION})")
    rows = _int(doc["rows"], "schema.rows", 0, lim.max_rows)
    data_d = doc["data"]
    if not isinstance(data_d, list) or len(data_d) > lim.max_columns:
        raise _bad(f"schema.data: expected a list of at most max_columns={lim.max_columns} columns")
    index = _dec_index(r, doc["index"], "schema.index", rows)
    columns = _dec_index(r, doc["columns"], "schema.columns", len(data_d))
    arrays = {}
    for i, d in enumerate(data_d):
        arrays[i] = _owned(_dec_values(r, d, f"schema.data[{i}]", "data", rows).array)
    if not all(r.used):
        raise _bad(f"buffer {r.used.index(False)} is not used by the schema")
    df = pd.DataFrame(arrays, index=index, copy=False)
    df.columns = columns
    return df


def load(src: Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO], *,
         limits: Limits = DEFAULT_LIMITS) -> pd.DataFrame:
    """Reads a frame archive from a path, bytes or a binary file object.

    Raises FrameFormatError for anything that is not a valid archive within
    `limits` (and TypeError for a src of the wrong type).  Never unpickles,
    never evaluates anything but numpy's literal-only .npy header parser,
    and checks every size against the bytes present before using it."""
    data = _read_source(src, limits)
    members = _parse_zip(data, limits)
    schema = members[0]
    doc = _parse_schema(memoryview(data)[schema.start:schema.start + schema.size], limits)
    r = _Reader(data, members, limits)
    try:
        return _frame(r, doc)
    except FrameFormatError:
        raise
    except (ValueError, TypeError, OverflowError) as e:
        # pandas' constructors have the last word on consistency (a
        # frequency that does not fit the values, a date out of range...):
        # every check of ours ran first, so this is hostile or corrupt input.
        raise _bad(f"rejected by pandas: {type(e).__name__}: {str(e)[:200]}") from None
