"""``trm finetune``: the peptide split, the strategies, early stopping, the work folder, and
evaluation that leaves fine-tuning spectra out."""

from __future__ import annotations

import logging

import polars as pl
import pytest
import torch

from trm.cli import main
from trm.io.labels import spectra_used_for_finetuning
from trm.train.checkpoint import read_checkpoint
from trm.train.finetune import FinetuneConfig, assign_splits, peptide_group

from .theoretical_spectra import random_peptides, theoretical_table


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A tiny pretrained model and the synthetic shards it trained on."""
    folder = tmp_path_factory.mktemp("base")
    for split, seed in (("train", 1), ("validation", 2)):
        (folder / split).mkdir()
        theoretical_table(random_peptides(32, seed=seed), seed=seed, annotated=True).write_parquet(
            folder / split / "shard-00000.parquet"
        )
    code = main(
        [
            "pretrain", "--train-dir", str(folder / "train"),
            "--validation-dir", str(folder / "validation"),
            "--checkpoint", str(folder / "base.pt"), "--metrics", str(folder / "base.csv"),
            "--model-config", "tiny", "--steps", "4", "--batch-size", "4", "--eval-every", "4",
            "--eval-spectra", "8", "--warmup-steps", "1",
        ]
    )  # fmt: skip
    assert code == 0
    return folder


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    """A lab's labelled run: 60 spectra of 30 peptides (each peptide twice)."""
    peptides = random_peptides(30, seed=5)
    table = theoretical_table(peptides + peptides, seed=6).with_columns(
        pl.lit("lab_run").alias("run")
    )
    path = tmp_path_factory.mktemp("labels") / "lab_run.parquet"
    table.write_parquet(path)
    return path


def _finetune(base_model, labels, out, *extra: str) -> int:
    return main(
        [
            "finetune", "--model", str(base_model / "base.pt"), "--labels", str(labels),
            "--synthetic-dir", str(base_model / "train"),
            "--checkpoint", str(out / "finetuned.pt"), "--metrics", str(out / "finetune.csv"),
            "--split-table", str(out / "split.tsv"),
            "--validation-labels", str(out / "validation.parquet"),
            "--work-dir", str(out / "work"), "--batch-size", "4", "--warmup-steps", "1",
            *extra,
        ]
    )  # fmt: skip


def test_split_is_by_peptide_with_i_as_l_and_without_modifications():
    assert peptide_group("PEPTIDE") == peptide_group("PEPTLDE")
    assert peptide_group("[Acetyl]-M[Oxidation]PEPK") == "MPEPK"
    peptides = random_peptides(400, seed=3)
    variants = [p.replace("L", "I") for p in peptides]
    table = pl.DataFrame({"peptide": peptides + variants + [None]})
    split = assign_splits(table, FinetuneConfig(split=(0.6, 0.2, 0.2))).get_column("split")
    assert split[:400].to_list() == split[400:800].to_list()
    assert split[800] is None
    shares = split[:400].value_counts(normalize=True).sort("split")
    assert dict(shares.iter_rows())["train"] == pytest.approx(0.6, abs=0.08)
    less = assign_splits(table, FinetuneConfig(real_data_fraction=0.3)).get_column("split")
    # Only train peptides become unused, about 70% of them.
    assert set(less.filter(split != "train").to_list()) <= {"validation", "test", None}
    n_train = int((split == "train").sum())
    assert int((less == "unused").sum()) == pytest.approx(0.7 * n_train, abs=0.1 * n_train)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"strategy": "bogus"}, "strategy 'bogus'"),
        ({"split": (0.5, 0.2, 0.2)}, "summing to 1"),
        ({"split": (1.0, 0.0, 0.0)}, "needs train and validation"),
        ({"strategy": "adversarial", "freeze_encoder": True}, "freeze_encoder"),
        ({"real_fractions": (0.0, 1.5)}, "real_fractions"),
        ({"real_data_fraction": 0.0}, "real_data_fraction"),
    ],
)
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(**settings)


def test_schedules():
    mixed = FinetuneConfig(steps=100)
    assert [mixed.real_fraction(s) for s in (0, 19, 20, 59, 99)] == [0.0, 0.0, 0.25, 0.5, 1.0]
    two_stage = FinetuneConfig(strategy="two-stage", steps=100, frozen_fraction=0.3)
    assert two_stage.real_fraction(0) == 1.0
    assert two_stage.encoder_frozen(29) and not two_stage.encoder_frozen(30)
    adversarial = FinetuneConfig(strategy="adversarial", steps=100)
    assert adversarial.domain_weight(0) == 0.0
    assert 0.099 < adversarial.domain_weight(100) <= 0.1


@pytest.mark.parametrize("strategy", ["mixed", "two-stage", "adversarial"])
def test_each_strategy_fine_tunes_and_records_itself(base_model, labels, tmp_path, strategy):
    assert _finetune(base_model, labels, tmp_path, "--strategy", strategy, "--steps", "6",
                     "--eval-every", "3", "--patience", "5") == 0  # fmt: skip
    checkpoint = read_checkpoint(tmp_path / "finetuned.pt")
    record = checkpoint["finetune"]
    assert record["settings"]["strategy"] == strategy
    assert record["best_step"] in (0, 3, 6)
    assert record["n_train_spectra"] > 0 and record["n_validation_spectra"] > 0
    assert "domain_head" not in checkpoint and "optimizer" not in checkpoint
    curve = pl.read_csv(tmp_path / "finetune.csv")
    assert curve["step"].to_list() == [0, 3, 6]
    if strategy == "adversarial":
        assert curve["domain_loss"].drop_nulls().len() == 2
    split = pl.read_csv(tmp_path / "split.tsv", separator="\t")
    assert split.height == 60 and set(split["split"]) <= {"train", "validation", "test"}
    validation = pl.read_parquet(tmp_path / "validation.parquet")
    assert validation.height == int((split["split"] == "validation").sum())
    assert not (tmp_path / "work").exists()


def _data(base, labels):
    from trm.model import ModelConfig
    from trm.train.checkpoint import checkpoint_vocabulary
    from trm.train.data import SpectrumDataset, dataset_sizes

    config = ModelConfig.from_dict(base["model_config"])
    return SpectrumDataset.from_table(
        pl.read_parquet(labels), **dataset_sizes(config, checkpoint_vocabulary(base))
    )


@pytest.mark.parametrize("frozen_fraction, encoder_trained", [(1.0, False), (0.0, True)])
def test_frozen_encoder_keeps_its_weights(base_model, labels, tmp_path, frozen_fraction,
                                          encoder_trained):  # fmt: skip
    from trm.train.finetune import finetune

    base = read_checkpoint(base_model / "base.pt")
    data = _data(base, labels)
    settings = FinetuneConfig(strategy="two-stage", steps=3, eval_every=3, batch_size=4,
                              warmup_steps=1, frozen_fraction=frozen_fraction)  # fmt: skip
    finetune(base, settings, data, data, None, tmp_path)
    trained = read_checkpoint(tmp_path / "checkpoint.pt")["model"]
    start = base["ema"]
    encoder = [k for k in start if k.startswith("encoder.") and start[k].is_floating_point()]
    core = [k for k in start if k.startswith("core.") and start[k].is_floating_point()]
    changed = [not torch.equal(start[k], trained[k]) for k in encoder]
    assert any(changed) == encoder_trained
    assert any(not torch.equal(start[k], trained[k]) for k in core)


def test_a_rerun_resumes_from_the_work_folder(base_model, labels, tmp_path, caplog):
    """The state after each evaluation is kept; a rerun with the same settings resumes
    from it and ends with the weights of an uninterrupted run."""
    from trm.train.finetune import finetune

    caplog.set_level(logging.INFO)
    base = read_checkpoint(base_model / "base.pt")
    data = _data(base, labels)
    settings = FinetuneConfig(strategy="two-stage", steps=4, eval_every=2, batch_size=4,
                              warmup_steps=1, patience=9, learning_rate=0.01)  # fmt: skip
    whole, whole_rows, _ = finetune(base, settings, data, data, None, tmp_path / "a")
    finetune(base, settings, data, data, None, tmp_path / "b", stop_at_step=2)
    assert read_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 2
    resumed, rows, result = finetune(base, settings, data, data, None, tmp_path / "b")
    assert "resumed fine-tuning" in caplog.text and "at step 2" in caplog.text
    assert result.stopped_at == 4 and [r["step"] for r in rows] == [0, 2, 4]
    assert [r["peptide_recall"] for r in rows] == [r["peptide_recall"] for r in whole_rows]
    assert whole["step"] == resumed["step"]
    for key, value in whole["ema"].items():
        assert torch.equal(value, resumed["ema"][key]), key


def test_no_labelled_spectra_is_a_clear_error_or_the_pretrained_model(base_model, tmp_path, caplog):
    empty = tmp_path / "empty.parquet"
    theoretical_table(random_peptides(2, seed=9), seed=9).with_columns(
        pl.lit(None, dtype=pl.String()).alias("peptide")
    ).write_parquet(empty)
    assert _finetune(base_model, empty, tmp_path, "--steps", "2") == 1
    assert "no usable labelled spectrum in the train and validation split" in caplog.text
    assert not (tmp_path / "finetuned.pt").exists()
    assert _finetune(base_model, empty, tmp_path, "--steps", "2", "--fallback") == 0
    checkpoint = read_checkpoint(tmp_path / "finetuned.pt")
    assert "no usable labelled spectrum" in checkpoint["finetune"]["skipped"]
    base = read_checkpoint(base_model / "base.pt")
    assert all(torch.equal(base["ema"][k], checkpoint["ema"][k]) for k in base["ema"])


def test_evaluation_leaves_fine_tuning_spectra_out(tmp_path):
    split = tmp_path / "split.tsv"
    pl.DataFrame(
        {
            "run": ["a", "a", "a", "b"],
            "spectrum_id": ["s1", "s2", "s3", "s1"],
            "peptide": ["PEPK", "PEPR", "PEPK", "AAK"],
            "split": ["train", "test", "validation", "train"],
        }
    ).write_csv(split, separator="\t")
    assert spectra_used_for_finetuning(split, "a") == {"s1", "s3"}
    assert spectra_used_for_finetuning(split, "b") == {"s1"}
    assert spectra_used_for_finetuning(split, "c") == set()
    (tmp_path / "bad.tsv").write_text("run\tid\na\tb\n")
    with pytest.raises(ValueError, match="lacks columns"):
        spectra_used_for_finetuning(tmp_path / "bad.tsv", "a")


@pytest.mark.parametrize("strategy", ["two-stage", "adversarial"])
def test_fine_tuning_ranks_the_graphs_candidates_as_its_base_run_did(base_model, labels, strategy):
    """A base run trained to rank the graph's candidates keeps that objective while it
    fine-tunes, on its real spectra too; one trained without it draws as before."""
    import dataclasses

    from trm.model import ModelConfig
    from trm.train.checkpoint import checkpoint_vocabulary
    from trm.train.config import TrainConfig
    from trm.train.finetune import FineTuner

    base = read_checkpoint(base_model / "base.pt")
    data = _data(base, labels)
    settings = FinetuneConfig(strategy=strategy, steps=2, batch_size=8, warmup_steps=1)
    pretrained = TrainConfig.from_dict(base["train_config"])
    assert pretrained.rank_fraction == 0.0
    synthetic = data if strategy == "adversarial" else None
    for fraction in (0.0, 0.5):  # half: the ranked rows are not the whole batch
        config = dataclasses.replace(pretrained, steps=2, batch_size=8, rank_fraction=fraction)
        tuner = FineTuner(ModelConfig.from_dict(base["model_config"]), config,
                          checkpoint_vocabulary(base), settings, data, synthetic)  # fmt: skip
        tuner.start_from(base)
        stats = tuner.train_step()
        assert stats["real_fraction"] == (1.0 if synthetic is None else 0.5)
        assert ("ranking_loss" in stats) == (fraction > 0)
        # the domain head reads the whole batch's encoding, not the ranked rows' pass
        assert ("auxiliary_loss" in stats) == (strategy == "adversarial")
        if fraction:
            assert stats["ranking_loss"] > 0


def test_a_ranking_base_is_judged_through_the_hybrid_decoder(base_model, labels, tmp_path):
    """Weights trained to rank serve the hybrid decoder: fine-tuning keeps the step whose
    hybrid answers (teacher-forced choice among the graph's candidates) are best."""
    import dataclasses

    from trm.train.config import TrainConfig
    from trm.train.finetune import _better, finetune, judged_by

    base = read_checkpoint(base_model / "base.pt")
    ranking = dataclasses.replace(TrainConfig.from_dict(base["train_config"]), rank_fraction=0.5)
    base = {**base, "train_config": ranking.to_dict()}
    data = _data(base, labels)
    settings = FinetuneConfig(strategy="two-stage", steps=2, eval_every=2, batch_size=4,
                              warmup_steps=1)  # fmt: skip
    _, rows, result = finetune(base, settings, data, data, None, tmp_path)
    assert [row["step"] for row in rows] == [0, 2]
    for row in rows:
        assert (
            0.0 <= row["hybrid_peptide_recall"] <= 1.0 and 0.0 <= row["hybrid_aa_precision"] <= 1.0
        )
        assert judged_by(row)[0] == "hybrid"
    # the hybrid figures decide, the model's own answers do not
    worse = {"hybrid_peptide_recall": 0.1, "hybrid_aa_precision": 0.5,
             "peptide_recall": 0.9, "aa_precision": 0.9}  # fmt: skip
    better = {**worse, "hybrid_peptide_recall": 0.2, "peptide_recall": 0.0}
    assert _better(better, worse) and not _better(worse, better)
    assert judged_by({"peptide_recall": 0.3, "aa_precision": 0.4}) == ("model", 0.3, 0.4)
    assert result.best_step in (0, 2)
    # on clean theoretical spectra the graph's candidates hold most peptides, which the
    # 4-step base model alone does not sequence
    assert rows[0]["hybrid_peptide_recall"] > 0.5 > rows[0]["peptide_recall"]
