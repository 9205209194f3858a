"""The offline ms2pip model: registration, integrity checks and real predictions."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from trm.chem import parse_peptidoform
from trm.synth.ms2pip_models import (
    Ms2pipModelError,
    Ms2pipPredictor,
    fetch_official_models,
    known_models,
    predict_batch_offline,
    read_model_definitions,
    register_model,
    sha1_of_file,
)
from trm.synth.spectra import Peptidoform, ms2pip_proforma

from .conftest import SHIPPED_MODEL

PEPTIDOFORMS = [
    ("PEPTC[Carbamidomethyl]IDEK", 2),
    ("AC[Carbamidomethyl]DM[Oxidation]EFGHIKLMNPQR", 3),
    ("[Acetyl]-SAM[Oxidation]PLEVQGR", 4),
    ("LLNVWYC[Carbamidomethyl]R", 2),
    ("GGGGGGGK", 3),
]


def test_shipped_model_is_described_and_intact(model_dir) -> None:
    definitions = read_model_definitions(model_dir)
    assert SHIPPED_MODEL in definitions
    definition = definitions[SHIPPED_MODEL]
    assert definition["ion_types"] == ["B", "Y"]
    for name in definition["xgboost_model_files"].values():
        assert sha1_of_file(model_dir / name) == definition["model_hash"][name]
        # "a few MB": prediction speed and the repository size depend on it
        assert (model_dir / name).stat().st_size < 12_000_000


def test_registered_model_predicts_like_predict_batch(model_dir) -> None:
    from psm_utils import PSM, PSMList
    from psm_utils import Peptidoform as PsmPeptidoform

    psms = PSMList(
        psm_list=[
            PSM(peptidoform=PsmPeptidoform(f"{p}/{z}"), spectrum_id=str(i))
            for i, (p, z) in enumerate(PEPTIDOFORMS)
        ]
    )
    reference = predict_batch_offline(psms, SHIPPED_MODEL, model_dir, processes=1)
    predictor = Ms2pipPredictor(SHIPPED_MODEL, model_dir, processes=1)
    proformas = [
        ms2pip_proforma(Peptidoform(tuple(parse_peptidoform(p)[0]), z)) for p, z in PEPTIDOFORMS
    ]
    ours = predictor.predict(proformas)
    assert predictor.ion_types == ["b", "y"]
    for result, prediction, (proforma, _) in zip(reference, ours, PEPTIDOFORMS, strict=True):
        n_ions = len(parse_peptidoform(proforma)[0]) - 1 - proforma.startswith("[")
        for ion_type in ("b", "y"):
            assert prediction[ion_type].shape == (n_ions,)
            np.testing.assert_array_equal(
                prediction[ion_type], result.predicted_intensity[ion_type]
            )
        # a real HCD prediction: clipped at log2(0.001) and not flat
        assert prediction["y"].min() >= np.float32(np.log2(0.001))
        assert np.ptp(prediction["y"]) > 1


def test_unknown_model_name_is_a_clear_error(model_dir) -> None:
    with pytest.raises(Ms2pipModelError, match="unknown ms2pip model 'HCD2077'.*HCD2019-distilled"):
        register_model("HCD2077", model_dir)
    assert SHIPPED_MODEL in known_models(model_dir)
    assert "HCD2021" in known_models(model_dir)


def test_official_model_without_files_names_the_fetch_command(tmp_path) -> None:
    with pytest.raises(Ms2pipModelError, match="trm fetch-ms2pip-models --model HCD2021"):
        register_model("HCD2021", tmp_path)


def test_corrupt_model_file_is_refused(model_dir, tmp_path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(model_dir, copy)
    definition = read_model_definitions(copy)[SHIPPED_MODEL]
    victim = copy / definition["xgboost_model_files"]["y"]
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(Ms2pipModelError, match="expected SHA-1"):
        register_model(SHIPPED_MODEL, copy)


def test_fetch_refuses_names_that_are_not_official(model_dir) -> None:
    with pytest.raises(Ms2pipModelError, match="not official"):
        fetch_official_models(["HCD2077"], model_dir)
    with pytest.raises(Ms2pipModelError, match="not official"):
        fetch_official_models([SHIPPED_MODEL], model_dir)
