"""JSON outputs (NaN and infinities written as null); files are made atomic by :mod:`trm.atomic`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


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
