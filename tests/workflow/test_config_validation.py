"""A bad configuration stops the workflow before any job, naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.workflow.helpers import PROJECT_ROOT, make_workdir, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path, PROJECT_ROOT / "config")


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


def _assert_fails_naming(workdir: Path, *needles: str) -> None:
    result = snakemake("-n", workdir=workdir)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for needle in needles:
        assert needle in output, output
    assert not (workdir / "results").exists()
    assert "Job stats" not in output


def test_unknown_config_key_is_named(workdir):
    _edit_yaml(workdir / "config" / "config.yaml", lambda c: c.update(treads={"convert": 2}))
    _assert_fails_naming(workdir, "'treads' was unexpected")


def test_unknown_nested_key_is_named(workdir):
    _edit_yaml(workdir / "config" / "config.yaml", lambda c: c["threads"].update(covnert=2))
    _assert_fails_naming(workdir, "'covnert' was unexpected")


def test_missing_required_key_is_named(workdir):
    _edit_yaml(workdir / "config" / "config.yaml", lambda c: c.pop("instruments"))
    _assert_fails_naming(workdir, "'instruments' is a required property")


def test_wrong_type_is_named(workdir):
    _edit_yaml(workdir / "config" / "config.yaml", lambda c: c["threads"].update(convert=0))
    _assert_fails_naming(workdir, "0 is less than the minimum of 1", "convert")


def test_bad_instrument_file_names_instrument_and_key(workdir):
    path = workdir / "config" / "instruments" / "orbitrap_hcd.yaml"
    _edit_yaml(path, lambda c: c.update(fragment_tolerance_ppm=10))
    _assert_fails_naming(workdir, "orbitrap_hcd", "'fragment_tolerance_ppm' was unexpected")


def test_instrument_missing_required_key(workdir):
    path = workdir / "config" / "instruments" / "orbitrap_hcd.yaml"
    _edit_yaml(path, lambda c: c.pop("charges"))
    _assert_fails_naming(workdir, "orbitrap_hcd", "'charges' is a required property")


def test_sample_with_unknown_instrument(workdir):
    sheet = workdir / "config" / "samples.tsv"
    sheet.write_text(sheet.read_text().replace("\torbitrap_hcd\t", "\torbitrap_etd\t", 1))
    _assert_fails_naming(workdir, "orbitrap_etd", "instruments")


def test_duplicate_sample_names(workdir):
    sheet = workdir / "config" / "samples.tsv"
    lines = sheet.read_text().splitlines()
    sheet.write_text("\n".join([*lines, lines[1]]) + "\n")
    _assert_fails_naming(workdir, "unique", "mouse_hcd")


def test_samples_sheet_with_unknown_column(workdir):
    sheet = workdir / "config" / "samples.tsv"
    lines = sheet.read_text().splitlines()
    lines = [lines[0] + "\tcondition"] + [line + "\tcontrol" for line in lines[1:]]
    sheet.write_text("\n".join(lines) + "\n")
    _assert_fails_naming(workdir, "'condition' was unexpected")


def test_sample_named_like_a_results_folder(workdir):
    sheet = workdir / "config" / "samples.tsv"
    lines = sheet.read_text().splitlines()
    lines[1] = "models" + lines[1][lines[1].index("\t") :]
    sheet.write_text("\n".join(lines) + "\n")
    _assert_fails_naming(workdir, "['models']", "rename")


def test_casanovo_without_weights_or_baseline(workdir):
    _edit_yaml(
        workdir / "config" / "config.yaml",
        lambda c: c["casanovo"].update(checkpoint="", train_baseline=False),
    )
    _assert_fails_naming(workdir, "casanovo", "train_baseline")


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"isotope_errors": [1, 0]}, "isotope_errors must be [lowest, highest]"),
        ({"charges": [2, 3], "charge_weights": [1.0]}, "one positive weight per charge"),
    ],
)
def test_instrument_settings_the_schema_cannot_check_stop_before_any_job(workdir, edit, needle):
    path = workdir / "config" / "instruments" / "orbitrap_hcd.yaml"
    _edit_yaml(path, lambda settings: settings.update(edit))
    _assert_fails_naming(workdir, "orbitrap_hcd", needle)


def test_unsafe_sample_names_and_zero_halt_threshold_are_rejected(workdir):
    sheet = workdir / "config" / "samples.tsv"
    text = sheet.read_text()
    sheet.write_text(text.replace("mouse_hcd\t", "..\t", 1))
    _assert_fails_naming(workdir, "..")
    sheet.write_text(text)
    _edit_yaml(workdir / "config" / "config.yaml", lambda c: c["denovo"].update(halt_threshold=0))
    _assert_fails_naming(workdir, "halt_threshold")
