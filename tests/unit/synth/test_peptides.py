"""Digestion, I/L-aware deduplication, splits by peptide and peptidoform sampling."""

from __future__ import annotations

import gzip
from collections import Counter

import numpy as np
import pytest

from trm.errors import InputError
from trm.synth.peptides import (
    DigestionSettings,
    PeptidoformSampler,
    SyntheticInputError,
    digest_fasta,
    split_peptides,
)

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def test_digestion_dedups_i_and_l(write_fasta) -> None:
    # PEPTIDEK and PEPTLDEK weigh the same: only one of them is kept
    path = write_fasta({"a": "PEPTLDEKGGGSSSGGGR", "b": "PEPTIDEKWWWWWWWR"})
    result = digest_fasta(path, DigestionSettings(missed_cleavages=0))
    assert "PEPTIDEK" in result.peptides
    assert "PEPTLDEK" not in result.peptides
    assert result.peptides == sorted(result.peptides)
    assert result.n_proteins == 2


def test_digestion_reads_gzip(tmp_path, write_fasta) -> None:
    plain = write_fasta({"a": "MAAAAPEPTIDEKGGGSSSGGGR"})
    packed = tmp_path / "proteins.fasta.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    settings = DigestionSettings()
    assert digest_fasta(packed, settings).peptides == digest_fasta(plain, settings).peptides


def test_non_standard_letters_are_counted_not_kept(write_fasta) -> None:
    path = write_fasta(
        {
            "ok": "GGGGGGGGKAAAAAAAAR",
            "odd": "".join(f"GGG{letter}GGGK" for letter in "BJOUXZ"),
        }
    )
    result = digest_fasta(path, DigestionSettings(missed_cleavages=0))
    assert result.peptides == ["AAAAAAAAR", "GGGGGGGGK"]
    assert {reason for reason in result.skipped} == {
        f"non-standard residue {letter}" for letter in "BJOUXZ"
    }


def test_overlong_peptides_are_counted(write_fasta) -> None:
    path = write_fasta({"long": "A" * 40 + "K" + "G" * 8 + "R"})
    result = digest_fasta(path, DigestionSettings(missed_cleavages=0, max_length=30))
    assert result.peptides == ["GGGGGGGGR"]
    assert result.skipped["longer than max_length"] == 1


@pytest.mark.parametrize("content", ["", ">only_a_header\n"])
def test_empty_fasta_is_an_error(tmp_path, content: str) -> None:
    path = tmp_path / "empty.fasta"
    path.write_text(content)
    with pytest.raises(SyntheticInputError, match="no p"):
        digest_fasta(path, DigestionSettings())


def test_fasta_without_usable_peptide_is_an_error(write_fasta) -> None:
    path = write_fasta({"x": "XXXXXXXXXXXXXXXK"})
    with pytest.raises(SyntheticInputError, match="no peptide"):
        digest_fasta(path, DigestionSettings())


def test_bad_digestion_settings() -> None:
    with pytest.raises(SyntheticInputError, match="unknown enzyme"):
        DigestionSettings(enzyme="trypsinogen")
    with pytest.raises(SyntheticInputError, match="empty"):
        DigestionSettings(min_length=10, max_length=9)


def test_splits_are_disjoint_complete_and_stable(yeast_fasta) -> None:
    peptides = digest_fasta(yeast_fasta, DigestionSettings()).peptides
    splits = split_peptides(peptides, FRACTIONS, seed=3)
    assert sorted(p for members in splits.values() for p in members) == sorted(peptides)
    sets = {name: {p.replace("I", "L") for p in members} for name, members in splits.items()}
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    share = len(splits["train"]) / len(peptides)
    assert 0.75 < share < 0.85
    # same seed, same assignment; a peptide stays put when others are added or removed
    again = split_peptides(peptides[::2], FRACTIONS, seed=3)
    for name, members in again.items():
        assert set(members) <= set(splits[name])
    other = split_peptides(peptides, FRACTIONS, seed=4)
    assert other["test"] != splits["test"]


def test_i_l_twins_land_in_the_same_split() -> None:
    twins = ["PEPTIDEK", "PEPTLDEK", "LLLLLLLK", "IIIIIIIK", "ILILILIK"]
    for seed in range(20):
        splits = split_peptides(twins, FRACTIONS, seed=seed)
        owners = {name for name, members in splits.items() if "PEPTIDEK" in members}
        assert owners == {name for name, members in splits.items() if "PEPTLDEK" in members}
        owners = {name for name, members in splits.items() if "LLLLLLLK" in members}
        assert owners == {name for name, members in splits.items() if "ILILILIK" in members}


def test_sampler_applies_fixed_and_variable_modifications() -> None:
    sampler = PeptidoformSampler(
        variable_probability=0.5, max_variable_mods=1, charges=(2, 3), charge_weights=(3, 1)
    )
    rng = np.random.default_rng(0)
    charges: Counter = Counter()
    oxidised = 0
    for _ in range(2000):
        tokens, charge = sampler.sample("MCMCMK", rng)
        charges[charge] += 1
        assert tokens[1] == tokens[3] == "C[Carbamidomethyl]"
        n_ox = tokens.count("M[Oxidation]")
        assert n_ox <= 1
        oxidised += n_ox
    assert set(charges) == {2, 3}
    assert 0.7 < charges[2] / 2000 < 0.8
    # P(at least one of three sites) = 1 - 0.5**3
    assert 0.83 < oxidised / 2000 < 0.92


def test_sampler_n_terminal_modification() -> None:
    sampler = PeptidoformSampler(
        variable_modifications=("Acetyl@N-term",), variable_probability=1.0
    )
    tokens, _ = sampler.sample("PEPTIDEK", np.random.default_rng(0))
    assert tokens[0] == "[Acetyl]-"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fixed_modifications": ("Phospho@S",)}, "not in the model vocabulary"),
        ({"fixed_modifications": ("Oxidation@C",)}, "cannot sit on"),
        ({"fixed_modifications": ()}, "give C a fixed modification"),
        ({"charges": ()}, "positive"),
        ({"charges": (2, 3), "charge_weights": (1,)}, "one weight"),
        ({"variable_probability": 1.5}, "within"),
    ],
)
def test_sampler_refuses_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        PeptidoformSampler(**kwargs)
