"""The one way trm writes an output: to a temporary file beside it, renamed at the end.

The writers of plain JSON and TSV outputs (:func:`write_json`, :func:`write_tsv`) sit here
too; they write where they are told, which inside :func:`atomic_outputs` is the temporary
path.

A job that fails (or is killed) while writing leaves the previous file, or none, and no
temporary file behind: never a partial output that a workflow would take as finished.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    The temporary name is unique and does not exist when the block starts (some writers
    append to an existing file); the file gets the permissions of a normal new file and is
    removed whatever happens.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    temporary.unlink()
    try:
        yield temporary
        # Writers that create the file with mkstemp make it private: an output gets the
        # permissions of a new file.
        temporary.chmod(0o666 & ~_umask())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Temporary paths beside each of ``paths``, renamed to them only if the block succeeds.

    A failure anywhere in the block (or while writing any file) leaves none of the outputs
    and no temporary file behind; existing files at ``paths`` stay as they were.

    Parameters
    ----------
    paths : sequence of path-like
        The outputs, all distinct.

    Yields
    ------
    list of Path
        The temporary path of each output, in the same order.
    """
    targets = [Path(p) for p in paths]
    if len({t.resolve() for t in targets}) != len(targets):
        raise ValueError(f"output paths must be distinct: {[str(t) for t in targets]}")
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_output(target)) for target in targets]


def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_json(data: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``data`` as indented JSON (NaN and infinities written as null) to ``path``."""
    Path(path).write_text(json.dumps(_plain(data), indent=2) + "\n", encoding="utf-8")


def write_tsv(table: Any, path: str | os.PathLike[str]) -> None:
    """Write a polars DataFrame as a tab-separated table (nulls as empty fields) to ``path``."""
    table.write_csv(path, separator="\t", null_value="")
