"""A real tiny ``casanovo train`` + ``casanovo sequence`` run (Casanovo's own environment)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.unit.casanovo.conftest import CASANOVO_EXECUTABLE, spectrum_table
from trm.casanovo import runner
from trm.casanovo.config import Architecture
from trm.casanovo.pipeline import sequence_spectra, train_baseline

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CASANOVO_EXECUTABLE.is_file(),
        reason="Casanovo's environment is missing: python3.11 -m venv .venv-casanovo && "
        ".venv-casanovo/bin/pip install torch==2.13.0 casanovo==5.2.1 'pyarrow<26'",
    ),
]


def _random_peptides(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    residues = list("GASPVTLNDQEMHFYW")
    return [
        "".join(rng.choice(residues, size=int(rng.integers(6, 10)))) + str(rng.choice(["K", "R"]))
        for _ in range(n)
    ]


def test_train_then_sequence(tmp_path, small_table):
    data = tmp_path / "synthetic"
    (data / "train").mkdir(parents=True)
    (data / "validation").mkdir()
    spectrum_table(_random_peptides(64, 1), [2, 3] * 32).write_parquet(data / "train/0.parquet")
    spectrum_table(_random_peptides(16, 2), [2] * 16).write_parquet(data / "validation/0.parquet")

    trained = train_baseline(
        [data / "train/0.parquet"],
        [data / "validation/0.parquet"],
        tmp_path / "model.ckpt",
        tmp_path / "train_work",
        Architecture(dim_model=32, n_head=2, dim_feedforward=64, n_layers=1),
        max_spectra=64,
        batch_size=32,
        n_validations=1,
        config_overrides=[{"accelerator": "cpu"}],
        executable=CASANOVO_EXECUTABLE,
        threads=1,
    )
    assert trained.checkpoint.is_file()
    assert trained.summary["optimizer_steps"] == 2
    assert trained.summary["architecture"]["dim_model"] == 32

    outcome = sequence_spectra(
        small_table,
        trained.checkpoint,
        tmp_path / "sequence_work",
        # A barely trained model rarely ends a peptide: bound the decoding length.
        config_overrides=[{"accelerator": "cpu", "max_peptide_len": 20}],
        executable=CASANOVO_EXECUTABLE,
        threads=1,
    )
    results = outcome.results
    assert results.height == small_table.height
    assert set(results["spectrum_id"]) == set(small_table["spectrum_id"])
    assert outcome.mztab is not None and outcome.mztab.is_file()
    assert outcome.summary["n_spectra_given"] == 8
    assert outcome.summary["spectra_per_second"] > 0
    assert outcome.summary["n_skipped"] == 2
    json.dumps(outcome.summary)


def test_unimod_cache_is_primed_offline(tmp_path):
    """Casanovo resolves modification names with no network once the cache is primed."""
    from trm.casanovo.runner import prime_cv_cache

    assert prime_cv_cache(CASANOVO_EXECUTABLE.absolute(), tmp_path / "cache")
    assert (tmp_path / "cache" / "spectrum_utils" / "UNIMOD.pkl").is_file()


def test_an_interrupted_baseline_training_resumes_from_its_checkpoint(tmp_path):
    """Casanovo killed after its first epoch; the rerun restores that state and finishes."""
    data = tmp_path / "synthetic"
    (data / "train").mkdir(parents=True)
    (data / "validation").mkdir()
    spectrum_table(_random_peptides(128, 3), [2, 3] * 64).write_parquet(data / "train/0.parquet")
    spectrum_table(_random_peptides(16, 4), [2] * 16).write_parquet(data / "validation/0.parquet")
    work = tmp_path / "work"
    command = [
        sys.executable, "-m", "trm", "casanovo-train", "--data-dir", str(data),
        "--checkpoint", str(tmp_path / "baseline.ckpt"), "--summary", str(tmp_path / "b.json"),
        "--work-dir", str(work), "--max-spectra", str(128 * 12), "--batch-size", "32",
        "--validations", "2", "--dim-model", "32", "--n-head", "2", "--dim-feedforward", "64",
        "--n-layers", "1", "--executable", str(CASANOVO_EXECUTABLE.absolute()),
        "--set", "accelerator=cpu", "--threads", "1",
    ]  # fmt: skip
    first = subprocess.Popen(command, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        sizes: list[int] = []
        while len(sizes) < 3 or sizes[-1] == 0 or len(set(sizes[-3:])) > 1:
            # A written epoch checkpoint: present, non-empty, its size steady for 20 ms.
            assert first.poll() is None, "Casanovo ended before its first epoch checkpoint"
            assert time.monotonic() < deadline, "no epoch checkpoint within 10 minutes"
            sizes.append(_epoch_checkpoint_size(work))
            time.sleep(0.01)
        os.killpg(first.pid, signal.SIGKILL)  # trm and Casanovo, as a scheduler would
    finally:
        first.wait(timeout=60)
    assert not (tmp_path / "baseline.ckpt").exists() and not (tmp_path / "b.json").exists()
    reached = runner.latest_checkpoint(work)
    assert reached is not None

    subprocess.run(command, check=True, timeout=600)
    summary = json.loads((tmp_path / "b.json").read_text())
    assert summary["resumed_from"] == reached.name
    console = (work / "casanovo_train.console.txt").read_text()
    # Lightning's own line: the optimizer, schedule and loop state came from the checkpoint.
    assert "Restored all states from the checkpoint" in console
    assert list(work.glob("casanovo_train.epoch=11-step=48.ckpt")), "the schedule did not end"
    restored = next(line for line in console.splitlines() if "Restored all states" in line)
    print(f"killed with {reached.name} saved; {restored.strip()}; ended at epoch 11, step 48")  # noqa: T201 - the figures of the closing note (pytest -s)
    assert (tmp_path / "baseline.ckpt").stat().st_size > 0


def _epoch_checkpoint_size(work) -> int:
    for path in work.glob("casanovo_train.epoch=*.ckpt"):
        try:
            return path.stat().st_size
        except FileNotFoundError:  # replaced by the next epoch's meanwhile
            pass
    return 0
