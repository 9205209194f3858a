"""On-the-fly spectrum noise, applied to training batches of synthetic spectra.

A *noise model* turns a batch of clean synthetic spectra into noisy ones for a requested
strength per spectrum (0: unchanged, 1: the model's full noise), vectorised over the
batch. Two implement :class:`NoiseModel`:

* :class:`RampNoise`, hand-set: peak dropout, uniform noise peaks, m/z error and
  intensity jitter whose upper bounds grow with the strength;
* :class:`FittedNoise`, the parameters an instrument's identified spectra gave
  (``trm fit-noise``, :mod:`trm.synth.noise_fit`; stored as YAML,
  :class:`trm.noise_model.NoiseModelParameters`): fragment dropout by predicted rank, series and
  position, intensity residuals, m/z error, doubly charged fragments, isotopes, a ions,
  neutral losses, immonium and precursor peaks, and unexplained peaks with their fitted
  count, m/z and intensity distributions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from trm.chem import C13_SPACING, PROTON_MASS, Vocabulary
from trm.fragments import (
    A_ION_LOSS,
    NEUTRAL_LOSSES,
    immonium_mz,
    ion_mz,
    ion_neutral_mass,
)
from trm.noise_model import (
    A_ION_NUMBER_EDGES,
    DOUBLE_CHARGE_MASS_EDGES,
    INTENSITY_RANK_EDGES,
    N_PRECURSOR_KINDS,
    POSITION_EDGES,
    UNEXPLAINED_INTENSITY_EDGES,
    UNEXPLAINED_MZ_EDGES,
    NoiseModelParameters,
    bucket,
    log_unexplained_count,
)
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
    """Noises a batch; implemented by the hand-set ramp and by fitted models."""

    def apply(
        self, batch: SpectrumBatch, strength: torch.Tensor, generator: torch.Generator
    ) -> SpectrumBatch:
        """The batch with noise of the given strength per spectrum.

        Parameters
        ----------
        batch : SpectrumBatch
            Clean spectra (on the CPU).
        strength : torch.Tensor of shape (batch,)
            In [0, 1]; 0 leaves a spectrum's peaks as they are.
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
        Largest fraction of peaks removed.
    max_noise_peaks : int
        Largest number of noise peaks added.
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

    def apply(
        self, batch: SpectrumBatch, strength: torch.Tensor, generator: torch.Generator
    ) -> SpectrumBatch:
        """The batch with ramp noise (see :meth:`NoiseModel.apply`)."""
        parameters = self.sample(strength, generator).where(strength > 0)
        return apply_noise(batch, parameters, self.max_noise_peaks, generator)

    def sample(self, strength: torch.Tensor, generator: torch.Generator) -> NoiseParameters:
        """Noise parameters for each spectrum, each kind uniform up to ``strength`` times
        its maximum."""
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


def _tensor(values: object) -> torch.Tensor:
    return torch.tensor(np.asarray(values, dtype=np.float32))


class FittedNoise:
    """Samples a fitted noise model onto batches of synthetic spectra.

    At strength ``s`` every probability of the model is multiplied by ``s``, the number
    of unexplained peaks likewise, and the intensity and m/z spreads too, so the
    curriculum can ramp from clean spectra (``s = 0``) into the fitted noise (``s = 1``).
    Spectra without fragment annotations (``ion_series`` is None) keep their peaks and
    receive the peaks that need no annotation (precursor, immonium, unexplained).

    Parameters
    ----------
    parameters : NoiseModelParameters
    vocabulary : Vocabulary
        Of the batches' token ids (for immonium ions).
    max_unexplained : int
        Most unexplained peaks added to one spectrum.
    """

    def __init__(
        self, parameters: NoiseModelParameters, vocabulary: Vocabulary, max_unexplained: int = 300
    ) -> None:
        self.parameters = parameters
        self.max_unexplained = max_unexplained
        p = parameters
        self.fragment_observed = _tensor(p.fragment_observed)
        self.double_observed = _tensor(p.double_charge_observed)
        self.isotope_observed = _tensor(p.isotope_observed)
        self.a_observed = _tensor(p.a_ion_observed)
        self.loss_observed = _tensor(p.loss_observed)
        self.precursor_observed = _tensor(p.precursor_observed)
        self.mz_cdf = _cdf(p.unexplained_mz)
        self.isotope_cdf = _cdf(p.precursor_error["isotope_probability"])
        self.intensity_cdf = _cdf(p.unexplained_intensity)
        self.mz_edges = _tensor(UNEXPLAINED_MZ_EDGES)
        self.intensity_edges = _tensor(UNEXPLAINED_INTENSITY_EDGES)
        pooled = float(
            np.mean([v["probability"] for v in p.immonium.values()]) if p.immonium else 0.0
        )
        immonium_probability = np.zeros(len(vocabulary), dtype=np.float32)
        immonium = np.zeros(len(vocabulary), dtype=np.float32)
        for index, token in enumerate(vocabulary.tokens):
            if index == vocabulary.pad_id or vocabulary.is_nterm[index]:
                continue
            immonium_probability[index] = p.immonium.get(token, {}).get("probability", pooled)
            immonium[index] = immonium_mz(vocabulary.masses[index])
        self.immonium_probability = torch.from_numpy(immonium_probability)
        self.immonium_mz = torch.from_numpy(immonium)
        self.is_residue = torch.from_numpy(
            ~vocabulary.is_nterm & (np.arange(len(vocabulary)) != vocabulary.pad_id)
        )
        self.n_tokens = len(vocabulary)

    def apply(
        self, batch: SpectrumBatch, strength: torch.Tensor, generator: torch.Generator
    ) -> SpectrumBatch:
        """The batch with fitted noise of the given strength (see :class:`NoiseModel`)."""
        p = self.parameters
        n_spectra, n_peaks = batch.mz.shape
        s = strength.float()[:, None]  # (B, 1)

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=generator)

        def normal(*shape: int) -> torch.Tensor:
            return torch.randn(shape, generator=generator)

        mask = batch.peak_mask
        intensity = batch.intensity.float()
        mz = batch.mz.float()
        annotated = batch.ion_series is not None
        if annotated:
            series = batch.ion_series.long()
            number = batch.ion_number.long()
            fragment_charge = batch.ion_charge.long()
            is_fragment = mask & (series > 0)
            single = is_fragment & (fragment_charge == 1)
        else:
            is_fragment = single = torch.zeros_like(mask)
        n_residues = (self.is_residue[batch.tokens]).sum(dim=1, keepdim=True)  # (B, 1)

        # (a) fragment dropout by predicted rank, series and position
        keep = mask.clone()
        if annotated:
            predicted_rank = _rank(torch.where(single, intensity, -1.0))
            rank_bucket = bucket(predicted_rank, INTENSITY_RANK_EDGES)
            position = (number - 1).float() / (n_residues - 2).clamp_min(1).float()
            position_bucket = bucket(position, POSITION_EDGES)
            observed = self.fragment_observed[
                (series - 1).clamp(0, 1), rank_bucket, position_bucket
            ]
            drop = s * (1.0 - observed)
            keep &= ~(single & (uniform(n_spectra, n_peaks) < drop))
        # (b) intensity residuals
        intensity = intensity * torch.exp(
            s * p.intensity_residual["sd"] * normal(n_spectra, n_peaks)
        )
        # The summed intensity of the singly charged fragments kept (every peak when the
        # spectrum has no annotation), as the fit measures it.
        reference = torch.where(keep & (single | ~is_fragment), intensity, 0.0).sum(
            dim=1, keepdim=True
        )
        reference = torch.where(reference > 0, reference, 1.0)

        extra_mz: list[torch.Tensor] = []
        extra_intensity: list[torch.Tensor] = []
        extra_mask: list[torch.Tensor] = []

        def add(mz_values: torch.Tensor, intensities: torch.Tensor, present: torch.Tensor) -> None:
            extra_mz.append(mz_values)
            extra_intensity.append(intensities)
            extra_mask.append(present)

        def log10_normal(spec: dict, *shape: int) -> torch.Tensor:
            return torch.pow(10.0, spec["mean"] + spec["sd"] * normal(*shape))

        if annotated:
            kept = keep & single
            charge_f = fragment_charge.clamp_min(1).float()
            # (f) isotopes, by the fragment's rank after dropout and jitter
            observed_rank = _rank(torch.where(kept, intensity, -1.0))
            isotope_p = self.isotope_observed[bucket(observed_rank, INTENSITY_RANK_EDGES)]
            fragment_mass = ion_neutral_mass(mz, charge_f)
            ratio = torch.exp(
                p.isotope_ratio["intercept"]
                + p.isotope_ratio["per_kda"] * fragment_mass / 1000.0
                + p.isotope_ratio["sd"] * normal(n_spectra, n_peaks)
            )
            add(
                mz + C13_SPACING / charge_f,
                intensity * ratio,
                kept & (uniform(n_spectra, n_peaks) < s * isotope_p),
            )
            # (e) a ions of b ions, whether the b ion survived or not
            is_b = single & (series == 1)
            a_p = self.a_observed[bucket(number, A_ION_NUMBER_EDGES)]
            add(
                mz - A_ION_LOSS,
                reference * log10_normal(p.a_ion_intensity, n_spectra, n_peaks),
                is_b & (uniform(n_spectra, n_peaks) < s * a_p),
            )
            # (e) neutral losses of surviving fragments
            for loss, loss_mass in enumerate(NEUTRAL_LOSSES):
                loss_p = self.loss_observed[loss][(series - 1).clamp(0, 1)]
                add(
                    mz - loss_mass / charge_f,
                    intensity * log10_normal(p.loss_ratio[loss], n_spectra, n_peaks),
                    kept & (uniform(n_spectra, n_peaks) < s * loss_p),
                )
            # (a) doubly charged copies of every predicted fragment, precursor charge >= 3
            double_p = self.double_observed[bucket(fragment_mass, DOUBLE_CHARGE_MASS_EDGES)]
            add(
                ion_mz(fragment_mass, 2),
                reference * log10_normal(p.double_charge_intensity, n_spectra, n_peaks),
                single
                & (batch.charge[:, None] >= 3)
                & (uniform(n_spectra, n_peaks) < s * double_p),
            )

        # (e) precursor peaks
        kinds = torch.arange(N_PRECURSOR_KINDS)
        peak_charge = batch.charge[:, None] - kinds // 3  # (B, K)
        loss_mass = torch.tensor([0.0, *NEUTRAL_LOSSES])[kinds % 3]
        precursor_mz = (
            batch.precursor_mass[:, None].float() - loss_mass + peak_charge * PROTON_MASS
        ) / peak_charge.clamp_min(1)
        add(
            precursor_mz,
            reference * log10_normal(p.precursor_intensity, n_spectra, N_PRECURSOR_KINDS),
            (peak_charge >= 1)
            & (uniform(n_spectra, N_PRECURSOR_KINDS) < s * self.precursor_observed),
        )
        # (e) immonium ions of the peptide's residues
        present = torch.zeros(n_spectra, self.n_tokens, dtype=torch.bool)
        present.scatter_(1, batch.tokens, True)
        present &= self.is_residue
        add(
            self.immonium_mz.expand(n_spectra, -1),
            reference * log10_normal(p.immonium_intensity, n_spectra, self.n_tokens),
            present & (uniform(n_spectra, self.n_tokens) < s * self.immonium_probability),
        )
        # (d) unexplained peaks
        count_model = p.unexplained_count
        precursor_mz_1 = (
            batch.precursor_mass.float() + batch.charge * PROTON_MASS
        ) / batch.charge.clamp_min(1)
        log_count = log_unexplained_count(
            count_model, precursor_mz_1, batch.charge.float()
        ) + count_model["sd"] * normal(n_spectra)
        expected = torch.expm1(log_count).clamp_min(0) * s[:, 0]
        n_unexplained = torch.floor(expected + uniform(n_spectra)).long()
        n_unexplained = n_unexplained.clamp_max(self.max_unexplained)
        # only as wide as this batch needs; bins drawn by inverse CDF, values uniform in bins
        width = max(int(n_unexplained.max()), 1)
        draws = uniform(4, n_spectra, width)
        mz_bin = torch.searchsorted(self.mz_cdf, draws[0]).clamp_max(len(self.mz_cdf) - 1)
        relative_mz = self.mz_edges[mz_bin] + draws[1] * (
            self.mz_edges[mz_bin + 1] - self.mz_edges[mz_bin]
        )
        intensity_bin = torch.searchsorted(self.intensity_cdf, draws[2]).clamp_max(
            len(self.intensity_cdf) - 1
        )
        log_intensity = self.intensity_edges[intensity_bin] + draws[3] * (
            self.intensity_edges[intensity_bin + 1] - self.intensity_edges[intensity_bin]
        )
        add(
            relative_mz * (batch.precursor_mass.float()[:, None] + PROTON_MASS),
            reference * torch.pow(10.0, log_intensity),
            torch.arange(width) < n_unexplained[:, None],
        )

        all_mz = torch.cat([mz, *extra_mz], dim=1)
        all_intensity = torch.cat([intensity, *extra_intensity], dim=1)
        all_mask = torch.cat([keep, *extra_mask], dim=1) & (all_mz > 0)
        # (c) m/z error: a per-spectrum offset and a per-peak spread
        ppm = s * (
            p.ppm_offset["mean"]
            + p.ppm_offset["sd"] * normal(n_spectra, 1)
            + p.ppm_spread["sd"] * normal(n_spectra, all_mz.shape[1])
        )
        all_mz = all_mz * (1.0 + ppm * 1e-6)
        ranking = torch.where(all_mask, all_intensity, -1.0)
        top = ranking.topk(n_peaks, dim=1).indices
        # (g) the precursor as the instrument measured it: a ppm error, sometimes a 13C peak
        error = p.precursor_error
        isotope = torch.searchsorted(
            self.isotope_cdf, uniform(n_spectra).contiguous(), right=True
        ).clamp_max(len(self.isotope_cdf) - 1)
        isotope = torch.where(uniform(n_spectra) < s[:, 0], isotope, 0)
        ppm_precursor = s[:, 0] * (error["ppm"]["mean"] + error["ppm"]["sd"] * normal(n_spectra))
        precursor_mass = (batch.precursor_mass.float() + isotope * C13_SPACING) * (
            1.0 + ppm_precursor * 1e-6
        )
        return SpectrumBatch(
            mz=all_mz.gather(1, top).to(batch.mz.dtype),
            intensity=all_intensity.gather(1, top).to(batch.intensity.dtype),
            peak_mask=all_mask.gather(1, top),
            precursor_mass=precursor_mass.to(batch.precursor_mass.dtype),
            charge=batch.charge,
            tokens=batch.tokens,
        )


def _cdf(probabilities: Sequence[float]) -> torch.Tensor:
    """Cumulative distribution of bin probabilities (normalised), for inverse-CDF draws."""
    cumulative = np.cumsum(np.asarray(probabilities, dtype=np.float64))
    return torch.tensor(cumulative / cumulative[-1], dtype=torch.float32)


def _rank(values: torch.Tensor) -> torch.Tensor:
    """1-based descending rank of each value along the last dimension."""
    order = torch.argsort(values, dim=-1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(1, values.shape[-1] + 1).expand_as(order).contiguous())
    return ranks
