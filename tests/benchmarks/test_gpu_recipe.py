"""The GPU recipe (benchmarks/gpu_pretrain.sh) runs end to end; here on the CPU, tiny."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _first_proteins(source, target, n: int) -> None:
    """The first ``n`` proteins of a gzip FASTA."""
    with gzip.open(source, "rt") as handle:
        text = handle.read()
    target.write_text(">" + ">".join(text.split(">")[1 : n + 1]))


def test_gpu_recipe_runs_on_the_cpu_with_a_tiny_budget(tmp_path):
    fasta = PROJECT_ROOT / "tests/data/synth/yeast_subset.fasta"
    heldout = tmp_path / "heldout.fasta"
    _first_proteins(PROJECT_ROOT / "resources/fasta/UP000001425-Synechocystis.fasta.gz", heldout, 5)
    environment = {
        **os.environ,
        "DEVICE": "cpu",
        "MINUTES": "2",
        "STEPS": "4",
        "BATCH": "8",
        "N_SPECTRA": "400",
        "HELDOUT_SPECTRA": "40",
        "THREADS": "1",
        # the ranking objective travels through the recipe too (off by default)
        "RANKING": "0.5",
        "RANK_GRAPH_SCORE": "true",
        "DRAFTS": "0.5",
        "TRAINING_FASTA": str(fasta),
        "HELDOUT_FASTA": str(heldout),
        "PYTHON": sys.executable,
    }
    result = subprocess.run(
        ["bash", str(PROJECT_ROOT / "benchmarks/gpu_pretrain.sh"), str(tmp_path / "out")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    card = (tmp_path / "out/MODEL_CARD.md").read_text()
    assert "4 steps of 8 spectra" in card
    # a run trained to rank is calibrated for the choice it serves: teacher forcing
    assert "DRAFTS=0.5" in card and "TEACHER_FORCING=true" in card
    calibration = json.loads((tmp_path / "out/model/calibration.json").read_text())
    assert calibration["inference"]["teacher_forcing"] is True
    assert "fitted noise model" in card
    assert "held-out proteome" in card
    assert "## Learning curve" in card and "(this model)" in card  # the run's curve, its end marked
    for name in ("pretrained.pt", "model.pt", "metrics.csv", "evaluation.json"):
        assert (tmp_path / "out/model" / name).stat().st_size > 0
