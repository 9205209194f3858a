"""Spectrum-graph de novo sequencing: a classical, non-learned decoder.

A peptide is a path of prefix residue masses from 0 (before the first residue) to the
residue mass ``R`` of the whole peptide. Each prefix mass ``m`` between is a *cleavage
site*, whose b ion weighs ``m`` and whose y ion weighs ``M - m`` (``M = R + H2O``, the
precursor's neutral mass). The decoder finds the best-scoring such paths, vectorised over
a batch of spectra.

**Site score.** ``S(m)`` is a naive-Bayes log-likelihood ratio "``m`` is a cleavage site"
against "the peaks there are random", evaluated at the site's theoretical prefix mass (the
sum of the token masses before it, an N-terminal modification included), over the ion
types :data:`ION_TYPES`: b, y, doubly charged b and y where
:func:`trm.fragments.max_fragment_charge` allows them (primary ions), a, and the water and
ammonia losses of b and y (secondary ions, weighted by ``secondary_weight``). For an ion
type observed with probability ``p`` (:class:`IonProbabilities`, from the instrument's
fitted noise model), the nearest peak within the fragment tolerance ``t`` at m/z error
``d`` contributes

    log(1 - p + p * f(d) * 2t / lambda * r)

and no peak within tolerance contributes ``log(1 - p)``. ``f`` is the density of a true
fragment's m/z error (a Gaussian of the fitted ppm spread, at least ``min_mass_error_sd``
tolerances wide, truncated to the tolerance), ``lambda = 1 - exp(-2t * rho)`` the chance of
a random peak within tolerance from the spectrum's peak density ``rho`` around the peak,
and ``r`` the intensity-rank likelihood ratio (:data:`MEASURED_RANK_LOG_RATIO`). So a
peak's gain shrinks with its mass error and grows where the spectrum is sparse. b1 ions
and secondary ions in the immonium range are not scored (``score_b1``,
``min_secondary_mz``).

**Path score.** The sum of the site scores of a peptide, plus the log prior of the
precursor isotope error its mass fits at, of an N-terminal modification and of its residues
(each residue's background frequency in proteins, ``residue_prior_weight``). In the search,
a site whose prefix mass and an earlier site's add up to the precursor mass (the b ion of
one is the y ion of the other: one peak) scores its primary ions as absent
(``mirror_rule``).

**Graph.** Nodes are the prefix masses that a primary ion of the most intense peaks
(``node_peaks_per_ion``) supports: each peak gives, for each primary ion, a window of prefix masses
within the fragment tolerance (twice it for 2+ ions); overlapping windows merge into one
node (wide unions are cut into pieces of at most ``max_node_width_da``; which masses are
in a node does not change). Edges join nodes by runs of one to ``max_edge_residues``
residues (default two, so one cleavage without a primary peak does not break a path),
N-terminal modifications only on the first edge, combined with its residues. An edge that
skips a site is taken only when the skipped site is in no node (else the path through that
node is the same peptide); it scores the skipped site with ``S`` at its exact mass, so
both orders of the residues are candidates and the evidence found there decides. Every
peptide therefore has at most one path; it is *representable* when no more than
``max_edge_residues - 1`` consecutive cleavage sites lie outside the nodes. Edges from the
start may be longer (``max_start_residues``, default three): in HCD spectra the first
two cleavages sometimes both lack primary ions (b1 is hardly ever seen, b2 and the two
largest y ions often not), so up to ``max_start_residues - 1`` sites may lie outside the
nodes before the first node of an unmodified peptide. The search carries the orders of
one residue multiset into one node as one partial path, the order whose skipped sites
score best (from the start that score depends on the edge alone); the other orders join
the complete paths at the end, unless a site they put first lies in a node, and the
``n_rerank`` best by path score are kept, so the search stays exact. Spectra without a
path are searched again with edges of up to ``fallback_edge_residues``.

**Search.** A K-best dynamic programme over nodes in mass order. Its states are (node,
theoretical prefix mass, residues so far up to the a-ion buckets): partial paths in one
state have the same future, so keeping the ``n_paths`` best of each state makes the search
exact for the path score without the mirror rule (the tests check it against brute
force); ``node_beam`` (the best partial paths kept per node) and the mirror rule make it a
heuristic. No edge is shorter than glycine, so nodes within a window narrower than that
have no edges among themselves: they form one layer, processed at once for all spectra of
the batch. A path's theoretical peptide mass (token masses + H2O) must fit the precursor
within the ppm tolerance at one of the isotope errors (as
:func:`trm.chem.mass_fits_precursor`); each isotope error is a graph of its own (its y ions
sit elsewhere).

**Each peak once.** A path may still let one peak explain two sites (the b ion of one and
the y - H2O ion of another). The final ``score`` counts every peak at most once per path:
where several (site, ion) pairs match one peak, the one gaining most keeps it and the
others score as absent. The ``n_rerank`` best complete paths by path score are re-ranked by
the final score and the best ``n_candidates`` returned. :meth:`GraphDecoder.score_peptides`
gives any peptide (a model's candidates) the same scores.

Tokens of identical mass collapse to one canonical token (:func:`canonical_tokens`): the
unmodified residue over a modified one of the same mass (D for N[Deamidated], E for
Q[Deamidated]), L for I.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from trm.chem import C13_SPACING, PROTON_MASS, RESIDUE_FREQUENCY, WATER_MASS, Vocabulary
from trm.fragments import (
    A_ION_LOSS,
    NEUTRAL_LOSSES,
    immonium_mz,
    ion_mz,
    max_fragment_charge,
    nearest_peaks,
)
from trm.instrument import DEFAULT_FRAGMENT_TOLERANCE_DA, DEFAULT_PRECURSOR_TOLERANCE_PPM
from trm.noise_model import (
    A_ION_NUMBER_EDGES,
    DOUBLE_CHARGE_MASS_EDGES,
    POSITION_EDGES,
    NoiseModelParameters,
    bucket,
)

log = logging.getLogger(__name__)

#: Spectra (and graphs) are laid out in one flat, sorted array each, spectrum ``s`` shifted
#: by ``s * KEY_OFFSET``; masses and m/z must stay below half of it.
KEY_OFFSET = 32768.0
#: Margin (Da) of the key searches for partial paths, far above the keys' rounding; an exact
#: mass check follows.
KEY_SLACK = 1e-4
#: Average residue mass (Da) of proteins, for the number of residues of a precursor mass.
AVERAGE_RESIDUE_MASS = 110.0
#: Lightest edge between two nodes: glycine. Nodes of one layer lie within less than it.
_GLYCINE = 57.021463735
#: Bin width (Da) of the table of node-start differences no edge can bridge.
_PAIR_BIN = 0.01

#: Ion types of a cleavage site, in the order of every per-ion array.
ION_TYPES: tuple[str, ...] = ("b", "y", "b2+", "y2+", "a", "b-H2O", "b-NH3", "y-H2O", "y-NH3")
#: Which ion types are primary (make nodes).
PRIMARY_IONS = np.array([True, True, True, True, False, False, False, False, False])
_ION_CHARGE = np.array([1, 1, 2, 2, 1, 1, 1, 1, 1], dtype=np.float64)

#: Lower bounds of the intensity-rank buckets of :attr:`IonProbabilities.rank_log_ratio`.
RANK_EDGES: tuple[int, ...] = (1, 2, 3, 5, 9, 17, 33, 65, 129)
#: ln(P(rank bucket | primary ion) / P(rank bucket | other peak)), measured on the dev fit
#: half (Orbitrap HCD) by ``benchmarks/graph_decoder.py --measure-ranks``: peaks prepared as
#: the decoder prepares them, a peak counted as a primary ion when it lies within 0.02 Da of
#: a b, y (or, precursor charge >= 3, b2+/y2+) ion of the labelled peptide.
MEASURED_RANK_LOG_RATIO: tuple[float, ...] = (
    1.85, 2.05, 1.873, 1.739, 1.288, 0.589, -0.529, -1.553, -2.207
)  # fmt: skip
#: The same for secondary ions (a ions and losses above the immonium range, on peaks no
#: primary ion explains): nearly flat, secondary ions are as weak as unexplained peaks.
MEASURED_SECONDARY_RANK_LOG_RATIO: tuple[float, ...] = (
    -0.107, 0.003, -0.673, 0.361, 0.345, 0.455, 0.157, -0.315, -0.68
)  # fmt: skip

#: With a node beam, partial paths beyond this many times the beam in their target node's
#: list (by parent score) are dropped before their new sites are scored.
PREFILTER_FACTOR = 4

#: Why a spectrum got no candidate.
REASON_FEW_PEAKS = "fewer than 3 usable peaks"
REASON_CHARGE = "precursor charge outside the supported range"
REASON_PRECURSOR = "precursor mass missing or outside the peptide mass range"
REASON_NO_PATH = "no path through the spectrum graph fits the precursor"


@dataclass(frozen=True)
class GraphSettings:
    """Settings of :class:`GraphDecoder`; the defaults suit Orbitrap HCD.

    Attributes
    ----------
    fragment_tolerance_da : float
        Largest |peak - ion| m/z difference of a match (Da).
    precursor_tolerance_ppm : float
        Largest accepted peptide-precursor mass difference (ppm).
    isotope_errors : tuple of int
        Lowest and highest precursor isotope error (13C spacings) searched.
    n_candidates : int
        Candidates returned per spectrum, best final score first.
    n_paths : int
        Partial paths kept per search state (node, theoretical mass, residues up to the
        a-ion buckets).
    n_rerank : int
        Complete paths (best path score first) re-ranked by the final (peaks-once) score;
        at least ``n_candidates``.
    node_beam : int
        Most partial paths kept per node, best path score first; 0 keeps all (exact).
    max_peaks : int
        Most intense peaks kept per spectrum for scoring.
    node_peaks_per_ion : float
        Peaks that make nodes (the most intense), per primary ion the peptide can have:
        (precursor mass / :data:`AVERAGE_RESIDUE_MASS` - 1) sites times 2 ion types (b,
        y), or 4 where doubly charged fragments count; at least ``min_node_peaks``, at
        most ``max_node_peaks``. 0: always ``max_node_peaks``.
    min_node_peaks, max_node_peaks : int
        Fewest and most node peaks; ``max_node_peaks`` 0 means ``max_peaks``.
    node_window_peaks : int
        Also make nodes of the ``node_window_peaks`` most intense peaks of each m/z window
        of ``node_window_da`` (0, the default: none; the instrument file's
        ``graph_window_peaks``). The intense peaks of a dense spectrum crowd some m/z
        ranges, so a ladder's weak b or y ions elsewhere rank below the global cut and the
        true peptide has no path; the most intense few of each window let them in.
        Measured (``benchmarks/results/graph_decoder.md``, "Node peaks per m/z window"):
        3 (the shipped Orbitrap HCD instrument file's) made the true peptide a candidate
        for more of the real and noisy spectra and gained on the dense yeast spectra, at 4
        to 8% of de novo's speed there, paid for by the hybrid recursion's 2 refinement
        steps; ion traps keep their 40 most intense peaks (:meth:`for_tolerance`) unless
        their instrument file asks for more.
    node_window_da : float
        Width of those windows (m/z, from 0).
    deisotope : bool
        Remove peaks that sit one 13C spacing (charge 1 or 2) above a more intense peak
        (high-resolution spectra only).
    remove_precursor_peaks : bool
        Remove peaks of the precursor (any charge up to its own, intact or after water or
        ammonia loss, and two 13C peaks above).
    max_node_width_da : float
        Widest node; wider merged windows are cut into equal pieces. At most 10.
    density_window_da : float
        Width of the m/z window around a peak in which the peak density (for the chance
        of a random match) is counted.
    min_mass_error_sd : float
        Smallest standard deviation of a fragment's m/z error, as a fraction of the
        fragment tolerance (the fitted ppm spread is used when larger).
    nterm_modification_log_prior : float
        Added to the score of a path with an N-terminal modification token. Hand-set
        (about 1 in 100 peptides; the noise model has no such number): without it a
        modification plus a residue that weighs exactly one other residue (Carbamyl + A
        = N) ties with it.
    residue_prior_weight : float
        Weight of the residues' log prior (:func:`residue_log_prior`: each residue's
        background frequency in proteins) in the path score; 0 leaves it out. Site scores
        weigh evidence only: a cleavage between two residues that weigh what one does
        (G+G = N, A+G = Q) costs little where a stray peak sits there, and the prior says
        how much rarer the pair is than the one residue.
    secondary_weight : float
        Weight of the secondary ions (a ions, losses) against the primary ones.
    score_b1 : bool
        Score b1 ions (and their losses). Off: b1 ions are rarely seen (the fit's first
        position bucket pools them with b2 and beyond), and they coincide with other
        residues' immonium ions (b1 of T is the immonium ion of E), so they reward the
        wrong first residue.
    min_secondary_mz : float or None
        Secondary ions below this m/z are not scored: that is where immonium ions and
        their relatives lie, which a residue anywhere in the peptide produces (an a1 ion
        *is* the first residue's immonium ion; y1 - NH3 of V weighs what an arginine ion
        does). None: the vocabulary's heaviest immonium ion plus the tolerance.
    use_rank : bool
        Apply the intensity-rank likelihood ratios.
    mirror_rule : bool
        In the search, score a site's primary ions as absent when an earlier site of the
        path mirrors it (the two prefix masses add up to the precursor mass: the b ion of
        one is the y ion of the other, one peak). Stops paths that read the y ladder as
        a second b ladder; makes the search a heuristic rather than exact.
    max_edge_residues : int
        Most residues of an edge (1 to 3): 2 lets one cleavage without primary ions lie
        between two nodes.
    max_start_residues : int
        Most residues of an edge from the start (1 to 3; the larger of it and
        ``max_edge_residues`` counts): 3 lets the first two cleavages lack primary ions
        (b1 is hardly ever seen, b2 and the two largest y ions often not), as in 2 of the
        128 real mouse and 2 of the 65 yeast dev spectra, 23 of 500 noisy synthetic ones
        and one ProteomeTools peptide's every spectrum. Edges from the start are few (one
        source per graph): 9 to 23% more graph CPU on dense spectra, where 3-residue edges
        everywhere cost 6 to 17 times as much.
    fallback_edge_residues : int
        Spectra without any fitting path are searched again with edges of up to this
        many residues and half of ``n_paths`` and ``node_beam`` (0 or at most
        ``max_edge_residues``: no second search).
    min_residues, max_residues : int
        Shortest and longest peptide (residues, N-terminal modification not counted).
    min_charge, max_charge : int
        Supported precursor charges.
    max_precursor_mass : float
        Heaviest precursor neutral mass accepted (Da).
    batch_size : int
        Spectra decoded together.
    """

    fragment_tolerance_da: float = DEFAULT_FRAGMENT_TOLERANCE_DA
    precursor_tolerance_ppm: float = DEFAULT_PRECURSOR_TOLERANCE_PPM
    isotope_errors: tuple[int, int] = (0, 1)
    n_candidates: int = 16
    n_paths: int = 16
    n_rerank: int = 64
    node_beam: int = 32
    max_peaks: int = 150
    node_peaks_per_ion: float = 2.5
    node_window_peaks: int = 0
    node_window_da: float = 100.0
    min_node_peaks: int = 20
    max_node_peaks: int = 0
    deisotope: bool = True
    remove_precursor_peaks: bool = True
    max_node_width_da: float = 0.1
    density_window_da: float = 100.0
    min_mass_error_sd: float = 0.25
    nterm_modification_log_prior: float = -4.6
    residue_prior_weight: float = 1.0
    secondary_weight: float = 0.1
    score_b1: bool = False
    min_secondary_mz: float | None = None
    use_rank: bool = True
    mirror_rule: bool = True
    max_edge_residues: int = 2
    max_start_residues: int = 3
    fallback_edge_residues: int = 3
    min_residues: int = 4
    max_residues: int = 40
    min_charge: int = 1
    max_charge: int = 6
    max_precursor_mass: float = 8000.0
    batch_size: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.fragment_tolerance_da < 5:
            raise ValueError("fragment_tolerance_da must be in (0, 5)")
        if self.precursor_tolerance_ppm <= 0:
            raise ValueError("precursor_tolerance_ppm must be positive")
        if self.isotope_errors[0] > self.isotope_errors[1]:
            raise ValueError("isotope_errors must be (lowest, highest)")
        if self.n_candidates < 1 or self.n_paths < 1 or self.n_rerank < self.n_candidates:
            raise ValueError("need n_paths >= 1 and 1 <= n_candidates <= n_rerank")
        if self.node_beam < 0 or self.max_peaks < 3 or self.max_node_peaks < 0:
            raise ValueError("node_beam, max_node_peaks must be >= 0 and max_peaks >= 3")
        if self.node_peaks_per_ion < 0 or self.min_node_peaks < 1:
            raise ValueError("node_peaks_per_ion must be >= 0 and min_node_peaks >= 1")
        if self.node_window_peaks < 0 or self.node_window_da <= 0:
            raise ValueError("node_window_peaks must be >= 0 and node_window_da positive")
        if not 1 <= self.max_edge_residues <= 3 or not 0 <= self.fallback_edge_residues <= 3:
            raise ValueError("max_edge_residues must be in 1..3, fallback_edge_residues in 0..3")
        if not 1 <= self.max_start_residues <= 3:
            raise ValueError("max_start_residues must be in 1..3")
        if not 0 < self.max_node_width_da <= 10:
            raise ValueError("max_node_width_da must be in (0, 10]")
        if not 1 <= self.min_residues <= 15 or self.max_residues < self.min_residues:
            raise ValueError("need 1 <= min_residues <= 15 and min_residues <= max_residues")
        if self.min_charge < 1 or self.max_charge < self.min_charge:
            raise ValueError("need 1 <= min_charge <= max_charge")
        if not 0 < self.max_precursor_mass <= 8500:
            raise ValueError("max_precursor_mass must be in (0, 8500]")
        if not 1 <= self.batch_size <= 1024:
            raise ValueError("batch_size must be in [1, 1024]")
        if not 0 <= self.residue_prior_weight <= 10:
            raise ValueError("residue_prior_weight must be in [0, 10]")
        if self.batch_size < 1 or self.density_window_da <= 0 or self.min_mass_error_sd <= 0:
            raise ValueError("batch_size, density_window_da, min_mass_error_sd must be positive")

    @classmethod
    def for_tolerance(cls, fragment_tolerance_da: float, **changes: object) -> GraphSettings:
        """Settings for a fragment tolerance: at 0.1 Da or more (ion traps) no
        de-isotoping (isotope spacings are within the tolerance), nodes up to four
        tolerances wide and from the 40 most intense peaks only (a coarse window makes
        many more nodes per peak; 40 peaks did better than 1 or 1.5 per primary ion on
        the dev fit half decoded at 0.5 Da);
        ``changes`` override."""
        values: dict[str, object] = {"fragment_tolerance_da": fragment_tolerance_da}
        if fragment_tolerance_da >= 0.1:
            values.update(
                deisotope=False,
                max_node_width_da=min(4 * fragment_tolerance_da, 10),
                node_peaks_per_ion=0.0,
                max_node_peaks=40,
            )
        else:
            values.update(max_node_width_da=max(5 * fragment_tolerance_da, 0.05))
        values.update(changes)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_instrument(cls, instrument: object, **changes: object) -> GraphSettings:
        """Settings from an instrument file's settings (:func:`trm.instrument.load_instrument`):
        its fragment and precursor tolerances, isotope errors and edge length
        (``graph_edge_residues``; the fallback search, with longer edges, only where it
        allows longer ones) and window node peaks (``graph_window_peaks``); ``changes``
        override."""
        edges = int(instrument.graph_edge_residues)  # type: ignore[attr-defined]
        values = {
            "precursor_tolerance_ppm": float(instrument.precursor_tolerance_ppm),  # type: ignore[attr-defined]
            "isotope_errors": tuple(instrument.isotope_errors),  # type: ignore[attr-defined]
            "max_edge_residues": edges,
            "fallback_edge_residues": max(cls.fallback_edge_residues, edges),
            "node_window_peaks": int(instrument.graph_window_peaks),  # type: ignore[attr-defined]
            **changes,
        }
        return cls.for_tolerance(float(instrument.fragment_tolerance_da), **values)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class IonProbabilities:
    """How likely each ion type of a true cleavage site is observed.

    Build it from an instrument's fitted noise model (:meth:`from_noise_model`); the
    :meth:`hand_set` defaults are for instruments without one.

    Attributes
    ----------
    b, y : tuple of float
        Probability of the singly charged b (y) ion, per position bucket
        (:data:`trm.noise_model.POSITION_EDGES`; the position of a site is taken as its
        share of the residue mass, from the N-terminus for b, from the C-terminus for y).
    double : tuple of float
        Probability of a doubly charged b or y ion, per neutral mass bucket
        (:data:`trm.noise_model.DOUBLE_CHARGE_MASS_EDGES`), where the precursor charge
        allows them.
    a : tuple of float
        Probability of the a ion, per b ion number bucket
        (:data:`trm.noise_model.A_ION_NUMBER_EDGES`).
    water_loss, ammonia_loss : tuple of float
        (b, y): probability that an observed b (y) ion shows the loss; the loss ion's
        probability is this times its parent's.
    isotope : tuple of float
        Probability that the precursor was picked at isotope error 0, 1, 2, ...
    mass_error_sd_ppm : float
        Standard deviation of a fragment's m/z error (ppm).
    rank_log_ratio, secondary_rank_log_ratio : tuple of float
        Log likelihood ratio of a primary (secondary) ion's intensity rank bucket
        (:data:`RANK_EDGES`) against a peak no ion explains.
    source : str
        Where the numbers come from.
    """

    b: tuple[float, ...]
    y: tuple[float, ...]
    double: tuple[float, ...]
    a: tuple[float, ...]
    water_loss: tuple[float, float]
    ammonia_loss: tuple[float, float]
    isotope: tuple[float, ...]
    mass_error_sd_ppm: float
    rank_log_ratio: tuple[float, ...] = MEASURED_RANK_LOG_RATIO
    secondary_rank_log_ratio: tuple[float, ...] = MEASURED_SECONDARY_RANK_LOG_RATIO
    source: str = ""

    def __post_init__(self) -> None:
        lengths = {
            "b": len(POSITION_EDGES),
            "y": len(POSITION_EDGES),
            "double": len(DOUBLE_CHARGE_MASS_EDGES),
            "a": len(A_ION_NUMBER_EDGES),
            "water_loss": 2,
            "ammonia_loss": 2,
            "rank_log_ratio": len(RANK_EDGES),
            "secondary_rank_log_ratio": len(RANK_EDGES),
        }
        for name, length in lengths.items():
            if len(getattr(self, name)) != length:
                raise ValueError(f"IonProbabilities.{name} needs {length} values")

    @classmethod
    def from_noise_model(
        cls,
        parameters: NoiseModelParameters,
        rank_log_ratio: tuple[float, ...] = MEASURED_RANK_LOG_RATIO,
        secondary_rank_log_ratio: tuple[float, ...] = MEASURED_SECONDARY_RANK_LOG_RATIO,
    ) -> IonProbabilities:
        """The probabilities an instrument's fitted noise model estimates.

        b and y probabilities are the fit's per rank bucket, averaged over the rank
        buckets with the fit's counts (the pooled probability where a position has none).
        """
        observed = np.asarray(parameters.fragment_observed, dtype=np.float64)
        counts = np.asarray(parameters.fragment_observed_n, dtype=np.float64)
        totals = counts.sum(axis=1)
        weighted = (observed * counts).sum(axis=1) / np.maximum(totals, 1)
        pooled = (observed * counts).sum() / max(counts.sum(), 1)
        by_series = np.where(totals > 0, weighted, pooled)
        losses = np.asarray(parameters.loss_observed, dtype=np.float64)
        spread = parameters.ppm_spread["sd"]
        offset = parameters.ppm_offset
        return cls(
            b=tuple(by_series[0].tolist()),
            y=tuple(by_series[1].tolist()),
            double=tuple(float(v) for v in parameters.double_charge_observed),
            a=tuple(float(v) for v in parameters.a_ion_observed),
            water_loss=(float(losses[0, 0]), float(losses[0, 1])),
            ammonia_loss=(float(losses[1, 0]), float(losses[1, 1])),
            isotope=tuple(float(v) for v in parameters.precursor_error["isotope_probability"]),
            mass_error_sd_ppm=float(math.sqrt(spread**2 + offset["sd"] ** 2 + offset["mean"] ** 2)),
            rank_log_ratio=tuple(rank_log_ratio),
            secondary_rank_log_ratio=tuple(secondary_rank_log_ratio),
            source=f"fitted noise model ({parameters.provenance.get('instrument', '?')})",
        )

    def to_dict(self) -> dict[str, object]:
        """Plain types, for the model file."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> IonProbabilities:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @classmethod
    def hand_set(cls) -> IonProbabilities:
        """Hand-set defaults for an instrument without a fitted noise model: b 0.45,
        y 0.7, doubly charged 0.2, a 0.2, each loss 0.2 of its parent, precursor isotope
        error 0 / 1 / 2 at 0.9 / 0.08 / 0.02, m/z error 10 ppm, no rank term. Guesses
        in the range HCD and CID spectra show, not measurements: fit a noise model
        (``trm fit-noise``) where labelled spectra exist."""
        return cls(
            b=(0.45,) * len(POSITION_EDGES),
            y=(0.7,) * len(POSITION_EDGES),
            double=(0.2,) * len(DOUBLE_CHARGE_MASS_EDGES),
            a=(0.2,) * len(A_ION_NUMBER_EDGES),
            water_loss=(0.2, 0.2),
            ammonia_loss=(0.2, 0.2),
            isotope=(0.9, 0.08, 0.02),
            mass_error_sd_ppm=10.0,
            rank_log_ratio=(0.0,) * len(RANK_EDGES),
            secondary_rank_log_ratio=(0.0,) * len(RANK_EDGES),
            source="hand-set defaults",
        )


@dataclass
class GraphCandidate:
    """One peptide for one spectrum.

    Attributes
    ----------
    token_ids : numpy.ndarray of shape (n_tokens,)
        Vocabulary ids, N-terminal modification first when present.
    score : float
        Final score: the path score with every peak counted at most once.
    path_score : float
        The search's objective: sum of the site scores, each with all its evidence.
    site_scores : numpy.ndarray of shape (n_residues - 1,)
        Final score of each cleavage site, N- to C-terminal (the isotope prior is not in
        them: ``score = site_scores.sum() + log P(isotope error)``).
    mass_error_ppm : float
        (isotope-corrected precursor mass - peptide mass) / corrected mass, in ppm.
    isotope_error : int
    """

    token_ids: np.ndarray
    score: float
    path_score: float
    site_scores: np.ndarray
    mass_error_ppm: float
    isotope_error: int


@dataclass
class GraphResult:
    """The candidates of each spectrum.

    Attributes
    ----------
    candidates : list of list of GraphCandidate
        Per spectrum, best final score first; empty where there is none.
    reasons : list of str or None
        Why a spectrum has no candidate (the ``REASON_*`` texts); None for the others.
    """

    candidates: list[list[GraphCandidate]]
    reasons: list[str | None]

    @property
    def best(self) -> list[GraphCandidate | None]:
        """The best candidate of each spectrum (None without one)."""
        return [c[0] if c else None for c in self.candidates]


@dataclass
class PeptideScores:
    """Graph scores of given peptides (:meth:`GraphDecoder.score_peptides`).

    Every array has shape (n_spectra, n_peptides) unless stated; NaN (or False) where the
    spectrum has a reason or the row holds no peptide.

    Attributes
    ----------
    score, path_score : numpy.ndarray
        As :class:`GraphCandidate` (isotope prior included).
    site_scores : numpy.ndarray of shape (n_spectra, n_peptides, length - 1)
        Final score of each cleavage site, NaN beyond the peptide's last site.
    mass_error_ppm : numpy.ndarray
        At the isotope error (of the allowed ones) that fits best.
    isotope_error : numpy.ndarray, int
    fits : numpy.ndarray, bool
        The peptide fits the precursor within the tolerance.
    representable : numpy.ndarray, bool
        The search could return it: it fits, its length is allowed, its N-terminal
        modification (if any) comes first, and no more than ``max_edge_residues - 1``
        consecutive cleavage sites lie outside the graph's nodes (from the first site of
        an unmodified peptide: ``max(max_start_residues, max_edge_residues) - 1``).
    reasons : list of str or None
        Per spectrum, as :attr:`GraphResult.reasons` (None: scored).
    """

    score: np.ndarray
    path_score: np.ndarray
    site_scores: np.ndarray
    mass_error_ppm: np.ndarray
    isotope_error: np.ndarray
    fits: np.ndarray
    representable: np.ndarray
    reasons: list[str | None] = field(default_factory=list)


def canonical_tokens(vocabulary: Vocabulary) -> np.ndarray:
    """Canonical token of each vocabulary id: residue tokens of identical mass collapse to
    one, the unmodified residue first, then L, then vocabulary order (I -> L,
    N[Deamidated] -> D, Q[Deamidated] -> E). N-terminal tokens and the end class map to
    themselves.

    Returns
    -------
    numpy.ndarray of shape (len(vocabulary),), int64
    """
    mapping = np.arange(len(vocabulary), dtype=np.int64)
    groups: dict[int, list[int]] = {}
    for index in range(1, len(vocabulary)):
        if not vocabulary.is_nterm[index]:
            groups.setdefault(round(float(vocabulary.masses[index]) * 1e6), []).append(index)
    for members in groups.values():
        best = min(
            members, key=lambda i: ("[" in vocabulary.tokens[i], vocabulary.tokens[i] != "L", i)
        )
        mapping[members] = best
    return mapping


def residue_log_prior(vocabulary: Vocabulary) -> np.ndarray:
    """Log prior of each vocabulary id as a residue of a peptide: the log background
    frequency (:data:`trm.chem.RESIDUE_FREQUENCY`) of the standard residues its canonical
    token stands for (:func:`canonical_tokens`: L for L and I together), or of its base
    residue where no standard residue has its mass (C[Carbamidomethyl], M[Oxidation]); 0
    for the end class and N-terminal tokens (their prior is
    ``nterm_modification_log_prior``).

    Returns
    -------
    numpy.ndarray of shape (len(vocabulary),), float64
    """
    canonical = canonical_tokens(vocabulary)
    out = np.zeros(len(vocabulary))
    fallback = 1.0 / len(RESIDUE_FREQUENCY)
    for index in range(1, len(vocabulary)):
        if vocabulary.is_nterm[index]:
            continue
        members = np.flatnonzero((canonical == canonical[index]) & ~vocabulary.is_nterm)
        letters = {vocabulary.tokens[m] for m in members} & set(RESIDUE_FREQUENCY)
        if not letters:
            letters = {vocabulary.tokens[index][0]}
        out[index] = math.log(sum(RESIDUE_FREQUENCY.get(a, fallback) for a in letters))
    return out


# --- internal data ---------------------------------------------------------------------


@dataclass
class _Peaks:
    """Prepared peaks of a batch, flat and sorted by (spectrum, m/z)."""

    key: np.ndarray  # spectrum * KEY_OFFSET + mz
    mz: np.ndarray
    spectrum: np.ndarray
    rank: np.ndarray  # 1 = most intense of its spectrum
    window_rank: np.ndarray | None  # 1 = most intense of its node_window_da window (None: unused)
    rank_bucket: np.ndarray  # bucket of the rank (RANK_EDGES)
    random_match: np.ndarray  # lambda: chance of a random peak within tolerance there
    start: np.ndarray  # (n_spectra,) first peak of each spectrum
    count: np.ndarray  # (n_spectra,)


@dataclass
class _Graphs:
    """One graph per (spectrum, isotope error)."""

    spectrum: np.ndarray
    isotope: np.ndarray
    precursor: np.ndarray  # isotope-corrected neutral precursor mass
    charge: np.ndarray
    prior: np.ndarray  # log P(isotope error)


@dataclass
class _Nodes:
    """Node windows of prefix masses, sorted by (graph, lo)."""

    graph: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    key: np.ndarray  # graph * KEY_OFFSET + lo
    window: np.ndarray  # the merged window a node is a piece of

    def contains(self, graph: np.ndarray, mass: np.ndarray) -> np.ndarray:
        """Whether each mass lies in a node of its graph."""
        return self.containing(graph, mass) >= 0

    def containing(self, graph: np.ndarray, mass: np.ndarray) -> np.ndarray:
        """The node each mass lies in, -1 for none."""
        if len(self.key) == 0 or len(mass) == 0:
            return np.full(len(mass), -1, dtype=np.int64)
        return self.inside_at(graph, mass, self.below(graph, mass))

    def below(self, graph: np.ndarray, mass: np.ndarray) -> np.ndarray:
        """The last node starting at or below each mass (flat order), -1 for none."""
        return np.searchsorted(self.key, graph * KEY_OFFSET + mass, side="right") - 1

    def inside_at(self, graph: np.ndarray, mass: np.ndarray, index: np.ndarray) -> np.ndarray:
        """:meth:`containing`, given :meth:`below`."""
        safe = np.maximum(index, 0)
        inside = (index >= 0) & (self.graph[safe] == graph) & (mass <= self.hi[safe])
        return np.where(inside, index, -1)


@dataclass
class _Edges:
    """Edge kinds sorted by mass: tokens (N-terminal modification, then up to three
    residues; 0 for none), total mass, and the prefix masses (from the edge's start) of
    the one or two sites it skips (NaN for none)."""

    mass: np.ndarray
    skipped: np.ndarray  # (n_edges, 2)
    n_residues: np.ndarray
    tokens: np.ndarray  # (n_edges, 4)
    prior: np.ndarray  # log prior of the edge's N-terminal modification, 0 without
    # the residues' multiset (sorted ids) of an unmodified three-residue start edge where
    # plain edges are shorter: the search carries its orders as one and the candidates
    # expand them; -1 for every other edge
    composition: np.ndarray


@dataclass
class _Batch:
    """A batch's spectra checked and turned into peaks, graphs and nodes."""

    reasons: list[str | None]  # why each spectrum cannot be read, None where it can
    usable: np.ndarray  # (n_spectra,) bool
    precursor_mass: np.ndarray  # 0 where not usable
    spectra: np.ndarray  # the usable rows
    peaks: _Peaks
    graphs: _Graphs | None  # None when no spectrum is usable
    nodes: _Nodes | None


class _Store:
    """Growable columns of partial paths."""

    def __init__(self) -> None:
        self.size = 0
        self.columns: dict[str, np.ndarray] = {}

    def append(self, **columns: np.ndarray) -> None:
        n = len(next(iter(columns.values())))
        if not self.columns:
            self.columns = {
                k: np.zeros((max(1024, 2 * n), *v.shape[1:]), dtype=v.dtype)
                for k, v in columns.items()
            }
        capacity = len(self.columns["mass"])
        if self.size + n > capacity:
            grown = max(2 * capacity, self.size + n)
            for name, array in self.columns.items():
                bigger = np.zeros((grown, *array.shape[1:]), dtype=array.dtype)
                bigger[: self.size] = array[: self.size]
                self.columns[name] = bigger
        for name, values in columns.items():
            self.columns[name][self.size : self.size + n] = values
        self.size += n

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name][: self.size]


def _expand(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[starts[i], starts[i] + counts[i])``: the owner ``i`` and the value
    of every element, as flat arrays."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    if len(owner) == 0:
        return owner, owner.copy()
    offsets = np.cumsum(counts) - counts
    return owner, np.asarray(starts, dtype=np.int64)[owner] + np.arange(len(owner)) - offsets[owner]


def _group_rank(
    sort_keys: tuple[np.ndarray, ...], group_keys: tuple[np.ndarray, ...]
) -> np.ndarray:
    """0-based rank of each element within its group (equal ``group_keys``), ascending by
    ``sort_keys`` (the first most significant; ties keep the input order)."""
    n = len(sort_keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = None
    if len(sort_keys) == 1 and len(group_keys) == 1:
        order = _grouped_order(sort_keys[0], group_keys[0])
    if order is None:
        order = np.lexsort((*sort_keys[::-1], *group_keys[::-1]))
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for key in group_keys:
        sorted_key = key[order]
        new[1:] |= sorted_key[1:] != sorted_key[:-1]
    starts = np.flatnonzero(new)
    group_start = starts[np.cumsum(new) - 1]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    return rank


def _grouped_order(sort_key: np.ndarray, group: np.ndarray) -> np.ndarray | None:
    """``numpy.lexsort((sort_key, group))`` for an integer group key, faster: a stable
    sort by ``sort_key``, then stable radix sorts by the groups' dense numbers, 16 bits at
    a time. None where the groups do not suit (not integers, or too many)."""
    if group.dtype.kind not in "iu":
        return None
    low, high = int(group.min()), int(group.max())
    if high - low < 4 * len(group) + 65536:
        used = np.zeros(high - low + 1, dtype=bool)
        used[group - low] = True
        dense = (np.cumsum(used) - 1)[group - low]
    else:
        dense = _first_of_groups(group)[1]
    if dense.max(initial=0) >= 1 << 32:
        return None
    order = np.argsort(sort_key, kind="stable")
    for shift in (0, 16):
        if shift and dense.max(initial=0) < 1 << shift:
            break
        digit = ((dense >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit[order], kind="stable")]
    return order


def _first_of_groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Groups of equal keys, as ``numpy.unique(keys, return_index=True,
    return_inverse=True)`` gives them (groups by ascending key, each with its first
    element), with an unstable sort.

    Returns
    -------
    first : numpy.ndarray of shape (n_groups,), int64
        Index of each group's first element.
    group : numpy.ndarray of shape (n,), int64
        Group of each element.
    """
    order = np.argsort(keys)
    ordered = keys[order]
    new = np.empty(len(keys), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    first = np.minimum.reduceat(order, np.flatnonzero(new)) if len(keys) else order
    group = np.empty(len(keys), dtype=np.int64)
    group[order] = np.cumsum(new) - 1
    return first, group


def _state_key(
    owner: np.ndarray, mass: np.ndarray, count: np.ndarray, flag: np.ndarray | None = None
) -> np.ndarray:
    """One int64 per (owner, mass to 1e-6 Da, capped residue count, flag): owner below
    2**24, mass below 8589 Da, count below 16."""
    key = (
        (owner.astype(np.int64) << 38)
        | (np.rint(mass * 1e6).astype(np.int64) << 5)
        | (count.astype(np.int64) << 1)
    )
    return key if flag is None else key | flag.astype(np.int64)


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7)."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-x * x))


class GraphDecoder:
    """Spectrum-graph de novo sequencing (see the module description).

    Parameters
    ----------
    vocabulary : Vocabulary
        Tokens of the answers (their ids are this vocabulary's).
    settings : GraphSettings
    probabilities : IonProbabilities, optional
        Of the instrument (:meth:`IonProbabilities.from_noise_model`); hand-set defaults
        when None.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        settings: GraphSettings | None = None,
        probabilities: IonProbabilities | None = None,
    ) -> None:
        self.vocabulary = vocabulary
        self.settings = settings or GraphSettings()
        self.probabilities = probabilities or IonProbabilities.hand_set()
        if probabilities is None:
            log.info("graph decoder: no noise model given, using hand-set ion probabilities")
        p = self.probabilities
        self._b = np.clip(np.asarray(p.b), 0.0, 0.99)
        self._y = np.clip(np.asarray(p.y), 0.0, 0.99)
        self._double = np.clip(np.asarray(p.double), 0.0, 0.99)
        self._a = np.clip(np.asarray(p.a), 0.0, 0.99)
        self._water = np.clip(np.asarray(p.water_loss), 0.0, 0.99)
        self._ammonia = np.clip(np.asarray(p.ammonia_loss), 0.0, 0.99)
        # (2, n_rank_buckets): secondary, primary
        self._rank_ratio = np.exp(np.array([p.secondary_rank_log_ratio, p.rank_log_ratio]))
        if not self.settings.use_rank:
            self._rank_ratio = np.ones_like(self._rank_ratio)
        self.canonical = canonical_tokens(vocabulary)
        self._residue_prior = self.settings.residue_prior_weight * residue_log_prior(vocabulary)
        self._count_cap = max(len(A_ION_NUMBER_EDGES), self.settings.min_residues)
        residue_ids = np.flatnonzero(~vocabulary.is_nterm & (np.arange(len(vocabulary)) > 0))
        self._min_secondary_mz = (
            self.settings.min_secondary_mz
            if self.settings.min_secondary_mz is not None
            else float(immonium_mz(vocabulary.masses[residue_ids]).max(initial=0.0))
            + self.settings.fragment_tolerance_da
        )
        self._start_residues = max(
            self.settings.max_start_residues, self.settings.max_edge_residues
        )
        self._plain, self._start = self._edge_tables()
        self._pair_table = self._bridgeable(self._plain.mass)

    # --- edges --------------------------------------------------------------------------

    def _edge_tables(self) -> tuple[_Edges, _Edges]:
        """Edges between nodes (residue runs of 1 to ``max_edge_residues``) and from the
        start (runs of 1 to the larger of it and ``max_start_residues``, optionally after
        an N-terminal modification)."""
        vocabulary = self.vocabulary
        ids = np.arange(len(vocabulary))
        residues = np.unique(self.canonical[(ids > 0) & ~vocabulary.is_nterm]).tolist()

        def runs_up_to(length: int) -> list[tuple[int, ...]]:
            return [
                run for n in range(1, length + 1) for run in itertools.product(residues, repeat=n)
            ]

        runs = runs_up_to(self.settings.max_edge_residues)
        plain = self._table([0] * len(runs), runs)
        # the longer runs from the start without a modification (rare, and each would
        # multiply the start's edges)
        first = runs_up_to(self._start_residues)
        modifications = ids[vocabulary.is_nterm].tolist()
        starts = [0] * len(first) + [m for m in modifications for _ in runs]
        return plain, self._table(starts, first + runs * len(modifications))

    def _bridgeable(self, mass: np.ndarray) -> np.ndarray:
        """Per bin of :data:`_PAIR_BIN` Da of the difference ``d`` between two nodes' lower
        bounds, whether an edge mass lies within ``d +- max_node_width_da`` for some ``d``
        of the bin (else no edge joins the nodes), with a margin for rounding."""
        if len(mass) == 0:
            return np.zeros(1, dtype=bool)
        width = self.settings.max_node_width_da + 1e-6
        start = np.arange(int(mass[-1] / _PAIR_BIN) + 2) * _PAIR_BIN
        low = np.searchsorted(mass, start - width, "left")
        high = np.searchsorted(mass, start + _PAIR_BIN + width, "right")
        return high > low

    def _table(self, modifications: list[int], runs: list[tuple[int, ...]]) -> _Edges:
        """Edge kinds sorted by mass, from their N-terminal modification (0: none) and
        residue runs."""
        masses = self.vocabulary.masses
        n = len(runs)
        tokens = np.zeros((n, 4), dtype=np.int64)
        tokens[:, 0] = modifications
        for index, run in enumerate(runs):
            tokens[index, 1 : 1 + len(run)] = run
        cumulative = np.cumsum(masses[tokens], axis=1)  # after mod, r1, r2, r3
        n_residues = (tokens[:, 1:] > 0).sum(axis=1)
        skipped = np.where(
            np.arange(1, 3)[None, :] < n_residues[:, None], cumulative[:, 1:3], np.nan
        )
        order = np.argsort(cumulative[:, 3], kind="stable")
        size = len(self.vocabulary)
        ordered = np.sort(tokens[:, 1:], axis=1)
        composition = np.where(
            (tokens[:, 0] == 0) & (n_residues == 3) & (self.settings.max_edge_residues < 3),
            (ordered[:, 0] * size + ordered[:, 1]) * size + ordered[:, 2],
            -1,
        )
        return _Edges(
            composition=composition[order],
            mass=cumulative[order, 3],
            skipped=skipped[order],
            n_residues=n_residues[order],
            tokens=tokens[order],
            prior=np.where(tokens[order, 0] > 0, self.settings.nterm_modification_log_prior, 0.0)
            + self._residue_prior[tokens[order, 1:]].sum(axis=1),
        )

    # --- spectra --------------------------------------------------------------------------

    def _check(
        self, counts: np.ndarray, precursor_mass: np.ndarray, charge: np.ndarray
    ) -> list[str | None]:
        s = self.settings
        reasons: list[str | None] = []
        lightest = float(self._plain.mass[0]) if len(self._plain.mass) else _GLYCINE
        for n, mass, z in zip(
            counts.tolist(), precursor_mass.tolist(), charge.tolist(), strict=True
        ):
            if not (
                math.isfinite(z) and float(z).is_integer() and s.min_charge <= z <= s.max_charge
            ):
                reasons.append(REASON_CHARGE)
            elif not (math.isfinite(mass) and lightest + WATER_MASS < mass <= s.max_precursor_mass):
                reasons.append(REASON_PRECURSOR)
            elif n < 3:
                reasons.append(REASON_FEW_PEAKS)
            else:
                reasons.append(None)
        return reasons

    def _prepare_peaks(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
        usable: np.ndarray,
    ) -> _Peaks:
        """Clean, de-isotope and cut each spectrum's peaks; flat arrays."""
        s = self.settings
        tolerance = s.fragment_tolerance_da
        n, width = mz.shape
        mz = np.asarray(mz, dtype=np.float64)
        intensity = np.asarray(intensity, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            valid = (
                (np.arange(width)[None, :] < counts[:, None])
                & np.isfinite(mz)
                & np.isfinite(intensity)
                & (mz > 0)
                & (mz < KEY_OFFSET / 2)
                & (intensity > 0)
                & usable[:, None]
            )
        if s.remove_precursor_peaks:
            mass = np.where(usable, precursor_mass, 0.0)[:, None]
            for peak_charge in range(1, int(np.max(np.where(usable, charge, 1), initial=1)) + 1):
                applies = (charge >= peak_charge)[:, None] & valid
                for loss in (0.0, *NEUTRAL_LOSSES):
                    centre = (mass - loss + peak_charge * PROTON_MASS) / peak_charge
                    high = centre + 2 * C13_SPACING / peak_charge + tolerance
                    hit = (mz >= centre - tolerance) & (mz <= high)
                    valid &= ~(applies & hit)
        rows, cols = np.nonzero(valid)
        peak_mz = mz[rows, cols]
        peak_intensity = intensity[rows, cols]
        order = np.lexsort((peak_mz, rows))
        rows, peak_mz, peak_intensity = rows[order], peak_mz[order], peak_intensity[order]
        key = rows * KEY_OFFSET + peak_mz
        if s.deisotope and len(key):
            isotope = np.zeros(len(key), dtype=bool)
            for z in (1, 2):
                index, found = nearest_peaks(key, key - C13_SPACING / z, tolerance)
                isotope |= (
                    found
                    & (peak_intensity[index] > peak_intensity)
                    & (index != np.arange(len(key)))
                )
            keep = ~isotope
            rows, peak_mz, peak_intensity, key = (
                rows[keep],
                peak_mz[keep],
                peak_intensity[keep],
                key[keep],
            )
        rank = _group_rank((-peak_intensity,), (rows,)) + 1
        keep = rank <= s.max_peaks
        rows, peak_mz, key = rows[keep], peak_mz[keep], key[keep]
        peak_intensity = peak_intensity[keep]
        rank = _group_rank((-peak_intensity,), (rows,)) + 1
        window_rank = None
        if s.node_window_peaks > 0:
            window = np.floor(peak_mz / s.node_window_da).astype(np.int64)
            windows = int(KEY_OFFSET / s.node_window_da) + 1  # per spectrum (m/z < KEY_OFFSET)
            window_rank = _group_rank((-peak_intensity,), (rows * windows + window,)) + 1
        half = s.density_window_da / 2
        near = np.searchsorted(key, key + half, "right") - np.searchsorted(key, key - half, "left")
        density = near / s.density_window_da
        random_match = -np.expm1(-2 * tolerance * density)
        count = np.bincount(rows, minlength=n)
        return _Peaks(
            key=key,
            mz=peak_mz,
            spectrum=rows,
            rank=rank,
            window_rank=window_rank,
            rank_bucket=bucket(rank, RANK_EDGES),
            random_match=np.clip(random_match, 1e-9, 1.0),
            start=np.cumsum(count) - count,
            count=count,
        )

    def _graphs(
        self, spectra: np.ndarray, precursor_mass: np.ndarray, charge: np.ndarray
    ) -> _Graphs:
        low, high = self.settings.isotope_errors
        isotopes = np.arange(low, high + 1)
        prior = np.asarray(self.probabilities.isotope, dtype=np.float64)
        log_prior = np.log(np.maximum(prior[np.clip(isotopes, 0, len(prior) - 1)], 1e-3))
        log_prior = np.where((isotopes >= 0) & (isotopes < len(prior)), log_prior, np.log(1e-3))
        spectrum = np.repeat(spectra, len(isotopes))
        isotope = np.tile(isotopes, len(spectra))
        return _Graphs(
            spectrum=spectrum,
            isotope=isotope,
            precursor=precursor_mass[spectrum] - isotope * C13_SPACING,
            charge=charge[spectrum].astype(np.int64),
            prior=np.tile(log_prior, len(spectra)),
        )

    # --- evidence ---------------------------------------------------------------------------

    def _evidence(
        self,
        peaks: _Peaks,
        spectrum: np.ndarray,
        prefix: np.ndarray,
        precursor: np.ndarray,
        count: np.ndarray,
        double: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Evidence of cleavage sites, per ion type.

        Parameters
        ----------
        peaks : _Peaks
        spectrum, prefix, precursor, count, double : numpy.ndarray of shape (n_sites,)
            Spectrum of each site, its theoretical prefix mass, the isotope-corrected
            precursor mass, the residues before it, and whether doubly charged fragments
            count (the precursor charge allows them).

        Returns
        -------
        contribution : numpy.ndarray of shape (n_sites, n_ion_types)
            Log-likelihood ratio of each ion type (present or absent).
        peak : numpy.ndarray of shape (n_sites, n_ion_types), int64
            Matched peak (flat index), -1 where none.
        absent : numpy.ndarray of shape (n_sites, n_ion_types)
            What the ion would contribute without a peak.
        """
        s = self.settings
        tolerance = s.fragment_tolerance_da
        residues = np.maximum(precursor - WATER_MASS, 1e-9)
        b = prefix
        y = precursor - prefix
        p_b = self._b[bucket(prefix / residues, POSITION_EDGES)]
        if not s.score_b1:
            p_b = np.where(count <= 1, 0.0, p_b)
        p_y = self._y[bucket((residues - prefix) / residues, POSITION_EDGES)]
        p_double = np.where(double, 1.0, 0.0)
        neutral = np.stack(
            [
                b,
                y,
                b,
                y,
                b - A_ION_LOSS,
                b - NEUTRAL_LOSSES[0],
                b - NEUTRAL_LOSSES[1],
                y - NEUTRAL_LOSSES[0],
                y - NEUTRAL_LOSSES[1],
            ],
            axis=1,
        )
        probability = np.stack(
            [
                p_b,
                p_y,
                p_double * self._double[bucket(b, DOUBLE_CHARGE_MASS_EDGES)],
                p_double * self._double[bucket(y, DOUBLE_CHARGE_MASS_EDGES)],
                self._a[bucket(count, A_ION_NUMBER_EDGES)],
                p_b * self._water[0],
                p_b * self._ammonia[0],
                p_y * self._water[1],
                p_y * self._ammonia[1],
            ],
            axis=1,
        )
        expected = ion_mz(neutral, _ION_CHARGE[None, :])
        probability = np.where(
            ~PRIMARY_IONS & (expected < self._min_secondary_mz), 0.0, probability
        )
        weight = np.where(PRIMARY_IONS, 1.0, s.secondary_weight)[None, :]
        absent = weight * np.log1p(-probability)
        # only ions that can be observed are looked up, and only matched ones scored
        flat_expected = expected.ravel()
        asked = np.flatnonzero(((probability > 0) & (expected > 0)).ravel())
        keys = spectrum[asked // len(ION_TYPES)] * KEY_OFFSET + flat_expected[asked]
        index, found = nearest_peaks(peaks.key, keys, tolerance)
        matched, index = asked[found], index[found]
        expected = flat_expected[matched]
        p = probability.ravel()[matched]
        ion = matched % len(ION_TYPES)
        delta = peaks.mz[index] - expected
        sd = np.maximum(
            self.probabilities.mass_error_sd_ppm * 1e-6 * np.abs(expected),
            s.min_mass_error_sd * tolerance,
        )
        truncation = _erf(tolerance / (sd * math.sqrt(2)))
        ratio = (
            2
            * tolerance
            * np.exp(-0.5 * (delta / sd) ** 2)
            / (sd * math.sqrt(2 * math.pi) * truncation)
        )
        ratio *= (
            self._rank_ratio[PRIMARY_IONS[ion].astype(np.int64), peaks.rank_bucket[index]]
            / (peaks.random_match[index])
        )
        contribution = absent.copy()
        contribution.ravel()[matched] = weight[0, ion] * np.log(1.0 - p + p * ratio)
        peak = np.full(absent.shape, -1, dtype=np.int64)
        peak.ravel()[matched] = index
        return contribution, peak, absent

    def _unique_evidence(
        self,
        peaks: _Peaks,
        graphs: _Graphs,
        graph: np.ndarray,
        prefix: np.ndarray,
        count: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_evidence` of sites given by graph, prefix mass and residues before,
        computed once per distinct site (the same prefix mass to the bit; counts beyond
        ``_count_cap`` score alike)."""
        capped = np.minimum(count, self._count_cap)
        first, group = _first_of_groups(_state_key(graph, prefix, capped))
        own = np.flatnonzero(prefix != prefix[first[group]])  # rounded alike, not equal
        chosen = np.concatenate([first, own])
        group[own] = len(first) + np.arange(len(own))
        g = graph[chosen]
        contribution, peak, absent = self._evidence(
            peaks,
            graphs.spectrum[g],
            prefix[chosen],
            graphs.precursor[g],
            capped[chosen],
            max_fragment_charge(graphs.charge[g]) >= 2,
        )
        return contribution[group], peak[group], absent[group]

    def _site_scores(
        self,
        peaks: _Peaks,
        graphs: _Graphs,
        graph: np.ndarray,
        prefix: np.ndarray,
        count: np.ndarray,
        mirrored: np.ndarray | None = None,
    ) -> np.ndarray:
        """Site score S of each (graph, prefix mass, residues so far), computed once per
        distinct state; where ``mirrored``, the primary ions score as absent."""
        if len(prefix) == 0:
            return np.zeros(0)
        capped = np.minimum(count, self._count_cap)
        mirrored = np.zeros(len(prefix), dtype=bool) if mirrored is None else mirrored
        first, group = _first_of_groups(_state_key(graph, prefix, capped, mirrored))
        g = graph[first]
        contribution, _, absent = self._evidence(
            peaks,
            graphs.spectrum[g],
            prefix[first],
            graphs.precursor[g],
            capped[first],
            max_fragment_charge(graphs.charge[g]) >= 2,
        )
        contribution = np.where(mirrored[first, None] & PRIMARY_IONS, absent, contribution)
        return contribution.sum(axis=1)[group]

    def _mirrored(
        self, store: _Store, graphs: _Graphs, parent: np.ndarray, mass: np.ndarray
    ) -> np.ndarray:
        """Whether a site of the path so far (``parent`` and its ancestors) mirrors a new
        site of prefix mass ``mass``: their prefix masses add up to the precursor mass
        within twice the fragment tolerance, so the b ion of one is the y ion of the other
        (the same peak)."""
        result = np.zeros(len(mass), dtype=bool)
        if not self.settings.mirror_rule:
            return result
        width = 2 * self.settings.fragment_tolerance_da
        mirror = graphs.precursor[store["graph"][parent]] - mass
        active = np.flatnonzero(mirror < mass)
        current = parent[active]
        masses, parents = store["mass"], store["parent"]
        while len(active):
            ancestor = masses[current]
            hit = np.abs(ancestor - mirror[active]) <= width
            result[active[hit]] = True
            go = ~hit & (ancestor > mirror[active] + width) & (parents[current] >= 0)
            active, current = active[go], parents[current[go]]
        return result

    # --- nodes ----------------------------------------------------------------------------

    def _nodes(self, peaks: _Peaks, graphs: _Graphs) -> _Nodes:
        """Merged windows of the prefix masses the primary ions of the node peaks support."""
        s = self.settings
        tolerance = s.fragment_tolerance_da
        limit = np.full(len(peaks.count), float(s.max_node_peaks or s.max_peaks))
        if s.node_peaks_per_ion > 0:
            # as many node peaks as the peptide can have primary ions, times a factor
            sites = np.maximum(graphs.precursor / AVERAGE_RESIDUE_MASS - 1, 1)
            kinds = np.where(max_fragment_charge(graphs.charge) >= 2, 4, 2)
            wanted = np.ceil(s.node_peaks_per_ion * sites * kinds)
            limit[graphs.spectrum] = np.clip(wanted, s.min_node_peaks, limit[graphs.spectrum])
        # the most intense peaks, and the most intense of each m/z window (a weak ladder
        # where the intense peaks crowd elsewhere)
        use = peaks.rank <= limit[peaks.spectrum]
        if peaks.window_rank is not None:
            use |= peaks.window_rank <= s.node_window_peaks
        node_mz = peaks.mz[use]
        node_spectrum = peaks.spectrum[use]
        n_spectra = len(peaks.count)
        per_spectrum = np.bincount(node_spectrum, minlength=n_spectra)
        first = np.cumsum(per_spectrum) - per_spectrum
        owner, peak = _expand(first[graphs.spectrum], per_spectrum[graphs.spectrum])
        mz = node_mz[peak]
        precursor = graphs.precursor[owner]
        residues = precursor - WATER_MASS
        double = max_fragment_charge(graphs.charge[owner]) >= 2
        hypotheses = [
            (mz - PROTON_MASS, tolerance, np.ones_like(double)),
            (precursor - (mz - PROTON_MASS), tolerance, np.ones_like(double)),
            (2 * (mz - PROTON_MASS), 2 * tolerance, double),
            (precursor - 2 * (mz - PROTON_MASS), 2 * tolerance, double),
        ]
        graph = np.concatenate([owner[h[2]] for h in hypotheses])
        centre = np.concatenate([h[0][h[2]] for h in hypotheses])
        half = np.concatenate([np.full(int(h[2].sum()), h[1]) for h in hypotheses])
        top = np.concatenate([residues[h[2]] for h in hypotheses])
        lo = np.maximum(centre - half, 1.0)
        hi = np.minimum(centre + half, top - 1.0)
        keep = hi > lo
        graph, lo, hi = graph[keep], lo[keep], hi[keep]
        order = np.lexsort((lo, graph))
        graph, lo, hi = graph[order], lo[order], hi[order]
        window = np.zeros(0, dtype=np.int64)
        if len(lo):
            key_lo = graph * KEY_OFFSET + lo
            reach = np.maximum.accumulate(graph * KEY_OFFSET + hi)
            new = np.ones(len(lo), dtype=bool)
            new[1:] = key_lo[1:] > reach[:-1]
            starts = np.flatnonzero(new)
            ends = np.r_[starts[1:], len(lo)] - 1
            graph, lo, hi = graph[starts], lo[starts], reach[ends] - graph[starts] * KEY_OFFSET
            width = hi - lo
            pieces = np.maximum(np.ceil(width / s.max_node_width_da - 1e-9), 1).astype(np.int64)
            owner, piece = _expand(np.zeros(len(pieces), np.int64), pieces)
            step = width[owner] / pieces[owner]
            graph = graph[owner]
            new_lo = lo[owner] + piece * step
            hi = np.where(piece == pieces[owner] - 1, hi[owner], new_lo + step)
            lo = new_lo
            window = owner
        return _Nodes(graph=graph, lo=lo, hi=hi, key=graph * KEY_OFFSET + lo, window=window)

    # --- search ---------------------------------------------------------------------------

    def _triples(
        self, peaks: _Peaks, graphs: _Graphs, nodes: _Nodes
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(source node, target node, edge) of every node pair an edge may join, and whether
        a site the edge skips may lie in a node for some partial paths of the source (and
        must be checked for each). Source ``n_nodes + g`` is graph ``g``'s start; edge ids
        of start sources are offset by the number of plain edges. Of the orders of one
        residue multiset from the start into one node (:attr:`_Edges.composition`) only
        the one whose skipped sites score best is kept."""
        n_nodes, n_graphs = len(nodes.lo), len(graphs.spectrum)
        plain, start = self._plain, self._start
        width = self.settings.max_node_width_da
        sources, targets, edges, checks = [], [], [], []
        if len(plain.mass) and n_nodes:
            a = np.searchsorted(nodes.key, nodes.key + plain.mass[0] - width, "left")
            b = np.searchsorted(
                nodes.key, nodes.graph * KEY_OFFSET + nodes.hi + plain.mass[-1], "right"
            )
            u, v = _expand(a, np.maximum(b - a, 0))
            if plain.mass[0] <= width:  # else v lies above u
                u, v = u[v != u], v[v != u]
            # pairs no edge can join (node starts too far from every edge mass)
            bins = ((nodes.lo[v] - nodes.lo[u]) * (1 / _PAIR_BIN)).astype(np.int64)
            near = self._pair_table[np.clip(bins, 0, len(self._pair_table) - 1)]
            u, v = u[near], v[near]
            low = np.searchsorted(plain.mass, nodes.lo[v] - nodes.hi[u], "left")
            high = np.searchsorted(plain.mass, nodes.hi[v] - nodes.lo[u], "right")
            pair, edge = _expand(low, np.maximum(high - low, 0))
            keep, check = self._skips_open(nodes, u[pair], plain.skipped[edge])
            sources.append(u[pair][keep])
            targets.append(v[pair][keep])
            edges.append(edge[keep])
            checks.append(check[keep])
        if len(start.mass) and n_nodes:
            every = np.arange(n_graphs)
            a = np.searchsorted(nodes.key, every * KEY_OFFSET, "left")
            b = np.searchsorted(nodes.key, every * KEY_OFFSET + start.mass[-1], "right")
            g, v = _expand(a, np.maximum(b - a, 0))
            low = np.searchsorted(start.mass, nodes.lo[v], "left")
            high = np.searchsorted(start.mass, nodes.hi[v], "right")
            pair, edge = _expand(low, np.maximum(high - low, 0))
            skipped = start.skipped[edge]
            closed = np.zeros(len(edge), dtype=bool)
            for column in range(skipped.shape[1]):
                rows = np.flatnonzero(np.isfinite(skipped[:, column]))
                closed[rows] |= nodes.contains(g[pair][rows], skipped[rows, column])
            g, v, edge = g[pair][~closed], v[pair][~closed], edge[~closed]
            # the orders of one residue multiset into one node: the one whose skipped
            # sites score best carries them all (from the start, at mass 0, that score
            # is the edge's alone), the others join the candidates at the end
            composed = np.flatnonzero(start.composition[edge] >= 0)
            if len(composed):
                size = len(self.vocabulary) ** 3
                key = v[composed] * size + start.composition[edge[composed]]  # v: one graph
                zero = np.zeros(len(composed))
                score = self._skipped_site(
                    peaks, graphs, nodes, g[composed], zero, zero.astype(np.int64),
                    start.skipped[edge[composed]], check=False,
                )  # fmt: skip
                drop = composed[_group_rank((-score,), (key,)) > 0]
                g, v, edge = np.delete(g, drop), np.delete(v, drop), np.delete(edge, drop)
            sources.append(n_nodes + g)
            targets.append(v)
            edges.append(edge + len(plain.mass))
            checks.append(np.zeros(len(edge), dtype=bool))  # decided exactly here
        if not sources:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, np.zeros(0, dtype=bool)
        return (
            np.concatenate(sources),
            np.concatenate(targets),
            np.concatenate(edges),
            np.concatenate(checks),
        )

    @staticmethod
    def _skips_open(
        nodes: _Nodes, source: np.ndarray, skipped: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Whether an edge from a node may skip its sites for some mass in the node: False
        where, for every mass of the source node, a skipped site lies in a node (the
        pieces of one merged window cover it without a gap); and whether a skipped site
        may lie in a node for some mass of the source node (False: for none, as the
        search computes the site, ``mass + offset``, which rounds monotonically)."""
        keep = np.ones(len(source), dtype=bool)
        check = np.zeros(len(source), dtype=bool)
        if len(nodes.key) == 0:
            return keep, check
        for column in range(skipped.shape[1]):
            rows = np.flatnonzero(np.isfinite(skipped[:, column]))
            graph = nodes.graph[source[rows]]
            low_mass = nodes.lo[source[rows]] + skipped[rows, column]
            high_mass = nodes.hi[source[rows]] + skipped[rows, column]
            low_below = nodes.below(graph, low_mass)
            high_below = nodes.below(graph, high_mass)
            low = nodes.inside_at(graph, low_mass, low_below)
            high = nodes.inside_at(graph, high_mass, high_below)
            covered = (low >= 0) & (high >= 0)
            covered &= nodes.window[np.maximum(low, 0)] == nodes.window[np.maximum(high, 0)]
            keep[rows[covered]] = False
            check[rows] |= (low >= 0) | (low_below != high_below)
        return keep, check

    def _search(
        self, peaks: _Peaks, graphs: _Graphs, nodes: _Nodes
    ) -> tuple[_Store, np.ndarray, np.ndarray, np.ndarray]:
        """The K-best programme. Returns the partial paths and, for every complete path
        kept, its last partial path, last edge (unified id) and path score."""
        s = self.settings
        n_graphs, n_nodes = len(graphs.spectrum), len(nodes.lo)
        edge_mass = np.r_[self._plain.mass, self._start.mass]
        edge_skipped = np.concatenate([self._plain.skipped, self._start.skipped])
        edge_residues = np.r_[self._plain.n_residues, self._start.n_residues]
        edge_tokens = np.concatenate([self._plain.tokens, self._start.tokens])
        edge_prior = np.r_[self._plain.prior, self._start.prior]
        store = _Store()
        store.append(
            graph=np.arange(n_graphs),
            node=n_nodes + np.arange(n_graphs),
            mass=np.zeros(n_graphs),
            score=graphs.prior.astype(np.float64),
            count=np.zeros(n_graphs, dtype=np.int64),
            parent=np.full(n_graphs, -1, dtype=np.int64),
            tokens=np.zeros((n_graphs, 4), dtype=np.int64),
            key=np.arange(n_graphs) * KEY_OFFSET,
        )
        # The partial paths of a node are stored together, by mass; the nodes' blocks are
        # numbered in storage order, so ``key = block * KEY_OFFSET + mass`` is sorted and
        # the partial paths an edge can take into a node are one searchsorted range.
        block = np.full(n_nodes + n_graphs, -1, dtype=np.int64)
        block[n_nodes:] = np.arange(n_graphs)
        n_blocks = n_graphs
        layer_width = _GLYCINE - s.max_node_width_da - 1e-6
        source, target, edge, check = self._triples(peaks, graphs, nodes)
        layer = np.floor(nodes.lo / layer_width).astype(np.int64)
        order = np.argsort(layer[target], kind="stable")
        source, target, edge, check = source[order], target[order], edge[order], check[order]
        bounds = np.flatnonzero(np.diff(layer[target])) + 1
        expanded = fitting = kept = 0
        for part in np.split(np.arange(len(target)), bounds):
            if len(part) == 0:
                continue
            u, v, c, t = source[part], target[part], edge[part], check[part]
            reached = block[u] >= 0
            u, v, c, t = u[reached], v[reached], c[reached], t[reached]
            keys = store["key"]
            base = block[u] * KEY_OFFSET - edge_mass[c]
            low = np.searchsorted(keys, base + nodes.lo[v] - KEY_SLACK, "left")
            high = np.searchsorted(keys, base + nodes.hi[v] + KEY_SLACK, "right")
            owner, e = _expand(low, np.maximum(high - low, 0))
            if len(e) == 0:
                continue
            v, c, t = v[owner], c[owner], t[owner]
            expanded += len(e)
            parent_mass = store["mass"][e]
            mass = parent_mass + edge_mass[c]
            count = store["count"][e] + edge_residues[c]
            ok = (mass >= nodes.lo[v]) & (mass <= nodes.hi[v]) & (count <= s.max_residues)
            graph = store["graph"][e]
            for column in range(edge_skipped.shape[1]):
                skipped = np.flatnonzero(t & ok & np.isfinite(edge_skipped[c, column]))
                site = parent_mass[skipped] + edge_skipped[c[skipped], column]
                ok[skipped] = ~nodes.contains(graph[skipped], site)
            e, v, c, mass, count, graph = e[ok], v[ok], c[ok], mass[ok], count[ok], graph[ok]
            score = store["score"][e] + edge_prior[c]
            limit = PREFILTER_FACTOR * s.node_beam
            crowded = np.bincount(v)[v] > limit if s.node_beam and len(e) > limit else None
            if crowded is not None and crowded.any():
                # Partial paths far down their node's list cannot make its beam: the new
                # sites' scores differ far less between them than the parents' scores.
                keep = np.ones(len(e), dtype=bool)
                rows = np.flatnonzero(crowded)
                keep[rows] = _group_rank((-score[rows],), (v[rows],)) < limit
                e, v, c, mass, count, graph, score = (
                    e[keep], v[keep], c[keep], mass[keep], count[keep], graph[keep], score[keep]
                )  # fmt: skip
            fitting += len(e)
            if len(e) == 0:
                continue
            score += self._skipped_site(
                peaks, graphs, nodes, graph, store["mass"][e], store["count"][e],
                edge_skipped[c], check=False,
            )  # fmt: skip
            mirrored = self._mirrored(store, graphs, e, mass)
            score += self._site_scores(peaks, graphs, graph, mass, count, mirrored)
            keep = self._prune(v, mass, count, score)
            kept += len(keep)
            e, v, c, mass, count, graph, score = (
                e[keep], v[keep], c[keep], mass[keep], count[keep], graph[keep], score[keep]
            )  # fmt: skip
            nodes_here, inverse = np.unique(v, return_inverse=True)
            block[nodes_here] = n_blocks + np.arange(len(nodes_here))
            n_blocks += len(nodes_here)
            store.append(
                graph=graph,
                node=v,
                mass=mass,
                score=score,
                count=count,
                parent=e,
                tokens=edge_tokens[c],
                key=block[v] * KEY_OFFSET + mass,
            )
        log.debug(
            "graph search: %d graphs, %d nodes, %d node-edge triples, %d extensions tried, "
            "%d in a node, %d kept",
            n_graphs, n_nodes, len(target), expanded, fitting, kept,
        )  # fmt: skip
        return (store, *self._finish(peaks, graphs, nodes, store, n_nodes))

    def _skipped_site(
        self,
        peaks: _Peaks,
        graphs: _Graphs,
        nodes: _Nodes,
        graph: np.ndarray,
        mass: np.ndarray,
        count: np.ndarray,
        skipped: np.ndarray,
        check: bool = True,
    ) -> np.ndarray:
        """Score of the sites an edge skips (0 for a one-residue edge); with ``check``,
        -inf where a skipped site lies in a node (that peptide's path goes through it).

        Parameters
        ----------
        graph, mass, count : numpy.ndarray of shape (n,)
            Graph, prefix mass and residues of the partial path the edge leaves from.
        skipped : numpy.ndarray of shape (n, 2)
            The edge's skipped-site offsets (:attr:`_Edges.skipped`).
        """
        result = np.zeros(len(mass))
        for column in range(skipped.shape[1]):
            rows = np.flatnonzero(np.isfinite(skipped[:, column]))
            if len(rows) == 0:
                continue
            site = mass[rows] + skipped[rows, column]
            g = graph[rows]
            scores = self._site_scores(peaks, graphs, g, site, count[rows] + column + 1)
            if check:
                scores = np.where(nodes.contains(g, site), -np.inf, scores)
            result[rows] += scores
        return result

    def _prune(
        self, node: np.ndarray, mass: np.ndarray, count: np.ndarray, score: np.ndarray
    ) -> np.ndarray:
        """Which new partial paths to keep: the ``n_paths`` best per state, then the
        ``node_beam`` best per node (ties: the earlier first). Returned in storage order:
        by node, mass, best score first (ties: the earlier first).

        Only states and nodes with more members than they keep are ranked."""
        s = self.settings
        keep = np.arange(len(node))
        per_node = np.bincount(node)
        # a state with more than n_paths members lies in a node with more
        rows = np.flatnonzero(per_node[node] > s.n_paths)
        if len(rows):
            state = _state_key(node[rows], mass[rows], np.minimum(count[rows], self._count_cap))
            group = _first_of_groups(state)[1]
            full = np.bincount(group)[group] > s.n_paths
            if full.any():
                rows = rows[full]
                drop = _group_rank((-score[rows],), (group[full],)) >= s.n_paths
                keep = np.delete(keep, rows[drop])
        if s.node_beam:
            per_node = np.bincount(node[keep])
            rows = np.flatnonzero(per_node[node[keep]] > s.node_beam)
            if len(rows):
                drop = _group_rank((-score[keep[rows]],), (node[keep[rows]],)) >= s.node_beam
                keep = np.delete(keep, rows[drop])
        return keep[np.lexsort((-score[keep], mass[keep], node[keep]))]

    def _finish(
        self, peaks: _Peaks, graphs: _Graphs, nodes: _Nodes, store: _Store, n_nodes: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Close partial paths with a last edge onto the precursor mass; the ``n_paths``
        best complete paths per spectrum."""
        s = self.settings
        tolerance = s.precursor_tolerance_ppm * 1e-6
        graph = store["graph"]
        mass = store["mass"]
        is_start = store["node"] >= n_nodes
        low_total = graphs.precursor * (1 - tolerance) - WATER_MASS
        high_total = graphs.precursor * (1 + tolerance) - WATER_MASS
        finals = []
        for table, offset, members in (
            (self._plain, 0, ~is_start),
            (self._start, len(self._plain.mass), is_start),
        ):
            entries = np.flatnonzero(members)
            if len(entries) == 0 or len(table.mass) == 0:
                continue
            g = graph[entries]
            low = np.searchsorted(table.mass, low_total[g] - mass[entries], "left")
            high = np.searchsorted(table.mass, high_total[g] - mass[entries], "right")
            owner, edge = _expand(low, np.maximum(high - low, 0))
            e = entries[owner]
            count = store["count"][e] + table.n_residues[edge]
            ok = (count >= s.min_residues) & (count <= s.max_residues)
            e, edge = e[ok], edge[ok]
            score = (
                store["score"][e]
                + table.prior[edge]
                + self._skipped_site(
                    peaks, graphs, nodes, graph[e], mass[e], store["count"][e], table.skipped[edge]
                )
            )
            ok = np.isfinite(score)
            finals.append((e[ok], edge[ok] + offset, score[ok]))
        if not finals:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        e = np.concatenate([f[0] for f in finals])
        edge = np.concatenate([f[1] for f in finals])
        score = np.concatenate([f[2] for f in finals])
        rank = _group_rank((-score,), (graphs.spectrum[graph[e]],))
        keep = rank < s.n_rerank
        return e[keep], edge[keep], score[keep]

    # --- public -----------------------------------------------------------------------------

    def decode(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
    ) -> GraphResult:
        """The best peptides of each spectrum.

        Parameters
        ----------
        mz, intensity : numpy.ndarray of shape (n_spectra, width)
            Peaks, zero-padded (e.g. :func:`trm.denovo.inference.spectrum_arrays`).
        counts : numpy.ndarray of shape (n_spectra,)
            Real peaks per row.
        precursor_mass : numpy.ndarray of shape (n_spectra,)
            Neutral precursor mass (Da).
        charge : numpy.ndarray of shape (n_spectra,)
            Precursor charge.

        Returns
        -------
        GraphResult
        """
        mz, intensity, counts, precursor_mass, charge = _as_arrays(
            mz, intensity, counts, precursor_mass, charge
        )
        candidates: list[list[GraphCandidate]] = []
        reasons: list[str | None] = []
        for start in range(0, len(counts), self.settings.batch_size):
            part = slice(start, start + self.settings.batch_size)
            batch_candidates, batch_reasons = self._decode_batch(
                mz[part], intensity[part], counts[part], precursor_mass[part], charge[part]
            )
            candidates += batch_candidates
            reasons += batch_reasons
        return GraphResult(candidates=candidates, reasons=reasons)

    def _batch(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
    ) -> _Batch:
        """Check a batch's spectra and build the peaks, graphs and nodes of those usable
        (decoding and scoring given peptides start alike)."""
        reasons = self._check(counts, precursor_mass, charge)
        usable = np.array([r is None for r in reasons], dtype=bool)
        safe_charge = np.where(usable, charge, 1).astype(np.int64)
        safe_mass = np.where(usable, precursor_mass, 0.0)
        peaks = self._prepare_peaks(mz, intensity, counts, safe_mass, safe_charge, usable)
        for row in np.flatnonzero(usable & (peaks.count < 3)):
            reasons[row] = REASON_FEW_PEAKS
            usable[row] = False
        spectra = np.flatnonzero(usable)
        graphs = nodes = None
        if len(spectra):
            graphs = self._graphs(spectra, safe_mass, safe_charge)
            nodes = self._nodes(peaks, graphs)
        return _Batch(reasons, usable, safe_mass, spectra, peaks, graphs, nodes)

    def _decode_batch(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
    ) -> tuple[list[list[GraphCandidate]], list[str | None]]:
        batch = self._batch(mz, intensity, counts, precursor_mass, charge)
        reasons, spectra = batch.reasons, batch.spectra
        candidates: list[list[GraphCandidate]] = [[] for _ in range(len(counts))]
        if batch.graphs is None or batch.nodes is None:
            return candidates, reasons
        peaks, graphs, nodes = batch.peaks, batch.graphs, batch.nodes
        store, last, edge, path_score = self._search(peaks, graphs, nodes)
        tokens, composed = self._backtrack(store, last, edge)
        graph = store["graph"][last]
        # a first edge of three residues carried all their orders: each is a candidate,
        # unless a site it puts first lies in a node (then its path is another, through it)
        more, more_graph = self._other_orders(tokens, graph, composed)
        if len(more):
            extra = self._score_tokens(peaks, graphs, nodes, more_graph, more)
            open_ = ~extra["in_node"][:, :2].any(axis=1)
            tokens = np.concatenate([tokens, more[open_]])
            graph = np.concatenate([graph, more_graph[open_]])
            path_score = np.concatenate([path_score, extra["path"][open_]])
            # the n_rerank best by path score, as the search keeps its own
            keep = _group_rank((-path_score,), (graphs.spectrum[graph],)) < self.settings.n_rerank
            tokens, graph, path_score = tokens[keep], graph[keep], path_score[keep]
        scored = self._score_tokens(peaks, graphs, nodes, graph, tokens)
        spectrum = graphs.spectrum[graph]
        final = scored["score"]
        order = np.lexsort((-path_score, -final, spectrum))
        rank = _group_rank((-final, -path_score), (spectrum,))
        for index in order[rank[order] < self.settings.n_candidates]:
            ids = tokens[index][tokens[index] > 0]
            n_sites = int((~self.vocabulary.is_nterm[ids]).sum()) - 1
            candidates[spectrum[index]].append(
                GraphCandidate(
                    token_ids=ids,
                    score=float(final[index]),
                    path_score=float(path_score[index]),
                    site_scores=scored["sites"][index, :n_sites].copy(),
                    mass_error_ppm=float(scored["error"][index]),
                    isotope_error=int(graphs.isotope[graph[index]]),
                )
            )
        missing = np.array([row for row in spectra if not candidates[row]], dtype=np.int64)
        fallback = self._fallback()
        if len(missing) and fallback is not None:
            again, _ = fallback._decode_batch(
                mz[missing], intensity[missing], counts[missing],
                precursor_mass[missing], charge[missing],
            )  # fmt: skip
            for row, found in zip(missing, again, strict=True):
                candidates[row] = found
        for row in spectra:
            if not candidates[row]:
                reasons[row] = REASON_NO_PATH
        return candidates, reasons

    def _fallback(self) -> GraphDecoder | None:
        """The decoder of the second search (longer edges), made once."""
        s = self.settings
        if s.fallback_edge_residues <= s.max_edge_residues:
            return None
        if not hasattr(self, "_fallback_decoder"):
            # longer edges multiply the partial paths: half the beams
            settings = dataclasses.replace(
                s,
                max_edge_residues=s.fallback_edge_residues,
                fallback_edge_residues=0,
                n_paths=max(1, s.n_paths // 2),
                node_beam=max(1, s.node_beam // 2) if s.node_beam else 0,
            )
            self._fallback_decoder = GraphDecoder(self.vocabulary, settings, self.probabilities)
        return self._fallback_decoder

    def _backtrack(
        self, store: _Store, last: np.ndarray, edge: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of complete paths, (n_paths, length), 0-padded at the end; and
        whether each path's first edge stands for every order of its residues
        (:attr:`_Edges.composition`)."""
        edge_tokens = np.concatenate([self._plain.tokens, self._start.tokens])
        chunks = [edge_tokens[edge]]
        current = last.copy()
        parent, tokens = store["parent"], store["tokens"]
        first = np.zeros((len(last), 4), dtype=np.int64)  # the tokens of the first edge
        while len(current) and (current >= 0).any():
            safe = np.maximum(current, 0)
            here = np.where((current >= 0)[:, None], tokens[safe], 0)
            chunks.append(here)
            first = np.where((here > 0).any(axis=1)[:, None], here, first)
            current = np.where(current >= 0, parent[safe], -1)
        stacked = np.concatenate(chunks[::-1], axis=1) if len(last) else np.zeros((0, 1), np.int64)
        order = np.argsort(stacked == 0, axis=1, kind="stable")
        tokens = np.take_along_axis(stacked, order, axis=1)
        composed = (
            (first[:, 0] == 0) & (first[:, 1:] > 0).all(axis=1)
            if self._start_residues > self.settings.max_edge_residues
            else np.zeros(len(last), dtype=bool)
        )
        return tokens[:, : int((tokens > 0).sum(axis=1).max(initial=0)) + 1], composed

    @staticmethod
    def _other_orders(
        tokens: np.ndarray, graph: np.ndarray, composed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The other orders of the first three residues of the paths whose first edge
        carried them all (``composed``): token rows and their graphs, each distinct
        peptide of a graph once, none already among ``tokens``."""
        rows = np.flatnonzero(composed)
        if len(rows) == 0:
            return np.zeros((0, tokens.shape[1]), dtype=np.int64), np.zeros(0, dtype=np.int64)
        orders = [p for p in itertools.permutations(range(3)) if p != (0, 1, 2)]
        new = np.concatenate([tokens[rows]] * len(orders))
        for index, permutation in enumerate(orders):
            part = slice(index * len(rows), (index + 1) * len(rows))
            new[part, :3] = tokens[rows][:, list(permutation)]
        new_graph = np.tile(graph[rows], len(orders))
        # the first occurrence of each (graph, peptide), the known paths ahead of the new
        keyed = np.concatenate([np.c_[graph, tokens], np.c_[new_graph, new]], axis=0)
        _, first = np.unique(keyed, axis=0, return_index=True)
        fresh = np.sort(first[first >= len(tokens)]) - len(tokens)
        return new[fresh], new_graph[fresh]

    def _score_tokens(
        self,
        peaks: _Peaks,
        graphs: _Graphs,
        nodes: _Nodes,
        graph: np.ndarray,
        tokens: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Path score, final (peaks-once) score and per-site final scores of peptides,
        each scored in a given graph (its isotope error).

        Parameters
        ----------
        tokens : numpy.ndarray of shape (n_peptides, length), 0-padded

        Returns
        -------
        dict
            ``path``, ``score``, ``error`` of shape (n_peptides,); ``sites`` (final score
            per site), ``site_mass`` and ``in_node`` of shape (n_peptides, length - 1),
            NaN (False) beyond the last site.
        """
        n = len(tokens)
        width = max(tokens.shape[1] - 1, 1)
        masses = self.vocabulary.masses[tokens]
        residue = (tokens > 0) & ~self.vocabulary.is_nterm[tokens]
        prefix = np.cumsum(masses, axis=1)
        residues_before = np.cumsum(residue, axis=1)
        n_residues = residue.sum(axis=1)
        # a site follows each residue but the last
        owner, column = np.nonzero(residue & (residues_before < n_residues[:, None]))
        slot = residues_before[owner, column] - 1
        site_mass = prefix[owner, column]
        g = graph[owner]
        contribution, peak, absent = self._unique_evidence(
            peaks, graphs, g, site_mass, residues_before[owner, column]
        )
        in_node = np.zeros((n, width), dtype=bool)
        in_node[owner, slot] = nodes.contains(g, site_mass)
        site_masses = np.full((n, width), np.nan)
        site_masses[owner, slot] = site_mass
        mirrored = np.zeros(len(owner), dtype=bool)
        if self.settings.mirror_rule and len(owner):
            # as the search: a node site above half the precursor mass whose mirror lies
            # within twice the tolerance of an earlier node site
            mirror = graphs.precursor[g] - site_mass
            earlier = np.where(in_node, site_masses, np.nan)[owner]  # (n_sites, width)
            earlier = np.where(np.arange(width)[None, :] < slot[:, None], earlier, np.nan)
            with np.errstate(invalid="ignore"):
                close = np.abs(earlier - mirror[:, None]) <= 2 * self.settings.fragment_tolerance_da
            mirrored = in_node[owner, slot] & (mirror < site_mass) & close.any(axis=1)
        path_sites = np.where(mirrored[:, None] & PRIMARY_IONS, absent, contribution).sum(axis=1)
        once_sites = _peaks_once(contribution, peak, absent, owner).sum(axis=1)
        n_modifications = ((tokens > 0) & self.vocabulary.is_nterm[tokens]).sum(axis=1)
        prior = (
            graphs.prior[graph]
            + n_modifications * self.settings.nterm_modification_log_prior
            + self._residue_prior[tokens].sum(axis=1)
        )
        sites = np.full((n, width), np.nan)
        sites[owner, slot] = once_sites
        peptide_mass = prefix[:, -1] + WATER_MASS if tokens.shape[1] else np.zeros(n)
        corrected = graphs.precursor[graph]
        return {
            "path": prior + np.bincount(owner, weights=path_sites, minlength=n),
            "score": prior + np.bincount(owner, weights=once_sites, minlength=n),
            "sites": sites,
            "error": (corrected - peptide_mass) / corrected * 1e6,
            "site_mass": site_masses,
            "in_node": in_node,
        }

    def score_peptides(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
        token_ids: np.ndarray,
    ) -> PeptideScores:
        """Graph scores of given peptides (e.g. a model's candidates), as the search
        scores its own.

        Parameters
        ----------
        mz, intensity, counts, precursor_mass, charge
            As :meth:`decode`.
        token_ids : numpy.ndarray of shape (n_spectra, n_peptides, length)
            Vocabulary ids, 0-padded after each peptide (rows of 0 hold no peptide).
            Each peptide is scored at the allowed isotope error its mass fits best.

        Returns
        -------
        PeptideScores
        """
        mz, intensity, counts, precursor_mass, charge = _as_arrays(
            mz, intensity, counts, precursor_mass, charge
        )
        token_ids = np.asarray(token_ids, dtype=np.int64)
        if token_ids.ndim != 3 or len(token_ids) != len(counts):
            raise ValueError("token_ids must have shape (n_spectra, n_peptides, length)")
        if token_ids.shape[2] == 0:
            token_ids = np.zeros((*token_ids.shape[:2], 1), dtype=np.int64)
        n, k, length = token_ids.shape
        token_ids = np.clip(token_ids, 0, len(self.vocabulary) - 1)
        result = PeptideScores(
            score=np.full((n, k), np.nan),
            path_score=np.full((n, k), np.nan),
            site_scores=np.full((n, k, max(length - 1, 1)), np.nan),
            mass_error_ppm=np.full((n, k), np.nan),
            isotope_error=np.zeros((n, k), dtype=np.int64),
            fits=np.zeros((n, k), dtype=bool),
            representable=np.zeros((n, k), dtype=bool),
        )
        reasons: list[str | None] = []
        size = self.settings.batch_size
        for start in range(0, n, size):
            part = slice(start, start + size)
            reasons += self._score_batch(
                result, part, mz[part], intensity[part], counts[part],
                precursor_mass[part], charge[part], token_ids[part],
            )  # fmt: skip
        result.reasons = reasons
        return result

    def _score_batch(
        self,
        result: PeptideScores,
        part: slice,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
        token_ids: np.ndarray,
    ) -> list[str | None]:
        s = self.settings
        batch = self._batch(mz, intensity, counts, precursor_mass, charge)
        if batch.graphs is None or batch.nodes is None:
            return batch.reasons
        usable, safe_mass, spectra = batch.usable, batch.precursor_mass, batch.spectra
        peaks, graphs, nodes = batch.peaks, batch.graphs, batch.nodes
        n_isotopes = s.isotope_errors[1] - s.isotope_errors[0] + 1
        rows, peptide = np.nonzero(usable[:, None] & (token_ids[:, :, 0] > 0))
        tokens = token_ids[rows, peptide]
        masses = self.vocabulary.masses[tokens].sum(axis=1) + WATER_MASS
        errors, isotopes = _isotope_errors(masses, safe_mass[rows], s.isotope_errors)
        row_graph = np.searchsorted(spectra, rows) * n_isotopes + (isotopes - s.isotope_errors[0])
        scored = self._score_tokens(peaks, graphs, nodes, row_graph, tokens)
        fits = np.abs(errors) <= s.precursor_tolerance_ppm
        outside = ~scored["in_node"] & np.isfinite(scored["site_mass"])
        # a run of more skipped sites than an edge can hold (from the start, without an
        # N-terminal modification: its edges)
        longest = s.max_edge_residues - 1
        leading_longest = np.where(
            self.vocabulary.is_nterm[tokens[:, 0]], longest, self._start_residues - 1
        )
        run = np.zeros(outside.shape[0], dtype=np.int64)
        leading = np.ones(outside.shape[0], dtype=bool)
        gap = np.zeros(outside.shape[0], dtype=bool)
        for column in range(outside.shape[1]):
            run = np.where(outside[:, column], run + 1, 0)
            leading &= outside[:, column]
            gap |= run > np.where(leading, leading_longest, longest)
        residue = (tokens > 0) & ~self.vocabulary.is_nterm[tokens]
        n_residues = residue.sum(axis=1)
        modification_first = ~(self.vocabulary.is_nterm[tokens[:, 1:]]).any(axis=1)
        representable = (
            fits
            & ~gap
            & (n_residues >= s.min_residues)
            & (n_residues <= s.max_residues)
            & modification_first
        )
        target_rows = rows + part.start
        result.score[target_rows, peptide] = scored["score"]
        result.path_score[target_rows, peptide] = scored["path"]
        width = min(result.site_scores.shape[2], scored["sites"].shape[1])
        result.site_scores[target_rows, peptide, :width] = scored["sites"][:, :width]
        result.mass_error_ppm[target_rows, peptide] = errors
        result.isotope_error[target_rows, peptide] = isotopes
        result.fits[target_rows, peptide] = fits
        result.representable[target_rows, peptide] = representable
        return batch.reasons


def _peaks_once(
    contribution: np.ndarray, peak: np.ndarray, absent: np.ndarray, owner: np.ndarray
) -> np.ndarray:
    """Contributions with every peak counted at most once per peptide: of the (site, ion)
    pairs of one peptide matching one peak, the one gaining most over absence keeps it,
    the others score as absent.

    Parameters
    ----------
    contribution, peak, absent : numpy.ndarray of shape (n_sites, n_ion_types)
    owner : numpy.ndarray of shape (n_sites,)
        Peptide of each site.
    """
    used = np.flatnonzero(peak.ravel() >= 0)
    if len(used) == 0:
        return contribution
    gain = (contribution - absent).ravel()[used]
    peptide = np.repeat(owner, peak.shape[1])[used]
    rank = _group_rank((-gain,), (peptide, peak.ravel()[used]))
    result = contribution.copy().ravel()
    loser = used[rank > 0]
    result[loser] = absent.ravel()[loser]
    return result.reshape(contribution.shape)


def _isotope_errors(
    peptide_mass: np.ndarray, precursor_mass: np.ndarray, isotope_errors: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """ppm error and isotope error of best fit (:func:`trm.chem.precursor_mass_error_ppm`),
    safe for empty input."""
    from trm.chem import precursor_mass_error_ppm

    if len(peptide_mass) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    error, isotope = precursor_mass_error_ppm(peptide_mass, precursor_mass, isotope_errors)
    return error, isotope.astype(np.int64)


def _as_arrays(
    mz: np.ndarray,
    intensity: np.ndarray,
    counts: np.ndarray,
    precursor_mass: np.ndarray,
    charge: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Inputs as arrays of the expected shapes; NaN charges and masses stay (reasons)."""
    mz = np.atleast_2d(np.asarray(mz, dtype=np.float64))
    intensity = np.atleast_2d(np.asarray(intensity, dtype=np.float64))
    n = len(mz)
    counts = np.minimum(np.asarray(counts, dtype=np.int64).reshape(n), mz.shape[1])
    precursor_mass = np.asarray(precursor_mass, dtype=np.float64).reshape(n)
    charge = np.asarray(charge, dtype=np.float64).reshape(n)
    if intensity.shape != mz.shape:
        raise ValueError("mz and intensity must have the same shape")
    return mz, intensity, counts, precursor_mass, charge
