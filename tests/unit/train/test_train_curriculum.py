"""Schedules as pure functions of the step."""

from __future__ import annotations

import math

import pytest

from trm.train.curriculum import Curriculum, learning_rate, supervision_weights


def test_clean_fraction_falls_from_80_to_0_percent():
    curriculum = Curriculum(clean_mix_fraction=0.1)
    assert curriculum.clean_fraction(0, 10_000) == pytest.approx(0.8)
    assert curriculum.clean_fraction(500, 10_000) == pytest.approx(0.4)
    assert curriculum.clean_fraction(1000, 10_000) == 0.0
    assert curriculum.clean_fraction(5000, 10_000) == 0.0


def test_noise_strength_ramps_to_full():
    curriculum = Curriculum(noise_strength_start=0.25, noise_ramp_fraction=0.01)
    assert curriculum.noise_strength(0, 10_000) == pytest.approx(0.25)
    assert curriculum.noise_strength(100, 10_000) == pytest.approx(1.0)


def test_sigma_decays_geometrically_from_5_to_half_a_dalton():
    curriculum = Curriculum(sigma_fraction=0.02)
    assert curriculum.spectrum_sigma(0, 10_000) == pytest.approx(5.0)
    assert curriculum.spectrum_sigma(100, 10_000) == pytest.approx(math.sqrt(2.5))
    assert curriculum.spectrum_sigma(10_000, 10_000) == pytest.approx(0.5)


def test_warmup_then_cosine():
    rates = [learning_rate(s, 1e-3, 10, 110, 0.1) for s in range(111)]
    assert rates[0] == pytest.approx(1e-4)
    assert rates[9] == pytest.approx(1e-3)
    assert rates[60] == pytest.approx(0.55e-3)
    assert rates[110] == pytest.approx(1e-4)
    assert max(rates) == pytest.approx(1e-3)


def test_last_of_eight_steps_carries_half_the_loss():
    weights = supervision_weights(8)
    assert float(weights.sum()) == pytest.approx(1.0)
    assert float(weights[-1]) == pytest.approx(128 / 255)
    assert float(weights[1] / weights[0]) == pytest.approx(2.0)
