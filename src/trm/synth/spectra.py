"""Synthetic spectra: MS2PIP intensities on trm.fragments m/z, as spectrum tables.

Each batch of peptidoforms goes through ms2pip's features and XGBoost model once
(:class:`trm.synth.ms2pip_models.Ms2pipPredictor`, intensities identical to
``ms2pip.predict_batch``); the m/z of every fragment comes from :mod:`trm.fragments` on
:mod:`trm.chem`'s mass table (not from ms2pip's), so synthetic peaks sit exactly where
the model's mass arithmetic expects them. The result is the internal spectrum table
(:data:`trm.io.table.SPECTRUM_SCHEMA`) plus ground-truth annotation columns, one
annotation per peak:

``ion_type`` (list of str)
    ``"b"`` or ``"y"``.
``ion_number`` (list of int16)
    Residues in the fragment (b3 -> 3).
``ion_charge`` (list of int8)
    Fragment charge; 2 only for models with doubly charged ion types and precursors of
    charge >= 3.

Peaks are sorted by m/z. Intensities are ms2pip's TIC-normalised predictions scaled to a
base peak of 1; fragments predicted at ms2pip's floor (intensity 0) are left out, as an
instrument would not record them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from trm.chem import (
    KNOWN_MODIFICATIONS,
    STANDARD_RESIDUES,
    mass_to_mz,
    peptide_mass,
    token_mass,
    tokens_to_proforma,
)
from trm.fragments import fragment_ladders, ion_mz, max_fragment_charge
from trm.io.table import SPECTRUM_SCHEMA
from trm.synth.ms2pip_models import Ms2pipPredictor

#: ms2pip 4 rejects peptides longer than this (``ms2pip._utils.psm_input``).
MS2PIP_MAX_PEPTIDE_LENGTH = 100
#: Shortest peptide :class:`~trm.synth.ms2pip_models.Ms2pipPredictor` predicts.
MS2PIP_MIN_PEPTIDE_LENGTH = 4
#: ms2pip's pseudo-count: it predicts log2(TIC-normalised intensity + this).
MS2PIP_PSEUDO_COUNT = 0.001

#: Annotation columns added to the spectrum schema.
ANNOTATION_SCHEMA: dict[str, pl.DataType] = {
    "ion_type": pl.List(pl.String()),
    "ion_number": pl.List(pl.Int16()),
    "ion_charge": pl.List(pl.Int8()),
}

#: Full schema of a synthetic shard.
SYNTHETIC_SCHEMA: dict[str, pl.DataType] = {**SPECTRUM_SCHEMA, **ANNOTATION_SCHEMA}

#: ms2pip's prediction floor, log2 of its pseudo-count, as stored in its float32 output.
_LOG2_FLOOR = np.float32(np.log2(MS2PIP_PSEUDO_COUNT))

#: ms2pip ion type -> (series, fragment charge).
_ION_TYPES: dict[str, tuple[str, int]] = {
    "b": ("b", 1),
    "y": ("y", 1),
    "b2": ("b", 2),
    "y2": ("y", 2),
}

#: Every token the vocabulary can hold: residues, modified residues and N-terminal
#: modifications of :data:`trm.chem.KNOWN_MODIFICATIONS`.
_ALL_TOKENS = (
    *STANDARD_RESIDUES,
    *(
        f"[{m.name}]-" if site == "N-term" else f"{site}[{m.name}]"
        for m in KNOWN_MODIFICATIONS
        for site in m.targets
    ),
)


def _mass_shift(token: str) -> str:
    mass = token_mass(token) - (0.0 if token.endswith("-") else token_mass(token[0]))
    shift = f"[{mass:+.4f}]"
    return f"{shift}-" if token.endswith("-") else f"{token[0]}{shift}"


_MASS_SHIFT_TOKEN: dict[str, str] = {t: _mass_shift(t) for t in _ALL_TOKENS if "[" in t}


@dataclass(frozen=True)
class Peptidoform:
    """A modified peptide at one precursor charge, as vocabulary tokens."""

    tokens: tuple[str, ...]
    charge: int

    @property
    def n_residues(self) -> int:
        """Residues, not counting an N-terminal modification token."""
        return sum(not token.endswith("-") for token in self.tokens)

    @property
    def proforma(self) -> str:
        """ProForma without charge (``PEPTC[Carbamidomethyl]K``), parsing back to the
        same tokens (a modification joining two Unimod names is written as its mass)."""
        return tokens_to_proforma(self.tokens)


def precursor_mz(tokens: Sequence[str], charge: int) -> float:
    """Precursor m/z of [M+zH]z+, from the same mass table as the fragments."""
    return float(mass_to_mz(peptide_mass(tokens), charge))


def ms2pip_proforma(peptidoform: Peptidoform) -> str:
    """Mass-shift ProForma with charge, as ms2pip hands peptides to ``ms2rescore_rs``.

    Modifications become ``[+57.0215]`` with four decimals, the format of
    ``ms2pip._spectrum_processing.proforma_to_mass_shift``, with masses from trm.chem.
    """
    text = "".join(_MASS_SHIFT_TOKEN.get(token, token) for token in peptidoform.tokens)
    return f"{text}/{peptidoform.charge}"


def _list_column(values: np.ndarray, offsets: np.ndarray, dtype: pl.DataType) -> pl.Series:
    array = pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(values))
    return pl.Series(values=array).cast(dtype)


def build_spectra(
    peptidoforms: Sequence[Peptidoform],
    predictions: Sequence[dict[str, np.ndarray] | None],
    spectrum_ids: Sequence[str],
    scans: Sequence[int],
    run: str,
) -> tuple[pl.DataFrame, Counter]:
    """Spectrum table of one batch from ms2pip predictions.

    Parameters
    ----------
    peptidoforms : sequence of Peptidoform
    predictions : sequence of dict or None
        Per peptidoform, ms2pip's ``predicted_intensity``: ion type (``b``, ``y``,
        ``b2``, ``y2``) -> array of shape (n_residues - 1,) with log2(TIC-normalised
        intensity + 0.001), ions in b1.. / y1.. order. None for a peptidoform ms2pip
        rejected; it is counted and left out.
    spectrum_ids, scans : sequences of the same length
    run : str

    Returns
    -------
    table : polars.DataFrame
        :data:`SYNTHETIC_SCHEMA` columns, one row per predicted spectrum.
    skipped : Counter
        Reason -> number of peptidoforms left out.
    """
    skipped: Counter = Counter()
    kept: list[int] = []
    mz_parts: list[np.ndarray] = []
    log_parts: list[np.ndarray] = []
    type_parts: list[np.ndarray] = []
    number_parts: list[np.ndarray] = []
    charge_parts: list[np.ndarray] = []
    owner_parts: list[int] = []
    precursors: list[float] = []
    for index, (peptidoform, prediction) in enumerate(zip(peptidoforms, predictions, strict=True)):
        if prediction is None:
            skipped["rejected by ms2pip"] += 1
            continue
        b_mass, y_mass = fragment_ladders(peptidoform.tokens)
        numbers = np.arange(1, len(b_mass) + 1, dtype=np.int16)
        for ion_type, log_intensity in prediction.items():
            series, fragment_charge = _ION_TYPES[ion_type]
            if fragment_charge > max_fragment_charge(peptidoform.charge):
                continue
            neutral = b_mass if series == "b" else y_mass
            mz_parts.append(ion_mz(neutral, fragment_charge))
            log_parts.append(log_intensity)
            type_parts.append(np.full(len(neutral), series == "y", dtype=bool))
            number_parts.append(numbers)
            charge_parts.append(np.full(len(neutral), fragment_charge, dtype=np.int8))
            owner_parts.append(len(kept))
        kept.append(index)
        precursors.append(precursor_mz(peptidoform.tokens, peptidoform.charge))
    if not kept:
        return pl.DataFrame(schema=SYNTHETIC_SCHEMA), skipped

    # spectrum (row of the table) of every peak
    peak_owner = np.repeat(
        np.asarray(owner_parts, dtype=np.int64), [len(part) for part in mz_parts]
    )

    mz = np.concatenate(mz_parts)
    log_intensity = np.concatenate(log_parts)
    intensity = np.exp2(log_intensity.astype(np.float64)) - MS2PIP_PSEUDO_COUNT
    is_y = np.concatenate(type_parts)
    number = np.concatenate(number_parts)
    fragment_charge = np.concatenate(charge_parts)

    # drop peaks at ms2pip's floor (compared in log space: 2**floor - 0.001 is only
    # zero up to rounding), then order peaks by spectrum and m/z
    present = (log_intensity > _LOG2_FLOOR) & (intensity > 0)
    order = np.lexsort((mz[present], peak_owner[present]))
    owner = peak_owner[present][order]
    mz = mz[present][order]
    intensity = intensity[present][order]
    is_y = is_y[present][order]
    number = number[present][order]
    fragment_charge = fragment_charge[present][order]

    counts = np.bincount(owner, minlength=len(kept))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    base_peak = np.maximum.reduceat(intensity, offsets[:-1]) if len(intensity) else np.zeros(0)
    # a spectrum with no peak above the floor would make reduceat read its neighbour
    base_peak = np.where(counts > 0, base_peak, 1.0)
    intensity = intensity / np.repeat(base_peak, counts)
    empty = counts == 0
    if empty.any():
        skipped["no fragment above ms2pip's floor"] += int(empty.sum())

    table = pl.DataFrame(
        {
            "spectrum_id": [spectrum_ids[i] for i in kept],
            "run": [run] * len(kept),
            "scan": [scans[i] for i in kept],
            "precursor_mz": precursors,
            "charge": [peptidoforms[i].charge for i in kept],
            "rt": [None] * len(kept),
            "mz": _list_column(mz.astype(np.float32), offsets, SPECTRUM_SCHEMA["mz"]),
            "intensity": _list_column(
                intensity.astype(np.float32), offsets, SPECTRUM_SCHEMA["intensity"]
            ),
            "peptide": [peptidoforms[i].proforma for i in kept],
            "ion_type": _list_column(
                np.where(is_y, "y", "b"), offsets, ANNOTATION_SCHEMA["ion_type"]
            ),
            "ion_number": _list_column(number, offsets, ANNOTATION_SCHEMA["ion_number"]),
            "ion_charge": _list_column(fragment_charge, offsets, ANNOTATION_SCHEMA["ion_charge"]),
        },
        schema=SYNTHETIC_SCHEMA,
    )
    if empty.any():
        table = table.filter(pl.Series(~empty))
    return table, skipped


def predict_spectra(
    peptidoforms: Sequence[Peptidoform],
    spectrum_ids: Sequence[str],
    scans: Sequence[int],
    run: str,
    predictor: Ms2pipPredictor,
) -> tuple[pl.DataFrame, Counter]:
    """Predict one batch with ms2pip and build its spectrum table.

    Parameters
    ----------
    peptidoforms : sequence of Peptidoform
    spectrum_ids, scans : sequences of the same length
    run : str
    predictor : Ms2pipPredictor
        The instrument's ms2pip model, loaded once per data set.

    Returns
    -------
    table : polars.DataFrame
    skipped : Counter
    """
    too_long = [p.n_residues > MS2PIP_MAX_PEPTIDE_LENGTH for p in peptidoforms]
    valid = [p for p, rejected in zip(peptidoforms, too_long, strict=True) if not rejected]
    predicted = iter(predictor.predict([ms2pip_proforma(p) for p in valid]))
    predictions = [None if rejected else next(predicted) for rejected in too_long]
    return build_spectra(peptidoforms, predictions, spectrum_ids, scans, run)
