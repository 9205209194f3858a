"""Dry runs of configurations with database searches: a sample with a FASTA and no
identifications counts as labelled (its labels are its search's PSMs), one with both is
searched and keeps its own identifications, and bad search settings stop the workflow
before any job."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from tests.workflow.helpers import PROJECT_ROOT, make_workdir, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

CONFIG = PROJECT_ROOT / "tests" / "config_search"


def _edit(workdir, edit) -> None:
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config))


def _dry_run(workdir, *targets: str) -> tuple[dict[str, int], str]:
    result = snakemake("-n", "-p", *targets, workdir=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return planned_jobs(result.stdout), output


def test_a_fasta_only_sample_plans_every_rule_a_labelled_sample_does(tmp_path):
    workdir = make_workdir(tmp_path, CONFIG)
    _edit(workdir, lambda c: c["finetune"].update(enabled=True))
    jobs, output = _dry_run(workdir)
    # searched (FASTA only) and supplied (FASTA and mzID) are searched; mouse is not.
    assert jobs["search"] == 2, jobs
    assert jobs["compare_database"] == 2, jobs
    # Both are labelled: labels, evaluation, noise fit and fine-tuning use them.
    assert jobs["labels"] == 2 and jobs["evaluate"] == 2, jobs
    assert jobs["fit_noise"] == 1 and jobs["finetune"] == 1, jobs
    assert jobs["denovo"] == jobs["compare"] == 3, jobs
    assert (
        "--identifications 'results/searched/search.tsv' --id-filetype tsv --q-value 0.05" in output
    )
    assert "--supplied-labels 'results/labels/supplied.parquet'" in output
    assert "--fdr 0.05" in output and "--variable-modifications Oxidation Acetyl" in output
    finetune = next(line for line in output.splitlines() if " finetune --model " in line)
    assert "--labels results/labels/searched.parquet results/labels/supplied.parquet" in finetune
    # The searched sample's evaluation may meet an empty labels table; the other's not.
    evaluations = [line for line in output.splitlines() if "trm evaluate" in line]
    assert any("--run searched" in e and "--empty-labels-ok" in e for e in evaluations)
    assert any("--run supplied" in e and "--empty-labels-ok" not in e for e in evaluations)
    # De novo q-values are grounded on each labelled sample's labels, fine-tuning left out.
    denovo = [line for line in output.splitlines() if "trm denovo" in line]
    assert any(
        "--run searched" in d and "--database-labels 'results/labels/searched.parquet'" in d
        and "--finetune-split" in d for d in denovo
    )  # fmt: skip
    # mouse has no labels: its q-values borrow the instrument's labelled runs.
    assert any(
        "--run mouse" in d and "--database-labels 'results/labels/searched.parquet' "
        "'results/labels/supplied.parquet'" in d for d in denovo
    )  # fmt: skip
    assert all("--fdr-report" in d for d in denovo)


def test_search_fasta_in_the_config_searches_every_sample(tmp_path):
    workdir = make_workdir(tmp_path, CONFIG)
    _edit(workdir, lambda c: c["search"].update(fasta="tests/data/search/yeast_subset.fasta.gz"))
    jobs, _ = _dry_run(workdir)
    assert jobs["search"] == 3 and jobs["labels"] == 3 and jobs["compare_database"] == 3


def test_the_demo_searches_its_yeast_sample_and_keeps_its_identifications(tmp_path):
    workdir = make_workdir(tmp_path, PROJECT_ROOT / "config")
    jobs, output = _dry_run(workdir)
    sheet = pd.read_csv(PROJECT_ROOT / "config" / "samples.tsv", sep="\t", dtype=str)
    searched = sheet["fasta"].fillna("") != ""
    assert jobs["search"] == searched.sum() == jobs["compare_database"]
    assert "--supplied-labels 'results/labels/yeast_hcd.parquet'" in output
    assert "--id-filetype tsv" not in output  # every searched demo sample has its own labels


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda c: c["search"].update(min_peptide_length=12, max_peptide_length=8),
         "search: min_peptide_length 12 exceeds max_peptide_length 8"),
        (lambda c: c["search"].update(variable_modifications=["Phospho"]), "Phospho"),
        (lambda c: c["search"].update(fixed_modifications=["Oxidation"]),
         "['Oxidation'] cannot be both fixed and variable"),
        (lambda c: c["search"].update(fdr=0.0), "fdr"),
        (lambda c: c["search"].update(fasta="no/such.fasta"),
         "FASTA 'no/such.fasta' (samples sheet `fasta`, else `search: fasta`) does not exist"),
        (lambda c: c["search"].update(enzyme="lysc"), "'enzyme' was unexpected"),
    ],
)  # fmt: skip
def test_bad_search_settings_stop_the_workflow_naming_them(tmp_path, edit, needle):
    workdir = make_workdir(tmp_path, CONFIG)
    _edit(workdir, edit)
    result = snakemake("-n", workdir=workdir)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert needle in output, output
    assert "Job stats" not in output
