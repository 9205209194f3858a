"""The recursive model: spectrum encoder, recursive core with an explicit carry, heads.

One forward pass encodes the spectrum once, then refines a non-autoregressive answer
``T`` times (supervision steps). Each supervision step adds a step embedding to the latent
``z``, runs ``n`` latent steps ``z <- norm(z + f(z, y, x))`` that cross-attend to the
spectrum ``x``, and then updates the answer by a gated residual ``y <- y + gate * delta``.
Both updates see the answer as a soft token embedding plus the m/z of the b and y ions
that its current argmax implies, encoded like the peaks, so a step can check the answer
against the spectrum. With ``fragment_evidence`` (the default) they also see, for every
position and candidate residue, whether the ions that residue would produce there, given
the rest of the answer, are among the peaks (:mod:`trm.model.evidence`); that lookup also
adds its own logits to the answer update. Training supervises every step's answer; the
carry is detached in between, so the gradient of step ``t`` flows through step ``t`` only
(and into the shared encoder).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from trm.fragments import cleavage_masses, ion_mz, singly_charged_complement
from trm.model.config import ModelConfig
from trm.model.evidence import FragmentEvidence, PeakIndex, flanking_masses
from trm.model.layers import (
    Block,
    MemoryProjection,
    SinusoidalMassEncoding,
    relative_intensity,
)

#: Logit of a draft's token over the others: a confident but revisable starting answer.
DRAFT_LOGIT = 4.0


def draft_logits(token_ids: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """Starting answers of the recursion from token ids (training drafts, decoder drafts).

    Parameters
    ----------
    token_ids : torch.Tensor of shape (batch, max_length), int64
        Each answer's tokens, the end class (0) after them.
    n_tokens : int

    Returns
    -------
    torch.Tensor of shape (batch, max_length, n_tokens)
        One-hot times :data:`DRAFT_LOGIT`.
    """
    return torch.nn.functional.one_hot(token_ids, n_tokens).float() * DRAFT_LOGIT


@dataclass
class Carry:
    """The recursion state handed from one supervision step to the next.

    Attributes
    ----------
    z : torch.Tensor of shape (batch, max_length, hidden)
        Per-position latent.
    y : torch.Tensor of shape (batch, max_length, n_tokens)
        Per-position answer logits over the vocabulary (index 0: end/pad).
    """

    z: torch.Tensor
    y: torch.Tensor

    def detach(self) -> Carry:
        """The same state, cut from the autograd graph."""
        return Carry(self.z.detach(), self.y.detach())


@dataclass
class EncodedSpectrum:
    """The encoder's output, with each core block's key/value projection cached.

    Attributes
    ----------
    states : torch.Tensor of shape (batch, n_peaks + 2, hidden)
        Precursor mass token, charge token, then peaks.
    mask : torch.Tensor of shape (batch, n_peaks + 2)
        True for real tokens.
    projections : list of pair of torch.Tensor
        One projected memory per core block.
    precursor_mass : torch.Tensor of shape (batch,)
        Neutral precursor mass (Da), for the answer's fragment features.
    peaks : PeakIndex or None
        The peaks sorted for ion lookups (with ``fragment_evidence``), one row per
        encoded spectrum: :meth:`select` leaves them as they are.
    origin : torch.Tensor of shape (batch,), int64, or None
        The row of ``peaks`` (the encoded spectrum) each row of the batch is; None: the
        same row. Rows of one spectrum share their ion lookups
        (:meth:`RecursiveCore.fragment_context`).
    """

    states: torch.Tensor
    mask: torch.Tensor
    projections: list[MemoryProjection]
    precursor_mass: torch.Tensor
    peaks: PeakIndex | None = None
    origin: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> EncodedSpectrum:
        """The rows ``index`` of the batch (for early exit, or one row per answer)."""
        if index.dtype == torch.bool:
            index = torch.nonzero(index).squeeze(1)
        origin = index if self.origin is None else self.origin[index]
        return EncodedSpectrum(
            self.states[index],
            self.mask[index],
            [(key[index], value[index]) for key, value in self.projections],
            self.precursor_mass[index],
            self.peaks,
            origin,
        )

    def origins(self) -> torch.Tensor:
        """The encoded spectrum of each row (:attr:`origin`, or each its own)."""
        if self.origin is not None:
            return self.origin
        return torch.arange(self.states.shape[0], device=self.states.device)


@dataclass
class FragmentCache:
    """The ion features of the last supervision step, per spectrum, for inference.

    They depend on the argmax answer's residue masses only (and on the spectrum), and
    after the first few steps most answers no longer change: recomputing them only for
    the spectra whose answer changed gives the same values for a fraction of the cost
    of the ion lookups.

    Attributes
    ----------
    residue_masses : torch.Tensor of shape (batch, max_length), or None before the first
        step: the argmax answer the features belong to.
    context, bonus : torch.Tensor, or None
        As :meth:`RecursiveCore.fragment_context` returned them for those answers.
    """

    residue_masses: torch.Tensor | None = None
    context: torch.Tensor | None = None
    bonus: torch.Tensor | None = None

    def lookup(
        self,
        residue_masses: torch.Tensor,
        compute: Callable[[torch.Tensor | None], tuple[torch.Tensor | None, torch.Tensor | None]],
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The features of ``residue_masses``; ``compute(rows)`` gives them for the rows
        (a tensor of indices, or None for the whole batch) that are not cached."""
        if self.residue_masses is None:
            self.context, self.bonus = compute(None)
        else:
            rows = torch.nonzero((residue_masses != self.residue_masses).any(dim=1)).squeeze(1)
            if rows.numel() == residue_masses.shape[0]:
                self.context, self.bonus = compute(None)
            elif rows.numel():
                context, bonus = compute(rows)
                if context is not None:
                    self.context[rows] = context
                if bonus is not None:
                    self.bonus[rows] = bonus
        self.residue_masses = residue_masses
        return self.context, self.bonus

    def select(self, keep: torch.Tensor) -> None:
        """Keep the rows ``keep`` only (spectra that halted leave the batch)."""
        if self.residue_masses is None:
            return
        self.residue_masses = self.residue_masses[keep]
        self.context = None if self.context is None else self.context[keep]
        self.bonus = None if self.bonus is None else self.bonus[keep]


@dataclass
class StepOutput:
    """What one supervision step produces.

    Attributes
    ----------
    logits : torch.Tensor of shape (batch, max_length, n_tokens)
        The answer after this step.
    halt_logit : torch.Tensor of shape (batch,)
        Logit of the probability that this answer is fully correct.
    """

    logits: torch.Tensor
    halt_logit: torch.Tensor


@dataclass
class Refinement:
    """Result of inference with optional early exit.

    Attributes
    ----------
    logits : torch.Tensor of shape (batch, max_length, n_tokens)
        Final answer of each spectrum (at the step it stopped).
    halt_probability : torch.Tensor of shape (batch,)
        Halting head's probability at that step: a confidence score for the peptide.
    steps_used : torch.Tensor of shape (batch,)
        Supervision steps run for each spectrum (1..T).
    """

    logits: torch.Tensor
    halt_probability: torch.Tensor
    steps_used: torch.Tensor


class SpectrumEncoder(nn.Module):
    """Peaks and precursor to a sequence of spectrum tokens.

    A peak is the sum of a learned projection of its sinusoidal m/z encoding and of its
    intensity (square root, relative to the spectrum's most intense peak, so the scale of
    the instrument does not matter). The precursor neutral mass and the charge are two
    extra tokens in front.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden = config.hidden
        self.max_charge = config.max_charge
        self.mass_encoding = SinusoidalMassEncoding(
            hidden, config.mz_min_wavelength, config.mz_max_wavelength
        )
        self.peak_mz = nn.Linear(hidden, hidden)
        self.peak_intensity = nn.Linear(1, hidden)
        self.precursor_mass = nn.Linear(hidden, hidden)
        self.charge_embedding = nn.Embedding(config.max_charge + 1, hidden)
        self.layers = nn.ModuleList(
            Block(hidden, config.heads, config.ff_multiplier, cross=False)
            for _ in range(config.encoder_layers)
        )
        self.norm = nn.LayerNorm(hidden)

    def forward(
        self,
        mz: torch.Tensor,
        intensity: torch.Tensor,
        peak_mask: torch.Tensor,
        precursor_mass: torch.Tensor,
        charge: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of spectra.

        Parameters
        ----------
        mz, intensity : torch.Tensor of shape (batch, n_peaks)
            Peaks, any order; entries where ``peak_mask`` is False are ignored.
        peak_mask : torch.Tensor of shape (batch, n_peaks), bool
        precursor_mass : torch.Tensor of shape (batch,)
            Neutral precursor mass in Da.
        charge : torch.Tensor of shape (batch,), int
            Precursor charge.

        Returns
        -------
        states : torch.Tensor of shape (batch, n_peaks + 2, hidden)
        mask : torch.Tensor of shape (batch, n_peaks + 2), bool
        """
        relative = relative_intensity(intensity, peak_mask)
        peaks = self.peak_mz(self.mass_encoding(mz)) + self.peak_intensity(relative.unsqueeze(-1))
        mass_token = self.precursor_mass(self.mass_encoding(precursor_mass)).unsqueeze(1)
        charge_token = self.charge_embedding(charge.clamp(0, self.max_charge)).unsqueeze(1)
        states = torch.cat([mass_token, charge_token, peaks], dim=1)
        always = torch.ones_like(peak_mask[:, :2])
        mask = torch.cat([always, peak_mask], dim=1)
        for layer in self.layers:
            states = layer(states, self_mask=mask)
        return self.norm(states), mask


class RecursiveCore(nn.Module):
    """Latent and answer updates of the recursion, and the halting head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden, n_tokens = config.hidden, config.n_tokens
        self.config = config
        # Unit scale: positions must differ clearly from the start, or every position of the
        # answer receives the same update and they never separate.
        self.position_embedding = nn.Parameter(torch.randn(config.max_length, hidden))
        self.z_init = nn.Parameter(torch.zeros(hidden))
        self.step_embedding = (
            nn.Embedding(config.supervision_steps, hidden) if config.step_embedding else None
        )
        # The answer enters the updates as the probability-weighted token embedding, so the
        # soft answer, not only its argmax, informs the next step.
        self.answer_embedding = nn.Linear(n_tokens, hidden, bias=False)
        #: Token masses (Da), filled in from the vocabulary by ``build_model``.
        self.register_buffer("token_masses", torch.zeros(n_tokens))
        if config.fragment_feedback:
            self.mass_encoding = SinusoidalMassEncoding(
                hidden, config.mz_min_wavelength, config.mz_max_wavelength
            )
            self.b_ion_projection = nn.Linear(hidden, hidden)
            self.y_ion_projection = nn.Linear(hidden, hidden)
        self.evidence = FragmentEvidence(hidden, n_tokens) if config.fragment_evidence else None
        self.blocks = nn.ModuleList(
            Block(hidden, config.heads, config.ff_multiplier, cross=True)
            for _ in range(config.core_layers)
        )
        self.latent_out_norm = nn.LayerNorm(hidden)
        self.latent_update = nn.Linear(hidden, hidden)
        self.latent_norm = nn.LayerNorm(hidden)
        self.answer_norm = nn.LayerNorm(hidden)
        self.answer_delta = nn.Linear(hidden, n_tokens)
        self.answer_gate = nn.Linear(hidden, 1) if config.answer_update == "gated" else None
        self.halt_norm = nn.LayerNorm(hidden)
        self.halt_head = nn.Linear(hidden, 1)

    def initial_carry(self, batch_size: int) -> Carry:
        """The state before the first supervision step: a uniform answer."""
        config = self.config
        z = (self.z_init + self.position_embedding).expand(batch_size, -1, -1)
        y = self.answer_delta.weight.new_zeros(batch_size, config.max_length, config.n_tokens)
        return Carry(z=z, y=y)

    def answer_context(
        self, y: torch.Tensor, memory: EncodedSpectrum, cache: FragmentCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the latent and answer updates see of the current answer.

        The soft token embedding, plus (with ``fragment_feedback``) sinusoidal features of
        where the current best answer puts each fragment: the b ion of the argmax prefix up
        to the position, and its complementary y ion from the measured precursor mass.
        Encoded like the peaks, they let attention compare the answer's fragments with the
        spectrum's peaks, which is what a refinement step needs to find its errors. The
        argmax, not the probability-weighted mass, fixes the fragments: an expected mass
        moves with every rounding-level change of the logits, and at sub-dalton
        wavelengths its features would turn such changes into different answers.

        With ``fragment_evidence``, the ion lookup of every candidate token at every
        position given the rest of the argmax answer (:mod:`trm.model.evidence`) adds a
        context vector here and a logit bonus to the answer update.

        Parameters
        ----------
        y : torch.Tensor of shape (batch, max_length, n_tokens)
        memory : EncodedSpectrum
        cache : FragmentCache, optional
            At inference: the ion features of the previous step, recomputed only for the
            spectra whose argmax answer changed.

        Returns
        -------
        context : torch.Tensor of shape (batch, max_length, hidden)
        bonus : torch.Tensor of shape (batch, max_length, n_tokens), or None
            Evidence logits for the answer step (None without ``fragment_evidence``).
        """
        context = self.answer_embedding(torch.softmax(y.float(), dim=-1).to(y.dtype))
        residue_masses = self.token_masses[y.argmax(dim=-1)]
        if cache is None:
            fragments, bonus = self.fragment_context(residue_masses, memory, context.dtype)
        else:
            fragments, bonus = cache.lookup(
                residue_masses,
                lambda rows: self.fragment_context(
                    residue_masses if rows is None else residue_masses[rows],
                    memory if rows is None else memory.select(rows),
                    context.dtype,
                ),
            )
        if fragments is not None:
            context = context + fragments
        return context, bonus

    def fragment_context(
        self, residue_masses: torch.Tensor, memory: EncodedSpectrum, dtype: torch.dtype
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The part of :meth:`answer_context` that the argmax answer alone fixes.

        Parameters
        ----------
        residue_masses : torch.Tensor of shape (batch, max_length)
            Mass of the argmax token at each position.
        memory : EncodedSpectrum
        dtype : torch.dtype
            Of the context it is added to.

        Returns
        -------
        context : torch.Tensor of shape (batch, max_length, hidden), or None
            The ion features (fragment feedback and evidence); None with neither.
        bonus : torch.Tensor of shape (batch, max_length, n_tokens), or None
        """
        feedback, evidence = self.config.fragment_feedback, self.evidence is not None
        if not (feedback or evidence):
            return None, None
        batch, length = residue_masses.shape
        # Each position's features depend on its spectrum and on the masses around it
        # only: rows of one spectrum (an answer's candidates) and the positions after an
        # answer's end share most of them, so they are computed once per distinct one.
        b_ions, _ = self.answer_fragments(residue_masses, memory.precursor_mass)
        prefix, suffix = flanking_masses(residue_masses)
        origin = memory.origins()
        keys = torch.stack(
            [
                origin[:, None].expand(batch, length).double(),
                memory.precursor_mass.double()[:, None].expand(batch, length),
                b_ions.double(),
                prefix.double(),
                suffix.double(),
            ],
            dim=-1,
        ).reshape(batch * length, 5)
        distinct, inverse = torch.unique(keys, dim=0, return_inverse=True)
        precursor = distinct[:, 1].float()
        context = None
        if feedback:
            b_distinct = distinct[:, 2].float()
            y_distinct = singly_charged_complement(b_distinct, precursor)
            context = self.b_ion_projection(self.mass_encoding(b_distinct))
            context = context + self.y_ion_projection(self.mass_encoding(y_distinct))
        bonus = None
        if evidence:
            assert memory.peaks is not None
            # One row of lookups per spectrum (the distinct keys come sorted by it).
            spectra, group, per_spectrum = torch.unique_consecutive(
                distinct[:, 0].long(), return_inverse=True, return_counts=True
            )
            start = torch.cumsum(per_spectrum, 0) - per_spectrum
            column = torch.arange(len(distinct), device=distinct.device) - start[group]
            width = int(per_spectrum.max())
            flanks = distinct.new_zeros(2, len(spectra), width, dtype=torch.float32)
            flanks[0, group, column] = distinct[:, 3].float()
            flanks[1, group, column] = distinct[:, 4].float()
            spectrum_precursor = precursor.new_zeros(len(spectra))
            spectrum_precursor[group] = precursor
            features = self.evidence.features(
                memory.peaks.select(spectra),
                flanks[0],
                flanks[1],
                self.token_masses,
                spectrum_precursor,
            )[group, column]
            bonus, evidence_context = self.evidence(features.to(dtype))
            context = evidence_context if context is None else context + evidence_context
            bonus = bonus[inverse].reshape(batch, length, -1)
        assert context is not None
        return context[inverse].reshape(batch, length, -1), bonus

    def answer_fragments(
        self, residue_masses: torch.Tensor, precursor_mass: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Singly charged b ions of the argmax answer and their complementary y ions.

        Parameters
        ----------
        residue_masses : torch.Tensor of shape (batch, max_length)
            Mass of the argmax token at each position.
        precursor_mass : torch.Tensor of shape (batch,)
            Neutral precursor mass (Da).

        Returns
        -------
        b_ions, y_ions : torch.Tensor of shape (batch, max_length)
            ``b_ions[:, i]``: m/z of the prefix through position ``i``; ``y_ions[:, i]``:
            m/z of the rest of the precursor.
        """
        b_ions = ion_mz(cleavage_masses(residue_masses)[0], 1)
        return b_ions, singly_charged_complement(b_ions, precursor_mass.float()[:, None])

    def latent_step(
        self, z: torch.Tensor, answer: torch.Tensor, memory: EncodedSpectrum
    ) -> torch.Tensor:
        """One update ``z <- norm(z + f(z, y, x))``.

        The norm after the residual keeps ``z`` bounded over the ``T * n`` updates of a
        forward pass (TRM's post-norm), which plain residual accumulation would not.

        Parameters
        ----------
        z : torch.Tensor of shape (batch, max_length, hidden)
        answer : torch.Tensor of shape (batch, max_length, hidden)
            :meth:`answer_context` of the current answer ``y``.
        memory : EncodedSpectrum

        Returns
        -------
        torch.Tensor of shape (batch, max_length, hidden)
        """
        hidden = z + answer + self.position_embedding
        for block, projection in zip(self.blocks, memory.projections, strict=True):
            hidden = block(hidden, memory=projection, memory_mask=memory.mask)
        return self.latent_norm(z + self.latent_update(self.latent_out_norm(hidden)))

    def answer_step(
        self,
        z: torch.Tensor,
        y: torch.Tensor,
        answer: torch.Tensor,
        bonus: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Gated residual answer update ``y <- y + gate * delta``.

        Predicting a change rather than a new answer makes each step a refinement, and the
        per-position gate lets the model leave settled positions alone. With
        ``answer_update: replace`` the step's output is the new answer, ``y <- delta``.

        Parameters
        ----------
        z : torch.Tensor of shape (batch, max_length, hidden)
        y : torch.Tensor of shape (batch, max_length, n_tokens)
        answer : torch.Tensor of shape (batch, max_length, hidden)
            :meth:`answer_context` of ``y``.
        bonus : torch.Tensor of shape (batch, max_length, n_tokens), optional
            Fragment-evidence logits, added to the delta.

        Returns
        -------
        torch.Tensor of shape (batch, max_length, n_tokens)
        """
        hidden = self.answer_norm(z + answer)
        delta = self.answer_delta(hidden)
        if bonus is not None:
            delta = delta + bonus
        if self.answer_gate is None:
            return delta
        gate = torch.sigmoid(self.answer_gate(hidden))
        return y + gate * delta

    def halt_logit(self, z: torch.Tensor) -> torch.Tensor:
        """Logit that the current answer is fully correct: tensor of shape (batch,)."""
        return self.halt_head(self.halt_norm(z).mean(dim=1)).squeeze(-1)

    def supervision_step(
        self,
        carry: Carry,
        memory: EncodedSpectrum,
        step: int,
        cache: FragmentCache | None = None,
    ) -> tuple[Carry, torch.Tensor]:
        """One supervision step: step embedding (unless switched off), ``n`` latent steps,
        one answer step (``cache``: see :meth:`answer_context`).

        Returns
        -------
        carry : Carry
            The new state (attached to the graph of this step).
        halt_logit : torch.Tensor of shape (batch,)
        """
        z = carry.z
        if self.step_embedding is not None:
            # Steps past the trained ones (inference only) reuse the last embedding.
            z = z + self.step_embedding.weight[min(step, self.config.supervision_steps - 1)]
        answer, bonus = self.answer_context(carry.y, memory, cache)
        n_frozen = self.config.no_grad_latent_steps
        if n_frozen:
            with torch.no_grad():
                for _ in range(n_frozen):
                    z = self.latent_step(z, answer, memory)
        for _ in range(self.config.latent_steps - n_frozen):
            z = self.latent_step(z, answer, memory)
        y = self.answer_step(z, carry.y, answer, bonus)
        return Carry(z=z, y=y), self.halt_logit(z)


class PeptideTRM(nn.Module):
    """Tiny recursive model for de novo peptide sequencing.

    Parameters
    ----------
    config : ModelConfig
        With ``n_tokens`` filled in (see :func:`build_model`).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.n_tokens is None:
            raise ValueError("config.n_tokens must be set; build the model with build_model()")
        self.config = config
        self.encoder = SpectrumEncoder(config)
        self.core = RecursiveCore(config)

    def encode(
        self,
        mz: torch.Tensor,
        intensity: torch.Tensor,
        peak_mask: torch.Tensor,
        precursor_mass: torch.Tensor,
        charge: torch.Tensor,
        fragment_tolerance_da: float | None = None,
    ) -> EncodedSpectrum:
        """Encode spectra and project them once for every core block.

        Parameters are those of :meth:`SpectrumEncoder.forward`, and the fragment
        tolerance (Da) of the ion lookups (default: the one the model was trained with,
        ``config.evidence_tolerance``).
        """
        states, mask = self.encoder(mz, intensity, peak_mask, precursor_mass, charge)
        projections = [block.cross_attention.project_memory(states) for block in self.core.blocks]
        tolerance = (
            self.config.evidence_tolerance
            if fragment_tolerance_da is None
            else fragment_tolerance_da
        )
        peaks = (
            PeakIndex.build(mz, intensity, peak_mask, tolerance)
            if self.core.evidence is not None
            else None
        )
        return EncodedSpectrum(states, mask, projections, precursor_mass, peaks)

    def forward(
        self,
        mz: torch.Tensor,
        intensity: torch.Tensor,
        peak_mask: torch.Tensor,
        precursor_mass: torch.Tensor,
        charge: torch.Tensor,
        draft: torch.Tensor | None = None,
    ) -> list[StepOutput]:
        """All ``T`` supervision steps, for training with deep supervision.

        Parameters
        ----------
        mz, intensity : torch.Tensor of shape (batch, n_peaks)
        peak_mask : torch.Tensor of shape (batch, n_peaks), bool
        precursor_mass : torch.Tensor of shape (batch,)
            Neutral precursor mass in Da.
        charge : torch.Tensor of shape (batch,), int
        draft : torch.Tensor of shape (batch, max_length, n_tokens), optional
            Logits of a starting answer (training only: see
            :attr:`trm.train.TrainConfig.draft_fraction`); default blank.

        Returns
        -------
        list of StepOutput
            One per supervision step; logits of shape (batch, max_length, n_tokens).
        """
        memory = self.encode(mz, intensity, peak_mask, precursor_mass, charge)
        carry = self.core.initial_carry(mz.shape[0])
        if draft is not None:
            carry = Carry(z=carry.z, y=carry.y + draft.to(carry.y.dtype))
        outputs = []
        for step in range(self.config.supervision_steps):
            carry, halt_logit = self.core.supervision_step(carry, memory, step)
            outputs.append(StepOutput(logits=carry.y, halt_logit=halt_logit))
            carry = carry.detach()
        return outputs

    @torch.no_grad()
    def score_answers(
        self,
        mz: torch.Tensor,
        intensity: torch.Tensor,
        peak_mask: torch.Tensor,
        precursor_mass: torch.Tensor,
        charge: torch.Tensor,
        answers: torch.Tensor,
        fragment_tolerance_da: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """How much the model keeps given answers: each one is the draft of one supervision
        step (teacher forcing), and the step's output gives the log-likelihood of the
        answer's own tokens and the halting head's probability that it is right.

        Parameters
        ----------
        mz, intensity, peak_mask, precursor_mass, charge
            As for :meth:`forward`.
        answers : torch.Tensor of shape (batch, n_answers, max_length), int64
            Token ids, the end class after each answer.
        fragment_tolerance_da : float, optional
            As for :meth:`refine`.

        Returns
        -------
        log_likelihood : torch.Tensor of shape (batch, n_answers)
            Sum over the positions of the log-probability of the answer's token (or end).
        halt_probability : torch.Tensor of shape (batch, n_answers)
        """
        log_likelihood, halt_logit = self.answer_scores(
            mz, intensity, peak_mask, precursor_mass, charge, answers, fragment_tolerance_da
        )
        return log_likelihood, torch.sigmoid(halt_logit)

    def answer_scores(
        self,
        mz: torch.Tensor,
        intensity: torch.Tensor,
        peak_mask: torch.Tensor,
        precursor_mass: torch.Tensor,
        charge: torch.Tensor,
        answers: torch.Tensor,
        fragment_tolerance_da: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`score_answers` with the halting head's logit instead of its probability,
        differentiable: what training ranks answers by (:func:`trm.train.losses.ranking_loss`)."""
        batch, n_answers, _ = answers.shape
        memory = self.encode(
            mz, intensity, peak_mask, precursor_mass, charge, fragment_tolerance_da
        )
        rows = torch.arange(batch, device=mz.device).repeat_interleave(n_answers)
        memory = memory.select(rows)
        flat = answers.reshape(batch * n_answers, -1)
        carry = self.core.initial_carry(len(rows))
        carry = Carry(
            z=carry.z, y=carry.y + draft_logits(flat, self.config.n_tokens).to(carry.y.dtype)
        )
        carry, halt_logit = self.core.supervision_step(carry, memory, 0)
        log_probs = torch.log_softmax(carry.y.float(), dim=-1)
        log_likelihood = log_probs.gather(-1, flat[..., None]).squeeze(-1).sum(dim=-1)
        return log_likelihood.reshape(batch, n_answers), halt_logit.float().reshape(
            batch, n_answers
        )

    @torch.no_grad()
    def refine(
        self,
        mz: torch.Tensor,
        intensity: torch.Tensor,
        peak_mask: torch.Tensor,
        precursor_mass: torch.Tensor,
        charge: torch.Tensor,
        halt_threshold: float | None = None,
        max_steps: int | None = None,
        fragment_tolerance_da: float | None = None,
        draft: torch.Tensor | None = None,
    ) -> Refinement:
        """Inference, stopping each spectrum once the halting head is confident.

        Spectra that halted leave the batch, so the remaining steps cost only what the
        unfinished spectra need.

        Parameters
        ----------
        mz, intensity, peak_mask, precursor_mass, charge
            As for :meth:`forward`.
        halt_threshold : float, optional
            Stop a spectrum when the halting probability reaches this; None runs every step.
        max_steps : int, optional
            At most this many supervision steps (default: the configured ``T``). More than
            ``T`` refine further: the recursion is the same function at every step, and
            steps past ``T`` reuse the last step embedding.
        fragment_tolerance_da : float, optional
            Tolerance (Da) of the ion lookups: the instrument's (default: the trained one).
        draft : torch.Tensor of shape (batch, max_length, n_tokens), optional
            Logits of a starting answer, as in training (:meth:`forward`); rows of zeros
            start blank.

        Returns
        -------
        Refinement
        """
        n_steps = self.config.supervision_steps if max_steps is None else max_steps
        if n_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {n_steps}")
        batch = mz.shape[0]
        memory = self.encode(
            mz, intensity, peak_mask, precursor_mass, charge, fragment_tolerance_da
        )
        carry = self.core.initial_carry(batch)
        if draft is not None:
            carry = Carry(z=carry.z, y=carry.y + draft.to(carry.y.dtype))
        logits = carry.y.clone()
        halt_probability = logits.new_zeros(batch)
        steps_used = torch.zeros(batch, dtype=torch.long, device=mz.device)
        active = torch.arange(batch, device=mz.device)
        cache = FragmentCache()
        for step in range(n_steps):
            carry, halt_logit = self.core.supervision_step(carry, memory, step, cache)
            probability = torch.sigmoid(halt_logit.float())
            logits[active] = carry.y.to(logits.dtype)
            halt_probability[active] = probability.to(halt_probability.dtype)
            steps_used[active] = step + 1
            if halt_threshold is None or step == n_steps - 1:
                continue
            going_on = probability < halt_threshold
            if not bool(going_on.any()):
                break
            if not bool(going_on.all()):
                active = active[going_on]
                memory = memory.select(going_on)
                carry = Carry(z=carry.z[going_on], y=carry.y[going_on])
                cache.select(going_on)
        return Refinement(logits=logits, halt_probability=halt_probability, steps_used=steps_used)
