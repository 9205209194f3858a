"""``trm synthetic`` and ``trm fetch-ms2pip-models`` through their argparse front end."""

from __future__ import annotations

import argparse
import json

import pytest

from trm.synth import commands
from trm.synth.ms2pip_models import Ms2pipModelError
from trm.synth.peptides import SyntheticInputError


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="trm")
    commands.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_synthetic_reads_model_and_charges_from_the_instrument(
    tmp_path, yeast_fasta, model_dir
) -> None:
    instrument = tmp_path / "hcd.yaml"
    instrument.write_text(
        "fragmentation: HCD\nms2pip_model: HCD2019-distilled\ncharges: [2, 3]\n"
        "fragment_tolerance_da: 0.02\nprecursor_tolerance_ppm: 20\n"
    )
    out = tmp_path / "orbitrap_hcd"
    args = _parse(
        [
            "synthetic",
            "--fasta", str(yeast_fasta),
            "--out", str(out),
            "--instrument", str(instrument),
            "--ms2pip-model-dir", str(model_dir),
            "--n-spectra", "60",
            "--seed", "1",
            "--variable-mods",
            "--threads", "1",
        ]
    )  # fmt: skip
    args.func(args)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["charges"] == [2, 3]
    assert manifest["settings"]["variable_modifications"] == []
    assert manifest["settings"]["run"] == "orbitrap_hcd"
    assert sum(split["spectra"] for split in manifest["splits"].values()) == 60
    assert set(manifest["splits"]["train"]["charges"]) <= {"2", "3"}


def test_synthetic_needs_a_model(tmp_path, yeast_fasta) -> None:
    args = _parse(["synthetic", "--fasta", str(yeast_fasta), "--out", str(tmp_path / "o")])
    with pytest.raises(SyntheticInputError, match="--ms2pip-model"):
        args.func(args)


def test_synthetic_unknown_model_fails_before_any_output(tmp_path, yeast_fasta, model_dir):
    args = _parse(
        [
            "synthetic", "--fasta", str(yeast_fasta), "--out", str(tmp_path / "o"),
            "--ms2pip-model", "HCD2077", "--ms2pip-model-dir", str(model_dir),
        ]
    )  # fmt: skip
    with pytest.raises(Ms2pipModelError, match="unknown ms2pip model"):
        args.func(args)
    assert not (tmp_path / "o").exists()


def test_fetch_subcommand_parses_models(tmp_path) -> None:
    args = _parse(
        ["fetch-ms2pip-models", "--model", "HCD2021", "--model", "CID", "--model-dir", "m"]
    )
    assert args.model == ["HCD2021", "CID"]
    assert args.model_dir == "m"
    assert args.func is commands.run_fetch
    bad = _parse(["fetch-ms2pip-models", "--model", "NoSuchModel", "--model-dir", str(tmp_path)])
    with pytest.raises(Ms2pipModelError, match="not official"):
        bad.func(bad)
