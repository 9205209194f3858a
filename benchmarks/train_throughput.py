"""Training and inference throughput of the recursive model on CPU.

Wall-clock rates and, in brackets, rates per CPU second of this process (what a quiet
machine would give with the same threads; the wall-clock rate suffers when other processes
share the cores). Training: optimisation steps per second times the batch size, with the
noise curriculum on (as in real training). Inference: spectra per second of ``refine``
over all supervision steps (no early exit). Both after warm-up steps, on theoretical
spectra of yeast tryptic peptides, or the synthetic shards of ``--shards`` (see
``train_common.py``); throughput depends on the peak count, so ``--noise-model`` (a fitted
noise model, which fills every spectrum to the model's peak count) and ``--late`` (the
curriculum at full noise, as in the second half of a run) give the rate real training
has.

    python benchmarks/train_throughput.py --configs tiny default --threads 1 --steps 20
    python benchmarks/train_throughput.py --configs default --shards SYNTHETIC \
        --noise-model resources/noise/orbitrap_hcd.yaml --late --batch-size 64
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_common import load_benchmark_data  # noqa: E402

from trm.chem import Vocabulary  # noqa: E402
from trm.model import MODEL_CONFIGS, count_parameters, get_model_config, inference_flops  # noqa: E402
from trm.noise_model import NoiseModelParameters  # noqa: E402
from trm.train.config import TrainConfig  # noqa: E402
from trm.train.curriculum import Curriculum  # noqa: E402
from trm.train.loop import Trainer  # noqa: E402

log = logging.getLogger("train_throughput")


def measure(name: str, args: argparse.Namespace, vocabulary: Vocabulary, data) -> dict:
    config = get_model_config(name)
    fitted = None
    if args.noise_model is not None:
        fitted = NoiseModelParameters.read(args.noise_model).to_dict()
    train_config = TrainConfig(
        steps=10_000,
        batch_size=args.batch_size,
        warmup_steps=10,
        curriculum=Curriculum(),
        fitted_noise=fitted,
    )
    trainer = Trainer(config, train_config, vocabulary)
    if args.late:
        trainer.step = train_config.steps // 2 + 1
    for _ in range(args.warmup):
        trainer.train_step(data)
    started, started_cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        trainer.train_step(data)
    train_rate = args.steps * args.batch_size / (time.perf_counter() - started)
    train_cpu_rate = args.steps * args.batch_size / (time.process_time() - started_cpu)

    model = trainer.ema_model
    batch = data.batch(range(args.batch_size))
    model.refine(*batch.model_inputs())
    started, started_cpu = time.perf_counter(), time.process_time()
    n_batches = max(args.steps // 2, 1)
    for _ in range(n_batches):
        model.refine(*batch.model_inputs())
    inference_rate = n_batches * args.batch_size / (time.perf_counter() - started)
    inference_cpu_rate = n_batches * args.batch_size / (time.process_time() - started_cpu)
    return {
        "config": name,
        "parameters": count_parameters(trainer.model),
        "gflop_per_spectrum": inference_flops(trainer.model_config).gflop,
        "train_spectra_per_s": train_rate,
        "train_spectra_per_cpu_s": train_cpu_rate,
        "inference_spectra_per_s": inference_rate,
        "inference_spectra_per_cpu_s": inference_cpu_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "default"], choices=MODEL_CONFIGS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--shards", type=Path, help="synthetic data set (train/, validation/)")
    parser.add_argument("--noise-model", type=Path, help="fitted noise model YAML")
    parser.add_argument(
        "--late", action="store_true", help="measure at full noise (second half of a run)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    vocabulary = Vocabulary()
    n_peaks = max(get_model_config(name).n_peaks for name in args.configs)
    data, _, label = load_benchmark_data(args.shards, 2048, 1, vocabulary, 32, n_peaks)
    log.info("data: %s; %d torch thread(s); batch %d", label, args.threads, args.batch_size)
    log.info(
        "| config | parameters | GFLOP/spectrum | training spectra/s (per CPU s) "
        "| inference spectra/s (per CPU s) |"
    )
    log.info("|---|---|---|---|---|")
    for name in args.configs:
        row = measure(name, args, vocabulary, data)
        log.info(
            "| %s | %d | %.3f | %.1f (%.1f) | %.1f (%.1f) |",
            row["config"],
            row["parameters"],
            row["gflop_per_spectrum"],
            row["train_spectra_per_s"],
            row["train_spectra_per_cpu_s"],
            row["inference_spectra_per_s"],
            row["inference_spectra_per_cpu_s"],
        )


if __name__ == "__main__":
    main()
