"""Accuracy of a model at full coverage, per decoding mode, on held-out synthetic and real
spectra.

Data sets (each optional):

* ``--heldout-shards``: synthetic spectra of a proteome the model never trained on (e.g.
  ``trm synthetic --fasta <Synechocystis> --exclude-fasta <training proteomes>``), read
  clean and again under ``--noise-model`` at full strength (a fixed draw);
* ``--dev-split``: the real spectra split by ``benchmarks/dev_data.py``; ``--dev-part``
  chooses ``holdout`` (never seen by the shipped noise model), ``fit`` or ``all``;
  ``--per-file`` adds each file of it on its own.

Decoding modes (``--modes``):

``beam``
    The decoder before the exact search, kept here as the baseline: a beam of 16 over
    positions, pruning only prefixes heavier than the precursor allows.
``search``
    The exact precursor-mass search (:func:`trm.denovo.decode.search`) with the model's score.
``search+rescore``
    The same, the answer chosen among the candidates by the model file's rescorer
    (a model from ``trm calibrate`` with raw score ``rescored``).

Metrics (the one metrics core, :mod:`trm.metrics`):
coverage (spectra with a precursor-fitting answer), certified (answers the search proved
best), AA precision over answered residues, AA recall, peptide recall over all spectra and
over distinct true peptides (each weighing the same: the real dev sets hold some peptides
dozens of times), and the precision-coverage AUC ranking answers by the mode's raw score.

``--candidate-ranks N`` adds, per data set, how often the true peptide is among the exact
search's best k candidates (k up to N), and among all candidates of the decoder
(``in_candidates``: for the hybrid decoder the search's N and the graph's top K): the most
any re-ranking of them could reach.

``--breakdown`` adds AA precision and peptide recall per peptide length (residues of the
true peptide, :data:`LENGTH_BINS`), per precursor charge, and per evidence gap
(:func:`evidence_gaps`, :data:`GAP_BINS`: the longest run of cleavages of the true peptide
without a b or y peak among the peaks the decoder reads), and with ``--candidate-ranks`` the
share of each group whose true peptide is among the candidates: sets of different length
mixes (a library of long synthetic peptides, a lab's short tryptic ones) compare only by
length, and where no peak shows two neighbouring cleavages the spectrum alone cannot tell
the residues between them apart.

Usage::

    python benchmarks/evaluate_model.py --model model.pt \\
        --instrument config/instruments/orbitrap_hcd.yaml \\
        --heldout-shards heldout/test --noise-model resources/noise/orbitrap_hcd.yaml \\
        --dev-split dev-split --dev-part holdout --threads 2 --out result.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from trm.chem import C13_SPACING, WATER_MASS, Vocabulary, precursor_mass_error_ppm
from trm.denovo.decode import DecodedPeptide
from trm.denovo.inference import Sequencer, raw_scores
from trm.denovo.model_file import load_sequencer
from trm.denovo.rescore import Rescorer
from trm.denovo.settings import DECODERS, InferenceSettings
from trm.fragments import SERIES_B, fragment_charges, nearest_peaks, theoretical_fragments
from trm.instrument import load_instrument
from trm.metrics import match_peptides, precision_coverage, sequencing_metrics
from trm.noise_model import NoiseModelParameters
from trm.train.data import SpectrumDataset
from trm.train.noise import FittedNoise

log = logging.getLogger("evaluate_model")

MODES = ("beam", "search", "search+rescore")
NOISE_SEED = 11
#: Peptide length groups of ``--breakdown``: (label, fewest residues, most residues).
LENGTH_BINS = (("<=8", 0, 8), ("9-11", 9, 11), ("12-15", 12, 15), ("16+", 16, 10_000))
#: Evidence groups of ``--breakdown``: (label, shortest, longest run of cleavages without a
#: b or y peak, :func:`evidence_gaps`).
GAP_BINS = (("every cleavage seen", 0, 0), ("single unseen cleavages", 1, 1),
            ("2+ neighbouring cleavages unseen", 2, 10_000))  # fmt: skip
#: Of the 2+ group, those whose only such run is the first two cleavages (what the graph's
#: three-residue start edges bridge, ``GraphSettings.max_start_residues``).
START_GAP_GROUP = "of them, only the first two cleavages"


def evidence_gaps(
    dataset: SpectrumDataset, peaks: tuple[np.ndarray, ...], vocabulary: Vocabulary,
    tolerance_da: float,
) -> np.ndarray:  # fmt: skip
    """Longest run of neighbouring cleavage sites of each spectrum's true peptide with no
    b or y ion (at the fragment charges its precursor charge allows,
    :func:`trm.fragments.fragment_charges`) within ``tolerance_da`` of one of its peaks:
    0 when every cleavage shows; at 2 or more, the residues between the unseen cleavages
    are known only by their summed mass (their order, and pairs that weigh what another
    residue does), which no decoder reads off the spectrum.

    Returns
    -------
    numpy.ndarray of shape (n_spectra, 2), int64
        The longest run, and the longest not counting a run from the first cleavage.
    """
    mz, _, counts = peaks
    longest = np.zeros((len(dataset.tokens), 2), dtype=np.int64)
    for row, ids in enumerate(dataset.tokens):
        tokens = vocabulary.decode(ids)
        residues = sum(not token.endswith("-") for token in tokens)
        if residues < 2:
            continue
        fragments = theoretical_fragments(tokens, fragment_charges(int(dataset.charge[row])))
        _, found = nearest_peaks(np.sort(mz[row][: counts[row]]), fragments.mz, tolerance_da)
        # b(i) and y(n - i) both break the bond after residue i
        site = np.where(fragments.series == SERIES_B, fragments.number, residues - fragments.number)
        seen = np.zeros(residues, dtype=bool)
        seen[site[found]] = True
        run = best = inside = 0
        leading = True
        for shown in seen[1:]:
            run = 0 if shown else run + 1
            leading &= not shown
            best = max(best, run)
            inside = inside if leading else max(inside, run)
        longest[row] = (best, inside)
    return longest


def plain_beam(
    log_probs: np.ndarray, precursor_mass: np.ndarray, vocabulary: Vocabulary, settings
) -> list[DecodedPeptide | None]:
    """The decoder trm used before the exact search: a beam over positions, keeping the
    best partial peptides by score and pruning those heavier than the precursor allows;
    the best closed peptide that fits wins."""
    batch, length, n_tokens = log_probs.shape
    beam = 16
    token_masses = vocabulary.masses[1:]
    residue_token = ~vocabulary.is_nterm[1:]
    precursor = precursor_mass[:, None]
    ceiling = (precursor[:, 0] - settings.isotope_errors[0] * C13_SPACING) * (
        1 + settings.precursor_tolerance_ppm * 1e-6
    ) - WATER_MASS
    end = log_probs[:, :, 0]
    suffix_end = np.concatenate(
        [np.cumsum(end[:, ::-1], axis=1)[:, ::-1], np.zeros((batch, 1))], axis=1
    )
    scores = np.full((batch, beam), -np.inf)
    scores[:, 0] = 0.0
    masses = np.zeros((batch, beam))
    residues = np.zeros((batch, beam), dtype=np.int64)
    paths = np.zeros((batch, beam, length), dtype=np.int64)
    best = [None] * batch
    best_score = np.full(batch, -np.inf)
    rows = np.arange(batch)[:, None]
    for position in range(length + 1):
        if position > 0:
            closing = scores + suffix_end[:, position : position + 1]
            errors, isotopes = precursor_mass_error_ppm(
                masses + WATER_MASS, precursor, settings.isotope_errors
            )
            fits = (np.abs(errors) <= settings.precursor_tolerance_ppm) & (residues >= 4)
            closing = np.where(fits, closing, -np.inf)
            top = closing.argmax(axis=1)
            for row in np.nonzero(closing[np.arange(batch), top] > best_score)[0]:
                best_score[row] = closing[row, top[row]]
                ids = paths[row, top[row], :position].copy()
                best[row] = DecodedPeptide(
                    token_ids=ids,
                    log_probability=float(best_score[row]),
                    token_probabilities=np.exp(log_probs[row, np.arange(len(ids)), ids]),
                    mass_error_ppm=float(errors[row, top[row]]),
                    isotope_error=int(isotopes[row, top[row]]),
                )
        if position == length:
            break
        candidate = scores[:, :, None] + log_probs[:, position, 1:][:, None, :]
        candidate_mass = masses[:, :, None] + token_masses
        allowed = candidate_mass <= ceiling[:, None, None]
        if position > 0:
            allowed &= residue_token[None, None, :]
        candidate = np.where(allowed, candidate, -np.inf).reshape(batch, -1)
        keep = np.argpartition(-candidate, beam - 1, axis=1)[:, :beam]
        parent, token = np.divmod(keep, n_tokens - 1)
        scores = candidate[rows, keep]
        masses = candidate_mass.reshape(batch, -1)[rows, keep]
        residues = residues[rows, parent] + residue_token[token]
        paths = paths[rows, parent]
        paths[:, :, position] = token + 1
    return best


def noisy_copy(dataset: SpectrumDataset, noise: FittedNoise) -> tuple[np.ndarray, ...]:
    """Peaks of a data set under the noise model at full strength (fixed seed)."""
    generator = torch.Generator().manual_seed(NOISE_SEED)
    parts = []
    for start in range(0, len(dataset), 1024):
        batch = dataset.batch(np.arange(start, min(start + 1024, len(dataset))))
        parts.append(noise.apply(batch, torch.ones(len(batch)), generator))
    return (
        np.concatenate([p.mz.numpy() for p in parts]),
        np.concatenate([p.intensity.numpy() for p in parts]),
        np.concatenate([p.peak_mask.sum(dim=1).numpy() for p in parts]),
    )


def evaluate(
    sequencer: Sequencer,
    rescorer: Rescorer | None,
    mode: str,
    dataset: SpectrumDataset,
    peaks: tuple[np.ndarray, ...],
    gaps: np.ndarray | None = None,
) -> dict:
    """Metrics of one mode on one data set (with ``gaps``, :func:`evidence_gaps` of its
    spectra: and :func:`breakdown`)."""
    vocabulary = sequencer.vocabulary
    mz, intensity, counts = peaks
    started = time.process_time()
    predictions = sequencer.predict(mz, intensity, counts, dataset.precursor_mass, dataset.charge)
    seconds = time.process_time() - started
    if mode == "beam":
        # Re-decode the same answers with the old beam (model outputs are deterministic).
        log_probs = _final_log_probs(sequencer, mz, intensity, counts, dataset)
        decoded = plain_beam(
            log_probs, dataset.precursor_mass, vocabulary, sequencer.settings.decoding
        )
        scores = np.array([np.nan if d is None else np.exp(d.log_probability) for d in decoded])
    elif mode == "search":
        chosen = predictions.choose(None)
        decoded, scores = chosen.decoded, raw_scores("peptide", chosen)
        if sequencer.settings.decoder == "graph":
            # the graph decoder alone ranks its answers by the graph score
            scores = np.array([np.nan if d is None else d.graph_score for d in decoded])
    else:
        chosen = predictions.choose(rescorer)
        decoded, scores = chosen.decoded, raw_scores("rescored", chosen)
    truth = [vocabulary.decode(row) for row in dataset.tokens]
    predicted = [[] if d is None else vocabulary.decode(d.token_ids) for d in decoded]
    metrics = sequencing_metrics(predicted, truth)
    correct = [match_peptides(p, t)[1] for p, t in zip(predicted, truth, strict=True) if p]
    answered = ~np.isnan(scores)
    _, _, pc_auc = precision_coverage(correct, scores[answered].tolist(), len(dataset))
    groups = None if gaps is None else breakdown(predicted, truth, dataset.charge, gaps)
    return {
        "n_spectra": len(dataset),
        "coverage": float(answered.mean()),
        "certified": float(np.mean([d is not None and d.certified for d in decoded])),
        "aa_precision": metrics.aa_precision,
        "aa_recall": metrics.aa_recall,
        "peptide_recall": metrics.peptide_recall,
        "n_peptides": metrics.n_peptides,
        "distinct_peptide_recall": metrics.distinct_peptide_recall,
        "pc_auc": pc_auc,
        "cpu_seconds_per_spectrum": seconds / max(len(dataset), 1),
        "seconds_model": sequencer.times.model,
        "seconds_search": sequencer.times.decode,
        "seconds_rescoring": sequencer.times.rescore,
        "seconds_graph": sequencer.times.graph,
        **({} if groups is None else {"breakdown": groups}),
    }


def groups_of(
    truth: list[list[str]], charge: np.ndarray, gaps: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The spectra of each ``--breakdown`` group (boolean masks): by true peptide length,
    by precursor charge and, with ``gaps`` (:func:`evidence_gaps`), by evidence."""
    residues = np.array([sum(not token.endswith("-") for token in t) for t in truth])
    charge = np.asarray(charge)
    groups = {
        f"length {label}": (residues >= low) & (residues <= high)
        for label, low, high in LENGTH_BINS
    }
    groups.update({f"charge {z}": charge == z for z in sorted(set(charge.tolist()))})
    if gaps is not None:
        longest, inside = gaps[:, 0], gaps[:, 1]
        groups.update(
            {label: (longest >= low) & (longest <= high) for label, low, high in GAP_BINS}
        )
        groups[START_GAP_GROUP] = (longest == 2) & (inside <= 1)
    return groups


def breakdown(
    predicted: list[list[str]],
    truth: list[list[str]],
    charge: np.ndarray,
    gaps: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """AA precision and peptide recall per group of :func:`groups_of`.

    Parameters
    ----------
    predicted, truth : list of list of str
        Tokens of each answer (empty where none) and of each true peptide.
    charge : numpy.ndarray of shape (n,)
    gaps : numpy.ndarray of shape (n, 2), optional
        :func:`evidence_gaps` of each spectrum.

    Returns
    -------
    dict
        ``{"length <=8": {"n_spectra", "aa_precision", "peptide_recall"}, ...,
        "charge 2": {...}, ...}``; groups without spectra are left out.
    """
    result = {}
    for name, members in groups_of(truth, charge, gaps).items():
        rows = np.flatnonzero(members)
        if not len(rows):
            continue
        metrics = sequencing_metrics([predicted[i] for i in rows], [truth[i] for i in rows])
        result[name] = {
            "n_spectra": len(rows),
            "aa_precision": metrics.aa_precision,
            "peptide_recall": metrics.peptide_recall,
        }
    return result


def candidate_ranks(
    sequencer: Sequencer, dataset: SpectrumDataset, peaks, n: int, gaps: np.ndarray | None = None
) -> dict:
    """Share of spectra whose true peptide is among the exact search's best k candidates
    (k = 1, 2, 4, ... n; mass-based matching, I = L): how much any re-ranking of the
    search's candidates could gain, and so whether the limit is the ranking or the
    model's answer distribution (with ``gaps``, :func:`evidence_gaps` of its spectra: also
    the share among all candidates per :func:`groups_of` group)."""
    vocabulary = sequencer.vocabulary
    mz, intensity, counts = peaks
    predictions = sequencer.predict(mz, intensity, counts, dataset.precursor_mass, dataset.charge)
    ranks = []
    for candidates, tokens in zip(predictions.candidates, dataset.tokens, strict=True):
        truth = vocabulary.decode(tokens)
        rank = next(
            (
                index
                for index, candidate in enumerate(candidates)
                if match_peptides(vocabulary.decode(candidate.token_ids), truth)[1]
            ),
            None,
        )
        ranks.append(rank)
    found = np.asarray([rank is not None for rank in ranks])
    ranks = np.asarray([n if rank is None else rank for rank in ranks])
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k < n] + [n]
    result = {
        "n_spectra": len(ranks),
        **{f"in_top_{k}": float((ranks < k).mean()) for k in ks},
        # anywhere in the list: for the hybrid decoder, the union of the search's N and
        # the graph's own candidates (which follow the search's in the list)
        "in_candidates": float(found.mean()) if len(found) else 0.0,
    }
    if gaps is not None:
        truth = [vocabulary.decode(tokens) for tokens in dataset.tokens]
        result["breakdown"] = {
            name: {"n_spectra": int(members.sum()), "in_candidates": float(found[members].mean())}
            for name, members in groups_of(truth, dataset.charge, gaps).items()
            if members.any()
        }
    return result


def _final_log_probs(sequencer, mz, intensity, counts, dataset) -> np.ndarray:
    outputs = []
    for start in range(0, len(counts), sequencer.batch_size):
        end = start + sequencer.batch_size
        log_probs, _, _ = sequencer.refine_batch(
            mz[start:end],
            intensity[start:end],
            counts[start:end],
            dataset.precursor_mass[start:end],
            dataset.charge[start:end],
        )
        outputs.append(log_probs)
    return np.concatenate(outputs).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--heldout-shards", type=Path)
    parser.add_argument("--noise-model", type=Path)
    parser.add_argument("--n-synthetic", type=int, default=1000)
    parser.add_argument("--dev-split", type=Path)
    parser.add_argument("--dev-part", default="holdout", choices=["holdout", "fit", "all"])
    parser.add_argument(
        "--per-file",
        action="store_true",
        help="also evaluate each file of the dev split on its own",
    )
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument(
        "--decoder",
        choices=DECODERS,
        help="model, graph or hybrid (default: the one the model file was calibrated with); "
        "search+rescore needs a model file calibrated with the same decoder",
    )
    parser.add_argument("--beam-size", type=int, default=16)
    parser.add_argument("--max-beam-size", type=int, default=64)
    parser.add_argument("--halt-threshold", type=float, default=None)
    parser.add_argument(
        "--refinement-steps",
        type=int,
        default=None,
        help="supervision steps at inference (default: as the model file was calibrated, "
        "else as trained)",
    )
    parser.add_argument(
        "--candidate-ranks",
        type=int,
        default=0,
        metavar="N",
        help="also report how often the true peptide is among the search's best N "
        "candidates (0: not)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also report AA precision and peptide recall per peptide length, charge and "
        "evidence gap (and, with --candidate-ranks, the share of each group whose true "
        "peptide is among the candidates)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    overrides = {
        "beam_size": args.beam_size,
        "max_beam_size": max(args.max_beam_size, args.beam_size),
        "halt_threshold": args.halt_threshold,
        # each mode chooses its answers itself (``evaluate``)
        "raw_score": "peptide",
    }
    if args.refinement_steps is not None:
        overrides["refinement_steps"] = args.refinement_steps
    if args.decoder is not None:
        overrides["decoder"] = args.decoder
    sequencer, model_file = load_sequencer(args.model, load_instrument(args.instrument), overrides)
    model, vocabulary, rescorer = sequencer.model, sequencer.vocabulary, model_file.rescorer
    decoder = sequencer.settings.decoder
    if rescorer is not None and (model_file.stored is None or model_file.stored.decoder != decoder):
        log.warning("%s was not calibrated for the %s decoder: no rescorer", args.model, decoder)
        rescorer = None
    config = model.config
    sizes = {
        "vocabulary": vocabulary,
        "max_length": config.max_length,
        "n_peaks": sequencer.n_peaks,
        "max_charge": config.max_charge,
    }
    sets: dict[str, tuple[SpectrumDataset, tuple[np.ndarray, ...]]] = {}
    if args.heldout_shards is not None:
        data = SpectrumDataset.from_shards(args.heldout_shards, limit=args.n_synthetic, **sizes)
        sets["heldout_clean"] = (data, (data.mz, data.intensity, data.n_peaks))
        if args.noise_model is not None:
            noise = FittedNoise(NoiseModelParameters.read(args.noise_model), vocabulary)
            sets["heldout_noisy"] = (data, noisy_copy(data, noise))
    if args.dev_split is not None:
        tables = []
        for path in sorted(args.dev_split.glob(f"*.{args.dev_part}.parquet")):
            tables.append(pl.read_parquet(path).select(
                "precursor_mz", "charge", "mz", "intensity", "peptide"))  # fmt: skip
        data = SpectrumDataset.from_table(pl.concat(tables), **sizes)
        sets[f"dev_{args.dev_part}"] = (data, (data.mz, data.intensity, data.n_peaks))
        if args.per_file:
            for path, table in zip(
                sorted(args.dev_split.glob(f"*.{args.dev_part}.parquet")), tables, strict=True
            ):
                part = SpectrumDataset.from_table(table, **sizes)
                name = f"dev_{path.name.split('.')[0]}_{args.dev_part}"
                sets[name] = (part, (part.mz, part.intensity, part.n_peaks))
    settings = sequencer.settings

    def sequencer_with(settings: InferenceSettings) -> Sequencer:
        return Sequencer(model, vocabulary, settings, graph=sequencer.graph)

    gaps = {
        name: evidence_gaps(data, peaks, vocabulary, sequencer.fragment_tolerance_da)
        if args.breakdown
        else None
        for name, (data, peaks) in sets.items()
    }
    results = {}
    for mode in args.modes:
        if mode == "beam" and decoder != "model":
            continue
        if mode == "search+rescore" and rescorer is None:
            log.warning("%s has no rescorer (run trm calibrate): skipping %s", args.model, mode)
            continue
        for name, (data, peaks) in sets.items():
            row = evaluate(sequencer, rescorer, mode, data, peaks, gaps[name])
            results[f"{name}/{mode}"] = row
            log.info(
                "%-16s %-15s n %4d coverage %.3f certified %.3f AA precision %.3f peptide "
                "recall %.3f PC AUC %.3f",
                name, mode, row["n_spectra"], row["coverage"], row["certified"],
                row["aa_precision"], row["peptide_recall"], row["pc_auc"],
            )  # fmt: skip
            for group, values in row.get("breakdown", {}).items():
                log.info(
                    "%-16s %-15s   %-12s n %4d AA precision %.3f peptide recall %.3f",
                    name, mode, group, values["n_spectra"], values["aa_precision"],
                    values["peptide_recall"],
                )  # fmt: skip
    if args.candidate_ranks > 0:
        wide = dataclasses.replace(
            settings,
            decoding=dataclasses.replace(settings.decoding, n_candidates=args.candidate_ranks),
        )
        for name, (data, peaks) in sets.items():
            row = candidate_ranks(
                sequencer_with(wide), data, peaks, args.candidate_ranks, gaps[name]
            )
            results[f"{name}/candidates"] = row
            shares = ", ".join(
                f"{k[7:]} {v:.3f}" for k, v in row.items() if k not in ("n_spectra", "breakdown")
            )
            log.info("%-16s true peptide among the best k candidates: %s", name, shares)
    if args.out is not None:
        record = {
            "model": args.model.name,
            "decoder": decoder,
            "teacher_forcing": settings.teacher_forcing and decoder == "hybrid",
            "results": results,
        }
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
