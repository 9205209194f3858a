"""One sample through the model: streamed spectra in, the results contract's files out.

Spectra are read in batches (:func:`iter_input_batches`), so memory holds one batch of
peaks plus one small result row per spectrum. Each batch (:func:`sequence_batch`) loses,
with a reason, the spectra that cannot be sequenced: no peaks, no precursor m/z, no charge
(instrument policy ``skip``), a charge above the model's maximum; under the policy ``try``
a spectrum without charge is sequenced once per instrument charge and the copy with the
best raw score is kept. A spectrum the decoder finds no peptide for (none fits the
precursor, or greedy decoding gives an empty answer) is listed with that reason too. So
every input MS2 spectrum ends up exactly once in ``denovo.tsv`` or ``unsequenced.tsv``,
each in input order.

Scores: ``raw_score`` is the model's own confidence (see :mod:`trm.denovo.inference`),
``score`` its calibrated probability of being fully correct, and ``q_value`` the expected
share of wrong peptides among those scoring at least as high in this sample
(:func:`trm.denovo.calibration.q_values_from_probabilities`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from trm.chem import WATER_MASS, Vocabulary, mass_to_mz, mz_to_mass, tokens_to_proforma
from trm.denovo.calibration import IsotonicCalibration, q_values_from_probabilities
from trm.denovo.inference import Sequencer, raw_scores, spectrum_arrays
from trm.instrument import ELECTRON_ACTIVATIONS, InstrumentSettings
from trm.io.errors import SpectrumFileError
from trm.io.results import DENOVO_COLUMNS, UNSEQUENCED_COLUMNS
from trm.io.spectra import apply_missing_charge_policy, drop_empty_spectra, iter_spectrum_batches
from trm.io.table import SPECTRUM_SCHEMA

log = logging.getLogger(__name__)

#: Reasons a spectrum is listed in ``unsequenced.tsv`` (besides those of the reader's
#: helpers, "no peaks" and "missing precursor charge").
REASON_NO_PRECURSOR = "missing precursor m/z"
REASON_BAD_CHARGE = "precursor charge below 1"
REASON_CHARGE_ABOVE = "charge above model maximum ({max_charge})"
REASON_PROFILE = (
    "profile (not centroided) spectrum: centroid the run first (msconvert --filter "
    "peakPicking, or ThermoRawFileParser's default)"
)
REASON_ELECTRON = (
    "fragmentation {activation}: the model reads b/y ions of HCD/CID spectra, not the c/z "
    "ions of electron-based fragmentation"
)

_INDEX = "_index"
_TOKENS = "_tokens"
_RESULT_SCHEMA: dict[str, pl.DataType] = {
    _INDEX: pl.Int64(),
    **DENOVO_COLUMNS,
    _TOKENS: pl.List(pl.String()),
}
_UNSEQUENCED_SCHEMA: dict[str, pl.DataType] = {
    _INDEX: pl.Int64(),
    "spectrum_id": pl.String(),
    "run": pl.String(),
    "reason": pl.String(),
}


def iter_input_batches(path: str | Path, batch_size: int, run: str) -> Iterator[pl.DataFrame]:
    """MS2 spectra of an mzML/mzXML/MGF file or a spectrum-table parquet, in batches.

    Parameters
    ----------
    path : path
        ``.mzML``, ``.mzXML``, ``.mgf`` (through :func:`trm.io.spectra.iter_spectrum_batches`)
        or ``.parquet`` (the internal spectrum table).
    batch_size : int
    run : str
        Value of the ``run`` column of every spectrum.

    Raises
    ------
    SpectrumFileError
        For an unreadable file or one without MS2 spectra, naming the file.
    """
    path = Path(path)
    if path.suffix.lower() != ".parquet":
        yield from iter_spectrum_batches(path, batch_size=batch_size, run=run)
        return
    import pyarrow.parquet as pq

    if not path.is_file():
        raise SpectrumFileError(path, "file does not exist")
    try:
        handle = pq.ParquetFile(path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises several kinds
        raise SpectrumFileError(path, f"not a readable parquet file ({error})") from error
    names = handle.schema_arrow.names
    missing = [
        c for c in ("spectrum_id", "precursor_mz", "charge", "mz", "intensity") if c not in names
    ]
    if missing:
        raise SpectrumFileError(path, f"spectrum table lacks columns {missing}")
    columns = [c for c in SPECTRUM_SCHEMA if c in names]
    n_rows = 0
    for record_batch in handle.iter_batches(batch_size=batch_size, columns=columns):
        frame = pl.from_arrow(record_batch)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.with_columns(pl.lit(run, dtype=pl.String()).alias("run"))
        frame = frame.select(
            pl.col(c).cast(dtype) if c in frame.columns else pl.lit(None, dtype=dtype).alias(c)
            for c, dtype in SPECTRUM_SCHEMA.items()
        )
        n_rows += frame.height
        if frame.height:
            yield frame
    if n_rows == 0:
        raise SpectrumFileError(path, "no MS2 spectra in the spectrum table")


def _dropped(before: pl.DataFrame, after: pl.DataFrame, skipped: pl.DataFrame) -> pl.DataFrame:
    """Index and reason of the rows of ``before`` that a helper moved to ``skipped``.

    The helpers keep the order of the rows, so the dropped rows of ``before`` and the
    rows of ``skipped`` correspond one to one.
    """
    lost = before.filter(~pl.col(_INDEX).is_in(after.get_column(_INDEX).implode()))
    if lost.height != skipped.height:
        raise RuntimeError("spectra lost without a reason")  # a bug, not a user error
    return lost.select(_INDEX, "spectrum_id", "run").with_columns(skipped.get_column("reason"))


def _with_reason(table: pl.DataFrame, reason: str) -> pl.DataFrame:
    return table.select(_INDEX, "spectrum_id", "run", pl.lit(reason).alias("reason"))


@dataclass
class BatchResult:
    """The sequenced and the unsequenced spectra of one batch (with the input index)."""

    sequenced: pl.DataFrame
    unsequenced: pl.DataFrame


def sequence_batch(
    batch: pl.DataFrame,
    sequencer: Sequencer,
    instrument: InstrumentSettings,
    calibration: IsotonicCalibration | None,
    offset: int,
) -> BatchResult:
    """Sequence one batch of spectra.

    Parameters
    ----------
    batch : polars.DataFrame
        Spectra in :data:`~trm.io.table.SPECTRUM_SCHEMA` (extra columns ignored).
    sequencer : Sequencer
    instrument : InstrumentSettings
        Missing-charge policy and charges to try.
    calibration : IsotonicCalibration, optional
        Maps the raw score to ``score``; without it ``score`` is the raw score.
    offset : int
        Input position of the batch's first spectrum.

    Returns
    -------
    BatchResult
        ``sequenced`` in :data:`~trm.io.results.DENOVO_COLUMNS` (``q_value`` still null)
        plus ``_index`` (input position) and ``_tokens``; ``unsequenced`` with
        ``_index``, ``spectrum_id``, ``run``, ``reason``. Both in input order.
    """
    activation = (
        batch.get_column("activation")
        if "activation" in batch.columns
        else pl.Series("activation", [None] * batch.height, dtype=pl.String())
    )
    table = batch.select(*SPECTRUM_SCHEMA).with_row_index(_INDEX, offset)
    table = table.with_columns(pl.col(_INDEX).cast(pl.Int64()), activation.alias("_activation"))
    reasons: list[pl.DataFrame] = []

    electron = (
        pl.col("_activation").str.contains("|".join(sorted(ELECTRON_ACTIVATIONS))).fill_null(False)
    )
    for name in table.filter(electron).get_column("_activation").unique().to_list():
        reasons.append(
            _with_reason(
                table.filter(pl.col("_activation") == name), REASON_ELECTRON.format(activation=name)
            )
        )
    table = table.filter(~electron)
    if "profile" in batch.columns:
        profile = batch.get_column("profile").fill_null(False)
        table = table.with_columns(_profile=profile.gather(table.get_column(_INDEX) - offset))
        reasons.append(_with_reason(table.filter(pl.col("_profile")), REASON_PROFILE))
        table = table.filter(~pl.col("_profile")).drop("_profile")
    other = {"HCD": "CID", "CID": "HCD"}[instrument.fragmentation]
    n_other = table.filter(pl.col("_activation") == other).height
    if n_other:
        log.warning(
            "%d spectra are marked %s but the instrument file says %s: check the instrument "
            "of this sample",
            n_other,
            other,
            instrument.fragmentation,
        )
    table = table.drop("_activation")

    kept, skipped = drop_empty_spectra(table)
    reasons.append(_dropped(table, kept, skipped))
    no_precursor = pl.col("precursor_mz").is_null() | ~(pl.col("precursor_mz") > 0)
    reasons.append(_with_reason(kept.filter(no_precursor), REASON_NO_PRECURSOR))
    kept = kept.filter(~no_precursor)
    before = kept
    kept, skipped = apply_missing_charge_policy(kept, instrument.missing_charge, instrument.charges)
    reasons.append(_dropped(before, kept, skipped))
    # Under "try" one spectrum may have several rows (one per charge); a row's failure
    # becomes the spectrum's reason only when no row of it is sequenced, and then the
    # decoder's verdict on a row it saw comes before a row it could not see.
    bad_charge = pl.col("charge") < 1
    charge_below = _with_reason(kept.filter(bad_charge), REASON_BAD_CHARGE)
    kept = kept.filter(~bad_charge)
    above = pl.col("charge") > sequencer.max_charge
    reason_above = REASON_CHARGE_ABOVE.format(max_charge=sequencer.max_charge)
    charge_above = _with_reason(kept.filter(above), reason_above)
    kept = kept.filter(~above)

    sequenced, failed = _sequence_rows(kept, sequencer, calibration)
    row_reasons = [failed, charge_above, charge_below]
    if sequenced.height:
        # Best copy per spectrum (a spectrum with a charge has one row anyway).
        sequenced = sequenced.sort(
            [_INDEX, "raw_score"], descending=[False, True], maintain_order=True
        ).unique(_INDEX, keep="first", maintain_order=True)
    failures = pl.concat(
        [frame.cast(_UNSEQUENCED_SCHEMA) for frame in row_reasons], how="vertical"
    ).sort(_INDEX, maintain_order=True)
    failures = failures.filter(~pl.col(_INDEX).is_in(sequenced.get_column(_INDEX).implode()))
    reasons.append(failures.unique(_INDEX, keep="first", maintain_order=True))
    unsequenced = pl.concat(
        [frame.cast(_UNSEQUENCED_SCHEMA) for frame in reasons], how="vertical"
    ).sort(_INDEX)
    return BatchResult(sequenced=sequenced.sort(_INDEX), unsequenced=unsequenced)


def _sequence_rows(
    table: pl.DataFrame, sequencer: Sequencer, calibration: IsotonicCalibration | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run the model on rows that can be sequenced; returns (results, failures)."""
    if table.height == 0:
        return pl.DataFrame(schema=_RESULT_SCHEMA), pl.DataFrame(schema=_UNSEQUENCED_SCHEMA)
    vocabulary: Vocabulary = sequencer.vocabulary
    mz, intensity, counts = spectrum_arrays(table, sequencer.n_peaks)
    charge = table.get_column("charge").to_numpy().astype(np.int64)
    precursor_mz = table.get_column("precursor_mz").to_numpy().astype(np.float64)
    precursor_mass = np.asarray(mz_to_mass(precursor_mz, charge), dtype=np.float64)
    # One batch per worker: sequence_file runs the batches of a file in parallel.
    predictions = sequencer.predict(mz, intensity, counts, precursor_mass, charge, workers=1)
    raw = raw_scores(sequencer.settings.raw_score, predictions)
    score = calibration(raw) if calibration is not None else raw
    indexes = table.get_column(_INDEX).to_list()
    ids = table.get_column("spectrum_id").to_list()
    runs = table.get_column("run").to_list()
    rts = table.get_column("rt").to_list()
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for row, decoded in enumerate(predictions.decoded):
        if decoded is None:
            failures.append(
                {
                    _INDEX: indexes[row],
                    "spectrum_id": ids[row],
                    "run": runs[row],
                    "reason": predictions.reasons[row],
                }
            )
            continue
        tokens = [vocabulary.tokens[i] for i in decoded.token_ids]
        mass = float(vocabulary.masses[decoded.token_ids].sum() + WATER_MASS)
        rows.append(
            {
                _INDEX: indexes[row],
                "spectrum_id": ids[row],
                "run": runs[row],
                "peptide": tokens_to_proforma(tokens),
                "charge": int(charge[row]),
                "score": float(score[row]),
                "raw_score": float(raw[row]),
                "q_value": None,
                "precursor_mz": float(precursor_mz[row]),
                "calc_mz": float(mass_to_mz(mass, int(charge[row]))),
                "rt": rts[row],
                "residue_scores": decoded.token_probabilities.astype(np.float64).tolist(),
                "mass_error_ppm": decoded.mass_error_ppm,
                "isotope_error": decoded.isotope_error,
                "search_certified": decoded.certified,
                "candidate_source": decoded.source,
                "graph_score": decoded.graph_score,
                "refinement_steps": int(predictions.steps_used[row]),
                _TOKENS: tokens,
            }
        )
    return (
        pl.DataFrame(rows, schema=_RESULT_SCHEMA),
        pl.DataFrame(failures, schema=_UNSEQUENCED_SCHEMA),
    )


@dataclass
class DenovoOutcome:
    """All results of one sample, in input order.

    Attributes
    ----------
    sequenced : polars.DataFrame
        :data:`~trm.io.results.DENOVO_COLUMNS` with ``q_value`` filled in, plus
        ``_index`` and ``_tokens``.
    unsequenced : polars.DataFrame
        ``_index``, ``spectrum_id``, ``run``, ``reason``.
    n_spectra : int
        MS2 spectra read.
    seconds : float
        Wall time of reading and sequencing.
    spectra_refs : dict
        ``spectrum_id`` -> where the spectrum is in its file (native id, or ``index=N`` in
        an MGF file), for mzTab's ``spectra_ref``; empty for a parquet input.
    """

    sequenced: pl.DataFrame
    unsequenced: pl.DataFrame
    n_spectra: int
    seconds: float
    spectra_refs: dict[str, str] = field(default_factory=dict)

    def denovo_table(self) -> pl.DataFrame:
        """The rows for the result writers (:data:`~trm.io.results.DENOVO_COLUMNS`)."""
        return self.sequenced.select(*DENOVO_COLUMNS)

    def unsequenced_table(self) -> pl.DataFrame:
        """The rows for ``unsequenced.tsv``."""
        return self.unsequenced.select(*UNSEQUENCED_COLUMNS)


def sequence_file(
    path: str | Path,
    run: str,
    sequencer: Sequencer,
    instrument: InstrumentSettings,
    calibration: IsotonicCalibration | None,
    batch_size: int = 256,
    progress_seconds: float = 10.0,
) -> DenovoOutcome:
    """Sequence every MS2 spectrum of a file, streaming it in batches.

    Parameters
    ----------
    path : path
        mzML, mzXML, MGF or spectrum-table parquet.
    run : str
        Run name written with every spectrum.
    sequencer, instrument, calibration
        See :func:`sequence_batch`.
    batch_size : int
        Spectra read (and sequenced) at a time; the sequencer's workers each sequence a
        batch while the next ones are read, and results are kept in input order.
    progress_seconds : float
        Least time between two progress lines in the log.

    Returns
    -------
    DenovoOutcome

    Raises
    ------
    SpectrumFileError
        For an unreadable file or one without MS2 spectra.
    """
    started = last_report = time.perf_counter()
    sequenced: list[pl.DataFrame] = []
    unsequenced: list[pl.DataFrame] = []
    n_spectra = n_done = n_sequenced = 0
    spectra_refs: dict[str, str] = {}
    # Batches in flight, oldest first: one per worker plus the one being read.
    pending: deque[Future[BatchResult]] = deque()

    def collect() -> None:
        nonlocal n_done, n_sequenced, last_report
        result = pending.popleft().result()
        sequenced.append(result.sequenced)
        unsequenced.append(result.unsequenced)
        n_done += result.sequenced.height + result.unsequenced.height
        n_sequenced += result.sequenced.height
        now = time.perf_counter()
        if now - last_report >= progress_seconds:
            last_report = now
            log.info(
                "%d spectra done (%d sequenced), %.1f spectra/s",
                n_done,
                n_sequenced,
                n_done / (now - started),
            )

    with ThreadPoolExecutor(sequencer.workers) as pool:
        try:
            for batch in iter_input_batches(path, batch_size, run):
                if "native_id" in batch.columns:
                    spectra_refs.update(zip(batch["spectrum_id"], batch["native_id"], strict=True))
                pending.append(
                    pool.submit(
                        sequence_batch, batch, sequencer, instrument, calibration, n_spectra
                    )
                )
                n_spectra += batch.height
                while len(pending) > sequencer.workers:
                    collect()
            while pending:
                collect()
        finally:
            for future in pending:
                future.cancel()
    seconds = time.perf_counter() - started
    table = (
        pl.concat(sequenced, how="vertical") if sequenced else pl.DataFrame(schema=_RESULT_SCHEMA)
    )
    if table.height:
        table = table.with_columns(
            q_value=pl.Series(q_values_from_probabilities(table.get_column("score").to_numpy()))
        )
    skipped = (
        pl.concat(unsequenced, how="vertical")
        if unsequenced
        else pl.DataFrame(schema=_UNSEQUENCED_SCHEMA)
    )
    n_ids = pl.concat([table.select("spectrum_id"), skipped.select("spectrum_id")]).n_unique()
    if n_ids < n_spectra:
        log.warning(
            "%s: %d spectra share a spectrum id with another; downstream tools that match "
            "results by id will confuse them",
            path,
            n_spectra - n_ids,
        )
    log.info(
        "%s: %d spectra, %d sequenced, %d unsequenced in %.1f s (%.1f spectra/s)",
        path,
        n_spectra,
        table.height,
        skipped.height,
        seconds,
        n_spectra / seconds if seconds > 0 else float("nan"),
    )
    return DenovoOutcome(
        sequenced=table,
        unsequenced=skipped,
        n_spectra=n_spectra,
        seconds=seconds,
        spectra_refs=spectra_refs,
    )
