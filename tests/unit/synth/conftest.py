"""Fixtures of the synthetic-stage tests: a small real FASTA and the shipped ms2pip model."""

from __future__ import annotations

from pathlib import Path

import pytest

from trm.synth.generate import SyntheticSettings
from trm.synth.peptides import DigestionSettings, PeptidoformSampler

TEST_DATA = Path(__file__).resolve().parents[2] / "data" / "synth"
SHIPPED_MODEL = "HCD2019-distilled"


@pytest.fixture(scope="session")
def yeast_fasta() -> Path:
    """Six yeast proteins (see tests/data/synth/README.md)."""
    return TEST_DATA / "yeast_subset.fasta"


@pytest.fixture(scope="session")
def model_dir(project_root: Path) -> Path:
    """resources/ms2pip: the offline model shipped with the project."""
    return project_root / "resources" / "ms2pip"


@pytest.fixture
def write_fasta(tmp_path: Path):
    """Write proteins (name -> sequence) to a FASTA file and return its path."""

    def write(proteins: dict[str, str], name: str = "proteins.fasta") -> Path:
        path = tmp_path / name
        path.write_text("".join(f">{key}\n{sequence}\n" for key, sequence in proteins.items()))
        return path

    return write


@pytest.fixture
def tiny_settings(model_dir: Path) -> SyntheticSettings:
    """Settings for a data set of a few hundred spectra, small shards and batches."""
    return SyntheticSettings(
        model=SHIPPED_MODEL,
        model_dir=str(model_dir),
        digestion=DigestionSettings(missed_cleavages=1),
        sampler=PeptidoformSampler(variable_probability=0.5),
        n_spectra=300,
        seed=7,
        batch_size=64,
        shard_size=100,
        threads=1,
        run="tiny",
    )
