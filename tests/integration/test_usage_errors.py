"""Bad command lines: exit 125, one clear message on stderr naming the
problem, no traceback or crash, nothing run, and the report asked for
(status usage-error, its reason the same message)."""
import subprocess

import pytest

from harness import BIN, EXIT_USAGE
from .test_report_schema import check_refusal

CRASH_WORDS = ("Traceback", "Segmentation", "core dumped", "Aborted", "AddressSanitizer",
               "runtime error", "double free")


def check_usage_error(run, *expect_in_err):
    assert run.rc == EXIT_USAGE, run
    assert run.report is not None, run
    check_refusal(run.report, "usage-error")
    assert "sandcell: %s\n" % run.report["reason"] in run.err, run
    assert run.stdout == b"", run
    err = run.err
    assert "sandcell: " in err, err
    for w in CRASH_WORDS:
        assert w not in err, err
    for e in expect_in_err:
        assert e in err, (e, err)
    # Short: a message (and a hint), not a wall of text.
    assert len(err.splitlines()) <= 4, err


def test_unknown_option(sandcell):
    run = sandcell(opts=["--no-such-option"], code="print('ran')")
    check_usage_error(run)
    assert "no-such-option" in run.err


@pytest.mark.parametrize("name,why", [
    ("a/b", "'/'"),
    ("..", ".."),
    (".", "'.'"),
    ("x\ty", "0x09"),
    ("-rf", "'-'"),
    (".hidden", "'.'"),
    ("sp ace", "' '"),
    ("n" * 129, "longer"),
], ids=["slash", "dotdot", "dot", "tab", "dash", "hidden", "space", "long"])
def test_input_bad_names(sandcell, tmp_path, name, why):
    f = tmp_path / "data.txt"
    f.write_text("x")
    run = sandcell(opts=["--input", "%s=%s" % (name, f)], code="print('ran')")
    check_usage_error(run, "--input", why)


@pytest.mark.parametrize("arg", ["=/etc/hostname", "noequals"], ids=["empty-name", "no-eq"])
def test_input_malformed(sandcell, arg):
    run = sandcell(opts=["--input", arg], code="print('ran')")
    check_usage_error(run, "--input")


def test_input_missing_path(sandcell, tmp_path):
    missing = tmp_path / "does-not-exist.csv"
    run = sandcell(opts=["--input", "data=%s" % missing], code="print('ran')")
    check_usage_error(run, "data", str(missing))


def test_input_given_twice(sandcell, tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("a")
    run = sandcell(opts=["--input", "x=%s" % f, "--input", "x=%s" % f], code="print('ran')")
    check_usage_error(run, "twice")


@pytest.mark.parametrize("arg,why", [
    ("a={bad", "'a'"),
    ("a=", "'a'"),
    ("a=[1,2", "'a'"),
    ("a=NaN", "'a'"),
    ('a={"k": 1, "k": 2}', "'a'"),
    ("a/b=1", "a/b"),
], ids=["bad-json", "empty-json", "unterminated", "nan", "dup-key", "bad-name"])
def test_value_bad(sandcell, arg, why):
    run = sandcell(opts=["--value", arg], code="print('ran')")
    check_usage_error(run, "--value", why)


def test_value_duplicate_name(sandcell):
    run = sandcell(opts=["--value", "n=1", "--value", "n=2"], code="print('ran')")
    check_usage_error(run, "'n'", "twice")


def test_value_duplicate_across_values_file(sandcell, tmp_path):
    vf = tmp_path / "v.json"
    vf.write_text('{"n": 5}')
    run = sandcell(opts=["--values", str(vf), "--value", "n=2"], code="print('ran')")
    check_usage_error(run, "'n'", "twice")


@pytest.mark.parametrize("text,why", [
    ("[1, 2, 3]", "an array"),
    ('"just a string"', "a string"),
    ("42", "a number"),
    ("null", "null"),
    ("{not json", "values"),
    ('{"bad name": 1}', "bad name"),
], ids=["array", "string", "number", "null", "garbage", "bad-key"])
def test_values_file_not_an_object(sandcell, tmp_path, text, why):
    vf = tmp_path / "values.json"
    vf.write_text(text)
    run = sandcell(opts=["--values", str(vf)], code="print('ran')")
    check_usage_error(run, "--values", why)


def test_values_file_missing(sandcell, tmp_path):
    missing = tmp_path / "nope.json"
    run = sandcell(opts=["--values", str(missing)], code="print('ran')")
    check_usage_error(run, str(missing))


@pytest.mark.parametrize("opt,val,why", [
    ("--memory", "-1", "negative"),
    ("--memory", "1.5G", "fractional"),
    ("--memory", "lots", "not a size"),
    ("--memory", "", "empty"),
    ("--memory", "1M", "too small"),
    ("--wall-time", "abc", "not a duration"),
    ("--wall-time", "0", "greater than 0"),
    ("--wall-time", "-5", "negative"),
    ("--wall-time", "nan", "not a duration"),
    ("--wall-time", "1e3", "not a duration"),
    ("--cpu-time", "inf", "not a duration"),
    ("--pids", "-3", "negative"),
    ("--pids", "ten", "not a whole number"),
    ("--pids", "2", "too small"),
    ("--files", "4", "too small"),
    ("--disk", "0x100", "not a size"),
    ("--stdout-limit", "-1K", "negative"),
    ("--output-files", "5.5", "not a whole number"),
], ids=lambda v: str(v) or "empty")
def test_bad_limit_values(sandcell, opt, val, why):
    run = sandcell(opts=[opt, val], code="print('ran')")
    check_usage_error(run, why)
    if why != "too small":
        assert opt in run.err


def test_missing_code(sandcell):
    run = sandcell()
    check_usage_error(run, "FILE.py")


def test_nonexistent_script(sandcell, tmp_path):
    missing = tmp_path / "nope.py"
    run = sandcell(file=missing)
    check_usage_error(run, str(missing), "No such file")


def test_script_is_a_directory(sandcell, tmp_path):
    run = sandcell(file=tmp_path)
    check_usage_error(run, str(tmp_path))


def test_python_nonexistent(sandcell):
    run = sandcell(opts=["--python", "/nonexistent/python3"], code="print('ran')")
    check_usage_error(run, "/nonexistent/python3")


def test_python_relative(sandcell):
    run = sandcell(opts=["--python", "python3"], code="print('ran')")
    check_usage_error(run, "absolute")


def test_stdin_file_missing(sandcell, tmp_path):
    missing = tmp_path / "in.txt"
    run = sandcell(opts=["--stdin", str(missing)], code="print('ran')")
    check_usage_error(run, "--stdin", str(missing))


def test_output_dir_unusable(sandcell, tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    run = sandcell(opts=["--output", str(f / "sub")], code="print('ran')")
    check_usage_error(run, "output")


def test_option_missing_argument(sandcell):
    run = sandcell(opts=["--wall-time"], report=False)
    assert run.rc == EXIT_USAGE, run
    for w in CRASH_WORDS:
        assert w not in run.err


@pytest.mark.parametrize("argv,expect", [
    ([], "missing command"),
    (["frobnicate"], "frobnicate"),
], ids=["no-command", "unknown-command"])
def test_bad_command(argv, expect):
    proc = subprocess.run([BIN] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert proc.returncode == EXIT_USAGE
    assert expect in proc.stderr.decode()
    assert proc.stdout == b""


def test_help_and_version():
    proc = subprocess.run([BIN, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert proc.returncode == 0
    text = proc.stdout.decode()
    for opt in ("--input", "--value", "--values", "--output", "--report", "--wall-time",
                "--cpu-time", "--memory", "--pids", "--disk", "--files", "--stdout-limit",
                "--result-limit", "--output-files", "--output-bytes", "--python"):
        assert opt in text, opt
    proc = subprocess.run([BIN, "--version"], stdout=subprocess.PIPE, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith(b"sandcell ")


def test_usage_error_runs_nothing(sandcell, tmp_path):
    """A usage error detected late (after other options parsed fine) still
    runs nothing: no output directory content, a usage-error report."""
    out = tmp_path / "out"
    run = sandcell(opts=["--output", str(out), "--value", "v=1", "--value", "v=[",
                         ], code="open('/output/ran', 'w').write('x')")
    check_usage_error(run, "'v'")
    assert not (out / "ran").exists()
