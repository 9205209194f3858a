"""Which peptides a set holds: length by precursor charge, for synthetic and real sets.

Each set is a group of spectrum tables (``trm synthetic``'s shards, ``trm labels``' or
``benchmarks/dev_data.py``'s tables): anything with ``peptide`` and ``charge`` columns.
One row per set: spectra, median length (residues, modifications not counted), the share
of 16 or more residues, the share of each charge, and the share of each length bin of
:data:`trm.synth.mix.LENGTH_EDGES` by charge (so that a synthetic set can be read against
the real one it should resemble). Spectra are counted as they are, not per distinct
peptide: this is what a model trained or evaluated on the set meets.

Usage (``--set NAME FILE...``, repeatable)::

    python benchmarks/peptide_mix_table.py \\
        --set "uniform synthetic" UNIFORM/validation/*.parquet \\
        --set "realistic synthetic" MIX/validation/*.parquet \\
        --set "dev identifications" dev-split/*.all.parquet \\
        --out benchmarks/results/peptide_mix.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

from trm.atomic import atomic_output
from trm.chem import parse_peptidoform
from trm.synth.mix import LENGTH_EDGES, length_bin

CHARGES = (2, 3, 4)


def read_set(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Peptide lengths (residues) and precursor charges of every labelled spectrum."""
    lengths, charges = [], []
    for path in paths:
        table = pl.read_parquet(path, columns=["peptide", "charge"]).drop_nulls()
        for peptide, charge in table.iter_rows():
            tokens, _ = parse_peptidoform(peptide)
            lengths.append(sum(1 for token in tokens if not token.endswith("-")))
            charges.append(int(charge))
    return np.asarray(lengths), np.asarray(charges)


def summarise(lengths: np.ndarray, charges: np.ndarray) -> dict:
    """Counts and shares of one set."""
    bins = length_bin(lengths)
    by_bin = {
        str(charge): [
            float(np.mean((bins == b) & (charges == charge))) for b in range(len(LENGTH_EDGES))
        ]
        for charge in CHARGES
    }
    return {
        "spectra": int(lengths.size),
        "median_length": float(np.median(lengths)),
        "share_16_plus": float(np.mean(lengths >= 16)),
        "charge_share": {str(z): float(np.mean(charges == z)) for z in CHARGES},
        "length_bin_by_charge": by_bin,
    }


def bin_names() -> list[str]:
    edges = list(LENGTH_EDGES)
    names = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return ["≤" + str(edges[1] - 1)] + names[1:] + [f"{edges[-1]}+"]


def markdown(sets: dict[str, dict], command: str) -> str:
    lines = [
        "# Peptide length and precursor charge of synthetic and real sets",
        "",
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        "Spectra as they are (not distinct peptides); lengths in residues.",
        "",
        "| set | spectra | median length | 16+ residues | charge 2 | charge 3 | charge 4 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in sets.items():
        share = s["charge_share"]
        lines.append(
            f"| {name} | {s['spectra']} | {s['median_length']:g} | {s['share_16_plus']:.2f} | "
            + " | ".join(f"{share[str(z)]:.2f}" for z in CHARGES)
            + " |"
        )
    lines += [
        "",
        "Share of the set's spectra in each length bin and charge:",
        "",
        "| set | charge | " + " | ".join(bin_names()) + " |",
        "|---|---|" + "---|" * len(LENGTH_EDGES),
    ]
    for name, s in sets.items():
        for z in CHARGES:
            row = s["length_bin_by_charge"][str(z)]
            lines.append(f"| {name} | {z} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set",
        nargs="+",
        action="append",
        required=True,
        metavar=("NAME", "FILE"),
        help="a set's name and its tables (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True, help="markdown; JSON beside it")
    parser.add_argument("--command", default=None, help="command line shown in the report")
    args = parser.parse_args(argv)
    sets = {}
    for name, *files in args.set:
        if not files:
            parser.error(f"--set {name}: no tables")
        sets[name] = summarise(*read_set([Path(f) for f in files]))
    command = args.command or "python benchmarks/peptide_mix_table.py ..."
    with atomic_output(args.out) as path:
        path.write_text(markdown(sets, command))
    with atomic_output(args.out.with_suffix(".json")) as path:
        path.write_text(json.dumps(sets, indent=1) + "\n")
    sys.stdout.write(markdown(sets, command))


if __name__ == "__main__":
    main()
