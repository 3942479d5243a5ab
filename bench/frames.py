#!/usr/bin/python3
"""Benchmark of the frame codec (src/py/sandcell_frames.py) against pickle.

    /usr/bin/python3 bench/frames.py [--rows 1000000] [--reps 5] [--sandbox-reps 3]
                                     [--sandcell build/sandcell] [--no-sandbox]
                                     [--scaling 1000,10000,100000] [--out bench/frames.md]

A frame of ROWS rows and 6 columns (int64, float64, bool, str of 10
characters, categorical, datetime64 with a time zone), side by side in one
run, medians of REPS repetitions:

1. host, in process: sandcell_frames dumps + load vs pickle.dumps + loads
   (protocol 5), and the same through a file, the steps taking turns in
   each repetition;
2. host -> sandbox -> host: the host writes the archive, `sandcell run`
   reads it from --input, writes it back into /output, the host reads what
   was collected; beside it the same code run by bare python3 (no
   sandbox), and bare python3 passing a pickle (the unsafe reference);
3. the same crossing as a platform makes it, through the host client:
   sandcell.run(code, datasets={"ds": df}) with the code publishing it
   back (sandcell.datasets["out"] = sandcell.datasets["ds"]), cold and on
   a warm server, the DataFrame in Result.datasets at the end.

Part 2 needs root (the sandbox's setup as root) and a built sandcell; it is
skipped with --no-sandbox or when SANDCELL is missing.  Prints a markdown
table and writes it to --out when given.
"""
import argparse
import datetime
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src", "py"))
import sandcell_frames as sf  # noqa: E402

CELL = os.path.join(ROOT, "bench", "frames_cell.py")
PYTHON = "/usr/bin/python3"


def make_frame(rows):
    rng = np.random.default_rng(20261130)
    digits = rng.integers(0, 10**10, rows)
    text = np.array(["%010d" % d for d in digits], dtype=object)
    return pd.DataFrame({
        "id": rng.integers(0, 1 << 40, rows),
        "value": rng.standard_normal(rows),
        "flag": rng.random(rows) < 0.5,
        "name": text,
        "region": pd.Categorical(rng.choice(["north", "south", "east", "west", "centre"], rows)),
        "when": pd.date_range("2020-01-01", periods=rows, freq="s", tz="Europe/Berlin"),
    })


def interleaved(steps, reps):
    """Median seconds of each named step, the steps taking turns in every
    repetition, so that a change of load on a shared machine hits all of
    them alike rather than whichever block ran at the time."""
    times = {name: [] for name, _ in steps}
    for _ in range(reps):
        for name, fn in steps:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def host_bench(df, reps, tmp):
    blob = sf.dumps(df)
    pd.testing.assert_frame_equal(df, sf.load(blob), check_exact=True)
    pk = pickle.dumps(df, protocol=pickle.HIGHEST_PROTOCOL)
    path = os.path.join(tmp, "host.scf")
    ppath = os.path.join(tmp, "host.pkl")

    def pdump():
        with open(ppath, "wb") as f:
            pickle.dump(df, f, protocol=pickle.HIGHEST_PROTOCOL)

    def pload():
        with open(ppath, "rb") as f:
            return pickle.load(f)
    out = interleaved([
        ("frames_dump", lambda: sf.dumps(df)), ("frames_load", lambda: sf.load(blob)),
        ("pickle_dump", lambda: pickle.dumps(df, protocol=pickle.HIGHEST_PROTOCOL)),
        ("pickle_load", lambda: pickle.loads(pk)),
        ("frames_dump_file", lambda: sf.dump(df, path)), ("frames_load_file", lambda: sf.load(path)),
        ("pickle_dump_file", pdump), ("pickle_load_file", pload)], reps)
    out["frames_bytes"], out["pickle_bytes"] = len(blob), len(pk)
    return out


def one_crossing(df, tmp, runner, mode="frames"):
    """Host writes, runner reads and writes back, host reads; seconds per step."""
    shutil.rmtree(os.path.join(tmp, "out"), ignore_errors=True)
    os.makedirs(os.path.join(tmp, "out"))
    lib = os.path.join(tmp, "lib")
    src = os.path.join(tmp, "in.scf" if mode == "frames" else "in.pkl")
    t0 = time.perf_counter()
    if mode == "frames":
        sf.dump(df, src)
    else:
        with open(src, "wb") as f:
            pickle.dump(df, f, protocol=pickle.HIGHEST_PROTOCOL)
    t1 = time.perf_counter()
    proc = subprocess.run(runner(src, lib, mode), capture_output=True, check=False)
    t2 = time.perf_counter()
    if proc.returncode != 0:
        raise RuntimeError("cell failed (%d): %s" % (proc.returncode, proc.stderr.decode()[-2000:]))
    inner = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    outdir = os.path.join(tmp, "out")
    if mode == "frames":
        back = sf.load(os.path.join(outdir, "out.scf"))
    else:
        with open(os.path.join(outdir, "out.pkl"), "rb") as f:
            back = pickle.load(f)
    t3 = time.perf_counter()
    assert len(back) == len(df)
    return {"host_dump": t1 - t0, "run": t2 - t1, "host_load": t3 - t2, "total": t3 - t0,
            "cell_import": inner["import"], "cell_load": inner["load"], "cell_dump": inner["dump"]}


def median_runs(reps, fns):
    """{label: {step: median seconds}}, the labelled runs taking turns."""
    runs = {label: [] for label in fns}
    for _ in range(reps):
        for label, fn in fns.items():
            runs[label].append(fn())
    return {label: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for label, rs in runs.items()}


def sandbox_bench(df, reps, tmp, sandcell):
    os.makedirs(os.path.join(tmp, "lib"), exist_ok=True)
    shutil.copy(os.path.join(ROOT, "src", "py", "sandcell_frames.py"), os.path.join(tmp, "lib"))

    def bare(src, lib, mode):
        return [PYTHON, "-I", "-B", CELL, src, lib, os.path.join(tmp, "out"), mode]

    def sandboxed(src, lib, mode):
        return [sandcell, "run", "--input", "ds=" + src, "--input", "lib=" + lib, "--output", os.path.join(tmp, "out"),
                "--memory", "2G", "--disk", "1G", "--wall-time", "300", "--cpu-time", "300",
                CELL, "/input/ds", "/input/lib", "/output", mode]
    def overhead(code):
        def run():
            shutil.rmtree(os.path.join(tmp, "out"), ignore_errors=True)
            t = time.perf_counter()
            subprocess.run(sandboxed(os.path.join(tmp, "in.scf"), os.path.join(tmp, "lib"), "")[:-5]
                           + ["-c", code], check=True, capture_output=True)
            return {"run": time.perf_counter() - t}
        return run
    sf.dump(df, os.path.join(tmp, "in.scf"))
    over = median_runs(reps, {
        "sandcell run -c pass (same options)": overhead("pass"),
        "sandcell run: copy the archive to /output (no pandas)": overhead(
            "open('/output/copy', 'wb').write(open('/input/ds', 'rb').read())"),
    })
    return over, median_runs(reps, {
        "bare python3, frames": lambda: one_crossing(df, tmp, bare),
        "sandcell run, frames": lambda: one_crossing(df, tmp, sandboxed),
        "bare python3, pickle (unsafe reference)": lambda: one_crossing(df, tmp, bare, "pickle"),
    })


CLIENT_CODE = "import sandcell\nsandcell.datasets['out'] = sandcell.datasets['ds']\n"
CLIENT_LIMITS = {"memory": "2G", "disk": "1G", "wall_time": 300, "cpu_time": 300}


def client_bench(df, reps, sandcell_bin):
    """DataFrame to DataFrame through sandcell.run(datasets=...), cold and warm."""
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import sandcell

    def crossing(run):
        def one():
            t = time.perf_counter()
            with run(CLIENT_CODE, datasets={"ds": df}, limits=CLIENT_LIMITS) as res:
                assert res.status == "ok" and len(res.datasets["out"]) == len(df), res.stderr
            return {"total": time.perf_counter() - t}
        return one

    def cold(code, **kw):
        return sandcell.run(code, binary=sandcell_bin, **kw)
    with sandcell.Server(binary=sandcell_bin, slots=1) as srv:
        return median_runs(reps, {"sandcell.run(datasets=...), cold": crossing(cold),
                                  "sandcell.run(datasets=...), warm server": crossing(srv.run)})


def ms(x):
    return "%.0f ms" % (x * 1000)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return "%s, %d CPUs, Linux %s, Python %s, numpy %s, pandas %s; load average %.1f at the end" % (
        cpu, os.cpu_count(), platform.release(), platform.python_version(), np.__version__, pd.__version__,
        os.getloadavg()[0])


def report(args, rows, host, sandbox, scaling, client=None):
    lines = ["# Frame codec benchmark", "",
             "`%s` on %s (%s). Frame: %d rows x 6 columns (int64, float64, bool, 10-character str, "
             "categorical, datetime64[ns, Europe/Berlin]); medians of %d repetitions (host) and %d (sandbox)."
             % (" ".join(["/usr/bin/python3", "bench/frames.py"] + sys.argv[1:]), datetime.date.today().isoformat(),
                machine(), rows, args.reps, args.sandbox_reps), "",
             "## Host, in process", "",
             "| | sandcell_frames | pickle (protocol 5) | ratio |", "|---|---|---|---|"]
    for label, a, b in [("dump (to bytes)", "frames_dump", "pickle_dump"),
                        ("load (from bytes)", "frames_load", "pickle_load"),
                        ("dump (to a file)", "frames_dump_file", "pickle_dump_file"),
                        ("load (from a file)", "frames_load_file", "pickle_load_file")]:
        lines.append("| %s | %s | %s | %.2fx |" % (label, ms(host[a]), ms(host[b]), host[a] / host[b]))
    rt_f = host["frames_dump"] + host["frames_load"]
    rt_p = host["pickle_dump"] + host["pickle_load"]
    lines.append("| **round trip (bytes)** | **%s** | **%s** | **%.2fx** |" % (ms(rt_f), ms(rt_p), rt_f / rt_p))
    rt_ff = host["frames_dump_file"] + host["frames_load_file"]
    rt_pf = host["pickle_dump_file"] + host["pickle_load_file"]
    lines.append("| round trip (file) | %s | %s | %.2fx |" % (ms(rt_ff), ms(rt_pf), rt_ff / rt_pf))
    lines.append("| size | %.1f MB | %.1f MB | %.2fx |" % (host["frames_bytes"] / 1e6, host["pickle_bytes"] / 1e6,
                                                         host["frames_bytes"] / host["pickle_bytes"]))
    lines += ["", "Goal: the host round trip within 2x of pickle's: %s (%.2fx)."
              % ("met" if rt_f <= 2 * rt_p else "missed", rt_f / rt_p)]
    if scaling:
        lines += ["", "Smaller frames, same columns (round trip to bytes and back, medians): the codec has a "
                  "fixed cost of a few milliseconds per frame (ZIP and .npy headers, schema, building the "
                  "pandas objects), so pickle wins on small frames.", "",
                  "| rows | sandcell_frames | pickle | ratio |", "|---|---|---|---|"]
        for n, (f, p) in scaling.items():
            lines.append("| %d | %.1f ms | %.1f ms | %.2fx |" % (n, f * 1000, p * 1000, f / p))
    if sandbox:
        over, sandbox = sandbox
        lines += ["", "## Host -> sandbox -> host", "",
                  "The host writes the archive to a file, the cell (`bench/frames_cell.py`) reads it and writes "
                  "it back, the host reads the result. `run` is the whole child: interpreter start, "
                  "`import pandas`, the cell's load and dump and, for sandcell, the sandbox's setup, "
                  "the output collection (a copy) and teardown. The cell's own timings are beside it.", "",
                  "| | host dump | run | (cell: import pandas / load / dump) | host load | total |",
                  "|---|---|---|---|---|---|"]
        for label, r in sandbox.items():
            lines.append("| %s | %s | %s | %s / %s / %s | %s | **%s** |" % (
                label, ms(r["host_dump"]), ms(r["run"]), ms(r["cell_import"]), ms(r["cell_load"]),
                ms(r["cell_dump"]), ms(r["host_load"]), ms(r["total"])))
        bare, boxed = sandbox["bare python3, frames"], sandbox["sandcell run, frames"]
        lines += ["", "sandcell vs bare python3, same work: %.2fx end to end (%+.0f ms)."
                  % (boxed["total"] / bare["total"], (boxed["total"] - bare["total"]) * 1000),
                  "", "Where the sandbox's extra time goes (same options, medians): its setup and teardown, "
                  "and moving the output: the cell writes it into the sandbox's tmpfs, the collector copies "
                  "it out and hashes it (SHA-256, for the report).", "",
                  "| | run |", "|---|---|"]
        for label, r in over.items():
            lines.append("| %s | %s |" % (label, ms(r["run"])))
    if client:
        ref = host["pickle_dump"] + host["pickle_load"]
        lines += ["", "## Through the host client", "",
                  "What a platform writes: `sandcell.run(code, datasets={\"ds\": df})`, the code publishing "
                  "it back, the DataFrame read from `Result.datasets`: the host's dump, the run (interpreter, "
                  "`import pandas` on a cold run, the cell's load and dump, setup, collection) and the "
                  "host's checked load, end to end.", "",
                  "| | DataFrame to DataFrame | vs the in-process pickle round trip (%s) |" % ms(ref),
                  "|---|---|---|"]
        for label, r in client.items():
            lines.append("| %s | %s | %.2fx |" % (label, ms(r["total"]), r["total"] / ref))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sandbox-reps", type=int, default=3)
    ap.add_argument("--sandcell", default=os.path.join(ROOT, "build", "sandcell"))
    ap.add_argument("--no-sandbox", action="store_true")
    ap.add_argument("--scaling", default="1000,10000,100000", help="smaller frames for the host table ('' for none)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    df = make_frame(args.rows)
    tmp = tempfile.mkdtemp(prefix="sandcell-frames-bench-")
    os.chmod(tmp, 0o755)  # the sandbox's own uid reads the inputs through the bind mounts
    try:
        scaling = {}
        for n in (int(x) for x in args.scaling.split(",") if x):
            small = make_frame(n)
            blob = sf.dumps(small)
            pk = pickle.dumps(small, protocol=pickle.HIGHEST_PROTOCOL)
            t = interleaved([("fd", lambda: sf.dumps(small)), ("fl", lambda: sf.load(blob)),
                             ("pd", lambda: pickle.dumps(small, protocol=pickle.HIGHEST_PROTOCOL)),
                             ("pl", lambda: pickle.loads(pk))], args.reps * 3)
            scaling[n] = (t["fd"] + t["fl"], t["pd"] + t["pl"])
        host = host_bench(df, args.reps, tmp)
        sandbox = client = None
        if not args.no_sandbox:
            if not os.access(args.sandcell, os.X_OK):
                print("bench/frames.py: %s missing, sandbox part skipped" % args.sandcell, file=sys.stderr)
            else:
                sandbox = sandbox_bench(df, args.sandbox_reps, tmp, args.sandcell)
                client = client_bench(df, args.sandbox_reps, os.path.abspath(args.sandcell))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(args, args.rows, host, sandbox, scaling, client)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
