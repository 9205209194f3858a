"""What each peak of a labelled spectrum is, given its peptide.

:func:`annotate_spectrum` assigns every peak of a real spectrum with a known peptide to one
category, in this order of precedence (the first that matches within the fragment
tolerance wins):

``by``
    A b or y ion at charge 1..min(z - 1, 2) (charge 1 for z = 1).
``isotope``
    The first 13C isotope peak (+1.00336 / charge) of a b/y ion assigned above.
``a``
    An a ion (b - CO) at the charge of a theoretical b ion.
``loss``
    A b/y ion that lost water or ammonia.
``precursor``
    The precursor at any charge 1..z, intact or minus water or ammonia, or its isotopes.
``immonium``
    The immonium ion (residue - CO + H+) of a residue of the peptide.
``unexplained``
    Everything else (internal ions, other charges, co-isolated peptides, chemical noise).

The fitted noise models (:mod:`trm.synth.noise_fit`) are estimated from these
annotations; the same function measures how real synthetic spectra look
(``benchmarks/noise_realism.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trm import fragments as fragments_module
from trm.chem import C13_SPACING, peptide_mass, token_mass
from trm.fragments import (
    A_ION_LOSS,
    NEUTRAL_LOSSES,
    SERIES_B,
    Fragments,
    fragment_charges,
    ion_mz,
    nearest_peaks,
    theoretical_fragments,
)

#: Peak categories, in order of precedence.
CATEGORIES: tuple[str, ...] = (
    "by",
    "isotope",
    "a",
    "loss",
    "precursor",
    "immonium",
    "unexplained",
)
CATEGORY_INDEX: dict[str, int] = {name: i for i, name in enumerate(CATEGORIES)}


def immonium_mz(token: str) -> float | None:
    """m/z of a residue token's immonium ion (residue - CO + H+); None for an N-terminal
    modification token."""
    if token.endswith("-"):
        return None
    return fragments_module.immonium_mz(token_mass(token))


@dataclass
class SpectrumAnnotation:
    """Every peak of one spectrum assigned to a category, and the b/y ions found.

    Attributes
    ----------
    category : numpy.ndarray of shape (n_peaks,), int8
        Index into :data:`CATEGORIES`.
    fragments : Fragments
        The theoretical b/y ions.
    fragment_peak : numpy.ndarray of shape (n_fragments,), int64
        Peak matched by each fragment, -1 when none.
    isotope_peak, loss_h2o_peak, loss_nh3_peak, a_peak : numpy.ndarray of shape (n_fragments,)
        Peak assigned as that fragment's isotope, water loss, ammonia loss and (b ions
        only) a ion, -1 when none.
    precursor_kind : numpy.ndarray of shape (n_peaks,), int8
        For precursor peaks: ``3 * (z - c) + loss`` (``c`` the peak's charge, loss 0 intact,
        1 water, 2 ammonia); isotopes of the precursor count as their monoisotopic kind.
        -1 elsewhere.
    immonium_token : list of str or None
        For immonium peaks the residue token they come from; None elsewhere.
    reference_intensity : float
        Summed intensity of the singly charged b/y peaks (0 when none matched): other
        intensities are modelled relative to it. A sum, not the most intense peak, so that
        the intensity noise of single ions barely moves it.
    """

    category: np.ndarray
    fragments: Fragments
    fragment_peak: np.ndarray
    isotope_peak: np.ndarray
    loss_h2o_peak: np.ndarray
    loss_nh3_peak: np.ndarray
    a_peak: np.ndarray
    precursor_kind: np.ndarray
    immonium_token: list[str | None]
    reference_intensity: float


def _claim(
    peaks_mz: np.ndarray,
    free: np.ndarray,
    query: np.ndarray,
    tolerance: float,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Peaks still free that match the queries; marks them taken. -1 where none."""
    out = np.full(len(query), -1, dtype=np.int64)
    if len(query) == 0:
        return out
    index, found = nearest_peaks(peaks_mz, query, tolerance)
    found &= free[index]
    if eligible is not None:
        found &= eligible
    # one peak serves one query: the first in query order
    order = np.nonzero(found)[0]
    _, first = np.unique(index[order], return_index=True)
    chosen = order[first]
    out[chosen] = index[chosen]
    free[index[chosen]] = False
    return out


def annotate_spectrum(
    mz: np.ndarray,
    intensity: np.ndarray,
    tokens: Sequence[str],
    precursor_charge: int,
    tolerance: float,
) -> SpectrumAnnotation:
    """Assign every peak of a spectrum to one category (see the module description).

    Parameters
    ----------
    mz, intensity : numpy.ndarray of shape (n_peaks,)
        Peaks in ascending m/z.
    tokens : sequence of str
        The spectrum's peptide as vocabulary tokens.
    precursor_charge : int
    tolerance : float
        Fragment m/z tolerance (Da).

    Returns
    -------
    SpectrumAnnotation
    """
    mz = np.asarray(mz, dtype=np.float64)
    intensity = np.asarray(intensity, dtype=np.float64)
    n_peaks = len(mz)
    free = np.ones(n_peaks, dtype=bool)
    category = np.full(n_peaks, CATEGORY_INDEX["unexplained"], dtype=np.int8)
    fragments = theoretical_fragments(tokens, fragment_charges(precursor_charge))

    fragment_peak = _claim(mz, free, fragments.mz, tolerance)
    category[fragment_peak[fragment_peak >= 0]] = CATEGORY_INDEX["by"]
    matched = fragment_peak >= 0
    charge = fragments.charge.astype(np.float64)

    isotope_peak = _claim(mz, free, fragments.mz + C13_SPACING / charge, tolerance, matched)
    category[isotope_peak[isotope_peak >= 0]] = CATEGORY_INDEX["isotope"]
    is_b = fragments.series == SERIES_B
    a_peak = _claim(mz, free, fragments.mz - A_ION_LOSS / charge, tolerance, is_b)
    category[a_peak[a_peak >= 0]] = CATEGORY_INDEX["a"]
    loss_h2o_peak, loss_nh3_peak = (
        _claim(mz, free, fragments.mz - loss / charge, tolerance, matched)
        for loss in NEUTRAL_LOSSES
    )
    for peaks in (loss_h2o_peak, loss_nh3_peak):
        category[peaks[peaks >= 0]] = CATEGORY_INDEX["loss"]

    neutral = peptide_mass(tokens)
    precursor_kind = np.full(n_peaks, -1, dtype=np.int8)
    kinds, queries = [], []
    for c in range(int(precursor_charge), 0, -1):
        for loss, delta in enumerate((0.0, *NEUTRAL_LOSSES)):
            kind = 3 * (int(precursor_charge) - c) + loss
            for isotope in range(3):
                kinds.append(kind)
                queries.append(ion_mz(neutral - delta + isotope * C13_SPACING, c))
    peaks = _claim(mz, free, np.array(queries), tolerance)
    for kind, peak in zip(kinds, peaks, strict=True):
        if peak >= 0:
            precursor_kind[peak] = kind
            category[peak] = CATEGORY_INDEX["precursor"]

    immonium_token: list[str | None] = [None] * n_peaks
    residues = sorted({t for t in tokens if not t.endswith("-")})
    immonium = np.array([immonium_mz(t) for t in residues], dtype=np.float64)
    peaks = _claim(mz, free, immonium, tolerance)
    for token, peak in zip(residues, peaks, strict=True):
        if peak >= 0:
            immonium_token[peak] = token
            category[peak] = CATEGORY_INDEX["immonium"]

    single = matched & (fragments.charge == 1)
    reference = float(intensity[fragment_peak[single]].sum())
    return SpectrumAnnotation(
        category=category,
        fragments=fragments,
        fragment_peak=fragment_peak,
        isotope_peak=isotope_peak,
        loss_h2o_peak=loss_h2o_peak,
        loss_nh3_peak=loss_nh3_peak,
        a_peak=a_peak,
        precursor_kind=precursor_kind,
        immonium_token=immonium_token,
        reference_intensity=reference,
    )
