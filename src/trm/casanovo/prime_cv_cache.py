"""Fill spectrum_utils' Unimod cache from a local unimod.obo, with no network.

Run by the Python of *Casanovo's* environment (it imports spectrum_utils, not trm)::

    .venv-casanovo/bin/python src/trm/casanovo/prime_cv_cache.py UNIMOD_OBO CACHE_HOME

Why: when Casanovo writes its mzTab it parses every predicted peptide with
spectrum_utils, which resolves a named modification (``M[Oxidation]``) in Unimod and
downloads unimod.obo on first use, so an offline run crashes (``URLError``) as soon as a
prediction holds a modification. spectrum_utils keeps the parsed vocabulary in
``$XDG_CACHE_HOME/spectrum_utils`` and, for Unimod, uses the cached copy without looking
online. This script serves the given local file in place of the download (through
spectrum_utils' own parser, so the cache has its own format) and leaves the cache in
``CACHE_HOME``; :mod:`trm.casanovo.runner` runs Casanovo with ``XDG_CACHE_HOME`` set to it.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from pathlib import Path

UNIMOD_URL = "http://www.unimod.org/obo/unimod.obo"


class _LocalResponse:
    """The part of an HTTP response spectrum_utils reads, served from a file."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("rb")

    def getcode(self) -> int:
        return 200

    def read(self, *args: int) -> bytes:
        return self._handle.read(*args)

    def readline(self, *args: int) -> bytes:
        return self._handle.readline(*args)

    def __iter__(self):  # noqa: ANN204 - file protocol
        return iter(self._handle)

    def __enter__(self) -> _LocalResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve the local file for Unimod's URL, and resolve a name."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("unimod_obo", type=Path, help="a local unimod.obo")
    parser.add_argument("cache_home", type=Path, help="directory used as XDG_CACHE_HOME")
    args = parser.parse_args(argv)
    if not args.unimod_obo.is_file():
        sys.stderr.write(f"error: {args.unimod_obo} does not exist\n")
        return 1
    args.cache_home.mkdir(parents=True, exist_ok=True)
    # platformdirs reads XDG_CACHE_HOME when spectrum_utils is imported.
    os.environ["XDG_CACHE_HOME"] = str(args.cache_home.resolve())
    real_urlopen = urllib.request.urlopen

    def local_urlopen(url, *pargs, **kwargs):  # noqa: ANN001, ANN202
        if url == UNIMOD_URL:
            return _LocalResponse(args.unimod_obo)
        raise OSError(f"no network: refused {url}")

    urllib.request.urlopen = local_urlopen
    try:
        from spectrum_utils import proforma

        peptide = proforma.parse("[Acetyl]-C[Carbamidomethyl]M[Oxidation]N[Deamidated]K")[0]
        # A named modification's mass is looked up lazily: asking for it makes
        # spectrum_utils load (and cache) Unimod.
        masses = [modification.mass for modification in peptide.modifications]
    finally:
        urllib.request.urlopen = real_urlopen
    cached = args.cache_home / "spectrum_utils" / "UNIMOD.pkl"
    if not cached.is_file():
        sys.stderr.write(f"error: spectrum_utils did not cache Unimod in {cached}\n")
        return 1
    sys.stderr.write(f"cached Unimod for spectrum_utils in {cached} (masses {masses})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
