"""trm.denovo.decode: the exact precursor-mass search returns peptides that fit the precursor, and
the best one when it says so."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trm import chem
from trm.chem import mass_fits_precursor
from trm.denovo.decode import (
    REASON_NO_FITTING_LENGTH,
    DecodingSettings,
    MassFeasibility,
    greedy_decode,
    search,
)


def beam_decode(log_probs, precursor, vocabulary, settings):
    """The best candidate of each spectrum (None without one)."""
    return search(log_probs, precursor, vocabulary, settings).best


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


def test_a_precursor_no_peptide_can_fit_is_reported_as_such():
    settings = DecodingSettings(beam_size=4, min_residues=4)
    # Lighter than any 4 residues, and heavier than any 15 (window 16 positions).
    light = chem.peptide_mass(list("GGG"))
    heavy = chem.peptide_mass(list("W" * 16))
    result = search(
        np.stack([_answer(list("PEPTIDEK"))] * 2), np.array([light, heavy]), VOCABULARY, settings
    )
    assert result.best == [None, None]
    assert result.reasons == [REASON_NO_FITTING_LENGTH] * 2


def test_a_wrong_mass_still_gets_the_best_fitting_answer():
    # The favoured peptide is 50 Da off: the search answers with another one that fits.
    tokens = list("PEPTIDEK")
    precursor = np.array([_precursor(tokens) + 50.0])
    settings = DecodingSettings(beam_size=4)
    (result,) = beam_decode(_answer(tokens, 0.99)[None], precursor, VOCABULARY, settings)
    assert result is not None
    assert abs(result.mass_error_ppm) <= settings.precursor_tolerance_ppm


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


def test_search_answers_every_spectrum_that_can_fit():
    # Random answers and random precursors of real peptides: a plain beam often ends with
    # no fitting candidate; the feasibility pruning keeps every beam completable.
    rng = np.random.default_rng(3)
    batch = 24
    log_probs = np.log(rng.dirichlet(np.ones(len(VOCABULARY)) * 0.3, size=(batch, LENGTH)))
    peptides = [
        list(rng.choice(list("GASPVTLNDKEMFRYW"), size=rng.integers(6, 12))) for _ in range(batch)
    ]
    precursor = np.array([_precursor(p) for p in peptides])
    result = search(log_probs, precursor, VOCABULARY, DecodingSettings(beam_size=4))
    assert all(result.candidates)


def test_mass_feasibility_never_rejects_a_real_sum():
    masses = tuple(sorted({float(m) for m in VOCABULARY.masses[1:] if m > 60}))
    feasibility = MassFeasibility(masses, max_residues=12)
    rng = np.random.default_rng(0)
    for _ in range(300):
        count = int(rng.integers(0, 7))
        total = float(sum(rng.choice(masses, size=count))) if count else 0.0
        assert feasibility.fillable(np.array([total - 0.001]), np.array([total + 0.001]), count)[0]
        assert feasibility.fillable(np.array([total - 0.001]), np.array([total + 0.001]), 6)[0]
    # Nothing fills a window lighter than the lightest residue, or too heavy for the slots.
    assert not feasibility.fillable(np.array([10.0]), np.array([20.0]), 6)[0]
    assert not feasibility.fillable(np.array([1000.0]), np.array([1001.0]), 3)[0]


#: A small vocabulary and window, so that every peptide can be enumerated.
_SMALL = chem.Vocabulary(("G", "A", "S", "P", "V", "[Acetyl]-"))
_SMALL_LENGTH = 7


def _brute_force(log_probs, precursor, settings):
    """Highest score of any fitting peptide, by enumerating every token sequence."""
    best = -np.inf
    tokens = np.arange(1, len(_SMALL))
    for n in range(1, _SMALL_LENGTH):
        sequences = np.array(list(itertools.product(tokens, repeat=n)))
        nterm = _SMALL.is_nterm[sequences]
        valid = ~nterm[:, 1:].any(axis=1) & ((~nterm).sum(axis=1) >= settings.min_residues)
        mass = _SMALL.masses[sequences].sum(axis=1) + chem.WATER_MASS
        valid &= mass_fits_precursor(
            mass, precursor, settings.precursor_tolerance_ppm, settings.isotope_errors
        )
        if valid.any():
            scores = log_probs[np.arange(n), sequences[valid]].sum(axis=1)
            best = max(best, scores.max() + log_probs[n:, 0].sum())
    return best


@pytest.mark.parametrize("beam_size,max_beam_size", [(1, 1), (2, 8), (4096, 4096)])
def test_search_equals_brute_force_when_certified(beam_size, max_beam_size):
    """Exactness: a certified answer (and every answer of an exhaustive beam) is the
    highest-scoring fitting peptide that enumeration finds."""
    rng = np.random.default_rng(beam_size)
    settings = DecodingSettings(beam_size=beam_size, max_beam_size=max_beam_size)
    n_certified = 0
    for _ in range(40):
        log_probs = np.log(rng.dirichlet(np.ones(len(_SMALL)) * 0.3, size=_SMALL_LENGTH))
        peptide = rng.integers(1, len(_SMALL) - 1, size=int(rng.integers(4, 7)))
        precursor = (
            _SMALL.masses[peptide].sum()
            + chem.WATER_MASS
            + int(rng.integers(0, 2)) * chem.C13_SPACING
            + rng.normal(0, 0.005)
        )
        expected = _brute_force(log_probs, precursor, settings)
        result = search(log_probs[None], np.array([precursor]), _SMALL, settings)
        (best,) = result.best
        if result.certified[0] or beam_size >= 4096:
            n_certified += 1
            if np.isfinite(expected):
                assert best is not None and best.log_probability == pytest.approx(expected)
            else:
                assert best is None
        if best is not None:
            assert best.log_probability <= expected + 1e-9
    if beam_size >= 4096:
        assert n_certified == 40  # an exhaustive beam always certifies
    else:
        assert n_certified > 0


def test_keeping_prefixes_asks_the_knapsack_in_priority_order_with_the_same_answer():
    """The search tests completability of the best prefixes first; what it keeps, and the
    bound of what it drops, must be what testing every prefix gives."""
    from trm.denovo.decode import _keep_feasible

    masses = tuple(sorted({float(m) for m in VOCABULARY.masses[1:] if m > 60}))
    feasibility = MassFeasibility(masses, max_residues=12)
    rng = np.random.default_rng(3)
    batch, width, keep, slots = 40, 120, 8, 3
    priority = rng.normal(size=(batch, width))
    priority[rng.random((batch, width)) < 0.2] = -np.inf
    mass = rng.uniform(100, 900, size=(batch, width))
    low = rng.uniform(300, 1200, size=(batch, 1)) + np.array([0.0, -chem.C13_SPACING])
    high = low + 0.02
    best, kept_priority, dropped = _keep_feasible(
        priority, mass, low, high, feasibility, slots, keep
    )
    possible = np.zeros((batch, width), dtype=bool)
    for isotope in range(2):
        possible |= feasibility.fillable(
            low[:, isotope, None] - mass, high[:, isotope, None] - mass, slots
        )
    masked = np.where(possible, priority, -np.inf)
    expected = -np.sort(-masked, axis=1)
    assert (np.isfinite(masked).sum(axis=1) < keep).any()  # some spectra keep fewer
    np.testing.assert_array_equal(np.sort(kept_priority, axis=1)[:, ::-1], expected[:, :keep])
    np.testing.assert_array_equal(dropped, expected[:, keep])
    finite = np.isfinite(kept_priority)
    rows = np.nonzero(finite)[0]
    np.testing.assert_array_equal(priority[rows, best[finite]], kept_priority[finite])
