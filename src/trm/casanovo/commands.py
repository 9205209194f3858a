"""Subcommands ``casanovo-sequence``, ``casanovo-train``, ``compare`` and ``compare-samples``.

Each takes explicit paths, so a Snakemake rule is one call and every step also runs by
hand. File reading and writing happen here; the work is in :mod:`trm.casanovo.pipeline`
and :mod:`trm.compare`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import yaml

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

    compare = subparsers.add_parser(
        "compare",
        help="compare the recursive model with Casanovo on one sample",
        description="Write comparison.tsv (one row per spectrum), a summary JSON and a "
        "precision-coverage plot.",
    )
    compare.add_argument("--trm-denovo", type=Path, required=True, help="denovo.tsv")
    compare.add_argument("--trm-unsequenced", type=Path, help="unsequenced.tsv")
    compare.add_argument(
        "--casanovo", type=Path, required=True, help="casanovo.tsv (casanovo-sequence --results)"
    )
    compare.add_argument(
        "--spectra",
        type=Path,
        help="spectrum table (.parquet): labels (column peptide) and the full set of spectra",
    )
    compare.add_argument(
        "--instrument",
        type=Path,
        help="instrument YAML: Casanovo answers that do not fit their precursor within its "
        "tolerance (and isotope errors) count apart, as Casanovo's own filter would drop them",
    )
    compare.add_argument(
        "--finetune-split",
        type=Path,
        help="trm finetune's split table: the spectra it trained or selected on count as "
        "unlabelled, for both tools",
    )
    compare.add_argument(
        "--trm-timing",
        type=Path,
        help="TRM timing: JSON (spectra_per_second, or seconds + n_spectra) or a Snakemake "
        "benchmark TSV",
    )
    compare.add_argument("--casanovo-timing", type=Path, help="casanovo-sequence --summary JSON")
    compare.add_argument("--table", type=Path, required=True, help="output: comparison.tsv")
    compare.add_argument("--summary-out", type=Path, required=True, help="output: comparison.json")
    compare.add_argument("--plot", type=Path, required=True, help="output: precision-coverage PNG")
    compare.set_defaults(func=run_compare)

    samples = subparsers.add_parser(
        "compare-samples",
        help="one table of every sample's comparison summary",
    )
    samples.add_argument(
        "--summaries", type=Path, nargs="+", required=True, help="comparison.json files"
    )
    samples.add_argument(
        "--names", nargs="+", help="sample names, in order (default: each file's folder name)"
    )
    samples.add_argument("--out", type=Path, required=True, help="output TSV")
    samples.set_defaults(func=run_compare_samples)


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


def _write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _write_tsv(table: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(path, separator="\t", null_value="")


def run_sequence(args: argparse.Namespace) -> None:
    """``trm casanovo-sequence``."""
    from trm.atomic import atomic_outputs
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
            _write_tsv(outcome.results, results)
            _write_json(outcome.summary, summary)
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
    _write_json(outcome.summary, args.summary)


def run_compare(args: argparse.Namespace) -> None:
    """``trm compare``."""
    from trm import compare

    denovo = pl.read_csv(args.trm_denovo, separator="\t", infer_schema_length=0)
    denovo = denovo.with_columns(pl.col("score").cast(pl.Float64()))
    unsequenced = (
        pl.read_csv(args.trm_unsequenced, separator="\t", infer_schema_length=0)
        if args.trm_unsequenced is not None
        else None
    )
    trm = compare.trm_results_table(denovo, unsequenced)
    casanovo = pl.read_csv(args.casanovo, separator="\t", schema_overrides={"score": pl.Float64})
    if args.instrument is not None:
        instrument = _instrument(args.instrument)
        casanovo = compare.mark_precursor_mismatches(
            casanovo, instrument["precursor_tolerance_ppm"], instrument["isotope_errors"]
        )
    labels = (
        pl.read_parquet(args.spectra, columns=["run", "spectrum_id", "peptide"])
        if args.spectra is not None
        else None
    )
    held_out = None
    if labels is not None and args.finetune_split is not None:
        from trm.io.labels import spectra_used_for_finetuning

        used = set()
        for run in labels.get_column("run").unique().drop_nulls().to_list():
            used |= {(run, s) for s in spectra_used_for_finetuning(args.finetune_split, run)}
        seen = pl.Series(
            [(r, s) in used for r, s in zip(labels["run"], labels["spectrum_id"], strict=True)]
        )
        n_labelled = int(labels["peptide"].is_not_null().sum())
        # Spectra the fine-tuned model learned from count as unlabelled for both tools.
        labels = labels.with_columns(
            pl.when(seen).then(None).otherwise(pl.col("peptide")).alias("peptide")
        )
        held_out = {
            "split_table": args.finetune_split.name,
            "labelled": n_labelled,
            "used_for_finetuning": n_labelled - int(labels["peptide"].is_not_null().sum()),
        }
    table = compare.comparison_table(trm, casanovo, labels)
    speeds = {
        "trm": compare.read_speed(args.trm_timing, int((trm["status"] == "sequenced").sum()))
        if args.trm_timing
        else None,
        "casanovo": compare.read_speed(args.casanovo_timing) if args.casanovo_timing else None,
    }
    summary, curves = compare.summarize(table, speeds)
    if held_out is not None:
        summary["held_out"] = held_out
    _write_tsv(table, args.table)
    _write_json(summary, args.summary_out)
    figure = compare.precision_coverage_figure(curves, summary)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=150)
    log.info(
        "compared %d spectra: agreement %s on %d sequenced by both",
        summary["n_spectra"],
        summary["agreement_rate"],
        summary["n_both_sequenced"],
    )


def run_compare_samples(args: argparse.Namespace) -> None:
    """``trm compare-samples``."""
    from trm.compare import summary_row

    names = args.names or [path.parent.name for path in args.summaries]
    if len(names) != len(args.summaries):
        raise InputError("give one name per summary file")
    rows = [
        summary_row(name, json.loads(path.read_text(encoding="utf-8")))
        for name, path in zip(names, args.summaries, strict=True)
    ]
    _write_tsv(pl.DataFrame(rows), args.out)
