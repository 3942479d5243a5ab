# The warm server's template interpreter, while it starts (docs/warm.md):
# the Python steps of src/server/template.c (init_python), which calls
# these functions in this order: _sc_base_imports, _sc_preload for each
# module of --preload (and _sc_agg after "matplotlib"), _sc_warm_up,
# _sc_freeze.  Not a file of the sandbox, and never run in one:
# sandcell-warm embeds it (tools/embed.sh) and runs its text once in a
# namespace of its own, in the template, which imports in a sandbox's view
# (template_view_enter) and never runs user code.  It writes no file and
# runs as `python3 -I` would.  Every name it binds in __main__ is gone
# before a run's code starts: the boot file clears __main__
# (_sandcell_boot.py).


def _sc_base_imports():
    # type: () -> None
    # The standard modules a run's bootstrap uses and a few more, loaded
    # once in the template, bound in __main__ as `import io, os, ...` there
    # binds them.
    import io, os, sys, json, types, random, signal, runpy
    sys.modules['__main__'].__dict__.update(io=io, os=os, sys=sys, json=json, types=types,
                                            random=random, signal=signal, runpy=runpy)


def _sc_preload(name):
    # type: (str) -> None
    # One entry of --preload: the statement `import NAME` in __main__,
    # with the operator's text as given (so "numpy, pandas" works: the
    # space is the statement's).
    import sys
    exec('import ' + name, sys.modules['__main__'].__dict__)


def _sc_agg():
    # type: () -> None
    # After "matplotlib" is preloaded: the Agg backend (no display, the
    # runs' figures go to PNG).
    import sys
    import matplotlib  # type: ignore[import]
    sys.modules['__main__'].__dict__['matplotlib'] = matplotlib
    matplotlib.use('Agg')


def _sc_warm_up(part='all'):
    # type: (str) -> None
    # A trusted warm-up, run once in the template before gc.freeze(): the
    # kind of work a first cell does (build, group, pivot, format a frame;
    # numpy arithmetic; a figure drawn and encoded as PNG), with fixed data
    # and no user input.  It fills what the libraries initialise lazily on
    # first use (pandas' lazily imported submodules and compiled paths,
    # numpy's ufunc loops, matplotlib's font objects, text layout and PNG
    # writer), so that a run finds them in the template instead of building
    # them in its own copy-on-write pages.  It writes no file (the PNG and
    # the CSV go to memory), opens no host path (only the runtime's fonts,
    # which a sandbox sees at the same paths), leaves no figure open and no
    # name behind (a function's locals); what stays are those caches, as a
    # cold run that did the same work would hold them (docs/warm.md).  Only
    # the preloaded modules are used.  A warm-up that raises only makes
    # runs slower: it is logged, and the template serves; one that leaves a
    # file open stops the server (template.c, run_warm_up).
    # part: 'all' in the template; 'data' (numpy, pandas) or 'plot'
    # (matplotlib) one at a time in the fork that learns which pages a run
    # is likely to write (template.c, learn_likely_pages).
    import io, sys
    m = sys.modules
    data = part in ('all', 'data')
    plot = part in ('all', 'plot')
    if data and 'numpy' in m:
        np = m['numpy']
        a = np.arange(1000.0)
        (a * 2 + 1).sum(); a.mean(); a.std(); np.sqrt(a); np.sort(a[::-1]); a.reshape(10, 100).T @ a[:10]
        np.linspace(0, 1, 50); np.concatenate([a, a]); np.unique(a % 7); repr(a); str(a[:5])
    if data and 'pandas' in m and 'numpy' in m:
        pd = m['pandas']
        df = pd.DataFrame({'a': np.arange(1000) % 10, 'b': np.arange(1000.0),
                           'c': [str(i % 7) for i in range(1000)]})
        df.groupby('a').b.sum().sum(); df.groupby('c').agg({'b': ['mean', 'max']})
        df.describe(); df.sort_values('b').head(); df.merge(df.head(10), on='a')
        df['d'] = df.b * 2; df.query('a > 3'); df[df.a > 3].b.mean()
        df.pivot_table(index='a', columns='c', values='b', aggfunc='sum')
        df.set_index('a').loc[3]; df.iloc[:5].to_dict(); df.dropna(); df.fillna(0)
        pd.to_datetime(['2024-01-01', '2024-01-02']); pd.Series([1, 2]).value_counts()
        df.to_csv(io.StringIO()); pd.read_csv(io.StringIO('x,y\n1,2\n3,4\n'))
        repr(df); str(df.b); df.to_string(); df.to_html()
    if plot and 'matplotlib.pyplot' in m:
        plt = m['matplotlib.pyplot']
        try:
            fig, ax = plt.subplots()
            ax.plot(range(100), [i * i for i in range(100)], label='y')
            ax.set_title('t'); ax.set_xlabel('x'); ax.legend()
            fig.savefig(io.BytesIO(), format='png')
        finally:
            plt.close('all')
    # matplotlib caches FreeType fonts with their files open; an fd in the
    # template would be inherited by every worker, and its object would
    # close that fd number again in a run (matplotlib's at-fork hook
    # clears this cache), whatever the number is then.
    fm = m.get('matplotlib.font_manager')
    if fm is not None and hasattr(getattr(fm, '_get_font', None), 'cache_clear'):
        fm._get_font.cache_clear()
    import gc
    gc.collect()


def _sc_profile_boot():
    # type: () -> None
    # What every run's bootstrap does before and after its code, in
    # general (_sandcell_warm.py, _sc_warm): the text streams on fresh
    # fds, the signal table read, a line compiled and run in a fresh
    # namespace, the streams flushed.  Only in the fork that learns which
    # pages a run is likely to write (template.c, learn_likely_pages);
    # it uses no name of this module (which is empty by then).
    import io, os, signal
    r, w = os.pipe()
    try:
        out = io.TextIOWrapper(io.BufferedWriter(io.FileIO(w, 'w', closefd=False)),
                               encoding='utf-8', errors='strict', line_buffering=False)
        out.write('x\n')
        out.flush()
        inp = io.TextIOWrapper(io.BufferedReader(io.FileIO(r, 'r', closefd=False)),
                               encoding='utf-8', errors='strict', line_buffering=False)
        inp.readline()
        for sig in signal.valid_signals():
            signal.getsignal(sig)
        exec(compile('x = 1\n', '<string>', 'exec'), {'__name__': '__main__'})
    finally:
        os.close(r)
        os.close(w)


def _sc_freeze():
    # type: () -> None
    # Last: objects that survive the preload never move to a young
    # generation again, so the collector stops touching (and copying) their
    # pages in every forked child (bound in __main__ as `import gc` there
    # binds it).
    import sys
    import gc
    sys.modules['__main__'].__dict__['gc'] = gc
    gc.collect(); gc.freeze()
