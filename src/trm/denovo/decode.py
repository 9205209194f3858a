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
  (:class:`MassFeasibility`: which residue-mass sums exist with how few residues, exactly
  for up to six residues and on a fine grid widened by the worst rounding beyond, so it
  never rejects a prefix that could be completed). Kept prefixes can therefore nearly always
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
  highest-scoring fitting peptide of at most ``length - 1`` tokens;
  ``SearchResult.certified`` says which answers are proven. Spectra without any fitting
  peptide found (and, with ``retry_uncertified``, those without the certificate) are
  searched again with a beam four times wider, up to ``max_beam_size``. With an unbounded
  beam the search is exhaustive, so the exactness test compares it with brute force.

:func:`greedy_decode` (``beam_size`` 0) takes the most likely token at each position and
checks nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from trm.chem import C13_SPACING, WATER_MASS, Vocabulary, precursor_mass_error_ppm
from trm.instrument import DEFAULT_PRECURSOR_TOLERANCE_PPM

#: Lagrange multipliers (log-probability per Da) of the completion bound; 0 is the plain
#: mass-blind bound, the others tighten it for prefixes whose leftover mass is awkward.
LAGRANGE_MULTIPLIERS: tuple[float, ...] = (-0.1, -0.03, -0.01, 0.0, 0.01, 0.03, 0.1)
_BLIND = LAGRANGE_MULTIPLIERS.index(0.0)

#: Up to this many residues, :class:`MassFeasibility` lists every sum exactly; beyond, it
#: marks them on a grid whose spacing (Da) is chosen in this range so that the residue
#: masses sit as close to grid points as possible.
EXACT_RESIDUES = 7
FEASIBILITY_RESOLUTION_RANGE = (0.003, 0.005)

#: Added to the bound of dropped prefixes (computed in float32) before it is compared
#: with the best answer for the certificate.
BOUND_MARGIN = 1e-3

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
        Widest beam of the searches repeated (each four times wider) for spectra the first
        found no fitting peptide for.
    retry_uncertified : bool
        Repeat the search also for spectra whose answer is not certified (slower; more
        answers proven best).
    n_candidates : int
        Fitting peptides kept per spectrum (best first), for spectrum-match rescoring.
    tokens_per_position : int
        Most likely tokens tried at each position to extend a prefix, 0 for all (every
        token is tried to close one); prefixes through the others are dropped under a
        shared bound. Fewer is faster but finds fewer fitting peptides.
    min_residues : int
        Shortest peptide (residue tokens, N-terminal modifications excluded) accepted.
    """

    precursor_tolerance_ppm: float = DEFAULT_PRECURSOR_TOLERANCE_PPM
    isotope_errors: tuple[int, int] = (0, 1)
    beam_size: int = 16
    max_beam_size: int = 1024
    retry_uncertified: bool = False
    n_candidates: int = 8
    tokens_per_position: int = 0
    min_residues: int = 4

    def __post_init__(self) -> None:
        if self.beam_size < 0 or self.max_beam_size < self.beam_size:
            raise ValueError("beam sizes must satisfy 0 <= beam_size <= max_beam_size")
        if self.n_candidates < 1 or self.min_residues < 1:
            raise ValueError("n_candidates and min_residues must be positive")
        if self.tokens_per_position < 0:
            raise ValueError("tokens_per_position must be 0 (all) or positive")
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
        Sum of the chosen log-probabilities over every position (tokens and ends); NaN
        when no model scored it (the graph decoder alone).
    token_probabilities : numpy.ndarray of shape (n_tokens,)
        Probability of each chosen token at its position (under the graph decoder alone:
        the logistic of the graph score of the cleavage after it).
    mass_error_ppm : float
        Observed minus theoretical, in ppm: (precursor mass corrected by the isotope
        error - peptide mass) / corrected precursor mass; positive when the precursor is
        heavier.
    isotope_error : int
        Isotope error that made the peptide fit (0 for greedy decoding).
    certified : bool
        The search proved no fitting peptide scores higher (False for greedy decoding).
    graph_score : float
        The spectrum-graph decoder's score (:mod:`trm.graph.decoder`); NaN when not scored.
    source : str
        Who proposed it: ``model`` (this search), ``graph`` (the graph decoder's best
        paths) or ``graph+model``.
    forced_log_probability, forced_halt_probability : float
        The model's log-likelihood of the peptide and its halting probability when the
        peptide itself is the draft of one supervision step
        (:meth:`trm.model.PeptideTRM.score_answers`); NaN when not scored.
    """

    token_ids: np.ndarray
    log_probability: float
    token_probabilities: np.ndarray
    mass_error_ppm: float
    isotope_error: int
    certified: bool = False
    graph_score: float = float("nan")
    source: str = "model"
    forced_log_probability: float = float("nan")
    forced_halt_probability: float = float("nan")


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


class MassFeasibility:
    """Which sums of residue masses exist, and with how few residues.

    :meth:`fillable` asks whether a mass window can be filled by at most a given number of
    residues. Where at most :data:`EXACT_RESIDUES` residues fit in the window's mass (the
    end of a peptide, where it matters most), the answer is exact: every sum of that many
    residues is listed. Beyond, a grid holds for each bin the fewest residues whose
    masses, each rounded to the grid, sum into it, and the window is widened by the
    largest rounding error the residues can accumulate. So the answer may be yes for a
    window that cannot be filled, never no for one that can. (Residue masses all carry a
    small positive mass defect, so even at a kilodalton many windows cannot be filled:
    the grid is what finds them.)

    Parameters
    ----------
    residue_masses : sequence of float
        Masses of the tokens that can fill positions (residues, modified residues).
    max_residues : int
        Most residues of a peptide.
    """

    def __init__(self, residue_masses: tuple[float, ...], max_residues: int) -> None:
        masses = np.unique(np.asarray(residue_masses, dtype=np.float64))
        # The spacing whose grid points lie nearest the residue masses: the rounding error
        # a residue adds (and so the widening per residue) is then smallest.
        spacings = np.linspace(*FEASIBILITY_RESOLUTION_RANGE, 20001)
        errors = np.abs(masses[None, :] / spacings[:, None] - np.round(
            masses[None, :] / spacings[:, None])) * spacings[:, None]  # fmt: skip
        best = int(np.argmin(errors.max(axis=1)))
        resolution = float(spacings[best])
        #: Largest rounding error (Da) one residue adds on the grid.
        self.rounding = float(errors[best].max())
        self.resolution = resolution
        self.lightest = float(masses.min())
        self.heaviest = float(masses.max())
        # Exact sums of at most k residues, k = 0..EXACT_RESIDUES (sorted, distinct).
        exactly = [np.zeros(1)]
        self.exact_sums = [np.zeros(1)]
        for _ in range(EXACT_RESIDUES):
            grown = (exactly[-1][:, None] + masses[None, :]).ravel()
            exactly.append(np.unique(np.round(grown, 9)))
            self.exact_sums.append(np.union1d(self.exact_sums[-1], exactly[-1]))
        steps = np.unique(np.round(masses / resolution).astype(np.int64))
        size = int(max_residues * steps.max()) + 1
        min_count = np.full(size, 255, dtype=np.uint8)
        min_count[0] = 0
        reach = np.zeros(size, dtype=bool)
        reach[0] = True
        for count in range(1, max_residues + 1):
            grown = np.zeros(size, dtype=bool)
            for step in steps:
                grown[step:] |= reach[:-step]
            min_count[grown & (min_count == 255)] = count
            reach = grown
        # Sparse table of range minima: level j holds the minimum over 2**j bins.
        self._levels = [min_count]
        while (2 << len(self._levels)) <= 256:
            previous, width = self._levels[-1], 1 << (len(self._levels) - 1)
            self._levels.append(np.minimum(previous[:-width], previous[width:]))
        self.size = size

    def _range_min(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Fewest residues over the bins ``first..last`` (inclusive; first <= last)."""
        width = last - first + 1
        level = np.minimum(np.floor(np.log2(width)).astype(np.int64), len(self._levels) - 1)
        out = np.full(first.shape, 255, dtype=np.uint8)
        for j in np.unique(level):
            chosen = level == j
            table = self._levels[j]
            left, right = first[chosen], last[chosen] - (1 << j) + 1
            smallest = np.minimum(table[left], table[right])
            # Windows wider than twice the largest level: also scan the middle blocks.
            start = left + (1 << j)
            while np.any(start < right):
                inside = start < right
                smallest[inside] = np.minimum(smallest[inside], table[start[inside]])
                start = start + (1 << j)
            out[chosen] = smallest
        return out

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
        out = np.zeros(low.shape, dtype=bool)
        # At most this many residues can sum to `high`: each weighs at least `lightest`.
        count = np.minimum(max_count, np.floor(np.maximum(high, 0.0) / self.lightest))
        exact = count <= EXACT_RESIDUES
        for k in np.unique(count[exact]).astype(int):
            chosen = exact & (count == k)
            sums = self.exact_sums[k]
            first = np.searchsorted(sums, low[chosen], side="left")
            last = np.searchsorted(sums, high[chosen], side="right")
            out[chosen] = last > first
        grid = ~exact
        if grid.any():
            slack = count[grid] * self.rounding + 1e-9
            first = np.floor((low[grid] - slack) / self.resolution).astype(np.int64)
            last = np.ceil((high[grid] + slack) / self.resolution).astype(np.int64)
            first, last = np.maximum(first, 1), np.minimum(last, self.size - 1)
            inside = first <= last
            found = np.zeros(first.shape, dtype=bool)
            found[inside] = self._range_min(first[inside], last[inside]) <= max_count
            out[grid] |= found
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
        error = (precursor_mass[row] - mass) / precursor_mass[row] * 1e6
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
    (B,) the union of the residue-mass windows. Returns the shape of ``prefix_mass``, in
    float32 (see :data:`BOUND_MARGIN`).
    """
    lam = np.asarray(LAGRANGE_MULTIPLIERS, dtype=np.float32)
    extra = (1,) * (prefix_mass.ndim - 1)
    edge = np.where(lam >= 0, high[:, None], low[:, None])  # (B, G)
    constant = (bounds + lam * edge).astype(np.float32).reshape(bounds.shape[0], *extra, -1)
    return (constant - lam * prefix_mass[..., None].astype(np.float32)).min(axis=-1)


def _keep_feasible(
    priority: np.ndarray,
    mass: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    feasibility: MassFeasibility,
    slots: int,
    keep: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``keep`` prefixes of highest priority that can still be completed to fit.

    Completability (the knapsack test) is the costly part, so it is asked in order of
    priority: first of the ``2 * (keep + 1)`` best of each spectrum, then, for spectra
    where that did not find ``keep + 1`` completable ones, of all. The answer is the one
    testing every prefix would give.

    Parameters
    ----------
    priority : numpy.ndarray of shape (B, W)
        Score so far plus completion bound; -inf for dead prefixes.
    mass : numpy.ndarray of shape (B, W)
        Their residue masses.
    low, high : numpy.ndarray of shape (B, I)
        Residue-mass windows per isotope error.
    feasibility : MassFeasibility
    slots : int
        Positions left for residues.
    keep : int
        Prefixes to keep (at most W).

    Returns
    -------
    best : numpy.ndarray of shape (B, keep)
        Columns of the kept prefixes (any columns where fewer are completable).
    kept_priority : numpy.ndarray of shape (B, keep)
        Their priorities; -inf in the slots of none.
    dropped : numpy.ndarray of shape (B,)
        Highest priority of a completable prefix not kept (-inf for none).
    """
    batch, width = priority.shape

    def completable(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        candidate = mass[rows[:, None], columns]
        possible = np.zeros(candidate.shape, dtype=bool)
        for isotope in range(low.shape[1]):
            possible |= feasibility.fillable(
                low[rows, isotope, None] - candidate, high[rows, isotope, None] - candidate, slots
            )
        return possible & np.isfinite(priority[rows[:, None], columns])

    def choose(rows: np.ndarray, columns: np.ndarray) -> None:
        # ``columns`` in descending priority: keep the first ``keep`` completable ones.
        ok = completable(rows, columns)
        rank = np.cumsum(ok, axis=1)
        kept = ok & (rank <= keep)
        slot = np.argsort(~kept, axis=1, kind="stable")[:, :keep]
        chosen = np.take_along_axis(columns, slot, axis=1)
        best[rows] = chosen
        kept_priority[rows] = np.where(
            np.take_along_axis(kept, slot, axis=1), priority[rows[:, None], chosen], -np.inf
        )
        following = ok & (rank == keep + 1)
        after = np.take_along_axis(columns, following.argmax(axis=1)[:, None], axis=1)[:, 0]
        dropped[rows] = np.where(following.any(axis=1), priority[rows, after], -np.inf)
        found[rows] = rank[:, -1] if rank.shape[1] else 0

    def by_priority(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        values = priority[rows[:, None], columns]
        return np.take_along_axis(columns, np.argsort(-values, axis=1, kind="stable"), axis=1)

    best = np.zeros((batch, keep), dtype=np.int64)
    kept_priority = np.full((batch, keep), -np.inf)
    dropped = np.full(batch, -np.inf)
    found = np.zeros(batch, dtype=np.int64)
    rows = np.arange(batch)
    first = min(width, 2 * (keep + 1))
    if first < width:
        columns = np.argpartition(-priority, first - 1, axis=1)[:, :first]
        choose(rows, by_priority(rows, columns))
        # Spectra whose first look found too few: the rest of their prefixes may hold more
        # (only finite priorities can).
        again = (found < keep + 1) & (np.isfinite(priority).sum(axis=1) > first)
        rows = rows[again]
    if rows.size:
        columns = np.broadcast_to(np.arange(width), (rows.size, width))
        choose(rows, by_priority(rows, columns))
    return best, kept_priority, dropped


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
    # The empty prefix: alive only when some peptide of the allowed lengths can fit, with
    # or without an N-terminal modification.
    root_fits = np.zeros(batch, dtype=bool)
    for isotope in range(low.shape[1]):
        for offset, slots in [(0.0, max_tokens)] + [(m, max_tokens - 1) for m in masses[is_nterm]]:
            root_fits |= feasibility.fillable(
                low[:, isotope] - offset, high[:, isotope] - offset, slots
            )
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
        # Extend with each position's most likely tokens only: the others' children are
        # dropped, under one shared bound (their best log-probability plus the mass-blind
        # completion bound), which keeps the certificate valid.
        slots = max_tokens - (position + 1)
        n_try = len(tokens)
        if settings.tokens_per_position > 0:
            n_try = min(settings.tokens_per_position, n_try)
        step = log_probs[:, position, tokens]  # (B, V')
        order = np.argsort(-step, axis=1, kind="stable")
        tried, untried = order[:, :n_try], order[:, n_try:]
        if untried.shape[1]:
            best_untried = step[rows[:, None], untried].max(axis=1)
            blind = bounds[:, position + 1, _BLIND]
            pruned = np.maximum(pruned, scores.max(axis=1) + best_untried + blind + BOUND_MARGIN)
        flat = tried[:, None, :] + (np.arange(beam) * len(tokens))[None, :, None]  # (B, K, T)
        flat = flat.reshape(batch, -1)
        ext_score = child_score.reshape(batch, -1)[rows[:, None], flat]
        ext_mass = child_mass.reshape(batch, -1)[rows[:, None], flat]
        priority = ext_score + _bound(bounds[:, position + 1], ext_mass, union_low, union_high)
        width = priority.shape[1]
        keep = min(beam, width)
        best, kept_priority, dropped = _keep_feasible(
            priority, ext_mass, low, high, feasibility, slots, keep
        )
        if keep < width:
            # The bound is computed in float32: a margin keeps the certificate safe.
            pruned = np.maximum(pruned, dropped + BOUND_MARGIN)
        top = flat[rows[:, None], best]
        parent, token_index = np.divmod(top, len(tokens))
        chosen = tokens[token_index]
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
    errors, isotopes = precursor_mass_error_ppm(
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
    threads: int = 1,
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
    threads : int
        Parts of the batch searched at once (numpy releases the GIL in its array work).

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
        found, proven, impossible = _search_parts(
            log_probs[todo], precursor_mass[todo], vocabulary, settings, beam, threads
        )
        for index, row in enumerate(todo):
            # A wider beam never loses what a narrower one found: keep the better list.
            previous = candidates[row]
            if not previous or (
                found[index] and found[index][0].log_probability >= previous[0].log_probability
            ):
                candidates[row] = found[index]
                beam_sizes[row] = beam
        certified[todo] = proven
        infeasible[todo] = impossible
        if beam >= settings.max_beam_size:
            break
        again = np.array([not candidates[row] for row in todo], dtype=bool)
        if settings.retry_uncertified:
            again |= ~proven
        todo = todo[again & ~impossible]
        beam = min(beam * 4, settings.max_beam_size)
    for row in range(batch):
        if candidates[row]:
            candidates[row][0].certified = bool(certified[row])
    reasons = [
        None if candidates[row] else
        (REASON_NO_FITTING_LENGTH if infeasible[row] else REASON_NOT_FOUND)
        for row in range(batch)
    ]  # fmt: skip
    return SearchResult(candidates, reasons, certified, beam_sizes)


def _search_parts(
    log_probs: np.ndarray,
    precursor_mass: np.ndarray,
    vocabulary: Vocabulary,
    settings: DecodingSettings,
    beam: int,
    threads: int,
) -> tuple[list[list[DecodedPeptide]], np.ndarray, np.ndarray]:
    """:func:`_search_once` over ``threads`` parts of the batch at once."""
    batch = log_probs.shape[0]
    parts = min(max(threads, 1), batch)
    if parts <= 1:
        return _search_once(log_probs, precursor_mass, vocabulary, settings, beam)
    bounds = np.linspace(0, batch, parts + 1).astype(int)
    slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    with ThreadPoolExecutor(parts) as pool:
        results = list(
            pool.map(
                lambda part: _search_once(
                    log_probs[part], precursor_mass[part], vocabulary, settings, beam
                ),
                slices,
            )
        )
    return (
        [peptides for result in results for peptides in result[0]],
        np.concatenate([result[1] for result in results]),
        np.concatenate([result[2] for result in results]),
    )
