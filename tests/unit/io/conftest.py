"""Fixtures of the spectrum input tests: the copied real files of tests/data."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: small real files, each folder with a README of its origin."""
    return DATA


@pytest.fixture(scope="session")
def gunzipped(tmp_path_factory: pytest.TempPathFactory):
    """Decompress a ``.gz`` test file (reference mzMLs are stored gzipped) once."""
    cache: dict[str, Path] = {}
    folder = tmp_path_factory.mktemp("gunzipped")

    def unpack(relative: str) -> Path:
        if relative not in cache:
            target = folder / Path(relative).name.removesuffix(".gz")
            with gzip.open(DATA / relative, "rb") as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            cache[relative] = target
        return cache[relative]

    return unpack


@pytest.fixture(scope="session")
def thermo_ready() -> None:
    """Skip when the offline Thermo reader (Mono + alpharaw) cannot run here."""
    from trm.io.thermo import thermo_reader_problem

    problem = thermo_reader_problem()
    if problem is not None:
        pytest.skip(f"Thermo .raw reading unavailable: {problem}")


def write_mzml(path: Path, spectra: list[dict]) -> Path:
    """Write an mzML with pyopenms from dicts (ms_level, mz, intensity, native_id, ...)."""
    import pyopenms as oms

    experiment = oms.MSExperiment()
    for index, fields in enumerate(spectra):
        spectrum = oms.MSSpectrum()
        spectrum.setNativeID(fields.get("native_id", f"scan={index + 1}"))
        spectrum.setMSLevel(fields.get("ms_level", 2))
        spectrum.setRT(float(fields.get("rt", index)))
        spectrum.set_peaks(
            (
                np.asarray(fields.get("mz", [100.0, 200.0]), dtype=np.float64),
                np.asarray(fields.get("intensity", [1.0, 2.0]), dtype=np.float64),
            )
        )
        if fields.get("profile"):
            spectrum.setType(oms.SpectrumSettings.SpectrumType.PROFILE)
        if spectrum.getMSLevel() == 2:
            precursor = oms.Precursor()
            precursor.setMZ(fields.get("precursor_mz", 500.0))
            precursor.setCharge(fields.get("charge", 2))
            spectrum.setPrecursors([precursor])
        experiment.addSpectrum(spectrum)
    oms.MzMLFile().store(str(path), experiment)
    return path
