"""Fixtures of the database search tests: a real run (118 yeast spectra) and a small
FASTA that holds its peptides (tests/data/search/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trm.instrument import InstrumentSettings, load_instrument
from trm.io.fasta import read_fasta
from trm.io.spectra import read_spectra

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data"
#: The run, its MetaMorpheus identifications, the FASTA subset, the instrument file.
YEAST_MGF = DATA / "mzLib" / "SmallCalibratibleYeast.mgf"
YEAST_MZID = DATA / "mzLib" / "SmallCalibratible_Yeast.mzID"
SUBSET_FASTA = DATA / "search" / "yeast_subset.fasta.gz"
INSTRUMENT = ROOT / "config" / "instruments" / "orbitrap_hcd.yaml"


@pytest.fixture(scope="session")
def instrument() -> InstrumentSettings:
    return load_instrument(INSTRUMENT)


@pytest.fixture(scope="session")
def yeast_spectra():
    return read_spectra(YEAST_MGF, run="yeast")


@pytest.fixture(scope="session")
def subset_proteins():
    return read_fasta(SUBSET_FASTA)


@pytest.fixture(scope="session")
def yeast_outcome(yeast_spectra, subset_proteins, instrument):
    """The yeast run searched against the subset with the default settings."""
    from trm.search.engine import limit_threads

    limit_threads(1)
    from trm.search.engine import search_spectra
    from trm.search.settings import SearchSettings

    return search_spectra(yeast_spectra, subset_proteins, instrument, SearchSettings())


@pytest.fixture(scope="session")
def yeast_labels(tmp_path_factory):
    """The run's MetaMorpheus identifications as a labels table (trm labelled-spectra)."""
    from trm.io.labels import read_identified_spectra

    table, _ = read_identified_spectra(YEAST_MGF, YEAST_MZID, run="yeast")
    path = tmp_path_factory.mktemp("labels") / "yeast.parquet"
    table.write_parquet(path)
    return path
