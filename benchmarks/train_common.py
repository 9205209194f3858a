"""Data for the training benchmarks.

Either the synthetic shards of the ``synthetic`` stage (``--shards DIR`` with ``train/``
and ``validation/`` inside), or, before they exist, **theoretical spectra**: singly (and,
for charge-3 precursors, doubly) charged b and y ions of real yeast tryptic peptides,
digested from the shipped UniProt proteome, with random intensities (y ions stronger than
b ions) and no noise of their own; the training noise curriculum adds dropout, noise peaks
and mass errors. Theoretical spectra are far easier than MS2PIP or real ones, so absolute
accuracies from them only rank model sizes against each other.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import polars as pl
from pyteomics import fasta, parser

from trm.chem import Vocabulary, mass_to_mz, parse_peptidoform, peptide_mass
from trm.fragments import fragment_charges, fragment_mz
from trm.io.table import SPECTRUM_SCHEMA
from trm.train.data import SpectrumDataset

log = logging.getLogger(__name__)

FASTA = Path(__file__).resolve().parents[1] / "resources/fasta/UP000002311-S.cerevisiae.fasta.gz"


def yeast_tryptic_peptides(
    n: int, seed: int, min_length: int = 7, max_length: int = 20
) -> list[str]:
    """Distinct fully tryptic yeast peptides (no missed cleavage), sampled at random.

    Cysteines carry carbamidomethylation; peptides with U, X, B, Z, O are left out.
    """
    peptides: set[str] = set()
    with gzip.open(FASTA, "rt") as handle:
        for _, sequence in fasta.read(handle, use_index=False):
            peptides.update(
                p
                for p in parser.cleave(sequence, parser.expasy_rules["trypsin"], 0)
                if min_length <= len(p) <= max_length and set(p) <= set("ACDEFGHIKLMNPQRSTVWY")
            )
    pool = sorted(peptides)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return [pool[i].replace("C", "C[Carbamidomethyl]") for i in chosen]


def theoretical_table(peptides: list[str], seed: int) -> pl.DataFrame:
    """Spectrum table of theoretical b/y ions (see the module description)."""
    rng = np.random.default_rng(seed)
    rows = []
    for index, peptide in enumerate(peptides):
        tokens, _ = parse_peptidoform(peptide)
        charge = int(rng.choice([2, 3], p=[0.7, 0.3]))
        ions = fragment_mz(tokens, charges=fragment_charges(charge))
        mz, intensity = [], []
        for name, values in ions.items():
            low, high = (0.2, 1.0) if name.startswith("y") else (0.05, 0.6)
            scale = 1.0 if name.endswith("1") else 0.4
            mz.append(values)
            intensity.append(scale * rng.uniform(low, high, size=len(values)))
        mz_array, intensity_array = np.concatenate(mz), np.concatenate(intensity)
        order = np.argsort(mz_array)
        rows.append(
            {
                "spectrum_id": f"theoretical={index}",
                "run": "theoretical",
                "scan": index,
                "precursor_mz": float(mass_to_mz(peptide_mass(tokens), charge)),
                "charge": charge,
                "rt": 0.0,
                "mz": mz_array[order].astype(np.float32).tolist(),
                "intensity": intensity_array[order].astype(np.float32).tolist(),
                "peptide": peptide,
            }
        )
    return pl.DataFrame(rows, schema=SPECTRUM_SCHEMA)


def load_benchmark_data(
    shards: Path | None,
    n_train: int,
    n_validation: int,
    vocabulary: Vocabulary,
    max_length: int,
    n_peaks: int,
    seed: int = 0,
) -> tuple[SpectrumDataset, SpectrumDataset, str]:
    """Training and validation spectra, and a label saying which data they are.

    Theoretical validation peptides are disjoint from the training ones.
    """
    if shards is not None:
        sizes = {"vocabulary": vocabulary, "max_length": max_length, "n_peaks": n_peaks}
        train = SpectrumDataset.from_shards(shards / "train", max_charge=10, limit=n_train, **sizes)
        validation = SpectrumDataset.from_shards(
            shards / "validation", max_charge=10, limit=n_validation, **sizes
        )
        return train, validation, f"synthetic shards {shards.name}"
    peptides = yeast_tryptic_peptides(n_train + n_validation, seed)
    train_table = theoretical_table(peptides[:n_train], seed)
    validation_table = theoretical_table(peptides[n_train:], seed + 1)
    train = SpectrumDataset.from_table(train_table, vocabulary, max_length, n_peaks, 10)
    validation = SpectrumDataset.from_table(validation_table, vocabulary, max_length, n_peaks, 10)
    return train, validation, "theoretical b/y spectra of yeast tryptic peptides"
