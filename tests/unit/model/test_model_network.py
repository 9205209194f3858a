"""Shapes, masks, detachment and early exit of the recursive model."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.testing import assert_close

from trm.model import (
    MODEL_CONFIGS,
    ModelConfig,
    build_model,
    count_parameters,
    get_model_config,
    inference_flops,
)


def test_forward_returns_one_answer_per_supervision_step(tiny_model, spectra, vocabulary):
    outputs = tiny_model(**spectra)
    config = tiny_model.config
    assert len(outputs) == config.supervision_steps
    for output in outputs:
        assert output.logits.shape == (5, config.max_length, len(vocabulary))
        assert output.halt_logit.shape == (5,)
        assert torch.isfinite(output.logits).all()


def test_padded_peaks_do_not_change_the_answer(tiny_model, spectra):
    reference = tiny_model(**spectra)[-1].logits
    changed = dict(spectra)
    padding = ~spectra["peak_mask"]
    changed["mz"] = torch.where(padding, 1234.5, spectra["mz"])
    changed["intensity"] = torch.where(padding, 99.0, spectra["intensity"])
    assert_close(tiny_model(**changed)[-1].logits, reference)


def test_peak_order_does_not_matter(tiny_model, spectra):
    reference = tiny_model(**spectra)[-1].logits
    order = torch.randperm(24, generator=torch.Generator().manual_seed(3))
    # Keep each row's padding at the same place: permute only fully populated spectra.
    permuted = {k: v.clone() for k, v in spectra.items()}
    for key in ("mz", "intensity"):
        permuted[key][:3] = spectra[key][:3, order]
    assert_close(tiny_model(**permuted)[-1].logits, reference, atol=1e-5, rtol=1e-4)


def test_spectra_of_a_batch_do_not_interact(tiny_model, spectra):
    together = tiny_model(**spectra)[-1].logits
    alone = tiny_model(**{k: v[3:4] for k, v in spectra.items()})[-1].logits
    assert_close(alone[0], together[3], atol=1e-5, rtol=1e-4)


def test_carry_is_detached_between_supervision_steps(tiny_model, spectra):
    tiny_model.train()
    outputs = tiny_model(**spectra)
    (gradient,) = torch.autograd.grad(outputs[1].logits.sum(), outputs[0].logits, allow_unused=True)
    assert gradient is None
    # The encoder is shared: every step's loss reaches it.
    outputs[-1].logits.sum().backward()
    assert tiny_model.encoder.peak_mz.weight.grad is not None


def test_no_grad_latent_steps_still_train_the_core(vocabulary, spectra):
    config = dataclasses.replace(
        get_model_config("tiny"), max_length=12, latent_steps=3, no_grad_latent_steps=2
    )
    model = build_model(config, vocabulary)
    model(**spectra)[-1].logits.sum().backward()
    assert model.core.blocks[0].feed_forward[0].weight.grad is not None


def test_refine_without_threshold_equals_the_last_training_step(tiny_model, spectra):
    outputs = tiny_model(**spectra)
    refined = tiny_model.refine(**spectra)
    assert_close(refined.logits, outputs[-1].logits)
    assert_close(refined.halt_probability, torch.sigmoid(outputs[-1].halt_logit))
    assert refined.steps_used.tolist() == [tiny_model.config.supervision_steps] * 5


def test_early_exit_keeps_each_spectrum_at_the_step_it_stopped(tiny_model, spectra):
    with torch.no_grad():
        outputs = tiny_model(**spectra)
    first = torch.sigmoid(outputs[0].halt_logit)
    threshold = float(first.median())
    refined = tiny_model.refine(**spectra, halt_threshold=threshold)
    stopped_early = first >= threshold
    assert stopped_early.any() and (~stopped_early).any()
    assert (refined.steps_used[stopped_early] == 1).all()
    assert (refined.steps_used[~stopped_early] > 1).all()
    for row, used in enumerate(refined.steps_used.tolist()):
        assert_close(refined.logits[row], outputs[used - 1].logits[row], atol=1e-5, rtol=1e-4)


def test_refine_max_steps(tiny_model, spectra):
    refined = tiny_model.refine(**spectra, max_steps=1)
    assert_close(refined.logits, tiny_model(**spectra)[0].logits)
    with pytest.raises(ValueError, match="max_steps"):
        tiny_model.refine(**spectra, max_steps=0)


def test_refine_beyond_the_trained_steps_reuses_the_last_step_embedding(tiny_model, spectra):
    trained = tiny_model.config.supervision_steps
    longer = tiny_model.refine(**spectra, max_steps=trained + 2)
    assert longer.steps_used.tolist() == [trained + 2] * 5
    # The same as continuing the recursion by hand with the last embedding.
    with torch.no_grad():
        memory = tiny_model.encode(**spectra)
        carry = tiny_model.core.initial_carry(5)
        for step in range(trained + 2):
            carry, _ = tiny_model.core.supervision_step(carry, memory, min(step, trained - 1))
    assert_close(longer.logits, carry.y, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(longer.logits, tiny_model.refine(**spectra).logits)


def test_config_checks():
    with pytest.raises(ValueError, match="multiple of heads"):
        ModelConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match="no_grad_latent_steps"):
        ModelConfig(latent_steps=2, no_grad_latent_steps=2)
    with pytest.raises(ValueError, match="unknown model config"):
        get_model_config("huge")
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"hidden": 64, "depth": 3})
    config = get_model_config("large")
    assert ModelConfig.from_dict(config.to_dict()) == config
    # A checkpoint from before the fragment evidence existed keeps its architecture.
    older = {k: v for k, v in config.to_dict().items() if k != "fragment_evidence"}
    assert ModelConfig.from_dict(older) == dataclasses.replace(config, fragment_evidence=False)


def test_build_model_fills_and_checks_the_vocabulary_size(vocabulary):
    model = build_model(get_model_config("tiny"), vocabulary)
    assert model.config.n_tokens == len(vocabulary)
    with pytest.raises(ValueError, match="tokens"):
        build_model(dataclasses.replace(get_model_config("tiny"), n_tokens=5), vocabulary)


def test_named_configs_and_their_cost(vocabulary):
    assert {"tiny", "default", "large"} <= set(MODEL_CONFIGS)
    large = get_model_config("large")
    assert (large.hidden, large.supervision_steps, large.latent_steps) == (384, 8, 6)
    costs = {}
    for name in ("tiny", "default", "large"):
        model = build_model(get_model_config(name), vocabulary)
        cost = inference_flops(model.config)
        assert cost.total == cost.encoder + cost.supervision_steps * cost.per_supervision_step
        costs[name] = (count_parameters(model), cost.gflop)
    assert costs["tiny"] <= costs["default"] < costs["large"]
    # With the spectrum projected once, the large size costs well under 13 GFLOP.
    assert 5 < costs["large"][1] < 13
    config = build_model(get_model_config("default"), vocabulary).config
    assert inference_flops(config, supervision_steps=2).total < inference_flops(config).total


@pytest.mark.parametrize("ion_features", [False, True])
def test_flops_count_matches_the_matrix_products(vocabulary, ion_features):
    """The analytic count agrees with torch's FLOP counter on one spectrum.

    The counter does not see the CPU attention kernel, so its score and weighted-sum
    products are added here by hand. The ion features of a position are computed once
    per distinct one (positions after the answer's end share theirs) and kept while the
    answer stays: the count, which computes them at every position of every step, is an
    upper bound there, by at most those features' products.
    """
    from torch.utils.flop_counter import FlopCounterMode

    config = get_model_config("tiny")
    if not ion_features:
        config = config.with_overrides(["fragment_feedback=no", "fragment_evidence=no"])
    model = build_model(config, vocabulary).eval()
    config = model.config
    n_peaks, hidden, length = config.n_peaks, config.hidden, config.max_length
    inputs = {
        "mz": torch.linspace(100, 1000, n_peaks)[None],
        "intensity": torch.ones(1, n_peaks),
        "peak_mask": torch.ones(1, n_peaks, dtype=torch.bool),
        "precursor_mass": torch.tensor([1000.0]),
        "charge": torch.tensor([2]),
    }
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.refine(**inputs)
    memory = n_peaks + 2
    attention = config.encoder_layers * 4 * memory * memory * hidden
    latent_steps = config.supervision_steps * config.latent_steps * config.core_layers
    attention += latent_steps * 4 * hidden * (length * length + length * memory)
    measured = counter.get_total_flops() + attention
    predicted = inference_flops(config).total
    plain = config.with_overrides(["fragment_feedback=no", "fragment_evidence=no"])
    shareable = predicted - inference_flops(plain).total
    assert measured < predicted * 1.02
    assert measured > (predicted - shareable) * 0.98
    if not ion_features:
        assert abs(measured - predicted) / measured < 0.02


def test_fragment_feedback_places_the_answers_ions(tiny_model, vocabulary):
    from trm.chem import parse_peptidoform, peptide_mass
    from trm.fragments import fragment_mz

    tokens, _ = parse_peptidoform("[Acetyl]-PEPTM[Oxidation]IDEK")
    ids = torch.tensor(vocabulary.encode(tokens, tiny_model.config.max_length))
    answer = torch.nn.functional.one_hot(ids, len(vocabulary)).float()[None] * 10
    precursor = torch.tensor([peptide_mass(tokens)])
    residue_masses = tiny_model.core.token_masses[answer.argmax(dim=-1)]
    b_ions, y_ions = tiny_model.core.answer_fragments(residue_masses, precursor)
    expected = fragment_mz(tokens, charges=(1,))
    n = len(expected["b1"])
    # Position 0 holds the N-terminal modification: b1 is the prefix through position 1.
    assert_close(b_ions[0, 1 : n + 1].double(), torch.from_numpy(expected["b1"]), atol=1e-3, rtol=0)
    complementary = torch.from_numpy(expected["y1"][::-1].copy())
    assert_close(y_ions[0, 1 : n + 1].double(), complementary, atol=1e-3, rtol=0)


def test_model_config_overrides_are_typed_and_checked():
    from trm.model import get_model_config

    config = get_model_config("default").with_overrides(["hidden=96", "fragment_evidence=no"])
    assert config.hidden == 96 and config.fragment_evidence is False
    with pytest.raises(ValueError, match="'hiden=3'"):
        config.with_overrides(["hiden=3"])
    with pytest.raises(ValueError, match="'abc' is not a int"):
        config.with_overrides(["hidden=abc"])


def test_ablation_switches_change_the_recursion(vocabulary, spectra):
    base = dataclasses.replace(get_model_config("tiny"), max_length=12, n_peaks=24)
    torch.manual_seed(0)
    gated = build_model(base, vocabulary).eval()
    plain = base.with_overrides(["step_embedding=false", "answer_update=replace"])
    torch.manual_seed(0)
    ablated = build_model(plain, vocabulary).eval()
    # Without them the network has neither the step embedding nor the gate's weights.
    hidden = base.hidden
    removed = base.supervision_steps * hidden + hidden + 1
    assert count_parameters(gated) - count_parameters(ablated) == removed
    assert ablated.core.step_embedding is None and ablated.core.answer_gate is None
    # Replacement: each step's answer is its own delta, whatever the answer before it was.
    memory = ablated.encode(**spectra)
    carry = ablated.core.initial_carry(5)
    answer, bonus = ablated.core.answer_context(carry.y, memory)
    z = torch.randn_like(carry.z)
    shifted = carry.y + 3.0
    assert_close(
        ablated.core.answer_step(z, carry.y, answer, bonus),
        ablated.core.answer_step(z, shifted, answer, bonus),
    )
    assert not torch.allclose(
        gated.core.answer_step(z, carry.y, answer, bonus),
        gated.core.answer_step(z, shifted, answer, bonus),
    )
    # Without step embeddings, a step is the same function of its inputs at every step.
    first, _ = ablated.core.supervision_step(carry, memory, 0)
    later, _ = ablated.core.supervision_step(carry, memory, 5)
    assert_close(first.y, later.y)
    with pytest.raises(ValueError, match="answer_update 'add'"):
        base.with_overrides(["answer_update=add"])


def test_checkpoints_from_before_the_ablation_switches_keep_their_architecture():
    config = get_model_config("default")
    older = {
        k: v for k, v in config.to_dict().items() if k not in ("step_embedding", "answer_update")
    }
    restored = ModelConfig.from_dict(older)
    assert restored.step_embedding is True and restored.answer_update == "gated"


def test_the_fragment_cache_recomputes_only_changed_answers(tiny_model, spectra):
    """At inference the ion features of an unchanged argmax answer are reused."""
    from trm.model.network import FragmentCache

    core = tiny_model.core
    with torch.no_grad():
        memory = tiny_model.encode(**spectra)
        first = torch.randn(5, tiny_model.config.max_length, tiny_model.config.n_tokens)
        second = first.clone()
        second[[1, 3], 2] = -first[[1, 3], 2]  # a different argmax at one position
        cache = FragmentCache()
        seen: list[object] = []
        original = core.fragment_context

        def counting(residue_masses, memory_, dtype):
            seen.append(residue_masses.shape[0])
            return original(residue_masses, memory_, dtype)

        core.fragment_context = counting
        try:
            for y in (first, second):
                cached, cached_bonus = core.answer_context(y, memory, cache)
                fresh, fresh_bonus = core.answer_context(y, memory)
                assert_close(cached, fresh)
                assert_close(cached_bonus, fresh_bonus)
        finally:
            del core.fragment_context
    changed = int((first.argmax(-1) != second.argmax(-1)).any(dim=1).sum())
    assert changed == 2
    # cached call, fresh call; cached call (changed rows only), fresh call
    assert seen == [5, 5, changed, 5]


def test_rows_of_one_spectrum_share_their_ion_features_exactly(tiny_model, spectra):
    """The ion features are computed once per distinct (spectrum, position masses) and
    are the same as computing every position of every row on its own."""
    from trm.model.evidence import flanking_masses

    core, config = tiny_model.core, tiny_model.config
    generator = torch.Generator().manual_seed(3)
    rows = torch.tensor([0, 0, 0, 2, 2, 4, 1, 0])  # several answers of one spectrum
    answers = torch.randint(1, config.n_tokens, (len(rows), config.max_length), generator=generator)
    answers[:, 7:] = 0  # positions after the end share their features
    answers[1, :4] = answers[0, :4]  # a shared start, a different rest
    answers[2] = answers[0]  # the same answer twice
    residue_masses = core.token_masses[answers]
    with torch.no_grad():
        memory = tiny_model.encode(**spectra)
        shared = memory.select(rows)
        assert shared.peaks is memory.peaks and shared.origin.tolist() == rows.tolist()
        context, bonus = core.fragment_context(residue_masses, shared, torch.float32)
        # Reference: each row on its own peaks, every position computed.
        peaks = memory.peaks.select(rows)
        b_ions, y_ions = core.answer_fragments(residue_masses, shared.precursor_mass)
        expected = core.b_ion_projection(core.mass_encoding(b_ions))
        expected = expected + core.y_ion_projection(core.mass_encoding(y_ions))
        features = core.evidence.features(
            peaks, *flanking_masses(residue_masses), core.token_masses, shared.precursor_mass
        )
        expected_bonus, evidence_context = core.evidence(features)
        expected = expected + evidence_context
    assert_close(context, expected, rtol=1e-5, atol=1e-6)
    assert_close(bonus, expected_bonus, rtol=1e-5, atol=1e-6)
    assert torch.equal(context[2], context[0]) and not torch.equal(context[1], context[0])
    # A selection of a selection still reads the right spectrum's peaks.
    assert memory.select(rows).select(torch.tensor([3, 5])).origin.tolist() == [2, 4]
