"""``trm pretrain``: train the recursive model on synthetic spectrum shards."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
from pathlib import Path

import torch

from trm.chem import Vocabulary
from trm.errors import InputError, TrmError
from trm.model import MODEL_CONFIGS, ModelConfig, get_model_config
from trm.noise_model import NoiseModelParameters
from trm.options import add_options, from_options
from trm.train.checkpoint import read_checkpoint
from trm.train.config import TrainConfig
from trm.train.data import SpectrumDataset, dataset_sizes
from trm.train.loop import fit, same_run

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` subcommand."""
    parser = subparsers.add_parser(
        "pretrain",
        help="train the recursive model on synthetic spectra",
        description=(
            "Train the recursive model on parquet shards of labelled spectra, evaluating on a "
            "validation split and writing a self-describing checkpoint and a metrics CSV. "
            "Under torchrun (WORLD_SIZE > 1) it trains with DDP, one GPU per process."
        ),
    )
    parser.add_argument(
        "--train-dir", type=Path, required=True, help="directory of training *.parquet shards"
    )
    parser.add_argument(
        "--validation-dir",
        type=Path,
        help="directory of validation *.parquet shards (omit to skip evaluation)",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="output checkpoint (.pt)")
    parser.add_argument("--metrics", type=Path, required=True, help="output metrics CSV")
    parser.add_argument(
        "--model-config",
        default="default",
        choices=sorted(MODEL_CONFIGS),
        help="named model size (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        dest="model_settings",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change one field of the named model size, e.g. --set hidden=96 (repeatable; "
        "stored in the checkpoint)",
    )
    parser.add_argument(
        "--noise-model",
        type=Path,
        help="fitted noise model YAML (trm fit-noise) to train with; default: the hand-set "
        "noise ramp",
    )
    parser.add_argument(
        "--instrument",
        type=Path,
        help="instrument YAML: its fragment_tolerance_da sets the model's ion lookup "
        "(default: the model size's evidence_tolerance)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        help="start from this model's weights (a shipped base model); its architecture wins",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        help="stop (evaluated and checkpointed) after this much wall time, for jobs with a "
        "fixed time budget (default: none)",
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=0,
        help="also keep the model every this many steps, for learning curves (default: none)",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda (default: %(default)s); cuda uses bf16"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch (default: %(default)s)"
    )
    parser.add_argument(
        "--max-train-spectra",
        type=int,
        help="read at most this many training spectra (default: all)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from --checkpoint if it exists (its stored configs win)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep the training state here (checkpoint, metrics, snapshots) and always "
        "resume from it; --checkpoint and --metrics are written, together, only when the "
        "run completes. A preempted or retried job then loses at most one checkpoint "
        "interval, whatever a scheduler does with a failed job's outputs",
    )
    add_options(parser, TrainConfig)
    parser.set_defaults(func=run_pretrain)
    from trm.train.plots import register_plot

    register_plot(subparsers)


def run_pretrain(args: argparse.Namespace) -> None:
    """Run ``trm pretrain`` with parsed arguments."""
    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise TrmError(
            f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device; "
            "run the job on a GPU node with a CUDA build of torch, or set `pretrain: gpus: 0`"
        )
    torch.set_num_threads(args.threads)
    model_config = get_model_config(args.model_config).with_overrides(args.model_settings)
    train_config = dataclasses.replace(
        from_options(TrainConfig, args),
        fitted_noise=None
        if args.noise_model is None
        else NoiseModelParameters.read(args.noise_model).to_dict(),
    )
    if args.instrument is not None:
        from trm.instrument import load_instrument

        model_config = dataclasses.replace(
            model_config, evidence_tolerance=load_instrument(args.instrument).fragment_tolerance_da
        )
    vocabulary = Vocabulary()
    # Spectra are cut to the peak count (and answers to the length) of the network that
    # trains: a starting checkpoint's, whose architecture wins (trm.train.loop.fit).
    sizing = model_config
    if args.init is not None:
        sizing = ModelConfig.from_dict(read_checkpoint(args.init)["model_config"])
    sizes = dataset_sizes(sizing, vocabulary)
    train_data = SpectrumDataset.from_shards(args.train_dir, limit=args.max_train_spectra, **sizes)
    if len(train_data) == 0:
        raise InputError(f"no usable training spectrum in {args.train_dir}")
    validation_data = None
    if args.validation_dir is not None:
        validation_data = SpectrumDataset.from_shards(
            args.validation_dir, limit=train_config.eval_spectra, **sizes
        )
    checkpoint, metrics = args.checkpoint, args.metrics
    if args.work_dir is not None:
        checkpoint, metrics = args.work_dir / "checkpoint.pt", args.work_dir / "metrics.csv"
        if checkpoint.exists() and not same_run(
            read_checkpoint(checkpoint), model_config, train_config, args.init is None
        ):
            # A run with other settings left this state: resuming would train on with
            # its settings, not the ones asked for.
            log.warning("%s holds a run with other settings: starting afresh", args.work_dir)
            shutil.rmtree(args.work_dir)
    result = fit(
        model_config,
        train_config,
        vocabulary,
        train_data,
        validation_data,
        checkpoint_path=checkpoint,
        metrics_path=metrics,
        device=args.device,
        resume=args.resume or args.work_dir is not None,
        init_from=args.init,
        snapshot_every=args.snapshot_every,
        time_limit_s=None if args.max_minutes is None else args.max_minutes * 60,
    )
    if not result.completed and not result.timed_out:
        raise InterruptedError(
            f"stopped at step {result.step}; {checkpoint} holds the state, rerun "
            + ("the same command" if args.work_dir is not None else "with --resume")
            + " to continue"
        )
    if args.work_dir is not None:
        from trm.atomic import atomic_outputs

        with atomic_outputs([args.checkpoint, args.metrics]) as (final_checkpoint, final_metrics):
            shutil.copyfile(checkpoint, final_checkpoint)
            if metrics.exists():
                shutil.copyfile(metrics, final_metrics)
            else:  # no validation split: nothing was evaluated
                final_metrics.write_text("", encoding="utf-8")
    if result.timed_out:
        log.info("stopped at the time limit after %d steps; checkpoint %s", result.step,
                 args.checkpoint)  # fmt: skip
        return
    log.info("finished %d steps; checkpoint %s", result.step, args.checkpoint)
