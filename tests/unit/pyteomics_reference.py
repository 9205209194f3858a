"""Masses computed by pyteomics from Unimod deltas typed in here: the side of a
comparison that must not share trm.chem's mass table."""

from __future__ import annotations

from pyteomics import mass

# Unimod monoisotopic deltas typed in on purpose
UNIMOD = {"cam": 57.021464, "ox": 15.994915, "deam": 0.984016, "ac-": 42.010565 + 1.007825}
MODX = {"C[Carbamidomethyl]": "camC", "M[Oxidation]": "oxM", "N[Deamidated]": "deamN"}
#: Peptides with every kind of modification the comparisons cover.
PEPTIDES = [
    "PEPTC[Carbamidomethyl]IDEK",
    "AC[Carbamidomethyl]DM[Oxidation]EFGHIK",
    "M[Oxidation]LLN[Deamidated]VWYC[Carbamidomethyl]R",
    "[Acetyl]-SAM[Oxidation]PLEVQGR",
    "GGGGGGGK",
]


def modx(tokens: list[str]) -> tuple[str, bool]:
    """The peptide in pyteomics' modX notation, and whether it is N-terminally acetylated."""
    acetyl = tokens[0] == "[Acetyl]-"
    residues = tokens[1:] if acetyl else tokens
    return "".join(MODX.get(t, t) for t in residues), acetyl


def pyteomics_mz(modx_sequence: str, ion_type: str, charge: int, acetyl: bool) -> float:
    """m/z of an ion (``b``, ``y``, ``M``) of a modX sequence, by pyteomics."""
    aa_mass = {**mass.std_aa_mass, **UNIMOD}
    sequence = f"ac-{modx_sequence}-OH" if acetyl else modx_sequence
    return mass.fast_mass2(sequence, ion_type=ion_type, charge=charge, aa_mass=aa_mass)
