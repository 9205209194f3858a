"""trm.chem: masses, tokens and fragments agree with pyteomics."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pyteomics import mass

from trm import chem

CAM, OX = "C[Carbamidomethyl]", "M[Oxidation]"


@pytest.mark.parametrize(
    ("proforma", "tokens", "charge"),
    [
        ("PEPTIDEK/2", list("PEPTIDEK"), 2),
        ("AC[Carbamidomethyl]M[Oxidation]K", ["A", CAM, OX, "K"], None),
        ("AC[UNIMOD:4]M[UNIMOD:35]K", ["A", "C[Carbamidomethyl]", "M[Oxidation]", "K"], None),
        ("AC[+57.021]M[+15.995]N[+0.984]K", ["A", "C[Carbamidomethyl]", "M[Oxidation]",
                                             "N[Deamidated]", "K"], None),
        ("[Acetyl]-PEPK/3", ["[Acetyl]-", "P", "E", "P", "K"], 3),
        ("Q[Gln->pyro-Glu]PEPK", ["[Ammonia-loss]-", "Q", "P", "E", "P", "K"], None),
    ],
)  # fmt: skip
def test_parse_peptidoform_maps_modifications_by_mass(proforma, tokens, charge):
    assert chem.parse_peptidoform(proforma) == (tokens, charge)


@pytest.mark.parametrize(
    "proforma",
    [
        "PEPS[Phospho]K",
        "PEPBK",
        "PEPK-[Amidated]",
        "C[Carbamidomethyl]M[Oxidation][Oxidation]K",
        "(",
    ],
)
def test_unsupported_peptides_raise(proforma):
    with pytest.raises(chem.UnsupportedPeptideError):
        chem.parse_peptidoform(proforma)


def test_peptide_mass_matches_pyteomics():
    tokens, _ = chem.parse_peptidoform("AC[Carbamidomethyl]DEFM[Oxidation]K")
    expected = (
        mass.calculate_mass(sequence="ACDEFMK")
        + mass.calculate_mass(formula="H3C2NO")
        + mass.calculate_mass(formula="O")
    )
    assert chem.peptide_mass(tokens) == pytest.approx(expected, abs=1e-6)


def test_vocabulary_round_trip_and_limits():
    vocabulary = chem.Vocabulary()
    tokens = ["[Acetyl]-", "M[Oxidation]", "P", "E", "K"]
    ids = vocabulary.encode(tokens, max_length=8)
    assert ids.shape == (8,)
    assert vocabulary.decode(ids) == tokens
    assert (ids[len(tokens) :] == vocabulary.pad_id).all()
    with pytest.raises(chem.UnsupportedPeptideError, match="maximum"):
        vocabulary.encode(list("PEPTIDEK"), max_length=4)
    with pytest.raises(chem.UnsupportedPeptideError, match="not in the vocabulary"):
        vocabulary.encode(["C"], max_length=4)


def test_mz_mass_conversions_are_inverse():
    assert chem.mz_to_mass(chem.mass_to_mz(1000.0, 3), 3) == pytest.approx(1000.0)


@pytest.mark.parametrize("token", chem.DEFAULT_TOKENS)
def test_every_token_writes_valid_proforma_that_parses_back(token):
    from psm_utils import Peptidoform

    tokens = [token, "P", "E", "K"] if token.endswith("-") else ["P", token, "K"]
    text = chem.tokens_to_proforma(tokens, charge=2)
    assert Peptidoform(text).theoretical_mass == pytest.approx(chem.peptide_mass(tokens), abs=1e-4)
    assert chem.parse_peptidoform(text) == (tokens, 2)


def test_the_fast_path_parses_as_the_full_parser(monkeypatch):
    """Peptides as trm writes them skip psm_utils' parser; the answer must not change."""
    rng = np.random.default_rng(0)
    nterm = [t for t in chem.DEFAULT_TOKENS if t.endswith("-")]
    residues = [t for t in chem.DEFAULT_TOKENS if not t.endswith("-") and t != "<end>"]
    texts = []
    for _ in range(300):
        tokens = [str(rng.choice(nterm))] if rng.random() < 0.3 else []
        tokens += [str(t) for t in rng.choice(residues, size=int(rng.integers(1, 25)))]
        charge = [None, 1, 2, 3][int(rng.integers(4))]
        texts.append((chem.tokens_to_proforma(tokens, charge), (tokens, charge)))
    fast = [chem.parse_peptidoform(text) for text, _ in texts]
    monkeypatch.setattr(chem, "_PLAIN_PEPTIDOFORM", lambda: re.compile("(?!)"))
    full = [chem.parse_peptidoform(text) for text, _ in texts]
    assert fast == full == [expected for _, expected in texts]


def test_vocabulary_of_a_sample_preparation():
    assert chem.vocabulary_tokens(["Carbamidomethyl@C"]) == chem.DEFAULT_TOKENS
    plain = chem.vocabulary_tokens([])
    assert "C" in plain and "C[Carbamidomethyl]" not in plain
    assert len(plain) == len(chem.DEFAULT_TOKENS)
    with pytest.raises(chem.InputError, match="cannot sit on"):
        chem.vocabulary_tokens(["Carbamidomethyl@K"])


def test_residue_frequencies_are_those_of_the_training_proteomes():
    """RESIDUE_FREQUENCY is each standard residue's share of the three training proteomes
    shipped in resources/fasta (the held-out one left out), to four decimals."""
    from collections import Counter
    from pathlib import Path

    from trm.io.fasta import iter_fasta

    fasta = Path(__file__).resolve().parents[2] / "resources" / "fasta"
    counts: Counter[str] = Counter()
    for name in ("UP000002311-S.cerevisiae", "UP000008066-C.thermophilum", "UP000008524-T.brucei"):
        for protein in iter_fasta(fasta / f"{name}.fasta.gz"):
            counts.update(protein.sequence)
    total = sum(counts[a] for a in chem.STANDARD_RESIDUES)
    assert set(chem.RESIDUE_FREQUENCY) == set(chem.STANDARD_RESIDUES)
    for residue, frequency in chem.RESIDUE_FREQUENCY.items():
        assert frequency == pytest.approx(counts[residue] / total, abs=5e-5), residue
    assert sum(chem.RESIDUE_FREQUENCY.values()) == pytest.approx(1.0, abs=1e-3)
