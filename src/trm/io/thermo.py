"""Thermo ``.raw`` files: located tools and the offline reader.

Two ways to turn a ``.raw`` file into mzML, in order of preference:

1. ThermoRawFileParser, the tool labs use, when ``ThermoRawFileParser`` or
   ``thermorawfileparser`` (bioconda's name) is on ``PATH``.
2. Thermo's RawFileReader assemblies shipped in the PyPI package ``alpharaw``, run by
   Debian's Mono through pythonnet. Scans are read one at a time through alpharaw's thin
   ``RawFileReader`` wrapper (its whole-file ``ThermoRawData`` loader would hold the run in
   memory, and its mzML writer numbers scans from 0 and calls every MS2 scan HCD), and
   the project builds the spectra itself: native ids
   ``controllerType=0 controllerNumber=1 scan=N`` with the vendor's 1-based scan numbers,
   precursor m/z and charge from the scan trailer as ThermoRawFileParser chooses them,
   and the activation method of the scan's reactions.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from trm.io.errors import SpectrumFileError

log = logging.getLogger(__name__)

#: Executable names of ThermoRawFileParser: the upstream release and bioconda's wrapper.
THERMORAWFILEPARSER_NAMES: tuple[str, ...] = ("ThermoRawFileParser", "thermorawfileparser")

#: Output format code of ThermoRawFileParser's ``--format`` for indexed mzML.
_TRFP_INDEXED_MZML = "2"

#: Thermo ``ActivationType`` enumeration values -> pyopenms activation method names.
_THERMO_ACTIVATION = {0: "CID", 2: "ECD", 3: "PQD", 4: "ETD", 5: "HCD"}

#: Monoisotopic m/z values closer than this to the isolation target are the same value
#: written at two precisions; the target is kept then.
_SAME_MZ_DELTA = 1e-4


def find_thermorawfileparser() -> str | None:
    """Path of a ThermoRawFileParser executable on ``PATH``, or None."""
    for name in THERMORAWFILEPARSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def run_thermorawfileparser(executable: str, raw_path: Path, mzml_path: Path) -> None:
    """Convert with ThermoRawFileParser into an indexed mzML at ``mzml_path``.

    Raises
    ------
    SpectrumFileError
        When the tool exits non-zero (its stderr is quoted) or writes nothing.
    """
    command = [
        executable,
        f"--input={raw_path}",
        f"--output_file={mzml_path}",
        f"--format={_TRFP_INDEXED_MZML}",
    ]
    log.info("running %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not mzml_path.exists():
        tail = (result.stderr or result.stdout).strip()[-2000:]
        raise SpectrumFileError(
            raw_path, f"ThermoRawFileParser failed (exit {result.returncode}): {tail}"
        )


def thermo_reader_problem() -> str | None:
    """Why the offline Thermo reader cannot run here, or None when it can."""
    if shutil.which("mono") is None:
        return (
            "Mono is not installed (Debian: apt-get install mono-runtime "
            "libmono-system-core4.0-cil ...; see the install script)"
        )
    try:
        with warnings.catch_warnings():
            # clr_loader warns that Debian's Mono 6.8 predates 6.12; reading works (tested
            # against ThermoRawFileParser's and msconvert's conversions).
            warnings.filterwarnings("ignore", message="Hosting Mono", category=UserWarning)
            from alpharaw.raw_access import pythermorawfilereader
    except ImportError as error:
        return f"the Python package alpharaw is not importable ({error})"
    if not pythermorawfilereader.HAS_DOTNET:
        return "pythonnet could not load Mono and Thermo's RawFileReader assemblies"
    return None


@contextmanager
def _open_raw(path: Path) -> Iterator[object]:
    problem = thermo_reader_problem()
    if problem is not None:
        raise SpectrumFileError(path, f"cannot read Thermo .raw files here: {problem}")
    from alpharaw.raw_access.pythermorawfilereader import RawFileReader

    try:
        reader = RawFileReader(str(path))
    except Exception as error:  # noqa: BLE001 - .NET raises many kinds
        raise SpectrumFileError(path, f"not a readable Thermo .raw file: {error}") from error
    try:
        yield reader
    finally:
        reader.Close()


def _trailer_float(trailer: dict, key: str) -> float | None:
    try:
        value = float(str(trailer.get(key, "")).strip())
    except ValueError:
        return None
    return value if value > 0 else None


def selected_ion_mz(isolation_target: float, monoisotopic_mz: float | None) -> float:
    """Precursor m/z to report: the instrument's monoisotopic pick when it made one.

    The trailer's ``Monoisotopic M/Z`` corrects an isolation centred on a heavier isotope
    (it may then lie outside a narrow isolation window, by whole isotope spacings); it
    is what ThermoRawFileParser and msconvert report, so conversions agree with theirs.
    Without it the isolation target is the precursor m/z.
    """
    if monoisotopic_mz is None or abs(monoisotopic_mz - isolation_target) <= _SAME_MZ_DELTA:
        return isolation_target
    return monoisotopic_mz


def _centroids(reader: object, scan: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Centroided peaks of a scan; the flag is False when only profile data exist."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mz, intensity = reader.GetCentroidMassListFromScanNum(scan)  # type: ignore[attr-defined]
    centroided = not any("cannot be centroided" in str(w.message) for w in caught)
    return np.asarray(mz, dtype=np.float64), np.asarray(intensity, dtype=np.float64), centroided


def _activations(scan_event: object, reaction_index: int) -> set[str]:
    """Activation names of every reaction on the same precursor (EThcD has two)."""
    primary = scan_event.GetReaction(reaction_index)  # type: ignore[attr-defined]
    names = set()
    for index in range(scan_event.MassCount):  # type: ignore[attr-defined]
        reaction = scan_event.GetReaction(index)  # type: ignore[attr-defined]
        if abs(reaction.PrecursorMass - primary.PrecursorMass) > 1e-3:
            continue
        name = _THERMO_ACTIVATION.get(int(reaction.ActivationType))
        if name is not None:
            names.add(name)
    return names


def iter_thermo_spectra(path: str | Path) -> Iterator[object]:
    """Stream the scans of a Thermo ``.raw`` file as pyopenms ``MSSpectrum`` objects.

    One scan is in memory at a time. The first item yielded is the number of scans
    (an int), so a writer can announce the count before the spectra.

    Yields
    ------
    int, then pyopenms.MSSpectrum
    """
    import pyopenms as oms

    path = Path(path)
    activation_enum = oms.Precursor.ActivationMethod
    with _open_raw(path) as reader:
        first, last = reader.FirstSpectrumNumber, reader.LastSpectrumNumber  # type: ignore[attr-defined]
        yield last - first + 1
        for scan in range(first, last + 1):
            ms_level = reader.GetMSOrderForScanNum(scan)  # type: ignore[attr-defined]
            spectrum = oms.MSSpectrum()
            spectrum.setNativeID(f"controllerType=0 controllerNumber=1 scan={scan}")
            spectrum.setMSLevel(max(ms_level, 1))
            spectrum.setRT(reader.RTInSecondsFromScanNum(scan))  # type: ignore[attr-defined]
            spectrum.setMetaValue(
                "filter string",
                str(reader.GetScanEventStringForScanNum(scan)),  # type: ignore[attr-defined]
            )
            mz, intensity, centroided = _centroids(reader, scan)
            spectrum.set_peaks((mz, intensity))
            spectrum.setType(
                oms.SpectrumSettings.SpectrumType.CENTROID
                if centroided
                else oms.SpectrumSettings.SpectrumType.PROFILE
            )
            if ms_level >= 2:
                spectrum.setPrecursors([_precursor(reader, scan, ms_level, activation_enum)])
            yield spectrum


def _precursor(reader: object, scan: int, ms_level: int, activation_enum: object) -> object:
    import pyopenms as oms

    scan_event = reader.GetScanEventForScanNum(scan)  # type: ignore[attr-defined]
    # Reaction k isolates the precursor of MS level k + 2.
    reaction_index = min(ms_level - 2, scan_event.MassCount - 1)
    reaction = scan_event.GetReaction(reaction_index)
    trailer = reader.GetTrailerExtraForScanNum(scan)  # type: ignore[attr-defined]
    isolation_width = _trailer_float(trailer, f"MS{ms_level} Isolation Width:")
    if isolation_width is None:
        isolation_width = float(reaction.IsolationWidth) or None
    charge = _trailer_float(trailer, "Charge State:")
    precursor = oms.Precursor()
    precursor.setMZ(
        selected_ion_mz(float(reaction.PrecursorMass), _trailer_float(trailer, "Monoisotopic M/Z:"))
    )
    precursor.setCharge(int(charge) if charge else 0)
    if isolation_width:
        precursor.setIsolationWindowLowerOffset(isolation_width / 2)
        precursor.setIsolationWindowUpperOffset(isolation_width / 2)
    precursor.setActivationEnergy(float(reaction.CollisionEnergy))
    names = _activations(scan_event, reaction_index)
    if names == {"ETD", "HCD"}:
        methods = {activation_enum.EThcD}  # type: ignore[attr-defined]
    elif names == {"ETD", "CID"}:
        methods = {activation_enum.ETciD}  # type: ignore[attr-defined]
    else:
        methods = {getattr(activation_enum, name) for name in names}
    precursor.setActivationMethods(methods)
    return precursor
