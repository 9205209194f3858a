"""The parts of the de novo stage: settings, calibration measures, batch bookkeeping."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import polars as pl
import pytest

from tests.unit.train.theoretical_spectra import theoretical_table
from trm.chem import mass_to_mz, mz_to_mass, parse_peptidoform, peptide_mass
from trm.denovo.calibrate import (
    choose_raw_score,
    expected_calibration_error,
    reliability_table,
    roc_auc,
)
from trm.denovo.decode import REASON_NO_FITTING_LENGTH, REASON_NOT_FOUND, DecodingSettings
from trm.denovo.inference import Sequencer, spectrum_arrays
from trm.denovo.rescore import FEATURES, UNSCORABLE_LOG_PROBABILITY
from trm.denovo.run import sequence_batch
from trm.denovo.settings import InferenceSettings, parse_halt_threshold
from trm.fragments import fragment_mz
from trm.graph import GraphDecoder, IonProbabilities
from trm.instrument import InstrumentFileError, InstrumentSettings, load_instrument
from trm.io.table import SPECTRUM_SCHEMA
from trm.train.checkpoint import load_model
from trm.train.data import list_column_arrays

from .conftest import random_peptides, write_instrument


def test_instrument_file(tmp_path, project_root):
    shipped = load_instrument(project_root / "config" / "instruments" / "orbitrap_hcd.yaml")
    assert shipped.precursor_tolerance_ppm == 20 and shipped.isotope_errors == (0, 1)
    bad = write_instrument(tmp_path / "bad.yaml", missing_charge="guess")
    with pytest.raises(InstrumentFileError, match="bad.yaml.*missing_charge"):
        load_instrument(bad)
    with pytest.raises(InstrumentFileError, match="missing.yaml"):
        load_instrument(tmp_path / "missing.yaml")


def test_halt_threshold_and_settings_round_trip():
    assert parse_halt_threshold("none") is None
    assert parse_halt_threshold("0.8") == 0.8
    with pytest.raises(ValueError, match="halt threshold"):
        parse_halt_threshold("1.5")
    settings = InferenceSettings(
        decoder="model", decoding=DecodingSettings(beam_size=4), halt_threshold=None
    )
    assert InferenceSettings.from_dict(settings.to_dict()) == settings
    other = InferenceSettings(
        decoder="model", decoding=DecodingSettings(beam_size=8), halt_threshold=None
    )
    assert other.differences(settings) == ["beam_size: 8 vs 4"]
    longer = InferenceSettings(
        decoding=DecodingSettings(beam_size=4),
        halt_threshold=None,
        refinement_steps=16,
        decoder="model",
    )
    assert InferenceSettings.from_dict(longer.to_dict()) == longer
    assert longer.differences(settings) == ["refinement_steps: 16 vs None"]
    old = settings.to_dict()
    del old["refinement_steps"]  # a model calibrated before the setting existed
    assert InferenceSettings.from_dict(old) == settings
    before_prior = InferenceSettings().to_dict()
    del before_prior["graph"]["residue_prior_weight"]  # calibrated before the residue prior
    stored = InferenceSettings.from_dict(before_prior)
    assert stored.graph.residue_prior_weight == 0.0
    assert InferenceSettings().differences(stored) == ["graph.residue_prior_weight: 1.0 vs 0.0"]
    before_start = InferenceSettings().to_dict()
    del before_start["graph"]["max_start_residues"]  # calibrated before the start edges
    stored = InferenceSettings.from_dict(before_start)
    assert stored.graph.max_start_residues == stored.graph.max_edge_residues == 2
    assert InferenceSettings().differences(stored) == ["graph.max_start_residues: 3 vs 2"]


def test_roc_auc_counts_ties_half():
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_reliability_and_expected_calibration_error():
    probabilities = np.array([0.05, 0.05, 0.95, 0.95])
    correct = np.array([0, 0, 1, 1])
    table = reliability_table(probabilities, correct)
    assert [row["n"] for row in table] == [2, 2]
    assert expected_calibration_error(probabilities, correct) == pytest.approx(0.05)


def test_choose_raw_score_prefers_peptide_on_ties():
    candidates = {
        "peptide": {"pc_auc": 0.7},
        "halt": {"pc_auc": 0.7},
        "combined": {"pc_auc": 0.65},
        "rescored": {"pc_auc": 0.705},  # within the margin
    }
    assert choose_raw_score(candidates) == "peptide"
    candidates["rescored"]["pc_auc"] = 0.8
    assert choose_raw_score(candidates) == "rescored"


def test_peak_lists_keep_empty_spectra():
    table = pl.DataFrame(
        {"mz": [[1.0, 2.0], [], [3.0]], "intensity": [[5.0, 6.0], [], [7.0]]},
        schema={"mz": pl.List(pl.Float32()), "intensity": pl.List(pl.Float32())},
    )
    mz = list_column_arrays(table.get_column("mz"), np.float32)
    intensity = list_column_arrays(table.get_column("intensity"), np.float32)
    assert [len(m) for m in mz] == [2, 0, 1]
    assert intensity[2].tolist() == [7.0]


def test_try_policy_keeps_the_best_copy_in_input_order(model_path):
    model, vocabulary = load_model(model_path)
    settings = InferenceSettings(
        decoder="model", decoding=DecodingSettings(precursor_tolerance_ppm=1e6, beam_size=4)
    )
    sequencer = Sequencer(model, vocabulary, settings, batch_size=2)
    peaks = [100.0, 200.0, 300.0]
    batch = pl.DataFrame(
        {
            "spectrum_id": ["a", "b", "c", "d"],
            "run": ["r"] * 4,
            "scan": [1, 2, 3, 4],
            "precursor_mz": [300.0, 300.0, None, 300.0],
            "charge": [None, 2, 2, None],
            "rt": [1.0, 2.0, 3.0, 4.0],
            "mz": [peaks, peaks, peaks, []],
            "intensity": [[1.0, 2.0, 3.0]] * 3 + [[]],
            "peptide": [None] * 4,
        },
        schema=SPECTRUM_SCHEMA,
    )
    instrument = InstrumentSettings(charges=(2, 3, 4))
    result = sequence_batch(batch, sequencer, instrument, calibration=None, offset=10)
    sequenced, unsequenced = result.sequenced, result.unsequenced
    assert sequenced["spectrum_id"].to_list() == ["a", "b"]
    assert sequenced["_index"].to_list() == [10, 11]
    assert unsequenced["spectrum_id"].to_list() == ["c", "d"]
    assert unsequenced["reason"].to_list() == ["missing precursor m/z", "no peaks"]
    # The copy of "a" kept is the one with the best raw score of its three charges.
    raw = {}
    for charge in (2, 3, 4):
        copy = batch.head(1).with_columns(pl.lit(charge, dtype=pl.Int16()).alias("charge"))
        raw[charge] = sequence_batch(copy, sequencer, instrument, None, 0).sequenced["raw_score"][0]
    assert sequenced["raw_score"][0] == pytest.approx(max(raw.values()))
    assert sequenced["charge"][0] == max(raw, key=raw.get)


def test_reason_of_a_spectrum_tried_at_several_charges(model_path):
    """The decoder's verdict on a charge it saw wins over a charge the model cannot take."""
    model, vocabulary = load_model(model_path)
    settings = InferenceSettings(
        decoder="model", decoding=DecodingSettings(precursor_tolerance_ppm=1e-9, beam_size=2)
    )
    sequencer = Sequencer(model, vocabulary, settings)
    batch = pl.DataFrame(
        {
            "spectrum_id": ["x"],
            "run": ["r"],
            "precursor_mz": [301.7],
            "mz": [[100.0, 200.0]],
            "intensity": [[1.0, 1.0]],
        },
        schema={
            k: SPECTRUM_SCHEMA[k] for k in ("spectrum_id", "run", "precursor_mz", "mz", "intensity")
        },
    ).with_columns(
        pl.lit(None, dtype=pl.Int64()).alias("scan"),
        pl.lit(None, dtype=pl.Int16()).alias("charge"),
        pl.lit(None, dtype=pl.Float64()).alias("rt"),
        pl.lit(None, dtype=pl.String()).alias("peptide"),
    )
    instrument = InstrumentSettings(charges=(5, 2))
    result = sequence_batch(batch, sequencer, instrument, calibration=None, offset=0)
    assert result.sequenced.height == 0
    (reason,) = result.unsequenced["reason"].to_list()
    assert reason in (REASON_NO_FITTING_LENGTH, REASON_NOT_FOUND)


def test_the_instruments_fragment_tolerance_reaches_the_model(model_path, caplog):
    """An ion-trap tolerance (0.5 Da) changes the model's ion lookup and its answers, and a
    model trained at 0.02 Da says so."""
    model, vocabulary = load_model(model_path)
    settings = InferenceSettings(
        decoder="model", decoding=DecodingSettings(beam_size=4), halt_threshold=None
    )
    table = theoretical_table(random_peptides(16, seed=5), seed=6)
    mz, intensity, counts = spectrum_arrays(table, model.config.n_peaks)
    # Peaks 0.1 Da off: inside an ion trap's tolerance, outside an Orbitrap's.
    mz = np.where(mz > 0, mz + 0.1, 0).astype(np.float32)
    charge = table["charge"].to_numpy().astype(np.int64)
    precursor = mz_to_mass(table["precursor_mz"].to_numpy(), charge)
    answers = {}
    for tolerance in (0.02, 0.5):
        with caplog.at_level(logging.WARNING, logger="trm.denovo.inference"):
            caplog.clear()
            sequencer = Sequencer(
                load_model(model_path)[0],
                vocabulary,
                dataclasses.replace(settings, fragment_tolerance_da=tolerance),
            )
        warned = "differs from the 0.02 Da the model was trained with" in caplog.text
        assert warned == (tolerance == 0.5)
        assert sequencer.fragment_tolerance_da == tolerance
        answers[tolerance] = sequencer.predict(mz, intensity, counts, precursor, charge)
    coverage = {t: p.features[..., FEATURES.index("fragment_coverage")] for t, p in answers.items()}
    assert coverage[0.5].sum() > coverage[0.02].sum()
    assert [d.log_probability for d in answers[0.02].decoded if d] != [
        d.log_probability for d in answers[0.5].decoded if d
    ]


def test_a_one_peak_spectrum_does_not_stop_its_batch(model_path):
    """One spectrum with a single peak crashed the encoder for its whole batch."""
    model, vocabulary = load_model(model_path)
    settings = InferenceSettings(
        decoder="model", decoding=DecodingSettings(beam_size=4), halt_threshold=None
    )
    sequencer = Sequencer(model, vocabulary, settings, batch_size=8)
    batch = pl.DataFrame(
        {
            "spectrum_id": ["one", "two"],
            "run": ["r", "r"],
            "scan": [1, 2],
            "precursor_mz": [300.0, 300.0],
            "charge": [2, 2],
            "rt": [1.0, 2.0],
            "mz": [[150.0], [100.0, 200.0]],
            "intensity": [[1.0], [1.0, 2.0]],
            "peptide": [None, None],
        },
        schema=SPECTRUM_SCHEMA,
    )
    result = sequence_batch(batch, sequencer, InstrumentSettings(), calibration=None, offset=0)
    assert result.sequenced.height + result.unsequenced.height == 2


def test_profile_spectra_are_listed_not_sequenced(model_path, tmp_path):
    """MS2 spectra the file marks as profile data were sequenced as if centroided."""
    from tests.unit.io.conftest import write_mzml
    from trm.denovo.run import REASON_PROFILE, iter_input_batches

    path = write_mzml(
        tmp_path / "mixed.mzML",
        [
            {"mz": [100.0, 200.0, 300.0], "intensity": [1.0, 2.0, 3.0]},
            {"mz": [100.0, 100.01, 100.02], "intensity": [1.0, 5.0, 1.0], "profile": True},
        ],
    )
    model, vocabulary = load_model(model_path)
    settings = InferenceSettings(
        decoder="model", decoding=DecodingSettings(beam_size=4), halt_threshold=None
    )
    sequencer = Sequencer(model, vocabulary, settings)
    (batch,) = list(iter_input_batches(path, 10, "mixed"))
    assert batch["profile"].to_list() == [False, True]
    result = sequence_batch(batch, sequencer, InstrumentSettings(), calibration=None, offset=0)
    assert result.unsequenced.filter(pl.col("spectrum_id") == "scan=2")["reason"].to_list() == [
        REASON_PROFILE
    ]
    assert "scan=2" not in result.sequenced["spectrum_id"].to_list()


def test_workers_sequence_a_file_as_one_worker_does(model_path, sample, instrument_path):
    """Batches run in parallel threads; the results, in input order, must not change."""
    import torch

    from trm.denovo.inference import parallel_plan
    from trm.denovo.run import sequence_file

    model, vocabulary = load_model(model_path)
    settings = InferenceSettings(
        decoder="model", decoding=DecodingSettings(beam_size=4), halt_threshold=None
    )
    instrument = load_instrument(instrument_path)
    assert parallel_plan(3, torch.device("cpu")) == 3 and torch.get_num_threads() == 1
    outcomes = [
        sequence_file(
            sample.path,
            "sample",
            Sequencer(model, vocabulary, settings, batch_size=3, workers=workers),
            instrument,
            calibration=None,
            batch_size=3,
        )
        for workers in (1, 3)
    ]
    one, three = outcomes
    assert one.n_spectra == three.n_spectra == len(sample.ms2_ids)
    assert one.sequenced["spectrum_id"].to_list() == three.sequenced["spectrum_id"].to_list()
    assert one.sequenced["peptide"].to_list() == three.sequenced["peptide"].to_list()
    np.testing.assert_allclose(
        one.sequenced["raw_score"].to_numpy(), three.sequenced["raw_score"].to_numpy(), rtol=1e-4
    )
    assert one.unsequenced.equals(three.unsequenced)
    ids = [*three.sequenced["spectrum_id"], *three.unsequenced["spectrum_id"]]
    assert sorted(ids) == sorted(sample.ms2_ids)


def test_predict_with_workers_keeps_the_order(model_path):
    model, vocabulary = load_model(model_path)
    settings = InferenceSettings(
        decoder="model", decoding=DecodingSettings(beam_size=4), halt_threshold=None
    )
    peptides = random_peptides(10, seed=3)
    table = theoretical_table(peptides, seed=4, charge=2)
    mz, intensity, counts = spectrum_arrays(table, model.config.n_peaks)
    charge = table["charge"].to_numpy()
    mass = mz_to_mass(table["precursor_mz"].to_numpy(), charge)
    runs = [
        Sequencer(model, vocabulary, settings, batch_size=3, workers=workers).predict(
            mz, intensity, counts, mass, charge
        )
        for workers in (1, 4)
    ]
    assert [d and list(d.token_ids) for d in runs[0].decoded] == [
        d and list(d.token_ids) for d in runs[1].decoded
    ]
    np.testing.assert_allclose(runs[0].halt_probability, runs[1].halt_probability, rtol=1e-5)


@pytest.mark.parametrize("decoder", ["hybrid", "graph"])
def test_bad_spectra_are_accounted_for_by_the_evidence_decoders(model_path, decoder):
    """Spectra with 0-2 peaks, a precursor no peptide fits, and charges 1 and 5+ end up
    once each, in the results or with a reason, under the graph and hybrid decoders too."""
    model, vocabulary = load_model(model_path)
    settings = InferenceSettings(decoder=decoder, decoding=DecodingSettings(beam_size=4))
    graph = GraphDecoder(vocabulary, settings.graph, IonProbabilities.hand_set())
    sequencer = Sequencer(model, vocabulary, settings, graph=graph)
    peptides = random_peptides(2, seed=7)  # of the micro model's vocabulary
    good = theoretical_table(peptides, seed=3)
    tokens, _ = parse_peptidoform(peptides[0])
    ladder = fragment_mz(tokens, charges=(1,))
    ladder_mz = sorted([*ladder["b1"], *ladder["y1"]])
    neutral = peptide_mass(tokens)
    rows = {
        "no peaks": ([], 2, mass_to_mz(neutral, 2)),
        "one peak": (ladder_mz[:1], 2, mass_to_mz(neutral, 2)),
        "two peaks": (ladder_mz[:2], 2, mass_to_mz(neutral, 2)),
        "no peptide fits": (ladder_mz, 2, mass_to_mz(57.0215 * 1.5, 2)),
        "charge 1": (ladder_mz, 1, mass_to_mz(neutral, 1)),
        "charge 5": (ladder_mz, 5, mass_to_mz(neutral, 5)),
        "charge 7": (ladder_mz, 7, mass_to_mz(neutral, 7)),
    }
    bad = pl.DataFrame(
        {
            "spectrum_id": list(rows),
            "run": ["r"] * len(rows),
            "scan": list(range(len(rows))),
            "precursor_mz": [float(r[2]) for r in rows.values()],
            "charge": [r[1] for r in rows.values()],
            "rt": [0.0] * len(rows),
            "mz": [list(map(float, r[0])) for r in rows.values()],
            "intensity": [[1.0] * len(r[0]) for r in rows.values()],
            "peptide": [None] * len(rows),
        },
        schema=SPECTRUM_SCHEMA,
    )
    batch = pl.concat([good.select(*SPECTRUM_SCHEMA), bad])
    result = sequence_batch(batch, sequencer, InstrumentSettings(), calibration=None, offset=0)
    sequenced = result.sequenced["spectrum_id"].to_list()
    unsequenced = dict(
        zip(result.unsequenced["spectrum_id"], result.unsequenced["reason"], strict=True)
    )
    assert sorted(sequenced + list(unsequenced)) == sorted(batch["spectrum_id"].to_list())
    assert not set(sequenced) & set(unsequenced)
    assert {"no peaks", "no peptide fits"} <= set(unsequenced)
    assert all(unsequenced.values())
    assert set(good["spectrum_id"]) <= set(sequenced), unsequenced


def test_teacher_forcing_scores_the_candidates_with_the_best_graph_scores(model_path):
    """``forced_candidates`` limits the teacher-forced scoring to each pool's best by graph
    score, with the same scores as scoring every candidate; the rest get the floor."""
    model, vocabulary = load_model(model_path)
    table = theoretical_table(random_peptides(6, seed=11), seed=12, charge=2)
    mz, intensity, counts = spectrum_arrays(table, 64)
    charge = table["charge"].to_numpy()
    mass = mz_to_mass(table["precursor_mz"].to_numpy(), charge)

    def pools(limit: int) -> list[list]:
        settings = InferenceSettings(
            decoder="hybrid",
            decoding=DecodingSettings(beam_size=4),
            teacher_forcing=True,
            forced_candidates=limit,
        )
        graph = GraphDecoder(vocabulary, settings.graph, IonProbabilities.hand_set())
        sequencer = Sequencer(model, vocabulary, settings, graph=graph)
        return sequencer.predict(mz, intensity, counts, mass, charge).candidates

    every, limited = pools(0), pools(2)
    assert any(len(pool) > 2 for pool in every)
    for full, part in zip(every, limited, strict=True):
        assert [list(p.token_ids) for p in full] == [list(p.token_ids) for p in part]
        best = sorted(range(len(full)), key=lambda i: -full[i].graph_score)[:2]
        for index, (a, b) in enumerate(zip(full, part, strict=True)):
            if index in best:
                assert b.forced_log_probability == pytest.approx(a.forced_log_probability, abs=1e-4)
            else:
                assert b.forced_log_probability == UNSCORABLE_LOG_PROBABILITY
                assert b.forced_halt_probability == 0.0
