"""Matched-compute ablations of the recursive model: one table for the model's design questions.

Each arm is the shipped recipe (model size ``default``, the instrument's fitted noise
model, curricula as shares of the run) with one thing changed. Every arm gets the same
training budget in CPU seconds: a probe measures the CPU seconds per optimisation step
(at a quarter and at three quarters of the schedule, where the clean share and the noise
differ; the median of interleaved rounds, so that a busy moment of the machine does not
fall on one arm), and the arm trains ``budget / cost`` steps, so that its learning-rate
and curriculum schedules complete within the budget. An arm that is cheaper per step
(T = 1) trains more steps. Arms whose change costs nothing measurable per step (the step
weights, the step embedding, the gate) share the baseline's probe, so that they train
exactly as many steps as it does.

Each arm's final model (the weights' moving average, as shipped models are) is then
evaluated by ``benchmarks/evaluate_model.py`` with the exact precursor-mass search
(``--modes search``, the model's own score; no arm gets a rescorer): AA precision and
peptide recall on a held-out proteome, clean and under the noise model at full strength,
and on real dev spectra. Token accuracy after each refinement step comes from the run's
last validation (``metrics.csv``), clean and noisy; the noisy validation uses the arm's
own training noise, so for ``hand-set-noise`` it is the hand-set ramp's.

Arms train in parallel (``--jobs``), one thread each. A rerun skips arms whose result
exists and resumes an interrupted training from its work folder.

    python benchmarks/ablations.py --shards SYNTH --heldout-shards HELDOUT/test \\
        --noise-model resources/noise/orbitrap_hcd.yaml \\
        --instrument config/instruments/orbitrap_hcd.yaml --dev-split dev-split \\
        --budget-cpu-s 720 --jobs 2 --out OUT

``SYNTH`` holds ``train/`` and ``validation/`` shards of ``trm synthetic``; ``HELDOUT`` a
proteome left out of them; ``dev-split`` comes from ``benchmarks/dev_data.py``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from trm.atomic import atomic_output
from trm.chem import Vocabulary
from trm.instrument import load_instrument
from trm.model import count_parameters, get_model_config
from trm.model.config import ModelConfig
from trm.noise_model import NoiseModelParameters
from trm.process import run_measured
from trm.train.checkpoint import load_model
from trm.train.config import TrainConfig
from trm.train.data import SpectrumDataset, dataset_sizes
from trm.train.loop import Trainer
from trm.train.losses import LossWeights

log = logging.getLogger("ablations")

BENCHMARKS = Path(__file__).resolve().parent
BATCH_SIZE = 64


@dataclass(frozen=True)
class Arm:
    """One variant of the shipped recipe.

    Attributes
    ----------
    name : str
    question : str
        The design question it answers, against ``baseline``.
    model_settings : tuple of str
        ``FIELD=VALUE`` changes of the model size (``trm pretrain --set``).
    step_base : float
        Supervision step weights ``∝ base**t``.
    spectrum_loss_weight : float
    fitted_noise : bool
        Train with the fitted noise model (else the hand-set ramp).
    same_cost_as : str or None
        Arm whose probe this one shares (its change adds no measurable cost per step).
    """

    name: str
    question: str
    model_settings: tuple[str, ...] = ()
    step_base: float = LossWeights().step_base
    spectrum_loss_weight: float = 0.0
    fitted_noise: bool = True
    same_cost_as: str | None = None

    def model_config(self, instrument_tolerance: float) -> ModelConfig:
        config = get_model_config("default").with_overrides(list(self.model_settings))
        return dataclasses.replace(config, evidence_tolerance=instrument_tolerance)


ARMS: tuple[Arm, ...] = (
    Arm("baseline", "the shipped recipe (T = 8, step embeddings, gated residual, base 1.25)"),
    Arm("T1", "T = 8 vs T = 1", ("supervision_steps=1",)),
    Arm(
        "T1-depth8",
        "T = 1 with the compute spent on depth instead (8 core blocks, one pass)",
        ("supervision_steps=1", "core_layers=8"),
    ),
    Arm(
        "no-step-embedding",
        "step embeddings on vs off",
        ("step_embedding=false",),
        same_cost_as="baseline",
    ),
    Arm(
        "replace-answer",
        "gated residual answer vs plain replacement",
        ("answer_update=replace",),
        same_cost_as="baseline",
    ),
    Arm(
        "spectrum-loss",
        "spectrum-matching loss on (weight 0.5, sigma 5 -> 0.5 Da over half the run) vs off",
        spectrum_loss_weight=0.5,
    ),
    Arm("hand-set-noise", "fitted vs hand-set (ramp) noise", fitted_noise=False),
    Arm("step-base-2", "step weight base 2 vs 1.25", step_base=2.0, same_cost_as="baseline"),
    Arm(
        "step-base-1",
        "step weight base 1 (uniform) vs 1.25",
        step_base=1.0,
        same_cost_as="baseline",
    ),
)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The training data and evaluation sets, shared with ``casanovo_budget.py``."""
    parser.add_argument("--shards", type=Path, required=True, help="train/ and validation/")
    parser.add_argument("--heldout-shards", type=Path, required=True)
    parser.add_argument("--noise-model", type=Path, required=True)
    parser.add_argument("--instrument", type=Path, required=True)
    parser.add_argument("--dev-split", type=Path, required=True)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all."""
    with atomic_output(path) as partial:
        partial.write_text(text, encoding="utf-8")


def train_config(arm: Arm, steps: int, noise: dict | None) -> TrainConfig:
    """The arm's training settings as ``trm pretrain`` builds them from its flags."""
    base = TrainConfig()
    return dataclasses.replace(
        base,
        steps=steps,
        batch_size=BATCH_SIZE,
        warmup_steps=max(steps // 20, 10),
        loss=dataclasses.replace(
            base.loss, step_base=arm.step_base, spectrum=arm.spectrum_loss_weight
        ),
        fitted_noise=noise if arm.fitted_noise else None,
    )


class Probe:
    """Times optimisation steps of one arm, mid-curriculum, on one thread."""

    SCHEDULE = 1000

    def __init__(self, arm: Arm, args: argparse.Namespace, noise: dict, tolerance: float):
        vocabulary = Vocabulary()
        config = arm.model_config(tolerance)
        self.data = SpectrumDataset.from_shards(
            args.shards / "train", limit=4096, **dataset_sizes(config, vocabulary)
        )
        self.trainer = Trainer(config, train_config(arm, self.SCHEDULE, noise), vocabulary)
        self.steps = args.probe_steps
        self.rounds: list[float] = []

    def round(self) -> None:
        """One measurement: CPU seconds per step at a quarter and three quarters."""
        seconds = []
        for position in (self.SCHEDULE // 4, 3 * self.SCHEDULE // 4):
            self.trainer.step = position
            self.trainer.train_step(self.data)  # warm-up
            started = time.process_time()
            for _ in range(self.steps):
                self.trainer.train_step(self.data)
            seconds.append((time.process_time() - started) / self.steps)
        self.rounds.append(sum(seconds) / len(seconds))

    @property
    def cost(self) -> float:
        return statistics.median(self.rounds)


def _last_validation(metrics: Path) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    with metrics.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows[row["split"]] = row  # the last row of each split wins
    return rows


def run_arm(arm: Arm, steps: int, cost: float, args: argparse.Namespace) -> dict:
    """Train and evaluate one arm (or read its result); the table row."""
    folder = args.out / arm.name
    result_path = folder / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model.pt"
    command = [
        sys.executable, "-m", "trm", "pretrain",
        "--train-dir", str(args.shards / "train"),
        "--validation-dir", str(args.shards / "validation"),
        "--checkpoint", str(model), "--metrics", str(folder / "metrics.csv"),
        "--work-dir", str(folder / "work"),
        "--steps", str(steps), "--batch-size", str(BATCH_SIZE),
        "--warmup-steps", str(max(steps // 20, 10)),
        "--eval-every", str(steps), "--checkpoint-every", str(max(steps // 10, 50)),
        "--eval-spectra", str(args.eval_spectra),
        "--step-base", str(arm.step_base),
        "--spectrum-loss-weight", str(arm.spectrum_loss_weight),
        "--instrument", str(args.instrument), "--threads", "1", "--seed", str(args.seed),
    ]  # fmt: skip
    if arm.fitted_noise:
        command += ["--noise-model", str(args.noise_model)]
    for setting in arm.model_settings:
        command += ["--set", setting]
    with (folder / "train.log").open("a", encoding="utf-8") as console:
        training = run_measured(command, stdout=console, stderr=console)
    if training.returncode != 0:
        raise RuntimeError(f"{arm.name}: training failed (see {folder / 'train.log'})")
    evaluation_path = folder / "evaluation.json"
    command = [
        sys.executable, str(BENCHMARKS / "evaluate_model.py"),
        "--model", str(model), "--instrument", str(args.instrument),
        "--heldout-shards", str(args.heldout_shards), "--noise-model", str(args.noise_model),
        "--n-synthetic", str(args.n_synthetic), "--dev-split", str(args.dev_split),
        "--dev-part", "holdout", "--modes", "search", "--threads", "1",
        "--out", str(evaluation_path),
    ]  # fmt: skip
    with (folder / "evaluate.log").open("w", encoding="utf-8") as console:
        evaluation = run_measured(command, stdout=console, stderr=console)
    if evaluation.returncode != 0:
        raise RuntimeError(f"{arm.name}: evaluation failed (see {folder / 'evaluate.log'})")
    results = json.loads(evaluation_path.read_text(encoding="utf-8"))["results"]
    validation = _last_validation(folder / "metrics.csv")
    network, _ = load_model(model)
    n_steps = network.config.supervision_steps
    row: dict = {
        "arm": arm.name,
        "question": arm.question,
        "parameters": count_parameters(network),
        "steps": steps,
        "probe_cpu_s_per_step": round(cost, 4),
        "train_cpu_s": round(float(validation["validation"]["cpu_seconds"]), 1),
        "run_cpu_s": round(training.cpu_seconds, 1),
    }
    for split, key in (("clean", "validation"), ("noisy", "validation_noisy")):
        row[f"{split}_token_accuracy_per_step"] = [
            round(float(validation[key][f"token_accuracy_step{t}"]), 3) for t in range(n_steps)
        ]
    for name, key in (
        ("heldout_clean", "heldout_clean/search"),
        ("heldout_noisy", "heldout_noisy/search"),
        ("dev", "dev_holdout/search"),
    ):
        row[f"{name}_aa_precision"] = round(results[key]["aa_precision"], 3)
        row[f"{name}_peptide_recall"] = round(results[key]["peptide_recall"], 3)
        row[f"{name}_n"] = results[key]["n_spectra"]
    write_text(result_path, json.dumps(row, indent=2))
    log.info("%s done: %s", arm.name, row)
    return row


def _steps_text(accuracies: list[float]) -> str:
    if len(accuracies) == 1:
        return f"{accuracies[0]:.3f}"
    picks = sorted({0, len(accuracies) // 2 - 1, len(accuracies) - 1})
    return " / ".join(f"{accuracies[t]:.3f}" for t in picks)


def markdown(rows: list[dict], budget: float) -> str:
    """The table, with token accuracy after refinement steps 1 / 4 / 8 (T = 8 arms)."""
    lines = [
        f"Training budget {budget:.0f} CPU seconds per arm (one thread); exact search, "
        "model score, full coverage.",
        "",
        "| arm | question | parameters | steps | train CPU s | clean token acc. (1 / 4 / 8) "
        "| noisy token acc. (1 / 4 / 8) | held-out clean: AA prec. / pep. recall "
        "| held-out noisy: AA prec. / pep. recall | real dev: AA prec. / pep. recall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['arm']} | {row['question']} | {row['parameters']:,} | {row['steps']:,} "
            f"| {row['train_cpu_s']:.0f} | {_steps_text(row['clean_token_accuracy_per_step'])} "
            f"| {_steps_text(row['noisy_token_accuracy_per_step'])} "
            f"| {row['heldout_clean_aa_precision']:.3f} / "
            f"{row['heldout_clean_peptide_recall']:.3f} "
            f"| {row['heldout_noisy_aa_precision']:.3f} / "
            f"{row['heldout_noisy_peptide_recall']:.3f} "
            f"| {row['dev_aa_precision']:.3f} / {row['dev_peptide_recall']:.3f} |"
        )
    first = rows[0] if rows else None
    if first is not None:
        lines += [
            "",
            f"Held-out spectra: {first['heldout_clean_n']} clean and the same under the fitted "
            f"noise; real dev spectra: {first['dev_n']} (holdout half).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--budget-cpu-s", type=float, default=720.0)
    parser.add_argument("--arms", nargs="+", choices=[arm.name for arm in ARMS])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--probe-steps", type=int, default=4)
    parser.add_argument("--probe-rounds", type=int, default=3)
    parser.add_argument("--eval-spectra", type=int, default=1024)
    parser.add_argument("--n-synthetic", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    arms = [arm for arm in ARMS if args.arms is None or arm.name in args.arms]
    tolerance = load_instrument(args.instrument).fragment_tolerance_da
    noise = NoiseModelParameters.read(args.noise_model).to_dict()
    args.out.mkdir(parents=True, exist_ok=True)
    plan_path = args.out / "plan.json"
    plan = json.loads(plan_path.read_text(encoding="utf-8")) if plan_path.exists() else {}
    by_name = {arm.name: arm for arm in ARMS}
    probed = sorted({arm.same_cost_as or arm.name for arm in arms if arm.name not in plan})
    if probed:
        probes = {name: Probe(by_name[name], args, noise, tolerance) for name in probed}
        for _ in range(args.probe_rounds):
            for probe in probes.values():
                probe.round()
        for arm in arms:
            if arm.name not in plan:
                probe = probes[arm.same_cost_as or arm.name]
                plan[arm.name] = {
                    "cpu_s_per_step": probe.cost,
                    "probe_rounds": probe.rounds,
                    "steps": int(args.budget_cpu_s / probe.cost),
                }
                log.info("%s: %.3f CPU s per step (rounds %s) -> %d steps", arm.name,
                         probe.cost, probe.rounds, plan[arm.name]["steps"])  # fmt: skip
        write_text(plan_path, json.dumps(plan, indent=2))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(
                run_arm, arm, plan[arm.name]["steps"], plan[arm.name]["cpu_s_per_step"], args
            )  # fmt: skip
            for arm in arms
        ]
        rows = [future.result() for future in futures]
    write_text(
        args.out / "ablations.tsv",
        "\n".join(["\t".join(rows[0])] + ["\t".join(map(str, row.values())) for row in rows])
        + "\n",
    )
    write_text(args.out / "ablations.md", markdown(rows, args.budget_cpu_s))
    sys.stdout.write(markdown(rows, args.budget_cpu_s))


if __name__ == "__main__":
    main()
