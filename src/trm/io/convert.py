"""Any supported spectrum file to one validated, indexed mzML.

Thermo ``.raw`` goes through ThermoRawFileParser when it is on ``PATH``, else through the
offline reader of :mod:`trm.io.thermo`; mzML, mzXML and MGF are streamed through
pyopenms. Every spectrum written is checked (finite peaks), and the output is written to
a temporary file next to the target and renamed into place only when the whole input has
been read, so a failed conversion leaves no partial file behind.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trm.atomic import atomic_output
from trm.io.errors import SpectrumFileError, UnsupportedFormatError
from trm.io.mgf import MgfFieldError, count_mgf_spectra, iter_mgf, spectrum_name
from trm.io.spectra import (
    PEAK_LIST_SCANS_KEY,
    SPECTRUM_TITLE_KEY,
    check_xml_file,
    detect_format,
)
from trm.io.thermo import find_thermorawfileparser, iter_thermo_spectra, run_thermorawfileparser

log = logging.getLogger(__name__)

#: Input formats ``convert_to_mzml`` accepts, for messages and the CLI help.
CONVERTIBLE_FORMATS = ".raw (Thermo), .mzML, .mzXML, .mgf"


@dataclass
class ConversionSummary:
    """What a conversion wrote.

    Attributes
    ----------
    n_spectra : int
        Spectra of every MS level written.
    n_ms2 : int
        MS2 spectra written.
    n_empty_ms2 : int
        MS2 spectra without peaks (written, and reported).
    method : str
        How the input was read (``pyopenms``, ``mgf``, ``alpharaw``,
        ``ThermoRawFileParser``).
    """

    n_spectra: int = 0
    n_ms2: int = 0
    n_empty_ms2: int = 0
    method: str = ""


class _CheckedWriter:
    """Stream spectra into an indexed mzML, checking each one on the way.

    Also a pyopenms consumer, so ``MzMLFile.transform`` can feed it directly.
    """

    def __init__(self, source: Path, target: Path, summary: ConversionSummary) -> None:
        import pyopenms as oms

        self.source = source
        self.summary = summary
        #: The check that failed inside ``transform`` (which reports only that the
        #: callback raised).
        self.error: SpectrumFileError | None = None
        self._writer = oms.PlainMSDataWritingConsumer(str(target))

    def setExperimentalSettings(self, settings: object) -> None:  # noqa: N802 - pyopenms API
        """Run metadata (instrument, source files) goes to the output unchanged."""
        self._writer.setExperimentalSettings(settings)

    def setExpectedSize(self, n_spectra: int, n_chromatograms: int) -> None:  # noqa: N802
        """Announce the counts, so the mzML's ``spectrumList count`` is right."""
        self._writer.setExpectedSize(n_spectra, 0)

    def consumeChromatogram(self, chromatogram: object) -> None:  # noqa: N802 - pyopenms API
        """Chromatograms are left out: no stage reads them."""

    def consumeSpectrum(self, spectrum: object) -> None:  # noqa: N802 - pyopenms API
        """Check one spectrum and write it."""
        mz, intensity = spectrum.get_peaks()  # type: ignore[attr-defined]
        for name, values in (("m/z", mz), ("intensity", intensity)):
            if values.size and not np.isfinite(values).all():
                self.error = SpectrumFileError(
                    self.source,
                    f"NaN or infinite {name} values",
                    spectrum.getNativeID(),  # type: ignore[attr-defined]
                )
                raise self.error
        self.summary.n_spectra += 1
        if spectrum.getMSLevel() == 2:  # type: ignore[attr-defined]
            self.summary.n_ms2 += 1
            if mz.size == 0:
                self.summary.n_empty_ms2 += 1
        self._writer.consumeSpectrum(spectrum)

    def close(self) -> None:
        """Finish the file: OpenMS writes the index and footer when the writer is freed."""
        del self._writer


#: Format name -> (file format CV name, accession, native id format name, accession).
_SOURCE_FORMATS = {
    "thermo": ("Thermo RAW format", "MS:1000563", "Thermo nativeID format", "MS:1000768"),
    "mgf": ("Mascot MGF format", "MS:1001062", "multiple peak list nativeID format", "MS:1000774"),
}


def _source_settings(path: Path, fmt: str) -> object:
    """Run metadata naming the input file (name and SHA-1, not its location, so outputs
    do not depend on where the input lay) and its native id format."""
    import pyopenms as oms

    file_type, _, id_type, id_accession = _SOURCE_FORMATS[fmt]
    source = oms.SourceFile()
    source.setNameOfFile(path.name)
    digest = hashlib.sha1()  # the checksum term of mzML source files is SHA-1
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    source.setChecksum(digest.hexdigest(), oms.SourceFile.ChecksumType.SHA1)
    source.setFileType(file_type)
    source.setNativeIDType(id_type)
    source.setNativeIDTypeAccession(id_accession)
    settings = oms.ExperimentalSettings()
    settings.setSourceFiles([source])
    return settings


def _spectra_from_mgf(path: Path) -> Iterator[object]:
    import pyopenms as oms

    for block in iter_mgf(path):
        try:
            block.precursor_mz, block.rt_seconds  # noqa: B018 - checked before writing
        except MgfFieldError as error:
            raise SpectrumFileError(
                path, str(error), spectrum_name(block.params, block.index)
            ) from None
        spectrum = oms.MSSpectrum()
        # msconvert's convention for peak lists: native id index=N, TITLE and SCANS as
        # the mzML terms "spectrum title" and "peak list scans".
        spectrum.setNativeID(f"index={block.index}")
        spectrum.setMSLevel(2)
        spectrum.setType(oms.SpectrumSettings.SpectrumType.CENTROID)
        if block.rt_seconds is not None:
            spectrum.setRT(block.rt_seconds)
        if "TITLE" in block.params:
            spectrum.setMetaValue(SPECTRUM_TITLE_KEY, block.params["TITLE"])
        if "SCANS" in block.params:
            spectrum.setMetaValue(PEAK_LIST_SCANS_KEY, block.params["SCANS"])
        precursor = oms.Precursor()
        if block.precursor_mz is not None:
            precursor.setMZ(block.precursor_mz)
        precursor.setCharge(block.charge or 0)
        spectrum.setPrecursors([precursor])
        order = np.argsort(block.mz, kind="stable")
        spectrum.set_peaks((block.mz[order], block.intensity[order]))
        yield spectrum


def _check_input(path: Path, fmt: str) -> None:
    if not path.exists():
        raise SpectrumFileError(path, "file does not exist")
    if fmt == "bruker" or (path.is_dir() and fmt != "thermo"):
        raise UnsupportedFormatError(
            path,
            "unsupported input format: Bruker .d cannot be read here (its reader is a "
            f"proprietary library); supported: {CONVERTIBLE_FORMATS}",
        )
    if path.is_dir():
        raise SpectrumFileError(path, "is a directory, not a spectrum file")
    if path.stat().st_size == 0:
        raise SpectrumFileError(path, "file is empty")
    if fmt in ("mzml", "mzxml"):
        check_xml_file(path, fmt)


def _write(input_path: Path, fmt: str, target: Path, summary: ConversionSummary) -> None:
    import pyopenms as oms

    writer = _CheckedWriter(input_path, target, summary)
    try:
        if fmt in ("mzml", "mzxml"):
            summary.method = "pyopenms"
            handler = oms.MzMLFile() if fmt == "mzml" else oms.MzXMLFile()
            try:
                handler.transform(str(input_path).encode(), writer)
            except RuntimeError as error:
                if writer.error is not None:
                    raise writer.error from None
                raise SpectrumFileError(
                    input_path, f"not a readable {fmt} file (malformed XML): {error}"
                ) from error
        elif fmt == "mgf":
            summary.method = "mgf"
            writer.setExperimentalSettings(_source_settings(input_path, "mgf"))
            writer.setExpectedSize(count_mgf_spectra(input_path), 0)
            for spectrum in _spectra_from_mgf(input_path):
                writer.consumeSpectrum(spectrum)
        else:
            summary.method = "alpharaw"
            writer.setExperimentalSettings(_source_settings(input_path, "thermo"))
            spectra = iter_thermo_spectra(input_path)
            writer.setExpectedSize(next(spectra), 0)  # type: ignore[arg-type]
            for spectrum in spectra:
                writer.consumeSpectrum(spectrum)
    finally:
        writer.close()


def convert_to_mzml(
    input_path: str | Path, output_path: str | Path, use_thermorawfileparser: bool = True
) -> ConversionSummary:
    """Convert a spectrum file into an indexed mzML, atomically.

    Parameters
    ----------
    input_path : str or Path
        Thermo ``.raw``, ``.mzML``, ``.mzXML`` or ``.mgf``.
    output_path : str or Path
        The mzML to write; its directory is created. Replaced only on success.
    use_thermorawfileparser : bool
        Use ThermoRawFileParser for ``.raw`` when it is on ``PATH`` (else, or when
        False, the offline alpharaw/Mono reader).

    Returns
    -------
    ConversionSummary

    Raises
    ------
    UnsupportedFormatError
        For Bruker ``.d`` and any other format, listing the supported ones.
    SpectrumFileError
        For an empty, truncated or malformed input, NaN peaks (naming the spectrum), a
        file without MS2 spectra or whose MS2 spectra all lack peaks.
    """
    input_path = Path(input_path)
    output_path = Path(output_path)
    fmt = detect_format(input_path)
    _check_input(input_path, fmt)
    summary = ConversionSummary()
    with atomic_output(output_path) as temporary:
        trfp = find_thermorawfileparser() if fmt == "thermo" and use_thermorawfileparser else None
        if trfp is not None:
            # ThermoRawFileParser's output is streamed through the checked writer too, so
            # every route ends in the same validation.
            with tempfile.TemporaryDirectory(prefix=".trfp.", dir=output_path.parent) as folder:
                raw_mzml = Path(folder) / f"{input_path.stem}.mzML"
                run_thermorawfileparser(trfp, input_path, raw_mzml)
                _write(raw_mzml, "mzml", temporary, summary)
            summary.method = "ThermoRawFileParser"
        else:
            _write(input_path, fmt, temporary, summary)
        if summary.n_ms2 == 0:
            raise SpectrumFileError(input_path, "no MS2 spectra in the file (MS1 only?)")
        if summary.n_empty_ms2 == summary.n_ms2:
            raise SpectrumFileError(
                input_path, f"none of its {summary.n_ms2} MS2 spectra has peaks"
            )
    if summary.n_empty_ms2:
        log.warning(
            "%s: %d of %d MS2 spectra have no peaks (kept; later stages list them as skipped)",
            input_path,
            summary.n_empty_ms2,
            summary.n_ms2,
        )
    log.info(
        "%s -> %s: %d spectra, %d MS2 (%s)",
        input_path,
        output_path,
        summary.n_spectra,
        summary.n_ms2,
        summary.method,
    )
    return summary
