"""``trm plot-training``: the learning curve of a training run from its metrics CSV.

Left: token accuracy of every supervision step on the clean validation split, so one
sees whether later refinement steps beat the first; the last step on the noisy split is
dashed. Right: amino-acid precision and peptide recall on both splits (and, for a run
trained to rank the spectrum graph's candidates, the peptide recall of its choice among
them, the hybrid decoder's choice on the graph's candidates alone).
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import polars as pl

from trm.atomic import atomic_output
from trm.errors import InputError

log = logging.getLogger(__name__)

_STEP_COLUMN = re.compile(r"token_accuracy_step(\d+)$")


def training_figure(metrics: pl.DataFrame):  # noqa: ANN201 - matplotlib is imported lazily
    """A two-panel matplotlib figure of a metrics table (Agg backend).

    Parameters
    ----------
    metrics : polars.DataFrame
        Rows of ``metrics.csv`` written by ``trm pretrain`` (``step``, ``split``,
        ``token_accuracy_step<k>``, ``aa_precision``, ``peptide_recall``).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    steps_axes, accuracy_axes = figure.subplots(1, 2)
    step_columns = sorted(
        (int(m.group(1)), c) for c in metrics.columns if (m := _STEP_COLUMN.match(c))
    )
    splits = metrics["split"].unique(maintain_order=True).to_list() if metrics.height else []
    clean = metrics.filter(pl.col("split") == "validation")
    for index, column in step_columns:
        steps_axes.plot(clean["step"], clean[column], label=f"refinement step {index + 1}")
    noisy = metrics.filter(pl.col("split") == "validation_noisy")
    if noisy.height and step_columns:
        steps_axes.plot(
            noisy["step"], noisy[step_columns[-1][1]], "k--", label="last step, noisy spectra"
        )
    steps_axes.set_xlabel("training step")
    steps_axes.set_ylabel("token accuracy (clean validation)")
    steps_axes.set_ylim(0, 1)
    for split in splits:
        rows = metrics.filter(pl.col("split") == split)
        for column, style, label in (
            ("aa_precision", "-", "aa precision"),
            ("peptide_recall", ":", "peptide recall"),
            # a run trained to rank: the teacher-forced choice among the graph's candidates
            ("hybrid_peptide_recall", "-.", "peptide recall, choice among graph candidates"),
        ):
            if column in rows.columns:
                present = rows.filter(pl.col(column).is_not_null())
                if present.height:
                    accuracy_axes.plot(
                        present["step"], present[column], style, marker=".",
                        label=f"{label}, {split}",
                    )  # fmt: skip
    accuracy_axes.set_xlabel("training step")
    accuracy_axes.set_ylabel("share")
    accuracy_axes.set_ylim(0, 1)
    for axes in (steps_axes, accuracy_axes):
        if axes.lines:
            axes.legend(fontsize="small")
        else:
            axes.text(0.5, 0.5, "no evaluation yet", ha="center", va="center")
    return figure


def run_plot_training(args: argparse.Namespace) -> None:
    """Handler of ``trm plot-training``."""
    try:
        metrics = pl.read_csv(args.metrics, infer_schema_length=None)
    except pl.exceptions.NoDataError:
        metrics = pl.DataFrame(schema={"step": pl.Int64(), "split": pl.String()})
    missing = {"step", "split"} - set(metrics.columns)
    if missing:
        raise InputError(f"{args.metrics}: not a training metrics CSV (lacks {sorted(missing)})")
    figure = training_figure(metrics)
    with atomic_output(args.plot) as temporary:
        figure.savefig(temporary, dpi=150, format=args.plot.suffix.lstrip(".") or "png")
    log.info("learning curve of %d evaluations -> %s", metrics.height, args.plot)


def register_plot(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plot-training`` subcommand."""
    parser = subparsers.add_parser(
        "plot-training",
        help="plot a training run's learning curve",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("metrics", type=Path, help="metrics.csv of trm pretrain")
    parser.add_argument("plot", type=Path, help="output image (.png, .svg, .pdf)")
    parser.set_defaults(func=run_plot_training)
