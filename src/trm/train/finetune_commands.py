"""``trm finetune``: a pretrained model fine-tuned on a lab's identified real spectra."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import polars as pl
import torch

from trm.errors import TrmError
from trm.io.labels import FINETUNE_USED_SPLITS
from trm.model import ModelConfig
from trm.options import add_options, from_options
from trm.train.finetune import FinetuneConfig

log = logging.getLogger(__name__)

#: Columns of the split table (``--split-table``).
SPLIT_COLUMNS = ("run", "spectrum_id", "peptide", "split")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` subcommand."""
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a pretrained model on identified real spectra",
        description=(
            "Split labelled real spectra by peptide into train, validation and test; "
            "fine-tune the model on train with one of the strategies (mixed sim/real "
            "curriculum, two-stage, domain-adversarial), keep the weights of the best "
            "validation peptide recall, and write which spectra were used, so that "
            "evaluation counts test spectra only."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="pretrained checkpoint")
    parser.add_argument(
        "--labels", type=Path, nargs="+", required=True,
        help="labelled spectrum tables (trm labelled-spectra parquet)",
    )  # fmt: skip
    parser.add_argument(
        "--synthetic-dir", type=Path,
        help="synthetic training shards (the mixed and adversarial strategies draw from them)",
    )  # fmt: skip
    parser.add_argument(
        "--synthetic-spectra", type=int, default=50_000,
        help="synthetic spectra read (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--noise-model", type=Path,
        help="noise model YAML for the synthetic spectra (default: the one the model was "
        "pretrained with, else its hand-set ramp)",
    )  # fmt: skip
    parser.add_argument("--checkpoint", type=Path, required=True, help="output checkpoint")
    parser.add_argument("--metrics", type=Path, required=True, help="output validation CSV")
    parser.add_argument(
        "--split-table", type=Path, required=True,
        help="output TSV: run, spectrum_id, peptide, split of every labelled spectrum",
    )  # fmt: skip
    parser.add_argument(
        "--validation-labels", type=Path,
        help="output parquet: the validation spectra (to calibrate the fine-tuned model on)",
    )  # fmt: skip
    parser.add_argument(
        "--work-dir", type=Path, required=True,
        help="training state, resumed from when a job is rerun",
    )  # fmt: skip
    add_options(parser, FinetuneConfig)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--fallback", action="store_true",
        help="with too few labelled spectra, write the pretrained model unchanged (with a "
        "warning and a record saying so) instead of failing",
    )  # fmt: skip
    parser.set_defaults(func=run_finetune)


def _read_labels(paths: list[Path]) -> pl.DataFrame:
    columns = ("run", "spectrum_id", "precursor_mz", "charge", "mz", "intensity", "peptide")
    tables = []
    for path in paths:
        try:
            table = pl.read_parquet(path)
        except Exception as error:  # noqa: BLE001 - polars raises several kinds
            raise TrmError(f"{path}: not a readable parquet file ({error})") from error
        missing = [c for c in columns if c not in table.columns and c != "run"]
        if missing:
            raise TrmError(f"{path}: labelled spectrum table lacks columns {missing}")
        if "run" not in table.columns:
            table = table.with_columns(pl.lit(path.stem).alias("run"))
        tables.append(table.select(columns))
    return pl.concat(tables, how="vertical")


def run_finetune(args: argparse.Namespace) -> None:
    """``trm finetune``."""
    from trm.atomic import atomic_outputs
    from trm.noise_model import NoiseModelParameters
    from trm.train.checkpoint import checkpoint_vocabulary, read_checkpoint, without_calibration
    from trm.train.data import SpectrumDataset, dataset_sizes
    from trm.train.finetune import assign_splits, finetune, judged_by, write_finetune_outputs
    from trm.train.noise import FittedNoise

    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise TrmError(f"--device {args.device}: this torch sees no CUDA device")
    settings = from_options(FinetuneConfig, args)
    if settings.uses_synthetic and args.synthetic_dir is None:
        raise TrmError(
            f"the {settings.strategy} strategy draws synthetic spectra: give --synthetic-dir"
        )
    torch.set_num_threads(args.threads)
    base = read_checkpoint(args.model)
    vocabulary = checkpoint_vocabulary(base)
    model_config = ModelConfig.from_dict(base["model_config"])
    sizes = dataset_sizes(model_config, vocabulary)
    table = assign_splits(_read_labels(args.labels), settings)
    datasets = {}
    for split in ("train", "validation"):
        rows_of_split = table.filter(pl.col("split") == split)
        datasets[split] = SpectrumDataset.from_table(rows_of_split, **sizes)
        report = datasets[split].report
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items()))
        log.info("%s: %d usable labelled spectra of %d%s", split, report.n_kept, report.n_rows,
                 f" (skipped: {skipped})" if skipped else "")  # fmt: skip
    counts = table.group_by("split").len().sort("split")
    log.info("labelled spectra by split: %s",
             ", ".join(f"{s} {n}" for s, n in counts.iter_rows()))  # fmt: skip
    outputs = [args.checkpoint, args.metrics, args.split_table]
    too_few = [s for s in ("train", "validation") if len(datasets[s]) == 0]
    if too_few:
        message = (
            f"{' '.join(str(p) for p in args.labels)}: no usable labelled spectrum in the "
            f"{' and '.join(too_few)} split ({table.height} labelled spectra in all)"
        )
        if not args.fallback:
            raise TrmError(message + "; label more spectra, or de novo uses the pretrained model")
        log.warning("%s: the pretrained model is used unchanged", message)
        checkpoint = {**base, "finetune": {"skipped": message, "settings": settings.to_dict()}}
        table = table.with_columns(pl.lit("unused").alias("split"))
        rows: list[dict] = []
    else:
        synthetic = None
        if settings.uses_synthetic:
            synthetic = SpectrumDataset.from_shards(
                args.synthetic_dir, limit=args.synthetic_spectra, **sizes
            )
        noise = None
        if args.noise_model is not None:
            noise = FittedNoise(NoiseModelParameters.read(args.noise_model), vocabulary)
        checkpoint, rows, result = finetune(
            base, settings, datasets["train"], datasets["validation"], synthetic,
            args.work_dir, noise, args.device,
        )  # fmt: skip
        decoder, recall, precision = judged_by(result.best)
        _, zero_recall, zero_precision = judged_by(result.zero_shot)
        log.info(
            "kept step %d: validation, %s decoder: peptide recall %.3f (pretrained %.3f), "
            "AA precision %.3f (pretrained %.3f)",
            result.best_step, decoder, recall, zero_recall, precision, zero_precision,
        )  # fmt: skip
    # Keep the calibration of a calibrated base out: the weights changed.
    write_finetune_outputs(without_calibration(checkpoint), rows, args.checkpoint, args.metrics)
    split_outputs = [args.split_table]
    if args.validation_labels:
        split_outputs.append(args.validation_labels)
    with atomic_outputs(split_outputs) as paths:
        table.select(*SPLIT_COLUMNS).write_csv(paths[0], separator="\t")
        if args.validation_labels:
            table.filter(pl.col("split") == "validation").drop("split").write_parquet(paths[1])
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    log.info("wrote %s; spectra of the %s splits are left out of evaluation",
             ", ".join(str(p) for p in outputs), " and ".join(FINETUNE_USED_SPLITS))  # fmt: skip
