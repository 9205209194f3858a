"""Fixtures: a tiny model and batches of random spectra."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trm.chem import Vocabulary
from trm.model import PeptideTRM, build_model, get_model_config


@pytest.fixture(scope="session")
def vocabulary() -> Vocabulary:
    return Vocabulary()


@pytest.fixture
def tiny_model(vocabulary) -> PeptideTRM:
    torch.manual_seed(0)
    config = dataclasses.replace(get_model_config("tiny"), max_length=12, n_peaks=24)
    return build_model(config, vocabulary).eval()


@pytest.fixture
def spectra() -> dict[str, torch.Tensor]:
    """Five spectra of up to 24 peaks; the last two have only 10 and 3 real peaks."""
    generator = torch.Generator().manual_seed(1)
    n_spectra, n_peaks = 5, 24
    peak_mask = torch.ones(n_spectra, n_peaks, dtype=torch.bool)
    peak_mask[3, 10:] = False
    peak_mask[4, 3:] = False
    return {
        "mz": 100 + 1400 * torch.rand(n_spectra, n_peaks, generator=generator),
        "intensity": torch.rand(n_spectra, n_peaks, generator=generator),
        "peak_mask": peak_mask,
        "precursor_mass": 800 + 1200 * torch.rand(n_spectra, generator=generator),
        "charge": torch.tensor([2, 2, 3, 1, 4]),
    }
