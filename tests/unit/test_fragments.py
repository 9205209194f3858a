"""trm.fragments: ion masses against pyteomics' independent arithmetic, the fragment-charge
rule, the numpy and torch faces agreeing, and the nearest-peak lookup."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from pyteomics import mass

from tests.unit.pyteomics_reference import PEPTIDES, modx, pyteomics_mz
from trm import chem, fragments
from trm.chem import parse_peptidoform


@pytest.mark.parametrize("proforma", PEPTIDES)
@pytest.mark.parametrize("charge", [1, 2])
def test_ladders_match_pyteomics(proforma: str, charge: int) -> None:
    tokens, _ = parse_peptidoform(proforma)
    b_neutral, y_neutral = fragments.fragment_ladders(tokens)
    sequence, acetyl = modx(tokens)
    units = re.findall(r"[a-z]*[A-Z]", sequence)  # one modX residue with its modification
    n = len(units)
    for i in range(1, n):
        expected_b = pyteomics_mz("".join(units[:i]), "b", charge, acetyl)
        expected_y = pyteomics_mz("".join(units[i:]), "y", charge, False)
        assert abs(fragments.ion_mz(b_neutral[i - 1], charge) - expected_b) < 1e-4
        assert abs(fragments.ion_mz(y_neutral[n - i - 1], charge) - expected_y) < 1e-4


@pytest.mark.parametrize("sequence", ["PEPTIDEK", "LGGNEQVTR", "GTFIIDPGGVIR"])
def test_fragment_mz_matches_pyteomics(sequence):
    tokens, _ = parse_peptidoform(sequence)
    ions = fragments.fragment_mz(tokens, charges=(1, 2))
    for z in (1, 2):
        b = [mass.fast_mass(sequence[:i], ion_type="b", charge=z) for i in range(1, len(sequence))]
        y = [mass.fast_mass(sequence[-i:], ion_type="y", charge=z) for i in range(1, len(sequence))]
        np.testing.assert_allclose(ions[f"b{z}"], b, atol=1e-6)
        np.testing.assert_allclose(ions[f"y{z}"], y, atol=1e-6)
        a = [mass.fast_mass(sequence[:i], ion_type="a", charge=z) for i in range(1, len(sequence))]
        np.testing.assert_allclose(ions[f"b{z}"] - fragments.A_ION_LOSS / z, a, atol=1e-6)


def test_nterm_modification_shifts_b_ions_only():
    plain = fragments.fragment_mz(list("PEPTIDEK"))
    acetyl = fragments.fragment_mz(["[Acetyl]-", *"PEPTIDEK"])
    delta = chem.modification("Acetyl").mass
    np.testing.assert_allclose(acetyl["b1"] - plain["b1"], delta, atol=1e-9)
    np.testing.assert_allclose(acetyl["y1"], plain["y1"], atol=1e-9)


def test_theoretical_fragments_list_every_ladder_ion():
    tokens, _ = parse_peptidoform("[Acetyl]-PEPTM[Oxidation]IDEK")
    listed = fragments.theoretical_fragments(tokens, (1, 2))
    expected = fragments.fragment_mz(tokens, charges=(1, 2))
    for series, code in (("b", fragments.SERIES_B), ("y", fragments.SERIES_Y)):
        for z in (1, 2):
            chosen = (listed.series == code) & (listed.charge == z)
            np.testing.assert_array_equal(listed.mz[chosen], expected[f"{series}{z}"])
            assert listed.number[chosen].tolist() == list(range(1, len(tokens) - 1))


def test_cleavage_masses_agree_between_numpy_torch_and_ladders():
    tokens = list("LGGNEQVTR")
    masses = np.array([chem.token_mass(t) for t in tokens] + [0.0, 0.0])
    b_ladder, y_ladder = fragments.fragment_ladders(tokens)
    sites = len(tokens) - 1
    for array in (masses[None, :], torch.as_tensor(masses)[None, :]):
        b, y = fragments.cleavage_masses(array)
        b, y = np.asarray(b)[0], np.asarray(y)[0]
        np.testing.assert_allclose(b[:sites], b_ladder, atol=1e-9)
        np.testing.assert_allclose(y[:sites], y_ladder[::-1], atol=1e-9)
        # the two ions of a site add up to the peptide's mass
        peptide = chem.peptide_mass(tokens)
        np.testing.assert_allclose(fragments.complement(b[:sites], peptide), y[:sites])


def test_singly_charged_complement_is_the_other_ion():
    tokens = list("GTFIIDPGGVIR")
    ions = fragments.fragment_mz(tokens)
    peptide = chem.peptide_mass(tokens)
    np.testing.assert_allclose(
        fragments.singly_charged_complement(ions["b1"], peptide), ions["y1"][::-1], atol=1e-9
    )


def test_ion_mz_and_neutral_mass_are_inverse_and_match_precursor_maths():
    neutral = np.array([500.25, 1234.5678])
    for z in (1, 2, 3):
        np.testing.assert_allclose(
            fragments.ion_neutral_mass(fragments.ion_mz(neutral, z), z), neutral
        )
        np.testing.assert_allclose(fragments.ion_mz(neutral, z), chem.mass_to_mz(neutral, z))
    as_tensor = fragments.ion_mz(torch.tensor([500.25], dtype=torch.float64), 2)
    assert as_tensor.item() == pytest.approx(fragments.ion_mz(500.25, 2))


def test_fragment_charge_rule_is_the_same_everywhere():
    charges = np.arange(1, 7)
    expected = [1, 1, 2, 2, 2, 2]
    assert [max(fragments.fragment_charges(z)) for z in charges] == expected
    assert fragments.fragment_charges(2) == (1,) and fragments.fragment_charges(4) == (1, 2)
    assert fragments.max_fragment_charge(charges).tolist() == expected
    assert fragments.max_fragment_charge(torch.as_tensor(charges)).tolist() == expected


def test_immonium_mz():
    assert fragments.immonium_mz(chem.token_mass("H")) == pytest.approx(110.0713, abs=1e-3)


def test_nearest_peaks_takes_the_lower_of_two_equally_near():
    peaks = np.array([100.0, 100.5, 200.0])
    index, found = fragments.nearest_peaks(peaks, np.array([100.25, 150.0, 199.75, 0.0]), 0.25)
    assert index.tolist() == [0, 1, 2, 0]
    assert found.tolist() == [True, False, True, False]
    index, found = fragments.nearest_peaks(np.array([100.0]), np.array([100.001]), 0.01)
    assert index.tolist() == [0] and found.tolist() == [True]
    index, found = fragments.nearest_peaks(np.array([]), np.array([1.0]), 0.01)
    assert found.tolist() == [False]
