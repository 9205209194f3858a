"""``trm calibrate`` and ``trm denovo`` end to end with a micro model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from psm_utils.io import read_file
from pyteomics import mztab

from tests.unit.io.conftest import write_mzml
from trm.chem import C13_SPACING, mz_to_mass, parse_peptidoform, peptide_mass
from trm.denovo.rescore import FORCED_CHOICE
from trm.train.checkpoint import load_model, read_checkpoint, save_checkpoint

from .conftest import DATA, MAX_CHARGE, calibrate, run_denovo, write_instrument


def read_mztab(path) -> mztab.MzTab:
    with open(path) as handle:
        return mztab.MzTab(handle)


def read_tsv(path) -> pl.DataFrame:
    return pl.read_csv(path, separator="\t", infer_schema_length=0)


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory, sample, calibrated, instrument_path):
    """``trm denovo`` of the sample with labels, metrics and plot."""
    out = tmp_path_factory.mktemp("denovo")
    extra = ["--labels", str(sample.labels), "--metrics", str(out / "metrics.json")]
    extra += ["--plot", str(out / "metrics.png")]
    status, paths = run_denovo(sample.path, calibrated[0], instrument_path, out, *extra)
    assert status == 0
    return {**paths, "metrics": out / "metrics.json", "plot": out / "metrics.png"}


def test_calibrate_writes_model_and_report(calibrated, model_path):
    model, report_path = calibrated
    checkpoint = read_checkpoint(model)  # weights_only: plain types only
    original = read_checkpoint(model_path)
    added = {"calibration", "inference"}
    if checkpoint["inference"]["raw_score"] == "rescored":
        added.add("rescorer")
    # the default hybrid decoder stores its graph decoder's ion probabilities
    assert checkpoint["inference"]["decoder"] == "hybrid"
    added.add("ion_probabilities")
    assert set(checkpoint) == set(original) | added
    assert checkpoint["inference"]["beam_size"] == 16
    assert checkpoint["inference"]["halt_threshold"] is None
    assert checkpoint["inference"]["precursor_tolerance_ppm"] == 20
    thresholds = checkpoint["calibration"]["thresholds"]
    probabilities = checkpoint["calibration"]["probabilities"]
    assert thresholds == sorted(thresholds)
    assert probabilities == sorted(probabilities)
    load_model(model)  # still a loadable checkpoint

    report = json.loads(report_path.read_text())
    assert report["n_spectra"] == 160
    assert report["n_sequenced"] + report["n_no_peptide"] == 160
    # The hybrid decoder's graph reads these clean theoretical spectra (the model has
    # random weights): most peptides right.
    assert report["n_sequenced"] / 2 < report["n_correct"] <= report["n_sequenced"]
    assert report["raw_score"] == "rescored"
    assert report["fraction_correct"] == pytest.approx(report["n_correct"] / report["n_sequenced"])
    assert report["raw_score"] in report["raw_score_candidates"]
    assert report["ece_after"] <= report["ece_before"]
    assert sum(row["n"] for row in report["reliability"]["calibrated"]) == report["n_sequenced"]
    assert report["steps_histogram"] == {"1": 0, "2": 0, "3": 160}


def test_teacher_forced_calibration_chooses_by_graph_score_plus_forced_likelihood(
    tmp_path, model_path, validation_dir, instrument_path
):
    """`trm calibrate --teacher-forcing` stores the unweighted choice (fitted on nothing)
    and the limit of scored candidates with the settings."""
    out, report = tmp_path / "model.pt", tmp_path / "calibration.json"
    extra = ("--teacher-forcing", "--forced-candidates", "4")
    assert calibrate(model_path, validation_dir, instrument_path, out, report, *extra) == 0
    checkpoint = read_checkpoint(out)
    assert checkpoint["inference"]["teacher_forcing"] is True
    assert checkpoint["inference"]["forced_candidates"] == 4
    choice = checkpoint["rescorer"]["choice"]
    assert choice["features"] == list(FORCED_CHOICE)
    assert choice["weights"] == [1.0, 1.0] and choice["mean"] == [0.0, 0.0]
    # the two ways of choosing among candidates do not combine
    both = ("--teacher-forcing", "--predicted-intensities")
    status = calibrate(model_path, validation_dir, instrument_path, tmp_path / "both.pt",
                       tmp_path / "both.json", *both)  # fmt: skip
    assert status != 0
    assert not (tmp_path / "both.pt").exists()


def test_every_spectrum_once_in_input_order(labelled_run, sample):
    denovo = read_tsv(labelled_run["denovo"])
    unsequenced = read_tsv(labelled_run["unsequenced"])
    assert denovo.height + unsequenced.height == len(sample.ms2_ids)
    ids = denovo["spectrum_id"].to_list() + unsequenced["spectrum_id"].to_list()
    assert sorted(ids) == sorted(sample.ms2_ids)
    position = {spectrum_id: index for index, spectrum_id in enumerate(sample.ms2_ids)}
    for table in (denovo, unsequenced):
        order = [position[i] for i in table["spectrum_id"].to_list()]
        assert order == sorted(order)
    reasons = dict(zip(unsequenced["spectrum_id"], unsequenced["reason"], strict=True))
    assert reasons[sample.ms2_ids[-2]] == "no peaks"
    assert reasons[sample.ms2_ids[-1]] == f"charge above model maximum ({MAX_CHARGE})"
    assert set(reasons.values()) <= {
        "no peaks",
        f"charge above model maximum ({MAX_CHARGE})",
        "no peptide fits the precursor",
    }
    assert (unsequenced["run"] == "sample").all()
    assert denovo.height > 0


def test_results_read_with_the_fields_readers(labelled_run, sample):
    psms = read_file(labelled_run["denovo"], filetype="tsv")
    assert len(psms) > 0
    for psm in psms:
        assert psm.run == "sample"
        assert 0.0 <= psm.score <= 1.0
        assert 0.0 <= psm.qvalue <= 1.0
        assert {"raw_score", "residue_scores", "mass_error_ppm", "refinement_steps"} <= set(
            psm.metadata
        )
    tables = read_mztab(labelled_run["mztab"])
    psm_table = tables.spectrum_match_table
    assert len(psm_table) == len(psms)
    assert "calibrated scores" in tables.metadata["description"]


def test_beam_peptides_fit_the_precursor(labelled_run):
    denovo = read_tsv(labelled_run["denovo"])
    for row in denovo.iter_rows(named=True):
        tokens, charge = parse_peptidoform(row["peptidoform"])
        precursor = float(mz_to_mass(float(row["precursor_mz"]), charge))
        isotope = int(row["meta:isotope_error"])
        corrected = precursor - isotope * C13_SPACING
        # observed minus theoretical, over the (isotope-corrected) observed mass
        error = (corrected - peptide_mass(tokens)) / corrected * 1e6
        assert abs(error) <= 20.0 + 1e-6
        assert float(row["meta:mass_error_ppm"]) == pytest.approx(error, abs=1e-3)
        assert 0 <= isotope <= 1


def test_uncharged_spectrum_is_tried_at_each_charge(labelled_run, sample):
    uncharged = sample.ms2_ids[3]
    denovo = read_tsv(labelled_run["denovo"])
    unsequenced = read_tsv(labelled_run["unsequenced"])
    rows = denovo.filter(pl.col("spectrum_id") == uncharged)
    if rows.height:
        assert rows.height == 1
        assert rows["peptidoform"][0].endswith(("/2", "/3"))
    else:
        assert unsequenced.filter(pl.col("spectrum_id") == uncharged).height == 1


def test_scores_timing_and_metrics(labelled_run, sample):
    denovo = read_tsv(labelled_run["denovo"]).with_columns(
        pl.col("score", "qvalue", "meta:raw_score").cast(pl.Float64)
    )
    # q-values rise as the calibrated score falls.
    ordered = denovo.sort("score", descending=True)
    assert np.all(np.diff(ordered["qvalue"].to_numpy()) >= -1e-12)

    timing = json.loads(labelled_run["timing"].read_text())
    assert timing["n_spectra"] == len(sample.ms2_ids)
    assert timing["spectra_per_second"] > 0
    assert timing["beam_size"] == 16 and timing["halt_threshold"] is None
    assert timing["calibrated"] is True
    assert timing["model"]["parameters"] > 0 and timing["model"]["gflop_per_spectrum"] > 0

    metrics = json.loads(labelled_run["metrics"].read_text())
    assert metrics["n_labelled"] == 24  # the labelled spectra; the last two have no label
    assert metrics["n_labelled_sequenced"] <= denovo.height
    for key in ("aa_precision", "aa_recall", "peptide_recall", "pc_auc"):
        assert 0.0 <= metrics[key] <= 1.0
    assert len(metrics["curve"]["coverage"]) == metrics["n_labelled_sequenced"]
    assert labelled_run["plot"].stat().st_size > 0


def test_missing_charge_skip(tmp_path, sample, calibrated):
    instrument = write_instrument(tmp_path / "skip.yaml", missing_charge="skip")
    status, paths = run_denovo(sample.path, calibrated[0], instrument, tmp_path)
    assert status == 0
    unsequenced = read_tsv(paths["unsequenced"])
    reasons = dict(zip(unsequenced["spectrum_id"], unsequenced["reason"], strict=True))
    assert reasons[sample.ms2_ids[3]] == "missing precursor charge"
    assert read_tsv(paths["denovo"]).height + unsequenced.height == len(sample.ms2_ids)


def test_file_without_ms2_fails_and_leaves_nothing(tmp_path, calibrated, instrument_path, caplog):
    spectra = write_mzml(tmp_path / "ms1.mzML", [{"ms_level": 1}, {"ms_level": 1}])
    out = tmp_path / "out"
    status, _ = run_denovo(spectra, calibrated[0], instrument_path, out)
    assert status == 1
    assert "ms1.mzML" in caplog.text and "no MS2 spectra" in caplog.text
    assert not out.exists() or not any(out.iterdir())


def test_failed_write_leaves_no_output(tmp_path, sample, calibrated, instrument_path, monkeypatch):
    from trm.io import results

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(results, "write_mztab", broken)
    status, _ = run_denovo(sample.path, calibrated[0], instrument_path, tmp_path)
    assert status == 1
    assert not any(tmp_path.iterdir())


def test_uncalibrated_model_is_refused(tmp_path, sample, model_path, instrument_path, caplog):
    status, _ = run_denovo(sample.path, model_path, instrument_path, tmp_path / "refused")
    assert status == 1
    assert "trm calibrate" in caplog.text
    assert not (tmp_path / "refused").exists()

    status, paths = run_denovo(
        sample.path, model_path, instrument_path, tmp_path / "raw", "--uncalibrated"
    )
    assert status == 0
    assert json.loads(paths["timing"].read_text())["calibrated"] is False
    assert "UNCALIBRATED" in read_mztab(paths["mztab"]).metadata["description"]


def test_greedy_early_exit_real_mzml(tmp_path, calibrated, instrument_path):
    """Greedy decoding, and a halting head that is always sure: one step per spectrum."""
    checkpoint = read_checkpoint(calibrated[0])
    checkpoint["ema"]["core.halt_head.bias"].fill_(20.0)
    model = tmp_path / "sure.pt"
    save_checkpoint(checkpoint, model)
    spectra = tmp_path / "real.mzML"
    shutil.copyfile(DATA / "depthcharge" / "TMT10-Trial-8.mzML", spectra)
    extra = ["--decoder", "model", "--beam-size", "0", "--halt-threshold", "0.9"]
    extra += ["--batch-size", "3"]
    status, paths = run_denovo(spectra, model, instrument_path, tmp_path, *extra, run="real")
    assert status == 0
    denovo = read_tsv(paths["denovo"])
    unsequenced = read_tsv(paths["unsequenced"])
    assert denovo.height + unsequenced.height == 4  # the file's MS2 spectra
    assert (denovo["meta:refinement_steps"] == "1").all()
    timing = json.loads(paths["timing"].read_text())
    assert timing["steps_histogram"]["1"] == 4
    assert timing["beam_size"] == 0 and timing["halt_threshold"] == 0.9


def test_parquet_spectrum_table_input(tmp_path, calibrated, instrument_path, validation_dir):
    spectra = tmp_path / "table.parquet"
    pl.read_parquet(validation_dir / "shard-00000.parquet").head(20).write_parquet(spectra)
    status, paths = run_denovo(spectra, calibrated[0], instrument_path, tmp_path, run="table")
    assert status == 0
    total = read_tsv(paths["denovo"]).height + read_tsv(paths["unsequenced"]).height
    assert total == 20


def test_more_refinement_steps_than_trained(tmp_path, sample, calibrated, instrument_path, caplog):
    """--refinement-steps past the trained T: every spectrum refines that long, the timing
    says so, and the calibrated model warns that it was calibrated with other settings."""
    status, paths = run_denovo(
        sample.path, calibrated[0], instrument_path, tmp_path,
        "--refinement-steps", "5", "--halt-threshold", "none",
    )  # fmt: skip
    assert status == 0
    timing = json.loads(paths["timing"].read_text())
    assert timing["refinement_steps"] == 5 and timing["mean_refinement_steps"] == 5
    assert {k for k, n in timing["steps_histogram"].items() if n} == {"5"}
    assert "refinement_steps: 5 vs None" in caplog.text


def test_asking_for_the_trained_steps_is_no_change(
    tmp_path, sample, calibrated, instrument_path, caplog
):
    trained = json.loads(calibrated[1].read_text())["supervision_steps"]
    status, _ = run_denovo(
        sample.path, calibrated[0], instrument_path, tmp_path,
        "--refinement-steps", str(trained), "--halt-threshold", "none",
    )  # fmt: skip
    assert status == 0
    assert "refinement_steps" not in caplog.text
