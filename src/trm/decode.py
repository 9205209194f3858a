"""From per-position answer distributions to peptides that fit the precursor.

The recursive model answers with one distribution over the vocabulary per position of a
fixed-length window (index 0 = end/pad). A peptide of ``n`` tokens takes positions
``0..n-1``; every later position must say "end". Its score is the sum of the chosen
log-probabilities over *all* positions, so ``exp(score)`` is the model's (uncalibrated)
probability of exactly this answer.

:func:`beam_decode` searches that space position by position, keeping the ``beam_size``
best partial peptides, pruning those already heavier than the precursor allows, and keeps
the best complete peptide whose mass matches the measured precursor within the tolerance
for one of the allowed isotope errors. :func:`greedy_decode` takes the most likely token at
each position and checks nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trm.chem import C13_SPACING, WATER_MASS, Vocabulary


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
        Partial peptides kept per position; 0 selects greedy decoding without the
        precursor check.
    min_residues : int
        Shortest peptide (residue tokens, N-terminal modifications excluded) accepted.
    """

    precursor_tolerance_ppm: float = 20.0
    isotope_errors: tuple[int, int] = (0, 1)
    beam_size: int = 16
    min_residues: int = 4


@dataclass
class DecodedPeptide:
    """The answer for one spectrum.

    Attributes
    ----------
    token_ids : numpy.ndarray of shape (n_tokens,)
        Vocabulary indices, N-terminal modification first when present.
    log_probability : float
        Sum of the chosen log-probabilities over every position (tokens and ends).
    token_probabilities : numpy.ndarray of shape (n_tokens,)
        Probability of each chosen token at its position.
    mass_error_ppm : float
        (peptide mass - precursor mass corrected by the isotope error) / precursor mass.
    isotope_error : int
        Isotope error that made the peptide fit (0 for greedy decoding).
    """

    token_ids: np.ndarray
    log_probability: float
    token_probabilities: np.ndarray
    mass_error_ppm: float
    isotope_error: int


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
    """Smallest absolute ppm error over the isotope errors, and the isotope giving it.

    Shapes broadcast: ``peptide_mass`` (B, K), ``precursor_mass`` (B, 1).
    """
    isotopes = np.arange(isotope_errors[0], isotope_errors[1] + 1)
    corrected = precursor_mass[..., None] - isotopes * C13_SPACING  # (B, 1, I)
    errors = (peptide_mass[..., None] - corrected) / corrected * 1e6  # (B, K, I)
    best = np.argmin(np.abs(errors), axis=-1)
    return np.take_along_axis(errors, best[..., None], axis=-1)[..., 0], isotopes[best]


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


def beam_decode(
    log_probs: np.ndarray,
    precursor_mass: np.ndarray,
    vocabulary: Vocabulary,
    settings: DecodingSettings,
) -> list[DecodedPeptide | None]:
    """Best peptide per spectrum whose mass fits the precursor.

    Parameters
    ----------
    log_probs : numpy.ndarray of shape (batch, length, n_tokens)
        Log-probabilities of the final answer (index 0 = end).
    precursor_mass : numpy.ndarray of shape (batch,)
        Neutral precursor masses in Da.
    vocabulary : Vocabulary
        Supplies token masses and which tokens are N-terminal modifications.
    settings : DecodingSettings

    Returns
    -------
    list of DecodedPeptide or None
        None for a spectrum where no peptide found by the beam fits the precursor.
    """
    if settings.beam_size <= 0:
        return greedy_decode(log_probs, precursor_mass, vocabulary)
    log_probs = np.asarray(log_probs, dtype=np.float64)
    batch, length, n_tokens = log_probs.shape
    beam = settings.beam_size
    token_masses = vocabulary.masses[1:]  # candidates exclude the end class
    residue_token = ~vocabulary.is_nterm[1:]
    precursor = np.asarray(precursor_mass, dtype=np.float64)[:, None]
    # Heaviest peptide mass that can still fit (highest tolerance, lowest isotope error).
    ceiling = (precursor[:, 0] - settings.isotope_errors[0] * C13_SPACING) * (
        1 + settings.precursor_tolerance_ppm * 1e-6
    ) - WATER_MASS
    # suffix_end[:, i]: log-probability that positions i.. all say "end".
    end = log_probs[:, :, vocabulary.pad_id]
    suffix_end = np.concatenate(
        [np.cumsum(end[:, ::-1], axis=1)[:, ::-1], np.zeros((batch, 1))], axis=1
    )

    scores = np.full((batch, beam), -np.inf)
    scores[:, 0] = 0.0
    masses = np.zeros((batch, beam))
    residues = np.zeros((batch, beam), dtype=np.int64)
    paths = np.zeros((batch, beam, length), dtype=np.int64)
    best_score = np.full(batch, -np.inf)
    best_path = np.zeros((batch, length), dtype=np.int64)
    best_length = np.zeros(batch, dtype=np.int64)
    best_isotope = np.zeros(batch, dtype=np.int64)
    best_error = np.zeros(batch)

    for position in range(length + 1):
        # Close every live beam here: the remaining positions say "end".
        if position > 0:
            closing = scores + suffix_end[:, position : position + 1]
            errors, isotopes = _mass_error_ppm(
                masses + WATER_MASS, precursor, settings.isotope_errors
            )
            fits = (np.abs(errors) <= settings.precursor_tolerance_ppm) & (
                residues >= settings.min_residues
            )
            closing = np.where(fits, closing, -np.inf)
            top = np.argmax(closing, axis=1)
            top_score = closing[np.arange(batch), top]
            improved = top_score > best_score
            if improved.any():
                rows = np.nonzero(improved)[0]
                best_score[rows] = top_score[rows]
                best_path[rows] = paths[rows, top[rows]]
                best_length[rows] = position
                best_isotope[rows] = isotopes[rows, top[rows]]
                best_error[rows] = errors[rows, top[rows]]
        if position == length:
            break
        step = log_probs[:, position, 1:]  # (B, V-1)
        candidate = scores[:, :, None] + step[:, None, :]  # (B, K, V-1)
        candidate_mass = masses[:, :, None] + token_masses[None, None, :]
        allowed = candidate_mass <= ceiling[:, None, None]
        if position > 0:
            allowed &= residue_token[None, None, :]
        candidate = np.where(allowed, candidate, -np.inf).reshape(batch, -1)
        keep = np.argpartition(-candidate, beam - 1, axis=1)[:, :beam]
        parent, token = np.divmod(keep, n_tokens - 1)
        rows = np.arange(batch)[:, None]
        scores = candidate[rows, keep]
        masses = candidate_mass.reshape(batch, -1)[rows, keep]
        residues = residues[rows, parent] + residue_token[token]
        paths = paths[rows, parent]
        paths[:, :, position] = token + 1

    results: list[DecodedPeptide | None] = []
    for row in range(batch):
        if not np.isfinite(best_score[row]):
            results.append(None)
            continue
        ids = best_path[row, : best_length[row]]
        results.append(
            DecodedPeptide(
                token_ids=ids.copy(),
                log_probability=float(best_score[row]),
                token_probabilities=np.exp(log_probs[row, np.arange(len(ids)), ids]),
                mass_error_ppm=float(best_error[row]),
                isotope_error=int(best_isotope[row]),
            )
        )
    return results
