"""``sandcell.run``: one call for cold and warm runs."""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence, Union

from ._cold import run_cold
from ._errors import BadRequest, SandboxError
from ._locate import Features, features, find_cli
from ._request import PathLike, RunSpec, make_spec
from ._result import Result
from ._server import Server
from ._warm import run_warm

__all__ = ["run", "resolve_cell", "check_datasets"]


def check_datasets(spec: RunSpec, feats: Features) -> None:
    """Datasets need a sandcell that takes them: refused, never dropped."""
    if spec.datasets and not feats.dataset:
        raise BadRequest("datasets=: this sandcell has no --dataset option (too old)")


def resolve_cell(cell: Optional[bool], feats: Features) -> bool:
    """None runs the code as a notebook cell when the sandcell in use has
    cell mode, True requires it, False never asks."""
    if cell is None:
        return feats.cell
    if cell and not feats.cell:
        raise BadRequest("cell=True: this sandcell has no cell mode")
    return cell


def run(code: str, *, datasets: Optional[Mapping[str, Any]] = None,
        inputs: Optional[Mapping[str, PathLike]] = None,
        values: Optional[Mapping[str, object]] = None,
        limits: Optional[Mapping[str, object]] = None, args: Sequence[str] = (),
        stdin: Union[None, bytes, PathLike] = None, output_dir: Optional[PathLike] = None,
        server: Union[None, PathLike, Server] = None, python: Optional[str] = None,
        cgroup_parent: Optional[str] = None, allow_reduced: bool = False,
        cell: Optional[bool] = None, binary: Optional[str] = None) -> Result:
    """Runs ``code`` sandboxed and returns its :class:`Result`::

        res = sandcell.run("print(sum(sandcell.values['xs']))", values={"xs": [1, 2, 3]},
                           limits={"memory": "512M", "wall_time": 10})
        res.status          # "ok"
        res.outputs         # [{"output_type": "stream", "name": "stdout", "text": "6\\n"}]

    Cold (a ``sandcell run`` process) unless ``server`` is given: a socket
    path of ``sandcell serve``, or a :class:`Server`.

    ``inputs``: name -> host file or directory, read-only at /input/NAME.
    ``values``: name -> JSON value, ``sandcell.values[NAME]`` inside.
    ``limits``: see ``sandcell.LIMIT_KEYS`` (unknown keys: BadRequest).
    ``stdin``: bytes (the content) or a host file path; default empty.
    ``output_dir``: where /output is collected; default a private
    directory, removed by ``Result.close()``.  ``args``: ``sys.argv[1:]``.
    ``datasets``: name -> DataFrame (or the path of a frame archive),
    ``sandcell.datasets[NAME]`` inside; what the code publishes there
    comes back in ``Result.datasets`` (docs/datasets.md).
    ``cell``: run as a notebook cell (None: when supported).
    ``python``, ``cgroup_parent``, ``allow_reduced``: as the CLI's options.
    ``binary``: the sandcell CLI to use (default: see docs/client.md).

    Raises BadRequest, Busy, SandboxError, Unreachable, Cancelled or
    ProtocolError (all ``sandcell.Error``) when there is no result."""
    if isinstance(server, Server):
        if python is not None and python != server.python:
            raise BadRequest("python=%r: this server's interpreter is %s" % (python, server.python))
        return server.run(code, datasets=datasets, inputs=inputs, values=values, limits=limits,
                          args=args, stdin=stdin, output_dir=output_dir,
                          cgroup_parent=cgroup_parent, allow_reduced=allow_reduced, cell=cell)
    spec = make_spec(code, args=args, inputs=inputs, values=values, limits=limits, stdin=stdin,
                     output_dir=output_dir, python=python, cgroup_parent=cgroup_parent,
                     allow_reduced=allow_reduced, cell=cell, datasets=datasets)
    if server is None:
        cli = find_cli(binary)
        feats = features(cli)
        spec.cell = resolve_cell(spec.cell, feats)
        check_datasets(spec, feats)
        return run_cold(spec, cli, feats)
    # A server named by its socket: its features are those of the CLI
    # installed with this package (the server binary ships beside it).
    try:
        feats = features(find_cli(binary))
    except SandboxError:
        feats = Features(quiet=False, cell=False)
    spec.cell = resolve_cell(spec.cell, feats)
    return run_warm(spec, os.path.abspath(os.fspath(server)))
