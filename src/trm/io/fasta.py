"""The one reader of protein FASTA files (plain or gzip-compressed).

Used by the synthetic stage (peptides to simulate) and the database search (the proteins
to search). The reader is strict where a lenient one would hide a wrong file: text before
the first ``>`` header, or a sequence line holding something other than residue letters,
stops it with the file, the line and the entry named. An entry without any sequence is left
out with a warning; a file without any protein is an error.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from trm.errors import InputError

log = logging.getLogger(__name__)

#: What a sequence line may hold once its spaces are removed: residue letters (any case),
#: with a stop codon ``*`` at the end of a protein tolerated (and dropped).
_SEQUENCE_LINE = re.compile(r"[A-Za-z]*\*?")


class FastaError(InputError):
    """A FASTA file that cannot be read as one."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Protein:
    """One FASTA entry.

    Attributes
    ----------
    accession : str
        The header's first word (``sp|P00330|ADH1_YEAST``).
    description : str
        The rest of the header.
    sequence : str
        Residue letters in upper case.
    """

    accession: str
    description: str
    sequence: str

    @property
    def header(self) -> str:
        """The header line without its ``>``."""
        return f"{self.accession} {self.description}".strip()


def _lines(path: Path) -> Iterator[str]:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            yield from handle
    except (OSError, EOFError, zlib.error) as error:
        if gzipped:
            raise FastaError(path, f"not a readable gzip file ({error})") from error
        raise


def iter_fasta(path: str | Path) -> Iterator[Protein]:
    """The proteins of a FASTA file, in file order.

    Parameters
    ----------
    path : str or Path
        Plain text or gzip-compressed (recognised by its content, not its name).

    Yields
    ------
    Protein

    Raises
    ------
    FastaError
        For text before the first header, a header without a name, a sequence line with a
        character that is no residue letter, or a broken gzip stream.
    OSError
        When the file cannot be opened.
    """
    path = Path(path)
    accession = description = None
    parts: list[str] = []
    header_line = 0
    n_empty = 0

    def finished() -> Protein | None:
        nonlocal n_empty
        if accession is None:
            return None
        if not parts:
            n_empty += 1
            return None
        return Protein(accession, description or "", "".join(parts).upper())

    for number, line in enumerate(_lines(path), start=1):
        text = line.strip()
        if text.startswith(">"):
            protein = finished()
            if protein is not None:
                yield protein
            name, _, rest = text[1:].strip().partition(" ")
            if not name:
                raise FastaError(path, f"line {number}: header without a name")
            accession, description, parts, header_line = name, rest.strip(), [], number
            continue
        if not text or text.startswith(";"):
            continue
        if accession is None:
            raise FastaError(
                path,
                f"line {number}: text before the first '>' header ({text[:40]!r}); "
                "not a FASTA file",
            )
        letters = "".join(text.split())
        if not _SEQUENCE_LINE.fullmatch(letters):
            bad = [c for c in letters if not (c.isascii() and c.isalpha()) and c != "*"]
            what = f"{bad[0]!r} is no residue letter" if bad else "'*' inside a sequence"
            raise FastaError(
                path, f"line {number} (entry {accession!r}, header on line {header_line}): {what}"
            )
        if parts and parts[-1].endswith("*"):
            raise FastaError(
                path,
                f"line {number} (entry {accession!r}): sequence goes on after a '*' stop",
            )
        parts.append(letters)
    protein = finished()
    if protein is not None:
        yield protein
    if n_empty:
        log.warning("%s: %d entries without a sequence left out", path, n_empty)


def read_fasta(path: str | Path) -> list[Protein]:
    """Every protein of a FASTA file (see :func:`iter_fasta`), stop codons removed.

    Raises
    ------
    FastaError
        As :func:`iter_fasta`, and when the file holds no protein sequence at all.
    """
    proteins = [
        Protein(p.accession, p.description, p.sequence.rstrip("*")) for p in iter_fasta(path)
    ]
    proteins = [p for p in proteins if p.sequence]
    if not proteins:
        raise FastaError(path, "holds no protein sequence (an empty FASTA file?)")
    return proteins
