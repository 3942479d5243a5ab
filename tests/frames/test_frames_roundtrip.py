"""The round trip is exact: property tests over generated frames of every
dtype the format carries, plus named cases for each documented behaviour
(what is refused, what is lossy)."""
import datetime
import io
import os
import struct
import zipfile
import zoneinfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _frames_strategies import column, float_array, frames, index, multi_index
from _frames_util import assert_identical, sf, unpack

# pandas' own assert_frame_equal casts signalling NaNs and numpy warns;
# the codec itself does not (it copies bits), see test_float_bits_exact.
pytestmark = [pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning"),
              # hypothesis' pretty-printer of a failing example, not the codec
              pytest.mark.filterwarnings("ignore:Index.ravel returning ndarray is deprecated:FutureWarning")]
EXAMPLES = int(os.environ.get("FRAMES_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def roundtrip(df):
    archive = sf.dumps(df)
    out = sf.load(archive)
    assert_identical(df, out)
    return archive, out


@SETTINGS
@given(frames())
def test_roundtrip_any_frame(df):
    archive, out = roundtrip(df)
    # Canonical: the loaded frame writes back to the very same bytes.
    assert sf.dumps(out) == archive


# Strategies are combined with flatmap rather than drawn with st.data():
# hypothesis prints every data.draw() result at once, and pandas 1.5 fails to
# print some valid objects (a datetime CategoricalIndex with a missing value).

@SETTINGS
@given(st.integers(0, 20).flatmap(column))
def test_roundtrip_each_column_kind(values):
    """One column per example, so a failure names the kind at once."""
    roundtrip(pd.DataFrame({"x": values}))


@SETTINGS
@given(st.integers(0, 10).flatmap(lambda n: st.tuples(index(n), index(n))))
def test_roundtrip_indexes(indexes):
    rows, cols = indexes
    roundtrip(pd.DataFrame({"v": np.arange(len(rows))}, index=rows))
    roundtrip(pd.DataFrame(np.zeros((1, len(cols))), columns=cols))


@SETTINGS
@given(st.tuples(st.integers(0, 6), st.integers(0, 4)).flatmap(
    lambda nk: st.tuples(multi_index(nk[0]), multi_index(nk[1]))))
def test_roundtrip_multiindex_both_axes(indexes):
    rows, cols = indexes
    df = pd.DataFrame(np.arange(len(rows) * len(cols), dtype=np.int64).reshape(len(rows), len(cols)),
                      index=rows, columns=cols)
    roundtrip(df)


@SETTINGS
@given(st.integers(1, 50).flatmap(float_array))
def test_float_bits_exact(values):
    df = pd.DataFrame({"f": values})
    out = sf.load(sf.dumps(df))
    a = df["f"].to_numpy()
    b = out["f"].to_numpy()
    u = "u%d" % a.dtype.itemsize
    assert np.array_equal(a.view(u), b.view(u))


def test_nan_payloads_and_signed_zero_survive():
    bits = np.array([0x7FF8000000000000, 0x7FF0000000000001, 0xFFF80000DEADBEEF, 0x8000000000000000,
                     0x7FF4000000000000], dtype=np.uint64)
    df = pd.DataFrame({"f": bits.view(np.float64), "g": bits.view(np.float64).astype(np.float64)})
    out = sf.load(sf.dumps(df))
    assert out["f"].to_numpy().view(np.uint64).tolist() == bits.tolist()


def test_every_listed_dtype_in_one_frame():
    n = 6
    df = pd.DataFrame({
        "int64": np.array([0, -1, 2**62, -2**63, 5, 6], dtype=np.int64),
        "uint64": np.array([0, 1, 2**64 - 1, 3, 4, 5], dtype=np.uint64),
        "int8": np.arange(n, dtype=np.int8),
        "float64": [1.5, np.nan, -0.0, np.inf, -np.inf, 5e-324],
        "float32": np.arange(n, dtype=np.float32) / 3,
        "bool": [True, False] * 3,
        "Int64": pd.array([1, None, 3, None, 5, 6], dtype="Int64"),
        "UInt8": pd.array([1, None, 3, None, 5, 255], dtype="UInt8"),
        "boolean": pd.array([True, None, False, None, True, False], dtype="boolean"),
        "Float64": pd.array([0.5, None, 3, None, 5, 6], dtype="Float64"),
        "object": ["a", None, np.nan, pd.NA, "ü\x00€", ""],
        "string": pd.array(["a", None, "c", "", "é", "😀"], dtype="string"),
        "category": pd.Categorical(["x", "y", None, "x", "y", "x"], categories=["y", "x"], ordered=True),
        "category_int": pd.Categorical([1, 2, 1, 2, None, 1]),
        "category_Int64": pd.Categorical(pd.array([1, 2, 1, 2, None, 1], dtype="Int64")),
        "category_bool": pd.Categorical([True, False, None, True, True, False]),
        "datetime": pd.to_datetime(["2020-01-01", None, "1970-01-01", "2262-04-11", "1677-09-22", "2000-02-29"]),
        "datetime_tz": pd.date_range("2020-03-29", periods=n, freq="H", tz="Europe/Berlin"),
        "datetime_fixed": pd.date_range("2020-03-29", periods=n, freq="H",
                                        tz=datetime.timezone(datetime.timedelta(hours=-3))),
        "timedelta": pd.to_timedelta([1, 2, None, 4, 5, -6], unit="s"),
    }, index=pd.Index(list("abcdef"), name="key"))
    archive, out = roundtrip(df)
    assert list(out.dtypes.astype(str)) == list(df.dtypes.astype(str))
    # Standard tooling reads it: a plain ZIP whose members are STORED.
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert z.testzip() is None
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    # ... and numpy reads every buffer with allow_pickle=False.
    with np.load(io.BytesIO(archive), allow_pickle=False) as npz:
        assert all(npz[k] is not None for k in npz.files if k != "schema.json")


@pytest.mark.parametrize("df", [
    pd.DataFrame(),
    pd.DataFrame(index=pd.RangeIndex(7)),
    pd.DataFrame(index=pd.Index(["a", "b"], name="n")),
    pd.DataFrame({"a": pd.Series([], dtype="Int8")}),
    pd.DataFrame({"a": pd.Series([], dtype=object)}),
    pd.DataFrame({"a": pd.Series([], dtype="category")}),
    pd.DataFrame(columns=pd.MultiIndex.from_tuples([], names=["a", "b"])),
    pd.DataFrame(np.zeros((0, 3)), columns=["x", 1, None]),
], ids=["empty", "rows-no-columns", "named-rows-no-columns", "zero-rows-Int8", "zero-rows-object",
        "zero-rows-category", "empty-multi-columns", "zero-rows-mixed-labels"])
def test_empty_shapes(df):
    roundtrip(df)


def test_unicode_labels_and_names():
    df = pd.DataFrame({"naïve ☃": [1], "日本語": [2], "": [3], "\x00nul": [4]},
                      index=pd.Index(["ü"], name="ñame 😀"))
    df.columns.name = "列"
    roundtrip(df)


def test_mixed_scalar_column_labels():
    df = pd.DataFrame([[1, 2, 3, 4, 5, 6]], columns=["a", 1, 2.5, True, None, np.nan])
    roundtrip(df)
    df = pd.DataFrame([[1, 2]], columns=[-(2**63), 2**64 - 1])
    roundtrip(df)


def test_multiindex_rows_and_columns_named():
    rows = pd.MultiIndex.from_product([["a", "b"], pd.date_range("2020", periods=2, tz="UTC")],
                                      names=["key", "when"])
    cols = pd.MultiIndex.from_tuples([("x", 1), ("x", 2), ("y", 1)], names=["name", None])
    df = pd.DataFrame(np.arange(12).reshape(4, 3), index=rows, columns=cols)
    roundtrip(df)
    # Unsorted levels, unused level values and NaN codes stay exactly as they are.
    mi = pd.MultiIndex(levels=[["z", "a", "unused"], [3, 1]], codes=[[0, 1, -1], [1, -1, 0]], names=["p", "q"])
    roundtrip(pd.DataFrame({"v": [1, 2, 3]}, index=mi))


def test_duplicate_column_labels():
    df = pd.DataFrame([[1, "a", 2.5]], columns=["x", "x", "x"])
    roundtrip(df)


def test_frequency_kept_and_checked():
    df = pd.DataFrame({"v": range(5)}, index=pd.date_range("2021-01-01", periods=5, freq="W-SUN", tz="Europe/Berlin"))
    _, out = roundtrip(df)
    assert out.index.freqstr == "W-SUN"
    df = pd.DataFrame({"v": range(3)}, index=pd.timedelta_range("1s", periods=3, freq="5T"))
    roundtrip(df)


def test_loaded_frame_is_writable_and_independent():
    df = pd.DataFrame({"i": [1, 2], "f": [1.0, 2.0], "s": ["a", "b"], "I": pd.array([1, None], dtype="Int64"),
                       "b": pd.array([True, None], dtype="boolean"), "c": pd.Categorical(["a", "b"]),
                       "t": pd.date_range("2020", periods=2, tz="UTC")})
    out = sf.load(bytearray(sf.dumps(df)))
    for col in out.columns:
        out.loc[0, col] = out.loc[1, col]
    assert out["i"].tolist() == [2, 2]


def test_path_and_file_objects(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "s": ["x", None]})
    p = tmp_path / "frame.scf"
    size = sf.dump(df, p)
    assert size == p.stat().st_size
    assert_identical(df, sf.load(p))
    assert_identical(df, sf.load(str(p)))
    with open(p, "rb") as f:
        assert_identical(df, sf.load(f))
    buf = io.BytesIO()
    sf.dump(df, buf)
    assert buf.getvalue() == p.read_bytes()
    assert_identical(df, sf.load(memoryview(buf.getvalue())))


def test_archive_layout_is_canonical():
    archive = sf.dumps(pd.DataFrame({"a": [1, 2], "b": ["x", "yz"]}))
    names = [n for n, _ in unpack(archive)]
    assert names == ["schema.json"] + ["%d.npy" % i for i in range(len(names) - 1)]
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        end = 0
        for info in z.infolist():
            assert info.header_offset == end, info.filename  # back to back, from offset 0
            name_len, extra_len = struct.unpack_from("<HH", archive, info.header_offset + 26)
            start = info.header_offset + 30 + name_len + extra_len
            assert start % 64 == 0, info.filename
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            end = start + info.file_size
    # Same frame, same bytes.
    assert archive == sf.dumps(pd.DataFrame({"a": [1, 2], "b": ["x", "yz"]}))


# ---------------------------------------------------------------------------
# What the writer refuses: a TypeError or ValueError naming the column,
# never a silent conversion.

@pytest.mark.parametrize("values,fragment", [
    ([1, "a"], "row 0 holds int 1"),
    (["a", b"x"], "row 1 holds bytes"),
    (["a", {"k": 1}], "row 1 holds dict"),
    (["a", pd.Timestamp("2020")], "row 1 holds Timestamp"),
    (["a", pd.NaT], "row 1 holds NaTType"),
    ([1.5, 2.5], None),  # float64: fine
])
def test_object_columns_hold_only_str(values, fragment):
    df = pd.DataFrame({"col": pd.Series(values, dtype=object if fragment else None)})
    if fragment is None:
        roundtrip(df)
        return
    with pytest.raises(TypeError, match=fragment) as e:
        sf.dumps(df)
    assert "column 0 ('col')" in str(e.value)


@pytest.mark.parametrize("series,fragment", [
    (pd.Series(pd.period_range("2020", periods=2)), "period"),
    (pd.Series(pd.interval_range(0, 2)), "interval"),
    (pd.Series([1j, 2j]), "complex128"),
    (pd.Series(pd.arrays.SparseArray([0, 1])), "Sparse"),
    (pd.Series(pd.date_range("2020", periods=2, tz="dateutil/Europe/Berlin")), "time zone"),
])
def test_unsupported_dtypes_refused(series, fragment):
    with pytest.raises(TypeError, match=fragment):
        sf.dumps(pd.DataFrame({"x": series}))


def test_local_time_out_of_range_refused():
    """pandas holds a UTC instant whose local time is past 2262-04-11 but
    cannot show it; the writer refuses it rather than write what the
    reader refuses."""
    arr = pd.arrays.DatetimeArray(np.array([np.iinfo(np.int64).max], np.int64).view("M8[ns]"),
                                  dtype=pd.DatetimeTZDtype("ns", "Europe/Berlin"))
    with pytest.raises(ValueError, match="local time"):
        sf.dumps(pd.DataFrame({"t": arr}))


def test_lone_surrogate_refused():
    with pytest.raises(ValueError, match="lone surrogate"):
        sf.dumps(pd.DataFrame({"s": ["ok", "\ud800"]}))
    with pytest.raises(ValueError, match="lone surrogate"):
        sf.dumps(pd.DataFrame({"\udfff": [1]}))


def test_unsupported_labels_refused():
    with pytest.raises(TypeError, match="label"):
        sf.dumps(pd.DataFrame({("a", "b"): [1]}, index=pd.Index([1], name=("t", "u"))))
    with pytest.raises(TypeError, match="label"):
        sf.dumps(pd.DataFrame([[1]], columns=pd.Index([frozenset()], dtype=object)))


def test_writer_enforces_limits(tmp_path):
    df = pd.DataFrame({"a": range(10), "b": ["x"] * 10})
    for lim, fragment in [(sf.Limits(max_rows=9), "max_rows"), (sf.Limits(max_columns=1), "max_columns"),
                          (sf.Limits(max_buffers=3), "max_buffers"), (sf.Limits(max_bytes=500), "max_bytes"),
                          (sf.Limits(max_json_bytes=50), "max_json_bytes")]:
        p = tmp_path / "x.scf"
        with pytest.raises(ValueError, match=fragment):
            sf.dump(df, p, limits=lim)
        assert not p.exists()  # refused before the file was created
    with pytest.raises(ValueError, match="max_label_chars"):
        sf.dumps(pd.DataFrame({"a": [1]}, index=pd.Index([0], name="x" * 11)), limits=sf.Limits(max_label_chars=10))


# ---------------------------------------------------------------------------
# What is lossy, as documented (docs/datasets.md, "Lossy").

def test_lossy_object_nan_is_canonical():
    weird = np.array([0x7FF8000000000123], dtype=np.uint64).view(np.float64)[0]
    df = pd.DataFrame({"s": pd.Series(["a", float(weird)], dtype=object)})
    out = sf.load(sf.dumps(df))
    v = out["s"].iloc[1]
    assert v != v and type(v) is float


def test_lossy_str_subclass_and_numpy_label_types():
    s = np.empty(1, dtype=object)
    s[0] = np.str_("a")
    df = pd.DataFrame({"s": s}, index=pd.Index([1], name=np.int64(5)))
    assert type(df["s"].iloc[0]) is np.str_
    out = sf.load(sf.dumps(df))
    assert type(out["s"].iloc[0]) is str and type(out.index.name) is int


def test_lossy_zoneinfo_comes_back_as_pandas_default_zone():
    df = pd.DataFrame({"t": pd.date_range("2020", periods=2, tz=zoneinfo.ZoneInfo("Europe/Berlin"))})
    out = sf.load(sf.dumps(df))
    assert str(out["t"].dt.tz) == "Europe/Berlin"
    assert out["t"].dt.tz_convert("UTC").equals(df["t"].dt.tz_convert("UTC"))


def test_lossy_big_endian_comes_back_native():
    df = pd.DataFrame({"x": np.array([1, 2], dtype=">i8")})
    out = sf.load(sf.dumps(df))
    assert out["x"].dtype == np.dtype("<i8") and out["x"].tolist() == [1, 2]


def test_lossy_exotic_frequency_dropped():
    idx = pd.date_range("2020", periods=3, freq=pd.DateOffset(months=1, days=1))
    out = sf.load(sf.dumps(pd.DataFrame({"v": range(3)}, index=idx)))
    assert out.index.freq is None and out.index.equals(idx)


def test_attrs_not_carried():
    df = pd.DataFrame({"a": [1]})
    df.attrs["note"] = "x"
    assert sf.load(sf.dumps(df)).attrs == {}
