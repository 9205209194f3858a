"""The one reader of MS2 spectra: mzML, mzXML and MGF into the internal spectrum table.

mzML and mzXML are streamed through pyopenms' ``transform`` with a consumer object, so
only one spectrum at a time lives in OpenMS' memory; MGF is streamed by
:mod:`trm.io.mgf`. Either way spectra reach the caller in polars DataFrames of at most
``batch_size`` rows in :data:`~trm.io.table.SPECTRUM_SCHEMA`, and peak memory does not
grow with the file.

``transform`` pushes spectra into a callback and returns only at the end of the file, so
it runs in a worker thread that hands chunks of spectra to the caller through a bounded
queue; a caller that stops early stops the parse.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from trm.errors import InputError
from trm.io.errors import SpectrumFileError, UnsupportedFormatError
from trm.io.mgf import MgfFieldError, MgfSpectrum, iter_mgf, spectrum_name
from trm.io.table import SPECTRUM_READER_COLUMNS, SPECTRUM_SCHEMA

log = logging.getLogger(__name__)

#: Formats the reader accepts, by the name :func:`detect_format` returns.
READABLE_FORMATS: tuple[str, ...] = ("mzml", "mzxml", "mgf")

#: Extension (lower case) -> format name. A Bruker ``.d`` is a directory.
_EXTENSIONS: dict[str, str] = {
    ".mzml": "mzml",
    ".mzxml": "mzxml",
    ".mgf": "mgf",
    ".raw": "thermo",
    ".d": "bruker",
}

_SCAN_IN_NATIVE_ID = re.compile(r"(?:^|\s)scan=(\d+)")

#: Schema of the reader's tables: the spectrum table's columns, then the reader's own.
READER_SCHEMA: dict[str, pl.DataType] = {**SPECTRUM_SCHEMA, **SPECTRUM_READER_COLUMNS}

# OpenMS meta value names of the mzML CV terms the converter writes for peak-list input.
SPECTRUM_TITLE_KEY = "spectrum title"  # MS:1000796
PEAK_LIST_SCANS_KEY = "peak list scans"  # MS:1000797


def detect_format(path: str | Path) -> str:
    """Format name of a spectrum file from its extension.

    Returns
    -------
    str
        One of ``mzml``, ``mzxml``, ``mgf``, ``thermo``, ``bruker``.

    Raises
    ------
    UnsupportedFormatError
        For any other extension.
    """
    path = Path(path)
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise UnsupportedFormatError(
            path,
            f"unsupported input format {path.suffix or '(no extension)'!r}; "
            "supported: .mzML, .mzXML, .mgf, Thermo .raw",
        )
    return fmt


@dataclass
class SpectrumRecord:
    """One MS2 spectrum on its way into a table row (peaks as float64 arrays)."""

    spectrum_id: str
    scan: int | None
    precursor_mz: float | None
    charge: int | None
    rt: float | None
    activation: str | None
    mz: np.ndarray
    intensity: np.ndarray
    peptide: str | None = None
    profile: bool = False
    native_id: str | None = None


def activation_name(methods: Sequence[object]) -> str | None:
    """One name for the set of activation methods pyopenms reports for a precursor.

    ETD plus HCD (or plus CID) is the dual fragmentation EThcD (ETciD); a single method
    gives its short name; none gives None.
    """
    names = {_openms_activation_short(m) for m in methods}
    names.discard(None)
    if not names:
        return None
    if "EThcD" in names or names == {"ETD", "HCD"}:
        return "EThcD"
    if "ETciD" in names or names == {"ETD", "CID"}:
        return "ETciD"
    return "+".join(sorted(names))  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def _openms_activation_names() -> dict[object, str]:
    # Built once: it is consulted for every spectrum read.
    import pyopenms as oms

    methods = oms.Precursor.ActivationMethod
    names = ("CID", "HCD", "ETD", "EThcD", "ETciD", "ECD", "PQD", "PD", "SID", "LCID", "TRAP")
    return {getattr(methods, name): name for name in names}


def _openms_profile_type() -> object:
    import pyopenms as oms

    return oms.SpectrumSettings.SpectrumType.PROFILE


def _openms_activation_short(method: object) -> str | None:
    return _openms_activation_names().get(method)


def scan_from_native_id(native_id: str) -> int | None:
    """Scan number of a native id holding ``scan=N`` (Thermo, mzXML); else None."""
    match = _SCAN_IN_NATIVE_ID.search(native_id)
    return int(match.group(1)) if match else None


def record_from_openms(spectrum: object) -> SpectrumRecord:
    """Fields of a pyopenms ``MSSpectrum`` of MS level 2 as a :class:`SpectrumRecord`.

    A spectrum from a peak list (native id ``index=N``) is named by its title, as MGF
    spectra are; its scan comes from the ``peak list scans`` term when the native id has
    none.
    """
    native_id = spectrum.getNativeID()  # type: ignore[attr-defined]
    spectrum_id = native_id
    scan = scan_from_native_id(native_id)
    if native_id.startswith("index=") and spectrum.metaValueExists(SPECTRUM_TITLE_KEY):  # type: ignore[attr-defined]
        spectrum_id = str(spectrum.getMetaValue(SPECTRUM_TITLE_KEY))  # type: ignore[attr-defined]
    if scan is None and spectrum.metaValueExists(PEAK_LIST_SCANS_KEY):  # type: ignore[attr-defined]
        digits = re.match(r"\s*(\d+)", str(spectrum.getMetaValue(PEAK_LIST_SCANS_KEY)))  # type: ignore[attr-defined]
        scan = int(digits.group(1)) if digits else None
    precursors = spectrum.getPrecursors()  # type: ignore[attr-defined]
    precursor_mz = charge = activation = None
    if precursors:
        precursor = precursors[0]
        precursor_mz = precursor.getMZ() or None
        charge = precursor.getCharge() or None  # OpenMS stores "unknown" as 0
        if charge is None:
            # One "possible charge state" (MS:1000633) is as good as a charge; several
            # leave the charge unknown for the missing-charge policy to handle.
            possible = precursor.getPossibleChargeStates()
            charge = possible[0] if len(possible) == 1 else None
        activation = activation_name(list(precursor.getActivationMethods()))
    mz, intensity = spectrum.get_peaks()  # type: ignore[attr-defined]
    return SpectrumRecord(
        spectrum_id=spectrum_id,
        scan=scan,
        precursor_mz=precursor_mz,
        charge=charge,
        rt=spectrum.getRT(),  # type: ignore[attr-defined]
        activation=activation,
        mz=mz,
        intensity=intensity,
        profile=spectrum.getType() == _openms_profile_type(),  # type: ignore[attr-defined]
        native_id=native_id,
    )


def record_from_mgf(spectrum: MgfSpectrum, path: Path) -> SpectrumRecord:
    """An MGF block of ``path`` as a :class:`SpectrumRecord`; TITLE is the spectrum id.

    Raises
    ------
    SpectrumFileError
        Naming the file, the spectrum (index and title) and the key, for a header value
        that is not what its key needs.
    """
    scan = spectrum.scan
    if scan is None:
        scan = scan_from_native_id(spectrum.title)  # ThermoRawFileParser titles hold it
    try:
        precursor_mz, rt = spectrum.precursor_mz, spectrum.rt_seconds
    except MgfFieldError as error:
        raise SpectrumFileError(
            path, str(error), spectrum_name(spectrum.params, spectrum.index)
        ) from None
    return SpectrumRecord(
        spectrum_id=spectrum.title,
        scan=scan,
        precursor_mz=precursor_mz,
        charge=spectrum.charge,
        rt=rt,
        activation=None,
        mz=spectrum.mz,
        intensity=spectrum.intensity,
        peptide=spectrum.params.get("SEQ"),
        native_id=f"index={spectrum.index}",
    )


class UniqueIds:
    """Spectrum ids made unique within a run: an id seen before gets ``#2``, ``#3``, ...

    MGF titles need not be unique, and merged or hand-edited mzML files repeat native ids
    although the format forbids it; downstream tables match results by id, so every
    spectrum of a run keeps an id of its own.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        self.used: set[str] = set()
        self.renamed = 0

    def unique(self, spectrum_id: str) -> str:
        if spectrum_id in self.used:
            copy = 2
            while f"{spectrum_id}#{copy}" in self.used:
                copy += 1
            spectrum_id = f"{spectrum_id}#{copy}"
            self.renamed += 1
        self.used.add(spectrum_id)
        return spectrum_id

    def report(self) -> None:
        if self.renamed:
            log.warning(
                "%s: %d spectra repeat the %s of an earlier one; they are named %s#2, "
                "%s#3, ... so that each keeps its own id",
                self.path, self.renamed, self.what, self.what, self.what,
            )  # fmt: skip


def check_peaks(path: Path, record: SpectrumRecord) -> None:
    """Raise :class:`SpectrumFileError` when a peak m/z or intensity is NaN or infinite."""
    for name, values in (("m/z", record.mz), ("intensity", record.intensity)):
        if values.size and not np.isfinite(values).all():
            raise SpectrumFileError(path, f"NaN or infinite {name} values", record.spectrum_id)


def records_to_frame(records: Sequence[SpectrumRecord], run: str) -> pl.DataFrame:
    """Build a table in :data:`READER_SCHEMA` from records.

    Peaks become ``list[f32]`` columns from one flat array and offsets (no per-peak
    Python objects), sorted by m/z where a spectrum is not already.
    """
    lengths = np.fromiter((r.mz.size for r in records), dtype=np.int64, count=len(records))
    offsets = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    mz_parts, intensity_parts = [], []
    for record in records:
        mz, intensity = record.mz, record.intensity
        if mz.size > 1 and (np.diff(mz) < 0).any():
            order = np.argsort(mz, kind="stable")
            mz, intensity = mz[order], intensity[order]
        mz_parts.append(mz)
        intensity_parts.append(intensity)
    flat_mz = np.concatenate(mz_parts).astype(np.float32) if records else np.empty(0, np.float32)
    flat_intensity = (
        np.concatenate(intensity_parts).astype(np.float32) if records else np.empty(0, np.float32)
    )
    offsets_array = pa.array(offsets, type=pa.int64())
    mz_column = pa.LargeListArray.from_arrays(offsets_array, pa.array(flat_mz))
    intensity_column = pa.LargeListArray.from_arrays(offsets_array, pa.array(flat_intensity))
    frame = pl.DataFrame(
        {
            "spectrum_id": [r.spectrum_id for r in records],
            "run": [run] * len(records),
            "scan": [r.scan for r in records],
            "precursor_mz": [r.precursor_mz for r in records],
            "charge": [r.charge for r in records],
            "rt": [r.rt for r in records],
            "mz": pl.from_arrow(mz_column),
            "intensity": pl.from_arrow(intensity_column),
            "peptide": [r.peptide for r in records],
            "activation": [r.activation for r in records],
            "profile": [r.profile for r in records],
            "native_id": [r.native_id for r in records],
        },
        schema=READER_SCHEMA,
    )
    return frame


def check_xml_file(path: Path, fmt: str) -> None:
    """Fail early, with a clear reason, on an empty, non-XML or truncated mzML/mzXML.

    OpenMS' own parse errors name only the XML position, so the common cases are checked
    here first from the first and last few kilobytes.
    """
    if not path.exists():
        raise SpectrumFileError(path, "file does not exist")
    if path.is_dir():
        raise SpectrumFileError(path, "is a directory, not a spectrum file")
    size = path.stat().st_size
    if size == 0:
        raise SpectrumFileError(path, "file is empty")
    root = "mzML" if fmt == "mzml" else "mzXML"
    with path.open("rb") as handle:
        head = handle.read(65536)
        handle.seek(max(0, size - 4096))
        tail = handle.read()
    if f"<{root}".encode() not in head and (fmt != "mzml" or b"<indexedmzML" not in head):
        raise SpectrumFileError(path, f"not an {root} file (no <{root}> element at its start)")
    closing = (b"</mzML>", b"</indexedmzML>") if fmt == "mzml" else (b"</mzXML>",)
    if not any(tag in tail for tag in closing):
        raise SpectrumFileError(path, f"truncated {root} file (no closing </{root}> tag)")


class _Stop(Exception):
    """Raised inside the consumer to abort a parse the caller no longer needs."""


class _ChunkingConsumer:
    """pyopenms consumer that hands MS2 records to the reading thread in chunks."""

    def __init__(
        self, path: Path, out: queue.Queue, stop: threading.Event, chunk_size: int
    ) -> None:
        self.path = path
        self.out = out
        self.stop = stop
        self.chunk_size = chunk_size
        self.chunk: list[SpectrumRecord] = []
        self.error: BaseException | None = None
        self.n_spectra = 0
        self.ids = UniqueIds(path, "native id")

    def setExperimentalSettings(self, settings: object) -> None:  # noqa: N802 - pyopenms API
        """Run-level metadata: not needed by the reader."""

    def setExpectedSize(self, n_spectra: int, n_chromatograms: int) -> None:  # noqa: N802
        """Announced counts: not needed by the reader."""

    def consumeChromatogram(self, chromatogram: object) -> None:  # noqa: N802
        """Chromatograms are not read."""

    def consumeSpectrum(self, spectrum: object) -> None:  # noqa: N802 - pyopenms API
        """Keep an MS2 spectrum; hand a full chunk to the reader."""
        self.n_spectra += 1
        if spectrum.getMSLevel() != 2:  # type: ignore[attr-defined]
            return
        record = record_from_openms(spectrum)
        record.spectrum_id = self.ids.unique(record.spectrum_id)
        self.chunk.append(record)
        if len(self.chunk) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        """Hand the current chunk over, waiting while the reader is behind."""
        if not self.chunk:
            return
        chunk, self.chunk = self.chunk, []
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                self.out.put(chunk, timeout=0.1)
                return
            except queue.Full:
                continue


_DONE = object()


def _iter_openms_chunks(path: Path, fmt: str, chunk_size: int) -> Iterator[list[SpectrumRecord]]:
    import pyopenms as oms

    handler = oms.MzMLFile() if fmt == "mzml" else oms.MzXMLFile()
    options = handler.getOptions()
    options.setMSLevels([2])  # skips decoding MS1 peak arrays
    handler.setOptions(options)
    chunks: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    consumer = _ChunkingConsumer(path, chunks, stop, chunk_size)
    failure: list[BaseException] = []

    def parse() -> None:
        try:
            handler.transform(str(path).encode(), consumer)
            consumer.flush()
        except _Stop:
            return
        except BaseException as error:  # noqa: BLE001 - handed to the reading thread
            failure.append(consumer.error or error)
        finally:
            while not stop.is_set():
                try:
                    chunks.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    continue

    worker = threading.Thread(target=parse, name=f"read {path.name}", daemon=True)
    worker.start()
    try:
        while True:
            item = chunks.get()
            if item is _DONE:
                break
            yield item
    finally:
        stop.set()
        worker.join()
    consumer.ids.report()
    if failure:
        error = failure[0]
        if isinstance(error, SpectrumFileError):
            raise error
        if "callback" in str(error):
            raise SpectrumFileError(path, f"reading failed: {error}") from error
        raise SpectrumFileError(
            path, f"not a readable {fmt} file (malformed or truncated XML): {error}"
        ) from error


def _iter_mgf_chunks(path: Path, chunk_size: int) -> Iterator[list[SpectrumRecord]]:
    if not path.exists():
        raise SpectrumFileError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise SpectrumFileError(path, "file is empty")
    chunk: list[SpectrumRecord] = []
    ids = UniqueIds(path, "TITLE")
    for spectrum in iter_mgf(path):
        record = record_from_mgf(spectrum, path)
        record.spectrum_id = ids.unique(record.spectrum_id)
        chunk.append(record)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
    ids.report()


def iter_spectrum_records(path: str | Path, chunk_size: int = 1000) -> Iterator[SpectrumRecord]:
    """Stream the MS2 spectra of an mzML, mzXML or MGF file as records.

    Raises
    ------
    SpectrumFileError
        For a missing, empty, truncated or malformed file (naming the spectrum where
        one is at fault), or a file without MS2 spectra. NaN and infinite peaks are read
        as they are (:func:`drop_empty_spectra` removes them).
    UnsupportedFormatError
        For another extension.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt not in READABLE_FORMATS:
        raise UnsupportedFormatError(
            path,
            f"the reader takes .mzML, .mzXML or .mgf, not {fmt} (run `trm convert` first)",
        )
    if fmt == "mgf":
        chunks = _iter_mgf_chunks(path, chunk_size)
    else:
        check_xml_file(path, fmt)
        chunks = _iter_openms_chunks(path, fmt, chunk_size)
    n_ms2 = 0
    for chunk in chunks:
        n_ms2 += len(chunk)
        yield from chunk
    if n_ms2 == 0:
        raise SpectrumFileError(path, "no MS2 spectra in the file (MS1 only?)")


def iter_spectrum_batches(
    path: str | Path, batch_size: int = 10_000, run: str | None = None
) -> Iterator[pl.DataFrame]:
    """Stream the MS2 spectra of a file as tables of at most ``batch_size`` rows.

    Parameters
    ----------
    path : str or Path
        An ``.mzML``, ``.mzXML`` or ``.mgf`` file.
    batch_size : int
        Rows per table; memory use is proportional to it, not to the file.
    run : str, optional
        Value of the ``run`` column; the file name without extension by default.

    Yields
    ------
    polars.DataFrame
        In :data:`READER_SCHEMA` (:data:`~trm.io.table.SPECTRUM_SCHEMA` and then
        ``activation``): ``spectrum_id`` is the native id
        (mzML/mzXML) or TITLE (MGF), ``scan`` the vendor scan number when the native id
        holds ``scan=N`` or the MGF has SCANS, ``charge`` null when the file gives none,
        ``rt`` in seconds, ``peptide`` the MGF ``SEQ`` as written (else null).

    Raises
    ------
    SpectrumFileError
        See :func:`iter_spectrum_records`. Raised when reached: a truncated file may
        first yield the batches before the damage.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be positive, got {batch_size}")
    path = Path(path)
    run_name = run if run is not None else path.stem
    batch: list[SpectrumRecord] = []
    for record in iter_spectrum_records(path, chunk_size=min(batch_size, 1000)):
        batch.append(record)
        if len(batch) >= batch_size:
            yield records_to_frame(batch, run_name)
            batch = []
    if batch:
        yield records_to_frame(batch, run_name)


def read_spectra(path: str | Path, run: str | None = None) -> pl.DataFrame:
    """All MS2 spectra of a file in one table (for small files; see
    :func:`iter_spectrum_batches` for large ones)."""
    return pl.concat(list(iter_spectrum_batches(path, run=run)), how="vertical")


#: Reasons :func:`drop_empty_spectra` gives.
REASON_NO_PEAKS = "no peaks"
REASON_NO_USABLE_PEAKS = (
    "no usable peaks (every peak has a zero, negative, NaN or infinite m/z or intensity)"
)


def drop_empty_spectra(table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split off spectra without peaks; drop peaks no instrument records.

    Peaks with a zero, negative, NaN or infinite m/z or intensity carry no signal: they are
    removed, and a spectrum left without peaks is skipped with its own reason.

    Returns
    -------
    kept : polars.DataFrame
    skipped : polars.DataFrame
        Columns ``spectrum_id``, ``run``, ``reason`` (:data:`REASON_NO_PEAKS`,
        :data:`REASON_NO_USABLE_PEAKS`), in the input order.
    """
    table = table.with_row_index("_row")
    # Polars orders NaN above every number: finiteness is tested on its own.
    usable = pl.element().is_finite() & (pl.element() > 0)
    sound = (
        pl.col("mz").list.eval(usable).list.all() & pl.col("intensity").list.eval(usable).list.all()
    )
    flawed = table.filter(~sound.fill_null(True))
    if flawed.height:
        mz_lists, intensity_lists = [], []
        for mz, intensity in zip(
            flawed["mz"].to_list(), flawed["intensity"].to_list(), strict=True
        ):
            mz, intensity = (
                np.asarray(mz, dtype=np.float64),
                np.asarray(intensity, dtype=np.float64),
            )
            keep = np.isfinite(mz) & np.isfinite(intensity) & (mz > 0) & (intensity > 0)
            mz_lists.append(mz[keep].tolist())
            intensity_lists.append(intensity[keep].tolist())
        replacement = pl.DataFrame(
            {
                "_row": flawed["_row"],
                "_mz": pl.Series(mz_lists, dtype=table.schema["mz"]),
                "_intensity": pl.Series(intensity_lists, dtype=table.schema["intensity"]),
            }
        )
        table = (
            table.join(replacement, on="_row", how="left", maintain_order="left")
            .with_columns(
                pl.coalesce("_mz", "mz").alias("mz"),
                pl.coalesce("_intensity", "intensity").alias("intensity"),
            )
            .drop("_mz", "_intensity")
        )
    empty = table["mz"].list.len() == 0
    reason = (
        pl.when(pl.col("_row").is_in(flawed["_row"].implode()))
        .then(pl.lit(REASON_NO_USABLE_PEAKS))
        .otherwise(pl.lit(REASON_NO_PEAKS))
    )
    skipped = table.filter(empty).select("spectrum_id", "run", reason.alias("reason"))
    return table.filter(~empty).drop("_row"), skipped


def apply_missing_charge_policy(
    table: pl.DataFrame, policy: str, charges: Sequence[int] = (2, 3, 4)
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Handle spectra whose precursor charge is unknown, as an instrument config says.

    Parameters
    ----------
    table : polars.DataFrame
        Spectra in :data:`~trm.io.table.SPECTRUM_SCHEMA`.
    policy : {"skip", "try"}
        ``skip``: drop them and list them as skipped. ``try``: keep one copy of each
        for every charge in ``charges`` (same ``spectrum_id``), so later stages can
        sequence each and keep the best.
    charges : sequence of int
        Charges to try.

    Returns
    -------
    kept : polars.DataFrame
        Spectra with a charge; under ``try``, the copies follow the charged spectra and
        carry ``charge_assumed = True`` (False for the others).
    skipped : polars.DataFrame
        Columns ``spectrum_id``, ``run``, ``reason``.
    """
    missing = table["charge"].is_null()
    charged = table.filter(~missing)
    uncharged = table.filter(missing)
    skipped = pl.DataFrame(
        schema={"spectrum_id": pl.String(), "run": pl.String(), "reason": pl.String()}
    )
    if policy == "skip":
        skipped = uncharged.select(
            "spectrum_id", "run", pl.lit("missing precursor charge").alias("reason")
        )
        return charged, skipped
    if policy != "try":
        raise InputError(f"missing_charge policy must be 'skip' or 'try', not {policy!r}")
    charges = [int(c) for c in charges]
    if not charges:
        raise InputError("missing_charge 'try' needs at least one charge to try")
    charged = charged.with_columns(pl.lit(False).alias("charge_assumed"))
    copies = [
        uncharged.with_columns(
            pl.lit(charge, dtype=pl.Int16()).alias("charge"),
            pl.lit(True).alias("charge_assumed"),
        )
        for charge in charges
    ]
    if uncharged.height:
        log.info(
            "%d spectra without precursor charge: trying charges %s",
            uncharged.height,
            charges,
        )
    return pl.concat([charged, *copies], how="vertical"), skipped
