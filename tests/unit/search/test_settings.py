"""The search settings: what they accept, what they refuse, and their options."""

from __future__ import annotations

import argparse

import pytest

from trm.chem import KNOWN_MODIFICATIONS
from trm.errors import InputError
from trm.options import add_options, from_options
from trm.search.settings import MODIFICATION_SITES, SearchSettings


def test_defaults_search_the_vocabulary_modifications():
    settings = SearchSettings()
    names = {m.name for m in KNOWN_MODIFICATIONS}
    assert set(settings.fixed_modifications) | set(settings.variable_modifications) <= names
    assert set(MODIFICATION_SITES) <= names
    assert settings.fdr == 0.01


@pytest.mark.parametrize(("fdr", "targets"), [(0.01, 100), (0.05, 20), (0.1, 10), (0.03, 34)])
def test_min_targets_is_the_smallest_count_whose_inverse_reaches_the_fdr(fdr, targets):
    settings = SearchSettings(fdr=fdr)
    assert settings.min_targets() == targets
    assert 1 / targets <= fdr < 1 / (targets - 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fdr": 0.0}, "fdr must lie between 0 and 1"),
        ({"variable_modifications": ("Phospho",)}, r"\['Phospho'\] are not modifications"),
        ({"variable_modifications": ("Carbamyl+Ammonia-loss",)}, "cannot be searched"),
        ({"fixed_modifications": ("Oxidation",), "variable_modifications": ("Oxidation",)},
         "both fixed and variable"),
        ({"min_peptide_length": 10, "max_peptide_length": 9}, "empty range"),
        ({"min_peptide_mass": 600.0, "max_peptide_mass": 500.0}, "empty range"),
        ({"score": "xcorr"}, "score must be one of"),
    ],
)  # fmt: skip
def test_invalid_settings_are_refused_naming_the_key(changes, message):
    with pytest.raises(InputError, match=message):
        SearchSettings(**changes)


def test_options_round_trip_including_empty_modification_lists():
    parser = argparse.ArgumentParser()
    add_options(parser, SearchSettings)
    args = parser.parse_args(
        ["--fdr", "0.05", "--fixed-modifications", "--variable-modifications", "Oxidation",
         "Deamidated", "--score", "hyperscore"]
    )  # fmt: skip
    settings = from_options(SearchSettings, args)
    assert settings.fdr == 0.05
    assert settings.fixed_modifications == ()
    assert settings.variable_modifications == ("Oxidation", "Deamidated")
    assert settings.score == "hyperscore"
    assert from_options(SearchSettings, parser.parse_args([])) == SearchSettings()
