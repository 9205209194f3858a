"""``casanovo sequence`` and ``casanovo train`` as timed subprocesses.

Casanovo runs from its own environment, called by the path of its executable (default
:data:`DEFAULT_EXECUTABLE`, relative to the working directory: the project root when
Snakemake runs the rule). Given ``--model`` a path that does not exist, Casanovo would try
to download official weights from GitHub; :func:`sequence` refuses such a path first, so
nothing is ever fetched at run time.

Casanovo also looks modification names up in Unimod when it writes its mzTab, through
spectrum_utils, which downloads unimod.obo on first use. Every Casanovo process here runs
with ``XDG_CACHE_HOME`` set to a cache directory (default: ``cache/`` inside Casanovo's
environment) that :func:`prime_cv_cache` fills once from the unimod.obo that pyopenms
ships, so the mzTab of an offline run is written too.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trm.errors import TrmError
from trm.process import MeasuredRun, run_measured

log = logging.getLogger(__name__)

#: Where ``make`` creates Casanovo's environment, relative to the project root.
DEFAULT_EXECUTABLE = Path(".venv-casanovo/bin/casanovo")

#: Lines of Casanovo's console output quoted in an error message.
_ERROR_TAIL_LINES = 30


class CasanovoError(TrmError, RuntimeError):
    """Casanovo exited with an error, or left no result where it should have."""


@dataclass(frozen=True)
class CasanovoRun:
    """Outcome of one Casanovo process.

    Attributes
    ----------
    output : Path
        The mzTab (``sequence``) or the checkpoint (``train``) it produced.
    seconds : float
        Wall-clock time of the whole process, start-up included.
    console_log : Path
        Its stdout and stderr.
    cpu_seconds : float
        CPU time (user + system, all threads) the process used: unlike wall time, hardly
        changed when other processes compete for the cores.
    peak_rss_mb : float
        Its largest resident memory (MiB).
    """

    output: Path
    seconds: float
    console_log: Path
    cpu_seconds: float = float("nan")
    peak_rss_mb: float = float("nan")


def resolve_executable(executable: str | os.PathLike[str] | None = None) -> Path:
    """The Casanovo executable to call, checked to exist.

    Raises
    ------
    FileNotFoundError
        Naming the path and how to create the environment.
    """
    path = Path(executable) if executable is not None else DEFAULT_EXECUTABLE
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"Casanovo executable {path} not found: create Casanovo's environment "
            "(python3.11 -m venv .venv-casanovo && .venv-casanovo/bin/pip install "
            "torch==2.13.0 casanovo==5.2.1 'pyarrow<26') or set its path"
        )
    return path


def check_checkpoint(checkpoint: str | os.PathLike[str]) -> Path:
    """An existing Casanovo checkpoint file, or a clear error.

    Raises
    ------
    FileNotFoundError
        When ``checkpoint`` is not an existing file: Casanovo would otherwise try to
        download weights.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"Casanovo checkpoint {path} does not exist (Casanovo would try to download "
            "weights): give the path of a .ckpt file, e.g. official weights fetched "
            "beforehand or a baseline trained with `trm casanovo-train`"
        )
    return path


def default_cache_home(executable: Path) -> Path:
    """``cache/`` in the environment that holds ``executable`` (``<env>/bin/casanovo``)."""
    return executable.resolve().parent.parent / "cache"


def find_unimod_obo() -> Path | None:
    """The unimod.obo shipped with pyopenms (a dependency of trm), if installed."""
    spec = importlib.util.find_spec("pyopenms")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "share" / "OpenMS" / "CV" / "unimod.obo"
        if candidate.is_file():
            return candidate
    return None


def prime_cv_cache(
    executable: Path, cache_home: Path, unimod_obo: str | os.PathLike[str] | None = None
) -> bool:
    """Make sure spectrum_utils finds Unimod in ``cache_home`` without the network.

    Parameters
    ----------
    executable : Path
        Casanovo's executable; the ``python`` beside it runs ``prime_cv_cache.py``.
    cache_home : Path
        Directory Casanovo runs with as ``XDG_CACHE_HOME``.
    unimod_obo : path, optional
        A local unimod.obo (default: pyopenms' copy).

    Returns
    -------
    bool
        Whether the cache holds Unimod. When it does not (no local unimod.obo), Casanovo
        will try to download it when writing a modified peptide; a warning says so.
    """
    cached = cache_home / "spectrum_utils" / "UNIMOD.pkl"
    if cached.is_file():
        return True
    obo = Path(unimod_obo) if unimod_obo is not None else find_unimod_obo()
    if obo is None or not obo.is_file():
        log.warning(
            "no local unimod.obo: Casanovo will download Unimod when it writes a modified "
            "peptide, and fail offline"
        )
        return False
    python = executable.parent / "python"
    script = Path(__file__).with_name("prime_cv_cache.py")
    completed = subprocess.run(
        [str(python), str(script), str(obo), str(cache_home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0 or not cached.is_file():
        raise CasanovoError(f"could not cache Unimod for Casanovo: {completed.stderr.strip()}")
    log.info("cached Unimod from %s for Casanovo in %s", obo, cache_home)
    return True


def thread_environment(threads: int | None, cache_home: Path | None = None) -> dict[str, str]:
    """The environment of a Casanovo process: ``threads`` CPU threads, ``cache_home``."""
    env = dict(os.environ)
    if cache_home is not None:
        env["XDG_CACHE_HOME"] = str(cache_home)
    if threads is not None:
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[variable] = str(threads)
        env["POLARS_MAX_THREADS"] = str(threads)
    # Casanovo's own log lines are enough; a progress bar per spectrum batch is noise.
    env.setdefault("TQDM_DISABLE", "1")
    return env


def _run(
    command: Sequence[str | Path],
    cwd: Path,
    console_log: Path,
    threads: int | None,
    cache_home: Path | None = None,
    append: bool = False,
) -> MeasuredRun:
    """Run Casanovo; returns its time, CPU time and peak RSS (:func:`trm.process.run_measured`).

    ``append`` keeps the console output of earlier attempts (a resumed training run).
    """
    log.info("running %s", " ".join(str(part) for part in command))
    with console_log.open("a" if append else "w", encoding="utf-8") as handle:
        run = run_measured(
            [str(part) for part in command],
            cwd=cwd,
            env=thread_environment(threads, cache_home),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    if run.returncode != 0:
        tail = console_log.read_text(encoding="utf-8", errors="replace").splitlines()
        raise CasanovoError(
            f"Casanovo exited with status {run.returncode} (full output in "
            f"{console_log}):\n" + "\n".join(tail[-_ERROR_TAIL_LINES:])
        )
    return run


def sequence(
    mgf_path: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    root: str = "casanovo",
    executable: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    cache_home: str | os.PathLike[str] | None = None,
) -> CasanovoRun:
    """Run ``casanovo sequence`` on one MGF file.

    Parameters
    ----------
    mgf_path : path
        Spectra, as written by :func:`trm.casanovo.mgf.write_mgf`.
    checkpoint : path
        An existing Casanovo ``.ckpt`` (never downloaded).
    config_path : path
        A complete config (:func:`trm.casanovo.config.write_config`).
    output_dir : path
        Receives ``<root>.mztab``, Casanovo's ``<root>.log`` and ``<root>.console.txt``.
    root : str
        Base name of the output files.
    executable : path, optional
        Casanovo's executable (default :data:`DEFAULT_EXECUTABLE`).
    threads : int, optional
        CPU threads Casanovo may use.
    cache_home : path, optional
        ``XDG_CACHE_HOME`` of the process (default :func:`default_cache_home`), primed
        with Unimod by :func:`prime_cv_cache`.

    Returns
    -------
    CasanovoRun
    """
    checkpoint = check_checkpoint(checkpoint).resolve()
    executable = resolve_executable(executable).absolute()
    cache = Path(cache_home).resolve() if cache_home else default_cache_home(executable)
    prime_cv_cache(executable, cache)
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    console_log = output_dir / f"{root}.console.txt"
    command = [
        executable,
        "sequence",
        Path(mgf_path).resolve(),
        "--model",
        checkpoint,
        "--config",
        Path(config_path).resolve(),
        "--output_dir",
        output_dir,
        "--output_root",
        root,
        "--force_overwrite",
    ]
    run = _run(command, output_dir, console_log, threads, cache)
    mztab = output_dir / f"{root}.mztab"
    if not mztab.is_file():
        raise CasanovoError(f"Casanovo finished but wrote no {mztab} (see {console_log})")
    return CasanovoRun(mztab, run.seconds, console_log, run.cpu_seconds, run.peak_rss_mb)


def train(
    train_mgfs: Sequence[str | os.PathLike[str]],
    validation_mgfs: Sequence[str | os.PathLike[str]],
    config_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    root: str = "casanovo_train",
    executable: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    resume_from: str | os.PathLike[str] | None = None,
    append_log: bool = False,
) -> CasanovoRun:
    """Run ``casanovo train`` from random weights on annotated MGF files, or resume it.

    Parameters
    ----------
    train_mgfs, validation_mgfs : sequence of path
        Annotated MGF files (``SEQ=``); validation picks the best checkpoint.
    config_path : path
        A complete config holding the architecture and the training budget.
    output_dir : path
        Receives Casanovo's checkpoints (``<root>.best.ckpt``, ``<root>.epoch=E-step=S.ckpt``)
        and logs.
    root : str
    executable : path, optional
    threads : int, optional
    resume_from : path, optional
        A checkpoint this run saved earlier in ``output_dir`` (:func:`latest_checkpoint`):
        Casanovo restores the weights, optimizer, learning-rate schedule, epoch and step
        from it (``--load_all_states``) and goes on to the end of the same schedule. The
        other checkpoints of the interrupted attempt are kept (the best one stays a
        candidate).
    append_log : bool
        Keep the console output of earlier attempts (always, when resuming).

    Returns
    -------
    CasanovoRun
        ``output`` is the best checkpoint by validation loss, else the last one saved.
    """
    if not train_mgfs or not validation_mgfs:
        raise ValueError("Casanovo training needs training and validation MGF files")
    executable = resolve_executable(executable).absolute()
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    console_log = output_dir / f"{root}.console.txt"
    if resume_from is None:
        for stale in output_dir.glob(f"{root}.*.ckpt"):
            # A checkpoint of an earlier run would be taken for this run's result.
            stale.unlink()
    command: list[str | Path] = [executable, "train"]
    command.extend(Path(path).resolve() for path in train_mgfs)
    if resume_from is not None:
        command.extend(["--model", Path(resume_from).resolve(), "--load_all_states"])
    for path in validation_mgfs:
        command.extend(["--validation_peak_path", Path(path).resolve()])
    command.extend(
        [
            "--config",
            Path(config_path).resolve(),
            "--output_dir",
            output_dir,
            "--output_root",
            root,
            "--force_overwrite",
        ]
    )
    # Training writes no mzTab, so it needs no Unimod; the cache keeps it off the network.
    run = _run(
        command,
        output_dir,
        console_log,
        threads,
        default_cache_home(executable),
        append=append_log or resume_from is not None,
    )
    best = output_dir / f"{root}.best.ckpt"
    if best.is_file():
        return CasanovoRun(best, run.seconds, console_log, run.cpu_seconds, run.peak_rss_mb)
    saved = sorted(output_dir.glob(f"{root}.epoch=*-step=*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not saved:
        raise CasanovoError(f"Casanovo training saved no checkpoint in {output_dir}")
    return CasanovoRun(saved[-1], run.seconds, console_log, run.cpu_seconds, run.peak_rss_mb)


def latest_checkpoint(
    output_dir: str | os.PathLike[str], root: str = "casanovo_train"
) -> Path | None:
    """The most recently written training checkpoint in ``output_dir``, or None.

    Casanovo saves ``<root>.epoch=E-step=S.ckpt`` at the end of every epoch and
    ``<root>.best.ckpt`` whenever validation loss improves; both hold the full training
    state. The newer of them is the furthest point an interrupted run reached.
    """
    saved = [
        path
        for path in Path(output_dir).glob(f"{root}.*.ckpt")
        if path.is_file() and path.stat().st_size > 0
    ]
    return max(saved, key=lambda path: path.stat().st_mtime_ns) if saved else None
