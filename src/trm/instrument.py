"""The instrument file (``config/instruments/<name>.yaml``), read and checked once for
every stage that sequences spectra: precursor tolerance, isotope errors, the charges the
instrument produces and what to do with spectra that have no charge."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

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
