"""Settings of the database search: the ``search:`` section of the workflow config.

The instrument file gives the tolerances, isotope errors and charges; these settings give
what the instrument does not: the digestion, the modifications searched and the FDR.
Modifications are named as the model vocabulary names them
(:data:`trm.chem.KNOWN_MODIFICATIONS`); where each one may sit in a search is
:data:`MODIFICATION_SITES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trm.chem import KNOWN_MODIFICATIONS
from trm.errors import InputError

#: Where each vocabulary modification is searched. Residue letters; ``^X``: the peptide
#: N-terminus on residue X; ``[X``: the protein N-terminus on residue X. N-terminal sites
#: are listed per residue (not as one ``^`` site) so that each peptidoform is indexed once.
#: Acetyl sits on protein N-termini (co-translational acetylation); Carbamyl (urea) on any
#: peptide N-terminus; Ammonia-loss is pyro-glutamate from an N-terminal Q and the cyclised
#: carbamidomethyl-C. Carbamyl+Ammonia-loss, which has no Unimod entry of its own, cannot be
#: searched (Sage names modifications by their Unimod accession).
MODIFICATION_SITES: dict[str, tuple[str, ...]] = {
    "Carbamidomethyl": ("C",),
    "Oxidation": ("M",),
    "Deamidated": ("N", "Q"),
    "Acetyl": tuple(f"[{r}" for r in "ACDEFGHIKLMNPQRSTVWY"),
    "Carbamyl": tuple(f"^{r}" for r in "ACDEFGHIKLMNPQRSTVWY"),
    "Ammonia-loss": ("^Q", "^C"),
}

#: Protein accessions starting with one of these are decoys someone added to the FASTA; the
#: search makes its own (reversed sequences), so they are left out.
DECOY_PREFIXES: tuple[str, ...] = ("rev_", "REV_", "DECOY_", "decoy_", "XXX_")

#: Tag of the decoy proteins the search generates.
DECOY_TAG = "rev_"

#: Scores the q-values can be computed from.
SCORES: tuple[str, ...] = ("discriminant", "hyperscore")


@dataclass(frozen=True)
class SearchSettings:
    """How a run is searched against its FASTA.

    Attributes
    ----------
    fdr : float
        False discovery rate of the labels: target PSMs with a q-value (target-decoy
        competition of the best PSM of each spectrum) at or below it label their spectra.
    missed_cleavages : int
        Largest number of missed trypsin sites (after K or R, not before P) in a peptide.
    min_peptide_length : int
        Shortest peptide searched, in residues.
    max_peptide_length : int
        Longest peptide searched, in residues.
    min_peptide_mass : float
        Lightest peptide searched (Da).
    max_peptide_mass : float
        Heaviest peptide searched (Da).
    fixed_modifications : tuple of str
        Vocabulary modifications on every site they may sit on.
    variable_modifications : tuple of str
        Vocabulary modifications searched with and without.
    max_variable_modifications : int
        Most variable modifications on one peptide.
    min_matched_peaks : int
        Fewest fragment peaks a PSM must explain.
    top_peaks : int
        Most intense peaks of each spectrum searched.
    score : str
        Score of the target-decoy competition: discriminant (Sage's linear discriminant
        over its PSM features, falling back to a fixed combination when it cannot be fitted)
        or hyperscore.
    """

    fdr: float = 0.01
    missed_cleavages: int = 2
    min_peptide_length: int = 7
    max_peptide_length: int = 30
    min_peptide_mass: float = 500.0
    max_peptide_mass: float = 5000.0
    fixed_modifications: tuple[str, ...] = field(
        default=("Carbamidomethyl",), metadata={"allow_empty": True}
    )
    variable_modifications: tuple[str, ...] = field(
        default=("Oxidation", "Acetyl", "Ammonia-loss"), metadata={"allow_empty": True}
    )
    max_variable_modifications: int = 2
    min_matched_peaks: int = 4
    top_peaks: int = 150
    score: str = field(default="discriminant", metadata={"choices": SCORES})

    def __post_init__(self) -> None:
        if not 0 < self.fdr < 1:
            raise InputError(f"search: fdr must lie between 0 and 1, not {self.fdr}")
        if self.missed_cleavages < 0:
            raise InputError("search: missed_cleavages must be 0 or more")
        if not 1 <= self.min_peptide_length <= self.max_peptide_length:
            raise InputError(
                f"search: peptide lengths [{self.min_peptide_length}, "
                f"{self.max_peptide_length}] are an empty range"
            )
        if not 0 <= self.min_peptide_mass < self.max_peptide_mass:
            raise InputError(
                f"search: peptide masses [{self.min_peptide_mass}, {self.max_peptide_mass}] "
                "are an empty range"
            )
        names = {m.name for m in KNOWN_MODIFICATIONS}
        for key in ("fixed_modifications", "variable_modifications"):
            unknown = sorted(set(getattr(self, key)) - names)
            if unknown:
                raise InputError(
                    f"search: {key} {unknown} are not modifications of the model vocabulary "
                    f"({sorted(names)})"
                )
            unsearchable = sorted(set(getattr(self, key)) - set(MODIFICATION_SITES))
            if unsearchable:
                raise InputError(
                    f"search: {key} {unsearchable} cannot be searched (no Unimod entry of "
                    f"its own); searchable: {sorted(MODIFICATION_SITES)}"
                )
        both = sorted(set(self.fixed_modifications) & set(self.variable_modifications))
        if both:
            raise InputError(f"search: {both} cannot be both fixed and variable")
        if self.max_variable_modifications < 0 or self.min_matched_peaks < 1:
            raise InputError(
                "search: max_variable_modifications must be 0 or more, min_matched_peaks 1 or more"
            )
        if self.top_peaks < 1:
            raise InputError("search: top_peaks must be 1 or more")
        if self.score not in SCORES:
            raise InputError(f"search: score must be one of {SCORES}, not {self.score!r}")

    def min_targets(self) -> int:
        """Fewest target PSMs with which target-decoy competition can reach :attr:`fdr`.

        A q-value is at least (decoys + 1) / targets, so below ``1 / fdr`` targets no PSM
        can pass, whatever the scores."""
        return math.ceil(1.0 / self.fdr - 1e-9)

    def to_dict(self) -> dict[str, object]:
        """Plain types, for JSON."""
        return {
            "fdr": self.fdr,
            "enzyme": "trypsin (after K or R, not before P)",
            "missed_cleavages": self.missed_cleavages,
            "min_peptide_length": self.min_peptide_length,
            "max_peptide_length": self.max_peptide_length,
            "min_peptide_mass": self.min_peptide_mass,
            "max_peptide_mass": self.max_peptide_mass,
            "fixed_modifications": list(self.fixed_modifications),
            "variable_modifications": list(self.variable_modifications),
            "max_variable_modifications": self.max_variable_modifications,
            "min_matched_peaks": self.min_matched_peaks,
            "top_peaks": self.top_peaks,
            "score": self.score,
            "decoys": f"reversed proteins, tagged {DECOY_TAG}",
        }
