# Started by sandcell as: python3 -I -B /.sandcell/_sandcell_boot.py MODE PATH ARGS...
# (in reduced mode the directory is a private host directory instead)
# Runs the user's code as __main__ the way `python3 FILE` or `python3 -c`
# would, with the sandcell module importable, and hides its own frames from
# tracebacks.  Not a security boundary: the kernel layers are.
def _sandcell_run():
    # type: () -> None
    # Locals only: the module's globals become the user's __main__ below.
    import os
    import sys
    boot = __file__
    mode, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    # Ahead of the site directories: the host package of the same name
    # (python/sandcell, `make install`) lives in one of them, and /usr is
    # visible in here, so `import sandcell` must find this one first.
    sys.path.insert(0, os.path.dirname(os.path.abspath(boot)))
    with open(path, "rb") as f:
        source = f.read()
    if mode == "file":
        sys.argv = [path] + args
        sys.path.insert(0, path.rsplit("/", 1)[0])
        filename = path
    else:
        sys.argv = ["-c"] + args
        sys.path.insert(0, "")
        filename = "<string>"
    g = sys.modules["__main__"].__dict__
    builtins = g["__builtins__"]
    g.clear()
    g.update(__name__="__main__", __builtins__=builtins, __doc__=None,
             __spec__=None, __loader__=None, __package__=None)
    if mode == "file":
        g["__file__"] = path
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
        exec(code, g)
    except SystemExit:
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == boot:
            tb = tb.tb_next
        e.__traceback__ = tb
        sys.excepthook(type(e), e, tb)
        sys.exit(1)


_sandcell_run()
