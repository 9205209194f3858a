"""An instrument's fitted noise model: its parameters and its file.

``trm fit-noise`` (:mod:`trm.synth.noise_fit`) estimates, from an instrument's identified
spectra, how real spectra differ from predicted ones: which fragments are observed (by
predicted intensity rank, series and position), their intensity and m/z errors, doubly
charged fragments, isotopes, a ions, neutral losses, immonium and precursor peaks, and the
unexplained peaks. :class:`NoiseModelParameters` holds them and reads and writes the YAML
file (``results/noise/<instrument>.yaml``, ``resources/noise/``). Training draws the noise
onto synthetic spectra (:class:`trm.train.noise.FittedNoise`); decoding reads the
fragment probabilities.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trm.errors import InputError

#: Lower bounds of the predicted (or observed) intensity rank buckets of a fragment.
INTENSITY_RANK_EDGES: tuple[int, ...] = (1, 2, 3, 5, 9, 17, 33)
#: Lower bounds of the position buckets ((ion number - 1) / (residues - 2), 0..1).
POSITION_EDGES: tuple[float, ...] = (0.0, 0.2, 0.8)
#: Lower bounds of the b ion number buckets for a ions.
A_ION_NUMBER_EDGES: tuple[int, ...] = (1, 2, 3, 4)
#: Lower bounds of the neutral fragment mass buckets (Da) for doubly charged fragments.
DOUBLE_CHARGE_MASS_EDGES: tuple[float, ...] = (0.0, 500.0, 1000.0, 1500.0)
#: Precursor peak kinds: ``3 * (z - c) + loss`` for peak charge c = z..z-3 and loss 0
#: (intact), 1 (water), 2 (ammonia).
N_PRECURSOR_KINDS = 12
#: Bin edges of the unexplained peaks' m/z relative to the peptide's [M+H]+.
UNEXPLAINED_MZ_EDGES: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.2, 25), 3).tolist())
#: Bin edges of log10 of the unexplained peaks' intensity relative to the reference.
UNEXPLAINED_INTENSITY_EDGES: tuple[float, ...] = tuple(
    np.round(np.arange(-5.0, 0.501, 0.25), 2).tolist()
)

NOISE_FILE_FORMAT = "trm-noise-model"
#: Keys added after noise models were first written, with the value that reproduces an
#: older model's noise.
_ADDED_LATER: dict[str, object] = {
    "precursor_error": {
        "ppm": {"mean": 0.0, "sd": 0.0, "n": 0},
        "isotope_probability": [1.0, 0.0, 0.0],
    }
}
NOISE_FILE_VERSION = 1


class NoiseModelError(InputError):
    """A noise model file that cannot be read or used."""


def bucket(values: Any, lower_bounds: Sequence[float]) -> Any:
    """Index of the bucket each value falls in, given the buckets' lower bounds (values
    below the first bound go to the first bucket). numpy in, numpy out; torch likewise."""
    if hasattr(values, "clamp"):  # a torch tensor
        import torch

        bounds = torch.tensor(lower_bounds, dtype=values.dtype if values.is_floating_point()
                              else torch.float64)  # fmt: skip
        index = torch.searchsorted(bounds, values.to(bounds.dtype).contiguous(), right=True) - 1
        return index.clamp_min(0)
    index = np.searchsorted(np.asarray(lower_bounds, dtype=np.float64), values, side="right") - 1
    return np.maximum(index, 0)


def log_unexplained_count(count_model: dict, precursor_mz: Any, charge: Any) -> Any:
    """ln(1 + expected number of unexplained peaks) of spectra, without the residual, from
    a noise model's ``unexplained_count``: precursor m/z and charge are clamped to the
    ranges it was fitted on, so that no count is extrapolated (a fit on charge 2 and 3
    spectra gives charge 4 the count of charge 3, not a further 4-fold more peaks).

    ``precursor_mz`` and ``charge`` are numpy arrays or torch tensors (float), of one shape.
    """
    lowest, highest = count_model.get("charge_range", (-math.inf, math.inf))
    return (
        count_model["intercept"]
        + count_model["per_precursor_kmz"]
        * precursor_mz.clip(*count_model["precursor_mz_range"])
        / 1000.0
        + count_model["per_charge"] * (charge.clip(lowest, highest) - 2.0)
    )


@dataclass
class NoiseModelParameters:
    """An instrument's fitted noise model, as stored in ``results/noise/<instrument>.yaml``.

    Probabilities are shrunk towards their pooled rate where a cell has few observations;
    every table has its counts beside it (``*_n``). Intensities of added peaks are
    log10-normal relative to the spectrum's summed singly charged b/y intensity, or
    (isotopes, losses) to their parent fragment. See :mod:`trm.synth.noise_fit` for how
    each is estimated.

    Attributes
    ----------
    fragment_tolerance_da : float
        Tolerance the spectra were annotated at.
    sample_sizes : dict
        Spectra, predicted and matched fragments, unexplained peaks.
    fragment_observed : list
        Probability that a predicted charge-1 fragment is observed, indexed
        [series (b, y)][rank bucket][position bucket].
    double_charge_observed : list
        Probability of a doubly charged fragment (precursor charge >= 3) by neutral mass
        bucket; ``double_charge_intensity`` its log10 relative intensity.
    intensity_residual : dict
        Natural-log spread (``sd``) of observed against predicted intensities.
    ppm_offset, ppm_spread : dict
        Per-spectrum m/z offset and per-peak spread around it (ppm).
    isotope_observed : list
        Probability of a fragment's 13C peak by the fragment's intensity rank bucket;
        ``isotope_ratio``: ln(I_iso / I_mono) = intercept + per_kda * mass / 1000, sd.
    a_ion_observed : list
        Probability of an a ion by b ion number bucket; ``a_ion_intensity``.
    loss_observed : list
        [water, ammonia][b, y]: probability that an observed fragment shows the loss;
        ``loss_ratio``: log10(I_loss / I_parent) per loss.
    precursor_observed : list
        Probability per precursor peak kind (:data:`N_PRECURSOR_KINDS`);
        ``precursor_intensity``.
    immonium : dict
        Residue token -> ``{"probability", "n"}`` given the residue is in the peptide;
        ``immonium_intensity``.
    unexplained_count : dict
        ln(1 + count) = intercept + per_precursor_kmz * precursor m/z / 1000 +
        per_charge * (charge - 2), residual ``sd``; precursor m/z is clamped to the
        fitted ``precursor_mz_range`` and the charge to the fitted ``charge_range`` (the
        charges of the spectra it was fitted on; files written before it have none and
        are not clamped): :func:`log_unexplained_count`.
    precursor_error : dict
        The precursor's mass error: ``ppm`` (mean, sd) and ``isotope_probability`` (share
        of precursors picked at the 0th, 1st and 2nd 13C isotope peak).
    unexplained_mz, unexplained_intensity : list
        Bin probabilities over :data:`UNEXPLAINED_MZ_EDGES` and
        :data:`UNEXPLAINED_INTENSITY_EDGES`.
    provenance : dict
        Where the spectra came from and how the model was made.
    """

    fragment_tolerance_da: float
    sample_sizes: dict
    fragment_observed: list
    fragment_observed_n: list
    double_charge_observed: list
    double_charge_observed_n: list
    double_charge_intensity: dict
    intensity_residual: dict
    ppm_offset: dict
    ppm_spread: dict
    isotope_observed: list
    isotope_observed_n: list
    isotope_ratio: dict
    a_ion_observed: list
    a_ion_observed_n: list
    a_ion_intensity: dict
    loss_observed: list
    loss_observed_n: list
    loss_ratio: list
    precursor_observed: list
    precursor_observed_n: list
    precursor_intensity: dict
    immonium: dict
    immonium_intensity: dict
    unexplained_count: dict
    precursor_error: dict
    unexplained_mz: list
    unexplained_intensity: list
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain types, for YAML and checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "noise model") -> NoiseModelParameters:
        """Inverse of :meth:`to_dict`, checking keys and table shapes. A model written
        before a key existed gets that key's "no such noise" value
        (:data:`_ADDED_LATER`)."""
        values = {**_ADDED_LATER, **values}
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(values) - {"provenance"})
        unknown = sorted(set(values) - names)
        if missing or unknown:
            raise NoiseModelError(
                f"{source}: missing keys {missing}, unknown keys {unknown}"
                if missing
                else f"{source}: unknown keys {unknown}"
            )
        parameters = cls(**values)
        shapes = {
            "fragment_observed": (2, len(INTENSITY_RANK_EDGES), len(POSITION_EDGES)),
            "double_charge_observed": (len(DOUBLE_CHARGE_MASS_EDGES),),
            "isotope_observed": (len(INTENSITY_RANK_EDGES),),
            "a_ion_observed": (len(A_ION_NUMBER_EDGES),),
            "loss_observed": (2, 2),
            "precursor_observed": (N_PRECURSOR_KINDS,),
            "unexplained_mz": (len(UNEXPLAINED_MZ_EDGES) - 1,),
            "unexplained_intensity": (len(UNEXPLAINED_INTENSITY_EDGES) - 1,),
        }
        for name, shape in shapes.items():
            array = np.asarray(getattr(parameters, name), dtype=np.float64)
            if array.shape != shape:
                raise NoiseModelError(f"{source}: {name} has shape {array.shape}, not {shape}")
            if not np.all((array >= 0) & (array <= 1)):
                raise NoiseModelError(f"{source}: {name} holds values outside [0, 1]")
        return parameters

    def write(self, path: str | Path) -> None:
        """Write as YAML with a format header (atomically)."""
        from trm.atomic import atomic_output

        document = {"format": NOISE_FILE_FORMAT, "version": NOISE_FILE_VERSION, **self.to_dict()}
        with atomic_output(path) as temporary:
            temporary.write_text(
                yaml.safe_dump(document, sort_keys=False, width=100), encoding="utf-8"
            )

    @classmethod
    def read(cls, path: str | Path) -> NoiseModelParameters:
        """Read a noise model YAML written by :meth:`write`.

        Raises
        ------
        NoiseModelError
            Naming the file, for an unreadable file or wrong content.
        """
        path = Path(path)
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise NoiseModelError(f"{path}: cannot read the noise model ({error})") from error
        if not isinstance(document, dict) or document.get("format") != NOISE_FILE_FORMAT:
            raise NoiseModelError(f"{path}: not a trm noise model file")
        if document.get("version") != NOISE_FILE_VERSION:
            raise NoiseModelError(
                f"{path}: noise model version {document.get('version')}, this trm reads "
                f"{NOISE_FILE_VERSION}"
            )
        values = {k: v for k, v in document.items() if k not in ("format", "version")}
        return cls.from_dict(values, source=str(path))
