"""Calling Casanovo: never with a checkpoint it would try to download."""

from __future__ import annotations

from pathlib import Path

import pytest

from trm.casanovo import runner
from trm.casanovo.pipeline import sequence_spectra


def test_missing_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        runner.check_checkpoint(tmp_path / "casanovo.ckpt")


def test_sequencing_refuses_a_missing_checkpoint_before_running(small_table, tmp_path):
    with pytest.raises(FileNotFoundError, match="download"):
        sequence_spectra(small_table, tmp_path / "missing.ckpt", tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_missing_executable_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="venv-casanovo"):
        runner.resolve_executable(tmp_path / "bin" / "casanovo")


def test_environment_limits_threads_and_sets_the_cache(tmp_path):
    env = runner.thread_environment(2, tmp_path)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["XDG_CACHE_HOME"] == str(tmp_path)
    assert runner.default_cache_home(tmp_path / "env" / "bin" / "casanovo") == (
        tmp_path / "env" / "cache"
    )


def test_unimod_comes_with_pyopenms():
    obo = runner.find_unimod_obo()
    assert obo is not None and obo.name == "unimod.obo"


def _fake_casanovo_train(calls, fail_on_resume=False, killed=False):
    """Stands in for ``runner.train``: records the resume point, saves an epoch checkpoint;
    ``killed`` ends the attempt after that checkpoint, as a scheduler's kill would."""

    def train(train_mgfs, validation_mgfs, config_path, output_dir, root, resume_from=None, **_):
        calls.append(None if resume_from is None else Path(resume_from).name)
        if resume_from is None:
            for stale in Path(output_dir).glob(f"{root}.*.ckpt"):
                stale.unlink()
        elif fail_on_resume:
            raise runner.CasanovoError("Casanovo exited with status 1: truncated checkpoint")
        saved = Path(output_dir) / f"{root}.epoch=0-step=2.ckpt"
        saved.write_bytes(b"state")
        if killed:
            raise runner.CasanovoError("Casanovo exited with status -9")
        return runner.CasanovoRun(saved, 1.0, Path(output_dir) / "console.txt", 1.0)

    return train


def _train(tmp_path, table, max_spectra=64):
    from trm.casanovo.config import Architecture
    from trm.casanovo.pipeline import train_baseline

    shard = tmp_path / "train.parquet"
    table.write_parquet(shard)
    return train_baseline(
        [shard],
        [shard],
        tmp_path / "baseline.ckpt",
        tmp_path / "work",
        Architecture(dim_model=32, n_head=2, dim_feedforward=64, n_layers=1),
        max_spectra=max_spectra,
    )


def _interrupted_training(tmp_path, table, monkeypatch, calls):
    """A training killed after its first checkpoint, as by a scheduler."""
    monkeypatch.setattr(runner, "train", _fake_casanovo_train(calls, killed=True))
    with pytest.raises(runner.CasanovoError):
        _train(tmp_path, table)


def test_a_rerun_of_the_same_training_resumes_and_a_changed_one_starts_afresh(
    tmp_path, small_table, monkeypatch
):
    calls: list[str | None] = []
    _interrupted_training(tmp_path, small_table, monkeypatch, calls)
    assert not (tmp_path / "baseline.ckpt").exists()
    monkeypatch.setattr(runner, "train", _fake_casanovo_train(calls))
    again = _train(tmp_path, small_table)
    assert again.summary["resumed_from"] == "casanovo_train.epoch=0-step=2.ckpt"
    # A finished training is not resumed by a rerun (--forcerun, a changed rule).
    rerun = _train(tmp_path, small_table)
    assert rerun.summary["resumed_from"] is None
    # Nor an interrupted one whose budget changed.
    _interrupted_training(tmp_path, small_table, monkeypatch, calls)
    monkeypatch.setattr(runner, "train", _fake_casanovo_train(calls))
    other_budget = _train(tmp_path, small_table, max_spectra=128)
    assert other_budget.summary["resumed_from"] is None
    assert calls == [None, "casanovo_train.epoch=0-step=2.ckpt", None, None, None]


def test_a_checkpoint_that_cannot_be_resumed_from_means_training_afresh(
    tmp_path, small_table, monkeypatch
):
    calls: list[str | None] = []
    _interrupted_training(tmp_path, small_table, monkeypatch, calls)
    monkeypatch.setattr(runner, "train", _fake_casanovo_train(calls, fail_on_resume=True))
    outcome = _train(tmp_path, small_table)
    assert calls == [None, "casanovo_train.epoch=0-step=2.ckpt", None]
    assert outcome.summary["resumed_from"] is None
    assert (tmp_path / "baseline.ckpt").read_bytes() == b"state"


def test_training_keeps_the_sparse_synthetic_spectra(tmp_path, small_table, monkeypatch):
    """Casanovo's default min_peaks (20) would silently drop most MS2PIP spectra from
    training; the training config lowers it, and a user's own setting still wins."""
    import yaml

    from trm.casanovo.config import Architecture
    from trm.casanovo.pipeline import train_baseline

    calls: list[str | None] = []
    monkeypatch.setattr(runner, "train", _fake_casanovo_train(calls))
    _train(tmp_path, small_table)
    config = yaml.safe_load((tmp_path / "work" / "casanovo_train_config.yaml").read_text())
    assert config["min_peaks"] == 1
    shard = tmp_path / "train.parquet"
    train_baseline(
        [shard], [shard], tmp_path / "own.ckpt", tmp_path / "own",
        Architecture(dim_model=32, n_head=2, dim_feedforward=64, n_layers=1),
        max_spectra=64, config_overrides=[{"min_peaks": 5}],
    )  # fmt: skip
    config = yaml.safe_load((tmp_path / "own" / "casanovo_train_config.yaml").read_text())
    assert config["min_peaks"] == 5
