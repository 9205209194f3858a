"""Sequencing metrics with the field's mass-based matching.

The convention is Casanovo's (after DeepNovo): two residues match when the cumulative
masses of the prefixes that end in them differ by less than 0.5 Da *and* the residues'
masses differ by less than 0.1 Da. Matching runs from the N-terminus, and, where the
prefixes stop agreeing, again from the C-terminus, so a wrong residue in the middle does not
make every later residue wrong. Isoleucine and leucine have the same mass and therefore
always match (I = L). Amino-acid precision is matched residues over predicted residues,
recall matched over true residues; a peptide is recalled when all its residues match and
both peptides have the same number of residues.

A spectral library or a lab's own identifications often hold one peptide many times, so a
recall over spectra can move by one peptide's worth of spectra; the recall over distinct
peptides (:attr:`SequencingMetrics.distinct_peptide_recall`) weighs each true peptide the
same, by the share of its spectra recalled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trm.chem import token_mass

#: Largest difference (Da) between the prefix masses of two residues that match.
CUMULATIVE_MASS_TOLERANCE_DA = 0.5
#: Largest difference (Da) between the masses of two residues that match.
RESIDUE_MASS_TOLERANCE_DA = 0.1


def _walk(
    masses_a: Sequence[float],
    masses_b: Sequence[float],
    matches: np.ndarray,
    cumulative_tolerance: float,
    residue_tolerance: float,
    from_end: bool,
    stop: int = 0,
) -> None:
    """Walk two mass lists in step with their prefix (or suffix) masses, marking matches.

    Positions are flagged at the larger of the two indices, in N- to C-terminal order. From
    the end, the walk stops before index ``stop``.
    """
    step = -1 if from_end else 1
    i, j = (len(masses_a) - 1, len(masses_b) - 1) if from_end else (0, 0)
    total_a = total_b = 0.0

    def inside(i: int, j: int) -> bool:
        if from_end:
            return i >= stop and j >= stop
        return i < len(masses_a) and j < len(masses_b)

    while inside(i, j):
        next_a, next_b = total_a + masses_a[i], total_b + masses_b[j]
        if abs(next_a - next_b) < cumulative_tolerance:
            matches[max(i, j)] |= abs(masses_a[i] - masses_b[j]) < residue_tolerance
            total_a, total_b = next_a, next_b
            i, j = i + step, j + step
        elif next_b > next_a:
            # The lighter side advances alone: two residues of one peptide may weigh what
            # one (or a different pair) of the other does.
            total_a, i = next_a, i + step
        else:
            total_b, j = next_b, j + step


def match_residues(
    predicted: Sequence[float],
    truth: Sequence[float],
    cumulative_tolerance: float = CUMULATIVE_MASS_TOLERANCE_DA,
    residue_tolerance: float = RESIDUE_MASS_TOLERANCE_DA,
) -> tuple[np.ndarray, bool]:
    """Mass-based residue matching of a predicted against a true peptide.

    Parameters
    ----------
    predicted, truth : sequence of float
        Token masses (Da) of each peptide, N- to C-terminus; an N-terminal modification
        token counts as a residue, as Casanovo counts it.
    cumulative_tolerance, residue_tolerance : float
        See the module description.

    Returns
    -------
    matches : numpy.ndarray of shape (max(len(predicted), len(truth)),), bool
        Which positions matched.
    peptide_match : bool
        Every position matched and both peptides have the same length.
    """
    matches = np.zeros(max(len(predicted), len(truth)), dtype=bool)
    _walk(predicted, truth, matches, cumulative_tolerance, residue_tolerance, from_end=False)
    if matches.all():
        return matches, len(predicted) == len(truth)
    # Match again from the C-terminus down to the first mismatch of the N-terminal pass,
    # so one wrong residue in the middle does not make every later residue wrong.
    first_mismatch = int(np.flatnonzero(~matches)[0])
    _walk(
        predicted,
        truth,
        matches,
        cumulative_tolerance,
        residue_tolerance,
        from_end=True,
        stop=first_mismatch,
    )
    return matches, bool(matches.all()) and len(predicted) == len(truth)


@dataclass(frozen=True)
class SequencingMetrics:
    """Amino-acid and peptide level agreement of predictions with the truth.

    Attributes
    ----------
    aa_precision : float
        Matched residues / predicted residues.
    aa_recall : float
        Matched residues / true residues.
    peptide_recall : float
        Fully matched peptides / all spectra.
    peptide_precision : float
        Fully matched peptides / spectra with a prediction.
    n_spectra : int
    distinct_peptide_recall : float
        Mean over the distinct true peptides (I = L) of the share of their spectra whose
        peptide is recalled: each peptide weighs the same however many spectra it has.
    n_peptides : int
        Distinct true peptides.
    """

    aa_precision: float
    aa_recall: float
    peptide_recall: float
    peptide_precision: float
    n_spectra: int
    distinct_peptide_recall: float = 0.0
    n_peptides: int = 0


def match_peptides(predicted: Sequence[str], truth: Sequence[str]) -> tuple[np.ndarray, bool]:
    """:func:`match_residues` of two token lists, masses from :func:`trm.chem.token_mass`.

    Raises
    ------
    KeyError
        For a token outside the known residues and modifications.
    """
    return match_residues([token_mass(t) for t in predicted], [token_mass(t) for t in truth])


def sequencing_metrics(
    predicted: Sequence[Sequence[str]], truth: Sequence[Sequence[str]]
) -> SequencingMetrics:
    """Amino-acid precision/recall and peptide recall over a set of spectra.

    Parameters
    ----------
    predicted, truth : sequence of sequence of str
        Token lists (see :func:`trm.chem.parse_peptidoform`) per spectrum; an empty
        predicted list means no prediction.

    Returns
    -------
    SequencingMetrics
    """
    if len(predicted) != len(truth):
        raise ValueError("predicted and truth must list the same spectra")
    n_matched = n_predicted = n_true = n_peptides = n_with_prediction = 0
    # per distinct true peptide: [spectra, recalled]
    by_peptide: dict[tuple[str, ...], list[int]] = {}
    for predicted_tokens, true_tokens in zip(predicted, truth, strict=True):
        n_predicted += len(predicted_tokens)
        n_true += len(true_tokens)
        counts = by_peptide.setdefault(tuple("L" if t == "I" else t for t in true_tokens), [0, 0])
        counts[0] += 1
        if not predicted_tokens:
            continue
        n_with_prediction += 1
        matches, peptide_match = match_peptides(predicted_tokens, true_tokens)
        n_matched += int(matches.sum())
        n_peptides += int(peptide_match)
        counts[1] += int(peptide_match)
    return SequencingMetrics(
        aa_precision=n_matched / n_predicted if n_predicted else 0.0,
        aa_recall=n_matched / n_true if n_true else 0.0,
        peptide_recall=n_peptides / len(truth) if len(truth) else 0.0,
        peptide_precision=n_peptides / n_with_prediction if n_with_prediction else 0.0,
        n_spectra=len(truth),
        distinct_peptide_recall=(
            float(np.mean([right / total for total, right in by_peptide.values()]))
            if by_peptide
            else 0.0
        ),
        n_peptides=len(by_peptide),
    )


def precision_coverage(
    correct: Sequence[bool], scores: Sequence[float], n_spectra: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Peptide precision against coverage, predictions taken from the best score down.

    The one ranking rule of every report (evaluate, compare, calibrate, benchmarks): a
    stable sort by descending score, so tied scores keep the order they were given in.

    Parameters
    ----------
    correct : sequence of bool
        Whether each prediction is right.
    scores : sequence of float
        Its score (higher is more confident).
    n_spectra : int
        All labelled spectra, predicted or not: coverage is a share of them.

    Returns
    -------
    coverage, precision : numpy.ndarray of shape (n_predictions,)
    auc : float
        Area under the curve by trapezoids, the curve extended flat from its first point
        to coverage 0 (so a tool right on every spectrum scores 1); 0 without predictions.
    """
    if n_spectra <= 0 or len(correct) == 0:
        return np.empty(0), np.empty(0), 0.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(correct, dtype=np.float64)[order]
    counts = np.arange(1, hits.size + 1)
    precision = np.cumsum(hits) / counts
    coverage = counts / n_spectra
    auc = float(np.trapezoid(np.r_[precision[0], precision], np.r_[0.0, coverage]))
    return coverage, precision, auc


def precision_coverage_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], summary=None):  # noqa: ANN001, ANN201
    """A matplotlib figure with each tool's precision-coverage curve (Agg backend).

    Parameters
    ----------
    curves : mapping
        Tool -> (coverage, precision), from :func:`summarize`.
    summary : dict, optional
        :func:`summarize` output, for the AUCs in the legend.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 4), layout="constrained")
    axes = figure.add_subplot()
    labels = {"trm": "recursive model (trm)", "casanovo": "Casanovo"}
    for tool, (coverage, precision) in curves.items():
        label = labels.get(tool, tool)
        if (summary or {}).get(tool, {}).get("collapsed"):
            label += " — collapsed"
        auc = (summary or {}).get(tool, {}).get("pc_auc")
        if auc is not None and not math.isnan(auc):
            label += f" (AUC {auc:.3f})"
        axes.plot(coverage, precision, label=label)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("coverage (share of labelled spectra)")
    axes.set_ylabel("peptide precision")
    if not any(len(c) for c, _ in curves.values()):
        axes.text(0.5, 0.5, "no labelled spectra", ha="center", va="center")
    else:
        axes.legend(loc="lower left")
    return figure
