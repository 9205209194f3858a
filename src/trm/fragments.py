"""Fragment ions: the one place their masses, charges and peak matches are worked out.

A cleavage site splits a peptide into an N-terminal part (its residues and the N-terminal
modification) and a C-terminal part. With ``prefix`` and ``suffix`` the residue-mass sums
of the two parts, the site's ions have these neutral masses:

====================  ===================================
b                     ``prefix``
y                     ``suffix + H2O``
a                     ``b - CO``
neutral losses        ``b - H2O``, ``b - NH3``, ``y - H2O``, ``y - NH3``
first 13C isotope     ``+ C13_SPACING``
====================  ===================================

and, with ``M`` the neutral peptide (precursor) mass, ``b + y = M`` for the two ions of
one site (:func:`complement`). An ion of charge ``z`` is seen at
``(neutral + z * proton) / z`` (:func:`ion_mz`).

**Fragment charges.** A precursor of charge ``z`` gives fragments of charge 1 up to
``min(z - 1, 2)`` (1 for ``z = 1``): the complementary fragment keeps at least one charge,
and fragments above 2+ are rare enough in HCD/CID spectra to be left out
(:func:`fragment_charges`, :func:`max_fragment_charge`).

The arithmetic functions take Python floats, numpy arrays or torch tensors alike, so the
model (torch), the spectrum simulation and annotation (numpy) and the decoders share one
implementation. Peak lookups (:func:`nearest_peaks`) are numpy; the model's differentiable
lookup is :class:`trm.model.evidence.PeakIndex`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trm.chem import CO_MASS, NH3_MASS, PROTON_MASS, WATER_MASS, token_mass

#: Highest fragment charge considered.
MAX_FRAGMENT_CHARGE = 2
#: Neutral losses of b and y ions, in the order the noise models store them.
NEUTRAL_LOSSES: tuple[float, float] = (WATER_MASS, NH3_MASS)
#: Mass an a ion weighs less than the b ion of the same site.
A_ION_LOSS: float = CO_MASS

#: Ion series codes of :class:`Fragments` (0 is kept for "no fragment").
SERIES_B, SERIES_Y = 1, 2


def fragment_charges(precursor_charge: int) -> tuple[int, ...]:
    """Fragment charges considered for a precursor charge: 1..min(z - 1, 2), at least 1."""
    return tuple(range(1, max(1, min(int(precursor_charge) - 1, MAX_FRAGMENT_CHARGE)) + 1))


def max_fragment_charge(precursor_charge: Any) -> Any:
    """Highest fragment charge of each precursor charge, ``min(z - 1, 2)`` and at least 1.

    Parameters
    ----------
    precursor_charge : numpy.ndarray or torch.Tensor
        Precursor charges, any shape.

    Returns
    -------
    Array or tensor of the same shape and kind.
    """
    if hasattr(precursor_charge, "clamp"):  # a torch tensor
        return (precursor_charge - 1).clamp(1, MAX_FRAGMENT_CHARGE)
    return np.clip(np.asarray(precursor_charge) - 1, 1, MAX_FRAGMENT_CHARGE)


def ion_mz(neutral_mass: Any, charge: Any) -> Any:
    """m/z of an ion of this neutral mass carrying ``charge`` protons; broadcasts."""
    return (neutral_mass + charge * PROTON_MASS) / charge


def ion_neutral_mass(mz: Any, charge: Any) -> Any:
    """Neutral mass of an ion seen at ``mz`` with ``charge`` protons; broadcasts."""
    return mz * charge - charge * PROTON_MASS


def complement(neutral_mass: Any, precursor_mass: Any) -> Any:
    """Neutral mass of the other ion of the same cleavage site (b <-> y): ``M - neutral``."""
    return precursor_mass - neutral_mass


def singly_charged_complement(mz: Any, precursor_mass: Any) -> Any:
    """m/z of the singly charged complement of a singly charged ion: ``M - mz + 2 proton``."""
    return precursor_mass - mz + 2 * PROTON_MASS


def cleavage_masses(residue_masses: Any) -> tuple[Any, Any]:
    """Neutral b and y masses of every cleavage site, from per-position residue masses.

    Parameters
    ----------
    residue_masses : numpy.ndarray or torch.Tensor of shape (..., length)
        Mass of each position, N-terminal modification folded into the first (it only
        shifts b ions); 0 after the peptide end.

    Returns
    -------
    b, y : arrays or tensors of shape (..., length)
        ``b[..., i]``: the residues through position ``i``; ``y[..., i]``: the residues
        after ``i``, plus water (same site, so ``b + y = M``). Entries from the last
        residue on are not cleavage sites (there ``b`` is the whole peptide): callers mask
        them.
    """
    b = residue_masses.cumsum(-1)
    return b, b[..., -1:] - b + WATER_MASS


def fragment_ladders(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Neutral b and y ion masses of a tokenised peptide, by ion number.

    Parameters
    ----------
    tokens : sequence of str
        Vocabulary tokens; an N-terminal modification token (``[Acetyl]-``) adds to every
        b ion.

    Returns
    -------
    b, y : numpy.ndarray of shape (n_residues - 1,)
        ``b[i]`` is the neutral mass of b(i+1), ``y[i]`` of y(i+1).
    """
    masses = np.array([token_mass(t) for t in tokens], dtype=np.float64)
    nterm = np.array([t.endswith("-") for t in tokens], dtype=bool)
    residues = masses[~nterm]
    b = np.cumsum(residues)[:-1] + masses[nterm].sum()
    y = np.cumsum(residues[::-1])[:-1] + WATER_MASS
    return b, y


def fragment_mz(tokens: Sequence[str], charges: Sequence[int] = (1,)) -> dict[str, np.ndarray]:
    """Theoretical b and y ion m/z of a tokenised peptide.

    Returns
    -------
    dict
        ``{"b1": array, "y1": array, "b2": ...}`` for each charge: arrays of shape
        (n_residues - 1,), b ions from the N-terminus (b1, b2, ...), y ions likewise from
        the C-terminus (y1, y2, ...).
    """
    b, y = fragment_ladders(tokens)
    out: dict[str, np.ndarray] = {}
    for z in charges:
        out[f"b{z}"] = ion_mz(b, z)
        out[f"y{z}"] = ion_mz(y, z)
    return out


@dataclass
class Fragments:
    """Theoretical b and y ions of a peptide.

    Attributes
    ----------
    mz : numpy.ndarray of shape (n,)
    series : numpy.ndarray of shape (n,), int8
        :data:`SERIES_B` or :data:`SERIES_Y`.
    number : numpy.ndarray of shape (n,), int16
        Residues in the fragment (b3 -> 3).
    charge : numpy.ndarray of shape (n,), int8
    """

    mz: np.ndarray
    series: np.ndarray
    number: np.ndarray
    charge: np.ndarray

    def __len__(self) -> int:
        return len(self.mz)


def theoretical_fragments(tokens: Sequence[str], charges: Sequence[int]) -> Fragments:
    """b and y ions of a tokenised peptide at the given fragment charges, b then y for
    each charge in turn."""
    b, y = fragment_ladders(tokens)
    numbers = np.arange(1, len(b) + 1, dtype=np.int16)
    parts = []
    for z in charges:
        parts.append((ion_mz(b, z), SERIES_B, numbers, z))
        parts.append((ion_mz(y, z), SERIES_Y, numbers, z))
    return Fragments(
        mz=np.concatenate([p[0] for p in parts]),
        series=np.concatenate([np.full(len(p[0]), p[1], dtype=np.int8) for p in parts]),
        number=np.concatenate([p[2] for p in parts]),
        charge=np.concatenate([np.full(len(p[0]), p[3], dtype=np.int8) for p in parts]),
    )


def immonium_mz(residue_mass: Any) -> Any:
    """m/z of the immonium ion of a residue of this mass (residue - CO + proton)."""
    return residue_mass - CO_MASS + PROTON_MASS


def nearest_peaks(
    peaks_mz: np.ndarray, query: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest peak of each query m/z and whether it lies within tolerance.

    Of two equally near peaks the lower one is taken.

    Parameters
    ----------
    peaks_mz : numpy.ndarray of shape (n_peaks,), ascending
        (Several spectra can be searched at once as one array, each shifted into an m/z
        range of its own.)
    query : numpy.ndarray of shape (n_queries,)
    tolerance : float
        Largest accepted |peak - query| (Da).

    Returns
    -------
    index : numpy.ndarray of shape (n_queries,), int64 (0 when there is no peak)
    found : numpy.ndarray of shape (n_queries,), bool
    """
    if len(peaks_mz) == 0 or len(query) == 0:
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    right = np.clip(np.searchsorted(peaks_mz, query), 1, len(peaks_mz) - 1)
    left = right - 1
    if len(peaks_mz) == 1:
        left = right = np.zeros_like(right)
    use_left = np.abs(peaks_mz[left] - query) <= np.abs(peaks_mz[right] - query)
    index = np.where(use_left, left, right)
    return index, np.abs(peaks_mz[index] - query) <= tolerance
