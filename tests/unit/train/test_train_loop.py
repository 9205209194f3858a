"""The training loop: memorisation, exact resumption, determinism, checkpoints, CLI."""

from __future__ import annotations

import argparse
import csv
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from trm.errors import InputError
from trm.graph import canonical_tokens
from trm.train import loop as loop_module
from trm.train.checkpoint import load_model, read_checkpoint
from trm.train.commands import register
from trm.train.config import TrainConfig
from trm.train.curriculum import Curriculum
from trm.train.data import SpectrumDataset
from trm.train.loop import Trainer, fit
from trm.train.losses import ranking_loss


@pytest.fixture(autouse=True)
def one_thread():
    # Bitwise comparisons need the same reduction order in both runs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(spectrum_table, vocabulary):
    return SpectrumDataset.from_table(spectrum_table, vocabulary, 16, 32, 10)


@pytest.fixture(scope="module")
def micro_config(tiny_config):
    return dataclasses.replace(tiny_config, hidden=32, supervision_steps=2, latent_steps=1)


def short_run(**changes) -> TrainConfig:
    values = {
        "steps": 8,
        "batch_size": 8,
        "warmup_steps": 2,
        "eval_every": 2,
        "checkpoint_every": 4,
        "eval_spectra": 16,
        "eval_batch_size": 8,
        "log_every": 4,
        # Drafts draw from the step's generator too: part of what must resume exactly.
        "draft_fraction": 0.5,
        # Half the spectra noisy from the start, so the noise path is part of resumption.
        "curriculum": Curriculum(
            clean_fraction_start=0.5, clean_mix_fraction=0.5, noise_ramp_fraction=0.5
        ),
    }
    values.update(changes)
    return TrainConfig(**values)


def read_rows(path) -> list[dict]:
    """Metrics rows without the measured CPU time (which no two runs share)."""
    with path.open(newline="") as handle:
        return [
            {k: v for k, v in row.items() if k != "cpu_seconds"} for row in csv.DictReader(handle)
        ]


def assert_same_state(first: dict, second: dict) -> None:
    assert first["step"] == second["step"]
    for part in ("model", "ema"):
        for name, tensor in first[part].items():
            assert torch.equal(tensor, second[part][name]), f"{part}.{name} differs"
    for index, state in first["optimizer"]["state"].items():
        for key, tensor in state.items():
            assert torch.equal(tensor, second["optimizer"]["state"][index][key])


@pytest.mark.slow
def test_tiny_model_memorises_64_spectra(dataset, tiny_config, vocabulary):
    """Tiny config with two supervision steps, to keep the test under a minute; every
    spectrum starts blank, as in inference."""
    config = dataclasses.replace(tiny_config, supervision_steps=2)
    train_config = TrainConfig(
        draft_fraction=0.0,
        steps=1200,
        batch_size=64,
        learning_rate=1e-2,
        warmup_steps=20,
        ema_decay=0.9,
        eval_spectra=64,
        eval_batch_size=64,
        curriculum=Curriculum(clean_fraction_start=1.0, clean_fraction_end=1.0),
    )
    trainer = Trainer(config, train_config, vocabulary)
    accuracy = 0.0
    while trainer.step < 800 and accuracy < 0.99:
        for _ in range(50):
            trainer.train_step(dataset)
        metrics = trainer.evaluate(dataset)
        accuracy = metrics["token_accuracy_step1"]
    assert accuracy >= 0.99, f"token accuracy {accuracy:.3f} after {trainer.step} steps"
    assert metrics["peptide_recall"] >= 0.9


def test_killed_and_resumed_run_equals_an_uninterrupted_one(
    tmp_path, dataset, micro_config, vocabulary, monkeypatch
):
    train_config = short_run()
    whole = fit(
        micro_config,
        train_config,
        vocabulary,
        dataset,
        dataset,
        tmp_path / "whole.pt",
        tmp_path / "whole.csv",
    )
    assert whole.completed and whole.step == 8

    # Kill the second run in the middle of step 7: the last checkpoint is from step 4,
    # and the metrics CSV already holds a row (step 6) written after it.
    original = Trainer.train_step

    def dying_train_step(self, data):
        if self.step == 6:
            raise KeyboardInterrupt
        return original(self, data)

    monkeypatch.setattr(Trainer, "train_step", dying_train_step)
    with pytest.raises(KeyboardInterrupt):
        fit(
            micro_config,
            train_config,
            vocabulary,
            dataset,
            dataset,
            tmp_path / "killed.pt",
            tmp_path / "killed.csv",
        )
    monkeypatch.setattr(Trainer, "train_step", original)
    assert read_checkpoint(tmp_path / "killed.pt")["step"] == 4
    assert [row["step"] for row in read_rows(tmp_path / "killed.csv")][-1] == "6"

    resumed = fit(
        micro_config,
        train_config,
        vocabulary,
        dataset,
        dataset,
        tmp_path / "killed.pt",
        tmp_path / "killed.csv",
        resume=True,
    )
    assert resumed.completed and resumed.step == 8
    assert_same_state(
        read_checkpoint(tmp_path / "whole.pt"), read_checkpoint(tmp_path / "killed.pt")
    )
    assert read_rows(tmp_path / "whole.csv") == read_rows(tmp_path / "killed.csv")


def test_graceful_stop_and_resume(tmp_path, dataset, micro_config, vocabulary):
    train_config = short_run(steps=5, checkpoint_every=100)
    whole = fit(
        micro_config, train_config, vocabulary, dataset, None, tmp_path / "a.pt", tmp_path / "a.csv"
    )
    paths = (tmp_path / "b.pt", tmp_path / "b.csv")
    stopped = fit(micro_config, train_config, vocabulary, dataset, None, *paths, stop_at_step=3)
    assert not stopped.completed and stopped.step == 3
    fit(micro_config, train_config, vocabulary, dataset, None, *paths, resume=True)
    assert whole.completed
    assert_same_state(read_checkpoint(tmp_path / "a.pt"), read_checkpoint(paths[0]))


def test_same_seed_same_metrics(tmp_path, dataset, micro_config, vocabulary):
    def run(seed: int, name: str) -> dict:
        config = short_run(steps=4, seed=seed)
        return fit(
            micro_config,
            config,
            vocabulary,
            dataset,
            dataset,
            tmp_path / f"{name}.pt",
            tmp_path / f"{name}.csv",
        ).metrics

    first, again, other = run(7, "first"), run(7, "again"), run(8, "other")
    assert first == again
    assert first["validation"]["loss"] != other["validation"]["loss"]
    assert set(first) == {"validation", "validation_noisy"}


def test_checkpoint_describes_itself(tmp_path, dataset, micro_config, vocabulary):
    train_config = short_run(steps=2)
    fit(
        micro_config,
        train_config,
        vocabulary,
        dataset,
        dataset,
        tmp_path / "m.pt",
        tmp_path / "m.csv",
    )
    checkpoint = read_checkpoint(tmp_path / "m.pt")
    assert checkpoint["step"] == 2
    assert checkpoint["vocabulary"] == list(vocabulary.tokens)
    assert checkpoint["model_config"]["hidden"] == 32
    assert TrainConfig.from_dict(checkpoint["train_config"]) == train_config
    assert set(checkpoint["metrics"]) == {"validation", "validation_noisy"}
    assert {"optimizer", "ema", "rng", "scheduler"} <= set(checkpoint)

    model, loaded_vocabulary = load_model(tmp_path / "m.pt")
    assert loaded_vocabulary.tokens == vocabulary.tokens
    batch = dataset.batch(range(4))
    reference = Trainer(micro_config, train_config, vocabulary)
    reference.ema_model.load_state_dict(checkpoint["ema"])
    with torch.no_grad():
        expected = reference.ema_model(*batch.model_inputs())[-1].logits
    assert torch.equal(model.refine(*batch.model_inputs()).logits, expected)


def test_resume_refuses_a_foreign_file(tmp_path, dataset, micro_config, vocabulary):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a trm checkpoint"):
        fit(
            micro_config,
            short_run(),
            vocabulary,
            dataset,
            None,
            tmp_path / "other.pt",
            tmp_path / "m.csv",
            resume=True,
        )


def test_pretrain_command(tmp_path, spectrum_table, monkeypatch):
    (tmp_path / "train").mkdir()
    (tmp_path / "validation").mkdir()
    spectrum_table.head(48).write_parquet(tmp_path / "train" / "part-0.parquet")
    spectrum_table.tail(16).write_parquet(tmp_path / "validation" / "part-0.parquet")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    arguments = [
        "pretrain",
        "--train-dir", str(tmp_path / "train"),
        "--validation-dir", str(tmp_path / "validation"),
        "--checkpoint", str(tmp_path / "model.pt"),
        "--metrics", str(tmp_path / "metrics.csv"),
        "--model-config", "tiny",
        "--steps", "3",
        "--batch-size", "4",
        "--eval-every", "3",
        "--eval-spectra", "8",
        "--seed", "3",
        "--threads", "1",
    ]  # fmt: skip
    args = parser.parse_args(arguments)
    args.func(args)
    checkpoint = read_checkpoint(tmp_path / "model.pt")
    assert checkpoint["step"] == 3 and checkpoint["model_config"]["hidden"] == 64
    rows = read_rows(tmp_path / "metrics.csv")
    assert [row["split"] for row in rows] == ["validation", "validation_noisy"]
    assert float(rows[0]["n_spectra"]) == 8

    # Resuming a finished run trains no further.
    args = parser.parse_args([*arguments, "--resume"])
    monkeypatch.setattr(loop_module.Trainer, "train_step", None)
    args.func(args)
    assert read_checkpoint(tmp_path / "model.pt")["step"] == 3


def test_drafts_start_a_share_of_the_batch_from_a_corrupted_true_answer(micro_config, vocabulary):
    tokens = torch.randint(
        1, len(vocabulary), (400, 16), generator=torch.Generator().manual_seed(0)
    )
    tokens = SimpleNamespace(tokens=tokens)  # the drafts read no spectrum here
    blank = Trainer(micro_config, short_run(draft_fraction=0.0), vocabulary)
    assert blank.draft(tokens, torch.Generator().manual_seed(1)) is None

    exact = Trainer(micro_config, short_run(draft_fraction=1.0, draft_corruption=0.0), vocabulary)
    draft = exact.draft(tokens, torch.Generator().manual_seed(1))
    assert draft.shape == (400, 16, len(vocabulary))
    assert torch.equal(draft.argmax(dim=-1), tokens.tokens)

    mixed = Trainer(micro_config, short_run(draft_fraction=0.5, draft_corruption=0.5), vocabulary)
    draft = mixed.draft(tokens, torch.Generator().manual_seed(1))
    drafted = draft.abs().sum(dim=(1, 2)) > 0
    assert 150 < int(drafted.sum()) < 250
    kept = (draft[drafted].argmax(dim=-1) == tokens.tokens[drafted]).float().mean()
    # Each draft replaces a rate drawn below 0.5 of its positions: about 1/4 on average.
    assert 0.7 < float(kept) < 0.85
    # A pure function of the generator, as exact resumption needs.
    assert torch.equal(draft, mixed.draft(tokens, torch.Generator().manual_seed(1)))


def test_graph_drafts_are_the_spectrum_graphs_best_paths(dataset, micro_config, vocabulary):
    """With every draft from the spectrum graph, clean theoretical spectra start from their
    own peptide (I/L aside) where the graph reads it, never from a random corruption."""
    trainer = Trainer(
        micro_config,
        short_run(draft_fraction=1.0, draft_corruption=1.0, graph_draft_fraction=1.0),
        vocabulary,
    )
    batch = dataset.batch(np.arange(16))
    draft = trainer.draft(batch, torch.Generator().manual_seed(1)).argmax(dim=-1)
    canonical = torch.from_numpy(canonical_tokens(vocabulary))
    same = (canonical[draft] == canonical[batch.tokens]).all(dim=1)
    assert int(same.sum()) >= 12
    assert torch.equal(draft, trainer.draft(batch, torch.Generator().manual_seed(1)).argmax(-1))


def test_ranking_answers_put_the_true_peptide_against_the_graphs_other_candidates(
    dataset, micro_config, vocabulary
):
    """Column 0 is the true peptide; the others are graph candidates, none of them the true
    peptide as the graph reads it (I as L); a pure function of the generator."""
    trainer = Trainer(micro_config, short_run(rank_fraction=1.0, rank_candidates=4), vocabulary)
    batch = dataset.batch(np.arange(16))
    ranking = trainer.ranking_answers(batch, torch.Generator().manual_seed(1))
    assert torch.equal(ranking.rows, torch.arange(16))
    assert ranking.answers.shape == (16, 5, batch.tokens.shape[1])
    assert torch.equal(ranking.answers[:, 0], batch.tokens)
    assert bool(ranking.valid[:, 0].all())
    assert int(ranking.valid[:, 1:].sum()) > 16  # the graph finds other paths too
    canonical = torch.from_numpy(canonical_tokens(vocabulary))
    wrong = canonical[ranking.answers[:, 1:]]
    same = (wrong == canonical[batch.tokens][:, None]).all(dim=-1)
    assert not bool((same & ranking.valid[:, 1:]).any())
    assert not bool(ranking.answers[:, 1:][~ranking.valid[:, 1:]].any())  # padding rows blank
    again = trainer.ranking_answers(batch, torch.Generator().manual_seed(1))
    assert torch.equal(again.answers, ranking.answers)
    local = ranking.local(4, 8, world_size=2)
    assert torch.equal(local.rows, torch.arange(4))
    assert torch.equal(local.answers, ranking.answers[4:8])
    # Two processes' losses over their shares average to the whole batch's loss (DDP
    # averages gradients), however the ranked spectra fall between them.
    scores = torch.randn(ranking.valid.shape)
    logits = torch.randn(ranking.valid.shape)
    only_true = ranking.valid.clone()
    only_true[:8, 1:] = False  # the first share's spectra have no wrong candidate
    for valid in (ranking.valid, only_true):
        split = dataclasses.replace(ranking, valid=valid)
        whole = ranking_loss(scores, logits, valid, 0.5)
        shares = [split.local(start, start + 8, world_size=2) for start in (0, 8)]
        parts = [
            ranking_loss(scores[share.rows + start], logits[share.rows + start], share.valid,
                         0.5, share.totals)
            for share, start in zip(shares, (0, 8), strict=True)
        ]  # fmt: skip
        assert torch.isclose((parts[0] + parts[1]) / 2, whole)
    off = Trainer(micro_config, short_run(), vocabulary)
    assert off.ranking_answers(batch, torch.Generator().manual_seed(1)) is None


def test_ranking_by_graph_score_offsets_each_answer_by_its_graph_score(
    dataset, micro_config, vocabulary
):
    """With ``rank_graph_score`` each valid answer carries the graph's score of it on the
    spectrum (what the model's score is added to); without, the offsets are 0."""
    config = short_run(rank_fraction=1.0, rank_candidates=3, rank_graph_score=True)
    trainer = Trainer(micro_config, config, vocabulary)
    batch = dataset.batch(np.arange(8))
    ranking = trainer.ranking_answers(batch, torch.Generator().manual_seed(1))
    inputs = trainer._graph_inputs(batch, ranking.rows.numpy())
    expected = trainer.graph.score_peptides(*inputs, ranking.answers.numpy()).score
    assert bool(ranking.valid[:, 0].any())
    np.testing.assert_allclose(
        ranking.offsets.numpy()[ranking.valid.numpy()],
        expected[ranking.valid.numpy()].astype(np.float32),
        rtol=1e-6,
    )
    assert not bool(ranking.offsets[~ranking.valid].any())
    plain = Trainer(micro_config, dataclasses.replace(config, rank_graph_score=False), vocabulary)
    assert not bool(plain.ranking_answers(batch, torch.Generator().manual_seed(1)).offsets.any())


def test_a_ranking_step_lowers_the_ranking_loss(dataset, micro_config, vocabulary):
    """Training steps on the same ranked batch move the true peptide's score up against
    the graph's other candidates: the loss reaches the teacher-forced scores."""
    trainer = Trainer(
        micro_config,
        short_run(rank_fraction=1.0, rank_weight=1.0, draft_fraction=0.0, learning_rate=3e-3,
                  warmup_steps=0),
        vocabulary,
    )  # fmt: skip
    batch = dataset.batch(np.arange(16))
    ranking = trainer.ranking_answers(batch, torch.Generator().manual_seed(1))
    losses = [trainer.optimise(batch, None, ranking=ranking)["ranking_loss"] for _ in range(6)]
    assert losses[-1] < losses[0]
    assert "ranking_loss" not in trainer.optimise(batch, None)


def test_rank_settings_are_checked():
    with pytest.raises(InputError, match="rank_fraction must lie in"):
        TrainConfig(rank_fraction=1.5)
    with pytest.raises(InputError, match="rank_candidates must be"):
        TrainConfig(rank_candidates=0)
    for weight in (-1.0, float("nan")):
        with pytest.raises(InputError, match="rank_weight must be"):
            TrainConfig(rank_weight=weight)


def test_start_from_a_base_model_and_use_it_as_is(tmp_path, dataset, micro_config, vocabulary):
    """`--init` takes the base model's weights and architecture; with 0 steps the base
    model is evaluated and written unchanged, with its metrics."""
    fit(micro_config, short_run(steps=3), vocabulary, dataset, None, tmp_path / "base.pt",
        tmp_path / "base.csv")  # fmt: skip
    base = read_checkpoint(tmp_path / "base.pt")
    other = dataclasses.replace(micro_config, hidden=64)
    as_is = fit(
        other, short_run(steps=0), vocabulary, dataset, dataset, tmp_path / "as_is.pt",
        tmp_path / "as_is.csv", init_from=tmp_path / "base.pt",
    )  # fmt: skip
    assert as_is.completed and as_is.step == 0
    written = read_checkpoint(tmp_path / "as_is.pt")
    assert written["model_config"] == base["model_config"]
    for name, tensor in base["ema"].items():
        assert torch.equal(written["ema"][name], tensor), name
    assert {row["split"] for row in read_rows(tmp_path / "as_is.csv")} == {
        "validation",
        "validation_noisy",
    }
    trained = fit(
        other, short_run(steps=2), vocabulary, dataset, None, tmp_path / "more.pt",
        tmp_path / "more.csv", init_from=tmp_path / "base.pt",
    )  # fmt: skip
    assert trained.step == 2
    assert read_checkpoint(tmp_path / "more.pt")["model_config"]["hidden"] == 32


def test_time_limit_stops_with_a_checkpoint(tmp_path, dataset, micro_config, vocabulary):
    result = fit(
        micro_config, short_run(steps=50), vocabulary, dataset, None, tmp_path / "t.pt",
        tmp_path / "t.csv", time_limit_s=0.0,
    )  # fmt: skip
    assert result.timed_out and result.step == 1
    assert read_checkpoint(tmp_path / "t.pt")["step"] == 1


def test_the_shipped_base_model_loads_with_its_card(project_root):
    folder = project_root / "resources/models/orbitrap_hcd"
    model, vocabulary = load_model(folder / "model.pt")
    checkpoint = read_checkpoint(folder / "model.pt")
    assert "optimizer" not in checkpoint and checkpoint["train_config"]["fitted_noise"]
    assert model.config.evidence_tolerance == 0.02 and len(vocabulary) == model.config.n_tokens
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"{checkpoint['step']:,} steps" in card


def test_a_run_trained_to_rank_evaluates_the_choice_it_serves(
    tmp_path, dataset, micro_config, vocabulary
):
    """A run that ranks the graph's candidates reports, at each evaluation and on both
    splits, the teacher-forced choice among them (what the hybrid decoder answers)."""
    result = fit(
        micro_config, short_run(steps=2, rank_fraction=0.5, rank_candidates=3), vocabulary,
        dataset, dataset, tmp_path / "r.pt", tmp_path / "r.csv",
    )  # fmt: skip
    for split in ("validation", "validation_noisy"):
        assert 0.0 <= result.metrics[split]["hybrid_peptide_recall"] <= 1.0
        assert 0.0 <= result.metrics[split]["hybrid_aa_precision"] <= 1.0
    rows = read_rows(tmp_path / "r.csv")
    assert all(row["hybrid_peptide_recall"] != "" for row in rows)
    plain = fit(
        micro_config, short_run(steps=2), vocabulary, dataset, dataset, tmp_path / "p.pt",
        tmp_path / "p.csv",
    )  # fmt: skip
    assert "hybrid_peptide_recall" not in plain.metrics["validation"]


def test_metrics_gain_the_columns_a_resumed_run_adds(tmp_path):
    """A run resumed by a trm that evaluates more keeps its earlier rows: the file is
    rewritten with the new columns, empty in the old rows."""
    path = tmp_path / "m.csv"
    loop_module._append_metrics(path, [{"step": 2, "split": "validation", "loss": 1.5}])
    loop_module._append_metrics(path, [{"step": 4, "split": "validation", "loss": 1.2}])
    loop_module._append_metrics(
        path, [{"step": 6, "split": "validation", "loss": 1.0, "hybrid_peptide_recall": 0.25}]
    )
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["step"] for row in rows] == ["2", "4", "6"]
    assert [row["hybrid_peptide_recall"] for row in rows] == ["", "", "0.25"]
    assert rows[1]["loss"] == "1.2"
