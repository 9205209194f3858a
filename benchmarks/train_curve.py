"""Learning curve of one model size: train with evaluations, write the metrics CSV.

The CSV has one row per evaluation and split (``validation`` clean, ``validation_noisy``)
with per-step token accuracy, edits per step, amino-acid precision/recall and peptide
recall, as ``trm pretrain`` writes it. Data: ``--shards DIR`` (synthetic ``train/`` and
``validation/``) or theoretical spectra of yeast tryptic peptides (``train_common.py``).

    python benchmarks/train_curve.py --model-config tiny --steps 6000 --out curve
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_common import load_benchmark_data  # noqa: E402

from trm.chem import Vocabulary  # noqa: E402
from trm.model import MODEL_CONFIGS, get_model_config  # noqa: E402
from trm.train.config import TrainConfig  # noqa: E402
from trm.train.curriculum import Curriculum  # noqa: E402
from trm.train.loop import fit  # noqa: E402
from trm.train.losses import LossWeights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-config", default="tiny", choices=MODEL_CONFIGS)
    parser.add_argument("--no-fragment-feedback", action="store_true")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a field of the model config, e.g. --set supervision_steps=8",
    )
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-validation", type=int, default=512)
    parser.add_argument("--shards", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--draft-fraction",
        type=float,
        default=TrainConfig().draft_fraction,
        help="share of each batch started from a corrupted true answer (default: %(default)s)",
    )
    parser.add_argument(
        "--step-base",
        type=float,
        default=LossWeights().step_base,
        help="supervision step t weighs step_base**t in the loss (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.pt and OUT.csv")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    vocabulary = Vocabulary()
    model_config = dataclasses.replace(
        get_model_config(args.model_config), fragment_feedback=not args.no_fragment_feedback
    ).with_overrides(args.overrides)
    train, validation, label = load_benchmark_data(
        args.shards,
        args.n_train,
        args.n_validation,
        vocabulary,
        model_config.max_length,
        model_config.n_peaks,
        args.seed,
    )
    logging.getLogger("train_curve").info("data: %s", label)
    train_config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=max(args.steps // 20, 1),
        eval_every=args.eval_every,
        checkpoint_every=args.eval_every,
        eval_spectra=args.n_validation,
        log_every=max(args.eval_every // 2, 1),
        seed=args.seed,
        draft_fraction=args.draft_fraction,
        loss=LossWeights(step_base=args.step_base),
        curriculum=Curriculum(),
    )
    fit(
        model_config,
        train_config,
        vocabulary,
        train,
        validation,
        args.out.with_suffix(".pt"),
        args.out.with_suffix(".csv"),
        resume=True,
    )


if __name__ == "__main__":
    main()
