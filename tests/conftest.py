"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The checkout's top directory (where the Snakefile is)."""
    return PROJECT_ROOT
