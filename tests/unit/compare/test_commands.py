"""``trm compare`` and ``trm compare-samples`` end to end."""

from __future__ import annotations

import argparse
import json

import polars as pl
import pytest

from trm.compare import commands


@pytest.fixture
def parser():
    parser = argparse.ArgumentParser(prog="trm")
    commands.register(parser.add_subparsers(dest="command", required=True))
    return parser


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
