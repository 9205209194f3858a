"""Spectrum tables built from peptides: theoretical b/y ions, as Casanovo's tests do."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from trm.chem import mass_to_mz, parse_peptidoform, peptide_mass
from trm.fragments import fragment_mz
from trm.io.table import SPECTRUM_SCHEMA

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CASANOVO_EXECUTABLE = PROJECT_ROOT / ".venv-casanovo" / "bin" / "casanovo"
DATA_DIR = PROJECT_ROOT / "tests" / "data" / "casanovo"

#: Tryptic-looking peptides with every modification kind Casanovo's vocabulary has.
PEPTIDES: tuple[str, ...] = (
    "LESLIEK",
    "PEPTIDEK",
    "[Acetyl]-AGLQFPVGR",
    "C[Carbamidomethyl]DNSGSLLR",
    "M[Oxidation]SEHTLK",
    "VATN[Deamidated]PWGR",
    "[+25.980265]-YLGEEYVK",
    "IGDYAGIK",
)


def theoretical_spectrum(peptide: str, charge: int, rng: np.random.Generator) -> dict:
    """A spectrum row: singly and doubly charged b/y ions plus a few noise peaks."""
    tokens, _ = parse_peptidoform(peptide)
    ions = fragment_mz(tokens, charges=(1, 2))
    mz = np.concatenate([*ions.values(), rng.uniform(150.0, 1500.0, size=8)])
    intensity = np.concatenate(
        [rng.uniform(0.3, 1.0, size=mz.size - 8), rng.uniform(0.01, 0.1, size=8)]
    )
    order = np.argsort(mz)
    return {
        "precursor_mz": float(mass_to_mz(peptide_mass(tokens), charge)),
        "charge": charge,
        "mz": mz[order].astype(np.float32).tolist(),
        "intensity": intensity[order].astype(np.float32).tolist(),
        "peptide": peptide,
    }


def spectrum_table(
    peptides: Sequence[str], charges: Sequence[int | None], run: str = "run1", seed: int = 0
) -> pl.DataFrame:
    """A table in SPECTRUM_SCHEMA, one spectrum per (peptide, charge) pair."""
    rng = np.random.default_rng(seed)
    rows = []
    for index, (peptide, charge) in enumerate(zip(peptides, charges, strict=True)):
        row = theoretical_spectrum(peptide, charge or 2, rng)
        row.update(
            spectrum_id=f"scan={index + 1}",
            run=run,
            scan=index + 1,
            rt=10.0 * index,
            charge=charge,
        )
        rows.append(row)
    return pl.DataFrame(rows, schema=SPECTRUM_SCHEMA)


@pytest.fixture
def small_table() -> pl.DataFrame:
    """Eight labelled spectra of charges 2-3 plus one without charge and one of charge 6."""
    peptides = [*PEPTIDES, "LESLIEK", "PEPTIDEK"]
    charges = [2, 3, 2, 2, 3, 2, 2, 3, None, 6]
    return spectrum_table(peptides, charges)
