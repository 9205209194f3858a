"""Sage through sagepy on a real run: the PSMs, their peptides in the model vocabulary,
target-decoy q-values, and what the search leaves out."""

from __future__ import annotations

import polars as pl
import pytest

from trm import chem
from trm.errors import InputError
from trm.io.fasta import Protein
from trm.io.labels import read_labels
from trm.metrics import match_peptides
from trm.search.engine import (
    PSM_SCHEMA,
    _site_table,
    build_database,
    peptide_tokens,
    sage_modifications,
    search_spectra,
)
from trm.search.settings import SearchSettings

ALL_SEARCHABLE = SearchSettings(
    variable_modifications=("Oxidation", "Deamidated", "Acetyl", "Carbamyl", "Ammonia-loss")
)


def _mass(name: str) -> float:
    return chem.modification(name).mass


@pytest.mark.parametrize(
    ("sequence", "deltas", "tokens"),
    [
        ("PEPTIDEK", [0.0] * 8, list("PEPTIDEK")),
        ("CMK", [_mass("Carbamidomethyl"), _mass("Oxidation"), 0.0],
         ["C[Carbamidomethyl]", "M[Oxidation]", "K"]),
        # an N-terminal modification joins the first residue's own
        ("CAK", [_mass("Acetyl") + _mass("Carbamidomethyl"), 0.0, 0.0],
         ["[Acetyl]-", "C[Carbamidomethyl]", "A", "K"]),
        ("QAK", [_mass("Ammonia-loss"), 0.0, 0.0], ["[Ammonia-loss]-", "Q", "A", "K"]),
        ("NAK", [_mass("Deamidated"), 0.0, 0.0], ["N[Deamidated]", "A", "K"]),
        ("NAK", [_mass("Carbamyl"), 0.0, 0.0], ["[Carbamyl]-", "N", "A", "K"]),
        ("NAK", [_mass("Carbamyl") + _mass("Deamidated"), 0.0, 0.0],
         ["[Carbamyl]-", "N[Deamidated]", "A", "K"]),
        ("MAK", [_mass("Acetyl") + _mass("Oxidation"), 0.0, 0.0],
         ["[Acetyl]-", "M[Oxidation]", "A", "K"]),
    ],
)  # fmt: skip
def test_site_masses_become_vocabulary_tokens(sequence, deltas, tokens):
    sites = _site_table(ALL_SEARCHABLE)
    assert peptide_tokens(sequence, [d + 1e-5 for d in deltas], sites) == tokens
    assert peptide_tokens(sequence, deltas, sites) == tokens


def test_a_mass_no_modification_explains_is_none():
    sites = _site_table(SearchSettings())
    assert peptide_tokens("PEK", [0.0, 79.966, 0.0], sites) is None
    # an N-terminal modification is not read on a later residue
    assert peptide_tokens("PQK", [0.0, _mass("Ammonia-loss"), 0.0], sites) is None


def test_modifications_go_to_sage_by_unimod_accession_per_site():
    fixed, variable = sage_modifications(ALL_SEARCHABLE)
    assert fixed == {"C": "[UNIMOD:4]"}
    assert variable["M"] == ["[UNIMOD:35]"]
    assert variable["N"] == variable["Q"] == ["[UNIMOD:7]"]
    assert variable["[M"] == ["[UNIMOD:1]"] and "[" not in variable and "^" not in variable
    assert variable["^Q"] == ["[UNIMOD:5]", "[UNIMOD:385]"]


def test_search_finds_the_runs_identifications(yeast_outcome, yeast_spectra, yeast_labels):
    psms = yeast_outcome.psms
    assert psms.schema == pl.Schema(PSM_SCHEMA)
    assert yeast_outcome.n_spectra == 118 and yeast_outcome.skipped.height == 0
    assert set(psms["spectrum_id"]) <= set(yeast_spectra["spectrum_id"])
    assert psms["spectrum_id"].n_unique() == psms.height  # the best PSM of each spectrum
    assert psms["is_decoy"].any() and not psms["is_decoy"].all()
    decoys = psms.filter(pl.col("is_decoy"))
    assert all(p.startswith("rev_") for proteins in decoys["proteins"] for p in proteins)
    assert psms["q_value"].is_between(0, 1).all()
    assert psms["mass_error_ppm"].abs().max() <= 20 + 1e-6
    assert yeast_outcome.discriminant_fitted is True
    # At 5% FDR the search labels the spectra MetaMorpheus identified, with its peptides.
    labels = dict(read_labels(yeast_labels, "yeast").iter_rows())
    accepted = psms.filter(~pl.col("is_decoy") & (pl.col("q_value") <= 0.05))
    both = [
        (chem.parse_peptidoform(p)[0], chem.parse_peptidoform(labels[s])[0])
        for s, p in accepted.select("spectrum_id", "peptide").iter_rows()
        if s in labels
    ]
    assert len(both) >= 50
    agree = sum(match_peptides(found, truth)[1] for found, truth in both)
    assert agree / len(both) >= 0.9


def test_q_values_follow_the_score_of_the_competition(yeast_outcome):
    targets = yeast_outcome.psms.filter(~pl.col("is_decoy")).sort("score", descending=True)
    q = targets["q_value"].to_list()
    assert q == sorted(q)


def test_spectra_without_a_precursor_or_peaks_are_left_out(
    yeast_spectra, subset_proteins, instrument
):
    table = yeast_spectra.head(6).with_row_index()
    table = table.with_columns(
        precursor_mz=pl.when(pl.col("index") == 0).then(None).otherwise(pl.col("precursor_mz")),
        charge=pl.when(pl.col("index") == 1).then(None).otherwise(pl.col("charge")),
        activation=pl.when(pl.col("index") == 2).then(pl.lit("ETD")).otherwise(None),
        mz=pl.when(pl.col("index") == 3).then([]).otherwise(pl.col("mz")),
    ).drop("index")
    outcome = search_spectra(table, subset_proteins, instrument, SearchSettings())
    reasons = dict(outcome.skipped.select("spectrum_id", "reason").iter_rows())
    ids = table["spectrum_id"].to_list()
    assert reasons[ids[0]] == "no precursor m/z"
    assert reasons[ids[2]].startswith("fragmentation ETD")
    assert reasons[ids[3]] == "no peaks"
    assert ids[1] not in reasons  # no charge: the instrument's charges are tried


def test_a_fasta_without_searchable_peptides_is_an_input_error():
    proteins = [Protein("P1", "", "PEPK"), Protein("P2", "", "GGR")]
    with pytest.raises(InputError, match="tiny.fasta: no tryptic peptide of 7-30 residues"):
        build_database(proteins, SearchSettings(), source="tiny.fasta")


def test_decoys_in_the_fasta_are_left_out(caplog):
    proteins = [Protein("P1", "", "MKPEPTIDEKAAGGLLR"), Protein("rev_P1", "", "RLLGGAAKEDITPEPKM")]
    _, n_proteins = build_database(proteins, SearchSettings(min_peptide_mass=100.0))
    assert n_proteins == 1
    assert "1 FASTA entries are decoys already" in caplog.text
    with pytest.raises(InputError, match="decoy entries only"):
        build_database(proteins[1:], SearchSettings())


def test_a_search_without_any_modification(yeast_spectra, subset_proteins, instrument):
    """No alkylation and no variable modification (``[]`` in the config) is a search too."""
    settings = SearchSettings(fixed_modifications=(), variable_modifications=())
    outcome = search_spectra(yeast_spectra.head(20), subset_proteins, instrument, settings)
    assert outcome.psms.height > 0
    assert not outcome.psms["peptide"].str.contains(r"\[").any()
