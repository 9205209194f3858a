"""Exceptions of the spectrum readers and converters.

They derive from :class:`trm.errors.InputError`, so that the ``trm`` command line reports
them as one line naming the file (and the spectrum), without a traceback.
"""

from __future__ import annotations

from pathlib import Path

from trm.errors import InputError


class SpectrumFileError(InputError):
    """A spectrum file cannot be read or converted.

    Parameters
    ----------
    path : str or Path
        The offending file; named at the start of the message.
    reason : str
        What is wrong, in words a user can act on.
    spectrum : str, optional
        Identifier of the offending spectrum (native id or MGF TITLE), when one is.
    """

    def __init__(self, path: str | Path, reason: str, spectrum: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.spectrum = spectrum
        where = f"{self.path}" if spectrum is None else f"{self.path}, spectrum {spectrum!r}"
        super().__init__(f"{where}: {reason}")


class UnsupportedFormatError(SpectrumFileError):
    """The input is in a format this project cannot read."""
