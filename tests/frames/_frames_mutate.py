"""Mutations of valid frame archives, shared by the hypothesis tests
(test_frames_mutation.py, driven by st.randoms()) and the time-boxed fuzzer
(fuzz_frames.py, driven by random.Random).  Raw byte mutations mostly meet
the container checks (a CRC catches a flipped data byte); member, schema,
.npy header and buffer-value mutations re-pack the archive with valid CRCs
and alignment so that they reach the checks behind those."""
import copy
import io
import json
import time
import tracemalloc

import numpy as np
import pandas as pd

from _frames_util import assert_identical, repack, sf, unpack

# Bounds on one load of a small hostile archive.  Generous for a loaded CI
# machine; what they catch is a hang or an allocation sized by the input.
TIME_BOUND = 5.0
MEM_BASE = 32 << 20
MEM_FACTOR = 64


def seed_frames():
    """Small frames that together use every kind, index shape and label type."""
    n = 4
    t = pd.date_range("2021-03-27", periods=n, freq="D", tz="Europe/Berlin")
    return [
        pd.DataFrame({"i": np.arange(n, dtype=np.int16), "f": [1.5, np.nan, -0.0, np.inf], "b": [True, False] * 2,
                      "s": ["a", None, "é\x00", np.nan]}),
        pd.DataFrame({"I": pd.array([1, None, 3, 4], dtype="Int64"),
                      "B": pd.array([True, None, False, True], dtype="boolean"),
                      "F": pd.array([1.0, None, 2.5, 0], dtype="Float32"),
                      "S": pd.array(["x", None, "", "ü"], dtype="string")},
                     index=pd.Index(["p", "q", "r", "s"], name="key")),
        pd.DataFrame({"c": pd.Categorical(["a", "b", None, "a"], ordered=True),
                      "ci": pd.Categorical([3, 1, 3, None]),
                      "ct": pd.Categorical(t[[0, 1, 0, 2]]),
                      "td": pd.to_timedelta([1, None, 3, 4], unit="s")}, index=t),
        pd.DataFrame(np.arange(8).reshape(4, 2), columns=pd.MultiIndex.from_tuples([("x", 1), ("y", 2.5)],
                                                                                   names=["l0", None]),
                     index=pd.MultiIndex.from_arrays([["a", "a", "b", "b"], [1, 2, 1, 2]], names=["k", 7])),
        pd.DataFrame([[1, 2, 3]], columns=["a", 1, None], index=pd.Index([True], name=1.5)),
        pd.DataFrame({"t": pd.to_datetime(["2020-01-01", None, "1999-12-31", "2262-01-01"]),
                      "u": pd.date_range("2020", periods=n, tz="+05:30"),
                      "cat": pd.Categorical(["x", "y", "x", "y"], categories=["y", "x"])},
                     index=pd.timedelta_range("1s", periods=n, freq="5T")),
        pd.DataFrame(),
    ]


SEEDS = [sf.dumps(df) for df in seed_frames()]

# ---------------------------------------------------------------------------
# Mutators: (rng, archive bytes) -> bytes


def flip_bytes(rng, a):
    b = bytearray(a)
    for _ in range(rng.randint(1, 8)):
        if b:
            b[rng.randrange(len(b))] ^= rng.choice([1, 0x80, 0xFF, rng.randrange(1, 256)])
    return bytes(b)


def truncate(rng, a):
    return a[:rng.randrange(len(a) + 1)]


def splice(rng, a):
    i, j = sorted(rng.randrange(len(a) + 1) for _ in range(2))
    op = rng.choice(["insert", "delete", "duplicate"])
    if op == "insert":
        return a[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 70))) + a[i:]
    if op == "delete":
        return a[:i] + a[j:]
    return a[:j] + a[i:j] + a[j:]


def _members(a):
    return unpack(a)


def member_bytes(rng, a):
    """One member's bytes changed, the archive re-packed validly."""
    m = _members(a)
    k = rng.randrange(len(m))
    name, data = m[k]
    data = rng.choice([flip_bytes, truncate, splice])(rng, data) if data else bytes([rng.randrange(256)])
    m[k] = (name, data)
    return repack(m)


def member_shuffle(rng, a):
    m = _members(a)
    op = rng.choice(["swap", "drop", "dup", "append", "swap-data"])
    if op == "swap" and len(m) > 1:
        i, j = rng.sample(range(len(m)), 2)
        m[i], m[j] = m[j], m[i]
    elif op == "swap-data" and len(m) > 2:
        i, j = rng.sample(range(1, len(m)), 2)
        m[i], m[j] = (m[i][0], m[j][1]), (m[j][0], m[i][1])
    elif op == "drop" and len(m) > 1:
        del m[rng.randrange(1, len(m))]
        m = [m[0]] + [("%d.npy" % i, d) for i, (_, d) in enumerate(m[1:])]
    elif op == "dup":
        k = rng.randrange(len(m))
        m.insert(k, m[k])
    else:
        m.append(("%d.npy" % (len(m) - 1), m[rng.randrange(len(m))][1]))
    return repack(m)


POOL = [None, True, False, 0, 1, -1, 2, 3, 7, 255, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 2**64,
        "", "int", "float", "bool", "masked", "text", "string", "categorical", "datetime", "timedelta",
        "labels", "range", "index", "multi", "ns", "s", "ms", "D", "UTC", "Europe/Berlin", "+05:30",
        "-23:59", "../etc/passwd", "H", "W-SUN", "int8", "int64", "uint64", "float16", "Int64", "boolean",
        "Float32", "x" * 1500, "\u00e9", [], [None], [1, 2], {}, {"float": "nan"}, {"float": "-0x1.8p+1"},
        {"float": "1e5"}, "sandcell-frame"]


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


def _get(node, path):
    for p in path:
        node = node[p]
    return node


def schema_edit(rng, a):
    """A JSON-level change to schema.json: replace a node (by a pool value
    or another subtree of the same schema), delete or add a key, or change
    a number by one; the buffers are unchanged."""
    m = _members(a)
    try:
        doc = json.loads(m[0][1])
    except ValueError:
        return a
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(doc))
        path = rng.choice(paths)
        op = rng.choice(["replace", "subtree", "delete", "add", "nudge"])
        parent = _get(doc, path[:-1]) if path else None
        if not path:
            continue
        key = path[-1]
        if op == "replace":
            parent[key] = copy.deepcopy(rng.choice(POOL))
        elif op == "subtree":
            parent[key] = copy.deepcopy(_get(doc, rng.choice(paths)))
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent, dict):
            parent[rng.choice(["extra", "kind", "values", "tz", "freq", "name"])] = copy.deepcopy(rng.choice(POOL))
        elif op == "add" and isinstance(parent, list):
            parent.insert(rng.randrange(len(parent) + 1), copy.deepcopy(_get(doc, rng.choice(paths))))
        elif op == "nudge" and type(parent[key]) is int:
            parent[key] += rng.choice([-1, 1])
    m[0] = (m[0][0], json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode())
    return repack(m)


DESCRS = ["<i8", "<i4", "|i1", "|u1", "|b1", "<f8", "<f4", "<f2", ">i8", "|O", "<M8[ns]", "<m8[ns]", "|V8",
          "<U1", "|S1", [("a", "<i8")], "<c16"]


def npy_header(rng, a):
    """A buffer's .npy header rewritten with another dtype or shape (via
    numpy's writer, so it stays well-formed), data unchanged."""
    m = _members(a)
    if len(m) < 2:
        return a
    k = rng.randrange(1, len(m))
    name, data = m[k]
    try:
        f = io.BytesIO(data)
        np.lib.format.read_magic(f)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        body = data[f.tell():]
    except Exception:
        return a
    n = shape[0] if shape else 0
    descr = rng.choice(DESCRS + [dtype.str] * 4)
    shape = rng.choice([(n,), (n,), (n + 1,), (max(n - 1, 0),), (0,), (2**40,), (n, 1), ()])
    h = io.BytesIO()
    np.lib.format.write_array_header_1_0(h, {"descr": descr, "fortran_order": rng.random() < 0.1, "shape": shape})
    m[k] = (name, h.getvalue() + body)
    return repack(m)


def buffer_values(rng, a):
    """A buffer's values changed in place (same dtype and length): codes,
    offsets, masks, nulls and bool bytes get out-of-range or unordered
    values, strings get invalid UTF-8."""
    m = _members(a)
    if len(m) < 2:
        return a
    k = rng.randrange(1, len(m))
    name, data = m[k]
    try:
        f = io.BytesIO(data)
        np.lib.format.read_magic(f)
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        head = data[:f.tell()]
        arr = np.frombuffer(data, dtype=dtype, offset=f.tell()).copy()
    except Exception:
        return a
    if not arr.size:
        return a
    raw = arr.view(np.uint8)
    op = rng.choice(["byte", "value", "shuffle", "extreme"])
    if op == "byte":
        raw[rng.randrange(raw.size)] = rng.choice([0, 1, 2, 0x80, 0xC0, 0xED, 0xFF])
    elif op == "value" and dtype.kind in "iu":
        v = rng.choice([-2, -1, 0, 1, 2, arr.size, arr.size + 1, int(np.iinfo(dtype).max), int(np.iinfo(dtype).min)])
        arr[rng.randrange(arr.size)] = np.array(v, dtype=np.int64).astype(dtype)  # wraps, as intended
    elif op == "shuffle":
        rng.shuffle(arr)
    elif op == "extreme" and dtype.kind in "iu":
        arr[:] = np.iinfo(dtype).max if rng.random() < 0.5 else np.iinfo(dtype).min
    m[k] = (name, head + arr.tobytes())
    return repack(m)


RAW = [flip_bytes, truncate, splice]
STRUCTURED = [member_bytes, member_shuffle, schema_edit, npy_header, buffer_values]
ALL = RAW + STRUCTURED


def mutate(rng, archive, mutators, rounds=None):
    for _ in range(rounds or rng.randint(1, 3)):
        m = rng.choice(mutators)
        try:
            archive = m(rng, archive)
        except Exception:  # noqa: BLE001 - the stdlib cannot take apart what an earlier round broke: skip
            pass
    return archive


# ---------------------------------------------------------------------------
# The property every input must satisfy.

class Finding(AssertionError):
    """An input broke the reader's contract."""


def check_contract(archive):
    """load() either raises FrameFormatError or returns a DataFrame, within
    TIME_BOUND seconds and MEM_BASE + MEM_FACTOR * size bytes of traced
    allocations; a frame it accepts writes back and loads identically.
    Returns the outcome: "ok" or the rejection message."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        df = sf.load(archive)
        outcome = "ok"
    except sf.FrameFormatError as e:
        df, outcome = None, str(e)
    except BaseException as e:
        raise Finding(f"load() raised {type(e).__name__}: {e}") from e
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if elapsed > TIME_BOUND:
        raise Finding(f"load() took {elapsed:.1f} s")
    if peak > MEM_BASE + MEM_FACTOR * len(archive):
        raise Finding(f"load() allocated {peak} bytes for a {len(archive)}-byte archive")
    if df is not None:
        if type(df) is not pd.DataFrame:
            raise Finding(f"load() returned {type(df).__name__}")
        try:
            again = sf.load(sf.dumps(df))
            assert_identical(df, again)
        except BaseException as e:
            raise Finding(f"an accepted frame does not round-trip: {type(e).__name__}: {e}") from e
    return outcome
