"""Accuracy and speed of the spectrum-graph decoder (:mod:`trm.graph.decoder`).

Data sets (each optional):

* ``--dev-split`` with ``--dev-part``: the real spectra split by ``benchmarks/dev_data.py``
  (develop on ``fit``, report ``holdout``); each file on its own and all together;
* ``--heldout-shards``: synthetic spectra of a proteome the model never trained on, clean
  and under ``--noise-model`` at full strength (the fixed draw of
  ``benchmarks/evaluate_model.py``).

Metrics (the one metrics core, :mod:`trm.metrics`): coverage, AA precision, peptide recall,
PC AUC with the graph's final score as confidence, the share of spectra whose true peptide
is among the decoder's candidates (``in_top_k``: the ceiling of any re-ranking), peptide
recall by true length and precursor charge, and spectra per second on one thread (CPU
time).

``--tolerance 0.5`` decodes with a fake ion-trap setting (0.5 Da fragment tolerance,
:meth:`trm.graph.decoder.GraphSettings.for_tolerance`) on the same spectra, to measure the
speed (and cost in accuracy) of the coarse graph. ``--measure-ranks`` prints the
intensity-rank likelihood ratio of primary ions (:data:`trm.graph.decoder.RANK_EDGES`) on
the chosen dev part, the numbers behind :data:`trm.graph.decoder.MEASURED_RANK_LOG_RATIO`.
``--measure-double`` counts doubly charged b/y ions of doubly charged precursors against
a decoy shift.

Usage::

    python benchmarks/graph_decoder.py --dev-split dev-split --dev-part holdout \\
        --heldout-shards heldout/test --noise-model resources/noise/orbitrap_hcd.yaml \\
        --instrument config/instruments/orbitrap_hcd.yaml --out result.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from trm.chem import Vocabulary
from trm.fragments import A_ION_LOSS, NEUTRAL_LOSSES, ion_mz, max_fragment_charge, nearest_peaks
from trm.graph.decoder import (
    KEY_OFFSET,
    RANK_EDGES,
    GraphDecoder,
    GraphResult,
    GraphSettings,
    IonProbabilities,
)
from trm.instrument import load_instrument
from trm.metrics import match_peptides, precision_coverage, sequencing_metrics
from trm.noise_model import NoiseModelParameters, bucket
from trm.train.data import SpectrumDataset
from trm.train.noise import FittedNoise

log = logging.getLogger("graph_decoder")

#: Peptide length groups (residues of the true peptide), as ``evaluate_model.py``.
LENGTH_BINS = (("<=8", 0, 8), ("9-11", 9, 11), ("12-15", 12, 15), ("16+", 16, 10_000))
#: Same draw of the fitted noise as ``benchmarks/evaluate_model.py``.
NOISE_SEED = 11
#: Peaks read per real spectrum (all of them: the decoder cuts its own).
READ_WIDTH = 1000
#: Peaks per synthetic spectrum (the noisy copy keeps this many, as in training).
SYNTHETIC_WIDTH = 150


def dev_sets(directory: Path, part: str, vocabulary: Vocabulary) -> dict[str, SpectrumDataset]:
    """Each dev file of one part, and all of them together."""
    tables = {}
    for path in sorted(directory.glob(f"*.{part}.parquet")):
        tables[path.name.split(".")[0]] = pl.read_parquet(path).select(
            "precursor_mz", "charge", "mz", "intensity", "peptide"
        )
    sizes = {"vocabulary": vocabulary, "max_length": 64, "n_peaks": READ_WIDTH, "max_charge": 10}
    sets = {
        f"dev {part} {name}": SpectrumDataset.from_table(t, **sizes) for name, t in tables.items()
    }
    if tables:
        sets[f"dev {part} (all)"] = SpectrumDataset.from_table(pl.concat(tables.values()), **sizes)
    return sets


def synthetic_sets(
    directory: Path, noise_model: Path | None, vocabulary: Vocabulary, limit: int
) -> dict[str, tuple[SpectrumDataset, tuple[np.ndarray, ...]]]:
    """The held-out proteome, clean and (with a noise model) noisy."""
    data = SpectrumDataset.from_shards(
        directory, vocabulary=vocabulary, max_length=32, n_peaks=SYNTHETIC_WIDTH, max_charge=10,
        limit=limit,
    )  # fmt: skip
    sets = {"held-out proteome, clean": (data, (data.mz, data.intensity, data.n_peaks))}
    if noise_model is not None:
        noise = FittedNoise(NoiseModelParameters.read(noise_model), vocabulary)
        generator = torch.Generator().manual_seed(NOISE_SEED)
        parts = []
        for start in range(0, len(data), 1024):
            batch = data.batch(np.arange(start, min(start + 1024, len(data))))
            parts.append(noise.apply(batch, torch.ones(len(batch)), generator))
        peaks = (
            np.concatenate([p.mz.numpy() for p in parts]),
            np.concatenate([p.intensity.numpy() for p in parts]),
            np.concatenate([p.peak_mask.sum(dim=1).numpy() for p in parts]),
        )
        sets["held-out proteome, fitted noise"] = (data, peaks)
    return sets


def evaluate(
    decoder: GraphDecoder, data: SpectrumDataset, peaks: tuple[np.ndarray, ...]
) -> tuple[dict, GraphResult]:
    """Metrics of the decoder on one data set."""
    vocabulary = decoder.vocabulary
    mz, intensity, counts = peaks
    started = time.process_time()
    result = decoder.decode(mz, intensity, counts, data.precursor_mass, data.charge)
    seconds = time.process_time() - started
    truth = [vocabulary.decode(row) for row in data.tokens]
    best = result.best
    predicted = [[] if c is None else vocabulary.decode(c.token_ids) for c in best]
    metrics = sequencing_metrics(predicted, truth)
    scores = np.array([np.nan if c is None else c.score for c in best])
    answered = ~np.isnan(scores)
    correct = [match_peptides(p, t)[1] for p, t in zip(predicted, truth, strict=True) if p]
    _, _, auc = precision_coverage(correct, scores[answered].tolist(), len(data))
    k = decoder.settings.n_candidates
    ranks = np.full(len(truth), k)
    for row, (candidates, tokens) in enumerate(zip(result.candidates, truth, strict=True)):
        for index, candidate in enumerate(candidates):
            if match_peptides(vocabulary.decode(candidate.token_ids), tokens)[1]:
                ranks[row] = index
                break
    residues = np.array([sum(not t.endswith("-") for t in tokens) for tokens in truth])
    groups = {
        f"length {label}": (residues >= lo) & (residues <= hi) for label, lo, hi in LENGTH_BINS
    }
    groups.update({f"charge {z}": data.charge == z for z in sorted(set(data.charge.tolist()))})
    breakdown = {}
    for name, members in groups.items():
        rows = np.flatnonzero(members)
        if len(rows):
            part = sequencing_metrics([predicted[i] for i in rows], [truth[i] for i in rows])
            breakdown[name] = {"n_spectra": len(rows), "peptide_recall": part.peptide_recall}
    reasons: dict[str, int] = {}
    for reason in result.reasons:
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
    return {
        "n_spectra": len(data),
        "coverage": float(answered.mean()) if len(data) else 0.0,
        "aa_precision": metrics.aa_precision,
        "peptide_recall": metrics.peptide_recall,
        "pc_auc": auc,
        **{f"in_top_{j}": float((ranks < j).mean()) for j in (1, 4, k) if j <= k},
        "spectra_per_second": len(data) / max(seconds, 1e-9),
        "breakdown": breakdown,
        "reasons": reasons,
    }, result


def measure_ranks(decoder: GraphDecoder, data: SpectrumDataset) -> dict:
    """Intensity-rank likelihood ratios of primary ions (b, y, and b2+/y2+ where the
    precursor charge allows them) and of secondary ions (a, water and ammonia losses of
    b and y, above the decoder's lowest secondary m/z, on peaks no primary ion explains),
    against the peaks neither explains; peaks prepared as the decoder prepares them, ions
    matched within the fragment tolerance to the labelled peptide."""
    vocabulary = decoder.vocabulary
    usable = np.ones(len(data), dtype=bool)
    peaks = decoder._prepare_peaks(  # noqa: SLF001 - the decoder's own peak preparation
        data.mz, data.intensity, data.n_peaks, data.precursor_mass, data.charge, usable
    )
    tolerance = decoder.settings.fragment_tolerance_da
    lowest = decoder._min_secondary_mz  # noqa: SLF001
    primary = np.zeros(len(peaks.mz), dtype=bool)
    secondary = np.zeros(len(peaks.mz), dtype=bool)
    for row, tokens in enumerate(data.tokens):
        ids = tokens[tokens > 0]
        prefix = np.cumsum(vocabulary.masses[ids])[~vocabulary.is_nterm[ids]][:-1]
        suffix = data.precursor_mass[row] - prefix
        charges = (1, 2) if max_fragment_charge(data.charge[row]) >= 2 else (1,)
        queries = np.concatenate([ion_mz(np.r_[prefix, suffix], z) for z in charges])
        index, found = nearest_peaks(peaks.key, row * KEY_OFFSET + queries, tolerance)
        primary[index[found]] = True
        losses = np.concatenate(
            [prefix - A_ION_LOSS]
            + [ion - loss for ion in (prefix, suffix) for loss in NEUTRAL_LOSSES]
        )
        queries = ion_mz(losses, 1)
        queries = queries[queries >= lowest]
        index, found = nearest_peaks(peaks.key, row * KEY_OFFSET + queries, tolerance)
        secondary[index[found]] = True
    secondary &= ~primary
    other = ~primary & ~secondary
    bins = bucket(peaks.rank, RANK_EDGES)

    def shares(mask: np.ndarray) -> np.ndarray:
        return np.bincount(bins[mask], minlength=len(RANK_EDGES)) / max(mask.sum(), 1)

    with np.errstate(divide="ignore", invalid="ignore"):
        primary_ratio = np.log(shares(primary) / shares(other))
        secondary_ratio = np.log(shares(secondary) / shares(other))
    return {
        "rank_edges": list(RANK_EDGES),
        "primary_peaks": int(primary.sum()),
        "secondary_peaks": int(secondary.sum()),
        "other_peaks": int(other.sum()),
        "share_primary": shares(primary).round(4).tolist(),
        "share_secondary": shares(secondary).round(4).tolist(),
        "share_other": shares(other).round(4).tolist(),
        "primary_log_ratio": np.round(primary_ratio, 3).tolist(),
        "secondary_log_ratio": np.round(secondary_ratio, 3).tolist(),
    }


def measure_double(decoder: GraphDecoder, data: SpectrumDataset, decoy_shift: float = 7.5) -> dict:
    """Doubly charged b/y ions of doubly charged precursors: share of cleavage sites with
    a peak at the 2+ ion's m/z, against the same m/z shifted by a decoy offset (the
    random rate), and the same for the singly charged ions for scale."""
    vocabulary = decoder.vocabulary
    usable = data.charge == 2
    peaks = decoder._prepare_peaks(  # noqa: SLF001 - the decoder's own peak preparation
        data.mz, data.intensity, data.n_peaks, data.precursor_mass, data.charge, usable
    )
    tolerance = decoder.settings.fragment_tolerance_da
    hits = {"2+": [0, 0], "1+": [0, 0]}
    n_sites = 0
    for row in np.flatnonzero(usable):
        ids = data.tokens[row][data.tokens[row] > 0]
        masses = vocabulary.masses[ids]
        prefix = np.cumsum(masses)[~vocabulary.is_nterm[ids]][:-1]
        neutral = np.r_[prefix, data.precursor_mass[row] - prefix]
        n_sites += len(neutral)
        for name, z in (("2+", 2), ("1+", 1)):
            for column, shift in enumerate((0.0, decoy_shift)):
                _, found = nearest_peaks(
                    peaks.key, row * KEY_OFFSET + ion_mz(neutral, z) + shift, tolerance
                )
                hits[name][column] += int(found.sum())
    return {
        "spectra": int(usable.sum()),
        "ions": n_sites,
        **{f"{name} found": hits[name][0] / max(n_sites, 1) for name in hits},
        **{f"{name} decoy found": hits[name][1] / max(n_sites, 1) for name in hits},
    }


def markdown(results: dict) -> str:
    """The results as two markdown tables: the metrics, and peptide recall by group."""
    lines = [
        "| set | n | coverage | AA precision | peptide recall | PC AUC | true in top 1 / 4 / K "
        "| spectra/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        tops = " / ".join(f"{v:.3f}" for k, v in row.items() if k.startswith("in_top"))
        lines.append(
            f"| {name} | {row['n_spectra']} | {row['coverage']:.3f} | {row['aa_precision']:.3f} "
            f"| {row['peptide_recall']:.3f} | {row['pc_auc']:.3f} | {tops} "
            f"| {row['spectra_per_second']:.1f} |"
        )
    groups = [f"length {label}" for label, _, _ in LENGTH_BINS] + [
        f"charge {z}" for z in range(1, 11)
    ]
    groups = [g for g in groups if any(g in row["breakdown"] for row in results.values())]
    lines += ["", "| set | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for name, row in results.items():
        cells = []
        for group in groups:
            value = row["breakdown"].get(group)
            cells.append(
                "–" if value is None else f"{value['peptide_recall']:.2f} ({value['n_spectra']})"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--noise-model", type=Path)
    parser.add_argument("--dev-split", type=Path)
    parser.add_argument("--dev-part", default="fit", choices=["fit", "holdout", "all"])
    parser.add_argument("--heldout-shards", type=Path)
    parser.add_argument("--n-synthetic", type=int, default=1000)
    parser.add_argument("--tolerance", type=float, help="fragment tolerance (Da) to decode at")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="override a GraphSettings field (repeatable)",
    )  # fmt: skip
    parser.add_argument("--measure-ranks", action="store_true")
    parser.add_argument("--measure-double", action="store_true")
    parser.add_argument("--out", type=Path, help="results as JSON")
    parser.add_argument("--markdown", type=Path, help="results as markdown tables")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    if os.environ.get("OMP_NUM_THREADS") != "1":
        log.warning("set OMP_NUM_THREADS=1 for single-thread timings")
    instrument = load_instrument(args.instrument)
    changes: dict[str, object] = {}
    for item in args.set:
        name, value = item.split("=", 1)
        default = getattr(GraphSettings(), name)
        kind = float if default is None else type(default)
        changes[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    settings = GraphSettings.from_instrument(instrument, **changes)
    if args.tolerance is not None:
        # the instrument's precursor settings, the coarse tolerance's graph settings
        settings = GraphSettings.for_tolerance(
            args.tolerance,
            precursor_tolerance_ppm=settings.precursor_tolerance_ppm,
            isotope_errors=settings.isotope_errors,
            **{
                "max_edge_residues": settings.max_edge_residues,
                "fallback_edge_residues": settings.fallback_edge_residues,
                **changes,
            },
        )
    probabilities = (
        IonProbabilities.from_noise_model(NoiseModelParameters.read(args.noise_model))
        if args.noise_model is not None
        else None
    )
    vocabulary = Vocabulary()
    decoder = GraphDecoder(vocabulary, settings, probabilities)
    log.info("settings: %s", settings)
    sets: dict[str, tuple[SpectrumDataset, tuple[np.ndarray, ...]]] = {}
    if args.dev_split is not None:
        for name, data in dev_sets(args.dev_split, args.dev_part, vocabulary).items():
            sets[name] = (data, (data.mz, data.intensity, data.n_peaks))
    if args.heldout_shards is not None:
        sets.update(
            synthetic_sets(args.heldout_shards, args.noise_model, vocabulary, args.n_synthetic)
        )
    output: dict = {"settings": dataclasses.asdict(settings), "results": {}}
    if args.measure_ranks and args.dev_split is not None:
        data = sets[f"dev {args.dev_part} (all)"][0]
        output["rank_ratio"] = measure_ranks(decoder, data)
        log.info("rank ratio: %s", output["rank_ratio"])
    if args.measure_double and args.dev_split is not None:
        data = sets[f"dev {args.dev_part} (all)"][0]
        output["double_charge"] = measure_double(decoder, data)
        log.info("doubly charged ions of 2+ precursors: %s", output["double_charge"])
    for name, (data, peaks) in sets.items():
        row, _ = evaluate(decoder, data, peaks)
        output["results"][name] = row
        log.info(
            "%-34s n %4d coverage %.3f AA precision %.3f peptide recall %.3f PC AUC %.3f "
            "top-1/4/K %s  %.1f spectra/s",
            name, row["n_spectra"], row["coverage"], row["aa_precision"], row["peptide_recall"],
            row["pc_auc"], " / ".join(f"{v:.3f}" for k, v in row.items() if k.startswith("in_top")),
            row["spectra_per_second"],
        )  # fmt: skip
        log.info(
            "%-34s   %s", "", "  ".join(f"{g} {v['peptide_recall']:.3f} (n {v['n_spectra']})"
                                       for g, v in row["breakdown"].items()),
        )  # fmt: skip
        if row["reasons"]:
            log.info("%-34s   reasons %s", "", row["reasons"])
    if args.out is not None:
        args.out.write_text(json.dumps(output, indent=2, default=float))
    if args.markdown is not None:
        args.markdown.write_text(markdown(output["results"]))


if __name__ == "__main__":
    main()
