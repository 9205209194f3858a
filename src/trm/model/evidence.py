"""Fragment evidence: how well each candidate residue at each answer position is supported
by the peaks, given the rest of the current answer.

For position ``i`` and candidate token ``k`` (mass ``m_k``) the current answer fixes the
mass of the residues before ``i`` (``P_i``, from its argmax) and after ``i`` (``S_i``).
Placing ``k`` at ``i`` then predicts eight fragment m/z values:

* N-anchored: the b ion ending at ``i`` (``P_i + m_k``) and its complementary y ion
  (precursor mass minus that), singly and doubly charged;
* C-anchored: the y ion starting at ``i`` (``S_i + m_k + H2O``) and its complementary b
  ion, singly and doubly charged.

Each predicted m/z is looked up among the peaks (nearest peak on either side, Gaussian
kernel of width ``tolerance``), giving two features per ion: the kernel (a peak is there)
and the kernel times the peak's relative intensity (how strong it is). This is the ion
lookup with which DeepNovo and PointNovo score the next amino acid, evaluated for every
position at once: as the answer improves from one supervision step to the next, the
prefix and suffix masses become right at more positions, and so does their evidence,
which is what lets later refinement steps beat the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trm.chem import WATER_MASS
from trm.fragments import complement, ion_mz
from trm.model.layers import relative_intensity

#: Fragment m/z predicted per (position, candidate): b, y (N-anchored), y, b (C-anchored),
#: each at charge 1 and 2.
N_IONS = 8
#: Features per predicted ion: presence, presence times relative intensity.
FEATURES_PER_ION = 2
N_FEATURES = N_IONS * FEATURES_PER_ION
#: m/z given to padding peaks so that they sort last and never match.
_PAD_MZ = 1.0e7


@dataclass
class PeakIndex:
    """Peaks sorted by m/z, ready for nearest-peak lookups.

    Attributes
    ----------
    mz : torch.Tensor of shape (batch, n_peaks + 2)
        Ascending, between a sentinel of huge negative and one of huge positive m/z;
        padding peaks hold the huge positive m/z.
    intensity : torch.Tensor of shape (batch, n_peaks + 2)
        Square-root intensity relative to the spectrum's most intense peak; 0 for padding
        and sentinels.
    midpoints : torch.Tensor of shape (batch, n_peaks + 1)
        Halfway between neighbouring peaks: the number of midpoints at or below a query is
        the index of its nearest peak.
    tolerance : float
        Standard deviation (Da) of the Gaussian kernel on the m/z difference of a lookup:
        the instrument's fragment tolerance.
    """

    mz: torch.Tensor
    intensity: torch.Tensor
    midpoints: torch.Tensor
    tolerance: float

    @classmethod
    def build(
        cls, mz: torch.Tensor, intensity: torch.Tensor, peak_mask: torch.Tensor, tolerance: float
    ) -> PeakIndex:
        """Index a batch of spectra.

        Parameters
        ----------
        mz, intensity : torch.Tensor of shape (batch, n_peaks)
        peak_mask : torch.Tensor of shape (batch, n_peaks), bool
        tolerance : float
            Fragment tolerance (Da) of the lookups.
        """
        mz = torch.where(peak_mask, mz.float(), torch.full_like(mz, _PAD_MZ, dtype=torch.float))
        relative = relative_intensity(intensity.float(), peak_mask)
        mz, order = torch.sort(mz, dim=1)
        relative = torch.gather(relative, 1, order)
        # A sentinel on each side: every query then has a left and a right neighbour.
        sentinel = mz.new_full((mz.shape[0], 1), _PAD_MZ)
        mz = torch.cat([-sentinel, mz, sentinel], dim=1)
        relative = torch.nn.functional.pad(relative, (1, 1))
        midpoints = (mz[:, :-1] + mz[:, 1:]) / 2
        return cls(mz.contiguous(), relative.contiguous(), midpoints.contiguous(), tolerance)

    def select(self, index: torch.Tensor) -> PeakIndex:
        """The rows ``index`` of the batch."""
        return PeakIndex(
            self.mz[index], self.intensity[index], self.midpoints[index], self.tolerance
        )

    def lookup(self, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest peak of each query m/z (the right one of two equally near).

        Parameters
        ----------
        query : torch.Tensor of shape (batch, n_queries)

        Returns
        -------
        presence, strength : torch.Tensor of shape (batch, n_queries)
            Gaussian kernel of the distance to the nearest peak, and that times the
            peak's relative intensity.
        """
        # Inside the sentinels whatever the precursor says, so both neighbours exist.
        query = query.clamp(-_PAD_MZ / 2, _PAD_MZ / 2).contiguous()
        nearest = torch.searchsorted(self.midpoints, query, right=True)
        delta = (torch.gather(self.mz, 1, nearest) - query) / self.tolerance
        # Beyond 8 tolerances the kernel is below 1e-14 anyway; capping the exponent there
        # keeps exp() off subnormal results, which made it the slowest step of inference.
        presence = torch.exp(-0.5 * delta.square().clamp_max(64.0))
        return presence, presence * torch.gather(self.intensity, 1, nearest)


def flanking_masses(residue_masses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mass of the residues before and after each position of an answer.

    Parameters
    ----------
    residue_masses : torch.Tensor of shape (batch, length)
        Mass of the answer's token at each position (0 after its end).

    Returns
    -------
    prefix, suffix : torch.Tensor of shape (batch, length), float32
    """
    residue_masses = residue_masses.float()
    prefix = torch.cumsum(residue_masses, dim=1) - residue_masses
    suffix = residue_masses.sum(dim=1, keepdim=True) - prefix - residue_masses
    return prefix, suffix


def candidate_fragments(
    prefix: torch.Tensor,
    suffix: torch.Tensor,
    token_masses: torch.Tensor,
    precursor_mass: torch.Tensor,
) -> torch.Tensor:
    """The fragment m/z each candidate token at each position predicts.

    Parameters
    ----------
    prefix, suffix : torch.Tensor of shape (batch, n_positions)
        Mass of the residues before and after each position (:func:`flanking_masses`).
    token_masses : torch.Tensor of shape (n_tokens,)
    precursor_mass : torch.Tensor of shape (batch,)
        Neutral precursor mass (Da).

    Returns
    -------
    torch.Tensor of shape (batch, n_positions, n_tokens, N_IONS)
    """
    mass = token_masses.float()[None, None, :]
    precursor = precursor_mass.float()[:, None, None]
    b_n = prefix.float()[..., None] + mass  # residues through i, N-anchored
    y_c = suffix.float()[..., None] + mass + WATER_MASS  # residues from i, C-anchored
    neutral = torch.stack(
        [b_n, complement(b_n, precursor), y_c, complement(y_c, precursor)], dim=-1
    )
    return torch.cat([ion_mz(neutral, 1), ion_mz(neutral, 2)], dim=-1)


class FragmentEvidence(nn.Module):
    """Features and a logit bonus from the ion lookup of every candidate.

    Parameters
    ----------
    hidden : int
        Width of the context vector given to the recursive core.
    n_tokens : int
        Vocabulary size.
    """

    def __init__(self, hidden: int, n_tokens: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(N_FEATURES, N_FEATURES), nn.ReLU(), nn.Linear(N_FEATURES, 1)
        )
        self.context = nn.Linear(n_tokens * N_FEATURES, hidden)

    @torch.no_grad()
    def features(
        self,
        peaks: PeakIndex,
        prefix: torch.Tensor,
        suffix: torch.Tensor,
        token_masses: torch.Tensor,
        precursor_mass: torch.Tensor,
    ) -> torch.Tensor:
        """Lookup features: tensor of shape (batch, n_positions, n_tokens, N_FEATURES).

        ``prefix`` and ``suffix`` (batch, n_positions) are the masses around each
        position (:func:`flanking_masses`), read against the peaks of the same row."""
        queries = candidate_fragments(prefix, suffix, token_masses, precursor_mass)
        batch = queries.shape[0]
        presence, strength = peaks.lookup(queries.reshape(batch, -1))
        return torch.stack([presence, strength], dim=-1).reshape(*queries.shape[:-1], N_FEATURES)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logit bonus per candidate and context vector per position.

        Parameters
        ----------
        features : torch.Tensor of shape (batch, length, n_tokens, N_FEATURES)

        Returns
        -------
        bonus : torch.Tensor of shape (batch, length, n_tokens)
        context : torch.Tensor of shape (batch, length, hidden)
        """
        bonus = self.score(features).squeeze(-1)
        return bonus, self.context(features.flatten(-2))
