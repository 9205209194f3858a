"""Which peptides a synthetic set holds: length, charge and missed cleavages as identified
real spectra have them.

Digesting a proteome with missed cleavages gives a pool dominated by long peptides with
missed cleavages, and a charge drawn independently of the peptide puts many short
peptides at charge 4; identified spectra show mostly short, fully cleaved, doubly charged
peptides. :class:`PeptideMix` is the joint distribution of (length bin, precursor charge,
missed cleavages) of identified spectra; :func:`plan_spectra` draws a synthetic set's
spectra from it: a (bin, charge, missed cleavages) triple per spectrum, then a peptide of
the pool with that length and number of missed cleavages.

A mix is fitted from labelled spectra (:meth:`PeptideMix.fit`, ``trm peptide-mix``), with
a pseudo-count of 0.1 per cell so that no combination of the pool is impossible, and stored as
YAML with its provenance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trm.errors import InputError

#: Lower bounds of the peptide length bins (residues).
LENGTH_EDGES: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 20, 25)
#: Missed cleavages counted (the last bin holds that many or more).
MISSED_CLEAVAGES: tuple[int, ...] = (0, 1, 2)
MIX_FILE_FORMAT = "trm-peptide-mix"
#: Fewest distinct identified peptides (with charge) a mix is fitted from: fewer say little
#: about a table of 72 cells beyond the pseudo-count (``trm peptide-mix --min-peptides``).
MIN_MIX_PEPTIDES = 50
#: Tryptic cleavage sites inside a peptide: K or R not followed by P.
_TRYPTIC_SITE = re.compile(r"[KR](?=[^P])")


class PeptideMixError(InputError):
    """A peptide mix file that cannot be read or used."""


def missed_cleavages(peptide: str) -> int:
    """Tryptic cleavage sites inside a peptide (not counting its C-terminal residue)."""
    return len(_TRYPTIC_SITE.findall(peptide[:-1] + "_"))


def length_bin(length: int | np.ndarray) -> Any:
    """Index of the length bin of a peptide length (residues); shorter ones go to bin 0."""
    index = np.searchsorted(np.asarray(LENGTH_EDGES), np.asarray(length), side="right") - 1
    return np.maximum(index, 0)


@dataclass(frozen=True)
class PeptideMix:
    """Joint distribution of length bin, precursor charge and missed cleavages.

    Attributes
    ----------
    charges : tuple of int
        Precursor charges, in the order of the table's second axis.
    probability : numpy.ndarray of shape (n_length_bins, n_charges, n_missed_cleavages)
        Over :data:`LENGTH_EDGES`, ``charges`` and :data:`MISSED_CLEAVAGES`; sums to 1.
    counts : numpy.ndarray of the same shape
        Identified spectra behind each cell (before the pseudo-count).
    provenance : str
        Where the spectra came from.
    """

    charges: tuple[int, ...]
    probability: np.ndarray
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    provenance: str = ""

    def __post_init__(self) -> None:
        shape = (len(LENGTH_EDGES), len(self.charges), len(MISSED_CLEAVAGES))
        probability = np.asarray(self.probability, dtype=np.float64)
        if probability.shape != shape or (probability < 0).any() or probability.sum() <= 0:
            raise PeptideMixError(
                f"a peptide mix needs non-negative probabilities of shape {shape}"
            )
        object.__setattr__(self, "probability", probability / probability.sum())

    @classmethod
    def fit(
        cls,
        peptides: Sequence[str],
        charges: Sequence[int],
        allowed_charges: Sequence[int],
        provenance: str,
        pseudo_count: float = 0.1,
    ) -> PeptideMix:
        """The mix of identified spectra.

        Parameters
        ----------
        peptides : sequence of str
            Plain residue sequences (modifications stripped).
        charges : sequence of int
            Their precursor charges; spectra of other charges than ``allowed_charges``
            are left out.
        allowed_charges : sequence of int
            The instrument's charges (the table's charge axis).
        provenance : str
        pseudo_count : float
            Added to every cell.
        """
        allowed = tuple(int(z) for z in allowed_charges)
        counts = np.zeros((len(LENGTH_EDGES), len(allowed), len(MISSED_CLEAVAGES)))
        for peptide, charge in zip(peptides, charges, strict=True):
            if charge not in allowed:
                continue
            missed = min(missed_cleavages(peptide), MISSED_CLEAVAGES[-1])
            counts[length_bin(len(peptide)), allowed.index(charge), missed] += 1
        if counts.sum() == 0:
            raise PeptideMixError(
                f"{provenance}: no identified spectrum of charge {list(allowed)} to fit a "
                "peptide mix from"
            )
        return cls(allowed, counts + pseudo_count, counts, provenance)

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for the YAML file."""
        return {
            "format": MIX_FILE_FORMAT,
            "length_edges": list(LENGTH_EDGES),
            "missed_cleavages": list(MISSED_CLEAVAGES),
            "charges": list(self.charges),
            "probability": np.round(self.probability, 6).tolist(),
            "counts": np.asarray(self.counts).astype(int).tolist(),
            "provenance": self.provenance,
        }

    def write(self, path: str | Path) -> None:
        """Write the YAML file (to ``path`` directly; callers make it atomic)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")

    @classmethod
    def read(cls, path: str | Path) -> PeptideMix:
        """Read a YAML file written by :meth:`write`."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise PeptideMixError(f"{path}: cannot read the peptide mix ({error})") from error
        if not isinstance(data, dict) or data.get("format") != MIX_FILE_FORMAT:
            raise PeptideMixError(f"{path}: not a trm peptide mix file")
        if list(data.get("length_edges", [])) != list(LENGTH_EDGES) or list(
            data.get("missed_cleavages", [])
        ) != list(MISSED_CLEAVAGES):
            raise PeptideMixError(f"{path}: length bins or missed cleavages of another layout")
        return cls(
            tuple(int(z) for z in data["charges"]),
            np.asarray(data["probability"], dtype=np.float64),
            np.asarray(data.get("counts", np.zeros(0))),
            str(data.get("provenance", "")),
        )

    def marginal(self, axis: str) -> np.ndarray:
        """The probability of each length bin, charge or number of missed cleavages."""
        keep = {"length": 0, "charge": 1, "missed": 2}[axis]
        others = tuple(i for i in range(3) if i != keep)
        return self.probability.sum(axis=others)


def plan_spectra(
    pool: Sequence[str], n_spectra: int, mix: PeptideMix, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The peptide and charge of each spectrum of a synthetic split drawn from ``mix``.

    Cells of the mix without any peptide of the pool (no peptide of that length and number
    of missed cleavages) are left out and the others renormalised.

    Parameters
    ----------
    pool : sequence of str
        The split's peptides.
    n_spectra : int
    mix : PeptideMix
    rng : numpy.random.Generator

    Returns
    -------
    order : numpy.ndarray of shape (n_spectra,), int64
        Index into ``pool`` of each spectrum's peptide.
    charge : numpy.ndarray of shape (n_spectra,), int64
    """
    lengths = np.array([len(p) for p in pool])
    groups = (
        length_bin(lengths) * len(MISSED_CLEAVAGES)
        + np.minimum([missed_cleavages(p) for p in pool], MISSED_CLEAVAGES[-1])
    ).astype(np.int64)
    members = np.argsort(groups, kind="stable")
    n_groups = len(LENGTH_EDGES) * len(MISSED_CLEAVAGES)
    starts = np.searchsorted(groups[members], np.arange(n_groups + 1))
    sizes = np.diff(starts)
    # cell (length bin, charge, missed) -> its group (length bin, missed)
    probability = mix.probability * (sizes.reshape(len(LENGTH_EDGES), 1, -1) > 0)
    if probability.sum() == 0:
        raise PeptideMixError("no peptide of the pool has a length the peptide mix allows")
    flat = (probability / probability.sum()).ravel()
    cells = rng.choice(len(flat), size=n_spectra, p=flat)
    bins, charge_index, missed = np.unravel_index(cells, probability.shape)
    group = bins * len(MISSED_CLEAVAGES) + missed
    pick = np.floor(rng.random(n_spectra) * sizes[group]).astype(np.int64)
    order = members[starts[group] + pick]
    return order.astype(np.int64), np.asarray(mix.charges)[charge_index].astype(np.int64)
