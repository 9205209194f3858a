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
``intensity_cosine``, ``intensity_correlation``
    How the observed intensities of the candidate's singly charged b and y ions (0 where
    no peak matches) agree with the intensities MS2PIP predicts for it
    (:func:`intensity_features`): the cosine of their square roots, and the Pearson
    correlation of their logarithms. Two readings that explain the same peaks, such as
    the two orders of residues whose cleavage left no ion, differ here: fragmentation
    favours some bonds (before a proline, after an aspartate) and not others.

The model decoder's candidates have no graph features (0), the graph decoder's no model
features: a rescorer uses the features of its decoder (:data:`DECODER_FEATURES`), and the
intensity features where the sequencer predicts intensities.
:class:`Rescorer` combines them by logistic regression into the probability that the
candidate is the right peptide; ``trm calibrate`` fits it on labelled spectra that look
like the lab's. The answer is the best candidate by that probability, or, where the
rescorer has a *choice* (``trm calibrate --predicted-intensities``, graph and hybrid
decoders), the best by a second linear score fitted to tell each spectrum's right
candidate from its other ones (a conditional logit over :data:`CHOICE_FEATURES`;
:meth:`Rescorer.choose`), the probability staying the answer's score. The choice reads
the spectrum match, the graph score and the predicted intensities, not the model's
scores: the recursion starts from the graph's best path and often keeps it with a
confident score when it is wrong (an N split into G+G), so on a proteome it was not
trained on its score ranks the candidates worse than the evidence does. Measured
(``benchmarks/results/rescoring_choice.md``): far better on MS2PIP-made spectra, which
flatter the intensity features, and within a few spectra on real ones, so it is not the
default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

#: The features :func:`intensity_features` fills.
INTENSITY_FEATURES: tuple[str, ...] = ("intensity_cosine", "intensity_correlation")
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
    *INTENSITY_FEATURES,
)
_MODEL = FEATURES[:8]
_MATCH = ("fragment_coverage", "explained_intensity", "longest_ladder", "n_residues",
          "relative_mass_error")  # fmt: skip
#: The features each decoder's rescorer uses.
DECODER_FEATURES: dict[str, tuple[str, ...]] = {
    "model": _MODEL,
    "graph": (*_MATCH, "graph_score", "graph_gap"),
    "hybrid": FEATURES[:12],
    "hybrid+forced": FEATURES[:15],
}
#: The features of the choice among a spectrum's candidates (:meth:`Rescorer.choose`).
CHOICE_FEATURES: tuple[str, ...] = (
    "fragment_coverage",
    "explained_intensity",
    "relative_mass_error",
    "graph_score",
    "graph_gap",
    *INTENSITY_FEATURES,
)
#: The teacher-forced hybrid decoder's choice (:meth:`Choice.fixed`): the graph score plus
#: the model's teacher-forced log-likelihood, unweighted, the sum ``trm pretrain
#: --rank-graph-score`` trains the model's score to complete (candidates the model did not
#: score carry the floor :data:`UNSCORABLE_LOG_PROBABILITY`).
FORCED_CHOICE: tuple[str, ...] = ("graph_score", "forced_log_probability")
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

    row_base, sorted_peaks, sorted_intensity = _flat_peaks(mz, intensity, counts)
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


def _flat_peaks(
    mz: np.ndarray, intensity: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of all spectra in one sorted array, spectrum ``s`` shifted by ``s *
    _ROW_OFFSET`` (padding sorts last with intensity 0): the (B, 1) shifts, the flat m/z
    and the flat intensities."""
    batch, width = mz.shape
    row_base = (np.arange(batch) * _ROW_OFFSET)[:, None]
    peak_real = np.arange(width)[None, :] < counts[:, None]
    peaks = np.where(peak_real, mz, _ROW_OFFSET / 2) + row_base
    order = np.argsort(peaks, axis=1)
    sorted_peaks = np.take_along_axis(peaks, order, axis=1).ravel()
    sorted_intensity = np.where(peak_real, intensity, 0.0)
    sorted_intensity = np.take_along_axis(sorted_intensity, order, axis=1).ravel()
    return row_base, sorted_peaks, sorted_intensity


def intensity_features(
    candidates: list[list[DecodedPeptide]],
    mz: np.ndarray,
    intensity: np.ndarray,
    counts: np.ndarray,
    charge: np.ndarray,
    vocabulary: Vocabulary,
    predictor: Any,
    fragment_tolerance_da: float,
    n_candidates: int,
) -> np.ndarray:
    """The :data:`INTENSITY_FEATURES` of every candidate (0 where MS2PIP predicts nothing).

    Parameters
    ----------
    candidates, mz, intensity, counts, charge, vocabulary, fragment_tolerance_da, n_candidates
        As :func:`match_features`.
    predictor : trm.synth.ms2pip_models.Ms2pipPredictor
        Predicts each candidate's b and y ion intensities at its precursor charge.

    Returns
    -------
    numpy.ndarray of shape (B, n_candidates, 2)
    """
    from trm.synth.spectra import (
        MS2PIP_MAX_PEPTIDE_LENGTH,
        MS2PIP_MIN_PEPTIDE_LENGTH,
        MS2PIP_PSEUDO_COUNT,
        Peptidoform,
        ms2pip_proforma,
    )

    out = np.zeros((len(candidates), n_candidates, len(INTENSITY_FEATURES)))
    where = [
        (row, rank)
        for row, peptides in enumerate(candidates)
        for rank, peptide in enumerate(peptides[:n_candidates])
        if MS2PIP_MIN_PEPTIDE_LENGTH
        <= int((~vocabulary.is_nterm[peptide.token_ids]).sum())
        <= MS2PIP_MAX_PEPTIDE_LENGTH
    ]
    if not where:
        return out
    predicted = predictor.predict([
        ms2pip_proforma(Peptidoform(
            tuple(vocabulary.decode(candidates[row][rank].token_ids)), int(charge[row])))
        for row, rank in where
    ])  # fmt: skip
    masses, _ = _padded_candidates(candidates, vocabulary, n_candidates)
    prefix, suffix = (neutral[:, :, :-1] for neutral in cleavage_masses(masses))
    row_base, sorted_peaks, sorted_intensity = _flat_peaks(mz, intensity, counts)
    observed = []
    for neutral in (prefix, suffix):
        query = ion_mz(neutral, 1) + row_base[:, :, None]
        nearest, found = nearest_peaks(sorted_peaks, query.ravel(), fragment_tolerance_da)
        observed.append(np.where(found, sorted_intensity[nearest], 0.0).reshape(query.shape))
    # Per predicted candidate, its ions b1.. then y1.. (padded): observed and predicted.
    n_ions = np.array([2 * len(ions["b"]) for ions in predicted])
    seen = np.zeros((len(where), int(n_ions.max())))
    expected = np.zeros_like(seen)
    for index, ((row, rank), ions) in enumerate(zip(where, predicted, strict=True)):
        n_sites = len(ions["b"])
        # b ions by site are b1..; y ions by site run from the longest: y1.. reversed
        seen[index, :n_sites] = observed[0][row, rank, :n_sites]
        seen[index, n_sites : 2 * n_sites] = observed[1][row, rank, n_sites - 1 :: -1]
        expected[index, : 2 * n_sites] = np.r_[ions["b"], ions["y"]]
    mask = np.arange(seen.shape[1])[None, :] < n_ions[:, None]
    expected = np.where(mask, np.maximum(2.0**expected - MS2PIP_PSEUDO_COUNT, 0.0), 0.0)
    total_seen, total_expected = seen.sum(axis=1), expected.sum(axis=1)
    usable = (total_seen > 0) & (total_expected > 0)
    root_seen, root_expected = np.sqrt(seen), np.sqrt(expected)
    norms = np.linalg.norm(root_seen, axis=1) * np.linalg.norm(root_expected, axis=1)
    cosine = (root_seen * root_expected).sum(axis=1) / np.where(usable, norms, 1.0)
    # Pearson correlation of the log intensities over each candidate's own ions
    logs = []
    for values, total in ((seen, total_seen), (expected, total_expected)):
        floor = MS2PIP_PSEUDO_COUNT
        logged = np.log2(values / np.where(total > 0, total, 1.0)[:, None] + floor)
        centred = logged - (logged * mask).sum(axis=1, keepdims=True) / n_ions[:, None]
        logs.append(np.where(mask, centred, 0.0))
    spread = np.sqrt((logs[0] ** 2).sum(axis=1) * (logs[1] ** 2).sum(axis=1))
    correlation = (logs[0] * logs[1]).sum(axis=1) / np.where(spread > 0, spread, 1.0)
    rows, ranks = np.array(where).T
    out[rows, ranks, 0] = np.where(usable, cosine, 0.0)
    out[rows, ranks, 1] = np.where(usable & (spread > 1e-12), correlation, 0.0)
    return out


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


def feature_columns(names: tuple[str, ...]) -> list[int]:
    """Positions of the named features in :data:`FEATURES`; a clear error for a name this
    version does not compute (a model file from another version)."""
    unknown = [name for name in names if name not in FEATURES]
    if unknown:
        raise ValueError(
            f"the model file's rescorer uses features {unknown} this trm does not compute "
            f"({list(FEATURES)}): recalibrate the model (trm calibrate)"
        )
    return [FEATURES.index(name) for name in names]


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale (standard deviation, 1 where constant) of each column."""
    spread = x.std(axis=0)
    return x.mean(axis=0), np.where(spread > 1e-9, spread, 1.0)


@dataclass(frozen=True)
class _LinearScore:
    """A linear function of standardised features (the rescorer's and the choice's part).

    Attributes
    ----------
    names : tuple of str
        The features it reads, a subset of :data:`FEATURES`.
    mean, scale : numpy.ndarray of shape (n_features,)
        Standardisation of the features.
    weights : numpy.ndarray of shape (n_features,)
    """

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    def linear(self, features: np.ndarray) -> np.ndarray:
        """The weighted sum over standardised features: shape of ``features`` (all
        :data:`FEATURES`) without the last axis."""
        x = features[..., feature_columns(self.names)]
        return ((x - self.mean) / self.scale) @ self.weights

    def to_dict(self) -> dict:
        """Plain types, for the model file."""
        return {
            "features": list(self.names),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
        }

    @staticmethod
    def fields(data: dict) -> dict:
        """The base fields from :meth:`to_dict`'s output; every feature must be one this
        version computes."""
        names = tuple(data["features"])
        feature_columns(names)
        return {
            "names": names,
            "mean": np.asarray(data["mean"], dtype=np.float64),
            "scale": np.asarray(data["scale"], dtype=np.float64),
            "weights": np.asarray(data["weights"], dtype=np.float64),
        }


@dataclass(frozen=True)
class Choice(_LinearScore):
    """A linear score that ranks one spectrum's candidates (a conditional logit).

    Fitted on spectra whose candidates hold the right peptide, to make it the most
    probable under a softmax over the spectrum's candidates; unlike the rescorer's
    probability it does not learn what tells spectra apart (how much evidence a spectrum
    has), only what tells a spectrum's candidates apart.

    Its features are usually :data:`CHOICE_FEATURES`.
    """

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        present: np.ndarray,
        correct: np.ndarray,
        names: tuple[str, ...] = CHOICE_FEATURES,
        l2: float = 1.0,
    ) -> Choice | None:
        """Fit on spectra with a right candidate and another one; None when there are
        none.

        Maximises the log of the softmax probability of the right candidates (several
        where they read alike, I for L) with an L2 penalty, by Newton steps on the
        softmax's covariance (Fisher scoring) with step halving.

        Parameters
        ----------
        features : numpy.ndarray of shape (n, n_candidates, len(FEATURES))
        present, correct : numpy.ndarray of shape (n, n_candidates), bool
        """
        usable = (correct & present).any(axis=1) & (present.sum(axis=1) > 1)
        if not usable.any():
            return None
        x = np.asarray(features, dtype=np.float64)[usable][..., feature_columns(names)]
        live, right = present[usable], (correct & present)[usable]
        mean, scale = _standardisation(x[live])
        z = np.where(live[..., None], (x - mean) / scale, 0.0)

        def loss(w: np.ndarray) -> float:
            logits = np.where(live, z @ w, -np.inf)
            chosen = np.where(right, logits, -np.inf)
            return float((_logsumexp(logits) - _logsumexp(chosen)).sum() + 0.5 * l2 * w @ w)

        w = np.zeros(len(names))
        current = loss(w)
        for _ in range(100):
            logits = np.where(live, z @ w, -np.inf)
            p = np.exp(logits - _logsumexp(logits)[:, None])
            q = np.where(
                right, np.exp(logits - _logsumexp(np.where(right, logits, -np.inf))[:, None]), 0.0
            )
            mean_p = np.einsum("sn,snf->sf", p, z)
            gradient = (mean_p - np.einsum("sn,snf->sf", q, z)).sum(axis=0) + l2 * w
            covariance = np.einsum("sn,snf,sng->fg", p, z, z) - mean_p.T @ mean_p
            step = np.linalg.solve(covariance + l2 * np.eye(len(w)), gradient)
            size = 1.0
            while size > 1e-4 and loss(w - size * step) > current:
                size /= 2
            if size <= 1e-4:
                break
            w = w - size * step
            previous, current = current, loss(w)
            if previous - current < 1e-9 * max(1.0, abs(previous)):
                break
        return cls(names=tuple(names), mean=mean, scale=scale, weights=w)

    @classmethod
    def fixed(cls, names: tuple[str, ...] = FORCED_CHOICE) -> Choice:
        """The unweighted sum of raw features, fitted on nothing (:data:`FORCED_CHOICE`)."""
        n = len(names)
        return cls(names=tuple(names), mean=np.zeros(n), scale=np.ones(n), weights=np.ones(n))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Score of each candidate: shape of ``features`` (all :data:`FEATURES`) without
        the last axis; comparable within a spectrum only."""
        return self.linear(features)

    @classmethod
    def from_dict(cls, data: dict) -> Choice:
        """Inverse of :meth:`to_dict`."""
        return cls(**cls.fields(data))


def _logsumexp(values: np.ndarray) -> np.ndarray:
    """log(sum(exp)) along the last axis; -inf where every entry is."""
    top = values.max(axis=-1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(values - safe[..., None]).sum(axis=-1)) + safe


@dataclass(frozen=True)
class Rescorer(_LinearScore):
    """Logistic regression from features to the probability a candidate is right.

    Attributes
    ----------
    names, mean, scale, weights
        As :class:`_LinearScore` (the features of its decoder).
    bias : float
    choice : Choice or None
        Ranks each spectrum's candidates for the answer (:meth:`choose`); None: the
        most probable candidate is the answer.
    """

    bias: float
    choice: Choice | None = None

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
        x = np.asarray(features, dtype=np.float64)[..., feature_columns(names)]
        y = np.asarray(correct, dtype=np.float64)
        mean, scale = _standardisation(x)
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
        logit = self.linear(features) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30)))

    def choose(self, features: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Index of each spectrum's answer among its present candidates (0 where none):
        the best by :attr:`choice`, else the most probable.

        Parameters
        ----------
        features : numpy.ndarray of shape (B, N, len(FEATURES))
        present : numpy.ndarray of shape (B, N), bool
        """
        score = self(features) if self.choice is None else self.choice(features)
        return np.where(present, score, -np.inf).argmax(axis=1)

    @property
    def uses_intensities(self) -> bool:
        """Whether it reads :data:`INTENSITY_FEATURES` (its sequencer must predict them)."""
        names = set(self.names) | set(() if self.choice is None else self.choice.names)
        return bool(names & set(INTENSITY_FEATURES))

    def to_dict(self) -> dict:
        """Plain types, for the model file."""
        data = {**super().to_dict(), "bias": self.bias}
        if self.choice is not None:
            data["choice"] = self.choice.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Rescorer:
        """Inverse of :meth:`to_dict`; every feature must be one this version computes."""
        return cls(
            **cls.fields(data),
            bias=float(data["bias"]),
            choice=Choice.from_dict(data["choice"]) if "choice" in data else None,
        )
