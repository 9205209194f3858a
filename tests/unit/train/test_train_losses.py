"""The deep-supervision objective and its auxiliary losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from trm.model import StepOutput
from trm.train.data import SpectrumDataset
from trm.train.evaluation import RefinementTracker, SequencingAccumulator, answer_mask
from trm.train.losses import (
    LossWeights,
    compute_loss,
    precursor_mass_loss,
    ranking_loss,
    spectrum_matching_loss,
)


@pytest.fixture
def batch(spectrum_table, vocabulary):
    return SpectrumDataset.from_table(spectrum_table, vocabulary, 16, 32, 10).batch(range(6))


@pytest.fixture
def masses(vocabulary):
    return torch.tensor(vocabulary.masses, dtype=torch.float32)


def one_hot_logits(tokens: torch.Tensor, n_tokens: int, scale: float = 50.0) -> torch.Tensor:
    return torch.nn.functional.one_hot(tokens, n_tokens).float() * scale


def test_precursor_mass_loss_vanishes_for_the_true_peptide(batch, masses):
    logits = one_hot_logits(batch.tokens, len(masses))
    loss = precursor_mass_loss(logits, batch.precursor_mass, masses)
    assert float(loss) < 1e-3
    shifted = precursor_mass_loss(logits, batch.precursor_mass + 10, masses)
    assert float(shifted) == pytest.approx(9.5, abs=1e-2)


def test_spectrum_matching_rewards_the_true_peptide(batch, masses):
    logits = one_hot_logits(batch.tokens, len(masses))
    right = spectrum_matching_loss(logits, batch.mz, batch.peak_mask, masses, sigma_da=0.5)
    assert float(right) < 1e-3
    wrong_tokens = batch.tokens.clone()
    wrong_tokens[:, 2] = torch.where(wrong_tokens[:, 2] == 1, 20, 1)  # swap in G or W
    wrong = one_hot_logits(wrong_tokens, len(masses))
    worse = spectrum_matching_loss(wrong, batch.mz, batch.peak_mask, masses, sigma_da=0.5)
    assert float(worse) > 0.2
    wide = spectrum_matching_loss(wrong, batch.mz, batch.peak_mask, masses, sigma_da=50.0)
    assert float(wide) < float(worse)  # a wide kernel forgives: the early curriculum


def test_deep_supervision_weights_and_halting(batch, masses):
    n_tokens = len(masses)
    right = one_hot_logits(batch.tokens, n_tokens, scale=20.0)
    uniform = torch.zeros_like(right)
    outputs = [
        StepOutput(uniform, torch.zeros(6)),
        StepOutput(right, torch.full((6,), 10.0)),
    ]
    weights = LossWeights(step_base=2.0, precursor_mass=0.0, spectrum=0.0, halt=0.0)
    result = compute_loss(outputs, batch, masses, weights, sigma_da=1.0)
    log_n = torch.log(torch.tensor(float(n_tokens)))
    assert_close(result.step_cross_entropy[0], log_n)
    assert float(result.step_cross_entropy[1]) < 1e-6
    assert_close(result.total, log_n / 3, atol=1e-5, rtol=1e-5)
    # Step 0 is wrong and says 50%; step 1 is right and sure of it.
    halting = compute_loss(outputs, batch, masses, LossWeights(halt=1.0), 1.0)
    assert_close(halting.halt, torch.log(torch.tensor(2.0)) / 2, atol=1e-4, rtol=1e-4)


def test_loss_gradients_reach_the_logits(batch, masses):
    logits = torch.zeros(6, 16, len(masses), requires_grad=True)
    outputs = [StepOutput(logits, torch.zeros(6, requires_grad=True))]
    weights = LossWeights(precursor_mass=0.1, spectrum=0.1, halt=0.5)
    compute_loss(outputs, batch, masses, weights, sigma_da=5.0).total.backward()
    assert logits.grad.abs().sum() > 0


def test_answer_mask_covers_the_peptide_and_its_end():
    tokens = torch.tensor([[3, 4, 0, 0, 0], [5, 6, 7, 8, 0]])
    assert answer_mask(tokens).tolist() == [
        [True, True, True, False, False],
        [True, True, True, True, True],
    ]


def test_refinement_tracker_counts_edits(vocabulary):
    tokens = torch.tensor([[3, 4, 5, 0], [3, 4, 0, 0]])
    n_tokens = len(vocabulary)

    def logits(ids):
        return one_hot_logits(torch.tensor(ids), n_tokens)

    outputs = [
        StepOutput(logits([[3, 9, 9, 0], [3, 4, 0, 0]]), torch.tensor([-1.0, 1.0])),
        StepOutput(logits([[3, 4, 9, 0], [3, 4, 0, 0]]), torch.tensor([-1.0, 1.0])),
        StepOutput(logits([[3, 4, 5, 0], [3, 9, 0, 0]]), torch.tensor([1.0, 1.0])),
    ]
    tracker = RefinementTracker(3)
    tracker.update(outputs, tokens)
    summary = tracker.summary()
    assert summary["token_accuracy_step0"] == pytest.approx(5 / 7)
    assert summary["token_accuracy_step2"] == pytest.approx(6 / 7)
    assert summary["peptide_accuracy_step1"] == pytest.approx(1 / 2)
    assert summary["edits_step1"] == pytest.approx(1 / 2)
    assert summary["edits_step2"] == pytest.approx(2 / 2)
    assert summary["fixed_step2"] == pytest.approx(1 / 2)
    assert summary["broken_step2"] == pytest.approx(1 / 2)
    assert summary["halt_accuracy_step0"] == 1.0 and summary["halt_accuracy_step2"] == 0.5
    assert "edits_step0" not in summary

    sequencing = SequencingAccumulator(vocabulary)
    sequencing.update(outputs[-1].logits, tokens)
    assert sequencing.summary()["peptide_recall"] == pytest.approx(0.5)


def test_ranking_loss_is_the_softmax_cross_entropy_of_the_true_answer_plus_halting():
    log_likelihood = torch.tensor([[-1.0, -3.0, -2.0], [-5.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])
    halt_logit = torch.tensor([[2.0, -2.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    loss = ranking_loss(log_likelihood, halt_logit, valid, halt_weight=0.5)
    first = -torch.log_softmax(torch.tensor([-1.0, -3.0, -2.0]), 0)[0]
    second = -torch.log_softmax(torch.tensor([-5.0, -1.0]), 0)[0]
    # the third spectrum has no wrong candidate: no ranking term, but its halting term
    logits = torch.tensor([2.0, -2.0, 0.0, 0.0, 1.0, 1.0])
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    halt = F.binary_cross_entropy_with_logits(logits, targets)
    assert torch.isclose(loss, (first + second) / 2 + 0.5 * halt)
    # no wrong candidate anywhere: the halting term alone
    only_true = torch.tensor([[True, False, False]] * 2)
    alone = ranking_loss(log_likelihood[:2], halt_logit[:2], only_true, halt_weight=0.5)
    expected = F.binary_cross_entropy_with_logits(torch.tensor([2.0, 0.0]), torch.ones(2))
    assert torch.isclose(alone, 0.5 * expected)
    # nothing valid: zero, still attached to the graph
    scores = torch.zeros(2, 3, requires_grad=True)
    empty = ranking_loss(scores, scores, torch.zeros(2, 3, dtype=torch.bool), 0.0)
    assert float(empty.detach()) == 0.0 and empty.requires_grad
