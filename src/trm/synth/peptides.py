"""Peptides for synthetic spectra: in-silico digestion, splits and peptidoform sampling.

A proteome FASTA is digested with pyteomics' cleavage rules, peptides are deduplicated
with I and L counted as one residue (they have the same mass, so no spectrum tells them
apart) and assigned to train/validation/test by a seeded hash of their I/L-normalised
sequence. Assignment by hash, not by position in a shuffled list, keeps a peptide in the
same split whatever else the FASTA holds, so adding proteins never moves a test peptide
into training.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyteomics import parser

from trm.chem import DEFAULT_TOKENS, STANDARD_RESIDUES, modification_spec
from trm.errors import InputError
from trm.io.fasta import iter_fasta

log = logging.getLogger(__name__)

#: Split names in the order shards and manifests list them.
SPLITS: tuple[str, ...] = ("train", "validation", "test")

#: Letters a FASTA may hold that are no single residue of known mass: B (D/N), J (I/L),
#: O (pyrrolysine), U (selenocysteine), X (unknown), Z (E/Q). Peptides containing them are
#: skipped and counted.
NON_STANDARD_LETTERS = frozenset("BJOUXZ")

_STANDARD = frozenset(STANDARD_RESIDUES)


class SyntheticInputError(InputError):
    """Input of the synthetic stage that cannot produce any spectrum (clear message)."""


@dataclass(frozen=True)
class DigestionSettings:
    """How proteins are cut into peptides.

    Attributes
    ----------
    enzyme : str
        A pyteomics cleavage rule name (``pyteomics.parser.expasy_rules`` or
        ``psims_rules``), e.g. ``"trypsin"``, ``"lysc"``, ``"trypsin_exception"``.
    missed_cleavages : int
        Largest number of missed cleavage sites in one peptide.
    min_length, max_length : int
        Inclusive peptide length range in residues.
    """

    enzyme: str = "trypsin"
    missed_cleavages: int = 2
    min_length: int = 7
    max_length: int = 30

    def __post_init__(self) -> None:
        if self.missed_cleavages < 0:
            raise SyntheticInputError("missed_cleavages must be >= 0")
        if not 1 <= self.min_length <= self.max_length:
            raise SyntheticInputError(
                f"peptide length range [{self.min_length}, {self.max_length}] is empty"
            )
        cleavage_rule(self.enzyme)  # fail early on an unknown enzyme


def cleavage_rule(enzyme: str) -> str:
    """The regular expression of a pyteomics enzyme name.

    Raises
    ------
    SyntheticInputError
        When pyteomics knows no enzyme of that name.
    """
    for table in (parser.expasy_rules, parser.psims_rules):
        if enzyme in table:
            return table[enzyme]
    known = sorted(parser.expasy_rules)
    raise SyntheticInputError(f"unknown enzyme {enzyme!r}; pyteomics knows {known}")


@dataclass
class DigestionResult:
    """Unique peptides of a proteome and what was left out.

    Attributes
    ----------
    peptides : list of str
        Unique peptide sequences (I/L-aware: of ``PEPTIDE`` and ``PEPTLDE`` only the
        first in sorted order is kept), sorted.
    n_proteins : int
    skipped : Counter
        Reason -> number of (non-unique) peptides left out.
    """

    peptides: list[str]
    n_proteins: int
    skipped: Counter = field(default_factory=Counter)


def _open_fasta(path: Path) -> Iterator[tuple[str, str]]:
    for protein in iter_fasta(path):
        yield protein.header, protein.sequence.rstrip("*")


def _digest_file(
    path: Path,
    rule: str,
    settings: DigestionSettings,
    unique: dict[str, str],
    skipped: Counter,
) -> int:
    """Add the peptides of one FASTA to ``unique`` (I/L key -> representative); returns
    the number of proteins read."""
    n_proteins = 0
    for _, sequence in _open_fasta(path):
        n_proteins += 1
        # min_length here drops short fragments early; the upper bound is checked below
        # so that overlong peptides are counted as skipped
        for peptide in parser.cleave(
            sequence.upper(), rule, settings.missed_cleavages, min_length=settings.min_length
        ):
            if len(peptide) > settings.max_length:
                skipped["longer than max_length"] += 1
                continue
            if not _STANDARD.issuperset(peptide):
                bad = NON_STANDARD_LETTERS.intersection(peptide)
                reason = f"non-standard residue {''.join(sorted(bad))}" if bad else "bad letter"
                skipped[reason] += 1
                continue
            key = peptide.replace("I", "L")
            kept = unique.get(key)
            if kept is None or peptide < kept:
                unique[key] = peptide
    if n_proteins == 0:
        raise SyntheticInputError(f"{path}: no protein sequence in FASTA file")
    return n_proteins


def digest_fasta(
    paths: str | Path | Sequence[str | Path],
    settings: DigestionSettings,
    exclude: Sequence[str | Path] = (),
) -> DigestionResult:
    """Digest every protein of one or several FASTA files (plain or gzip) into unique
    peptides.

    Parameters
    ----------
    paths : path or sequence of paths
        The proteomes; their peptides are pooled (a peptide of two proteomes counts once).
    settings : DigestionSettings
    exclude : sequence of paths
        Proteomes whose peptides (I/L-aware) are left out, e.g. the training proteomes
        when building a held-out evaluation set; counted as skipped.

    Returns
    -------
    DigestionResult

    Raises
    ------
    SyntheticInputError
        When a file holds no protein or no peptide passes the filters.
    OSError
        When a file cannot be read.
    """
    paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not paths:
        raise SyntheticInputError("no FASTA file given")
    rule = cleavage_rule(settings.enzyme)
    skipped: Counter = Counter()
    # I/L-normalised sequence -> the representative kept (smallest in sorting order, so
    # the choice does not depend on protein or file order)
    unique: dict[str, str] = {}
    n_proteins = sum(_digest_file(path, rule, settings, unique, skipped) for path in paths)
    if exclude:
        excluded: dict[str, str] = {}
        for path in exclude:
            _digest_file(Path(path), rule, settings, excluded, Counter())
        shared = unique.keys() & excluded.keys()
        for key in shared:
            del unique[key]
        if shared:
            skipped["also in an excluded proteome"] += len(shared)
    names = ", ".join(path.name for path in paths)
    if not unique:
        raise SyntheticInputError(
            f"{names}: no peptide of length {settings.min_length}-{settings.max_length} "
            f"made only of standard residues (skipped: {dict(skipped)})"
        )
    peptides = sorted(unique.values())
    log.info(
        "digested %d proteins of %s into %d unique peptides (%s)",
        n_proteins,
        names,
        len(peptides),
        ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) or "none skipped",
    )
    return DigestionResult(peptides=peptides, n_proteins=n_proteins, skipped=skipped)


def _unit_hashes(texts: Sequence[str], seed: int) -> np.ndarray:
    """A seeded hash of each text, uniform in [0, 1): array of shape (len(texts),)."""
    # keyed once and copied per text: constructing a keyed hasher costs more than hashing
    keyed = hashlib.blake2b(digest_size=8, key=seed.to_bytes(8, "little"))
    digests = bytearray()
    for text in texts:
        hasher = keyed.copy()
        hasher.update(text.encode())
        digests += hasher.digest()
    return np.frombuffer(bytes(digests), dtype="<u8") / 2**64


def split_peptides(
    peptides: Sequence[str], fractions: Mapping[str, float], seed: int
) -> dict[str, list[str]]:
    """Assign each peptide to one split by a seeded hash of its I/L-normalised sequence.

    Parameters
    ----------
    peptides : sequence of str
        Unique peptide sequences.
    fractions : mapping of str to float
        Split name -> expected fraction of peptides (normalised to sum 1).
    seed : int

    Returns
    -------
    dict
        Split name -> its peptides, in input order. No peptide (nor its I/L variant) is
        in two splits.
    """
    if seed < 0:
        raise SyntheticInputError("seed must be >= 0")
    names = list(fractions)
    weights = np.array([fractions[name] for name in names], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise SyntheticInputError(f"split fractions must be >= 0 with a positive sum: {fractions}")
    bounds = np.cumsum(weights / weights.sum())
    positions = _unit_hashes([peptide.replace("I", "L") for peptide in peptides], seed)
    # rounding may leave the last bound a hair under 1: clamp to the last split
    owners = np.minimum(np.searchsorted(bounds, positions, side="right"), len(names) - 1)
    out: dict[str, list[str]] = {name: [] for name in names}
    for peptide, owner in zip(peptides, owners.tolist(), strict=True):
        out[names[owner]].append(peptide)
    return out


@dataclass(frozen=True)
class PeptidoformSampler:
    """Draws modified, charged peptidoforms from unmodified peptides.

    Attributes
    ----------
    fixed_modifications : sequence of str
        ``Name@Residues`` specs applied to every matching site.
    variable_modifications : sequence of str
        ``Name@Residues`` specs; each matching site carries one independently with
        probability ``variable_probability``, at most ``max_variable_mods`` per peptide.
    charges : sequence of int
        Precursor charges to draw from.
    charge_weights : sequence of float or None
        Relative frequency of each charge (uniform when None).
    """

    fixed_modifications: Sequence[str] = ("Carbamidomethyl@C",)
    variable_modifications: Sequence[str] = ("Oxidation@M",)
    variable_probability: float = 0.3
    max_variable_mods: int = 2
    charges: Sequence[int] = (2, 3, 4)
    charge_weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if not self.charges or min(self.charges) < 1:
            raise SyntheticInputError(f"charges must be positive integers: {self.charges}")
        if self.charge_weights is not None:
            weights = np.asarray(self.charge_weights, dtype=np.float64)
            if len(weights) != len(self.charges) or (weights < 0).any() or weights.sum() <= 0:
                raise SyntheticInputError("charge_weights needs one weight >= 0 per charge")
        if not 0 <= self.variable_probability <= 1:
            raise SyntheticInputError("variable_probability must be within [0, 1]")
        if self.max_variable_mods < 0:
            raise SyntheticInputError("max_variable_mods must be >= 0")
        fixed_sites: set[str] = set()
        for spec in self.fixed_modifications:
            _, sites = modification_spec(spec)
            clash = fixed_sites.intersection(sites)
            if clash:
                raise SyntheticInputError(f"two fixed modifications on {sorted(clash)}")
            fixed_sites.update(sites)
        for spec in self.variable_modifications:
            modification_spec(spec)
        fixed = self._site_table(self.fixed_modifications)
        variable = self._site_table(self.variable_modifications)
        # the model can only learn what its vocabulary spells: refuse, rather than
        # silently drop, settings that would make unspellable peptides
        vocabulary = set(DEFAULT_TOKENS)
        for residue in STANDARD_RESIDUES:
            token = fixed.get(residue, residue)
            if token not in vocabulary:
                raise SyntheticInputError(
                    f"{token!r} is not in the model vocabulary; give {residue} a fixed "
                    "modification (e.g. Carbamidomethyl@C)"
                )
        for token in [*variable.values(), *([fixed["N-term"]] if "N-term" in fixed else [])]:
            if token not in vocabulary:
                raise SyntheticInputError(f"{token!r} is not in the model vocabulary")
        # lookup tables built once: sample() runs once per synthetic spectrum
        if self.charge_weights is None:
            charge_p = np.full(len(self.charges), 1 / len(self.charges))
        else:
            weights = np.asarray(self.charge_weights, dtype=np.float64)
            charge_p = weights / weights.sum()
        object.__setattr__(self, "_fixed", fixed)
        object.__setattr__(self, "_variable", variable)
        object.__setattr__(self, "_charge_cdf", np.cumsum(charge_p))

    def _site_table(self, specs: Sequence[str]) -> dict[str, str]:
        table: dict[str, str] = {}
        for spec in specs:
            definition, sites = modification_spec(spec)
            for site in sites:
                token = (
                    f"[{definition.name}]-" if site == "N-term" else f"{site}[{definition.name}]"
                )
                table[site] = token
        return table

    def sample(self, peptide: str, rng: np.random.Generator) -> tuple[list[str], int]:
        """One peptidoform of ``peptide``: vocabulary tokens and precursor charge.

        Draws exactly two kinds of random numbers per call (modification sites, then
        charge) so that the sequence of draws depends only on the peptides.
        """
        fixed: dict[str, str] = self._fixed  # type: ignore[attr-defined]
        variable: dict[str, str] = self._variable  # type: ignore[attr-defined]
        tokens = [fixed.get(residue, residue) for residue in peptide]
        nterm = fixed.get("N-term")
        # variable sites: residues without a fixed modification, plus the N-terminus
        sites = [
            i for i, residue in enumerate(peptide) if residue in variable and residue not in fixed
        ]
        if "N-term" in variable and nterm is None:
            sites.append(-1)
        draws = rng.random(len(sites))
        chosen = [
            site
            for site, draw in zip(sites, draws, strict=True)
            if draw < self.variable_probability
        ]
        for site in chosen[: self.max_variable_mods]:
            if site == -1:
                nterm = variable["N-term"]
            else:
                tokens[site] = variable[peptide[site]]
        if nterm is not None:
            tokens.insert(0, nterm)
        # inverse CDF of one uniform draw: rng.choice(p=...) costs ~10x more per call
        cumulative: np.ndarray = self._charge_cdf  # type: ignore[attr-defined]
        slot = int(np.searchsorted(cumulative, rng.random(), side="right"))
        charge = int(self.charges[min(slot, len(self.charges) - 1)])
        return tokens, charge
