"""The subcommands, parsed as the lead wires them into ``trm``."""

from __future__ import annotations

import argparse
import json

import polars as pl
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


def test_compare_end_to_end(parser, tmp_path):
    pl.DataFrame(
        {"spectrum_id": ["a", "b"], "run": ["r", "r"], "peptidoform": ["PEPTIDEK/2", "LESK/2"],
         "score": [0.9, 0.1], "meta:steps": ["3", "8"]}
    ).write_csv(tmp_path / "denovo.tsv", separator="\t")  # fmt: skip
    pl.DataFrame({"spectrum_id": ["c"], "run": ["r"], "reason": ["no peaks"]}).write_csv(
        tmp_path / "unsequenced.tsv", separator="\t"
    )
    pl.DataFrame(
        {"run": ["r", "r", "r"], "spectrum_id": ["a", "b", "c"],
         "status": ["sequenced", "skipped", "no_psm"], "reason": [None, "no charge", "x"],
         "peptide": ["PEPTLDEK", None, None], "score": [0.5, None, None]}
    ).write_csv(tmp_path / "casanovo.tsv", separator="\t")  # fmt: skip
    (tmp_path / "casanovo.json").write_text(json.dumps({"spectra_per_second": 3.0}))
    out = tmp_path / "out"
    args = parser.parse_args(
        ["compare", "--trm-denovo", str(tmp_path / "denovo.tsv"),
         "--trm-unsequenced", str(tmp_path / "unsequenced.tsv"),
         "--casanovo", str(tmp_path / "casanovo.tsv"),
         "--casanovo-timing", str(tmp_path / "casanovo.json"),
         "--table", str(out / "comparison.tsv"), "--summary-out", str(out / "comparison.json"),
         "--plot", str(out / "pc.png")]
    )  # fmt: skip
    args.func(args)
    table = pl.read_csv(out / "comparison.tsv", separator="\t")
    assert table.height == 3
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["agreement_rate"] == 1.0
    assert summary["casanovo"]["spectra_per_second"] == 3.0
    assert (out / "pc.png").is_file()

    samples = parser.parse_args(
        ["compare-samples", "--summaries", str(out / "comparison.json"),
         "--out", str(tmp_path / "all.tsv")]
    )  # fmt: skip
    samples.func(samples)
    assert pl.read_csv(tmp_path / "all.tsv", separator="\t")["sample"].to_list() == ["out"]


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
