"""``trm pretrain`` from the command line: the work folder it resumes from, GPU checks."""

from __future__ import annotations

import pytest

from trm.cli import main

from .theoretical_spectra import random_peptides, theoretical_table


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    for split, seed in (("train", 1), ("validation", 2)):
        (folder / split).mkdir()
        theoretical_table(random_peptides(24, seed=seed), seed=seed).write_parquet(
            folder / split / "shard-00000.parquet"
        )
    return folder


def _pretrain(shards, out, *extra: str) -> int:
    return main(
        [
            "pretrain",
            "--train-dir", str(shards / "train"),
            "--validation-dir", str(shards / "validation"),
            "--checkpoint", str(out / "pretrained.pt"),
            "--metrics", str(out / "metrics.csv"),
            "--model-config", "tiny",
            "--batch-size", "4",
            "--eval-every", "2",
            "--eval-spectra", "8",
            "--warmup-steps", "1",
            *extra,
        ]
    )  # fmt: skip


def test_training_state_lives_in_the_work_folder_and_is_resumed(shards, tmp_path):
    """With --work-dir the outputs appear only at the end, and a rerun (a scheduler's
    retry) resumes from the folder instead of starting over."""
    work = tmp_path / "work"
    assert _pretrain(shards, tmp_path, "--steps", "3", "--work-dir", str(work)) == 0
    assert (work / "checkpoint.pt").exists() and (tmp_path / "pretrained.pt").exists()
    first = (tmp_path / "pretrained.pt").read_bytes()
    # The job's outputs are gone (Snakemake deletes a failed job's outputs); the retry
    # resumes at step 3, so nothing is trained twice and the result is the same.
    (tmp_path / "pretrained.pt").unlink()
    (tmp_path / "metrics.csv").unlink()
    assert _pretrain(shards, tmp_path, "--steps", "3", "--work-dir", str(work)) == 0
    assert (tmp_path / "pretrained.pt").read_bytes() == first
    assert (tmp_path / "metrics.csv").read_text().count("\n") > 1


def test_cuda_without_a_gpu_is_one_clear_error(shards, tmp_path, caplog):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert _pretrain(shards, tmp_path, "--steps", "1", "--device", "cuda") == 1
    assert "sees no CUDA device" in caplog.text
    assert not (tmp_path / "pretrained.pt").exists()


def test_a_work_folder_of_other_settings_is_not_resumed(shards, tmp_path, caplog):
    work = tmp_path / "work"
    assert _pretrain(shards, tmp_path, "--steps", "2", "--work-dir", str(work)) == 0
    assert _pretrain(shards, tmp_path, "--steps", "4", "--work-dir", str(work)) == 0
    assert "holds a run with other settings: starting afresh" in caplog.text
    from trm.train.checkpoint import read_checkpoint

    assert read_checkpoint(tmp_path / "pretrained.pt")["step"] == 4


def test_the_attempts_log_keeps_every_attempt(shards, tmp_path):
    """A scheduler's retry replaces the job's log; --attempts-log keeps each attempt."""
    attempts = tmp_path / "logs" / "pretrain.attempts.log"
    missing = tmp_path / "absent"
    for _ in range(2):
        status = main(
            ["--attempts-log", str(attempts), "pretrain", "--train-dir", str(missing),
             "--checkpoint", str(tmp_path / "m.pt"), "--metrics", str(tmp_path / "m.csv")]
        )  # fmt: skip
        assert status == 1
    text = attempts.read_text()
    assert text.count("trm pretrain: new attempt") == 2
    assert text.count(str(missing)) >= 2
    assert _pretrain(shards, tmp_path, "--steps", "1") == 0


def test_ablation_settings_reach_the_checkpoint(shards, tmp_path):
    """The flags the ablation benchmark varies are stored with the model they trained."""
    from trm.train.checkpoint import read_checkpoint

    assert _pretrain(
        shards, tmp_path, "--steps", "2", "--step-base", "2", "--clean-fraction-end", "0.3",
        "--set", "answer_update=replace", "--set", "step_embedding=false",
    ) == 0  # fmt: skip
    checkpoint = read_checkpoint(tmp_path / "pretrained.pt")
    train, model = checkpoint["train_config"], checkpoint["model_config"]
    assert train["loss"]["step_base"] == 2.0
    assert train["curriculum"]["clean_fraction_end"] == 0.3
    assert model["answer_update"] == "replace" and model["step_embedding"] is False


def test_spectra_are_cut_to_the_peak_count_of_the_starting_checkpoint(
    shards, tmp_path, monkeypatch
):
    """--init's architecture wins, its peak count included: the spectra the network reads
    are cut to that count, not to the requested size's."""
    from trm.train import commands

    base = tmp_path / "base"
    base.mkdir()
    assert _pretrain(shards, base, "--steps", "1", "--set", "n_peaks=12") == 0
    widths = []
    read = commands.SpectrumDataset.from_shards

    def recording(*args, **kwargs):
        widths.append(kwargs["n_peaks"])
        return read(*args, **kwargs)

    monkeypatch.setattr(commands.SpectrumDataset, "from_shards", recording)
    init = ("--init", str(base / "pretrained.pt"))
    assert _pretrain(shards, tmp_path, "--steps", "1", *init) == 0
    assert widths == [12, 12]
