"""Calling Casanovo: never with a checkpoint it would try to download."""

from __future__ import annotations

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
