"""Hostile archives, one per rejection rule of docs/datasets.md: each must
raise FrameFormatError (and nothing else) with a message that says what is
wrong.  The archives are built independently of the writer where the rule is
about the container (tests/frames/_frames_util.py raw_zip), and from the writer's
output with one thing changed otherwise."""
import json
import os
import struct
import threading
import time

import numpy as np
import pandas as pd
import pytest

from _frames_util import entries_of, npy, raw_zip, repack, schema_of, sf, unpack, with_member, with_schema

I64 = np.dtype("<i8")


def build(schema, buffers):
    """An archive in the canonical layout with this schema and these
    buffers (arrays become .npy members, bytes are taken as they are)."""
    members = [("schema.json", json.dumps(schema).encode())]
    for i, b in enumerate(buffers):
        members.append(("%d.npy" % i, b if isinstance(b, bytes) else npy(np.asarray(b))))
    return repack(members)


def frame(rows, data, buffers, index=None, columns=None):
    """A schema for `rows` rows with the given data descriptions; the column
    labels are a range index, the row index a range unless given."""
    return build({"format": "sandcell-frame", "version": 1, "rows": rows,
                  "index": index or {"kind": "range", "start": 0, "stop": rows, "step": 1, "name": None},
                  "columns": columns or {"kind": "range", "start": 0, "stop": len(data), "step": 1, "name": None},
                  "data": data}, buffers)


def text_col(strings_bytes, offsets, nulls, kind="text", base=0):
    return ({"kind": kind, "data": base, "offsets": base + 1, "nulls": base + 2},
            [np.frombuffer(strings_bytes, np.uint8), np.asarray(offsets, I64), np.asarray(nulls, np.uint8)])


def one_text(data, offsets, nulls, kind="text"):
    d, b = text_col(data, offsets, nulls, kind)
    return frame(len(nulls), [d], b)


def one_int(values, dtype="int64", rows=None):
    arr = np.asarray(values, dtype=dtype)
    return frame(len(arr) if rows is None else rows, [{"kind": "int", "dtype": dtype, "values": 0}], [arr])


VALID = sf.dumps(pd.DataFrame({"i": [1, 2], "s": ["a", "b"], "c": pd.Categorical(["x", "y"]),
                               "t": pd.date_range("2020", periods=2, tz="UTC")}).rename_axis("rows"))
SIMPLE = sf.dumps(pd.DataFrame([[1], [2]]))  # range labels: buffer 0 (member 1) is the int64 column


def edited(archive, fn):
    s = schema_of(archive)
    fn(s)
    return with_schema(archive, s)


def zip_edit(**over):
    """SIMPLE rebuilt field by field with overrides on its second member."""
    entries = entries_of(SIMPLE)
    entries[1].update(over)
    return raw_zip(entries)


CASES = {
    # --- the container ---------------------------------------------------
    "empty": (b"", "too short"),
    "not-zip": (b"x" * 100, "no ZIP end record"),
    "trailing-data": (SIMPLE + b"\0", "no ZIP end record"),
    "zip-comment": (raw_zip(entries_of(SIMPLE), comment=b"hi"), "comment"),
    "multi-disk": (raw_zip(entries_of(SIMPLE), eocd_patch=lambda f: f.__setitem__(1, 1)), "multi-disk"),
    "count-mismatch": (raw_zip(entries_of(SIMPLE), eocd_patch=lambda f: f.__setitem__(3, 1)), "multi-disk"),
    "cd-not-before-eocd": (raw_zip(entries_of(SIMPLE), eocd_patch=lambda f: f.__setitem__(6, f[6] - 1)),
                           "does not end"),
    "no-members": (raw_zip([]), "holds 0 members"),
    "schema-not-first": (raw_zip(entries_of(SIMPLE)[1:] + entries_of(SIMPLE)[:1]), "must be named"),
    "duplicate-name": (raw_zip([entries_of(SIMPLE)[0], entries_of(SIMPLE)[1], entries_of(SIMPLE)[1]]),
                       "must be named '1.npy'"),
    "absolute-name": (raw_zip([entries_of(SIMPLE)[0], {"name": b"/0.npy", "data": entries_of(SIMPLE)[1]["data"]}]),
                      "central directory size"),
    "dotdot-name": (raw_zip([entries_of(SIMPLE)[0], {"name": b"../0.npy", "data": entries_of(SIMPLE)[1]["data"]}]),
                    "central directory size"),
    "absolute-name-same-length": (raw_zip([entries_of(SIMPLE)[0],
                                           {"name": b"/.npy", "data": entries_of(SIMPLE)[1]["data"]}]),
                                  "must be named '0.npy'"),
    "deflated": (zip_edit(method=8), "compression"),
    "encrypted-flag": (zip_edit(flags=1), "flags"),
    "data-descriptor-flag": (zip_edit(flags=8), "flags"),
    "central-extra": (zip_edit(cextra=b"\x01\x00\x00\x00"), "central directory size"),
    "sizes-differ": (zip_edit(csize=10), "sizes differ"),
    "local-name-differs": (zip_edit(local_name=b"9.npy"), "names another member"),
    "unaligned": (zip_edit(align=False), "extra field"),
    "padding-not-zero": (zip_edit(extra=struct.pack("<HHH", 0xD935, 2 + 40, 64) + b"\1" * 40),
                         "extra field"),
    "crc": (zip_edit(crc=0), "CRC-32 mismatch"),
    "crc-local-differs": (zip_edit(local_crc=1), "disagrees"),
    "overlap": (raw_zip([entries_of(SIMPLE)[0], dict(entries_of(SIMPLE)[1], offset=0)]), "gap or overlap"),
    "gap": (raw_zip([entries_of(SIMPLE)[0], dict(entries_of(SIMPLE)[1], offset=64)]), "gap or overlap"),
    "corrupt-data": (SIMPLE[:-200] + bytes([SIMPLE[-200] ^ 1]) + SIMPLE[-199:], "CRC-32"),
    "extra-member": (repack(unpack(SIMPLE) + [("1.npy", npy(np.zeros(2, I64)))]), "buffer 1 is not used"),
    # --- schema.json ------------------------------------------------------
    "schema-not-utf8": (with_schema(SIMPLE, b'{"a": "\xff"}'), "not UTF-8"),
    "schema-not-json": (with_schema(SIMPLE, b"{"), "not JSON"),
    "schema-dup-key": (with_schema(SIMPLE, b'{"rows": 1, "rows": 2}'), "duplicate key"),
    "schema-float": (with_schema(SIMPLE, b'{"rows": 1.0}'), "fraction or exponent"),
    "schema-nan": (with_schema(SIMPLE, b'{"rows": NaN}'), "NaN is not JSON"),
    "schema-deep": (with_schema(SIMPLE, b"[" * 40 + b"]" * 40), "nests deeper"),
    "schema-very-deep": (with_schema(SIMPLE, b"[" * 100000 + b"]" * 100000), "nests"),
    "schema-huge-int": (with_schema(SIMPLE, b'{"rows": ' + b"9" * 5000 + b"}"), "integer too long"),
    "schema-not-object": (with_schema(SIMPLE, b"[]"), "expected an object"),
    "unknown-key": (edited(SIMPLE, lambda s: s.update(extra=1)), "unknown ['extra']"),
    "missing-key": (edited(SIMPLE, lambda s: s.pop("index")), "missing ['index']"),
    "wrong-format": (edited(SIMPLE, lambda s: s.update(format="other")), "not 'sandcell-frame'"),
    "future-version": (edited(SIMPLE, lambda s: s.update(version=2)), "version 2 is not supported"),
    "bool-version": (edited(SIMPLE, lambda s: s.update(version=True)), "not supported"),
    "negative-rows": (edited(SIMPLE, lambda s: s.update(rows=-1)), "schema.rows"),
    "rows-mismatch": (edited(SIMPLE, lambda s: s.update(rows=3)), "does not have 3 items"),
    "unknown-kind": (edited(SIMPLE, lambda s: s["data"][0].update(kind="pickle")), "not one of"),
    "unknown-dtype": (edited(SIMPLE, lambda s: s["data"][0].update(dtype="object")), "not one of"),
    "labels-as-data": (frame(1, [{"kind": "labels", "labels": [1]}], []), "not allowed for data"),
    "buffer-used-twice": (frame(2, [{"kind": "int", "dtype": "int64", "values": 0},
                                    {"kind": "int", "dtype": "int64", "values": 0}], [np.zeros(2, I64)]),
                          "used twice"),
    "buffer-out-of-range": (edited(SIMPLE, lambda s: s["data"][0].update(values=7)), "expected an integer in"),
    "buffer-ref-bool": (edited(SIMPLE, lambda s: s["data"][0].update(values=False)), "expected an integer"),
    # --- .npy buffers -----------------------------------------------------
    "npy-bad-magic": (with_member(SIMPLE, 1, b"\x93NUMPX" + npy(np.zeros(2, I64))[6:]), "not a .npy version 1.0"),
    "npy-version-2": (with_member(SIMPLE, 1, b"\x93NUMPY\x02\x00" + npy(np.zeros(2, I64))[8:]), "version 1.0"),
    "npy-object": (with_member(SIMPLE, 1, npy(np.zeros(2, I64), {"descr": "|O", "fortran_order": False,
                                                                  "shape": (2,)})), "dtype '|O'"),
    "npy-wrong-dtype": (with_member(SIMPLE, 1, npy(np.zeros(2, "<f8"))), "dtype '<f8'"),
    "npy-big-endian": (with_member(SIMPLE, 1, npy(np.zeros(2, ">i8"))), "dtype '>i8'"),
    "npy-structured": (with_member(SIMPLE, 1, npy(np.zeros(2, [("a", "<i8")]))), "dtype"),
    "npy-2d": (with_member(SIMPLE, 1, npy(np.zeros((2, 1), I64))), "1-D"),
    "npy-fortran": (with_member(SIMPLE, 1, npy(np.zeros(2, I64), {"descr": "<i8", "fortran_order": True,
                                                                   "shape": (2,)})), "1-D array in C order"),
    "npy-short-data": (with_member(SIMPLE, 1, npy(np.zeros(2, I64))[:-1]), "do not fill"),
    "npy-long-data": (with_member(SIMPLE, 1, npy(np.zeros(2, I64)) + b"\0"), "do not fill"),
    "npy-huge-shape": (with_member(SIMPLE, 1, npy(np.zeros(2, I64), {"descr": "<i8", "fortran_order": False,
                                                                      "shape": (2**62,)})), "items"),
    "npy-wrong-count": (with_member(SIMPLE, 1, npy(np.zeros(3, I64))), "3 items, expected 2"),
    "npy-header-too-long": (with_member(SIMPLE, 1, b"\x93NUMPY\x01\x00" + struct.pack("<H", 4086)
                                        + b" " * 4086), "longer than"),
    "npy-header-not-ascii": (with_member(SIMPLE, 1, npy(np.zeros(2, I64)).replace(b"descr", b"d\xe9scr", 1)),
                             "printable ASCII"),
    "npy-header-code": (with_member(SIMPLE, 1, b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
                                    + b"__import__('os').system('true')".ljust(117) + b"\n"), "bad .npy header"),
    "npy-header-nested": (with_member(SIMPLE, 1, b"\x93NUMPY\x01\x00" + struct.pack("<H", 1014)
                                      + (b"(" * 500 + b")" * 500).ljust(1013) + b"\n"), "bad .npy header"),
    "npy-unaligned-data": (with_member(SIMPLE, 1, b"\x93NUMPY\x01\x00" + struct.pack("<H", 60)
                                       + b"{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }".ljust(59)
                                       + b"\n" + bytes(16)), "aligned"),
    # --- values -------------------------------------------------------------
    "bool-byte-2": (frame(2, [{"kind": "bool", "values": 0}], [np.array([0, 2], np.uint8).view(bool)]),
                    "other than 0 and 1"),
    "mask-byte-2": (frame(2, [{"kind": "masked", "dtype": "Int64", "values": 0, "mask": 1}],
                          [np.zeros(2, I64), np.array([0, 2], np.uint8).view(bool)]), "other than 0 and 1"),
    "mask-length": (frame(2, [{"kind": "masked", "dtype": "Int64", "values": 0, "mask": 1}],
                          [np.zeros(2, I64), np.zeros(3, bool)]), "3 items, expected 2"),
    "masked-unknown": (frame(2, [{"kind": "masked", "dtype": "Int128", "values": 0, "mask": 1}],
                             [np.zeros(2, I64), np.zeros(2, bool)]), "not one of"),
    "text-offsets-not-from-0": (one_text(b"ab", [1, 1, 2], [0, 0]), "must start at 0"),
    "text-offsets-past-end": (one_text(b"ab", [0, 1, 3], [0, 0]), "end at the data's length"),
    "text-offsets-short": (one_text(b"ab", [0, 1, 2], [0, 0])[:0] or
                           frame(2, [{"kind": "text", "data": 0, "offsets": 1, "nulls": 2}],
                                 [np.frombuffer(b"ab", np.uint8), np.array([0, 2], I64), np.zeros(2, np.uint8)]),
                           "2 items, expected 3"),
    "text-offsets-decreasing": (one_text(b"abc", [0, 2, 1, 3], [0, 0, 0]), "not monotonic"),
    "text-invalid-utf8": (one_text(b"a\xff", [0, 1, 2], [0, 0]), "invalid UTF-8"),
    "text-overlong-utf8": (one_text(b"\xc0\xaf", [0, 2], [0]), "invalid UTF-8"),
    "text-surrogate-utf8": (one_text(b"\xed\xa0\x80", [0, 3], [0]), "invalid UTF-8"),
    "text-split-char": (one_text("é".encode(), [0, 1, 2], [0, 0]), "invalid UTF-8"),
    "text-split-char-with-nul": (one_text("\x00é".encode(), [0, 2, 3], [0, 0]), "invalid UTF-8"),
    "text-null-code": (one_text(b"", [0, 0], [4]), "a code other than"),
    "string-none-code": (one_text(b"", [0, 0], [1], kind="string"), "a code other than"),
    "text-missing-with-data": (one_text(b"a", [0, 1], [1]), "missing row has a non-empty string"),
    "cat-code-high": (frame(2, [{"kind": "categorical", "ordered": False, "codes": 0,
                                 "categories": {"kind": "int", "dtype": "int64", "values": 1}}],
                            [np.array([0, 2], np.int8), np.array([5, 6], I64)]), "a code outside [-1, 2)"),
    "cat-code-low": (frame(1, [{"kind": "categorical", "ordered": False, "codes": 0,
                                "categories": {"kind": "int", "dtype": "int64", "values": 1}}],
                           [np.array([-2], np.int8), np.array([5], I64)]), "a code outside"),
    "cat-dup": (frame(1, [{"kind": "categorical", "ordered": False, "codes": 0,
                           "categories": {"kind": "int", "dtype": "int64", "values": 1}}],
                      [np.array([0], np.int8), np.array([5, 5], I64)]), "duplicate"),
    "cat-dup-zero": (frame(1, [{"kind": "categorical", "ordered": False, "codes": 0,
                                "categories": {"kind": "float", "dtype": "float64", "values": 1}}],
                           [np.array([0], np.int8), np.array([0.0, -0.0])]), "duplicate"),
    "cat-nan": (frame(1, [{"kind": "categorical", "ordered": False, "codes": 0,
                           "categories": {"kind": "float", "dtype": "float64", "values": 1}}],
                      [np.array([0], np.int8), np.array([np.nan])]), "missing"),
    "cat-text-dup": (frame(1, [{"kind": "categorical", "ordered": False, "codes": 0,
                                "categories": text_col(b"aa", [0, 1, 2], [0, 0], base=1)[0]}],
                           [np.array([0], np.int8)] + text_col(b"aa", [0, 1, 2], [0, 0])[1]), "duplicate"),
    "cat-nested": (frame(1, [{"kind": "categorical", "ordered": False, "codes": 0,
                              "categories": {"kind": "categorical", "ordered": False, "codes": 1,
                                             "categories": {"kind": "int", "dtype": "int64", "values": 2}}}],
                         [np.array([0], np.int8), np.array([0], np.int8), np.array([1], I64)]),
                   "not allowed for categories"),
    "cat-ordered-int": (frame(1, [{"kind": "categorical", "ordered": 0, "codes": 0,
                                   "categories": {"kind": "int", "dtype": "int64", "values": 1}}],
                              [np.array([0], np.int8), np.array([1], I64)]), "true or false"),
    "dt-unit": (frame(1, [{"kind": "datetime", "unit": "D", "tz": None, "values": 0}], [np.zeros(1, I64)]),
                "not one of"),
    "dt-overflow": (frame(1, [{"kind": "datetime", "unit": "s", "tz": None, "values": 0}],
                          [np.array([2**62], I64)]), "out of the nanosecond range"),
    "td-overflow": (frame(1, [{"kind": "timedelta", "unit": "ms", "values": 0}],
                          [np.array([-(2**62)], I64)]), "out of the nanosecond range"),
    "tz-traversal": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": "../../etc/passwd", "values": 0}],
                           [np.zeros(1, I64)]), "not a known IANA"),
    "tz-absolute": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": "/etc/localtime", "values": 0}],
                          [np.zeros(1, I64)]), "not a known IANA"),
    "tz-unknown": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": "Mars/Olympus", "values": 0}],
                         [np.zeros(1, I64)]), "not a known IANA"),
    "tz-empty": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": "", "values": 0}], [np.zeros(1, I64)]),
                 "not a known IANA"),
    "tz-posix-dir": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": "posix/Europe/Berlin", "values": 0}],
                           [np.zeros(1, I64)]), "not a known IANA"),
    "tz-offset-range": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": "+24:00", "values": 0}],
                              [np.zeros(1, I64)]), "UTC offset"),
    "tz-offset-zero": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": "+00:00", "values": 0}],
                             [np.zeros(1, I64)]), "UTC offset"),
    "tz-local-overflow-high": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": "Europe/Berlin", "values": 0}],
                                     [np.array([np.iinfo(np.int64).max], I64)]), "local time"),
    "tz-local-overflow-low": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": "America/New_York", "values": 0}],
                                    [np.array([np.iinfo(np.int64).min + 1], I64)]), "local time"),
    "tz-local-too-many-edge-values": (frame(10_001, [{"kind": "datetime", "unit": "ns", "tz": "UTC", "values": 0}],
                                            [np.full(10_001, np.iinfo(np.int64).max, I64)]), "local time"),
    "tz-not-string": (frame(1, [{"kind": "datetime", "unit": "ns", "tz": 5, "values": 0}],
                            [np.zeros(1, I64)]), "expected a string"),
    # --- indexes and labels -----------------------------------------------
    "range-step-0": (edited(SIMPLE, lambda s: s["index"].update(step=0)), "does not have 2 items"),
    "range-huge": (edited(SIMPLE, lambda s: s["index"].update(stop=2**63)), "expected an integer in"),
    "columns-mismatch": (edited(SIMPLE, lambda s: s["columns"].update(stop=5)), "does not have 1 items"),
    "label-list": (edited(SIMPLE, lambda s: s["index"].update(name=[1])), "a label is"),
    "label-float-not-hex": (edited(SIMPLE, lambda s: s["index"].update(name={"float": "1.5"})), "not a hex float"),
    "label-float-extra-key": (edited(SIMPLE, lambda s: s["index"].update(name={"float": "nan", "x": 1})),
                              "a label is"),
    "label-int-range": (edited(SIMPLE, lambda s: s["index"].update(name=2**64)), "expected an integer in"),
    "label-too-long": (edited(SIMPLE, lambda s: s["index"].update(name="x" * 2000)), "max_label_chars"),
    "label-surrogate": (with_schema(SIMPLE, json.dumps(dict(schema_of(SIMPLE), index=dict(
        schema_of(SIMPLE)["index"], name="\ud800"))).encode()), "lone surrogate"),
    "labels-length": (frame(1, [], [], index={"kind": "index", "name": None, "freq": None,
                                              "values": {"kind": "labels", "labels": [1, 2]}}),
                      "expected a list of 1 labels"),
    "freq-on-int": (frame(1, [], [np.zeros(1, I64)], index={"kind": "index", "name": None, "freq": "D",
                                                            "values": {"kind": "int", "dtype": "int64",
                                                                       "values": 0}}),
                    "only datetime and timedelta"),
    "freq-bogus": (frame(1, [], [np.zeros(1, I64)], index={"kind": "index", "name": None, "freq": "QQQ",
                                                           "values": {"kind": "datetime", "unit": "ns", "tz": None,
                                                                      "values": 0}}),
                   "not a frequency alias"),
    "freq-mismatch": (frame(2, [], [np.array([0, 5], I64)],
                            index={"kind": "index", "name": None, "freq": "D",
                                   "values": {"kind": "datetime", "unit": "ns", "tz": None, "values": 0}}),
                      "do not follow the frequency 'D'"),
    "freq-nat": (frame(2, [], [np.array([0, np.iinfo(np.int64).min], I64)],
                       index={"kind": "index", "name": None, "freq": "D",
                              "values": {"kind": "datetime", "unit": "ns", "tz": None, "values": 0}}), "NaT"),
    "freq-calendar-too-long": (frame(10_001, [], [np.arange(10_001, dtype=I64) * 86_400 * 10**9],
                                     index={"kind": "index", "name": None, "freq": "B",
                                            "values": {"kind": "datetime", "unit": "ns", "tz": None,
                                                       "values": 0}}), "not carried"),
    "freq-timedelta-calendar": (frame(2, [], [np.array([0, 5], I64)],
                                      index={"kind": "index", "name": None, "freq": "MS",
                                             "values": {"kind": "timedelta", "unit": "ns", "values": 0}}),
                                "does not fit"),
    "multi-empty": (frame(0, [], [], index={"kind": "multi", "names": [], "levels": []}), "non-zero length"),
    "multi-names-length": (frame(1, [], [np.array([1], I64), np.zeros(1, np.int8)],
                                 index={"kind": "multi", "names": [None, None],
                                        "levels": [{"values": {"kind": "int", "dtype": "int64", "values": 0},
                                                    "codes": 1, "freq": None}]}), "same, non-zero length"),
    "multi-code-range": (frame(1, [], [np.array([1], I64), np.array([1], np.int8)],
                               index={"kind": "multi", "names": [None],
                                      "levels": [{"values": {"kind": "int", "dtype": "int64", "values": 0},
                                                  "codes": 1, "freq": None}]}), "a code outside [-1, 1)"),
    "multi-level-dup": (frame(1, [], [np.array([1, 1], I64), np.array([0], np.int8)],
                              index={"kind": "multi", "names": [None],
                                     "levels": [{"values": {"kind": "int", "dtype": "int64", "values": 0},
                                                 "codes": 1, "freq": None}]}), "duplicate"),
    "multi-level-labels-dup": (frame(1, [], [np.array([0], np.int8)],
                                     index={"kind": "multi", "names": [None],
                                            "levels": [{"values": {"kind": "labels", "labels": [1, True]},
                                                        "codes": 0, "freq": None}]}), "duplicate"),
    "multi-level-nat": (frame(1, [], [np.array([np.iinfo(np.int64).min], I64), np.array([0], np.int8)],
                              index={"kind": "multi", "names": [None],
                                     "levels": [{"values": {"kind": "datetime", "unit": "ns", "tz": None,
                                                            "values": 0}, "codes": 1, "freq": None}]}),
                        "missing"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rejected(name):
    archive, fragment = CASES[name]
    with pytest.raises(sf.FrameFormatError) as e:
        sf.load(archive)
    assert fragment in str(e.value), str(e.value)


def test_valid_baseline_loads():
    """The cases above are one change away from archives that load."""
    edge = np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min + 1], I64)
    df = sf.load(frame(2, [{"kind": "datetime", "unit": "ns", "tz": "UTC", "values": 0}], [edge]))
    assert str(df[0][0]) == "2262-04-11 23:47:16.854775807+00:00"
    assert sf.load(VALID).shape == (2, 4)
    assert sf.load(SIMPLE).shape == (2, 1)
    assert sf.load(raw_zip(entries_of(SIMPLE))).shape == (2, 1)
    assert sf.load(one_text(b"ab", [0, 1, 2], [0, 0]))[0].tolist() == ["a", "b"]
    assert sf.load(one_int([1, 2])).shape == (2, 1)


@pytest.mark.parametrize("limit,fragment", [
    (sf.Limits(max_bytes=100), "max_bytes"),
    (sf.Limits(max_rows=1), "schema.rows"),
    (sf.Limits(max_columns=3), "max_columns"),
    (sf.Limits(max_buffers=5), "max_buffers"),
    (sf.Limits(max_label_chars=3), "max_label_chars"),
    (sf.Limits(max_json_bytes=100), "max_json_bytes"),
    (sf.Limits(max_json_depth=3), "max_json_depth"),
])
def test_reader_limits(limit, fragment, tmp_path):
    with pytest.raises(sf.FrameFormatError, match=fragment):
        sf.load(VALID, limits=limit)
    p = tmp_path / "f.scf"
    p.write_bytes(VALID)
    with pytest.raises(sf.FrameFormatError, match=fragment):
        sf.load(p, limits=limit)


def test_limits_validated():
    with pytest.raises(ValueError):
        sf.Limits(max_rows=0)
    with pytest.raises(ValueError):
        sf.Limits(max_buffers=70000)
    with pytest.raises(ValueError):
        sf.Limits(max_bytes=True)


def test_sources(tmp_path):
    with pytest.raises(sf.FrameFormatError, match="cannot open"):
        sf.load(tmp_path / "missing")
    with pytest.raises(sf.FrameFormatError, match="not a regular file"):
        sf.load(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # A FIFO with no writer would block a plain open() forever.
    done = []
    t = threading.Thread(target=lambda: done.append(pytest.raises(sf.FrameFormatError, sf.load, fifo)),
                         daemon=True)
    t.start()
    t.join(10)
    assert done, "load() of a FIFO hung"
    with pytest.raises(TypeError):
        sf.load(12)


def test_growing_stream_capped():
    """A file object that never ends is read up to max_bytes + 1, no more."""
    class Endless:
        read_total = 0

        def read(self, n):
            Endless.read_total += n
            return b"\0" * n
    with pytest.raises(sf.FrameFormatError, match="max_bytes"):
        sf.load(Endless(), limits=sf.Limits(max_bytes=1 << 20))
    assert Endless.read_total <= (1 << 20) + 1


# ---------------------------------------------------------------------------
# Hash flooding: pandas checks category and level uniqueness with hash
# tables whose int64 hash is a fixed function, so crafted keys make that
# check quadratic (20,000 keys: about 1 s; 200,000: minutes).  The reader
# checks uniqueness by sorting and skips pandas' check.

def _khash_int64(k):
    """pandas 1.5's kh_int64_hash_func (khash_python.h), on a uint64."""
    return ((k >> 33) ^ k ^ (k << 11)) & 0xFFFFFFFF


def colliding_int64(n, target=12345):
    """n distinct int64 keys that all hash to `target` in pandas' table."""
    def inv(x):  # inverts L -> L ^ (L << 11) on 32 bits
        v = x
        for _ in range(4):
            v = x ^ ((v << 11) & 0xFFFFFFFF)
        return v
    keys = []
    for h in range(1, n + 1):
        hi = h << 33
        k = hi | inv(target ^ ((hi >> 33) & 0xFFFFFFFF))
        assert _khash_int64(k) == target
        keys.append(k - (1 << 64) if k >= 1 << 63 else k)
    return np.array(keys, dtype=np.int64)


def test_hash_flood_keys_do_collide():
    """The keys really are adversarial for pandas: a smaller set makes its
    own uniqueness check take far longer than a random set of that size."""
    keys = colliding_int64(6000)
    rand = np.random.default_rng(0).integers(-2**62, 2**62, 6000)
    t0 = time.perf_counter()
    assert pd.Index(rand).is_unique
    t1 = time.perf_counter()
    assert pd.Index(keys).is_unique
    t2 = time.perf_counter()
    assert (t2 - t1) > 20 * (t1 - t0), (t2 - t1, t1 - t0)


def test_hash_flood_frequency_inference_avoided():
    """pandas infers a frequency (hashing the values' differences) before it
    checks one; crafted differences would make that quadratic.  The reader
    compares the values with the generated range first and rejects them."""
    # Increasing values (pandas only infers on monotonic ones) whose
    # differences all share one hash: 40,000 of them took pandas 14.6 s.
    values = np.cumsum(colliding_int64(40_000))
    archive = frame(len(values), [], [values], index={"kind": "index", "name": None, "freq": "N",
                                                      "values": {"kind": "datetime", "unit": "ns", "tz": None,
                                                                 "values": 0}})
    t = time.perf_counter()
    with pytest.raises(sf.FrameFormatError, match="do not follow"):
        sf.load(archive)
    assert time.perf_counter() - t < 3


@pytest.mark.parametrize("where", ["categories", "categorical-index", "level", "categorical-level"])
def test_hash_flood_categories_and_levels_load_fast(where):
    keys = colliding_int64(100_000)  # pandas' own check: 30 s
    codes = np.arange(4, dtype=np.int32)
    cat = {"kind": "categorical", "ordered": False, "codes": 0,
           "categories": {"kind": "int", "dtype": "int64", "values": 1}}
    if where == "categories":
        archive = frame(4, [cat], [codes, keys])
    elif where == "categorical-index":
        archive = frame(4, [], [codes, keys], index={"kind": "index", "name": None, "freq": None, "values": cat})
    elif where == "categorical-level":
        # A level whose values are a categorical over the colliding keys.
        archive = frame(4, [], [codes, keys, codes], index={"kind": "multi", "names": [None], "levels": [
            {"values": cat, "codes": 2, "freq": None}]})
    else:
        archive = frame(4, [], [keys, codes], index={"kind": "multi", "names": [None], "levels": [
            {"values": {"kind": "int", "dtype": "int64", "values": 0}, "codes": 1, "freq": None}]})
    t = time.perf_counter()
    df = sf.load(archive)
    assert time.perf_counter() - t < 3
    assert len(df) == 4
    # The categories/levels are usable, and pandas still knows they are unique.
    idx = {"categories": lambda: df[0].cat.categories, "categorical-index": lambda: df.index.categories,
           "level": lambda: df.index.levels[0], "categorical-level": lambda: df.index.levels[0].categories}[where]()
    assert idx.is_unique and len(idx) == len(keys)


def test_npy_header_other_writers():
    """A header numpy's parser accepts but that is not the byte form numpy's
    writer makes (other key order, spacing) is parsed by numpy's parser
    rather than the canonical fast path, and accepted; the same header with
    another dtype is not."""
    body = "{'shape': (2,), 'descr': '<i8',  'fortran_order': False}"
    pad = 64 - (10 + len(body) + 1) % 64
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body) + pad + 1) + body.encode() + b" " * pad + b"\n"
    data = np.array([7, 8], I64).tobytes()
    assert sf.load(with_member(SIMPLE, 1, header + data))[0].tolist() == [7, 8]
    bad = header.replace(b"<i8", b"<u8")
    with pytest.raises(sf.FrameFormatError, match="dtype '<u8'"):
        sf.load(with_member(SIMPLE, 1, bad + data))
