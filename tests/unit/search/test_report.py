"""search.tsv, the search summary and the comparison with supplied identifications."""

from __future__ import annotations

import polars as pl
import pytest
from psm_utils.io import read_file

from trm.search.engine import PSM_SCHEMA, SKIPPED_SCHEMA, SearchOutcome
from trm.search.report import (
    against_identifications,
    fdr_note,
    search_summary,
    write_search_tsv,
)
from trm.search.settings import SearchSettings


def _psms(rows: list[tuple[str, str, bool, float]]) -> pl.DataFrame:
    """PSMs from (spectrum_id, peptide, is_decoy, q_value); the rest filled in."""
    return pl.DataFrame(
        [
            {
                "spectrum_id": spectrum_id, "run": "r", "native_id": f"index={i}",
                "peptide": peptide, "charge": 2, "is_decoy": decoy, "score": 1.0 - q,
                "q_value": q, "peptide_q_value": q, "hyperscore": 10.0, "discriminant": 0.5,
                "delta_next": 1.0, "matched_peaks": 8, "missed_cleavages": 0,
                "isotope_error": 0, "mass_error_ppm": 1.5, "precursor_mz": 500.0,
                "calc_mz": 500.0, "rt": 60.0, "proteins": ["rev_P1" if decoy else "P1"],
            }
            for i, (spectrum_id, peptide, decoy, q) in enumerate(rows)
        ],
        schema=PSM_SCHEMA,
    )  # fmt: skip


def _outcome(psms: pl.DataFrame, n_spectra: int) -> SearchOutcome:
    return SearchOutcome(
        psms=psms, skipped=pl.DataFrame(schema=SKIPPED_SCHEMA), n_spectra=n_spectra,
        n_proteins=10, n_peptides=1000, discriminant_fitted=True,
        seconds={"database": 1.0, "scoring": 0.5, "fdr": 0.1},
    )  # fmt: skip


def test_search_tsv_is_read_by_psm_utils_with_q_values_decoys_and_scores(tmp_path, yeast_outcome):
    path = tmp_path / "search.tsv"
    write_search_tsv(yeast_outcome.psms, path)
    psms = read_file(path, filetype="tsv")
    assert len(psms) == yeast_outcome.psms.height
    assert [str(p.spectrum_id) for p in psms] == yeast_outcome.psms["spectrum_id"].to_list()
    assert all(p.qvalue is not None and p.score is not None for p in psms)
    assert [p.is_decoy for p in psms] == yeast_outcome.psms["is_decoy"].to_list()
    assert all(p.metadata["native_id"].startswith("index=") for p in psms)


def test_an_empty_search_tsv_has_the_header_and_no_row(tmp_path):
    path = tmp_path / "search.tsv"
    write_search_tsv(pl.DataFrame(schema=PSM_SCHEMA), path)
    header = path.read_text().splitlines()
    assert len(header) == 1 and "qvalue" in header[0] and "is_decoy" in header[0]
    assert len(read_file(path, filetype="tsv")) == 0


def test_fdr_note_says_what_target_decoy_competition_allows():
    settings = SearchSettings(fdr=0.01)
    assert "at least 100 (1 / fdr)" in fdr_note(85, 0, 0.0135, settings)
    assert "85 target PSMs" in fdr_note(85, 0, 0.0135, settings)
    assert fdr_note(150, 0, 0.2, settings).startswith(
        "no PSM at 0.01 FDR (best target q-value 0.2)"
    )
    assert fdr_note(150, 40, 0.005, settings) == "40 target PSMs at 0.01 FDR label their spectra"


def test_a_search_with_no_psm_at_the_fdr_says_so_and_labels_nothing():
    rows = [(f"s{i}", "PEPTIDEK", i % 2 == 1, 0.3) for i in range(300)]
    summary = search_summary(_outcome(_psms(rows), 320), SearchSettings(), "r", "x.fasta")
    assert summary["n_target_psms"] == 150 and summary["n_decoy_psms"] == 150
    assert summary["n_at_fdr"] == 0 and not summary["too_small_for_target_decoy"]
    assert summary["note"].startswith("no PSM at 0.01 FDR")
    assert summary["scoring_seconds_per_1000_spectra"] == pytest.approx(1000 * 0.5 / 320)


def test_a_run_too_small_for_target_decoy_competition_says_so_with_the_minimum():
    rows = [(f"s{i}", "PEPTIDEK", False, 0.02) for i in range(40)]
    summary = search_summary(_outcome(_psms(rows), 50), SearchSettings(), "r", "x.fasta")
    assert summary["too_small_for_target_decoy"] and summary["min_target_psms_for_fdr"] == 100
    assert "run too small for target-decoy competition: 40 target PSMs" in summary["note"]


def test_psms_against_supplied_identifications():
    psms = _psms(
        [
            ("a", "PEPTLDEK", False, 0.001),  # agrees (I = L)
            ("b", "GGGGGGK", False, 0.001),  # disagrees
            ("c", "AAAAAAK", False, 0.001),  # extra: not supplied
            ("d", "SSSSSSK", False, 0.5),  # above the FDR: missed at the FDR, agrees as best PSM
            ("e", "SSSSSSK", True, 0.001),  # a decoy never counts
        ]
    )
    labels = pl.DataFrame(
        {"spectrum_id": ["a", "b", "d", "e"],
         "label": ["PEPTIDEK", "GGGGGAK", "SSSSSSK", "SSSSSSK"]}
    )  # fmt: skip
    result = against_identifications(psms, labels, fdr=0.01)
    assert result["n_supplied"] == 4
    at_fdr = result["at_fdr"]
    assert (at_fdr["n_search"], at_fdr["n_both"], at_fdr["agree"]) == (3, 2, 1)
    assert (at_fdr["extra"], at_fdr["missed"]) == (1, 2)
    assert 0.5 < at_fdr["residue_agreement"] < 1
    best = result["best_psm"]
    assert (best["n_search"], best["n_both"], best["agree"], best["missed"]) == (4, 3, 2, 1)
