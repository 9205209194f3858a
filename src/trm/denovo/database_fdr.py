"""A database-grounded false discovery rate for de novo answers.

Where a sample's spectra have database identifications (a search of the lab's FASTA at 1%
FDR, or identifications the lab supplied), the de novo answer of each identified spectrum
is right or wrong by the database's peptide (mass-based matching of :mod:`trm.metrics`,
I = L). An isotonic map (:class:`~trm.denovo.calibration.IsotonicCalibration`) fitted on
those answers turns the model's raw score into the probability that an answer is right;
applied to every answer of the sample, it gives each answer's estimated error probability
(``1 - p``) and, by :func:`~trm.denovo.calibration.q_values_from_probabilities`, its
q-value: the lowest estimated FDR of any score threshold that accepts it.

The assumption: at a given score, answers to the identified spectra are right as often as
answers to all spectra. Spectra a search identifies tend to be the clean ones, so the
estimate can be optimistic for the rest; the report says how many answers it rests on. A
run without identifications of its own can borrow the map of other runs of its instrument
(``reference``): the model's answers to their identified spectra, under the same
assumption across runs.

The report carries its own check: the labelled answers are split in two halves by a seeded
hash of the spectrum id; each half's q-values come from the map fitted on the other half,
and at q-value thresholds of 1%, 5% and 10% the estimated FDR of the accepted held-out
answers (their mean error probability) is set beside the observed one.

:func:`database_fdr` is pure (a table in, q-values and a report out); ``trm denovo
--database-labels`` reads and writes around it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from trm.chem import UnsupportedPeptideError, parse_peptidoform
from trm.denovo.calibration import IsotonicCalibration, q_values_from_probabilities
from trm.metrics import match_peptides

#: Fewest labelled answers the map is fitted on; with fewer, no q-value is estimated.
MIN_LABELLED = 30
#: q-value thresholds of the held-out check.
CHECK_THRESHOLDS: tuple[float, ...] = (0.01, 0.05, 0.10)
#: Seed of the split of the held-out check.
CHECK_SEED = 20261206


@dataclass(frozen=True)
class DatabaseFdr:
    """Database-grounded error probabilities and q-values of a sample's answers.

    Attributes
    ----------
    pep : numpy.ndarray of shape (n_answers,) or None
        Estimated probability that each answer is wrong; None when not estimated.
    q_values : numpy.ndarray of shape (n_answers,) or None
        Estimated q-value of each answer, in the input order; None when not estimated.
    report : dict
        ``estimated`` (bool), ``reason`` when not, the counts, the fitted map and the
        held-out check (see the module description).
    """

    pep: np.ndarray | None
    q_values: np.ndarray | None
    report: dict[str, Any]


def _half(spectrum_id: str) -> int:
    digest = hashlib.blake2b(f"{CHECK_SEED}:{spectrum_id}".encode(), digest_size=8).digest()
    return digest[0] & 1


def held_out_check(
    scores: np.ndarray,
    correct: np.ndarray,
    halves: np.ndarray,
    thresholds: Sequence[float] = CHECK_THRESHOLDS,
) -> list[dict[str, Any]]:
    """Estimated against observed FDR of labelled answers, each half scored by the map
    fitted on the other.

    Parameters
    ----------
    scores : numpy.ndarray of shape (n,)
        Raw scores of the labelled answers.
    correct : numpy.ndarray of shape (n,), bool
    halves : numpy.ndarray of shape (n,), 0 or 1
        The half each answer falls in.
    thresholds : sequence of float
        q-value thresholds.

    Returns
    -------
    list of dict
        Per threshold: ``threshold``, ``accepted`` (held-out answers with a q-value at or
        below it, both halves together), ``estimated_fdr`` (their mean estimated error
        probability), ``observed_fdr`` (the share of them that is wrong), ``wrong``;
        the FDRs are None where nothing is accepted.
    """
    accepted = {t: [] for t in thresholds}
    for half in (0, 1):
        fit = halves != half
        test = ~fit
        if not fit.any() or not test.any():
            continue
        calibration = IsotonicCalibration.fit(scores[fit], correct[fit])
        probability = calibration(scores[test])
        q = q_values_from_probabilities(probability)
        for threshold in thresholds:
            keep = q <= threshold
            accepted[threshold] += list(
                zip(1.0 - probability[keep], correct[test][keep], strict=True)
            )
    rows = []
    for threshold in thresholds:
        pairs = accepted[threshold]
        n = len(pairs)
        wrong = sum(1 for _, right in pairs if not right)
        rows.append(
            {
                "threshold": threshold,
                "accepted": n,
                "wrong": wrong,
                "estimated_fdr": float(np.mean([p for p, _ in pairs])) if n else None,
                "observed_fdr": wrong / n if n else None,
            }
        )
    return rows


def database_fdr(
    answers: pl.DataFrame,
    reference: pl.DataFrame | None = None,
    min_labelled: int = MIN_LABELLED,
) -> DatabaseFdr:
    """Estimated error probabilities and q-values of de novo answers from the answers to
    database-identified spectra.

    Parameters
    ----------
    answers : polars.DataFrame
        One row per answer of the run: ``spectrum_id``, ``raw_score`` (the model's
        confidence, a probability), ``correct`` (bool: the answer matches the database's
        peptide; null where the spectrum has no database identification, or must not be
        used, such as a spectrum the model was fine-tuned on).
    reference : polars.DataFrame, optional
        Answers to identified spectra of other runs of the same instrument, same columns:
        the map is fitted on them instead, for a run without identifications of its own.
        The q-values are always those of ``answers``, ranked among themselves.
    min_labelled : int
        Fewest labelled answers to fit on.

    Returns
    -------
    DatabaseFdr
    """
    fitted_on = answers if reference is None else reference
    correct_column = fitted_on.get_column("correct")
    labelled = correct_column.is_not_null().to_numpy()
    n_labelled = int(labelled.sum())
    report: dict[str, Any] = {
        "method": (
            "isotonic map from the raw score to the share of answers matching the database "
            "peptide, fitted on the answers to database-identified spectra and applied to "
            "every answer; q-value = lowest mean estimated error probability of any score "
            "threshold accepting the answer"
        ),
        "assumption": (
            "at a given score, answers to identified spectra are right as often as answers "
            "to all spectra"
            + ("" if reference is None else ", in this run as in the runs fitted on")
        ),
        "fitted_on": (
            "this run's identified spectra"
            if reference is None
            else "identified spectra of other runs of the instrument"
        ),
        "n_answers": answers.height,
        "n_labelled": n_labelled,
        "min_labelled": min_labelled,
    }
    if n_labelled < min_labelled:
        report |= {
            "estimated": False,
            "reason": (
                f"{n_labelled} answers to database-identified spectra, fewer than the "
                f"{min_labelled} the estimate needs"
            ),
        }
        return DatabaseFdr(None, None, report)
    correct = correct_column.filter(correct_column.is_not_null()).to_numpy().astype(bool)
    labelled_scores = fitted_on.get_column("raw_score").cast(pl.Float64).to_numpy()[labelled]
    calibration = IsotonicCalibration.fit(labelled_scores, correct)
    probability = calibration(answers.get_column("raw_score").cast(pl.Float64).to_numpy())
    pep = 1.0 - probability
    q_values = q_values_from_probabilities(probability)
    ids = fitted_on.get_column("spectrum_id").filter(pl.Series(labelled)).to_list()
    halves = np.array([_half(str(s)) for s in ids], dtype=np.int64)
    report |= {
        "estimated": True,
        "n_labelled_correct": int(correct.sum()),
        "accepted_at": {f"{t:g}": int((q_values <= t).sum()) for t in CHECK_THRESHOLDS},
        "calibration": calibration.to_dict(),
        "held_out_check": held_out_check(labelled_scores, correct, halves),
    }
    return DatabaseFdr(pep, q_values, report)


def answers_against_labels(
    sequenced: pl.DataFrame, labels: pl.DataFrame, exclude: set[str] | frozenset[str] = frozenset()
) -> pl.DataFrame:
    """Whether each answer matches its spectrum's database peptide.

    Parameters
    ----------
    sequenced : polars.DataFrame
        ``spectrum_id``, ``raw_score``, ``_tokens`` (the answer's tokens).
    labels : polars.DataFrame
        ``spectrum_id``, ``label`` (ProForma), as :func:`trm.io.labels.read_labels`
        gives them.
    exclude : set of str
        Spectrum ids whose labels are not used (spectra the model was fine-tuned on).

    Returns
    -------
    polars.DataFrame
        ``spectrum_id``, ``raw_score``, ``correct`` (null without a usable label), one row
        per answer in the input order: the table :func:`database_fdr` takes.
    """
    label_of = dict(zip(labels["spectrum_id"].to_list(), labels["label"].to_list(), strict=True))
    truth: dict[str, list[str] | None] = {}
    correct: list[bool | None] = []
    for spectrum_id, tokens in sequenced.select("spectrum_id", "_tokens").iter_rows():
        label = label_of.get(spectrum_id)
        if label is None or spectrum_id in exclude:
            correct.append(None)
            continue
        if label not in truth:
            try:
                truth[label] = parse_peptidoform(label)[0]
            except UnsupportedPeptideError:
                truth[label] = None
        true_tokens = truth[label]
        correct.append(None if true_tokens is None else match_peptides(tokens, true_tokens)[1])
    return pl.DataFrame(
        {
            "spectrum_id": sequenced.get_column("spectrum_id"),
            "raw_score": sequenced.get_column("raw_score").cast(pl.Float64),
            "correct": pl.Series("correct", correct, dtype=pl.Boolean()),
        }
    )
