"""trm.io.labels: labelled spectra for training and evaluation."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from trm.chem import UnsupportedPeptideError
from trm.io.errors import SpectrumFileError
from trm.io.labels import (
    msp_proforma,
    normalise_peptide,
    read_annotated_mgf,
    read_identified_spectra,
    read_msp,
    scan_of_psm_spectrum_id,
)
from trm.io.table import SPECTRUM_SCHEMA


@pytest.mark.parametrize(
    ("label", "proforma", "charge"),
    [
        ("PEPTIDEK", "PEPTIDEK", None),
        ("PEPTC[Carbamidomethyl]IDEK/2", "PEPTC[Carbamidomethyl]IDEK", 2),
        ("M[UNIMOD:35]PEPK", "M[Oxidation]PEPK", None),
        ("PEM+15.995K", "PEM[Oxidation]K", None),
        ("+42.011PEPTIDEK", "[Acetyl]-PEPTIDEK", None),
        ("Q[Gln->pyro-Glu]PEPK", "[Ammonia-loss]-QPEPK", None),
        ("N[+0.984]GK", "N[Deamidated]GK", None),
    ],
)
def test_normalise_peptide(label: str, proforma: str, charge: int | None) -> None:
    assert normalise_peptide(label) == (proforma, charge)


@pytest.mark.parametrize("label", ["PEPS[Phospho]K", "PEPXK", "", "C[+58.005]K"])
def test_normalise_rejects_outside_vocabulary(label: str) -> None:
    with pytest.raises(UnsupportedPeptideError):
        normalise_peptide(label)


def test_annotated_mgf(data_dir) -> None:
    table, skipped = read_annotated_mgf(
        data_dir / "casanovo" / "sample_preprocessed_spectra_head8.mgf"
    )
    assert list(table.schema)[: len(SPECTRUM_SCHEMA)] == list(SPECTRUM_SCHEMA)
    assert table.height == 8 and skipped.height == 0
    assert table["peptide"].to_list()[:3] == [
        "IAHYNKR",
        "VKEDPDGEHAR",
        "C[Carbamidomethyl]GHTNNIRPK",
    ]
    assert table["spectrum_id"].to_list()[:2] == ["0", "1"]  # TITLE


def test_psi_mod_positions_of_user03(data_dir) -> None:
    table, skipped = read_annotated_mgf(data_dir / "spectra-cluster" / "kuester_test_head5.mgf")
    assert skipped.height == 0
    assert table["peptide"].unique().to_list() == ["AAEEFVNIYYETM[Oxidation]DKR"]


def test_ambiguous_labels_are_listed(data_dir, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        table, skipped = read_annotated_mgf(
            data_dir / "spectra-cluster" / "pride_export_2017_head6.mgf"
        )
    assert table.height == 0
    assert skipped.height == 6
    assert skipped["reason"][0] == "ambiguous label: IGIQIR,GLLGALR,IGLQIR"
    assert "6 skipped (6 ambiguous label)" in caplog.text


def test_unknown_modification_is_counted_not_dropped(tmp_path, caplog) -> None:
    path = tmp_path / "mods.mgf"
    blocks = [("a", "PEPTIDEK"), ("b", "PEPS[Phospho]K"), ("c", "M[Oxidation]K"), ("d", "")]
    path.write_text(
        "".join(
            f"BEGIN IONS\nTITLE={title}\nPEPMASS=500\nCHARGE=2+\n"
            + (f"SEQ={seq}\n" if seq else "")
            + "100 1\n200 2\nEND IONS\n"
            for title, seq in blocks
        )
    )
    with caplog.at_level(logging.WARNING):
        table, skipped = read_annotated_mgf(path)
    assert table["spectrum_id"].to_list() == ["a", "c"]
    assert skipped["spectrum_id"].to_list() == ["b", "d"]
    assert skipped["reason"][0].startswith("unsupported peptide:")
    assert "Phospho" in skipped["reason"][0]
    assert skipped["reason"][1] == "no peptide label"
    assert "2 skipped (1 unsupported peptide; 1 no peptide label)" in caplog.text


def test_msp_library(data_dir) -> None:
    path = data_dir / "mzspeclib-py" / "chinese_hamster_hcd_selected_head.msp"
    table, skipped = read_msp(path)
    assert table.height == 7 and skipped.height == 0
    first = table.row(0, named=True)
    assert first["peptide"] == "AAAAC[Carbamidomethyl]ALTPGPLADLAAR"
    assert first["charge"] == 2
    assert first["precursor_mz"] == pytest.approx(855.4538)
    assert first["scan"] == 5538
    # "Num peaks: 87"; the quoted fragment annotations are gone, numbers kept.
    assert len(first["mz"]) == 87
    assert first["mz"][0] == pytest.approx(143.0823)
    assert first["intensity"][0] == pytest.approx(14791.5)
    assert np.all(np.diff(first["mz"]) > 0)
    assert table["charge"].to_list()[3:5] == [2, 3]


def test_msp_modification_positions() -> None:
    assert msp_proforma("AMCK", [(1, "M", "Oxidation"), (2, "C", "CAM")]) == (
        "AM[Oxidation]C[Carbamidomethyl]K"
    )
    assert msp_proforma("AMK", [(0, "A", "Acetyl")]) == "[Acetyl]-AMK"
    with pytest.raises(UnsupportedPeptideError, match="does not sit on"):
        msp_proforma("AMK", [(0, "C", "CAM")])


@pytest.mark.parametrize(
    ("spectrum_id", "scan"),
    [
        ("controllerType=0 controllerNumber=1 scan=119", 119),
        ("00002", 2),
        ("SmallCalibratibleYeast.00004.00004.2", 4),
        ("index=3", None),
    ],
)
def test_scan_of_psm_spectrum_id(spectrum_id: str, scan: int | None) -> None:
    assert scan_of_psm_spectrum_id(spectrum_id) == scan


def test_mzidentml_with_mgf(data_dir) -> None:
    folder = data_dir / "mzLib"
    table, skipped = read_identified_spectra(
        folder / "SmallCalibratibleYeast.mgf", folder / "SmallCalibratible_Yeast.mzID"
    )
    # 65 identified spectra of the 118 (43 peptides); the best-ranked PSM labels each.
    assert table.height == 65
    assert skipped.height == 0
    assert table["peptide"].n_unique() == 43
    assert table["peptide"].null_count() == 0
    assert table["charge"].null_count() == 0


def test_q_value_cutoff_lists_the_rejected(data_dir) -> None:
    folder = data_dir / "mzLib"
    table, skipped = read_identified_spectra(
        folder / "SmallCalibratibleYeast.mgf",
        folder / "SmallCalibratible_Yeast.mzID",
        q_value_threshold=-1.0,
    )
    assert table.height == 0
    assert skipped.height > 0
    assert skipped["reason"].str.starts_with("q-value").all()


def test_msfragger_psm_tsv(data_dir, caplog) -> None:
    folder = data_dir / "mzLib"
    with caplog.at_level(logging.WARNING):
        table, skipped = read_identified_spectra(
            folder / "SmallCalibratibleYeast.mgf",
            folder / "SmallCalibratibleYeastFragger_psm.tsv",
        )
    # psm.tsv names spectra "SmallCalibratibleYeast.00002.00002.2": matched by scan.
    assert table["scan"].to_list() == [2, 4, 8, 9, 10]
    assert table["peptide"].to_list() == [
        "RGNVC[Carbamidomethyl]GDAK",
        "EKAEAEAEK",
        "KITSNQR",
        "GIDHTSK",
        "EKAEAEAEK",
    ]
    assert skipped.height == 0
    assert "no q-values and no decoys" in caplog.text


def test_identifications_of_missing_spectra_are_listed(tmp_path, data_dir) -> None:
    folder = data_dir / "mzLib"
    # Only the first 3 spectra of the MGF: the other identifications have no spectrum.
    text = (folder / "SmallCalibratibleYeast.mgf").read_text()
    cut = text.index("END IONS", text.index("END IONS", text.index("END IONS") + 1) + 1) + 9
    spectra = tmp_path / "SmallCalibratibleYeast.mgf"
    spectra.write_text(text[:cut])
    table, skipped = read_identified_spectra(spectra, folder / "SmallCalibratible_Yeast.mzID")
    assert table.height + skipped.height == 65
    assert set(skipped["reason"]) == {"identified spectrum not in spectra file"}


def test_unreadable_identifications(tmp_path, data_dir) -> None:
    bad = tmp_path / "ids.mzid"
    bad.write_text("not xml")
    with pytest.raises(SpectrumFileError, match="cannot read identifications"):
        read_identified_spectra(data_dir / "mzLib" / "SmallCalibratibleYeast.mgf", bad)


def test_identifications_of_a_raw_run_match_its_converted_mzml(tmp_path, data_dir) -> None:
    """A lab's most common setup: a Thermo .raw run and a search engine's PSMs by scan. The
    PSMs are matched against the converted mzML (the workflow's labels rule reads that)."""
    from trm.io.convert import convert_to_mzml
    from trm.io.spectra import read_spectra, scan_from_native_id

    mzml = tmp_path / "really_small.mzML"
    convert_to_mzml(data_dir / "tools-galaxyp" / "really_small.raw", mzml, False)
    scans = [scan_from_native_id(s) for s in read_spectra(mzml)["spectrum_id"]]
    fragger = data_dir / "mzLib" / "SmallCalibratibleYeastFragger_psm.tsv"
    header, row = fragger.read_text().splitlines()[:2]
    rows = []
    for scan, peptide in ((scans[0], "PEPTIDEK"), (scans[5], "ELVISLIVESK"), (99_999, "AAAAK")):
        fields = row.split("\t")
        fields[0] = f"really_small.{scan:05d}.{scan:05d}.2"
        fields[2], fields[3], fields[26] = peptide, "", ""
        rows.append("\t".join(fields))
    psms = tmp_path / "really_small_psm.tsv"
    psms.write_text("\n".join([header, *rows]) + "\n")
    table, skipped = read_identified_spectra(mzml, psms)
    assert table["scan"].to_list() == [scans[0], scans[5]]
    assert table["peptide"].to_list() == ["PEPTIDEK", "ELVISLIVESK"]
    assert skipped["reason"].to_list() == ["identified spectrum not in spectra file"]
