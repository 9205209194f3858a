"""Validation: per-step accuracy, refinement edits, and mass-matched sequencing metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trm.chem import Vocabulary
from trm.metrics import sequencing_metrics
from trm.model import StepOutput


def answer_mask(tokens: torch.Tensor) -> torch.Tensor:
    """Positions that decide the answer: the peptide's tokens and the end after them.

    Later end/pad positions are left out of token accuracy, which they would inflate.

    Parameters
    ----------
    tokens : torch.Tensor of shape (batch, max_length)

    Returns
    -------
    torch.Tensor of shape (batch, max_length), bool
    """
    lengths = (tokens != Vocabulary.pad_id).sum(dim=1, keepdim=True)
    return torch.arange(tokens.shape[1], device=tokens.device) <= lengths


@dataclass
class RefinementTracker:
    """Accumulates, over batches, how each supervision step changes the answer.

    Attributes
    ----------
    n_steps : int
        Supervision steps ``T``.
    """

    n_steps: int
    n_spectra: int = 0
    n_positions: int = 0
    correct_tokens: list[int] = field(default_factory=list)
    correct_peptides: list[int] = field(default_factory=list)
    edits: list[int] = field(default_factory=list)
    fixed: list[int] = field(default_factory=list)
    broken: list[int] = field(default_factory=list)
    halt_agreement: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("correct_tokens", "correct_peptides", "edits", "fixed", "broken"):
            setattr(self, name, [0] * self.n_steps)
        self.halt_agreement = [0] * self.n_steps

    def update(self, outputs: list[StepOutput], tokens: torch.Tensor) -> None:
        """Add one batch.

        Parameters
        ----------
        outputs : list of StepOutput
            The model's answer after each step.
        tokens : torch.Tensor of shape (batch, max_length)
        """
        mask = answer_mask(tokens)
        self.n_spectra += tokens.shape[0]
        self.n_positions += int(mask.sum())
        previous_ids = previous_right = None
        for step, output in enumerate(outputs):
            ids = output.logits.argmax(dim=-1)
            right = ids == tokens
            self.correct_tokens[step] += int((right & mask).sum())
            peptide_right = right.all(dim=1)
            self.correct_peptides[step] += int(peptide_right.sum())
            says_right = output.halt_logit > 0
            self.halt_agreement[step] += int((says_right == peptide_right).sum())
            if previous_ids is not None:
                self.edits[step] += int((ids != previous_ids).sum())
                self.fixed[step] += int((right & ~previous_right).sum())
                self.broken[step] += int((~right & previous_right).sum())
            previous_ids, previous_right = ids, right

    def summary(self) -> dict[str, float]:
        """Per-step rates, keyed ``<metric>_step<t>``.

        ``token_accuracy`` over answer positions (see :func:`answer_mask`);
        ``peptide_accuracy`` exact over all positions; ``edits``, ``fixed``, ``broken``:
        positions per spectrum whose argmax changed / turned right / turned wrong relative
        to the previous step (not defined for step 0); ``halt_accuracy``: how often the
        halting head's verdict (probability > 0.5) agrees with the exact-match truth.
        """
        spectra = max(self.n_spectra, 1)
        values: dict[str, float] = {}
        for step in range(self.n_steps):
            values[f"token_accuracy_step{step}"] = self.correct_tokens[step] / max(
                self.n_positions, 1
            )
            values[f"peptide_accuracy_step{step}"] = self.correct_peptides[step] / spectra
            values[f"halt_accuracy_step{step}"] = self.halt_agreement[step] / spectra
            if step:
                values[f"edits_step{step}"] = self.edits[step] / spectra
                values[f"fixed_step{step}"] = self.fixed[step] / spectra
                values[f"broken_step{step}"] = self.broken[step] / spectra
        return values


def decode_argmax(logits: torch.Tensor, vocabulary: Vocabulary) -> list[list[str]]:
    """Token lists of the per-position argmax, each cut at its first end class.

    Parameters
    ----------
    logits : torch.Tensor of shape (batch, max_length, n_tokens)
    """
    return [vocabulary.decode(row) for row in logits.argmax(dim=-1).tolist()]


@dataclass
class SequencingAccumulator:
    """Collects final answers and targets for :func:`trm.metrics.sequencing_metrics`."""

    vocabulary: Vocabulary
    predicted: list[list[str]] = field(default_factory=list)
    truth: list[list[str]] = field(default_factory=list)

    def update(self, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        """Add the final answers of a batch (logits of shape (batch, max_length, n_tokens))."""
        self.predicted.extend(decode_argmax(logits, self.vocabulary))
        self.truth.extend(self.vocabulary.decode(row) for row in tokens.tolist())

    def summary(self) -> dict[str, float]:
        """``aa_precision``, ``aa_recall``, ``peptide_recall``, ``peptide_precision``."""
        metrics = sequencing_metrics(self.predicted, self.truth)
        return {
            "aa_precision": metrics.aa_precision,
            "aa_recall": metrics.aa_recall,
            "peptide_recall": metrics.peptide_recall,
            "peptide_precision": metrics.peptide_precision,
        }
