"""The training loop: AdamW, warm-up + cosine, clipping, EMA, mixed precision, DDP,
checkpoints that resume exactly.

Exact resumption rests on three things: the data order and the noise of a step are pure
functions of ``(seed, step, rank)`` (no loader state), every schedule is a pure function
of the step, and the checkpoint holds the weights, the EMA, the optimizer moments and the
generator states. A run killed after step ``s`` and resumed from its checkpoint therefore
performs bit for bit the updates an uninterrupted run performs (same device, same thread
count).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trm.atomic import atomic_output
from trm.chem import Vocabulary
from trm.graph import (
    GraphCandidate,
    GraphDecoder,
    GraphSettings,
    IonProbabilities,
    canonical_tokens,
)
from trm.metrics import sequencing_metrics
from trm.model import ModelConfig, build_model, count_parameters, inference_flops
from trm.model.network import draft_logits
from trm.noise_model import NoiseModelParameters
from trm.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    checkpoint_vocabulary,
    read_checkpoint,
    save_checkpoint,
)
from trm.train.config import TrainConfig
from trm.train.curriculum import learning_rate
from trm.train.data import SpectrumBatch, SpectrumDataset, batch_indices
from trm.train.evaluation import RefinementTracker, SequencingAccumulator, answer_mask
from trm.train.losses import compute_loss, ranking_loss
from trm.train.noise import FittedNoise, NoiseModel

log = logging.getLogger(__name__)

#: Stream tags separating the seeds of training noise and evaluation noise.
_TRAIN_STREAM, _EVAL_STREAM = 1, 2


def _seed(*values: int) -> int:
    return int(np.random.SeedSequence(list(values)).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, metrics and logs."""
        return self.rank == 0


def init_distributed(device: str | torch.device) -> DistributedContext:
    """Join a ``torchrun`` process group when ``WORLD_SIZE`` > 1.

    Each process then trains on its own GPU (``LOCAL_RANK``) with NCCL, or on CPU with Gloo.
    """
    device = torch.device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return DistributedContext(rank=dist.get_rank(), world_size=world_size, device=device)


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # Decay only matrices of linear layers; biases, norms and embeddings keep their scale.
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        is_embedding = "embedding" in name and "answer_embedding" not in name
        if parameter.ndim >= 2 and not is_embedding:
            decay.append(parameter)
        else:
            no_decay.append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@dataclass(frozen=True)
class Ranking:
    """Answers a training step ranks (:meth:`Trainer.ranking_answers`).

    Attributes
    ----------
    rows : torch.Tensor of shape (n,), int64
        Batch rows of the ranked spectra.
    answers : torch.Tensor of shape (n, 1 + rank_candidates, max_length), int64
        The true peptide, then wrong candidates.
    valid : torch.Tensor of shape (n, 1 + rank_candidates), bool
        Which answers exist.
    offsets : torch.Tensor of shape (n, 1 + rank_candidates), float32
        Added to the model's scores before ranking: each answer's graph score with
        ``rank_graph_score``, else 0.
    totals : (float, float) or None
        Spectra with a wrong candidate and valid answers in the whole batch divided by
        the number of processes, when these rows are one process's share of it
        (:meth:`local`; DDP averages the processes' gradients, so their losses, sums
        over these, average to the whole batch's means); None: these rows are the batch.
    """

    rows: torch.Tensor
    answers: torch.Tensor
    valid: torch.Tensor
    offsets: torch.Tensor
    totals: tuple[float, float] | None = None

    def local(self, start: int, stop: int, world_size: int) -> Ranking:
        """The ranked rows among batch rows ``start``..``stop``, renumbered from 0, of
        a batch shared by ``world_size`` processes."""
        keep = (self.rows >= start) & (self.rows < stop)
        n_ranked = int(self.valid[:, 1:].any(dim=1).sum())
        n_answers = int(self.valid.sum())
        return Ranking(
            self.rows[keep] - start,
            self.answers[keep],
            self.valid[keep],
            self.offsets[keep],
            totals=(n_ranked / world_size, n_answers / world_size),
        )


class Trainer:
    """Model, EMA, optimizer and step counter, with one method per thing a loop does.

    Parameters
    ----------
    model_config : ModelConfig
    train_config : TrainConfig
    vocabulary : Vocabulary
    context : DistributedContext, optional
        Rank, world size and device (default: one CPU process).
    noise_model : NoiseModel, optional
        Replaces the config's noise (its ``fitted_noise`` model, else its ramp).
    """

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        vocabulary: Vocabulary,
        context: DistributedContext | None = None,
        noise_model: NoiseModel | None = None,
    ) -> None:
        self.context = context or DistributedContext()
        self.config = train_config
        self.vocabulary = vocabulary
        self.device = self.context.device
        torch.manual_seed(train_config.seed)
        self.model = build_model(model_config, vocabulary).to(self.device)
        self.model_config = self.model.config
        self.ema_model = copy.deepcopy(self.model).eval()
        for parameter in self.ema_model.parameters():
            parameter.requires_grad_(False)
        self.network: nn.Module = self.model
        if self.context.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = torch.optim.AdamW(
            _parameter_groups(self.model, train_config.weight_decay),
            lr=train_config.learning_rate,
            betas=(0.9, 0.95),
        )
        if noise_model is None and train_config.fitted_noise is not None:
            noise_model = FittedNoise(
                NoiseModelParameters.from_dict(train_config.fitted_noise), vocabulary
            )
        self.noise_model: NoiseModel = noise_model or train_config.noise
        self.graph = None
        if train_config.graph_draft_fraction > 0 or train_config.rank_fraction > 0:
            self.graph = GraphDecoder(
                vocabulary,
                GraphSettings.for_tolerance(self.model_config.evidence_tolerance),
                IonProbabilities.from_noise_model(
                    NoiseModelParameters.from_dict(train_config.fitted_noise)
                )
                if train_config.fitted_noise is not None
                else None,
            )
        self._canonical = canonical_tokens(vocabulary)
        self.token_masses = torch.tensor(vocabulary.masses, dtype=torch.float32).to(self.device)
        self.step = 0
        #: CPU time (all threads of this process) spent training, summed over resumes.
        self.cpu_seconds = 0.0

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.device.type == "cuda" and self.config.mixed_precision:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            yield

    def augment(self, batch: SpectrumBatch, step: int, generator: torch.Generator) -> SpectrumBatch:
        """Noise a batch as the curriculum prescribes at ``step`` (on the CPU).

        A fraction ``clean_fraction(step)`` of the spectra stays clean; the others get noise
        of strength ``noise_strength(step)`` from the noise model.
        """
        curriculum = self.config.curriculum
        n_spectra = len(batch)
        steps = self.config.steps
        noisy = torch.rand(n_spectra, generator=generator) >= curriculum.clean_fraction(step, steps)
        strength = torch.where(noisy, curriculum.noise_strength(step, steps), 0.0)
        return self.noise_model.apply(batch, strength, generator)

    def draft(self, batch: SpectrumBatch, generator: torch.Generator) -> torch.Tensor | None:
        """Starting answers for a batch: drafts for ``draft_fraction`` of it (see
        :class:`TrainConfig`), blank for the rest; None when drafts are off. A draft is
        the true peptide with random positions replaced, or, for ``graph_draft_fraction``
        of them, the spectrum graph's best path on the spectrum.

        Parameters
        ----------
        batch : SpectrumBatch
            The (noised) spectra and their true token ids, on the CPU.

        Returns
        -------
        torch.Tensor of shape (batch, max_length, n_tokens) or None
            Logits of the starting answer (:func:`trm.model.network.draft_logits`) for
            drafts, zero (uniform) for the others.
        """
        config = self.config
        if config.draft_fraction <= 0:
            return None
        tokens = batch.tokens
        n_spectra, length = tokens.shape
        n_tokens = len(self.vocabulary)
        drafted = torch.rand(n_spectra, generator=generator) < config.draft_fraction
        rate = torch.rand(n_spectra, 1, generator=generator) * config.draft_corruption
        replaced = torch.rand(n_spectra, length, generator=generator) < rate
        random_tokens = torch.randint(0, n_tokens, (n_spectra, length), generator=generator)
        draft_tokens = torch.where(replaced, random_tokens, tokens)
        if self.graph is not None:
            from_graph = drafted & (
                torch.rand(n_spectra, generator=generator) < config.graph_draft_fraction
            )
            draft_tokens = self._graph_drafts(batch, from_graph, draft_tokens)
        logits = draft_logits(draft_tokens, n_tokens)
        return logits * drafted[:, None, None]

    def _graph_inputs(self, batch: SpectrumBatch, chosen: np.ndarray) -> tuple[np.ndarray, ...]:
        """The batch rows ``chosen`` as the graph decoder reads spectra: peaks in m/z
        order, counts, precursor masses, charges."""
        mask = batch.peak_mask[chosen].numpy()
        mz = np.where(mask, batch.mz[chosen].numpy(), np.inf)
        order = np.argsort(mz, axis=1, kind="stable")  # real peaks first, in m/z order
        counts = mask.sum(axis=1)
        real = np.arange(mask.shape[1])[None, :] < counts[:, None]
        sorted_mz = np.where(real, np.take_along_axis(mz, order, axis=1), 0.0)
        intensity = np.take_along_axis(batch.intensity[chosen].numpy(), order, axis=1)
        return (
            sorted_mz.astype(np.float32),
            np.where(real, intensity, 0.0).astype(np.float32),
            counts,
            batch.precursor_mass[chosen].numpy().astype(np.float64),
            batch.charge[chosen].numpy(),
        )

    def _graph_drafts(
        self, batch: SpectrumBatch, rows: torch.Tensor, draft_tokens: torch.Tensor
    ) -> torch.Tensor:
        """``draft_tokens`` with the rows ``rows`` replaced by the spectrum graph's best
        path on their spectra, where it has one that fits the answer window."""
        chosen = np.flatnonzero(rows.numpy())
        if not len(chosen):
            return draft_tokens
        assert self.graph is not None
        result = self.graph.decode(*self._graph_inputs(batch, chosen))
        out = draft_tokens.clone()
        length = out.shape[1]
        for row, best in zip(chosen, result.best, strict=True):
            if best is not None and len(best.token_ids) < length:
                out[row] = 0
                out[row, : len(best.token_ids)] = torch.from_numpy(best.token_ids)
        return out

    def _fitting(
        self, candidates: list[GraphCandidate], length: int, truth: np.ndarray | None = None
    ) -> list[GraphCandidate]:
        """The first ``rank_candidates`` of a spectrum's graph candidates that fit the
        answer window (``length`` positions with the end), without the peptide ``truth``
        (token ids, compared as the graph reads peptides: I as L, ...)."""
        canonical = self._canonical
        excluded = None if truth is None else tuple(canonical[truth].tolist())
        kept = []
        for candidate in candidates:
            if len(kept) == self.config.rank_candidates:
                break
            ids = candidate.token_ids
            if len(ids) >= length or tuple(canonical[ids].tolist()) == excluded:
                continue
            kept.append(candidate)
        return kept

    def ranking_answers(self, batch: SpectrumBatch, generator: torch.Generator) -> Ranking | None:
        """What the model learns to rank for ``rank_fraction`` of a batch (see
        :class:`TrainConfig`): each chosen spectrum's true peptide and up to
        ``rank_candidates`` of the spectrum graph's candidates on the (noised) spectrum
        that are not it (compared as the graph reads peptides: I as L, ...); None when
        ranking is off."""
        config = self.config
        if config.rank_fraction <= 0:
            return None
        assert self.graph is not None
        tokens = batch.tokens
        n_spectra, length = tokens.shape
        chosen = np.flatnonzero(
            (torch.rand(n_spectra, generator=generator) < config.rank_fraction).numpy()
        )
        answers = torch.zeros((len(chosen), 1 + config.rank_candidates, length), dtype=torch.int64)
        valid = torch.zeros((len(chosen), 1 + config.rank_candidates), dtype=torch.bool)
        offsets = torch.zeros((len(chosen), 1 + config.rank_candidates))
        if len(chosen):
            answers[:, 0] = tokens[chosen]
            valid[:, 0] = True
            inputs = self._graph_inputs(batch, chosen)
            result = self.graph.decode(*inputs)
            for row, (index, candidates) in enumerate(zip(chosen, result.candidates, strict=True)):
                truth = tokens[index].numpy()
                others = self._fitting(candidates, length, truth[truth > 0])
                for column, candidate in enumerate(others, start=1):
                    answers[row, column, : len(candidate.token_ids)] = torch.from_numpy(
                        candidate.token_ids
                    )
                    valid[row, column] = True
            if config.rank_graph_score:
                scores = self.graph.score_peptides(*inputs, answers.numpy()).score
                # a true peptide the graph cannot score (it fits no allowed isotope
                # error) has no residual to learn: its row is not ranked
                valid &= torch.from_numpy(np.isfinite(scores[:, :1]))
                offsets = torch.from_numpy(np.where(valid.numpy(), scores, 0.0)).float()
        return Ranking(rows=torch.from_numpy(chosen), answers=answers, valid=valid, offsets=offsets)

    def step_generator(self) -> torch.Generator:
        """The generator of this step's noise and drafts: a pure function of the seed and
        the step, the same in every process (see :meth:`train_step`)."""
        return torch.Generator().manual_seed(_seed(self.config.seed, _TRAIN_STREAM, self.step, 0))

    def train_step(self, dataset: SpectrumDataset) -> dict[str, float]:
        """One optimisation step on the batch the step prescribes.

        Every process draws the noise and the drafts of the whole global batch and keeps
        its own rows, so that ``n`` processes of ``batch_size`` spectra make exactly the
        updates of one process of ``n * batch_size`` (up to float summation order).

        Returns
        -------
        dict
            ``loss``, ``cross_entropy_last``, ``token_accuracy`` (last step, answer
            positions), ``learning_rate``, ``grad_norm``.
        """
        config, context = self.config, self.context
        indices = batch_indices(
            self.step, config.batch_size * context.world_size, len(dataset), config.seed
        )
        generator = self.step_generator()
        batch = self.augment(dataset.batch(indices), self.step, generator)
        draft = self.draft(batch, generator)
        ranking = self.ranking_answers(batch, generator)
        if context.world_size > 1:
            start = context.rank * config.batch_size
            rows = slice(start, start + config.batch_size)
            batch = batch.rows(rows)
            draft = None if draft is None else draft[rows]
            if ranking is not None:
                ranking = ranking.local(start, start + config.batch_size, context.world_size)
        return self.optimise(batch, draft, ranking=ranking)

    def optimise(
        self,
        batch: SpectrumBatch,
        draft: torch.Tensor | None,
        auxiliary_loss: Callable[[], torch.Tensor] | None = None,
        ranking: Ranking | None = None,
    ) -> dict[str, float]:
        """Forward, loss, backward and update on a prepared (noised) CPU batch.

        Parameters
        ----------
        batch : SpectrumBatch
        draft : torch.Tensor or None
            Starting answers (:meth:`draft`).
        auxiliary_loss : callable, optional
            Called after the forward pass; its value is added to the loss (e.g. a domain
            loss on encoder states a hook captured).
        ranking : Ranking, optional
            Answers the model scores by teacher forcing (:meth:`ranking_answers`); their
            :func:`~trm.train.losses.ranking_loss`, times ``rank_weight``, is added.
        """
        config, step = self.config, self.step
        batch = batch.to(self.device)
        if draft is not None:
            draft = draft.to(self.device)
        rate = learning_rate(
            step,
            config.learning_rate,
            config.warmup_steps,
            config.steps,
            config.final_learning_rate_ratio,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.model.train()
        with self._autocast():
            outputs = self.network(*batch.model_inputs(), draft=draft)
        losses = compute_loss(
            outputs,
            batch,
            self.token_masses,
            config.loss,
            config.curriculum.spectrum_sigma(step, config.steps),
        )
        total = losses.total
        extra = None
        if auxiliary_loss is not None:
            # before the ranking's own pass through the network, which would replace what
            # the auxiliary loss reads of this one (the adversarial domain head's hook)
            extra = auxiliary_loss()
            total = total + extra
        rank = None
        if ranking is not None and len(ranking.rows):
            rows = ranking.rows.to(self.device)
            with self._autocast():
                log_likelihood, halt_logit = self.model.answer_scores(
                    batch.mz[rows],
                    batch.intensity[rows],
                    batch.peak_mask[rows],
                    batch.precursor_mass[rows],
                    batch.charge[rows],
                    ranking.answers.to(self.device),
                )
            rank = ranking_loss(
                log_likelihood + ranking.offsets.to(self.device),
                halt_logit,
                ranking.valid.to(self.device),
                config.loss.halt,
                ranking.totals,
            )
            total = total + config.rank_weight * rank
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        with torch.no_grad():
            mask = answer_mask(batch.tokens)
            right = (outputs[-1].logits.argmax(dim=-1) == batch.tokens) & mask
            accuracy = right.sum() / mask.sum()
        stats = {
            "loss": float(losses.total.detach()),
            "cross_entropy_last": float(losses.step_cross_entropy[-1]),
            "token_accuracy": float(accuracy),
            "learning_rate": rate,
            "grad_norm": float(grad_norm),
        }
        if extra is not None:
            stats["auxiliary_loss"] = float(extra.detach())
        if rank is not None:
            stats["ranking_loss"] = float(rank.detach())
        return stats

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        model_state = self.model.state_dict()
        for name, shadow in self.ema_model.state_dict().items():
            current = model_state[name]
            if shadow.dtype.is_floating_point:
                shadow.lerp_(current, 1.0 - decay)
            else:
                shadow.copy_(current)

    @torch.no_grad()
    def evaluate(self, dataset: SpectrumDataset, noisy: bool = False) -> dict[str, float]:
        """Metrics of the EMA weights on the first ``eval_spectra`` spectra of a split.

        Parameters
        ----------
        dataset : SpectrumDataset
        noisy : bool
            Apply the noise model at full strength to every spectrum (a fixed draw, the same
            at every evaluation).

        Returns
        -------
        dict
            ``loss``, ``loss_step<t>`` (cross-entropy), the
            :meth:`RefinementTracker.summary` keys, and ``aa_precision``, ``aa_recall``,
            ``peptide_recall``, ``peptide_precision`` of the last step's answer.
        """
        config = self.config
        model = self.ema_model.eval()
        n_spectra = min(len(dataset), config.eval_spectra)
        tracker = RefinementTracker(self.model_config.supervision_steps)
        sequencing = SequencingAccumulator(self.vocabulary)
        total = 0.0
        step_losses = torch.zeros(self.model_config.supervision_steps)
        for start in range(0, n_spectra, config.eval_batch_size):
            indices = np.arange(start, min(start + config.eval_batch_size, n_spectra))
            batch = dataset.batch(indices)
            if noisy:
                generator = torch.Generator().manual_seed(_seed(config.seed, _EVAL_STREAM, start))
                batch = self.noise_model.apply(batch, torch.ones(len(batch)), generator)
            batch = batch.to(self.device)
            with self._autocast():
                outputs = model(*batch.model_inputs())
            losses = compute_loss(
                outputs,
                batch,
                self.token_masses,
                config.loss,
                config.curriculum.spectrum_sigma(self.step, config.steps),
            )
            total += float(losses.total) * len(batch)
            step_losses += losses.step_cross_entropy.cpu() * len(batch)
            tracker.update(outputs, batch.tokens)
            sequencing.update(outputs[-1].logits, batch.tokens)
        metrics = {"n_spectra": float(n_spectra), "loss": total / max(n_spectra, 1)}
        for step, value in enumerate((step_losses / max(n_spectra, 1)).tolist()):
            metrics[f"loss_step{step}"] = value
        metrics.update(tracker.summary())
        metrics.update(sequencing.summary())
        return metrics

    def evaluate_choice(self, dataset: SpectrumDataset, noisy: bool = False) -> dict[str, float]:
        """How the EMA weights choose among the spectrum graph's candidates, on the first
        ``eval_spectra`` spectra of a split (``noisy``: under the noise model at full
        strength, the same draw as :meth:`evaluate`'s): each spectrum's ``rank_candidates`` best
        graph candidates are scored by teacher forcing (each the draft of one refinement
        step, :meth:`trm.model.PeptideTRM.score_answers`), and the answer is the one with
        the best graph score plus that log-likelihood: the choice the hybrid decoder makes
        with teacher forcing (``trm calibrate --teacher-forcing``), here among the graph's
        own candidates only (the decoder also weighs the model's). What a run trained to
        rank (``rank_fraction``) serves; needs the graph decoder of such a run, which
        reads the peaks the training data holds (the model's ``n_peaks`` most intense).

        Returns
        -------
        dict
            ``hybrid_aa_precision``, ``hybrid_peptide_recall`` (every spectrum counts;
            one without a candidate is wrong).
        """
        if self.graph is None:
            raise ValueError("the graph's candidates need the run's graph decoder")
        config = self.config
        model = self.ema_model.eval()
        n_spectra = min(len(dataset), config.eval_spectra)
        predicted: list[list[str]] = []
        truth: list[list[str]] = []
        for start in range(0, n_spectra, config.eval_batch_size):
            batch = dataset.batch(np.arange(start, min(start + config.eval_batch_size, n_spectra)))
            if noisy:
                generator = torch.Generator().manual_seed(_seed(config.seed, _EVAL_STREAM, start))
                batch = self.noise_model.apply(batch, torch.ones(len(batch)), generator)
            n, length = batch.tokens.shape
            result = self.graph.decode(*self._graph_inputs(batch, np.arange(n)))
            answers = torch.zeros((n, config.rank_candidates, length), dtype=torch.int64)
            graph_score = torch.full((n, config.rank_candidates), -torch.inf)
            for row, candidates in enumerate(result.candidates):
                for column, candidate in enumerate(self._fitting(candidates, length)):
                    answers[row, column, : len(candidate.token_ids)] = torch.from_numpy(
                        candidate.token_ids
                    )
                    graph_score[row, column] = float(candidate.score)
            batch = batch.to(self.device)
            with torch.no_grad(), self._autocast():
                log_likelihood, _ = model.score_answers(
                    *batch.model_inputs(),
                    answers.to(self.device),
                    fragment_tolerance_da=self.model_config.evidence_tolerance,
                )
            best = (graph_score + log_likelihood.float().cpu()).argmax(dim=1)
            for row in range(n):
                found = bool(torch.isfinite(graph_score[row, best[row]]))
                predicted.append(
                    self.vocabulary.decode(answers[row, best[row]].tolist()) if found else []
                )
            truth.extend(self.vocabulary.decode(row) for row in batch.tokens.tolist())
        metrics = sequencing_metrics(predicted, truth)
        return {
            "hybrid_aa_precision": metrics.aa_precision,
            "hybrid_peptide_recall": metrics.peptide_recall,
        }

    def state_dict(self) -> dict:
        """The checkpoint of the current state (see :mod:`trm.train.checkpoint`)."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model_config": self.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            "vocabulary": list(self.vocabulary.tokens),
            "step": self.step,
            "cpu_seconds": self.cpu_seconds,
            "model": self.model.state_dict(),
            "ema": self.ema_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {
                "name": "warmup_cosine",
                "learning_rate": self.optimizer.param_groups[0]["lr"],
            },
            "rng": rng,
        }

    def start_from(self, checkpoint: dict) -> None:
        """Take the weights (and their average) of another run's checkpoint, keeping this
        run's fresh optimizer and step 0: pretraining that starts from a base model."""
        self.model.load_state_dict(checkpoint["ema"])
        self.ema_model.load_state_dict(checkpoint["ema"])

    def load_state_dict(self, checkpoint: dict) -> None:
        """Restore weights, EMA, optimizer, step and generator states."""
        self.model.load_state_dict(checkpoint["model"])
        self.ema_model.load_state_dict(checkpoint["ema"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.step = int(checkpoint["step"])
        self.cpu_seconds = float(checkpoint.get("cpu_seconds", 0.0))
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if "cuda" in checkpoint["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])


@dataclass
class FitResult:
    """How a call to :func:`fit` ended.

    Attributes
    ----------
    step : int
        Steps done.
    completed : bool
        False when the run stopped early (``stop_at_step`` or SIGTERM) after writing a
        checkpoint to resume from.
    metrics : dict
        Last evaluation's metrics per split.
    timed_out : bool
        The run stopped at its time limit (``time_limit_s``).
    """

    step: int
    completed: bool
    metrics: dict[str, dict[str, float]]
    timed_out: bool = False


def _resume_configs(
    checkpoint: dict, model_config: ModelConfig, train_config: TrainConfig
) -> tuple[ModelConfig, TrainConfig]:
    stored_model = ModelConfig.from_dict(checkpoint["model_config"])
    stored_train = TrainConfig.from_dict(checkpoint["train_config"])
    requested = dataclasses.replace(model_config, n_tokens=stored_model.n_tokens)
    if requested != stored_model or train_config != stored_train:
        log.warning("resuming with the checkpoint's model and train configs, not the requested")
    return stored_model, stored_train


def same_run(
    checkpoint: dict, model_config: ModelConfig, train_config: TrainConfig, compare_model: bool
) -> bool:
    """Whether a checkpoint was written by a run with these settings (the model's only
    when ``compare_model``: a run started from a base model takes that model's)."""
    if TrainConfig.from_dict(checkpoint["train_config"]) != train_config:
        return False
    if not compare_model:
        return True
    stored = ModelConfig.from_dict(checkpoint["model_config"])
    return dataclasses.replace(model_config, n_tokens=stored.n_tokens) == stored


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows written after the checkpoint being resumed from."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
        fieldnames = list(rows[0]) if rows else None
    if fieldnames is None:
        return
    with atomic_output(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(row for row in rows if int(row["step"]) <= step)


def _append_metrics(path: Path, rows: list[dict]) -> None:
    """Append rows to the metrics CSV; where they bring columns its header lacks (a run
    resumed by a newer trm that evaluates more), the file is rewritten with them, the
    earlier rows empty there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(k for row in rows for k in row))
    header: list[str] = []
    if path.exists() and path.stat().st_size > 0:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
    if header and set(names) <= set(header):
        with path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=header).writerows(rows)
        return
    if header:
        with path.open(newline="") as handle:
            rows = [*csv.DictReader(handle), *rows]
        names = list(dict.fromkeys(header + names))
    with atomic_output(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


class _TerminationFlag:
    """Turns SIGTERM (preemption on a cluster) into a request to checkpoint and stop."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _TerminationFlag:
        with contextlib.suppress(ValueError):  # signals only work in the main thread
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        log.warning("SIGTERM received: checkpointing after this step")
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def fit(
    model_config: ModelConfig,
    train_config: TrainConfig,
    vocabulary: Vocabulary,
    train_data: SpectrumDataset,
    validation_data: SpectrumDataset | None,
    checkpoint_path: Path | str,
    metrics_path: Path | str,
    device: str | torch.device = "cpu",
    resume: bool = False,
    noise_model: NoiseModel | None = None,
    stop_at_step: int | None = None,
    init_from: Path | str | None = None,
    snapshot_every: int = 0,
    time_limit_s: float | None = None,
) -> FitResult:
    """Train, evaluate and checkpoint until ``train_config.steps``.

    Parameters
    ----------
    model_config, train_config : ModelConfig, TrainConfig
        Ignored on resume in favour of the checkpoint's (a warning says so).
    vocabulary : Vocabulary
    train_data : SpectrumDataset
    validation_data : SpectrumDataset, optional
        Evaluated clean (``validation``) and, if ``eval_noisy``, noisy
        (``validation_noisy``) every ``eval_every`` steps.
    checkpoint_path : path
        Written every ``checkpoint_every`` steps, at the end, and when stopping early.
    metrics_path : path
        CSV, one row per evaluation and split.
    device : str or torch.device
        ``cpu``, ``cuda``; under ``torchrun`` each process takes ``cuda:LOCAL_RANK``.
    resume : bool
        Continue from ``checkpoint_path`` when it exists.
    noise_model : NoiseModel, optional
        Replaces the hand-set noise ramp.
    stop_at_step : int, optional
        Checkpoint and return after this step, as if the job were killed there.
    init_from : path, optional
        Start from the weights of this checkpoint (a shipped base model) instead of random
        ones; its architecture wins over ``model_config``. Ignored when resuming.
    snapshot_every : int
        Also keep the model every this many steps (``<checkpoint>.step<N>.pt``, weights and
        configs only), for learning curves; 0 keeps none.
    time_limit_s : float, optional
        Wall-clock seconds after which the run evaluates, checkpoints and stops early
        (``FitResult.timed_out``), e.g. for a GPU job with a fixed time budget.

    Returns
    -------
    FitResult
    """
    checkpoint_path, metrics_path = Path(checkpoint_path), Path(metrics_path)
    context = init_distributed(device)
    checkpoint = None
    if resume and checkpoint_path.exists():
        checkpoint = read_checkpoint(checkpoint_path, map_location=context.device)
        model_config, train_config = _resume_configs(checkpoint, model_config, train_config)
        if list(checkpoint_vocabulary(checkpoint).tokens) != list(vocabulary.tokens):
            raise ValueError(f"{checkpoint_path} was trained with another vocabulary")
    initial = None
    if checkpoint is None and init_from is not None:
        initial = read_checkpoint(init_from, map_location=context.device)
        stored = ModelConfig.from_dict(initial["model_config"])
        if dataclasses.replace(model_config, n_tokens=stored.n_tokens) != stored:
            log.warning("starting from %s: its architecture replaces the requested", init_from)
        model_config = stored
        if list(checkpoint_vocabulary(initial).tokens) != list(vocabulary.tokens):
            raise ValueError(f"{init_from} was trained with another vocabulary")
    trainer = Trainer(model_config, train_config, vocabulary, context, noise_model)
    if initial is not None:
        trainer.start_from(initial)
        log.info("starting from the weights of %s", init_from)
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)
        if context.is_main:
            _truncate_metrics(metrics_path, trainer.step)
        log.info("resumed from %s at step %d", checkpoint_path, trainer.step)
    elif context.is_main and metrics_path.exists():
        metrics_path.unlink()
    if context.is_main:
        cost = inference_flops(trainer.model_config)
        log.info(
            "model: %d parameters, %.3f GFLOP per spectrum (%d supervision steps x %d latent "
            "steps); training on %d spectra, %s, %d process(es)",
            count_parameters(trainer.model),
            cost.gflop,
            trainer.model_config.supervision_steps,
            trainer.model_config.latent_steps,
            len(train_data),
            context.device,
            context.world_size,
        )
    config = trainer.config
    metrics: dict[str, dict[str, float]] = checkpoint.get("metrics", {}) if checkpoint else {}
    if checkpoint is None and trainer.step >= config.steps:
        # Nothing to train (steps 0, e.g. a shipped base model used as is): evaluate and
        # write the starting point, so the outputs of a run exist all the same.
        if context.is_main:
            metrics = _evaluate_splits(trainer, validation_data)
            rows = [
                {"step": trainer.step, "split": split, "cpu_seconds": 0.0, **values}
                for split, values in metrics.items()
            ]
            if rows:
                _append_metrics(metrics_path, rows)
            save_checkpoint({**trainer.state_dict(), "metrics": metrics}, checkpoint_path)
        return FitResult(step=trainer.step, completed=True, metrics=metrics)
    running_loss, running_steps, started = 0.0, 0, time.perf_counter()
    run_started = time.perf_counter()
    with _TerminationFlag() as termination:
        while trainer.step < config.steps:
            cpu_started = time.process_time()
            stats = trainer.train_step(train_data)
            trainer.cpu_seconds += time.process_time() - cpu_started
            step = trainer.step
            if not math.isfinite(stats["loss"]):
                raise FloatingPointError(f"loss became {stats['loss']} at step {step}")
            running_loss += stats["loss"]
            running_steps += 1
            if context.is_main and (step % config.log_every == 0 or step == config.steps):
                elapsed = time.perf_counter() - started
                log.info(
                    "step %d/%d loss %.4f%s token accuracy %.3f lr %.2e (%.1f spectra/s)",
                    step,
                    config.steps,
                    stats["loss"],
                    f" ranking {stats['ranking_loss']:.4f}" if "ranking_loss" in stats else "",
                    stats["token_accuracy"],
                    stats["learning_rate"],
                    running_steps * config.batch_size * context.world_size / max(elapsed, 1e-9),
                )
            timed_out = (
                time_limit_s is not None and time.perf_counter() - run_started > time_limit_s
            )
            if time_limit_s is not None and context.world_size > 1:
                # Every process stops at the same step: the main one decides.
                flag = torch.tensor([float(timed_out)], device=context.device)
                dist.broadcast(flag, 0)
                timed_out = bool(flag.item())
            finished = step == config.steps or timed_out
            if context.is_main and (step % config.eval_every == 0 or finished):
                metrics = _evaluate_splits(trainer, validation_data)
                rows = [
                    {
                        "step": step,
                        "split": split,
                        "learning_rate": stats["learning_rate"],
                        "train_loss": running_loss / max(running_steps, 1),
                        "cpu_seconds": round(trainer.cpu_seconds, 1),
                        "clean_fraction": config.curriculum.clean_fraction(step, config.steps),
                        "noise_strength": config.curriculum.noise_strength(step, config.steps),
                        **values,
                    }
                    for split, values in metrics.items()
                ]
                if rows:
                    _append_metrics(metrics_path, rows)
                    for row in rows:
                        log.info(
                            "eval step %d %s: loss %.4f token accuracy %.3f (step 0: %.3f) "
                            "peptide recall %.3f%s",
                            step,
                            row["split"],
                            row["loss"],
                            row[f"token_accuracy_step{trainer.model_config.supervision_steps - 1}"],
                            row["token_accuracy_step0"],
                            row["peptide_recall"],
                            f"; graph candidates' choice {row['hybrid_peptide_recall']:.3f}"
                            if "hybrid_peptide_recall" in row
                            else "",
                        )
                running_loss, running_steps, started = 0.0, 0, time.perf_counter()
            if context.is_main and snapshot_every and step % snapshot_every == 0:
                state = trainer.state_dict()
                del state["optimizer"], state["rng"]
                save_checkpoint(
                    {**state, "metrics": metrics},
                    checkpoint_path.with_name(f"{checkpoint_path.stem}.step{step}.pt"),
                )
            stopping = termination.requested or stop_at_step == step
            if step % config.checkpoint_every == 0 or finished or stopping:
                if context.is_main:
                    save_checkpoint({**trainer.state_dict(), "metrics": metrics}, checkpoint_path)
                if context.world_size > 1:
                    dist.barrier()
            if stopping and not finished:
                return FitResult(step=step, completed=False, metrics=metrics)
            if timed_out:
                log.warning(
                    "time limit of %.0f s reached at step %d of %d: stopping (the learning "
                    "rate had not decayed to its end)",
                    time_limit_s,
                    step,
                    config.steps,
                )
                return FitResult(step=step, completed=False, metrics=metrics, timed_out=True)
    return FitResult(step=trainer.step, completed=True, metrics=metrics)


def _evaluate_splits(
    trainer: Trainer, validation_data: SpectrumDataset | None
) -> dict[str, dict[str, float]]:
    if validation_data is None or len(validation_data) == 0:
        return {}
    splits = {"validation": False}
    if trainer.config.eval_noisy:
        splits["validation_noisy"] = True
    metrics = {}
    for name, noisy in splits.items():
        metrics[name] = trainer.evaluate(validation_data, noisy=noisy)
        if trainer.config.rank_fraction > 0 and trainer.graph is not None:
            # a run trained to rank serves the hybrid decoder: its choice, too
            metrics[name].update(trainer.evaluate_choice(validation_data, noisy=noisy))
    return metrics
