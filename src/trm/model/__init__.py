"""The tiny recursive model: configuration, network, cost."""

from __future__ import annotations

import dataclasses

import torch

from trm.chem import Vocabulary
from trm.errors import InputError
from trm.model.config import MODEL_CONFIGS, ModelConfig, get_model_config
from trm.model.cost import InferenceCost, count_parameters, inference_flops
from trm.model.network import (
    Carry,
    EncodedSpectrum,
    PeptideTRM,
    RecursiveCore,
    Refinement,
    SpectrumEncoder,
    StepOutput,
)

__all__ = [
    "MODEL_CONFIGS",
    "Carry",
    "EncodedSpectrum",
    "InferenceCost",
    "ModelConfig",
    "PeptideTRM",
    "RecursiveCore",
    "Refinement",
    "SpectrumEncoder",
    "StepOutput",
    "build_model",
    "count_parameters",
    "get_model_config",
    "inference_flops",
]


def build_model(config: ModelConfig, vocabulary: Vocabulary) -> PeptideTRM:
    """A freshly initialised model whose output classes are the vocabulary's tokens.

    Parameters
    ----------
    config : ModelConfig
        Architecture; ``n_tokens`` is filled in from the vocabulary.
    vocabulary : Vocabulary

    Raises
    ------
    ValueError
        When the config names a different vocabulary size.
    """
    if config.n_tokens not in (None, len(vocabulary)):
        raise InputError(
            f"config is for {config.n_tokens} tokens, the vocabulary has {len(vocabulary)}"
        )
    model = PeptideTRM(dataclasses.replace(config, n_tokens=len(vocabulary)))
    with torch.no_grad():
        model.core.token_masses.copy_(torch.as_tensor(vocabulary.masses))
    return model
