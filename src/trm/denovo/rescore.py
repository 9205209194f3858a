"""Spectrum-match rescoring: the search's candidates judged against the observed peaks.

The search (:func:`trm.denovo.decode.search`) returns the best few peptides per spectrum that fit
the precursor, ranked by the model alone. Each is matched against the spectrum's peaks at
the instrument's fragment tolerance (b and y ions at charges 1..min(z - 1, 2)) and
described by :data:`FEATURES`:

``model_log_probability``
    The model's log-probability of exactly this answer.
``model_gap``
    Its difference to the spectrum's best candidate (0 for the best).
``halt_probability``
    The halting head's confidence in the spectrum's answer.
``fragment_coverage``
    Share of the candidate's theoretical b/y ions found among the peaks.
``explained_intensity``
    Share of the peaks' intensity those ions explain (each peak counted once).
``longest_ladder``
    Longest run of consecutive cleavage sites with a b or a y ion, over the sites.
``n_residues``
    Length, in residues.
``relative_mass_error``
    |precursor mass error| over the tolerance.
``graph_score``
    The spectrum-graph decoder's score of the candidate (:mod:`trm.graph.decoder`: naive
    Bayes log-odds of its cleavage sites, each peak counted once).
``graph_gap``
    Its difference to the best graph score among the spectrum's candidates.
``from_graph``, ``from_model``
    Whether the graph decoder's K best paths, and the model's exact search, proposed it.
``forced_log_probability``, ``forced_gap``, ``forced_halt_probability``
    The model's log-likelihood of the candidate and its halting probability with the
    candidate itself as the draft of one refinement step (teacher forcing), and the
    log-likelihood's difference to the spectrum's best.

The model decoder's candidates have no graph features (0), the graph decoder's no model
features: a rescorer uses the features of its decoder (:data:`DECODER_FEATURES`).
:class:`Rescorer` combines them by logistic regression into the probability that the
candidate is the right peptide; ``trm calibrate`` fits it on labelled spectra that look
like the lab's, and the best candidate by that probability becomes the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trm.chem import Vocabulary
from trm.denovo.decode import DecodedPeptide
from trm.fragments import (
    MAX_FRAGMENT_CHARGE,
    cleavage_masses,
    ion_mz,
    max_fragment_charge,
    nearest_peaks,
)

FEATURES: tuple[str, ...] = (
    "model_log_probability",
    "model_gap",
    "halt_probability",
    "fragment_coverage",
    "explained_intensity",
    "longest_ladder",
    "n_residues",
    "relative_mass_error",
    "graph_score",
    "graph_gap",
    "from_graph",
    "from_model",
    "forced_log_probability",
    "forced_gap",
    "forced_halt_probability",
)
_MODEL = FEATURES[:8]
_MATCH = ("fragment_coverage", "explained_intensity", "longest_ladder", "n_residues",
          "relative_mass_error")  # fmt: skip
#: The features each decoder's rescorer uses.
DECODER_FEATURES: dict[str, tuple[str, ...]] = {
    "model": _MODEL,
    "graph": (*_MATCH, "graph_score", "graph_gap"),
    "hybrid": FEATURES[:12],
    "hybrid+forced": FEATURES,
}
#: Model log-probability given to a candidate the model cannot hold (too long).
UNSCORABLE_LOG_PROBABILITY = -1000.0

#: Spacing between spectra when the peaks of a batch are searched as one sorted array.
_ROW_OFFSET = 1.0e6


def _padded_candidates(
    candidates: list[list[DecodedPeptide]], vocabulary: Vocabulary, n_candidates: int
) -> tuple[np.ndarray, np.ndarray]:
    """Residue masses (B, N, T) of each candidate's tokens (N-terminal modification mass
    folded into the first residue) and a (B, N) mask of real candidates."""
    batch = len(candidates)
    longest = max((len(c.token_ids) for row in candidates for c in row), default=1)
    masses = np.zeros((batch, n_candidates, longest))
    present = np.zeros((batch, n_candidates), dtype=bool)
    for row, peptides in enumerate(candidates):
        for rank, peptide in enumerate(peptides[:n_candidates]):
            ids = peptide.token_ids
            nterm = vocabulary.is_nterm[ids]
            residue_masses = vocabulary.masses[ids[~nterm]].copy()
            residue_masses[0] += vocabulary.masses[ids[nterm]].sum()
            masses[row, rank, : len(residue_masses)] = residue_masses
            present[row, rank] = True
    return masses, present


def match_features(
    candidates: list[list[DecodedPeptide]],
    halt_probability: np.ndarray,
    mz: np.ndarray,
    intensity: np.ndarray,
    counts: np.ndarray,
    charge: np.ndarray,
    vocabulary: Vocabulary,
    fragment_tolerance_da: float,
    precursor_tolerance_ppm: float,
    n_candidates: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The :data:`FEATURES` of every candidate.

    Parameters
    ----------
    candidates : list of list of DecodedPeptide
        Per spectrum, best first (:attr:`trm.denovo.decode.SearchResult.candidates`).
    halt_probability : numpy.ndarray of shape (B,)
    mz, intensity : numpy.ndarray of shape (B, P)
        Peaks (any order); entries past ``counts`` are padding.
    counts : numpy.ndarray of shape (B,)
    charge : numpy.ndarray of shape (B,)
        Precursor charges.
    vocabulary : Vocabulary
    fragment_tolerance_da, precursor_tolerance_ppm : float
    n_candidates : int
        Width of the output (candidates beyond it are ignored).

    Returns
    -------
    features : numpy.ndarray of shape (B, N, len(FEATURES))
    present : numpy.ndarray of shape (B, N), bool
    """
    batch, width = mz.shape
    masses, present = _padded_candidates(candidates, vocabulary, n_candidates)
    n_residues = (masses > 0).sum(axis=2)  # (B, N)
    length = masses.shape[2]
    # b and y ions of the same cleavage sites
    prefix, suffix = (neutral[:, :, :-1] for neutral in cleavage_masses(masses))
    site = np.arange(1, length)[None, None, :]
    real_site = site < n_residues[:, :, None]  # (B, N, T-1)

    # Peaks of all spectra in one sorted array, each spectrum in its own m/z range.
    row_base = (np.arange(batch) * _ROW_OFFSET)[:, None]
    peak_real = np.arange(width)[None, :] < counts[:, None]
    peaks = np.where(peak_real, mz, _ROW_OFFSET / 2) + row_base
    order = np.argsort(peaks, axis=1)
    sorted_peaks = np.take_along_axis(peaks, order, axis=1).ravel()
    sorted_intensity = np.where(peak_real, intensity, 0.0)
    sorted_intensity = np.take_along_axis(sorted_intensity, order, axis=1).ravel()
    total_intensity = np.maximum(sorted_intensity.reshape(batch, width).sum(axis=1), 1e-12)

    highest_charge = max_fragment_charge(charge)
    covered_site = np.zeros(real_site.shape, dtype=bool)
    matched_peaks = np.zeros((batch, n_candidates, width), dtype=bool)
    n_matched = np.zeros((batch, n_candidates))
    n_theoretical = np.zeros((batch, n_candidates))
    for fragment_charge in range(1, MAX_FRAGMENT_CHARGE + 1):
        usable = (fragment_charge <= highest_charge)[:, None, None] & real_site
        for neutral in (prefix, suffix):
            query = ion_mz(neutral, fragment_charge)
            nearest, found = nearest_peaks(
                sorted_peaks, (query + row_base[:, :, None]).ravel(), fragment_tolerance_da
            )
            hit = found.reshape(query.shape) & usable
            n_matched += hit.sum(axis=2)
            n_theoretical += usable.sum(axis=2)
            # prefix[i] and suffix[i] are the b and y ion of the same cleavage site i.
            covered_site |= hit
            position = nearest.reshape(query.shape) - (np.arange(batch) * width)[:, None, None]
            rows, ranks, _ = np.nonzero(hit)
            matched_peaks[rows, ranks, position[hit]] = True

    sorted_intensity = sorted_intensity.reshape(batch, width)
    explained = (matched_peaks * sorted_intensity[:, None, :]).sum(axis=2) / total_intensity[
        :, None
    ]
    ladder = _longest_run(covered_site & real_site) / np.maximum(n_residues - 1, 1)

    features = np.zeros((batch, n_candidates, len(FEATURES)))
    log_probability = np.full((batch, n_candidates), np.nan)
    graph_score = np.full((batch, n_candidates), np.nan)
    forced = np.full((batch, n_candidates, 2), np.nan)
    sources = np.zeros((batch, n_candidates, 2), dtype=bool)
    mass_error = np.zeros((batch, n_candidates))
    for row, peptides in enumerate(candidates):
        for rank, peptide in enumerate(peptides[:n_candidates]):
            log_probability[row, rank] = peptide.log_probability
            graph_score[row, rank] = peptide.graph_score
            forced[row, rank] = (peptide.forced_log_probability, peptide.forced_halt_probability)
            sources[row, rank] = ("graph" in peptide.source, "model" in peptide.source)
            mass_error[row, rank] = abs(peptide.mass_error_ppm)
    # the best of the spectrum's pool (the search's first candidate for the model decoder)
    best = _pool_best(log_probability, present)
    best_graph = _pool_best(graph_score, present)
    features[..., 0] = np.nan_to_num(log_probability)
    features[..., 1] = np.nan_to_num(log_probability - best)
    features[..., 2] = halt_probability[:, None]
    features[..., 3] = n_matched / np.maximum(n_theoretical, 1)
    features[..., 4] = explained
    features[..., 5] = ladder
    features[..., 6] = n_residues
    features[..., 7] = mass_error / precursor_tolerance_ppm
    features[..., 8] = np.nan_to_num(graph_score)
    features[..., 9] = np.nan_to_num(graph_score - best_graph)
    features[..., 10:12] = sources
    features[..., 12] = np.nan_to_num(forced[..., 0])
    features[..., 13] = np.nan_to_num(forced[..., 0] - _pool_best(forced[..., 0], present))
    features[..., 14] = np.nan_to_num(forced[..., 1])
    features[~present] = 0.0
    return features, present


def _pool_best(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Each row's largest value among present, non-NaN entries; shape (B, 1), 0 when none."""
    usable = present & ~np.isnan(values)
    best = np.where(usable, values, -np.inf).max(axis=1, keepdims=True)
    return np.where(usable.any(axis=1, keepdims=True), best, 0.0)


def _longest_run(flags: np.ndarray) -> np.ndarray:
    """Longest run of True along the last axis."""
    run = np.zeros(flags.shape[:-1])
    best = np.zeros(flags.shape[:-1])
    for index in range(flags.shape[-1]):
        run = np.where(flags[..., index], run + 1, 0)
        best = np.maximum(best, run)
    return best


@dataclass(frozen=True)
class Rescorer:
    """Logistic regression from features to the probability a candidate is right.

    Attributes
    ----------
    names : tuple of str
        The features it reads, a subset of :data:`FEATURES` (its decoder's).
    mean, scale : numpy.ndarray of shape (n_features,)
        Standardisation of the features.
    weights : numpy.ndarray of shape (n_features,)
    bias : float
    """

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    @staticmethod
    def columns(names: tuple[str, ...]) -> list[int]:
        """Positions of the named features in :data:`FEATURES`."""
        unknown = [name for name in names if name not in FEATURES]
        if unknown:
            raise ValueError(
                f"the model file's rescorer uses features {unknown} this trm does not compute "
                f"({list(FEATURES)}): recalibrate the model (trm calibrate)"
            )
        return [FEATURES.index(name) for name in names]

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        correct: np.ndarray,
        names: tuple[str, ...] = FEATURES,
        l2: float = 1e-2,
    ) -> Rescorer:
        """Fit by Newton's method with a small L2 penalty (IRLS).

        Parameters
        ----------
        features : numpy.ndarray of shape (n, len(FEATURES))
        correct : numpy.ndarray of shape (n,), bool
        names : tuple of str
            The features to use.
        """
        x = np.asarray(features, dtype=np.float64)[..., cls.columns(names)]
        y = np.asarray(correct, dtype=np.float64)
        mean = x.mean(axis=0)
        scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
        z = np.column_stack([(x - mean) / scale, np.ones(len(x))])
        beta = np.zeros(z.shape[1])
        penalty = np.full(z.shape[1], l2)
        penalty[-1] = 0.0
        for _ in range(50):
            p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -30, 30)))
            gradient = z.T @ (p - y) + penalty * beta
            hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hessian, gradient)
            beta -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(
            names=tuple(names), mean=mean, scale=scale, weights=beta[:-1], bias=float(beta[-1])
        )

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Probability of each candidate: shape of ``features`` (all :data:`FEATURES`)
        without the last axis."""
        x = features[..., self.columns(self.names)]
        logit = ((x - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30)))

    def to_dict(self) -> dict:
        """Plain types, for the model file."""
        return {
            "features": list(self.names),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Rescorer:
        """Inverse of :meth:`to_dict`; every feature must be one this version computes."""
        names = tuple(data["features"])
        cls.columns(names)
        return cls(
            names=names,
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
        )
