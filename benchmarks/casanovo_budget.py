"""Casanovo trained from random weights at the recursive model's training compute.

The question a lab asks of the offline baseline: given the same CPU seconds of training
as the recursive model, on the same synthetic spectra, how well does Casanovo sequence?
For each size (``DIM:LAYERS``: embedding width, encoder and decoder layers each; heads
``DIM / 16``, capped at 8; feed-forward ``4 * DIM``):

1. a probe measures Casanovo's CPU seconds per training spectrum as the difference of two
   short trainings (so Casanovo's start-up, about 40 s, and its validation do not count);
2. Casanovo trains on ``budget / cost`` spectra, one thread, one validation at the end;
3. it sequences the spectra ``benchmarks/ablations.py`` evaluates the recursive model on:
   a held-out proteome, clean and under the fitted noise at full strength (the same
   draw), and the real dev spectra. Answers whose peptide does not fit the precursor
   (instrument tolerance and isotope errors) do not count as answers, as for the
   recursive model's exact search (:func:`trm.compare.comparison.mark_precursor_mismatches`).
   Casanovo's ``min_peaks`` is 1 in training and here (its default, 20, would drop most
   synthetic spectra, which carry 24 peaks at the median).

Casanovo trains on the synthetic spectra as they are (it has no noise curriculum); the
recursive model trains on them under the fitted noise model.

Metrics from the one metrics core (:func:`trm.compare.comparison.label_metrics`): AA precision over
answered residues, peptide recall over all spectra.

    python benchmarks/casanovo_budget.py --shards SYNTH --heldout-shards HELDOUT/test \\
        --noise-model resources/noise/orbitrap_hcd.yaml \\
        --instrument config/instruments/orbitrap_hcd.yaml --dev-split dev-split \\
        --budget-cpu-s 540 --sizes 64:1 128:2 --out OUT

A rerun reuses finished probes, trainings and evaluations (``OUT/<size>/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl

from trm.casanovo.config import Architecture, instrument_overrides
from trm.casanovo.pipeline import TRAINING_PREPROCESSING, sequence_spectra, train_baseline
from trm.chem import Vocabulary, parse_peptidoform
from trm.compare.comparison import collapse, label_metrics, mark_precursor_mismatches
from trm.instrument import load_instrument
from trm.metrics import match_peptides
from trm.noise_model import NoiseModelParameters
from trm.train.data import SpectrumDataset
from trm.train.noise import FittedNoise

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablations import add_data_arguments, write_text  # noqa: E402
from evaluate_model import noisy_copy  # noqa: E402

log = logging.getLogger("casanovo_budget")

#: Training spectra of the two probes (batch 32): far enough apart that the difference is
#: not lost in the variation of Casanovo's start-up.
PROBES = (2048, 16384)
#: Peaks per evaluation spectrum (the recursive model's default size reads 100).
N_PEAKS = 100


def architecture(size: str) -> Architecture:
    dim, layers = (int(part) for part in size.split(":"))
    return Architecture(
        dim_model=dim, n_head=min(max(dim // 16, 1), 8), dim_feedforward=4 * dim, n_layers=layers
    )


def evaluation_sets(args: argparse.Namespace) -> dict[str, pl.DataFrame]:
    """The labelled spectrum tables Casanovo sequences: held-out clean and noisy, dev."""
    vocabulary = Vocabulary()
    shards = sorted(args.heldout_shards.glob("*.parquet"))
    clean = pl.concat([pl.read_parquet(s) for s in shards]).head(args.n_synthetic)
    data = SpectrumDataset.from_table(
        clean, vocabulary=vocabulary, max_length=32, n_peaks=N_PEAKS, max_charge=10
    )
    if len(data) != clean.height:
        raise ValueError(f"{args.heldout_shards}: {clean.height - len(data)} spectra unusable")
    noise = FittedNoise(NoiseModelParameters.read(args.noise_model), vocabulary)
    mz, intensity, counts = noisy_copy(data, noise)
    peaks = []
    for row_mz, row_intensity, n in zip(mz, intensity, counts, strict=True):
        order = np.argsort(row_mz[:n], kind="stable")
        peaks.append((row_mz[:n][order].tolist(), row_intensity[:n][order].tolist()))
    noisy = clean.with_columns(
        pl.Series("mz", [p[0] for p in peaks], dtype=pl.List(pl.Float32)),
        pl.Series("intensity", [p[1] for p in peaks], dtype=pl.List(pl.Float32)),
    )
    dev = pl.concat(
        [pl.read_parquet(p) for p in sorted(args.dev_split.glob("*.holdout.parquet"))],
        how="diagonal_relaxed",
    )
    return {"heldout_clean": clean, "heldout_noisy": noisy, "dev": dev}


def score(results: pl.DataFrame, table: pl.DataFrame, instrument) -> dict:
    """AA precision and peptide recall of Casanovo's precursor-fitting answers."""
    # What it answered, fitting or not: a collapsed model repeats one peptide.
    _, top_share = collapse(
        results.filter(pl.col("status") == "sequenced")["casanovo_sequence"].to_list()
    )
    results = mark_precursor_mismatches(
        results, instrument.precursor_tolerance_ppm, instrument.isotope_errors
    )
    labelled = table.select("run", "spectrum_id", pl.col("peptide").alias("label_peptide")).join(
        results.filter(pl.col("status") == "sequenced")
        .unique(["run", "spectrum_id"], keep="first")
        .select(
            "run", "spectrum_id",
            pl.col("peptide").alias("casanovo_peptide"), pl.col("score").alias("casanovo_score"),
        ),
        on=["run", "spectrum_id"],
        how="left",
    )  # fmt: skip
    correct = []
    for answer, expected in zip(labelled["casanovo_peptide"], labelled["label_peptide"],
                                strict=True):  # fmt: skip
        if answer is None:
            correct.append(None)
            continue
        tokens, truth = parse_peptidoform(answer)[0], parse_peptidoform(expected)[0]
        correct.append(match_peptides(tokens, truth)[1])
    labelled = labelled.with_columns(pl.Series("casanovo_correct", correct, dtype=pl.Boolean))
    metrics, _ = label_metrics(labelled, "casanovo")
    return {
        "n_spectra": labelled.height,
        "coverage": float(labelled["casanovo_peptide"].is_not_null().mean()),
        "n_precursor_mismatch": int((results["status"] == "precursor_mismatch").sum()),
        "top_answer_share": top_share,
        "collapsed": collapse(
            labelled["casanovo_peptide"].drop_nulls().to_list(),
            int((results["status"] == "precursor_mismatch").sum()),
        )[0],
        **{key: metrics[key] for key in ("aa_precision", "peptide_recall", "pc_auc")},
    }


def run_size(size: str, args: argparse.Namespace, sets: dict[str, pl.DataFrame]) -> dict:
    folder = args.out / size.replace(":", "x")
    result_path = folder / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text(encoding="utf-8"))
    instrument = load_instrument(args.instrument)
    overrides = [instrument_overrides(instrument.to_dict())]
    train = sorted((args.shards / "train").glob("*.parquet"))
    validation = sorted((args.shards / "validation").glob("*.parquet"))

    def training(n_spectra: int, name: str) -> dict:
        summary_path = folder / f"{name}.json"
        if summary_path.exists():
            return json.loads(summary_path.read_text(encoding="utf-8"))
        work = folder / f"{name}.work"
        outcome = train_baseline(
            train, validation, folder / f"{name}.ckpt", work, architecture(size),
            max_spectra=n_spectra, batch_size=32, n_validations=1, max_validation_spectra=256,
            config_overrides=overrides, threads=1,
        )  # fmt: skip
        write_text(summary_path, json.dumps(outcome.summary, indent=2))
        shutil.rmtree(work, ignore_errors=True)
        return outcome.summary

    low, high = args.probe_spectra
    first, second = (training(n, f"probe{n}") for n in (low, high))
    cost = (second["cpu_seconds"] - first["cpu_seconds"]) / (high - low)
    if cost <= 0:
        raise RuntimeError(
            f"{size}: {high} training spectra cost no more CPU than {low} "
            f"({second['cpu_seconds']} vs {first['cpu_seconds']} s): widen --probe-spectra"
        )
    n_spectra = max(int(args.budget_cpu_s / cost), low)
    log.info("%s: %.4f CPU s per training spectrum -> %d spectra", size, cost, n_spectra)
    summary = training(n_spectra, "baseline")
    row = {
        "size": size,
        "cpu_s_per_training_spectrum": round(cost, 5),
        "spectra_seen": summary["spectra_seen"],
        "optimizer_steps": summary["optimizer_steps"],
        # What the training spectra cost, start-up and validation left out (as the probe).
        "train_cpu_s": round(cost * summary["spectra_seen"], 1),
        "run_cpu_s": summary["cpu_seconds"],
    }
    for name, table in sets.items():
        # Every spectrum gets an answer, as from the recursive model: Casanovo's default
        # min_peaks (20) would refuse most clean synthetic spectra (24 peaks at the median).
        outcome = sequence_spectra(
            table, folder / "baseline.ckpt", folder / f"{name}.work",
            config_overrides=[*overrides, TRAINING_PREPROCESSING], threads=1,
        )  # fmt: skip
        shutil.rmtree(folder / f"{name}.work", ignore_errors=True)
        row[name] = score(outcome.results, table, instrument)
        log.info("%s %s: %s", size, name, row[name])
    write_text(result_path, json.dumps(row, indent=2))
    return row


def markdown(rows: list[dict], budget: float) -> str:
    lines = [
        f"Casanovo from random weights, {budget:.0f} training CPU seconds per size (one "
        "thread); precursor-fitting answers only, full coverage.",
        "",
        "| size (dim:layers) | CPU s per spectrum | spectra seen | held-out clean: AA prec. / "
        "pep. recall | held-out noisy: AA prec. / pep. recall | real dev: AA prec. / pep. "
        "recall | answers not fitting the precursor (clean / noisy / dev) | most frequent "
        "answer's share (clean / noisy / dev) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{row[s]['aa_precision']:.3f} / {row[s]['peptide_recall']:.3f}"
            for s in ("heldout_clean", "heldout_noisy", "dev")
        ]
        mismatches = " / ".join(
            str(row[s]["n_precursor_mismatch"]) for s in ("heldout_clean", "heldout_noisy", "dev")
        )
        shares = " / ".join(
            "-" if row[s].get("top_answer_share") is None else f"{row[s]['top_answer_share']:.2f}"
            for s in ("heldout_clean", "heldout_noisy", "dev")
        )
        lines.append(
            f"| {row['size']} | {row['cpu_s_per_training_spectrum']:.4f} "
            f"| {row['spectra_seen']:,} | {' | '.join(cells)} | {mismatches} | {shares} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--budget-cpu-s", type=float, default=540.0)
    parser.add_argument("--sizes", nargs="+", default=["64:1", "128:2"])
    parser.add_argument("--n-synthetic", type=int, default=300)
    parser.add_argument(
        "--probe-spectra", type=int, nargs=2, default=PROBES, metavar=("LOW", "HIGH")
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    sets = evaluation_sets(args)
    rows = [run_size(size, args, sets) for size in args.sizes]
    text = markdown(rows, args.budget_cpu_s)
    write_text(args.out / "casanovo_budget.md", text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
