"""Same answers, other speed: the spectrum-graph decoder's candidates before and after a
change (:mod:`trm.graph.decoder`), and its speed on the same sets.

``dump`` decodes each set with the decoder on the Python path (Orbitrap HCD settings of
``--instrument``, ion probabilities of ``--noise-model``), scores the first 8 candidates of
each spectrum again with :meth:`~trm.graph.decoder.GraphDecoder.score_peptides` (as the
hybrid decoder scores a model's candidates), and writes everything to a pickle; with
``--repeat`` it also logs spectra per CPU second of both calls (best of the repeats, one
thread). ``compare`` reads two such files and logs, per set, the spectra whose candidate
lists (token ids, isotope errors) differ and the largest score difference; it exits
non-zero unless everything agrees within ``--tolerance``.

Sets: the demo MGF files (``resources/demo/*_hcd.mgf``, 150 most intense peaks, as
``trm denovo`` reads them), the dev split (``--dev-split``, one part, all files pooled) and
the held-out proteome's synthetic spectra, clean and under the fitted noise
(``--heldout-shards``, first ``--n-synthetic``), each loaded as
``benchmarks/graph_decoder.py`` loads it.

Usage (the "before" side from a checkout of the older commit, e.g. ``git worktree add``)::

    PYTHONPATH=<old checkout>/src python benchmarks/graph_equivalence.py dump before.pkl \\
        --dev-split dev-split --heldout-shards heldout/test
    PYTHONPATH=src python benchmarks/graph_equivalence.py dump after.pkl \\
        --dev-split dev-split --heldout-shards heldout/test
    python benchmarks/graph_equivalence.py compare before.pkl after.pkl
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("graph_equivalence")

ROOT = Path(__file__).resolve().parents[1]
#: Candidates per spectrum scored again with ``score_peptides``.
N_SCORED = 8
#: Fields of :class:`trm.graph.decoder.PeptideScores` compared.
SCORE_FIELDS = (
    "score",
    "path_score",
    "site_scores",
    "mass_error_ppm",
    "isotope_error",
    "fits",
    "representable",
)


def load_sets(args: argparse.Namespace) -> dict[str, tuple[np.ndarray, ...]]:
    """(mz, intensity, counts, precursor mass, charge) of each set."""
    from trm.chem import Vocabulary, mz_to_mass
    from trm.denovo.inference import spectrum_arrays
    from trm.io.spectra import read_spectra

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import graph_decoder

    vocabulary = Vocabulary()
    sets: dict[str, tuple[np.ndarray, ...]] = {}
    for path in sorted((ROOT / "resources" / "demo").glob("*_hcd.mgf")):
        table = read_spectra(path)
        mz, intensity, counts = spectrum_arrays(table, 150)
        charge = table.get_column("charge").to_numpy().astype(np.float64)
        mass = mz_to_mass(table.get_column("precursor_mz").to_numpy(), charge)
        sets[path.stem] = (mz, intensity, counts, mass, charge)
    if args.dev_split is not None:
        data = graph_decoder.dev_sets(args.dev_split, args.dev_part, vocabulary)
        for name, part in data.items():
            if name.endswith("(all)"):
                sets[name] = (
                    part.mz, part.intensity, part.n_peaks, part.precursor_mass, part.charge
                )  # fmt: skip
    if args.heldout_shards is not None:
        synthetic = graph_decoder.synthetic_sets(
            args.heldout_shards, args.noise_model, vocabulary, args.n_synthetic
        )
        for name, (part, peaks) in synthetic.items():
            sets[name] = (*peaks, part.precursor_mass, part.charge)
    return sets


def dump(args: argparse.Namespace) -> None:
    """Decode and score every set; write the answers (and log the speed)."""
    from trm.chem import Vocabulary
    from trm.graph.decoder import GraphDecoder, GraphSettings, IonProbabilities
    from trm.instrument import load_instrument
    from trm.noise_model import NoiseModelParameters

    settings = GraphSettings.from_instrument(load_instrument(args.instrument))
    probabilities = IonProbabilities.from_noise_model(NoiseModelParameters.read(args.noise_model))
    decoder = GraphDecoder(Vocabulary(), settings, probabilities)
    output: dict[str, dict] = {}
    for name, arrays in load_sets(args).items():
        result = decoder.decode(*arrays)
        candidates = [
            [
                (
                    c.token_ids.tolist(),
                    c.score,
                    c.path_score,
                    c.site_scores,
                    c.mass_error_ppm,
                    c.isotope_error,
                )  # fmt: skip
                for c in found
            ]
            for found in result.candidates
        ]
        longest = max([len(c.token_ids) for found in result.candidates for c in found] + [1])
        tokens = np.zeros((len(candidates), N_SCORED, longest), dtype=np.int64)
        for row, found in enumerate(result.candidates):
            for column, candidate in enumerate(found[:N_SCORED]):
                tokens[row, column, : len(candidate.token_ids)] = candidate.token_ids
        scored = decoder.score_peptides(*arrays, tokens)
        output[name] = {
            "reasons": result.reasons,
            "candidates": candidates,
            "scores": {field: getattr(scored, field) for field in SCORE_FIELDS},
        }
        if args.repeat:
            decode_s = min(_seconds(decoder.decode, arrays) for _ in range(args.repeat))
            score_s = min(
                _seconds(decoder.score_peptides, (*arrays, tokens)) for _ in range(args.repeat)
            )
            log.info(
                "%-32s %5d spectra: decode %7.1f spectra/s, score_peptides (%d each) %7.1f "
                "spectra/s", name, len(candidates), len(candidates) / decode_s, N_SCORED,
                len(candidates) / score_s,
            )  # fmt: skip
    args.out.write_bytes(pickle.dumps(output))


def _seconds(function: object, arrays: tuple[np.ndarray, ...]) -> float:
    started = time.process_time()
    function(*arrays)  # type: ignore[operator]
    return max(time.process_time() - started, 1e-9)


def compare(args: argparse.Namespace) -> int:
    """Log the differences of two dumps; 0 when they agree within the tolerance."""
    before = pickle.loads(args.before.read_bytes())
    after = pickle.loads(args.after.read_bytes())
    agree = True
    for name in before:
        if name not in after:
            log.warning("%s: missing in %s", name, args.after)
            agree = False
            continue
        old, new = before[name], after[name]
        worst = 0.0
        lists = sum(
            [c[0] for c in a] != [c[0] for c in b] or [c[5] for c in a] != [c[5] for c in b]
            for a, b in zip(old["candidates"], new["candidates"], strict=True)
        )
        for a, b in zip(old["candidates"], new["candidates"], strict=True):
            if [c[0] for c in a] == [c[0] for c in b]:
                for x, y in zip(a, b, strict=True):
                    worst = max(
                        worst, abs(x[1] - y[1]), abs(x[2] - y[2]), abs(x[4] - y[4]),
                        float(np.max(np.abs(x[3] - y[3]), initial=0.0)),
                    )  # fmt: skip
        scores = 0.0
        flags = old["reasons"] == new["reasons"]
        if lists == 0:
            for field in SCORE_FIELDS:
                u, v = old["scores"][field], new["scores"][field]
                if u.dtype.kind in "biu":
                    flags &= bool(np.array_equal(u, v))
                else:
                    flags &= bool(np.array_equal(np.isnan(u), np.isnan(v)))
                    scores = max(scores, float(np.nanmax(np.abs(u - v), initial=0.0)))
        same = lists == 0 and flags and max(worst, scores) <= args.tolerance
        agree &= same
        log.info(
            "%-32s %s: %d spectra with other candidates, largest score difference %.1e "
            "(decode) and %.1e (score_peptides)%s", name, "same" if same else "DIFFERENT",
            lists, worst, scores, "" if flags else ", other reasons or flags",
        )  # fmt: skip
    return 0 if agree else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("dump")
    make.add_argument("out", type=Path)
    make.add_argument(
        "--instrument", type=Path, default=ROOT / "config/instruments/orbitrap_hcd.yaml"
    )
    make.add_argument(
        "--noise-model", type=Path, default=ROOT / "resources/noise/orbitrap_hcd.yaml"
    )
    make.add_argument("--dev-split", type=Path)
    make.add_argument("--dev-part", default="holdout", choices=["fit", "holdout", "all"])
    make.add_argument("--heldout-shards", type=Path)
    make.add_argument("--n-synthetic", type=int, default=500)
    make.add_argument("--repeat", type=int, default=0, help="timed repeats (0: no timing)")
    check = sub.add_parser("compare")
    check.add_argument("before", type=Path)
    check.add_argument("after", type=Path)
    check.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "dump":
        if os.environ.get("OMP_NUM_THREADS") != "1":
            log.warning("set OMP_NUM_THREADS=1 for single-thread timings")
        dump(args)
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
