# A warm run's bootstrap: what the code's process of a warm run does instead
# of execve(python3 -I -B /.sandcell/_sandcell_boot.py ...) (docs/warm.md).
# Not a file of the sandbox: sandcell-warm embeds it (tools/embed.sh),
# compiles it once in the template (src/server/template.c, not per run,
# with this file's text as "<string>"), keeps _sc_warm out of __main__ so
# the user's code does not see it among its globals, and calls it in every
# run's code process (src/server/worker.c, start_code), with every layer of
# the sandbox applied.  It writes no file and runs as `python3 -I` would.
#
MYPY = False  # true for mypy only
if MYPY:
    from io import TextIOWrapper
    from typing import Callable
del MYPY

# Everything lives in a function: the bootstrap reuses __main__'s namespace
# for the user's code and clears it, and the exit path must not depend on
# module globals.


def _sc_reseed():
    # type: () -> None
    # Every run gets its own random state, never the template's.  Nothing
    # of the request is needed: a spare's code process does it while idle
    # (template.c, code_idle), a worker's at the start of _sc_warm.
    import random, sys
    random.seed()
    if 'numpy' in sys.modules:
        sys.modules['numpy'].random.seed()


def _sc_stream(fd, mode, errors, lb):
    # type: (int, str, str, bool) -> TextIOWrapper
    import io
    raw = io.FileIO(fd, mode, closefd=False)
    buf = io.BufferedReader(raw) if mode == 'r' else io.BufferedWriter(raw)
    return io.TextIOWrapper(buf, encoding='utf-8', errors=errors, line_buffering=lb)


def _sc_rehearse(main):
    # type: (Callable[[str], None]) -> None
    # An idle spare's code process, after its reseed (template.c,
    # idle_prepare), runs the bootstrap's own steps on an empty program:
    # the pages a run's bootstrap writes (the interpreter's type cache,
    # the reference counts of the objects it uses, malloc's lists) are
    # then copied before the request instead of on its path, about half of
    # a trivial run's copy-on-write faults.  Trusted code only, before any
    # byte of a request has reached this process.  What it changes it puts
    # back: argv, path, __main__'s globals, SIGURG.  The empty program and
    # its streams are /dev/null, opened read-only here and closed (nothing
    # is written: the streams are flushed empty).
    import os, signal, sys
    d = sys.modules['__main__'].__dict__
    saved = sys.argv, sys.path[:], dict(d)
    fd = os.open('/dev/null', os.O_RDONLY | os.O_CLOEXEC)
    try:
        for mode, errors in (('r', 'strict'), ('w', 'strict'), ('w', 'backslashreplace')):
            _sc_stream(fd, mode, errors, False).flush()
        for sig in signal.valid_signals():
            signal.getsignal(sig)
        boot = main.__code__.co_filename.rpartition('/')[0] + '/_sandcell_boot.py'
        sys.argv = [boot, 'code', '/dev/null']
        main(boot)
    finally:
        os.close(fd)
        sys.argv = saved[0]
        sys.path[:] = saved[1]
        d.clear()
        d.update(saved[2])
        signal.signal(signal.SIGURG, signal.SIG_DFL)


def _sc_warm(argv, env, main, seeded):
    # type: (list[str], list[str], Callable[[str], None], bool) -> None
    # main: _sandcell_main._sandcell_run, compiled in the template with
    # the path a sandbox gives it (template.c, compile_main_module).
    # seeded: _sc_reseed ran in this process already.
    import atexit, os, signal, sys, threading
    os.environ.clear()
    for kv in env:
        k, _, v = kv.partition('=')
        os.environ[k] = v
    sys.argv = list(argv[3:])
    sys.dont_write_bytecode = True

    # fresh std streams on the run's pipes, buffered as python3 does
    sys.stdin = sys.__stdin__ = _sc_stream(0, 'r', 'strict', False)
    sys.stdout = sys.__stdout__ = _sc_stream(1, 'w', 'strict', False)
    sys.stderr = sys.__stderr__ = _sc_stream(2, 'w', 'backslashreplace', True)
    # the dispositions python3 starts with, whatever the server had.
    # The sandbox's init reset every disposition to SIG_DFL (contain.c);
    # only the signal module's own table may still remember a handler.
    # A session's interpreter starts with SIGINT ignored (contain.c) until
    # its loop's handler is in place, as python3 leaves an inherited
    # ignored SIGINT ignored: never SIG_DFL or the default handler here.
    session = sys.argv[1:2] == ['session']
    for sig in signal.valid_signals():
        if sig == signal.SIGINT and session:
            continue
        if signal.getsignal(sig) is not signal.SIG_DFL:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN if session else signal.default_int_handler)
    if not seeded:
        _sc_reseed()
    d = sys.modules['__main__'].__dict__
    d['__file__'] = boot = sys.argv[0]
    # What _sandcell_boot.py does, without compiling it and importing the
    # module again, when the boot file is in the module's directory (a
    # sandbox's /.sandcell; a reduced run's own directory is not).
    here = boot.rpartition('/')[0]
    preloaded = here == main.__code__.co_filename.rpartition('/')[0]
    src = b''
    if not preloaded:
        with open(boot, 'rb') as f:
            src = f.read()
    code = 0
    try:
        if preloaded:
            main(boot)
        else:
            exec(compile(src, boot, 'exec'), d)
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code & 0xff
        else:
            print(e.code, file=sys.stderr)
            code = 1
    # As a cold run's boot: the traceback (without this frame) through
    # sys.excepthook, exit status 1, and the shutdown below still runs.
    except BaseException as e:
        tb = e.__traceback__
        if tb is not None and tb.tb_frame.f_code.co_name == '_sc_warm':
            tb = tb.tb_next
        sys.excepthook(type(e), e, tb)
        del e, tb
        code = 1
    # What interpreter shutdown does that a program can see: join
    # non-daemon threads, run atexit, flush.  Tearing down numpy, pandas
    # and matplotlib is skipped: nothing can observe it.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            code = code or 120
    os._exit(code)
