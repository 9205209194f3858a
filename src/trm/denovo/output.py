"""Writing several output files as one: all appear, or none does."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from trm.errors import InputError
from trm.io.results import atomic_output


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
        raise InputError(f"output paths must be distinct: {[str(t) for t in targets]}")
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
    """Write ``data`` as indented JSON (NaN written as null) to ``path`` directly."""
    Path(path).write_text(json.dumps(_plain(data), indent=2) + "\n", encoding="utf-8")
