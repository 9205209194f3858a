"""Spectrum tables in, Casanovo results out: the steps the subcommands chain.

:func:`sequence_spectra` writes a complete config and an MGF of the spectra Casanovo can
take, runs ``casanovo sequence`` and returns one row per input spectrum.
:func:`train_baseline` exports parquet shards of labelled spectra to annotated MGF and
trains a Casanovo model of a given size within a budget of spectra seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from trm.atomic import atomic_output
from trm.casanovo import runner
from trm.casanovo.config import (
    CASANOVO_VERSION,
    Architecture,
    build_config,
    training_overrides,
    write_config,
)
from trm.casanovo.mgf import SKIPPED_SCHEMA, select_spectra, write_mgf
from trm.casanovo.mztab import PSM_SCHEMA, per_spectrum_results, read_casanovo_mztab
from trm.errors import InputError

log = logging.getLogger(__name__)

#: Casanovo's preprocessing for training on synthetic spectra, before any user setting.
#: MS2PIP spectra carry only b/y ions (24 peaks at the median); after Casanovo's 1%
#: intensity filter, 72% of them have fewer than its default ``min_peaks`` of 20 and
#: would be dropped from training and validation without a word, so the budget of
#: spectra seen would be 3.5x what Casanovo learned from.
TRAINING_PREPROCESSING: dict[str, Any] = {"min_peaks": 1}


@dataclass
class SequencingOutcome:
    """What :func:`sequence_spectra` produced.

    Attributes
    ----------
    results : polars.DataFrame
        :data:`trm.casanovo.mztab.RESULT_SCHEMA`, one row per input spectrum.
    mztab : Path or None
        Casanovo's mzTab (None when no spectrum could be given to it).
    summary : dict
        Counts, timing (``seconds``, ``spectra_per_second`` over the spectra Casanovo
        read, start-up included; ``cpu_seconds`` of all its threads) and settings, for
        ``casanovo.json``.
    """

    results: pl.DataFrame
    mztab: Path | None
    summary: dict[str, Any] = field(default_factory=dict)


def sequence_spectra(
    table: pl.DataFrame,
    checkpoint: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    config_overrides: Sequence[Mapping[str, Any]] = (),
    skipped_before: pl.DataFrame | None = None,
    executable: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    cache_home: str | os.PathLike[str] | None = None,
) -> SequencingOutcome:
    """De novo sequence a spectrum table with Casanovo.

    Parameters
    ----------
    table : polars.DataFrame
        Spectra (:data:`trm.io.table.SPECTRUM_SCHEMA`); one spectrum may appear once per
        charge to try, the best-scoring PSM is kept.
    checkpoint : path
        Existing Casanovo weights.
    work_dir : path
        Receives ``casanovo_config.yaml``, ``spectra.mgf``, Casanovo's mzTab and logs.
    config_overrides : sequence of mapping
        Casanovo config keys, applied in order over the template.
    skipped_before : polars.DataFrame, optional
        Spectra an earlier step set aside (``run``, ``spectrum_id``, ``reason``): they get a
        ``skipped`` row too.
    executable, threads, cache_home
        See :func:`trm.casanovo.runner.sequence`.

    Returns
    -------
    SequencingOutcome
    """
    runner.check_checkpoint(checkpoint)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    config = build_config(*config_overrides)
    config_path = write_config(config, work_dir / "casanovo_config.yaml")
    given, skipped = select_spectra(table, max_charge=config["max_charge"])
    if skipped_before is not None and skipped_before.height:
        skipped = pl.concat(
            [skipped_before.select(list(SKIPPED_SCHEMA)).cast(SKIPPED_SCHEMA), skipped],
            how="vertical",
        )
    summary: dict[str, Any] = {
        "tool": "casanovo",
        "casanovo_version": CASANOVO_VERSION,
        "checkpoint": str(checkpoint),
        "threads": threads,
        "n_spectra_given": given.height,
    }
    if given.height == 0:
        log.warning("no spectrum can be given to Casanovo; every spectrum is listed as skipped")
        results = per_spectrum_results(given, skipped, pl.DataFrame(schema=PSM_SCHEMA))
        summary.update(seconds=None, spectra_per_second=None, cpu_seconds=None, peak_rss_mb=None)
        return SequencingOutcome(results, None, _count(results, summary))
    mgf_path = write_mgf(given, work_dir / "spectra.mgf")
    run = runner.sequence(
        mgf_path,
        checkpoint,
        config_path,
        work_dir,
        root="casanovo",
        executable=executable,
        threads=threads,
        cache_home=cache_home,
    )
    results = per_spectrum_results(given, skipped, read_casanovo_mztab(run.output))
    summary.update(
        seconds=round(run.seconds, 3),
        spectra_per_second=round(given.height / run.seconds, 3),
        cpu_seconds=round(run.cpu_seconds, 3),
        peak_rss_mb=round(run.peak_rss_mb, 1),
    )
    log.info(
        "Casanovo read %d spectra in %.1f s (%.2f spectra/s)",
        given.height,
        run.seconds,
        given.height / run.seconds,
    )
    return SequencingOutcome(results, run.output, _count(results, summary))


def _count(results: pl.DataFrame, summary: dict[str, Any]) -> dict[str, Any]:
    counts = results.group_by("status").len()
    by_status = dict(zip(counts["status"].to_list(), counts["len"].to_list(), strict=True))
    summary.update(
        n_spectra=results.height,
        n_sequenced=by_status.get("sequenced", 0),
        n_no_psm=by_status.get("no_psm", 0),
        n_skipped=by_status.get("skipped", 0),
    )
    return summary


@dataclass
class TrainingOutcome:
    """What :func:`train_baseline` produced.

    Attributes
    ----------
    checkpoint : Path
        The trained model (best by validation loss).
    summary : dict
        Spectra used and skipped, epochs, steps, architecture, time.
    """

    checkpoint: Path
    summary: dict[str, Any] = field(default_factory=dict)


def _export_shards(
    shards: Sequence[Path],
    mgf_path: Path,
    max_charge: int,
    residues: Mapping[str, float],
    limit: int | None,
) -> tuple[int, pl.DataFrame]:
    """Append shards to one annotated MGF, up to ``limit`` spectra; returns the count
    written and the skipped spectra."""
    mgf_path.unlink(missing_ok=True)
    written = 0
    skipped_parts = [pl.DataFrame(schema=SKIPPED_SCHEMA)]
    for shard in shards:
        if limit is not None and written >= limit:
            break
        table = pl.read_parquet(shard)
        given, skipped = select_spectra(
            table, max_charge=max_charge, annotated=True, residues=residues
        )
        if limit is not None:
            given = given.head(limit - written)
        write_mgf(given, mgf_path, append=True)
        written += given.height
        skipped_parts.append(skipped)
    return written, pl.concat(skipped_parts, how="vertical")


def train_baseline(
    train_shards: Sequence[str | os.PathLike[str]],
    validation_shards: Sequence[str | os.PathLike[str]],
    checkpoint_out: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    architecture: Architecture,
    max_spectra: int,
    batch_size: int = 32,
    n_validations: int = 5,
    max_validation_spectra: int | None = 10_000,
    config_overrides: Sequence[Mapping[str, Any]] = (),
    executable: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> TrainingOutcome:
    """Train a Casanovo model from random weights on labelled spectrum shards.

    Parameters
    ----------
    train_shards, validation_shards : sequence of path
        Parquet files in :data:`trm.io.table.SPECTRUM_SCHEMA` with ``peptide`` set.
    checkpoint_out : path
        Where the trained checkpoint is copied.
    work_dir : path
        Receives the MGF files, the config, Casanovo's checkpoints and logs.
    architecture : Architecture
        Model size (see :mod:`trm.casanovo.config`).
    max_spectra : int
        Training budget in spectra seen, counting repeats: the first ``max_spectra``
        training spectra when there are more, else whole passes (epochs) over them.
    batch_size : int
    n_validations : int
        Validation runs over training (the best checkpoint is kept).
    max_validation_spectra : int, optional
        Cap on the validation spectra exported (validation is not free on a CPU).
    config_overrides : sequence of mapping
        Further Casanovo keys (instrument settings, ``accelerator``...), applied before
        the architecture and the budget.
    executable, threads
        See :func:`trm.casanovo.runner.train`.

    Returns
    -------
    TrainingOutcome
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    base = build_config(*config_overrides)
    train_mgf, validation_mgf = work_dir / "train.mgf", work_dir / "validation.mgf"
    n_train, train_skipped = _export_shards(
        [Path(p) for p in train_shards],
        train_mgf,
        base["max_charge"],
        base["residues"],
        max_spectra,
    )
    n_validation, validation_skipped = _export_shards(
        [Path(p) for p in validation_shards],
        validation_mgf,
        base["max_charge"],
        base["residues"],
        max_validation_spectra,
    )
    if n_train == 0 or n_validation == 0:
        raise InputError(
            f"no spectrum Casanovo can train on ({n_train} training, {n_validation} "
            "validation): they need a peptide and a charge within max_charge"
        )
    schedule = training_overrides(n_train, max_spectra, batch_size, n_validations)
    config = build_config(
        TRAINING_PREPROCESSING, *config_overrides, architecture.overrides(), schedule
    )
    config_path = write_config(config, work_dir / "casanovo_train_config.yaml")
    resume_from = _resumable_checkpoint(
        work_dir,
        [config_path, train_mgf, validation_mgf],
        Path(executable or runner.DEFAULT_EXECUTABLE),
    )

    def attempt(resume: Path | None, append_log: bool = False) -> runner.CasanovoRun:
        return runner.train(
            [train_mgf],
            [validation_mgf],
            config_path,
            work_dir,
            root=_TRAIN_ROOT,
            executable=executable,
            threads=threads,
            resume_from=resume,
            append_log=append_log,
        )

    try:
        run = attempt(resume_from)
    except runner.CasanovoError as error:
        if resume_from is None:
            raise
        # A checkpoint cut short by the kill cannot be loaded: the run is not lost, only
        # the time it had spent.
        log.warning("resuming from %s failed (%s); training afresh", resume_from.name, error)
        resume_from = None
        run = attempt(None, append_log=True)
    checkpoint_out = Path(checkpoint_out)
    checkpoint_out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(checkpoint_out) as partial:
        shutil.copyfile(run.output, partial)
    # Finished: a rerun of this same training is a new run, not a resumption.
    (work_dir / _RESUME_KEY).unlink(missing_ok=True)
    steps_per_epoch = math.ceil(n_train / schedule["train_batch_size"])
    summary = {
        "casanovo_version": CASANOVO_VERSION,
        "n_train_spectra": n_train,
        "n_validation_spectra": n_validation,
        "n_train_skipped": train_skipped.height,
        "n_validation_skipped": validation_skipped.height,
        "skip_reasons": _reason_counts(pl.concat([train_skipped, validation_skipped])),
        "max_epochs": schedule["max_epochs"],
        "optimizer_steps": schedule["max_epochs"] * steps_per_epoch,
        "spectra_seen": schedule["max_epochs"] * n_train,
        "architecture": {
            key: config[key] for key in ("dim_model", "n_head", "dim_feedforward", "n_layers")
        },
        "seconds": round(run.seconds, 3),
        "cpu_seconds": round(run.cpu_seconds, 3),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
        "checkpoint": str(checkpoint_out),
        "selected_from": run.output.name,
        # Seconds above are this attempt's; an interrupted attempt's are in the work folder.
        "resumed_from": resume_from.name if resume_from is not None else None,
    }
    log.info(
        "trained Casanovo on %d spectra x %d epochs in %.0f s -> %s",
        n_train,
        schedule["max_epochs"],
        run.seconds,
        checkpoint_out,
    )
    return TrainingOutcome(checkpoint_out, summary)


_TRAIN_ROOT = "casanovo_train"
_RESUME_KEY = "resume_key.json"


def _resumable_checkpoint(work_dir: Path, inputs: Sequence[Path], executable: Path) -> Path | None:
    """The checkpoint an interrupted attempt of this same training left in ``work_dir``.

    An attempt records the SHA-256 of its config and MGF files, the Casanovo version and
    executable in ``resume_key.json`` before Casanovo starts, and removes it when it
    finishes. A later attempt with the same key resumes from the newest checkpoint
    (:func:`trm.casanovo.runner.latest_checkpoint`); with anything changed (other data,
    budget, architecture or Casanovo), or after a finished run, it starts afresh and the
    old checkpoints go.
    """
    key = {path.name: _sha256(path) for path in inputs}
    key.update(casanovo_version=CASANOVO_VERSION, executable=str(executable))
    key_path = work_dir / _RESUME_KEY
    previous = None
    if key_path.is_file():
        try:
            previous = json.loads(key_path.read_text(encoding="utf-8"))
        except ValueError:
            previous = None
    latest = runner.latest_checkpoint(work_dir, _TRAIN_ROOT) if previous == key else None
    with atomic_output(key_path) as partial:
        partial.write_text(json.dumps(key, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if latest is not None:
        log.info("resuming the interrupted Casanovo training from %s", latest)
    elif previous is not None:
        log.info("%s holds another training's state; starting afresh", work_dir)
    return latest


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _reason_counts(skipped: pl.DataFrame) -> dict[str, int]:
    # Peptide-specific reasons would make one key per peptide: count by their kind.
    kinds = skipped["reason"].str.replace(r"^peptide .*: ", "peptide: ")
    counts = kinds.value_counts()
    return dict(zip(counts["reason"].to_list(), counts["count"].to_list(), strict=True))
