"""``trm evaluate``: the recursive model's accuracy on a sample that has labels.

Reads ``denovo.tsv`` and ``unsequenced.tsv`` with the labelled spectrum table of the sample
(``trm labelled-spectra``) and writes ``metrics.json`` (amino-acid precision and recall,
peptide recall with I = L, the precision-coverage curve and its area, and how close the
calibrated scores are to the observed precision) and a precision-coverage plot. It gives
the numbers ``trm denovo --labels`` gives, from finished result files::

    trm evaluate --denovo results/S/denovo.tsv --unsequenced results/S/unsequenced.tsv \\
        --labels results/S/labels.parquet --run S --metrics results/S/metrics.json \\
        --plot results/S/metrics.png
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import polars as pl

from trm.errors import InputError

log = logging.getLogger(__name__)


def read_denovo_results(denovo: Path) -> pl.DataFrame:
    """``spectrum_id``, ``raw_score``, ``score``, ``_tokens`` of a ``denovo.tsv``."""
    from trm.chem import parse_peptidoform

    table = pl.read_csv(denovo, separator="\t", infer_schema_length=0)
    missing = {"spectrum_id", "peptidoform", "score", "meta:raw_score"} - set(table.columns)
    if missing:
        raise InputError(f"{denovo}: not a trm denovo.tsv (lacks {sorted(missing)})")
    tokens = {p: parse_peptidoform(p)[0] for p in table["peptidoform"].unique()}
    return table.select(
        pl.col("spectrum_id"),
        pl.col("meta:raw_score").cast(pl.Float64()).alias("raw_score"),
        pl.col("score").cast(pl.Float64()),
        pl.Series("_tokens", [tokens[p] for p in table["peptidoform"]]),
    )


def _write_without_labels(args: argparse.Namespace) -> None:
    """metrics.json and plot of a run whose labels table is empty (a search that labelled
    nothing): every metric null, and why."""
    import numpy as np

    from trm.atomic import atomic_outputs, write_json
    from trm.denovo.evaluation import save_precision_coverage_plot

    reason = (
        f"{args.labels.name} holds no labelled spectrum of run {args.run!r} (a search that "
        "identified nothing at its FDR: see its search.json)"
    )
    log.warning("no metrics: %s", reason)
    metrics = {
        "n_labelled": 0,
        "no_labels": reason,
        **dict.fromkeys(
            ("aa_precision", "aa_recall", "peptide_recall", "peptide_precision", "pc_auc")
        ),
    }
    image_format = args.plot.suffix.lstrip(".") or "png"
    with atomic_outputs([args.metrics, args.plot]) as (metrics_path, plot_path):
        write_json(metrics, metrics_path)
        save_precision_coverage_plot(np.empty(0), np.empty(0), 0.0, plot_path, image_format)


def run_evaluate(args: argparse.Namespace) -> None:
    """Handler of ``trm evaluate``."""
    from trm.atomic import atomic_outputs, write_json
    from trm.denovo.evaluation import labelled_metrics, read_labels, save_precision_coverage_plot

    sequenced = read_denovo_results(args.denovo)
    unsequenced = (
        pl.read_csv(args.unsequenced, separator="\t", infer_schema_length=0)
        if args.unsequenced is not None
        else pl.DataFrame(schema={"spectrum_id": pl.String()})
    )
    labels = read_labels(args.labels, args.run)
    if not labels.height and args.empty_labels_ok:
        _write_without_labels(args)
        return
    if not labels.height:
        raise InputError(f"{args.labels}: no labelled spectrum of run {args.run!r}")
    held_out = None
    if args.finetune_split is not None:
        from trm.io.labels import spectra_used_for_finetuning

        used = spectra_used_for_finetuning(args.finetune_split, args.run)
        n_labelled = labels.height
        labels = labels.filter(~pl.col("spectrum_id").is_in(list(used)))
        held_out = {
            "split_table": args.finetune_split.name,
            "labelled": n_labelled,
            "used_for_finetuning": n_labelled - labels.height,
            "evaluated": labels.height,
        }
        log.info("%d of %d labelled spectra were used for fine-tuning and are left out",
                 n_labelled - labels.height, n_labelled)  # fmt: skip
        if not labels.height:
            raise InputError(
                f"{args.finetune_split}: every labelled spectrum of run {args.run!r} was used "
                "for fine-tuning; nothing is left to evaluate (give the run a test share: "
                "finetune: split)"
            )
    known = set(sequenced["spectrum_id"]) | set(unsequenced["spectrum_id"])
    strangers = [s for s in labels["spectrum_id"].to_list() if s not in known]
    if strangers:
        raise InputError(
            f"{args.labels}: {len(strangers)} labelled spectra are neither in {args.denovo} "
            f"nor in its unsequenced list (first: spectrum {strangers[0]!r}); were labels and "
            "results made from the same run?"
        )
    metrics, coverage, precision = labelled_metrics(sequenced, unsequenced, labels)
    scored = sequenced.join(labels, on="spectrum_id", how="semi")
    metrics["mean_calibrated_score"] = float(scored["score"].mean()) if scored.height else None
    if held_out is not None:
        metrics["held_out"] = held_out
    image_format = args.plot.suffix.lstrip(".") or "png"
    with atomic_outputs([args.metrics, args.plot]) as (metrics_path, plot_path):
        write_json(metrics, metrics_path)
        save_precision_coverage_plot(
            coverage, precision, metrics["pc_auc"], plot_path, image_format
        )
    log.info(
        "%d labelled spectra: peptide recall %.3f, AA precision %.3f, PC AUC %.3f",
        metrics["n_labelled"],
        metrics["peptide_recall"],
        metrics["aa_precision"],
        metrics["pc_auc"],
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
    parser.add_argument("--run", required=True, help="the sample's run name")
    parser.add_argument(
        "--finetune-split",
        type=Path,
        help="trm finetune's split table: spectra of the run it trained or selected on are "
        "left out (metrics.json says how many)",
    )
    parser.add_argument(
        "--empty-labels-ok",
        action="store_true",
        help="a labels table without any spectrum of the run is no error (labels from a "
        "search that identified nothing): metrics.json then says so, with null metrics",
    )
    parser.add_argument("--metrics", type=Path, required=True, help="output: metrics.json")
    parser.add_argument("--plot", type=Path, required=True, help="output: precision-coverage PNG")
    parser.set_defaults(func=run_evaluate)
