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
    checkpoint = read_checkpoint(path, map_location)
    vocabulary = checkpoint_vocabulary(checkpoint)
    model = build_model(ModelConfig.from_dict(checkpoint["model_config"]), vocabulary)
    model.load_state_dict(checkpoint["ema" if use_ema else "model"])
    return model.to(map_location).eval(), vocabulary
