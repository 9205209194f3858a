"""Writing de novo results: psm_utils TSV, mzTab 1.0 (Casanovo's layout), unsequenced list.

Every writer takes a finished table and writes one file atomically (a temporary file in the
same folder, renamed at the end), so a failed job never leaves a partial result behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from trm import __version__, chem
from trm.atomic import atomic_output

#: Columns of the table the de novo stage hands to the writers, one row per peptide.
DENOVO_COLUMNS: dict[str, pl.DataType] = {
    "spectrum_id": pl.String(),
    "run": pl.String(),
    "peptide": pl.String(),  # ProForma without charge
    "charge": pl.Int16(),
    "score": pl.Float64(),  # calibrated probability that the peptide is fully correct
    "raw_score": pl.Float64(),  # the model's own confidence before calibration
    "q_value": pl.Float64(),
    "precursor_mz": pl.Float64(),
    "calc_mz": pl.Float64(),
    "rt": pl.Float64(),
    "residue_scores": pl.List(pl.Float64()),
    "mass_error_ppm": pl.Float64(),  # observed - theoretical precursor mass, ppm of observed
    "isotope_error": pl.Int16(),
    "refinement_steps": pl.Int16(),
    # the exact search proved no peptide fitting the precursor scores higher under the model
    "search_certified": pl.Boolean(),
    # who proposed the answer: model (its exact search), graph (the spectrum graph), or both
    "candidate_source": pl.String(),
    # the spectrum-graph decoder's score of the answer (NaN where it did not score it)
    "graph_score": pl.Float64(),
}

#: Columns a de novo table may add: the database-grounded error probability and q-value
#: of each answer (:mod:`trm.denovo.database_fdr`), written as ``meta:database_pep`` and
#: ``meta:database_qvalue`` (and ``opt_global_database_qvalue`` in mzTab).
DATABASE_FDR_COLUMNS: dict[str, pl.DataType] = {
    "database_pep": pl.Float64(),
    "database_q_value": pl.Float64(),
}

UNSEQUENCED_COLUMNS = ("spectrum_id", "run", "reason")

#: PSI-MS accession for "search engine specific score for PSMs".
_SCORE_TERM = "[MS, MS:1001143, search engine specific score for PSMs, ]"
#: Casanovo's column for the peptide as ProForma (PSI-MS "proforma peptidoform sequence").
PROFORMA_COLUMN = "opt_global_cv_MS:1003169_proforma_peptidoform_sequence"


def _format_scores(scores: Sequence[float]) -> str:
    return ",".join(f"{s:.5f}" for s in scores)


def write_denovo_tsv(table: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write peptides as a psm_utils TSV (readable by ``psm_utils.io.read_file``).

    Parameters
    ----------
    table : polars.DataFrame
        Columns of :data:`DENOVO_COLUMNS`, one row per sequenced spectrum, and optionally
        those of :data:`DATABASE_FDR_COLUMNS`.
    path : path-like
        The ``.tsv`` file to write.
    """
    from psm_utils import PSM

    database_fdr = all(c in table.columns for c in DATABASE_FDR_COLUMNS)

    def to_psm(row: dict) -> PSM:
        extra = (
            {
                "database_pep": f"{row['database_pep']:.6g}",
                "database_qvalue": f"{row['database_q_value']:.6g}",
            }
            if database_fdr
            else {}
        )
        return PSM(
            peptidoform=f"{row['peptide']}/{row['charge']}",
            spectrum_id=row["spectrum_id"],
            run=row["run"],
            score=row["score"],
            qvalue=row["q_value"],
            precursor_mz=row["precursor_mz"],
            retention_time=row["rt"],
            rank=1,
            source="trm",
            metadata={
                "raw_score": f"{row['raw_score']:.6g}",
                "residue_scores": _format_scores(row["residue_scores"]),
                "mass_error_ppm": f"{row['mass_error_ppm']:.3f}",
                "isotope_error": str(row["isotope_error"]),
                "refinement_steps": str(row["refinement_steps"]),
                "search_certified": "true" if row["search_certified"] else "false",
                "candidate_source": row["candidate_source"],
                "graph_score": f"{row['graph_score']:.4g}",
                "calc_mz": f"{row['calc_mz']:.6f}",
                **extra,
            },
        )

    # Without rows, a placeholder shapes the header: an empty file has the same columns
    # as a full one, so whatever reads it back (trm evaluate, psm_utils) finds them.
    placeholder = {
        "peptide": "G", "charge": 1, "spectrum_id": "", "run": "", "score": 0.0,
        "q_value": 0.0, "precursor_mz": 0.0, "rt": 0.0, "raw_score": 0.0,
        "residue_scores": [], "mass_error_ppm": 0.0, "isotope_error": 0,
        "refinement_steps": 0, "search_certified": False, "calc_mz": 0.0,
        "candidate_source": "model", "graph_score": 0.0,
        "database_pep": 0.0, "database_q_value": 0.0,
    }  # fmt: skip
    write_psm_tsv(table, to_psm, placeholder, path)


def write_psm_tsv(
    table: pl.DataFrame,
    to_psm: Callable[[dict], Any],
    placeholder: dict,
    path: str | os.PathLike[str],
) -> None:
    """Write a table's rows as a psm_utils TSV (atomically), one ``to_psm(row)`` each.

    The first row's PSM shapes the header (its ``meta:`` columns); without rows,
    ``placeholder`` (a row of every column ``to_psm`` reads) shapes it, so that an empty
    file has the same columns as a full one.
    """
    from psm_utils.io.tsv import TSVWriter

    rows = list(table.iter_rows(named=True))
    with atomic_output(path) as temporary:
        with TSVWriter(temporary, example_psm=to_psm(rows[0] if rows else placeholder)) as writer:
            for row in rows:
                writer.write_psm(to_psm(row))


def write_unsequenced(table: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write the spectra that got no peptide, with the reason, as TSV."""
    with atomic_output(path) as temporary:
        table.select(UNSEQUENCED_COLUMNS).write_csv(temporary, separator="\t")


def _modification_reference(name: str) -> str:
    """mzTab's name of a vocabulary modification: its Unimod accession, or for a
    combination without one, ``CHEMMOD:`` and its mass delta."""
    accession = chem.unimod_accession(name)
    return accession if accession else f"CHEMMOD:{chem.modification(name).mass:+.6f}"


def _modifications_column(tokens: Sequence[str]) -> str:
    """mzTab ``modifications``: ``position-UNIMOD:n`` (0 = N-terminus), or ``null``."""
    entries = []
    position = 0
    for token in tokens:
        if token.endswith("-"):
            entries.append(f"0-{_modification_reference(token[1:-2])}")
            continue
        position += 1
        if "[" in token:
            entries.append(f"{position}-{_modification_reference(token[2:-1])}")
    return ",".join(entries) if entries else "null"


def _modification_term(definition: chem.ModificationDef) -> str:
    accession = chem.unimod_accession(definition.name)
    if accession:
        return f"[UNIMOD, {accession}, {definition.name}, ]"
    return f"[CHEMMOD, CHEMMOD:{definition.mass:+.6f}, {definition.name}, ]"


def write_mztab(
    table: pl.DataFrame,
    path: str | os.PathLike[str],
    spectra_location: str,
    description: str,
    spectra_refs: Mapping[str, str] | None = None,
) -> None:
    """Write peptides as an mzTab 1.0 PSM section laid out as Casanovo 5 writes it.

    As Casanovo: ``sequence`` holds the plain residues, the peptide with its modifications
    is in the ProForma column (:data:`PROFORMA_COLUMN`), per-residue scores in
    ``opt_global_aa_scores``, ``spectra_ref`` is ``ms_run[1]:<native id>`` (``index=N`` for
    an MGF file). Unlike Casanovo, ``modifications`` follows the mzTab specification
    (``3-UNIMOD:4,0-UNIMOD:1``; ``CHEMMOD:<mass delta>`` for a combination without a
    Unimod entry), ``retention_time`` is filled (seconds), and further columns carry
    what trm adds: ``opt_global_mass_error_ppm`` (observed minus theoretical precursor
    mass, over observed, after the isotope correction), ``opt_global_search_certified``,
    and, when the table has them, ``opt_global_database_qvalue`` (the database-grounded
    q-value of :mod:`trm.denovo.database_fdr`).

    Parameters
    ----------
    table : polars.DataFrame
        Columns of :data:`DENOVO_COLUMNS`, optionally those of
        :data:`DATABASE_FDR_COLUMNS`.
    path : path-like
        The ``.mztab`` file to write.
    spectra_location : str
        Location of the spectra file for ``ms_run[1]-location`` (a path or file URI).
    description : str
        Free text for the ``description`` metadata line.
    spectra_refs : mapping, optional
        ``spectrum_id`` -> native id in the spectra file
        (:attr:`trm.denovo.run.DenovoOutcome.spectra_refs`); an id not in it is written as
        it is.
    """
    refs = spectra_refs or {}
    software = f"[MS, MS:1001456, analysis software, trm {__version__}]"
    metadata = [
        ("mzTab-version", "1.0.0"),
        ("mzTab-mode", "Summary"),
        ("mzTab-type", "Identification"),
        ("description", description),
        ("software[1]", software),
        ("psm_search_engine_score[1]", _SCORE_TERM),
    ]
    fixed = [m for m in chem.KNOWN_MODIFICATIONS if m.name == "Carbamidomethyl"]
    variable = [m for m in chem.KNOWN_MODIFICATIONS if m.name != "Carbamidomethyl"]
    for kind, mods in (("fixed_mod", fixed), ("variable_mod", variable)):
        sites = [(mod, target) for mod in mods for target in mod.targets]
        for index, (mod, target) in enumerate(sites, start=1):
            metadata += [
                (f"{kind}[{index}]", _modification_term(mod)),
                (f"{kind}[{index}]-site", target),
            ]
    metadata.append(("ms_run[1]-location", Path(spectra_location).resolve().as_uri()))
    header = [
        "sequence", "PSM_ID", "accession", "unique", "database", "database_version",
        "search_engine", "search_engine_score[1]", "modifications", "retention_time",
        "charge", "exp_mass_to_charge", "calc_mass_to_charge", "spectra_ref", "pre", "post",
        "start", "end", "opt_global_aa_scores", PROFORMA_COLUMN, "opt_global_mass_error_ppm",
        "opt_global_search_certified",
    ]  # fmt: skip
    database_fdr = all(c in table.columns for c in DATABASE_FDR_COLUMNS)
    if database_fdr:
        header.append("opt_global_database_qvalue")
    lines = ["\t".join(["MTD", key, value]) for key, value in metadata]
    lines.append("\t".join(["PSH", *header]))
    for psm_id, row in enumerate(table.iter_rows(named=True), start=1):
        tokens, _ = chem.parse_peptidoform(row["peptide"])
        residues = "".join(token[0] for token in tokens if not token.endswith("-"))
        values = [
            residues, str(psm_id), "null", "null", "null", "null", software,
            f"{row['score']:.6f}", _modifications_column(tokens),
            f"{row['rt']:.4f}" if row["rt"] is not None else "null", str(row["charge"]),
            f"{row['precursor_mz']:.6f}", f"{row['calc_mz']:.6f}",
            f"ms_run[1]:{refs.get(row['spectrum_id'], row['spectrum_id'])}",
            "null", "null", "null", "null", _format_scores(row["residue_scores"]),
            row["peptide"], f"{row['mass_error_ppm']:.3f}",
            "true" if row["search_certified"] else "false",
        ]  # fmt: skip
        if database_fdr:
            values.append(f"{row['database_q_value']:.6g}")
        lines.append("\t".join(["PSM", *values]))
    with atomic_output(path) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
