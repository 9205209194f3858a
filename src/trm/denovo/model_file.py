"""The model file, read once for every stage that sequences with it.

A model file is a checkpoint (:mod:`trm.train.checkpoint`, whose description lists every
key); ``trm calibrate`` adds the inference settings it calibrated under, the score
calibration and the spectrum-match rescorer. :func:`load_sequencer` turns a model file,
the instrument file and any settings asked for on top into a ready
:class:`~trm.denovo.inference.Sequencer`, for ``trm denovo``, ``trm calibrate`` and the
benchmarks alike, so the settings are merged in one place:

1. the stored settings (or the defaults, for a model never calibrated or for
   ``trm calibrate``, which calibrates afresh);
2. the instrument's tolerances and isotope errors;
3. the overrides, by name (:data:`OVERRIDABLE`).

A setting equal to the model's trained value (refinement steps, fragment tolerance) is
stored as None, "as trained", so asking for it explicitly is no change of settings.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trm.chem import Vocabulary, vocabulary_tokens
from trm.denovo.calibration import IsotonicCalibration
from trm.denovo.decode import DecodingSettings
from trm.denovo.inference import Sequencer
from trm.denovo.rescore import Rescorer
from trm.denovo.settings import InferenceSettings
from trm.errors import InputError, TrmError
from trm.graph import GraphDecoder, GraphSettings, IonProbabilities
from trm.instrument import DEFAULT_FIXED_MODIFICATIONS, InstrumentSettings
from trm.model import ModelConfig
from trm.synth.ms2pip_models import DEFAULT_MODEL_DIR
from trm.train.checkpoint import (
    CALIBRATION_KEY,
    INFERENCE_KEY,
    ION_PROBABILITIES_KEY,
    RESCORER_KEY,
    model_from_checkpoint,
    read_checkpoint,
)

log = logging.getLogger(__name__)

#: Settings that can be asked for on top of the stored ones: fields of
#: :class:`~trm.denovo.decode.DecodingSettings` and of
#: :class:`~trm.denovo.settings.InferenceSettings`.
OVERRIDABLE: frozenset[str] = frozenset(
    {f.name for f in dataclasses.fields(DecodingSettings)}
    | {f.name for f in dataclasses.fields(InferenceSettings)} - {"decoding"}
)


class UncalibratedModelError(TrmError):
    """A model file that ``trm calibrate`` has not calibrated, where calibration is needed."""


@dataclass
class ModelFile:
    """What a model file holds besides the weights.

    Attributes
    ----------
    path : Path
    checkpoint : dict
        The whole checkpoint, as read.
    stored : InferenceSettings or None
        The settings it was calibrated under; None before ``trm calibrate``.
    calibration : IsotonicCalibration or None
    rescorer : Rescorer or None
    model_config : ModelConfig
    ion_probabilities : IonProbabilities or None
        Of the graph decoder (from the instrument's noise model at calibration).
    """

    path: Path
    checkpoint: dict[str, Any]
    stored: InferenceSettings | None
    calibration: IsotonicCalibration | None
    rescorer: Rescorer | None
    model_config: ModelConfig
    ion_probabilities: IonProbabilities | None = None

    @classmethod
    def read(cls, path: str | Path) -> ModelFile:
        """Read a model file (a checkpoint, calibrated or not)."""
        checkpoint = read_checkpoint(path)
        calibrated = CALIBRATION_KEY in checkpoint and INFERENCE_KEY in checkpoint
        return cls(
            path=Path(path),
            checkpoint=checkpoint,
            stored=InferenceSettings.from_dict(checkpoint[INFERENCE_KEY]) if calibrated else None,
            calibration=(
                IsotonicCalibration.from_dict(checkpoint[CALIBRATION_KEY]) if calibrated else None
            ),
            rescorer=(
                Rescorer.from_dict(checkpoint[RESCORER_KEY]) if RESCORER_KEY in checkpoint else None
            ),
            model_config=ModelConfig.from_dict(checkpoint["model_config"]),
            ion_probabilities=(
                IonProbabilities.from_dict(checkpoint[ION_PROBABILITIES_KEY])
                if ION_PROBABILITIES_KEY in checkpoint
                else None
            ),
        )

    def with_calibration(
        self,
        settings: InferenceSettings,
        calibration: IsotonicCalibration,
        rescorer: Rescorer | None,
        ion_probabilities: IonProbabilities | None = None,
    ) -> dict[str, Any]:
        """The checkpoint with these calibration results in place of any stored ones."""
        replaced = (RESCORER_KEY, ION_PROBABILITIES_KEY)
        checkpoint = {key: value for key, value in self.checkpoint.items() if key not in replaced}
        checkpoint[CALIBRATION_KEY] = calibration.to_dict()
        checkpoint[INFERENCE_KEY] = settings.to_dict()
        if rescorer is not None:
            checkpoint[RESCORER_KEY] = rescorer.to_dict()
        if ion_probabilities is not None:
            checkpoint[ION_PROBABILITIES_KEY] = ion_probabilities.to_dict()
        return checkpoint


def resolve_settings(
    base: InferenceSettings,
    instrument: InstrumentSettings,
    model_config: ModelConfig,
    overrides: Mapping[str, Any] | None = None,
) -> InferenceSettings:
    """Settings to sequence with: ``base``, the instrument's, then ``overrides``.

    Parameters
    ----------
    base : InferenceSettings
        Stored or default settings.
    instrument : InstrumentSettings
        Its precursor tolerance, isotope errors, fragment tolerance and decoder (when it
        names one) win over ``base``; the graph decoder's settings are the instrument's
        (:meth:`~trm.graph.decoder.GraphSettings.from_instrument`).
    model_config : ModelConfig
        Of the model: a refinement step count or fragment tolerance equal to the trained
        one is stored as None.
    overrides : mapping, optional
        Setting name (:data:`OVERRIDABLE`) -> value; a larger ``beam_size`` also widens
        ``max_beam_size``.

    Raises
    ------
    ValueError
        For a name outside :data:`OVERRIDABLE`.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - OVERRIDABLE)
    if unknown:
        raise ValueError(f"unknown inference settings {unknown}; known: {sorted(OVERRIDABLE)}")
    decoding_names = {f.name for f in dataclasses.fields(DecodingSettings)}
    decoding = {k: v for k, v in overrides.items() if k in decoding_names}
    if "beam_size" in decoding:
        decoding.setdefault(
            "max_beam_size", max(base.decoding.max_beam_size, decoding["beam_size"])
        )
    decoding = dataclasses.replace(
        base.decoding,
        precursor_tolerance_ppm=instrument.precursor_tolerance_ppm,
        isotope_errors=instrument.isotope_errors,
        **decoding,
    )
    others = {k: v for k, v in overrides.items() if k not in decoding_names}
    settings = dataclasses.replace(
        base,
        decoding=decoding,
        fragment_tolerance_da=instrument.fragment_tolerance_da,
        graph=GraphSettings.from_instrument(instrument),
        decoder=others.pop("decoder", instrument.decoder or base.decoder),
        **others,
    )
    as_trained = {}
    if settings.refinement_steps == model_config.supervision_steps:
        as_trained["refinement_steps"] = None
    if settings.fragment_tolerance_da == model_config.evidence_tolerance:
        as_trained["fragment_tolerance_da"] = None
    return dataclasses.replace(settings, **as_trained)


def load_sequencer(
    path: str | Path,
    instrument: InstrumentSettings,
    overrides: Mapping[str, Any] | None = None,
    *,
    afresh: bool = False,
    require_calibration: bool = False,
    ion_probabilities: IonProbabilities | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    workers: int = 1,
    ms2pip_model_dir: str | Path = DEFAULT_MODEL_DIR,
    predict_intensities: bool = False,
) -> tuple[Sequencer, ModelFile]:
    """A sequencer for a model file under an instrument, with settings merged once.

    Parameters
    ----------
    path : path
        Model file (``trm pretrain``/``finetune`` checkpoint, or ``trm calibrate`` output).
    instrument : InstrumentSettings
    overrides : mapping, optional
        Settings asked for on top (see :func:`resolve_settings`).
    afresh : bool
        Start from the default settings, not the stored ones (``trm calibrate``).
    require_calibration : bool
        Refuse a model file without calibration (:class:`UncalibratedModelError`).
    ion_probabilities : IonProbabilities, optional
        Of the graph decoder, instead of the model file's (``trm calibrate`` gives the
        instrument's noise model's); hand-set defaults when neither has them.
    device, batch_size, workers
        As for :class:`~trm.denovo.inference.Sequencer`.
    ms2pip_model_dir : path
        Where the instrument's MS2PIP model lies (``ms2pip_model``): the candidates'
        fragment intensities are predicted with it for the rescoring
        (:data:`~trm.denovo.rescore.INTENSITY_FEATURES`) when the model file's rescorer
        reads them, or when ``predict_intensities``.
    predict_intensities : bool
        Predict them anyway (``trm calibrate --predicted-intensities``, graph and hybrid
        decoders): calibration then fits a rescorer that reads them and chooses with them.

    Returns
    -------
    sequencer : Sequencer
        With the model file's rescorer when the settings' raw score uses it.
    model_file : ModelFile
    """
    model_file = ModelFile.read(path)
    if model_file.calibration is None and require_calibration:
        raise UncalibratedModelError(
            f"{path} has no score calibration; run `trm calibrate --model {path} "
            "--validation-dir ... --out MODEL.pt` and sequence with that model "
            "(or pass --uncalibrated to write raw, uncalibrated scores)"
        )
    base = InferenceSettings() if afresh or model_file.stored is None else model_file.stored
    settings = resolve_settings(base, instrument, model_file.model_config, overrides)
    if model_file.stored is not None and not afresh:
        changed = settings.differences(model_file.stored)
        if changed:
            log.warning(
                "sequencing with other settings than %s was calibrated with (%s): its "
                "scores may be off as probabilities",
                path,
                "; ".join(changed),
            )
    model, vocabulary = model_from_checkpoint(model_file.checkpoint, map_location=device)
    # Residues the samples carry otherwise than the default preparation assumes.
    replaced = {
        old: new
        for old, new in zip(
            vocabulary_tokens(DEFAULT_FIXED_MODIFICATIONS),
            vocabulary_tokens(instrument.fixed_modifications),
            strict=True,
        )
        if old != new and old in vocabulary.index
    }
    if replaced:
        if settings.decoder != "graph":
            raise InputError(
                f"the instrument's fixed modifications {list(instrument.fixed_modifications)} "
                f"make residues the model in {path} does not know ({sorted(replaced.values())}):"
                " use the graph decoder (decoder: graph), which needs no model, or a model "
                "trained for them"
            )
        vocabulary = Vocabulary([replaced.get(t, t) for t in vocabulary.tokens[1:]])
    graph = None
    if settings.decoder != "model":
        probabilities = ion_probabilities or model_file.ion_probabilities
        if probabilities is None:
            log.warning(
                "%s holds no ion probabilities for the graph decoder (calibrate it with the "
                "instrument's noise model): using hand-set ones",
                path,
            )
            probabilities = IonProbabilities.hand_set()
        graph = GraphDecoder(vocabulary, settings.graph, probabilities)
    predictor = None
    rescorer = model_file.rescorer
    needed = rescorer is not None and rescorer.uses_intensities and not afresh
    if predict_intensities and settings.decoder == "model":
        log.warning(
            "predicted intensities are for the graph and hybrid decoders' choice among "
            "candidates: the model decoder does not use them"
        )
    if needed or (predict_intensities and settings.decoder != "model"):
        predictor = _intensity_predictor(
            instrument.ms2pip_model, Path(ms2pip_model_dir), Path(path)
        )
    sequencer = Sequencer(
        model,
        vocabulary,
        settings,
        device,
        batch_size,
        rescorer=rescorer,
        workers=workers,
        graph=graph,
        intensity_predictor=predictor,
    )
    return sequencer, model_file


def _intensity_predictor(name: str, model_dir: Path, model_file: Path) -> Any:
    """The instrument's MS2PIP predictor (one thread per call), for ``model_file``."""
    from trm.synth.ms2pip_models import Ms2pipModelError, Ms2pipPredictor

    try:
        return Ms2pipPredictor(name, model_dir, processes=1)
    except (Ms2pipModelError, OSError) as error:
        raise InputError(
            f"{model_file}: its rescoring predicts fragment intensities with the "
            f"instrument's MS2PIP model {name!r}, not usable in {model_dir} ({error}): give "
            "its folder (--ms2pip-model-dir; in the workflow, synthetic: ms2pip_model_dir)"
        ) from error
