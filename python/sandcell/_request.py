"""Checking and normalising what the caller asks for, before anything runs.

Everything a cold run's CLI or a warm server would refuse as a usage error
is refused here first, with the same rules (names, sizes, durations,
counts, JSON values), so that a bad request is a BadRequest on both paths
and a cold and a warm run of the same request get the same limits.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._errors import BadRequest

__all__ = ["LIMIT_KEYS", "RunSpec", "make_spec", "check_name", "PathLike", "DEFAULT_PYTHON"]

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_PYTHON = "/usr/bin/python3"

# The largest integer a request carries (jansson's json_int_t is signed).
_INT_MAX = (1 << 63) - 1
_SECONDS_MAX = 1e7
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
_SIZE_RE = re.compile(r"([0-9]+)(?:([kKmMgGtT])(?:[iI][bB]|[bB])?|[bB])?\Z")
_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")
_COUNT_RE = re.compile(r"[0-9]+\Z")
_VALUE_DEPTH_MAX = 64   # SC_JSON_MAX_DEPTH: a value nested deeper is refused


def _seconds(key: str, v: object) -> Tuple[str, float]:
    """A duration: a number of seconds, or text in the CLI's grammar."""
    if isinstance(v, str):
        if not _SECONDS_RE.match(v):
            raise BadRequest("limits[%r]: %r is not a duration (seconds, e.g. 30 or 0.5)" % (key, v))
        f = float(v)
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        f = float(v)
    else:
        raise BadRequest("limits[%r]: expected seconds as a number, not %s" % (key, type(v).__name__))
    if not math.isfinite(f) or f <= 0 or f > _SECONDS_MAX:
        raise BadRequest("limits[%r]: %r is not in (0, %g] seconds" % (key, v, _SECONDS_MAX))
    # The CLI's grammar has no exponent: nanosecond precision, then the
    # value both paths use is the one the text says.
    text = ("%.9f" % f).rstrip("0").rstrip(".")
    if float(text) <= 0:
        raise BadRequest("limits[%r]: %r rounds to 0 seconds" % (key, v))
    return text, float(text)


def _size(key: str, v: object) -> Tuple[str, int]:
    """A size: bytes as an int, or text like "512M" (K/M/G/T are powers of 1024)."""
    if isinstance(v, str):
        m = _SIZE_RE.match(v)
        if not m:
            raise BadRequest("limits[%r]: %r is not a size (bytes, or e.g. 512M, 2GiB)" % (key, v))
        n = int(m.group(1)) << (10 * ("kmgt".index(m.group(2).lower()) + 1) if m.group(2) else 0)
    elif isinstance(v, int) and not isinstance(v, bool):
        n = v
    else:
        raise BadRequest("limits[%r]: expected bytes as an int or text like '512M', not %s"
                         % (key, type(v).__name__))
    if n < 0 or n > _INT_MAX:
        raise BadRequest("limits[%r]: %r is out of range" % (key, v))
    return str(n), n


def _count(key: str, v: object) -> Tuple[str, int]:
    if isinstance(v, str):
        if not _COUNT_RE.match(v):
            raise BadRequest("limits[%r]: %r is not a whole number" % (key, v))
        n = int(v)
    elif isinstance(v, int) and not isinstance(v, bool):
        n = v
    else:
        raise BadRequest("limits[%r]: expected a whole number, not %s" % (key, type(v).__name__))
    if n < 0 or n > _INT_MAX:
        raise BadRequest("limits[%r]: %r is out of range" % (key, v))
    return str(n), n


_Conv = Callable[[str, object], Tuple[str, Union[int, float]]]

#: The ``limits=`` keys: key -> (CLI option, request/report key, kind).
#: Exactly the limits the CLI takes, so cold and warm runs accept the same.
LIMIT_KEYS: Mapping[str, Tuple[str, str, str]] = {
    "wall_time": ("--wall-time", "wall_sec", "seconds"),
    "cpu_time": ("--cpu-time", "cpu_sec", "seconds"),
    "memory": ("--memory", "memory_bytes", "size"),
    "pids": ("--pids", "pids", "count"),
    "disk": ("--disk", "disk_bytes", "size"),
    "files": ("--files", "open_files", "count"),
    "stdout_limit": ("--stdout-limit", "stream_bytes", "size"),
    "result_limit": ("--result-limit", "result_bytes", "size"),
    "output_files": ("--output-files", "output_files", "count"),
    "output_bytes": ("--output-bytes", "output_bytes", "size"),
}
_CONVERT: Mapping[str, _Conv] = {"seconds": _seconds, "size": _size, "count": _count}

# sandcell_config_init()'s --output-bytes, for the --disk clamp below.
# tests/client/test_client.py::test_limits_cold_and_warm_agree fails if it drifts.
_DEFAULT_OUTPUT_BYTES = 512 << 20


def check_name(what: str, name: object) -> str:
    """The CLI's rule for input and value names (sandcell_check_name)."""
    if not isinstance(name, str):
        raise BadRequest("%s: names are strings, not %s" % (what, type(name).__name__))
    if not _NAME_RE.match(name) or name in (".", "..") or name[0] in ".-":
        raise BadRequest("%s %r: names are 1-128 of [A-Za-z0-9._-], not starting with '.' or '-'"
                         % (what, name[:64]))
    return name


def _json_depth(v: object) -> int:
    """Nesting depth of a JSON-shaped value (a scalar is 1), iteratively."""
    deepest, stack = 0, [(v, 1)]
    while stack:
        x, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > _VALUE_DEPTH_MAX:
            break
        if isinstance(x, dict):
            stack.extend((y, d + 1) for y in x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend((y, d + 1) for y in x)
    return deepest


@dataclass
class RunSpec:
    """A checked request, ready for either path."""
    code: str
    args: List[str]
    inputs: List[Tuple[str, str]]            # (name, absolute host path)
    values: Optional[Dict[str, object]]
    values_json: Optional[str]
    cli_limits: List[str]                    # ["--memory", "536870912", ...]
    request_limits: Dict[str, Union[int, float]]
    stdin: Union[None, bytes, str]           # None = empty, bytes = content, str = host path
    output_dir: Optional[str]                # absolute, or None = a private temp dir
    python: Optional[str]
    cgroup_parent: Optional[str]
    allow_reduced: bool
    cell: Optional[bool]
    datasets: Mapping[str, object] = field(default_factory=dict)


def make_spec(code: str, *, args: Sequence[str] = (), inputs: Optional[Mapping[str, PathLike]] = None,
              values: Optional[Mapping[str, object]] = None,
              limits: Optional[Mapping[str, object]] = None,
              stdin: Union[None, bytes, PathLike] = None, output_dir: Optional[PathLike] = None,
              python: Optional[str] = None, cgroup_parent: Optional[str] = None,
              allow_reduced: bool = False, cell: Optional[bool] = None,
              datasets: Optional[Mapping[str, object]] = None) -> RunSpec:
    if not isinstance(code, str):
        raise BadRequest("code must be a str, not %s" % type(code).__name__)
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadRequest("code is not encodable as UTF-8: %s" % e) from None
    if isinstance(args, str):
        raise BadRequest("args must be a sequence of strings, not one string")
    arg_list = []
    for a in args:
        if not isinstance(a, str) or "\0" in a:
            raise BadRequest("args must be strings without NUL bytes")
        arg_list.append(a)

    in_list: List[Tuple[str, str]] = []
    for name, path in (inputs or {}).items():
        check_name("input", name)
        p = os.fspath(path)
        if not isinstance(p, str):
            raise BadRequest("input %r: the path must be text" % name)
        if not os.path.exists(p):
            raise BadRequest("input %r: %s: no such file or directory" % (name, p))
        in_list.append((name, os.path.realpath(p)))

    vals: Optional[Dict[str, object]] = None
    vals_json: Optional[str] = None
    if values:
        vals = {}
        for k, v in values.items():
            check_name("value", k)
            vals[k] = v
        try:
            vals_json = json.dumps(vals, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as e:
            raise BadRequest("values must be plain JSON (no NaN, no objects of other types): %s" % e) from None
        if any(_json_depth(v) > _VALUE_DEPTH_MAX for v in vals.values()):
            raise BadRequest("values: nested deeper than %d" % _VALUE_DEPTH_MAX)

    cli_limits: List[str] = []
    req_limits: Dict[str, Union[int, float]] = {}
    for key, v in (limits or {}).items():
        if key not in LIMIT_KEYS:
            raise BadRequest("limits: unknown key %r (known: %s)" % (key, ", ".join(sorted(LIMIT_KEYS))))
        opt, rkey, kind = LIMIT_KEYS[key]
        text, val = _CONVERT[kind](key, v)
        cli_limits += [opt, text]
        req_limits[rkey] = val
    if "disk_bytes" in req_limits:
        # The CLI's rule: collected bytes never exceed what the scratch
        # space could hold.  The server does not apply it, so say it here.
        ob = req_limits.get("output_bytes", _DEFAULT_OUTPUT_BYTES)
        req_limits["output_bytes"] = min(int(ob), int(req_limits["disk_bytes"]))

    std: Union[None, bytes, str] = None
    if isinstance(stdin, (bytes, bytearray, memoryview)):
        std = bytes(stdin)
    elif stdin is not None:
        sp = os.fspath(stdin)
        if not isinstance(sp, str) or not os.path.isfile(sp):
            raise BadRequest("stdin %r: not a file (pass bytes for content)" % (sp,))
        std = os.path.realpath(sp)

    out: Optional[str] = None
    if output_dir is not None:
        o = os.fspath(output_dir)
        if not isinstance(o, str) or not o:
            raise BadRequest("output_dir must be a path")
        out = os.path.abspath(o)

    if python is not None and (not isinstance(python, str) or not os.path.isabs(python)):
        raise BadRequest("python must be an absolute path")
    if cgroup_parent is not None and (not isinstance(cgroup_parent, str) or not cgroup_parent):
        raise BadRequest("cgroup_parent must be a non-empty string")
    if cell not in (None, True, False):
        raise BadRequest("cell must be None, True or False")
    ds = dict(datasets or {})
    for name in ds:
        check_name("dataset", name)
    return RunSpec(code=code, args=arg_list, inputs=in_list, values=vals, values_json=vals_json,
                   cli_limits=cli_limits, request_limits=req_limits, stdin=std, output_dir=out,
                   python=python, cgroup_parent=cgroup_parent, allow_reduced=bool(allow_reduced),
                   cell=cell, datasets=ds)
