"""Mass-based matching of predicted and true peptides (Casanovo's convention)."""

from __future__ import annotations

import pytest

from trm.chem import token_mass
from trm.metrics import match_peptides, match_residues, sequencing_metrics


def masses(sequence: str) -> list[float]:
    return [token_mass(residue) for residue in sequence]


def test_identical_peptides_match_fully():
    matches, peptide = match_residues(masses("PEPTIDEK"), masses("PEPTIDEK"))
    assert matches.all() and peptide


def test_isoleucine_matches_leucine():
    matches, peptide = match_residues(masses("PEPTLDEK"), masses("PEPTIDEK"))
    assert matches.all() and peptide


def test_residues_within_the_residue_tolerance_match():
    # K and Q differ by 0.036 Da: the convention cannot tell them apart.
    _, peptide = match_residues(masses("PEPTIDEQ"), masses("PEPTIDEK"))
    assert peptide


def test_a_swap_costs_only_the_swapped_residues():
    matches, peptide = match_residues(masses("PETPIDEK"), masses("PEPTIDEK"))
    assert not peptide
    assert matches.tolist() == [True, True, False, False, True, True, True, True]


def test_same_mass_pair_does_not_match_a_single_residue():
    # GG weighs what N weighs: the prefix masses agree again, the residues do not match.
    matches, peptide = match_residues(masses("PEGGK"), masses("PENK"))
    assert not peptide
    assert matches[:2].all() and matches[-1]
    assert matches.sum() == 3


def test_sequencing_metrics_counts():
    predicted = [list("PEPTLDEK"), list("PETPIDEK"), [], list("AAAAK")]
    truth = [list("PEPTIDEK"), list("PEPTIDEK"), list("GGK"), list("AAAAK")]
    metrics = sequencing_metrics(predicted, truth)
    matched = 8 + 6 + 0 + 5
    assert metrics.aa_precision == pytest.approx(matched / (8 + 8 + 5))
    assert metrics.aa_recall == pytest.approx(matched / (8 + 8 + 3 + 5))
    assert metrics.peptide_recall == pytest.approx(2 / 4)
    assert metrics.peptide_precision == pytest.approx(2 / 3)
    assert metrics.n_spectra == 4
    # PEPTIDEK (two spectra, one right), GGK (none), AAAAK (right): (1/2 + 0 + 1) / 3
    assert metrics.n_peptides == 3
    assert metrics.distinct_peptide_recall == pytest.approx(0.5)


def test_distinct_peptide_recall_weighs_each_peptide_once():
    # one peptide seen nine times and always right, two others once and wrong: over
    # spectra 9/11, over distinct peptides 1/3 (PEPTLDEK and PEPTIDEK are one peptide)
    truth = [list("PEPTIDEK")] * 5 + [list("PEPTLDEK")] * 4 + [list("GGK"), list("AAAAK")]
    predicted = [list("PEPTIDEK")] * 9 + [[], list("AAAKA")]
    metrics = sequencing_metrics(predicted, truth)
    assert metrics.peptide_recall == pytest.approx(9 / 11)
    assert metrics.n_peptides == 3
    assert metrics.distinct_peptide_recall == pytest.approx(1 / 3)


def test_modified_tokens_use_their_masses():
    oxidised = ["P", "E", "M[Oxidation]", "K"]
    metrics = sequencing_metrics([["P", "E", "M", "K"]], [oxidised])
    assert metrics.peptide_recall == 0.0
    assert metrics.aa_recall == pytest.approx(3 / 4)


def test_mismatched_lengths_of_lists_raise():
    with pytest.raises(ValueError, match="same spectra"):
        sequencing_metrics([["K"]], [])


def test_tokens_outside_the_model_vocabulary_have_their_masses():
    # an unmodified C (samples without alkylation) is no model token but a residue
    matches, peptide = match_peptides(list("PEPCK"), list("PEPCK"))
    assert matches.all() and peptide
    _, peptide = match_peptides(list("PEPCK"), ["P", "E", "P", "C[Carbamidomethyl]", "K"])
    assert not peptide
