"""IPython syntax in notebook cells (not a public module): line and cell
magics, shell escapes and `?` help, as real notebooks use them.

A cell that is not Python because of such a line is rewritten by
IPython's own input transformer (IPython/core/inputtransformer2.py from
the runtime, loaded on its own: it needs only the standard library, and
the IPython package would cost half a second to import) into calls on
get_ipython(), which is the small shell below: the magics notebooks use
most, done the way IPython does them, inside the sandbox like the rest of
the cell.  A magic it does not have is a UsageError, as in IPython.  IPython's
display functions are sandcell's in cells (patch_ipython_display).  It
runs inside the sandbox and is a convenience, not a boundary.
"""
import os
import re
import sys
import time

MYPY = False  # true for mypy only
if MYPY:
    from typing import Any, Callable, Dict, List, Optional
del MYPY

_MARK = re.compile(r"[%!?]")  # only a cell that did not parse as Python is looked at
_transformer = None  # type: Any


class UsageError(Exception):
    """A magic that does not exist or was called wrongly (IPython's name)."""


def _load_transformer():
    # type: () -> Any
    global _transformer
    if _transformer is None:
        _transformer = False
        for d in sys.path:
            path = os.path.join(d or ".", "IPython", "core", "inputtransformer2.py")
            if os.path.isfile(path):
                import importlib.util
                spec = importlib.util.spec_from_file_location("_sandcell_ipython_input", path)
                if spec is None or spec.loader is None:
                    break
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                _transformer = mod.TransformerManager()
                break
    return _transformer or None


def transform(text):
    # type: (str) -> Optional[str]
    """The cell as Python, if IPython syntax is what kept it from being
    Python; None if there is nothing to rewrite (or no transformer)."""
    if not _MARK.search(text):
        return None
    tm = _load_transformer()
    if tm is None:
        return None
    try:
        out = tm.transform_cell(text)  # type: str
    except Exception:
        return None
    return out if out != text else None


_shell = None  # type: Optional[Shell]


def get_ipython():
    # type: () -> Shell
    global _shell
    if _shell is None:
        _shell = Shell()
    return _shell


def _caller_ns(depth):
    # type: (int) -> Dict[str, Any]
    """The namespace a magic was written in: the cell's globals themselves
    at the top level (so `%time x = 1` assigns x), else a function's
    locals over its globals (read only, as in IPython)."""
    f = sys._getframe(depth + 1)
    if f.f_locals is f.f_globals:
        return f.f_globals
    ns = dict(f.f_globals)
    ns.update(f.f_locals)
    return ns


def _expand(cmd, ns):
    # type: (str, Dict[str, Any]) -> str
    """IPython's expansion in shell lines and magics: {expr} is the
    expression's value, $name a variable's ($$ a dollar); what does not
    evaluate is left as written."""
    def brace(m):
        # type: (Any) -> str
        try:
            return str(eval(m.group(1), ns))
        except Exception:
            return str(m.group(0))

    def dollar(m):
        # type: (Any) -> str
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return str(ns[name]) if name in ns else str(m.group(0))

    cmd = re.sub(r"(?<!\{)\{([^{}]+)\}(?!\})", brace, cmd)
    return re.sub(r"\$\$|\$([A-Za-z_][A-Za-z0-9_]*)", dollar, cmd)


def _fmt_time(sec):
    # type: (float) -> str
    """IPython's _format_time: 3 significant digits, s/ms/us/ns."""
    if sec >= 60:
        m, s = divmod(sec, 60)
        h, m = divmod(m, 60)
        return ("%dh %dmin %.0fs" % (h, m, s)) if h else ("%dmin %.0fs" % (m, s))
    for unit, scale in (("s", 1.0), ("ms", 1e3), ("\u00b5s", 1e6), ("ns", 1e9)):
        if sec >= 1.0 / scale or unit == "ns":
            v = sec * scale
            return "%.3g %s" % (v, unit)
    return "%.3g s" % sec


class SList(list):  # type: ignore[type-arg]
    """What `x = !cmd` gives: the output's lines, as IPython's SList
    (.s joined by spaces, .n by newlines, .l the list)."""

    @property
    def s(self):
        # type: () -> str
        return " ".join(self)

    @property
    def n(self):
        # type: () -> str
        return "\n".join(self)

    @property
    def l(self):  # noqa: E743
        # type: () -> List[str]
        return list(self)


class Shell(object):
    """get_ipython() in a sandboxed cell: run_line_magic, run_cell_magic,
    system and getoutput, which the rewritten cells call."""

    def __init__(self):
        # type: () -> None
        self.user_ns = sys.modules["__main__"].__dict__
        self.config = {}  # type: Dict[str, Any]  # no IPython configuration here
        self.line = {
            "matplotlib": self._matplotlib, "time": self._time_line, "timeit": self._timeit_line,
            "pwd": self._pwd, "cd": self._cd, "env": self._env, "who": self._who, "whos": self._who,
            "who_ls": self._who_ls, "load_ext": self._load_ext, "reload_ext": self._load_ext,
            "autoreload": self._quiet, "aimport": self._quiet, "config": self._config,
            "pip": self._install, "conda": self._install, "mamba": self._install,
            "pinfo": self._pinfo, "pinfo2": self._pinfo, "ls": self._ls, "precision": self._quiet,
            "xmode": self._quiet, "colors": self._quiet, "reset": self._reset,
        }  # type: Dict[str, Callable[[str], Any]]
        self.cell = {
            "time": self._time_cell, "timeit": self._timeit_cell, "writefile": self._writefile,
            "capture": self._capture, "bash": self._bash, "sh": self._bash, "script": self._script,
            "html": self._html, "HTML": self._html, "markdown": self._markdown, "latex": self._latex,
            "svg": self._svg, "javascript": self._javascript, "js": self._javascript,
        }  # type: Dict[str, Callable[[str, str], Any]]

    # ---- the entry points the transformer writes

    def run_line_magic(self, name, line, _stack_depth=1):
        # type: (str, str, int) -> Any
        fn = self.line.get(name)
        if fn is None:
            raise UsageError("Line magic function `%%%s` not found." % name)
        if name not in ("time", "timeit"):
            line = _expand(line, _caller_ns(1))
        return fn(line)

    def run_cell_magic(self, name, line, cell):
        # type: (str, str, str) -> Any
        fn = self.cell.get(name)
        if fn is None:
            raise UsageError("Cell magic `%%%%%s` not found." % name)
        return fn(_expand(line, _caller_ns(1)), cell)

    def system(self, cmd):
        # type: (str) -> None
        """!cmd: the shell's output as the cell's streams; its status in
        the namespace as IPython keeps it (_exit_code)."""
        code = self._shell(_expand(cmd, _caller_ns(1)), None)
        self.user_ns["_exit_code"] = code

    def getoutput(self, cmd, split=True, depth=0):
        # type: (str, bool, int) -> Any
        import subprocess
        p = subprocess.run(_expand(cmd, _caller_ns(1 + depth)), shell=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        text = p.stdout.decode("utf-8", "replace")
        return SList(text.splitlines()) if split else text

    def _shell(self, cmd, stdin, sh="/bin/sh"):
        # type: (str, Optional[bytes], str) -> int
        import subprocess
        sys.stdout.flush()
        sys.stderr.flush()
        p = subprocess.run([sh, "-c", cmd] if stdin is None else [sh], input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL if stdin is None else None)
        sys.stdout.write(p.stdout.decode("utf-8", "replace"))
        sys.stderr.write(p.stderr.decode("utf-8", "replace"))
        return p.returncode

    # ---- line magics

    def _quiet(self, line):
        # type: (str) -> None
        return None

    def _matplotlib(self, line):
        # type: (str) -> None
        gui = line.split()[0] if line.split() else "inline"
        if gui not in ("inline", "agg", "Agg", "auto"):
            sys.stderr.write("sandcell: %%matplotlib %s is not available here; figures are "
                             "shown inline\n" % gui)

    def _config(self, line):
        # type: (str) -> None
        m = re.match(r"\s*InlineBackend\.figure_formats?\s*=\s*(.+)$", line)
        if m:
            import ast
            try:
                v = ast.literal_eval(m.group(1))
            except (ValueError, SyntaxError):
                v = None
            fmts = [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple, set)) else []
            fmts = ["png" if f == "retina" else f for f in fmts if f in ("png", "retina", "svg")]
            if fmts:
                import sandcell
                sandcell.set_figure_formats(*fmts)
            return
        if not line.strip().startswith("InlineBackend."):
            sys.stderr.write("sandcell: %%config %s: not applied (no IPython here)\n" % line.strip())

    def _install(self, line):
        # type: (str) -> None
        sys.stderr.write("sandcell: no package installs in the sandbox (no network); what is "
                         "installed on the host is importable\n")

    def _load_ext(self, line):
        # type: (str) -> None
        for name in line.split():
            if name != "autoreload":
                sys.stderr.write("sandcell: %%load_ext %s: extensions need IPython, which this "
                                 "kernel does not run\n" % name)

    def _pwd(self, line):
        # type: (str) -> str
        return os.getcwd()

    def _cd(self, line):
        # type: (str) -> None
        path = os.path.expanduser(line.strip() or "~")
        os.chdir(path)
        print(os.getcwd())

    def _env(self, line):
        # type: (str) -> Any
        line = line.strip()
        if not line:
            return dict(os.environ)
        m = re.match(r"(\w+)\s*[= ]\s*(.*)$", line)
        if m:
            os.environ[m.group(1)] = m.group(2)
            print("env: %s=%s" % (m.group(1), m.group(2)))
            return None
        return os.environ.get(line)

    def _names(self):
        # type: () -> List[str]
        return sorted(k for k, v in self.user_ns.items()
                      if not k.startswith("_") and not isinstance(v, type(sys)) and k not in ("In", "Out"))

    def _who(self, line):
        # type: (str) -> None
        names = self._names()
        print("\t".join(names) if names else "Interactive namespace is empty.")

    def _who_ls(self, line):
        # type: (str) -> List[str]
        return self._names()

    def _reset(self, line):
        # type: (str) -> None
        for k in self._names():
            del self.user_ns[k]

    def _ls(self, line):
        # type: (str) -> None
        self._shell("ls " + line, None)

    def _pinfo(self, line):
        # type: (str) -> None
        name = line.strip()
        try:
            obj = eval(name, _caller_ns(2))
        except Exception:
            print("Object `%s` not found." % name)
            return
        import inspect
        print("Type:      %s" % type(obj).__name__)
        try:
            print("Signature: %s%s" % (name, inspect.signature(obj)))
        except (TypeError, ValueError):
            pass
        doc = inspect.getdoc(obj)
        print("Docstring: %s" % (doc or "<no docstring>"))

    def _time_line(self, line):
        # type: (str) -> Any
        return self._time(line, _caller_ns(2))

    def _time_cell(self, line, cell):
        # type: (str, str) -> Any
        return self._time(cell, self.user_ns)

    def _time(self, code, ns):
        # type: (str, Dict[str, Any]) -> Any
        """%time: runs the statement (an expression's value is returned)
        and prints CPU and wall time as IPython does."""
        import ast
        tree = ast.parse(code, "<timed>")
        value_node = None
        end = tree.body[-1] if tree.body else None
        if isinstance(end, ast.Expr):
            tree.body.pop()
            value_node = ast.Expression(end.value)
        t0, c0 = time.perf_counter(), os.times()
        exec(compile(tree, "<timed>", "exec"), ns)
        out = eval(compile(value_node, "<timed>", "eval"), ns) if value_node else None
        t1, c1 = time.perf_counter(), os.times()
        user, sys_ = c1.user - c0.user, c1.system - c0.system
        print("CPU times: user %s, sys: %s, total: %s" % (_fmt_time(user), _fmt_time(sys_),
                                                          _fmt_time(user + sys_)))
        print("Wall time: %s" % _fmt_time(t1 - t0))
        return out

    def _timeit_line(self, line):
        # type: (str) -> Any
        return self._timeit(line, "", _caller_ns(2))

    def _timeit_cell(self, line, cell):
        # type: (str, str) -> Any
        return self._timeit(line, cell, self.user_ns)

    def _timeit(self, line, cell, ns):
        # type: (str, str, Dict[str, Any]) -> Any
        """%timeit [-n N] [-r R] [-q] [-o] stmt (or the cell's body with
        the line as setup): mean and deviation of R repeats of N loops."""
        import shlex
        import timeit
        words = shlex.split(line) if line.strip() else []
        number, repeat, quiet, ret = 0, 7, False, False
        rest = []  # type: List[str]
        i = 0
        while i < len(words):
            w = words[i]
            if w in ("-n", "-r") and i + 1 < len(words):
                if not words[i + 1].isdigit():
                    raise UsageError("%%timeit %s takes a number" % w)
                if w == "-n":
                    number = int(words[i + 1])
                else:
                    repeat = int(words[i + 1])
                i += 2
                continue
            if w in ("-q", "-o"):
                quiet = quiet or w == "-q"
                ret = ret or w == "-o"
                i += 1
                continue
            rest = words[i:]
            break
        stmt_line = line[line.find(rest[0]):] if rest else ""
        stmt, setup = (cell, stmt_line or "pass") if cell else (stmt_line or "pass", "pass")
        t = timeit.Timer(stmt, setup, timer=time.perf_counter, globals=ns)
        if number == 0:
            number = t.autorange()[0]
        runs = [x / number for x in t.repeat(repeat=max(1, repeat), number=number)]
        mean = sum(runs) / len(runs)
        std = (sum((x - mean) ** 2 for x in runs) / len(runs)) ** 0.5
        if not quiet:
            print("%s \u00b1 %s per loop (mean \u00b1 std. dev. of %d run%s, %d loop%s each)" % (
                _fmt_time(mean), _fmt_time(std), len(runs), "" if len(runs) == 1 else "s",
                number, "" if number == 1 else "s"))
        return TimeitResult(runs, number) if ret else None

    # ---- cell magics

    def _writefile(self, line, cell):
        # type: (str, str) -> None
        words = line.split()
        append = "-a" in words or "--append" in words
        names = [w for w in words if w not in ("-a", "--append")]
        if len(names) != 1:
            raise UsageError("%%writefile takes one file name (and -a to append)")
        path = os.path.expanduser(names[0])
        exists = os.path.exists(path)
        with open(path, "a" if append else "w") as f:
            f.write(cell)
        print("%s %s" % ("Appending to" if append else "Overwriting" if exists else "Writing", names[0]))

    def _capture(self, line, cell):
        # type: (str, str) -> None
        """%%capture [var]: the cell's printed text kept in var (an object
        with .stdout, .stderr and .show()), not shown."""
        import io
        words = [w for w in line.split() if not w.startswith("-")]
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            exec(compile(cell, "<captured>", "exec"), self.user_ns)
        finally:
            sys.stdout, sys.stderr = saved
        if words:
            self.user_ns[words[0]] = CapturedIO(out.getvalue(), err.getvalue())

    def _bash(self, line, cell):
        # type: (str, str) -> None
        self._shell("", cell.encode("utf-8"), "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh")

    def _script(self, line, cell):
        # type: (str, str) -> None
        prog = line.split()[0] if line.split() else ""
        if os.path.basename(prog) not in ("sh", "bash", "dash"):
            raise UsageError("%%%%script %s: only sh and bash run here" % prog)
        self._shell("", cell.encode("utf-8"), "/bin/" + os.path.basename(prog))

    def _show(self, mime, kind, text):
        # type: (str, str, str) -> None
        import _sandcell_io as sio
        sio.display(_Shown(mime, kind, text))

    def _html(self, line, cell):
        # type: (str, str) -> None
        self._show("text/html", "HTML", cell)

    def _markdown(self, line, cell):
        # type: (str, str) -> None
        self._show("text/markdown", "Markdown", cell)

    def _latex(self, line, cell):
        # type: (str, str) -> None
        self._show("text/latex", "Latex", cell)

    def _svg(self, line, cell):
        # type: (str, str) -> None
        self._show("image/svg+xml", "SVG", cell)

    def _javascript(self, line, cell):
        # type: (str, str) -> None
        self._show("application/javascript", "Javascript", cell)


def patch_ipython_display(mod):
    # type: (Any) -> None
    """IPython.core.display_functions, as a cell imports it (from
    IPython.display import display): without an IPython shell its
    display() would print repr() text.  Here display() is sandcell's
    (rich outputs, display_id handles), update_display() shows the new
    value as a new output, and clear_output() does nothing: the outputs a
    cell showed stay (there is no way to clear them yet)."""
    import sandcell

    def display(*objs, **kwargs):
        # type: (Any, Any) -> Any
        sandcell.display(*objs, raw=bool(kwargs.get("raw")), metadata=kwargs.get("metadata"))
        display_id = kwargs.get("display_id")
        if display_id:
            return mod.DisplayHandle(None if display_id is True else display_id)
        return None

    def update_display(obj, **kwargs):
        # type: (Any, Any) -> None
        sandcell.display(obj, raw=bool(kwargs.get("raw")), metadata=kwargs.get("metadata"))

    def clear_output(wait=False):
        # type: (bool) -> None
        return None

    def publish_display_data(data, metadata=None, source=None, **kwargs):
        # type: (Any, Any, Any, Any) -> None
        sandcell.display(data, raw=True, metadata=metadata)

    mod.display, mod.update_display = display, update_display
    mod.clear_output, mod.publish_display_data = clear_output, publish_display_data


class _Shown(object):
    """A cell magic's text shown as one MIME type (%%html, %%markdown...),
    through display() like any object with a _repr_mimebundle_."""

    def __init__(self, mime, kind, text):
        # type: (str, str, str) -> None
        self.mime, self.kind, self.text = mime, kind, text

    def _repr_mimebundle_(self, include=None, exclude=None):
        # type: (Any, Any) -> Dict[str, str]
        return {self.mime: self.text}

    def __repr__(self):
        # type: () -> str
        return "<IPython.core.display.%s object>" % self.kind  # as IPython's objects show


class TimeitResult(object):
    """What `%timeit -o` returns: the per-loop times of each run."""

    def __init__(self, all_runs, loops):
        # type: (List[float], int) -> None
        self.all_runs = all_runs
        self.loops = loops
        self.best = min(all_runs)
        self.worst = max(all_runs)
        self.average = sum(all_runs) / len(all_runs)
        self.stdev = (sum((x - self.average) ** 2 for x in all_runs) / len(all_runs)) ** 0.5

    def __repr__(self):
        # type: () -> str
        return "<TimeitResult : %s \u00b1 %s per loop>" % (_fmt_time(self.average), _fmt_time(self.stdev))


class CapturedIO(object):
    """What %%capture var keeps."""

    def __init__(self, stdout, stderr):
        # type: (str, str) -> None
        self.stdout = stdout
        self.stderr = stderr

    def show(self):
        # type: () -> None
        sys.stdout.write(self.stdout)
        sys.stderr.write(self.stderr)

    def __str__(self):
        # type: () -> str
        return self.stdout
