"""trm.instrument: the one validated settings object of an instrument file."""

from __future__ import annotations

import pytest
import yaml

from trm.instrument import InstrumentFileError, InstrumentSettings, load_instrument

GOOD = {
    "fragmentation": "HCD",
    "ms2pip_model": "HCD2019-distilled",
    "fragment_tolerance_da": 0.02,
    "precursor_tolerance_ppm": 20,
}


def write(tmp_path, **values):
    path = tmp_path / "instrument.yaml"
    path.write_text(yaml.safe_dump({**GOOD, **values}))
    return path


def test_shipped_instrument_files_load(project_root):
    orbitrap = load_instrument(project_root / "config/instruments/orbitrap_hcd.yaml")
    assert orbitrap.fragment_tolerance_da == 0.02 and orbitrap.fragmentation == "HCD"
    assert orbitrap.noise_model == "resources/noise/orbitrap_hcd.yaml"
    ion_trap = load_instrument(project_root / "tests/config/instruments/ltq_cid.yaml")
    assert ion_trap.fragment_tolerance_da == 0.5 and ion_trap.missing_charge == "skip"
    assert InstrumentSettings.from_mapping(orbitrap.to_dict(), "again") == orbitrap


@pytest.mark.parametrize(
    "values,message",
    [
        ({"fragmentation": "ETD"}, "fragmentation must be one of"),
        ({"fragment_tolerance_da": 0}, "fragment_tolerance_da must be positive"),
        ({"precursor_tolerance_ppm": "n/a"}, "precursor_tolerance_ppm must be a number"),
        ({"isotope_errors": [1, 0]}, r"isotope_errors must be \[lowest, highest\]"),
        ({"charges": [2, 2]}, "charges must list distinct positive charges"),
        ({"charges": [2, 3], "charge_weights": [1.0]}, "one positive weight per charge"),
        ({"missing_charge": "guess"}, "missing_charge must be one of"),
        ({"graph_edge_residues": 4}, "graph_edge_residues must be 1, 2 or 3"),
        ({"graph_edge_residues": True}, "graph_edge_residues must be 1, 2 or 3"),
        ({"graph_window_peaks": -1}, "graph_window_peaks must be a whole number >= 0"),
        ({"graph_window_peaks": 2.5}, "graph_window_peaks must be a whole number >= 0"),
        ({"fragment_tolerance": 0.02}, r"unknown key\(s\) \['fragment_tolerance'\]"),
    ],
)
def test_bad_settings_name_the_file_and_the_key(tmp_path, values, message):
    with pytest.raises(InstrumentFileError, match=f"instrument.yaml: .*{message}"):
        load_instrument(write(tmp_path, **values))


def test_missing_keys_and_files(tmp_path):
    path = tmp_path / "instrument.yaml"
    path.write_text("fragmentation: HCD\n")
    with pytest.raises(InstrumentFileError, match="missing required key"):
        load_instrument(path)
    with pytest.raises(InstrumentFileError, match="absent.yaml: cannot read"):
        load_instrument(tmp_path / "absent.yaml")


def test_decoder_and_fixed_modifications_are_checked(tmp_path):
    from trm.instrument import InstrumentFileError, load_instrument

    base = {
        "fragmentation": "CID", "ms2pip_model": "HCD2019-distilled",
        "fragment_tolerance_da": 0.5, "precursor_tolerance_ppm": 20, "charges": [2, 3],
    }  # fmt: skip
    path = tmp_path / "trap.yaml"
    for changes, message in (
        ({"decoder": "beam"}, "decoder must be one of"),
        ({"fixed_modifications": "Carbamidomethyl@C"}, "list of Name@Residues"),
        ({"fixed_modifications": ["Phospho@S"]}, "not in the model vocabulary"),
        ({"fixed_modifications": ["Oxidation@C"]}, "cannot sit on"),
    ):
        path.write_text(yaml.safe_dump({**base, **changes}))
        with pytest.raises(InstrumentFileError, match=message):
            load_instrument(path)
    path.write_text(yaml.safe_dump({**base, "decoder": "graph", "fixed_modifications": []}))
    instrument = load_instrument(path)
    assert instrument.decoder == "graph" and instrument.fixed_modifications == ()


def test_graph_edge_residues_reach_the_graph_decoder(tmp_path):
    """The instrument's edge length is the graph's; its fallback search runs only where
    it allows longer edges than that (3 by default)."""
    from trm.graph import GraphSettings

    default = GraphSettings.from_instrument(load_instrument(write(tmp_path)))
    assert (default.max_edge_residues, default.fallback_edge_residues) == (2, 3)
    three = load_instrument(write(tmp_path, graph_edge_residues=3))
    assert three.graph_edge_residues == 3
    assert InstrumentSettings.from_mapping(three.to_dict(), "again") == three
    settings = GraphSettings.from_instrument(three)
    assert (settings.max_edge_residues, settings.fallback_edge_residues) == (3, 3)


def test_graph_window_peaks_reach_the_graph_decoder(tmp_path):
    from trm.graph import GraphSettings

    assert GraphSettings.from_instrument(load_instrument(write(tmp_path))).node_window_peaks == 0
    windows = load_instrument(write(tmp_path, graph_window_peaks=3))
    assert InstrumentSettings.from_mapping(windows.to_dict(), "again") == windows
    assert GraphSettings.from_instrument(windows).node_window_peaks == 3
