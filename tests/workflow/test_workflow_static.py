"""The workflow is well formed: lint, formatting, and dry runs plan every stage."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.workflow.helpers import PROJECT_ROOT, make_workdir, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

#: Rules of the DAG in the workflow's stage order that run once per sample, once per
#: labelled sample, and once per instrument that a sample uses.
PER_SAMPLE_RULES = ["convert", "denovo", "casanovo", "compare"]
PER_LABELLED_SAMPLE_RULES = ["labels", "evaluate"]
#: Once per instrument with labelled runs.
PER_LABELLED_INSTRUMENT_RULES = ["fit_noise", "peptide_mix"]
PER_INSTRUMENT_RULES = ["synthetic", "pretrain", "training_plot", "calibrate", "casanovo_baseline"]


def test_snakemake_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "."],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean():
    folders = [
        folder
        for folder in ("src", "tests", "benchmarks", "workflow/scripts")
        if (PROJECT_ROOT / folder).exists()
    ]
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, *folders],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_of_demo_plans_every_stage_for_every_sample(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    result = snakemake("-n", workdir=workdir)
    assert result.returncode == 0, result.stderr
    sheet = pd.read_csv(PROJECT_ROOT / "config" / "samples.tsv", sep="\t")
    jobs = planned_jobs(result.stdout)
    for rule in PER_SAMPLE_RULES:
        assert jobs[rule] == len(sheet), jobs
    for rule in PER_LABELLED_SAMPLE_RULES:
        assert jobs[rule] == (sheet["identifications"].fillna("") != "").sum(), jobs
    for rule in PER_INSTRUMENT_RULES:
        assert jobs[rule] == sheet["instrument"].nunique(), jobs
    labelled = sheet[sheet["identifications"].fillna("") != ""]
    for rule in PER_LABELLED_INSTRUMENT_RULES:
        assert jobs[rule] == labelled["instrument"].nunique(), jobs
    assert jobs["compare_samples"] == 1
    assert not (workdir / "results").exists()


def test_dry_run_of_second_config(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "tests" / "config")
    result = snakemake("-n", workdir=workdir)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert jobs["convert"] == 2, jobs
    # Only instruments that a sample uses are trained: ltq_cid has no sample.
    assert jobs["synthetic"] == 1, jobs


def test_gpu_training_requests_gpus_and_uses_torchrun(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    config = workdir / "config" / "config.yaml"
    config.write_text(config.read_text().replace("  gpus: 0", "  gpus: 2"))
    result = snakemake(
        "-n", "-p", "--forceall", "results/models/orbitrap_hcd/metrics.csv", workdir=workdir
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert (
        "torchrun --standalone --nproc_per_node 2 -m trm"
        " --attempts-log logs/pretrain/orbitrap_hcd.attempts.log pretrain"
    ) in output
    assert "--device cuda" in output
    assert "gpu=2" in output


def test_cpu_training_requests_no_gpu(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    result = snakemake("-n", "-p", "results/models/orbitrap_hcd/metrics.csv", workdir=workdir)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "python -m trm --attempts-log logs/pretrain/orbitrap_hcd.attempts.log pretrain" in output
    assert "--device cpu" in output
    assert "gpu=0" in output or "gpu=" not in output


def test_labelled_runs_fit_the_noise_model_that_training_and_calibration_use(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    result = snakemake("-n", "-p", workdir=workdir)
    assert result.returncode == 0, result.stderr
    assert planned_jobs(result.stdout)["fit_noise"] == 1
    output = result.stdout + result.stderr
    assert "trm fit-noise --labels" in output and "--fallback" in output
    assert output.count("--noise-model 'results/noise/orbitrap_hcd.yaml'") == 2
    # ... and the peptide mix the synthetic spectra are drawn from, the shipped one as the
    # fallback of a fit from too few identified peptides
    assert planned_jobs(result.stdout)["peptide_mix"] == 1
    assert "resources/peptide_mix/orbitrap_hcd.yaml'" in output.split("trm peptide-mix")[1]
    assert "--peptide-mix 'results/peptide_mix/orbitrap_hcd.yaml' --mix-share 0.6" in output


def test_without_labelled_runs_the_shipped_noise_model_is_used(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    sheet = workdir / "config" / "samples.tsv"
    table = pd.read_csv(sheet, sep="\t", dtype=str, keep_default_na=False)
    table["identifications"] = ""
    table["fasta"] = ""  # a searched sample is labelled by its search
    table.to_csv(sheet, sep="\t", index=False)
    result = snakemake("-n", "-p", workdir=workdir)
    assert result.returncode == 0, result.stderr
    assert "fit_noise" not in planned_jobs(result.stdout)
    assert "peptide_mix" not in planned_jobs(result.stdout)
    output = result.stdout + result.stderr
    assert output.count("resources/noise/orbitrap_hcd.yaml'") == 2
    assert "resources/peptide_mix/orbitrap_hcd.yaml' --mix-share 0.6" in output
    # The switches to the hand-set ramp and uniform peptides: no noise model, no mix.
    config = workdir / "config" / "config.yaml"
    text = config.read_text().replace("  noise: fitted", "  noise: ramp")
    config.write_text(text.replace("  peptide_mix: fitted", "  peptide_mix: uniform"))
    result = snakemake("-n", "-p", "--forceall", workdir=workdir)
    assert result.returncode == 0, result.stderr
    assert "--noise-model" not in result.stdout + result.stderr
    assert "--peptide-mix" not in result.stdout + result.stderr


def test_the_demo_sequences_with_the_shipped_base_model(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    result = snakemake("-n", "-p", "results/models/orbitrap_hcd/metrics.csv", workdir=workdir)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "--init 'resources/models/orbitrap_hcd/model.pt'" in output or (
        "resources/models/orbitrap_hcd/model.pt" in output
    )
    assert "--steps 0" in output
    # The Casanovo baseline's budget cannot follow a pretraining of 0 steps: it is given.
    config = workdir / "config" / "config.yaml"
    config.write_text(config.read_text().replace("  train_spectra: 27000", "  train_spectra: 0"))
    result = snakemake("-n", workdir=workdir)
    assert result.returncode != 0
    assert "set casanovo: train_spectra" in result.stdout + result.stderr


def test_calibration_chooses_by_teacher_forcing_unless_told_otherwise(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    config = workdir / "config" / "config.yaml"
    result = snakemake("-n", "-p", workdir=workdir)
    assert result.returncode == 0, result.stderr
    assert "--teacher-forcing --forced-candidates 8" in result.stdout
    assert "--predicted-intensities" not in result.stdout
    # Predicted intensities choose their own way: asking for both stops before any job.
    text = config.read_text()
    config.write_text(text.replace("predicted_intensities: false", "predicted_intensities: true"))
    result = snakemake("-n", workdir=workdir)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "set one of them to false" in output
    config.write_text(
        text.replace("predicted_intensities: false", "predicted_intensities: true").replace(
            "teacher_forcing: true", "teacher_forcing: false"
        )
    )
    result = snakemake("-n", "-p", workdir=workdir)
    assert result.returncode == 0, result.stderr
    assert "--predicted-intensities" in result.stdout and "--teacher-forcing" not in result.stdout


def refinement_steps_planned(dry_run: str) -> dict[str, set[str]]:
    """Instrument file -> the `--refinement-steps` counts ('' for none) of the `trm
    calibrate` and `trm denovo` commands a `snakemake -n -p` output plans."""
    steps: dict[str, set[str]] = {}
    for line in dry_run.splitlines():
        if "python -m trm calibrate " in line or "python -m trm denovo " in line:
            words = line.split()
            count = (
                words[words.index("--refinement-steps") + 1]
                if "--refinement-steps" in words
                else ""
            )
            steps.setdefault(words[words.index("--instrument") + 1], set()).add(count)
    return steps


def test_refinement_steps_follow_the_decoder_of_each_instrument(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    config = workdir / "config" / "config.yaml"
    instrument = workdir / "config" / "instruments" / "orbitrap_hcd.yaml"

    def planned_steps() -> set[str]:
        result = snakemake("-n", "-p", "--forceall", workdir=workdir)
        assert result.returncode == 0, result.stderr
        steps = refinement_steps_planned(result.stdout)
        assert list(steps) == ["config/instruments/orbitrap_hcd.yaml"], steps
        return steps["config/instruments/orbitrap_hcd.yaml"]

    # The shipped config: the hybrid decoder of the Orbitrap file recurses 2 steps.
    assert planned_steps() == {"2"}
    # An instrument file that asks for the model alone runs it as trained...
    text = instrument.read_text()
    assert "\ndecoder: hybrid\n" in text
    instrument.write_text(text.replace("\ndecoder: hybrid\n", "\ndecoder: model\n"))
    assert planned_steps() == {""}
    # ... or as the config's count for that decoder says; the config's decoder overrides.
    settings = yaml.safe_load(config.read_text())
    settings["denovo"]["refinement_steps"] = {"model": 16}
    config.write_text(yaml.safe_dump(settings))
    assert planned_steps() == {"16"}
    settings["denovo"].update(decoder="hybrid", refinement_steps={"hybrid": 3, "model": 16})
    config.write_text(yaml.safe_dump(settings))
    assert planned_steps() == {"3"}
    # null: every decoder as trained; left out: the shipped counts.
    settings["denovo"]["refinement_steps"] = None
    config.write_text(yaml.safe_dump(settings))
    assert planned_steps() == {""}
    del settings["denovo"]["refinement_steps"]
    config.write_text(yaml.safe_dump(settings))
    assert planned_steps() == {"2"}
    # The one count of older configs is refused with the form to write instead.
    settings["denovo"]["refinement_steps"] = 4
    config.write_text(yaml.safe_dump(settings))
    result = snakemake("-n", workdir=workdir)
    assert result.returncode != 0
    assert "refinement_steps: {hybrid: 4}" in result.stdout + result.stderr


def test_each_instrument_gets_the_refinement_steps_of_its_own_decoder(tmp_path):
    # The second config's ion trap, given a sample and the model decoder, beside the
    # Orbitrap's hybrid decoder in one run.
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "tests" / "config")
    folder = workdir / "config"
    with (folder / "samples.tsv").open("a") as sheet:
        sheet.write(f"trap\tltq_cid\t{PROJECT_ROOT / 'resources/demo/mouse_hcd.mgf'}\t\n")
    with (folder / "instruments" / "ltq_cid.yaml").open("a") as instrument:
        instrument.write("decoder: model\n")
    settings = yaml.safe_load((folder / "config.yaml").read_text())
    settings.setdefault("denovo", {})["refinement_steps"] = {"hybrid": 2, "model": 16}
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    result = snakemake("-n", "-p", workdir=workdir)
    assert result.returncode == 0, result.stderr
    steps = refinement_steps_planned(result.stdout)
    assert steps == {
        "config/instruments/orbitrap_hcd.yaml": {"2"},
        "config/instruments/ltq_cid.yaml": {"16"},
    }, steps


def test_fine_tuning_plans_finetune_calibrates_on_its_validation_and_holds_out(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    config = workdir / "config" / "config.yaml"
    config.write_text(config.read_text().replace("  enabled: false", "  enabled: true"))
    result = snakemake("-n", "-p", workdir=workdir)
    assert result.returncode == 0, result.stderr
    assert planned_jobs(result.stdout)["finetune"] == 1
    output = result.stdout + result.stderr
    assert "finetune --model results/models/orbitrap_hcd/pretrained.pt" in output
    assert "--attempts-log logs/finetune/orbitrap_hcd.attempts.log" in output
    assert "--strategy mixed" in output and "--fallback" in output
    assert "calibrate --model results/models/orbitrap_hcd/finetuned.pt" in output
    assert "--labels 'results/models/orbitrap_hcd/finetune_validation.parquet'" in output
    assert "--min-labelled" in output
    # Both labelled samples are evaluated, compared (with Casanovo, and the searched one
    # with its database), and every sample's de novo q-values fitted, on held-out spectra
    # only.
    assert output.count("--finetune-split 'results/models/orbitrap_hcd/finetune_split.tsv'") == 8
    # A split that does not sum to 1 stops before any job.
    config.write_text(config.read_text().replace("split: [0.6, 0.2, 0.2]", "split: [0.6, 0.2]"))
    assert snakemake("-n", workdir=workdir).returncode != 0
    config.write_text(config.read_text().replace("split: [0.6, 0.2]", "split: [0.6, 0.3, 0.2]"))
    result = snakemake("-n", workdir=workdir)
    assert result.returncode != 0 and "must sum to 1" in result.stdout + result.stderr


def test_without_fine_tuning_evaluation_counts_every_labelled_spectrum(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    result = snakemake("-n", "-p", workdir=workdir)
    assert result.returncode == 0, result.stderr
    assert "finetune" not in planned_jobs(result.stdout)
    assert "--finetune-split" not in result.stdout + result.stderr


def test_identifications_of_a_raw_sample_are_read_against_its_mzml(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    sheet = workdir / "config" / "samples.tsv"
    table = pd.read_csv(sheet, sep="\t", dtype=str, keep_default_na=False)
    table.loc[table["sample"] == "fusion_hcd", "identifications"] = table.loc[
        table["sample"] == "yeast_hcd", "identifications"
    ].iloc[0]
    table.to_csv(sheet, sep="\t", index=False)
    result = snakemake("-n", "-p", "results/labels/fusion_hcd.parquet", workdir=workdir)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "trm labelled-spectra results/mzml/fusion_hcd.mzML" in output
    assert "trm convert" in output
