"""Settings of the de novo stage: the instrument file and what a calibrated model stores.

The instrument file (``config/instruments/*.yaml``) fixes the precursor tolerance, the
isotope errors, the charges to try for spectra without one and the missing-charge policy.
``trm calibrate`` stores the decoding settings it calibrated under in the model file
(:class:`InferenceSettings`), so ``trm denovo`` decodes the same way by default and warns
when told otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trm.decode import DecodingSettings

#: Raw scores ``trm calibrate`` can calibrate (see :func:`trm.denovo.inference.raw_scores`).
RAW_SCORE_KINDS: tuple[str, ...] = ("peptide", "halt", "combined")

#: Missing-charge policies of the instrument file.
MISSING_CHARGE_POLICIES: tuple[str, ...] = ("try", "skip")


class InstrumentFileError(ValueError):
    """The instrument YAML is missing, unreadable or holds an invalid setting."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class InstrumentSettings:
    """What the de novo stage takes from an instrument file.

    Attributes
    ----------
    precursor_tolerance_ppm : float
        Largest accepted peptide-precursor mass difference (ppm).
    isotope_errors : tuple of int
        Lowest and highest isotope error of the precursor (13C spacings).
    charges : tuple of int
        Charges the instrument produces; tried for spectra without one (policy ``try``).
    missing_charge : str
        ``try`` or ``skip``.
    """

    precursor_tolerance_ppm: float = 20.0
    isotope_errors: tuple[int, int] = (0, 1)
    charges: tuple[int, ...] = (2, 3, 4)
    missing_charge: str = "try"


def load_instrument(path: str | Path) -> InstrumentSettings:
    """Read and check an instrument YAML file.

    Parameters
    ----------
    path : path
        ``config/instruments/<name>.yaml``.

    Returns
    -------
    InstrumentSettings
        Keys the file does not set keep their defaults, except
        ``precursor_tolerance_ppm``, which is required.

    Raises
    ------
    InstrumentFileError
        Naming the file and the offending key.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as error:
        raise InstrumentFileError(path, f"cannot read the instrument file ({error})") from error
    except yaml.YAMLError as error:
        raise InstrumentFileError(path, f"not valid YAML ({error})") from error
    if not isinstance(data, dict):
        raise InstrumentFileError(path, "expected a mapping of instrument settings")
    defaults = InstrumentSettings()
    if "precursor_tolerance_ppm" not in data:
        raise InstrumentFileError(path, "precursor_tolerance_ppm is required")
    try:
        tolerance = float(data["precursor_tolerance_ppm"])
        isotopes = tuple(int(v) for v in data.get("isotope_errors", defaults.isotope_errors))
        charges = tuple(int(v) for v in data.get("charges", defaults.charges))
    except (TypeError, ValueError) as error:
        raise InstrumentFileError(path, f"invalid number ({error})") from error
    policy = str(data.get("missing_charge", defaults.missing_charge))
    if not math.isfinite(tolerance) or tolerance <= 0:
        raise InstrumentFileError(path, "precursor_tolerance_ppm must be positive")
    if len(isotopes) != 2 or isotopes[0] > isotopes[1]:
        raise InstrumentFileError(path, "isotope_errors must be [lowest, highest]")
    if not charges or min(charges) < 1:
        raise InstrumentFileError(path, "charges must list positive charges")
    if policy not in MISSING_CHARGE_POLICIES:
        raise InstrumentFileError(
            path, f"missing_charge must be one of {MISSING_CHARGE_POLICIES}, not {policy!r}"
        )
    return InstrumentSettings(
        precursor_tolerance_ppm=tolerance,
        isotope_errors=(isotopes[0], isotopes[1]),
        charges=charges,
        missing_charge=policy,
    )


def parse_halt_threshold(text: str) -> float | None:
    """``--halt-threshold``: a probability in (0, 1], or ``none`` to run every step."""
    if text.strip().lower() in ("none", "off", "no"):
        return None
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"halt threshold must lie in (0, 1] or be 'none', got {text!r}")
    return value


@dataclass(frozen=True)
class InferenceSettings:
    """Everything that decides which peptide and raw score a spectrum gets.

    Attributes
    ----------
    decoding : DecodingSettings
        Beam size, precursor tolerance, isotope errors, shortest peptide.
    halt_threshold : float or None
        Early exit once the halting probability reaches it; None runs all steps.
    raw_score : str
        One of :data:`RAW_SCORE_KINDS`.
    """

    decoding: DecodingSettings = DecodingSettings()
    halt_threshold: float | None = 0.9
    raw_score: str = "peptide"

    def __post_init__(self) -> None:
        if self.raw_score not in RAW_SCORE_KINDS:
            raise ValueError(f"raw score must be one of {RAW_SCORE_KINDS}, not {self.raw_score!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for the model file (``weights_only`` loadable) and JSON."""
        decoding = dataclasses.asdict(self.decoding)
        decoding["isotope_errors"] = list(self.decoding.isotope_errors)
        return {**decoding, "halt_threshold": self.halt_threshold, "raw_score": self.raw_score}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceSettings:
        """Inverse of :meth:`to_dict`."""
        low, high = data["isotope_errors"]
        decoding = DecodingSettings(
            precursor_tolerance_ppm=float(data["precursor_tolerance_ppm"]),
            isotope_errors=(int(low), int(high)),
            beam_size=int(data["beam_size"]),
            min_residues=int(data["min_residues"]),
        )
        threshold = data.get("halt_threshold")
        return cls(
            decoding=decoding,
            halt_threshold=None if threshold is None else float(threshold),
            raw_score=str(data.get("raw_score", "peptide")),
        )

    def differences(self, other: InferenceSettings) -> list[str]:
        """Settings that differ from ``other``, as ``name: mine vs other``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{key}: {mine[key]} vs {theirs[key]}" for key in mine if mine[key] != theirs[key]]
