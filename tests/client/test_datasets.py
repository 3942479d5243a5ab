"""DataFrames in and out of a run through the host client, cold and warm:
sandcell.run(datasets=...) -> sandcell.datasets[...] inside -> published
with sandcell.datasets[NAME] = df -> Result.datasets, every dtype the
format carries exact, and whatever the code leaves under /output/datasets
read with the hardened reader only (docs/datasets.md)."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import client_util
from client_util import BIN, sandcell

server, runner, no_leftover_dirs = client_util.server, client_util.runner, client_util.no_leftover_dirs


def every_dtype() -> pd.DataFrame:
    idx = pd.MultiIndex.from_tuples([("n", 1), ("s", 2), ("e", 3), ("w", 4)], names=["region", "k"])
    return pd.DataFrame({
        "i64": np.array([1, -2**63, 2**63 - 1, 0], dtype="int64"),
        "u8": np.array([0, 1, 254, 255], dtype="uint8"),
        "f64": [0.1, float("nan"), float("inf"), -0.0],
        "f32": np.array([1.5, -2.25, np.nan, 3e38], dtype="float32"),
        "b": [True, False, True, False],
        "nint": pd.array([1, None, 3, -4], dtype="Int64"),
        "nbool": pd.array([True, None, False, True], dtype="boolean"),
        "text": ["a", "ünï", None, ""],
        "str": pd.array(["x", None, "z", "w"], dtype="string"),
        "cat": pd.Categorical(["lo", "hi", "lo", None], categories=["lo", "hi"], ordered=True),
        "ts": pd.to_datetime(["2024-01-01", None, "1970-01-01 00:00:00.000000001", "2262-04-11"]),
        "tz": pd.to_datetime(["2024-03-31 01:30", None, "2024-10-27 02:30", "2000-01-01"]).tz_localize(
            "Europe/Berlin", ambiguous=True, nonexistent="shift_forward"),
        "td": pd.to_timedelta([1, None, -5, 86400 * 10**9], unit="ns"),
    }, index=idx)


def test_round_trip_every_dtype(runner, no_leftover_dirs):
    df = every_dtype()
    code = ("import sandcell\n"
            "df = sandcell.datasets['sales']\n"
            "sandcell.datasets['back'] = df\n"
            "print(sorted(sandcell.datasets), sandcell.datasets.given(), sandcell.datasets.published())\n")
    with runner(code, datasets={"sales": df}) as res:
        assert res.status == "ok", res.stderr
        assert res.stdout == b"['back', 'sales'] ['sales'] ['back']\n"
        pd.testing.assert_frame_equal(res.datasets["back"], df, check_exact=True)
        assert list(res.datasets["back"].dtypes) == list(df.dtypes)
        # Bit-exact floats (assert_frame_equal treats -0.0 == 0.0).
        assert res.datasets["back"]["f64"].to_numpy().tobytes() == df["f64"].to_numpy().tobytes()
        assert res.dataset_errors == {}
        assert [f.path for f in res.files] == ["datasets/back.scf"]


def test_published_from_an_analysis_in_a_cell(runner, no_leftover_dirs):
    sales = pd.DataFrame({"region": ["n", "s", "n", "e"], "amount": [3.5, 5.0, 1.25, 2.0]})
    code = ("import sandcell\n"
            "df = sandcell.datasets['sales']\n"
            "by = df.groupby('region').amount.agg(['sum', 'count'])\n"
            "sandcell.datasets['by_region'] = by\n"
            "by\n")
    with runner(code, datasets={"sales": sales}, cell=True) as res:
        assert res.status == "ok", res.outputs
        expect = sales.groupby("region").amount.agg(["sum", "count"])
        pd.testing.assert_frame_equal(res.datasets["by_region"], expect, check_exact=True)
        assert res.outputs[-1]["output_type"] == "execute_result"
        assert "text/html" in res.outputs[-1]["data"]


def test_an_archive_path_is_handed_over_as_it_is(runner, tmp_path, no_leftover_dirs):
    df = pd.DataFrame({"a": [1, 2, 3]})
    path = tmp_path / "a.scf"
    sandcell.frames.dump(df, str(path))
    with runner("import sandcell\nsandcell.result(int(sandcell.datasets['a'].a.sum()))",
                datasets={"a": path}) as res:
        assert res.status == "ok" and res.value == 6


def test_inside_the_mapping_behaves(runner, no_leftover_dirs):
    code = r"""
import sandcell, pandas as pd
ds = sandcell.datasets
try:
    ds["missing"]
except KeyError as e:
    print("KeyError", e)
for bad in ["", ".x", "-x", "a/b", "x" * 256, 3]:
    try:
        ds[bad] = pd.DataFrame()
    except (ValueError, TypeError) as e:
        print(type(e).__name__)
try:
    ds["objs"] = pd.DataFrame({"o": [object()]})
except TypeError as e:
    print("unsupported:", "'o'" in str(e))
import os
print(os.listdir(sandcell.output))
ds["tmp"] = pd.DataFrame({"x": [1]})
del ds["tmp"]
try:
    del ds["given"]
except KeyError:
    print("given stays")
print(sorted(ds), "given" in ds, ds.get("nope", 7), len(ds))
print(sorted(sandcell.inputs))
"""
    with runner(code, datasets={"given": pd.DataFrame({"v": [1]})}) as res:
        assert res.status == "ok", res.stderr
        lines = res.stdout.decode().splitlines()
        assert lines[0].startswith("KeyError") and "given" in lines[0]
        assert lines[1:7] == ["ValueError"] * 5 + ["TypeError"]
        assert lines[7] == "unsupported: True"
        assert lines[8] == "[]"        # a refused frame leaves nothing behind
        assert lines[9:] == ["given stays", "['given'] True 7 1", "[]"]
        assert res.datasets == {} and res.files == ()


def test_host_refuses_what_it_cannot_send(runner, no_leftover_dirs):
    with pytest.raises(sandcell.BadRequest, match="dataset"):
        runner("pass", datasets={"../x": pd.DataFrame()})
    with pytest.raises(sandcell.BadRequest, match="'sales'"):
        runner("pass", datasets={"sales": object()})
    with pytest.raises(sandcell.BadRequest, match="'o'"):
        runner("pass", datasets={"sales": pd.DataFrame({"o": [object()]})})


# What the code can leave in /output/datasets: the host reads it only with
# the archive reader, and a bad one is an error for that name alone.
HOSTILE = r"""
import os, pickle, sandcell, pandas as pd
d = os.path.join(sandcell.output, "datasets")
os.makedirs(d)
class Boom:
    def __reduce__(self):
        return (open, (%r, "w"))
open(os.path.join(d, "pickled.scf"), "wb").write(pickle.dumps(Boom()))
open(os.path.join(d, "junk.scf"), "wb").write(b"PK\x03\x04" + os.urandom(200))
open(os.path.join(d, "empty.scf"), "wb").close()
os.symlink("/etc/passwd", os.path.join(d, "link.scf"))
open(os.path.join(d, "notes.txt"), "w").write("not a dataset")
sandcell.datasets["good"] = pd.DataFrame({"x": [1.0]})
"""


def test_hostile_published_files_are_errors_not_code(runner, tmp_path, no_leftover_dirs):
    marker = tmp_path / "unpickled"
    with runner(HOSTILE % str(marker)) as res:
        assert res.status == "ok", res.stderr
        assert not marker.exists()
        assert list(res.datasets) == ["good"]
        assert sorted(res.dataset_errors) == ["empty", "junk", "pickled"]
        assert all(m.startswith("datasets/") for m in res.dataset_errors.values())
        assert "datasets/notes.txt" in {f.path for f in res.files}


def test_published_before_a_timeout_is_kept(runner, no_leftover_dirs):
    code = ("import sandcell, pandas as pd, time\n"
            "sandcell.datasets['early'] = pd.DataFrame({'x': range(5)})\n"
            "time.sleep(60)\n")
    with runner(code, limits={"wall_time": 2}) as res:
        assert res.status == "timeout"
        assert list(res.datasets["early"].x) == list(range(5))


def test_old_cli_without_datasets_is_refused(tmp_path):
    """A CLI that does not list --dataset is never handed one (the run is
    refused rather than run without the data)."""
    fake = tmp_path / "sandcell"
    fake.write_text("#!/bin/sh\necho '  --quiet   q'\necho '  --cell   c'\n")
    fake.chmod(0o755)
    with pytest.raises(sandcell.BadRequest, match="--dataset"):
        sandcell.run("pass", datasets={"a": pd.DataFrame()}, binary=str(fake))


def test_cli_dataset_option_round_trip(tmp_path):
    """The CLI alone: --dataset NAME=ARCHIVE in, datasets/NAME.scf out."""
    import subprocess
    df = every_dtype()
    arch = tmp_path / "in.scf"
    sandcell.frames.dump(df, str(arch))
    out = tmp_path / "out"
    p = subprocess.run([BIN, "run", "--quiet", "--dataset", "sales=%s" % arch, "--output", str(out),
                        "-c", "import sandcell\nsandcell.datasets['copy'] = sandcell.datasets['sales']"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert os.listdir(out) == ["datasets"] and os.listdir(out / "datasets") == ["copy.scf"]
    pd.testing.assert_frame_equal(sandcell.frames.load(str(out / "datasets" / "copy.scf")), df,
                                  check_exact=True)


def test_help_inside_documents_the_whole_module(runner, no_leftover_dirs):
    """help(sandcell) works in a run and covers every public name."""
    code = ("import sandcell, io, contextlib, pydoc\n"
            "text = pydoc.render_doc(sandcell, renderer=pydoc.plaintext)\n"
            "missing = [n for n in sandcell.__all__ if n not in text]\n"
            "print(missing, 'sandcell.datasets[\"by_region\"] = df' in text, len(text) > 3000)\n"
            "help(sandcell.datasets)\n")
    with runner(code) as res:
        assert res.status == "ok", res.stderr
        first, rest = res.stdout.decode().split("\n", 1)
        assert first == "[] True True"
        assert "Help on Datasets in module sandcell" in rest and "published" in rest
