"""Turning raw peptide scores into calibrated probabilities and q-values.

A model's raw confidence (the probability of its whole answer, or its halting head) is
mapped to the probability that the peptide is fully correct by isotonic regression fitted
on a labelled validation split. The fitted map is a few numbers stored with the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Pseudo-observations with which each isotonic block is pulled towards its raw score.
SHRINKAGE = 1.0


@dataclass(frozen=True)
class IsotonicCalibration:
    """A non-decreasing, piecewise-linear map from raw score (a probability in [0, 1]) to
    the probability of being right: isotonic regression's blocks, each shrunk a little
    towards its raw score, joined linearly between their mean raw scores.

    Attributes
    ----------
    thresholds : numpy.ndarray of shape (n_knots,)
        Raw scores at the knots, increasing.
    probabilities : numpy.ndarray of shape (n_knots,)
        Calibrated probability at each knot, non-decreasing, in [0, 1].
    """

    thresholds: np.ndarray
    probabilities: np.ndarray

    @classmethod
    def fit(cls, raw_scores: np.ndarray, correct: np.ndarray) -> IsotonicCalibration:
        """Fit by pooling adjacent violators.

        Parameters
        ----------
        raw_scores : numpy.ndarray of shape (n,)
            Raw confidence of each peptide (higher = more confident).
        correct : numpy.ndarray of shape (n,)
            Whether each peptide is fully correct.
        """
        raw_scores = np.asarray(raw_scores, dtype=np.float64)
        correct = np.asarray(correct, dtype=np.float64)
        if raw_scores.shape != correct.shape or raw_scores.ndim != 1 or raw_scores.size == 0:
            raise ValueError("calibration needs one correctness label per raw score")
        order = np.argsort(raw_scores, kind="stable")
        x, y = raw_scores[order], correct[order]
        # Blocks of (sum of labels, count, sum of scores); merged while decreasing.
        sums: list[float] = []
        counts: list[float] = []
        score_sums: list[float] = []
        for score, label in zip(x, y, strict=True):
            sums.append(label)
            counts.append(1.0)
            score_sums.append(score)
            while len(sums) > 1 and sums[-2] / counts[-2] >= sums[-1] / counts[-1]:
                merged = sums.pop(), counts.pop(), score_sums.pop()
                sums[-1] += merged[0]
                counts[-1] += merged[1]
                score_sums[-1] += merged[2]
        counts_array = np.array(counts)
        centres = np.array(score_sums) / counts_array
        # Each block's fraction correct, shrunk by one pseudo-observation towards the raw
        # score itself (read as a probability): a block with no right answer among many
        # maps to a small positive probability, not to exactly 0, so the map keeps rising.
        means = (np.array(sums) + SHRINKAGE * centres) / (counts_array + SHRINKAGE)
        means = np.maximum.accumulate(means)
        # Knots at the blocks' mean raw scores, linear in between, and from the origin to
        # the first (a raw probability of 0 is a probability of 0): distinct raw scores
        # keep distinct probabilities, ties only above the last knot.
        if centres[0] > 0:
            centres = np.concatenate([[0.0], centres])
            means = np.concatenate([[0.0], means])
        keep = np.concatenate([[True], np.diff(centres) > 0])
        return cls(thresholds=centres[keep], probabilities=means[keep])

    def __call__(self, raw_scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of shape like ``raw_scores``."""
        return np.interp(
            np.asarray(raw_scores, dtype=np.float64), self.thresholds, self.probabilities
        )

    def to_dict(self) -> dict[str, list[float]]:
        """Plain lists, for a checkpoint or JSON file."""
        return {
            "thresholds": self.thresholds.tolist(),
            "probabilities": self.probabilities.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> IsotonicCalibration:
        """Inverse of :meth:`to_dict`."""
        return cls(
            thresholds=np.asarray(data["thresholds"], dtype=np.float64),
            probabilities=np.asarray(data["probabilities"], dtype=np.float64),
        )


def q_values_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """FDR-like q-values from calibrated probabilities of being correct.

    Sorting peptides by probability, the expected share of wrong ones among the top k is
    the mean of ``1 - p`` over them; a peptide's q-value is the lowest such share of any
    list that includes it.

    Parameters
    ----------
    probabilities : numpy.ndarray of shape (n,)

    Returns
    -------
    numpy.ndarray of shape (n,), in the input order.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probabilities, kind="stable")
    expected_fdr = np.cumsum(1.0 - probabilities[order]) / np.arange(1, len(order) + 1)
    q_sorted = np.minimum.accumulate(expected_fdr[::-1])[::-1]
    q = np.empty_like(q_sorted)
    q[order] = q_sorted
    return q
