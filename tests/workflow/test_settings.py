"""The config schema's training settings are options of their commands, so a setting
lives in its dataclass and its schema entry only (the rules pass the config sections
through, ``setting_options`` in ``workflow/rules/common.smk``)."""

from __future__ import annotations

import yaml

from tests.workflow.helpers import PROJECT_ROOT
from trm.options import settings_of
from trm.search.settings import SearchSettings
from trm.train.config import TrainConfig
from trm.train.finetune import FinetuneConfig

#: Keys of each section the workflow itself reads (as in the rules' setting_options).
WORKFLOW_KEYS = {
    "pretrain": {"noise", "init", "gpus"},
    "finetune": {"enabled"},
    "search": {"fasta", "candidate_score"},
}
COMMANDS = {"pretrain": TrainConfig, "finetune": FinetuneConfig, "search": SearchSettings}


def test_every_training_key_of_the_schema_is_an_option_of_its_command():
    schema = yaml.safe_load((PROJECT_ROOT / "workflow/schemas/config.schema.yaml").read_text())
    for section, settings in COMMANDS.items():
        keys = set(schema["properties"][section]["properties"]) - WORKFLOW_KEYS[section]
        options = {s.name for s in settings_of(settings)}
        assert keys <= options, f"{section}: {sorted(keys - options)} are no options"


def test_the_rules_pass_the_same_workflow_keys():
    rules = (PROJECT_ROOT / "workflow/rules/train.smk").read_text()
    assert 'setting_options("pretrain", ("noise", "init", "gpus"))' in rules
    assert 'setting_options("finetune", ("enabled",))' in rules


def test_search_settings_have_the_schemas_defaults():
    """The schema's defaults are the dataclass's (a setting left out of the config means
    the same to the workflow and to `trm search` run by hand)."""
    schema = yaml.safe_load((PROJECT_ROOT / "workflow/schemas/config.schema.yaml").read_text())
    properties = schema["properties"]["search"]["properties"]
    for setting in settings_of(SearchSettings):
        default = properties[setting.name]["default"]
        expected = list(setting.default) if isinstance(setting.default, tuple) else setting.default
        assert default == expected, setting.name
    common = (PROJECT_ROOT / "workflow/rules/common.smk").read_text()
    assert 'SEARCH_WORKFLOW_KEYS = ("fasta", "candidate_score")' in common
