"""Running a child process and measuring what it alone used."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MeasuredRun:
    """Outcome of :func:`run_measured`.

    Attributes
    ----------
    returncode : int
        Exit status (negative: killed by that signal).
    seconds : float
        Wall-clock time.
    cpu_seconds : float
        User + system CPU time of the child and the children it waited for.
    peak_rss_mb : float
        Its largest resident memory (MiB).
    """

    returncode: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float


def run_measured(command: Any, **popen_kwargs: Any) -> MeasuredRun:
    """Run ``command`` (as :class:`subprocess.Popen` takes it) to its end.

    Its resource usage comes from ``wait4`` on that child, so other children of this
    process (earlier runs, other jobs) do not count. Interrupted here (Ctrl-C), the child
    is killed too.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, **popen_kwargs)
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        process.wait()
        raise
    # Reaped by wait4: tell the Popen object, or it believes the child still runs.
    process.returncode = os.waitstatus_to_exitcode(status)
    return MeasuredRun(
        returncode=process.returncode,
        seconds=time.perf_counter() - started,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
    )
