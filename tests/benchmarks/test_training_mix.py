"""benchmarks/training_mix.py: b/y peaks among the model's top peaks, by charge."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT
from trm.fragments import fragment_mz

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import training_mix  # noqa: E402


def test_spectrum_row_counts_fragments_among_the_most_intense_peaks_only():
    tokens = list("PEPTIDEK")
    ions = fragment_mz(tokens)
    fragments = np.concatenate([ions["b1"], ions["y1"]])  # 14 singly charged b/y ions
    noise = np.array([150.5, 333.3, 444.4, 555.5, 777.7])
    mz = np.concatenate([fragments, noise])
    # Fragments weaker than every noise peak but the weakest fragment first.
    intensity = np.concatenate([np.linspace(1.0, 2.0, len(fragments)), np.full(5, 10.0)])
    order = np.random.default_rng(0).permutation(len(mz))
    peaks, by, share = training_mix.spectrum_row(mz[order], intensity[order], tokens, 2, 100, 0.02)
    assert (peaks, by) == (19, 14)
    assert share == pytest.approx(intensity[:14].sum() / intensity.sum())
    # The 10 most intense: the five noise peaks and the five strongest fragments.
    peaks, by, share = training_mix.spectrum_row(mz[order], intensity[order], tokens, 2, 10, 0.02)
    assert (peaks, by) == (19, 5)
    assert share == pytest.approx(intensity[9:14].sum() / (intensity[9:14].sum() + 50.0))


def test_by_charge_summarises_each_charge():
    rows = [(2, 100, 10, 0.2), (2, 120, 14, 0.4), (3, 300, 20, 0.5)]
    summary = training_mix.by_charge(rows)
    assert summary["2"] == {
        "spectra": 2,
        "share": pytest.approx(2 / 3),
        "median_peaks": 110.0,
        "median_by_peaks_top": 12.0,
        "median_by_intensity_top": pytest.approx(0.3),
    }
    assert summary["3"]["spectra"] == 1 and summary["3"]["median_peaks"] == 300.0
