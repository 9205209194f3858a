"""Metrics of one sample's de novo results against known peptides (``--labels``).

Only spectra with a label count. Matching is the field's mass-based rule of
:mod:`trm.metrics` (I = L); a labelled spectrum that was not sequenced counts as a
prediction of nothing (it lowers recall, not precision). The precision-coverage curve
(:func:`trm.metrics.precision_coverage`) takes the sequenced labelled spectra from the
most confident down; they are ordered by the raw score, which orders them as the calibrated
score does (the calibration is non-decreasing) but without the calibration's ties.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from trm.chem import UnsupportedPeptideError, parse_peptidoform
from trm.io.labels import read_labels
from trm.metrics import (
    match_peptides,
    precision_coverage,
    precision_coverage_figure,
    sequencing_metrics,
)

log = logging.getLogger(__name__)

__all__ = ["labelled_metrics", "read_labels", "save_precision_coverage_plot"]

#: Most points of the precision-coverage curve written to metrics.json.
MAX_CURVE_POINTS = 201


def _curve_points(coverage: np.ndarray, precision: np.ndarray) -> dict[str, list[float]]:
    if coverage.size > MAX_CURVE_POINTS:
        keep = np.unique(np.round(np.linspace(0, coverage.size - 1, MAX_CURVE_POINTS)).astype(int))
        coverage, precision = coverage[keep], precision[keep]
    return {"coverage": coverage.tolist(), "precision": precision.tolist()}


def labelled_metrics(
    sequenced: pl.DataFrame,
    unsequenced: pl.DataFrame,
    labels: pl.DataFrame,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Amino-acid and peptide metrics and the precision-coverage curve.

    Parameters
    ----------
    sequenced : polars.DataFrame
        ``spectrum_id``, ``raw_score``, ``_tokens`` (the predicted tokens).
    unsequenced : polars.DataFrame
        ``spectrum_id``.
    labels : polars.DataFrame
        From :func:`read_labels`.

    Returns
    -------
    metrics : dict
        ``n_labelled`` (input spectra with a usable label), ``n_labelled_sequenced``,
        ``n_labels_unusable`` (labels not parseable), ``aa_precision``, ``aa_recall``,
        ``peptide_recall``, ``peptide_precision``, ``pc_auc``, ``curve``.
    coverage, precision : numpy.ndarray
        The full curve.
    """
    label_of = dict(zip(labels["spectrum_id"].to_list(), labels["label"].to_list(), strict=True))
    n_unusable = 0
    truth_cache: dict[str, list[str] | None] = {}

    def truth_tokens(label: str) -> list[str] | None:
        if label not in truth_cache:
            try:
                tokens, _ = parse_peptidoform(label)
            except UnsupportedPeptideError:
                tokens = None
            truth_cache[label] = tokens
        return truth_cache[label]

    predicted: list[list[str]] = []
    truth: list[list[str]] = []
    correct: list[bool] = []
    scores: list[float] = []
    for spectrum_id, tokens, raw in sequenced.select(
        "spectrum_id", "_tokens", "raw_score"
    ).iter_rows():
        label = label_of.get(spectrum_id)
        if label is None:
            continue
        true = truth_tokens(label)
        if true is None:
            n_unusable += 1
            continue
        predicted.append(tokens)
        truth.append(true)
        _, match = match_peptides(tokens, true)
        correct.append(match)
        scores.append(raw)
    n_sequenced = len(predicted)
    for spectrum_id in unsequenced.get_column("spectrum_id").to_list():
        label = label_of.get(spectrum_id)
        if label is None:
            continue
        true = truth_tokens(label)
        if true is None:
            n_unusable += 1
            continue
        predicted.append([])
        truth.append(true)
    metrics = sequencing_metrics(predicted, truth)
    coverage, precision, auc = precision_coverage(correct, scores, len(truth))
    result = {
        "n_labelled": len(truth),
        "n_labelled_sequenced": n_sequenced,
        "n_labels_unusable": n_unusable,
        "aa_precision": metrics.aa_precision,
        "aa_recall": metrics.aa_recall,
        "peptide_recall": metrics.peptide_recall,
        "peptide_precision": metrics.peptide_precision,
        "pc_auc": auc,
        "curve": _curve_points(coverage, precision),
    }
    return result, coverage, precision


def save_precision_coverage_plot(
    coverage: np.ndarray, precision: np.ndarray, auc: float, path: str | Path, image_format: str
) -> None:
    """Precision against coverage, as an image (``png``, ``pdf``, ``svg``)."""
    figure = precision_coverage_figure({"trm": (coverage, precision)}, {"trm": {"pc_auc": auc}})
    figure.savefig(path, format=image_format, dpi=150)
