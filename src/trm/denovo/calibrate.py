"""Fitting the rescorer and calibrating the raw score on labelled spectra (``trm calibrate``).

The labelled spectra (synthetic ones under the instrument's noise at full strength, or a
lab's identified real spectra) go through exactly the inference, search and spectrum
matching of ``trm denovo`` (:class:`trm.denovo.inference.Sequencer`). A peptide is correct
when it matches the label by the field's mass-based rule (:func:`trm.metrics.match_residues`:
every residue matches, same length, I = L).

1. The rescorer (:class:`trm.denovo.rescore.Rescorer`) is fitted on every candidate of every
   spectrum: which of the search's candidates is the right peptide, from the model's
   score and the spectrum match; with predicted intensities (the graph and hybrid
   decoders), also its choice among each spectrum's candidates
   (:class:`trm.denovo.rescore.Choice`).
2. Each raw score of :data:`~trm.denovo.settings.RAW_SCORE_KINDS` is measured on the
   answers it implies (``rescored`` picks the answer by the rescorer, the others take the
   model's best): precision-coverage AUC over all spectra (what a lab gets from ranking
   by it), ROC AUC of right against wrong answers, and the calibration error before and
   after an isotonic fit (cross-validated). The rescorer's own figures are
   cross-validated by spectrum too. ``auto`` keeps ``peptide`` unless another kind's
   precision-coverage AUC is higher by :data:`AUTO_MARGIN`.
3. An isotonic map from the chosen raw score to the fraction of right answers
   (:class:`trm.denovo.calibration.IsotonicCalibration`) is fitted and stored with the model,
   with the rescorer and the inference settings.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from trm.chem import Vocabulary
from trm.denovo.calibration import IsotonicCalibration
from trm.denovo.decode import DecodedPeptide
from trm.denovo.inference import Predictions, Sequencer, raw_scores, steps_histogram
from trm.denovo.rescore import (
    CHOICE_FEATURES,
    DECODER_FEATURES,
    FORCED_CHOICE,
    INTENSITY_FEATURES,
    Choice,
    Rescorer,
)
from trm.denovo.settings import RAW_SCORE_KINDS
from trm.metrics import match_peptides, precision_coverage

log = logging.getLogger(__name__)

#: Bins of the reliability table and of the expected calibration error.
N_BINS = 10

#: Precision-coverage AUC by which ``auto`` needs another raw score to beat ``peptide``.
AUTO_MARGIN = 0.01


def peptides_correct(
    peptides: list[DecodedPeptide | None], truth: np.ndarray, vocabulary: Vocabulary
) -> np.ndarray:
    """Whether each peptide matches its label (False where there is none).

    Parameters
    ----------
    peptides : list of DecodedPeptide or None
    truth : numpy.ndarray of shape (n, max_length)
        Label token ids, end class (0) after the peptide.
    vocabulary : Vocabulary

    Returns
    -------
    numpy.ndarray of shape (n,), bool
    """
    correct = np.zeros(len(peptides), dtype=bool)
    for row, peptide in enumerate(peptides):
        if peptide is None:
            continue
        true_ids = truth[row][truth[row] != vocabulary.pad_id]
        _, correct[row] = match_peptides(
            vocabulary.decode(peptide.token_ids), vocabulary.decode(true_ids)
        )
    return correct


def candidates_correct(
    predictions: Predictions, truth: np.ndarray, vocabulary: Vocabulary
) -> np.ndarray:
    """Whether each candidate of each spectrum is right: shape of ``predictions.present``."""
    out = np.zeros(predictions.present.shape, dtype=bool)
    for rank in range(out.shape[1]):
        chosen = [c[rank] if len(c) > rank else None for c in predictions.candidates]
        out[:, rank] = peptides_correct(chosen, truth, vocabulary)
    return out


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


def score_kinds(
    answers: dict[str, tuple[np.ndarray, np.ndarray]], seed: int
) -> dict[str, dict[str, float]]:
    """How each raw score kind ranks and calibrates its answers.

    Parameters
    ----------
    answers : dict
        Kind -> (raw score of each spectrum's answer, NaN without one; whether the answer
        is right).

    Returns
    -------
    dict
        Kind -> ``pc_auc`` (precision-coverage over all spectra), ``roc_auc``,
        ``fraction_correct`` (of all spectra), ``ece_raw`` and ``ece_calibrated_cv``.
    """
    out: dict[str, dict[str, float]] = {}
    for kind, (scores, correct) in answers.items():
        sequenced = ~np.isnan(scores)
        raw, right = scores[sequenced], correct[sequenced]
        if not raw.size:
            continue
        _, _, pc_auc = precision_coverage(right.tolist(), raw.tolist(), len(scores))
        out[kind] = {
            "pc_auc": pc_auc,
            "roc_auc": roc_auc(raw, right),
            "fraction_correct": float(correct.mean()),
            "ece_raw": expected_calibration_error(raw, right),
            "ece_calibrated_cv": expected_calibration_error(
                cross_validated_probabilities(raw, right, seed), right
            ),
        }
    return out


def _feature_set(settings: Any) -> str:
    """The rescorer features of these inference settings (:data:`DECODER_FEATURES`)."""
    if settings.decoder == "hybrid" and settings.teacher_forcing:
        return "hybrid+forced"
    return settings.decoder


def fit_rescorer(
    predictions: Predictions,
    correct: np.ndarray,
    seed: int,
    names: tuple[str, ...] = DECODER_FEATURES["model"],
    folds: int = 2,
    choice: tuple[str, ...] | Choice | None = None,
) -> tuple[Rescorer | None, np.ndarray]:
    """The rescorer fitted on every candidate, and each spectrum's rescored answer index
    cross-validated by spectrum (the rescorer of the other folds chose it).

    ``names`` are the features it reads (:data:`trm.denovo.rescore.DECODER_FEATURES`);
    ``choice``, those of its choice among each spectrum's candidates
    (:class:`~trm.denovo.rescore.Choice`; None: the most probable candidate), or a fixed
    choice used as it is.

    Returns
    -------
    rescorer : Rescorer or None
        None when the candidates are all right or all wrong (nothing to learn).
    cross_validated_choice : numpy.ndarray of shape (n,)
        Index of the chosen candidate per spectrum (0 without rescorer).
    """
    present = predictions.present
    features = predictions.features
    labels = correct[present]
    n = len(present)
    if labels.all() or not labels.any():
        return None, np.zeros(n, dtype=np.int64)

    def fit(rows: np.ndarray) -> Rescorer:
        usable = rows[:, None] & present
        pointwise = Rescorer.fit(features[usable], correct[usable], names)
        if choice is None:
            return pointwise
        if isinstance(choice, Choice):  # fixed, fitted on nothing
            return dataclasses.replace(pointwise, choice=choice)
        chooser = Choice.fit(features[rows], present[rows], correct[rows], choice)
        return dataclasses.replace(pointwise, choice=chooser)

    rescorer = fit(np.ones(n, dtype=bool))
    fold = np.random.default_rng(seed).permutation(n) % folds
    chosen = np.zeros(n, dtype=np.int64)
    for index in range(folds):
        train = (fold != index)[:, None] & present
        if correct[train].all() or not correct[train].any():
            model = rescorer
        else:
            model = fit(fold != index)
        held_out = fold == index
        chosen[held_out] = model.choose(features[held_out], present[held_out])
    return rescorer, chosen


def choose_raw_score(candidates: dict[str, dict[str, float]], margin: float = AUTO_MARGIN) -> str:
    """``peptide``, unless another kind's precision-coverage AUC beats it by at least
    ``margin``; then the kind with the highest. The margin keeps the choice from following
    sampling noise."""
    reference = candidates.get("peptide", {}).get("pc_auc", float("nan"))
    best, best_auc = "peptide", reference
    for kind, values in candidates.items():
        auc = values["pc_auc"]
        if not np.isfinite(auc):
            continue
        if not np.isfinite(reference) or (auc >= reference + margin and auc > best_auc):
            best, best_auc = kind, auc
    return best


@dataclass
class LabelledSpectra:
    """Spectra with known peptides, as the sequencer takes them.

    Attributes
    ----------
    mz, intensity : numpy.ndarray of shape (n, width), float32
        Peaks, real ones first in each row.
    counts : numpy.ndarray of shape (n,)
    precursor_mass : numpy.ndarray of shape (n,)
    charge : numpy.ndarray of shape (n,)
    tokens : numpy.ndarray of shape (n, max_length)
        Label token ids, end class after the peptide.
    skipped : dict
        Rows left out when reading, by reason.
    """

    mz: np.ndarray
    intensity: np.ndarray
    counts: np.ndarray
    precursor_mass: np.ndarray
    charge: np.ndarray
    tokens: np.ndarray
    skipped: dict

    def __len__(self) -> int:
        return len(self.counts)


@dataclass
class CalibrationOutcome:
    """What ``trm calibrate`` produces.

    Attributes
    ----------
    calibration : IsotonicCalibration
    raw_score : str
        The raw score kind calibrated.
    rescorer : Rescorer or None
    report : dict
        The calibration report (see :func:`calibrate_dataset`).
    """

    calibration: IsotonicCalibration
    raw_score: str
    rescorer: Rescorer | None
    report: dict[str, Any]


def calibrate_dataset(
    sequencer: Sequencer,
    spectra: LabelledSpectra,
    raw_score: str = "auto",
    seed: int = 0,
    source: str = "",
) -> CalibrationOutcome:
    """Sequence labelled spectra, fit the rescorer and the calibration of the raw score.

    Parameters
    ----------
    sequencer : Sequencer
        The model and the inference settings denovo will use, without rescorer.
    spectra : LabelledSpectra
    raw_score : str
        ``auto`` or one of :data:`~trm.denovo.settings.RAW_SCORE_KINDS`.
    seed : int
        Seeds the cross-validation folds.
    source : str
        Where the spectra came from, for messages.

    Returns
    -------
    CalibrationOutcome
        Its report holds ``n_spectra``, ``n_sequenced`` (coverage), ``n_certified``,
        ``fraction_correct`` (of the sequenced spectra) and ``fraction_correct_of_all``,
        ``raw_score`` and ``raw_score_candidates``, ``rescorer`` (weights and
        cross-validated figures), ``ece_before``, ``ece_after`` and
        ``ece_after_cross_validated``, ``reliability`` tables, ``steps_histogram`` and
        ``mean_steps`` of early exit, ``reasons`` of unanswered spectra and ``skipped``.

    Raises
    ------
    ValueError
        When no spectrum got a peptide, naming ``source``.
    """
    if len(spectra) == 0:
        raise ValueError(f"{source}: no usable labelled spectrum to calibrate on")
    vocabulary = sequencer.vocabulary
    predictions = sequencer.predict(
        spectra.mz, spectra.intensity, spectra.counts, spectra.precursor_mass, spectra.charge
    )
    candidate_correct = candidates_correct(predictions, spectra.tokens, vocabulary)
    names = DECODER_FEATURES[_feature_set(sequencer.settings)]
    choice: tuple[str, ...] | Choice | None = None
    if sequencer.intensity_predictor is not None and sequencer.settings.decoder != "model":
        names, choice = (*names, *INTENSITY_FEATURES), CHOICE_FEATURES
    elif _feature_set(sequencer.settings) == "hybrid+forced":
        choice = Choice.fixed(FORCED_CHOICE)
    rescorer, cv_choice = fit_rescorer(predictions, candidate_correct, seed, names, choice=choice)
    model_best = predictions.choose(None)
    answers = {}
    for kind in ("peptide", "halt", "combined"):
        answers[kind] = (raw_scores(kind, model_best), candidate_correct[:, 0].copy())
    rescored = model_best
    if rescorer is not None:
        rescored = predictions.choose(rescorer)
        # Cross-validated figures: each spectrum's answer chosen by the other folds' fit.
        cv_probability = np.where(predictions.present, rescorer(predictions.features), np.nan)
        rows = np.arange(len(spectra))
        answers["rescored"] = (
            np.where(predictions.present.any(axis=1), cv_probability[rows, cv_choice], np.nan),
            candidate_correct[rows, cv_choice] & predictions.present.any(axis=1),
        )
    candidates = score_kinds(answers, seed)
    if not candidates:
        raise ValueError(
            f"{source}: none of {len(spectra)} spectra got a peptide (no answer fits its "
            "precursor), so there is nothing to calibrate; is the model trained?"
        )
    if raw_score != "auto":
        chosen = raw_score
    elif sequencer.settings.decoder != "model" and "rescored" in candidates:
        # The graph and hybrid decoders make their one final choice with the rescorer
        # (graph score, model log-likelihood, spectrum match): its probability is the score.
        chosen = "rescored"
    else:
        chosen = choose_raw_score(candidates)
    if chosen not in RAW_SCORE_KINDS or chosen not in candidates:
        raise ValueError(
            f"raw score must be 'auto' or one of {sorted(candidates)} here, not {chosen!r}"
        )
    final = rescored if chosen == "rescored" else model_best
    scores = raw_scores(chosen, final)
    correct = peptides_correct(final.decoded, spectra.tokens, vocabulary)
    sequenced = ~np.isnan(scores)
    raw, right = scores[sequenced], correct[sequenced]
    calibration = IsotonicCalibration.fit(raw, right)
    calibrated = calibration(raw)
    cross_validated = cross_validated_probabilities(raw, right, seed)
    n_steps = sequencer.refinement_steps
    reasons: dict[str, int] = {}
    for reason in predictions.reasons:
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
    report: dict[str, Any] = {
        "spectra": source,
        "n_spectra": len(spectra),
        "n_sequenced": int(sequenced.sum()),
        "n_no_peptide": int((~sequenced).sum()),
        "n_certified": int(sum(d is not None and d.certified for d in model_best.decoded)),
        "reasons": reasons,
        "n_correct": int(right.sum()),
        "fraction_correct": float(right.mean()) if right.size else float("nan"),
        "fraction_correct_of_all": float(correct.sum() / len(spectra)),
        "fraction_correct_model_best": float(candidate_correct[:, 0].mean()),
        "fraction_correct_any_candidate": float(candidate_correct.any(axis=1).mean()),
        "raw_score": chosen,
        "raw_score_choice": (
            "given"
            if raw_score != "auto"
            else "auto: the rescorer's choice, for the graph and hybrid decoders"
            if sequencer.settings.decoder != "model" and chosen == "rescored"
            else f"auto (peptide unless precision-coverage AUC higher by {AUTO_MARGIN})"
        ),
        "raw_score_candidates": candidates,
        "rescorer": None if rescorer is None else rescorer.to_dict(),
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
        "skipped": dict(spectra.skipped),
    }
    if not right.any() or right.all():
        log.warning(
            "%s: %s of the %d answers are correct, so the calibration maps every score to %d; "
            "train the model further or calibrate on other spectra",
            source,
            "all" if right.all() else "none",
            right.size,
            int(right.all()),
        )
    log.info(
        "calibrated %s on %d spectra (%d answered, %.1f%% of those correct; best of the "
        "model %.1f%%, any candidate %.1f%%); ECE %.4f -> %.4f (cross-validated %.4f)",
        chosen,
        report["n_spectra"],
        report["n_sequenced"],
        100 * report["fraction_correct"],
        100 * report["fraction_correct_model_best"],
        100 * report["fraction_correct_any_candidate"],
        report["ece_before"],
        report["ece_after"],
        report["ece_after_cross_validated"],
    )
    return CalibrationOutcome(
        calibration=calibration,
        raw_score=chosen,
        rescorer=rescorer if chosen == "rescored" else None,
        report=report,
    )
