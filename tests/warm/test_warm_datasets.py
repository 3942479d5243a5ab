"""Datasets through a warm server of the test's own (the cold cases and
what is checked: tests/integration/test_datasets_in.py): the CLI sends
each with "dataset": true and its path made absolute; the server shows it
read-only at /input/.datasets/NAME; the same mistakes are refused the
same way, by the client (names, a missing file) or the server (a name
given twice, a directory)."""
import pytest

from harness import WarmServer, load_report, run_cmd
from integration.test_datasets_in import BLOB, PROBE, USAGE, check_host_unchanged, check_read_only, \
    make_datasets, probe_of, sha, usage_cases
from integration.test_usage_errors import check_usage_error


@pytest.fixture(scope="module")
def warm():
    srv = WarmServer(["--slots", "2"])
    yield srv
    srv.stop()


def warm_run(srv, tmp_path, opts, code):
    rpath = tmp_path / "warm-report.json"
    if rpath.exists():
        rpath.unlink()
    run = run_cmd(srv.cmdline(code=code, opts=opts, report=str(rpath)), stdin=None, timeout=90)
    run.report = load_report(rpath)
    return run


def test_warm_dataset_read_only_and_shares_a_name(warm, tmp_path):
    a, b = make_datasets(tmp_path)
    csv = tmp_path / "in.csv"
    csv.write_text("k\n1\n")
    run = warm_run(warm, tmp_path, ["--dataset", "sales=%s" % a, "--dataset", "other=%s" % b,
                                    "--input", "sales=%s" % csv], PROBE)
    assert run.report and run.report["status"] == "ok", run
    got = probe_of(run)
    assert got["seen"]["sales"]["sha"] == sha(BLOB)
    assert got["seen"]["other"]["sha"] == sha(b"second dataset\n")
    check_read_only(got, ["sales", "other"])
    assert got["inputs"] == ["sales"] and got["root_list"] == [".datasets", "sales"], got
    check_host_unchanged(a, BLOB, 0o666)


def test_warm_dataset_relative_path_is_made_absolute(warm, tmp_path):
    make_datasets(tmp_path)
    run = run_cmd(warm.cmdline(code=PROBE, opts=["--dataset", "sales=sales.scf"]), stdin=None,
                  cwd=str(tmp_path), timeout=90)
    assert probe_of(run)["seen"]["sales"]["sha"] == sha(BLOB)


@pytest.mark.parametrize("case", USAGE)
def test_warm_dataset_usage_errors(warm, tmp_path, case):
    opts, words = usage_cases(tmp_path)[case]
    run = warm_run(warm, tmp_path, opts, "open('/tmp/x', 'w'); print('ran')")
    check_usage_error(run, *words)
    assert warm.alive(), warm.log_text()
