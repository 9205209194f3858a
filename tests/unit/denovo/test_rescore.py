"""trm.denovo.rescore: spectrum-match features of candidates and the logistic rescorer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from trm import chem
from trm.denovo.decode import DecodedPeptide
from trm.denovo.rescore import (
    CHOICE_FEATURES,
    DECODER_FEATURES,
    FEATURES,
    FORCED_CHOICE,
    UNSCORABLE_LOG_PROBABILITY,
    Choice,
    Rescorer,
    intensity_features,
    match_features,
)
from trm.fragments import fragment_mz

VOCABULARY = chem.Vocabulary()


def _candidate(peptide: str, log_probability: float) -> DecodedPeptide:
    tokens, _ = chem.parse_peptidoform(peptide)
    return DecodedPeptide(
        token_ids=np.array([VOCABULARY.index[t] for t in tokens]),
        log_probability=log_probability,
        token_probabilities=np.ones(len(tokens)),
        mass_error_ppm=1.0,
        isotope_error=0,
    )


def _features(spectrum_of: str, candidates: list[str], tolerance: float = 0.02):
    tokens, _ = chem.parse_peptidoform(spectrum_of)
    ions = fragment_mz(tokens, charges=(1,))
    mz = np.sort(np.concatenate([ions["b1"], ions["y1"]]))[None, :]
    features, present = match_features(
        [[_candidate(p, -float(i)) for i, p in enumerate(candidates)]],
        np.array([0.5]),
        mz,
        np.ones_like(mz),
        np.array([mz.shape[1]]),
        np.array([2]),
        VOCABULARY,
        tolerance,
        20.0,
        n_candidates=4,
    )
    return {name: features[0, :, i] for i, name in enumerate(FEATURES)}, present[0]


def test_the_true_peptide_explains_its_spectrum():
    # PEPTLDEK has the mass of PEPTIDEK (I = L) and the same ions; EPPTIDEK swaps two
    # residues: its first b ions and last y ions miss.
    features, present = _features("PEPTIDEK", ["PEPTIDEK", "EPPTIDEK", "PEPTLDEK"])
    assert present.tolist() == [True, True, True, False]
    assert features["fragment_coverage"][0] == pytest.approx(1.0)
    assert features["explained_intensity"][0] == pytest.approx(1.0)
    assert features["longest_ladder"][0] == pytest.approx(1.0)
    assert features["fragment_coverage"][2] == pytest.approx(1.0)
    assert features["fragment_coverage"][1] < 1.0
    assert features["longest_ladder"][1] < 1.0
    assert features["model_gap"].tolist()[:3] == [0.0, -1.0, -2.0]


def test_the_fragment_tolerance_decides_what_matches():
    # Ions of PEPTIDEK shifted by 0.1 Da match at 0.5 Da (ion trap), not at 0.02.
    tokens, _ = chem.parse_peptidoform("PEPTIDEK")
    ions = fragment_mz(tokens, charges=(1,))
    mz = (np.sort(np.concatenate([ions["b1"], ions["y1"]])) + 0.1)[None, :]
    for tolerance, coverage in ((0.02, 0.0), (0.5, 1.0)):
        features, _ = match_features(
            [[_candidate("PEPTIDEK", 0.0)]], np.array([0.5]), mz, np.ones_like(mz),
            np.array([mz.shape[1]]), np.array([2]), VOCABULARY, tolerance, 20.0, 1,
        )  # fmt: skip
        assert features[0, 0, FEATURES.index("fragment_coverage")] == pytest.approx(coverage)


def test_rescorer_learns_and_round_trips():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, len(FEATURES)))
    correct = features[:, 3] + 0.2 * rng.normal(size=400) > 0.5
    rescorer = Rescorer.fit(features, correct)
    probability = rescorer(features)
    assert probability[correct].mean() > 0.7 > 0.3 > probability[~correct].mean()
    again = Rescorer.from_dict(rescorer.to_dict())
    np.testing.assert_allclose(again(features), probability)
    stale = {**rescorer.to_dict(), "features": ["something", "else"]}
    with pytest.raises(ValueError, match="recalibrate"):
        Rescorer.from_dict(stale)


MS2PIP_DIR = Path(__file__).resolve().parents[3] / "resources" / "ms2pip"


@pytest.fixture(scope="module")
def predictor():
    from trm.synth.ms2pip_models import Ms2pipPredictor

    return Ms2pipPredictor("HCD2019-distilled", MS2PIP_DIR, processes=1)


def test_predicted_intensities_tell_the_true_order_from_a_swap(predictor):
    """On a spectrum made of MS2PIP's own prediction for PEPTIDEK (b and y ions, charge
    1), the true peptide agrees with it perfectly; EPPTIDEK, which swaps the first two
    residues, and PEPTIDKE, which swaps the last two, agree less."""
    from trm.synth.spectra import Peptidoform, ms2pip_proforma

    tokens, _ = chem.parse_peptidoform("PEPTIDEK")
    (ions,) = predictor.predict([ms2pip_proforma(Peptidoform(tuple(tokens), 2))])
    fragments = fragment_mz(tokens, charges=(1,))
    mz = np.r_[fragments["b1"], fragments["y1"]]
    intensity = np.r_[2.0 ** ions["b"], 2.0 ** ions["y"]] - 0.001
    order = np.argsort(mz)
    candidates = [[_candidate(p, 0.0) for p in ("PEPTIDEK", "EPPTIDEK", "PEPTIDKE")]]
    out = intensity_features(
        candidates, mz[order][None, :], intensity[order][None, :], np.array([len(mz)]),
        np.array([2]), VOCABULARY, predictor, 0.02, 4,
    )  # fmt: skip
    cosine, correlation = out[0, :, 0], out[0, :, 1]
    assert cosine[0] == pytest.approx(1.0, abs=1e-6)
    assert correlation[0] == pytest.approx(1.0, abs=1e-6)
    assert cosine[1] < cosine[0] and cosine[2] < cosine[0]
    assert correlation[1] < correlation[0] and correlation[2] < correlation[0]
    assert out[0, 3].tolist() == [0.0, 0.0]  # no fourth candidate


def test_choice_ranks_within_spectra_and_round_trips():
    """One feature tells each spectrum's right candidate from its others; another only
    tells spectra apart (it is higher in spectra whose candidates hold the answer). The
    choice follows the first and ignores the second."""
    rng = np.random.default_rng(1)
    n, width = 300, 5
    features = rng.normal(size=(n, width, len(FEATURES)))
    present = np.ones((n, width), dtype=bool)
    present[::7, 3:] = False
    right = rng.integers(0, 3, size=n)
    correct = np.zeros((n, width), dtype=bool)
    answered = rng.random(n) < 0.6
    correct[np.flatnonzero(answered), right[answered]] = True
    within = FEATURES.index(CHOICE_FEATURES[0])
    across = FEATURES.index(CHOICE_FEATURES[1])
    features[np.arange(n), right, within] += 2.0
    features[..., across] += 3.0 * answered[:, None]
    choice = Choice.fit(features, present, correct)
    assert choice is not None
    weights = dict(zip(choice.names, choice.weights, strict=True))
    assert weights[CHOICE_FEATURES[0]] > 5 * abs(weights[CHOICE_FEATURES[1]])
    rescorer = Rescorer.fit(features[present], correct[present], DECODER_FEATURES["hybrid"])
    chosen = dataclasses.replace(rescorer, choice=choice).choose(features, present)
    assert (chosen[answered] == right[answered]).mean() > 0.8
    again = Rescorer.from_dict(dataclasses.replace(rescorer, choice=choice).to_dict())
    np.testing.assert_array_equal(again.choose(features, present), chosen)
    assert again.uses_intensities and not rescorer.uses_intensities
    # without a choice the most probable candidate is the answer
    probability = np.where(present, rescorer(features), -np.inf)
    np.testing.assert_array_equal(rescorer.choose(features, present), probability.argmax(1))
    assert Choice.fit(features, present, np.zeros_like(correct)) is None


def test_fixed_choice_is_the_graph_score_plus_the_forced_log_likelihood():
    """The teacher-forced hybrid's choice: the unweighted sum, fitted on nothing; an
    unscored candidate (the floor) loses to every scored one; it round-trips."""
    features = np.zeros((2, 3, len(FEATURES)))
    graph, forced = FEATURES.index("graph_score"), FEATURES.index("forced_log_probability")
    features[0, :, graph] = [10.0, 12.0, 30.0]
    features[0, :, forced] = [-1.0, -4.0, UNSCORABLE_LOG_PROBABILITY]
    features[1, :, graph] = [5.0, 5.0, 1.0]  # a tie in graph score, broken by the model
    features[1, :, forced] = [-3.0, -2.0, -0.5]
    choice = Choice.fixed()
    assert choice.names == FORCED_CHOICE
    np.testing.assert_allclose(choice(features)[0], [9.0, 8.0, 30.0 + UNSCORABLE_LOG_PROBABILITY])
    present = np.ones((2, 3), dtype=bool)
    rescorer = Rescorer.fit(
        features.reshape(-1, len(FEATURES)), np.arange(6) % 2 == 0, DECODER_FEATURES["hybrid"]
    )
    with_choice = dataclasses.replace(rescorer, choice=choice)
    np.testing.assert_array_equal(with_choice.choose(features, present), [0, 1])
    again = Rescorer.from_dict(with_choice.to_dict())
    np.testing.assert_array_equal(again.choose(features, present), [0, 1])
    assert not again.uses_intensities
