"""From per-position answer distributions to peptides that fit the precursor.

The recursive model answers with one distribution over the vocabulary per position of a
fixed-length window (index 0 = end/pad). A peptide of ``n`` tokens takes positions
``0..n-1``; every later position must say "end", and at least the last position does, so
a peptide has at most ``length - 1`` tokens. Its score is the sum of the chosen
log-probabilities over *all* positions, so ``exp(score)`` is the model's (uncalibrated)
probability of exactly this answer.

:func:`search` finds, for every spectrum, the highest-scoring peptides whose mass fits the
measured precursor within the tolerance after one of the allowed isotope errors. It is a
branch-and-bound over positions, vectorised over spectra and beams:

* **Feasibility (knapsack) pruning.** A prefix is extended only when the precursor mass
  left over can still be made of the residues the remaining positions can hold
  (:class:`MassFeasibility`: which residue-mass sums exist, exactly for up to five
  residues and on a 0.01 Da grid widened by the worst rounding beyond, so it never
  rejects a prefix that could be completed). Kept prefixes can therefore nearly always
  still end in a fitting peptide, which is what makes the search answer (almost) every
  spectrum, where a plain beam runs out of fitting candidates.
* **A mass-aware upper bound** on the best completion of a prefix, from a Lagrangian
  relaxation of the mass constraint: for any ``lam``, a completion that fits scores at
  most ``max over completions of sum(log p - lam * mass) + lam * (mass left)`` (with the
  window's width), and the per-position maxima make that a cheap suffix recursion. The
  bound ranks the prefixes (A*-like: score so far plus bound) and is what certifies.
* **Certificate.** Prefixes beyond the beam are dropped; the largest bound of any dropped
  prefix is kept. When the best fitting peptide found scores at least that much, no
  dropped prefix could have led to a better one: the answer is *exactly* the
  highest-scoring fitting peptide of at most ``length - 1`` tokens. Spectra without the
  certificate are searched again with a beam four times wider, up to ``max_beam_size``;
  ``SearchResult.certified`` says which answers are proven. With an unbounded beam the
  search is exhaustive, so the exactness test compares it with brute force.

:func:`greedy_decode` (``beam_size`` 0) takes the most likely token at each position and
checks nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from trm.chem import C13_SPACING, WATER_MASS, Vocabulary

#: Lagrange multipliers (log-probability per Da) of the completion bound; 0 is the plain
#: mass-blind bound, the others tighten it for prefixes whose leftover mass is awkward.
LAGRANGE_MULTIPLIERS: tuple[float, ...] = (-0.2, -0.05, -0.02, 0.0, 0.02, 0.05, 0.2)

#: Grid of :class:`MassFeasibility` (Da).
FEASIBILITY_RESOLUTION = 0.01
#: Up to this many residues, :class:`MassFeasibility` lists every sum exactly.
EXACT_RESIDUES = 5

#: Why a spectrum got no peptide.
REASON_NO_FITTING_LENGTH = "no peptide within the length limit fits the precursor"
REASON_NOT_FOUND = "no fitting peptide found by the search"
REASON_EMPTY = "empty answer (the model predicted no residue)"


@dataclass(frozen=True)
class DecodingSettings:
    """How peptides are chosen from the answer distributions.

    Attributes
    ----------
    precursor_tolerance_ppm : float
        Largest accepted difference between peptide and precursor mass, in ppm.
    isotope_errors : tuple of int
        Lowest and highest isotope error (13C spacings) the precursor may carry.
    beam_size : int
        Prefixes kept per position in the first search; 0 selects greedy decoding without
        the precursor check.
    max_beam_size : int
        Widest beam of the searches repeated for spectra whose answer is not certified.
    n_candidates : int
        Fitting peptides kept per spectrum (best first), for spectrum-match rescoring.
    min_residues : int
        Shortest peptide (residue tokens, N-terminal modifications excluded) accepted.
    """

    precursor_tolerance_ppm: float = 20.0
    isotope_errors: tuple[int, int] = (0, 1)
    beam_size: int = 16
    max_beam_size: int = 256
    n_candidates: int = 8
    min_residues: int = 4

    def __post_init__(self) -> None:
        if self.beam_size < 0 or self.max_beam_size < self.beam_size:
            raise ValueError("beam sizes must satisfy 0 <= beam_size <= max_beam_size")
        if self.n_candidates < 1 or self.min_residues < 1:
            raise ValueError("n_candidates and min_residues must be positive")
        if self.isotope_errors[0] > self.isotope_errors[1]:
            raise ValueError("isotope_errors must be (lowest, highest)")


@dataclass
class DecodedPeptide:
    """One peptide for one spectrum.

    Attributes
    ----------
    token_ids : numpy.ndarray of shape (n_tokens,)
        Vocabulary indices, N-terminal modification first when present.
    log_probability : float
        Sum of the chosen log-probabilities over every position (tokens and ends).
    token_probabilities : numpy.ndarray of shape (n_tokens,)
        Probability of each chosen token at its position.
    mass_error_ppm : float
        (peptide mass - precursor mass corrected by the isotope error) / corrected mass,
        in ppm: positive when the peptide is heavier.
    isotope_error : int
        Isotope error that made the peptide fit (0 for greedy decoding).
    certified : bool
        The search proved no fitting peptide scores higher (False for greedy decoding).
    """

    token_ids: np.ndarray
    log_probability: float
    token_probabilities: np.ndarray
    mass_error_ppm: float
    isotope_error: int
    certified: bool = False


@dataclass
class SearchResult:
    """The fitting peptides of each spectrum.

    Attributes
    ----------
    candidates : list of list of DecodedPeptide
        Per spectrum, up to ``n_candidates`` fitting peptides, best score first; empty
        when none was found.
    reasons : list of str or None
        Per spectrum without a candidate, why (:data:`REASON_NO_FITTING_LENGTH` when it is
        proven that no peptide of the allowed lengths fits, else
        :data:`REASON_NOT_FOUND`); None for the others.
    certified : numpy.ndarray of shape (n,), bool
        Whether the best candidate is proven the highest-scoring fitting peptide.
    beam_sizes : numpy.ndarray of shape (n,)
        Beam of the search that gave each spectrum's answer.
    """

    candidates: list[list[DecodedPeptide]]
    reasons: list[str | None]
    certified: np.ndarray
    beam_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def best(self) -> list[DecodedPeptide | None]:
        """The best-scoring candidate of each spectrum (None without one)."""
        return [c[0] if c else None for c in self.candidates]


def mass_fits_precursor(
    peptide_mass: float | np.ndarray,
    precursor_mass: float | np.ndarray,
    tolerance_ppm: float,
    isotope_errors: tuple[int, int],
) -> np.ndarray:
    """Whether a peptide mass fits a neutral precursor mass within ``tolerance_ppm`` after
    one of the isotope errors (13C spacings) in the inclusive range; broadcasts."""
    isotopes = np.arange(isotope_errors[0], isotope_errors[1] + 1)
    corrected = np.asarray(precursor_mass, dtype=np.float64)[..., None] - isotopes * C13_SPACING
    error = (np.asarray(peptide_mass, dtype=np.float64)[..., None] - corrected) / corrected
    return (np.abs(error) * 1e6 <= tolerance_ppm).any(axis=-1)


def _mass_error_ppm(
    peptide_mass: np.ndarray, precursor_mass: np.ndarray, isotope_errors: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest absolute ppm error over the isotope errors, and the isotope giving it;
    ``peptide_mass`` and ``precursor_mass`` broadcast."""
    isotopes = np.arange(isotope_errors[0], isotope_errors[1] + 1)
    corrected = np.asarray(precursor_mass)[..., None] - isotopes * C13_SPACING
    errors = (np.asarray(peptide_mass)[..., None] - corrected) / corrected * 1e6
    best = np.argmin(np.abs(errors), axis=-1)
    return np.take_along_axis(errors, best[..., None], axis=-1)[..., 0], isotopes[best]


class MassFeasibility:
    """Which sums of residue masses exist.

    :meth:`fillable` asks whether a mass window can be filled by at most a given number of
    residues. Where at most :data:`EXACT_RESIDUES` residues fit in the window's mass (the
    end of a peptide, where it matters most), the answer is exact: every sum of that many
    residues is listed. Beyond, a grid marks the bins that some sum of residue masses,
    each rounded to the grid, falls in, and the window is widened by the largest rounding
    error the residues can accumulate: there the answer may be yes for a window that
    cannot be filled, never no for one that can.

    Parameters
    ----------
    residue_masses : sequence of float
        Masses of the tokens that can fill positions (residues, modified residues).
    max_residues : int
    resolution : float
        Grid spacing (Da).
    """

    def __init__(
        self,
        residue_masses: tuple[float, ...],
        max_residues: int,
        resolution: float = FEASIBILITY_RESOLUTION,
    ) -> None:
        masses = np.unique(np.asarray(residue_masses, dtype=np.float64))
        self.resolution = resolution
        self.lightest = float(masses.min())
        self.heaviest = float(masses.max())
        # Exact sums of exactly k residues, k = 1..EXACT_RESIDUES (sorted, distinct).
        self.exact_sums = [masses]
        for _ in range(EXACT_RESIDUES - 1):
            grown = (self.exact_sums[-1][:, None] + masses[None, :]).ravel()
            self.exact_sums.append(np.unique(np.round(grown, 9)))
        steps = np.unique(np.round(masses / resolution).astype(np.int64))
        size = int(max_residues * steps.max()) + 1
        reachable = np.zeros(size, dtype=bool)
        reach = np.zeros(size, dtype=bool)
        reach[0] = True
        for _ in range(max_residues):
            grown = np.zeros(size, dtype=bool)
            for step in steps:
                grown[step:] |= reach[:-step]
            reachable |= grown
            reach = grown
        #: Reachable bins before each bin: any in [a, b] <=> cumulative[b + 1] > cumulative[a].
        self.cumulative = np.concatenate([[0], np.cumsum(reachable, dtype=np.int32)])
        self.size = size

    def fillable(self, low: np.ndarray, high: np.ndarray, max_count: int) -> np.ndarray:
        """Whether some sum of at most ``max_count`` residues may fall in ``[low, high]``.

        Parameters
        ----------
        low, high : numpy.ndarray
            Window bounds (Da), broadcast together.
        max_count : int
            Most residues available (0: only the empty sum, mass 0, fits).

        Returns
        -------
        numpy.ndarray of bool
            Exact where at most :data:`EXACT_RESIDUES` residues weigh as little as
            ``high``; elsewhere False only where no such sum exists.
        """
        low, high = np.broadcast_arrays(
            np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        )
        out = (low <= 0.0) & (high >= 0.0)  # the empty sum
        # At most this many residues can sum to `high`: each weighs at least `lightest`.
        count = np.minimum(max_count, np.floor(np.maximum(high, 0.0) / self.lightest))
        exact = count <= EXACT_RESIDUES
        for k, sums in enumerate(self.exact_sums, start=1):
            chosen = exact & (count >= k)
            if chosen.any():
                first = np.searchsorted(sums, low[chosen], side="left")
                last = np.searchsorted(sums, high[chosen], side="right")
                out[chosen] |= last > first
        rest = ~exact
        if rest.any():
            slack = count[rest] * (self.resolution / 2) + 1e-9
            first = np.clip(np.floor((low[rest] - slack) / self.resolution), 1, self.size)
            last = np.clip(np.ceil((high[rest] + slack) / self.resolution), 0, self.size - 1)
            first, last = first.astype(np.int64), last.astype(np.int64)
            found = self.cumulative[np.maximum(last + 1, first)] > self.cumulative[first]
            out[rest] |= found & (low[rest] <= max_count * self.heaviest + slack)
        return out


@lru_cache(maxsize=8)
def mass_feasibility(residue_masses: tuple[float, ...], max_residues: int) -> MassFeasibility:
    """A cached :class:`MassFeasibility` (building one takes a fraction of a second)."""
    return MassFeasibility(residue_masses, max_residues)


def greedy_decode(
    log_probs: np.ndarray, precursor_mass: np.ndarray, vocabulary: Vocabulary
) -> list[DecodedPeptide | None]:
    """Most likely token at every position, up to the first end.

    Parameters
    ----------
    log_probs : numpy.ndarray of shape (batch, length, n_tokens)
        Log-probabilities of the final answer.
    precursor_mass : numpy.ndarray of shape (batch,)
        Neutral precursor masses (Da), for the reported mass error only.
    vocabulary : Vocabulary

    Returns
    -------
    list of DecodedPeptide or None
        None where the answer holds no residue: the first position already says "end",
        or only an N-terminal modification precedes it (no peptide to write).
    """
    # An N-terminal modification can only open the peptide.
    masked = log_probs.copy()
    masked[:, 1:, vocabulary.is_nterm] = -np.inf
    best = masked.argmax(axis=-1)
    results: list[DecodedPeptide | None] = []
    for row, ids in enumerate(best):
        n_tokens = int(np.argmax(ids == vocabulary.pad_id)) if (ids == 0).any() else len(ids)
        if not (~vocabulary.is_nterm[ids[:n_tokens]]).any():
            results.append(None)
            continue
        chosen = np.concatenate([ids[:n_tokens], np.zeros(len(ids) - n_tokens, dtype=ids.dtype)])
        picked = log_probs[row, np.arange(len(ids)), chosen]
        mass = vocabulary.masses[ids[:n_tokens]].sum() + WATER_MASS
        error = (mass - precursor_mass[row]) / precursor_mass[row] * 1e6
        results.append(
            DecodedPeptide(
                token_ids=ids[:n_tokens].copy(),
                log_probability=float(picked.sum()),
                token_probabilities=np.exp(picked[:n_tokens]),
                mass_error_ppm=float(error),
                isotope_error=0,
            )
        )
    return results


def _windows(
    precursor_mass: np.ndarray, settings: DecodingSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Residue-mass windows (peptide mass minus water) per isotope error: (B, I) each."""
    isotopes = np.arange(settings.isotope_errors[0], settings.isotope_errors[1] + 1)
    corrected = precursor_mass[:, None] - isotopes[None, :] * C13_SPACING
    tolerance = corrected * settings.precursor_tolerance_ppm * 1e-6
    return corrected - tolerance - WATER_MASS, corrected + tolerance - WATER_MASS


def _completion_bounds(
    log_probs: np.ndarray, end_suffix: np.ndarray, masses: np.ndarray, residue: np.ndarray
) -> np.ndarray:
    """``C[b, i, g]``: best ``sum(log p - lam_g * mass)`` of a completion from position i.

    A completion is some residues (no N-terminal token after position 0) then ends, with
    the last position always an end. Shape (batch, length + 1, n_multipliers).
    """
    batch, length, _ = log_probs.shape
    lam = np.asarray(LAGRANGE_MULTIPLIERS)
    # Best residue at each position for each multiplier: (B, L, G).
    penalised = log_probs[:, :, residue, None] - lam * masses[residue, None]
    best_residue = penalised.max(axis=2)
    bounds = np.zeros((batch, length + 1, len(lam)))
    bounds[:, length - 1] = end_suffix[:, length - 1, None]
    for position in range(length - 2, -1, -1):
        bounds[:, position] = np.maximum(
            end_suffix[:, position, None], best_residue[:, position] + bounds[:, position + 1]
        )
    return bounds


def _bound(
    bounds: np.ndarray, prefix_mass: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Upper bound on the completion score of prefixes with the given residue mass.

    ``bounds`` (B, G) at the next position; ``prefix_mass`` (B, ...); ``low``, ``high``
    (B,) the union of the residue-mass windows. Returns the shape of ``prefix_mass``.
    """
    lam = np.asarray(LAGRANGE_MULTIPLIERS)
    extra = (1,) * (prefix_mass.ndim - 1)
    edge = np.where(lam >= 0, high[:, None], low[:, None])  # (B, G)
    constant = (bounds + lam * edge).reshape(bounds.shape[0], *extra, -1)
    return (constant - lam * prefix_mass[..., None]).min(axis=-1)


def _search_once(
    log_probs: np.ndarray,
    precursor_mass: np.ndarray,
    vocabulary: Vocabulary,
    settings: DecodingSettings,
    beam: int,
) -> tuple[list[list[DecodedPeptide]], np.ndarray, np.ndarray]:
    """One branch-and-bound pass; returns candidates, certified, proven-infeasible."""
    batch, length, n_tokens = log_probs.shape
    max_tokens = length - 1
    masses = vocabulary.masses
    is_nterm = vocabulary.is_nterm
    residue = ~is_nterm & (np.arange(n_tokens) != vocabulary.pad_id)
    feasibility = mass_feasibility(tuple(float(m) for m in masses[residue]), max_tokens)
    low, high = _windows(precursor_mass, settings)  # (B, I)
    union_low, union_high = low.min(axis=1), high.max(axis=1)

    end = log_probs[:, :, vocabulary.pad_id]
    end_suffix = np.concatenate(
        [np.cumsum(end[:, ::-1], axis=1)[:, ::-1], np.zeros((batch, 1))], axis=1
    )
    bounds = _completion_bounds(log_probs, end_suffix, masses, residue)

    rows = np.arange(batch)
    scores = np.full((batch, beam), -np.inf)
    # The empty prefix: alive only when some peptide of the allowed lengths can fit.
    root_fits = np.zeros(batch, dtype=bool)
    for isotope in range(low.shape[1]):
        root_fits |= feasibility.fillable(low[:, isotope], high[:, isotope], max_tokens)
    scores[:, 0] = np.where(root_fits, 0.0, -np.inf)
    prefix_mass = np.zeros((batch, beam))
    n_residues = np.zeros((batch, beam), dtype=np.int64)
    paths = np.zeros((batch, beam, max_tokens), dtype=np.int64)
    pruned = np.full(batch, -np.inf)

    n_keep = settings.n_candidates
    cand_scores = np.full((batch, n_keep), -np.inf)
    cand_paths = np.zeros((batch, n_keep, max_tokens), dtype=np.int64)
    cand_lengths = np.zeros((batch, n_keep), dtype=np.int64)
    cand_mass = np.zeros((batch, n_keep))

    for position in range(max_tokens):
        allowed_tokens = residue | (is_nterm if position == 0 else np.zeros_like(residue))
        tokens = np.nonzero(allowed_tokens)[0]
        child_score = scores[:, :, None] + log_probs[:, position, tokens][:, None, :]
        child_mass = prefix_mass[:, :, None] + masses[tokens]
        child_residues = n_residues[:, :, None] + residue[tokens]
        alive = np.isfinite(child_score)
        # Close here: positions position+1.. say "end".
        if position + 1 >= settings.min_residues:
            closing = child_score + end_suffix[:, position + 1, None, None]
            fits = np.zeros_like(alive)
            for isotope in range(low.shape[1]):
                fits |= (child_mass >= low[:, isotope, None, None]) & (
                    child_mass <= high[:, isotope, None, None]
                )
            fits &= alive & (child_residues >= settings.min_residues)
            closing = np.where(fits, closing, -np.inf).reshape(batch, -1)
            if np.isfinite(closing).any():
                flat_mass = child_mass.reshape(batch, -1)
                take = min(n_keep, closing.shape[1])
                top = np.argpartition(-closing, take - 1, axis=1)[:, :take]
                parent, token_index = np.divmod(top, len(tokens))
                new_paths = paths[rows[:, None], parent].copy()
                new_paths[:, :, position] = tokens[token_index]
                merged_scores = np.concatenate([cand_scores, closing[rows[:, None], top]], axis=1)
                merged_paths = np.concatenate([cand_paths, new_paths], axis=1)
                merged_lengths = np.concatenate(
                    [cand_lengths, np.full((batch, take), position + 1)], axis=1
                )
                merged_mass = np.concatenate([cand_mass, flat_mass[rows[:, None], top]], axis=1)
                order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :n_keep]
                cand_scores = merged_scores[rows[:, None], order]
                cand_paths = merged_paths[rows[:, None], order]
                cand_lengths = merged_lengths[rows[:, None], order]
                cand_mass = merged_mass[rows[:, None], order]
        if position + 1 == max_tokens:
            break
        # Extend: only prefixes whose leftover mass the remaining positions can fill.
        slots = max_tokens - (position + 1)
        feasible = np.zeros_like(alive)
        for isotope in range(low.shape[1]):
            feasible |= feasibility.fillable(
                low[:, isotope, None, None] - child_mass,
                high[:, isotope, None, None] - child_mass,
                slots,
            )
        feasible &= alive
        priority = child_score + _bound(bounds[:, position + 1], child_mass, union_low, union_high)
        priority = np.where(feasible, priority, -np.inf).reshape(batch, -1)
        width = priority.shape[1]
        keep = min(beam, width)
        top = np.argpartition(-priority, keep - 1, axis=1)[:, :keep]
        if keep < width:
            dropped = priority.copy()
            dropped[rows[:, None], top] = -np.inf
            pruned = np.maximum(pruned, dropped.max(axis=1))
        parent, token_index = np.divmod(top, len(tokens))
        chosen = tokens[token_index]
        kept_priority = priority[rows[:, None], top]
        new_scores = np.full((batch, beam), -np.inf)
        new_scores[:, :keep] = np.where(
            np.isfinite(kept_priority),
            child_score.reshape(batch, -1)[rows[:, None], top],
            -np.inf,
        )
        new_mass = np.zeros((batch, beam))
        new_mass[:, :keep] = child_mass.reshape(batch, -1)[rows[:, None], top]
        new_residues = np.zeros((batch, beam), dtype=np.int64)
        new_residues[:, :keep] = child_residues.reshape(batch, -1)[rows[:, None], top]
        new_paths = np.zeros_like(paths)
        new_paths[:, :keep] = paths[rows[:, None], parent]
        new_paths[:, :keep, position] = chosen
        scores, prefix_mass, n_residues, paths = new_scores, new_mass, new_residues, new_paths
        if not np.isfinite(scores).any():
            break

    certified = np.isfinite(cand_scores[:, 0]) & (cand_scores[:, 0] >= pruned)
    infeasible = ~root_fits | (~np.isfinite(cand_scores[:, 0]) & ~np.isfinite(pruned))
    peptide_mass = cand_mass + WATER_MASS
    errors, isotopes = _mass_error_ppm(
        peptide_mass, precursor_mass[:, None], settings.isotope_errors
    )
    out: list[list[DecodedPeptide]] = []
    for row in range(batch):
        found = []
        for rank in range(n_keep):
            if not np.isfinite(cand_scores[row, rank]):
                break
            ids = cand_paths[row, rank, : cand_lengths[row, rank]]
            found.append(
                DecodedPeptide(
                    token_ids=ids.copy(),
                    log_probability=float(cand_scores[row, rank]),
                    token_probabilities=np.exp(log_probs[row, np.arange(len(ids)), ids]),
                    mass_error_ppm=float(errors[row, rank]),
                    isotope_error=int(isotopes[row, rank]),
                    certified=bool(certified[row]) and rank == 0,
                )
            )
        out.append(found)
    return out, certified, infeasible


def search(
    log_probs: np.ndarray,
    precursor_mass: np.ndarray,
    vocabulary: Vocabulary,
    settings: DecodingSettings,
) -> SearchResult:
    """The best fitting peptides of every spectrum (see the module description).

    Parameters
    ----------
    log_probs : numpy.ndarray of shape (batch, length, n_tokens)
        Log-probabilities of the final answer (index 0 = end).
    precursor_mass : numpy.ndarray of shape (batch,)
        Neutral precursor masses in Da.
    vocabulary : Vocabulary
        Supplies token masses and which tokens are N-terminal modifications.
    settings : DecodingSettings
        With ``beam_size`` >= 1 (greedy decoding is :func:`greedy_decode`).

    Returns
    -------
    SearchResult
    """
    if settings.beam_size < 1:
        raise ValueError("search needs beam_size >= 1; greedy decoding is greedy_decode")
    log_probs = np.asarray(log_probs, dtype=np.float64)
    precursor_mass = np.asarray(precursor_mass, dtype=np.float64)
    batch = log_probs.shape[0]
    candidates: list[list[DecodedPeptide]] = [[] for _ in range(batch)]
    certified = np.zeros(batch, dtype=bool)
    infeasible = np.zeros(batch, dtype=bool)
    beam_sizes = np.zeros(batch, dtype=np.int64)
    todo = np.arange(batch)
    beam = settings.beam_size
    while todo.size:
        found, proven, impossible = _search_once(
            log_probs[todo], precursor_mass[todo], vocabulary, settings, beam
        )
        for index, row in enumerate(todo):
            # A wider beam never loses what a narrower one found: keep the better list.
            if not candidates[row] or (
                found[index]
                and found[index][0].log_probability >= candidates[row][0].log_probability
            ):
                candidates[row] = found[index]
                beam_sizes[row] = beam
        certified[todo] = proven
        infeasible[todo] = impossible
        if beam >= settings.max_beam_size:
            break
        todo = todo[~proven & ~impossible]
        beam = min(beam * 4, settings.max_beam_size)
    for row in range(batch):
        if candidates[row] and candidates[row][0].certified != certified[row]:
            candidates[row][0].certified = bool(certified[row])
    reasons = [
        None if candidates[row] else
        (REASON_NO_FITTING_LENGTH if infeasible[row] else REASON_NOT_FOUND)
        for row in range(batch)
    ]  # fmt: skip
    return SearchResult(candidates, reasons, certified, beam_sizes)
