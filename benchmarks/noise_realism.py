"""How real do synthetic spectra look? Real spectra against synthetic ones of the same
peptides: clean, under the hand-set noise ramp, and under a fitted noise model.

For every real labelled spectrum of ``--labels`` (e.g. the *holdout* half of
``benchmarks/dev_data.py``, which the shipped noise model never saw), the instrument's
MS2PIP model predicts the spectrum of the same peptide and charge; that spectrum is taken
clean, under the ramp and under ``--noise-model``, all at full strength (fixed seeds).
Per spectrum, at the instrument's fragment tolerance (b/y ions at charges 1..min(z-1, 2)):

``peaks``
    Number of peaks.
``explained_peaks``, ``explained_intensity``
    Share of the peaks, and of the intensity, that b/y ions explain.
``matched_fragments``
    Share of the theoretical b/y ions found among the peaks.
``rank_correlation``
    Spearman correlation of the b/y ions' intensities with MS2PIP's prediction (ions not
    found count as 0): 1 for a clean synthetic spectrum, lower for a real one.

The table gives each statistic's median per variant and its distance to real: the
Kolmogorov-Smirnov statistic between the variant's and the real spectra's distributions
(0: identical; 1: disjoint).

Usage::

    python benchmarks/noise_realism.py --labels dev-split/*.holdout.parquet \\
        --instrument config/instruments/orbitrap_hcd.yaml \\
        --noise-model resources/noise/orbitrap_hcd.yaml --out realism.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import polars as pl
import torch

from trm.chem import UnsupportedPeptideError, Vocabulary, parse_peptidoform
from trm.instrument import load_instrument
from trm.noise_model import NoiseModelParameters
from trm.synth.annotate import annotate_spectrum
from trm.synth.ms2pip_models import Ms2pipPredictor
from trm.synth.spectra import Peptidoform, predict_spectra
from trm.train.data import SpectrumDataset
from trm.train.noise import FittedNoise, RampNoise

log = logging.getLogger("noise_realism")

STATISTICS = (
    "peaks",
    "explained_peaks",
    "explained_intensity",
    "matched_fragments",
    "rank_correlation",
)
#: Peaks kept per noisy spectrum: more than any real spectrum here holds.
WIDTH = 600


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    rank_a = np.argsort(np.argsort(a)).astype(float)
    rank_b = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def statistics(
    mz: np.ndarray,
    intensity: np.ndarray,
    tokens: list[str],
    charge: int,
    predicted: dict[tuple[int, int], float],
    tolerance: float,
) -> dict[str, float]:
    """The statistics of one spectrum (see the module description)."""
    order = np.argsort(mz)
    mz, intensity = mz[order], intensity[order]
    annotation = annotate_spectrum(mz, intensity, tokens, charge, tolerance)
    by = annotation.category == 0
    fragments = annotation.fragments
    single = fragments.charge == 1
    observed = np.where(
        annotation.fragment_peak[single] >= 0, intensity[annotation.fragment_peak[single]], 0.0
    )
    prediction = np.array(
        [
            predicted.get((int(s), int(n)), 0.0)
            for s, n in zip(fragments.series[single], fragments.number[single], strict=True)
        ]
    )
    return {
        "peaks": float(len(mz)),
        "explained_peaks": float(by.mean()) if len(mz) else 0.0,
        "explained_intensity": float(intensity[by].sum() / max(intensity.sum(), 1e-12)),
        "matched_fragments": float((annotation.fragment_peak >= 0).mean()),
        "rank_correlation": _spearman(observed, prediction),
    }


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.sort(a[np.isfinite(a)]), np.sort(b[np.isfinite(b)])
    if not len(a) or not len(b):
        return float("nan")
    grid = np.concatenate([a, b])
    return float(
        np.max(
            np.abs(
                np.searchsorted(a, grid, side="right") / len(a)
                - np.searchsorted(b, grid, side="right") / len(b)
            )
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, nargs="+", required=True)
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--noise-model", type=Path, required=True)
    parser.add_argument("--ms2pip-model-dir", default="resources/ms2pip")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    instrument = load_instrument(args.instrument)
    tolerance = instrument.fragment_tolerance_da
    vocabulary = Vocabulary()
    real = pl.concat([pl.read_parquet(p) for p in args.labels], how="diagonal_relaxed")
    real = real.filter(pl.col("charge").is_not_null() & (pl.col("mz").list.len() > 0))
    rows, tokens = [], []
    for row in real.iter_rows(named=True):
        peptide = parse_peptidoform(row["peptide"])[0]
        try:  # the synthetic spectra are read in the model vocabulary: keep what it holds
            vocabulary.encode(peptide, 63)
        except UnsupportedPeptideError:
            continue
        rows.append(row)
        tokens.append(peptide)
    predictor = Ms2pipPredictor(instrument.ms2pip_model, args.ms2pip_model_dir, 1)
    peptidoforms = [
        Peptidoform(tuple(t), int(r["charge"])) for t, r in zip(tokens, rows, strict=True)
    ]
    synthetic, _ = predict_spectra(
        peptidoforms, [str(i) for i in range(len(rows))], list(range(len(rows))), "s", predictor
    )
    keep = [int(i) for i in synthetic["spectrum_id"].to_list()]
    predicted = []
    for row in synthetic.iter_rows(named=True):
        predicted.append(
            {
                (1 if t == "b" else 2, int(n)): float(i)
                for t, n, z, i in zip(
                    row["ion_type"], row["ion_number"], row["ion_charge"], row["intensity"],
                    strict=True,
                )
                if z == 1
            }
        )  # fmt: skip
    dataset = SpectrumDataset.from_table(synthetic, vocabulary, 64, WIDTH, 10)
    if len(dataset) != len(keep):
        raise RuntimeError("synthetic spectra were dropped: the rows no longer align")
    batch = dataset.batch(np.arange(len(dataset)))
    variants = {"clean synthetic": batch}
    ones = torch.ones(len(dataset))
    variants["synthetic + ramp"] = RampNoise().apply(
        batch, ones, torch.Generator().manual_seed(args.seed)
    )
    fitted = FittedNoise(NoiseModelParameters.read(args.noise_model), vocabulary)
    variants["synthetic + fitted noise"] = fitted.apply(
        batch, ones, torch.Generator().manual_seed(args.seed)
    )
    table: dict[str, dict[str, np.ndarray]] = {}
    table["real"] = {
        name: np.array(
            [
                statistics(
                    np.asarray(rows[i]["mz"]), np.asarray(rows[i]["intensity"]), tokens[i],
                    int(rows[i]["charge"]), predicted[k], tolerance,
                )[name]
                for k, i in enumerate(keep)
            ]
        )
        for name in STATISTICS
    }  # fmt: skip
    for variant, noisy in variants.items():
        values = []
        for k, i in enumerate(keep):
            mask = noisy.peak_mask[k].numpy()
            values.append(
                statistics(
                    noisy.mz[k].numpy()[mask].astype(np.float64),
                    noisy.intensity[k].numpy()[mask].astype(np.float64),
                    tokens[i], int(rows[i]["charge"]), predicted[k], tolerance,
                )
            )  # fmt: skip
        table[variant] = {name: np.array([v[name] for v in values]) for name in STATISTICS}
    result = {"n_spectra": len(keep), "statistics": {}}
    header = "| statistic | " + " | ".join(table) + " |"
    lines = [header, "|" + "---|" * (len(table) + 1)]
    for name in STATISTICS:
        cells = []
        result["statistics"][name] = {}
        for variant, values in table.items():
            median = float(np.nanmedian(values[name]))
            distance = _ks(values[name], table["real"][name])
            result["statistics"][name][variant] = {"median": median, "ks_to_real": distance}
            cells.append(
                f"{median:.3g}" if variant == "real" else f"{median:.3g} (KS {distance:.2f})"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))  # noqa: T201 - the benchmark's report
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
