"""How the final choice among a decoder's candidates is made, compared on the same candidates.

One model file's decoder (``--decoder``, default hybrid) sequences every set once, with
MS2PIP's predicted fragment intensities (:func:`trm.denovo.rescore.intensity_features`);
then each way of choosing is fitted on the calibration spectra, as ``trm calibrate`` fits
it (``--validation-dir`` under ``--noise-model`` at full strength, the first
``--calibration-spectra``; or a lab's identified spectra, ``--calibration-labels``), and
scored on every set by peptide recall (the chosen answer
is the true peptide; the metrics core's rule) next to how often the true peptide is among
the candidates at all:

``probability``
    The most probable candidate by a rescorer over the decoder's features, without the
    intensity features (what ``trm calibrate`` fits by default).
``probability+intensity``
    The same with the intensity features.
``choice``
    A conditional logit over :data:`trm.denovo.rescore.CHOICE_FEATURES` (spectrum match,
    graph score, predicted intensities; what ``trm calibrate --predicted-intensities``
    fits).
``choice+model``
    The same plus the model's scores (log-likelihood, its gap to the spectrum's best, the
    halting probability).
``choice-intensity``
    The choice without the intensity features.

The candidates are the same for every way (one sequencing), so the differences are the
choice's alone. On MS2PIP-made spectra (the held-out proteome's) the intensity features
compare MS2PIP with itself under the noise model's intensity scatter, which flatters them;
the real dev spectra are the fair test.

Usage::

    python benchmarks/rescoring_choice.py --model resources/models/orbitrap_hcd/model.pt \\
        --instrument config/instruments/orbitrap_hcd.yaml \\
        --validation-dir results/synthetic/orbitrap_hcd/validation \\
        --noise-model resources/noise/orbitrap_hcd.yaml --heldout-shards heldout/test \\
        --dev-split dev-split --out benchmarks/results/rescoring_choice.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch

from trm.denovo.calibrate import candidates_correct
from trm.denovo.model_file import load_sequencer
from trm.denovo.rescore import (
    CHOICE_FEATURES,
    DECODER_FEATURES,
    INTENSITY_FEATURES,
    Choice,
    Rescorer,
)
from trm.graph import IonProbabilities
from trm.instrument import load_instrument
from trm.noise_model import NoiseModelParameters
from trm.train.data import SpectrumDataset, dataset_sizes
from trm.train.noise import FittedNoise

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_model import noisy_copy  # noqa: E402

log = logging.getLogger("rescoring_choice")

MODEL_SCORES = ("model_log_probability", "model_gap", "halt_probability")
#: The model's teacher-forced scores (``--teacher-forcing``).
FORCED_SCORES = ("forced_log_probability", "forced_gap", "forced_halt_probability")


def _read_tables(paths: list[Path]) -> pl.DataFrame:
    """The labelled-spectra columns of several tables, stacked."""
    columns = ("precursor_mz", "charge", "mz", "intensity", "peptide")
    return pl.concat([pl.read_parquet(path).select(*columns) for path in paths])


#: How a chosen answer differs from a true peptide that was among the candidates.
MISS_KINDS = (
    "all",
    "same residues, other order",
    "other length",
    "same length, other residues",
    "differ in the first two residues only",
    "differ in the last two residues only",
)


def missed_kinds(
    pools: list, chosen: np.ndarray, correct: np.ndarray, vocabulary
) -> dict[str, int]:
    """Count the spectra whose true peptide is a candidate but not the chosen one, by
    :data:`MISS_KINDS` (the two last kinds: the readings agree but for their first, or
    last, two residues)."""
    counts = dict.fromkeys(MISS_KINDS, 0)
    for row, pool in enumerate(pools):
        if not correct[row].any() or correct[row, chosen[row]]:
            continue
        true = int(np.argmax(correct[row]))
        a, b = (
            ["L" if t == "I" else t for t in vocabulary.decode(pool[i].token_ids)]
            for i in (int(chosen[row]), true)
        )
        counts["all"] += 1
        if len(a) != len(b):
            counts["other length"] += 1
        elif sorted(a) == sorted(b):
            counts["same residues, other order"] += 1
        else:
            counts["same length, other residues"] += 1
        shorter = min(len(a), len(b))
        pairs = list(zip(a, b, strict=False))
        prefix = next((i for i, (x, y) in enumerate(pairs) if x != y), shorter)
        backwards = list(zip(a[::-1], b[::-1], strict=False))
        suffix = next((i for i, (x, y) in enumerate(backwards) if x != y), shorter)
        if prefix < 2 and len(a) - suffix <= 2 and len(b) - suffix <= 2:
            counts["differ in the first two residues only"] += 1
        elif suffix < 2 and prefix >= len(a) - 2 and prefix >= len(b) - 2:
            counts["differ in the last two residues only"] += 1
    return counts


def ways(
    decoder: str, teacher_forcing: bool = False
) -> dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """Way -> (the rescorer's features, the choice's features or None); with teacher
    forcing, also the ways that read the model's teacher-forced scores."""
    base = DECODER_FEATURES[decoder]
    with_intensity = (*base, *INTENSITY_FEATURES)
    without = tuple(n for n in CHOICE_FEATURES if n not in INTENSITY_FEATURES)
    out = {
        "probability": (base, None),
        "probability+intensity": (with_intensity, None),
        "choice": (with_intensity, CHOICE_FEATURES),
        "choice+model": (with_intensity, (*CHOICE_FEATURES, *MODEL_SCORES)),
        "choice-intensity": (base, without),
    }
    if teacher_forcing:
        forced = DECODER_FEATURES["hybrid+forced"]
        out.update(
            {
                "probability+forced": (forced, None),
                "choice+forced": (forced, (*without, *FORCED_SCORES)),
                "choice+forced+intensity": (forced, (*CHOICE_FEATURES, *FORCED_SCORES)),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--decoder", default="hybrid", choices=["graph", "hybrid"])
    parser.add_argument("--validation-dir", type=Path)
    parser.add_argument(
        "--calibration-labels",
        type=Path,
        nargs="+",
        help="labelled real spectra to fit on instead of --validation-dir (tables with "
        "precursor_mz, charge, mz, intensity, peptide, e.g. the dev split's *.fit.parquet), "
        "as `calibrate: spectra: labelled` fits on a lab's identified runs",
    )
    parser.add_argument("--noise-model", type=Path, required=True)
    parser.add_argument("--calibration-spectra", type=int, default=1000)
    parser.add_argument("--heldout-shards", type=Path)
    parser.add_argument("--n-synthetic", type=int, default=500)
    parser.add_argument("--dev-split", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--teacher-forcing",
        action="store_true",
        help="hybrid: the model also scores the candidates by teacher forcing (its "
        "forced_candidates best by graph score), and the ways that read those scores join",
    )
    parser.add_argument("--out", type=Path, required=True, help="markdown table (and .json)")
    args = parser.parse_args()
    if args.teacher_forcing and args.decoder != "hybrid":
        parser.error("--teacher-forcing needs --decoder hybrid (only it scores by teacher forcing)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    noise_parameters = NoiseModelParameters.read(args.noise_model)
    sequencer, _ = load_sequencer(
        args.model,
        load_instrument(args.instrument),
        {"decoder": args.decoder, "raw_score": "peptide", "teacher_forcing": args.teacher_forcing},
        afresh=True,
        ion_probabilities=IonProbabilities.from_noise_model(noise_parameters),
        workers=args.threads,
        predict_intensities=True,
    )
    vocabulary = sequencer.vocabulary
    sizes = dataset_sizes(sequencer.model.config, vocabulary)
    noise = FittedNoise(noise_parameters, vocabulary)
    sets: dict[str, tuple[SpectrumDataset, tuple[np.ndarray, ...]]] = {}
    if args.calibration_labels is not None:
        data = SpectrumDataset.from_table(_read_tables(args.calibration_labels), **sizes)
        sets["calibration"] = (data, (data.mz, data.intensity, data.n_peaks))
    elif args.validation_dir is not None:
        data = SpectrumDataset.from_shards(
            args.validation_dir, limit=args.calibration_spectra, **sizes
        )
        sets["calibration"] = (data, noisy_copy(data, noise))
    else:
        raise SystemExit("give --validation-dir or --calibration-labels")
    if args.heldout_shards is not None:
        data = SpectrumDataset.from_shards(args.heldout_shards, limit=args.n_synthetic, **sizes)
        sets["heldout_clean"] = (data, (data.mz, data.intensity, data.n_peaks))
        sets["heldout_noisy"] = (data, noisy_copy(data, noise))
    if args.dev_split is not None:
        for part in ("holdout", "all"):
            table = _read_tables(sorted(args.dev_split.glob(f"*.{part}.parquet")))
            data = SpectrumDataset.from_table(table, **sizes)
            sets[f"dev_{part}"] = (data, (data.mz, data.intensity, data.n_peaks))
    sequenced = {}
    pools = {}
    for name, (data, (mz, intensity, counts)) in sets.items():
        predictions = sequencer.predict(mz, intensity, counts, data.precursor_mass, data.charge)
        correct = candidates_correct(predictions, data.tokens, vocabulary) & predictions.present
        sequenced[name] = (predictions.features, predictions.present, correct)
        pools[name] = predictions.candidates
    features, present, correct = sequenced["calibration"]
    results: dict[str, dict[str, float]] = {}
    misses: dict[str, dict[str, int]] = {}
    for way, (names, choice_names) in ways(args.decoder, args.teacher_forcing).items():
        rescorer = Rescorer.fit(features[present], correct[present], names)
        if choice_names is not None:
            choice = Choice.fit(features, present, correct, choice_names)
            rescorer = dataclasses.replace(rescorer, choice=choice)
        results[way] = {}
        for name, (f, p, c) in sequenced.items():
            chosen = rescorer.choose(f, p)
            results[way][name] = float(c[np.arange(len(chosen)), chosen].mean())
            if way == "probability":
                misses[name] = missed_kinds(pools[name], chosen, c, vocabulary)
    ceiling = {name: float(c.any(axis=1).mean()) for name, (_, _, c) in sequenced.items()}
    counts = {name: len(c) for name, (_, _, c) in sequenced.items()}
    lines = [
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Model {args.model.name}, {args.decoder} decoder; every way fitted on the "
        f"{counts['calibration']} calibration spectra (the 'calibration' column is "
        "in-sample). Peptide recall of the chosen answer; last row: the true peptide among "
        "the candidates.",
        "",
        "| way | " + " | ".join(f"{n} ({counts[n]})" for n in sequenced) + " |",
        "|---|" + "---|" * len(sequenced),
    ]
    for way, row in results.items():
        lines.append(f"| {way} | " + " | ".join(f"{row[n]:.3f}" for n in sequenced) + " |")
    lines.append("| *candidates* | " + " | ".join(f"{ceiling[n]:.3f}" for n in sequenced) + " |")
    lines += [
        "",
        "Spectra whose true peptide is among the candidates but not chosen (way "
        "'probability'), by how the chosen answer differs from it (I = L) and where:",
        "",
        "| kind | " + " | ".join(sequenced) + " |",
        "|---|" + "---|" * len(sequenced),
    ]
    for kind in MISS_KINDS:
        lines.append(f"| {kind} | " + " | ".join(str(misses[n][kind]) for n in sequenced) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"results": results, "candidates": ceiling, "n": counts, "missed": misses}, indent=2
        )
    )
    log.info("wrote %s:\n%s", args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
