"""Cell mode and tracebacks for sandcell's bootstrap (not a public module).

The bootstrap (_sandcell_boot.py) imports this module only when it needs
it: in cell mode before the code runs, in script mode when an exception
ends the code or the supervisor asks where the code is.  Like the rest of
the in-sandbox side it is a convenience, not a boundary: the host parses
every record strictly (docs/report.md).
"""
import ast
import builtins
import os
import sys
import types

import _sandcell_io as sio
import sandcell

MYPY = False  # true for mypy only
if MYPY:
    from typing import Any
    import traceback
    from importlib.machinery import ModuleSpec
    from typing import Sequence
del MYPY

# traceback and linecache (which imports tokenize and re) are imported
# only when a traceback is made: a cell that raises nothing does not pay.
_HERE = os.path.dirname(os.path.abspath(__file__))
_VALUE_MAX = 65536        # characters of an exception's value
_ENTRY_MAX = 16384        # characters of one traceback entry
_ENTRIES_MAX = 200        # traceback entries (a long one keeps its ends)
_MPL_BACKEND = "module://_sandcell_mpl"


def _ours(filename):
    # type: (str) -> bool
    return os.path.dirname(filename) == _HERE


def source_text(source):
    # type: (bytes) -> str
    """The code's text, decoded as compile() decodes it."""
    encoding = "utf-8"
    if b"coding" in b"\n".join(source.split(b"\n", 2)[:2]):  # a PEP 263 declaration, perhaps
        import io
        import tokenize
        try:
            encoding = tokenize.detect_encoding(io.BytesIO(source).readline)[0]
        except (SyntaxError, LookupError):
            pass
    return source.decode(encoding, "replace")


def register_source(filename, source):
    # type: (str, bytes) -> None
    """Makes the code's text available to tracebacks under filename (e.g.
    "<cell>", which is not a file)."""
    if filename.startswith("<"):
        import linecache
        text = source_text(source)
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)


def _strip(te, seen):
    # type: (traceback.TracebackException, set[int]) -> None
    """Removes sandcell's own frames from te and every exception chained to it."""
    import traceback as tb
    if id(te) in seen:
        return
    seen.add(id(te))
    te.stack = tb.StackSummary.from_list([f for f in te.stack if not _ours(f.filename)])
    for other in (te.__cause__, te.__context__):
        if other is not None:
            _strip(other, seen)
    for sub in getattr(te, "exceptions", None) or ():
        _strip(sub, seen)


def _cap_entries(entries):
    # type: (list[str]) -> list[str]
    entries = [e if len(e) <= _ENTRY_MAX else e[:_ENTRY_MAX] + "...[cut]" for e in entries]
    if len(entries) > _ENTRIES_MAX:
        half = _ENTRIES_MAX // 2
        entries = (entries[:half] + ["... %d entries omitted ..." % (len(entries) - 2 * half + 1)]
                   + entries[-(half - 1):])
    return [sio._text(e) for e in entries]


def _text_of(e):
    # type: (BaseException) -> str
    try:
        s = str(e)
    except Exception:
        s = "<exception str() failed>"
    if len(s) > _VALUE_MAX:
        s = s[:_VALUE_MAX] + "...[cut]"
    return sio._text(s)


def exception_record(e):
    # type: (BaseException) -> tuple[str, dict[str, object]]
    """The traceback as Python prints it (sandcell's frames removed) and the
    record the host makes the report's error of: ename, evalue, traceback
    (a list of strings: joined with newlines they are the printed text)."""
    import traceback as tb
    te = tb.TracebackException(type(e), e, e.__traceback__)
    _strip(te, set())
    chunks = list(te.format())
    text = "".join(chunks)
    entries = []  # type: list[str]
    for c in chunks:
        entries.append(c[:-1] if c.endswith("\n") else c)
    rec = {"ename": sio._text(type(e).__name__), "evalue": _text_of(e),
           "traceback": _cap_entries(entries)}  # type: dict[str, object]
    return text, rec


def _real_stderr():
    # type: () -> object
    err = sys.stderr
    return err._real if isinstance(err, Tee) else err


def report_exception(e, source, filename):
    # type: (BaseException, bytes | None, str) -> None
    """An uncaught exception: printed on the real stderr as python3 would
    (or through the code's own sys.excepthook), and sent as the E record."""
    if source is not None:
        register_source(filename, source)
    text, rec = exception_record(e)
    hook = sys.excepthook
    try:
        if hook is sys.__excepthook__:
            err = _real_stderr()
            err.write(text)  # type: ignore[attr-defined]
            err.flush()  # type: ignore[attr-defined]
        else:
            tb = e.__traceback__
            while tb is not None and _ours(tb.tb_frame.f_code.co_filename):
                tb = tb.tb_next
            hook(type(e), e, tb)
    except Exception:
        pass
    sio._emit_record(b"E", rec)


def where(frame, source=None, filename=""):
    # type: (types.FrameType | None, bytes | None, str) -> None
    """The supervisor's question before it stops the run (wall or CPU
    limit, cancel): sends the main thread's stack as the W record."""
    import traceback as tb
    if source is not None:
        register_source(filename, source)
    frames = []  # type: list[tuple[types.FrameType, int]]
    f = frame
    while f is not None:
        code = f.f_code
        if _ours(code.co_filename):
            if code.co_name == "_sandcell_run":
                break  # the bootstrap: what called it is not the code's
        else:
            frames.append((f, f.f_lineno))
        f = f.f_back
    frames.reverse()
    try:
        summary = tb.StackSummary.extract(iter(frames))
        entries = ["Traceback (most recent call last):"]
        entries += [c[:-1] if c.endswith("\n") else c for c in summary.format()]
    except Exception as e:
        entries = ["the stack could not be formatted: %s" % _text_of(e)]
    sio._emit_from_signal(b"W", {"traceback": _cap_entries(entries)})


class Tee(object):
    """sys.stdout / sys.stderr in cell mode: every write goes to the real
    stream (the run's pipe, as without --cell) and, in order, to the
    cell's stream outputs."""

    def __init__(self, name, real):
        # type: (str, object) -> None
        self._name = name
        self._real = real

    def write(self, s):
        # type: (str) -> int
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        n = self._real.write(s)  # type: ignore[attr-defined]
        sio._stream(self._name, s)
        return n  # type: ignore[no-any-return]

    def writelines(self, lines):
        # type: (list[str]) -> None
        for line in lines:
            self.write(line)

    def flush(self):
        # type: () -> None
        sio._flush_streams()
        self._real.flush()  # type: ignore[attr-defined]

    @property
    def buffer(self):
        # type: () -> object
        """Bytes written here reach the real stream only (like fd-level
        writes), after everything written as text before them."""
        self.flush()
        return self._real.buffer  # type: ignore[attr-defined]

    def isatty(self):
        # type: () -> bool
        return False

    def __getattr__(self, name):
        # type: (str) -> object
        return getattr(self._real, name)


def capture_figures():
    # type: () -> None
    """Every open pyplot figure as a display_data output, then closed, as
    Jupyter's inline backend does on plt.show() and at a cell's end.  A
    figure already shown by display() or as the cell's value is skipped
    (display it again to show a change)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        from matplotlib._pylab_helpers import Gcf  # type: ignore[import]
        managers = Gcf.get_all_fig_managers()
    except Exception:
        return
    for m in managers:
        fig = m.canvas.figure
        if getattr(fig, "_sandcell_shown", False):
            continue
        try:
            data, meta = sio._figure_bundle(fig)
        except Exception as e:
            sio._note("drawing figure %s failed: %s" % (m.num, _text_of(e)))
            continue
        sio._emit_output({"output_type": "display_data", "data": data, "metadata": meta})
    try:
        plt.close("all")
    except Exception:
        pass


def _suppressed(text, node):
    # type: (str, ast.expr) -> bool
    """IPython's rule: a last expression followed by ';' shows nothing."""
    lines = text.splitlines()
    end, col = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
    if end is None or col is None or end > len(lines):
        return False
    rest = lines[end - 1].encode("utf-8")[col:].decode("utf-8", "replace")
    return bool(rest.lstrip().startswith(";"))


def _install():
    # type: () -> None
    sys.stdout = Tee("stdout", sys.stdout)  # type: ignore[assignment]
    sys.stderr = Tee("stderr", sys.stderr)  # type: ignore[assignment]
    builtins.display = sandcell.display  # type: ignore[attr-defined]
    builtins.get_ipython = _get_ipython  # type: ignore[attr-defined]
    if _IPythonDisplayHook.NAME in sys.modules:
        import _sandcell_magic
        _sandcell_magic.patch_ipython_display(sys.modules[_IPythonDisplayHook.NAME])
    elif not any(isinstance(f, _IPythonDisplayHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _IPythonDisplayHook())
    # pyplot picks the backend up when it is first used; a template that
    # already chose one (warm runs) is switched before any figure exists.
    os.environ["MPLBACKEND"] = _MPL_BACKEND
    mpl = sys.modules.get("matplotlib")
    if mpl is not None:
        try:
            mpl.use(_MPL_BACKEND)
        except Exception as e:
            sio._note("figures will not be captured on plt.show(): %s" % _text_of(e))


class _IPythonDisplayHook(object):
    """On sys.meta_path in cells: when IPython.core.display_functions is
    imported (by `from IPython.display import display`), its functions
    are replaced by sandcell's as it loads (_sandcell_magic), before
    IPython.display copies them."""

    NAME = "IPython.core.display_functions"

    def find_spec(self, name, path, target=None):
        # type: (str, Sequence[str] | None, types.ModuleType | None) -> ModuleSpec | None
        if name != self.NAME:
            return None
        for finder in sys.meta_path:
            if isinstance(finder, _IPythonDisplayHook) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                run = spec.loader.exec_module

                def exec_module(module):
                    # type: (types.ModuleType) -> None
                    run(module)
                    import _sandcell_magic
                    _sandcell_magic.patch_ipython_display(module)
                setattr(spec.loader, "exec_module", exec_module)
                return spec
        return None


def _get_ipython():
    # type: () -> object
    """The magics' shell (_sandcell_magic.Shell), as IPython makes
    get_ipython() a builtin: what rewritten cells call, and what scripts
    exported from notebooks call directly."""
    import _sandcell_magic
    return _sandcell_magic.get_ipython()


def _finish():
    # type: () -> None
    capture_figures()
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass
    sio._flush_streams()


def run_cell(source, filename, g):
    # type: (bytes, str, dict[str, object]) -> int
    """Runs source as a notebook cell in the namespace g; the exit status
    (0, or 1 after an uncaught exception).  SystemExit passes through."""
    _install()
    return 1 if execute(source, filename, g) else 0


def _parse(source, text, filename):
    # type: (bytes, str, str) -> tuple[ast.Module, str]
    """The cell's tree, and the text its positions refer to.  A cell that
    is not Python only because of IPython syntax (%magics, !shell, obj?)
    is parsed as IPython rewrites it (_sandcell_magic): notebooks written
    for Jupyter run here too."""
    try:
        return compile(source, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True), text
    except SyntaxError as e:
        err = e
    import _sandcell_magic
    rewritten = _sandcell_magic.transform(text)
    if rewritten is not None:
        try:
            tree = compile(rewritten, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        except SyntaxError:
            pass
        else:
            return tree, rewritten
    raise err


# Top-level await, as IPython allows in cells: code that awaits compiles
# to a coroutine, run to its end on the cells' one event loop (tasks a
# cell starts go on in later cells' awaits, as in Jupyter).
_AWAIT = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
_CO_COROUTINE = 0x80
_loop = None  # type: Any


def _run(code, g):
    # type: (types.CodeType, dict[str, object]) -> object
    global _loop
    if not code.co_flags & _CO_COROUTINE:
        return eval(code, g)
    import asyncio
    if _loop is None:
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop.run_until_complete(eval(code, g))


# IPython's output history: _, __ and ___ are the last three results
# shown, _N and Out[N] the result of cell N; a name the code assigned
# itself is left alone.
_shown = [None, None, None]  # type: list[object]


def _keep_result(g, value, count):
    # type: (dict[str, object], object, int | None) -> None
    names = ("_", "__", "___")
    if all(n not in g or g[n] is _shown[i] for i, n in enumerate(names)):
        _shown[:] = [value] + _shown[:2]
        for n, v in zip(names, _shown):
            g[n] = v
    if count:
        g["_%d" % count] = value
        out = g.setdefault("Out", {})
        if isinstance(out, dict):
            out[count] = value


def execute(source, filename, g, execution_count=None):
    # type: (bytes, str, dict[str, object], int | None) -> int
    """One cell in g, the streams and display already installed: 0, 1
    after an uncaught exception, 2 after KeyboardInterrupt.  SystemExit
    passes through."""
    try:
        tree, text = _parse(source, source_text(source), filename)
        last = None  # type: ast.expr | None
        end = tree.body[-1] if tree.body else None
        if isinstance(end, ast.Expr) and not _suppressed(text, end.value):
            tree.body.pop()
            last = end.value
        _run(compile(tree, filename, "exec", _AWAIT, dont_inherit=True), g)
        if last is not None:
            expr = ast.Expression(last)
            value = _run(compile(expr, filename, "eval", _AWAIT, dont_inherit=True), g)
            if value is not None:
                data, meta = sio._bundle(value)
                sio._emit_output({"output_type": "execute_result", "data": data,
                                       "metadata": meta, "execution_count": execution_count})
                sio._mark_shown(value)
                _keep_result(g, value, execution_count)
    except SystemExit:
        _finish()
        raise
    except BaseException as e:
        _finish()
        report_exception(e, source, filename)
        return 2 if isinstance(e, KeyboardInterrupt) else 1
    _finish()
    return 0
