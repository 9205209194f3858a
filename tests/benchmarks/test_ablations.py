"""The ablation arms of benchmarks/ablations.py: each changes one thing of the recipe."""

from __future__ import annotations

import dataclasses
import sys

from tests.conftest import PROJECT_ROOT
from trm.chem import Vocabulary
from trm.model import build_model, count_parameters

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import ablations  # noqa: E402


def test_each_arm_differs_from_the_baseline_in_one_setting():
    arms = {arm.name: arm for arm in ablations.ARMS}
    assert len(arms) == len(ablations.ARMS) and "baseline" in arms
    baseline = arms["baseline"]
    base_model = baseline.model_config(0.02)
    base_train = ablations.train_config(baseline, 100, {"fitted": True})
    vocabulary = Vocabulary()
    for arm in ablations.ARMS:
        model = arm.model_config(0.02)
        train = ablations.train_config(arm, 100, {"fitted": True})
        model_changes = {
            f.name
            for f in dataclasses.fields(model)
            if getattr(model, f.name) != getattr(base_model, f.name)
        }
        train_changes = {
            name
            for name in ("loss", "fitted_noise")
            if getattr(train, name) != getattr(base_train, name)
        }
        assert model_changes == {s.split("=")[0] for s in arm.model_settings}, arm.name
        assert (arm.name == "baseline") == (not model_changes and not train_changes), arm.name
        assert count_parameters(build_model(model, vocabulary)) > 0
        assert arm.same_cost_as in (None, *arms), arm.name
    assert (
        ablations.train_config(arms["hand-set-noise"], 100, {"fitted": True}).fitted_noise is None
    )
    assert ablations.train_config(arms["step-base-2"], 100, None).loss.step_base == 2.0
