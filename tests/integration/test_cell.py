"""Cell mode (`--cell`, docs/report.md "Cell mode"): a run executes its code
as a notebook cell; the report's cell.outputs are nbformat v4 outputs in
order, validated here with nbformat's own schema (Debian python3-nbformat).
Tracebacks, the report's structured error and the location of a stopped
run hold in every mode.  Cold, and warm under tests/warm/run-warm.sh."""
import base64
import json
import textwrap

import pytest

from harness import PNG_MAGIC, SERVER, nb_validate


def cell(sandcell, code, opts=(), **kw):
    run = sandcell(code=textwrap.dedent(code), opts=["--cell"] + list(opts), **kw)
    assert run.report is not None, run
    assert run.report["cell"]["mode"] == "cell", run.report["cell"]
    assert run.report["cell"]["problems"] == [], run.report["cell"]
    nb_validate(run.report["cell"]["outputs"])
    return run


def outs(run):
    return run.report["cell"]["outputs"]


def kinds(run):
    return [o["output_type"] for o in outs(run)]


def png_of(output):
    raw = base64.b64decode(output["data"]["image/png"], validate=True)
    assert raw.startswith(PNG_MAGIC), raw[:16]
    return raw


# ------------------------------------------------------------- basics

def test_print_and_last_expression(sandcell):
    run = cell(sandcell, """
        print("hello")
        x = 20
        x + 22
    """)
    assert run.status == "ok" and run.rc == 0, run
    assert outs(run) == [
        {"output_type": "stream", "name": "stdout", "text": "hello\n"},
        {"output_type": "execute_result", "data": {"text/plain": "42"}, "metadata": {},
         "execution_count": None},
    ]
    # The real stream still gets what print() wrote (the CLI shows it).
    assert run.out == "hello\n"
    assert run.report["error"] is None and run.report["stopped_at"] is None
    assert run.report["cell"]["bytes"] > 0 and run.report["cell"]["dropped"] == 0


def test_streams_ordered_and_merged(sandcell):
    """stdout and stderr as one ordered sequence; consecutive chunks of one
    stream merged, as nbformat does."""
    run = cell(sandcell, """
        import sys
        for i in range(3):
            print("out", i)
        print("err", file=sys.stderr)
        sys.stdout.write("partial")
        sys.stdout.write(" line\\n")
        print("x" * 20000)
        print("last err", file=sys.stderr)
    """)
    assert run.status == "ok", run
    assert [(o["name"], o["text"]) for o in outs(run)] == [
        ("stdout", "out 0\nout 1\nout 2\n"),
        ("stderr", "err\n"),
        ("stdout", "partial line\n" + "x" * 20000 + "\n"),
        ("stderr", "last err\n"),
    ]


@pytest.mark.parametrize("code", [
    "x = 1",                      # an assignment shows nothing
    "1 + 1;",                     # IPython's rule: a trailing ';' hides the value
    "1 + 1 ;  # comment",
    "None",
    "def f():\n    return 1",
    "print('p')",                 # print returns None
], ids=["assignment", "semicolon", "semicolon-comment", "none", "def", "print"])
def test_no_execute_result(sandcell, code):
    run = cell(sandcell, code)
    assert run.status == "ok", run
    assert "execute_result" not in kinds(run), outs(run)


def test_last_expression_spanning_lines_and_non_ascii(sandcell):
    run = cell(sandcell, """
        d = {"é": 1,
             "b": [1, 2]}
        (d,
         "ü")
    """)
    res = outs(run)[-1]
    assert res["output_type"] == "execute_result"
    assert res["data"]["text/plain"] == "({'é': 1, 'b': [1, 2]}, 'ü')"


def test_script_mode_has_no_cell_outputs(sandcell):
    """Without --cell: no stream capture, no execute_result; display()
    still works (its outputs are the only ones)."""
    run = sandcell(code="import sandcell\nprint('x')\nsandcell.display(sandcell.HTML('<b>h</b>'))\n1 + 1\n")
    assert run.status == "ok", run
    assert run.report["cell"]["mode"] == "script"
    assert outs(run) == [{"output_type": "display_data",
                          "data": {"text/html": "<b>h</b>", "text/plain": "<HTML object>"},
                          "metadata": {}}]
    nb_validate(outs(run))
    assert run.out == "x\n"


# ------------------------------------------------------------ rich reprs

def test_dataframe_displays_as_html_and_text(sandcell):
    run = cell(sandcell, """
        import pandas as pd
        df = pd.DataFrame({"region": ["n", "s"], "sales": [1.5, 2.25]})
        display(df)
        df
    """)
    assert kinds(run) == ["display_data", "execute_result"], outs(run)
    for o in outs(run):
        assert set(o["data"]) == {"text/html", "text/plain"}, o["data"].keys()
        assert "<table" in o["data"]["text/html"] and "2.25" in o["data"]["text/html"]
        assert "region" in o["data"]["text/plain"] and "2.25" in o["data"]["text/plain"]


def test_rich_reprs(sandcell):
    """_repr_*_ methods and _repr_mimebundle_ as Jupyter reads them: text
    types as strings, binary types base64, JSON types as JSON."""
    run = cell(sandcell, """
        import sandcell
        PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                            "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4b6000000"
                            "0049454e44ae426082")
        class Rich:
            def _repr_html_(self): return "<i>rich</i>"
            def _repr_markdown_(self): return "*rich*"
            def _repr_svg_(self): return "<svg xmlns='http://www.w3.org/2000/svg'/>"
            def _repr_png_(self): return PNG
            def _repr_json_(self): return {"n": 1, "nan": float("nan")}
            def _repr_latex_(self): return r"$x^2$"
            def __repr__(self): return "Rich()"
        class Bundle:
            def _repr_mimebundle_(self, include=None, exclude=None):
                return {"text/plain": "B", "application/vnd.custom+json": [1, 2]}, {"text/plain": {"k": 1}}
        class Broken:
            def _repr_html_(self): raise ValueError("no html")
            def __repr__(self): return "Broken()"
        class Proxy:
            def __getattr__(self, name): return lambda *a, **k: "<b>claims everything</b>"
            def __repr__(self): return "Proxy()"
        display(Rich())
        display(Bundle())
        display(Broken())
        display(Proxy())
        display(sandcell.Markdown("# title"), sandcell.SVG("<svg/>"), sandcell.JSON({"a": [1]}),
                sandcell.Image(PNG))
        display({"text/html": "<p>raw</p>"}, raw=True, metadata={"tag": "m"})
        Rich()
    """)
    o = outs(run)
    rich = o[0]["data"]
    assert rich["text/html"] == "<i>rich</i>" and rich["text/markdown"] == "*rich*"
    assert rich["image/svg+xml"].startswith("<svg")
    assert png_of(o[0])
    assert rich["application/json"] == {"n": 1, "nan": {"$float": "NaN"}}
    assert rich["text/latex"] == "$x^2$" and rich["text/plain"] == "Rich()"
    assert o[1]["data"] == {"text/plain": "B", "application/vnd.custom+json": [1, 2]}
    assert o[1]["metadata"] == {"text/plain": {"k": 1}}
    # A repr that raises is skipped (with a note on stderr), the rest stays.
    assert o[2]["output_type"] == "stream" and o[2]["name"] == "stderr"
    assert "_repr_html_ of Broken raised" in o[2]["text"]
    assert o[3]["data"] == {"text/plain": "Broken()"}
    # An object that claims every attribute gets text/plain only.
    assert o[4]["data"] == {"text/plain": "Proxy()"}
    assert [list(x["data"])[0] for x in o[5:9]] == ["text/markdown", "image/svg+xml",
                                                     "application/json", "image/png"]
    assert o[7]["data"]["application/json"] == {"a": [1]}
    assert o[9] == {"output_type": "display_data", "data": {"text/html": "<p>raw</p>"},
                    "metadata": {"tag": "m"}}
    assert o[10]["output_type"] == "execute_result" and o[10]["data"]["text/html"] == "<i>rich</i>"


# ------------------------------------------------------------- figures

def test_plt_show_and_figures_left_open(sandcell):
    """plt.show() sends the open figures (then closes them, as Jupyter's
    inline backend does); figures left open at the end are sent too, in
    order after the rest."""
    run = cell(sandcell, """
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3])
        plt.title("first")
        plt.show()
        print("between")
        fig1 = plt.figure()
        plt.plot([3, 2])
        fig2, ax = plt.subplots(1, 2)
        print("end")
    """)
    assert run.status == "ok", run
    assert kinds(run) == ["display_data", "stream", "display_data", "display_data"], outs(run)
    assert outs(run)[1]["text"] == "between\nend\n"
    for i in (0, 2, 3):
        d = outs(run)[i]["data"]
        assert set(d) == {"image/png", "text/plain"}
        png_of(outs(run)[i])
        assert d["text/plain"].startswith("<Figure size")
    assert "2 Axes" in outs(run)[3]["data"]["text/plain"]


def test_figure_formats_and_no_duplicate(sandcell):
    """set_figure_formats("png", "svg") adds image/svg+xml; a figure shown
    with display() (or as the last expression) is not sent again at the end."""
    run = cell(sandcell, """
        import sandcell
        import matplotlib.pyplot as plt
        sandcell.set_figure_formats("png", "svg")
        fig, ax = plt.subplots()
        ax.plot([1, 2])
        display(fig)
        fig
    """)
    assert kinds(run) == ["display_data", "execute_result"], outs(run)
    for o in outs(run):
        assert set(o["data"]) == {"image/png", "image/svg+xml", "text/plain"}
        assert "<svg" in o["data"]["image/svg+xml"]
        png_of(o)


def test_cell_mode_imports_no_matplotlib(sandcell):
    """Figure capture costs a cell that never uses matplotlib nothing: it
    is not imported (a warm template has it loaded already)."""
    run = cell(sandcell, "import sys\n'matplotlib' in sys.modules")
    assert outs(run)[-1]["data"]["text/plain"] == ("True" if SERVER else "False")


# ----------------------------------------------------------- exceptions

NESTED = """
def load(key):
    table = {"a": 1}
    return table[key]

def analyse():
    return load("missing") + 1

print("before")
analyse()
"""


def check_traceback(tb, filename):
    text = "\n".join(tb)
    assert tb[0] == "Traceback (most recent call last):", tb
    assert tb[-1] == "KeyError: 'missing'", tb
    lines = [l.strip() for l in text.splitlines() if l.strip().startswith("File ")]
    assert lines == ['File "%s", line 10, in <module>' % filename,
                     'File "%s", line 7, in analyse' % filename,
                     'File "%s", line 4, in load' % filename], text
    # The user's source lines, and nothing of sandcell's.
    for src in ("analyse()", 'return load("missing") + 1', "return table[key]"):
        assert src in text, text
    assert "sandcell" not in text and "/.sandcell" not in text, text


def test_exception_in_nested_functions_cell(sandcell):
    run = cell(sandcell, NESTED)
    assert run.status == "exited" and run.rc == 1, run
    err = run.report["error"]
    assert list(err) == ["ename", "evalue", "traceback"]
    assert err["ename"] == "KeyError" and err["evalue"] == "'missing'"
    check_traceback(err["traceback"], "<cell>")
    # The cell's outputs end with the error output (nbformat's shape).
    assert kinds(run) == ["stream", "error"]
    assert outs(run)[1] == dict(output_type="error", **err)
    # The real stderr has the traceback as python3 prints it.
    assert run.err.startswith("Traceback (most recent call last):\n"), run.err
    assert '  File "<cell>", line 4, in load\n    return table[key]\n' in run.err


@pytest.mark.parametrize("as_file", [False, True], ids=["-c", "file"])
def test_exception_structured_in_script_mode(sandcell, tmp_path, as_file):
    """Without --cell the report's error carries the exception too; a
    file's frames name the file."""
    if as_file:
        path = tmp_path / "analysis.py"
        path.write_text(NESTED)
        run = sandcell(file=path)
        # Reduced mode runs it from a private host directory instead.
        name = "/code/analysis.py" if run.report["isolation"]["mode"] == "full" else None
    else:
        run = sandcell(code=NESTED)
        name = "<cell>"
    assert run.status == "exited" and run.rc == 1, run
    err = run.report["error"]
    assert err["ename"] == "KeyError", run.report
    if name is not None:
        check_traceback(err["traceback"], name)
    assert run.report["cell"]["outputs"] == []
    assert run.err.rstrip().endswith("KeyError: 'missing'")


def test_syntax_error(sandcell):
    run = cell(sandcell, "x = 1\nif x >\n    pass\n")
    assert run.status == "exited" and run.rc == 1, run
    err = run.report["error"]
    assert err["ename"] == "SyntaxError"
    text = "\n".join(err["traceback"])
    assert 'File "<cell>", line 2' in text and "if x >" in text and "^" in text, text
    assert "sandcell" not in text
    assert kinds(run) == ["error"]


def test_exception_chain_and_outputs_before(sandcell):
    run = cell(sandcell, """
        import matplotlib.pyplot as plt
        plt.plot([1])
        display("shown")
        try:
            {}["k"]
        except KeyError as e:
            raise ValueError("wrapped") from e
    """)
    assert run.report["error"]["ename"] == "ValueError"
    text = "\n".join(run.report["error"]["traceback"])
    assert "The above exception was the direct cause" in text and "KeyError" in text
    # The open figure is still sent, before the error output.
    assert kinds(run) == ["display_data", "display_data", "error"], outs(run)


def test_sys_exit_is_no_error(sandcell):
    run = cell(sandcell, "print('x')\nimport sys\nsys.exit(3)")
    assert run.status == "exited" and run.rc == 3, run
    assert run.report["error"] is None
    assert kinds(run) == ["stream"]


def test_keyboard_interrupt_is_an_exception(sandcell):
    run = cell(sandcell, "raise KeyboardInterrupt")
    assert run.report["error"]["ename"] == "KeyboardInterrupt"
    assert kinds(run) == ["error"]


# ------------------------------------------------------- stopped runs

SPIN = """
import time
print("working")
def step(i):
    time.sleep(0.01)
def loop():
    i = 0
    while True:
        step(i)
        i += 1
loop()
"""


def test_timeout_says_where_the_code_was(sandcell):
    run = cell(sandcell, SPIN, opts=["--wall-time", "2"])
    assert run.status == "timeout" and run.rc == 124, run
    assert run.report["error"] is None
    where = run.report["stopped_at"]
    assert where["reported_by"] == "code"
    text = "\n".join(where["traceback"])
    frames = [l.strip() for l in text.splitlines() if l.strip().startswith("File ")]
    assert frames[:2] == ['File "<cell>", line 11, in <module>', 'File "<cell>", line 9, in loop'], text
    assert "sandcell" not in text
    # The cell's outputs: what was printed, then an error naming the stop.
    assert kinds(run) == ["stream", "error"]
    stop = outs(run)[1]
    assert stop["ename"] == "SandcellStopped"
    assert stop["evalue"] == run.report["reason"]
    assert "as the code reported it" in stop["traceback"][0]
    assert stop["traceback"][-1] == "SandcellStopped: " + run.report["reason"]


def test_timeout_location_in_script_mode(sandcell):
    run = sandcell(code=SPIN, opts=["--wall-time", "2"])
    assert run.status == "timeout", run
    text = "\n".join(run.report["stopped_at"]["traceback"])
    assert 'File "<cell>", line 9, in loop' in text and "step(i)" in text, text
    assert run.report["cell"]["outputs"] == []


def test_cpu_limit_says_where_the_code_was(sandcell):
    run = cell(sandcell, "def burn():\n    while True:\n        pass\nburn()\n",
               opts=["--cpu-time", "1", "--wall-time", "30"])
    assert run.status == "cpu-time", run
    text = "\n".join(run.report["stopped_at"]["traceback"])
    assert 'File "<cell>", line 2, in burn' in text, text
    assert kinds(run) == ["error"] and outs(run)[0]["ename"] == "SandcellStopped"


def test_stop_without_location(sandcell):
    """A run killed while in native code cannot answer: the stop is still
    named, without a location."""
    run = cell(sandcell, "import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert run.status == "signaled", run
    assert run.report["stopped_at"] is None
    assert kinds(run) == ["stream", "error"]
    assert outs(run)[1]["traceback"] == ["SandcellStopped: " + run.report["reason"]]


def test_finished_within_the_grace_is_not_stopped(sandcell):
    """The question comes shortly before the wall limit; code that then
    finishes in time is ok, and its answer (it did answer: sandcell's
    handler ran) is not reported: only a stop makes a location count."""
    run = cell(sandcell, """
        import signal, time
        sandcells = signal.getsignal(signal.SIGURG)
        asked = []
        def chained(sig, frame):
            sandcells(sig, frame)
            asked.append(sig)
        signal.signal(signal.SIGURG, chained)
        while not asked:
            time.sleep(0.01)
        print("asked, done")
    """, opts=["--wall-time", "3"])
    assert run.status == "ok", run
    assert run.report["stopped_at"] is None
    assert outs(run) == [{"output_type": "stream", "name": "stdout", "text": "asked, done\n"}]


# ---------------------------------------------------- fd-level output

def test_fd_level_output_stays_in_the_streams(sandcell):
    """Bytes written below sys.stdout (os.write, subprocesses, C code)
    reach the real stdout pipe, not cell.outputs (docs/report.md)."""
    run = cell(sandcell, """
        import os, subprocess, sys
        print("py", flush=True)
        os.write(1, b"fd\\n")
        subprocess.run([sys.executable, "-c", "print('child')"])
        print("py2")
    """)
    assert [o["text"] for o in outs(run)] == ["py\npy2\n"]
    assert run.out == "py\nfd\nchild\npy2\n"


def test_user_replaced_stdout(sandcell):
    run = cell(sandcell, """
        import contextlib, io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            print("hidden")
        print("seen", len(buf.getvalue()))
    """)
    assert [o["text"] for o in outs(run)] == ["seen 7\n"]


def test_cell_from_a_file(sandcell, tmp_path):
    path = tmp_path / "cell.py"
    path.write_text("print('f')\n6 * 7\n")
    run = sandcell(file=path, opts=["--cell"])
    nb_validate(outs(run))
    assert kinds(run) == ["stream", "execute_result"]
    assert outs(run)[1]["data"]["text/plain"] == "42"


def test_caps_are_marked(sandcell):
    """Outputs over the count cap are dropped with a marker and a problem;
    the result is unaffected."""
    run = sandcell(code=textwrap.dedent("""
        import sandcell
        for i in range(30):
            display(i)
        sandcell.result("still here")
    """), opts=["--cell", "--cell-outputs", "10"])
    nb_validate(outs(run))
    assert run.status == "ok", run
    assert run.report["result"] == "still here"
    assert kinds(run) == ["display_data"] * 10 + ["stream"]
    assert outs(run)[-1]["name"] == "stderr" and "20 more outputs" in outs(run)[-1]["text"]
    assert run.report["cell"]["dropped"] == 20
    assert "cell" in run.report["truncations"]
    assert run.report["cell"]["problems"][0].startswith("outputs 11 and later")
    assert run.report["limits"]["cell_outputs"] == 10


def test_per_output_cap(sandcell):
    run = sandcell(code="display('x' * 5000)\nprint('after')\n",
                   opts=["--cell", "--cell-output-limit", "2K"])
    nb_validate(outs(run))
    assert run.status == "ok", run
    assert [o["name"] for o in outs(run)] == ["stderr", "stdout"]
    text = outs(run)[0]["text"]
    assert text.startswith("[sandcell: output 1 (") and "per-output limit of 2048 bytes]" in text
    assert outs(run)[1]["text"] == "after\n"
    assert "cell" not in run.report["truncations"]  # one output went, collection went on
    assert run.report["cell"]["dropped"] == 1


def test_report_outputs_make_a_notebook(sandcell, tmp_path):
    """The whole point: a notebook a person can open."""
    import nbformat
    run = cell(sandcell, """
        import matplotlib.pyplot as plt, pandas as pd
        print("table and figure")
        df = pd.DataFrame({"a": [1, 2]})
        display(df)
        plt.plot(df.a)
        df.a.sum()
    """)
    nb = nb_validate(outs(run))
    path = tmp_path / "cell.ipynb"
    nbformat.write(nb, str(path))
    back = nbformat.read(str(path), as_version=4)
    assert [o["output_type"] for o in back.cells[0].outputs] == \
        ["stream", "display_data", "execute_result", "display_data"]
    assert json.loads(json.dumps(back.cells[0].outputs[2]["data"])) == {"text/plain": "3"}
