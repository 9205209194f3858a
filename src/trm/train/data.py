"""Labelled spectra for training: shards in, padded tensors out.

Shards are parquet files in the internal spectrum table (``trm.io.table.SPECTRUM_SCHEMA``;
extra columns are ignored). The whole split is held in memory as fixed-width arrays of
the ``n_peaks`` most intense peaks of each spectrum: 150 peaks cost 1.2 kB per spectrum,
so a million spectra fit in 1.2 GB. Batches are drawn by a pure function of the step, so a
resumed run draws exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch

from trm.chem import UnsupportedPeptideError, Vocabulary, mz_to_mass, parse_peptidoform
from trm.errors import InputError

if TYPE_CHECKING:
    from trm.model import ModelConfig

log = logging.getLogger(__name__)

_COLUMNS = ("precursor_mz", "charge", "mz", "intensity", "peptide")
#: Ground-truth fragment annotations of synthetic shards, read when present.
_ION_COLUMNS = ("ion_type", "ion_number", "ion_charge")


@dataclass
class SpectrumBatch:
    """A batch of spectra as the model and the losses take them.

    Attributes
    ----------
    mz, intensity : torch.Tensor of shape (batch, n_peaks), float32
        Peaks; entries where ``peak_mask`` is False are padding.
    peak_mask : torch.Tensor of shape (batch, n_peaks), bool
    precursor_mass : torch.Tensor of shape (batch,), float32
        Neutral precursor mass (Da).
    charge : torch.Tensor of shape (batch,), int64
    tokens : torch.Tensor of shape (batch, max_length), int64
        Target token ids, end/pad class (0) after the peptide.
    ion_series, ion_number, ion_charge : torch.Tensor of shape (batch, n_peaks), int8, optional
        Ground-truth annotation of synthetic peaks (series 1 = b, 2 = y, 0 = none), used
        by fitted noise models; None for spectra without annotation.
    """

    mz: torch.Tensor
    intensity: torch.Tensor
    peak_mask: torch.Tensor
    precursor_mass: torch.Tensor
    charge: torch.Tensor
    tokens: torch.Tensor
    ion_series: torch.Tensor | None = None
    ion_number: torch.Tensor | None = None
    ion_charge: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> SpectrumBatch:
        """The batch on another device (annotations stay behind: only noise needs them)."""
        return SpectrumBatch(
            **{name: getattr(self, name).to(device, non_blocking=True) for name in _FIELDS}
        )

    def rows(self, rows: slice) -> SpectrumBatch:
        """Some of the batch's spectra (annotations included)."""
        return SpectrumBatch(
            **{
                name: None if getattr(self, name) is None else getattr(self, name)[rows]
                for name in (*_FIELDS, "ion_series", "ion_number", "ion_charge")
            }
        )

    def model_inputs(self) -> tuple[torch.Tensor, ...]:
        """Positional arguments of :meth:`trm.model.PeptideTRM.forward`."""
        return self.mz, self.intensity, self.peak_mask, self.precursor_mass, self.charge

    def __len__(self) -> int:
        return self.mz.shape[0]


_FIELDS = ("mz", "intensity", "peak_mask", "precursor_mass", "charge", "tokens")


@dataclass
class LoadReport:
    """What happened to the rows of the shards.

    Attributes
    ----------
    n_rows : int
        Rows read.
    n_kept : int
        Spectra kept.
    skipped : collections.Counter
        Reason -> number of spectra left out (no peptide, unsupported peptide, too long,
        no charge, charge above the model's maximum, no peaks).
    """

    n_rows: int = 0
    n_kept: int = 0
    skipped: Counter = field(default_factory=Counter)


def dataset_sizes(model_config: ModelConfig, vocabulary: Vocabulary) -> dict[str, Any]:
    """The :class:`SpectrumDataset` keyword arguments a model needs: its vocabulary, and
    the answer length, peak count and highest charge of its config."""
    return {
        "vocabulary": vocabulary,
        "max_length": model_config.max_length,
        "n_peaks": model_config.n_peaks,
        "max_charge": model_config.max_charge,
    }


def top_peaks(
    mz_lists: Sequence[np.ndarray],
    intensity_lists: Sequence[np.ndarray],
    n_peaks: int,
    annotations: Sequence[Sequence[np.ndarray]] = (),
) -> tuple[np.ndarray, ...]:
    """The most intense peaks of each spectrum, in m/z order, zero-padded to a fixed width.

    Inference should prepare spectra with this same function, so the model sees peaks
    chosen as in training.

    Parameters
    ----------
    mz_lists, intensity_lists : sequence of numpy.ndarray
        Peaks of each spectrum.
    n_peaks : int
        Width of the output.
    annotations : sequence of sequences of numpy.ndarray, optional
        Further per-peak lists (e.g. ion series), selected like the peaks.

    Returns
    -------
    mz, intensity : numpy.ndarray of shape (n_spectra, n_peaks), float32
    counts : numpy.ndarray of shape (n_spectra,)
        Real peaks per spectrum.
    *annotations : numpy.ndarray of shape (n_spectra, n_peaks), int8
        One per given annotation list, 0 in padding.
    """
    n = len(mz_lists)
    mz = np.zeros((n, n_peaks), dtype=np.float32)
    intensity = np.zeros((n, n_peaks), dtype=np.float32)
    counts = np.zeros(n, dtype=np.int64)
    extra = [np.zeros((n, n_peaks), dtype=np.int8) for _ in annotations]
    for row, (row_mz, row_intensity) in enumerate(zip(mz_lists, intensity_lists, strict=True)):
        keep = None
        if len(row_mz) > n_peaks:
            # Keep the most intense peaks; a stable sort makes ties deterministic.
            keep = np.sort(np.argsort(-row_intensity, kind="stable")[:n_peaks])
            row_mz, row_intensity = row_mz[keep], row_intensity[keep]
        counts[row] = len(row_mz)
        mz[row, : len(row_mz)] = row_mz
        intensity[row, : len(row_mz)] = row_intensity
        for target, lists in zip(extra, annotations, strict=True):
            values = lists[row] if keep is None else lists[row][keep]
            target[row, : len(values)] = values
    return (mz, intensity, counts, *extra)


def list_column_arrays(column: pl.Series, dtype: type) -> list[np.ndarray]:
    """A list column as one numpy array per row (empty for null), read as one flat array
    and split by the list lengths, without a Python object per value."""
    lengths = column.list.len().fill_null(0).to_numpy()
    flat = column.explode(empty_as_null=False).drop_nulls().to_numpy()
    return np.split(flat.astype(dtype, copy=False), np.cumsum(lengths)[:-1])


def _ion_annotations(table: pl.DataFrame) -> list[list[np.ndarray]]:
    """Series (1 = b, 2 = y), number and charge lists of a synthetic table; [] when the
    table has no annotation columns."""
    if not all(c in table.columns for c in ("ion_type", "ion_number", "ion_charge")):
        return []
    series = table.get_column("ion_type").list.eval(
        pl.element().replace_strict({"b": 1, "y": 2}, default=0, return_dtype=pl.Int8)
    )
    return [
        list_column_arrays(series, np.int8),
        list_column_arrays(table.get_column("ion_number"), np.int8),
        list_column_arrays(table.get_column("ion_charge"), np.int8),
    ]


class SpectrumDataset:
    """Labelled spectra in memory, as fixed-width arrays.

    Build it with :meth:`from_table` or :meth:`from_shards`.

    Attributes
    ----------
    mz, intensity : numpy.ndarray of shape (n_spectra, n_peaks), float32
        The most intense peaks in m/z order, zero-padded.
    n_peaks : numpy.ndarray of shape (n_spectra,)
        Real peaks per spectrum.
    precursor_mass : numpy.ndarray of shape (n_spectra,), float64
        Neutral precursor mass (Da).
    charge : numpy.ndarray of shape (n_spectra,), int64
    tokens : numpy.ndarray of shape (n_spectra, max_length), int64
    peptides : list of str
        ProForma of each spectrum, as read.
    report : LoadReport
    ions : tuple of three numpy.ndarray of shape (n_spectra, n_peaks), int8, or None
        Ion series (1 = b, 2 = y), number and charge of each peak of synthetic spectra
        (what fitted noise models need); None when the shards carry no annotation.
    """

    def __init__(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        n_peaks: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
        tokens: np.ndarray,
        peptides: list[str],
        report: LoadReport | None = None,
        ions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.mz = mz
        self.intensity = intensity
        self.n_peaks = n_peaks
        self.precursor_mass = precursor_mass
        self.charge = charge
        self.tokens = tokens
        self.peptides = peptides
        self.report = report or LoadReport(n_rows=len(peptides), n_kept=len(peptides))
        self.ions = ions

    def __len__(self) -> int:
        return len(self.peptides)

    @classmethod
    def from_table(
        cls,
        table: pl.DataFrame,
        vocabulary: Vocabulary,
        max_length: int,
        n_peaks: int,
        max_charge: int,
    ) -> SpectrumDataset:
        """Tokenise and pad a spectrum table, skipping what the model cannot learn from.

        Parameters
        ----------
        table : polars.DataFrame
            Rows of the internal spectrum table.
        vocabulary : Vocabulary
        max_length : int
            Answer positions of the model; a peptide needs at most ``max_length - 1``
            tokens, so at least one end class follows it.
        n_peaks : int
            Most intense peaks kept per spectrum.
        max_charge : int
            Largest precursor charge the model embeds.

        Returns
        -------
        SpectrumDataset
            With :attr:`report` counting the skipped rows by reason.
        """
        missing = [c for c in _COLUMNS if c not in table.columns]
        if missing:
            raise InputError(f"spectrum table lacks columns {missing}")
        report = LoadReport(n_rows=table.height)
        token_cache: dict[str, np.ndarray | str] = {}
        keep_rows: list[int] = []
        token_rows: list[np.ndarray] = []
        peptides = table.get_column("peptide").to_list()
        charges = table.get_column("charge").to_list()
        n_listed = table.get_column("mz").list.len().fill_null(0).to_list()
        for row, (peptide, charge, n_listed_peaks) in enumerate(
            zip(peptides, charges, n_listed, strict=True)
        ):
            if peptide is None:
                report.skipped["no peptide"] += 1
                continue
            if charge is None or charge < 1:
                report.skipped["no charge"] += 1
                continue
            if charge > max_charge:
                report.skipped[f"charge above {max_charge}"] += 1
                continue
            if n_listed_peaks == 0:
                report.skipped["no peaks"] += 1
                continue
            if peptide not in token_cache:
                try:
                    tokens, _ = parse_peptidoform(peptide)
                    token_cache[peptide] = vocabulary.encode(tokens, max_length - 1)
                except UnsupportedPeptideError as error:
                    token_cache[peptide] = (
                        f"longer than {max_length - 1} tokens"
                        if "exceeds" in str(error)
                        else "unsupported residue or modification"
                    )
            encoded = token_cache[peptide]
            if isinstance(encoded, str):
                report.skipped[encoded] += 1
                continue
            keep_rows.append(row)
            token_rows.append(np.pad(encoded, (0, 1)))
        kept = table[keep_rows] if keep_rows else table.clear()
        mz_lists = list_column_arrays(kept.get_column("mz"), np.float32)
        intensity_lists = list_column_arrays(kept.get_column("intensity"), np.float32)
        annotations = _ion_annotations(kept)
        mz, intensity, counts, *ions = top_peaks(mz_lists, intensity_lists, n_peaks, annotations)
        charge = kept.get_column("charge").to_numpy().astype(np.int64)
        precursor_mass = mz_to_mass(kept.get_column("precursor_mz").to_numpy(), charge)
        report.n_kept = len(keep_rows)
        tokens = np.stack(token_rows) if token_rows else np.zeros((0, max_length), dtype=np.int64)
        return cls(
            mz=mz,
            intensity=intensity,
            n_peaks=counts,
            precursor_mass=np.asarray(precursor_mass, dtype=np.float64),
            charge=charge,
            tokens=tokens,
            peptides=[peptides[r] for r in keep_rows],
            report=report,
            ions=tuple(ions) if ions else None,
        )

    @classmethod
    def from_shards(
        cls,
        paths: Path | str | Iterable[Path | str],
        vocabulary: Vocabulary,
        max_length: int,
        n_peaks: int,
        max_charge: int,
        limit: int | None = None,
    ) -> SpectrumDataset:
        """Read parquet shards (a directory of ``*.parquet`` or a list of files).

        Parameters
        ----------
        paths : path or iterable of paths
            A directory (its ``*.parquet`` files, in name order) or shard files.
        vocabulary, max_length, n_peaks, max_charge
            As for :meth:`from_table`.
        limit : int, optional
            Read at most this many rows (the first ones, in shard order).

        Raises
        ------
        FileNotFoundError
            When a directory holds no parquet file.
        """
        if isinstance(paths, str | Path):
            directory = Path(paths)
            files = sorted(directory.glob("*.parquet")) if directory.is_dir() else [directory]
            if not files:
                raise FileNotFoundError(f"no *.parquet shard in {directory}")
        else:
            files = [Path(p) for p in paths]
        frames = []
        n_read = 0
        for path in files:
            names = pl.read_parquet_schema(path)
            columns = list(_COLUMNS) + [c for c in _ION_COLUMNS if c in names]
            frame = pl.read_parquet(path, columns=columns)
            if limit is not None:
                frame = frame.head(limit - n_read)
            frames.append(frame)
            n_read += frame.height
            if limit is not None and n_read >= limit:
                break
        table = pl.concat(frames, how="vertical_relaxed")
        dataset = cls.from_table(table, vocabulary, max_length, n_peaks, max_charge)
        report = dataset.report
        log.info(
            "read %d spectra from %d shard(s); kept %d%s",
            report.n_rows,
            len(frames),
            report.n_kept,
            "".join(f"; skipped {n} ({reason})" for reason, n in sorted(report.skipped.items())),
        )
        return dataset

    def batch(self, indices: np.ndarray | Sequence[int]) -> SpectrumBatch:
        """The spectra at ``indices`` as tensors (CPU)."""
        indices = np.asarray(indices, dtype=np.int64)
        width = self.mz.shape[1]
        ions = (None, None, None)
        if self.ions is not None:
            ions = tuple(torch.from_numpy(values[indices]) for values in self.ions)
        return SpectrumBatch(
            mz=torch.from_numpy(self.mz[indices]),
            intensity=torch.from_numpy(self.intensity[indices]),
            peak_mask=torch.from_numpy(np.arange(width) < self.n_peaks[indices, None]),
            precursor_mass=torch.from_numpy(self.precursor_mass[indices].astype(np.float32)),
            charge=torch.from_numpy(self.charge[indices]),
            tokens=torch.from_numpy(self.tokens[indices]),
            ion_series=ions[0],
            ion_number=ions[1],
            ion_charge=ions[2],
        )


@lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, n_spectra: int) -> np.ndarray:
    permutation = np.random.default_rng([seed, epoch]).permutation(n_spectra)
    permutation.flags.writeable = False
    return permutation


def batch_indices(
    step: int,
    batch_size: int,
    n_spectra: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
) -> np.ndarray:
    """Spectra of one process's batch at a step: a pure function of the step.

    The data are visited epoch by epoch, each epoch in its own seeded permutation; the
    global batch of ``batch_size * world_size`` spectra is split in contiguous parts, one
    per process.

    Returns
    -------
    numpy.ndarray of shape (batch_size,)
    """
    if n_spectra < 1:
        raise InputError("no spectra to draw from")
    global_size = batch_size * world_size
    positions = step * global_size + rank * batch_size + np.arange(batch_size)
    epochs, offsets = np.divmod(positions, n_spectra)
    indices = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        permutation = _epoch_permutation(seed, int(epoch), n_spectra)
        chosen = epochs == epoch
        indices[chosen] = permutation[offsets[chosen]]
    return indices
