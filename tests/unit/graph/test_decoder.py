"""trm.graph.decoder: the spectrum-graph decoder finds the best paths (brute force agrees),
returns a theoretical spectrum's own peptide first, and answers bad input with reasons."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from trm.chem import (
    PROTON_MASS,
    RESIDUE_FREQUENCY,
    Vocabulary,
    mass_fits_precursor,
    parse_peptidoform,
    peptide_mass,
    token_mass,
)
from trm.fragments import fragment_ladders, ion_mz
from trm.graph.decoder import (
    REASON_CHARGE,
    REASON_FEW_PEAKS,
    REASON_NO_PATH,
    REASON_PRECURSOR,
    GraphDecoder,
    GraphSettings,
    IonProbabilities,
    canonical_tokens,
    residue_log_prior,
)
from trm.noise_model import NoiseModelParameters

NOISE_MODEL = Path(__file__).resolve().parents[3] / "resources" / "noise" / "orbitrap_hcd.yaml"
TINY = ("G", "A", "S", "P", "V", "[Acetyl]-")


@pytest.fixture(scope="module")
def fitted() -> IonProbabilities:
    return IonProbabilities.from_noise_model(NoiseModelParameters.read(NOISE_MODEL))


def spectrum(
    peptide: str,
    charge: int = 2,
    drop_sites: tuple[int, ...] = (),
    noise: int = 0,
    seed: int = 0,
    doubly: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Peaks of a peptide's b and y ions (and random peaks), without the b and y ions of the
    cleavage sites in ``drop_sites`` (0 = after the first residue)."""
    tokens, _ = parse_peptidoform(peptide)
    b, y = fragment_ladders(tokens)
    keep = np.ones(len(b), dtype=bool)
    keep[list(drop_sites)] = False
    y_keep = keep[::-1]  # y(i) belongs to the site after residue n - i
    charges = (1, 2) if doubly else (1,)
    mz = np.concatenate([ion_mz(np.r_[b[keep], y[y_keep]], z) for z in charges])
    rng = np.random.default_rng(seed)
    mass = peptide_mass(tokens)
    mz = np.r_[mz, rng.uniform(60, mass, size=noise)]
    intensity = rng.uniform(0.2, 1.0, size=len(mz))
    order = np.argsort(mz)
    return mz[order], intensity[order], mass


def batch(spectra: list[tuple[np.ndarray, np.ndarray, float]], charges: list[int]):
    width = max(1, max(len(s[0]) for s in spectra))
    mz = np.zeros((len(spectra), width), dtype=np.float32)
    intensity = np.zeros_like(mz)
    counts = np.array([len(s[0]) for s in spectra])
    for row, (m, i, _) in enumerate(spectra):
        mz[row, : len(m)] = m
        intensity[row, : len(m)] = i
    return mz, intensity, counts, np.array([s[2] for s in spectra]), np.array(charges)


def peptide_of(vocabulary: Vocabulary, ids: np.ndarray) -> str:
    return "".join(vocabulary.decode(ids))


def all_fitting_peptides(
    vocabulary: Vocabulary, precursor: float, settings: GraphSettings
) -> np.ndarray:
    """Every peptide of the vocabulary (optional N-terminal modification first) that fits
    the precursor: compositions first, then their orderings. Shape (n, max_tokens)."""
    residues = [i for i in range(1, len(vocabulary)) if not vocabulary.is_nterm[i]]
    modifications = [0] + [i for i in range(1, len(vocabulary)) if vocabulary.is_nterm[i]]
    lightest = min(vocabulary.masses[residues])
    most = int(precursor / lightest) + 1
    rows = []
    for modification in modifications:
        for n in range(settings.min_residues, most + 1):
            for composition in itertools.combinations_with_replacement(residues, n):
                mass = vocabulary.masses[[modification, *composition]].sum()
                if not mass_fits_precursor(
                    mass + 18.0105646837,
                    precursor,
                    settings.precursor_tolerance_ppm,
                    settings.isotope_errors,
                ):
                    continue
                for order in set(itertools.permutations(composition)):
                    rows.append(([modification] if modification else []) + list(order))
    width = max(len(r) for r in rows) + 1
    table = np.zeros((len(rows), width), dtype=np.int64)
    for index, row in enumerate(rows):
        table[index, : len(row)] = row
    return table


def brute_force_top(decoder: GraphDecoder, arrays, row: int, k: int):
    """The k best representable peptides of one spectrum by path score, by brute force."""
    mz, intensity, counts, precursor, charge = arrays
    peptides = all_fitting_peptides(decoder.vocabulary, precursor[row], decoder.settings)
    scores = decoder.score_peptides(
        mz[row : row + 1],
        intensity[row : row + 1],
        counts[row : row + 1],
        precursor[row : row + 1],
        charge[row : row + 1],
        peptides[None],
    )
    valid = scores.representable[0]
    order = np.argsort(-scores.path_score[0][valid], kind="stable")[:k]
    chosen = peptides[valid][order]
    return [peptide_of(decoder.vocabulary, p) for p in chosen], scores.path_score[0][valid][order]


EXACT_CASES = [
    ("GASPVA", 2, (), 30, 0),
    ("PAGSVGA", 2, (2,), 60, 1),
    ("[Acetyl]-GAVSPAG", 2, (0, 3), 60, 2),
    ("VPSAGGSA", 3, (4,), 60, 3),
    ("SGAPVVAG", 2, (1, 5), 100, 4),
]


@pytest.mark.parametrize(("tolerance", "edge_residues"), [(0.02, 2), (0.3, 2), (0.3, 3)])
@pytest.mark.parametrize(("peptide", "charge", "drop", "noise", "seed"), EXACT_CASES)
def test_search_is_exact_against_brute_force(
    tolerance, edge_residues, peptide, charge, drop, noise, seed
):
    """Without the node beam and the mirror rule the search is exact: its K best paths
    are brute force's K best representable peptides, with the same path scores (at 0.3 Da
    there are hundreds to thousands of representable peptides, nodes merge widely and
    many theoretical masses share a node)."""
    vocabulary = Vocabulary(TINY)
    k = 8
    settings = GraphSettings.for_tolerance(
        tolerance,
        n_candidates=k,
        n_paths=k,
        n_rerank=k,
        node_beam=0,
        mirror_rule=False,
        node_peaks_per_ion=0,
        max_node_peaks=0,
        max_edge_residues=edge_residues,
        fallback_edge_residues=0,
    )
    decoder = GraphDecoder(vocabulary, settings, IonProbabilities.hand_set())
    arrays = batch([spectrum(peptide, charge, drop, noise, seed, doubly=charge > 2)], [charge])
    found = decoder.decode(*arrays).candidates[0]
    expected, expected_scores = brute_force_top(decoder, arrays, 0, k)
    assert len(expected) == k
    found_scores = np.sort([c.path_score for c in found])[::-1]
    np.testing.assert_allclose(found_scores, expected_scores, rtol=0, atol=1e-6)
    # the same peptides, but for ties at the last place
    cut = expected_scores[-1] + 1e-6
    assert {peptide_of(vocabulary, c.token_ids) for c in found if c.path_score > cut} == {
        p for p, score in zip(expected, expected_scores, strict=True) if score > cut
    }
    if tolerance < 0.1:
        # re-ranked by the final score, the true peptide is first (or tied first)
        best = max(c.score for c in found)
        assert peptide in {peptide_of(vocabulary, c.token_ids) for c in found if c.score == best}


def test_search_with_mirror_rule_finds_brute_force_best():
    """With the mirror rule (a heuristic in the search) the best path still agrees with
    brute force on these spectra, and path scores agree with score_peptides."""
    vocabulary = Vocabulary(TINY)
    settings = GraphSettings(
        n_candidates=4,
        n_paths=8,
        n_rerank=8,
        node_beam=0,
        node_peaks_per_ion=0,
        max_node_peaks=0,
        min_residues=4,
    )
    decoder = GraphDecoder(vocabulary, settings, IonProbabilities.hand_set())
    for seed, peptide in enumerate(["PAGSVGA", "SGAPVVAG", "GVASPAGS"]):
        arrays = batch([spectrum(peptide, 2, (1,), 15, seed)], [2])
        result = decoder.decode(*arrays)
        expected, scores = brute_force_top(decoder, arrays, 0, 1)
        assert max(c.path_score for c in result.candidates[0]) == pytest.approx(scores[0])


def test_theoretical_spectra_give_their_peptide_first(fitted):
    vocabulary = Vocabulary()
    decoder = GraphDecoder(vocabulary, GraphSettings(), fitted)
    peptides = ["PEPTLDEK", "VVQEQGTHPK", "LGEYGFQNALLVR", "M[Oxidation]DC[Carbamidomethyl]SAK"]
    charges = [2, 2, 3, 2]
    pairs = enumerate(zip(peptides, charges, strict=True))
    arrays = batch([spectrum(p, z, noise=20, seed=i) for i, (p, z) in pairs], charges)
    result = decoder.decode(*arrays)
    for peptide, candidates in zip(peptides, result.candidates, strict=True):
        assert peptide_of(vocabulary, candidates[0].token_ids) == peptide
        assert candidates[0].isotope_error == 0
        assert abs(candidates[0].mass_error_ppm) < 1e-3
        scores = [c.score for c in candidates]
        assert scores == sorted(scores, reverse=True)
        texts = [peptide_of(vocabulary, c.token_ids) for c in candidates]
        assert len(set(texts)) == len(texts)
        assert all(c.score <= c.path_score + 1e-9 for c in candidates)
        n_sites = sum(not vocabulary.is_nterm[i] for i in candidates[0].token_ids) - 1
        assert candidates[0].site_scores.shape == (n_sites,)


def test_a_missing_cleavage_is_bridged_by_a_two_residue_edge(fitted):
    vocabulary = Vocabulary()
    peptide = "LGEYGFQNALLVR"
    arrays = batch([spectrum(peptide, 2, drop_sites=(5,), noise=10)], [2])
    result = GraphDecoder(vocabulary, GraphSettings(), fitted).decode(*arrays)
    assert peptide_of(vocabulary, result.candidates[0][0].token_ids) == peptide
    one_residue = GraphDecoder(
        vocabulary, GraphSettings(max_edge_residues=1, fallback_edge_residues=0), fitted
    )
    answers = one_residue.decode(*arrays).candidates[0]
    assert peptide not in {peptide_of(vocabulary, c.token_ids) for c in answers}


def test_an_isotope_error_is_found(fitted):
    vocabulary = Vocabulary()
    mz, intensity, mass = spectrum("VVQEQGTHPK", 2, noise=10)
    arrays = batch([(mz, intensity, mass + 1.00335483507)], [2])
    (best,) = GraphDecoder(vocabulary, GraphSettings(), fitted).decode(*arrays).best
    assert peptide_of(vocabulary, best.token_ids) == "VVQEQGTHPK"
    assert best.isotope_error == 1


def test_identical_masses_collapse_to_one_token():
    vocabulary = Vocabulary()
    canonical = canonical_tokens(vocabulary)
    tokens = vocabulary.tokens
    assert tokens[canonical[vocabulary.index["I"]]] == "L"
    assert tokens[canonical[vocabulary.index["N[Deamidated]"]]] == "D"
    assert tokens[canonical[vocabulary.index["Q[Deamidated]"]]] == "E"
    assert tokens[canonical[vocabulary.index["K"]]] == "K"
    decoder = GraphDecoder(vocabulary, GraphSettings())
    arrays = batch([spectrum("PEPTIDEK", 2, noise=10)], [2])
    answers = decoder.decode(*arrays).candidates[0]
    used = {t for c in answers for t in vocabulary.decode(c.token_ids)}
    assert "I" not in used and "N[Deamidated]" not in used and "Q[Deamidated]" not in used
    assert peptide_of(vocabulary, answers[0].token_ids) == "PEPTLDEK"


def test_scores_of_given_peptides_match_the_search(fitted):
    vocabulary = Vocabulary()
    decoder = GraphDecoder(vocabulary, GraphSettings(), fitted)
    arrays = batch([spectrum("VVQEQGTHPK", 2, (3,), noise=30, seed=5)], [2])
    candidates = decoder.decode(*arrays).candidates[0]
    width = max(len(c.token_ids) for c in candidates) + 1
    ids = np.zeros((1, len(candidates) + 1, width), dtype=np.int64)
    for index, candidate in enumerate(candidates):
        ids[0, index, : len(candidate.token_ids)] = candidate.token_ids
    scores = decoder.score_peptides(*arrays, ids)
    np.testing.assert_allclose(scores.score[0, :-1], [c.score for c in candidates], atol=1e-6)
    np.testing.assert_allclose(
        scores.path_score[0, :-1], [c.path_score for c in candidates], atol=1e-6
    )
    assert scores.representable[0, :-1].all() and scores.fits[0, :-1].all()
    assert np.isnan(scores.score[0, -1])  # an empty row
    for index, candidate in enumerate(candidates):
        n = len(candidate.site_scores)
        np.testing.assert_allclose(scores.site_scores[0, index, :n], candidate.site_scores)


def test_a_peak_explains_one_site_only():
    """With the precursor mass the sum of two prefix masses, the b ion of each of the two
    sites is the y ion of the other: the path score counts those peaks twice, the final
    score once."""
    vocabulary = Vocabulary(TINY)
    settings = GraphSettings(mirror_rule=False, isotope_errors=(0, 0))
    decoder = GraphDecoder(vocabulary, settings, IonProbabilities.hand_set())
    tokens = ["G", "A", "S", "P", "V", "A"]
    prefix = np.cumsum([token_mass(t) for t in tokens])
    precursor = prefix[0] + prefix[2]
    mz = np.sort(ion_mz(prefix[:-1], 1))
    ids = np.array([[[vocabulary.index[t] for t in tokens]]])
    arrays = batch([(mz, np.ones_like(mz), precursor)], [2])
    scores = decoder.score_peptides(*arrays, ids)
    assert scores.score[0, 0] < scores.path_score[0, 0] - 1
    # with the mirror rule the path score no longer counts them twice either
    mirrored = GraphDecoder(vocabulary, GraphSettings(isotope_errors=(0, 0)),
                            IonProbabilities.hand_set())  # fmt: skip
    again = mirrored.score_peptides(*arrays, ids)
    assert again.path_score[0, 0] < scores.path_score[0, 0] - 1


@pytest.mark.parametrize(
    ("peaks", "precursor", "charge", "reason"),
    [
        (0, 800.0, 2, REASON_FEW_PEAKS),
        (2, 800.0, 2, REASON_FEW_PEAKS),
        (10, np.nan, 2, REASON_PRECURSOR),
        (10, 0.0, 2, REASON_PRECURSOR),
        (10, -5.0, 2, REASON_PRECURSOR),
        (10, 1e6, 2, REASON_PRECURSOR),
        (10, 800.0, 0, REASON_CHARGE),
        (10, 800.0, -2, REASON_CHARGE),
        (10, 800.0, 9, REASON_CHARGE),
        (10, 800.0, np.nan, REASON_CHARGE),
        (10, 130.0, 2, REASON_NO_PATH),
    ],
)
def test_bad_inputs_give_reasons(peaks, precursor, charge, reason):
    decoder = GraphDecoder(Vocabulary(), GraphSettings())
    rng = np.random.default_rng(0)
    mz = np.sort(rng.uniform(100, 700, size=(1, max(peaks, 1))), axis=1)
    arrays = (mz, np.ones_like(mz), np.array([peaks]), np.array([precursor]), np.array([charge]))
    result = decoder.decode(*arrays)
    assert result.candidates == [[]]
    assert result.reasons == [reason]
    scores = decoder.score_peptides(*arrays, np.array([[[1, 2, 3, 4, 0]]]))
    assert scores.reasons == [reason if reason != REASON_NO_PATH else None]


def test_odd_peaks_and_charges_do_not_break_the_batch(fitted):
    vocabulary = Vocabulary()
    decoder = GraphDecoder(vocabulary, GraphSettings(batch_size=3), fitted)
    good = spectrum("VVQEQGTHPK", 2, noise=5)
    broken_mz = good[0].copy()
    broken_mz[:3] = [np.nan, -1.0, np.inf]
    spectra = [
        good,
        (broken_mz, good[1], good[2]),
        (good[0], np.full_like(good[1], np.nan), good[2]),  # no usable intensity
        spectrum("VVQEQGTHPK", 1, noise=5),
        spectrum("LGEYGFQNALLVR", 5, noise=5, doubly=True),
        (np.zeros(0), np.zeros(0), 900.0),
    ]
    arrays = batch(spectra, [2, 2, 2, 1, 5, 3])
    result = decoder.decode(*arrays)
    assert len(result.candidates) == len(result.reasons) == 6
    assert peptide_of(vocabulary, result.candidates[0][0].token_ids) == "VVQEQGTHPK"
    assert peptide_of(vocabulary, result.candidates[1][0].token_ids) == "VVQEQGTHPK"
    assert result.reasons[2] == REASON_FEW_PEAKS
    assert peptide_of(vocabulary, result.candidates[3][0].token_ids) == "VVQEQGTHPK"
    assert peptide_of(vocabulary, result.candidates[4][0].token_ids) == "LGEYGFQNALLVR"
    assert result.reasons[5] == REASON_FEW_PEAKS
    empty = decoder.decode(np.zeros((0, 4)), np.zeros((0, 4)), [], [], [])
    assert empty.candidates == [] and empty.reasons == []
    none = decoder.score_peptides(*arrays, np.zeros((6, 2, 0), dtype=np.int64))
    assert np.isnan(none.score).all() and not none.fits.any()


def test_coarse_tolerance_still_decodes(fitted):
    """An ion-trap setting (0.5 Da) on clean spectra: the peptide is among the answers."""
    vocabulary = Vocabulary()
    decoder = GraphDecoder(vocabulary, GraphSettings.for_tolerance(0.5), fitted)
    arrays = batch([spectrum("VVQEQGTHPK", 2, noise=5)], [2])
    answers = decoder.decode(*arrays).candidates[0]
    assert "VVQEQGTHPK" in {peptide_of(vocabulary, c.token_ids) for c in answers}


def test_probabilities_come_from_the_noise_model(fitted):
    parameters = NoiseModelParameters.read(NOISE_MODEL)
    observed = np.asarray(parameters.fragment_observed)
    counts = np.asarray(parameters.fragment_observed_n)
    for series, values in ((0, fitted.b), (1, fitted.y)):
        for position, value in enumerate(values):
            weights = counts[series, :, position]
            expected = (observed[series, :, position] * weights).sum() / weights.sum()
            assert value == pytest.approx(expected)
    assert fitted.double == tuple(parameters.double_charge_observed)
    assert fitted.a == tuple(parameters.a_ion_observed)
    assert fitted.water_loss == tuple(parameters.loss_observed[0])
    assert token_mass("L") == token_mass("I")


def test_sort_helpers_match_numpy() -> None:
    """The faster grouping and ranking helpers give numpy's answers, ties included."""
    from trm.graph.decoder import _first_of_groups, _grouped_order

    rng = np.random.default_rng(3)
    for n, groups in ((1, 1), (50, 3), (2000, 2000), (70_000, 70_000), (3000, 2**40)):
        group = rng.integers(0, groups, n)
        score = rng.integers(0, 20, n).astype(np.float64)
        score[::7] = -0.0
        score[::11] = np.nan
        assert np.array_equal(_grouped_order(score, group), np.lexsort((score, group)))
        _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
        mine_first, mine_group = _first_of_groups(group)
        assert np.array_equal(mine_first, first)
        assert np.array_equal(mine_group, inverse)


def test_residue_prior_is_each_residues_background_frequency():
    vocabulary = Vocabulary()
    prior = residue_log_prior(vocabulary)
    index = vocabulary.index
    frequency = RESIDUE_FREQUENCY
    assert prior[index["G"]] == pytest.approx(np.log(frequency["G"]))
    # L stands for L and I; a modified residue of its own mass takes its base residue's
    assert prior[index["L"]] == pytest.approx(np.log(frequency["L"] + frequency["I"]))
    assert prior[index["I"]] == prior[index["L"]]
    assert prior[index["C[Carbamidomethyl]"]] == pytest.approx(np.log(frequency["C"]))
    assert prior[index["M[Oxidation]"]] == pytest.approx(np.log(frequency["M"]))
    assert prior[index["N[Deamidated]"]] == pytest.approx(np.log(frequency["D"]))
    assert prior[0] == 0.0 and prior[index["[Acetyl]-"]] == 0.0
    # two glycines are rarer than the asparagine they weigh
    assert 2 * prior[index["G"]] < prior[index["N"]]


def test_residue_prior_ranks_the_one_residue_above_equal_mass_splits(fitted):
    """A stray peak where N would split into G+G (and a Q into G+A): the paths differ by
    exactly the prior, and with it the true peptide passes the readings that split both."""
    vocabulary = Vocabulary()
    peptide = "VLEYNFQAK"
    mz, intensity, mass = spectrum(peptide, 2, noise=10, seed=3)
    stray = sum(token_mass(t) for t in "VLEYG") + PROTON_MASS + 0.01
    order = np.argsort(np.r_[mz, stray])
    arrays = batch([(np.r_[mz, stray][order], np.r_[intensity, 0.5][order], mass)], [2])
    readings = ["VLEYNFQAK", "VLEYGGFQAK", "VLEYGGFGAAK"]
    tokens = [vocabulary.encode(parse_peptidoform(p)[0], 12) for p in readings]
    scores = {}
    for weight in (0.0, 1.0):
        decoder = GraphDecoder(vocabulary, GraphSettings(residue_prior_weight=weight), fitted)
        scores[weight] = decoder.score_peptides(*arrays, np.array([tokens])).score[0]
        candidates = decoder.decode(*arrays).candidates[0]
        ranked = [peptide_of(vocabulary, c.token_ids) for c in candidates]
        if weight == 0.0:
            assert ranked.index("VLEYGGFGAAK") < ranked.index(peptide)
        else:
            assert ranked.index(peptide) < ranked.index("VLEYGGFGAAK")
    prior = residue_log_prior(vocabulary)
    expected = [prior[t].sum() for t in tokens]
    np.testing.assert_allclose(scores[1.0] - scores[0.0], expected, atol=1e-9)


def test_the_first_two_cleavages_unseen_are_bridged_from_the_start(fitted):
    """Without b or y ions of the bonds after the first and second residues (as in a few
    percent of HCD spectra), the peptide is reachable only by a three-residue edge
    from the start: a candidate by default, not with start edges of two residues; its
    scores call it representable only where such edges exist."""
    vocabulary = Vocabulary()
    peptide = "LGEYGFQNALLVR"
    arrays = batch([spectrum(peptide, 2, drop_sites=(0, 1), noise=10)], [2])
    found = GraphDecoder(vocabulary, GraphSettings(), fitted).decode(*arrays).candidates[0]
    answers = [peptide_of(vocabulary, c.token_ids) for c in found]
    assert peptide in answers
    # the first three residues' other orders tie with it on the b/y evidence
    assert {a for a in answers if a.endswith(peptide[3:])} >= {"LGEYGFQNALLVR", "GLEYGFQNALLVR"}
    two = GraphSettings(max_start_residues=2, fallback_edge_residues=0)
    shorter = GraphDecoder(vocabulary, two, fitted).decode(*arrays).candidates[0]
    assert peptide not in {peptide_of(vocabulary, c.token_ids) for c in shorter}
    ids = np.zeros((1, 1, 14), dtype=np.int64)
    ids[0, 0, :13] = [vocabulary.index[t] for t in peptide]
    assert (
        GraphDecoder(vocabulary, GraphSettings(), fitted)
        .score_peptides(*arrays, ids)
        .representable[0, 0]
    )
    assert (
        not GraphDecoder(vocabulary, two, fitted).score_peptides(*arrays, ids).representable[0, 0]
    )
    # a run of two unseen bonds inside the peptide still needs three-residue edges
    inside = batch([spectrum(peptide, 2, drop_sites=(5, 6), noise=10)], [2])
    assert (
        not GraphDecoder(vocabulary, GraphSettings(), fitted)
        .score_peptides(*inside, ids)
        .representable[0, 0]
    )
    with pytest.raises(ValueError, match="max_start_residues"):
        GraphSettings(max_start_residues=4)


@pytest.mark.parametrize(
    ("peptide", "drop"), [("VASPGAG", (0,)), ("GASPVA", ()), ("PAGSVGA", (0, 1))]
)
def test_one_residue_edges_with_start_edges_are_exact(peptide, drop):
    """With one-residue edges between nodes, the start edges of two and three residues are
    longer than the plain ones: every order of them is found (those of three residues
    through the expansion at the end), as brute force finds them."""
    vocabulary = Vocabulary(TINY)
    k = 8
    settings = GraphSettings.for_tolerance(
        0.02, n_candidates=k, n_paths=k, n_rerank=k, node_beam=0, mirror_rule=False,
        node_peaks_per_ion=0, max_node_peaks=0, max_edge_residues=1, fallback_edge_residues=0,
    )  # fmt: skip
    decoder = GraphDecoder(vocabulary, settings, IonProbabilities.hand_set())
    arrays = batch([spectrum(peptide, 2, drop, 30, 0)], [2])
    found = decoder.decode(*arrays).candidates[0]
    expected, expected_scores = brute_force_top(decoder, arrays, 0, k)
    assert peptide in expected
    found_scores = np.sort([c.path_score for c in found])[::-1]
    np.testing.assert_allclose(found_scores, expected_scores, rtol=0, atol=1e-6)
    cut = expected_scores[-1] + 1e-6 if len(expected) == k else -np.inf
    assert {peptide_of(vocabulary, c.token_ids) for c in found if c.path_score > cut} == {
        p for p, score in zip(expected, expected_scores, strict=True) if score > cut
    }


def test_weak_ladders_outside_crowded_windows_make_nodes(fitted):
    """Intense peaks crowded into one m/z window take every global node rank, so a weak
    b/y ladder elsewhere makes no nodes and the peptide no path; the most intense peaks of
    each 100 m/z window (``node_window_peaks``) bring the ladder back."""
    vocabulary = Vocabulary()
    peptide = "LGEYGFQNALLVR"
    mz, _, mass = spectrum(peptide, 2)
    rng = np.random.default_rng(3)
    crowd = rng.uniform(700.0, 800.0, size=90)
    peaks = (
        np.r_[mz, crowd],
        np.r_[rng.uniform(0.02, 0.05, size=len(mz)), rng.uniform(0.5, 1.0, size=len(crowd))],
        mass,
    )
    order = np.argsort(peaks[0])
    arrays = batch([(peaks[0][order], peaks[1][order], mass)], [2])

    def answers(settings: GraphSettings) -> set[str]:
        found = GraphDecoder(vocabulary, settings, fitted).decode(*arrays).candidates[0]
        return {peptide_of(vocabulary, c.token_ids) for c in found}

    assert peptide in answers(GraphSettings(node_window_peaks=3))
    assert peptide not in answers(GraphSettings())  # the default: none
    with pytest.raises(ValueError, match="node_window_peaks"):
        GraphSettings(node_window_peaks=-1)
    with pytest.raises(ValueError, match="node_window_da"):
        GraphSettings(node_window_da=0)
