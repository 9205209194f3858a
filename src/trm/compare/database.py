"""The recursive model's answers against the database search of the same run.

For every spectrum that either answers, one row (:func:`database_comparison`):

``agree`` / ``differ``
    Both answer; the peptides match or not (the field's mass-based matching of
    :mod:`trm.metrics`, I = L), with the residues that match.
``denovo_only``
    The model answers, the search has no target PSM at its FDR. A high-scoring answer here
    is a candidate the database does not explain: its peptide is looked up in the FASTA
    (I = L), and one that is absent is a candidate from outside the database (a variant, a
    contaminant, a protein the FASTA lacks), or a wrong answer.
``database_only``
    The search identifies the spectrum, the model gave no answer.

:func:`summarize_database_comparison` gives the agreement (exact and residue level) and
the counts, :func:`database_comparison_figure` the picture of the report. Spectra the model
was fine-tuned on (their database peptides were its training labels) are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

from trm.chem import UnsupportedPeptideError, parse_peptidoform
from trm.io.fasta import Protein
from trm.metrics import match_peptides, precision_coverage, sequencing_metrics

#: Statuses of a spectrum in the comparison, in the order the summary lists them.
STATUSES: tuple[str, ...] = ("agree", "differ", "denovo_only", "database_only")

#: Columns of the per-spectrum table (denovo_vs_database.tsv).
DATABASE_COMPARISON_SCHEMA: dict[str, pl.DataType] = {
    "spectrum_id": pl.String(),
    "status": pl.String(),
    "denovo_peptide": pl.String(),
    "denovo_score": pl.Float64(),
    "denovo_raw_score": pl.Float64(),
    "database_peptide": pl.String(),
    "database_q_value": pl.Float64(),
    "matched_residues": pl.Int32(),
    "database_residues": pl.Int32(),
    "denovo_in_fasta": pl.Boolean(),  # null unless the model answered
}


def _tokens(peptide: str | None) -> list[str] | None:
    if peptide is None:
        return None
    try:
        return parse_peptidoform(peptide)[0]
    except UnsupportedPeptideError:
        return None


def residues(tokens: Sequence[str]) -> str:
    """The plain residues of a token list, I written as L (the key of FASTA lookups)."""
    return "".join(t[0] for t in tokens if not t.endswith("-")).replace("I", "L")


def peptides_in_proteins(peptides: Iterable[str], proteins: Sequence[Protein]) -> set[str]:
    """Which plain peptides (I as L) occur in any of the proteins (I read as L).

    One pass over the proteome with an Aho-Corasick automaton of the peptides, so the cost
    grows with the proteome, not with peptides times proteome.
    """
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for peptide in set(peptides):
        if peptide:
            automaton.add_word(peptide, peptide)
    if len(automaton) == 0:
        return set()
    automaton.make_automaton()
    found: set[str] = set()
    for protein in proteins:
        for _, peptide in automaton.iter(protein.sequence.replace("I", "L")):
            found.add(peptide)
    return found


def read_search_psms(table: pl.DataFrame, fdr: float) -> pl.DataFrame:
    """The target PSMs at ``fdr`` of a ``search.tsv`` read as text (``spectrum_id``,
    ``database_peptide``, ``database_q_value``)."""
    missing = {"spectrum_id", "peptidoform", "is_decoy", "qvalue"} - set(table.columns)
    if missing:
        raise ValueError(f"not a search.tsv: lacks {sorted(missing)}")
    return (
        table.with_columns(pl.col("qvalue").cast(pl.Float64))
        .filter((pl.col("is_decoy").str.to_lowercase() != "true") & (pl.col("qvalue") <= fdr))
        .select(
            "spectrum_id",
            pl.col("peptidoform").str.replace(r"/\d+$", "").alias("database_peptide"),
            pl.col("qvalue").alias("database_q_value"),
        )
        .unique("spectrum_id", keep="first", maintain_order=True)
    )


def database_comparison(
    denovo: pl.DataFrame,
    database: pl.DataFrame,
    proteins: Sequence[Protein],
    exclude: set[str] | frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """One row per spectrum that the model or the search answers.

    Parameters
    ----------
    denovo : polars.DataFrame
        ``spectrum_id``, ``peptide`` (ProForma), ``score``, ``raw_score``: the model's
        answers.
    database : polars.DataFrame
        ``spectrum_id``, ``database_peptide``, ``database_q_value``: the search's target
        PSMs at its FDR (:func:`read_search_psms`).
    proteins : sequence of Protein
        The searched FASTA, for the lookup of the model's peptides.
    exclude : set of str
        Spectrum ids left out (those the model was fine-tuned on).

    Returns
    -------
    polars.DataFrame
        :data:`DATABASE_COMPARISON_SCHEMA`, the model's answers in their order, then the
        spectra only the search identifies.
    """
    denovo = denovo.filter(~pl.col("spectrum_id").is_in(list(exclude)))
    database = database.filter(~pl.col("spectrum_id").is_in(list(exclude)))
    found = dict(
        zip(
            database["spectrum_id"].to_list(),
            zip(database["database_peptide"], database["database_q_value"], strict=True),
            strict=True,
        )
    )
    answers = [
        (spectrum_id, peptide, score, raw, _tokens(peptide))
        for spectrum_id, peptide, score, raw in denovo.select(
            "spectrum_id", "peptide", "score", "raw_score"
        ).iter_rows()
    ]
    in_fasta = peptides_in_proteins(
        (residues(tokens) for *_, tokens in answers if tokens), proteins
    )
    rows = []
    for spectrum_id, peptide, score, raw, tokens in answers:
        database_peptide, q_value = found.pop(spectrum_id, (None, None))
        row = {
            "spectrum_id": spectrum_id,
            "denovo_peptide": peptide,
            "denovo_score": score,
            "denovo_raw_score": raw,
            "database_peptide": database_peptide,
            "database_q_value": q_value,
            "matched_residues": None,
            "database_residues": None,
            "denovo_in_fasta": None if tokens is None else residues(tokens) in in_fasta,
        }
        truth = _tokens(database_peptide)
        if truth is None or tokens is None:
            row["status"] = "denovo_only"
        else:
            matches, same = match_peptides(tokens, truth)
            row |= {
                "status": "agree" if same else "differ",
                "matched_residues": int(matches.sum()),
                "database_residues": len(truth),
            }
        rows.append(row)
    for spectrum_id, (database_peptide, q_value) in found.items():
        rows.append(
            {
                "spectrum_id": spectrum_id,
                "status": "database_only",
                "database_peptide": database_peptide,
                "database_q_value": q_value,
            }
        )
    return pl.DataFrame(rows, schema=DATABASE_COMPARISON_SCHEMA)


def summarize_database_comparison(
    table: pl.DataFrame, min_score: float, fdr: float
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Agreement and counts of a :func:`database_comparison` table.

    Parameters
    ----------
    table : polars.DataFrame
    min_score : float
        Calibrated score from which a de novo-only answer is listed as a candidate.
    fdr : float
        The search's FDR (recorded).

    Returns
    -------
    summary : dict
        ``counts`` per status; on the spectra both answer: ``agreement`` (exact), the
        model's ``aa_precision`` and ``aa_recall`` against the database peptides, and the
        area under the precision-coverage curve of the model on the database-identified
        spectra; ``candidates``: de novo-only answers at or above ``min_score``, and how
        many of them the FASTA holds.
    candidates : polars.DataFrame
        Those answers, best score first.
    """
    counts = {status: int((table["status"] == status).sum()) for status in STATUSES}
    both = table.filter(pl.col("status").is_in(["agree", "differ"]))
    identified = table.filter(pl.col("database_peptide").is_not_null())
    predicted = [_tokens(p) or [] for p in identified["denovo_peptide"].to_list()]
    truth = [_tokens(p) or [] for p in identified["database_peptide"].to_list()]
    metrics = sequencing_metrics(predicted, truth)
    answered = identified.filter(pl.col("denovo_peptide").is_not_null())
    _, _, auc = precision_coverage(
        (answered["status"] == "agree").to_list(),
        answered["denovo_raw_score"].to_list(),
        identified.height,
    )
    candidates = table.filter(
        (pl.col("status") == "denovo_only") & (pl.col("denovo_score") >= min_score)
    ).sort("denovo_score", descending=True, maintain_order=True)
    in_fasta = int(candidates["denovo_in_fasta"].sum()) if candidates.height else 0
    summary = {
        "fdr": fdr,
        "n_denovo_answers": int(table["denovo_peptide"].is_not_null().sum()),
        "n_database_identified": identified.height,
        "counts": counts,
        "n_both": both.height,
        "agreement": counts["agree"] / both.height if both.height else None,
        "aa_precision": metrics.aa_precision if identified.height else None,
        "aa_recall": metrics.aa_recall if identified.height else None,
        "peptide_recall": metrics.peptide_recall if identified.height else None,
        "pc_auc": auc if identified.height else None,
        "min_score": min_score,
        "candidates": {
            "n": candidates.height,
            "in_fasta": in_fasta,
            "absent_from_fasta": candidates.height - in_fasta,
        },
    }
    return summary, candidates


def database_comparison_figure(table: pl.DataFrame, summary: dict[str, Any]):  # noqa: ANN201
    """Two panels: the model's scores by status (stacked histogram), and its precision
    against coverage on the database-identified spectra (Agg backend).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.8), layout="constrained")
    scores_axes, curve_axes = figure.subplots(1, 2)
    answered = table.filter(pl.col("denovo_peptide").is_not_null())
    groups = {
        "agrees with the database": answered.filter(pl.col("status") == "agree"),
        "differs from the database": answered.filter(pl.col("status") == "differ"),
        "de novo only, peptide in FASTA": answered.filter(
            (pl.col("status") == "denovo_only") & pl.col("denovo_in_fasta")
        ),
        "de novo only, absent from FASTA": answered.filter(
            (pl.col("status") == "denovo_only") & ~pl.col("denovo_in_fasta").fill_null(False)
        ),
    }
    bins = np.linspace(0.0, 1.0, 21)
    scores_axes.hist(
        [g["denovo_score"].to_numpy() for g in groups.values()],
        bins=bins,
        stacked=True,
        label=[f"{name} ({g.height})" for name, g in groups.items()],
    )
    scores_axes.axvline(summary["min_score"], color="black", linestyle=":", linewidth=1)
    scores_axes.set_xlabel("de novo score (calibrated)")
    scores_axes.set_ylabel("spectra")
    scores_axes.set_title("de novo answers by database status", fontsize=10)
    scores_axes.legend(fontsize=7, loc="upper right")
    identified = table.filter(pl.col("database_peptide").is_not_null())
    scored = identified.filter(pl.col("denovo_peptide").is_not_null())
    coverage, precision, auc = precision_coverage(
        (scored["status"] == "agree").to_list(),
        scored["denovo_raw_score"].to_list(),
        identified.height,
    )
    if coverage.size:
        curve_axes.plot(coverage, precision, label=f"recursive model (AUC {auc:.3f})")
        curve_axes.legend(loc="lower left", fontsize=8)
    else:
        curve_axes.text(0.5, 0.5, f"no spectrum identified at {summary['fdr']:g} FDR", ha="center")
    curve_axes.set_xlim(0, 1)
    curve_axes.set_ylim(0, 1.02)
    curve_axes.set_xlabel("coverage (share of database-identified spectra)")
    curve_axes.set_ylabel("agreement with the database")
    curve_axes.set_title(f"{identified.height} spectra identified at {summary['fdr']:g} FDR",
                         fontsize=10)  # fmt: skip
    return figure
