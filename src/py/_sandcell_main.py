"""The body of sandcell's bootstrap (not a public module).

_sandcell_boot.py, the script python3 is started with, imports this module
and calls _sandcell_run(): a script is compiled from its source on every
start, a module is loaded from the bytecode the host ships next to it
(/.sandcell/__pycache__, checked against this source's hash), so the
bulk of the bootstrap lives here.  Runs the user's code as __main__ the
way `python3 FILE` or `python3 -c` would, with the sandcell module
importable; its tracebacks show the code's own source lines (-c code is
"<cell>") without our frames, and the exception also goes to the host as
a record (docs/report.md).  Not a security boundary: the kernel layers
are.
"""


def _sandcell_run(boot):
    # type: (str) -> None
    # Locals only: __main__'s globals (the bootstrap's) become the user's
    # below.  (_sandcell_cell.where() knows this function by its name.)
    import os
    import sys
    here = os.path.dirname(os.path.abspath(boot))
    mode, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    cell = mode.startswith("cell-")
    kind = mode[5:] if cell else mode
    # Our helpers import from our directory and the interpreter's own path
    # only: the code's directory could shadow a module they use.
    own_path = [here] + sys.path

    def tools():
        # type: () -> types.ModuleType
        mod = sys.modules.get("_sandcell_cell")
        if mod is not None:
            return mod
        saved = sys.path[:]
        sys.path[:] = own_path
        try:
            import _sandcell_cell
        finally:
            sys.path[:] = saved
        return _sandcell_cell

    # Ahead of the site directories: the host package of the same name
    # (python/sandcell, `make install`) lives in one of them, and /usr is
    # visible in here, so `import sandcell` must find this one first.
    sys.path.insert(0, here)
    if mode == "session":
        # A session (docs/sessions.md): cells come from the host, one by
        # one, into one __main__; the working directory is importable.
        sys.argv = [""]
        sys.path.insert(1, "")
        g = sys.modules["__main__"].__dict__
        builtins = g["__builtins__"]
        g.clear()
        g.update(__name__="__main__", __builtins__=builtins, __doc__=None,
                 __spec__=None, __loader__=None, __package__=None)
        saved = sys.path[:]
        sys.path[:] = own_path
        try:
            import _sandcell_session
        finally:
            sys.path[:] = saved
        _sandcell_session.main()
        return
    with open(path, "rb") as f:
        source = f.read()
    if kind == "file":
        sys.argv = [path] + args
        sys.path.insert(0, path.rsplit("/", 1)[0])
        filename = path
    else:
        sys.argv = ["-c"] + args
        sys.path.insert(0, "")
        filename = "<cell>"
    g = sys.modules["__main__"].__dict__
    builtins = g["__builtins__"]
    g.clear()
    g.update(__name__="__main__", __builtins__=builtins, __doc__=None,
             __spec__=None, __loader__=None, __package__=None)
    if kind == "file":
        g["__file__"] = path

    # The supervisor sends SIGURG (ignored by default) shortly before it
    # kills the run at a limit or on cancel: say where the code is.  Only
    # information: the host decides the status from its own evidence.
    def where(signum, frame):
        # type: (int, types.FrameType | None) -> None
        try:
            tools().where(frame, source, filename)
        except Exception:
            pass

    try:
        # _signal, not signal: it is loaded already (signal imports enum).
        import _signal  # type: ignore[import]
        _signal.signal(_signal.SIGURG, where)
    except (ImportError, AttributeError, ValueError, OSError):
        pass

    if cell:
        status = tools().run_cell(source, filename, g)
        if status:
            sys.exit(status)
        return
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
        exec(code, g)
    except SystemExit:
        raise
    except BaseException as e:
        try:
            tools().report_exception(e, source if filename == "<cell>" else None, filename)
        except BaseException:
            # The helpers failed: at least the plain traceback, as before.
            tb = e.__traceback__
            while tb is not None and os.path.dirname(tb.tb_frame.f_code.co_filename) == here:
                tb = tb.tb_next
            e.__traceback__ = tb
            sys.excepthook(type(e), e, tb)
        sys.exit(1)


MYPY = False  # true for mypy only: the import below costs time at run time
if MYPY:
    import types
del MYPY
