"""Spectra built from peptides' theoretical b/y ions, for the training tests."""

from __future__ import annotations

import numpy as np
import polars as pl

from trm.chem import mass_to_mz, parse_peptidoform, peptide_mass
from trm.fragments import fragment_mz
from trm.io.table import SPECTRUM_SCHEMA

RESIDUES = list("GASPVTLIDNQEMHFYW")


def random_peptides(n: int, seed: int, min_length: int = 7, max_length: int = 12) -> list[str]:
    """Tryptic-looking peptides: random residues ending in K or R."""
    rng = np.random.default_rng(seed)
    peptides = []
    for _ in range(n):
        length = int(rng.integers(min_length, max_length + 1))
        body = "".join(rng.choice(RESIDUES, size=length - 1))
        peptides.append(body + str(rng.choice(["K", "R"])))
    return peptides


def theoretical_table(
    peptides: list[str], seed: int = 0, charge: int = 2, annotated: bool = False
) -> pl.DataFrame:
    """Spectrum table of singly charged b and y ions with random intensities; with
    ``annotated``, the ion columns of synthetic shards too (``ion_type``, ...)."""
    rng = np.random.default_rng(seed)
    rows = []
    for index, peptide in enumerate(peptides):
        tokens, _ = parse_peptidoform(peptide)
        ions = fragment_mz(tokens, charges=(1,))
        mz = np.concatenate([ions["b1"], ions["y1"]])
        order = np.argsort(mz)
        n = len(ions["b1"])
        annotation = {
            "ion_type": (["b"] * n + ["y"] * n),
            "ion_number": list(range(1, n + 1)) * 2,
            "ion_charge": [1] * (2 * n),
        }
        rows.append(
            {
                "spectrum_id": f"index={index}",
                "run": "theoretical",
                "scan": index,
                "precursor_mz": float(mass_to_mz(peptide_mass(tokens), charge)),
                "charge": charge,
                "rt": 0.0,
                "mz": mz[order].astype(np.float32).tolist(),
                "intensity": rng.uniform(0.1, 1.0, size=len(mz))[order].astype(np.float32).tolist(),
                "peptide": peptide,
                **(
                    {key: [values[i] for i in order] for key, values in annotation.items()}
                    if annotated
                    else {}
                ),
            }
        )
    schema = dict(SPECTRUM_SCHEMA)
    if annotated:
        schema.update(
            ion_type=pl.List(pl.String()),
            ion_number=pl.List(pl.Int16()),
            ion_charge=pl.List(pl.Int8()),
        )
    return pl.DataFrame(rows, schema=schema)
