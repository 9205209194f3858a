"""Casanovo's mzTab back to one row per input spectrum."""

from __future__ import annotations

import polars as pl

from tests.unit.casanovo.conftest import DATA_DIR, spectrum_table
from trm.casanovo.mgf import select_spectra
from trm.casanovo.mztab import (
    PSM_SCHEMA,
    RESULT_SCHEMA,
    per_spectrum_results,
    read_casanovo_mztab,
    to_trm_proforma,
)
from trm.chem import parse_peptidoform

MZTAB = DATA_DIR / "tiny_run.mztab"


def test_reads_casanovo_psms():
    psms = read_casanovo_mztab(MZTAB)
    assert psms.schema == PSM_SCHEMA
    assert psms["mgf_index"].to_list() == [1, 2, 3, 4, 7]
    assert psms["charge"].to_list() == [3, 2, 2, 3, 3]
    assert "C[Carbamidomethyl]" in psms["casanovo_sequence"][0]
    assert "N[Deamidated]" in psms["peptide"][1]
    for peptide in psms["peptide"]:
        parse_peptidoform(peptide)  # every peptide is trm-readable ProForma


def test_every_input_spectrum_keeps_one_row(small_table):
    given, skipped = select_spectra(small_table, max_charge=4)
    results = per_spectrum_results(given, skipped, read_casanovo_mztab(MZTAB))
    assert results.schema == RESULT_SCHEMA
    assert results.height == small_table.height
    assert results["spectrum_id"].to_list() == small_table["spectrum_id"].to_list()
    status = dict(zip(results["spectrum_id"], results["status"], strict=True))
    assert [status[f"scan={i}"] for i in (2, 3, 4, 5, 8)] == ["sequenced"] * 5
    assert [status[f"scan={i}"] for i in (1, 6, 7)] == ["no_psm"] * 3
    assert [status[f"scan={i}"] for i in (9, 10)] == ["skipped"] * 2
    assert results.filter(pl.col("status") != "sequenced")["reason"].null_count() == 0
    assert results.filter(pl.col("status") == "sequenced")["reason"].null_count() == 5


def test_charge_copies_keep_the_best_psm():
    table = spectrum_table(["PEPTIDEK", "PEPTIDEK", "LESLIEK"], [2, 3, 2])
    table = table.with_columns(pl.Series("spectrum_id", ["a", "a", "b"]))
    given, skipped = select_spectra(table, max_charge=4)
    psms = pl.DataFrame(
        {
            "mgf_index": [0, 1],
            "casanovo_sequence": ["PEPTLDEK", "PEPTIDEK"],
            "peptide": ["PEPTLDEK", "PEPTIDEK"],
            "score": [0.2, 0.9],
            "aa_scores": ["", ""],
            "charge": [2, 3],
            "calc_mz": [0.0, 0.0],
        },
        schema=PSM_SCHEMA,
    )
    results = per_spectrum_results(given, skipped, psms)
    assert results.select("spectrum_id", "status", "peptide", "charge").rows() == [
        ("a", "sequenced", "PEPTIDEK", 3),
        ("b", "no_psm", None, 2),
    ]


def test_empty_mztab(tmp_path):
    header = [line for line in MZTAB.read_text().splitlines() if not line.startswith("PSM")]
    path = tmp_path / "empty.mztab"
    path.write_text("\n".join(header) + "\n")
    assert read_casanovo_mztab(path).height == 0


def test_casanovo_names_become_trm_proforma():
    assert to_trm_proforma("[Acetyl]-PEPM[Oxidation]K") == "[Acetyl]-PEPM[Oxidation]K"
    # No valid ProForma name for trm's combined token: Casanovo's mass spelling is kept.
    tokens, _ = parse_peptidoform(to_trm_proforma("[+25.980265]-YLGK"))
    assert tokens[0] == "[Carbamyl+Ammonia-loss]-"
    assert to_trm_proforma("PEPS[Phospho]K") is None
