"""Hypothesis strategies for DataFrames covering every dtype the frame
format carries, with missing values mixed in, and every index shape."""
import datetime

import numpy as np
import pandas as pd
from hypothesis import strategies as st

INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
MASKED_INT = ["Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"]
TZS = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "Etc/GMT+5",
       datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
       datetime.timezone(-datetime.timedelta(hours=3, minutes=15))]
# Float bit patterns worth having: signed zeros, infinities, quiet and
# signalling NaNs with payloads, subnormals, extremes.
SPECIAL64 = [0x0000000000000000, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
             0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4000000000000,
             0x7FFFFFFFFFFFFFFF, 0xFFF80000DEADBEEF, 0x0000000000000001, 0x000FFFFFFFFFFFFF,
             0x7FEFFFFFFFFFFFFF, 0x3FF0000000000000]
SPECIAL32 = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFC0BEEF, 0x00000001]
SPECIAL16 = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x0001]
NS_RANGE = (-(1 << 62), 1 << 62)  # about 1823..2116: wide, and local times stay in range
MISSING_OBJ = [None, np.nan, pd.NA]

text = st.text(max_size=12)  # all of Unicode but surrogates, NUL included
labels = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 63), (1 << 64) - 1),
                   st.floats(allow_nan=True).map(lambda x: np.nan if x != x else x), st.text(max_size=8))


def _bits(bits, special, n):
    return st.lists(st.one_of(st.sampled_from(special), st.integers(0, (1 << bits) - 1)), min_size=n, max_size=n)


@st.composite
def float_array(draw, n, dtype=None):
    dtype = dtype or draw(st.sampled_from(["float16", "float32", "float64"]))
    bits, special = {"float16": (16, SPECIAL16), "float32": (32, SPECIAL32), "float64": (64, SPECIAL64)}[dtype]
    raw = np.array(draw(_bits(bits, special, n)), dtype="u%d" % (bits // 8))
    return raw.view(dtype)


@st.composite
def int_array(draw, n, dtype=None):
    dtype = np.dtype(dtype or draw(st.sampled_from(INT_DTYPES)))
    info = np.iinfo(dtype)
    return np.array(draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=n, max_size=n)), dtype=dtype)


@st.composite
def mask(draw, n):
    return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)


@st.composite
def text_array(draw, n, missing=MISSING_OBJ):
    vals = draw(st.lists(st.one_of(text, st.sampled_from(missing)) if missing else text, min_size=n, max_size=n))
    arr = np.empty(n, dtype=object)
    arr[:] = vals
    return arr


@st.composite
def ns_values(draw, n, nat=True, edges=False):
    """int64 nanoseconds (None: NaT); edges adds the ends of the range,
    which only tz-naive values may use (a local time must fit too)."""
    ends = st.sampled_from([-(1 << 63) + 1, (1 << 63) - 1]) if edges else st.nothing()
    vals = draw(st.lists(st.one_of(st.integers(*NS_RANGE), ends, st.just(None) if nat else st.nothing()),
                         min_size=n, max_size=n))
    return np.array([np.iinfo(np.int64).min if v is None else v for v in vals], dtype=np.int64)


@st.composite
def unique_values(draw, kind, min_size=0, max_size=6):
    """Unique, non-missing values for categories and MultiIndex levels."""
    if kind == "text":
        vals = draw(st.lists(text, min_size=min_size, max_size=max_size, unique=True))
        arr = np.empty(len(vals), dtype=object)
        arr[:] = vals
        return pd.Index(arr, dtype=object)
    if kind == "int":
        return pd.Index(np.array(draw(st.lists(st.integers(-(1 << 63), (1 << 63) - 1), min_size=min_size,
                                               max_size=max_size, unique=True)), dtype=np.int64))
    if kind == "float":
        vals = draw(st.lists(st.floats(allow_nan=False).map(lambda x: 0.0 if x == 0 else x),
                             min_size=min_size, max_size=max_size, unique=True))
        return pd.Index(np.array(vals, dtype=np.float64))
    if kind == "datetime":
        tz = draw(st.sampled_from([None] + TZS))
        vals = draw(st.lists(st.integers(*NS_RANGE), min_size=min_size, max_size=max_size, unique=True))
        idx = pd.DatetimeIndex(np.array(vals, dtype=np.int64).view("M8[ns]"))
        return idx if tz is None else idx.tz_localize("UTC").tz_convert(tz)
    if kind == "timedelta":
        vals = draw(st.lists(st.integers(*NS_RANGE), min_size=min_size, max_size=max_size, unique=True))
        return pd.TimedeltaIndex(np.array(vals, dtype=np.int64).view("m8[ns]"))
    if kind == "masked":
        vals = draw(st.lists(st.integers(-(1 << 63), (1 << 63) - 1), min_size=min_size, max_size=max_size,
                             unique=True))
        return pd.Index(pd.array(vals, dtype="Int64"))
    if kind == "bool":
        vals = draw(st.lists(st.booleans(), min_size=min(min_size, 2), max_size=2, unique=True))
        return pd.Index(np.array(vals, dtype=bool))
    raise AssertionError(kind)


@st.composite
def categorical(draw, n):
    cats = draw(unique_values(draw(st.sampled_from(["text", "int", "float", "datetime", "timedelta", "masked",
                                                    "bool"]))))
    codes = draw(st.lists(st.integers(-1, len(cats) - 1), min_size=n, max_size=n))
    return pd.Categorical.from_codes(codes, categories=cats, ordered=draw(st.booleans()))


@st.composite
def column(draw, n):
    """One column's values (numpy array or extension array) of any kind."""
    kind = draw(st.sampled_from(["int", "float", "bool", "masked-int", "masked-float", "masked-bool",
                                 "text", "string", "categorical", "datetime", "datetime-tz", "timedelta"]))
    if kind == "int":
        return draw(int_array(n))
    if kind == "float":
        return draw(float_array(n))
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "masked-int":
        dt = draw(st.sampled_from(MASKED_INT))
        return pd.arrays.IntegerArray(draw(int_array(n, dt.lower())), draw(mask(n)))
    if kind == "masked-float":
        dt = draw(st.sampled_from(["float32", "float64"]))
        return pd.arrays.FloatingArray(draw(float_array(n, dt)), draw(mask(n)))
    if kind == "masked-bool":
        return pd.arrays.BooleanArray(draw(mask(n)), draw(mask(n)))
    if kind == "text":
        return draw(text_array(n))
    if kind == "string":
        return pd.array(draw(text_array(n, missing=[pd.NA])), dtype="string")
    if kind == "categorical":
        return draw(categorical(n))
    if kind == "datetime":
        return draw(ns_values(n, edges=True)).view("M8[ns]")
    if kind == "datetime-tz":
        tz = draw(st.sampled_from(TZS))
        return pd.arrays.DatetimeArray(draw(ns_values(n)).view("M8[ns]"), dtype=pd.DatetimeTZDtype("ns", tz))
    return draw(ns_values(n, edges=True)).view("m8[ns]")


@st.composite
def plain_index(draw, n):
    """A one-level Index of n values of any kind pandas 1.5 can index by."""
    kind = draw(st.sampled_from(["int", "uint", "float", "bool", "text", "string", "masked", "categorical",
                                 "datetime", "datetime-freq", "timedelta", "labels"]))
    name = draw(labels)
    if kind == "int":
        return pd.Index(draw(int_array(n, "int64")), name=name)
    if kind == "uint":
        return pd.Index(draw(int_array(n, "uint64")), name=name)
    if kind == "float":
        return pd.Index(draw(float_array(n, "float64")), name=name)
    if kind == "bool":
        return pd.Index(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool), name=name)
    if kind == "text":
        return pd.Index(draw(text_array(n, missing=[None, np.nan])), dtype=object, name=name)
    if kind == "string":
        return pd.Index(pd.array(draw(text_array(n, missing=[pd.NA])), dtype="string"), name=name)
    if kind == "masked":
        return pd.Index(pd.arrays.IntegerArray(draw(int_array(n, "int64")), draw(mask(n))), name=name)
    if kind == "categorical":
        return pd.CategoricalIndex(draw(categorical(n)), name=name)
    if kind == "datetime":
        tz = draw(st.sampled_from([None] + TZS))
        idx = pd.DatetimeIndex(draw(ns_values(n)).view("M8[ns]"), name=name)
        return idx if tz is None else idx.tz_localize("UTC").tz_convert(tz)
    if kind == "datetime-freq":
        freq = draw(st.sampled_from(["D", "H", "15T", "W-SUN", "MS", "B", "-2D"]))
        tz = draw(st.sampled_from([None, "Europe/Berlin", "UTC"]))
        return pd.date_range("2021-03-20", periods=n, freq=freq, tz=tz, name=name)
    if kind == "timedelta":
        if draw(st.booleans()):
            return pd.timedelta_range("1s", periods=n, freq=draw(st.sampled_from(["S", "5T", "D"])), name=name)
        return pd.TimedeltaIndex(draw(ns_values(n)).view("m8[ns]"), name=name)
    vals = draw(st.lists(labels, min_size=n, max_size=n))
    return pd.Index(vals, dtype=object, name=name)


@st.composite
def multi_index(draw, n):
    nlevels = draw(st.integers(1, 3))
    levels, codes = [], []
    for _ in range(nlevels):
        lev = draw(unique_values(draw(st.sampled_from(["text", "int", "float", "datetime", "timedelta",
                                                       "masked", "bool"])), min_size=1))
        levels.append(lev)
        codes.append(draw(st.lists(st.integers(-1, len(lev) - 1), min_size=n, max_size=n)))
    names = draw(st.lists(labels, min_size=nlevels, max_size=nlevels))
    return pd.MultiIndex(levels=levels, codes=codes, names=names)


@st.composite
def index(draw, n):
    shape = draw(st.sampled_from(["range", "plain", "multi"]))
    if shape == "range":
        start = draw(st.integers(-(1 << 40), 1 << 40))
        step = draw(st.integers(-5, 5).filter(bool))
        return pd.RangeIndex(start, start + step * n, step, name=draw(labels))
    if shape == "plain":
        return draw(plain_index(n))
    return draw(multi_index(n))


@st.composite
def frames(draw, max_rows=8, max_cols=5):
    n = draw(st.integers(0, max_rows))
    k = draw(st.integers(0, max_cols))
    cols = {i: draw(column(n)) for i in range(k)}
    df = pd.DataFrame(cols, index=draw(index(n)), copy=True)
    df.columns = draw(index(k))
    return df
