"""Casanovo's mzTab -> one row per input spectrum, keyed by ``run`` and ``spectrum_id``.

Casanovo names each PSM's spectrum ``ms_run[1]:index=N``, N being the spectrum's 0-based
position in the MGF it read; :func:`trm.casanovo.mgf.select_spectra` recorded that
position (``mgf_index``) for every spectrum it wrote, so the join is exact. Casanovo writes
no row for a spectrum it filtered out itself (fewer than ``min_peaks`` peaks after its own
preprocessing) or for which no beam ended in a valid peptide; those spectra keep their row
here with status ``no_psm``, and the spectra never given to it keep theirs with status
``skipped`` and the reason.
"""

from __future__ import annotations

import os
import re

import polars as pl

from trm.chem import UnsupportedPeptideError, parse_peptidoform, tokens_to_proforma

#: Columns of the per-PSM table read from Casanovo's mzTab.
PSM_SCHEMA: dict[str, pl.DataType] = {
    "mgf_index": pl.Int64(),
    "casanovo_sequence": pl.String(),  # as Casanovo wrote it (its token names)
    "peptide": pl.String(),  # ProForma in trm's vocabulary, null when not convertible
    "score": pl.Float64(),
    "aa_scores": pl.String(),  # comma-separated, N- to C-terminus
    "charge": pl.Int16(),
    "calc_mz": pl.Float64(),
}

#: Columns of the per-spectrum Casanovo result table (``casanovo.tsv``).
RESULT_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.String(),
    "spectrum_id": pl.String(),
    "status": pl.String(),  # sequenced | no_psm | skipped
    "reason": pl.String(),  # why there is no peptide; null when sequenced
    "peptide": pl.String(),
    "casanovo_sequence": pl.String(),
    "score": pl.Float64(),
    "aa_scores": pl.String(),
    "charge": pl.Int16(),
    "precursor_mz": pl.Float64(),
    "calc_mz": pl.Float64(),
}

NO_PSM_REASON = (
    "Casanovo reported no peptide (spectrum dropped by its preprocessing, e.g. fewer than "
    "min_peaks peaks, or no valid beam)"
)

_INDEX_RE = re.compile(r"index=(\d+)$")


def to_trm_proforma(casanovo_sequence: str) -> str | None:
    """Casanovo's peptide as ProForma in trm's token names; None outside trm's vocabulary.

    A token whose trm name is not valid ProForma (``[Carbamyl+Ammonia-loss]-``, which
    Casanovo writes ``[+25.980265]-``) keeps Casanovo's spelling, a valid mass
    modification, so the peptide stays readable by psm_utils.
    """
    try:
        tokens, _ = parse_peptidoform(casanovo_sequence)
    except UnsupportedPeptideError:
        return None
    # A "+" joins two Unimod names into one trm token; ProForma has no such name (and
    # resolving it would make psm_utils load all of PSI-MOD before failing).
    if any("+" in token for token in tokens):
        return casanovo_sequence
    return tokens_to_proforma(tokens)


def read_casanovo_mztab(path: str | os.PathLike[str]) -> pl.DataFrame:
    """The PSMs of a Casanovo mzTab.

    Parameters
    ----------
    path : path
        ``casanovo sequence`` output, made from one MGF file.

    Returns
    -------
    polars.DataFrame
        :data:`PSM_SCHEMA`, one row per PSM.

    Raises
    ------
    ValueError
        When a PSM's ``spectra_ref`` is not an MGF index (``ms_run[k]:index=N``) or the
        file names more than one MS run.
    """
    from pyteomics import mztab  # imported here: only this stage reads mzTab

    with open(path, encoding="utf-8") as handle:
        table = mztab.MzTab(handle).spectrum_match_table
    if table is None or len(table) == 0:
        return pl.DataFrame(schema=PSM_SCHEMA)
    runs = {ref.split(":", 1)[0] for ref in table["spectra_ref"]}
    if len(runs) > 1:
        raise ValueError(f"{path}: PSMs of several MS runs ({sorted(runs)}); expected one MGF")
    indices = []
    for ref in table["spectra_ref"]:
        match = _INDEX_RE.search(str(ref))
        if match is None:
            raise ValueError(f"{path}: spectra_ref {ref!r} is not an MGF index")
        indices.append(int(match.group(1)))
    proforma_column = "opt_global_cv_MS:1003169_proforma_peptidoform_sequence"
    sequences = [str(s) for s in table[proforma_column]]
    return pl.DataFrame(
        {
            "mgf_index": indices,
            "casanovo_sequence": sequences,
            "peptide": [to_trm_proforma(s) for s in sequences],
            "score": table["search_engine_score[1]"].astype(float).tolist(),
            "aa_scores": [None if s is None else str(s) for s in table["opt_global_aa_scores"]],
            "charge": table["charge"].astype(int).tolist(),
            "calc_mz": table["calc_mass_to_charge"].astype(float).tolist(),
        },
        schema=PSM_SCHEMA,
    )


def per_spectrum_results(
    given: pl.DataFrame, skipped: pl.DataFrame, psms: pl.DataFrame
) -> pl.DataFrame:
    """One row per input spectrum: Casanovo's best PSM, or why there is none.

    Parameters
    ----------
    given : polars.DataFrame
        Spectra written to the MGF (``run``, ``spectrum_id``, ``mgf_index``,
        ``precursor_mz``, ``charge``); a spectrum may appear once per charge tried.
    skipped : polars.DataFrame
        ``run``, ``spectrum_id``, ``reason`` of the spectra not given to Casanovo.
    psms : polars.DataFrame
        :func:`read_casanovo_mztab` output.

    Returns
    -------
    polars.DataFrame
        :data:`RESULT_SCHEMA`: each (``run``, ``spectrum_id``) once; where several charges
        were tried, the highest-scoring PSM.
    """
    best_psm = psms.sort("score", descending=True).unique("mgf_index", keep="first")
    joined = given.select("run", "spectrum_id", "mgf_index", "precursor_mz", "charge").join(
        best_psm.rename({"charge": "psm_charge"}), on="mgf_index", how="left"
    )
    sequenced = joined.with_columns(
        status=pl.when(pl.col("casanovo_sequence").is_null())
        .then(pl.lit("no_psm"))
        .otherwise(pl.lit("sequenced")),
        reason=pl.when(pl.col("casanovo_sequence").is_null())
        .then(pl.lit(NO_PSM_REASON))
        .when(pl.col("peptide").is_null())
        .then(pl.lit("Casanovo's peptide is outside trm's vocabulary"))
        .otherwise(pl.lit(None, dtype=pl.String())),
        charge=pl.coalesce("psm_charge", "charge").cast(pl.Int16()),
    )
    # Charge copies of one spectrum: the sequenced one with the best score wins.
    sequenced = (
        sequenced.sort(
            [pl.col("status") == "sequenced", pl.col("score").fill_null(float("-inf"))],
            descending=[True, True],
        )
        .unique(["run", "spectrum_id"], keep="first", maintain_order=True)
        .sort("mgf_index")
    )
    already = sequenced.select("run", "spectrum_id")
    not_given = (
        skipped.join(already, on=["run", "spectrum_id"], how="anti")
        .unique(["run", "spectrum_id"], keep="first", maintain_order=True)
        .with_columns(status=pl.lit("skipped"))
    )
    return pl.concat(
        [
            sequenced.select([pl.col(c).cast(t) for c, t in RESULT_SCHEMA.items()]),
            not_given.select(
                [
                    pl.col(c).cast(t) if c in not_given.columns else pl.lit(None, dtype=t).alias(c)
                    for c, t in RESULT_SCHEMA.items()
                ]
            ),
        ],
        how="vertical",
    )
