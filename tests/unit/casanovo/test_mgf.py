"""Spectrum table -> MGF for Casanovo, and the spectra it is not given."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.casanovo.conftest import DATA_DIR, PEPTIDES, spectrum_table
from trm.casanovo.config import load_template
from trm.casanovo.mgf import casanovo_peptide, casanovo_token_map, select_spectra, write_mgf
from trm.chem import UnsupportedPeptideError
from trm.io.mgf import iter_mgf

RESIDUES = load_template()["residues"]


def test_only_charged_spectra_within_max_charge_are_given(small_table):
    given, skipped = select_spectra(small_table, max_charge=4)
    assert given["mgf_index"].to_list() == list(range(8))
    assert skipped["spectrum_id"].to_list() == ["scan=9", "scan=10"]
    reasons = skipped["reason"].to_list()
    assert "no precursor charge" in reasons[0]
    assert "charge 6 above Casanovo's max_charge 4" in reasons[1]
    assert given.height + skipped.height == small_table.height


def test_mgf_round_trip(small_table, tmp_path):
    given, _ = select_spectra(small_table, max_charge=4)
    path = write_mgf(given, tmp_path / "spectra.mgf")
    read = list(iter_mgf(path))
    assert [s.title for s in read] == given["spectrum_id"].to_list()
    assert [s.charge for s in read] == given["charge"].to_list()
    assert [s.scan for s in read] == given["scan"].to_list()
    for spectrum, row in zip(read, given.iter_rows(named=True), strict=True):
        assert spectrum.precursor_mz == pytest.approx(row["precursor_mz"], abs=1e-6)
        np.testing.assert_allclose(spectrum.mz, row["mz"], atol=1e-5)
        np.testing.assert_allclose(spectrum.intensity, row["intensity"], rtol=1e-5)
        assert "SEQ" not in spectrum.params


def test_export_is_what_casanovo_read_in_the_test_data(small_table, tmp_path):
    """tests/data/casanovo/tiny_run.mztab indexes this exact file."""
    given, _ = select_spectra(small_table, max_charge=4)
    path = write_mgf(given, tmp_path / "spectra.mgf")
    assert path.read_text() == (DATA_DIR / "tiny_run.mgf").read_text()


def test_token_map_uses_casanovo_names():
    mapping = casanovo_token_map(RESIDUES)
    assert mapping["[Carbamyl+Ammonia-loss]-"] == "[+25.980265]-"
    assert mapping["C[Carbamidomethyl]"] == "C[Carbamidomethyl]"
    assert mapping["M[Oxidation]"] == "M[Oxidation]"
    # Same mass as D, but a different token: must not be renamed to D.
    assert mapping["N[Deamidated]"] == "N[Deamidated]"


def test_training_peptides_are_spelled_for_casanovo():
    mapping = casanovo_token_map(RESIDUES)
    assert casanovo_peptide("[Acetyl]-PEPM[UNIMOD:35]K", mapping) == "[Acetyl]-PEPM[Oxidation]K"
    assert casanovo_peptide("[+25.980265]-YLGK", mapping) == "[+25.980265]-YLGK"
    with pytest.raises(UnsupportedPeptideError):
        casanovo_peptide("PEPS[Phospho]K", mapping)


def test_annotated_export_writes_seq_and_lists_unlabelled(tmp_path):
    table = spectrum_table([*PEPTIDES, "PEPTIDEK"], [2] * (len(PEPTIDES) + 1))
    table = table.with_columns(table["peptide"].scatter(len(PEPTIDES), None).alias("peptide"))
    given, skipped = select_spectra(table, max_charge=4, annotated=True, residues=RESIDUES)
    assert skipped["reason"].to_list() == ["no peptide label"]
    read = list(iter_mgf(write_mgf(given, tmp_path / "train.mgf")))
    assert [s.params["SEQ"] for s in read] == [
        "LESLIEK",
        "PEPTIDEK",
        "[Acetyl]-AGLQFPVGR",
        "C[Carbamidomethyl]DNSGSLLR",
        "M[Oxidation]SEHTLK",
        "VATN[Deamidated]PWGR",
        "[+25.980265]-YLGEEYVK",
        "IGDYAGIK",
    ]


def test_spectra_without_precursor_or_signal_are_not_given_to_casanovo(small_table):
    """Casanovo died on spectra without a precursor m/z and on negative intensities;
    they are listed with the reasons trm denovo gives instead."""
    import polars as pl

    table = small_table.with_columns(
        precursor_mz=pl.when(pl.col("spectrum_id") == "scan=1")
        .then(None)
        .otherwise(pl.col("precursor_mz")),
        intensity=pl.when(pl.col("spectrum_id") == "scan=2")
        .then(pl.col("intensity").list.eval(-pl.element()))
        .otherwise(pl.col("intensity")),
    )
    given, skipped = select_spectra(table, max_charge=4)
    reasons = dict(zip(skipped["spectrum_id"], skipped["reason"], strict=True))
    assert reasons["scan=1"] == "missing precursor m/z"
    assert reasons["scan=2"].startswith("no usable peaks")
    assert given.height + skipped.height == table.height
    assert (given["precursor_mz"] > 0).all()
