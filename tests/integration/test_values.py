"""Values (docs/values.md): sandcell.result() and JSON in display() take
numpy, pandas, NaN/Infinity, datetimes, Decimals, bytes and anything else
through the documented mapping, and never raise on a value inside the
user's code.  Each case checks the exact JSON the report holds."""
import textwrap

import pytest

from harness import nb_validate


def published(sandcell, setup, expr, cell=False):
    """The report's result after sandcell.result(expr)."""
    code = "import sandcell\n" + textwrap.dedent(setup) + "\nsandcell.result(%s)\nprint('no raise')\n" % expr
    run = sandcell(code=code, opts=["--cell"] if cell else [])
    assert run.status == "ok", run
    assert run.report["result_error"] is None, run.report
    assert "no raise" in run.out
    return run.report["result"]


CASES = [
    # plain JSON stays plain
    ("", '{"a": [1, 2.5, "s", None, True]}', {"a": [1, 2.5, "s", None, True]}),
    ("", "(1, 2)", [1, 2]),
    ("", "-0.0", -0.0),
    ("", "0.1", 0.1),
    ("", "2**63 - 1", 2 ** 63 - 1),
    # numbers JSON cannot hold
    ("", "float('nan')", {"$float": "NaN"}),
    ("", "[float('inf'), -float('inf')]", [{"$float": "Infinity"}, {"$float": "-Infinity"}]),
    ("", "2**64", {"$int": "18446744073709551616"}),
    ("", "-2**63 - 1", {"$int": "-9223372036854775809"}),
    ("", "1.5 - 2j", {"$complex": [1.5, -2.0]}),
    ("import decimal", "decimal.Decimal('1.10')", {"$decimal": "1.10"}),
    ("import decimal", "decimal.Decimal('-Infinity')", {"$decimal": "-Infinity"}),
    # containers JSON cannot hold
    ("", "{1: 'a', (2, 3): 'b'}", {"$map": [[1, "a"], [[2, 3], "b"]]}),
    ("", "{'$float': 'x'}", {"$map": [["$float", "x"]]}),
    ("", "{'$a': 1, 'b': 2}", {"$a": 1, "b": 2}),
    ("", "{3}", {"$set": [3]}),
    ("", "b'\\x00\\xffab'", {"$bytes": "AP9hYg=="}),
    ("", "bytearray(b'x')", {"$bytes": "eA=="}),
    # time
    ("import datetime as dt", "dt.datetime(2024, 1, 2, 3, 4, 5, 6)",
     {"$datetime": "2024-01-02T03:04:05.000006"}),
    ("import datetime as dt", "dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))",
     {"$datetime": "2024-01-02T00:00:00+05:30"}),
    ("import datetime as dt", "dt.date(2024, 2, 29)", {"$date": "2024-02-29"}),
    ("import datetime as dt", "dt.time(13, 5, 7, 250000)", {"$time": "13:05:07.250000"}),
    ("import datetime as dt", "dt.timedelta(days=1, hours=2, seconds=3.5)",
     {"$timedelta": "P1DT2H0M3.5S"}),
    ("import datetime as dt", "dt.timedelta(seconds=-1)", {"$timedelta": "-P0DT0H0M1S"}),
    # numpy
    ("import numpy as np", "np.int64(7)", 7),
    ("import numpy as np", "np.uint64(2**64 - 1)", {"$int": "18446744073709551615"}),
    ("import numpy as np", "np.float32(0.5)", 0.5),
    ("import numpy as np", "np.float64('nan')", {"$float": "NaN"}),
    ("import numpy as np", "np.bool_(True)", True),
    ("import numpy as np", "np.complex128(1j)", {"$complex": [0.0, 1.0]}),
    ("import numpy as np", "np.str_('s')", "s"),
    ("import numpy as np", "np.arange(6).reshape(2, 3)",
     {"$ndarray": {"dtype": "int64", "shape": [2, 3], "data": [[0, 1, 2], [3, 4, 5]]}}),
    ("import numpy as np", "np.array([1.5, np.nan, np.inf])",
     {"$ndarray": {"dtype": "float64", "shape": [3],
                   "data": [1.5, {"$float": "NaN"}, {"$float": "Infinity"}]}}),
    ("import numpy as np", "np.array(3.0)", {"$ndarray": {"dtype": "float64", "shape": [], "data": 3.0}}),
    ("import numpy as np", "np.zeros((0, 2))", {"$ndarray": {"dtype": "float64", "shape": [0, 2], "data": []}}),
    ("import numpy as np", "np.datetime64('2024-01-02T03:04:05.123456789')",
     {"$datetime": "2024-01-02T03:04:05.123456789"}),
    ("import numpy as np", "np.datetime64('2024-01')", {"$datetime": "2024-01"}),
    ("import numpy as np", "np.datetime64('NaT')", {"$datetime": "NaT"}),
    ("import numpy as np", "np.timedelta64(1500, 'ms')", {"$timedelta": "P0DT0H0M1.5S"}),
    ("import numpy as np", "np.timedelta64(90061, 's')", {"$timedelta": "P1DT1H1M1S"}),
    ("import numpy as np", "np.timedelta64('NaT')", {"$timedelta": "NaT"}),
    ("import numpy as np", "np.array(['2024-01-01', 'NaT'], dtype='datetime64[D]')",
     {"$ndarray": {"dtype": "datetime64[D]", "shape": [2],
                   "data": [{"$datetime": "2024-01-01"}, {"$datetime": "NaT"}]}}),
    # pandas
    ("import pandas as pd", "pd.Timestamp('2024-01-01 00:00:00.000000001', tz='UTC')",
     {"$datetime": "2024-01-01T00:00:00.000000001+00:00"}),
    ("import pandas as pd", "pd.Timedelta(nanoseconds=1)", {"$timedelta": "P0DT0H0M0.000000001S"}),
    ("import pandas as pd", "[pd.NaT, pd.NA]", [{"$datetime": "NaT"}, {"$na": None}]),
    ("import pandas as pd", "pd.Series([1.5, None], index=['a', 'b'], name='s')",
     {"$series": {"name": "s", "dtype": "float64", "index": ["a", "b"],
                  "data": [1.5, {"$float": "NaN"}]}}),
    ("import pandas as pd", "pd.Series([1, None], dtype='Int64')",
     {"$series": {"name": None, "dtype": "Int64", "index": [0, 1], "data": [1, {"$na": None}]}}),
    ("import pandas as pd",
     "pd.DataFrame({'n': [1, 2], 't': pd.to_datetime(['2024-01-01', None]), 's': ['x', None]})",
     {"$dataframe": {"columns": ["n", "t", "s"], "index": [0, 1],
                     "dtypes": ["int64", "datetime64[ns]", "object"],
                     "data": [[1, {"$datetime": "2024-01-01T00:00:00"}, "x"],
                              [2, {"$datetime": "NaT"}, None]]}}),
    ("import pandas as pd", "pd.Index([3, 4])", [3, 4]),
    ("import pandas as pd", "pd.DataFrame({'a': [1]}).a.sum()", 1),
    # unknown objects: a tagged repr, never an exception
    ("class Thing:\n    def __repr__(self): return 'Thing()'", "Thing()", {"$repr": "Thing()"}),
    ("class Bad:\n    def __repr__(self): raise RuntimeError('no')", "Bad()",
     {"$repr": "<unrepresentable Bad>"}),
    ("", "print", {"$repr": "<built-in function print>"}),
    ("l = [1]\nl.append(l)", "l", [1, {"$repr": "<cycle: list>"}]),
    ("", "'a\\udcff'", "a\\udcff"),
]


@pytest.mark.parametrize("setup,expr,want", CASES, ids=[c[1][:40] for c in CASES])
def test_result_mapping(sandcell, setup, expr, want):
    got = published(sandcell, setup, expr)
    assert got == want
    if isinstance(want, float):  # -0.0 == 0.0: the sign must survive too
        assert str(got) == str(want)


def test_deep_and_huge_values_do_not_raise(sandcell):
    got = published(sandcell, "deep = []\nx = deep\nfor _ in range(200):\n    x.append([])\n    x = x[0]\n"
                              "big = 10 ** 5000", "[deep, big]")
    depth, x = 0, got[0]
    while isinstance(x, list) and x:
        x = x[0]
        depth += 1
    assert x == {"$repr": "<nested deeper than 48 levels>"}, x
    assert 40 <= depth <= 48
    assert got[1] == {"$int": "1" + "0" * 5000} or got[1]["$repr"].startswith("<int of")


def test_long_repr_is_cut(sandcell):
    got = published(sandcell, "class Long:\n    def __repr__(self): return 'x' * 50000", "Long()")
    assert got["$repr"].startswith("x" * 10000) and got["$repr"].endswith("[40000 characters cut]")


def test_result_in_cell_mode_and_display_json(sandcell):
    """The same mapping in cell mode, and for application/json outputs."""
    run = sandcell(code=textwrap.dedent("""
        import numpy as np, sandcell
        sandcell.result({"n": np.int64(3), "x": np.nan})
        display(sandcell.JSON({"arr": np.arange(2), "t": np.datetime64("2024-01-02")}))
        np.float64(2.5)
    """), opts=["--cell"])
    assert run.status == "ok", run
    assert run.report["result"] == {"n": 3, "x": {"$float": "NaN"}}
    o = run.report["cell"]["outputs"]
    nb_validate(o)
    assert o[0]["data"]["application/json"] == {
        "arr": {"$ndarray": {"dtype": "int64", "shape": [2], "data": [0, 1]}},
        "t": {"$datetime": "2024-01-02"}}
    assert o[1]["data"]["text/plain"] == "2.5"


def test_last_result_wins_and_old_records_work(sandcell):
    """result() still writes what it always did: a plain JSON line."""
    run = sandcell(code=textwrap.dedent("""
        import os, sandcell
        sandcell.result(1)
        os.write(int(os.environ["SANDCELL_RESULT_FD"]), b'{"written": "by hand"}\\n')
    """))
    assert run.report["result"] == {"written": "by hand"}
