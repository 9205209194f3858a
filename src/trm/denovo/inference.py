"""Spectra to decoded peptides with raw scores: the path ``calibrate`` and ``denovo`` share.

Peaks are cut to the ``n_peaks`` most intense exactly as in training
(:func:`trm.train.data.top_peaks`), the model refines its answer with optional early exit
through the halting head (:meth:`trm.model.PeptideTRM.refine`), and the final answer's
log-probabilities are decoded by :func:`trm.decode.beam_decode` (greedy when the beam size
is 0).

Raw scores (:func:`raw_scores`), before calibration:

``peptide``
    The model's probability of exactly the decoded answer: ``exp`` of the sum of the
    chosen log-probabilities over every answer position (residues and ends).
``halt``
    The halting head's probability that the answer is fully correct, at the step the
    spectrum stopped.
``combined``
    Their geometric mean.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from trm.chem import Vocabulary
from trm.decode import DecodedPeptide, beam_decode
from trm.denovo.settings import RAW_SCORE_KINDS, InferenceSettings
from trm.model import PeptideTRM
from trm.train.data import top_peaks

log = logging.getLogger(__name__)


def peak_lists(table: pl.DataFrame) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The ``mz`` and ``intensity`` list columns of a spectrum table as numpy arrays.

    Reads each column once as a flat array and splits it by the list lengths, without a
    Python object per peak.
    """
    lengths = table.get_column("mz").list.len().fill_null(0).to_numpy()
    splits = np.cumsum(lengths)[:-1]
    out = []
    for name in ("mz", "intensity"):
        flat = table.get_column(name).explode(empty_as_null=False).drop_nulls()
        out.append(np.split(flat.to_numpy().astype(np.float32, copy=False), splits))
    return out[0], out[1]


def spectrum_arrays(table: pl.DataFrame, n_peaks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed-width peak arrays of a spectrum table, prepared as for training.

    Parameters
    ----------
    table : polars.DataFrame
        Columns ``mz`` and ``intensity`` (lists).
    n_peaks : int
        The model's peak count.

    Returns
    -------
    mz, intensity : numpy.ndarray of shape (n_spectra, n_peaks), float32
    counts : numpy.ndarray of shape (n_spectra,)
    """
    mz_lists, intensity_lists = peak_lists(table)
    return top_peaks(mz_lists, intensity_lists, n_peaks)


@dataclass
class Predictions:
    """The answer of the model for a set of spectra.

    Attributes
    ----------
    decoded : list of DecodedPeptide or None
        None where decoding found no peptide (beam: none fits the precursor; greedy: the
        answer is empty).
    halt_probability : numpy.ndarray of shape (n,)
        Halting head's probability at the step each spectrum stopped.
    steps_used : numpy.ndarray of shape (n,)
        Supervision steps each spectrum ran (1..T).
    """

    decoded: list[DecodedPeptide | None]
    halt_probability: np.ndarray
    steps_used: np.ndarray

    @classmethod
    def concatenate(cls, parts: list[Predictions]) -> Predictions:
        """One :class:`Predictions` of several, in order."""
        return cls(
            decoded=[d for part in parts for d in part.decoded],
            halt_probability=np.concatenate([p.halt_probability for p in parts])
            if parts
            else np.empty(0),
            steps_used=np.concatenate([p.steps_used for p in parts])
            if parts
            else np.empty(0, dtype=np.int64),
        )


def raw_scores(kind: str, predictions: Predictions) -> np.ndarray:
    """Raw score of each decoded peptide; NaN where there is none.

    Parameters
    ----------
    kind : str
        One of :data:`~trm.denovo.settings.RAW_SCORE_KINDS` (see the module description).
    predictions : Predictions

    Returns
    -------
    numpy.ndarray of shape (n,), in [0, 1] or NaN.
    """
    if kind not in RAW_SCORE_KINDS:
        raise ValueError(f"raw score must be one of {RAW_SCORE_KINDS}, not {kind!r}")
    peptide = np.array(
        [np.nan if d is None else np.exp(d.log_probability) for d in predictions.decoded],
        dtype=np.float64,
    )
    if kind == "peptide":
        return peptide
    halt = np.where(np.isnan(peptide), np.nan, predictions.halt_probability.astype(np.float64))
    if kind == "halt":
        return halt
    return np.sqrt(peptide * halt)


@dataclass
class StageTimes:
    """Seconds spent in the model and in decoding, summed over calls."""

    model: float = 0.0
    decode: float = 0.0
    spectra: int = 0
    steps: list[int] = field(default_factory=list)


class Sequencer:
    """A model, its vocabulary and the inference settings, ready to sequence peak arrays.

    Parameters
    ----------
    model : PeptideTRM
        In eval mode, on ``device``.
    vocabulary : Vocabulary
    settings : InferenceSettings
    device : torch.device or str
    batch_size : int
        Spectra per forward pass.
    """

    def __init__(
        self,
        model: PeptideTRM,
        vocabulary: Vocabulary,
        settings: InferenceSettings,
        device: torch.device | str = "cpu",
        batch_size: int = 256,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.model = model.eval()
        self.vocabulary = vocabulary
        self.settings = settings
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.times = StageTimes()

    @property
    def n_peaks(self) -> int:
        """Peaks the model reads per spectrum."""
        return self.model.config.n_peaks

    @property
    def max_charge(self) -> int:
        """Largest precursor charge with its own embedding in the model."""
        return self.model.config.max_charge

    def predict(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
    ) -> Predictions:
        """Sequence spectra given as arrays, ``batch_size`` at a time.

        Parameters
        ----------
        mz, intensity : numpy.ndarray of shape (n, width), float32
            From :func:`spectrum_arrays` (``width`` at most the model's ``n_peaks``).
        counts : numpy.ndarray of shape (n,)
            Real peaks per spectrum.
        precursor_mass : numpy.ndarray of shape (n,)
            Neutral precursor masses (Da).
        charge : numpy.ndarray of shape (n,)
            Precursor charges.

        Returns
        -------
        Predictions
        """
        parts = [
            self._predict_batch(
                mz[start : start + self.batch_size],
                intensity[start : start + self.batch_size],
                counts[start : start + self.batch_size],
                np.asarray(precursor_mass[start : start + self.batch_size], dtype=np.float64),
                np.asarray(charge[start : start + self.batch_size], dtype=np.int64),
            )
            for start in range(0, len(counts), self.batch_size)
        ]
        return Predictions.concatenate(parts)

    def _predict_batch(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
    ) -> Predictions:
        started = time.perf_counter()
        # Padding columns no spectrum of the batch uses change nothing (they are masked).
        width = max(int(counts.max()), 1)
        device = self.device
        refinement = self.model.refine(
            torch.from_numpy(np.ascontiguousarray(mz[:, :width])).to(device),
            torch.from_numpy(np.ascontiguousarray(intensity[:, :width])).to(device),
            torch.from_numpy(np.arange(width) < counts[:, None]).to(device),
            torch.from_numpy(precursor_mass.astype(np.float32)).to(device),
            torch.from_numpy(charge).to(device),
            halt_threshold=self.settings.halt_threshold,
        )
        log_probs = torch.log_softmax(refinement.logits.float(), dim=-1).cpu().numpy()
        halt = refinement.halt_probability.float().cpu().numpy()
        steps = refinement.steps_used.cpu().numpy()
        decoding_started = time.perf_counter()
        decoded = beam_decode(log_probs, precursor_mass, self.vocabulary, self.settings.decoding)
        finished = time.perf_counter()
        self.times.model += decoding_started - started
        self.times.decode += finished - decoding_started
        self.times.spectra += len(counts)
        self.times.steps.extend(steps.tolist())
        return Predictions(decoded=decoded, halt_probability=halt, steps_used=steps)


def steps_histogram(steps: np.ndarray | list[int], n_steps: int) -> dict[str, int]:
    """Spectra per number of supervision steps run, ``{"1": n1, ..., "T": nT}``."""
    counts = np.bincount(np.asarray(steps, dtype=np.int64), minlength=n_steps + 1)
    return {str(step): int(counts[step]) for step in range(1, n_steps + 1)}
