"""The run report (docs/report.md), parsed strictly into frozen dataclasses.

Reports come from the CLI or the server, which are trusted, but parts of
them (the result value, file names) are the sandboxed code's bytes.  So the
text is parsed with :mod:`json` only (no pickle, no eval, no object hooks
that build anything but dicts and lists), with a size cap, duplicate keys,
NaN and Infinity rejected, and every key this client reads checked for its
type.  Keys this client does not know are allowed (a schema may grow), kept
in :attr:`Report.raw`, and never interpreted.  Any violation is a
:class:`~sandcell.ProtocolError`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from ._errors import ProtocolError

__all__ = ["Report", "Script", "Times", "Memory", "StreamInfo", "Streams", "FileEntry",
           "SkippedEntry", "Collection", "Isolation", "Cell", "CodeError", "parse_json",
           "parse_report", "STATUSES", "RUN_STATUSES", "REPORT_MAX", "SCHEMAS", "OUTPUT_TYPES"]

#: Largest report or server answer read, in bytes (the C client's cap).
REPORT_MAX = 64 << 20

#: Statuses a full report may carry (docs/report.md, "Statuses"): the
#: outcomes of a run, then the refusals and the cancel, which
#: _refusals.classify() turns into exceptions.
RUN_STATUSES = frozenset({"ok", "exited", "signaled", "timeout", "cpu-time", "memory", "disk",
                          "output-limit"})
STATUSES = RUN_STATUSES | frozenset({"sandbox-error", "usage-error", "busy", "unreachable",
                                     "cancelled"})

#: Report schemas this client reads (docs/report.md; 2 added cell outputs
#: and the structured error).
SCHEMAS = frozenset({1, 2})

#: nbformat v4 output types a report's cell outputs may hold.
OUTPUT_TYPES = frozenset({"stream", "display_data", "execute_result", "error"})

def _reject_constant(name: str) -> object:
    raise ValueError("%s is not JSON" % name)


def _no_duplicates(pairs: List[Tuple[str, object]]) -> Dict[str, object]:
    out: Dict[str, object] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate key %r" % k[:64])
        out[k] = v
    return out


def parse_json(data: bytes, what: str, cap: int = REPORT_MAX) -> Dict[str, object]:
    """Parses one JSON object (a report, a server answer, an event) strictly."""
    if len(data) > cap:
        raise ProtocolError("%s: %d bytes, over the limit of %d" % (what, len(data), cap))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError("%s: not UTF-8 (%s)" % (what, e)) from None
    # json's C scanner counts its recursion: a deeply nested document is a
    # RecursionError, not a crash.
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ProtocolError("%s: not valid JSON (%s)" % (what, e)) from None
    if not isinstance(obj, dict):
        raise ProtocolError("%s: not a JSON object" % what)
    return obj


# ---- typed accessors: each raises ProtocolError naming the key ----

def _get(o: Mapping[str, object], k: str, where: str) -> object:
    if k not in o:
        raise ProtocolError("report: %s: missing key %r" % (where, k))
    return o[k]


def _bad(where: str, k: str, want: str, v: object) -> ProtocolError:
    return ProtocolError("report: %s.%s must be %s, not %s" % (where, k, want, type(v).__name__))


def _str(o: Mapping[str, object], k: str, where: str) -> str:
    v = _get(o, k, where)
    if not isinstance(v, str):
        raise _bad(where, k, "a string", v)
    return v


def _opt_str(o: Mapping[str, object], k: str, where: str) -> Optional[str]:
    v = _get(o, k, where)
    if v is not None and not isinstance(v, str):
        raise _bad(where, k, "a string or null", v)
    return v


def _int(o: Mapping[str, object], k: str, where: str) -> int:
    v = _get(o, k, where)
    # bool is an int subclass in Python; JSON true is not a number.
    if not isinstance(v, int) or isinstance(v, bool):
        raise _bad(where, k, "an integer", v)
    return v


def _opt_int(o: Mapping[str, object], k: str, where: str) -> Optional[int]:
    v = _get(o, k, where)
    if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
        raise _bad(where, k, "an integer or null", v)
    return v


def _opt_num(o: Mapping[str, object], k: str, where: str) -> Optional[float]:
    v = _get(o, k, where)
    if v is None:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise _bad(where, k, "a number or null", v)
    return float(v)


def _bool(o: Mapping[str, object], k: str, where: str) -> bool:
    v = _get(o, k, where)
    if not isinstance(v, bool):
        raise _bad(where, k, "a boolean", v)
    return v


def _obj(o: Mapping[str, object], k: str, where: str) -> Dict[str, object]:
    v = _get(o, k, where)
    if not isinstance(v, dict):
        raise _bad(where, k, "an object", v)
    return v


def _list(o: Mapping[str, object], k: str, where: str) -> List[object]:
    v = _get(o, k, where)
    if not isinstance(v, list):
        raise _bad(where, k, "an array", v)
    return v


def _str_list(o: Mapping[str, object], k: str, where: str) -> Tuple[str, ...]:
    out = []
    for i, v in enumerate(_list(o, k, where)):
        if not isinstance(v, str):
            raise _bad(where, "%s[%d]" % (k, i), "a string", v)
        out.append(v)
    return tuple(out)


# ---- the report's parts (names and nesting as in docs/report.md) ----

@dataclass(frozen=True)
class Script:
    """What the Python process itself did."""
    started: bool
    exit_code: Optional[int]
    signal: Optional[int]
    signal_name: Optional[str]


@dataclass(frozen=True)
class Times:
    wall_sec: Optional[float]
    cpu_sec: Optional[float]


@dataclass(frozen=True)
class Memory:
    peak_bytes: int


@dataclass(frozen=True)
class StreamInfo:
    bytes: int
    truncated: bool


@dataclass(frozen=True)
class Streams:
    stdout: StreamInfo
    stderr: StreamInfo


@dataclass(frozen=True)
class FileEntry:
    """One collected file as the report lists it."""
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SkippedEntry:
    path: str
    reason: str


@dataclass(frozen=True)
class Collection:
    """The report's ``outputs`` object: files collected from /output."""
    collected: bool
    files: Tuple[FileEntry, ...]
    #: The first 1000 entries not collected, in the collector's walk order.
    skipped: Tuple[SkippedEntry, ...]
    bytes: int
    limit_hit: bool
    #: How many entries were not collected, listed or not.
    skipped_total: int


@dataclass(frozen=True)
class Isolation:
    """``mode`` ("full", "reduced", "none"), ``not_held``, ``host_uid``;
    the per-layer details stay in ``details`` (the JSON object as is)."""
    mode: str
    not_held: Tuple[str, ...]
    host_uid: Optional[int]
    details: Mapping[str, object]


@dataclass(frozen=True)
class CodeError:
    """The code's uncaught exception, as the code reported it (the report's
    ``error`` when it is an object): its name, its value, and the traceback
    as printed (the strings joined with newlines)."""
    ename: str
    evalue: str
    traceback: Tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    """The report's ``cell`` object: ``mode`` ("cell" or "script"),
    ``outputs`` (nbformat v4 output dicts, in order, as the host checked
    them; JSON values keep the value tags of docs/values.md), ``bytes``,
    ``dropped`` and ``problems``."""
    mode: str
    outputs: Tuple[Mapping[str, object], ...]
    bytes: int
    dropped: int
    problems: Tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """A run report (schema 1 or 2).  Attribute names follow the JSON keys,
    except that ``error`` (a string or an object) is split: ``error`` is a
    sandbox error's message, ``code_error`` the code's exception."""
    schema: int
    sandcell_version: str
    status: str
    reason: str
    exit_code: int
    script: Script
    time: Times
    memory: Memory
    streams: Streams
    #: The value the code published with ``sandcell.result()`` (plain JSON
    #: data: dict, list, str, int, float, bool or None).
    result: object
    result_error: Optional[str]
    outputs: Collection
    truncations: Tuple[str, ...]
    limits: Mapping[str, float]
    isolation: Isolation
    error: Optional[str]
    left_behind: Tuple[str, ...]
    #: Schema 2 (None in a schema 1 report): the cell's outputs, the
    #: code's uncaught exception, where a stopped run was (the code's word).
    cell: Optional[Cell]
    code_error: Optional[CodeError]
    stopped_at: Optional[Tuple[str, ...]]
    #: The whole document as parsed (plain dicts and lists).
    raw: Mapping[str, object]


_HEX = frozenset("0123456789abcdef")


def _file_entry(v: object, i: int) -> FileEntry:
    where = "outputs.files[%d]" % i
    if not isinstance(v, dict):
        raise _bad("outputs", "files[%d]" % i, "an object", v)
    sha = _str(v, "sha256", where)
    if len(sha) != 64 or not set(sha) <= _HEX:
        raise ProtocolError("report: %s.sha256 is not a lowercase hex SHA-256" % where)
    size = _int(v, "size", where)
    if size < 0:
        raise ProtocolError("report: %s.size is negative" % where)
    return FileEntry(path=_str(v, "path", where), size=size, sha256=sha)


def _skipped(v: object, i: int) -> SkippedEntry:
    where = "outputs.skipped[%d]" % i
    if not isinstance(v, dict):
        raise _bad("outputs", "skipped[%d]" % i, "an object", v)
    return SkippedEntry(path=_str(v, "path", where), reason=_str(v, "reason", where))


def _stream(o: Mapping[str, object], k: str) -> StreamInfo:
    s = _obj(o, k, "streams")
    return StreamInfo(bytes=_int(s, "bytes", "streams." + k),
                      truncated=_bool(s, "truncated", "streams." + k))


def _code_error(v: Mapping[str, object]) -> CodeError:
    return CodeError(ename=_str(v, "ename", "error"), evalue=_str(v, "evalue", "error"),
                     traceback=_str_list(v, "traceback", "error"))


def _cell(doc: Mapping[str, object]) -> Cell:
    c = _obj(doc, "cell", "report")
    mode = _str(c, "mode", "cell")
    if mode not in ("cell", "script"):
        raise ProtocolError("report: cell.mode %r is not cell or script" % mode[:64])
    outs = []
    for i, o in enumerate(_list(c, "outputs", "cell")):
        if not isinstance(o, dict):
            raise _bad("cell", "outputs[%d]" % i, "an object", o)
        t = _str(o, "output_type", "cell.outputs[%d]" % i)
        if t not in OUTPUT_TYPES:
            raise ProtocolError("report: cell.outputs[%d] has output_type %r" % (i, t[:64]))
        outs.append(o)
    return Cell(mode=mode, outputs=tuple(outs), bytes=_int(c, "bytes", "cell"),
                dropped=_int(c, "dropped", "cell"), problems=_str_list(c, "problems", "cell"))


def parse_report(doc: Mapping[str, object]) -> Report:
    """Checks a parsed report document and returns it typed."""
    top = "report"
    schema = _int(doc, "schema", top)
    if schema not in SCHEMAS:
        raise ProtocolError("report: schema %d, this client reads schemas %s" %
                            (schema, " and ".join(str(s) for s in sorted(SCHEMAS))))
    status = _str(doc, "status", top)
    if status not in STATUSES:
        raise ProtocolError("report: unknown status %r" % status[:64])
    sc = _obj(doc, "script", top)
    tm = _obj(doc, "time", top)
    mem = _obj(doc, "memory", top)
    st = _obj(doc, "streams", top)
    out = _obj(doc, "outputs", top)
    iso = _obj(doc, "isolation", top)
    err = _get(doc, "error", top)
    if err is not None and not isinstance(err, str) and not (schema >= 2 and isinstance(err, dict)):
        raise _bad(top, "error", "a string, an object or null" if schema >= 2 else "a string or null",
                   err)
    limits: Dict[str, float] = {}
    for k, v in _obj(doc, "limits", top).items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise _bad("limits", k, "a number", v)
        limits[k] = v
    return Report(
        schema=schema,
        sandcell_version=_str(doc, "sandcell_version", top),
        status=status,
        reason=_str(doc, "reason", top),
        exit_code=_int(doc, "exit_code", top),
        script=Script(started=_bool(sc, "started", "script"),
                      exit_code=_opt_int(sc, "exit_code", "script"),
                      signal=_opt_int(sc, "signal", "script"),
                      signal_name=_opt_str(sc, "signal_name", "script")),
        time=Times(wall_sec=_opt_num(tm, "wall_sec", "time"), cpu_sec=_opt_num(tm, "cpu_sec", "time")),
        memory=Memory(peak_bytes=_int(mem, "peak_bytes", "memory")),
        streams=Streams(stdout=_stream(st, "stdout"), stderr=_stream(st, "stderr")),
        result=_get(doc, "result", top),
        result_error=_opt_str(doc, "result_error", top),
        outputs=Collection(
            collected=_bool(out, "collected", "outputs"),
            files=tuple(_file_entry(v, i) for i, v in enumerate(_list(out, "files", "outputs"))),
            skipped=tuple(_skipped(v, i) for i, v in enumerate(_list(out, "skipped", "outputs"))),
            bytes=_int(out, "bytes", "outputs"),
            limit_hit=_bool(out, "limit_hit", "outputs"),
            skipped_total=_int(out, "skipped_total", "outputs")),
        truncations=_str_list(doc, "truncations", top),
        limits=limits,
        isolation=Isolation(mode=_str(iso, "mode", "isolation"),
                            not_held=_str_list(iso, "not_held", "isolation"),
                            host_uid=_opt_int(iso, "host_uid", "isolation") if "host_uid" in iso else None,
                            details=iso),
        error=err if isinstance(err, str) else None,
        left_behind=_str_list(doc, "left_behind", top),
        raw=doc,
        cell=_cell(doc) if schema >= 2 else None,
        code_error=_code_error(err) if isinstance(err, dict) else None,
        stopped_at=(_str_list(_obj(doc, "stopped_at", top), "traceback", "stopped_at")
                    if schema >= 2 and _get(doc, "stopped_at", top) is not None else None),
    )
