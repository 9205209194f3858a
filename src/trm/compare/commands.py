"""``trm compare``, ``trm compare-samples`` and ``trm compare-database``: the recursive
model against Casanovo, and against the database search of the same run.

File reading and writing happen here; the comparisons themselves are in
:mod:`trm.compare.comparison` and :mod:`trm.compare.database`. Each command's outputs
appear together or not at all.
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

    database = subparsers.add_parser(
        "compare-database",
        help="the recursive model against the database search of one sample",
        description="Write denovo_vs_database.tsv (one row per spectrum either answers: "
        "agree, differ, denovo_only, database_only), a summary JSON, the de novo-only answers "
        "scoring at least --min-score (looked up in the FASTA) and a plot.",
    )
    database.add_argument("--denovo", type=Path, required=True, help="denovo.tsv")
    database.add_argument("--search", type=Path, required=True, help="search.tsv (trm search)")
    database.add_argument("--fasta", type=Path, required=True, help="the searched FASTA")
    database.add_argument(
        "--fdr",
        type=float,
        default=0.01,
        help="q-value of the search's PSMs kept (default: %(default)s)",
    )
    database.add_argument(
        "--min-score",
        type=float,
        default=0.5,
        help="calibrated score from which a de novo-only answer is a candidate "
        "(default: %(default)s)",
    )
    database.add_argument(
        "--finetune-split",
        type=Path,
        help="trm finetune's split table: spectra the model trained or selected on are left out",
    )
    database.add_argument("--run", required=True, help="the sample's run name")
    database.add_argument("--table", type=Path, required=True, help="output: per-spectrum TSV")
    database.add_argument("--summary-out", type=Path, required=True, help="output: JSON")
    database.add_argument(
        "--candidates", type=Path, required=True, help="output: high-scoring de novo-only TSV"
    )
    database.add_argument("--plot", type=Path, required=True, help="output: PNG")
    database.set_defaults(func=run_compare_database)


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


def run_compare_database(args: argparse.Namespace) -> None:
    """``trm compare-database``."""
    from trm.compare import database as against
    from trm.io.fasta import read_fasta
    from trm.io.labels import spectra_used_for_finetuning

    denovo = pl.read_csv(args.denovo, separator="\t", infer_schema_length=0)
    missing = {"spectrum_id", "peptidoform", "score", "meta:raw_score"} - set(denovo.columns)
    if missing:
        raise InputError(f"{args.denovo}: not a trm denovo.tsv (lacks {sorted(missing)})")
    denovo = denovo.select(
        "spectrum_id",
        pl.col("peptidoform").str.replace(r"/\d+$", "").alias("peptide"),
        pl.col("score").cast(pl.Float64),
        pl.col("meta:raw_score").cast(pl.Float64).alias("raw_score"),
    )
    try:
        search = against.read_search_psms(
            pl.read_csv(args.search, separator="\t", infer_schema_length=0), args.fdr
        )
    except (ValueError, pl.exceptions.PolarsError) as error:
        raise InputError(f"{args.search}: {error}") from error
    used = (
        spectra_used_for_finetuning(args.finetune_split, args.run)
        if args.finetune_split is not None
        else set()
    )
    table = against.database_comparison(denovo, search, read_fasta(args.fasta), used)
    summary, candidates = against.summarize_database_comparison(table, args.min_score, args.fdr)
    summary = {"run": args.run, "fasta": args.fasta.name, **summary}
    if args.finetune_split is not None:
        summary["left_out_finetuning"] = len(used)
    figure = against.database_comparison_figure(table, summary)
    outputs = [args.table, args.summary_out, args.candidates, args.plot]
    with atomic_outputs(outputs) as (table_path, summary_path, candidates_path, plot_path):
        write_tsv(table, table_path)
        write_json(summary, summary_path)
        write_tsv(candidates, candidates_path)
        figure.savefig(plot_path, dpi=150, format=args.plot.suffix.lstrip(".").lower() or "png")
    log.info(
        "run %s: %d spectra both answer, %s agree; %d de novo-only answers score >= %g "
        "(%d absent from the FASTA)",
        args.run, summary["n_both"], summary["counts"]["agree"],
        summary["candidates"]["n"], args.min_score, summary["candidates"]["absent_from_fasta"],
    )  # fmt: skip
