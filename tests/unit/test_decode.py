"""trm.decode: constrained decoding returns peptides that fit the precursor."""

from __future__ import annotations

import numpy as np
import pytest

from trm import chem
from trm.decode import DecodingSettings, beam_decode, greedy_decode

VOCABULARY = chem.Vocabulary()
LENGTH = 16


def _answer(tokens: list[str], confidence: float = 0.9) -> np.ndarray:
    """Log-probabilities (length, n_tokens) that favour ``tokens`` then the end class."""
    ids = VOCABULARY.encode(tokens, LENGTH)
    probs = np.full((LENGTH, len(VOCABULARY)), (1 - confidence) / (len(VOCABULARY) - 1))
    probs[np.arange(LENGTH), ids] = confidence
    return np.log(probs)


def _precursor(tokens: list[str], isotope: int = 0) -> float:
    return chem.peptide_mass(tokens) + isotope * chem.C13_SPACING


def test_beam_returns_the_favoured_peptide_when_it_fits():
    tokens = list("PEPTIDEK")
    log_probs = _answer(tokens)[None]
    (result,) = beam_decode(
        log_probs, np.array([_precursor(tokens)]), VOCABULARY, DecodingSettings()
    )
    assert VOCABULARY.decode(result.token_ids) == tokens
    assert abs(result.mass_error_ppm) < 1e-3
    assert result.isotope_error == 0
    np.testing.assert_allclose(result.token_probabilities, 0.9)
    assert result.log_probability == pytest.approx(np.log(0.9) * LENGTH)


def test_beam_repairs_a_wrong_token_that_breaks_the_mass():
    truth = list("PEPTIDEK")
    log_probs = _answer(truth)
    # The model prefers G over the true T at position 3, slightly.
    g, t = VOCABULARY.index["G"], VOCABULARY.index["T"]
    log_probs[3, g], log_probs[3, t] = np.log(0.5), np.log(0.4)
    precursor = np.array([_precursor(truth)])
    (greedy,) = greedy_decode(log_probs[None], precursor, VOCABULARY)
    assert VOCABULARY.decode(greedy.token_ids) == list("PEPGIDEK")
    (beam,) = beam_decode(log_probs[None], precursor, VOCABULARY, DecodingSettings())
    assert VOCABULARY.decode(beam.token_ids) == truth


@pytest.mark.parametrize("isotope", [0, 1])
def test_isotope_error_is_accepted_and_reported(isotope):
    tokens = list("LGGNEQVTR")
    precursor = np.array([_precursor(tokens, isotope)])
    settings = DecodingSettings(isotope_errors=(0, 1))
    (result,) = beam_decode(_answer(tokens)[None], precursor, VOCABULARY, settings)
    assert VOCABULARY.decode(result.token_ids) == tokens
    assert result.isotope_error == isotope


def test_no_fitting_peptide_gives_none():
    tokens = list("PEPTIDEK")
    precursor = np.array([_precursor(tokens) + 50.0])
    settings = DecodingSettings(beam_size=4)
    (result,) = beam_decode(_answer(tokens, 0.99)[None], precursor, VOCABULARY, settings)
    assert result is None or abs(result.mass_error_ppm) <= settings.precursor_tolerance_ppm


def test_every_beam_result_fits_the_precursor():
    rng = np.random.default_rng(0)
    batch = 32
    log_probs = np.log(rng.dirichlet(np.ones(len(VOCABULARY)) * 0.3, size=(batch, LENGTH)))
    peptides = [
        list(rng.choice(list("GASPVTLNDKEMFRYW"), size=rng.integers(6, 14))) for _ in range(batch)
    ]
    precursor = np.array([_precursor(p) for p in peptides])
    settings = DecodingSettings(beam_size=32, precursor_tolerance_ppm=20)
    results = beam_decode(log_probs, precursor, VOCABULARY, settings)
    found = [r for r in results if r is not None]
    assert found, "the beam should find some fitting peptide in random answers"
    for result, mass in zip(results, precursor, strict=True):
        if result is None:
            continue
        tokens = VOCABULARY.decode(result.token_ids)
        peptide = chem.peptide_mass(tokens)
        errors = [(peptide - (mass - i * chem.C13_SPACING)) / mass * 1e6 for i in (0, 1)]
        assert min(abs(e) for e in errors) <= 20 + 1e-6
        assert not any(t.endswith("-") for t in tokens[1:])


def test_nterm_modification_only_first():
    tokens = ["[Acetyl]-", *"PEPTIDEK"]
    log_probs = _answer(tokens)
    (result,) = beam_decode(
        log_probs[None], np.array([_precursor(tokens)]), VOCABULARY, DecodingSettings()
    )
    assert VOCABULARY.decode(result.token_ids) == tokens
    # Greedy never puts an N-terminal modification after the first position.
    log_probs[4, VOCABULARY.index["[Acetyl]-"]] = 0.0
    (greedy,) = greedy_decode(log_probs[None], np.array([_precursor(tokens)]), VOCABULARY)
    assert not any(t.endswith("-") for t in VOCABULARY.decode(greedy.token_ids)[1:])


def test_greedy_gives_nothing_for_an_answer_without_residues():
    # An N-terminal modification followed by "end" is no peptide (and no valid ProForma).
    nterm = next(t for t in VOCABULARY.tokens if t.endswith("-"))
    only_modification = _answer([nterm])
    blank = _answer([])
    results = greedy_decode(
        np.stack([only_modification, blank]), np.array([500.0, 500.0]), VOCABULARY
    )
    assert results == [None, None]
