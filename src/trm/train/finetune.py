"""Fine-tuning a pretrained model on a lab's identified real spectra (``trm finetune``).

The real spectra are split by peptide (I = L, modifications ignored, so no peptide sits on
both sides) into *train*, *validation* and *test*: train is learned from, validation picks
the step to keep (early stopping on peptide recall) and calibrates the scores, test is
never touched, so evaluation and comparison count test spectra only (see
:func:`trm.io.labels.spectra_used_for_finetuning`).

Three strategies, each recorded in the checkpoint (``finetune``):

``mixed``
    A sim/real curriculum: every batch mixes synthetic spectra (under the
    instrument's noise model) and real ones, the real share rising in stages
    (``real_fractions``, default 0 -> 25 -> 50 -> 75 -> 100%, each an equal share of the
    steps), so the model moves to real spectra without forgetting what it learned.
``two-stage``
    Real spectra only at a low learning rate: the first ``frozen_fraction`` of the steps
    with the spectrum encoder frozen (the recursive core adapts to the encoder as it is),
    then the whole network.
``adversarial``
    Domain-adversarial training: batches of synthetic and real spectra, and a small domain
    head on the encoder output (masked mean over peaks) behind a gradient reversal, so
    the encoder learns features that do not tell a synthetic spectrum from a real one
    while the sequencing loss keeps them useful.

``freeze_encoder`` keeps the encoder frozen throughout (any strategy but ``adversarial``,
whose domain loss acts on the encoder alone).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from trm.chem import Vocabulary
from trm.errors import InputError
from trm.model import ModelConfig
from trm.train.checkpoint import checkpoint_vocabulary, read_checkpoint, save_checkpoint
from trm.train.config import TrainConfig
from trm.train.data import SpectrumBatch, SpectrumDataset
from trm.train.loop import DistributedContext, Trainer
from trm.train.noise import NoiseModel

log = logging.getLogger(__name__)

STRATEGIES = ("mixed", "two-stage", "adversarial")
SPLITS = ("train", "validation", "test")
#: Split of the training peptides left out by ``real_data_fraction``.
UNUSED = "unused"


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune.

    Attributes
    ----------
    strategy : str
        One of :data:`STRATEGIES`.
    steps : int
        Most optimisation steps (early stopping may end sooner).
    batch_size : int
    learning_rate : float
        Peak learning rate (warm-up, then cosine decay to 5% of it).
    warmup_steps : int
    real_fractions : tuple of float
        ``mixed``: share of real spectra per batch in each stage, stages of equal length.
    frozen_fraction : float
        ``two-stage``: share of the steps with the encoder frozen.
    freeze_encoder : bool
        Keep the encoder frozen for the whole run.
    adversarial_weight : float
        ``adversarial``: largest weight of the reversed domain gradient on the encoder
        (ramped from 0 as ``2 / (1 + exp(-10 p)) - 1`` of the run's progress ``p``).
    adversarial_real_fraction : float
        ``adversarial``: share of real spectra per batch.
    eval_every : int
        Steps between validation evaluations (and work-folder checkpoints).
    patience : int
        Evaluations without a better validation peptide recall before stopping.
    split : tuple of three float
        Shares of the peptides in train, validation and test.
    real_data_fraction : float
        Share of the train peptides used (the others are ``unused``), to measure accuracy
        against the amount of real data.
    seed : int
        Seeds the split, the batches and the noise.
    """

    strategy: str = field(default="mixed", metadata={"choices": STRATEGIES})
    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup_steps: int = 30
    real_fractions: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    frozen_fraction: float = 0.5
    freeze_encoder: bool = False
    adversarial_weight: float = 0.1
    adversarial_real_fraction: float = 0.5
    eval_every: int = 50
    patience: int = 4
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    real_data_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        for name in ("steps", "batch_size", "eval_every", "patience"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps must not be negative, got {self.warmup_steps}")
        if not self.real_fractions or any(not 0 <= f <= 1 for f in self.real_fractions):
            problems.append(f"real_fractions must be shares in [0, 1], got {self.real_fractions}")
        for name in ("frozen_fraction", "adversarial_real_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.strategy == "adversarial" and not 0 < self.adversarial_real_fraction < 1:
            problems.append(
                "adversarial batches need both kinds: adversarial_real_fraction must lie "
                f"strictly between 0 and 1, got {self.adversarial_real_fraction}"
            )
        if self.adversarial_weight < 0:
            problems.append(
                f"adversarial_weight must not be negative, got {self.adversarial_weight}"
            )
        if self.strategy == "adversarial" and self.freeze_encoder:
            problems.append("freeze_encoder with the adversarial strategy: its domain loss acts "
                            "on the encoder alone")  # fmt: skip
        if (
            len(self.split) != 3
            or any(s < 0 for s in self.split)
            or not math.isclose(sum(self.split), 1.0, abs_tol=1e-6)
        ):
            problems.append(
                "split must be three shares (train, validation, test) summing to 1, "
                f"got {self.split}"
            )
        elif self.split[0] <= 0 or self.split[1] <= 0:
            problems.append(f"split needs train and validation peptides, got {self.split}")
        if not 0 < self.real_data_fraction <= 1:
            problems.append(f"real_data_fraction must lie in (0, 1], got {self.real_data_fraction}")
        if problems:
            raise InputError("fine-tuning settings: " + "; ".join(problems))

    @property
    def uses_synthetic(self) -> bool:
        """Whether batches draw synthetic spectra at some step."""
        if self.strategy == "mixed":
            return min(self.real_fractions) < 1
        return self.strategy == "adversarial"

    def real_fraction(self, step: int) -> float:
        """Share of real spectra in the batch of ``step``."""
        if self.strategy == "mixed":
            stage = min(step * len(self.real_fractions) // self.steps, len(self.real_fractions) - 1)
            return self.real_fractions[stage]
        if self.strategy == "adversarial":
            return self.adversarial_real_fraction
        return 1.0

    def encoder_frozen(self, step: int) -> bool:
        """Whether the encoder's weights stay fixed at ``step``."""
        if self.freeze_encoder:
            return True
        return self.strategy == "two-stage" and step < round(self.frozen_fraction * self.steps)

    def domain_weight(self, step: int) -> float:
        """Weight of the reversed domain gradient at ``step`` (DANN's ramp)."""
        progress = step / self.steps
        return self.adversarial_weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict) -> FinetuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown fine-tuning settings: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# --- the split ---------------------------------------------------------------------------

_MODIFICATION = re.compile(r"\[[^\]]*\]|-")


def peptide_group(peptide: str) -> str:
    """The key spectra are split by: the residues, I as L, without modifications."""
    return _MODIFICATION.sub("", peptide).replace("I", "L")


def _uniform(*parts: object) -> float:
    digest = hashlib.blake2b("\0".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_splits(table: pl.DataFrame, settings: FinetuneConfig) -> pl.DataFrame:
    """The labelled table with a ``split`` column: train, validation, test or unused.

    A pure function of each peptide and the seed: the same peptide lands in the same split
    in every run and every file, whatever else the table holds.
    """
    bounds = np.cumsum(settings.split)
    splits = []
    for peptide in table.get_column("peptide").to_list():
        if peptide is None:
            splits.append(None)
            continue
        group = peptide_group(peptide)
        position = np.searchsorted(bounds, _uniform(settings.seed, group), side="right")
        split = SPLITS[min(int(position), len(SPLITS) - 1)]
        kept = _uniform(settings.seed, "amount", group) < settings.real_data_fraction
        if split == "train" and not kept:
            split = UNUSED
        splits.append(split)
    return table.with_columns(pl.Series("split", splits, dtype=pl.String()))


# --- training ----------------------------------------------------------------------------


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``-weight`` backward."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: ANN001
        ctx.weight = weight
        return values.view_as(values)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        return -ctx.weight * grad, None


def concat_batches(batches: list[SpectrumBatch]) -> SpectrumBatch:
    """One batch of several (peaks padded to the widest; ion annotations dropped)."""
    width = max(b.mz.shape[1] for b in batches)

    def pad(values: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(values, (0, width - values.shape[1]))

    return SpectrumBatch(
        mz=torch.cat([pad(b.mz) for b in batches]),
        intensity=torch.cat([pad(b.intensity) for b in batches]),
        peak_mask=torch.cat([pad(b.peak_mask) for b in batches]),
        precursor_mass=torch.cat([b.precursor_mass for b in batches]),
        charge=torch.cat([b.charge for b in batches]),
        tokens=torch.cat([b.tokens for b in batches]),
    )


class FineTuner(Trainer):
    """A :class:`Trainer` whose batches mix real and synthetic spectra as the strategy
    says, with the encoder frozen when it says so and, for ``adversarial``, a domain head.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        vocabulary: Vocabulary,
        settings: FinetuneConfig,
        real: SpectrumDataset,
        synthetic: SpectrumDataset | None,
        noise_model: NoiseModel | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            model_config,
            train_config,
            vocabulary,
            DistributedContext(device=torch.device(device)),
            noise_model,
        )
        if settings.uses_synthetic and (synthetic is None or len(synthetic) == 0):
            raise InputError(f"the {settings.strategy} strategy needs synthetic spectra")
        self.settings, self.real, self.synthetic = settings, real, synthetic
        self.domain_head: nn.Module | None = None
        self._encoded: tuple[torch.Tensor, torch.Tensor] | None = None
        self._domains: torch.Tensor | None = None
        if settings.strategy == "adversarial":
            hidden = self.model_config.hidden
            torch.manual_seed(settings.seed)
            self.domain_head = nn.Sequential(
                nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1)
            ).to(self.device)
            self.optimizer.add_param_group(
                {"params": list(self.domain_head.parameters()), "weight_decay": 0.0}
            )
            self.model.encoder.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: object, output: tuple) -> None:
        self._encoded = output

    def _domain_loss(self) -> torch.Tensor:
        states, mask = self._encoded
        weights = mask.to(states.dtype).unsqueeze(-1)
        pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        reversed_ = _ReverseGradient.apply(pooled.float(), self.settings.domain_weight(self.step))
        logits = self.domain_head(reversed_).squeeze(-1)
        return nn.functional.binary_cross_entropy_with_logits(logits, self._domains)

    def train_step(self, dataset: SpectrumDataset | None = None) -> dict[str, float]:
        """One step on a batch of ``real_fraction(step)`` real spectra, the rest synthetic
        (under the noise model at full strength); ``dataset`` is ignored. Drafts and the
        ranking of the graph's candidates as the base run had them (its ``draft_fraction``,
        ``graph_draft_fraction`` and ``rank_fraction``), on the real spectra too."""
        settings, size = self.settings, self.config.batch_size
        generator = self.step_generator()
        n_real = round(size * settings.real_fraction(self.step))
        if self.synthetic is None:
            n_real = size
        parts = []
        if n_real:
            indices = torch.randint(len(self.real), (n_real,), generator=generator).numpy()
            parts.append(self.real.batch(indices))
        if size - n_real:
            indices = torch.randint(len(self.synthetic), (size - n_real,), generator=generator)
            synthetic = self.synthetic.batch(indices.numpy())
            parts.append(self.noise_model.apply(synthetic, torch.ones(len(synthetic)), generator))
        batch = concat_batches(parts) if len(parts) > 1 else parts[0]
        frozen = settings.encoder_frozen(self.step)
        for parameter in self.model.encoder.parameters():
            parameter.requires_grad_(not frozen)
        auxiliary = None
        if self.domain_head is not None:
            self._domains = torch.cat([torch.ones(n_real), torch.zeros(size - n_real)]).to(
                self.device
            )
            self.domain_head.train()
            auxiliary = self._domain_loss
        draft = self.draft(batch, generator)
        ranking = self.ranking_answers(batch, generator)
        stats = self.optimise(batch, draft, auxiliary, ranking=ranking)
        stats["real_fraction"] = n_real / size
        return stats

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.domain_head is not None:
            state["domain_head"] = self.domain_head.state_dict()
        return state

    def load_state_dict(self, checkpoint: dict) -> None:
        super().load_state_dict(checkpoint)
        if self.domain_head is not None:
            self.domain_head.load_state_dict(checkpoint["domain_head"])


@dataclass
class FinetuneResult:
    """How a fine-tuning run ended.

    Attributes
    ----------
    best_step : int
        The step whose weights were kept (0: the pretrained model was not beaten).
    stopped_at : int
    best : dict
        Validation metrics of the kept weights.
    zero_shot : dict
        Validation metrics of the pretrained model.
    early_stopped : bool
    """

    best_step: int
    stopped_at: int
    best: dict[str, float]
    zero_shot: dict[str, float]
    early_stopped: bool


def _better(metrics: dict[str, float], best: dict[str, float]) -> bool:
    """Higher validation peptide recall; amino-acid precision breaks ties. Those of the
    hybrid decoder (:meth:`Trainer.evaluate_choice`) where the run ranks the graph's
    candidates: its weights serve that decoder, not their own blank-start answer."""
    return judged_by(metrics)[1:] > judged_by(best)[1:]


def judged_by(metrics: dict[str, float]) -> tuple[str, float, float]:
    """What :func:`_better` compares: the decoder's name, its validation peptide recall
    and amino-acid precision."""
    if "hybrid_peptide_recall" in metrics:
        return "hybrid", metrics["hybrid_peptide_recall"], metrics["hybrid_aa_precision"]
    return "model", metrics["peptide_recall"], metrics["aa_precision"]


def _validate(trainer: FineTuner, validation: SpectrumDataset) -> dict[str, float]:
    """The validation metrics of the current weights (:func:`_better` compares them)."""
    metrics = trainer.evaluate(validation)
    if trainer.config.rank_fraction > 0:
        metrics.update(trainer.evaluate_choice(validation))
    return metrics


def _write_metrics(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


def finetune(
    base: dict,
    settings: FinetuneConfig,
    train: SpectrumDataset,
    validation: SpectrumDataset,
    synthetic: SpectrumDataset | None,
    work_dir: Path,
    noise_model: NoiseModel | None = None,
    device: str = "cpu",
    stop_at_step: int | None = None,
) -> tuple[dict, list[dict], FinetuneResult]:
    """Fine-tune the weights of ``base`` (a checkpoint dict) with early stopping.

    The state after every evaluation goes to ``work_dir/checkpoint.pt`` and a rerun with
    the same settings resumes from it (a preempted job loses at most ``eval_every``
    steps). ``stop_at_step`` stops after that step's evaluation, as a killed job would.

    Returns
    -------
    checkpoint : dict
        The base checkpoint's layout with the kept weights (``model`` and ``ema``), this
        run's train config and a ``finetune`` record.
    rows : list of dict
        One per validation evaluation (``step``, ``real_fraction``, metrics).
    result : FinetuneResult
    """
    model_config = ModelConfig.from_dict(base["model_config"])
    vocabulary = checkpoint_vocabulary(base)
    pretrained = TrainConfig.from_dict(base["train_config"])
    curriculum = dataclasses.replace(
        pretrained.curriculum, sigma_start_da=pretrained.curriculum.sigma_end_da
    )
    train_config = dataclasses.replace(
        pretrained,
        steps=settings.steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=min(settings.warmup_steps, settings.steps),
        eval_every=settings.eval_every,
        checkpoint_every=settings.eval_every,
        eval_spectra=max(len(validation), 1),
        eval_noisy=False,
        seed=settings.seed,
        curriculum=curriculum,
    )
    trainer = FineTuner(
        model_config, train_config, vocabulary, settings, train, synthetic, noise_model, device
    )
    trainer.start_from(base)
    state_path = Path(work_dir) / "checkpoint.pt"
    state = read_checkpoint(state_path) if state_path.exists() else None
    if state is not None and (
        state.get("finetune", {}).get("settings") != settings.to_dict()
        or state.get("train_config") != train_config.to_dict()
    ):
        log.warning("%s holds a run with other settings: starting afresh", state_path)
        state = None
    if state is not None:
        trainer.load_state_dict(state)
        record = state["finetune"]
        rows, best_ema = record["rows"], state["best_ema"]
        best_step, bad = record["best_step"], record["bad_evaluations"]
        log.info("resumed fine-tuning from %s at step %d", state_path, trainer.step)
    else:
        zero_shot = _validate(trainer, validation)
        rows = [{"step": 0, "real_fraction": None, "cpu_seconds": 0.0, **zero_shot}]
        best_ema, best_step, bad = copy.deepcopy(trainer.ema_model.state_dict()), 0, 0
        log.info(
            "zero-shot validation (%d spectra), %s decoder: peptide recall %.3f, AA precision %.3f",
            len(validation),
            *judged_by(zero_shot),
        )
    best = next(r for r in rows if r["step"] == best_step)
    early_stopped = False
    while trainer.step < settings.steps and bad < settings.patience:
        started = time.process_time()
        stats = trainer.train_step()
        trainer.cpu_seconds += time.process_time() - started
        if not math.isfinite(stats["loss"]):
            raise FloatingPointError(
                f"fine-tuning loss became {stats['loss']} at step {trainer.step}"
            )
        step = trainer.step
        if step % settings.eval_every and step != settings.steps:
            continue
        metrics = _validate(trainer, validation)
        rows.append({
            "step": step,
            "real_fraction": stats["real_fraction"],
            "cpu_seconds": round(trainer.cpu_seconds, 1),
            "train_loss": stats["loss"],
            **({"domain_loss": stats["auxiliary_loss"]} if "auxiliary_loss" in stats else {}),
            **metrics,
        })  # fmt: skip
        if _better(metrics, best):
            best, best_step, bad = metrics, step, 0
            best_ema = copy.deepcopy(trainer.ema_model.state_dict())
        else:
            bad += 1
        log.info(
            "fine-tuning step %d/%d (real share %.2f): validation, %s decoder: peptide "
            "recall %.3f, AA precision %.3f; best at step %d",
            step, settings.steps, stats["real_fraction"], *judged_by(metrics), best_step,
        )  # fmt: skip
        record = {
            "settings": settings.to_dict(),
            "rows": rows,
            "best_step": best_step,
            "bad_evaluations": bad,
        }
        save_checkpoint(
            {**trainer.state_dict(), "finetune": record, "best_ema": best_ema}, state_path
        )
        if step == stop_at_step:
            break
    if bad >= settings.patience and trainer.step < settings.steps:
        early_stopped = True
        log.info("no better validation peptide recall in %d evaluations: stopped at step %d",
                 settings.patience, trainer.step)  # fmt: skip
    result = FinetuneResult(
        best_step=best_step,
        stopped_at=trainer.step,
        best={k: v for k, v in best.items() if isinstance(v, int | float)},
        zero_shot={k: v for k, v in rows[0].items() if isinstance(v, int | float)},
        early_stopped=early_stopped,
    )
    checkpoint = trainer.state_dict()
    for key in ("optimizer", "rng", "domain_head"):
        checkpoint.pop(key, None)
    checkpoint.update(
        model=best_ema,
        ema=best_ema,
        step=best_step,
        metrics={"finetune_validation": result.best},
        finetune={
            "settings": settings.to_dict(),
            "best_step": best_step,
            "stopped_at": result.stopped_at,
            "early_stopped": early_stopped,
            "n_train_spectra": len(train),
            "n_validation_spectra": len(validation),
            "n_synthetic_spectra": 0 if synthetic is None else len(synthetic),
            "zero_shot_validation": result.zero_shot,
            "validation": result.best,
            "pretrained_steps": int(base.get("step", 0)),
        },
    )
    return checkpoint, rows, result


def write_finetune_outputs(
    checkpoint: dict, rows: list[dict], checkpoint_path: Path, metrics_path: Path
) -> None:
    """The fine-tuned checkpoint and its validation curve, together or not at all."""
    from trm.atomic import atomic_outputs

    with atomic_outputs([checkpoint_path, metrics_path]) as (final_checkpoint, final_metrics):
        torch.save(checkpoint, final_checkpoint)
        _write_metrics(final_metrics, rows)


__all__ = [
    "FineTuner",
    "FinetuneConfig",
    "FinetuneResult",
    "assign_splits",
    "concat_batches",
    "finetune",
    "peptide_group",
    "write_finetune_outputs",
]
