"""``trm evaluate``: the recursive model's accuracy on a sample that has labels.

Reads ``denovo.tsv`` and ``unsequenced.tsv`` with the labelled spectrum table of the sample
(``trm labelled-spectra``) and writes ``metrics.json`` (amino-acid precision and recall,
peptide recall with I = L, the precision-coverage curve and its area, and how well the
calibrated scores match the observed precision) and a precision-coverage plot::

    trm evaluate --denovo results/S/denovo.tsv --unsequenced results/S/unsequenced.tsv \\
        --labels results/labels/S.parquet --metrics results/S/metrics.json \\
        --plot results/S/metrics.png
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import polars as pl

from trm.io.results import atomic_output

log = logging.getLogger(__name__)

#: Points of the precision-coverage curve kept in metrics.json (evenly spaced ranks).
CURVE_POINTS = 101


def read_trm_results(denovo: Path, unsequenced: Path | None) -> pl.DataFrame:
    """The per-spectrum table of ``denovo.tsv`` (+ ``unsequenced.tsv``)."""
    from trm.compare import trm_results_table

    table = pl.read_csv(denovo, separator="\t", infer_schema_length=0)
    table = table.with_columns(pl.col("score").cast(pl.Float64()))
    skipped = (
        pl.read_csv(unsequenced, separator="\t", infer_schema_length=0)
        if unsequenced is not None
        else None
    )
    return trm_results_table(table, skipped)


def run_evaluate(args: argparse.Namespace) -> None:
    """Handler of ``trm evaluate``."""
    from trm.compare import evaluate_against_labels, precision_coverage_figure

    results = read_trm_results(args.denovo, args.unsequenced)
    labels = pl.read_parquet(args.labels, columns=["run", "spectrum_id", "peptide"])
    if not labels.height:
        raise ValueError(f"{args.labels}: no labelled spectrum to evaluate against")
    summary, _, (coverage, precision) = evaluate_against_labels(results, labels)
    unmatched = labels.join(
        results.select("run", "spectrum_id"), on=["run", "spectrum_id"], how="anti"
    )
    if unmatched.height:
        raise ValueError(
            f"{args.labels}: {unmatched.height} labelled spectra are not in {args.denovo} "
            f"or its unsequenced list, e.g. spectrum {unmatched['spectrum_id'][0]!r} of run "
            f"{unmatched['run'][0]!r}; were labels and results made from the same run?"
        )
    step = max(1, len(coverage) // (CURVE_POINTS - 1))
    summary["precision_coverage"] = {
        "coverage": [float(c) for c in coverage[::step]],
        "precision": [float(p) for p in precision[::step]],
    }
    with atomic_output(args.metrics) as temporary:
        temporary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    figure = precision_coverage_figure({"trm": (coverage, precision)}, {"trm": summary})
    with atomic_output(args.plot) as temporary:
        figure.savefig(temporary, dpi=150, format=args.plot.suffix.lstrip(".") or "png")
    log.info(
        "%d labelled spectra: peptide recall %.3f, AA precision %.3f, AUC %.3f",
        summary["n_labelled"],
        summary["peptide_recall"],
        summary["aa_precision"],
        summary["pc_auc"],
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy of the recursive model on a labelled sample",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--denovo", type=Path, required=True, help="denovo.tsv")
    parser.add_argument("--unsequenced", type=Path, help="unsequenced.tsv")
    parser.add_argument(
        "--labels", type=Path, required=True, help="labelled spectra (.parquet, column peptide)"
    )
    parser.add_argument("--metrics", type=Path, required=True, help="output: metrics.json")
    parser.add_argument("--plot", type=Path, required=True, help="output: precision-coverage PNG")
    parser.set_defaults(func=run_evaluate)
