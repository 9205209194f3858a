"""Training configuration: one typed dataclass, stored in every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from trm.errors import InputError
from trm.train.curriculum import Curriculum
from trm.train.losses import LossWeights
from trm.train.noise import RampNoise


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes
    ----------
    steps : int
        Optimisation steps in total (the cosine schedule ends there).
    batch_size : int
        Spectra per step and process (the global batch is ``batch_size * world_size``).
    learning_rate : float
        Peak AdamW learning rate.
    weight_decay : float
        AdamW decoupled weight decay, applied to matrices only (not to biases, norms,
        embeddings).
    warmup_steps : int
        Linear warm-up steps.
    final_learning_rate_ratio : float
        Learning rate at the last step as a fraction of the peak.
    grad_clip : float
        Gradient norm clipping threshold.
    ema_decay : float
        Decay of the exponential moving average of the weights used for evaluation and
        inference (warmed up as ``min(decay, (1 + step) / (10 + step))``).
    eval_every : int
        Steps between evaluations (and metrics CSV rows); the last step always evaluates.
    checkpoint_every : int
        Steps between checkpoints; the last step always writes one.
    eval_spectra : int
        Validation spectra evaluated (the first ones of the split).
    eval_batch_size : int
        Batch size of evaluation.
    eval_noisy : bool
        Also evaluate on a noisy copy of the validation split (full strength, fixed seed).
    log_every : int
        Steps between progress log lines.
    seed : int
        Seeds initialisation, data order and noise.
    mixed_precision : bool
        bfloat16 autocast on CUDA (ignored on CPU).
    draft_fraction : float
        Fraction of each training batch whose recursion starts from a draft answer (the
        true peptide with some positions replaced at random) instead of the blank one, so
        that refinement learns, from the first steps on, to use the fragment evidence of
        a mostly right answer (the ``model`` decoder starts blank, the ``hybrid`` one from
        the spectrum graph's best path).
    draft_corruption : float
        Largest fraction of a draft's positions replaced (each draft draws its own rate
        uniformly below it).
    graph_draft_fraction : float
        Share of the drafts that are the spectrum-graph decoder's best path on the
        (noised) training spectrum instead of a corrupted true peptide, so that the
        recursion learns to correct the errors the drafts of the ``hybrid`` decoder carry
        (residues swapped inside a cleavage without peaks, equal-mass pairs, wrong ends);
        spectra without a graph path get a corrupted true peptide. Costs one graph
        decoding per such spectrum and step.
    rank_fraction : float
        Share of each training batch whose spectra also teach the model to rank answers:
        the true peptide against the spectrum-graph decoder's other candidates on the
        (noised) spectrum, each scored as the ``hybrid`` decoder's teacher forcing scores
        it (:meth:`trm.model.PeptideTRM.answer_scores`), by a listwise loss
        (:func:`trm.train.losses.ranking_loss`). The model then learns the choice the
        decoder asks of it: between the right order of two residues and the wrong one,
        one residue and two of the same mass. 0 turns it off. Costs one graph decoding
        and ``1 + rank_candidates`` one-step passes per such spectrum and step.
    rank_candidates : int
        Wrong candidates ranked against the true peptide, at most (the graph's best first).
    rank_weight : float
        Weight of the ranking loss against the sequencing loss.
    rank_graph_score : bool
        Rank by the model's score *plus* each answer's spectrum-graph score
        (:meth:`trm.graph.GraphDecoder.score_peptides`): the model learns what the graph
        score misses (which of two orders inside a gap without peaks, ...) rather than
        to rank on its own, and where the graph score already decides, nothing is asked
        of it.
    loss : LossWeights
    curriculum : Curriculum
    noise : RampNoise
        The hand-set noise ramp, used when ``fitted_noise`` is None.
    fitted_noise : dict or None
        The fitted noise model trained with (:class:`trm.noise_model.NoiseModelParameters`
        as a dict, so the checkpoint says which noise the model saw); None for the ramp.
    """

    steps: int = 20_000
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 500
    final_learning_rate_ratio: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    eval_every: int = 1_000
    checkpoint_every: int = 1_000
    eval_spectra: int = 2_048
    eval_batch_size: int = 256
    eval_noisy: bool = True
    log_every: int = 50
    seed: int = 0
    mixed_precision: bool = True
    draft_fraction: float = 0.8
    draft_corruption: float = 0.5
    graph_draft_fraction: float = 0.0
    rank_fraction: float = 0.0
    rank_candidates: int = 8
    rank_weight: float = 1.0
    rank_graph_score: bool = False
    loss: LossWeights = LossWeights()
    curriculum: Curriculum = Curriculum()
    noise: RampNoise = RampNoise()
    fitted_noise: dict | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.rank_fraction <= 1:
            raise InputError(f"rank_fraction must lie in [0, 1], got {self.rank_fraction}")
        if self.rank_candidates < 1:
            raise InputError(f"rank_candidates must be >= 1, got {self.rank_candidates}")
        if not self.rank_weight >= 0:
            raise InputError(f"rank_weight must be >= 0, got {self.rank_weight}")

    def to_dict(self) -> dict:
        """Nested plain dictionary, for checkpoints and logs."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        nested = {"loss": LossWeights, "noise": RampNoise}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown train config keys: {sorted(unknown)}")
        converted = {
            key: nested[key](**value) if key in nested and isinstance(value, dict) else value
            for key, value in values.items()
        }
        if isinstance(values.get("curriculum"), dict):
            steps = int(values.get("steps", cls.steps))
            converted["curriculum"] = Curriculum.from_dict(values["curriculum"], steps)
        return cls(**converted)
