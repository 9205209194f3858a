"""Subcommands ``casanovo-sequence`` and ``casanovo-train``.

Each takes explicit paths, so a Snakemake rule is one call and every step also runs by
hand. File reading and writing happen here; the work is in :mod:`trm.casanovo.pipeline`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from trm.atomic import atomic_output, atomic_outputs, write_json, write_tsv
from trm.casanovo.config import Architecture, instrument_overrides
from trm.casanovo.runner import DEFAULT_EXECUTABLE
from trm.errors import InputError

log = logging.getLogger(__name__)

_PEAK_SUFFIXES = {".mzml", ".mzxml", ".mgf"}


def parse_config_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with a YAML value (``n_beams=5``, ``accelerator=cpu``)."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def _add_casanovo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executable",
        type=Path,
        default=DEFAULT_EXECUTABLE,
        help=f"Casanovo executable of its own environment (default: {DEFAULT_EXECUTABLE})",
    )
    parser.add_argument(
        "--instrument",
        type=Path,
        help="instrument YAML (config/instruments/*.yaml): precursor tolerance, isotope "
        "errors, charges (max_charge), missing-charge policy",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        type=parse_config_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a Casanovo config key (YAML value); repeatable, applied last",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for Casanovo")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the ``trm`` parser."""
    sequence = subparsers.add_parser(
        "casanovo-sequence",
        help="de novo sequence spectra with Casanovo (its own environment)",
        description="Run `casanovo sequence` on the spectra of one sample and write its "
        "mzTab plus one row per input spectrum (status sequenced / no_psm / skipped).",
    )
    sequence.add_argument(
        "--spectra",
        type=Path,
        required=True,
        help="spectrum table (.parquet) or peak file (.mzML, .mzXML, .mgf)",
    )
    sequence.add_argument("--run", help="run name for a peak file (default: its stem)")
    sequence.add_argument(
        "--checkpoint", type=Path, required=True, help="existing Casanovo .ckpt (never fetched)"
    )
    sequence.add_argument("--mztab", type=Path, required=True, help="output: Casanovo's mzTab")
    sequence.add_argument(
        "--results", type=Path, required=True, help="output: per-spectrum TSV (casanovo.tsv)"
    )
    sequence.add_argument(
        "--summary", type=Path, required=True, help="output: JSON with counts and spectra/s"
    )
    sequence.add_argument(
        "--work-dir",
        type=Path,
        help="Casanovo's MGF, config and logs (default: <mztab>.work/); removed when the "
        "run ends, whether it succeeded or not, unless --keep-work-dir",
    )
    sequence.add_argument(
        "--keep-work-dir", action="store_true", help="keep the work folder (for debugging)"
    )
    _add_casanovo_options(sequence)
    sequence.set_defaults(func=run_sequence)

    train = subparsers.add_parser(
        "casanovo-train",
        help="train a Casanovo baseline on the synthetic training data",
        description="Train Casanovo from random weights on DATA_DIR/train/*.parquet "
        "(validation: DATA_DIR/validation/*.parquet) with a given size and budget.",
    )
    train.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="holds train/*.parquet and validation/*.parquet (spectrum tables with peptides)",
    )
    train.add_argument("--checkpoint", type=Path, required=True, help="output: trained .ckpt")
    train.add_argument("--summary", type=Path, required=True, help="output: training JSON")
    train.add_argument(
        "--work-dir", type=Path, help="MGF files, config, logs (default: <checkpoint>.work/)"
    )
    train.add_argument(
        "--max-spectra",
        type=int,
        required=True,
        help="budget: training spectra seen, repeats counted (match the TRM run)",
    )
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--validations", type=int, default=5, help="validation runs in training")
    train.add_argument("--max-validation-spectra", type=int, default=10_000)
    for name, default in (("dim-model", 512), ("n-head", 8), ("dim-feedforward", 1024)):
        train.add_argument(f"--{name}", type=int, default=default)
    train.add_argument("--n-layers", type=int, default=9, help="encoder and decoder layers each")
    _add_casanovo_options(train)
    train.set_defaults(func=run_train)


def _instrument(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    from trm.instrument import load_instrument

    return load_instrument(path).to_dict()


def _overrides(args: argparse.Namespace, instrument: dict[str, Any]) -> list[dict[str, Any]]:
    overrides = [instrument_overrides(instrument)] if instrument else []
    overrides.append(dict(args.settings))
    return overrides


def _read_spectra(path: Path, run: str | None) -> pl.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pl.read_parquet(path)
    if path.suffix.lower() in _PEAK_SUFFIXES:
        from trm.io.spectra import read_spectra

        return read_spectra(path, run=run or path.stem)
    raise InputError(f"{path}: expected a .parquet spectrum table or an mzML/mzXML/MGF file")


def run_sequence(args: argparse.Namespace) -> None:
    """``trm casanovo-sequence``."""
    from trm.casanovo.pipeline import sequence_spectra
    from trm.io.spectra import apply_missing_charge_policy

    instrument = _instrument(args.instrument)
    table = _read_spectra(args.spectra, args.run)
    skipped_before = None
    if instrument:
        # Casanovo gets the spectra the recursive model gets: under `try`, one copy per
        # charge (the best-scoring PSM is kept), under `skip`, none.
        table, skipped_before = apply_missing_charge_policy(
            table, instrument.get("missing_charge", "try"), instrument["charges"]
        )
    work_dir = args.work_dir or args.mztab.with_name(args.mztab.name + ".work")
    try:
        outcome = sequence_spectra(
            table,
            args.checkpoint,
            work_dir,
            config_overrides=_overrides(args, instrument),
            skipped_before=skipped_before,
            executable=args.executable,
            threads=args.threads,
        )
        # The three outputs appear together or not at all.
        with atomic_outputs([args.mztab, args.results, args.summary]) as (mztab, results, summary):
            if outcome.mztab is not None:
                shutil.copyfile(outcome.mztab, mztab)
            else:
                mztab.write_text("", encoding="utf-8")
            write_tsv(outcome.results, results)
            write_json(outcome.summary, summary)
    finally:
        if not args.keep_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


def run_train(args: argparse.Namespace) -> None:
    """``trm casanovo-train``."""
    from trm.casanovo.pipeline import train_baseline

    train_shards = sorted((args.data_dir / "train").glob("*.parquet"))
    validation_shards = sorted((args.data_dir / "validation").glob("*.parquet"))
    if not train_shards or not validation_shards:
        raise FileNotFoundError(f"{args.data_dir}: needs train/*.parquet and validation/*.parquet")
    architecture = Architecture(
        dim_model=args.dim_model,
        n_head=args.n_head,
        dim_feedforward=args.dim_feedforward,
        n_layers=args.n_layers,
    )
    outcome = train_baseline(
        train_shards,
        validation_shards,
        args.checkpoint,
        args.work_dir or args.checkpoint.with_name(args.checkpoint.name + ".work"),
        architecture,
        max_spectra=args.max_spectra,
        batch_size=args.batch_size,
        n_validations=args.validations,
        max_validation_spectra=args.max_validation_spectra,
        config_overrides=_overrides(args, _instrument(args.instrument)),
        executable=args.executable,
        threads=args.threads,
    )
    with atomic_output(args.summary) as summary:
        write_json(outcome.summary, summary)
