"""What a model costs: parameters and inference FLOPs per spectrum."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from trm.model.config import ModelConfig
from trm.model.evidence import N_FEATURES


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class InferenceCost:
    """FLOPs of one spectrum's inference (a multiply-add counts as 2 FLOPs).

    Attributes
    ----------
    encoder : int
        Encoding the spectrum and projecting it once for every core block.
    per_supervision_step : int
        One supervision step: ``n`` latent steps, the answer step, the halting head.
    supervision_steps : int
        Steps counted in :attr:`total`.
    """

    encoder: int
    per_supervision_step: int
    supervision_steps: int

    @property
    def total(self) -> int:
        """FLOPs of the whole inference."""
        return self.encoder + self.supervision_steps * self.per_supervision_step

    @property
    def gflop(self) -> float:
        """:attr:`total` in GFLOP."""
        return self.total / 1e9


def _linear(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def _attention(queries: int, keys: int, hidden: int, project_keys: bool) -> int:
    flops = _linear(queries, hidden, hidden) * 2  # query and output projections
    if project_keys:
        flops += _linear(keys, hidden, 2 * hidden)
    return flops + 2 * 2 * queries * keys * hidden  # scores and weighted sum


def inference_flops(
    config: ModelConfig,
    n_peaks: int | None = None,
    supervision_steps: int | None = None,
) -> InferenceCost:
    """Analytic FLOPs of one spectrum's inference (matrix products only).

    Layer norms, softmaxes and activations are left out: they are a few percent at
    these sizes. The answer's ion features (fragment feedback and evidence) are counted
    at every position of every step: inference computes them once per distinct position
    (those after the answer's end share theirs) and keeps them while the answer stays,
    so this is an upper bound there.

    Parameters
    ----------
    config : ModelConfig
        With ``n_tokens`` set.
    n_peaks : int, optional
        Peaks in the spectrum (default: the configured maximum, the padded cost).
    supervision_steps : int, optional
        Steps run (default ``T``; fewer with early exit).

    Returns
    -------
    InferenceCost
    """
    if config.n_tokens is None:
        raise ValueError("config.n_tokens must be set")
    hidden, ff = config.hidden, config.ff_multiplier * config.hidden
    length, n_tokens = config.max_length, config.n_tokens
    memory = (config.n_peaks if n_peaks is None else n_peaks) + 2
    feed_forward = 2 * _linear(1, hidden, ff)

    encoder = 2 * _linear(memory, hidden, hidden)  # m/z and precursor projections
    encoder += config.encoder_layers * (
        _attention(memory, memory, hidden, project_keys=True) + memory * feed_forward
    )
    encoder += config.core_layers * _linear(memory, hidden, 2 * hidden)  # cached K/V

    block = _attention(length, length, hidden, project_keys=True)
    block += _attention(length, memory, hidden, project_keys=False)
    block += length * feed_forward
    latent_step = config.core_layers * block + _linear(length, hidden, hidden)
    answer_context = _linear(length, n_tokens, hidden)
    if config.fragment_feedback:
        answer_context += 2 * _linear(length, hidden, hidden)
    if config.fragment_evidence:
        # Ion-lookup features of every candidate: score MLP and context projection.
        candidates = length * n_tokens
        answer_context += _linear(candidates, N_FEATURES, N_FEATURES)
        answer_context += _linear(candidates, N_FEATURES, 1)
        answer_context += _linear(length, n_tokens * N_FEATURES, hidden)
    answer_step = _linear(length, hidden, n_tokens + 1)
    step = answer_context + config.latent_steps * latent_step + answer_step
    step += _linear(1, hidden, 1)  # halting head
    steps = config.supervision_steps if supervision_steps is None else supervision_steps
    return InferenceCost(encoder=encoder, per_supervision_step=step, supervision_steps=steps)
