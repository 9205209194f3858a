"""trm.denovo.model_file: the model file read once, settings merged in one order."""

from __future__ import annotations

import dataclasses

import pytest

from trm.denovo.decode import DecodingSettings
from trm.denovo.model_file import ModelFile, load_sequencer, resolve_settings
from trm.denovo.settings import InferenceSettings
from trm.errors import InputError
from trm.instrument import InstrumentSettings, load_instrument
from trm.model import get_model_config

SHIPPED = "resources/models/orbitrap_hcd/model.pt"


def test_the_shipped_base_model_is_ready_to_use(project_root):
    model_file = ModelFile.read(project_root / SHIPPED)
    assert model_file.calibration is not None and model_file.stored is not None


def test_stored_then_instrument_then_overrides():
    config = get_model_config("default")
    stored = InferenceSettings(
        DecodingSettings(precursor_tolerance_ppm=5.0, beam_size=8, max_beam_size=64),
        halt_threshold=0.5,
        raw_score="rescored",
    )
    instrument = InstrumentSettings(precursor_tolerance_ppm=10.0, isotope_errors=(0, 2))
    settings = resolve_settings(stored, instrument, config)
    assert settings.decoding.precursor_tolerance_ppm == 10.0
    assert settings.decoding.isotope_errors == (0, 2)
    assert (settings.decoding.beam_size, settings.halt_threshold) == (8, 0.5)
    assert settings.raw_score == "rescored"
    asked = resolve_settings(stored, instrument, config, {"beam_size": 128, "halt_threshold": None})
    assert asked.decoding.beam_size == 128 and asked.decoding.max_beam_size == 128
    assert asked.halt_threshold is None


def test_values_as_trained_are_stored_as_none():
    config = get_model_config("default")
    instrument = InstrumentSettings(fragment_tolerance_da=config.evidence_tolerance)
    settings = resolve_settings(
        InferenceSettings(), instrument, config, {"refinement_steps": config.supervision_steps}
    )
    assert settings.refinement_steps is None and settings.fragment_tolerance_da is None
    wider = dataclasses.replace(instrument, fragment_tolerance_da=0.5)
    assert resolve_settings(InferenceSettings(), wider, config).fragment_tolerance_da == 0.5


def test_an_unknown_setting_is_named():
    with pytest.raises(ValueError, match="beam_width"):
        resolve_settings(
            InferenceSettings(),
            InstrumentSettings(),
            get_model_config("default"),
            {"beam_width": 4},
        )


def test_the_instrument_names_the_decoder_and_the_command_line_wins():
    config = get_model_config("default")
    instrument = InstrumentSettings(decoder="graph")
    stored = InferenceSettings(decoder="hybrid")
    assert resolve_settings(stored, instrument, config).decoder == "graph"
    assert resolve_settings(stored, InstrumentSettings(), config).decoder == "hybrid"
    asked = resolve_settings(stored, instrument, config, {"decoder": "model"})
    assert asked.decoder == "model"


def test_samples_without_alkylation_need_the_graph_decoder(project_root):
    model = project_root / SHIPPED
    plain = InstrumentSettings(fixed_modifications=())
    with pytest.raises(InputError, match="graph decoder"):
        load_sequencer(model, plain, {"decoder": "hybrid"})
    sequencer, _ = load_sequencer(model, plain, {"decoder": "graph"})
    assert "C" in sequencer.vocabulary.index
    assert "C[Carbamidomethyl]" not in sequencer.vocabulary.index
    assert sequencer.graph is not None and sequencer.graph.vocabulary is sequencer.vocabulary


def test_the_shipped_ion_trap_file_uses_the_graph_decoder(project_root):
    instrument = load_instrument(project_root / "config/instruments/iontrap_cid.yaml")
    assert instrument.decoder == "graph" and instrument.fragment_tolerance_da == 0.5
    sequencer, _ = load_sequencer(project_root / SHIPPED, instrument)
    assert sequencer.settings.decoder == "graph"
    assert sequencer.graph.settings.fragment_tolerance_da == 0.5


def test_a_rescorer_reading_predicted_intensities_needs_the_ms2pip_model(project_root, tmp_path):
    """A model file whose rescorer chooses with predicted intensities (trm calibrate
    --predicted-intensities) loads with the instrument's MS2PIP model, and without it
    stops with a message that names the option; the shipped file does not need it."""
    import numpy as np

    from trm.denovo.rescore import CHOICE_FEATURES, DECODER_FEATURES, FEATURES, Choice, Rescorer
    from trm.train.checkpoint import save_checkpoint

    instrument = load_instrument(project_root / "config/instruments/orbitrap_hcd.yaml")
    shipped = ModelFile.read(project_root / SHIPPED)
    assert shipped.rescorer is not None and not shipped.rescorer.uses_intensities
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 4, len(FEATURES)))
    present = np.ones((50, 4), dtype=bool)
    correct = np.zeros((50, 4), dtype=bool)
    correct[:, 0] = True
    rescorer = dataclasses.replace(
        Rescorer.fit(features[present], correct[present], DECODER_FEATURES["hybrid"]),
        choice=Choice.fit(features, present, correct, CHOICE_FEATURES),
    )
    path = tmp_path / "intensities.pt"
    save_checkpoint(shipped.with_calibration(shipped.stored, shipped.calibration, rescorer), path)
    sequencer, _ = load_sequencer(
        path, instrument, ms2pip_model_dir=project_root / "resources/ms2pip"
    )
    assert sequencer.intensity_predictor is not None
    with pytest.raises(InputError, match="--ms2pip-model-dir"):
        load_sequencer(path, instrument, ms2pip_model_dir=tmp_path / "nothing")


def test_the_instruments_edge_length_is_the_graphs_and_differs_from_a_calibration(
    project_root, caplog
):
    """An instrument file with 3-residue edges sequences with them; the shipped model,
    calibrated with 2, warns that its scores may be off as probabilities."""
    config = get_model_config("default")
    three = InstrumentSettings(graph_edge_residues=3)
    assert resolve_settings(InferenceSettings(), three, config).graph.max_edge_residues == 3
    instrument = load_instrument(project_root / "config/instruments/orbitrap_hcd.yaml")
    with caplog.at_level("WARNING"):
        sequencer, _ = load_sequencer(
            project_root / SHIPPED, dataclasses.replace(instrument, graph_edge_residues=3)
        )
    assert sequencer.graph.settings.max_edge_residues == 3
    assert "other settings than" in caplog.text
    assert "graph.max_edge_residues: 3 vs 2" in caplog.text
    assert "graph.n_paths" not in caplog.text  # only what differs is named
