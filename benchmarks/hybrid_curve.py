"""Learning curve through a decoder: each snapshot of a run, as ``trm denovo`` answers.

A training run's own metrics (``metrics.csv``) score the network alone on synthetic
validation spectra. What users get is the hybrid decoder's answer, so this script takes
each given checkpoint (the ``checkpoint.stepN.pt`` snapshots in a run's work folder, and
any baseline, e.g. the shipped model), calibrates it for the hybrid decoder and evaluates
it on the held-out proteome (clean and under the fitted noise) and the real dev spectra,
by ``benchmarks/decoder_comparison.py --decoders hybrid`` (``--decoder``: another one,
e.g. ``model`` for the network alone; one subprocess per checkpoint, its full report kept
beside the curve). The x axis is the checkpoint's own ``cpu_seconds`` (training CPU
time, a continuation's counted on top of its starting weights' when ``--base-cpu-hours``
is given for it).

Usage::

    python benchmarks/hybrid_curve.py --baseline shipped=resources/models/orbitrap_hcd/model.pt \\
        --checkpoint RUN/checkpoint.step2000.pt ... --base-cpu-hours 1.32 \\
        --validation-dir SYNTH/validation --noise-model resources/noise/orbitrap_hcd.yaml \\
        --instrument config/instruments/orbitrap_hcd.yaml --heldout-shards heldout/test \\
        --dev-split dev-split --out benchmarks/results/hybrid_curve.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from trm.atomic import atomic_output

#: Evaluation sets of the curve: (decoder_comparison set, column title).
SETS = (
    ("heldout_noisy", "held-out proteome, fitted noise"),
    ("heldout_clean", "held-out proteome, clean"),
    ("dev_holdout", "real dev, holdout half"),
    ("dev_all", "real dev, all"),
)


def cpu_hours(path: Path, base: float) -> float:
    """Training CPU-hours a checkpoint records, plus ``base`` (its starting weights')."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return base + float(checkpoint.get("cpu_seconds", 0.0)) / 3600


def evaluate(args: argparse.Namespace, name: str, path: Path, out: Path) -> dict:
    """decoder_comparison.py of one checkpoint through ``--decoder`` (kept, and reused
    when present, as ``NAME.md`` and ``.json`` in the reports folder; ``NAME.DECODER.md``
    for a decoder other than hybrid)."""
    suffix = "" if args.decoder == "hybrid" else f".{args.decoder}"
    if args.teacher_forcing and args.decoder == "hybrid":
        suffix += ".tf"  # a report of the other choice is not reused
    report = out / f"{name}{suffix}.md"
    if not report.with_suffix(".json").exists():
        command = [
            sys.executable, str(Path(__file__).with_name("decoder_comparison.py")),
            "--decoders", args.decoder, "--model", str(path),
            "--validation-dir", str(args.validation_dir), "--noise-model", str(args.noise_model),
            "--instrument", str(args.instrument), "--heldout-shards", str(args.heldout_shards),
            "--dev-split", str(args.dev_split), "--breakdown", "--threads", str(args.threads),
            "--out", str(report),
            *(["--teacher-forcing"] if args.teacher_forcing else []),
        ]  # fmt: skip
        subprocess.run(command, check=True)
    result = json.loads(report.with_suffix(".json").read_text())[args.decoder]
    # each set's row in the mode the calibration chose (search+rescore or search)
    return {name: result["rows"][f"{name}/{result['mode']}"] for name, _ in SETS}


def markdown(points: list[dict], command: str, decoder: str, teacher_forcing: bool) -> str:
    lines = [
        f"# Learning curve through the {decoder} decoder",
        "",
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Each checkpoint calibrated for the {decoder} decoder"
        + (" with teacher forcing" if teacher_forcing and decoder == "hybrid" else "")
        + " and evaluated as `trm denovo` "
        f"answers (`benchmarks/decoder_comparison.py --decoders {decoder}`). Cells: peptide "
        "recall / AA precision / PC AUC; last column: peptide recall on real dev peptides "
        "of 16 or more residues (all dev spectra).",
        "",
        "| checkpoint | CPU-hours | " + " | ".join(title for _, title in SETS) + " | real 16+ |",
        "|---|---|" + "---|" * (len(SETS) + 1),
    ]
    for point in points:
        cells = []
        for row, _ in SETS:
            r = point["rows"][row]
            cells.append(f"{r['peptide_recall']:.3f} / {r['aa_precision']:.3f} / {r['pc_auc']:.3f}")
        long = point["rows"]["dev_all"]["breakdown"]["length 16+"]
        cells.append(f"{long['peptide_recall']:.3f} ({long['n_spectra']})")
        lines.append(f"| {point['name']} | {point['cpu_hours']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(points: list[dict], path: Path, decoder: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    run = [p for p in points if not p["baseline"]]
    for row, title in SETS[:3]:
        line = axis.plot(
            [p["cpu_hours"] for p in run],
            [p["rows"][row]["peptide_recall"] for p in run],
            marker="o",
            label=title,
        )
        for p in points:
            if p["baseline"]:
                axis.scatter(
                    p["cpu_hours"], p["rows"][row]["peptide_recall"], marker="x", s=80,
                    color=line[0].get_color(),
                )  # fmt: skip
    axis.set_xlabel("training CPU-hours")
    axis.set_ylabel(f"peptide recall ({decoder} decoder)")
    axis.set_title("x: the baseline checkpoint(s); lines: the run's snapshots")
    axis.legend(fontsize=8, loc="center right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=PATH[@HOURS]",
        help="a checkpoint drawn as a point of its own (its CPU-hours as recorded, plus "
        "HOURS for the weights it started from)",
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        type=Path,
        help="a snapshot of the run (repeatable, in training order)",
    )
    parser.add_argument(
        "--base-cpu-hours",
        type=float,
        default=0.0,
        help="CPU-hours of the weights the run started from (added to its snapshots')",
    )
    parser.add_argument("--validation-dir", type=Path, required=True)
    parser.add_argument("--noise-model", type=Path, required=True)
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--heldout-shards", type=Path, required=True)
    parser.add_argument("--dev-split", type=Path, required=True)
    parser.add_argument("--decoder", default="hybrid", choices=("hybrid", "model", "graph"))
    parser.add_argument(
        "--teacher-forcing",
        action="store_true",
        help="hybrid: calibrate and evaluate with trm denovo --teacher-forcing (the choice "
        "among the graph's candidates by the model's log-likelihood)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--command", default=None, help="command line shown in the report")
    parser.add_argument("--out", type=Path, required=True, help="markdown; .json, .png beside")
    args = parser.parse_args(argv)
    reports = args.out.with_suffix("")
    reports.mkdir(parents=True, exist_ok=True)
    points = []
    for item in args.baseline:
        name, _, path = item.partition("=")
        head, at, tail = path.rpartition("@")
        try:
            before = float(tail) if at else 0.0
            path = head if at else path
        except ValueError:  # an "@" of the path itself
            before = 0.0
        rows = evaluate(args, name, Path(path), reports)
        hours = cpu_hours(Path(path), before)
        points.append({"name": name, "baseline": True, "cpu_hours": hours, "rows": rows})
    for path in args.checkpoint:
        rows = evaluate(args, path.stem, path, reports)
        hours = cpu_hours(path, args.base_cpu_hours)
        points.append({"name": path.stem, "baseline": False, "cpu_hours": hours, "rows": rows})
    command = args.command or "python benchmarks/hybrid_curve.py ..."
    with atomic_output(args.out) as path:
        path.write_text(markdown(points, command, args.decoder, args.teacher_forcing))
    with atomic_output(args.out.with_suffix(".json")) as path:
        path.write_text(json.dumps(points, indent=1) + "\n")
    plot(points, args.out.with_suffix(".png"), args.decoder)
    sys.stdout.write(markdown(points, command, args.decoder, args.teacher_forcing))


if __name__ == "__main__":
    main()
