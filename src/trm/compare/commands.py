"""``trm compare`` and ``trm compare-samples``: the recursive model against Casanovo.

File reading and writing happen here; the comparison itself is in
:mod:`trm.compare.comparison`. Each command's outputs appear together or not at all.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import polars as pl

from trm.atomic import atomic_output, atomic_outputs, write_json, write_tsv
from trm.compare import comparison as compare
from trm.errors import InputError
from trm.instrument import load_instrument
from trm.metrics import precision_coverage_figure

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` and ``compare-samples`` subcommands."""
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


def run_compare(args: argparse.Namespace) -> None:
    """``trm compare``."""
    from trm.compare import comparison as compare

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
        instrument = load_instrument(args.instrument)
        casanovo = compare.mark_precursor_mismatches(
            casanovo, instrument.precursor_tolerance_ppm, instrument.isotope_errors
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
    figure = precision_coverage_figure(curves, summary)
    with atomic_outputs([args.table, args.summary_out, args.plot]) as (
        table_path,
        summary_path,
        plot,
    ):
        write_tsv(table, table_path)
        write_json(summary, summary_path)
        figure.savefig(plot, dpi=150, format=args.plot.suffix.lstrip(".").lower() or "png")
    log.info(
        "compared %d spectra: agreement %s on %d sequenced by both",
        summary["n_spectra"],
        summary["agreement_rate"],
        summary["n_both_sequenced"],
    )


def run_compare_samples(args: argparse.Namespace) -> None:
    """``trm compare-samples``."""
    names = args.names or [path.parent.name for path in args.summaries]
    if len(names) != len(args.summaries):
        raise InputError("give one name per summary file")
    rows = [
        compare.summary_row(name, json.loads(path.read_text(encoding="utf-8")))
        for name, path in zip(names, args.summaries, strict=True)
    ]
    with atomic_output(args.out) as out:
        write_tsv(pl.DataFrame(rows), out)
