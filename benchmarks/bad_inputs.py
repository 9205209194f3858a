"""What ``trm denovo`` does with awkward and malformed spectrum files, case by case.

Each case is a small MGF or mzML built from the demo's mouse spectra with one defect. The
script runs ``python -m trm denovo`` on every case with the ``trm`` of one or more source
trees (``--src``, e.g. this checkout and a worktree of an earlier release) and writes one
markdown table: per case and tree, the exit status, how many spectra ended in
``denovo.tsv`` and ``unsequenced.tsv`` (and with which reasons), and the error message a
user sees. The contract it checks by eye: every MS2 spectrum exactly once in the two
files, or exit status 1 with one line naming the file (and the spectrum and key).

Usage::

    git worktree add /tmp/before <commit>
    python benchmarks/bad_inputs.py --model MODEL.pt \\
        --instrument config/instruments/orbitrap_hcd.yaml \\
        --src before=/tmp/before/src after=src --out benchmarks/results/bad_inputs.md
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from trm.io.mgf import mgf_blocks

ROOT = Path(__file__).resolve().parents[1]
MOUSE = ROOT / "resources" / "demo" / "mouse_hcd.mgf"


def _blocks(n: int = 4) -> list[list[str]]:
    return mgf_blocks(MOUSE.read_text())[:n]


def _edit(block: list[str], key: str, value: str | None) -> list[str]:
    """Set (or, with None, remove) a header line."""
    out = [line for line in block if not line.startswith(f"{key}=")]
    if value is not None:
        out.insert(1, f"{key}={value}")
    return out


def _peaks(block: list[str], lines: list[str]) -> list[str]:
    header = [line for line in block if not (line and line[0].isdigit())]
    return header[:-1] + lines + [header[-1]]


def _mgf(blocks: list[list[str]]) -> str:
    return "\n".join(line for block in blocks for line in block) + "\n"


def mgf_cases() -> dict[str, tuple[str, bytes]]:
    """Case name -> (description, file bytes)."""
    base = _blocks()
    first = base[0]
    peak_lines = [line for line in first if line and line[0].isdigit()]

    def with_first(block: list[str]) -> bytes:
        return _mgf([block, *base[1:]]).encode()

    long_title = "X" * 5000
    cases = {
        "one_peak": ("a spectrum with one peak", with_first(_peaks(first, peak_lines[:1]))),
        "no_peaks": ("a spectrum without peaks", with_first(_peaks(first, []))),
        "zero_intensities": (
            "every intensity 0",
            with_first(_peaks(first, [f"{line.split()[0]} 0" for line in peak_lines])),
        ),
        "negative_mz": (
            "every peak at negative m/z",
            with_first(_peaks(first, [f"-{line}" for line in peak_lines])),
        ),
        "negative_intensity": (
            "negative intensities",
            with_first(
                _peaks(first, [f"{line.split()[0]} -{line.split()[1]}" for line in peak_lines])
            ),  # fmt: skip
        ),
        "nan_intensity": (
            "a NaN intensity",
            with_first(_peaks(first, [f"{peak_lines[0].split()[0]} nan", *peak_lines[1:]])),
        ),
        "inf_mz": ("an infinite m/z", with_first(_peaks(first, ["inf 10", *peak_lines[1:]]))),
        "three_columns": (
            "peak lines with a third column (annotation)",
            with_first(_peaks(first, [f"{line} b3" for line in peak_lines])),
        ),
        "comma_decimals": (
            "decimal commas in a peak line",
            with_first(_peaks(first, ["150,1 20,5", *peak_lines[1:]])),
        ),
        "text_peak": (
            "a peak line 'abc 1.0'",
            with_first(_peaks(first, ["abc 1.0", *peak_lines])),
        ),  # fmt: skip
        "unsorted_peaks": ("peaks out of m/z order", with_first(_peaks(first, peak_lines[::-1]))),
        "huge_spectrum": (
            "a spectrum of 20,000 peaks",
            with_first(
                _peaks(first, [f"{150 + i * 0.09:.4f} {1 + i % 97}" for i in range(20000)])
            ),  # fmt: skip
        ),
        "pepmass_na": ("PEPMASS=n/a", with_first(_edit(first, "PEPMASS", "n/a"))),
        "pepmass_zero": ("PEPMASS=0", with_first(_edit(first, "PEPMASS", "0"))),
        "no_pepmass": ("no PEPMASS line", with_first(_edit(first, "PEPMASS", None))),
        "rt_abc": ("RTINSECONDS=abc", with_first(_edit(first, "RTINSECONDS", "abc"))),
        "charge_zero": ("CHARGE=0", with_first(_edit(first, "CHARGE", "0"))),
        "no_charge": ("no CHARGE line", with_first(_edit(first, "CHARGE", None))),
        "charge_9": (
            "CHARGE=9+ (above the instrument's charges 2-4; within the model's 10)",
            with_first(_edit(first, "CHARGE", "9+")),
        ),  # fmt: skip
        "charge_negative": ("CHARGE=2- (negative mode)", with_first(_edit(first, "CHARGE", "2-"))),
        "charge_list": ("CHARGE=2+ and 3+", with_first(_edit(first, "CHARGE", "2+ and 3+"))),
        "no_title": ("no TITLE line", with_first(_edit(first, "TITLE", None))),
        "duplicate_titles": (
            "every spectrum with the same TITLE",
            _mgf([_edit(b, "TITLE", "same") for b in base]).encode(),
        ),
        "long_duplicate_title": (
            "a 5,000-character TITLE shared by every spectrum",
            _mgf([_edit(b, "TITLE", long_title) for b in base]).encode(),
        ),
        "crlf": ("Windows line endings", _mgf(base).replace("\n", "\r\n").encode()),
        "bom": ("a UTF-8 byte-order mark", b"\xef\xbb\xbf" + _mgf(base).encode()),
        "latin1_title": (
            "a Latin-1 byte in a TITLE",
            _mgf([_edit(first, "TITLE", "caf\xe9"), *base[1:]]).encode("latin-1"),
        ),
        "truncated": ("the file cut inside a spectrum", _mgf(base).encode()[:-40]),
        "empty_file": ("an empty file", b""),
        "not_mgf": ("a text file that is no MGF", b"hello\nworld\n"),
    }
    return cases


def mzml_cases(folder: Path) -> dict[str, tuple[str, Path]]:
    """mzML cases written with pyopenms."""
    import numpy as np
    import pyopenms as oms

    def write(name: str, spectra: list[dict]) -> Path:
        experiment = oms.MSExperiment()
        for index, fields in enumerate(spectra):
            spectrum = oms.MSSpectrum()
            spectrum.setNativeID(fields.get("native_id", f"scan={index + 1}"))
            spectrum.setMSLevel(2)
            spectrum.setRT(float(index))
            peaks = (np.asarray(fields["mz"], float), np.asarray(fields["intensity"], float))
            spectrum.set_peaks(peaks)
            if fields.get("profile"):
                spectrum.setType(oms.SpectrumSettings.SpectrumType.PROFILE)
            if fields.get("precursor", True):
                precursor = oms.Precursor()
                precursor.setMZ(fields.get("precursor_mz", 600.0))
                precursor.setCharge(2)
                spectrum.setPrecursors([precursor])
            experiment.addSpectrum(spectrum)
        path = folder / f"{name}.mzML"
        oms.MzMLFile().store(str(path), experiment)
        return path

    rng = np.random.default_rng(1)
    plain = [
        {"mz": np.sort(rng.uniform(150, 1200, 60)), "intensity": rng.uniform(1, 100, 60)}
        for _ in range(4)
    ]
    cases = {
        "mzml_duplicate_ids": (
            "mzML: two spectra with one native id",
            write("dup", [{**s, "native_id": "scan=1"} for s in plain[:2]] + plain[2:]),
        ),
        "mzml_profile": (
            "mzML: one MS2 spectrum flagged as profile data",
            write("profile", [{**plain[0], "profile": True}, *plain[1:]]),
        ),
        "mzml_no_precursor": (
            "mzML: an MS2 spectrum without a precursor",
            write("noprec", [{**plain[0], "precursor": False}, *plain[1:]]),
        ),
    }
    whole = write("whole", plain).read_bytes()
    truncated = folder / "truncated.mzML"
    truncated.write_bytes(whole[: len(whole) // 2])
    cases["mzml_truncated"] = ("mzML: the file cut in half", truncated)
    return cases


def run_case(src: Path, spectra: Path, model: Path, instrument: Path, out: Path) -> str:
    """One cell of the table: what this ``trm`` did with the file."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "trm", "denovo", "--spectra", str(spectra), "--model", str(model),
        "--instrument", str(instrument), "--run", "case",
        "--denovo", str(out / "denovo.tsv"), "--mztab", str(out / "denovo.mztab"),
        "--unsequenced", str(out / "unsequenced.tsv"), "--timing", str(out / "timing.json"),
        "--threads", "1",
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        traceback = "Traceback" in done.stderr
        last = lines[-1] if lines else ""
        message = last.split(" ERROR trm: ", 1)[-1]
        message = message.replace(str(spectra.parent) + "/", "")
        kind = "traceback" if traceback else "error"
        return f"exit {done.returncode}, {kind}: `{message[:160]}`"
    sequenced = list(csv.DictReader((out / "denovo.tsv").open(), delimiter="\t"))
    unsequenced = list(csv.DictReader((out / "unsequenced.tsv").open(), delimiter="\t"))
    ids = [r["spectrum_id"] for r in sequenced + unsequenced]
    reasons = sorted({r["reason"] for r in unsequenced})
    unique = "" if len(set(ids)) == len(ids) else f", **{len(ids) - len(set(ids))} repeated ids**"
    text = f"exit 0: {len(sequenced)} sequenced, {len(unsequenced)} unsequenced{unique}"
    if reasons:
        text += " (" + "; ".join(r[:70] for r in reasons) + ")"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a calibrated checkpoint")
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--src", nargs="+", required=True, metavar="NAME=SRC_DIR")
    parser.add_argument("--out", type=Path, required=True, help="markdown table")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.src)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        files: dict[str, tuple[str, Path]] = {}
        for name, (description, content) in mgf_cases().items():
            path = work / "inputs" / name / f"{name}.mgf"
            path.parent.mkdir(parents=True)
            path.write_bytes(content)
            files[name] = (description, path)
        (work / "mzml").mkdir()
        files.update(mzml_cases(work / "mzml"))
        lines = [
            "# Awkward and malformed spectrum files through `trm denovo`",
            "",
            f"Command: `python benchmarks/bad_inputs.py {' '.join(sys.argv[1:])}` "
            f"(the MGF cases hold 4 spectra of `resources/demo/mouse_hcd.mgf`, the mzML cases 4 "
            "random spectra, one of them defective).",
            "",
            "| case | input | " + " | ".join(trees) + " |",
            "|---|---|" + "---|" * len(trees),
        ]
        for name, (description, path) in files.items():
            cells = [
                run_case(
                    Path(src).resolve(),
                    path,
                    args.model.resolve(),
                    args.instrument.resolve(),
                    work / "out" / tree / name,
                )  # fmt: skip
                for tree, src in trees.items()
            ]
            lines.append(f"| {name} | {description} | " + " | ".join(cells) + " |")
            sys.stdout.write(lines[-1] + "\n")
            sys.stdout.flush()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
