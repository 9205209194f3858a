"""Training of the recursive model: data, noise curricula, losses, loop, checkpoints."""

from trm.train.checkpoint import load_model, read_checkpoint, save_checkpoint
from trm.train.config import TrainConfig
from trm.train.curriculum import Curriculum, learning_rate, supervision_weights
from trm.train.data import SpectrumBatch, SpectrumDataset, batch_indices
from trm.train.loop import FitResult, Trainer, fit
from trm.train.losses import LossWeights, compute_loss
from trm.train.noise import NoiseModel, NoiseParameters, RampNoise, apply_noise

__all__ = [
    "Curriculum",
    "FitResult",
    "LossWeights",
    "NoiseModel",
    "NoiseParameters",
    "RampNoise",
    "SpectrumBatch",
    "SpectrumDataset",
    "TrainConfig",
    "Trainer",
    "apply_noise",
    "batch_indices",
    "compute_loss",
    "fit",
    "learning_rate",
    "load_model",
    "read_checkpoint",
    "save_checkpoint",
    "supervision_weights",
]
