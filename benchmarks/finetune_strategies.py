"""Zero-shot against fine-tuned, per strategy and per amount of real data, on real spectra
the fine-tuning never saw.

Every arm fine-tunes the same base model with ``trm finetune`` on the labelled *fit* half
of the dev data (split by peptide into train and validation), is calibrated exactly as the
zero-shot model is (noisy synthetic spectra, so the arms differ by their weights only), and
is evaluated by ``evaluate_model.py`` on the *holdout* half (other peptides, never seen):
amino-acid precision, peptide recall and precision-coverage AUC at full coverage with the
exact-mass search and rescoring. Arms:

- ``zero-shot``: the base model as it is;
- ``mixed``, ``two-stage``, ``adversarial``: the strategies at their defaults;
- ``two-stage-frozen``, ``two-stage-trained``: real spectra only with the encoder frozen
  throughout, or trained from the first step (a frozen against a trained
  encoder);
- ``<strategy>@10%``, ``@30%``: the strategy given as ``--amount-strategy`` on a share of
  the train peptides.

Usage::

    python benchmarks/dev_data.py --dev-dir ../shared/data/dev --out dev-split
    python benchmarks/finetune_strategies.py --base resources/models/orbitrap_hcd/model.pt \\
        --dev-split dev-split --synthetic synth3 \\
        --noise-model resources/noise/orbitrap_hcd.yaml \\
        --instrument config/instruments/orbitrap_hcd.yaml --work finetune-runs \\
        --out benchmarks/results/finetune_strategies
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRM = [sys.executable, "-m", "trm"]

STRATEGY_ARMS = {
    "mixed": ["--strategy", "mixed"],
    "two-stage": ["--strategy", "two-stage"],
    "adversarial": ["--strategy", "adversarial"],
    "two-stage-frozen": ["--strategy", "two-stage", "--freeze-encoder"],
    "two-stage-trained": ["--strategy", "two-stage", "--frozen-fraction", "0"],
}
AMOUNTS = (0.1, 0.3)
MODE = "search+rescore"
DATASET = "dev_holdout"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], log: Path) -> float:
    """Run a command, its output to ``log``; its CPU seconds."""
    started = _children_cpu()
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}; see {log}")
    return _children_cpu() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--dev-split", type=Path, required=True)
    parser.add_argument("--synthetic", type=Path, required=True, help="trm synthetic folder")
    parser.add_argument("--noise-model", type=Path, required=True)
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output stem (.json, .md)")
    parser.add_argument("--arms", nargs="+", help="subset of arms to run (default: all)")
    parser.add_argument("--amount-strategy", default="mixed", choices=sorted(STRATEGY_ARMS))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--teacher-forcing",
        action="store_true",
        help="calibrate every arm with trm calibrate --teacher-forcing (the hybrid decoder's "
        "choice the shipped model is trained for)",
    )
    args = parser.parse_args()

    fit = sorted(args.dev_split.glob("*.fit.parquet"))
    if not fit:
        raise SystemExit(f"{args.dev_split}: no *.fit.parquet (run benchmarks/dev_data.py)")
    arms: dict[str, list[str] | None] = {"zero-shot": None, **STRATEGY_ARMS}
    for amount in AMOUNTS:
        arms[f"{args.amount_strategy}@{amount:.0%}"] = [
            *STRATEGY_ARMS[args.amount_strategy], "--real-data-fraction", str(amount)
        ]  # fmt: skip
    if args.arms:
        unknown = set(args.arms) - set(arms)
        if unknown:
            raise SystemExit(f"unknown arms {sorted(unknown)}; known: {sorted(arms)}")
        arms = {name: arms[name] for name in args.arms}
    args.work.mkdir(parents=True, exist_ok=True)
    results_path = args.out.with_suffix(".json")
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("arms", {})
    results["base"] = args.base.name
    for name, options in arms.items():
        folder = args.work / name.replace("%", "pct")
        folder.mkdir(exist_ok=True)
        model, cpu = args.base, 0.0
        record: dict = {}
        if options is not None:
            model = folder / "finetuned.pt"
            cpu = _run(
                [
                    *TRM, "finetune", "--model", str(args.base),
                    "--labels", *map(str, fit), "--synthetic-dir", str(args.synthetic / "train"),
                    "--noise-model", str(args.noise_model), "--checkpoint", str(model),
                    "--metrics", str(folder / "finetune.csv"),
                    "--split-table", str(folder / "split.tsv"), "--work-dir", str(folder / "work"),
                    "--split", "0.8", "0.2", "0", "--steps", str(args.steps),
                    "--seed", str(args.seed), "--threads", str(args.threads), *options,
                ],
                folder / "finetune.log",
            )  # fmt: skip
            import torch

            record = torch.load(model, map_location="cpu", weights_only=True)["finetune"]
        calibrated = folder / "calibrated.pt"
        _run(
            [
                *TRM, "calibrate", "--model", str(model),
                "--validation-dir", str(args.synthetic / "validation"),
                "--noise-model", str(args.noise_model), "--instrument", str(args.instrument),
                "--out", str(calibrated), "--report", str(folder / "calibration.json"),
                "--max-spectra", "1000", "--halt-threshold", "none",
                "--threads", str(args.threads),
                *(["--teacher-forcing"] if args.teacher_forcing else []),
            ],
            folder / "calibrate.log",
        )  # fmt: skip
        evaluation = folder / "evaluation.json"
        _run(
            [
                sys.executable, str(HERE / "evaluate_model.py"), "--model", str(calibrated),
                "--instrument", str(args.instrument), "--dev-split", str(args.dev_split),
                "--dev-part", "holdout", "--modes", MODE, "--threads", str(args.threads),
                "--out", str(evaluation),
            ],
            folder / "evaluate.log",
        )  # fmt: skip
        measured = json.loads(evaluation.read_text())["results"][f"{DATASET}/{MODE}"]
        results["arms"][name] = {
            "options": options,
            "finetune_cpu_seconds": round(cpu, 1),
            "best_step": record.get("best_step"),
            "stopped_at": record.get("stopped_at"),
            "n_train_spectra": record.get("n_train_spectra"),
            "n_validation_spectra": record.get("n_validation_spectra"),
            **{k: measured[k] for k in ("n_spectra", "aa_precision", "peptide_recall", "pc_auc")},
        }
        sys.stdout.write(f"{name} {json.dumps(results['arms'][name])}\n")
        sys.stdout.flush()
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# Fine-tuning strategies: dev holdout half, {MODE}, full coverage",
        "",
        f"Base model `{results['base']}`; fine-tuned on the dev fit half (split by peptide "
        "0.8 train / 0.2 validation), evaluated on the holdout half (other peptides). "
        f"Command: `python benchmarks/finetune_strategies.py {' '.join(sys.argv[1:])}`",
        "",
        "| arm | train spectra | kept step / stopped | fine-tune CPU s | AA precision | "
        "peptide recall | PC AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in results["arms"].items():
        kept = "—" if row["best_step"] is None else f"{row['best_step']} / {row['stopped_at']}"
        lines.append(
            f"| {name} | {row['n_train_spectra'] or '—'} | {kept} | "
            f"{row['finetune_cpu_seconds']:.0f} | {row['aa_precision']:.3f} | "
            f"{row['peptide_recall']:.3f} | {row['pc_auc']:.3f} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
