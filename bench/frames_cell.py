"""The code bench/frames.py runs, sandboxed (`sandcell run`) and bare
(`python3`): read a frame archive, write it back, print the timings.

    python3 frames_cell.py IN LIBDIR OUTDIR [frames|pickle]

Sandboxed, IN is /input/ds, LIBDIR /input/lib (holding sandcell_frames.py)
and OUTDIR /output.  The pickle mode is the unsafe reference for the bare
run only: the host must never unpickle what a sandbox wrote.
"""
import json
import sys
import time

t_start = time.perf_counter()
src, lib, outdir = sys.argv[1:4]
mode = sys.argv[4] if len(sys.argv) > 4 else "frames"
sys.path.insert(0, lib)
import pandas  # noqa: E402  (imported first so its cost is reported apart)
t_import = time.perf_counter()
if mode == "pickle":
    import pickle
    with open(src, "rb") as f:
        df = pickle.load(f)
    t_load = time.perf_counter()
    with open(outdir + "/out.pkl", "wb") as f:
        pickle.dump(df, f, protocol=pickle.HIGHEST_PROTOCOL)
else:
    import sandcell_frames as sf
    df = sf.load(src)
    t_load = time.perf_counter()
    sf.dump(df, outdir + "/out.scf")
t_dump = time.perf_counter()
print(json.dumps({"import": t_import - t_start, "load": t_load - t_import, "dump": t_dump - t_load,
                  "rows": len(df), "pandas": pandas.__version__}))
