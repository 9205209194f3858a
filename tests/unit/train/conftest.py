"""Fixtures: spectra built from peptides' theoretical b/y ions, and a tiny model config."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from trm.chem import Vocabulary
from trm.model import get_model_config

from .theoretical_spectra import random_peptides, theoretical_table


@pytest.fixture(scope="session")
def vocabulary() -> Vocabulary:
    return Vocabulary()


@pytest.fixture(scope="session")
def tiny_config():
    """The tiny named config, cut to 16 answer positions and 32 peaks for speed."""
    return dataclasses.replace(get_model_config("tiny"), max_length=16, n_peaks=32)


@pytest.fixture(scope="session")
def peptides() -> list[str]:
    return random_peptides(64, seed=1)


@pytest.fixture(scope="session")
def spectrum_table(peptides) -> pl.DataFrame:
    return theoretical_table(peptides, seed=2)
