"""Helpers for the frame codec tests: an exact comparison of two frames
(stricter than pandas' assert_frame_equal: bit patterns, Python types of
object values, index classes, levels and codes) and archive surgery (take an
archive apart, put members back together with valid CRCs and alignment, or
build a ZIP byte by byte with any field wrong)."""
import io
import json
import math
import os
import struct
import sys
import zipfile
import zlib

import numpy as np
import pandas as pd
from pandas.testing import assert_frame_equal

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "src", "py"))
import sandcell_frames as sf  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


# ---------------------------------------------------------------------------
# Exact comparison

def _same_scalar(a, b):
    """Same Python type and value; NaN equals NaN (same bits not required:
    object-column NaN is documented as the canonical float NaN)."""
    if type(a) is not type(b):
        return False
    if a is None or a is pd.NA:
        return True
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)  # -0.0 is not 0.0
    return a == b


def _bits(arr):
    arr = np.ascontiguousarray(arr)
    return arr.view(np.dtype("u%d" % arr.dtype.itemsize)) if arr.dtype.kind == "f" else arr.view(np.uint8)


def assert_same_array(a, b, where):
    """a and b (numpy arrays or pandas extension arrays) hold the same dtype
    and the same values, bit for bit where the format promises it."""
    assert str(a.dtype) == str(b.dtype) and a.dtype == b.dtype, (where, a.dtype, b.dtype)
    assert len(a) == len(b), where
    if isinstance(a.dtype, pd.CategoricalDtype):
        assert a.dtype.ordered == b.dtype.ordered, where
        assert_same_index(a.categories, b.categories, where + " categories")
        assert np.array_equal(np.asarray(a.codes), np.asarray(b.codes)), where
        return
    if isinstance(a.dtype, pd.DatetimeTZDtype):
        assert str(a.dtype.tz) == str(b.dtype.tz), where
        assert np.array_equal(a.asi8, b.asi8), where
        return
    if isinstance(a, pd.arrays.StringArray) or (isinstance(a, np.ndarray) and a.dtype == object):
        av, bv = list(np.asarray(a, dtype=object)), list(np.asarray(b, dtype=object))
        for i, (x, y) in enumerate(zip(av, bv)):
            assert _same_scalar(x, y), (where, i, x, y)
        return
    if isinstance(a, (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)):
        ma, mb = np.asarray(a.isna()), np.asarray(b.isna())
        assert np.array_equal(ma, mb), where
        base = a.dtype.numpy_dtype
        va = a.to_numpy(dtype=base, na_value=np.zeros((), base)[()])
        vb = b.to_numpy(dtype=base, na_value=np.zeros((), base)[()])
        assert np.array_equal(_bits(va[~ma]), _bits(vb[~mb])), where
        return
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "Mm":
        a, b = a.view(np.int64), b.view(np.int64)
    assert np.array_equal(_bits(a), _bits(b)), (where, a, b)


def assert_same_index(a, b, where):
    assert type(a) is type(b), (where, type(a), type(b))
    assert len(a) == len(b), where
    assert len(a.names) == len(b.names), where
    for x, y in zip(a.names, b.names):
        assert _same_scalar(x, y), (where, a.names, b.names)
    if isinstance(a, pd.MultiIndex):
        for i, (la, lb) in enumerate(zip(a.levels, b.levels)):
            assert_same_index(la, lb, f"{where} level {i}")
        for i, (ca, cb) in enumerate(zip(a.codes, b.codes)):
            assert np.array_equal(np.asarray(ca), np.asarray(cb)), f"{where} codes {i}"
        return
    if isinstance(a, pd.RangeIndex):
        assert (a.start, a.stop, a.step) == (b.start, b.stop, b.step), where
        return
    if isinstance(a, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        assert a.freq == b.freq, (where, a.freq, b.freq)
    assert_same_array(a.array if not isinstance(a.dtype, np.dtype) else a.to_numpy(),
                      b.array if not isinstance(b.dtype, np.dtype) else b.to_numpy(), where)


def assert_identical(a, b):
    """b is an exact copy of a, as far as the format promises."""
    assert type(b) is pd.DataFrame
    assert a.shape == b.shape
    assert_same_index(a.index, b.index, "index")
    assert_same_index(a.columns, b.columns, "columns")
    for i in range(a.shape[1]):
        ca, cb = a.iloc[:, i], b.iloc[:, i]
        assert_same_array(ca.array if not isinstance(ca.dtype, np.dtype) else ca.to_numpy(),
                          cb.array if not isinstance(cb.dtype, np.dtype) else cb.to_numpy(), f"column {i}")
    # pandas' own verdict too, at its strictest.
    assert_frame_equal(a, b, check_exact=True, check_index_type=True, check_column_type=True,
                       check_categorical=True, check_freq=True, check_flags=True)


# ---------------------------------------------------------------------------
# Archive surgery

def unpack(archive):
    """[(name, bytes)] of an archive, in order, read with the stdlib."""
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def repack(members):
    """A ZIP in the format's canonical layout (valid CRCs, aligned) holding
    these (name, bytes) members, whatever they are."""
    plan = sf._plan([(n.encode() if isinstance(n, str) else n, [d]) for n, d in members], 1 << 40)
    return b"".join(bytes(memoryview(p).cast("B")) for p in sf._parts(*plan))


def schema_of(archive):
    return json.loads(unpack(archive)[0][1])


def with_schema(archive, schema):
    """The archive with schema.json replaced (buffers unchanged)."""
    members = unpack(archive)
    raw = json.dumps(schema, ensure_ascii=False).encode() if not isinstance(schema, bytes) else schema
    return repack([(members[0][0], raw)] + members[1:])


def with_member(archive, i, data):
    members = unpack(archive)
    members[i] = (members[i][0], data)
    return repack(members)


def npy(arr, header=None):
    """A .npy member: numpy's own header for arr, or a header dict given."""
    f = io.BytesIO()
    if header is None:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
    else:
        np.lib.format.write_array_header_1_0(f, header)
    return f.getvalue() + np.ascontiguousarray(arr).tobytes()


LOCAL = struct.Struct("<IHHHHHIIIHH")
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
EOCD = struct.Struct("<IHHHHIIH")


def raw_zip(entries, comment=b"", trailing=b"", eocd_patch=None):
    """A ZIP built field by field, independent of the module under test.
    entries: dicts with name (bytes), data (bytes) and optional overrides:
    method, flags, crc, local_crc, csize, usize, extra (local), cextra (central),
    local_name, offset (the central directory's local-header offset),
    align (pad the data to 64 bytes with the format's extra record)."""
    out = bytearray()
    offsets = []
    for e in entries:
        name, data = e["name"], e["data"]
        crc = e.get("crc", zlib.crc32(data))
        extra = e.get("extra")
        if extra is None:
            pad = (-(len(out) + 30 + len(e.get("local_name", name)) + 6)) % 64 if e.get("align", True) else None
            extra = struct.pack("<HHH", 0xD935, 2 + pad, 64) + bytes(pad) if pad is not None else b""
        offsets.append(len(out))
        out += LOCAL.pack(0x04034B50, 20, e.get("flags", 0), e.get("method", 0), 0, 0x21, e.get("local_crc", crc),
                          e.get("csize", len(data)), e.get("usize", len(data)),
                          len(e.get("local_name", name)), len(extra))
        out += e.get("local_name", name) + extra + data
    cd_off = len(out)
    for e, off in zip(entries, offsets):
        name, data = e["name"], e["data"]
        cextra = e.get("cextra", b"")
        out += CENTRAL.pack(0x02014B50, 20, 20, e.get("flags", 0), e.get("method", 0), 0, 0x21,
                            e.get("crc", zlib.crc32(data)), e.get("csize", len(data)),
                            e.get("usize", len(data)), len(name), len(cextra), 0, 0, 0, 0,
                            e.get("offset", off))
        out += name + cextra
    fields = [0x06054B50, 0, 0, len(entries), len(entries), len(out) - cd_off, cd_off, len(comment)]
    if eocd_patch:
        eocd_patch(fields)
    out += EOCD.pack(*fields) + comment + trailing
    return bytes(out)


def entries_of(archive):
    """The members of a valid archive as raw_zip entries."""
    return [{"name": n.encode(), "data": d} for n, d in unpack(archive)]
