"""Self-describing checkpoints: everything needed to resume exactly or to run inference.

A checkpoint is a dictionary of plain types and tensors, readable with
``torch.load(weights_only=True)``:

``format``, ``version``
    ``"trm-checkpoint"`` and the layout version.
``model_config``, ``train_config``
    :class:`trm.model.ModelConfig` and :class:`trm.train.config.TrainConfig` as dicts;
    on resume the stored ones win over the command line.
``vocabulary``
    The output classes' tokens, end class first.
``step``
    Optimisation steps done.
``model``, ``ema``, ``optimizer``
    State dicts; ``ema`` holds the averaged weights that evaluation and inference use.
``scheduler``
    The learning-rate schedule's name and the learning rate of the last step (the
    schedule itself is a pure function of the step and the train config).
``rng``
    Torch CPU and CUDA generator states.
``metrics``
    The last evaluation's metrics per split.
``finetune``
    Written by ``trm finetune``: its settings, or why the pretrained model was kept.

A model file ready for ``trm denovo`` (written by ``trm calibrate``) adds, read by
:func:`trm.denovo.model_file.load_sequencer`:

``inference`` (:data:`INFERENCE_KEY`)
    The decoding settings it was calibrated under
    (:meth:`trm.denovo.settings.InferenceSettings.to_dict`).
``calibration`` (:data:`CALIBRATION_KEY`)
    The isotonic map from raw score to probability
    (:meth:`trm.denovo.calibration.IsotonicCalibration.to_dict`).
``rescorer`` (:data:`RESCORER_KEY`, optional)
    The spectrum-match rescorer (:meth:`trm.denovo.rescore.Rescorer.to_dict`).
``ion_probabilities`` (:data:`ION_PROBABILITIES_KEY`, optional)
    The graph decoder's ion probabilities, from the instrument's noise model
    (:meth:`trm.graph.decoder.IonProbabilities.to_dict`).

Changing the weights (``trm finetune``) drops these four (:func:`without_calibration`):
they belong to the weights they were fitted for.
"""

from __future__ import annotations

from pathlib import Path

import torch

from trm.atomic import atomic_output
from trm.chem import DEFAULT_TOKENS, Vocabulary
from trm.errors import InputError
from trm.model import ModelConfig, PeptideTRM, build_model

CHECKPOINT_FORMAT = "trm-checkpoint"
CHECKPOINT_VERSION = 1

#: Keys ``trm calibrate`` adds (see the module description).
INFERENCE_KEY = "inference"
CALIBRATION_KEY = "calibration"
RESCORER_KEY = "rescorer"
ION_PROBABILITIES_KEY = "ion_probabilities"
CALIBRATION_KEYS: tuple[str, ...] = (
    INFERENCE_KEY, CALIBRATION_KEY, RESCORER_KEY, ION_PROBABILITIES_KEY
)  # fmt: skip


def without_calibration(checkpoint: dict) -> dict:
    """The checkpoint without what ``trm calibrate`` added (a shallow copy)."""
    return {key: value for key, value in checkpoint.items() if key not in CALIBRATION_KEYS}


def save_checkpoint(checkpoint: dict, path: Path | str) -> None:
    """Write a checkpoint atomically, so a job killed while writing leaves the old one."""
    with atomic_output(path) as temporary:
        torch.save(checkpoint, temporary)


def read_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict:
    """Read and check a checkpoint (``weights_only``: no code is unpickled).

    Raises
    ------
    ValueError
        When the file is not a trm checkpoint of a known version.
    """
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not a trm checkpoint")
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise InputError(
            f"{path} has checkpoint version {checkpoint.get('version')}; "
            f"this trm reads version {CHECKPOINT_VERSION}"
        )
    return checkpoint


def checkpoint_vocabulary(checkpoint: dict) -> Vocabulary:
    """The vocabulary a checkpoint was trained with."""
    tokens = checkpoint.get("vocabulary", [Vocabulary.PAD, *DEFAULT_TOKENS])
    if tokens[0] != Vocabulary.PAD:
        raise InputError("checkpoint vocabulary does not start with the end class")
    return Vocabulary(tokens[1:])


def load_model(
    path: Path | str, use_ema: bool = True, map_location: str | torch.device = "cpu"
) -> tuple[PeptideTRM, Vocabulary]:
    """A trained model, in eval mode, and its vocabulary.

    Parameters
    ----------
    path : path
        A checkpoint written by ``trm pretrain``.
    use_ema : bool
        Load the exponential moving average of the weights (what evaluation used).
    map_location : str or torch.device

    Returns
    -------
    model : PeptideTRM
    vocabulary : Vocabulary
    """
    return model_from_checkpoint(read_checkpoint(path, map_location), use_ema, map_location)


def model_from_checkpoint(
    checkpoint: dict, use_ema: bool = True, map_location: str | torch.device = "cpu"
) -> tuple[PeptideTRM, Vocabulary]:
    """The model of a checkpoint already read (see :func:`load_model`)."""
    vocabulary = checkpoint_vocabulary(checkpoint)
    model = build_model(ModelConfig.from_dict(checkpoint["model_config"]), vocabulary)
    model.load_state_dict(checkpoint["ema" if use_ema else "model"])
    return model.to(map_location).eval(), vocabulary
