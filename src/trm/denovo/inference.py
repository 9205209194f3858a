"""Spectra to peptides with raw scores: the path ``calibrate`` and ``denovo`` share.

Three decoders (:data:`trm.denovo.settings.DECODERS`) find each spectrum's candidates:

``model``
    The model refines its answer from a blank start, with optional early exit through
    the halting head (:meth:`trm.model.PeptideTRM.refine`) and its fragment-evidence
    lookup at the instrument's fragment tolerance; the exact precursor-mass search
    (:func:`trm.denovo.decode.search`) finds the best few peptides that fit the precursor
    under it. Greedy decoding (beam size 0) skips the search.
``graph``
    The spectrum-graph decoder's best paths (:mod:`trm.graph.decoder`): the fragment
    ladder alone, no learning.
``hybrid``
    Evidence first: the graph decoder's best paths; the model's recursion starts from the
    best one as its draft and refines it; the exact search under the refined answer adds
    the model's own candidates. Every candidate of the pool gets the model's
    log-likelihood (its tokens read off the refined distributions) and the graph score.

Spectrum-match rescoring (:mod:`trm.denovo.rescore`) then makes one choice among the
candidates when the model file has a fitted rescorer (the ``graph`` and ``hybrid``
decoders always calibrate the rescored answer). The model reads the ``n_peaks`` most
intense peaks exactly as in training (:func:`trm.train.data.top_peaks`); the graph
decoder reads its own, wider share of them.

Raw scores (:func:`raw_scores`), before calibration:

``peptide``
    The model's probability of exactly the answer: ``exp`` of the sum of the chosen
    log-probabilities over every answer position (residues and ends).
``halt``
    The halting head's probability that the answer is fully correct, at the step the
    spectrum stopped.
``combined``
    Their geometric mean.
``rescored``
    The rescorer's probability that the answer is right, from the model's score and the
    spectrum match (:data:`trm.denovo.rescore.FEATURES`).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch

from trm.chem import Vocabulary
from trm.denovo.decode import REASON_EMPTY, DecodedPeptide, greedy_decode, search
from trm.denovo.rescore import (
    FEATURES,
    INTENSITY_FEATURES,
    UNSCORABLE_LOG_PROBABILITY,
    Rescorer,
    feature_columns,
    intensity_features,
    match_features,
)
from trm.denovo.settings import RAW_SCORE_KINDS, InferenceSettings
from trm.graph import GraphCandidate, GraphDecoder, GraphResult, canonical_tokens
from trm.model import PeptideTRM
from trm.model.network import draft_logits
from trm.train.data import list_column_arrays, top_peaks

#: Where :data:`~trm.denovo.rescore.INTENSITY_FEATURES` sit among the features.
INTENSITY_COLUMNS = feature_columns(INTENSITY_FEATURES)

log = logging.getLogger(__name__)

#: Ratio between the instrument's fragment tolerance and the one a model was trained with
#: above which de novo warns: the model's ion lookup then sees other evidence than it
#: learned from.
TOLERANCE_WARNING_RATIO = 2.0


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
    mz_lists = list_column_arrays(table.get_column("mz"), np.float32)
    intensity_lists = list_column_arrays(table.get_column("intensity"), np.float32)
    return top_peaks(mz_lists, intensity_lists, n_peaks)


@dataclass
class Predictions:
    """The answer of the model for a set of spectra.

    Attributes
    ----------
    decoded : list of DecodedPeptide or None
        The answer; None where there is none (see ``reasons``).
    halt_probability : numpy.ndarray of shape (n,)
        Halting head's probability at the step each spectrum stopped.
    steps_used : numpy.ndarray of shape (n,)
        Supervision steps each spectrum ran (1..T).
    reasons : list of str or None
        Why a spectrum has no answer (the search's reason, or an empty greedy answer).
    candidates : list of list of DecodedPeptide
        The fitting peptides the search kept, best model score first.
    features : numpy.ndarray of shape (n, n_candidates, len(FEATURES))
        Spectrum-match features of the candidates (:func:`trm.denovo.rescore.match_features`).
    present : numpy.ndarray of shape (n, n_candidates), bool
    rescored : numpy.ndarray of shape (n,)
        The rescorer's probability of the answer; NaN without rescorer or answer.
    """

    decoded: list[DecodedPeptide | None]
    halt_probability: np.ndarray
    steps_used: np.ndarray
    reasons: list[str | None] = field(default_factory=list)
    candidates: list[list[DecodedPeptide]] = field(default_factory=list)
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, len(FEATURES))))
    present: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=bool))
    rescored: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def concatenate(cls, parts: list[Predictions]) -> Predictions:
        """One :class:`Predictions` of several, in order."""
        if not parts:
            return cls(decoded=[], halt_probability=np.empty(0), steps_used=np.empty(0, int))
        return cls(
            decoded=[d for part in parts for d in part.decoded],
            halt_probability=np.concatenate([p.halt_probability for p in parts]),
            steps_used=np.concatenate([p.steps_used for p in parts]),
            reasons=[r for part in parts for r in part.reasons],
            candidates=[c for part in parts for c in part.candidates],
            features=np.concatenate([p.features for p in parts]),
            present=np.concatenate([p.present for p in parts]),
            rescored=np.concatenate([p.rescored for p in parts]),
        )

    def choose(self, rescorer: Rescorer | None) -> Predictions:
        """These predictions with each answer chosen among the candidates by ``rescorer``
        (:meth:`~trm.denovo.rescore.Rescorer.choose`; the first candidate, the model's
        best, when None), its probability the answer's ``rescored`` score."""
        if rescorer is None:
            return Predictions(
                decoded=[c[0] if c else None for c in self.candidates],
                halt_probability=self.halt_probability,
                steps_used=self.steps_used,
                reasons=self.reasons,
                candidates=self.candidates,
                features=self.features,
                present=self.present,
                rescored=np.full(len(self.candidates), np.nan),
            )
        probability = rescorer(self.features)
        best = rescorer.choose(self.features, self.present)
        return Predictions(
            decoded=[c[best[row]] if c else None for row, c in enumerate(self.candidates)],
            halt_probability=self.halt_probability,
            steps_used=self.steps_used,
            reasons=self.reasons,
            candidates=self.candidates,
            features=self.features,
            present=self.present,
            rescored=np.where(
                self.present.any(axis=1), probability[np.arange(len(best)), best], np.nan
            ),
        )


def raw_scores(kind: str, predictions: Predictions) -> np.ndarray:
    """Raw score of each answer; NaN where there is none.

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
    if kind == "rescored":
        return np.asarray(predictions.rescored, dtype=np.float64)
    halt = np.where(np.isnan(peptide), np.nan, predictions.halt_probability.astype(np.float64))
    if kind == "halt":
        return halt
    return np.sqrt(peptide * halt)


def parallel_plan(threads: int, device: torch.device) -> int:
    """Set torch's thread count for sequencing with ``threads`` CPU threads; returns the
    number of :class:`Sequencer` workers.

    On the CPU the threads become workers that each sequence their own batch on one torch
    thread: the model is small, so one batch's matrix products gain little from a second
    thread, while whole batches are independent (``benchmarks/results/denovo_speed_shipped.md``
    compares the two). On a GPU one worker drives the device and torch gets the threads.
    """
    if threads < 1:
        raise ValueError(f"threads must be positive, got {threads}")
    if device.type == "cpu":
        torch.set_num_threads(1)
        return threads
    torch.set_num_threads(threads)
    return 1


@dataclass
class StageTimes:
    """Seconds spent in the model, the search, the rescoring and the graph decoder, summed
    over calls (and over workers, so with several workers their sum exceeds the wall
    time)."""

    model: float = 0.0
    decode: float = 0.0
    rescore: float = 0.0
    graph: float = 0.0
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
    rescorer : Rescorer, optional
        Chooses the answer among the search's candidates (``raw_score`` ``rescored``).
    workers : int
        Batches sequenced at once, each in its own thread (torch and numpy release the
        GIL); see :func:`parallel_plan` for how ``--threads`` becomes workers.
    graph : GraphDecoder, optional
        The spectrum-graph decoder; needed by the ``graph`` and ``hybrid`` decoders.
    intensity_predictor : trm.synth.ms2pip_models.Ms2pipPredictor, optional
        Predicts the candidates' fragment intensities for the rescoring's
        :data:`~trm.denovo.rescore.INTENSITY_FEATURES` (0 without it); needed by a
        rescorer that reads them.

    Attributes
    ----------
    fragment_tolerance_da : float
        Tolerance (Da) of the model's ion lookup and of the rescoring: the settings', or
        the one the model was trained with. A warning says when it differs from the
        trained one by more than :data:`TOLERANCE_WARNING_RATIO`.
    refinement_steps : int
        Supervision steps run at most: the settings', or as many as the model was
        trained with.
    """

    def __init__(
        self,
        model: PeptideTRM,
        vocabulary: Vocabulary,
        settings: InferenceSettings,
        device: torch.device | str = "cpu",
        batch_size: int = 256,
        rescorer: Rescorer | None = None,
        workers: int = 1,
        graph: GraphDecoder | None = None,
        intensity_predictor: Any | None = None,
    ) -> None:
        if settings.decoder != "model" and graph is None:
            raise ValueError(f"the {settings.decoder} decoder needs a graph decoder")
        if (
            settings.raw_score == "rescored"
            and rescorer is not None
            and rescorer.uses_intensities
            and intensity_predictor is None
        ):
            raise ValueError(
                "the rescorer reads predicted fragment intensities: the sequencer needs an "
                "intensity predictor (the instrument's MS2PIP model, --ms2pip-model-dir)"
            )
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        if workers < 1:
            raise ValueError(f"workers must be positive, got {workers}")
        if settings.raw_score == "rescored" and rescorer is None:
            raise ValueError("the raw score 'rescored' needs a rescorer (from trm calibrate)")
        self.model = model.eval()
        self.vocabulary = vocabulary
        self.settings = settings
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.rescorer = rescorer if settings.raw_score == "rescored" else None
        self.workers = workers
        self.graph = graph if settings.decoder != "model" else None
        self.intensity_predictor = intensity_predictor
        if self.graph is not None:
            self._canonical = canonical_tokens(vocabulary)
        self.times = StageTimes()
        self._times_lock = threading.Lock()
        trained = model.config.evidence_tolerance
        self.fragment_tolerance_da = (
            trained if settings.fragment_tolerance_da is None else settings.fragment_tolerance_da
        )
        self.refinement_steps = settings.refinement_steps or model.config.supervision_steps
        ratio = self.fragment_tolerance_da / trained
        if max(ratio, 1 / ratio) > TOLERANCE_WARNING_RATIO:
            log.warning(
                "the instrument's fragment tolerance (%g Da) differs from the %g Da the model "
                "was trained with by more than %gx: its fragment evidence will look unlike "
                "what it learned from; train a model for this instrument",
                self.fragment_tolerance_da,
                trained,
                TOLERANCE_WARNING_RATIO,
            )

    @property
    def n_peaks(self) -> int:
        """Peaks read per spectrum: the model's, or the graph decoder's when more."""
        if self.graph is None:
            return self.model.config.n_peaks
        return max(self.model.config.n_peaks, self.graph.settings.max_peaks)

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
        workers: int | None = None,
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
        workers : int, optional
            Batches sequenced at once (default: the sequencer's ``workers``; 1 where the
            caller already runs batches in parallel).

        Returns
        -------
        Predictions
        """

        def one(start: int) -> Predictions:
            end = start + self.batch_size
            return self._predict_batch(
                mz[start:end],
                intensity[start:end],
                counts[start:end],
                np.asarray(precursor_mass[start:end], dtype=np.float64),
                np.asarray(charge[start:end], dtype=np.int64),
            )

        starts = range(0, len(counts), self.batch_size)
        workers = min(self.workers if workers is None else workers, len(starts))
        if workers <= 1:
            return Predictions.concatenate([one(start) for start in starts])
        with ThreadPoolExecutor(workers) as pool:
            return Predictions.concatenate(list(pool.map(one, starts)))

    def refine_batch(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
        drafts: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's answer distributions for one batch, before any search.

        Parameters are those of :meth:`predict` (one batch of them, peaks as the model
        reads them), and:

        drafts : numpy.ndarray of shape (n, max_length), int64, optional
            Token ids of each spectrum's starting answer (the end class after it; all 0
            starts blank).

        Returns
        -------
        log_probs : numpy.ndarray of shape (n, max_length, n_tokens), float32
            Log-probabilities of each token at each answer position, after the last step.
        halt_probability : numpy.ndarray of shape (n,)
        steps_used : numpy.ndarray of shape (n,)
        """
        # Padding columns no spectrum of the batch uses change nothing (they are masked).
        width = max(int(counts.max()), 1)
        device = self.device
        draft = None
        if drafts is not None:
            draft = draft_logits(torch.from_numpy(drafts), len(self.vocabulary)).to(device)
            draft = draft * torch.from_numpy(drafts.any(axis=1))[:, None, None].to(device)
        refinement = self.model.refine(
            torch.from_numpy(np.ascontiguousarray(mz[:, :width])).to(device),
            torch.from_numpy(np.ascontiguousarray(intensity[:, :width])).to(device),
            torch.from_numpy(np.arange(width) < counts[:, None]).to(device),
            torch.from_numpy(np.asarray(precursor_mass).astype(np.float32)).to(device),
            torch.from_numpy(np.asarray(charge, dtype=np.int64)).to(device),
            halt_threshold=self.settings.halt_threshold,
            max_steps=self.refinement_steps,
            fragment_tolerance_da=self.fragment_tolerance_da,
            draft=draft,
        )
        log_probs = torch.log_softmax(refinement.logits.float(), dim=-1).cpu().numpy()
        halt = refinement.halt_probability.float().cpu().numpy()
        return log_probs, halt, refinement.steps_used.cpu().numpy()

    def _predict_batch(
        self,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
    ) -> Predictions:
        started = time.perf_counter()
        decoding = self.settings.decoding
        graph_result = None
        if self.graph is not None:
            graph_result = self.graph.decode(mz, intensity, counts, precursor_mass, charge)
        graph_done = time.perf_counter()
        model_mz, model_intensity, model_counts = narrow_peaks(
            mz, intensity, counts, self.model.config.n_peaks
        )
        n = len(counts)
        forced_seconds = 0.0
        if self.settings.decoder == "graph":
            assert graph_result is not None
            candidates = [
                [self._graph_peptide(c) for c in row[: decoding.n_candidates]]
                for row in graph_result.candidates
            ]
            reasons = list(graph_result.reasons)
            halt, steps = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.int64)
            model_done = decoding_started = time.perf_counter()
        else:
            drafts = None if graph_result is None else self._drafts(graph_result)
            log_probs, halt, steps = self.refine_batch(
                model_mz, model_intensity, model_counts, precursor_mass, charge, drafts
            )
            model_done = decoding_started = time.perf_counter()
            if decoding.beam_size == 0:
                greedy = greedy_decode(log_probs, precursor_mass, self.vocabulary)
                candidates = [[] if d is None else [d] for d in greedy]
                reasons = [None if d is not None else REASON_EMPTY for d in greedy]
            else:
                result = search(
                    log_probs, precursor_mass, self.vocabulary, decoding, torch.get_num_threads()
                )
                candidates, reasons = result.candidates, result.reasons
            if graph_result is not None:
                candidates, reasons = self._merge(
                    candidates, reasons, graph_result, log_probs, mz, intensity, counts,
                    precursor_mass, charge,
                )  # fmt: skip
            if graph_result is not None and self.settings.teacher_forcing:
                forced_started = time.perf_counter()
                self._score_forced(
                    candidates, model_mz, model_intensity, model_counts, precursor_mass, charge
                )
                forced_seconds = time.perf_counter() - forced_started
        rescoring_started = time.perf_counter()
        width = max(int(model_counts.max()), 1)
        features, present = match_features(
            candidates,
            halt,
            model_mz[:, :width],
            model_intensity[:, :width],
            model_counts,
            charge,
            self.vocabulary,
            self.fragment_tolerance_da,
            decoding.precursor_tolerance_ppm,
            self.n_candidates,
        )
        if self.intensity_predictor is not None:
            features[..., INTENSITY_COLUMNS] = intensity_features(
                candidates,
                model_mz[:, :width],
                model_intensity[:, :width],
                model_counts,
                charge,
                self.vocabulary,
                self.intensity_predictor,
                self.fragment_tolerance_da,
                self.n_candidates,
            )
        predictions = Predictions(
            decoded=[],
            halt_probability=halt,
            steps_used=steps,
            reasons=reasons,
            candidates=candidates,
            features=features,
            present=present,
        ).choose(self.rescorer)
        finished = time.perf_counter()
        with self._times_lock:
            self.times.graph += graph_done - started
            self.times.model += model_done - graph_done + forced_seconds
            self.times.decode += rescoring_started - decoding_started - forced_seconds
            self.times.rescore += finished - rescoring_started
            self.times.spectra += len(counts)
            self.times.steps.extend(steps.tolist())
        return predictions

    @property
    def n_candidates(self) -> int:
        """Candidates per spectrum at most: the search's, plus the graph's in ``hybrid``."""
        n = self.settings.decoding.n_candidates
        if self.settings.decoder == "hybrid":
            n += self.settings.graph.n_candidates
        return n

    def _score_forced(
        self,
        candidates: list[list[DecodedPeptide]],
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
    ) -> None:
        """Give the candidates the model's teacher-forced log-likelihood and halting
        probability (:meth:`trm.model.PeptideTRM.score_answers`), in place: each pool's
        ``forced_candidates`` best by graph score (all with 0); the others, and answers
        longer than the model's window, get the unscorable floor."""
        length = self.model.config.max_length
        limit = self.settings.forced_candidates
        width = max((len(pool) for pool in candidates), default=0)
        if limit:
            width = min(width, limit)
        if width == 0:
            return
        answers = np.zeros((len(candidates), width, length), dtype=np.int64)
        fits = np.zeros((len(candidates), width), dtype=bool)
        scored: list[list[int]] = []
        for row, pool in enumerate(candidates):
            graph = np.array([peptide.graph_score for peptide in pool], dtype=np.float64)
            chosen = np.argsort(-np.nan_to_num(graph, nan=-np.inf), kind="stable")[:width].tolist()
            scored.append(chosen)
            for column, rank in enumerate(chosen):
                peptide = pool[rank]
                if len(peptide.token_ids) < length:
                    answers[row, column, : len(peptide.token_ids)] = peptide.token_ids
                    fits[row, column] = True
        peaks = max(int(counts.max()), 1)
        device = self.device
        log_likelihood, halt = self.model.score_answers(
            torch.from_numpy(np.ascontiguousarray(mz[:, :peaks])).to(device),
            torch.from_numpy(np.ascontiguousarray(intensity[:, :peaks])).to(device),
            torch.from_numpy(np.arange(peaks) < counts[:, None]).to(device),
            torch.from_numpy(np.asarray(precursor_mass).astype(np.float32)).to(device),
            torch.from_numpy(np.asarray(charge, dtype=np.int64)).to(device),
            torch.from_numpy(answers).to(device),
            fragment_tolerance_da=self.fragment_tolerance_da,
        )
        log_likelihood, halt = log_likelihood.cpu().numpy(), halt.cpu().numpy()
        for row, pool in enumerate(candidates):
            for peptide in pool:
                peptide.forced_log_probability = UNSCORABLE_LOG_PROBABILITY
                peptide.forced_halt_probability = 0.0
            for column, rank in enumerate(scored[row]):
                if fits[row, column]:
                    pool[rank].forced_log_probability = float(log_likelihood[row, column])
                    pool[rank].forced_halt_probability = float(halt[row, column])

    def _drafts(self, graph_result: GraphResult) -> np.ndarray:
        """Token ids (n, max_length) of each spectrum's best graph path, as the model's
        starting answer; rows of 0 (blank) where there is none or it is too long."""
        length = self.model.config.max_length
        drafts = np.zeros((len(graph_result.candidates), length), dtype=np.int64)
        for row, best in enumerate(graph_result.best):
            if best is not None and len(best.token_ids) < length:
                drafts[row, : len(best.token_ids)] = best.token_ids
        return drafts

    def _graph_peptide(
        self, candidate: GraphCandidate, log_probs: np.ndarray | None = None
    ) -> DecodedPeptide:
        """A graph candidate as a decoded peptide; with the model's ``log_probs`` of its
        spectrum (max_length, n_tokens), the model's log-likelihood of it, each token read
        as the likeliest of its mass-identical twins (I/L, ...)."""
        ids = candidate.token_ids
        if log_probs is None:
            # per-residue scores: the logistic of the site score after each token
            sites = np.append(candidate.site_scores, 0.0)[: len(ids)]
            probabilities = 1.0 / (1.0 + np.exp(-np.clip(sites, -30, 30)))
            log_probability = float("nan")
        elif len(ids) >= len(log_probs):
            probabilities = np.zeros(len(ids))
            log_probability = UNSCORABLE_LOG_PROBABILITY
        else:
            twins = self._canonical == self._canonical[ids][:, None]  # (n_tokens_peptide, V)
            rows = log_probs[: len(ids)]
            ids = np.where(twins, rows, -np.inf).argmax(axis=1)
            chosen = rows[np.arange(len(ids)), ids]
            probabilities = np.exp(chosen)
            log_probability = float(chosen.sum() + log_probs[len(ids) :, 0].sum())
        return DecodedPeptide(
            token_ids=ids,
            log_probability=log_probability,
            token_probabilities=probabilities,
            mass_error_ppm=candidate.mass_error_ppm,
            isotope_error=candidate.isotope_error,
            graph_score=candidate.score,
            source="graph",
        )

    def _merge(
        self,
        model_candidates: list[list[DecodedPeptide]],
        reasons: list[str | None],
        graph_result: GraphResult,
        log_probs: np.ndarray,
        mz: np.ndarray,
        intensity: np.ndarray,
        counts: np.ndarray,
        precursor_mass: np.ndarray,
        charge: np.ndarray,
    ) -> tuple[list[list[DecodedPeptide]], list[str | None]]:
        """The hybrid pool of each spectrum: the search's candidates (with their graph
        scores) first, then the graph's not already among them (with their model
        log-likelihoods); a peptide both proposed is kept once, marked ``graph+model``."""
        longest = max((len(c.token_ids) for row in model_candidates for c in row), default=1)
        ids = np.zeros((len(model_candidates), max(1, max(map(len, model_candidates), default=1)),
                        longest), dtype=np.int64)  # fmt: skip
        for row, peptides in enumerate(model_candidates):
            for rank, peptide in enumerate(peptides):
                ids[row, rank, : len(peptide.token_ids)] = peptide.token_ids
        scores = self.graph.score_peptides(mz, intensity, counts, precursor_mass, charge, ids)
        pools: list[list[DecodedPeptide]] = []
        for row, peptides in enumerate(model_candidates):
            pool = []
            seen: dict[tuple[int, ...], int] = {}
            for rank, peptide in enumerate(peptides):
                peptide.graph_score = float(scores.score[row, rank])
                seen[tuple(self._canonical[peptide.token_ids].tolist())] = len(pool)
                pool.append(peptide)
            for candidate in graph_result.candidates[row][: self.settings.graph.n_candidates]:
                key = tuple(self._canonical[candidate.token_ids].tolist())
                if key in seen:
                    pool[seen[key]].source = "graph+model"
                    continue
                seen[key] = len(pool)
                pool.append(self._graph_peptide(candidate, log_probs[row]))
            pools.append(pool)
        merged_reasons = [
            reason if not pool else None for reason, pool in zip(reasons, pools, strict=True)
        ]
        return pools, merged_reasons


def narrow_peaks(
    mz: np.ndarray, intensity: np.ndarray, counts: np.ndarray, n_peaks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``n_peaks`` most intense of each row's peaks, in their order, zero-padded: the
    peaks :func:`trm.train.data.top_peaks` would keep of the whole spectrum when the rows
    hold its most intense peaks in m/z order (ties to the earlier peak).

    Parameters
    ----------
    mz, intensity : numpy.ndarray of shape (n, width)
    counts : numpy.ndarray of shape (n,)
    n_peaks : int

    Returns
    -------
    mz, intensity : numpy.ndarray of shape (n, min(width, n_peaks))
    counts : numpy.ndarray of shape (n,)
    """
    width = mz.shape[1]
    if width <= n_peaks:
        return mz, intensity, counts
    real = np.arange(width)[None, :] < counts[:, None]
    order = np.argsort(np.where(real, -intensity, np.inf), axis=1, kind="stable")[:, :n_peaks]
    keep = np.sort(order, axis=1)
    kept = np.minimum(counts, n_peaks)
    inside = np.arange(n_peaks)[None, :] < kept[:, None]
    return (
        np.where(inside, np.take_along_axis(mz, keep, axis=1), 0).astype(mz.dtype),
        np.where(inside, np.take_along_axis(intensity, keep, axis=1), 0).astype(intensity.dtype),
        kept,
    )


def steps_histogram(steps: np.ndarray | list[int], n_steps: int) -> dict[str, int]:
    """Spectra per number of supervision steps run, ``{"1": n1, ..., "T": nT}``."""
    counts = np.bincount(np.asarray(steps, dtype=np.int64), minlength=n_steps + 1)
    return {str(step): int(counts[step]) for step in range(1, n_steps + 1)}
