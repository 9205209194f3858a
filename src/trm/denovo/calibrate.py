"""Calibrating the raw peptide score on a labelled split (``trm calibrate``).

The validation spectra go through exactly the inference and decoding of ``trm denovo``
(:class:`trm.denovo.inference.Sequencer`). A decoded peptide is correct when it matches
the label by the field's mass-based rule (:func:`trm.metrics.match_residues`: every
residue matches, same length, I = L). An isotonic map from raw score to the fraction of
correct peptides (:class:`trm.calibration.IsotonicCalibration`) is fitted on the spectra
that got a peptide, and stored with the model together with the inference settings.

Which raw score: every candidate of :data:`~trm.denovo.settings.RAW_SCORE_KINDS` is
measured on the split (area under the ROC curve of correct against wrong peptides, which
is what calibration cannot change, and the expected calibration error before and after an
isotonic fit, the latter cross-validated); ``auto`` keeps ``peptide`` unless another kind
separates correct from wrong peptides clearly better (ROC AUC higher by
:data:`AUTO_MARGIN`). On a partly trained tiny model the peptide probability ranked at
least as well as the halting probability everywhere (the halting probability at an early
exit is at least the threshold for nearly every spectrum, so it barely ranks them), and
their geometric mean within about 0.015 of it either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from trm.calibration import IsotonicCalibration
from trm.chem import Vocabulary
from trm.compare import precision_coverage
from trm.denovo.inference import Predictions, Sequencer, raw_scores, steps_histogram
from trm.denovo.settings import RAW_SCORE_KINDS
from trm.metrics import match_residues
from trm.train.data import SpectrumDataset

log = logging.getLogger(__name__)

#: Bins of the reliability table and of the expected calibration error.
N_BINS = 10

#: ROC AUC by which ``auto`` needs another raw score to beat ``peptide``.
AUTO_MARGIN = 0.01


def peptide_correct(
    predictions: Predictions, truth: np.ndarray, vocabulary: Vocabulary
) -> np.ndarray:
    """Whether each decoded peptide matches its label (False where none was decoded).

    Parameters
    ----------
    predictions : Predictions
    truth : numpy.ndarray of shape (n, max_length)
        Label token ids, end class (0) after the peptide.
    vocabulary : Vocabulary

    Returns
    -------
    numpy.ndarray of shape (n,), bool
    """
    correct = np.zeros(len(predictions.decoded), dtype=bool)
    for row, decoded in enumerate(predictions.decoded):
        if decoded is None:
            continue
        true_ids = truth[row][truth[row] != vocabulary.pad_id]
        _, correct[row] = match_residues(
            vocabulary.masses[decoded.token_ids].tolist(), vocabulary.masses[true_ids].tolist()
        )
    return correct


def reliability_table(
    probabilities: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS
) -> list[dict[str, Any]]:
    """Predicted probability against observed fraction correct, in equal-width bins.

    Returns
    -------
    list of dict
        Per non-empty bin: ``low``, ``high``, ``n``, ``mean_probability``,
        ``fraction_correct``.
    """
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    correct = np.asarray(correct, dtype=np.float64)
    bins = np.minimum((probabilities * n_bins).astype(np.int64), n_bins - 1)
    table = []
    for index in range(n_bins):
        inside = bins == index
        if not inside.any():
            continue
        table.append(
            {
                "low": index / n_bins,
                "high": (index + 1) / n_bins,
                "n": int(inside.sum()),
                "mean_probability": float(probabilities[inside].mean()),
                "fraction_correct": float(correct[inside].mean()),
            }
        )
    return table


def expected_calibration_error(
    probabilities: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS
) -> float:
    """Count-weighted mean |mean probability - fraction correct| over equal-width bins."""
    table = reliability_table(probabilities, correct, n_bins)
    total = sum(row["n"] for row in table)
    if not total:
        return float("nan")
    return float(
        sum(row["n"] * abs(row["mean_probability"] - row["fraction_correct"]) for row in table)
        / total
    )


def roc_auc(scores: np.ndarray, correct: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when one class is absent."""
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    n_right, n_wrong = int(correct.sum()), int((~correct).sum())
    if not n_right or not n_wrong:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Mean rank of each group of tied scores (ranks from 1).
    group_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = group_rank[inverse]
    return float((ranks[correct].sum() - n_right * (n_right + 1) / 2) / (n_right * n_wrong))


def cross_validated_probabilities(
    raw: np.ndarray, correct: np.ndarray, seed: int, folds: int = 2
) -> np.ndarray:
    """Calibrated probability of each peptide from a map fitted on the other folds.

    An honest estimate of how well calibration generalises; with fewer peptides than
    ``2 * folds`` the in-sample fit is used.
    """
    if len(raw) < 2 * folds:
        return IsotonicCalibration.fit(raw, correct)(raw)
    fold = np.random.default_rng(seed).permutation(len(raw)) % folds
    out = np.empty(len(raw), dtype=np.float64)
    for index in range(folds):
        held_out = fold == index
        out[held_out] = IsotonicCalibration.fit(raw[~held_out], correct[~held_out])(raw[held_out])
    return out


def score_candidates(
    predictions: Predictions, correct: np.ndarray, seed: int
) -> dict[str, dict[str, float]]:
    """How each raw score kind ranks and calibrates on the sequenced spectra.

    Returns
    -------
    dict
        Kind -> ``roc_auc``, ``pc_auc`` (precision-coverage over the sequenced spectra),
        ``ece_raw`` and ``ece_calibrated_cv``.
    """
    out: dict[str, dict[str, float]] = {}
    for kind in RAW_SCORE_KINDS:
        scores = raw_scores(kind, predictions)
        sequenced = ~np.isnan(scores)
        raw, right = scores[sequenced], correct[sequenced]
        if not raw.size:
            continue
        _, _, pc_auc = precision_coverage(right.tolist(), raw.tolist(), len(scores))
        out[kind] = {
            "roc_auc": roc_auc(raw, right),
            "pc_auc": pc_auc,
            "ece_raw": expected_calibration_error(raw, right),
            "ece_calibrated_cv": expected_calibration_error(
                cross_validated_probabilities(raw, right, seed), right
            ),
        }
    return out


def choose_raw_score(candidates: dict[str, dict[str, float]], margin: float = AUTO_MARGIN) -> str:
    """``peptide``, unless another kind's ROC AUC beats it by at least ``margin``.

    Then the kind with the highest ROC AUC. The margin keeps the choice from following
    noise: on a few thousand validation spectra with a few dozen wrong peptides, ROC AUCs
    differ by about 0.01 from sample to sample.
    """
    reference = candidates.get("peptide", {}).get("roc_auc", float("nan"))
    best, best_auc = "peptide", reference
    for kind, values in candidates.items():
        auc = values["roc_auc"]
        if not np.isfinite(auc):
            continue
        if not np.isfinite(reference) or (auc >= reference + margin and auc > best_auc):
            best, best_auc = kind, auc
    return best


@dataclass
class CalibrationOutcome:
    """What ``trm calibrate`` produces.

    Attributes
    ----------
    calibration : IsotonicCalibration
    raw_score : str
        The raw score kind calibrated.
    report : dict
        The calibration report (see :func:`calibrate_dataset`).
    """

    calibration: IsotonicCalibration
    raw_score: str
    report: dict[str, Any]


def calibrate_dataset(
    sequencer: Sequencer,
    dataset: SpectrumDataset,
    raw_score: str = "auto",
    seed: int = 0,
    source: str = "",
) -> CalibrationOutcome:
    """Sequence a labelled split and fit the isotonic calibration of the raw score.

    Parameters
    ----------
    sequencer : Sequencer
        The model and the inference settings denovo will use.
    dataset : SpectrumDataset
        Labelled spectra (from :meth:`SpectrumDataset.from_shards`).
    raw_score : str
        ``auto`` or one of :data:`~trm.denovo.settings.RAW_SCORE_KINDS`.
    seed : int
        Seeds the cross-validation folds.
    source : str
        Where the spectra came from, for messages.

    Returns
    -------
    CalibrationOutcome
        Its report holds ``n_spectra``, ``n_sequenced``, ``n_no_peptide``,
        ``fraction_correct`` (of the sequenced spectra) and ``fraction_correct_of_all``,
        ``raw_score`` and ``raw_score_candidates``, ``ece_before`` (the raw score read
        as a probability), ``ece_after`` (in-sample) and ``ece_after_cross_validated``,
        ``reliability`` tables (``raw``, ``calibrated``), ``steps_histogram`` and
        ``mean_steps`` of early exit, and the ``skipped`` label rows by reason.

    Raises
    ------
    ValueError
        When no spectrum of the split got a peptide, naming ``source``.
    """
    if len(dataset) == 0:
        raise ValueError(f"{source}: no usable labelled spectrum to calibrate on")
    predictions = sequencer.predict(
        dataset.mz, dataset.intensity, dataset.n_peaks, dataset.precursor_mass, dataset.charge
    )
    correct = peptide_correct(predictions, dataset.tokens, sequencer.vocabulary)
    candidates = score_candidates(predictions, correct, seed)
    if not candidates:
        raise ValueError(
            f"{source}: none of {len(dataset)} spectra got a peptide (no answer fits its "
            "precursor), so there is nothing to calibrate; is the model trained?"
        )
    chosen = choose_raw_score(candidates) if raw_score == "auto" else raw_score
    if chosen not in RAW_SCORE_KINDS:
        raise ValueError(f"raw score must be 'auto' or one of {RAW_SCORE_KINDS}, not {chosen!r}")
    scores = raw_scores(chosen, predictions)
    sequenced = ~np.isnan(scores)
    raw, right = scores[sequenced], correct[sequenced]
    calibration = IsotonicCalibration.fit(raw, right)
    calibrated = calibration(raw)
    cross_validated = cross_validated_probabilities(raw, right, seed)
    n_steps = sequencer.model.config.supervision_steps
    report: dict[str, Any] = {
        "validation": source,
        "n_spectra": len(dataset),
        "n_sequenced": int(sequenced.sum()),
        "n_no_peptide": int((~sequenced).sum()),
        "n_correct": int(right.sum()),
        "fraction_correct": float(right.mean()),
        "fraction_correct_of_all": float(correct.sum() / len(dataset)),
        "raw_score": chosen,
        "raw_score_choice": (
            f"auto (peptide unless ROC AUC higher by {AUTO_MARGIN})"
            if raw_score == "auto"
            else "given"
        ),
        "raw_score_candidates": candidates,
        "ece_before": expected_calibration_error(raw, right),
        "ece_after": expected_calibration_error(calibrated, right),
        "ece_after_cross_validated": expected_calibration_error(cross_validated, right),
        "reliability": {
            "raw": reliability_table(raw, right),
            "calibrated": reliability_table(calibrated, right),
            "calibrated_cross_validated": reliability_table(cross_validated, right),
        },
        "steps_histogram": steps_histogram(predictions.steps_used, n_steps),
        "mean_steps": float(np.mean(predictions.steps_used)),
        "supervision_steps": n_steps,
        "skipped": dict(dataset.report.skipped),
    }
    if not right.any() or right.all():
        log.warning(
            "%s: %s of the %d decoded peptides are correct, so the calibration maps every "
            "score to %d; train the model further or calibrate on other spectra",
            source,
            "all" if right.all() else "none",
            right.size,
            int(right.all()),
        )
    log.info(
        "calibrated %s on %d spectra (%d with a peptide, %.1f%% of those correct); "
        "ECE %.4f -> %.4f (cross-validated %.4f)",
        chosen,
        report["n_spectra"],
        report["n_sequenced"],
        100 * report["fraction_correct"],
        report["ece_before"],
        report["ece_after"],
        report["ece_after_cross_validated"],
    )
    return CalibrationOutcome(calibration=calibration, raw_score=chosen, report=report)
