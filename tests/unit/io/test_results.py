"""trm.io.results: the result files read back with the field's readers."""

from __future__ import annotations

import polars as pl
import pytest
from psm_utils.io import read_file
from pyteomics import mztab

from trm import chem
from trm.atomic import atomic_output
from trm.io.results import (
    DENOVO_COLUMNS,
    write_denovo_tsv,
    write_mztab,
    write_unsequenced,
)

PEPTIDES = ["PEPTIDEK", "[Acetyl]-AC[Carbamidomethyl]M[Oxidation]K", "LGGNEQVTR"]


@pytest.fixture
def denovo_table() -> pl.DataFrame:
    rows = []
    for index, peptide in enumerate(PEPTIDES):
        tokens, _ = chem.parse_peptidoform(peptide)
        charge = 2 + index % 2
        mz = float(chem.mass_to_mz(chem.peptide_mass(tokens), charge))
        rows.append(
            {
                "spectrum_id": f"controllerType=0 controllerNumber=1 scan={index + 1}",
                "run": "demo",
                "peptide": peptide,
                "charge": charge,
                "score": 0.9 - index * 0.1,
                "raw_score": 0.5,
                "q_value": 0.05 * index,
                "precursor_mz": mz + 0.001,
                "calc_mz": mz,
                "rt": 60.0 * index,
                "residue_scores": [0.9] * len(tokens),
                "mass_error_ppm": 1.5,
                "isotope_error": 0,
                "refinement_steps": 8,
            }
        )
    return pl.DataFrame(rows, schema=DENOVO_COLUMNS)


def test_tsv_reads_back_with_psm_utils(tmp_path, denovo_table):
    path = tmp_path / "denovo.tsv"
    write_denovo_tsv(denovo_table, path)
    psms = read_file(path, filetype="tsv")
    assert len(psms) == len(PEPTIDES)
    for psm, peptide in zip(psms, PEPTIDES, strict=True):
        tokens, charge = chem.parse_peptidoform(str(psm.peptidoform))
        assert tokens == chem.parse_peptidoform(peptide)[0]
        assert charge in (2, 3)
        assert set(psm.metadata) >= {"residue_scores", "mass_error_ppm", "refinement_steps"}
    assert psms[0].score == pytest.approx(0.9)
    assert psms[2].qvalue == pytest.approx(0.1)


def test_mztab_reads_back_with_pyteomics(tmp_path, denovo_table):
    path = tmp_path / "denovo.mztab"
    spectra = tmp_path / "demo.mzML"
    write_mztab(denovo_table, path, str(spectra), "test run")
    with open(path) as handle:
        tables = mztab.MzTab(handle)
    psms = tables.spectrum_match_table
    assert len(psms) == len(PEPTIDES)
    assert list(psms["sequence"]) == PEPTIDES
    assert psms["modifications"].iloc[1] == "0-UNIMOD:1,2-UNIMOD:4,3-UNIMOD:35"
    assert psms["spectra_ref"].iloc[0] == "ms_run[1]:controllerType=0 controllerNumber=1 scan=1"
    assert tables.metadata["mzTab-version"] == "1.0.0"


def test_unsequenced_and_atomic_output(tmp_path):
    table = pl.DataFrame({"spectrum_id": ["a"], "run": ["r"], "reason": ["no peaks"]})
    path = tmp_path / "unsequenced.tsv"
    write_unsequenced(table, path)
    assert path.read_text().splitlines() == ["spectrum_id\trun\treason", "a\tr\tno peaks"]
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_text("partial")
        raise RuntimeError("job failed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [path]


def test_an_empty_denovo_tsv_has_the_full_header(tmp_path, denovo_table):
    """A sample where nothing was sequenced still gets a file that trm evaluate and
    psm_utils read (it had 6 header columns, and evaluate rejected its own file)."""
    from trm.evaluate import read_denovo_results

    write_denovo_tsv(denovo_table, tmp_path / "full.tsv")
    write_denovo_tsv(denovo_table.clear(), tmp_path / "empty.tsv")
    full_header = (tmp_path / "full.tsv").read_text().splitlines()[0]
    assert (tmp_path / "empty.tsv").read_text().splitlines() == [full_header]
    assert read_denovo_results(tmp_path / "empty.tsv").height == 0
    assert len(read_file(tmp_path / "empty.tsv", filetype="tsv")) == 0
