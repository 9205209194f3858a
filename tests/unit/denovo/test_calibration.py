"""trm.denovo.calibration: isotonic calibration and q-values."""

from __future__ import annotations

import numpy as np
import pytest

from trm.denovo.calibration import IsotonicCalibration, q_values_from_probabilities


def test_isotonic_fit_is_monotone_and_recovers_a_known_curve():
    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 1, 20_000)
    truth = raw**2  # a miscalibrated score: true probability is raw squared
    correct = rng.uniform(0, 1, raw.size) < truth
    calibration = IsotonicCalibration.fit(raw, correct)
    grid = np.linspace(0, 1, 101)
    mapped = calibration(grid)
    assert np.all(np.diff(mapped) >= 0)
    assert np.abs(mapped - grid**2).max() < 0.08
    assert 0 <= mapped.min() and mapped.max() <= 1


def test_isotonic_round_trip_and_errors():
    calibration = IsotonicCalibration.fit(np.array([0.1, 0.4, 0.5, 0.9]), np.array([0, 1, 0, 1]))
    again = IsotonicCalibration.from_dict(calibration.to_dict())
    np.testing.assert_allclose(again(np.array([0.2, 0.7])), calibration(np.array([0.2, 0.7])))
    with pytest.raises(ValueError):
        IsotonicCalibration.fit(np.array([0.1]), np.array([1, 0]))


def test_q_values_are_monotone_in_probability():
    probabilities = np.array([0.99, 0.5, 0.9, 0.1, 0.95])
    q = q_values_from_probabilities(probabilities)
    order = np.argsort(-probabilities)
    assert np.all(np.diff(q[order]) >= -1e-12)
    assert q[0] == pytest.approx(0.01)
    assert q[3] == pytest.approx(np.mean(1 - probabilities))


def test_calibrated_scores_keep_ranking_when_few_answers_are_right():
    """Even with 3% right answers (a weak model), the map rises through the raw scores:
    distinct raw scores keep distinct, ordered probabilities, not one flat value."""
    rng = np.random.default_rng(0)
    raw = rng.random(1000) ** 3
    right = rng.random(1000) < 0.1 * raw
    calibration = IsotonicCalibration.fit(raw, right)
    probability = calibration(raw)
    order = np.argsort(raw)
    assert np.all(np.diff(probability[order]) >= 0)
    assert len(np.unique(probability)) > 0.9 * len(raw)
    assert calibration(np.array([0.0]))[0] == 0.0
