"""Training spectra against real ones, by precursor charge: what the model is shown.

``benchmarks/noise_realism.py`` compares each real spectrum with a synthetic spectrum of
the same peptide and charge; it cannot see how the synthetic *set* is composed. This
script compares the two sets as the model meets them, one row per precursor charge:

* the share of spectra of that charge;
* the median number of peaks;
* among the model's most intense ``--n-peaks`` peaks (cut by
  :func:`trm.train.data.top_peaks`, as in training and de novo): the median number
  of b/y fragment peaks and their median share of that intensity
  (:func:`trm.synth.annotate.annotate_spectrum` at the instrument's fragment tolerance).

Synthetic spectra: ``--n-synthetic`` spectra of ``--shards`` (a split of ``trm
synthetic``) under ``--noise-model`` at full strength (``noisy_copy`` of
``benchmarks/evaluate_model.py``, fixed seed). The top-peak figures come from spectra
prepared as in training (the clean peaks cut to ``--n-peaks``, the noise drawn onto them,
the most intense ``--n-peaks`` kept); the peak counts from a second draw that keeps every
noise peak. Real spectra: tables with known peptides (``benchmarks/dev_data.py``'s, or
``trm labels``').

Usage::

    python benchmarks/training_mix.py --shards SYNTH/validation \\
        --noise-model resources/noise/orbitrap_hcd.yaml \\
        --instrument config/instruments/orbitrap_hcd.yaml \\
        --real dev-split/*.all.parquet --out mix.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch

from trm.chem import Vocabulary
from trm.instrument import load_instrument
from trm.noise_model import NoiseModelParameters
from trm.synth.annotate import CATEGORY_INDEX, annotate_spectrum
from trm.train.data import SpectrumDataset, top_peaks
from trm.train.noise import FittedNoise

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_model import noisy_copy  # noqa: E402

log = logging.getLogger("training_mix")

#: Peaks kept per spectrum when counting them: wider than the real spectra here and than
#: the noise draws (a few hundred); a warning says when a spectrum reaches it.
READ_WIDTH = 2000
#: Longest answer and largest charge read (the shipped model's limits).
MAX_LENGTH, MAX_CHARGE = 32, 10


def spectrum_row(
    mz: np.ndarray,
    intensity: np.ndarray,
    tokens: list[str],
    charge: int,
    n_peaks: int,
    tolerance: float,
) -> tuple[int, int, float]:
    """Peaks, b/y peaks among the ``n_peaks`` most intense, and their intensity share.

    Parameters
    ----------
    mz, intensity : numpy.ndarray of shape (n,)
        The spectrum's peaks (any order, no padding).
    tokens : list of str
        Its peptide.
    charge : int
    n_peaks : int
        Most intense peaks the model reads.
    tolerance : float
        Fragment m/z tolerance (Da).
    """
    kept_mz, kept_intensity, count = top_peaks([mz], [intensity], n_peaks)
    kept_mz = kept_mz[0, : count[0]].astype(np.float64)
    kept_intensity = kept_intensity[0, : count[0]].astype(np.float64)
    order = np.argsort(kept_mz, kind="stable")
    kept_mz, kept_intensity = kept_mz[order], kept_intensity[order]
    annotation = annotate_spectrum(kept_mz, kept_intensity, tokens, charge, tolerance)
    by = annotation.category == CATEGORY_INDEX["by"]
    total = float(kept_intensity.sum())
    share = float(kept_intensity[by].sum()) / total if total > 0 else 0.0
    return len(mz), int(by.sum()), share


def by_charge(rows: list[tuple[int, int, int, float]]) -> dict[str, dict[str, float]]:
    """Per-charge summary of ``(charge, peaks, b/y peaks, b/y share)`` rows."""
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    summary = {}
    for charge in np.unique(table[:, 0]).astype(int):
        part = table[table[:, 0] == charge]
        summary[str(charge)] = {
            "spectra": int(len(part)),
            "share": float(len(part) / len(table)),
            "median_peaks": float(np.median(part[:, 1])),
            "median_by_peaks_top": float(np.median(part[:, 2])),
            "median_by_intensity_top": float(np.median(part[:, 3])),
        }
    return summary


def dataset_rows(
    data: SpectrumDataset,
    peaks: tuple[np.ndarray, np.ndarray, np.ndarray],
    vocabulary: Vocabulary,
    n_peaks: int,
    tolerance: float,
    total_peaks: np.ndarray | None = None,
) -> list[tuple[int, int, int, float]]:
    """One ``(charge, peaks, b/y peaks, b/y share)`` row per spectrum of a data set
    (``total_peaks``: the peak counts to report instead of those of ``peaks``)."""
    mz, intensity, counts = peaks
    if int(np.max(counts if total_peaks is None else total_peaks, initial=0)) >= READ_WIDTH:
        log.warning("spectra with %d peaks or more: their counts are cut there", READ_WIDTH)
    rows = []
    for index in range(len(data)):
        count = int(counts[index])
        charge = int(data.charge[index])
        total, by, share = spectrum_row(
            mz[index, :count].astype(np.float64),
            intensity[index, :count].astype(np.float64),
            vocabulary.decode(data.tokens[index]),
            charge,
            n_peaks,
            tolerance,
        )
        rows.append((charge, total if total_peaks is None else int(total_peaks[index]), by, share))
    return rows


def markdown(results: dict[str, dict[str, dict[str, float]]], n_peaks: int) -> str:
    """The per-charge table of both sets."""
    lines = [
        f"| spectra | charge | n | share | median peaks | b/y peaks among the top {n_peaks} "
        f"| b/y share of the top {n_peaks}'s intensity |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, summary in results.items():
        for charge, row in summary.items():
            lines.append(
                f"| {name} | {charge} | {row['spectra']} | {row['share']:.2f} | "
                f"{row['median_peaks']:g} | {row['median_by_peaks_top']:g} | "
                f"{row['median_by_intensity_top']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=Path, required=True, help="a synthetic split")
    parser.add_argument("--noise-model", type=Path, required=True)
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--real", type=Path, nargs="+", required=True)
    parser.add_argument("--n-synthetic", type=int, default=1000)
    parser.add_argument("--n-peaks", type=int, default=100)
    parser.add_argument("--out", type=Path, help="also write the summary as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    tolerance = load_instrument(args.instrument).fragment_tolerance_da
    vocabulary = Vocabulary()
    sizes = {
        "vocabulary": vocabulary,
        "max_length": MAX_LENGTH,
        "n_peaks": READ_WIDTH,
        "max_charge": MAX_CHARGE,
    }
    noise = FittedNoise(NoiseModelParameters.read(args.noise_model), vocabulary)
    # As in training: clean peaks cut to n_peaks, noise drawn onto them, top n_peaks kept.
    synthetic = SpectrumDataset.from_shards(
        args.shards, limit=args.n_synthetic, **{**sizes, "n_peaks": args.n_peaks}
    )
    wide = SpectrumDataset.from_shards(args.shards, limit=args.n_synthetic, **sizes)
    wide_counts = noisy_copy(wide, noise)[2]
    tables = [
        pl.read_parquet(path).select("precursor_mz", "charge", "mz", "intensity", "peptide")
        for path in args.real
    ]
    real = SpectrumDataset.from_table(pl.concat(tables), **sizes)
    results = {
        "synthetic + noise": by_charge(dataset_rows(
            synthetic, noisy_copy(synthetic, noise), vocabulary, args.n_peaks, tolerance,
            wide_counts)),
        "real": by_charge(dataset_rows(
            real, (real.mz, real.intensity, real.n_peaks), vocabulary, args.n_peaks, tolerance)),
    }  # fmt: skip
    sys.stdout.write(markdown(results, args.n_peaks) + "\n")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
