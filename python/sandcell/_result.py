"""What a finished run hands back: :class:`Result`, :class:`Usage`,
:class:`OutputFile`."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import weakref
from dataclasses import dataclass, field
from typing import IO, Any, Dict, List, Optional, Tuple

from ._errors import ProtocolError
from ._report import FileEntry, Report

__all__ = ["Result", "Usage", "OutputFile", "TempDir"]


class TempDir:
    """A private directory (mode 0700) that is removed by :meth:`remove`,
    or when its owner is garbage-collected or the interpreter exits."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._finalizer = weakref.finalize(self, shutil.rmtree, path, True)

    def remove(self) -> None:
        self._finalizer()

    @property
    def exists(self) -> bool:
        return self._finalizer.alive


@dataclass(frozen=True)
class Usage:
    """Resources the run used, from the report."""
    wall_sec: Optional[float]
    cpu_sec: Optional[float]
    peak_memory_bytes: int
    stdout_bytes: int
    stderr_bytes: int
    output_files: int
    output_bytes: int

    @classmethod
    def from_report(cls, r: Report) -> "Usage":
        return cls(wall_sec=r.time.wall_sec, cpu_sec=r.time.cpu_sec,
                   peak_memory_bytes=r.memory.peak_bytes,
                   stdout_bytes=r.streams.stdout.bytes, stderr_bytes=r.streams.stderr.bytes,
                   output_files=len(r.outputs.files), output_bytes=r.outputs.bytes)


def _safe_relpath(p: str) -> Tuple[str, ...]:
    """The report's relative path as components, refusing anything that
    could leave the output directory.  Collected files are listed by their
    exact names (only skipped entries are escaped for display), and the
    collector copies no name it considers unsafe, so a refusal here means
    the report is not one."""
    parts = tuple(p.split("/"))
    if (not p or p.startswith("/") or "\0" in p
            or any(c in ("", ".", "..") for c in parts)):
        raise ProtocolError("report: output file path %r is not a safe relative path" % p[:200])
    return parts


@dataclass(frozen=True)
class OutputFile:
    """A file the code wrote under /output, as collected on the host.

    ``path`` is relative to the output directory (``/`` separators),
    ``size`` and ``sha256`` are what the collector copied.  The reads check
    both, so what you get is exactly what the report lists."""
    path: str
    size: int
    sha256: str
    #: Where it is on the host (inside the run's output directory).
    host_path: str
    _parts: Tuple[str, ...] = field(repr=False, compare=False)
    _root: str = field(repr=False, compare=False)
    # A file keeps its private directory alive, even without its Result.
    _keep: Optional[TempDir] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_entry(cls, e: FileEntry, root: str, keep: Optional[TempDir]) -> "OutputFile":
        parts = _safe_relpath(e.path)
        return cls(path=e.path, size=e.size, sha256=e.sha256,
                   host_path=os.path.join(root, *parts), _parts=parts, _root=root, _keep=keep)

    def open(self) -> IO[bytes]:
        """Opens the file for reading without following symlinks on the
        way (the directory is the host's, but the caller may have shared
        it)."""
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in self._parts[:-1]:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
                os.close(fd)
                fd = nfd
            ffd = os.open(self._parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(ffd).st_mode):
            os.close(ffd)
            raise ProtocolError("output file %r is not a regular file" % self.path)
        return os.fdopen(ffd, "rb")

    def read_bytes(self) -> bytes:
        """The file's bytes, checked against the report's size and SHA-256."""
        with self.open() as f:
            data = f.read(self.size + 1)
        if len(data) != self.size or hashlib.sha256(data).hexdigest() != self.sha256:
            raise ProtocolError("output file %r does not match the report (changed since "
                                "the run?)" % self.path)
        return data

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes().decode(encoding, errors)


@dataclass
class Result:
    """A finished run.

    ``status`` is the report's status word (``"ok"``, ``"exited"``,
    ``"timeout"``, ``"memory"``, ...); ``outputs`` the notebook outputs
    (nbformat v4 dicts, in order); ``datasets`` the DataFrames the code
    published; ``files`` the collected output files; ``value`` what the code
    passed to ``sandcell.result()``; ``report`` the whole typed report.

    Files live in a private temporary directory unless ``output_dir=`` was
    given; it is removed by :meth:`close` (or ``with``), or when the result
    is garbage-collected."""
    status: str
    exit_code: int
    outputs: List[Dict[str, Any]]
    datasets: Dict[str, Any]
    files: Tuple[OutputFile, ...]
    report: Report
    usage: Usage
    stdout: bytes
    stderr: bytes
    value: object
    #: The host directory holding ``files`` (None when nothing was collected).
    output_dir: Optional[str]
    _tmp: Optional[TempDir] = field(default=None, repr=False, compare=False)
    dataset_errors: Dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def file(self, path: str) -> OutputFile:
        """The collected file at ``path`` (relative, as in the report)."""
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    def close(self) -> None:
        """Removes the private output directory (not a caller's output_dir)."""
        if self._tmp is not None:
            self._tmp.remove()

    def __enter__(self) -> "Result":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
