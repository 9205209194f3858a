"""Complete Casanovo config files from the shipped template."""

from __future__ import annotations

import pytest
import yaml

from tests.unit.casanovo.conftest import CASANOVO_EXECUTABLE
from trm.casanovo import config as casanovo_config


def test_template_is_casanovo_default_config():
    """The shipped template has exactly the keys of the installed Casanovo's defaults."""
    installed = next(
        CASANOVO_EXECUTABLE.parents[1].glob("lib/python3*/site-packages/casanovo/config.yaml"),
        None,
    )
    if installed is None:
        pytest.skip("Casanovo's environment (.venv-casanovo) is not installed")
    with installed.open(encoding="utf-8") as handle:
        default = yaml.safe_load(handle)
    assert casanovo_config.load_template() == default


def test_written_config_has_every_key(tmp_path):
    template = casanovo_config.load_template()
    path = casanovo_config.write_config(casanovo_config.build_config(), tmp_path / "c.yaml")
    written = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert written.keys() == template.keys()
    assert written["residues"] == template["residues"]


def test_overrides_apply_in_order():
    instrument = {"precursor_tolerance_ppm": 10, "isotope_errors": [-1, 2], "charges": [2, 3]}
    config = casanovo_config.build_config(
        casanovo_config.instrument_overrides(instrument),
        casanovo_config.Architecture(dim_model=64, n_head=4, n_layers=2).overrides(),
        {"max_charge": 5, "accelerator": "cpu"},
    )
    assert config["precursor_mass_tol"] == 10.0
    assert config["isotope_error_range"] == [-1, 2]
    assert config["max_charge"] == 5  # the explicit override came last
    assert (config["dim_model"], config["n_head"], config["n_layers"]) == (64, 4, 2)
    assert config["dim_feedforward"] == 1024  # not set: Casanovo's default


@pytest.mark.parametrize(
    "override",
    [{"not_a_key": 1}, {"n_beams": "five"}, {"dim_model": 30, "n_head": 8}, {"shuffle": 1}],
)
def test_bad_overrides_are_refused(override):
    with pytest.raises(ValueError):
        casanovo_config.build_config(override)


def test_incomplete_config_is_refused(tmp_path):
    config = casanovo_config.build_config()
    del config["max_peaks"]
    with pytest.raises(ValueError, match="max_peaks"):
        casanovo_config.write_config(config, tmp_path / "c.yaml")


def test_training_budget_sets_epochs_and_schedule():
    schedule = casanovo_config.training_overrides(
        n_train_spectra=1000, max_spectra=3000, batch_size=100, n_validations=3
    )
    assert schedule["max_epochs"] == 3
    assert schedule["cosine_schedule_period_iters"] == 30
    assert schedule["warmup_iters"] == 3
    assert schedule["val_check_interval"] == 10
    one_pass = casanovo_config.training_overrides(50, 10, 32)
    assert one_pass["max_epochs"] == 1
