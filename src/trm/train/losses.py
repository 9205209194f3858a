"""Training objective: deep supervision, precursor mass, spectrum matching, halting.

The loss lives apart from the model, as TRM keeps its loss head apart: the model returns
per-step answers, and this module decides what is right about them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from trm.chem import WATER_MASS
from trm.fragments import cleavage_masses, ion_mz
from trm.model import StepOutput
from trm.train.curriculum import supervision_weights
from trm.train.data import SpectrumBatch


@dataclass(frozen=True)
class LossWeights:
    """How much each part contributes to the objective.

    Attributes
    ----------
    step_base : float
        Supervision step ``t`` is weighted ``∝ step_base**t``. The default 1.25 gives the
        last of 8 steps 24% of the cross-entropy and the first 5%. A base of 2 (50% on
        the last) starves the early steps, whose answers the fragment evidence of the
        later steps builds on: after 1,500 CPU training steps 2, 1.5 and 1.25 reached
        0.379, 0.398 and 0.433 token accuracy (``benchmarks/train_curve.py --step-base``).
    precursor_mass : float
        Weight of the Huber loss (Da) between the expected and the measured precursor
        mass.
    spectrum : float
        Weight of the spectrum-matching loss (0 by default: on clean synthetic data it
        gave no signal; ``benchmarks/results/ablations.md``).
    halt : float
        Weight of the halting head's binary cross-entropy.
    """

    step_base: float = 1.25
    precursor_mass: float = field(default=0.01, metadata={"option": "precursor_mass_loss_weight"})
    spectrum: float = field(default=0.0, metadata={"option": "spectrum_loss_weight"})
    halt: float = field(default=0.5, metadata={"option": "halt_loss_weight"})


@dataclass
class LossResult:
    """The objective and its parts.

    Attributes
    ----------
    total : torch.Tensor
        Scalar to minimise.
    step_cross_entropy : torch.Tensor of shape (T,)
        Mean cross-entropy of each supervision step (detached).
    precursor_mass, spectrum, halt : torch.Tensor
        Scalars (detached), weighted over steps like the cross-entropy (halt: uniform).
    """

    total: torch.Tensor
    step_cross_entropy: torch.Tensor
    precursor_mass: torch.Tensor
    spectrum: torch.Tensor
    halt: torch.Tensor


def expected_residue_masses(logits: torch.Tensor, token_masses: torch.Tensor) -> torch.Tensor:
    """Probability-weighted mass of each position.

    Parameters
    ----------
    logits : torch.Tensor of shape (batch, max_length, n_tokens)
    token_masses : torch.Tensor of shape (n_tokens,)
        Mass of each token in Da (0 for the end class).

    Returns
    -------
    torch.Tensor of shape (batch, max_length)
    """
    return torch.softmax(logits.float(), dim=-1) @ token_masses


def precursor_mass_loss(
    logits: torch.Tensor, precursor_mass: torch.Tensor, token_masses: torch.Tensor
) -> torch.Tensor:
    """Huber loss (1 Da transition) between expected and measured neutral mass.

    Parameters
    ----------
    logits : torch.Tensor of shape (batch, max_length, n_tokens)
    precursor_mass : torch.Tensor of shape (batch,)
    token_masses : torch.Tensor of shape (n_tokens,)

    Returns
    -------
    torch.Tensor
        Scalar, mean over the batch.
    """
    expected = expected_residue_masses(logits, token_masses).sum(dim=1) + WATER_MASS
    return F.smooth_l1_loss(expected, precursor_mass.float(), beta=1.0)


def spectrum_matching_loss(
    logits: torch.Tensor,
    mz: torch.Tensor,
    peak_mask: torch.Tensor,
    token_masses: torch.Tensor,
    sigma_da: float,
) -> torch.Tensor:
    """One minus the kernel-matched fraction of expected singly charged b/y ions.

    Each expected fragment scores its best Gaussian match to an observed peak; fragments
    count with the probability that the peptide goes on past them.

    Parameters
    ----------
    logits : torch.Tensor of shape (batch, max_length, n_tokens)
    mz : torch.Tensor of shape (batch, n_peaks)
    peak_mask : torch.Tensor of shape (batch, n_peaks), bool
    token_masses : torch.Tensor of shape (n_tokens,)
    sigma_da : float
        Kernel width.

    Returns
    -------
    torch.Tensor
        Scalar in [0, 1].
    """
    probabilities = torch.softmax(logits.float(), dim=-1)
    residue_masses = probabilities @ token_masses
    b_ions, y_ions = (ion_mz(neutral, 1) for neutral in cleavage_masses(residue_masses))
    # A cleavage after position i exists when position i + 1 holds a residue.
    continues = torch.cat(
        [1.0 - probabilities[:, 1:, 0], probabilities.new_zeros(probabilities.shape[0], 1)],
        dim=1,
    )
    theoretical = torch.cat([b_ions, y_ions], dim=1)
    weight = torch.cat([continues, continues], dim=1)
    distance = theoretical[:, :, None] - mz[:, None, :].float()
    kernel = torch.exp(-0.5 * (distance / sigma_da) ** 2) * peak_mask[:, None, :]
    matched = kernel.amax(dim=2)
    return 1.0 - (weight * matched).sum(dim=1).div(weight.sum(dim=1).clamp_min(1e-6)).mean()


def answer_is_correct(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Whether every position's argmax equals the target: bool tensor of shape (batch,)."""
    return (logits.argmax(dim=-1) == tokens).all(dim=1)


def ranking_loss(
    log_likelihood: torch.Tensor,
    halt_logit: torch.Tensor,
    valid: torch.Tensor,
    halt_weight: float,
    totals: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Listwise loss of the model's scores of each spectrum's candidate answers.

    Column 0 holds the true peptide, the others wrong ones (the spectrum graph's
    candidates, :meth:`trm.train.loop.Trainer.ranking_answers`). The cross-entropy of a
    softmax over the answers' log-likelihoods puts the true one first among the
    candidates a decoder will ask the model to choose from; the halting head learns, by
    binary cross-entropy, that the true answer is right and the others are not.

    Parameters
    ----------
    log_likelihood, halt_logit : torch.Tensor of shape (batch, n_answers)
        From :meth:`trm.model.PeptideTRM.answer_scores`.
    valid : torch.Tensor of shape (batch, n_answers), bool
        Which answers exist (column 0, the true peptide, wherever the row is ranked at
        all).
    halt_weight : float
        Weight of the halting term.
    totals : (float, float), optional
        What the sums of the two terms are divided by (the spectra with a wrong candidate,
        the answers), when these rows are one process's share of a batch
        (:meth:`trm.train.loop.Ranking.local`); default: this batch's counts (means).

    Returns
    -------
    torch.Tensor
        Scalar; zero (attached) when no answer is valid. A spectrum without a wrong
        candidate adds its halting term only.
    """
    ranked = valid[:, 1:].any(dim=1)
    n_ranked, n_answers = totals or (int(ranked.sum()), int(valid.sum()))
    loss = log_likelihood.sum() * 0.0 + halt_logit.sum() * 0.0
    if bool(ranked.any()):
        scores = log_likelihood.float().masked_fill(~valid, float("-inf"))[ranked]
        loss = loss - torch.log_softmax(scores, dim=1)[:, 0].sum() / n_ranked
    if bool(valid.any()):
        target = torch.zeros_like(halt_logit, dtype=torch.float32)
        target[:, 0] = 1.0
        halt = F.binary_cross_entropy_with_logits(
            halt_logit.float()[valid], target[valid], reduction="sum"
        )
        loss = loss + halt_weight * halt / n_answers
    return loss


def compute_loss(
    outputs: list[StepOutput],
    batch: SpectrumBatch,
    token_masses: torch.Tensor,
    weights: LossWeights,
    sigma_da: float,
) -> LossResult:
    """Deep-supervision objective over all supervision steps.

    Parameters
    ----------
    outputs : list of StepOutput
        The model's answer after each supervision step.
    batch : SpectrumBatch
        Targets and spectra.
    token_masses : torch.Tensor of shape (n_tokens,)
    weights : LossWeights
    sigma_da : float
        Spectrum-matching kernel width at this step of the curriculum.

    Returns
    -------
    LossResult
    """
    step_weights = supervision_weights(len(outputs), weights.step_base).to(token_masses.device)
    zero = token_masses.new_zeros(())
    cross_entropy, mass, spectrum, halt = [], [], [], []
    for output in outputs:
        logits = output.logits.float()
        cross_entropy.append(F.cross_entropy(logits.transpose(1, 2), batch.tokens))
        mass.append(
            precursor_mass_loss(logits, batch.precursor_mass, token_masses)
            if weights.precursor_mass
            else zero
        )
        spectrum.append(
            spectrum_matching_loss(logits, batch.mz, batch.peak_mask, token_masses, sigma_da)
            if weights.spectrum
            else zero
        )
        target = answer_is_correct(logits.detach(), batch.tokens).float()
        halt.append(F.binary_cross_entropy_with_logits(output.halt_logit.float(), target))
    cross_entropy_t = torch.stack(cross_entropy)
    mass_loss = (step_weights * torch.stack(mass)).sum()
    spectrum_loss = (step_weights * torch.stack(spectrum)).sum()
    halt_loss = torch.stack(halt).mean()
    total = (
        (step_weights * cross_entropy_t).sum()
        + weights.precursor_mass * mass_loss
        + weights.spectrum * spectrum_loss
        + weights.halt * halt_loss
    )
    return LossResult(
        total=total,
        step_cross_entropy=cross_entropy_t.detach(),
        precursor_mass=mass_loss.detach(),
        spectrum=spectrum_loss.detach(),
        halt=halt_loss.detach(),
    )
