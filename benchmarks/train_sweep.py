"""Speed/accuracy sweep over model size at a fixed CPU training budget.

Each size trains for the same CPU-time budget (``time.process_time``, so other processes
on a shared machine do not shrink it; its step count is estimated from a timed start, so
its learning-rate schedule completes), with the noise curriculum compressed into
the first half of training, then its EMA weights are evaluated on held-out spectra, clean
and noisy (full-strength noise). Reported: parameters, inference GFLOP per spectrum,
training steps reached, token accuracy at the first and the last supervision step, amino
acid precision and peptide recall (mass-matched, last step).

Data: ``--shards DIR`` (synthetic ``train/`` and ``validation/`` shards), or by default
theoretical spectra of yeast tryptic peptides (see ``train_common.py``).

    python benchmarks/train_sweep.py --budget-s 240 --threads 1 --out sweep.tsv
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_common import load_benchmark_data  # noqa: E402

from trm.chem import Vocabulary  # noqa: E402
from trm.model import ModelConfig, count_parameters, inference_flops  # noqa: E402
from trm.train.config import TrainConfig  # noqa: E402
from trm.train.curriculum import Curriculum  # noqa: E402
from trm.train.loop import Trainer  # noqa: E402

log = logging.getLogger("train_sweep")

#: hidden:encoder layers:core layers:supervision steps T:latent steps n
#: [:fragment feedback 0/1[:fragment evidence 0/1]]
DEFAULT_GRID = ("64:1:1:4:2", "128:2:1:4:2", "128:2:1:8:3", "192:2:1:8:2", "384:2:1:8:6")


def parse_size(spec: str) -> ModelConfig:
    values = [int(v) for v in spec.split(":")]
    hidden, encoder_layers, core_layers, steps, latent = values[:5]
    return ModelConfig(
        fragment_feedback=bool(values[5]) if len(values) > 5 else True,
        fragment_evidence=bool(values[6]) if len(values) > 6 else True,
        hidden=hidden,
        heads=max(hidden // 32, 2),
        encoder_layers=encoder_layers,
        core_layers=core_layers,
        supervision_steps=steps,
        latent_steps=latent,
        ff_multiplier=2 if hidden <= 64 else 4,
    )


def run_size(spec: str, args: argparse.Namespace, vocabulary, train, validation) -> dict:
    config = dataclasses.replace(parse_size(spec), n_peaks=args.n_peaks)
    probe = TrainConfig(steps=10**6, batch_size=args.batch_size, warmup_steps=10**6)
    trainer = Trainer(config, probe, vocabulary)
    for _ in range(2):
        trainer.train_step(train)
    started = time.process_time()
    for _ in range(5):
        trainer.train_step(train)
    seconds_per_step = (time.process_time() - started) / 5
    steps = max(int(args.budget_s / seconds_per_step), 10)
    train_config = TrainConfig(
        steps=steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=max(steps // 20, 5),
        ema_decay=0.99,
        eval_spectra=len(validation),
        eval_batch_size=128,
        seed=args.seed,
        draft_fraction=args.draft_fraction,
        curriculum=Curriculum(),
    )
    trainer = Trainer(config, train_config, vocabulary)
    started = time.process_time()
    while trainer.step < steps and time.process_time() - started < args.budget_s:
        trainer.train_step(train)
    elapsed = time.process_time() - started
    last = config.supervision_steps - 1
    row = {
        "size": spec,
        "parameters": count_parameters(trainer.model),
        "gflop_per_spectrum": round(inference_flops(trainer.model_config).gflop, 3),
        "steps": trainer.step,
        "train_cpu_seconds": round(elapsed, 1),
        "train_spectra_per_cpu_s": round(trainer.step * args.batch_size / elapsed, 1),
    }
    for split, noisy in (("clean", False), ("noisy", True)):
        metrics = trainer.evaluate(validation, noisy=noisy)
        row[f"{split}_token_accuracy_step0"] = round(metrics["token_accuracy_step0"], 4)
        row[f"{split}_token_accuracy"] = round(metrics[f"token_accuracy_step{last}"], 4)
        row[f"{split}_aa_precision"] = round(metrics["aa_precision"], 4)
        row[f"{split}_peptide_recall"] = round(metrics["peptide_recall"], 4)
    log.info("%s", row)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", nargs="+", default=list(DEFAULT_GRID), help="h:enc:core:T:n")
    parser.add_argument(
        "--budget-s", type=float, default=240.0, help="training CPU seconds per size"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-validation", type=int, default=512)
    parser.add_argument("--n-peaks", type=int, default=100)
    parser.add_argument(
        "--shards", type=Path, help="synthetic data directory (train/, validation/)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--draft-fraction",
        type=float,
        default=TrainConfig().draft_fraction,
        help="share of each batch started from a corrupted true answer",
    )
    parser.add_argument("--out", type=Path, help="TSV of the table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    vocabulary = Vocabulary()
    train, validation, label = load_benchmark_data(
        args.shards, args.n_train, args.n_validation, vocabulary, 32, args.n_peaks, args.seed
    )
    log.info(
        "data: %s (%d train, %d validation); budget %.0f s per size; %d thread(s); batch %d",
        label,
        len(train),
        len(validation),
        args.budget_s,
        args.threads,
        args.batch_size,
    )
    rows = [run_size(spec, args, vocabulary, train, validation) for spec in args.grid]
    table = pl.DataFrame(rows)
    columns = [
        "size",
        "parameters",
        "gflop_per_spectrum",
        "steps",
        "clean_token_accuracy_step0",
        "clean_token_accuracy",
        "clean_peptide_recall",
        "noisy_token_accuracy",
        "noisy_peptide_recall",
    ]
    log.info("| %s |", " | ".join(columns))
    log.info("|%s", "---|" * len(columns))
    for row in rows:
        log.info("| %s |", " | ".join(str(row[c]) for c in columns))
    if args.out is not None:
        table.write_csv(args.out, separator="\t")


if __name__ == "__main__":
    main()
