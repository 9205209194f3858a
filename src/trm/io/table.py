"""The internal spectrum table every stage exchanges (polars / parquet).

One row per MS2 spectrum. Stages that add information (ground-truth fragment
annotations for synthetic spectra, say) add columns; these are always present.
"""

from __future__ import annotations

import polars as pl

#: Column name -> polars dtype of the internal spectrum table.
SPECTRUM_SCHEMA: dict[str, pl.DataType] = {
    "spectrum_id": pl.String(),  # native id (mzML) or TITLE (MGF): unique within a run
    "run": pl.String(),  # sample / run name
    "scan": pl.Int64(),  # vendor scan number when known, else null
    "precursor_mz": pl.Float64(),
    "charge": pl.Int16(),  # null when the instrument did not assign one
    "rt": pl.Float64(),  # retention time in seconds
    "mz": pl.List(pl.Float32()),  # centroided peaks, ascending m/z
    "intensity": pl.List(pl.Float32()),
    "peptide": pl.String(),  # ProForma without charge; null for unlabelled spectra
}


def empty_spectrum_table() -> pl.DataFrame:
    """A table with the spectrum schema and no rows."""
    return pl.DataFrame(schema=SPECTRUM_SCHEMA)


#: Columns the spectrum reader (:mod:`trm.io.spectra`) adds after the schema's: what real
#: files say beyond it. Kept out of :data:`SPECTRUM_SCHEMA` so tables built elsewhere
#: (synthetic spectra) need not fill them; select the schema's columns to mix tables.
SPECTRUM_READER_COLUMNS: dict[str, pl.DataType] = {
    # Fragmentation as the file states it (HCD, CID, ETD, EThcD, ...); null when unknown.
    "activation": pl.String(),
    # True when the file marks the spectrum as profile (not centroided) data.
    "profile": pl.Boolean(),
    # Where the spectrum is in its file, as mzTab's spectra_ref names it: the mzML/mzXML
    # native id, or index=N (0-based) in an MGF file.
    "native_id": pl.String(),
}
