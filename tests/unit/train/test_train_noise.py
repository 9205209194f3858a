"""Vectorised noise augmentation and the hand-set noise ramp."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from trm.chem import parse_peptidoform
from trm.noise_model import NoiseModelParameters
from trm.train.data import SpectrumDataset
from trm.train.noise import FittedNoise, NoiseParameters, RampNoise, apply_noise

from .theoretical_spectra import theoretical_table


@pytest.fixture
def batch(spectrum_table, vocabulary):
    return SpectrumDataset.from_table(spectrum_table, vocabulary, 16, 32, 10).batch(range(8))


def parameters(n: int, **values: float) -> NoiseParameters:
    fields = ("dropout", "noise_intensity", "ppm_sd", "ppm_offset", "intensity_sd")
    params = {name: torch.full((n,), float(values.get(name, 0.0))) for name in fields}
    n_noise = torch.full((n,), int(values.get("n_noise_peaks", 0)), dtype=torch.long)
    return NoiseParameters(n_noise_peaks=n_noise, **params)


def sorted_peaks(batch, row):
    mask = batch.peak_mask[row]
    order = batch.mz[row][mask].argsort()
    return batch.mz[row][mask][order], batch.intensity[row][mask][order]


def test_no_noise_keeps_the_peaks(batch):
    noisy = apply_noise(batch, parameters(8), 30, torch.Generator().manual_seed(0))
    assert noisy.mz.shape == batch.mz.shape
    for row in range(8):
        for clean, got in zip(sorted_peaks(batch, row), sorted_peaks(noisy, row), strict=True):
            assert_close(got, clean)


def test_full_dropout_leaves_the_base_peak(batch):
    noisy = apply_noise(batch, parameters(8, dropout=1.0), 30, torch.Generator().manual_seed(0))
    assert noisy.peak_mask.sum(dim=1).tolist() == [1] * 8
    base = batch.intensity.amax(dim=1)
    assert_close(noisy.intensity.amax(dim=1), base)


def test_noise_peaks_are_added_within_the_precursor_range(batch):
    params = parameters(8, n_noise_peaks=5, noise_intensity=0.01)
    noisy = apply_noise(batch, params, 30, torch.Generator().manual_seed(0))
    added = noisy.peak_mask.sum(dim=1) - batch.peak_mask.sum(dim=1)
    # The batch keeps its width: peaks beyond 32 lose to the most intense ones.
    assert (added == torch.clamp(32 - batch.peak_mask.sum(dim=1), max=5)).all()
    assert (noisy.mz[noisy.peak_mask] >= 50).all()
    assert (noisy.mz <= batch.precursor_mass[:, None]).all()


def test_systematic_mass_error_shifts_every_peak(batch):
    noisy = apply_noise(batch, parameters(8, ppm_offset=10.0), 30, torch.Generator())
    clean_mz, _ = sorted_peaks(batch, 0)
    noisy_mz, _ = sorted_peaks(noisy, 0)
    assert_close(noisy_mz, clean_mz * (1 + 10e-6))


def test_noise_is_reproducible_from_the_generator(batch):
    params = RampNoise().sample(torch.ones(8), torch.Generator().manual_seed(4))
    first = apply_noise(batch, params, 30, torch.Generator().manual_seed(9))
    second = apply_noise(batch, params, 30, torch.Generator().manual_seed(9))
    assert torch.equal(first.mz, second.mz) and torch.equal(first.peak_mask, second.peak_mask)


def test_ramp_noise_bounds():
    ramp = RampNoise()
    full = ramp.sample(torch.ones(4000), torch.Generator().manual_seed(0))
    assert 0 <= full.dropout.min() and full.dropout.max() <= 0.45
    assert full.dropout.max() > 0.4
    assert full.n_noise_peaks.max() == 30 and full.n_noise_peaks.min() == 0
    assert full.ppm_offset.min() < -9 and full.ppm_offset.max() > 9
    none = ramp.sample(torch.zeros(10), torch.Generator().manual_seed(0))
    assert all(not value.any() for value in vars(none).values())
    clean = full.where(torch.zeros(4000, dtype=torch.bool))
    assert all(not value.any() for value in vars(clean).values())


@pytest.fixture(scope="module")
def fitted_noise(project_root, vocabulary):
    return FittedNoise(
        NoiseModelParameters.read(project_root / "resources/noise/orbitrap_hcd.yaml"), vocabulary
    )


@pytest.fixture
def annotated_batch(peptides, vocabulary):
    table = theoretical_table(peptides, seed=3, charge=3, annotated=True)
    return SpectrumDataset.from_table(table, vocabulary, 16, 100, 10).batch(range(32))


def test_dataset_keeps_the_ion_annotation(annotated_batch, peptides):
    tokens = parse_peptidoform(peptides[0])[0]
    n = sum(not t.endswith("-") for t in tokens) - 1
    series = annotated_batch.ion_series[0][annotated_batch.peak_mask[0]]
    assert sorted(series.tolist()) == [1] * n + [2] * n


def test_fitted_noise_at_strength_zero_keeps_the_spectra(annotated_batch, fitted_noise):
    noisy = fitted_noise.apply(
        annotated_batch, torch.zeros(len(annotated_batch)), torch.Generator().manual_seed(0)
    )
    assert_close(noisy.precursor_mass, annotated_batch.precursor_mass)
    for row in range(len(annotated_batch)):
        for clean, got in zip(
            sorted_peaks(annotated_batch, row), sorted_peaks(noisy, row), strict=True
        ):
            assert_close(got, clean)


def test_fitted_noise_looks_like_real_spectra(annotated_batch, fitted_noise):
    """Full strength: many more peaks (unexplained, isotopes, losses, 2+ fragments),
    some fragments gone, reproducible from the generator."""
    strength = torch.ones(len(annotated_batch))
    first = fitted_noise.apply(annotated_batch, strength, torch.Generator().manual_seed(5))
    second = fitted_noise.apply(annotated_batch, strength, torch.Generator().manual_seed(5))
    assert torch.equal(first.mz, second.mz) and torch.equal(first.peak_mask, second.peak_mask)
    clean = annotated_batch.peak_mask.sum(dim=1).float()
    noisy = first.peak_mask.sum(dim=1).float()
    assert noisy.median() > 3 * clean.median()
    # The model reads at most its n_peaks: the batch keeps its width.
    assert first.mz.shape == annotated_batch.mz.shape
    # The fragments that survive keep their m/z within a few ppm.
    row_mz = annotated_batch.mz[0][annotated_batch.peak_mask[0]]
    got = first.mz[0][first.peak_mask[0]]
    nearest = (got[None, :] - row_mz[:, None]).abs().min(dim=1).values / row_mz * 1e6
    assert (nearest < 20).float().mean() > 0.5


def test_fitted_noise_without_annotation_still_adds_peaks(batch, fitted_noise):
    noisy = fitted_noise.apply(batch, torch.ones(len(batch)), torch.Generator().manual_seed(1))
    assert noisy.peak_mask.sum() > batch.peak_mask.sum()
