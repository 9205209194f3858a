"""The three de novo decoders side by side: graph alone, model alone, hybrid.

For one model file, each decoder is calibrated as the workflow calibrates it (``trm
calibrate --decoder D`` on noisy synthetic validation spectra, the raw score chosen by
``auto``) and evaluated as ``trm denovo`` then answers (``benchmarks/evaluate_model.py``:
the search's first candidate when the calibration chose a model score, the rescorer's
choice when it chose ``rescored``) on every set: held-out-proteome synthetic spectra,
clean and under the fitted noise model, the real dev spectra's holdout half and each dev
file whole. Every row also gives how often the true peptide is among the decoder's
candidates (the ceiling of any final choice); a second table gives the peptide recall over
distinct true peptides (each weighing the same: the real dev sets hold one ProteomeTools
peptide dozens of times), and ``--breakdown`` the figures by peptide
length, by charge and by evidence gap (the longest run of the true peptide's cleavages
without a b or y peak), each group with its share of true peptides among the candidates.

Usage::

    python benchmarks/decoder_comparison.py --model resources/models/orbitrap_hcd/model.pt \\
        --validation-dir results/synthetic/orbitrap_hcd/validation \\
        --noise-model resources/noise/orbitrap_hcd.yaml \\
        --instrument config/instruments/orbitrap_hcd.yaml --heldout-shards heldout/test \\
        --dev-split dev-split --out benchmarks/results/decoders.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DECODERS = ("graph", "model", "hybrid")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")


def calibrate(args: argparse.Namespace, decoder: str, out: Path) -> dict:
    """``trm calibrate`` of the model for one decoder; returns its report."""
    report = out.with_suffix(".json")
    _run([
        sys.executable, "-m", "trm", "calibrate", "--model", str(args.model),
        "--validation-dir", str(args.validation_dir), "--noise-model", str(args.noise_model),
        "--instrument", str(args.instrument), "--max-spectra", str(args.calibration_spectra),
        "--decoder", decoder, "--out", str(out), "--report", str(report),
        "--threads", str(args.threads),
        *(["--teacher-forcing"] if args.teacher_forcing and decoder == "hybrid" else []),
        *(["--predicted-intensities"] if args.predicted_intensities else []),
        *([] if args.refinement_steps is None
          else ["--refinement-steps", str(args.refinement_steps)]),
        *([] if args.forced_candidates is None
          else ["--forced-candidates", str(args.forced_candidates)]),
    ])  # fmt: skip
    return json.loads(report.read_text())


def evaluate(
    args: argparse.Namespace, model: Path, decoder: str, mode: str, out: Path, part: str
) -> dict:
    """``evaluate_model.py`` of a calibrated model file in one mode on one dev part."""
    command = [
        sys.executable, str(Path(__file__).with_name("evaluate_model.py")),
        "--model", str(model), "--instrument", str(args.instrument), "--modes", mode,
        "--decoder", decoder,
        "--dev-split", str(args.dev_split), "--dev-part", part,
        "--candidate-ranks", str(args.candidate_ranks), "--threads", "1", "--out", str(out),
    ]  # fmt: skip
    if part == "holdout":
        command += ["--heldout-shards", str(args.heldout_shards), "--noise-model",
                    str(args.noise_model), "--n-synthetic", str(args.n_synthetic)]  # fmt: skip
    else:
        command += ["--per-file"]
    if args.breakdown:
        command.append("--breakdown")
    _run(command)
    return json.loads(out.read_text())["results"]


def distinct_lines(results: dict[str, dict], sets: list[str]) -> list[str]:
    """Peptide recall over distinct true peptides per set and decoder (each peptide weighs
    the same, :attr:`trm.metrics.SequencingMetrics.distinct_peptide_recall`), beside the
    recall over spectra."""
    lines = [
        "",
        "Over distinct true peptides (I = L): the mean over them of the share of their spectra "
        "recalled, so each peptide weighs the same however many spectra it has (cells: over "
        "peptides / over spectra):",
        "",
        "| set | spectra | peptides | " + " | ".join(results) + " |",
        "|---|---|---|" + "---|" * len(results),
    ]
    for name in sets:
        cells, counts = [], ("", "")
        for result in results.values():
            row = result["rows"].get(f"{name}/{result['mode']}")
            if row is None or "distinct_peptide_recall" not in row:
                cells.append("")
                continue
            counts = (row["n_spectra"], row["n_peptides"])
            cells.append(f"{row['distinct_peptide_recall']:.3f} / {row['peptide_recall']:.3f}")
        lines.append(f"| {name} | {counts[0]} | {counts[1]} | " + " | ".join(cells) + " |")
    return lines


def breakdown_lines(results: dict[str, dict], sets: list[str]) -> list[str]:
    """Per set with a breakdown: peptide recall / AA precision of each decoder by true
    peptide length, by charge and by evidence gap, with the share of the group whose true
    peptide is among the decoder's candidates where measured."""
    lines: list[str] = []
    for name in sets:
        rows = {
            decoder: result["rows"].get(f"{name}/{result['mode']}", {}).get("breakdown")
            for decoder, result in results.items()
        }
        ceilings = {
            decoder: result["rows"].get(f"{name}/candidates", {}).get("breakdown", {})
            for decoder, result in results.items()
        }
        groups = next((list(r) for r in rows.values() if r), None)
        if not groups:
            continue
        lines += [
            "",
            f"{name} by true peptide length, by charge and by the longest run of cleavages "
            "without a b or y peak (peptide recall / AA precision"
            + (
                "; in brackets: the share whose true peptide is among the candidates):"
                if any(ceilings.values())
                else "):"
            ),
            "",
            "| group | n | " + " | ".join(results) + " |",
            "|---|---|" + "---|" * len(results),
        ]
        for group in groups:
            n = next(r[group]["n_spectra"] for r in rows.values() if r and group in r)
            cells = []
            for decoder, r in rows.items():
                if not r or group not in r:
                    cells.append("")
                    continue
                ceiling = ceilings[decoder].get(group, {}).get("in_candidates")
                cells.append(
                    f"{r[group]['peptide_recall']:.3f} / {r[group]['aa_precision']:.3f}"
                    + ("" if ceiling is None else f" ({ceiling:.3f})")
                )
            lines.append(f"| {group} | {n} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--validation-dir", type=Path, required=True)
    parser.add_argument("--noise-model", type=Path, required=True)
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--heldout-shards", type=Path, required=True)
    parser.add_argument("--dev-split", type=Path, required=True)
    parser.add_argument("--n-synthetic", type=int, default=500)
    parser.add_argument("--calibration-spectra", type=int, default=1000)
    parser.add_argument("--candidate-ranks", type=int, default=24)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decoders", nargs="+", default=list(DECODERS), choices=DECODERS)
    parser.add_argument(
        "--teacher-forcing",
        action="store_true",
        help="hybrid: calibrate (and so evaluate) with trm denovo --teacher-forcing, the "
        "best candidates by graph score scored by the model as the draft of one refinement "
        "step, the answer the best by graph score plus that score",
    )
    parser.add_argument(
        "--forced-candidates",
        type=int,
        help="with --teacher-forcing: trm calibrate --forced-candidates N (default: its own)",
    )
    parser.add_argument(
        "--refinement-steps",
        type=int,
        help="calibrate (and so evaluate) with trm calibrate --refinement-steps N (default: "
        "as trained)",
    )
    parser.add_argument(
        "--predicted-intensities",
        action="store_true",
        help="calibrate with trm calibrate --predicted-intensities: the rescoring with "
        "MS2PIP's predicted fragment intensities and its choice among candidates",
    )
    parser.add_argument(
        "--n-peaks",
        type=int,
        help="the model reads its N most intense peaks instead of the count it was trained "
        "with (an inference-only change, to measure the top-N cut; the graph decoder keeps "
        "its own max_peaks)",
    )
    parser.add_argument("--out", type=Path, required=True, help="markdown table (and .json)")
    args = parser.parse_args()

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="decoders_") as scratch:
        if args.n_peaks is not None:
            import torch

            checkpoint = torch.load(args.model, map_location="cpu", weights_only=False)
            checkpoint["model_config"]["n_peaks"] = args.n_peaks
            args.model = Path(scratch) / f"{args.model.stem}.n_peaks{args.n_peaks}.pt"
            torch.save(checkpoint, args.model)
        for decoder in args.decoders:
            model = Path(scratch) / f"{decoder}.pt"
            report = calibrate(args, decoder, model)
            mode = "search+rescore" if report["raw_score"] == "rescored" else "search"
            rows = {}
            for part in ("holdout", "all"):
                out = Path(scratch) / f"{decoder}_{part}.json"
                rows.update(evaluate(args, model, decoder, mode, out, part))
            results[decoder] = {"raw_score": report["raw_score"], "mode": mode, "rows": rows}
            sys.stderr.write(f"{decoder}: {json.dumps(results[decoder])[:300]}\n")
    sets = sorted({key.split("/")[0] for r in results.values() for key in r["rows"]})
    lines = [
        f"Model {args.model.name}; each decoder calibrated on {args.calibration_spectra} "
        f"spectra of {args.validation_dir.name} under {args.noise_model.name}. Cells: peptide "
        "recall / AA precision / PC AUC; candidates: share with the true peptide among the "
        "decoder's candidates.",
        "",
        "| set | n | "
        + " | ".join(f"{d} ({results[d]['raw_score']})" for d in results)
        + " | "
        + " | ".join(f"{d}: candidates" for d in results)
        + " |",
        "|---|---|" + "---|" * (2 * len(results)),
    ]
    for name in sets:
        cells, ceilings, n = [], [], ""
        for result in results.values():
            row = result["rows"].get(f"{name}/{result['mode']}")
            ranks = result["rows"].get(f"{name}/candidates", {})
            if row is None:
                cells.append("")
                ceilings.append("")
                continue
            n = row["n_spectra"]
            cells.append(
                f"{row['peptide_recall']:.3f} / {row['aa_precision']:.3f} / {row['pc_auc']:.3f}"
            )
            ceiling = ranks.get("in_candidates")
            ceilings.append("" if ceiling is None else f"{ceiling:.3f}")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " | " + " | ".join(ceilings) + " |")
    lines += distinct_lines(results, sets)
    lines += breakdown_lines(results, sets)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
