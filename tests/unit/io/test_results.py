"""trm.io.results: the result files read back with the field's readers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from psm_utils.io import read_file
from pyteomics import mztab

from trm import chem
from trm.atomic import atomic_output
from trm.casanovo.mztab import read_casanovo_mztab
from trm.io.results import (
    DENOVO_COLUMNS,
    PROFORMA_COLUMN,
    write_denovo_tsv,
    write_mztab,
    write_unsequenced,
)

CASANOVO_MZTAB = Path(__file__).parents[2] / "data" / "casanovo" / "tiny_run.mztab"
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
                "candidate_source": "graph+model" if index % 2 else "graph",
                "graph_score": 12.5,
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
    # As Casanovo 5: plain residues in `sequence`, the peptidoform in the ProForma column.
    assert list(psms["sequence"]) == ["PEPTIDEK", "ACMK", "LGGNEQVTR"]
    assert list(psms[PROFORMA_COLUMN]) == PEPTIDES
    assert psms["modifications"].iloc[1] == "0-UNIMOD:1,2-UNIMOD:4,3-UNIMOD:35"
    assert psms["spectra_ref"].iloc[0] == "ms_run[1]:controllerType=0 controllerNumber=1 scan=1"
    assert tables.metadata["mzTab-version"] == "1.0.0"
    metadata = dict(
        line.split("\t")[1:] for line in path.read_text().splitlines() if line[:3] == "MTD"
    )
    assert metadata["fixed_mod[1]"] == "[UNIMOD, UNIMOD:4, Carbamidomethyl, ]"
    sites = {v for k, v in metadata.items() if k.startswith("variable_mod") and "site" in k}
    assert sites == {"M", "N", "Q", "N-term"}


def test_mztab_has_casanovos_layout(tmp_path, denovo_table):
    """Casanovo's own mzTab and ours are read by the same reader, into the same peptides."""
    path = tmp_path / "denovo.mztab"
    ids = denovo_table["spectrum_id"].to_list()
    refs = {spectrum_id: f"index={n}" for n, spectrum_id in enumerate(ids)}
    write_mztab(denovo_table, path, str(tmp_path / "demo.mzML"), "test run", spectra_refs=refs)
    ours = read_casanovo_mztab(path)
    assert ours["mgf_index"].to_list() == [0, 1, 2]
    assert ours["peptide"].to_list() == PEPTIDES
    header = next(line for line in path.read_text().splitlines() if line.startswith("PSH"))
    casanovo = CASANOVO_MZTAB.read_text().splitlines()
    casanovo_header = next(line for line in casanovo if line.startswith("PSH"))
    # Casanovo's columns, in Casanovo's order (its scan-number column is for MGF input).
    shared = [c for c in casanovo_header.split("\t") if "scan_number" not in c]
    assert header.split("\t")[: len(shared)] == shared


def test_a_modification_without_unimod_entry_is_written_by_mass(tmp_path, denovo_table):
    row = denovo_table.row(0, named=True) | {
        "peptide": chem.tokens_to_proforma(["[Carbamyl+Ammonia-loss]-", "Q", "E", "K"])
    }
    row["residue_scores"] = [0.5] * 4
    path = tmp_path / "denovo.mztab"
    write_mztab(pl.DataFrame([row], schema=DENOVO_COLUMNS), path, "x.mzML", "test")
    with open(path) as handle:
        tables = mztab.MzTab(handle)
    assert tables.spectrum_match_table["modifications"].iloc[0] == "0-CHEMMOD:+25.979265"
    assert "\t[CHEMMOD, CHEMMOD:+25.979265, Carbamyl+Ammonia-loss, ]\n" in path.read_text()


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
    from trm.denovo.evaluate_commands import read_denovo_results

    write_denovo_tsv(denovo_table, tmp_path / "full.tsv")
    write_denovo_tsv(denovo_table.clear(), tmp_path / "empty.tsv")
    full_header = (tmp_path / "full.tsv").read_text().splitlines()[0]
    assert (tmp_path / "empty.tsv").read_text().splitlines() == [full_header]
    assert read_denovo_results(tmp_path / "empty.tsv").height == 0
    assert len(read_file(tmp_path / "empty.tsv", filetype="tsv")) == 0
