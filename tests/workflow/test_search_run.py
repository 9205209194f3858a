"""The database search end to end in the workflow, on the search test configuration
(tests/config_search): a sample labelled by its search, one that keeps its own
identifications, one with neither; and a run whose search labels nothing at 1% FDR.

Casanovo is left out (its baseline alone takes minutes): the targets are every output of
the search, labels, de novo, evaluation and database-comparison rules."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml
from psm_utils.io import read_file

from tests.workflow.helpers import PROJECT_ROOT, make_workdir, snakemake
from trm.io.spectra import read_spectra

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CONFIG = PROJECT_ROOT / "tests" / "config_search"
TARGETS = [
    "results/searched/denovo_vs_database.tsv",
    "results/searched/metrics.json",
    "results/supplied/denovo_vs_database.tsv",
    "results/supplied/metrics.json",
    "results/mouse/denovo.tsv",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("search_run"), CONFIG)
    result = snakemake("--cores", "1", *TARGETS, workdir=workdir, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return workdir


def _json(path):
    return json.loads(path.read_text())


def test_search_tsv_holds_every_psm_with_q_value_decoy_flag_and_score(finished_run):
    psms = read_file(finished_run / "results" / "searched" / "search.tsv", filetype="tsv")
    summary = _json(finished_run / "results" / "searched" / "search.json")
    spectra = read_spectra(finished_run / "results" / "mzml" / "searched.mzML")
    assert len(psms) == summary["n_psms"] > 0
    assert {str(p.spectrum_id) for p in psms} <= set(spectra["spectrum_id"])
    assert all(p.qvalue is not None and p.score is not None for p in psms)
    assert any(p.is_decoy for p in psms) and not all(p.is_decoy for p in psms)
    assert summary["fdr"] == 0.05 and summary["n_at_fdr"] > 0
    assert (finished_run / "logs" / "benchmarks" / "search" / "searched.tsv").exists()
    assert (
        "target PSMs at 0.05 FDR label their spectra"
        in (finished_run / "logs" / "search" / "searched.log").read_text()
    )


def test_a_searched_sample_is_labelled_by_its_psms_at_the_fdr(finished_run):
    summary = _json(finished_run / "results" / "searched" / "search.json")
    labels = pl.read_parquet(finished_run / "results" / "labels" / "searched.parquet")
    assert labels.height == summary["n_at_fdr"]
    metrics = _json(finished_run / "results" / "searched" / "metrics.json")
    assert metrics["n_labelled"] == labels.height


def test_supplied_identifications_win_and_are_compared_with_the_search(finished_run):
    labels = pl.read_parquet(finished_run / "results" / "labels" / "supplied.parquet")
    assert labels.height == 65  # MetaMorpheus's identifications, not the search's
    supplied = _json(finished_run / "results" / "supplied" / "search.json")["against_supplied"]
    assert supplied["n_supplied"] == 65
    assert supplied["at_fdr"]["agreement"] >= 0.9


def test_de_novo_answers_carry_database_grounded_q_values(finished_run):
    folder = finished_run / "results" / "searched"
    report = _json(folder / "denovo_fdr.json")
    assert report["estimated"] is True and report["n_labelled"] > 0
    assert [row["threshold"] for row in report["held_out_check"]] == [0.01, 0.05, 0.1]
    psms = read_file(folder / "denovo.tsv", filetype="tsv")
    assert all(0 <= float(p.metadata["database_qvalue"]) <= 1 for p in psms)
    assert "opt_global_database_qvalue" in (folder / "denovo.mztab").read_text()
    assert report["fitted_on"] == "this run's identified spectra"
    # mouse has no identifications: the map is fitted on the instrument's labelled runs.
    mouse = _json(finished_run / "results" / "mouse" / "denovo_fdr.json")
    assert mouse["estimated"] is True
    assert mouse["fitted_on"] == "identified spectra of other runs of the instrument"
    assert mouse["labels"] == ["searched.parquet", "supplied.parquet"]
    psms = read_file(finished_run / "results" / "mouse" / "denovo.tsv", filetype="tsv")
    assert all(0 <= float(p.metadata["database_qvalue"]) <= 1 for p in psms)


@pytest.mark.parametrize("sample", ["searched", "supplied"])
def test_de_novo_against_the_database(finished_run, sample):
    folder = finished_run / "results" / sample
    summary = _json(folder / "denovo_vs_database.json")
    table = pl.read_csv(folder / "denovo_vs_database.tsv", separator="\t")
    assert sum(summary["counts"].values()) == table.height
    search = _json(folder / "search.json")
    assert summary["n_database_identified"] == search["n_at_fdr"]
    candidates = pl.read_csv(folder / "denovo_candidates.tsv", separator="\t")
    assert candidates.height == summary["candidates"]["n"]
    assert (candidates["denovo_score"] >= 0.5).all() if candidates.height else True
    assert (folder / "denovo_vs_database.png").stat().st_size > 0


def test_the_report_shows_the_database_comparison_with_its_caption(finished_run):
    result = snakemake("--report", "results/report.html", *TARGETS, workdir=finished_run)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (finished_run / "results" / "report.html").read_text(encoding="utf-8")
    assert "The recursive model against the database search of sample" in html
    assert "searched/denovo_vs_database.png" in html


def test_rerun_has_nothing_to_do(finished_run):
    result = snakemake("-n", *TARGETS, workdir=finished_run)
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def unlabelled_by_search(tmp_path_factory):
    """The searched sample alone at 1% FDR, which its 118 spectra cannot reach, with
    fine-tuning on: nothing downstream may act as if it had labels."""
    workdir = make_workdir(tmp_path_factory.mktemp("no_psm"), CONFIG)
    sheet = workdir / "config" / "samples.tsv"
    lines = sheet.read_text().splitlines()
    sheet.write_text(
        "\n".join([lines[0], *[line for line in lines if line.startswith("searched")]]) + "\n"
    )
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["search"]["fdr"] = 0.01
    config["finetune"]["enabled"] = True
    path.write_text(yaml.safe_dump(config))
    targets = [
        "results/searched/metrics.json",
        "results/searched/denovo_vs_database.json",
        "results/searched/denovo_fdr.json",
    ]
    result = snakemake("--cores", "1", *targets, workdir=workdir, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return workdir


def test_a_search_without_psms_at_the_fdr_labels_nothing_and_says_so(unlabelled_by_search):
    results = unlabelled_by_search / "results"
    search = _json(results / "searched" / "search.json")
    assert search["n_at_fdr"] == 0 and search["too_small_for_target_decoy"]
    assert "at least 100" in (unlabelled_by_search / "logs/search/searched.log").read_text()
    assert pl.read_parquet(results / "labels" / "searched.parquet").height == 0
    metrics = _json(results / "searched" / "metrics.json")
    assert metrics["n_labelled"] == 0 and metrics["peptide_recall"] is None
    assert _json(results / "searched" / "denovo_fdr.json")["estimated"] is False
    comparison = _json(results / "searched" / "denovo_vs_database.json")
    assert comparison["n_database_identified"] == 0
    noise = yaml.safe_load((results / "noise" / "orbitrap_hcd.yaml").read_text())
    assert "fallback" in noise["provenance"]  # the shipped noise model, not a fit
    finetuned = unlabelled_by_search / "logs" / "finetune" / "orbitrap_hcd.log"
    assert "the pretrained model is used unchanged" in finetuned.read_text()
