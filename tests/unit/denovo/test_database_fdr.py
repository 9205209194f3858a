"""Database-grounded q-values of de novo answers: the estimate tracks the truth on held-out
answers, says why when it cannot be made, and reaches denovo.tsv and the mzTab."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from psm_utils.io import read_file
from pyteomics import mztab

from tests.unit.train.theoretical_spectra import theoretical_table
from trm.chem import parse_peptidoform
from trm.denovo.database_fdr import (
    CHECK_THRESHOLDS,
    MIN_LABELLED,
    answers_against_labels,
    database_fdr,
    held_out_check,
)

from .conftest import random_peptides, run_denovo


def synthetic_answers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores and correctness drawn from a known model: an answer of raw score ``s``
    is right with probability ``s ** 1.5`` (so the raw score itself is miscalibrated)."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(0.7, 0.5, size=n)
    correct = rng.random(n) < scores**1.5
    return scores, correct


def _tolerance(observed: float, n: int) -> float:
    """Three binomial standard errors, at least one percentage point."""
    return max(0.01, 3 * np.sqrt(max(observed * (1 - observed), 0.01) / n))


def test_estimated_fdr_tracks_the_observed_one_on_held_out_answers():
    """Fit on the labelled half, judge on the other half whose truth the fit never saw:
    at q <= 1%, 5% and 10% the estimated FDR of the accepted held-out answers (their mean
    estimated error probability) is within binomial noise of the share that is wrong, and
    so is the threshold itself."""
    scores, correct = synthetic_answers(40_000, seed=3)
    fitted = np.arange(scores.size) < scores.size // 2
    answers = pl.DataFrame(
        {
            "spectrum_id": [str(i) for i in range(scores.size)],
            "raw_score": scores,
            "correct": pl.Series(
                [bool(c) if f else None for c, f in zip(correct, fitted, strict=True)]
            ),
        }
    )
    result = database_fdr(answers)
    assert result.report["estimated"] and result.report["n_labelled"] == scores.size // 2
    held_out = ~fitted
    table = []
    for threshold in CHECK_THRESHOLDS:
        accepted = held_out & (result.q_values <= threshold)
        n = int(accepted.sum())
        assert n > 200, threshold
        estimated = float(result.pep[accepted].mean())
        observed = float(1 - correct[accepted].mean())
        table.append((threshold, n, estimated, observed))
        assert abs(estimated - observed) <= _tolerance(observed, n), table
        assert observed <= threshold + _tolerance(threshold, n), table


def test_the_reports_own_held_out_check_tracks_too():
    scores, correct = synthetic_answers(20_000, seed=4)
    halves = np.arange(scores.size) % 2
    rows = held_out_check(scores, correct, halves)
    assert [row["threshold"] for row in rows] == list(CHECK_THRESHOLDS)
    for row in rows:
        assert row["accepted"] > 100
        assert abs(row["estimated_fdr"] - row["observed_fdr"]) <= _tolerance(
            row["observed_fdr"], row["accepted"]
        )


def test_q_values_are_monotone_in_the_raw_score():
    scores, correct = synthetic_answers(2_000, seed=5)
    answers = pl.DataFrame(
        {"spectrum_id": [str(i) for i in range(scores.size)], "raw_score": scores,
         "correct": correct}
    )  # fmt: skip
    result = database_fdr(answers)
    order = np.argsort(-scores)
    assert np.all(np.diff(result.q_values[order]) >= -1e-12)
    assert np.all((result.pep >= 0) & (result.pep <= 1))
    accepted = result.report["accepted_at"]
    assert accepted["0.01"] <= accepted["0.05"] <= accepted["0.1"]


def test_too_few_labelled_answers_give_no_estimate_and_say_why():
    answers = pl.DataFrame(
        {
            "spectrum_id": [str(i) for i in range(100)],
            "raw_score": np.linspace(0, 1, 100),
            "correct": pl.Series([True] * 10 + [None] * 90, dtype=pl.Boolean()),
        }
    )
    result = database_fdr(answers)
    assert result.q_values is None and result.pep is None
    assert result.report["estimated"] is False
    assert f"fewer than the {MIN_LABELLED}" in result.report["reason"]
    assert result.report["n_labelled"] == 10


def test_answers_against_labels_match_i_as_l_and_leave_out_what_they_must():
    sequenced = pl.DataFrame(
        {
            "spectrum_id": ["a", "b", "c", "d", "e"],
            "raw_score": [0.9, 0.8, 0.7, 0.6, 0.5],
            "_tokens": [
                parse_peptidoform(p)[0] for p in ("PEPTLDE", "PEPTIDE", "GGG", "AAA", "SS")
            ],
        }
    )
    labels = pl.DataFrame(
        {"spectrum_id": ["a", "b", "c", "d"],
         "label": ["PEPTIDE", "PEPTIDE", "GGA", "PEPTUDE"]}
    )  # fmt: skip
    table = answers_against_labels(sequenced, labels, exclude={"b"})
    assert table["correct"].to_list() == [True, None, False, None, None]
    assert table["spectrum_id"].to_list() == ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def labelled_table(tmp_path_factory):
    """60 labelled theoretical spectra of run ``fdrtest`` as a spectrum table."""
    path = tmp_path_factory.mktemp("fdr") / "labelled.parquet"
    table = theoretical_table(random_peptides(60, seed=11), seed=12, charge=2)
    table.with_columns(run=pl.lit("fdrtest")).write_parquet(path)
    return path


def test_denovo_writes_database_q_values_and_their_report(
    tmp_path, labelled_table, calibrated, instrument_path
):
    report_path = tmp_path / "denovo_fdr.json"
    status, paths = run_denovo(
        labelled_table, calibrated[0], instrument_path, tmp_path,
        "--database-labels", str(labelled_table), "--fdr-report", str(report_path),
        run="fdrtest",
    )  # fmt: skip
    assert status == 0
    report = json.loads(report_path.read_text())
    assert report["estimated"] is True and report["n_labels"] == 60
    assert report["n_labelled"] == report["n_answers"] >= MIN_LABELLED
    assert "identified spectra" in report["assumption"]
    psms = read_file(paths["denovo"], filetype="tsv")
    q_values = [float(psm.metadata["database_qvalue"]) for psm in psms]
    assert all(0 <= q <= 1 for q in q_values)
    with open(paths["mztab"]) as handle:
        spectrum_matches = mztab.MzTab(handle).spectrum_match_table
    assert spectrum_matches["opt_global_database_qvalue"].astype(float).tolist() == (
        pytest.approx(q_values, rel=1e-5)
    )


def test_denovo_without_database_labels_reports_why(
    tmp_path, labelled_table, calibrated, instrument_path
):
    report_path = tmp_path / "denovo_fdr.json"
    status, paths = run_denovo(
        labelled_table, calibrated[0], instrument_path, tmp_path,
        "--fdr-report", str(report_path), run="fdrtest",
    )  # fmt: skip
    assert status == 0
    assert json.loads(report_path.read_text())["estimated"] is False
    assert "meta:database_qvalue" not in paths["denovo"].read_text().splitlines()[0]


def test_a_run_without_labels_borrows_the_map_of_other_runs(
    tmp_path, labelled_table, calibrated, instrument_path
):
    """The labels are of run fdrtest; the run sequenced is another: its answers get q-values
    from the map fitted on fdrtest's labelled spectra, sequenced for the purpose, and the
    run's timing does not count them."""
    spectra = tmp_path / "other.parquet"
    pl.read_parquet(labelled_table).head(20).drop("peptide").write_parquet(spectra)
    report_path = tmp_path / "denovo_fdr.json"
    status, paths = run_denovo(
        spectra, calibrated[0], instrument_path, tmp_path,
        "--database-labels", str(labelled_table), "--fdr-report", str(report_path),
        run="other",
    )  # fmt: skip
    assert status == 0
    report = json.loads(report_path.read_text())
    assert report["estimated"] is True
    assert report["fitted_on"] == "identified spectra of other runs of the instrument"
    assert report["n_labelled"] == 60 and report["n_answers"] <= 20
    psms = read_file(paths["denovo"], filetype="tsv")
    assert len(psms) == report["n_answers"]
    assert all(0 <= float(psm.metadata["database_qvalue"]) <= 1 for psm in psms)
    timing = json.loads(paths["timing"].read_text())
    assert timing["n_spectra"] == 20
    assert sum(timing["steps_histogram"].values()) == len(psms)
