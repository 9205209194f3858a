"""trm.denovo.rescore: spectrum-match features of candidates and the logistic rescorer."""

from __future__ import annotations

import numpy as np
import pytest

from trm import chem
from trm.denovo.decode import DecodedPeptide
from trm.denovo.rescore import FEATURES, Rescorer, match_features
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
