"""On-the-fly spectrum noise: peak dropout, noise peaks, m/z error, intensity jitter.

A *noise model* draws per-spectrum noise parameters for a requested strength; one
vectorised function applies them to a whole batch. The hand-set :class:`RampNoise`
scales every kind of noise with the curriculum's strength; a noise model fitted to an
instrument's real spectra (the ``fit_noise`` stage) replaces it by implementing
:class:`NoiseModel`, drawing the same :class:`NoiseParameters` from fitted distributions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from trm.train.data import SpectrumBatch

#: Lowest m/z of a noise peak: instruments rarely record fragments below it.
NOISE_MIN_MZ = 50.0


@dataclass
class NoiseParameters:
    """Noise to apply to each spectrum of a batch; every tensor has shape (batch,).

    Attributes
    ----------
    dropout : torch.Tensor
        Probability that a peak is removed.
    n_noise_peaks : torch.Tensor, int64
        Random peaks added (uniform in m/z between 50 and the precursor mass).
    noise_intensity : torch.Tensor
        Largest intensity of a noise peak, relative to the spectrum's most intense peak.
    ppm_sd : torch.Tensor
        Standard deviation of the independent per-peak m/z error, in ppm.
    ppm_offset : torch.Tensor
        Systematic m/z error of the spectrum (miscalibration), in ppm.
    intensity_sd : torch.Tensor
        Standard deviation of the log-normal intensity jitter.
    """

    dropout: torch.Tensor
    n_noise_peaks: torch.Tensor
    noise_intensity: torch.Tensor
    ppm_sd: torch.Tensor
    ppm_offset: torch.Tensor
    intensity_sd: torch.Tensor

    def where(self, keep: torch.Tensor) -> NoiseParameters:
        """These parameters where ``keep`` is True, no noise elsewhere."""
        return NoiseParameters(
            **{
                name: torch.where(keep, value, torch.zeros_like(value))
                for name, value in vars(self).items()
            }
        )


class NoiseModel(Protocol):
    """Draws noise parameters; implemented by the hand-set ramp and by fitted models."""

    #: Most noise peaks one spectrum may receive (fixes the width of the noisy batch).
    max_noise_peaks: int

    def sample(self, strength: torch.Tensor, generator: torch.Generator) -> NoiseParameters:
        """Noise parameters for each spectrum.

        Parameters
        ----------
        strength : torch.Tensor of shape (batch,)
            Curriculum strength in [0, 1]; a fitted model may use it to interpolate
            between clean and its fitted noise.
        generator : torch.Generator
            The only source of randomness, so noise is reproducible.
        """
        ...


@dataclass(frozen=True)
class RampNoise:
    """Hand-set noise whose upper bounds grow with the curriculum's strength.

    Each spectrum draws every kind of noise uniformly between none and ``strength`` times
    its maximum, so a batch mixes mild and harsh cases.

    Attributes
    ----------
    max_dropout : float
        Largest fraction of peaks removed (the roadmap's 45%).
    max_noise_peaks : int
        Largest number of noise peaks added (the roadmap's 30).
    max_noise_intensity : float
        Largest noise peak intensity relative to the base peak.
    max_ppm_sd : float
        Largest per-peak m/z error standard deviation (ppm).
    max_ppm_offset : float
        Largest systematic m/z error (ppm, either sign).
    max_intensity_sd : float
        Largest log-normal intensity jitter.
    """

    max_dropout: float = 0.45
    max_noise_peaks: int = 30
    max_noise_intensity: float = 0.2
    max_ppm_sd: float = 10.0
    max_ppm_offset: float = 10.0
    max_intensity_sd: float = 0.4

    def sample(self, strength: torch.Tensor, generator: torch.Generator) -> NoiseParameters:
        """Noise parameters for each spectrum (see :meth:`NoiseModel.sample`)."""
        uniform = torch.rand((6, strength.shape[0]), generator=generator) * strength
        n_noise = torch.floor(uniform[1] * (self.max_noise_peaks + 1)).long()
        return NoiseParameters(
            dropout=uniform[0] * self.max_dropout,
            n_noise_peaks=n_noise.clamp_max(self.max_noise_peaks),
            noise_intensity=uniform[2] * self.max_noise_intensity,
            ppm_sd=uniform[3] * self.max_ppm_sd,
            ppm_offset=(2 * uniform[4] - strength) * self.max_ppm_offset,
            intensity_sd=uniform[5] * self.max_intensity_sd,
        )


def apply_noise(
    batch: SpectrumBatch,
    parameters: NoiseParameters,
    max_noise_peaks: int,
    generator: torch.Generator,
) -> SpectrumBatch:
    """Apply noise to a batch, vectorised over spectra and peaks.

    Peaks are dropped, jittered in intensity and m/z, noise peaks are appended, and the
    most intense ``n_peaks`` of the result are kept, so the batch keeps its width.

    Parameters
    ----------
    batch : SpectrumBatch
        Peaks of shape (batch, n_peaks), on the generator's device.
    parameters : NoiseParameters
        Per-spectrum noise, tensors of shape (batch,).
    max_noise_peaks : int
        Width reserved for noise peaks (the noise model's maximum).
    generator : torch.Generator

    Returns
    -------
    SpectrumBatch
        A new batch; the tokens and precursor are those of the input.
    """
    n_spectra, n_peaks = batch.mz.shape

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    keep = batch.peak_mask & (draw(n_spectra, n_peaks) >= parameters.dropout[:, None])
    # Never leave a spectrum without peaks: the most intense one always survives.
    base = torch.where(batch.peak_mask, batch.intensity, -1.0).argmax(dim=1)
    keep[torch.arange(n_spectra), base] |= batch.peak_mask[torch.arange(n_spectra), base]

    ppm = parameters.ppm_offset[:, None] + parameters.ppm_sd[:, None] * normal(n_spectra, n_peaks)
    mz = batch.mz * (1.0 + ppm * 1e-6)
    intensity = batch.intensity * torch.exp(
        parameters.intensity_sd[:, None] * normal(n_spectra, n_peaks)
    )

    base_intensity = torch.where(keep, intensity, 0.0).amax(dim=1, keepdim=True)
    upper_mz = batch.precursor_mass[:, None].clamp_min(NOISE_MIN_MZ + 1.0)
    noise_mz = NOISE_MIN_MZ + draw(n_spectra, max_noise_peaks) * (upper_mz - NOISE_MIN_MZ)
    noise_intensity = (
        draw(n_spectra, max_noise_peaks) * parameters.noise_intensity[:, None] * base_intensity
    )
    noise_mask = torch.arange(max_noise_peaks) < parameters.n_noise_peaks[:, None]

    all_mz = torch.cat([mz, noise_mz], dim=1)
    all_intensity = torch.cat([intensity, noise_intensity], dim=1)
    all_mask = torch.cat([keep, noise_mask], dim=1)
    ranking = torch.where(all_mask, all_intensity, -1.0)
    top = ranking.topk(n_peaks, dim=1).indices
    return SpectrumBatch(
        mz=all_mz.gather(1, top).to(batch.mz.dtype),
        intensity=all_intensity.gather(1, top).to(batch.intensity.dtype),
        peak_mask=all_mask.gather(1, top),
        precursor_mass=batch.precursor_mass,
        charge=batch.charge,
        tokens=batch.tokens,
    )
