"""trm.io.mgf: the streaming MGF parser."""

from __future__ import annotations

import numpy as np
import pytest

from trm.io.errors import SpectrumFileError
from trm.io.mgf import count_mgf_spectra, iter_mgf, parse_mgf_charge


@pytest.mark.parametrize(
    ("text", "charge"),
    [
        ("2+", 2),
        ("3", 3),
        ("2-", -2),
        ("+2", 2),
        ("", None),
        ("2+ and 3+", None),
        ("2,3", None),
        # CHARGE=0 is how some writers say "unknown": the workflow and trm denovo agree.
        ("0", None),
        ("0+", None),
        # The PRIDE cluster export writes charges as floats.
        ("2.0+", 2),
        ("3.0", 3),
        ("2.5+", None),
    ],  # fmt: skip
)
def test_parse_charge(text: str, charge: int | None) -> None:
    assert parse_mgf_charge(text) == charge


def test_reads_thermorawfileparser_mgf(data_dir) -> None:
    path = data_dir / "tools-galaxyp" / "really_small.mgf"
    spectra = list(iter_mgf(path))
    assert len(spectra) == count_mgf_spectra(path) == 34
    first = spectra[0]
    assert first.scan == 36
    assert first.charge == 2
    assert first.precursor_mz == pytest.approx(675.248779296875)
    assert first.rt_seconds == pytest.approx(73.863181104)
    assert first.title.startswith("controllerType=0 controllerNumber=1 scan=36")
    assert first.mz.size == first.intensity.size == 136
    assert np.all(np.diff(first.mz) > 0)


def test_truncated_mgf_names_the_spectrum(tmp_path) -> None:
    path = tmp_path / "cut.mgf"
    path.write_text(
        "BEGIN IONS\nTITLE=first\nPEPMASS=500\n100 1\nEND IONS\nBEGIN IONS\nTITLE=second\n100 1\n"
    )
    with pytest.raises(SpectrumFileError, match="truncated") as error:
        list(iter_mgf(path))
    assert error.value.spectrum == "index=1, TITLE=second"
    assert str(path) in str(error.value)


def test_bad_peak_line(tmp_path) -> None:
    path = tmp_path / "bad.mgf"
    path.write_text("BEGIN IONS\nTITLE=x\n100 abc\nEND IONS\n")
    with pytest.raises(SpectrumFileError, match="unreadable peak"):
        list(iter_mgf(path))


def test_not_an_mgf(tmp_path) -> None:
    path = tmp_path / "notes.mgf"
    path.write_text("KEY=value\nthis is not a peak list\n")
    with pytest.raises(SpectrumFileError, match="not an MGF"):
        list(iter_mgf(path))


@pytest.mark.parametrize(
    ("header", "key"), [("PEPMASS=n/a", "PEPMASS"), ("RTINSECONDS=abc", "RTINSECONDS")]
)
def test_unparsable_numbers_name_the_file_the_spectrum_and_the_key(tmp_path, header, key):
    from trm.io.spectra import read_spectra

    path = tmp_path / "bad.mgf"
    path.write_text(
        "BEGIN IONS\nTITLE=good\nPEPMASS=500.2\nCHARGE=2+\n100 1\nEND IONS\n"
        "BEGIN IONS\nTITLE=broken\n"
        + (header if key == "PEPMASS" else f"{header}\nPEPMASS=600")
        + "\nCHARGE=2+\n100 1\nEND IONS\n"
    )
    with pytest.raises(
        SpectrumFileError, match=rf"bad.mgf, spectrum 'index=1, TITLE=broken'.*{key}="
    ):
        read_spectra(path)


def test_a_byte_order_mark_does_not_hide_the_first_spectrum(tmp_path) -> None:
    from trm.io.mgf import count_mgf_spectra

    path = tmp_path / "bom.mgf"
    text = "BEGIN IONS\nTITLE=a\nPEPMASS=500\n100 1\nEND IONS\n"
    path.write_bytes(b"\xef\xbb\xbf" + (text + text.replace("=a", "=b")).encode())
    assert [s.title for s in iter_mgf(path)] == ["a", "b"]
    assert count_mgf_spectra(path) == 2
