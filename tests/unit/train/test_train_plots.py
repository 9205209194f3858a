"""``trm plot-training``'s figure: what it draws from a run's metrics."""

from __future__ import annotations

import polars as pl

from trm.train.plots import training_figure


def test_the_choice_among_graph_candidates_is_drawn_where_a_run_reports_it():
    """A run resumed by a trm that evaluates the choice has it from some step on: its
    line covers those steps only, and a run without it draws none."""
    metrics = pl.DataFrame(
        {
            "step": [2, 2, 4, 4],
            "split": ["validation", "validation_noisy"] * 2,
            "token_accuracy_step0": [0.2, 0.1, 0.3, 0.2],
            "aa_precision": [0.4, 0.2, 0.5, 0.3],
            "peptide_recall": [0.1, 0.0, 0.2, 0.1],
            "hybrid_peptide_recall": [None, None, 0.6, 0.3],
        }
    )
    axes = training_figure(metrics).axes[1]
    lines = {line.get_label(): line for line in axes.lines}
    choice = lines["peptide recall, choice among graph candidates, validation"]
    assert list(choice.get_xdata()) == [4] and list(choice.get_ydata()) == [0.6]
    assert "peptide recall, validation_noisy" in lines
    plain = training_figure(metrics.drop("hybrid_peptide_recall")).axes[1]
    assert not any("graph candidates" in line.get_label() for line in plain.lines)


def test_a_resumed_runs_new_column_is_read_as_numbers(tmp_path, monkeypatch):
    """Past 100 rows without it, the column a resumed run added still reads as numbers
    (polars types a column from its first 100 rows unless told otherwise)."""
    import argparse

    from trm.train.loop import _append_metrics
    from trm.train.plots import run_plot_training

    path = tmp_path / "metrics.csv"
    for step in range(1, 121):
        _append_metrics(path, [{"step": step, "split": "validation", "peptide_recall": 0.1}])
    _append_metrics(
        path,
        [{"step": 121, "split": "validation", "peptide_recall": 0.2, "hybrid_peptide_recall": 0.5}],
    )
    from trm.train import plots

    read = []
    monkeypatch.setattr(
        plots, "training_figure", lambda metrics: read.append(metrics) or training_figure(metrics)
    )
    run_plot_training(argparse.Namespace(metrics=path, plot=tmp_path / "curve.png"))
    assert read[0]["hybrid_peptide_recall"].dtype.is_numeric()
    assert (tmp_path / "curve.png").stat().st_size > 0
