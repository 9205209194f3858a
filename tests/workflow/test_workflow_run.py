"""One tiny real run of every stage of the workflow, on the second test configuration."""

from __future__ import annotations

import pytest

from tests.workflow.helpers import PROJECT_ROOT, make_workdir, snakemake
from trm.io.spectra import read_spectra

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The test configuration run to the end; returns its working directory."""
    workdir = make_workdir(tmp_path_factory.mktemp("run"), PROJECT_ROOT / "tests" / "config")
    result = snakemake("--cores", "2", workdir=workdir, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return workdir


@pytest.mark.parametrize(("sample", "n_ms2"), [("mouse", 128), ("yeast", 118)])
def test_convert_writes_every_ms2_spectrum(finished_run, sample, n_ms2):
    spectra = read_spectra(finished_run / "results" / "mzml" / f"{sample}.mzML")
    assert spectra.height == n_ms2
    assert (finished_run / "logs" / "convert" / f"{sample}.log").exists()


def test_rerun_has_nothing_to_do(finished_run):
    result = snakemake("-n", workdir=finished_run)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
