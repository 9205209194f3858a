"""The public real spectra with known peptides (``../shared/data/dev``), split by peptide.

Benchmarks that touch real spectra share this split so that nothing fitted on one half is
measured on the same half: the shipped noise model is fitted on the ``fit`` half, and
zero-shot accuracy is reported on the ``holdout`` half (and on all spectra, labelled as
such). A peptide (I/L-normalised, modifications stripped) and all its spectra fall in one
half, by a seeded hash.

High-resolution HCD sets only (the low-resolution PRIDE cluster files have noisy labels):

========  ============================================  =====================================
name      files                                         labels
========  ============================================  =====================================
mouse     casanovo_sample_mouse_hcd.mgf                 ``SEQ=``
yeast     SmallCalibratibleYeast.mgf + .mzID            MetaMorpheus, q <= 0.01
ptools    proteometools_kuester_hcd.mgf                 ``SEQ=`` + ``USER03`` modifications
cho       chinese_hamster_hcd_selected_head.msp         NIST library entries
========  ============================================  =====================================

Usage (writes ``<out>/<name>.{fit,holdout,all}.parquet``)::

    python benchmarks/dev_data.py --dev-dir ../shared/data/dev --out dev-split
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import numpy as np
import polars as pl

from trm.io.labels import read_annotated_mgf, read_identified_spectra, read_msp
from trm.synth.peptides import split_peptides

log = logging.getLogger(__name__)

#: Seed of the peptide hash that splits the dev spectra; never change it once results
#: have been reported on the halves.
SPLIT_SEED = 20261129
#: name -> (spectra file, identification file or None)
SOURCES: dict[str, tuple[str, str | None]] = {
    "mouse": ("casanovo_sample_mouse_hcd.mgf", None),
    "yeast": ("SmallCalibratibleYeast.mgf", "SmallCalibratible_Yeast.mzID"),
    "ptools": ("proteometools_kuester_hcd.mgf", None),
    "cho": ("chinese_hamster_hcd_selected_head.msp", None),
}


def stripped(peptide: str) -> str:
    """Residues only, I as L: the key that keeps a peptide's spectra together."""
    return re.sub(r"\[[^\]]*\]-?", "", peptide).replace("I", "L")


def read_source(dev_dir: Path, name: str) -> pl.DataFrame:
    """One source's labelled spectra (spectrum table)."""
    spectra, identifications = SOURCES[name]
    path = dev_dir / spectra
    if identifications is not None:
        table, _ = read_identified_spectra(path, dev_dir / identifications, run=name)
    elif path.suffix.lower() == ".msp":
        table, _ = read_msp(path, run=name)
    else:
        table, _ = read_annotated_mgf(path, run=name)
    return table


def split_table(table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fit, holdout) halves of a labelled table, by peptide."""
    keys = sorted({stripped(p) for p in table.get_column("peptide").to_list()})
    halves = split_peptides(keys, {"fit": 0.5, "holdout": 0.5}, SPLIT_SEED)
    fit_keys = set(halves["fit"])
    in_fit = np.array([stripped(p) in fit_keys for p in table.get_column("peptide").to_list()])
    return table.filter(pl.Series(in_fit)), table.filter(pl.Series(~in_fit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev-dir", type=Path, required=True, help="the shared dev folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        table = read_source(args.dev_dir, name)
        fit, holdout = split_table(table)
        for part, frame in (("fit", fit), ("holdout", holdout), ("all", table)):
            frame.write_parquet(args.out / f"{name}.{part}.parquet")
        log.info("%s: %d spectra, %d fit, %d holdout", name, table.height, fit.height,
                 holdout.height)  # fmt: skip


if __name__ == "__main__":
    main()
