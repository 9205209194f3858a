"""Fragment evidence: the ion lookup of every candidate token at every answer position."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from trm.chem import parse_peptidoform, peptide_mass
from trm.fragments import fragment_mz
from trm.model.evidence import (
    FEATURES_PER_ION,
    N_IONS,
    FragmentEvidence,
    PeakIndex,
    candidate_fragments,
    flanking_masses,
)

PEPTIDE = "[Acetyl]-PEPTM[Oxidation]IDEK"


def _peptide(vocabulary, max_length=16):
    tokens, _ = parse_peptidoform(PEPTIDE)
    ids = torch.from_numpy(vocabulary.encode(tokens, max_length))
    masses = torch.as_tensor(vocabulary.masses, dtype=torch.float32)
    return tokens, ids, masses


def test_candidates_of_the_true_answer_are_its_b_and_y_ions(vocabulary):
    tokens, ids, masses = _peptide(vocabulary)
    precursor = torch.tensor([peptide_mass(tokens)])
    queries = candidate_fragments(*flanking_masses(masses[ids][None]), masses, precursor)[0]
    assert queries.shape == (16, len(vocabulary), N_IONS)
    # The true token at each position: its ions are the peptide's fragments.
    true = queries[torch.arange(16), ids].double()  # (length, N_IONS)
    expected = fragment_mz(tokens, charges=(1, 2))
    n = len(expected["b1"])
    # Position 0 is the acetyl group, position i >= 1 is residue i: the b ion ending there
    # is b_i, and the complementary y ion is y_(n + 1 - i).
    b1 = torch.from_numpy(expected["b1"])
    y1 = torch.from_numpy(expected["y1"])
    b2 = torch.from_numpy(expected["b2"])
    assert_close(true[1 : n + 1, 0], b1, atol=2e-3, rtol=0)
    assert_close(true[1 : n + 1, 1], y1.flip(0), atol=2e-3, rtol=0)
    assert_close(true[1 : n + 1, 4], b2, atol=2e-3, rtol=0)
    # C-anchored: the y ion starting at residue i >= 2 is y_(n + 2 - i); its complement is
    # the b ion before it.
    assert_close(true[2 : n + 2, 2], y1.flip(0), atol=2e-3, rtol=0)
    assert_close(true[2 : n + 2, 3], b1, atol=2e-3, rtol=0)


def test_lookup_finds_the_nearest_peak_within_tolerance():
    mz = torch.tensor([[300.0, 100.0, 200.0, 0.0]])
    intensity = torch.tensor([[4.0, 16.0, 1.0, 0.0]])
    peaks = PeakIndex.build(mz, intensity, torch.tensor([[True, True, True, False]]), 0.01)
    assert peaks.mz[0, 1:4].tolist() == [100.0, 200.0, 300.0]
    presence, strength = peaks.lookup(torch.tensor([[100.0, 300.01, 250.0, 0.0, 1e6]]))
    assert presence[0, 0] == pytest.approx(1.0)
    assert presence[0, 1] == pytest.approx(np.exp(-0.5), rel=3e-3)
    # Relative intensity is the square root over the spectrum's largest: 2 / 4.
    assert strength[0, 1] == pytest.approx(0.5 * np.exp(-0.5), rel=3e-3)
    # Far from every peak, and the padding peak (m/z 0) never matches.
    assert presence[0, 2:].max() < 1e-6


def test_true_token_has_the_strongest_evidence_given_the_true_rest(vocabulary):
    tokens, ids, masses = _peptide(vocabulary)
    expected = fragment_mz(tokens, charges=(1,))
    peak_mz = torch.from_numpy(np.concatenate([expected["b1"], expected["y1"]])).float()[None]
    peaks = PeakIndex.build(
        peak_mz, torch.ones_like(peak_mz), torch.ones_like(peak_mz).bool(), 0.02
    )
    evidence = FragmentEvidence(hidden=8, n_tokens=len(vocabulary))
    precursor = torch.tensor([peptide_mass(tokens)])
    features = evidence.features(peaks, *flanking_masses(masses[ids][None]), masses, precursor)
    assert features.shape == (1, 16, len(vocabulary), N_IONS * FEATURES_PER_ION)
    support = features[0, :, :, 0::FEATURES_PER_ION].sum(dim=-1)  # presence over the ions
    residues = range(1, len(tokens))
    for position in residues:
        true = support[position, ids[position]]
        # Residues of another mass (I/L and Q[Deamidated]/E are indistinguishable; the end
        # class, of mass 0, re-finds the ions around the position).
        other_mass = (masses - masses[ids[position]]).abs() > 0.05
        other_mass[0] = False
        others = support[position, other_mass]
        assert true >= 1.99, position  # at least its b ion and the complementary y ion
        assert true > others.max() + 0.5, position
    bonus, context = evidence(features)
    assert bonus.shape == (1, 16, len(vocabulary))
    assert context.shape == (1, 16, 8)


def test_model_without_evidence_has_no_lookup(vocabulary):
    import dataclasses

    from trm.model import build_model, get_model_config

    config = dataclasses.replace(get_model_config("tiny"), fragment_evidence=False)
    model = build_model(config, vocabulary)
    assert model.core.evidence is None
    assert not any("evidence" in name for name, _ in model.named_parameters())


def test_lookup_survives_absurd_query_masses():
    peaks = PeakIndex.build(
        torch.tensor([[150.0]]), torch.tensor([[1.0]]), torch.tensor([[True]]), 0.02
    )
    presence, strength = peaks.lookup(torch.tensor([[-1e9, 1e9, 150.0]]))
    assert presence[0, :2].max() < 1e-12
    assert presence[0, 2] == pytest.approx(1.0)
