"""What a search found: its PSM table as a psm_utils TSV, its summary, and its PSMs
against identifications a lab supplied for the same run.

``search.tsv`` holds the best PSM of every searched spectrum, targets and decoys, each with
its q-value, decoy flag and score, readable by ``psm_utils.io.read_file(path,
filetype="tsv")`` and by ``trm labelled-spectra --identifications search.tsv --id-filetype
tsv`` (which keeps the targets at the chosen q-value).

A run too small for target-decoy competition is no error: a q-value is at least
(decoys + 1) / targets, so a run with fewer target PSMs than ``1 / fdr`` cannot have any at
``fdr`` (:meth:`~trm.search.settings.SearchSettings.min_targets`); the summary and the log
say so, and the labels table of such a run is empty.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import polars as pl

from trm.chem import UnsupportedPeptideError, parse_peptidoform
from trm.io.results import write_psm_tsv
from trm.metrics import match_peptides
from trm.search.engine import SearchOutcome
from trm.search.settings import SearchSettings


def write_search_tsv(psms: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write PSMs (:data:`~trm.search.engine.PSM_SCHEMA`) as a psm_utils TSV.

    Standard columns: ``peptidoform`` (ProForma with charge), ``spectrum_id``, ``run``,
    ``is_decoy``, ``score``, ``qvalue`` (spectrum-level), ``precursor_mz``,
    ``retention_time``, ``protein_list``, ``rank``; the rest as ``meta:`` columns.
    """
    from psm_utils import PSM

    def to_psm(row: dict) -> PSM:
        return PSM(
            peptidoform=f"{row['peptide']}/{row['charge']}",
            spectrum_id=row["spectrum_id"],
            run=row["run"],
            is_decoy=row["is_decoy"],
            score=row["score"],
            qvalue=row["q_value"],
            precursor_mz=row["precursor_mz"],
            retention_time=row["rt"],
            protein_list=row["proteins"],
            rank=1,
            source="sage",
            metadata={
                "native_id": row["native_id"],
                "peptide_qvalue": f"{row['peptide_q_value']:.6g}",
                "hyperscore": f"{row['hyperscore']:.6g}",
                "discriminant": f"{row['discriminant']:.6g}",
                "delta_next": f"{row['delta_next']:.6g}",
                "matched_peaks": str(row["matched_peaks"]),
                "missed_cleavages": str(row["missed_cleavages"]),
                "isotope_error": str(row["isotope_error"]),
                "mass_error_ppm": f"{row['mass_error_ppm']:.3f}",
                "calc_mz": f"{row['calc_mz']:.6f}",
            },
        )

    # Without rows, a placeholder shapes the header (no row is written from it).
    placeholder = {
        "spectrum_id": "", "run": "", "native_id": "", "peptide": "G", "charge": 1,
        "is_decoy": False, "score": 0.0, "q_value": 1.0, "peptide_q_value": 1.0,
        "hyperscore": 0.0, "discriminant": 0.0, "delta_next": 0.0, "matched_peaks": 0,
        "missed_cleavages": 0, "isotope_error": 0, "mass_error_ppm": 0.0,
        "precursor_mz": 0.0, "calc_mz": 0.0, "rt": 0.0, "proteins": [],
    }  # fmt: skip
    write_psm_tsv(psms, to_psm, placeholder, path)


def fdr_note(n_targets: int, n_at_fdr: int, best_q: float | None, settings: SearchSettings) -> str:
    """One sentence on what the target-decoy competition allows (log and summary)."""
    needed = settings.min_targets()
    if n_targets < needed:
        return (
            f"run too small for target-decoy competition: {n_targets} target PSMs, and at "
            f"least {needed} (1 / fdr) are needed for any q-value to reach fdr "
            f"{settings.fdr:g}; no spectrum is labelled by this search"
        )
    if n_at_fdr == 0:
        best = "none" if best_q is None else f"{best_q:.3g}"
        return (
            f"no PSM at {settings.fdr:g} FDR (best target q-value {best}); no spectrum is "
            "labelled by this search"
        )
    return f"{n_at_fdr} target PSMs at {settings.fdr:g} FDR label their spectra"


def search_summary(
    outcome: SearchOutcome, settings: SearchSettings, run: str, fasta: str
) -> dict[str, Any]:
    """The search in numbers: spectra, database, PSMs at the FDR, times, settings."""
    psms = outcome.psms
    targets = psms.filter(~pl.col("is_decoy"))
    at_fdr = targets.filter(pl.col("q_value") <= settings.fdr)
    best_q = targets.get_column("q_value").min() if targets.height else None
    n_searched = outcome.n_spectra - outcome.skipped.height
    scoring = outcome.seconds.get("scoring", 0.0)
    return {
        "run": run,
        "fasta": fasta,
        "n_spectra": outcome.n_spectra,
        "n_searched": n_searched,
        "skipped": dict(Counter(outcome.skipped.get_column("reason").to_list())),
        "n_proteins": outcome.n_proteins,
        "n_peptidoforms": outcome.n_peptides,
        "n_psms": psms.height,
        "n_target_psms": targets.height,
        "n_decoy_psms": psms.height - targets.height,
        "fdr": settings.fdr,
        "n_at_fdr": at_fdr.height,
        "n_peptides_at_fdr": at_fdr.get_column("peptide").n_unique() if at_fdr.height else 0,
        "best_target_q_value": best_q,
        "min_target_psms_for_fdr": settings.min_targets(),
        "too_small_for_target_decoy": targets.height < settings.min_targets(),
        "note": fdr_note(targets.height, at_fdr.height, best_q, settings),
        "discriminant_fitted": outcome.discriminant_fitted,
        "seconds": outcome.seconds,
        "scoring_seconds_per_1000_spectra": 1000 * scoring / n_searched if n_searched else None,
        "settings": settings.to_dict(),
    }


def _tokens(peptide: str) -> list[str] | None:
    try:
        return parse_peptidoform(peptide)[0]
    except UnsupportedPeptideError:
        return None


def _agreement(pairs: list[tuple[list[str], list[str]]]) -> dict[str, Any]:
    """Exact (mass-based, I = L) and residue-level agreement of (search, reference) pairs."""
    exact = matched = residues = 0
    for found, reference in pairs:
        matches, same = match_peptides(found, reference)
        exact += int(same)
        matched += int(matches.sum())
        residues += len(reference)
    return {
        "n_both": len(pairs),
        "agree": exact,
        "disagree": len(pairs) - exact,
        "agreement": exact / len(pairs) if pairs else None,
        "residue_agreement": matched / residues if residues else None,
    }


def against_identifications(psms: pl.DataFrame, labels: pl.DataFrame, fdr: float) -> dict[str, Any]:
    """The search's PSMs against identifications supplied for the same run.

    Parameters
    ----------
    psms : polars.DataFrame
        :data:`~trm.search.engine.PSM_SCHEMA`.
    labels : polars.DataFrame
        ``spectrum_id``, ``label`` (ProForma): the supplied identifications as
        :func:`trm.io.labels.read_labels` gives them (filtered at their own q-value).
    fdr : float
        The search's FDR.

    Returns
    -------
    dict
        ``at_fdr``: the search's targets at ``fdr`` against the supplied ones (``n_both``,
        ``agree``, ``disagree``, ``agreement``, ``residue_agreement``, ``extra``: spectra
        only the search identifies, ``missed``: spectra only the supplied file does);
        ``best_psm``: the same for every spectrum's best target PSM whatever its q-value,
        which says whether the search ranks the supplied peptide first where target-decoy
        competition cannot confirm it.
    """
    reference = {
        spectrum_id: tokens
        for spectrum_id, peptide in labels.select("spectrum_id", "label").iter_rows()
        if peptide is not None and (tokens := _tokens(peptide)) is not None
    }
    targets = psms.filter(~pl.col("is_decoy"))
    result: dict[str, Any] = {"n_supplied": len(reference), "fdr": fdr}
    for name, table in (
        ("at_fdr", targets.filter(pl.col("q_value") <= fdr)),
        ("best_psm", targets),
    ):
        found = {
            spectrum_id: tokens
            for spectrum_id, peptide in table.select("spectrum_id", "peptide").iter_rows()
            if (tokens := _tokens(peptide)) is not None
        }
        pairs = [(found[s], reference[s]) for s in found if s in reference]
        result[name] = {
            "n_search": len(found),
            **_agreement(pairs),
            "extra": sum(1 for s in found if s not in reference),
            "missed": sum(1 for s in reference if s not in found),
        }
    return result
