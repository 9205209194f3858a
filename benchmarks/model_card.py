"""Write the model card of a trained model, and (optionally) its slim shipped copy.

The card states what the checkpoint itself records (architecture, steps, spectra seen,
CPU time, the noise it trained with and where that noise model came from), the synthetic
data's manifest (proteomes, spectra), the measured accuracy (``evaluate_model.py`` JSON
files), and the command that reproduces the model.

Usage::

    python benchmarks/model_card.py --checkpoint run/work/model.pt --synthetic synth3 \\
        --evaluation eval.json [eval2.json ...] --command "..." --out MODEL_CARD.md \\
        [--curve run/work/metrics.csv] [--ship-to resources/models/orbitrap_hcd/model.pt]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trm.model import ModelConfig, count_parameters, inference_flops
from trm.train.checkpoint import load_model, read_checkpoint, save_checkpoint

#: Checkpoint keys a shipped model keeps: enough to sequence, calibrate and start from.
SHIPPED_KEYS = (
    "format", "version", "model_config", "train_config", "vocabulary", "step", "cpu_seconds",
    "model", "ema", "metrics",
)  # fmt: skip

MODE_NAMES = {
    "beam": "beam (the decoder before the exact search)",
    "search": "exact search",
    "search+rescore": "exact search + rescoring",
}


def mode_name(mode: str, evaluation: dict) -> str:
    """How an evaluation decoded: :data:`MODE_NAMES` for the model decoder (evaluations
    from before ``decoder`` was recorded are the model decoder's), else the decoder's name
    and choice."""
    decoder = evaluation.get("decoder", "model")
    if decoder == "model":
        return MODE_NAMES.get(mode, mode)
    forced = ", teacher forcing" if evaluation.get("teacher_forcing") else ""
    choice = "rescored" if mode == "search+rescore" else "model's peptide score"
    return f"{decoder} decoder{forced}, {choice}"


DATASET_NAMES = {
    "heldout_clean": "held-out proteome, clean synthetic",
    "heldout_noisy": "held-out proteome, synthetic + fitted noise (full strength)",
    "dev_holdout": "real dev spectra, holdout half",
    "dev_all": "real dev spectra, all",
    "dev_fit": "real dev spectra, fit half",
}


def ship(checkpoint: dict, path: Path) -> None:
    """Write the slim copy: no optimizer or generator states."""
    save_checkpoint({k: v for k, v in checkpoint.items() if k in SHIPPED_KEYS}, path)


def curve_lines(metrics_csv: Path, shipped_step: int) -> list[str]:
    """The learning curve of the run (its ``trm pretrain --metrics`` CSV) as a table."""
    import polars as pl

    metrics = pl.read_csv(metrics_csv, infer_schema_length=None)
    steps = sorted(int(column[len("token_accuracy_step") :]) for column in metrics.columns
                   if column.startswith("token_accuracy_step"))  # fmt: skip
    if not steps or "validation" not in metrics["split"].to_list():
        return []  # a run without validation has no curve
    shown = sorted({steps[0], steps[len(steps) // 2 - 1], steps[-1]})
    names = " / ".join(str(step + 1) for step in shown)
    lines = [
        "",
        "## Learning curve",
        "",
        "Validation spectra of the training proteomes (peptides not trained on), clean and "
        "under the fitted noise model at full strength; token accuracy after refinement "
        f"steps {names}; greedy answers, no search (the accuracy table above searches).",
        "",
        f"| step | CPU-hours | clean: token accuracy ({names}) | clean: AA precision / "
        f"peptide recall | noisy: token accuracy ({names}) | noisy: AA precision / "
        "peptide recall |",
        "|---|---|---|---|---|---|",
    ]
    by_split = {split: metrics.filter(pl.col("split") == split) for split in
                ("validation", "validation_noisy")}  # fmt: skip
    noisy_by_step = {row["step"]: row for row in by_split["validation_noisy"].iter_rows(named=True)}
    for clean in by_split["validation"].iter_rows(named=True):
        noisy = noisy_by_step.get(clean["step"])
        cells = [f"{clean['step']:,}" + (" (this model)" if clean["step"] == shipped_step else ""),
                 f"{clean['cpu_seconds'] / 3600:.2f}"]  # fmt: skip
        for row in (clean, noisy):
            if row is None:  # trained without noise: no noisy evaluation
                cells += ["", ""]
                continue
            accuracy = " / ".join(f"{row[f'token_accuracy_step{step}']:.3f}" for step in shown)
            cells += [accuracy, f"{row['aa_precision']:.3f} / {row['peptide_recall']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ramp(name: str, curriculum: dict, key: str, fraction_key: str) -> str:
    """A curriculum ramp in words: ``name start -> end over the first N%``, or the end
    value throughout when the ramp takes no steps."""
    start, end = curriculum[f"{key}_start"], curriculum[f"{key}_end"]
    if curriculum[fraction_key] == 0 or start == end:
        return f"{name} {end} throughout"
    return f"{name} {start} -> {end} over the first {curriculum[fraction_key]:.0%}"


def card(
    checkpoint: dict,
    manifest: dict | None,
    evaluations: list[dict],
    command: str,
    curve: Path | None = None,
    notes: str | None = None,
    usage: str | None = None,
    lineage: str | None = None,
) -> str:
    """The model card's markdown; ``usage`` (markdown) is its "Ready to use" section,
    ``lineage`` a line on the weights the run started from."""
    config = ModelConfig.from_dict(checkpoint["model_config"])
    train = checkpoint["train_config"]
    model, _ = load_model_from(checkpoint)
    cost = inference_flops(config)
    step = int(checkpoint["step"])
    noise = train.get("fitted_noise")
    curriculum = train["curriculum"]
    lines = [
        "# Model card",
        "",
        "## Model",
        "",
        f"- Recursive model, hidden {config.hidden}, {config.encoder_layers} encoder layer(s), "
        f"{config.supervision_steps} supervision steps x {config.latent_steps} latent step(s), "
        f"{config.n_peaks} peaks, answers of up to {config.max_length - 1} tokens.",
        f"- {count_parameters(model):,} parameters, {cost.gflop:.3f} GFLOP per spectrum.",
        f"- Fragment-evidence tolerance {config.evidence_tolerance} Da (the instrument's "
        "fragment tolerance it was trained for).",
    ]
    if usage:
        lines += ["", "## Ready to use", "", usage.strip()]
    lines += [
        "",
        "## Training",
        "",
        *([f"- {lineage.strip()}"] if lineage else []),
        f"- {step:,} steps of {train['batch_size']} spectra ({step * train['batch_size']:,} "
        f"spectra seen), peak learning rate {train['learning_rate']}, "
        f"{checkpoint.get('cpu_seconds', 0.0) / 3600:.2f} CPU-hours "
        "(process CPU time, all threads).",
        f"- Curriculum over the run's {train['steps']:,} steps: "
        f"{_ramp('clean share', curriculum, 'clean_fraction', 'clean_mix_fraction')}, "
        f"{_ramp('noise strength', curriculum, 'noise_strength', 'noise_ramp_fraction')}; "
        "drafts on "
        f"{train['draft_fraction']:.0%} of each batch"
        + (
            f", {train['graph_draft_fraction']:.0%} of them the spectrum graph's best path"
            if train.get("graph_draft_fraction")
            else ""
        )
        + (
            f"; on {train['rank_fraction']:.0%} of each batch, ranking the true peptide "
            f"against up to {train['rank_candidates']} of the graph's other candidates "
            f"(weight {train['rank_weight']}"
            + (", added to the graph score" if train.get("rank_graph_score") else "")
            + ")."
            if train.get("rank_fraction")
            else "."
        ),
    ]
    if noise is None:
        lines.append("- Noise: the hand-set ramp (no fitted noise model).")
    else:
        provenance = noise.get("provenance", {})
        sources = ", ".join(
            f"{s['file']} ({s['spectra']})" for s in provenance.get("fitted_from", [])
        )
        lines.append(
            f"- Noise: a fitted noise model ({noise['sample_sizes']['spectra']} spectra: "
            f"{sources}; {provenance.get('made_by', '')}, {provenance.get('date', '')})."
        )
        if provenance.get("note"):
            lines.append(f"  {provenance['note']}")
    if manifest is not None:
        fastas = ", ".join(entry["name"] for entry in manifest["fasta"])
        splits = manifest["splits"]
        lines += [
            "",
            "## Data",
            "",
            f"- Synthetic spectra (MS2PIP model {manifest['settings']['model']}) of "
            f"{manifest['unique_peptides']:,} peptides of {fastas}.",
            "- "
            + ", ".join(f"{name}: {split['spectra']:,} spectra" for name, split in splits.items())
            + " (split by peptide).",
        ]
        mix = manifest["settings"].get("mix")
        if mix:
            share = manifest["settings"].get("mix_share") or 1.0
            lines.append(
                f"- {share:.0%} of the spectra drawn with the peptide lengths, charges and "
                f"missed cleavages of a peptide mix ({mix['provenance']}), the rest every "
                "peptide equally often, charges "
                + "/".join(str(z) for z in manifest["settings"]["charges"])
                + "."
            )
    if evaluations:
        lines += [
            "",
            "## Accuracy (full coverage: every spectrum with a precursor gets an answer)",
            "",
            "| data | decoding | spectra | coverage | certified | AA precision | peptide recall "
            "| PC AUC |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for evaluation in evaluations:
            for key, row in evaluation["results"].items():
                data, mode = key.split("/")
                lines.append(
                    f"| {DATASET_NAMES.get(data, data)} | {mode_name(mode, evaluation)} | "
                    f"{row['n_spectra']} | "
                    f"{row['coverage']:.3f} | {row['certified']:.3f} | "
                    f"{row['aa_precision']:.3f} | {row['peptide_recall']:.3f} | "
                    f"{row['pc_auc']:.3f} |"
                )
    if curve is not None:
        lines += curve_lines(curve, step)
    if notes:
        lines += ["", "## Notes", "", notes.strip()]
    lines += ["", "## Reproduce", "", "```bash", command, "```", ""]
    return "\n".join(lines)


def load_model_from(checkpoint: dict):  # noqa: ANN201 - a model and its vocabulary
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        torch.save(checkpoint, path)
        return load_model(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--synthetic", type=Path, help="synthetic data set (its manifest.json)")
    parser.add_argument("--evaluation", type=Path, nargs="*", default=[])
    parser.add_argument("--command", required=True, help="the command that reproduces it")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ship-to", type=Path, help="also write the slim model here")
    parser.add_argument("--curve", type=Path, help="the run's metrics CSV: a learning curve")
    parser.add_argument("--notes", type=Path, help="a markdown file of notes for the card")
    parser.add_argument(
        "--usage", type=Path, help="a markdown file: the card's 'Ready to use' section"
    )
    parser.add_argument("--lineage", help="a line on the weights the run started from")
    args = parser.parse_args()
    checkpoint = read_checkpoint(args.checkpoint)
    manifest = None
    if args.synthetic is not None:
        manifest = json.loads((args.synthetic / "manifest.json").read_text())
    evaluations = [json.loads(path.read_text()) for path in args.evaluation]
    notes = args.notes.read_text() if args.notes is not None else None
    usage = args.usage.read_text() if args.usage is not None else None
    args.out.write_text(
        card(
            checkpoint, manifest, evaluations, args.command, args.curve, notes, usage, args.lineage
        )  # fmt: skip
    )
    if args.ship_to is not None:
        ship(checkpoint, args.ship_to)


if __name__ == "__main__":
    main()
