"""Model configuration: one typed dataclass and the named sizes the workflow offers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from trm.errors import InputError
from trm.instrument import DEFAULT_FRAGMENT_TOLERANCE_DA

#: Switches added after checkpoints were first written, with the value that reproduces an
#: older checkpoint's architecture.
_ADDED_LATER: dict[str, object] = {
    "fragment_evidence": False,
    "step_embedding": True,
    "answer_update": "gated",
}

#: How a supervision step changes the answer (see :attr:`ModelConfig.answer_update`).
ANSWER_UPDATES = ("gated", "replace")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the recursive model.

    Attributes
    ----------
    hidden : int
        Width of every token (peaks, precursor, answer positions).
    heads : int
        Attention heads; must divide ``hidden``.
    encoder_layers : int
        Transformer layers of the spectrum encoder.
    core_layers : int
        Transformer blocks that make one latent step ``f(z, y, x)``; the recursion, not
        this number, gives the network its depth.
    supervision_steps : int
        ``T``: answer refinements, each supervised, with the carry detached in between.
    latent_steps : int
        ``n``: latent updates ``z <- z + f(z, y, x)`` before each answer update.
    no_grad_latent_steps : int
        How many of the first latent steps of a supervision step run without gradient (as
        TRM does to save memory); 0 backpropagates through all of them.
    fragment_feedback : bool
        Give the updates sinusoidal features of the b/y ion m/z the current answer implies
        (see :meth:`trm.model.RecursiveCore.answer_context`).
    fragment_evidence : bool
        Score every candidate token at every position by looking up the b/y ions it
        implies among the peaks, given the rest of the current answer
        (:mod:`trm.model.evidence`).
    evidence_tolerance : float
        Width (Da) of the Gaussian kernel of that lookup.
    step_embedding : bool
        Add a learned embedding of the supervision step to the latent state at the start
        of each step (off: every step runs the same function of its inputs).
    answer_update : str
        ``gated``: the gated residual ``y <- y + gate * delta``; ``replace``: the step's
        output becomes the answer, ``y <- delta`` (the ablation of the gate).
    max_length : int
        Answer positions: tokens of the longest peptide plus at least one end class.
    n_peaks : int
        Most intense peaks the encoder reads.
    ff_multiplier : int
        Feed-forward width as a multiple of ``hidden``.
    max_charge : int
        Largest precursor charge with its own embedding; higher charges share the last.
    mz_min_wavelength, mz_max_wavelength : float
        Range of the sinusoidal m/z encoding wavelengths (Da): the shortest resolves
        fragment mass differences, the longest spans the precursor mass range.
    n_tokens : int or None
        Vocabulary size including the end class, filled in from the vocabulary when the
        model is built.
    """

    hidden: int = 128
    heads: int = 4
    encoder_layers: int = 2
    core_layers: int = 1
    supervision_steps: int = 8
    latent_steps: int = 3
    no_grad_latent_steps: int = 0
    fragment_feedback: bool = True
    fragment_evidence: bool = True
    evidence_tolerance: float = DEFAULT_FRAGMENT_TOLERANCE_DA
    step_embedding: bool = True
    answer_update: str = "gated"
    max_length: int = 32
    n_peaks: int = 150
    ff_multiplier: int = 4
    max_charge: int = 10
    mz_min_wavelength: float = 0.001
    mz_max_wavelength: float = 10_000.0
    n_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise InputError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.hidden % 2:
            raise InputError("hidden must be even for the sinusoidal m/z encoding")
        if not 0 <= self.no_grad_latent_steps < self.latent_steps:
            raise InputError("no_grad_latent_steps must lie in [0, latent_steps)")
        if self.answer_update not in ANSWER_UPDATES:
            raise InputError(
                f"answer_update {self.answer_update!r}: choose one of {list(ANSWER_UPDATES)}"
            )
        for name in ("supervision_steps", "latent_steps", "max_length", "n_peaks"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be positive")

    def to_dict(self) -> dict:
        """Plain dictionary, for checkpoints and logs."""
        return dataclasses.asdict(self)

    def with_overrides(self, items: list[str]) -> ModelConfig:
        """This config with ``FIELD=VALUE`` overrides (``hidden=96``), typed as the field.

        Raises
        ------
        ValueError
            Naming the item, for an unknown field or a value of the wrong type.
        """
        fields = {field.name: field for field in dataclasses.fields(self)}
        changes: dict[str, object] = {}
        for item in items:
            name, _, value = item.partition("=")
            if name not in fields or name == "n_tokens" or not value:
                raise InputError(
                    f"model setting {item!r}: expected FIELD=VALUE with FIELD one of "
                    f"{sorted(set(fields) - {'n_tokens'})}"
                )
            current = getattr(self, name)
            try:
                if isinstance(current, bool):
                    if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise InputError(value)
                    changes[name] = value.lower() in ("1", "true", "yes")
                else:
                    changes[name] = type(current)(value)
            except ValueError:
                raise InputError(
                    f"model setting {item!r}: {value!r} is not a {type(current).__name__}"
                ) from None
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error.

        A checkpoint written before a switch existed was trained without it: such keys
        (:data:`_ADDED_LATER`) take their "off" value, not the current default.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**{**_ADDED_LATER, **values})


#: The best size of the speed/accuracy sweep (``benchmarks/train_sweep.py``, same CPU
#: training budget for every size): hidden 64, one encoder layer, 8 refinements of one
#: latent step. Larger networks reached less in the same time.
_SWEEP_BEST = ModelConfig(
    hidden=64,
    heads=4,
    encoder_layers=1,
    core_layers=1,
    supervision_steps=8,
    latent_steps=1,
    n_peaks=100,
    ff_multiplier=2,
)

#: Named model sizes. ``default`` is the shipped size, the sweep's best; ``tiny`` serves
#: tests and the CPU demo (today the same network, kept under its own name so tests and
#: demo do not move when a new sweep changes the default); ``large`` is a GPU size, 384
#: wide with 6 latent steps (≈ 13 GFLOP per spectrum when the memory projections are not
#: cached, about Casanovo's cost).
MODEL_CONFIGS: dict[str, ModelConfig] = {
    "tiny": _SWEEP_BEST,
    "default": _SWEEP_BEST,
    "large": ModelConfig(
        hidden=384,
        heads=8,
        encoder_layers=2,
        core_layers=1,
        supervision_steps=8,
        latent_steps=6,
        n_peaks=150,
    ),
}


def get_model_config(name: str) -> ModelConfig:
    """A named configuration of :data:`MODEL_CONFIGS`."""
    try:
        return MODEL_CONFIGS[name]
    except KeyError:
        raise InputError(
            f"unknown model config {name!r}; choose one of {sorted(MODEL_CONFIGS)}"
        ) from None
