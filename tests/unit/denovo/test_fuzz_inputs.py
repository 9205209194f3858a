"""Fuzzing ``trm denovo`` with malformed MGF and mzML files (fixed seed, bounded size).

Whatever a file holds, one of two things happens:

- the run succeeds and every MS2 spectrum ends exactly once in ``denovo.tsv`` or
  ``unsequenced.tsv`` (with a reason), under an id unique in the run;
- the run fails with exit status 1 and one message that names the file (and, for a bad
  value, the spectrum and the key), and leaves no output behind.
"""

from __future__ import annotations

import logging
import random
import re

import numpy as np
import polars as pl
import pytest

from tests.unit.io.conftest import write_mzml
from trm.io.mgf import mgf_blocks

from .conftest import DATA, run_denovo

#: Cases per format: bounded so that the suite stays fast.
N_MGF_CASES = 24
N_MZML_CASES = 8
SEED = 20261129

_BAD_NUMBERS = ["abc", "n/a", "", "nan", "-1", "0", "1e400", "inf", "12,5", "3.2.1"]


def _mutate_block(block: list[str], rng: random.Random) -> tuple[list[str], str]:
    """One random defect in one spectrum; returns the block and what was done."""
    header = [i for i, line in enumerate(block) if "=" in line]
    peaks = [i for i, line in enumerate(block) if line and line[0].isdigit()]
    kind = rng.choice(
        ["bad_number", "drop_header", "no_peaks", "one_peak", "negative_peaks", "charge",
         "bad_peak", "huge_peaks", "duplicate_title"]
    )  # fmt: skip
    block = list(block)
    if kind == "bad_number" and header:
        index = rng.choice(header)
        key = block[index].split("=", 1)[0]
        if key in ("TITLE", "SEQ"):
            key = "PEPMASS"
            index = next((i for i in header if block[i].startswith("PEPMASS=")), index)
        block[index] = f"{key}={rng.choice(_BAD_NUMBERS)}"
    elif kind == "drop_header" and header:
        del block[rng.choice(header)]
    elif kind == "no_peaks":
        block = [line for i, line in enumerate(block) if i not in set(peaks)]
    elif kind == "one_peak" and peaks:
        block = [line for i, line in enumerate(block) if i not in set(peaks[1:])]
    elif kind == "negative_peaks":
        for i in peaks:
            mz, _, rest = block[i].partition(" ")
            block[i] = f"-{mz} {rest}" if rng.random() < 0.5 else f"{mz} -{rest}"
    elif kind == "charge":
        charge = rng.choice(["0", "9+", "2-", "1+ and 2+", "2+,3+", "x"])
        block = [f"CHARGE={charge}" if line.startswith("CHARGE=") else line for line in block]
    elif kind == "bad_peak" and peaks:
        block[rng.choice(peaks)] = rng.choice(["12.5", "abc 1.0", "1.0 2.0 3.0", "1,0 2,0"])
    elif kind == "huge_peaks":
        block[-1:-1] = [f"{mz:.4f} 1.0" for mz in np.linspace(150.0, 1900.0, 3000)]
    elif kind == "duplicate_title":
        block = [line if not line.startswith("TITLE=") else "TITLE=same" for line in block]
    return block, kind


@pytest.fixture(scope="module")
def base_blocks() -> list[list[str]]:
    return mgf_blocks((DATA.parent.parent / "resources" / "demo" / "mouse_hcd.mgf").read_text())[
        :12
    ]


def _check_outcome(status, paths, spectrum_file, n_spectra, caplog, numbers_bad):
    outputs = [p for p in paths.values() if p.exists()]
    if status != 0:
        assert status == 1
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "Traceback" not in caplog.text
        message = errors[0].getMessage()
        assert str(spectrum_file) in message or spectrum_file.name in message, message
        assert not outputs, f"partial outputs left behind: {outputs}"
        leftovers = [p for p in paths["denovo"].parent.iterdir() if p.name != spectrum_file.name]
        assert not leftovers, leftovers
        return "error"
    sequenced = pl.read_csv(paths["denovo"], separator="\t", infer_schema_length=0)
    unsequenced = pl.read_csv(paths["unsequenced"], separator="\t", infer_schema_length=0)
    ids = sequenced["spectrum_id"].to_list() + unsequenced["spectrum_id"].to_list()
    assert len(ids) == n_spectra, (len(ids), n_spectra)
    assert len(set(ids)) == len(ids), "spectrum ids are not unique"
    assert unsequenced["reason"].null_count() == 0
    assert all(reason.strip() for reason in unsequenced["reason"].to_list())
    return "accounted"


def test_fuzzed_mgf_files_are_accounted_for_or_rejected_by_name(
    base_blocks, calibrated, instrument_path, tmp_path, caplog
):
    model, _ = calibrated
    rng = random.Random(SEED)
    outcomes = []
    for case in range(N_MGF_CASES):
        blocks = [list(b) for b in base_blocks]
        kinds = []
        for _ in range(rng.randint(1, 4)):
            index = rng.randrange(len(blocks))
            blocks[index], kind = _mutate_block(blocks[index], rng)
            kinds.append(kind)
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        spectrum_file = folder / "fuzz.mgf"
        spectrum_file.write_text("\n".join(line for b in blocks for line in b) + "\n")
        caplog.clear()
        status, paths = run_denovo(spectrum_file, model, instrument_path, folder, run="fuzz")
        outcome = _check_outcome(status, paths, spectrum_file, len(blocks), caplog, kinds)
        if outcome == "error":
            message = next(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
            # A bad value is named with its spectrum and key.
            assert re.search(r"spectrum|TITLE|index", message, re.IGNORECASE), message
        outcomes.append((kinds, outcome))
    # The fuzzing reaches both outcomes (the defects are not all harmless).
    assert {o for _, o in outcomes} == {"error", "accounted"}, outcomes


def test_fuzzed_mzml_files_are_accounted_for_or_rejected_by_name(
    calibrated, instrument_path, tmp_path, caplog
):
    model, _ = calibrated
    rng = np.random.default_rng(SEED)
    for case in range(N_MZML_CASES):
        spectra = []
        n_ms2 = 0
        for index in range(10):
            kind = rng.choice(
                ["plain", "plain", "empty", "one_peak", "negative", "no_precursor", "dup_id",
                 "ms1", "nan", "charge0"]
            )  # fmt: skip
            mz = np.sort(rng.uniform(150.0, 1500.0, 40))
            intensity = rng.uniform(1.0, 1000.0, 40)
            fields = {"native_id": f"scan={index + 1}", "mz": mz, "intensity": intensity,
                      "precursor_mz": float(rng.uniform(400.0, 1000.0)), "charge": 2}  # fmt: skip
            if kind == "empty":
                fields.update(mz=[], intensity=[])
            elif kind == "one_peak":
                fields.update(mz=mz[:1], intensity=intensity[:1])
            elif kind == "negative":
                fields.update(mz=-mz)
            elif kind == "no_precursor":
                fields.update(precursor_mz=0.0)
            elif kind == "dup_id":
                fields.update(native_id="scan=1")
            elif kind == "ms1":
                fields.update(ms_level=1)
            elif kind == "nan":
                intensity = intensity.copy()
                intensity[::3] = np.nan
                fields.update(intensity=intensity)
            elif kind == "charge0":
                fields.update(charge=0)
            n_ms2 += fields.get("ms_level", 2) == 2
            spectra.append(fields)
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        spectrum_file = write_mzml(folder / "fuzz.mzML", spectra)
        caplog.clear()
        status, paths = run_denovo(spectrum_file, model, instrument_path, folder, run="fuzz")
        _check_outcome(status, paths, spectrum_file, n_ms2, caplog, None)
    # A truncated mzML is an error that names the file.
    truncated = tmp_path / "truncated" / "fuzz.mzML"
    truncated.parent.mkdir()
    text = spectrum_file.read_bytes()
    truncated.write_bytes(text[: len(text) // 2])
    caplog.clear()
    status, paths = run_denovo(truncated, model, instrument_path, truncated.parent, run="fuzz")
    assert _check_outcome(status, paths, truncated, n_ms2, caplog, None) == "error"
