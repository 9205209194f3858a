"""benchmarks/forced_ranking.py: which candidate each raw score puts first."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np

from tests.conftest import PROJECT_ROOT
from trm.denovo.rescore import UNSCORABLE_LOG_PROBABILITY

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import forced_ranking  # noqa: E402


def candidate(forced: float, halt: float, graph: float) -> SimpleNamespace:
    return SimpleNamespace(
        forced_log_probability=forced, forced_halt_probability=halt, graph_score=graph
    )


def test_first_by_score_counts_only_spectra_with_the_true_peptide_among_scored_ones():
    pools = [
        # true (index 0) first by forced LL and halt, second by graph, first by the sum
        [candidate(-1.0, 0.9, 10.0), candidate(-5.0, 0.1, 12.0)],
        # true (index 1) tied with a wrong one by graph; last by forced LL
        [candidate(-1.0, 0.2, 5.0), candidate(-2.0, 0.8, 5.0), candidate(-3.0, 0.1, 1.0)],
        # true not scored (the floor): not counted
        [candidate(-1.0, 0.5, 3.0), candidate(UNSCORABLE_LOG_PROBABILITY, 0.0, 9.0)],
        # one scored candidate only: not counted
        [candidate(-1.0, 0.5, 3.0)],
    ]
    correct = np.array(
        [[True, False, False], [False, True, False], [False, True, False], [True, False, False]]
    )
    counts = forced_ranking.first_by_score(pools, correct)
    assert counts == {
        "n": 2,
        "forced LL": 1,
        "forced halt": 2,
        "graph": 0,  # max() keeps the first of a tie: the wrong one in spectrum 2
        "graph + forced LL": 1,
        "graph ties": 1,
    }
