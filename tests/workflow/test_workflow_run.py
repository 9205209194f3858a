"""One tiny real run of every stage of the workflow, on the second test configuration."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.workflow.helpers import PROJECT_ROOT, make_workdir, snakemake
from trm.io.spectra import read_spectra

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SAMPLES = {"mouse": 128, "yeast": 118}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The test configuration run to the end; returns its working directory."""
    workdir = make_workdir(tmp_path_factory.mktemp("run"), PROJECT_ROOT / "tests" / "config")
    result = snakemake("--cores", "2", workdir=workdir, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return workdir


@pytest.mark.parametrize(("sample", "n_ms2"), SAMPLES.items())
def test_convert_writes_every_ms2_spectrum(finished_run, sample, n_ms2):
    spectra = read_spectra(finished_run / "results" / "mzml" / f"{sample}.mzML")
    assert spectra.height == n_ms2
    assert (finished_run / "logs" / "convert" / f"{sample}.log").exists()


def test_models_are_trained_and_calibrated_per_used_instrument(finished_run):
    models = finished_run / "results" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["orbitrap_hcd"]
    for name in ("pretrained.pt", "finetuned.pt", "model.pt", "metrics.csv", "training.png",
                 "calibration.json"):  # fmt: skip
        assert (models / "orbitrap_hcd" / name).stat().st_size > 0, name
    metrics = pl.read_csv(models / "orbitrap_hcd" / "metrics.csv")
    assert metrics["step"].max() == 20
    assert (finished_run / "results" / "casanovo" / "orbitrap_hcd" / "baseline.ckpt").exists()


@pytest.mark.parametrize(("sample", "n_ms2"), SAMPLES.items())
def test_every_spectrum_is_sequenced_or_listed_once(finished_run, sample, n_ms2):
    from psm_utils.io import read_file

    folder = finished_run / "results" / sample
    psms = read_file(folder / "denovo.tsv", filetype="tsv")
    unsequenced = pl.read_csv(folder / "unsequenced.tsv", separator="\t", infer_schema_length=0)
    spectra = read_spectra(finished_run / "results" / "mzml" / f"{sample}.mzML")
    position = {spectrum_id: i for i, spectrum_id in enumerate(spectra["spectrum_id"])}
    sequenced = [position[str(psm.spectrum_id)] for psm in psms]
    listed = [position[s] for s in unsequenced["spectrum_id"]]
    assert sorted(sequenced + listed) == list(range(n_ms2))
    assert sequenced == sorted(sequenced) and listed == sorted(listed)  # input order
    assert (folder / "denovo.mztab").stat().st_size > 0


@pytest.mark.parametrize(("sample", "n_ms2"), SAMPLES.items())
def test_comparison_keeps_every_spectrum(finished_run, sample, n_ms2):
    folder = finished_run / "results" / sample
    table = pl.read_csv(folder / "comparison.tsv", separator="\t", infer_schema_length=0)
    assert table.height == n_ms2
    summary = json.loads((folder / "comparison.json").read_text())
    assert summary["n_spectra"] == n_ms2
    assert summary["n_labelled"] > 0
    assert summary["trm"]["spectra_per_second"] > 0
    assert summary["casanovo"]["spectra_per_second"] > 0
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_labelled"] == summary["n_labelled"]
    assert 0 <= metrics["peptide_recall"] <= 1


@pytest.mark.parametrize("sample", SAMPLES)
def test_fine_tuning_spectra_are_left_out_of_evaluation_and_comparison(finished_run, sample):
    models = finished_run / "results" / "models" / "orbitrap_hcd"
    assert (models / "finetuned.pt").stat().st_size > 0
    assert not (models / "finetune_work").exists()
    split = pl.read_csv(models / "finetune_split.tsv", separator="\t", infer_schema_length=0)
    assert set(split["run"]) == set(SAMPLES)
    used = split.filter((pl.col("run") == sample) & pl.col("split").is_in(["train", "validation"]))
    assert used.height > 0
    folder = finished_run / "results" / sample
    metrics = json.loads((folder / "metrics.json").read_text())
    held_out = metrics["held_out"]
    assert held_out["used_for_finetuning"] == used.height
    assert metrics["n_labelled"] == held_out["evaluated"] == held_out["labelled"] - used.height
    summary = json.loads((folder / "comparison.json").read_text())
    assert summary["held_out"]["used_for_finetuning"] == used.height
    table = pl.read_csv(folder / "comparison.tsv", separator="\t", infer_schema_length=0)
    unlabelled = table.filter(pl.col("spectrum_id").is_in(used["spectrum_id"].to_list()))
    assert unlabelled["label_peptide"].null_count() == used.height


def test_summary_has_one_row_per_sample(finished_run):
    summary = pl.read_csv(finished_run / "results" / "comparison_summary.tsv", separator="\t")
    assert summary["sample"].to_list() == list(SAMPLES)


def test_rerun_has_nothing_to_do(finished_run):
    result = snakemake("-n", workdir=finished_run)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_report_has_its_front_page_and_captions(finished_run):
    """``snakemake --report``: the front page says what the model can do; every plot and
    table comes with its caption."""
    result = snakemake("--report", "results/report.html", workdir=finished_run)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (finished_run / "results" / "report.html").read_text(encoding="utf-8")
    for phrase in (
        "What the shipped model can and cannot do",  # front page
        "Learning curve of the recursive model",  # training, per refinement step
        "Precision-coverage curve of the recursive model",  # de novo, per sample
        "The recursive model and Casanovo on the same spectra",  # comparison, per sample
        "One row per sample",  # the summary table, speed included
    ):
        assert phrase in html, phrase
    for sample in SAMPLES:
        assert f"{sample}/comparison.png" in html
