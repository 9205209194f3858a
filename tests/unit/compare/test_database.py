"""The recursive model against the database search of the same run."""

from __future__ import annotations

import json

import polars as pl

from trm.cli import main
from trm.compare.database import (
    DATABASE_COMPARISON_SCHEMA,
    database_comparison,
    database_comparison_figure,
    peptides_in_proteins,
    summarize_database_comparison,
)
from trm.io.fasta import Protein
from trm.io.results import DENOVO_COLUMNS, write_denovo_tsv
from trm.search.engine import PSM_SCHEMA
from trm.search.report import write_search_tsv

PROTEINS = [Protein("P1", "", "MKPEPTIDEKAAGGLLRWWK"), Protein("P2", "", "GGSSAAK")]


def _denovo() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "spectrum_id": ["a", "b", "c", "d", "e"],
            "peptide": ["PEPTLDEK", "AGAGLLR", "WWWK", "GGSSAAK", "SSSK"],
            "score": [0.9, 0.8, 0.95, 0.6, 0.2],
            "raw_score": [0.7, 0.6, 0.8, 0.5, 0.1],
        }
    )


def _database() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "spectrum_id": ["a", "b", "f", "g"],
            "database_peptide": ["PEPTIDEK", "AAGGLLR", "MKPEPTIDEK", "AAGGLLR"],
            "database_q_value": [0.001, 0.002, 0.003, 0.004],
        }
    )


def test_peptides_are_looked_up_in_the_proteins_with_i_as_l():
    found = peptides_in_proteins(["PEPTLDEK", "GGSSAAK", "WWWK", "AAGGLLR"], PROTEINS)
    assert found == {"PEPTLDEK", "GGSSAAK", "AAGGLLR"}
    assert peptides_in_proteins([], PROTEINS) == set()


def test_every_spectrum_either_answers_gets_its_status():
    table = database_comparison(_denovo(), _database(), PROTEINS, exclude={"g"})
    assert table.schema == pl.Schema(DATABASE_COMPARISON_SCHEMA)
    status = dict(table.select("spectrum_id", "status").iter_rows())
    assert status == {
        "a": "agree", "b": "differ", "c": "denovo_only", "d": "denovo_only", "e": "denovo_only",
        "f": "database_only",
    }  # fmt: skip
    row = table.row(1, named=True)
    assert 0 < row["matched_residues"] < row["database_residues"] == 7
    in_fasta = dict(table.select("spectrum_id", "denovo_in_fasta").iter_rows())
    assert in_fasta == {"a": True, "b": False, "c": False, "d": True, "e": False, "f": None}


def test_summary_counts_agreement_and_lists_high_scoring_candidates():
    table = database_comparison(_denovo(), _database(), PROTEINS, exclude={"g"})
    summary, candidates = summarize_database_comparison(table, min_score=0.5, fdr=0.01)
    assert summary["counts"] == {"agree": 1, "differ": 1, "denovo_only": 3, "database_only": 1}
    assert summary["n_both"] == 2 and summary["agreement"] == 0.5
    assert summary["n_database_identified"] == 3
    assert summary["peptide_recall"] == 1 / 3
    assert candidates["spectrum_id"].to_list() == ["c", "d"]  # best score first, e below 0.5
    assert summary["candidates"] == {"n": 2, "in_fasta": 1, "absent_from_fasta": 1}
    figure = database_comparison_figure(table, summary)
    assert len(figure.axes) == 2


def test_nothing_identified_gives_an_empty_comparison_and_a_figure():
    empty = _database().clear()
    table = database_comparison(_denovo(), empty, PROTEINS)
    summary, candidates = summarize_database_comparison(table, min_score=0.5, fdr=0.01)
    assert summary["n_database_identified"] == 0 and summary["agreement"] is None
    assert candidates.height == 4
    database_comparison_figure(table, summary)


def test_compare_database_command(tmp_path):
    fasta = tmp_path / "p.fasta"
    fasta.write_text("".join(f">{p.accession}\n{p.sequence}\n" for p in PROTEINS))
    denovo = tmp_path / "denovo.tsv"
    rows = _denovo().with_columns(
        run=pl.lit("r"), charge=pl.lit(2, pl.Int16), q_value=pl.lit(0.5), precursor_mz=500.0,
        calc_mz=500.0, rt=1.0, residue_scores=pl.lit([0.5]), mass_error_ppm=0.0,
        isotope_error=pl.lit(0, pl.Int16), refinement_steps=pl.lit(8, pl.Int16),
        search_certified=False,
        candidate_source=pl.lit("model"),
        graph_score=float("nan"),
    )  # fmt: skip
    write_denovo_tsv(rows.select(list(DENOVO_COLUMNS)).cast(DENOVO_COLUMNS), denovo)
    search = tmp_path / "search.tsv"
    psms = [
        {"spectrum_id": s, "peptide": p, "q_value": q, "is_decoy": s == "g"}
        for s, p, q in _database().iter_rows()
    ]
    psm_table = pl.DataFrame(
        [
            {**{c: None for c in PSM_SCHEMA}, **psm, "run": "r", "native_id": "x", "charge": 2,
             "score": 1.0, "peptide_q_value": 0.0, "hyperscore": 1.0, "discriminant": 1.0,
             "delta_next": 0.0, "matched_peaks": 5, "missed_cleavages": 0, "isotope_error": 0,
             "mass_error_ppm": 0.0, "precursor_mz": 500.0, "calc_mz": 500.0, "rt": 1.0,
             "proteins": ["P1"]}
            for psm in psms
        ],
        schema=PSM_SCHEMA,
    )  # fmt: skip
    write_search_tsv(psm_table, search)
    out = {name: tmp_path / name for name in ("t.tsv", "s.json", "c.tsv", "p.png")}
    status = main(
        ["compare-database", "--denovo", str(denovo), "--search", str(search),
         "--fasta", str(fasta), "--run", "r", "--table", str(out["t.tsv"]),
         "--summary-out", str(out["s.json"]), "--candidates", str(out["c.tsv"]),
         "--plot", str(out["p.png"])]
    )  # fmt: skip
    assert status == 0
    summary = json.loads(out["s.json"].read_text())
    assert summary["counts"]["agree"] == 1 and summary["counts"]["database_only"] == 1
    assert summary["run"] == "r" and summary["fasta"] == "p.fasta"
    candidates = pl.read_csv(out["c.tsv"], separator="\t")
    assert candidates["spectrum_id"].to_list() == ["c", "d"]
    assert out["p.png"].stat().st_size > 0
