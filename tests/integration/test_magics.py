"""IPython syntax in notebook cells (src/py/_sandcell_magic.py,
docs/kernel.md "IPython syntax"): sessions and one-shot cell mode run the
magics notebooks use, shell escapes and `obj?`; a magic that does not
exist is a UsageError; a cell that is not Python for other reasons keeps
its SyntaxError; script mode stays plain Python.  (tests/kernel compares
the magics' outputs with ipykernel's.)"""
import pytest

from integration import test_session_c
from integration.test_session_c import texts

session = test_session_c.session  # the fixture


def outputs(events, cid, kind):
    return [e["output"] for e in events if e["ev"] == "output" and e["id"] == cid
            and e["output"]["output_type"] == kind]


def done_of(events):
    return events[-1]


def test_magics_in_a_session(session):
    s = session()
    ev = s.run("w", "%%writefile note.txt\nline one\n")
    assert done_of(ev)["status"] == "ok" and texts(ev, "w") == "Writing note.txt\n", ev
    ev = s.run("a", "%%writefile -a note.txt\nline two\n")
    assert texts(ev, "a") == "Appending to note.txt\n", ev
    ev = s.run("r", "print(open('note.txt').read(), end='')")
    assert texts(ev, "r") == "line one\nline two\n", ev

    # %time runs the statement in the cell's namespace; as the last line
    # its value is the cell's result.
    ev = s.run("t", "%time y = sum(range(10))\n%time y * 2")
    out = texts(ev, "t")
    assert out.count("CPU times: user ") == 2 and out.count("Wall time: ") == 2, out
    assert outputs(ev, "t", "execute_result")[0]["data"]["text/plain"] == "90", ev
    ev = s.run("ti", "r = %timeit -n 3 -r 2 -o y + 1\nprint(r.loops, len(r.all_runs))")
    out = texts(ev, "ti")
    assert "per loop (mean \u00b1 std. dev. of 2 runs, 3 loops each)" in out and out.endswith("3 2\n"), out

    ev = s.run("sh", "n = 4\n!echo {n * 2} $n $$HOME\nlines = !printf 'a\\nb\\n'\nprint(lines, lines.s)")
    # $$ hands a $ to the shell, which expands it (the sandbox's HOME).
    assert texts(ev, "sh") == "8 4 /tmp\n['a', 'b'] a b\n", ev
    ev = s.run("b", "%%bash\necho out\necho err >&2\nexit 3\n")
    assert texts(ev, "b") == "out\n" and texts(ev, "b", "stderr") == "err\n", ev
    ev = s.run("c", "%%capture kept\nprint('hidden')\n")
    assert texts(ev, "c") == "" and done_of(ev)["status"] == "ok", ev
    ev = s.run("c2", "kept.stdout")
    assert outputs(ev, "c2", "execute_result")[0]["data"]["text/plain"] == "'hidden\\n'", ev

    ev = s.run("h", "def f(a, b=2):\n    'Adds.'\n    return a + b\nf?")
    assert "Signature: f(a, b=2)\nDocstring: Adds.\n" in texts(ev, "h"), ev
    ev = s.run("p", "%pip install nothing-here\n%matplotlib widget\n1")
    assert done_of(ev)["status"] == "ok", ev
    err = texts(ev, "p", "stderr")
    assert "no package installs" in err and "%matplotlib widget is not available" in err, err

    ev = s.run("u", "%nosuchmagic")
    assert done_of(ev)["status"] == "error", ev
    assert done_of(ev)["error"]["ename"] == "UsageError", ev
    assert done_of(ev)["error"]["evalue"] == "Line magic function `%nosuchmagic` not found.", ev
    ev = s.run("u2", "%%nosuchcell\nx")
    assert done_of(ev)["error"]["evalue"] == "Cell magic `%%nosuchcell` not found.", ev

    # What notebook exports (nbconvert --to script) contain instead.
    ev = s.run("g", "get_ipython().run_line_magic('env', 'SANDCELL_M=1')\nimport os\nos.environ['SANDCELL_M']")
    assert outputs(ev, "g", "execute_result")[0]["data"]["text/plain"] == "'1'", ev
    s.close()


@pytest.mark.parametrize("code, ename", [
    ("x = (1 +\n%", "SyntaxError"),          # not Python, and not IPython either
    ("print('unclosed\n!ls", "SyntaxError"),
    ("def f(:\n    pass\n%time 1", "SyntaxError"),
])
def test_cells_that_are_not_python_keep_their_syntax_error(session, code, ename):
    s = session()
    ev = s.run("x", code)
    assert done_of(ev)["status"] == "error" and done_of(ev)["error"]["ename"] == ename, ev
    s.close()


def test_python_is_never_rewritten(session):
    """Code that parses as Python runs as Python, % and ! and ? included."""
    s = session()
    ev = s.run("m", "y = (7\n% 4)\nz = '!ls %d?' % y\nz")
    assert outputs(ev, "m", "execute_result")[0]["data"]["text/plain"] == "'!ls 3?'", ev
    s.close()


def test_ipython_display_functions_show_rich_outputs(session):
    """`from IPython.display import display` (no IPython shell here)
    shows rich outputs, as in Jupyter, not printed repr() text;
    clear_output() writes no terminal codes."""
    s = session()
    ev = s.run("d", "from IPython.display import display, HTML, clear_output\n"
                    "display(HTML('<b>x</b>'), metadata={'k': 1})\nh = display('v', display_id=True)\n"
                    "clear_output(wait=True)\nprint(type(h).__name__)")
    shown = outputs(ev, "d", "display_data")
    assert [o["data"].get("text/html") for o in shown] == ["<b>x</b>", None], ev
    assert shown[0]["metadata"] == {"k": 1} and shown[1]["data"]["text/plain"] == "'v'", ev
    assert texts(ev, "d") == "DisplayHandle\n", ev
    s.close()


def test_top_level_await_and_the_output_history(session):
    """As in IPython: a cell may await at its top level (one event loop
    for the session: a task started in one cell runs on in the next
    cell's await); _, __, _N and Out[N] are the results shown, and a _
    the code assigned itself is left alone."""
    s = session()
    ev = s.run("a", "import asyncio\ndone = []\nasync def later():\n    done.append(1)\n"
                    "t = asyncio.ensure_future(later())\nawait asyncio.sleep(0)\nlen(done)")
    assert outputs(ev, "a", "execute_result")[0]["data"]["text/plain"] == "1", ev
    s.run("b", "'two'")
    ev = s.run("c", "(_, __, _1, Out[2])")
    assert outputs(ev, "c", "execute_result")[0]["data"]["text/plain"] == "('two', 1, 1, 'two')", ev
    s.run("d", "_ = 'mine'")
    s.run("e", "99")
    ev = s.run("f", "_")
    assert outputs(ev, "f", "execute_result")[0]["data"]["text/plain"] == "'mine'", ev
    s.close()


def test_cell_mode_runs_magics_script_mode_does_not(sandcell):
    r = sandcell(code="%matplotlib inline\nx = !echo hi\nprint(x)", opts=["--cell"])
    assert r.status == "ok" and "['hi']" in r.out, r
    r = sandcell(code="%matplotlib inline\n")
    assert r.status == "exited" and "SyntaxError" in r.err, r
