"""The recursive model against Casanovo: per-spectrum table and summary."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from trm import metrics
from trm.compare import comparison as compare


def _tool(rows):
    return pl.DataFrame(
        rows,
        schema=["run", "spectrum_id", "status", "reason", "peptide", "score"],
        orient="row",
    )


@pytest.fixture
def labels():
    return pl.DataFrame(
        {
            "run": ["r"] * 5,
            "spectrum_id": ["s1", "s2", "s3", "s4", "s5"],
            "peptide": ["PEPTIDEK", "LESLIEK", "M[Oxidation]SEHTLK", "AGLQFPVGR", None],
        }
    )


@pytest.fixture
def trm():
    return _tool(
        [
            ("r", "s1", "sequenced", None, "PEPTLDEK", 0.9),  # I = L: right
            ("r", "s2", "sequenced", None, "LESLIEK", 0.8),
            ("r", "s3", "sequenced", None, "MSEHTLK", 0.7),  # missing the oxidation
            ("r", "s5", "sequenced", None, "GGPEPK", 0.1),
        ]
    )


@pytest.fixture
def casanovo():
    return _tool(
        [
            ("r", "s1", "sequenced", None, "PEPTIDEK", 0.5),
            ("r", "s2", "sequenced", None, "LESLEIK", 0.95),  # two residues swapped
            ("r", "s3", "skipped", "no precursor charge", None, None),
            ("r", "s4", "no_psm", "Casanovo reported no peptide", None, None),
            ("r", "s5", "sequenced", None, "NPEPK", 0.2),
        ]
    )


def test_rows_are_never_lost(trm, casanovo, labels):
    table = compare.comparison_table(trm, casanovo, labels)
    assert table.schema == compare.COMPARISON_SCHEMA
    assert table["spectrum_id"].to_list() == ["s1", "s2", "s3", "s4", "s5"]
    row = table.row(3, named=True)  # s4: not in trm's results at all
    assert row["trm_status"] == "missing" and row["trm_reason"] == "not in trm's results"
    assert row["casanovo_status"] == "no_psm"
    assert table.row(2, named=True)["casanovo_reason"] == "no precursor charge"


def test_without_labels_rows_are_the_union(trm, casanovo):
    table = compare.comparison_table(trm, casanovo)
    assert sorted(table["spectrum_id"]) == ["s1", "s2", "s3", "s4", "s5"]
    assert table["trm_correct"].null_count() == table.height


def test_labels_of_some_spectra_keep_every_row(trm, casanovo, labels):
    # An identification file labels only the identified spectra; the rest keep their rows.
    table = compare.comparison_table(trm, casanovo, labels.head(2))
    assert sorted(table["spectrum_id"]) == ["s1", "s2", "s3", "s4", "s5"]
    assert table["label_peptide"].null_count() == 3


def test_numeric_spectrum_ids_of_a_tool_table_still_join():
    numeric = pl.DataFrame(
        {"run": ["r"], "spectrum_id": [7], "status": ["sequenced"], "reason": [None]}
    ).with_columns(peptide=pl.lit("PEPTIDEK"), score=pl.lit(0.5))
    text = numeric.with_columns(pl.col("spectrum_id").cast(pl.String()))
    labels = pl.DataFrame({"run": ["r"], "spectrum_id": ["7"], "peptide": ["PEPTIDEK"]})
    table = compare.comparison_table(text, numeric, labels)
    assert table.height == 1
    assert table["agree"].to_list() == [True]


def test_agreement_and_correctness_by_mass(trm, casanovo, labels):
    table = compare.comparison_table(trm, casanovo, labels)
    assert table["agree"].to_list() == [True, False, None, None, False]
    assert table["trm_correct"].to_list() == [True, True, False, False, None]
    assert table["casanovo_correct"].to_list() == [True, False, False, False, None]


def test_summary(trm, casanovo, labels):
    table = compare.comparison_table(trm, casanovo, labels)
    summary, curves = compare.summarize(table, {"trm": 100.0, "casanovo": 12.5})
    assert summary["n_spectra"] == 5
    assert summary["n_both_sequenced"] == 3
    assert summary["agreement_rate"] == pytest.approx(1 / 3)
    assert summary["n_labelled"] == 4
    assert summary["trm"]["n_sequenced"] == 4
    assert summary["trm"]["peptide_recall"] == pytest.approx(2 / 4)
    assert summary["casanovo"]["peptide_recall"] == pytest.approx(1 / 4)
    assert summary["casanovo"]["status_counts"] == {"sequenced": 3, "skipped": 1, "no_psm": 1}
    # s1 (8 residues) fully right, s2 (7) wrong at two positions: 13 / 15 residues.
    assert summary["casanovo"]["aa_precision"] == pytest.approx(13 / 15)
    assert summary["casanovo"]["spectra_per_second"] == 12.5
    coverage, precision = curves["trm"]
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(precision, [1.0, 1.0, 2 / 3])
    json.dumps(summary)  # the summary is plain JSON


def test_precision_coverage_auc():
    _, _, perfect = metrics.precision_coverage([True] * 4, [4, 3, 2, 1], 4)
    assert perfect == pytest.approx(1.0)
    coverage, precision, auc = metrics.precision_coverage([False, True], [0.9, 0.1], 2)
    np.testing.assert_allclose(precision, [0.0, 0.5])
    assert auc == pytest.approx(0.5 * 0.0 + 0.5 * 0.25)
    assert metrics.precision_coverage([], [], 3)[2] == 0.0


def test_trm_results_strip_charge_and_keep_unsequenced():
    denovo = pl.DataFrame(
        {"spectrum_id": ["a"], "run": ["r"], "peptidoform": ["PEPTIDEK/2"], "score": [0.5]}
    )
    unsequenced = pl.DataFrame({"spectrum_id": ["b"], "run": ["r"], "reason": ["no peaks"]})
    table = compare.trm_results_table(denovo, unsequenced)
    assert table.select("spectrum_id", "status", "peptide").rows() == [
        ("a", "sequenced", "PEPTIDEK"),
        ("b", "unsequenced", None),
    ]


def test_speeds_from_timing_files(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"seconds": 4.0, "n_spectra_given": 10}))
    assert compare.read_speed(tmp_path / "c.json") == 2.5
    benchmark = tmp_path / "trm.benchmark.tsv"
    benchmark.write_text("s\th:m:s\tmax_rss\n2.0\t0:00:02\t100\n")
    assert compare.read_speed(benchmark, n_spectra=50) == 25.0


def test_plot_and_sample_row(trm, casanovo, labels, tmp_path):
    summary, curves = compare.summarize(compare.comparison_table(trm, casanovo, labels))
    figure = metrics.precision_coverage_figure(curves, summary)
    figure.savefig(tmp_path / "pc.png")
    assert (tmp_path / "pc.png").stat().st_size > 0
    row = compare.summary_row("sample1", summary)
    assert row["sample"] == "sample1" and row["trm_n_sequenced"] == 4
    assert row["casanovo_spectra_per_second"] is None


def test_trm_token_names_are_read_back():
    """trm writes the joined N-terminal token by name; it matches Casanovo's mass form."""
    trm = _tool([("r", "a", "sequenced", None, "[Carbamyl+Ammonia-loss]-YLGEEYVK", 0.5)])
    casanovo = _tool([("r", "a", "sequenced", None, "[+25.980265]-YLGEEYVK", 0.5)])
    assert compare.comparison_table(trm, casanovo)["agree"].to_list() == [True]


def test_casanovo_answers_off_the_precursor_count_apart():
    from trm.chem import C13_SPACING, PROTON_MASS, peptide_mass

    def mz(peptide, charge):
        return float((peptide_mass(list(peptide)) + charge * PROTON_MASS) / charge)

    fitting = mz("PEPTIDEK", 2)
    table = pl.DataFrame(
        {
            "run": ["r"] * 4,
            "spectrum_id": ["a", "b", "c", "d"],
            "status": ["sequenced", "sequenced", "sequenced", "skipped"],
            "reason": [None, None, None, "no charge"],
            "peptide": ["PEPTIDEK", "PEPTIDEK", "PEPTIDEK", None],
            "score": [0.9, 0.8, 0.7, None],
            "charge": [2, 2, 2, None],
            # exact; the second isotope picked; 200 ppm off
            "precursor_mz": [fitting, fitting + C13_SPACING / 2, fitting * (1 + 2e-4), None],
            "calc_mz": [fitting] * 3 + [None],
        }
    )
    marked = compare.mark_precursor_mismatches(table, tolerance_ppm=20, isotope_errors=[0, 1])
    assert marked["status"].to_list() == ["sequenced", "sequenced", "precursor_mismatch", "skipped"]
    assert marked["peptide"].to_list() == ["PEPTIDEK", "PEPTIDEK", None, None]
    assert "PEPTIDEK does not fit the precursor (200 ppm)" in marked["reason"][2]
    # Only the monoisotopic peak allowed: the second spectrum misses too.
    strict = compare.mark_precursor_mismatches(table, tolerance_ppm=20, isotope_errors=[0])
    assert strict["status"].to_list()[:3] == ["sequenced"] + ["precursor_mismatch"] * 2


def test_a_collapsed_tool_is_flagged():
    assert compare.collapse([]) == (None, None)
    assert compare.collapse([], n_mismatched=5) == ("no precursor-fitting answer", None)
    varied = [f"PEP{i}K" for i in range(100)]
    assert compare.collapse(varied)[0] is None
    reason, share = compare.collapse(varied[:90] + ["LLLLLLLLLLR"] * 10)
    assert share == pytest.approx(0.1) and "LLLLLLLLLLR" in reason and "10%" in reason
    # Two repeats of 20 are 10%, but too few to call a collapse.
    assert compare.collapse(varied[:18] + ["AAK", "AAK"])[0] is None


def test_both_tools_are_also_measured_on_the_spectra_both_answered(trm, casanovo, labels):
    summary, _ = compare.summarize(compare.comparison_table(trm, casanovo, labels))
    # Labelled: s1-s4; trm answered s1-s3, Casanovo s1 and s2 (s3 skipped, s4 no PSM).
    assert summary["n_common"] == 2
    assert summary["trm"]["common"]["peptide_recall"] == 1.0  # s1 (I = L) and s2
    assert summary["casanovo"]["common"]["peptide_recall"] == 0.5  # s2 has two swapped
    assert summary["trm"]["peptide_recall"] == 0.5  # s1, s2 of four labelled
    row = compare.summary_row("sample1", summary)
    assert row["n_common"] == 2 and row["casanovo_common_peptide_recall"] == 0.5
