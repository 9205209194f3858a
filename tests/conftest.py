"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# One thread per process, here and in every command a test starts: on two cores shared
# with other work, a multi-threaded torch waits on its own threads (a two-thread training
# job ran 14 times slower beside one CPU-bound process). The test configuration's rules
# run at one thread for the same reason.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The checkout's top directory (where the Snakefile is)."""
    return PROJECT_ROOT
