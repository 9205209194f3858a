"""A streaming MGF (Mascot Generic Format) parser.

pyopenms reads MGF only into a whole in-memory experiment, rewrites TITLE (it appends
``_index=N``) and drops keys it does not know (``SEQ=``, ``SCANS=`` of some writers), so
the project parses MGF itself: one spectrum at a time, every header key kept verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trm.errors import InputError
from trm.io.errors import SpectrumFileError


class MgfFieldError(InputError):
    """A header value of an MGF block is not what its key needs (a number, say).

    Attributes
    ----------
    key : str
    value : str
    """

    def __init__(self, key: str, value: str, expected: str) -> None:
        self.key, self.value = key, value
        super().__init__(f"{key}={value!r} is not {expected}")


def _float(key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise MgfFieldError(key, text, "a number") from None


@dataclass
class MgfSpectrum:
    """One ``BEGIN IONS`` ... ``END IONS`` block.

    Attributes
    ----------
    index : int
        0-based position of the block in the file.
    params : dict of str to str
        Header lines ``KEY=value`` with upper-case keys, values as written.
    mz : numpy.ndarray of shape (n_peaks,), float64
    intensity : numpy.ndarray of shape (n_peaks,), float64
    """

    index: int
    params: dict[str, str] = field(default_factory=dict)
    mz: np.ndarray = field(default_factory=lambda: np.empty(0))
    intensity: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def title(self) -> str:
        """TITLE, or ``index=N`` when the block has none (the mzML convention)."""
        return self.params.get("TITLE") or f"index={self.index}"

    @property
    def precursor_mz(self) -> float | None:
        """First number of PEPMASS (the second, when present, is an intensity)."""
        pepmass = self.params.get("PEPMASS", "").split()
        return _float("PEPMASS", pepmass[0]) if pepmass else None

    @property
    def charge(self) -> int | None:
        """CHARGE as a signed integer; None when absent or ambiguous (``2+ and 3+``)."""
        return parse_mgf_charge(self.params.get("CHARGE", ""))

    @property
    def rt_seconds(self) -> float | None:
        """RTINSECONDS (first value of a range)."""
        text = self.params.get("RTINSECONDS", "").split("-")[0].strip()
        return _float("RTINSECONDS", text) if text else None

    @property
    def scan(self) -> int | None:
        """SCANS (first scan of a range or list); None when absent."""
        text = self.params.get("SCANS", "").replace(",", "-").split("-")[0].strip()
        return int(text) if text.isdigit() else None


def parse_mgf_charge(text: str) -> int | None:
    """``2+`` -> 2, ``3-`` -> -3, ``2`` -> 2, ``2.0+`` -> 2 (as the PRIDE cluster export
    writes it); several charges, none, a fraction or ``0`` (the way some writers say
    "unknown") -> None."""
    text = text.strip()
    if not text or "," in text or " and " in text:
        return None
    sign = -1 if text.endswith("-") else 1
    digits = text.rstrip("+-").lstrip("+")
    if re.fullmatch(r"\d+\.0*", digits):
        digits = digits.split(".")[0]
    if not digits.isdigit() or int(digits) == 0:
        return None
    return sign * int(digits)


def spectrum_name(params: dict[str, str], index: int) -> str:
    """How an error names an MGF spectrum: its 0-based index and its TITLE when known."""
    title = params.get("TITLE")
    return f"index={index}" + (f", TITLE={title}" if title else "")


def iter_mgf(path: str | Path) -> Iterator[MgfSpectrum]:
    """Yield the spectra of an MGF file one by one (memory bounded by one spectrum).

    Parameters
    ----------
    path : str or Path

    Yields
    ------
    MgfSpectrum

    Raises
    ------
    SpectrumFileError
        On a peak line that is not two numbers, a ``BEGIN IONS`` block that is not closed
        (a truncated file), or a file with no ``BEGIN IONS`` at all.
    """
    path = Path(path)
    index = 0
    in_block = False
    params: dict[str, str] = {}
    peak_lines: list[str] = []
    # utf-8-sig: a byte-order mark (Windows editors write one) would hide the first
    # BEGIN IONS, and its spectrum with it.
    with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            line = raw_line.strip()
            if not line or line[0] in "#;!/":
                continue
            if not in_block:
                if line == "BEGIN IONS":
                    in_block = True
                    params = {}
                    peak_lines = []
                continue
            if line == "END IONS":
                mz, intensity = _parse_peaks(path, peak_lines, params, index)
                yield MgfSpectrum(index=index, params=params, mz=mz, intensity=intensity)
                index += 1
                in_block = False
                continue
            if line[0].isdigit() or line[0] in "+-.":
                peak_lines.append(line)
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise SpectrumFileError(
                    path,
                    f"line {line_number}: neither KEY=value nor a peak: {line[:60]!r}",
                    spectrum_name(params, index),
                )
            params[key.strip().upper()] = value.strip()
    if in_block:
        raise SpectrumFileError(
            path, "file ends inside a BEGIN IONS block (truncated)", spectrum_name(params, index)
        )
    if index == 0:
        raise SpectrumFileError(path, "no 'BEGIN IONS' block: not an MGF file")


def _parse_peaks(
    path: Path, lines: list[str], params: dict[str, str], index: int
) -> tuple[np.ndarray, np.ndarray]:
    if not lines:
        return np.empty(0), np.empty(0)
    # Peak lines may carry a third column (charge or annotation); keep the first two.
    try:
        values = [line.split(None, 2)[:2] for line in lines]
        array = np.array(values, dtype=np.float64)
    except ValueError as error:
        raise SpectrumFileError(
            path, f"unreadable peak line ({error})", spectrum_name(params, index)
        ) from error
    if array.ndim != 2 or array.shape[1] != 2:
        raise SpectrumFileError(
            path, "peak lines must hold m/z and intensity", spectrum_name(params, index)
        )
    return array[:, 0].copy(), array[:, 1].copy()


def count_mgf_spectra(path: str | Path) -> int:
    """Number of ``BEGIN IONS`` lines: a cheap pass to announce the spectrum count."""
    count = 0
    with Path(path).open("rb") as handle:
        for line in handle:
            if line.removeprefix(b"\xef\xbb\xbf").startswith(b"BEGIN IONS"):
                count += 1
    return count


def mgf_blocks(text: str) -> list[list[str]]:
    """The spectra of an MGF text as their raw lines, ``BEGIN IONS`` to ``END IONS``.

    For tools that edit MGF files line by line (the bad-input benchmark and tests); text
    outside the blocks and an unterminated last block are left out.
    """
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.strip() == "BEGIN IONS":
            current = [line]
        elif current is not None:
            current.append(line)
            if line.strip() == "END IONS":
                blocks.append(current)
                current = None
    return blocks
