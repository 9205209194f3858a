"""Which candidate each score puts first, among those the model scores by teacher forcing.

The hybrid decoder with ``teacher_forcing`` (``trm calibrate --teacher-forcing``) lets the
model score each spectrum's ``forced_candidates`` best candidates by graph score, each as
the draft of one refinement step (:meth:`trm.model.PeptideTRM.score_answers`). This
benchmark asks, per model and set, on the spectra whose true peptide is among at least two
scored candidates: how often is the true one first by

``forced LL``
    the model's teacher-forced log-likelihood alone;
``forced halt``
    the halting head's probability under teacher forcing;
``graph``
    the spectrum graph's score (the evidence alone, the same for every model up to the
    pool: the model's own search candidates join it);
``graph + forced LL``
    their sum (what ``trm pretrain --rank-graph-score`` trains the model's score to
    complete).

No rescorer is fitted: these are the raw scores a rescorer would weigh, so the table
shows what the model's scores carry on synthetic and on real spectra, before any
calibration draw. Sets: the held-out proteome's synthetic spectra, clean and under the
noise model (the fixed draw of ``benchmarks/evaluate_model.py``), and the real dev spectra
(holdout and fit halves, each on its own).

Usage::

    python benchmarks/forced_ranking.py --model shipped=resources/models/orbitrap_hcd/model.pt \\
        --model ranked=RUN/checkpoint.pt --instrument config/instruments/orbitrap_hcd.yaml \\
        --noise-model resources/noise/orbitrap_hcd.yaml --heldout-shards heldout/test \\
        --dev-split dev-split --out forced_ranking.md
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from trm.denovo.calibrate import candidates_correct
from trm.denovo.model_file import load_sequencer
from trm.denovo.rescore import UNSCORABLE_LOG_PROBABILITY
from trm.graph import IonProbabilities
from trm.instrument import load_instrument
from trm.noise_model import NoiseModelParameters
from trm.train.data import SpectrumDataset, dataset_sizes
from trm.train.noise import FittedNoise

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_model import noisy_copy  # noqa: E402
from rescoring_choice import _read_tables  # noqa: E402

log = logging.getLogger("forced_ranking")

#: Score name -> the candidate's value under it.
SCORES = {
    "forced LL": lambda c: c.forced_log_probability,
    "forced halt": lambda c: c.forced_halt_probability,
    "graph": lambda c: c.graph_score,
    "graph + forced LL": lambda c: c.graph_score + c.forced_log_probability,
}


def first_by_score(pools: list, correct: np.ndarray) -> dict[str, int]:
    """On the spectra whose true peptide is among two or more scored candidates: their
    number (``n``), how often each of :data:`SCORES` puts the true one first, and how
    often the graph score ties the true one with the best-scoring wrong one (``graph
    ties``: the evidence cannot tell them apart, the pool's order decides)."""
    counts = {"n": 0, **dict.fromkeys(SCORES, 0), "graph ties": 0}
    for row, pool in enumerate(pools):
        scored = [
            i
            for i, c in enumerate(pool)
            if c.forced_log_probability > UNSCORABLE_LOG_PROBABILITY and i < correct.shape[1]
        ]
        if len(scored) < 2 or not correct[row, scored].any():
            continue
        counts["n"] += 1
        true = next(i for i in scored if correct[row, i])
        others = [pool[i].graph_score for i in scored if not correct[row, i]]
        counts["graph ties"] += int(bool(others) and max(others) == pool[true].graph_score)
        for name, value in SCORES.items():
            best = max(scored, key=lambda i: value(pool[i]))
            counts[name] += int(correct[row, best])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", action="append", required=True, metavar="NAME=PATH", help="repeatable"
    )
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--noise-model", type=Path, required=True)
    parser.add_argument("--heldout-shards", type=Path)
    parser.add_argument("--n-synthetic", type=int, default=500)
    parser.add_argument("--dev-split", type=Path)
    parser.add_argument("--forced-candidates", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True, help="markdown table (and .json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    noise_parameters = NoiseModelParameters.read(args.noise_model)
    instrument = load_instrument(args.instrument)
    results: dict[str, dict[str, dict[str, int]]] = {}
    for entry in args.model:
        name, _, path = entry.partition("=")
        sequencer, _ = load_sequencer(
            path,
            instrument,
            {
                "decoder": "hybrid",
                "raw_score": "peptide",
                "teacher_forcing": True,
                "forced_candidates": args.forced_candidates,
            },
            afresh=True,
            ion_probabilities=IonProbabilities.from_noise_model(noise_parameters),
        )
        vocabulary = sequencer.vocabulary
        sizes = dataset_sizes(sequencer.model.config, vocabulary)
        sets: dict[str, tuple[SpectrumDataset, tuple[np.ndarray, ...]]] = {}
        if args.heldout_shards is not None:
            data = SpectrumDataset.from_shards(args.heldout_shards, limit=args.n_synthetic, **sizes)
            sets["heldout_clean"] = (data, (data.mz, data.intensity, data.n_peaks))
            sets["heldout_noisy"] = (data, noisy_copy(data, FittedNoise(noise_parameters,
                                                                        vocabulary)))  # fmt: skip
        if args.dev_split is not None:
            for part in ("holdout", "fit"):
                table = _read_tables(sorted(args.dev_split.glob(f"*.{part}.parquet")))
                data = SpectrumDataset.from_table(table, **sizes)
                sets[f"dev_{part}"] = (data, (data.mz, data.intensity, data.n_peaks))
        results[name] = {}
        for set_name, (data, (mz, intensity, counts)) in sets.items():
            predictions = sequencer.predict(mz, intensity, counts, data.precursor_mass, data.charge)
            correct = candidates_correct(predictions, data.tokens, vocabulary)
            results[name][set_name] = first_by_score(predictions.candidates, correct)
    set_names = list(next(iter(results.values())))
    lines = [
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Hybrid decoder, teacher forcing of each spectrum's {args.forced_candidates} best "
        "candidates by graph score. Cells: spectra whose true peptide is first by the score, "
        "of those (n) whose true peptide is among two or more scored candidates; graph ties: "
        "of those, the spectra whose true peptide has exactly the graph score of the best "
        "wrong one (where the pool's order, not the evidence, decides the graph column).",
        "",
        "| model | set | n | " + " | ".join(SCORES) + " | graph ties |",
        "|---|---|---|" + "---|" * (len(SCORES) + 1),
    ]
    for name, by_set in results.items():
        for set_name in set_names:
            row = by_set[set_name]
            cells = " | ".join(f"{row[s]} ({row[s] / max(row['n'], 1):.2f})" for s in SCORES)
            lines.append(f"| {name} | {set_name} | {row['n']} | {cells} | {row['graph ties']} |")
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    log.info("wrote %s:\n%s", args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
