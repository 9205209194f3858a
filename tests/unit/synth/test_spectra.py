"""Synthetic spectrum tables: precursor m/z against pyteomics' independent arithmetic,
the ms2pip peptide format, and peaks carrying their annotation."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.pyteomics_reference import PEPTIDES, modx, pyteomics_mz
from trm.chem import parse_peptidoform
from trm.fragments import fragment_mz
from trm.synth.spectra import Peptidoform, build_spectra, ms2pip_proforma, precursor_mz


@pytest.mark.parametrize("proforma", PEPTIDES)
@pytest.mark.parametrize("charge", [2, 3, 4])
def test_precursor_mz_matches_pyteomics(proforma: str, charge: int) -> None:
    tokens, _ = parse_peptidoform(proforma)
    sequence, acetyl = modx(tokens)
    expected = pyteomics_mz(sequence, "M", charge, acetyl)
    assert abs(precursor_mz(tokens, charge) - expected) < 1e-4


def test_mass_shift_proforma_is_what_ms2pip_builds() -> None:
    from ms2pip._spectrum_processing import proforma_to_mass_shift
    from psm_utils import Peptidoform as PsmPeptidoform

    for proforma in PEPTIDES:
        tokens, _ = parse_peptidoform(proforma)
        ours = ms2pip_proforma(Peptidoform(tuple(tokens), 3))
        assert ours == proforma_to_mass_shift(PsmPeptidoform(f"{proforma}/3"))


def _fake_prediction(n_ions: int, ion_types: list[str]) -> dict[str, np.ndarray]:
    # distinct log2 intensities so every peak is kept and traceable
    return {
        ion_type: np.linspace(-6, -1, n_ions).astype(np.float32) - k
        for k, ion_type in enumerate(ion_types)
    }


def test_table_peaks_carry_their_annotation() -> None:
    tokens, _ = parse_peptidoform(PEPTIDES[1])
    peptidoforms = [Peptidoform(tuple(tokens), 2), Peptidoform(tuple(tokens), 3)]
    n_ions = len(tokens) - 1
    predictions = [_fake_prediction(n_ions, ["b", "y", "b2", "y2"]) for _ in peptidoforms]
    table, skipped = build_spectra(peptidoforms, predictions, ["a", "b"], [0, 1], "run")
    assert not skipped
    for row in table.iter_rows(named=True):
        mz = np.asarray(row["mz"])
        assert np.all(np.diff(mz) >= 0)
        assert max(row["intensity"]) == pytest.approx(1.0)
        # doubly charged fragments only from precursors of charge >= 3
        expected_charges = {1} if row["charge"] == 2 else {1, 2}
        assert set(row["ion_charge"]) == expected_charges
        ladder = fragment_mz(tokens, charges=(1, 2))
        for peak, series, number, z in zip(
            mz, row["ion_type"], row["ion_number"], row["ion_charge"], strict=True
        ):
            assert abs(peak - ladder[f"{series}{z}"][number - 1]) < 5e-4  # float32 storage
        assert row["precursor_mz"] == pytest.approx(precursor_mz(tokens, row["charge"]))


def test_floor_peaks_are_dropped_and_rejected_counted() -> None:
    tokens, _ = parse_peptidoform(PEPTIDES[0])
    n_ions = len(tokens) - 1
    prediction = _fake_prediction(n_ions, ["b", "y"])
    prediction["b"][:3] = np.log2(0.001)  # ms2pip's floor: intensity 0
    peptidoforms = [Peptidoform(tuple(tokens), 2)] * 2
    table, skipped = build_spectra(peptidoforms, [prediction, None], ["a", "b"], [0, 1], "run")
    assert table.height == 1
    assert skipped == {"rejected by ms2pip": 1}
    assert len(table["mz"][0]) == 2 * n_ions - 3
