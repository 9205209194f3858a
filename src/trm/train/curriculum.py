"""Schedules: every one a pure function of the optimisation step.

Being functions of the step alone, they need no state in a checkpoint: a resumed run
follows exactly the schedule of an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def _linear(step: int, start: float, end: float, steps: int) -> float:
    if steps <= 0:
        return end
    progress = min(max(step / steps, 0.0), 1.0)
    return start + (end - start) * progress


@dataclass(frozen=True)
class Curriculum:
    """Data and loss curricula, each as a share of the run's total steps, so a schedule
    follows the run whatever its length.

    Attributes
    ----------
    clean_fraction_start, clean_fraction_end : float
        Fraction of each batch left without noise, at step 0 and after the clean/noisy
        transition (80% -> 0% by default).
    clean_mix_fraction : float
        Share of the total steps over which the clean fraction falls linearly.
    noise_strength_start, noise_strength_end : float
        Strength handed to the noise model (0: none, 1: its full noise), ramped linearly.
    noise_ramp_fraction : float
        Share of the total steps over which the strength ramps.
    sigma_start_da, sigma_end_da : float
        Width of the spectrum-matching kernel, decayed geometrically (5 Da -> 0.5 Da), so
        early, inaccurate answers still get a gradient and late ones a sharp one.
    sigma_fraction : float
        Share of the total steps over which sigma decays.
    """

    clean_fraction_start: float = 0.8
    clean_fraction_end: float = 0.0
    clean_mix_fraction: float = 0.5
    noise_strength_start: float = 0.25
    noise_strength_end: float = 1.0
    noise_ramp_fraction: float = 0.5
    sigma_start_da: float = 5.0
    sigma_end_da: float = 0.5
    sigma_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("clean_mix_fraction", "noise_ramp_fraction", "sigma_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")

    def clean_fraction(self, step: int, total_steps: int) -> float:
        """Fraction of spectra left clean at ``step`` of ``total_steps``."""
        return _linear(
            step,
            self.clean_fraction_start,
            self.clean_fraction_end,
            round(self.clean_mix_fraction * total_steps),
        )

    def noise_strength(self, step: int, total_steps: int) -> float:
        """Noise model strength at ``step`` of ``total_steps``, in [0, 1]."""
        return _linear(
            step,
            self.noise_strength_start,
            self.noise_strength_end,
            round(self.noise_ramp_fraction * total_steps),
        )

    def spectrum_sigma(self, step: int, total_steps: int) -> float:
        """Gaussian kernel width (Da) of the spectrum-matching loss at ``step``."""
        log_sigma = _linear(
            step,
            math.log(self.sigma_start_da),
            math.log(self.sigma_end_da),
            round(self.sigma_fraction * total_steps),
        )
        return math.exp(log_sigma)

    @classmethod
    def from_dict(cls, values: dict, total_steps: int) -> Curriculum:
        """A curriculum from a checkpoint; one written with step counts (``*_steps``, before
        the schedules became shares of the run) keeps its exact schedule."""
        values = dict(values)
        for old, new in (
            ("clean_mix_steps", "clean_mix_fraction"),
            ("noise_ramp_steps", "noise_ramp_fraction"),
            ("sigma_steps", "sigma_fraction"),
        ):
            if old in values:
                values[new] = min(values.pop(old) / max(total_steps, 1), 1.0)
        return cls(**values)


def learning_rate(
    step: int, peak: float, warmup_steps: int, total_steps: int, final_ratio: float
) -> float:
    """Linear warm-up to ``peak``, then cosine decay to ``final_ratio * peak``.

    Parameters
    ----------
    step : int
        Optimisation step (0-based).
    peak : float
        Learning rate at the end of the warm-up.
    warmup_steps, total_steps : int
    final_ratio : float
        Learning rate at ``total_steps`` as a fraction of ``peak``.
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak * (final_ratio + (1.0 - final_ratio) * cosine)


def supervision_weights(n_steps: int, base: float = 2.0) -> torch.Tensor:
    """Loss weight of each supervision step, ``w_t ∝ base**t``, summing to one.

    With ``base = 2`` and 8 steps the last step carries 50.2% of the loss, so the model
    is pushed to keep improving instead of settling after the first step.

    Returns
    -------
    torch.Tensor of shape (n_steps,)
    """
    weights = base ** torch.arange(n_steps, dtype=torch.float64)
    return (weights / weights.sum()).to(torch.float32)
