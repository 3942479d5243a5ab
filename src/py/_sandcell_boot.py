# Started by sandcell as: python3 -I -B /.sandcell/_sandcell_boot.py MODE PATH ARGS...
# (in reduced mode the directory is a private host directory instead; warm
# runs execute this same file in-process, see src/py/_sandcell_warm.py).
# MODE is "file" or "code" (-c), prefixed "cell-" for --cell, or "session"
# (PATH is then unused: the cells come from the host).
# The work is done by _sandcell_main._sandcell_run: this script is compiled
# from source at every start, the module comes from the bytecode the host
# ships in __pycache__ (when this interpreter can use it), so this stays
# small.  Nothing here may stay behind: __main__'s globals become the
# user's, and sys.path and sys.modules are left as the module expects.
import sys
sys.path.insert(0, __file__.rpartition("/")[0])
try:
    from _sandcell_main import _sandcell_run
finally:
    del sys.path[0]
    sys.modules.pop("_sandcell_main", None)
_sandcell_run(__file__)
