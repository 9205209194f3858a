"""The subcommands, parsed as the lead wires them into ``trm``."""

from __future__ import annotations

import argparse

import pytest

from trm.casanovo import commands


@pytest.fixture
def parser():
    parser = argparse.ArgumentParser(prog="trm")
    commands.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_sequence_arguments(parser, tmp_path):
    args = parser.parse_args(
        [
            "casanovo-sequence",
            "--spectra", "s.parquet",
            "--checkpoint", "m.ckpt",
            "--mztab", "out/casanovo.mztab",
            "--results", "out/casanovo.tsv",
            "--summary", "out/casanovo.json",
            "--set", "n_beams=5",
            "--set", "accelerator=cpu",
            "--threads", "2",
        ]
    )  # fmt: skip
    assert args.func is commands.run_sequence
    assert args.settings == [("n_beams", 5), ("accelerator", "cpu")]
    assert str(args.executable) == ".venv-casanovo/bin/casanovo"


def test_sequence_refuses_missing_checkpoint(parser, tmp_path, small_table):
    small_table.write_parquet(tmp_path / "s.parquet")
    args = parser.parse_args(
        [
            "casanovo-sequence",
            "--spectra", str(tmp_path / "s.parquet"),
            "--checkpoint", str(tmp_path / "none.ckpt"),
            "--mztab", str(tmp_path / "c.mztab"),
            "--results", str(tmp_path / "c.tsv"),
            "--summary", str(tmp_path / "c.json"),
        ]
    )  # fmt: skip
    with pytest.raises(FileNotFoundError, match="none.ckpt"):
        args.func(args)


def test_train_arguments(parser):
    args = parser.parse_args(
        ["casanovo-train", "--data-dir", "d", "--checkpoint", "m.ckpt", "--summary", "t.json",
         "--max-spectra", "1000", "--dim-model", "64", "--n-head", "4", "--n-layers", "2"]
    )  # fmt: skip
    assert (args.dim_model, args.n_head, args.n_layers, args.dim_feedforward) == (64, 4, 2, 1024)


def test_a_failed_sequencing_job_leaves_no_work_folder_and_no_outputs(
    parser, tmp_path, small_table
):
    """A failed Casanovo job left results/<sample>/casanovo.work/ behind, sometimes with
    a 0-byte MGF; now the folder goes and no output appears."""
    small_table.write_parquet(tmp_path / "s.parquet")
    (tmp_path / "m.ckpt").write_bytes(b"not a checkpoint")
    broken = tmp_path / "casanovo"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    args = parser.parse_args(
        [
            "casanovo-sequence",
            "--spectra", str(tmp_path / "s.parquet"),
            "--checkpoint", str(tmp_path / "m.ckpt"),
            "--mztab", str(tmp_path / "c.mztab"),
            "--results", str(tmp_path / "c.tsv"),
            "--summary", str(tmp_path / "c.json"),
            "--executable", str(broken),
        ]
    )  # fmt: skip
    with pytest.raises(Exception):  # noqa: B017 - whatever the runner raises
        args.func(args)
    assert not (tmp_path / "c.mztab.work").exists()
    assert not any((tmp_path / name).exists() for name in ("c.mztab", "c.tsv", "c.json"))
