"""benchmarks/evaluate_model.py: where the true peptide ranks among the search's candidates."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT
from trm.chem import Vocabulary
from trm.denovo.decode import DecodedPeptide

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import evaluate_model  # noqa: E402


def test_candidate_ranks_counts_the_true_peptide_among_the_best_k():
    vocabulary = Vocabulary()

    def peptide(text: str) -> DecodedPeptide:
        ids = np.array([vocabulary.tokens.index(t) for t in text])
        return DecodedPeptide(ids, 0.0, np.ones(len(ids)), 0.0, 0)

    # the second matches by I = L; the last is found beyond the best 4 (as a graph
    # candidate after the search's in a hybrid list)
    truth = ["PEPTIDE", "PEPTLDE", "AAAAK", "GGGGR", "KKKKR"]
    candidates = [
        [peptide("PEPTIDE"), peptide("PEPTDIE")],
        [peptide("PEPTDIE"), peptide("PEPTIDE")],
        [peptide("AAAGK"), peptide("GAAAK"), peptide("AAAKA"), peptide("AAAAK")],
        [],
        [peptide("KKKRK"), peptide("KKRKK"), peptide("KRKKK"), peptide("RKKKK"), peptide("KKKKR")],
    ]

    class Fake:
        pass

    sequencer = Fake()
    sequencer.vocabulary = vocabulary
    sequencer.predict = lambda *args: SimpleNamespace(candidates=candidates)
    dataset = SimpleNamespace(
        tokens=np.stack([vocabulary.encode(list(p), 12) for p in truth]),
        precursor_mass=np.zeros(5),
        charge=np.full(5, 2),
    )
    ranks = evaluate_model.candidate_ranks(sequencer, dataset, (None, None, None), 4)
    assert ranks == {
        "n_spectra": 5,
        "in_top_1": 0.2,
        "in_top_2": 0.4,
        "in_top_4": 0.6,
        "in_candidates": 0.8,
    }


def test_breakdown_groups_by_true_length_and_charge():
    truth = [list("PEPTIDEK"), ["[Acetyl]-", *"PEPTIDEK"], list("PEPTIDEKAAAAAAAK"), list("AAAAAK")]
    predicted = [list("PEPTIDEK"), [], list("PEPTIDEKAAAAAAGK"), list("AAAAAK")]
    groups = evaluate_model.breakdown(predicted, truth, np.array([2, 2, 3, 2]))
    # The N-terminal modification is no residue: both 8-residue peptides are "<=8".
    assert set(groups) == {"length <=8", "length 16+", "charge 2", "charge 3"}
    assert groups["length <=8"]["n_spectra"] == 3
    assert groups["length <=8"]["peptide_recall"] == pytest.approx(2 / 3)
    assert groups["length 16+"]["peptide_recall"] == 0.0
    assert groups["charge 3"]["n_spectra"] == 1
    assert groups["charge 2"]["aa_precision"] == 1.0
