"""trm.io.spectra: the one streaming reader of MS2 spectra and the charge policy."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import pytest

from trm.io.errors import SpectrumFileError, UnsupportedFormatError
from trm.io.spectra import (
    apply_missing_charge_policy,
    drop_empty_spectra,
    iter_spectrum_batches,
    read_spectra,
)
from trm.io.table import SPECTRUM_READER_COLUMNS, SPECTRUM_SCHEMA

from .conftest import write_mzml


def test_mzml_fields(data_dir) -> None:
    table = read_spectra(data_dir / "mzLib" / "sliced_ethcd.mzML")
    assert table.schema == pl.Schema({**SPECTRUM_SCHEMA, **SPECTRUM_READER_COLUMNS})
    assert table.height == 5  # 6 scans, one MS1
    first = table.row(0, named=True)
    assert first["spectrum_id"] == "controllerType=0 controllerNumber=1 scan=2"
    assert first["scan"] == 2
    assert first["run"] == "sliced_ethcd"
    assert first["charge"] == 5
    assert first["precursor_mz"] == pytest.approx(548.453918457031)
    assert first["rt"] == pytest.approx(38.92606115255 * 60)
    assert first["activation"] == "HCD"
    assert first["peptide"] is None
    assert first["native_id"] == first["spectrum_id"]
    # The last scan is EThcD: ETD plus supplemental HCD in the file.
    assert table["activation"][-1] == "EThcD"
    for mz in table["mz"].to_list():
        assert np.all(np.diff(mz) >= 0)


def test_mzml_and_mzxml_give_the_same_spectra(data_dir) -> None:
    mzml = read_spectra(data_dir / "depthcharge" / "TMT10-Trial-8.mzML")
    mzxml = read_spectra(data_dir / "depthcharge" / "TMT10-Trial-8.mzXML")
    assert mzml.height == mzxml.height == 4
    assert mzml["scan"].to_list() == mzxml["scan"].to_list() == [501, 504, 507, 510]
    np.testing.assert_allclose(mzml["precursor_mz"], mzxml["precursor_mz"], atol=1e-4)
    assert mzml["charge"].to_list() == mzxml["charge"].to_list()
    for left, right in zip(mzml["mz"].to_list(), mzxml["mz"].to_list(), strict=True):
        np.testing.assert_allclose(left, right, atol=1e-4)


def test_mgf_title_is_the_spectrum_id(data_dir) -> None:
    table = read_spectra(data_dir / "tools-galaxyp" / "really_small.mgf", run="r1")
    assert table.height == 34
    assert table["spectrum_id"][0].startswith("controllerType=0 controllerNumber=1 scan=36 ")
    assert table["scan"][0] == 36  # SCANS=
    assert table["run"].unique().to_list() == ["r1"]
    assert table["activation"].null_count() == 34
    # mzTab's spectra_ref of an MGF spectrum: its 0-based position.
    assert table["native_id"].to_list() == [f"index={n}" for n in range(34)]


def test_batches_are_bounded_and_complete(gunzipped) -> None:
    path = gunzipped("MetaMorpheus/sliced-raw.mzML.gz")
    batches = list(iter_spectrum_batches(path, batch_size=16))
    assert [b.height for b in batches] == [16] * 5 + [10]
    assert pl.concat(batches).equals(read_spectra(path))


def test_stopping_early_does_not_hang(gunzipped) -> None:
    path = gunzipped("MetaMorpheus/sliced-raw.mzML.gz")
    batches = iter_spectrum_batches(path, batch_size=4)
    first = next(batches)
    batches.close()
    assert first.height == 4


def test_missing_charge_is_null(tmp_path) -> None:
    path = write_mzml(tmp_path / "nocharge.mzML", [{"charge": 0}, {"charge": 3}])
    assert read_spectra(path)["charge"].to_list() == [None, 3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b">sp|P1|PROT some protein\nPEPTIDEK\n", "not an mzML file"),
        (b'<?xml version="1.0"?>\n<mzML xmlns="http://psi.hupo.org/ms/mzml">\n<run>', "truncated"),
    ],
)
def test_bad_mzml(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.mzML"
    path.write_bytes(content)
    with pytest.raises(SpectrumFileError, match=message) as error:
        list(iter_spectrum_batches(path))
    assert str(path) in str(error.value)


def test_truncated_real_mzml(tmp_path, gunzipped) -> None:
    whole = gunzipped("MetaMorpheus/sliced-raw.mzML.gz").read_bytes()
    path = tmp_path / "cut.mzML"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SpectrumFileError, match="truncated"):
        read_spectra(path)


def test_malformed_xml_inside(tmp_path, data_dir) -> None:
    text = (data_dir / "mzLib" / "sliced_ethcd.mzML").read_text()
    path = tmp_path / "broken.mzML"
    path.write_text(text.replace("</spectrum>", "</spectrumm>", 1))
    with pytest.raises(SpectrumFileError, match="not a readable mzml file") as error:
        read_spectra(path)
    assert str(path) in str(error.value)


def test_ms1_only_file(tmp_path) -> None:
    path = write_mzml(tmp_path / "ms1.mzML", [{"ms_level": 1}, {"ms_level": 1}])
    with pytest.raises(SpectrumFileError, match="no MS2 spectra"):
        read_spectra(path)


def test_nan_and_infinite_peaks_are_dropped_not_fatal(tmp_path) -> None:
    """A NaN or infinite peak carries no signal: it is dropped like a zero one, and a
    spectrum left without peaks is skipped with its reason; the run goes on."""
    from trm.io.spectra import REASON_NO_USABLE_PEAKS, drop_empty_spectra

    path = write_mzml(
        tmp_path / "nan.mzML",
        [
            {"native_id": "scan=1"},
            {"native_id": "scan=2", "intensity": [1.0, float("nan")]},
            {"native_id": "scan=3", "mz": [float("inf"), 200.0], "intensity": [1.0, float("nan")]},
        ],
    )
    kept, skipped = drop_empty_spectra(read_spectra(path))
    assert kept["spectrum_id"].to_list() == ["scan=1", "scan=2"]
    assert kept["mz"].to_list()[1] == [100.0]
    assert skipped.rows() == [("scan=3", "nan", REASON_NO_USABLE_PEAKS)]
    mgf = tmp_path / "nan.mgf"
    mgf.write_text("BEGIN IONS\nTITLE=t1\nPEPMASS=500\nCHARGE=2+\n100 nan\nEND IONS\n")
    kept, skipped = drop_empty_spectra(read_spectra(mgf))
    assert kept.height == 0 and skipped["spectrum_id"].to_list() == ["t1"]


def test_repeated_native_ids_get_their_own_ids(tmp_path, caplog) -> None:
    path = write_mzml(
        tmp_path / "dup.mzML", [{"native_id": "scan=1"}] * 3 + [{"native_id": "scan=2"}]
    )
    with caplog.at_level(logging.WARNING):
        ids = read_spectra(path)["spectrum_id"].to_list()
    assert ids == ["scan=1", "scan=1#2", "scan=1#3", "scan=2"]
    assert "2 spectra repeat the native id" in caplog.text


def test_unsupported_extension(tmp_path) -> None:
    path = tmp_path / "spectra.txt"
    path.write_text("x")
    with pytest.raises(UnsupportedFormatError, match="supported: .mzML, .mzXML, .mgf"):
        read_spectra(path)


def test_raw_needs_conversion_first(data_dir) -> None:
    with pytest.raises(UnsupportedFormatError, match="trm convert"):
        read_spectra(data_dir / "mzLib" / "sliced-raw.raw")


def test_empty_spectra_are_listed(tmp_path) -> None:
    path = write_mzml(
        tmp_path / "empty.mzML",
        [{"native_id": "scan=1"}, {"native_id": "scan=2", "mz": [], "intensity": []}],
    )
    table = read_spectra(path)
    assert table["mz"].list.len().to_list() == [2, 0]
    kept, skipped = drop_empty_spectra(table)
    assert kept["spectrum_id"].to_list() == ["scan=1"]
    assert skipped.to_dicts() == [{"spectrum_id": "scan=2", "run": "empty", "reason": "no peaks"}]


@pytest.fixture
def mixed_charges(tmp_path) -> pl.DataFrame:
    path = write_mzml(
        tmp_path / "mixed.mzML",
        [
            {"native_id": "scan=1", "charge": 2},
            {"native_id": "scan=2", "charge": 0},
            {"native_id": "scan=3", "charge": 3},
        ],
    )
    return read_spectra(path)


def test_missing_charge_skip(mixed_charges) -> None:
    kept, skipped = apply_missing_charge_policy(mixed_charges, "skip")
    assert kept["spectrum_id"].to_list() == ["scan=1", "scan=3"]
    assert skipped.to_dicts() == [
        {"spectrum_id": "scan=2", "run": "mixed", "reason": "missing precursor charge"}
    ]


def test_missing_charge_try(mixed_charges) -> None:
    kept, skipped = apply_missing_charge_policy(mixed_charges, "try", charges=[2, 3, 4])
    assert skipped.height == 0
    tried = kept.filter(pl.col("charge_assumed"))
    assert tried["spectrum_id"].to_list() == ["scan=2"] * 3
    assert tried["charge"].to_list() == [2, 3, 4]
    assert kept.filter(~pl.col("charge_assumed"))["charge"].to_list() == [2, 3]
    assert kept["charge"].dtype == pl.Int16


def test_missing_charge_bad_policy(mixed_charges) -> None:
    with pytest.raises(ValueError, match="skip' or 'try"):
        apply_missing_charge_policy(mixed_charges, "guess")


def test_peaks_without_signal_are_dropped_and_spectra_left_empty_say_why():
    """Peaks at zero or negative m/z or intensity are no signal: a spectrum made only of
    them is not sequenced (it was reported as sequenced), a spectrum with some keeps the
    rest; an empty spectrum keeps its own reason."""
    from trm.io.spectra import REASON_NO_PEAKS, REASON_NO_USABLE_PEAKS

    table = pl.DataFrame(
        {
            "spectrum_id": ["negative", "zero", "mixed", "empty", "fine"],
            "run": ["r"] * 5,
            "mz": [[-100.0, -50.0], [100.0, 150.0], [-1.0, 150.0, 200.0], [], [300.0]],
            "intensity": [[1.0, 2.0], [0.0, 0.0], [1.0, 3.0, -2.0], [], [5.0]],
        },
        schema={
            "spectrum_id": pl.String(),
            "run": pl.String(),
            "mz": pl.List(pl.Float32()),
            "intensity": pl.List(pl.Float32()),
        },
    )
    kept, skipped = drop_empty_spectra(table)
    assert kept["spectrum_id"].to_list() == ["mixed", "fine"]
    assert kept["mz"].to_list() == [[150.0], [300.0]]
    assert skipped["spectrum_id"].to_list() == ["negative", "zero", "empty"]
    assert skipped["reason"].to_list() == [REASON_NO_USABLE_PEAKS] * 2 + [REASON_NO_PEAKS]


def test_repeated_mgf_titles_become_unique_ids(tmp_path):
    """40 spectra with 20 distinct titles gave 20 ids downstream; each spectrum now keeps
    its own, and a title that already looks renamed does not collide."""
    from trm.io.spectra import read_spectra

    blocks = []
    for index, title in enumerate(["a", "a", "a#2", "b", "a"]):
        blocks.append(
            f"BEGIN IONS\nTITLE={title}\nPEPMASS=500.{index}\nCHARGE=2+\n100 1\nEND IONS\n"
        )
    path = tmp_path / "repeated.mgf"
    path.write_text("".join(blocks))
    ids = read_spectra(path)["spectrum_id"].to_list()
    assert ids == ["a", "a#2", "a#2#2", "b", "a#3"]
    assert len(set(ids)) == len(ids)


def test_a_peak_list_mzml_keeps_its_native_ids_beside_the_titles(tmp_path):
    """An mzML converted from an MGF names spectra index=N; they keep their MGF titles
    as ids (labels match by title) and their native ids for mzTab's spectra_ref."""
    import pyopenms

    from trm.io.convert import convert_to_mzml

    mgf = tmp_path / "run.mgf"
    mgf.write_text(
        "".join(
            f"BEGIN IONS\nTITLE=spectrum {n}\nPEPMASS=500.{n}\nCHARGE=2+\n100 1\n200 2\nEND IONS\n"
            for n in range(3)
        )
    )
    mzml = tmp_path / "run.mzML"
    convert_to_mzml(mgf, mzml)
    experiment = pyopenms.MSExperiment()
    pyopenms.MzMLFile().load(str(mzml), experiment)
    native = [spectrum.getNativeID() for spectrum in experiment.getSpectra()]
    table = read_spectra(mzml)
    assert table["spectrum_id"].to_list() == ["spectrum 0", "spectrum 1", "spectrum 2"]
    assert table["native_id"].to_list() == native == ["index=0", "index=1", "index=2"]
