"""The internal spectrum table -> MGF files for Casanovo.

Casanovo reads spectra from MGF, and from each block it uses PEPMASS, CHARGE, the peaks
and, in training files, ``SEQ=``. It names a spectrum in its mzTab by its 0-based position
in the file (``index=N``), so the table returned by :func:`select_spectra` keeps that
position in ``mgf_index``: that is how results map back to ``spectrum_id``. TITLE carries
the ``spectrum_id`` and SCANS the scan number (when known) for a human reading the file.

Casanovo silently drops a spectrum without a charge (or crashes on it: ``StopIteration``)
and one whose charge exceeds its ``max_charge``, so those are never written; they are
listed with the reason instead, and so are training spectra whose peptide Casanovo's
vocabulary cannot spell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from trm.chem import (
    MODIFICATION_MATCH_TOLERANCE_DA,
    STANDARD_RESIDUES,
    UnsupportedPeptideError,
    parse_peptidoform,
)
from trm.errors import InputError
from trm.io.spectra import drop_empty_spectra

#: Columns of the table of spectra not given to Casanovo.
SKIPPED_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.String(),
    "spectrum_id": pl.String(),
    "reason": pl.String(),
}


def casanovo_token_map(residues: Mapping[str, float]) -> dict[str, str]:
    """Our vocabulary tokens -> Casanovo's for one Casanovo ``residues`` table.

    Casanovo's tokenizer always knows the 20 unmodified residues besides its ``residues``
    config. A token of ours with another name but the same mass and kind (N-terminal or
    not) maps to Casanovo's name: ``[Carbamyl+Ammonia-loss]-`` is ``[+25.980265]-`` there
    (whose mass, 25.980265 Da, is 1 mDa above the composition's 25.979265 Da, hence the
    tolerance of :data:`trm.chem.MODIFICATION_MATCH_TOLERANCE_DA`).

    Parameters
    ----------
    residues : mapping of str to float
        The ``residues`` key of a Casanovo config (token -> mass in Da).

    Returns
    -------
    dict of str to str
        Only tokens Casanovo can spell.
    """
    from trm.chem import Vocabulary

    vocabulary = Vocabulary()
    mapping: dict[str, str] = {}
    for token, mass in zip(vocabulary.tokens[1:], vocabulary.masses[1:], strict=True):
        if token in residues or token in STANDARD_RESIDUES:
            mapping[token] = token
            continue
        same_mass = [
            name
            for name, casanovo_mass in residues.items()
            if name.endswith("-") == token.endswith("-")
            and abs(casanovo_mass - mass) < MODIFICATION_MATCH_TOLERANCE_DA
        ]
        if len(same_mass) == 1:
            mapping[token] = same_mass[0]
    return mapping


def casanovo_peptide(peptide: str, token_map: Mapping[str, str]) -> str:
    """A ProForma peptide written as Casanovo's training files spell it.

    Parameters
    ----------
    peptide : str
        ProForma, e.g. ``[Acetyl]-PEPTC[Carbamidomethyl]M[UNIMOD:35]K``.
    token_map : mapping
        From :func:`casanovo_token_map`.

    Returns
    -------
    str
        e.g. ``[Acetyl]-PEPTC[Carbamidomethyl]M[Oxidation]K``: modifications by the names
        of Casanovo's residue table, an N-terminal modification as a ``[...]-`` prefix.

    Raises
    ------
    UnsupportedPeptideError
        When a residue or modification is not in Casanovo's vocabulary.
    """
    tokens, _ = parse_peptidoform(peptide)
    missing = [token for token in tokens if token not in token_map]
    if missing:
        raise UnsupportedPeptideError(f"not in Casanovo's vocabulary: {', '.join(missing)}")
    return "".join(token_map[token] for token in tokens)


def select_spectra(
    table: pl.DataFrame,
    max_charge: int,
    annotated: bool = False,
    residues: Mapping[str, float] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a spectrum table into the spectra Casanovo is given and those it is not.

    Parameters
    ----------
    table : polars.DataFrame
        Spectrum table (:data:`trm.io.table.SPECTRUM_SCHEMA`).
    max_charge : int
        Casanovo's ``max_charge``: spectra of a higher charge are not given to it.
    annotated : bool
        For training files: spectra need a peptide Casanovo can spell, added in column
        ``casanovo_peptide``.
    residues : mapping, optional
        Casanovo's ``residues`` table; required when ``annotated``.

    Returns
    -------
    given : polars.DataFrame
        The input rows to write, in order, with ``mgf_index`` (0-based position in the
        MGF, Casanovo's ``index=N``) and, when annotated, ``casanovo_peptide``.
    skipped : polars.DataFrame
        ``run``, ``spectrum_id``, ``reason`` (:data:`SKIPPED_SCHEMA`) for every other row.
    """
    # The same peak cleaning and "no peaks" reasons as trm denovo (peaks at zero or
    # negative m/z or intensity removed), so both tools see the same spectra.
    table, empty = drop_empty_spectra(table)
    charge = pl.col("charge")
    precursor = pl.col("precursor_mz")
    reason = (
        pl.when(precursor.is_null() | ~(precursor > 0))
        .then(pl.lit("missing precursor m/z"))
        .when(charge.is_null())
        .then(pl.lit("no precursor charge (Casanovo needs one)"))
        .when(charge < 1)
        .then(pl.format("precursor charge {} is not positive", charge))
        .when(charge > max_charge)
        .then(pl.format("precursor charge {} above Casanovo's max_charge {}", charge, max_charge))
        .otherwise(pl.lit(None, dtype=pl.String()))
    )
    table = table.with_columns(_skip_reason=reason)
    if annotated:
        if residues is None:
            raise InputError("annotated export needs Casanovo's residues table")
        token_map = casanovo_token_map(residues)
        spelled, problems = [], []
        for peptide in table["peptide"].to_list():
            if peptide is None:
                spelled.append(None)
                problems.append("no peptide label")
                continue
            try:
                spelled.append(casanovo_peptide(peptide, token_map))
                problems.append(None)
            except UnsupportedPeptideError as error:
                spelled.append(None)
                problems.append(f"peptide {peptide}: {error}")
        table = table.with_columns(
            casanovo_peptide=pl.Series(spelled, dtype=pl.String()),
            _skip_reason=pl.coalesce(
                pl.col("_skip_reason"), pl.Series(problems, dtype=pl.String())
            ),
        )
    given = (
        table.filter(pl.col("_skip_reason").is_null())
        .drop("_skip_reason")
        .with_row_index("mgf_index")
        .with_columns(pl.col("mgf_index").cast(pl.Int64()))
    )
    skipped = table.filter(pl.col("_skip_reason").is_not_null()).select(
        pl.col("run"), pl.col("spectrum_id"), pl.col("_skip_reason").alias("reason")
    )
    skipped = pl.concat([empty.select("run", "spectrum_id", "reason"), skipped], how="vertical")
    return given, skipped


def _block(
    title: str,
    precursor_mz: float,
    charge: int,
    rt: float | None,
    scan: int | None,
    peptide: str | None,
    mz: Sequence[float],
    intensity: Sequence[float],
) -> str:
    lines = ["BEGIN IONS", f"TITLE={title}", f"PEPMASS={precursor_mz:.6f}", f"CHARGE={charge}+"]
    if rt is not None:
        lines.append(f"RTINSECONDS={rt:.3f}")
    if scan is not None:
        lines.append(f"SCANS={scan}")
    if peptide is not None:
        lines.append(f"SEQ={peptide}")
    mz_array = np.asarray(mz, dtype=np.float64)
    intensity_array = np.asarray(intensity, dtype=np.float64)
    lines.extend(
        f"{m:.5f} {i:.6g}" for m, i in zip(mz_array.tolist(), intensity_array.tolist(), strict=True)
    )
    lines.append("END IONS")
    return "\n".join(lines) + "\n\n"


def write_mgf(given: pl.DataFrame, path: str | Path, append: bool = False) -> Path:
    """Write the spectra of :func:`select_spectra` to one MGF file, in ``mgf_index`` order.

    Parameters
    ----------
    given : polars.DataFrame
        First output of :func:`select_spectra`; its ``casanovo_peptide`` column, when
        present, is written as ``SEQ=``.
    path : str or Path
    append : bool
        Add to an existing file (one table of shards after another); the caller then
        offsets ``mgf_index`` by the spectra already written.

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    annotated = "casanovo_peptide" in given.columns
    with path.open("a" if append else "w", encoding="utf-8") as handle:
        for row in given.sort("mgf_index").iter_rows(named=True):
            handle.write(
                _block(
                    title=row["spectrum_id"],
                    precursor_mz=row["precursor_mz"],
                    charge=row["charge"],
                    rt=row["rt"],
                    scan=row["scan"],
                    peptide=row["casanovo_peptide"] if annotated else None,
                    mz=row["mz"],
                    intensity=row["intensity"],
                )
            )
    return path
