"""The CUDA/bf16 training path: a few hundred steps on a GPU, finite losses, a checkpoint
that loads and sequences on the CPU. Skipped, saying why, where torch sees no GPU (the
GPU recipe, benchmarks/gpu_pretrain.sh, runs the same path at full size)."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from trm.cli import main
from trm.train.checkpoint import load_model, read_checkpoint

from .theoretical_spectra import random_peptides, theoretical_table

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the GPU path cannot run here"
)


def test_bf16_training_on_cuda_gives_finite_losses_and_a_loadable_checkpoint(tmp_path):
    for split, seed in (("train", 1), ("validation", 2)):
        (tmp_path / split).mkdir()
        theoretical_table(random_peptides(256, seed=seed), seed=seed, annotated=True).write_parquet(
            tmp_path / split / "shard-00000.parquet"
        )
    checkpoint, metrics = tmp_path / "model.pt", tmp_path / "metrics.csv"
    status = main(
        [
            "pretrain", "--train-dir", str(tmp_path / "train"),
            "--validation-dir", str(tmp_path / "validation"), "--checkpoint", str(checkpoint),
            "--metrics", str(metrics), "--model-config", "tiny", "--steps", "300",
            "--batch-size", "64", "--eval-every", "100", "--eval-spectra", "128",
            "--warmup-steps", "20", "--device", "cuda",
        ]
    )  # fmt: skip
    assert status == 0
    stored = read_checkpoint(checkpoint)
    assert stored["step"] == 300 and stored["train_config"]["mixed_precision"]
    with metrics.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows if r["split"] == "validation"] == [100, 200, 300]
    assert all(
        math.isfinite(float(r["loss"])) and math.isfinite(float(r["train_loss"])) for r in rows
    )
    model, _ = load_model(checkpoint, map_location="cpu")
    assert all(torch.isfinite(p).all() for p in model.parameters())
