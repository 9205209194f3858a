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


def test_evidence_gaps_find_the_longest_run_of_unseen_cleavages():
    """A spectrum with every b ion shows every cleavage; dropping the peaks of two
    neighbouring cleavages (their b and y ions) leaves a gap of 2, one of them a gap of
    1; a y ion alone shows its cleavage; peaks beyond the count are not read."""
    from trm.fragments import fragment_mz

    vocabulary = Vocabulary()
    peptide = list("PEPTIDEK")
    ions = fragment_mz(peptide)  # b1..b7, y1..y7 at charge 1
    b, y = ions["b1"], ions["y1"]
    sites = len(b)  # 7 cleavages
    every = np.sort(b)
    without_3_4 = np.sort(np.delete(b, [2, 3]))  # b3, b4: cleavages 3 and 4
    without_5 = np.sort(np.delete(b, [4]))
    y_for_5 = np.sort(np.append(np.delete(b, [4]), y[sites - 5]))  # y3 breaks bond 5
    spectra = [every, without_3_4, without_5, y_for_5, every]
    width = max(map(len, spectra))
    mz = np.zeros((len(spectra), width))
    for row, peaks in enumerate(spectra):
        mz[row, : len(peaks)] = peaks
    counts = np.array([len(p) for p in spectra])
    counts[-1] = 3  # only b1..b3 read: cleavages 4 to 7 unseen
    dataset = SimpleNamespace(
        tokens=np.stack([vocabulary.encode(peptide, 12)] * len(spectra)),
        charge=np.full(len(spectra), 2),
    )
    gaps = evaluate_model.evidence_gaps(dataset, (mz, None, counts), vocabulary, 0.02)
    assert gaps[:, 0].tolist() == [0, 2, 1, 0, 4]
    assert gaps[:, 1].tolist() == [0, 2, 1, 0, 4]  # no run from the first cleavage
    groups = evaluate_model.groups_of([peptide] * len(spectra), dataset.charge, gaps)
    assert groups["every cleavage seen"].tolist() == [True, False, False, True, False]
    assert groups["2+ neighbouring cleavages unseen"].tolist() == [False, True, False, False, True]
    assert not groups[evaluate_model.START_GAP_GROUP].any()
    # without b1, b2 (cleavages 1 and 2; b1 is never read anyway): a run from the start
    start = np.zeros((2, width))
    start[0, : sites - 2] = np.sort(np.delete(b, [0, 1]))
    start[1, : sites - 4] = np.sort(np.delete(b, [0, 1, 4, 5]))  # and cleavages 5, 6
    dataset.tokens, dataset.charge = dataset.tokens[:2], dataset.charge[:2]
    counts = np.array([sites - 2, sites - 4])
    gaps = evaluate_model.evidence_gaps(dataset, (start, None, counts), vocabulary, 0.02)
    assert gaps.tolist() == [[2, 0], [2, 2]]
    groups = evaluate_model.groups_of([peptide] * 2, dataset.charge, gaps)
    assert groups[evaluate_model.START_GAP_GROUP].tolist() == [True, False]


def test_decoder_comparison_tables_recall_over_distinct_peptides():
    import decoder_comparison

    row = {"n_spectra": 11, "n_peptides": 3, "peptide_recall": 9 / 11,
           "distinct_peptide_recall": 1 / 3}  # fmt: skip
    results = {
        "graph": {"mode": "search+rescore", "rows": {"dev_all/search+rescore": row}},
        "model": {"mode": "search", "rows": {}},
    }
    lines = decoder_comparison.distinct_lines(results, ["dev_all"])
    assert lines[-2].startswith("|---|---|---|")
    assert lines[-1] == "| dev_all | 11 | 3 | 0.333 / 0.818 |  |"
