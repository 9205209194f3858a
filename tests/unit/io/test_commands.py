"""trm.io.commands: the ``convert`` and ``labelled-spectra`` subcommands."""

from __future__ import annotations

import argparse

import polars as pl
import pytest

from trm.io import commands
from trm.io.errors import SpectrumFileError
from trm.io.spectra import read_spectra


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trm")
    subparsers = parser.add_subparsers(dest="command", required=True)
    commands.register(subparsers)
    return parser


def _run(parser: argparse.ArgumentParser, *argv: str) -> None:
    args = parser.parse_args(list(argv))
    args.func(args)


def test_convert(parser, tmp_path, data_dir) -> None:
    output = tmp_path / "mzml" / "tmt.mzML"
    _run(parser, "convert", str(data_dir / "depthcharge" / "TMT10-Trial-8.mzXML"), str(output))
    assert read_spectra(output).height == 4


def test_convert_error_is_a_value_error_naming_the_file(parser, tmp_path) -> None:
    source = tmp_path / "empty.mzML"
    source.write_bytes(b"")
    with pytest.raises(SpectrumFileError, match="file is empty") as error:
        _run(parser, "convert", str(source), str(tmp_path / "out.mzML"))
    assert isinstance(error.value, ValueError)  # trm's CLI reports these as one line
    assert not (tmp_path / "out.mzML").exists()


def test_convert_thermo_option(parser) -> None:
    args = parser.parse_args(["convert", "a.raw", "b.mzML", "--no-thermorawfileparser"])
    assert args.no_thermorawfileparser


def test_labelled_spectra_from_identifications(parser, tmp_path, data_dir) -> None:
    folder = data_dir / "mzLib"
    output = tmp_path / "labelled.parquet"
    _run(
        parser,
        "labelled-spectra",
        str(folder / "SmallCalibratibleYeast.mgf"),
        str(output),
        "--identifications",
        str(folder / "SmallCalibratible_Yeast.mzID"),
        "--q-value",
        "0.01",
    )
    table = pl.read_parquet(output)
    assert table.height == 65
    skipped = pl.read_csv(tmp_path / "labelled.skipped.tsv", separator="\t")
    assert skipped.columns == ["spectrum_id", "run", "reason"]


def test_labelled_spectra_from_annotated_mgf(parser, tmp_path, data_dir) -> None:
    output = tmp_path / "pride.parquet"
    skipped_path = tmp_path / "pride_skipped.tsv"
    _run(
        parser,
        "labelled-spectra",
        str(data_dir / "spectra-cluster" / "pride_export_2017_head6.mgf"),
        str(output),
        "--skipped",
        str(skipped_path),
    )
    assert pl.read_parquet(output).height == 0
    assert pl.read_csv(skipped_path, separator="\t").height == 6


def test_labelled_spectra_needs_labels(parser, tmp_path, data_dir) -> None:
    with pytest.raises(ValueError, match="--identifications"):
        _run(
            parser,
            "labelled-spectra",
            str(data_dir / "mzLib" / "sliced_ethcd.mzML"),
            str(tmp_path / "x.parquet"),
        )
